//! Kustomize: what a kustomization refers to, whether those files are there, and which
//! objects an overlay renders, so that two of them claiming one identity are caught where
//! `kustomize build` would refuse them ("may not add resource with an already registered
//! id"), and nowhere else.
//!
//! The rendering models what changes an object's identity: bases and components followed
//! to any depth, `$patch: delete`, `namespace:` (which also renames a `Namespace`),
//! `namePrefix:` and `nameSuffix:`. A kustomization using what is not modelled (transformer
//! plugins, replacements, a JSON patch on a name) makes its overlay opaque: not judged,
//! rather than judged wrong.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::Repo;
use super::checkout::{Checkout, Place};
use super::document::Node;
use super::object::{Object, ObjectId};
use crate::pipeline::Diagnostic;

/// File names Kustomize reads as a kustomization, in the order it looks for them.
pub(super) const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Deepest chain of bases followed when rendering an overlay.
const MAX_DEPTH: usize = 64;
/// Most objects one kustomization may render before its clashes are no longer judged: far
/// above real overlays (thousands), far below what bases repeating bases can make.
const MAX_RENDERED_OBJECTS: usize = 50_000;

/// Kinds Kustomize's `namePrefix`/`nameSuffix` leave alone.
const UNPREFIXED_KINDS: &[&str] = &["CustomResourceDefinition", "APIService", "Namespace"];

/// A kustomization shared by the overlays that use it.
pub(super) type Shared = Rc<Kustomization>;

/// What a kustomization uses a file for. Only resources and components hold objects; the
/// other inputs are read by Kustomize and never sent to a cluster as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Use {
    Resource,
    Component,
    /// A strategic-merge or JSON 6902 patch: it names an object of a base on purpose.
    Patch,
    /// A `configMapGenerator`/`secretGenerator` file or env file: data, whatever its shape.
    GeneratorInput,
    /// A `transformers`/`generators`/`validators` plugin config.
    PluginConfig,
    /// `configurations`, `crds`, `openapi`, `replacements` files: Kustomize's own settings.
    Setting,
}

impl Use {
    pub fn holds_objects(self) -> bool {
        matches!(self, Use::Resource | Use::Component)
    }
}

/// One path a kustomization names, where it names it.
#[derive(Debug)]
pub(super) struct Reference {
    pub target: String,
    pub line: u64,
    pub column: u64,
    pub used_as: Use,
}

/// Where a path named in a kustomization leads.
pub(super) enum Target {
    /// A remote base (a git URL or an HTTP file): not checked.
    Remote,
    /// `..` climbs above the repository root.
    Outside,
    Local(String),
}

/// A kustomization as far as the checks model it: the files it names, and what changes
/// which objects it renders or what they are called.
#[derive(Debug)]
pub(super) struct Kustomization {
    pub file: String,
    pub dir: String,
    pub references: Vec<Reference>,
    /// `kind: Component`: it may only be used under `components:`, and only it may.
    pub is_component: bool,
    namespace: Option<String>,
    name_prefix: String,
    name_suffix: String,
    /// Objects its patches remove (`$patch: delete`).
    deletes: Vec<Selector>,
    /// Why what it renders cannot be known without running Kustomize, if so.
    opaque: Option<&'static str>,
}

/// The objects a delete patch names; an unset field matches any value. Like Kustomize's, it
/// matches an object by its identity now or as written.
#[derive(Debug, Default)]
struct Selector {
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

impl Selector {
    fn matches(&self, object: &Object) -> bool {
        self.matches_id(&object.id) || self.matches_id(&object.written)
    }

