//! Putting a new image into a config file without touching anything else.
//!
//! The file is parsed only to find where the values are; the edit itself replaces the bytes
//! of those values (keeping their quoting), so comments, blank lines, key order, CRLF line
//! ends and a BOM survive. Afterwards the file is parsed again and compared with the old one:
//! if anything but the intended values differs, or the file no longer parses, the edit is
//! refused. Values behind an anchor or alias are refused too, since changing them would
//! change other places of the file.
//!
//! What is recognised, per YAML document:
//! - a Kustomize `images:` entry whose `newName` (or, without one, `name`) is the image, or
//!   whose `name` is the stage's `key`: its `newTag` / `digest` (and `newName` when the entry
//!   is picked by `key`);
//! - a container `image:` of a Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
//!   CronJob;
//! - Helm values (a document without `kind`, or a Flux HelmRelease's `spec.values`): a
//!   mapping whose `repository` (with `registry`, if any) is the image gets its `tag` /
//!   `digest`; an `image: repo:tag` string is replaced whole; with a `key` (`web.image.tag`,
//!   or `web.image` for the mapping) only that place is edited;
//! - any scalar with a `# gantry:image NAME` comment on its line (the whole reference), or
//!   `# gantry:image NAME:tag` / `NAME:digest` (only that part).

pub mod reference;
mod tree;

use std::ops::Range;

use granit_parser::ScalarStyle;
use serde_json::Value;

use crate::domain::ValueChange;
pub use reference::{ImageRef, ReferenceError};
use tree::{Map, Node, Parsed, Scalar};

/// Largest file the editor reads: config files are small; this bounds a mistake.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// What to write: the image, and its tag and/or digest (both: `tag@digest` pinning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    pub image: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// A Helm key path (`web.image.tag`) or a Kustomize entry `name` to edit.
    pub key: Option<String>,
}

/// The edited file; `changes` is empty when every value was already in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    pub changes: Vec<ValueChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{line}:{column}: the file does not parse: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error(
        "no reference to `{0}` found (looked for Kustomize images, container images, Helm \
         values and `# gantry:image` markers)"
    )]
    NotFound(String),
    #[error("key `{0}` is not in the file")]
    KeyNotFound(String),
    #[error("{line}:{column}: {message}")]
    Refused {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the edit would change more than the image's values; nothing written")]
    Unintended,
}

/// Writes `new` into every place of `text` that refers to its image.
pub fn apply(text: &str, new: &NewImage) -> Result<Edited, EditError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(EditError::TooLarge);
    }
    let parsed = tree::parse(text).map_err(|failure| EditError::Parse {
        line: failure.line,
        column: failure.column,
        message: failure.message,
    })?;
    let mut finder = Finder {
        text,
        new,
        parsed: &parsed,
        targets: Vec::new(),
        document: 0,
    };
    finder.markers()?;
    for (index, document) in parsed.documents.iter().enumerate() {
        finder.document = index;
        finder.document(document)?;
    }
    if finder.targets.is_empty() {
        return Err(match &new.key {
            Some(key) if finder.key_used() => EditError::KeyNotFound(key.clone()),
            _ => EditError::NotFound(new.image.clone()),
        });
    }
    let targets = finder.targets;
    write(text, &parsed, targets)
}

/// One place to write.
#[derive(Debug)]
struct Target {
    document: usize,
    /// The path of the value (for an insert: of the new key).
    path: Vec<Segment>,
    kind: TargetKind,
    new: String,
}

