//! The `validate` stage: Gantry's own check of a config repo's manifests, run without a
//! container. It finds what breaks a GitOps sync before Argo CD or Flux does: YAML that does
//! not parse, duplicate keys (which most tools silently resolve to the last one), Kubernetes
//! documents without `apiVersion`, `kind` or `metadata.name`, two documents in one folder
//! claiming the same object, and Kustomize entries that point at nothing.
//!
//! Duplicate objects are looked for per folder, because that is Kustomize's unit: an
//! overlay's patch names the same object as its base on purpose.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Options, Spanned};

use crate::pipeline::{Diagnostic, Pattern};

/// Largest manifest file checked; bigger ones are reported, not read.
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;
/// Most files one stage checks: a bound on a `paths` glob gone wrong.
pub const MAX_FILES: usize = 50_000;
/// YAML limits for manifests: larger than for pipeline files (CRDs are big), still far from
/// what an alias bomb needs.
const MAX_DEPTH: usize = 128;
const MAX_ALIASES: usize = 1_000;
const MAX_EVENTS: usize = 2_000_000;

/// File names Kustomize reads as a kustomization.
const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// Kustomization keys whose entries are paths that must exist.
const KUSTOMIZE_PATH_KEYS: &[&str] = &["resources", "components", "bases"];
/// Kinds of Kustomize's own files.
const KUSTOMIZE_KINDS: &[&str] = &["Kustomization", "Component"];
/// Kinds that have no `metadata.name`.
const NAMELESS_KINDS: &[&str] = &["Kustomization", "Component", "List"];

#[derive(Debug, Default)]
pub struct Report {
    pub files_checked: usize,
    pub findings: Vec<Diagnostic>,
}

/// Checks every file under `root` whose path (relative, `/`-separated) matches a pattern.
pub fn check_tree(root: &Path, patterns: &[Pattern]) -> std::io::Result<Report> {
    let mut files = Vec::new();
    collect(root, root, patterns, &mut files)?;
    files.sort();
    let mut report = Report::default();
    let mut objects: HashMap<(PathBuf, String, String, String), Diagnostic> = HashMap::new();
    for relative in &files {
        if report.files_checked == MAX_FILES {
            report.findings.push(Diagnostic::new(
                relative,
                1,
                1,
                format!("more than {MAX_FILES} files match; narrow `validate.paths`"),
            ));
            break;
        }
        report.files_checked += 1;
        check_file(root, relative, &mut objects, &mut report.findings);
    }
    Ok(report)
}

fn collect(
    root: &Path,
    dir: &Path,
    patterns: &[Pattern],
    out: &mut Vec<String>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() && entry.file_name() != ".git" {
            collect(root, &path, patterns, out)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if patterns.iter().any(|pattern| pattern.matches(&relative)) {
                out.push(relative);
            }
        }
        // Symlinks are not followed: they could lead out of the checkout.
    }
    Ok(())
}

fn yaml_options() -> Options {
    crate::pipeline::strict_yaml_options(MAX_DEPTH, MAX_ALIASES, MAX_EVENTS)
}