    fn matches_id(&self, id: &ObjectId) -> bool {
        self.kind.as_ref().is_none_or(|kind| *kind == id.kind)
            && self.name.as_ref().is_none_or(|name| *name == id.name)
            && self.namespace.as_ref().is_none_or(|namespace| {
                // Kustomize's way: none is `default`, and a cluster-scoped object has none.
                let namespace = if namespace == "default" {
                    ""
                } else {
                    namespace
                };
                id.is_cluster_scoped() || namespace == id.in_kustomize_terms().namespace()
            })
    }
}

impl Kustomization {
    /// Reads a kustomization file; entries of an unexpected shape are skipped (Kustomize
    /// itself reports those). `read` gives the text of a repo file: its patch files.
    pub fn from_documents(
        file: &str,
        documents: &[Node],
        read: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let mut kustomization = Kustomization {
            file: file.to_owned(),
            dir: parent(file).to_owned(),
            references: Vec::new(),
            is_component: false,
            namespace: None,
            name_prefix: String::new(),
            name_suffix: String::new(),
            deletes: Vec::new(),
            opaque: None,
        };
        let Some(root) = documents.iter().find(|d| d.is_mapping()) else {
            return kustomization;
        };
        let string = |key: &str| {
            root.get(key)
                .and_then(Node::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        kustomization.is_component = string("kind").as_deref() == Some("Component");
        kustomization.namespace = string("namespace");
        kustomization.name_prefix = string("namePrefix").unwrap_or_default();
        kustomization.name_suffix = string("nameSuffix").unwrap_or_default();
        kustomization.read_references(root);
        if !items(root, "transformers").is_empty() {
            kustomization.opaque = Some("it runs transformer plugins");
        }
        if !items(root, "replacements").is_empty() {
            kustomization.opaque = Some("it has replacements");
        }
        for key in ["patches", "patchesStrategicMerge", "patchesJson6902"] {
            for entry in items(root, key) {
                let (text, target) = match entry.as_str() {
                    // `patchesStrategicMerge` lists inline patches and paths alike.
                    Some(inline) if inline.contains('\n') => (Some(inline.to_owned()), None),
                    Some(path) => (kustomization.read_local(path, read), None),
                    None => {
                        let text = match (entry.get("patch"), entry.get("path")) {
                            (Some(inline), _) => inline.as_str().map(str::to_owned),
                            (None, Some(path)) => path
                                .as_str()
                                .and_then(|path| kustomization.read_local(path, read)),
                            (None, None) => None,
                        };
                        (text, entry.get("target"))
                    }
                };
                if let Some(text) = text {
                    kustomization.read_patch(&text, target);
                }
            }
        }
        kustomization
    }

    fn read_references(&mut self, root: &Node) {
        let mut add = |node: &Node, target: &str, used_as: Use| {
            // An inline patch or plugin config is YAML text, not a path.
            if !target.is_empty() && !target.contains('\n') {
                self.references.push(Reference {
                    target: target.to_owned(),
                    line: node.line,
                    column: node.column,
                    used_as,
                });
            }
        };
        let strings = |key: &str| {
            items(root, key)
                .iter()
                .filter_map(|item| item.as_str().map(|text| (item, text)))
        };
        for key in ["resources", "bases"] {
            strings(key).for_each(|(node, text)| add(node, text, Use::Resource));
        }
        strings("components").for_each(|(node, text)| add(node, text, Use::Component));
        strings("patchesStrategicMerge").for_each(|(node, text)| add(node, text, Use::Patch));
        for key in ["transformers", "generators", "validators"] {
            strings(key).for_each(|(node, text)| add(node, text, Use::PluginConfig));
        }
        for key in ["configurations", "crds"] {
            strings(key).for_each(|(node, text)| add(node, text, Use::Setting));
        }
        // Lists of mappings whose `path` names a file.
        for (key, used_as) in [
            ("patches", Use::Patch),
            ("patchesJson6902", Use::Patch),
            ("replacements", Use::Setting),
        ] {
            for item in items(root, key) {
                if let Some(path) = item.get("path")
                    && let Some(text) = path.as_str()
                {
                    add(path, text, used_as);
                }
            }
        }
        if let Some(path) = root.get("openapi").and_then(|o| o.get("path"))
            && let Some(text) = path.as_str()
        {
            add(path, text, Use::Setting);
        }
        for key in ["configMapGenerator", "secretGenerator"] {
            for generator in items(root, key) {
                for field in ["files", "envs"] {
                    for item in items(generator, field) {
                        if let Some(text) = item.as_str() {
                            // `key=path` names the key the file's content is stored under.
                            let path = text.split_once('=').map_or(text, |(_, path)| path);
                            add(item, path, Use::GeneratorInput);
                        }
                    }
                }
                if let Some(env) = generator.get("env")
                    && let Some(text) = env.as_str()
                {
                    add(env, text, Use::GeneratorInput);
                }
            }
        }
    }

    /// Learns what one patch does to identities: a strategic-merge `$patch: delete` removes
    /// objects; a JSON patch on a name, a selector by label or pattern, or a targeted patch
    /// carrying another name makes the overlay opaque.
    fn read_patch(&mut self, text: &str, target: Option<&Node>) {
        let Ok(documents) = super::parse::<Node>(text) else {
            return;
        };
        let field = |node: Option<&Node>, key: &str| {
            node.and_then(|n| n.get(key))
                .and_then(Node::as_str)
                .map(str::to_owned)
        };
        for document in &documents {
            for op in document.items() {
                let path = op.get("path").and_then(Node::as_str).unwrap_or_default();
                let identity = [
                    "/metadata/name",
                    "/metadata/namespace",
                    "/kind",
                    "/apiVersion",
                ];
                if path == "/metadata" || identity.iter().any(|field| path.starts_with(field)) {
                    self.opaque = Some("a JSON patch changes an object's name");
                }
            }
            if !document.is_mapping() {
                continue;
            }
            let metadata = document.get("metadata");
            let patch_name = field(metadata, "name");
            let selector = match target {
                Some(target) => {
                    let name = field(Some(target), "name");
                    let by_label = ["labelSelector", "annotationSelector"]
                        .iter()
                        .any(|key| target.get(key).is_some());
                    let by_pattern = name
                        .as_deref()
                        .is_some_and(|n| n.contains(|c: char| "*+?[](){}|^$\\".contains(c)));
                    if by_label || by_pattern {
                        self.opaque = Some("a patch selects its targets by label or pattern");
                    }
                    if patch_name.is_some() && patch_name != name {
                        self.opaque = Some("a targeted patch carries another name");
                    }
                    Selector {
                        kind: field(Some(target), "kind"),
                        name,
                        namespace: field(Some(target), "namespace"),
                    }
                }
                None => Selector {
                    kind: field(Some(document), "kind"),
                    name: patch_name,
                    namespace: field(metadata, "namespace"),
                },
            };
            if document.get("$patch").and_then(Node::as_str) == Some("delete") {
                self.deletes.push(selector);
            }
        }
    }

    fn read_local(&self, path: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        match self.resolve_text(path) {
            Target::Local(path) => read(&path),
            Target::Remote | Target::Outside => None,
        }
    }

    pub fn resolve(&self, reference: &Reference) -> Target {
        self.resolve_text(&reference.target)
    }

    fn resolve_text(&self, target: &str) -> Target {
        let remote = target.contains("://")
            || target.starts_with("git@")
            || target.starts_with("git::")
            || target.contains("?ref=")
            || ["github.com/", "gitlab.com/", "bitbucket.org/"]
                .iter()
                .any(|host| target.starts_with(host));
        if remote {
            return Target::Remote;
        }
        match normalise(&Path::new(&self.dir).join(target)) {
            Some(path) => Target::Local(path.to_string_lossy().replace('\\', "/")),
            None => Target::Outside,
        }
    }

    /// Every local path it names must exist, and a resource or component directory must hold
    /// a kustomization: `kustomize build` stops at the first that does not.
    ///
    /// A kustomization in a Helm chart's folder post-renders the chart (Argo CD's
    /// kustomized-helm plugin runs `helm template . > all.yaml` first): a resource missing
    /// there is the chart's output, not a mistake.
    pub fn check_references(&self, checkout: &Checkout, in_chart: bool) -> Vec<Diagnostic> {
        let mut findings = Vec::new();
        for reference in &self.references {
            let at = |message: String| {
                Diagnostic::new(&self.file, reference.line, reference.column, message)
            };
            let target = &reference.target;
            let resolved = match self.resolve(reference) {
                Target::Remote => continue,
                Target::Outside => {
                    findings.push(at(format!("`{target}` points outside the repository")));
                    continue;
                }
                Target::Local(resolved) => resolved,
            };
            match checkout.locate(&resolved) {
                Place::Outside => {
                    findings.push(at(format!(
                        "`{target}` points outside the repository (through a symbolic link)"
                    )));
                }
                Place::Missing if in_chart && reference.used_as == Use::Resource => {}
                Place::Missing => findings.push(at(format!(
                    "`{target}` does not exist (looked for {resolved})"
                ))),
                Place::Dir
                    if reference.used_as.holds_objects()
                        && !KUSTOMIZATION_FILES
                            .iter()
                            .any(|name| checkout.locate(&join(&resolved, name)) == Place::File) =>
                {
                    findings.push(at(format!(
                        "`{target}` is a directory without a kustomization.yaml"
                    )));
                }
                Place::Special => findings.push(at(format!("`{target}` is not a regular file"))),
                Place::File | Place::Dir => {}
            }
        }
        findings
    }

    /// Applies this kustomization's own transformers, in Kustomize's order (patches, then
    /// namespace, then prefix and suffix), to the objects it has gathered.
    fn transform(&self, objects: &mut Vec<Object>) {
        objects.retain(|object| !self.deletes.iter().any(|d| d.matches(object)));
        for object in objects.iter_mut() {
            let id = &mut object.id;
            if let Some(namespace) = &self.namespace {
                if id.kind == "Namespace" && id.api_version == "v1" {
                    id.name.clone_from(namespace);
                }
                id.set_namespace(namespace);
            }
            if !UNPREFIXED_KINDS.contains(&id.kind.as_str()) {
                id.name = format!("{}{}{}", self.name_prefix, id.name, self.name_suffix);
            }
        }
    }
}

fn items<'n>(node: &'n Node, key: &str) -> &'n [Node] {
    node.get(key).map(Node::items).unwrap_or_default()
}

/// `name` in the folder `dir` (`""` is the root), `/`-separated.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The folder part of a `/`-separated relative path (`""` at the root).
pub(super) fn parent(relative: &str) -> &str {
    relative.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Resolves `..` without touching the disk; `None` when it climbs above the root.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// The clashes of the overlays, where `kustomize build` stops: two documents rendered under
/// one identity, or one document brought in twice (two bases sharing a third). Like
/// Kustomize, each level is judged as it gathers its resources and again once its own
/// transformers have run (a `namespace:` can make two objects one). Objects that passed
/// through an opaque kustomization are not judged after it. Each kustomization is rendered
/// once, however many overlays use it.
pub(super) fn clashes_in_overlays(repo: &mut Repo, overlays: &[Shared]) -> Vec<Diagnostic> {
    let mut rendering = Rendering::default();
    for overlay in overlays {
        rendering.render(repo, overlay);
    }
    rendering.clashes
}

impl Kustomization {
    /// The finding for one document its entries bring in twice, at the entry that brings it
    /// the second time.
    fn brought_twice(&self, first: &Object, again: &Object) -> Diagnostic {
        let entry = &self.references[again.via];
        let what = format!(
            "{} `{}` ({}:{}:{})",
            again.id.kind, again.written.name, again.at.file, again.at.line, again.at.column
        );
        let message = if first.via == again.via {
            format!("`{}` brings {what} twice", entry.target)
        } else {
            let earlier = &self.references[first.via].target;
            format!("`{}` brings {what} again, after `{earlier}`", entry.target)
        };
        Diagnostic::new(
            &self.file,
            entry.line,
            entry.column,
            format!("{message}; Kustomize refuses an object it already has"),
        )
    }
}

#[derive(Default)]
struct Rendering {
    /// Folders of the kustomizations being rendered, to stop at a cycle.
    visiting: Vec<String>,
    /// By kustomization file.
    done: HashMap<String, Rc<Rendered>>,
    clashes: Vec<Diagnostic>,
}

/// What one kustomization renders, and whether Gantry can vouch for it.
struct Rendered {
    objects: Vec<Object>,
    /// It, or a kustomization below it, does what is not modelled.
    opaque: bool,
}

impl Rendering {
    /// The objects `kustomization` renders, its own transformers applied.
    fn render(&mut self, repo: &mut Repo, kustomization: &Kustomization) -> Rc<Rendered> {
        if let Some(done) = self.done.get(&kustomization.file) {
            return done.clone();
        }
        let mut objects = Vec::new();
        let inputs_opaque = self.gather(repo, kustomization, &mut objects);
        if !inputs_opaque {
            self.judge(kustomization, &objects);
        }
        kustomization.transform(&mut objects);
        let opaque = inputs_opaque || kustomization.opaque.is_some();
        if !opaque {
            self.judge(kustomization, &objects);
        }
        let rendered = Rc::new(Rendered { objects, opaque });
        self.done
            .insert(kustomization.file.clone(), rendered.clone());
        rendered
    }

    /// Adds what `kustomization` brings before its own transformers run: each resource (a
    /// base rendered in its own right), then each component, whose transformers act, as
    /// Kustomize's do, on everything gathered so far. Each object is marked with the entry
    /// that brought it. Says whether any of it came through an opaque kustomization.
    fn gather(
        &mut self,
        repo: &mut Repo,
        kustomization: &Kustomization,
        objects: &mut Vec<Object>,
    ) -> bool {
        if self.visiting.len() >= MAX_DEPTH || self.visiting.contains(&kustomization.dir) {
            return false;
        }
        self.visiting.push(kustomization.dir.clone());
        let mut opaque = false;
        for used_as in [Use::Resource, Use::Component] {
            for (index, reference) in kustomization.references.iter().enumerate() {
                if reference.used_as != used_as {
                    continue;
                }
                let Target::Local(path) = kustomization.resolve(reference) else {
                    continue;
                };
                let base = repo.kustomization_in(&path);
                let mut added = match &base {
                    Some(component) if used_as == Use::Component => {
                        let mut added = Vec::new();
                        opaque |= self.gather(repo, component, &mut added);
                        opaque |= component.opaque.is_some();
                        added
                    }
                    Some(base) => {
                        let rendered = self.render(repo, base);
                        opaque |= rendered.opaque;
                        rendered.objects.clone()
                    }
                    None => repo.objects_in(&path).to_vec(),
                };
                added.iter_mut().for_each(|object| object.via = index);
                objects.append(&mut added);
                if objects.len() > MAX_RENDERED_OBJECTS {
                    objects.truncate(MAX_RENDERED_OBJECTS);
                    self.clashes.push(Diagnostic::new(
                        &kustomization.file,
                        reference.line,
                        reference.column,
                        format!(
                            "the overlay renders more than {MAX_RENDERED_OBJECTS} objects here; \
                             its duplicates are not judged"
                        ),
                    ));
                    self.visiting.pop();
                    return true;
                }
                if let Some(component) = base.filter(|_| used_as == Use::Component) {
                    if !opaque {
                        self.judge(kustomization, objects);
                    }
                    component.transform(objects);
                }
            }
        }
        self.visiting.pop();
        opaque
    }

    /// Records the clashes among the objects `kustomization` holds at this step.
    fn judge(&mut self, kustomization: &Kustomization, objects: &[Object]) {
        let mut first_of: HashMap<ObjectId, &Object> = HashMap::new();
        let context = format!(" (both rendered by {})", kustomization.file);
        for object in objects {
            match first_of.get(&object.id.in_kustomize_terms()) {
                Some(first) if !first.is_same_document(object) => {
                    self.clashes.push(object.clash_with(first, &context));
                }
                Some(first) => self
                    .clashes
                    .push(kustomization.brought_twice(first, object)),
                None => {
                    first_of.insert(object.id.in_kustomize_terms(), object);
                }
            }
        }
    }
}
