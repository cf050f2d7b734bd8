//! The `validate` stage: Gantry's own check of a config repo, run without a container. It
//! finds what breaks a GitOps sync before Argo CD or Flux does: YAML that does not parse,
//! duplicate keys (which most tools silently resolve to the last one), cluster objects
//! without `apiVersion`, `kind` or a name, two documents claiming the same object, and
//! Kustomize entries that point at nothing.
//!
//! A config repo holds more than cluster objects, and a check that cries wolf on them is
//! switched off. So every file is classified before it is judged, from what the whole
//! checkout says about it: a Helm chart's files are checked as a chart (its `templates/`
//! are Go templates, not YAML); a kustomization's patches, generator inputs and settings
//! only have to parse; client-side configs (`object.rs`) and YAML without the shape of an
//! object are only parsed; the rest are cluster objects.
//!
//! Duplicates are looked for per rendered Kustomize overlay (the unit of `kustomize build`),
//! and per folder where no kustomization decides what is applied (the unit of Argo CD's and
//! Flux's plain directories). Files a working kustomization leaves out are not applied by
//! anyone, so a second copy of an object there is not a clash: repos keep alternatives
//! side by side ("use this file instead for Cloudflare") and scaffolding patches not yet
//! enabled. A kustomization naming a file that is not there does not vouch for its folder.

mod chart;
mod checkout;
mod document;
mod kustomize;
mod object;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use serde_saphyr::{Options, Spanned};

use self::chart::ChartFile;
use self::checkout::Checkout;
use self::document::{Head, Node};
use self::kustomize::{KUSTOMIZATION_FILES, Kustomization, Shared, Use, parent};
use self::object::{Object, ObjectId};
use crate::pipeline::{Diagnostic, FileSelection};

pub use self::checkout::MAX_MANIFEST_BYTES;
/// Most files one stage checks: a bound on a `paths` glob gone wrong.
pub const MAX_FILES: usize = 50_000;
/// YAML limits for manifests: larger than for pipeline files (CRDs are big), still far from
/// what an alias bomb needs.
const MAX_DEPTH: usize = 128;
const MAX_ALIASES: usize = 1_000;
const MAX_EVENTS: usize = 2_000_000;

#[derive(Debug, Default)]
pub struct Report {
    pub files_checked: usize,
    pub findings: Vec<Diagnostic>,
    /// Named cluster objects.
    pub objects: usize,
    pub kustomizations: usize,
    pub charts: usize,
    /// Chart templates among the selected files, which are not parsed.
    pub templates_skipped: usize,
    pub client_configs: usize,
}

impl Report {
    /// One line for the stage's log: what the files were taken for, so that a user can see
    /// why a file was not judged as an object.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} cluster objects", self.objects)];
        if self.kustomizations > 0 {
            parts.push(format!(
                "{} kustomizations (overlays rendered)",
                self.kustomizations
            ));
        }
        if self.charts > 0 || self.templates_skipped > 0 {
            parts.push(format!(
                "{} Helm charts ({} templates not parsed)",
                self.charts, self.templates_skipped
            ));
        }
        if self.client_configs > 0 {
            parts.push(format!("{} client-side configs", self.client_configs));
        }
        format!(
            "checked {} files: {}; {} findings",
            self.files_checked,
            parts.join(", "),
            self.findings.len()
        )
    }
}