fn check_file(
    root: &Path,
    relative: &str,
    objects: &mut HashMap<(PathBuf, String, String, String), Diagnostic>,
    findings: &mut Vec<Diagnostic>,
) {
    let path = root.join(relative);
    let at_start = |message: String| Diagnostic::new(relative, 1, 1, message);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.len() > MAX_MANIFEST_BYTES => {
            findings.push(at_start(format!(
                "file is {} bytes; manifests are checked up to {MAX_MANIFEST_BYTES}",
                meta.len()
            )));
            return;
        }
        Err(err) => {
            findings.push(at_start(format!("cannot read file: {err}")));
            return;
        }
        Ok(_) => {}
    }
    let text = match std::fs::read(&path).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => return findings.push(at_start("file is not UTF-8".into())),
        Err(err) => return findings.push(at_start(format!("cannot read file: {err}"))),
    };
    // First the whole file as plain YAML: syntax, duplicate keys at any depth, limits.
    if let Err(err) =
        serde_saphyr::from_multiple_with_options::<serde_json::Value>(&text, yaml_options())
    {
        findings.push(crate::pipeline::diagnostic_from_yaml_error(relative, &err));
        return;
    }
    let documents: Vec<Spanned<Head>> =
        match serde_saphyr::from_multiple_with_options(&text, yaml_options()) {
            Ok(documents) => documents,
            Err(err) => {
                findings.push(crate::pipeline::diagnostic_from_yaml_error(relative, &err));
                return;
            }
        };
    let file_name = relative.rsplit('/').next().unwrap_or(relative);
    let folder = Path::new(relative)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let is_kustomization_file = KUSTOMIZATION_FILES.contains(&file_name);
    for document in &documents {
        let head = &document.value;
        let at = |spanned_line: u64, spanned_col: u64, message: String| {
            Diagnostic::new(relative, spanned_line, spanned_col, message)
        };
        let doc_line = document.referenced.line();
        let doc_col = document.referenced.column();
        let kind_text = head
            .kind
            .as_ref()
            .and_then(|k| k.value.as_str().map(str::to_owned));
        let is_kustomization = is_kustomization_file
            || kind_text
                .as_deref()
                .is_some_and(|kind| KUSTOMIZE_KINDS.contains(&kind));
        if is_kustomization {
            check_kustomize_paths(root, relative, &folder, head, findings);
        }
        if !head.is_kubernetes() || is_kustomization_file {
            continue;
        }
        let api_ok = head
            .api_version
            .as_ref()
            .is_some_and(|v| v.value.as_str().is_some_and(|s| !s.is_empty()));
        if !api_ok {
            findings.push(match &head.api_version {
                Some(v) => at(
                    v.referenced.line(),
                    v.referenced.column(),
                    "`apiVersion` must be a non-empty string".into(),
                ),
                None => at(
                    doc_line,
                    doc_col,
                    "Kubernetes document has no `apiVersion`".into(),
                ),
            });
        }
        let Some(kind) = kind_text.filter(|k| !k.is_empty()) else {
            findings.push(match &head.kind {
                Some(k) => at(
                    k.referenced.line(),
                    k.referenced.column(),
                    "`kind` must be a non-empty string".into(),
                ),
                None => at(
                    doc_line,
                    doc_col,
                    "Kubernetes document has no `kind`".into(),
                ),
            });
            continue;
        };
        if NAMELESS_KINDS.contains(&kind.as_str()) {
            continue;
        }
        let name = head.metadata.as_ref().and_then(|m| m.value.name.as_ref());
        let Some(name) = name.filter(|n| n.value.as_str().is_some_and(|s| !s.is_empty())) else {
            let (line, col) = head.metadata.as_ref().map_or((doc_line, doc_col), |m| {
                (m.referenced.line(), m.referenced.column())
            });
            findings.push(at(line, col, format!("{kind} has no `metadata.name`")));
            continue;
        };
        let name_text = name.value.as_str().unwrap_or_default().to_owned();
        let namespace = head
            .metadata
            .as_ref()
            .and_then(|m| m.value.namespace.as_ref())
            .and_then(|n| n.value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let here = at(
            name.referenced.line(),
            name.referenced.column(),
            String::new(),
        );
        let key = (
            folder.clone(),
            kind.clone(),
            namespace.clone(),
            name_text.clone(),
        );
        if let Some(first) = objects.get(&key) {
            let scope = if namespace.is_empty() {
                String::new()
            } else {
                format!(" in namespace `{namespace}`")
            };
            findings.push(Diagnostic {
                message: format!(
                    "{kind} `{name_text}`{scope} is already defined at {}:{}:{}",
                    first.file, first.line, first.column
                ),
                ..here
            });
        } else {
            objects.insert(key, here);
        }
    }
}