#[derive(Debug)]
enum TargetKind {
    Replace {
        range: Range<usize>,
        style: ScalarStyle,
        old: String,
    },
    /// A key the mapping lacks, added as a new line after the mapping's last entry.
    Insert { after: usize, indent: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn place(path: &[Segment]) -> String {
    let mut text = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if text.is_empty() => text.push_str(key),
            Segment::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Segment::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// Kinds whose pod template holds containers, and where.
const WORKLOADS: &[(&str, &[&str])] = &[
    ("Pod", &["spec"]),
    ("Deployment", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    (
        "CronJob",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
];

/// The marker comment that names the image a line's value belongs to.
const MARKER: &str = "gantry:image";

struct Finder<'a> {
    text: &'a str,
    new: &'a NewImage,
    parsed: &'a Parsed,
    targets: Vec<Target>,
    document: usize,
}

impl Finder<'_> {
    fn key_used(&self) -> bool {
        self.new.key.is_some()
    }

    /// The whole reference: `image:tag`, `image@digest` or `image:tag@digest`.
    fn reference(&self) -> String {
        let mut reference = self.new.image.clone();
        if let Some(tag) = &self.new.tag {
            reference.push(':');
            reference.push_str(tag);
        }
        if let Some(digest) = &self.new.digest {
            reference.push('@');
            reference.push_str(digest);
        }
        reference
    }

    /// What a lone tag field holds: the tag, the digest, or `tag@digest` when both are
    /// pinned and there is no separate digest field.
    fn tag_field(&self) -> String {
        match (&self.new.tag, &self.new.digest) {
            (Some(tag), Some(digest)) => format!("{tag}@{digest}"),
            (Some(tag), None) => tag.clone(),
            (None, Some(digest)) => digest.clone(),
            (None, None) => String::new(),
        }
    }

    fn same_image(&self, name: &str) -> bool {
        reference::same_repository(name, &self.new.image)
    }

    fn document(&mut self, root: &Node) -> Result<(), EditError> {
        let kind = root.get("kind").and_then(Node::as_str);
        if kind.is_none() || kind == Some("Kustomization") {
            self.kustomize(root)?;
        }
        if let Some((_, spec_path)) = WORKLOADS.iter().find(|(k, _)| Some(*k) == kind) {
            self.workload(root, spec_path)?;
        }
        match kind {
            None => self.helm_values(root, Vec::new())?,
            Some("HelmRelease") => {
                if let Some(values) = root.get("spec").and_then(|spec| spec.get("values")) {
                    self.helm_values(values, vec![key("spec"), key("values")])?;
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn kustomize(&mut self, root: &Node) -> Result<(), EditError> {
        let Some(Node::Seq(images)) = root.get("images") else {
            return Ok(());
        };
        for (index, entry) in images.items.iter().enumerate() {
            let Node::Map(entry) = entry else { continue };
            let name = entry.get("name").and_then(Node::as_str);
            let new_name = entry.get("newName").and_then(Node::as_str);
            let by_key = self.new.key.is_some() && name == self.new.key.as_deref();
            let by_image = match new_name {
                Some(new_name) => self.same_image(new_name),
                None => name.is_some_and(|name| self.same_image(name)),
            };
            if !by_key && !by_image {
                continue;
            }
            let path = vec![key("images"), Segment::Index(index)];
            if by_key && new_name.is_none_or(|n| n != self.new.image) {
                self.set(entry, &path, "newName", self.new.image.clone())?;
            }
            if let Some(tag) = &self.new.tag {
                if self.new.digest.is_none()
                    && let Some(Node::Scalar(digest)) = entry.get("digest")
                {
                    return Err(self.refused(
                        &digest.range,
                        "this Kustomize entry pins a digest, which would keep the old image \
                         whatever the tag; pin the digest too (`pin: tag@digest`) or remove \
                         the `digest` line",
                    ));
                }
                self.set(entry, &path, "newTag", tag.clone())?;
            }
            if let Some(digest) = &self.new.digest {
                self.set(entry, &path, "digest", digest.clone())?;
            }
        }
        Ok(())
    }

    fn workload(&mut self, root: &Node, spec_path: &[&str]) -> Result<(), EditError> {
        let mut spec = root;
        let mut path = Vec::new();
        for step in spec_path {
            let Some(next) = spec.get(step) else {
                return Ok(());
            };
            spec = next;
            path.push(key(step));
        }
        for list in ["initContainers", "containers"] {
            let Some(Node::Seq(containers)) = spec.get(list) else {
                continue;
            };
            for (index, container) in containers.items.iter().enumerate() {
                let Node::Map(container) = container else {
                    continue;
                };
                let mut path = path.clone();
                path.extend([key(list), Segment::Index(index)]);
                self.image_string(container, &path)?;
            }
        }
        Ok(())
    }

    /// An `image: repo:tag` entry of `map`, replaced whole when it names the image.
    fn image_string(&mut self, map: &Map, path: &[Segment]) -> Result<(), EditError> {
        match map.get("image") {
            Some(Node::Scalar(scalar)) => {
                let Ok(current) = ImageRef::parse(&scalar.value) else {
                    return Ok(());
                };
                if self.same_image(&current.name) {
                    let mut path = path.to_vec();
                    path.push(key("image"));
                    self.replace(scalar, path, self.reference())?;
                }
                Ok(())
            }
            Some(Node::Alias { range }) => Err(self.alias(range)),
            _ => Ok(()),
        }
    }

    fn helm_values(&mut self, values: &Node, base: Vec<Segment>) -> Result<(), EditError> {
        let Some(key_path) = self.new.key.clone() else {
            return self.helm_search(values, base);
        };
        // A key path given: only that place, and it must be there.
        let mut node = values;
        let mut path = base;
        for step in key_path.split('.') {
            match node.get(step) {
                Some(Node::Alias { range }) => return Err(self.alias(range)),
                Some(next) => node = next,
                None => return Ok(()),
            }
            path.push(key(step));
        }
        match node {
            Node::Scalar(scalar) => self.replace(scalar, path, self.tag_field()),
            Node::Map(map) => {
                if let Some(Node::Scalar(repository)) = map.get("repository")
                    && !self.same_image(&full_repository(map, &repository.value))
                {
                    let mut repository_path = path.clone();
                    repository_path.push(key("repository"));
                    self.replace(repository, repository_path, self.new.image.clone())?;
                }
                self.image_fields(map, &path)
            }
            _ => Ok(()),
        }
    }

    /// Every mapping under `node` whose `repository` is the image, and every `image:` string
    /// naming it.
    fn helm_search(&mut self, node: &Node, path: Vec<Segment>) -> Result<(), EditError> {
        match node {
            Node::Map(map) => {
                if let Some(Node::Scalar(repository)) = map.get("repository")
                    && self.same_image(&full_repository(map, &repository.value))
                {
                    return self.image_fields(map, &path);
                }
                self.image_string(map, &path)?;
                for (name, value) in &map.entries {
                    let Some(name) = name.as_str() else { continue };
                    if name == "image" && matches!(value, Node::Scalar(_)) {
                        continue;
                    }
                    let mut path = path.clone();
                    path.push(key(name));
                    self.helm_search(value, path)?;
                }
                Ok(())
            }
            Node::Seq(seq) => {
                for (index, item) in seq.items.iter().enumerate() {
                    let mut path = path.clone();
                    path.push(Segment::Index(index));
                    self.helm_search(item, path)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `tag` and `digest` of a Helm image mapping (`repository`, `tag`, maybe `digest`).
    fn image_fields(&mut self, map: &Map, path: &[Segment]) -> Result<(), EditError> {
        let has_digest_field = map.get("digest").is_some();
        match (&self.new.tag, &self.new.digest) {
            (Some(tag), Some(digest)) if has_digest_field => {
                self.set(map, path, "tag", tag.clone())?;
                self.set(map, path, "digest", digest.clone())
            }
            (Some(_), _) => self.set(map, path, "tag", self.tag_field()),
            (None, Some(digest)) if has_digest_field => {
                self.set(map, path, "digest", digest.clone())
            }
            (None, Some(_)) => Err(EditError::Refused {
                line: 0,
                column: 0,
                message: format!(
                    "the Helm values at `{}` have no `digest` key to pin the digest in; \
                     pin a tag, or add `digest:`",
                    place(path)
                ),
            }),
            (None, None) => Ok(()),
        }
    }

    /// Every scalar with a `# gantry:image NAME` comment on its line.
    fn markers(&mut self) -> Result<(), EditError> {
        let mut scalars = Vec::new();
        for (index, document) in self.parsed.documents.iter().enumerate() {
            collect_values(document, index, &mut Vec::new(), &mut scalars);
        }
        for comment in &self.parsed.comments {
            let Some(named) = comment.text.trim().strip_prefix(MARKER) else {
                continue;
            };
            let named = named.split_whitespace().next().unwrap_or_default();
            let (name, part) = if let Some(name) = named.strip_suffix(":tag") {
                (name, Part::Tag)
            } else if let Some(name) = named.strip_suffix(":digest") {
                (name, Part::Digest)
            } else {
                (named, Part::Reference)
            };
            if !self.same_image(name) {
                continue;
            }
            // The value that ends last before the comment, on the same line.
            let Some((document, path, scalar)) = scalars
                .iter()
                .filter(|(_, _, s)| s.range.end <= comment.start)
                .max_by_key(|(_, _, s)| s.range.end)
                .filter(|(_, _, s)| !self.text[s.range.end..comment.start].contains('\n'))
            else {
                continue;
            };
            let new = match part {
                Part::Reference => self.reference(),
                Part::Tag => match &self.new.tag {
                    Some(tag) => tag.clone(),
                    None => continue,
                },
                Part::Digest => match &self.new.digest {
                    Some(digest) => digest.clone(),
                    None => continue,
                },
            };
            self.document = *document;
            self.replace(scalar, path.clone(), new)?;
        }
        Ok(())
    }

    /// Sets `name` of `map` to `new`, adding the key when the block mapping lacks it.
    fn set(
        &mut self,
        map: &Map,
        path: &[Segment],
        name: &str,
        new: String,
    ) -> Result<(), EditError> {
        let mut value_path = path.to_vec();
        value_path.push(key(name));
        match map.get(name) {
            Some(Node::Scalar(scalar)) => self.replace(scalar, value_path, new),
            Some(Node::Alias { range }) => Err(self.alias(range)),
            Some(_) => Err(EditError::Refused {
                line: 0,
                column: 0,
                message: format!("`{}` is not a single value", place(&value_path)),
            }),
            None => {
                let Some((first_key, _)) = map.entries.first() else {
                    return Ok(());
                };
                let (Node::Scalar(first_key), false) = (first_key, map.flow) else {
                    return Err(self.refused_at(
                        map,
                        &format!("cannot add `{name}` to a flow mapping; add it by hand once"),
                    ));
                };
                if map.entries.iter().any(|(k, _)| k.as_str() == Some("<<")) {
                    return Err(self.refused(
                        &first_key.range,
                        "this mapping merges another (`<<`); Gantry does not edit merged values",
                    ));
                }
                let line_start = self.text[..first_key.range.start]
                    .rfind('\n')
                    .map_or(0, |i| i + 1);
                let indent = first_key.range.start - line_start;
                let last_end = map
                    .entries
                    .iter()
                    .map(|(_, value)| end_of(value))
                    .max()
                    .unwrap_or(first_key.range.end);
                self.targets.push(Target {
                    document: self.document,
                    path: value_path,
                    kind: TargetKind::Insert {
                        after: last_end,
                        indent,
                    },
                    new,
                });
                Ok(())
            }
        }
    }

    fn replace(
        &mut self,
        scalar: &Scalar,
        path: Vec<Segment>,
        new: String,
    ) -> Result<(), EditError> {
        if let Some(existing) = self.targets.iter().find(
            |t| matches!(&t.kind, TargetKind::Replace { range, .. } if *range == scalar.range),
        ) {
            if existing.new == new {
                return Ok(());
            }
            return Err(self.refused(
                &scalar.range,
                "two rules want different values here; name the place with `key`",
            ));
        }
        if scalar.anchor != 0 || self.behind_anchor(&path) {
            return Err(self.refused(
                &scalar.range,
                "the value sits behind a YAML anchor, so changing it would change every \
                 place that uses the anchor; edit it by hand or remove the anchor",
            ));
        }
        if matches!(scalar.style, ScalarStyle::Literal | ScalarStyle::Folded) {
            return Err(self.refused(
                &scalar.range,
                "the value is a block scalar (`|` or `>`); write it on one line",
            ));
        }
        self.targets.push(Target {
            document: self.document,
            path,
            kind: TargetKind::Replace {
                range: scalar.range.clone(),
                style: scalar.style,
                old: scalar.value.clone(),
            },
            new,
        });
        Ok(())
    }

    /// Whether a collection on the way to `path` carries an anchor some alias uses.
    fn behind_anchor(&self, path: &[Segment]) -> bool {
        let mut node = &self.parsed.documents[self.document];
        for segment in path {
            if node.anchor() != 0 && self.parsed.aliased.contains(&node.anchor()) {
                return true;
            }
            node = match (segment, node) {
                (Segment::Key(name), Node::Map(map)) => match map.get(name) {
                    Some(next) => next,
                    None => return false,
                },
                (Segment::Index(index), Node::Seq(seq)) => match seq.items.get(*index) {
                    Some(next) => next,
                    None => return false,
                },
                _ => return false,
            };
        }
        false
    }

    fn alias(&self, range: &Range<usize>) -> EditError {
        self.refused(
            range,
            "the value is an alias (`*name`) of a value elsewhere; edit the anchor by hand",
        )
    }

    fn refused(&self, range: &Range<usize>, message: &str) -> EditError {
        let (line, column) = line_column(self.text, range.start);
        EditError::Refused {
            line,
            column,
            message: message.to_owned(),
        }
    }

    fn refused_at(&self, map: &Map, message: &str) -> EditError {
        let start = map
            .entries
            .first()
            .map_or(0..0, |(key, _)| start_range(key));
        self.refused(&start, message)
    }
}

enum Part {
    Reference,
    Tag,
    Digest,
}

fn key(name: &str) -> Segment {
    Segment::Key(name.to_owned())
}

/// `registry/repository` when the values split them, as Bitnami's charts do.
fn full_repository(map: &Map, repository: &str) -> String {
    match map.get("registry").and_then(Node::as_str) {
        Some(registry) if !registry.is_empty() => format!("{registry}/{repository}"),
        _ => repository.to_owned(),
    }
}

fn collect_values<'n>(
    node: &'n Node,
    document: usize,
    path: &mut Vec<Segment>,
    out: &mut Vec<(usize, Vec<Segment>, &'n Scalar)>,
) {
    match node {
        Node::Scalar(scalar) => out.push((document, path.clone(), scalar)),
        Node::Map(map) => {
            for (name, value) in &map.entries {
                if let Some(name) = name.as_str() {
                    path.push(key(name));
                    collect_values(value, document, path, out);
                    path.pop();
                }
            }
        }
        Node::Seq(seq) => {
            for (index, item) in seq.items.iter().enumerate() {
                path.push(Segment::Index(index));
                collect_values(item, document, path, out);
                path.pop();
            }
        }
        Node::Alias { .. } => {}
    }
}

/// Where a node's text ends (for scalars and aliases; a collection ends at its last child).
fn end_of(node: &Node) -> usize {
    match node {
        Node::Scalar(scalar) => scalar.range.end,
        Node::Alias { range } => range.end,
        Node::Map(map) => map
            .entries
            .iter()
            .map(|(k, v)| end_of(k).max(end_of(v)))
            .max()
            .unwrap_or(0),
        Node::Seq(seq) => seq.items.iter().map(end_of).max().unwrap_or(0),
    }
}

fn start_range(node: &Node) -> Range<usize> {
    match node {
        Node::Scalar(scalar) => scalar.range.clone(),
        Node::Alias { range } => range.clone(),
        _ => 0..0,
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Applies the targets from the end of the file backwards, then checks the result.
fn write(text: &str, parsed: &Parsed, mut targets: Vec<Target>) -> Result<Edited, EditError> {
    let line_end = if text.contains("\r\n") { "\r\n" } else { "\n" };
    targets.retain(|target| match &target.kind {
        TargetKind::Replace { old, .. } => *old != target.new,
        TargetKind::Insert { .. } => true,
    });
    targets.sort_by_key(|target| match &target.kind {
        TargetKind::Replace { range, .. } => range.start,
        TargetKind::Insert { after, .. } => *after,
    });
    let mut edited = text.to_owned();
    let mut changes = Vec::new();
    for target in targets.iter().rev() {
        match &target.kind {
            TargetKind::Replace { range, style, old } => {
                edited.replace_range(range.clone(), &written(&target.new, *style));
                changes.push(ValueChange {
                    line: line_column(text, range.start).0,
                    place: place(&target.path),
                    old: Some(old.clone()),
                    new: target.new.clone(),
                });
            }
            TargetKind::Insert { after, indent } => {
                let line_end_at = text[*after..].find('\n').map(|i| after + i + 1);
                let name = match target.path.last() {
                    Some(Segment::Key(name)) => name.as_str(),
                    _ => "",
                };
                let line = format!(
                    "{}{name}: {}",
                    " ".repeat(*indent),
                    written(&target.new, ScalarStyle::Plain)
                );
                let (at, inserted) = match line_end_at {
                    Some(at) => (at, format!("{line}{line_end}")),
                    None => (text.len(), format!("{line_end}{line}{line_end}")),
                };
                edited.insert_str(at, &inserted);
                changes.push(ValueChange {
                    line: line_column(text, at).0,
                    place: place(&target.path),
                    old: None,
                    new: target.new.clone(),
                });
            }
        }
    }
    changes.reverse();
    if !changes.is_empty() {
        verify(parsed, &edited, &targets)?;
    }
    Ok(Edited {
        text: edited,
        changes,
    })
}

/// Parses the edited text and checks it equals the old file with exactly the targets applied.
fn verify(before: &Parsed, edited: &str, targets: &[Target]) -> Result<(), EditError> {
    let after = tree::parse(edited).map_err(|failure| EditError::Parse {
        line: failure.line,
        column: failure.column,
        message: format!("after the edit: {}", failure.message),
    })?;
    let mut expected: Vec<Value> = before.documents.iter().map(Node::to_value).collect();
    for target in targets {
        let Some(document) = expected.get_mut(target.document) else {
            return Err(EditError::Unintended);
        };
        set_path(document, &target.path, &target.new).ok_or(EditError::Unintended)?;
    }
    let actual: Vec<Value> = after.documents.iter().map(Node::to_value).collect();
    if actual == expected {
        Ok(())
    } else {
        Err(EditError::Unintended)
    }
}

fn set_path(value: &mut Value, path: &[Segment], new: &str) -> Option<()> {
    let (last, parents) = path.split_last()?;
    let mut node = value;
    for segment in parents {
        node = match segment {
            Segment::Key(name) => node.get_mut(name)?,
            Segment::Index(index) => node.get_mut(*index)?,
        };
    }
    match last {
        Segment::Key(name) => {
            node.as_object_mut()?
                .insert(name.clone(), Value::String(new.to_owned()));
        }
        Segment::Index(index) => *node.get_mut(*index)? = Value::String(new.to_owned()),
    }
    Some(())
}

/// `value` in the scalar style the file used; a plain value that YAML would read as a
/// number, a boolean or null (`1.10`, `yes`) is double-quoted so it stays a string.
fn written(value: &str, style: ScalarStyle) -> String {
    match style {
        ScalarStyle::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        ScalarStyle::DoubleQuoted => {
            format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
        }
        _ if reference::plain_is_string(value) => value.to_owned(),
        _ => format!("\"{value}\""),
    }
}