/// Checks every file under `root` that `selection` selects.
pub fn check_tree(root: &Path, selection: &FileSelection) -> std::io::Result<Report> {
    let mut tree = Tree::default();
    walk(root, root, selection, &mut tree)?;
    tree.selected.sort();
    let mut repo = Repo::new(root, &tree);
    let mut report = Report::default();
    let mut folders: HashMap<(String, ObjectId), Object> = HashMap::new();
    let mut overlays = Vec::new();
    for relative in &tree.selected {
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
        let class = repo.classify(relative);
        if class == Class::ChartTemplate {
            report.templates_skipped += 1;
            continue;
        }
        let text = match repo.checkout.read_yaml(relative) {
            Ok(text) => text,
            Err(finding) => {
                report.findings.push(finding);
                continue;
            }
        };
        match class {
            Class::ChartTemplate | Class::ParseOnly => {}
            Class::ChartYaml => {
                report.charts += 1;
                let documents = parse::<Node>(&text).unwrap_or_default();
                report
                    .findings
                    .extend(chart::check_chart_yaml(relative, &documents));
            }
            Class::Kustomization => {
                report.kustomizations += 1;
                let kustomization = repo.kustomization_file(relative, &text);
                report
                    .findings
                    .extend(repo.check_references(&kustomization));
                overlays.push(kustomization);
            }
            Class::Manifests => {
                let judged =
                    object::judge(relative, &parse::<Spanned<Head>>(&text).unwrap_or_default());
                report.findings.extend(judged.findings);
                report.client_configs += judged.client_configs;
                report.objects += judged.objects.len();
                let folder = parent(relative);
                if !repo.is_governed(folder) {
                    for object in &judged.objects {
                        let key = (folder.to_owned(), object.id.clone());
                        match folders.get(&key) {
                            Some(first) => report.findings.push(object.clash_with(first, "")),
                            None => {
                                folders.insert(key, object.clone());
                            }
                        }
                    }
                }
                repo.objects.insert(relative.clone(), judged.objects.into());
            }
        }
    }
    // A clash already reported for a folder is not reported again for an overlay.
    let mut reported: HashSet<(String, u64, u64)> = report
        .findings
        .iter()
        .map(|f| (f.file.clone(), f.line, f.column))
        .collect();
    for finding in kustomize::clashes_in_overlays(&mut repo, &overlays) {
        if reported.insert((finding.file.clone(), finding.line, finding.column)) {
            report.findings.push(finding);
        }
    }
    report
        .findings
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Ok(report)
}

/// What the walk over the checkout found.
#[derive(Debug, Default)]
struct Tree {
    selected: Vec<String>,
    /// Every kustomization file in the checkout, selected or not: a file's role (a patch,
    /// a generator's input) is given by the kustomization that names it.
    kustomizations: Vec<String>,
    /// Folders holding a `Chart.yaml`.
    chart_roots: HashSet<String>,
}

fn walk(
    root: &Path,
    dir: &Path,
    selection: &FileSelection,
    tree: &mut Tree,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() && entry.file_name() != ".git" {
            walk(root, &path, selection, tree)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let name = entry.file_name();
            if name == "Chart.yaml" {
                tree.chart_roots.insert(parent(&relative).to_owned());
            }
            if KUSTOMIZATION_FILES.iter().any(|k| name == *k) {
                tree.kustomizations.push(relative.clone());
            }
            if selection.selects(&relative) {
                tree.selected.push(relative);
            }
        }
        // Symlinks are not followed: they could lead out of the checkout.
    }
    Ok(())
}

/// What a selected file is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Kustomization,
    ChartYaml,
    ChartTemplate,
    /// Parsed as YAML, nothing more: values, patches, generator inputs, settings.
    ParseOnly,
    /// Documents each judged by what it is: cluster object, client-side config, plain YAML.
    Manifests,
}

/// The checkout as the checks see it: its kustomizations, what they use each file for, its
/// charts, and the objects of each file read so far.
struct Repo {
    checkout: Checkout,
    /// By folder.
    kustomizations: HashMap<String, Shared>,
    /// Folders whose kustomization names a path that is not there.
    broken: HashSet<String>,
    uses: HashMap<String, Use>,
    chart_roots: HashSet<String>,
    objects: HashMap<String, Rc<[Object]>>,
}

impl Repo {
    fn new(root: &Path, tree: &Tree) -> Self {
        let mut repo = Repo {
            checkout: Checkout::new(root),
            kustomizations: HashMap::new(),
            broken: HashSet::new(),
            uses: HashMap::new(),
            chart_roots: tree.chart_roots.clone(),
            objects: HashMap::new(),
        };
        for file in &tree.kustomizations {
            let Ok(text) = repo.checkout.read_yaml(file) else {
                continue;
            };
            let kustomization = Rc::new(Kustomization::from_documents(
                file,
                &parse::<Node>(&text).unwrap_or_default(),
                &|path| repo.checkout.read_yaml(path).ok(),
            ));
            if !repo.check_references(&kustomization).is_empty() {
                repo.broken.insert(kustomization.dir.clone());
            }
            for reference in &kustomization.references {
                if let kustomize::Target::Local(path) = kustomization.resolve(reference) {
                    // A file used both ways is taken for what is not an object: a patch
                    // names its base's object on purpose.
                    let used = repo.uses.entry(path).or_insert(reference.used_as);
                    *used = (*used).max(reference.used_as);
                }
            }
            // Kustomize reads the first of its file names it finds in a folder.
            repo.kustomizations
                .entry(kustomization.dir.clone())
                .or_insert(kustomization);
        }
        repo
    }