fn check_kustomize_paths(
    root: &Path,
    relative: &str,
    folder: &Path,
    head: &Head,
    findings: &mut Vec<Diagnostic>,
) {
    for entry in &head.kustomize_paths {
        let target = &entry.value;
        let remote = target.contains("://")
            || target.starts_with("github.com/")
            || target.starts_with("git@")
            || target.contains("?ref=");
        if remote {
            continue;
        }
        let at = |message: String| {
            Diagnostic::new(
                relative,
                entry.referenced.line(),
                entry.referenced.column(),
                message,
            )
        };
        let Some(resolved) = normalise(&folder.join(target)) else {
            findings.push(at(format!("`{target}` points outside the repository")));
            continue;
        };
        if !root.join(&resolved).exists() {
            findings.push(at(format!(
                "`{target}` does not exist (looked for {})",
                resolved.display()
            )));
        }
    }
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

/// What the checks need from one YAML document, with locations.
#[derive(Debug, Default)]
struct Head {
    is_mapping: bool,
    has_k8s_keys: bool,
    api_version: Option<Spanned<serde_json::Value>>,
    kind: Option<Spanned<serde_json::Value>>,
    metadata: Option<Spanned<Metadata>>,
    kustomize_paths: Vec<Spanned<String>>,
}

impl Head {
    /// A mapping with any of the keys every Kubernetes object has. Helm values and other
    /// plain YAML files have none of them and are only checked as YAML.
    fn is_kubernetes(&self) -> bool {
        self.is_mapping && self.has_k8s_keys
    }
}

#[derive(Debug, Default)]
struct Metadata {
    name: Option<Spanned<serde_json::Value>>,
    namespace: Option<Spanned<serde_json::Value>>,
}

/// Visits any YAML value; only mappings yield anything, other values are skipped.
macro_rules! skip_non_maps {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadVisitor;
        impl<'de> Visitor<'de> for HeadVisitor {
            type Value = Head;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML document")
            }
            skip_non_maps!();
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
                let mut head = Head {
                    is_mapping: true,
                    ..Head::default()
                };
                while let Some(key) = map.next_key::<serde_json::Value>()? {
                    match key.as_str().unwrap_or_default() {
                        "apiVersion" => {
                            head.has_k8s_keys = true;
                            head.api_version = Some(map.next_value()?);
                        }
                        "kind" => {
                            head.has_k8s_keys = true;
                            head.kind = Some(map.next_value()?);
                        }
                        "metadata" => {
                            head.has_k8s_keys = true;
                            head.metadata = Some(map.next_value()?);
                        }
                        "spec" => {
                            head.has_k8s_keys = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        name if KUSTOMIZE_PATH_KEYS.contains(&name) => {
                            head.kustomize_paths.extend(map.next_value::<PathList>()?.0);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(head)
            }
        }
        deserializer.deserialize_any(HeadVisitor)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor;
        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("metadata")
            }
            skip_non_maps!();
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut metadata = Metadata::default();
                while let Some(key) = map.next_key::<serde_json::Value>()? {
                    match key.as_str().unwrap_or_default() {
                        "name" => metadata.name = Some(map.next_value()?),
                        "namespace" => metadata.namespace = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(metadata)
            }
        }
        deserializer.deserialize_any(MetadataVisitor)
    }
}

/// The string entries of a Kustomize path list, with locations; other entries are skipped.
#[derive(Default)]
struct PathList(Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathListVisitor;
        impl<'de> Visitor<'de> for PathListVisitor {
            type Value = PathList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of paths")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<PathList, E> {
                Ok(PathList::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<PathList, E> {
                Ok(PathList::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<PathList, E> {
                Ok(PathList::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<PathList, E> {
                Ok(PathList::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<PathList, E> {
                Ok(PathList::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<PathList, E> {
                Ok(PathList::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PathList, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(PathList::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathList, A::Error> {
                let mut paths = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<serde_json::Value>>()? {
                    if let serde_json::Value::String(text) = item.value {
                        paths.push(Spanned::new(text, item.referenced, item.defined));
                    }
                }
                Ok(PathList(paths))
            }
        }
        deserializer.deserialize_any(PathListVisitor)
    }
}