    fn classify(&self, relative: &str) -> Class {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        if KUSTOMIZATION_FILES.contains(&name) {
            return Class::Kustomization;
        }
        let in_chart = self.chart_root_of(relative).map(|chart_root| {
            let inside = if chart_root.is_empty() {
                relative
            } else {
                &relative[chart_root.len() + 1..]
            };
            chart::chart_file(inside)
        });
        match in_chart {
            Some(ChartFile::Template) => return Class::ChartTemplate,
            Some(ChartFile::Manifest) => return Class::ChartYaml,
            _ => {}
        }
        match self.uses.get(relative) {
            Some(used) if !used.holds_objects() => Class::ParseOnly,
            Some(_) => Class::Manifests,
            None if in_chart == Some(ChartFile::Values) => Class::ParseOnly,
            None => Class::Manifests,
        }
    }

    /// The nearest folder above `relative` that holds a `Chart.yaml`.
    fn chart_root_of(&self, relative: &str) -> Option<&str> {
        let mut dir = parent(relative);
        loop {
            if let Some(root) = self.chart_roots.get(dir) {
                return Some(root);
            }
            if dir.is_empty() {
                return None;
            }
            dir = parent(dir);
        }
    }

    fn check_references(&self, kustomization: &Kustomization) -> Vec<Diagnostic> {
        let in_chart = self.chart_roots.contains(&kustomization.dir);
        let mut findings = kustomization.check_references(&self.checkout, in_chart);
        for reference in &kustomization.references {
            let as_component = reference.used_as == Use::Component;
            if !reference.used_as.holds_objects() {
                continue;
            }
            let kustomize::Target::Local(path) = kustomization.resolve(reference) else {
                continue;
            };
            let Some(target) = self.kustomizations.get(&path) else {
                continue;
            };
            if target.is_component != as_component {
                let (is, list) = if target.is_component {
                    ("a Component", "`components:`")
                } else {
                    ("not a Component", "`resources:`")
                };
                findings.push(Diagnostic::new(
                    &kustomization.file,
                    reference.line,
                    reference.column,
                    format!("`{}` is {is}: list it under {list}", reference.target),
                ));
            }
        }
        findings.sort_by_key(|f| (f.line, f.column));
        findings
    }

    /// Whether a working kustomization in `folder` or above decides what of it is applied.
    fn is_governed(&self, folder: &str) -> bool {
        let mut dir = folder;
        loop {
            if self.kustomizations.contains_key(dir) && !self.broken.contains(dir) {
                return true;
            }
            if dir.is_empty() {
                return false;
            }
            dir = parent(dir);
        }
    }

    /// The kustomization in `dir`, if it has one.
    fn kustomization_in(&self, dir: &str) -> Option<Shared> {
        self.kustomizations.get(dir).cloned()
    }

    /// The kustomization `relative` is: the one read at the start when it is its folder's,
    /// else (a second kustomization file in one folder) read now.
    fn kustomization_file(&self, relative: &str, text: &str) -> Shared {
        match self.kustomizations.get(parent(relative)) {
            Some(known) if known.file == relative => known.clone(),
            _ => Rc::new(Kustomization::from_documents(
                relative,
                &parse::<Node>(text).unwrap_or_default(),
                &|path| self.checkout.read_yaml(path).ok(),
            )),
        }
    }

    /// The named objects of a file an overlay renders; files that do not read or parse hold
    /// none (their own finding comes from their own check).
    fn objects_in(&mut self, relative: &str) -> Rc<[Object]> {
        if let Some(objects) = self.objects.get(relative) {
            return objects.clone();
        }
        let objects: Rc<[Object]> = match self.checkout.read_yaml(relative) {
            Ok(text) => {
                let documents = parse::<Spanned<Head>>(&text).unwrap_or_default();
                object::judge(relative, &documents).objects.into()
            }
            Err(_) => Rc::from([]),
        };
        self.objects.insert(relative.to_owned(), objects.clone());
        objects
    }
}

fn yaml_options() -> Options {
    crate::pipeline::strict_yaml_options(MAX_DEPTH, MAX_ALIASES, MAX_EVENTS)
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(text, yaml_options())
}
