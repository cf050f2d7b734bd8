//! Pipeline files (`.gantry/*.yml`): the format, its validation with exact locations,
//! which events start a pipeline, and the plan of stages a run executes.
//!
//! A file goes through three steps: [`file`] reads the YAML into types that keep locations,
//! [`check`] turns it into a [`Pipeline`] or a list of [`Diagnostic`]s, and [`plan`] fits a
//! pipeline to one event. A broken file only ever fails its own pipeline.

pub mod cache;
mod check;
mod file;
mod matching;
pub mod matrix;
mod plan;
pub mod schedule;
pub mod schema;
pub mod vars;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

use crate::domain::Trigger;
use serde::Serialize;

pub use file::MAX_FILE_BYTES;
pub(crate) use file::{diagnostic_from_yaml_error, strict_yaml_options};
pub use matching::{EventFacts, skip_ci_requested};
pub use plan::{BuildAction, Plan, PlanError, PlannedStage, RunContext, StageAction};
pub use vars::BUILTIN_VARS;

/// A finding in a file, shown as `file:line:col: message` by `gantry validate`, in the run
/// and in the forge status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: &str, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// A valid pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    /// The file it came from, as the user would name it (`.gantry/web.yml`).
    pub file: String,
    pub triggers: Triggers,
    pub env: Vec<(String, String)>,
    /// Labels a runner must have to take a run of this pipeline (`runs_on`), sorted.
    pub runs_on: Vec<String>,
    pub services: Vec<Service>,
    pub caches: Vec<Cache>,
    pub stages: Vec<Stage>,
}

/// Folders kept from one run to the next on the runner's engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// As written; `${VAR}`s are expanded when the run is planned, `${hash:…}` once the
    /// checkout is there.
    pub key: String,
    pub restore_keys: Vec<String>,
    /// Relative: inside the checkout; absolute: anywhere in the stages' containers.
    pub paths: Vec<String>,
}

/// A container started before the pipeline's first stage, on a network the stages join,
/// where they reach it by its name.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub image: String,
    /// As written; `${VAR}`s are expanded when the run is planned.
    pub env: Vec<(String, String)>,
    /// Replaces the image's `CMD`.
    pub command: Option<Vec<String>>,
    pub ready: Readiness,
}

impl Service {
    /// How the service shows among the pipeline's stages: its state, its log.
    pub fn stage_name(name: &str) -> String {
        format!("{name} (service)")
    }
}

/// When a service counts as ready, and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub check: ReadyCheck,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// Once its container runs.
    Running,
    /// Once this command, run in it with `sh -c`, exits 0.
    Command(String),
    /// Once it listens on this TCP port.
    Port(u16),
}

/// Which events start the pipeline. A pipeline without `on` runs on pushes to any branch
/// and on pull requests; tags only start pipelines that ask for them.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    pub push: Option<PushTrigger>,
    pub pull_request: Option<PullRequestTrigger>,
    /// Runs started from the page or the API (`on: { manual: {} }`).
    pub manual: bool,
    pub schedules: Vec<Schedule>,
}

/// One entry of `on.schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Five fields, UTC.
    pub cron: String,
    /// `None`: the repo's default branch.
    pub branch: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PushTrigger {
    /// `None`: every branch, unless only `tags` were given (then no branch).
    pub branches: Option<Vec<Pattern>>,
    /// `None`: every tag, unless only `branches` were given (then no tag).
    pub tags: Option<Vec<Pattern>>,
    pub paths: Option<Vec<Pattern>>,
}

#[derive(Debug, Clone, Default)]
pub struct PullRequestTrigger {
    /// Globs on the base branch the pull request targets.
    pub branches: Option<Vec<Pattern>>,
    pub paths: Option<Vec<Pattern>>,
}

/// A glob as written, compiled. `*` stops at `/`; `**` crosses it (as in GitHub Actions).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Self, String> {
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|err| format!("`{text}` is not a valid glob: {}", err.kind()))?;
        Ok(Self {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn matches(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate)
    }
}

/// Which files of a checkout a stage reads: those matching any of `paths` and none of
/// `exclude`, each pattern matched against the path relative to the checkout, `/`-separated.
#[derive(Debug, Clone, Default)]
pub struct FileSelection {
    pub paths: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
}

impl FileSelection {
    pub fn selects(&self, relative: &str) -> bool {
        self.paths.iter().any(|p| p.matches(relative))
            && !self.exclude.iter().any(|p| p.matches(relative))
    }
}

/// A plain list of patterns selects what any of them matches, excluding nothing.
impl From<Vec<Pattern>> for FileSelection {
    fn from(paths: Vec<Pattern>) -> Self {
        Self {
            paths,
            exclude: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub action: StageKind,
    /// Indexes of the stages this one waits for.
    pub needs: Vec<usize>,
    pub when: When,
    pub env: Vec<(String, String)>,
    pub secrets: Vec<String>,
    pub timeout: Option<Duration>,
    pub retries: u32,
    /// The stages of one matrix with `max_parallel`: at most that many run at once.
    pub parallel: Option<ParallelGroup>,
    /// Where the stage starts in its file, for messages about it.
    pub line: u64,
    pub column: u64,
}

/// Stages expanded from one matrix that share a cap on how many run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParallelGroup {
    /// Tells one matrix's stages from another's.
    pub id: usize,
    pub max: usize,
}

#[derive(Debug, Clone)]
pub enum StageKind {
    Run { image: String, script: String },
    Build(BuildSpec),
    Validate(FileSelection),
    Bump(BumpSpec),
}

impl StageKind {
    pub fn name(&self) -> &'static str {
        match self {
            StageKind::Run { .. } => "run",
            StageKind::Build(_) => "build",
            StageKind::Validate(_) => "validate",
            StageKind::Bump(_) => "bump",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub context: String,
    pub dockerfile: String,
    pub image: String,
    /// Tags as written; `${VAR}`s are expanded when the run is planned.
    pub tags: Vec<String>,
    pub args: Vec<(String, String)>,
    pub target: Option<String>,
    pub labels: Vec<(String, String)>,
    /// `None`: push on push events, not on pull requests.
    pub push: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct BumpSpec {
    pub repo: String,
    pub branch: String,
    pub file: String,
    /// The image to bump; `None` takes the image of the build stage before it.
    pub image: Option<String>,
    pub key: Option<String>,
    pub mode: BumpMode,
    pub pin: BumpPin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BumpMode {
    Commit,
    PullRequest,
}

/// What a bump writes of the built image: its tag (the default), its digest, or both
/// (`tag@digest`: readable, and immune to the tag being moved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum BumpPin {
    #[default]
    #[serde(rename = "tag")]
    Tag,
    #[serde(rename = "digest")]
    Digest,
    #[serde(rename = "tag@digest")]
    TagAndDigest,
}

/// Conditions that skip a single stage. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct When {
    pub events: Option<Vec<Trigger>>,
    pub branches: Option<Vec<Pattern>>,
    pub tags: Option<Vec<Pattern>>,
}

/// Reads and checks one pipeline file. `file` is the name used in messages.
pub fn parse(file: &str, text: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    let written = file::read(file, text).map_err(|diagnostic| vec![diagnostic])?;
    check::check(file, written)
}

/// One pipeline file of a repo, read and checked on its own.
#[derive(Debug)]
pub struct Loaded {
    pub file: String,
    pub result: Result<Pipeline, Vec<Diagnostic>>,
}

/// Reads every `*.yml` and `*.yaml` file directly in `dir` (sorted by name), each checked on
/// its own. `display_prefix` is how the folder is named in messages (`.gantry`). Two files
/// declaring the same pipeline name: the second fails.
pub fn load_dir(dir: &Path, display_prefix: &str) -> std::io::Result<Vec<Loaded>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|ext| ext.to_str()),
                    Some("yml" | "yaml")
                )
        })
        .collect();
    paths.sort();
    let mut loaded: Vec<Loaded> = paths
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let file = format!("{display_prefix}/{name}");
            Loaded {
                result: load_file(path, &file),
                file,
            }
        })
        .collect();
    reject_duplicate_names(&mut loaded);
    Ok(loaded)
}

/// Reads one file from disk, refusing an oversized one before reading it whole.
pub fn load_file(path: &Path, file: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    let unreadable = |message: String| vec![Diagnostic::new(file, 1, 1, message)];
    let size = std::fs::metadata(path)
        .map_err(|err| unreadable(format!("cannot read file: {err}")))?
        .len();
    if size > MAX_FILE_BYTES as u64 {
        return Err(unreadable(format!(
            "file is {size} bytes; pipeline files are limited to {MAX_FILE_BYTES}"
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|err| unreadable(format!("cannot read file: {err}")))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        unreadable(format!(
            "file is not UTF-8 (byte {})",
            err.utf8_error().valid_up_to()
        ))
    })?;
    parse(file, &text)
}

fn reject_duplicate_names(loaded: &mut [Loaded]) {
    let mut seen: Vec<(String, String)> = Vec::new();
    for entry in loaded.iter_mut() {
        let Ok(pipeline) = &entry.result else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(name, _)| *name == pipeline.name) {
            entry.result = Err(vec![Diagnostic::new(
                &entry.file,
                1,
                1,
                format!(
                    "pipeline name `{}` is already used by {first}; names must be unique",
                    pipeline.name
                ),
            )]);
        } else {
            seen.push((pipeline.name.clone(), entry.file.clone()));
        }
    }
}

/// The known name closest to `unknown`, if one is close enough to be a likely typo.
pub(crate) fn nearest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(unknown, candidate), candidate))
        .filter(|(distance, candidate)| {
            *distance <= 2.max(candidate.len() / 3) && *distance < candidate.len()
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_typos_only() {
        let keys = ["name", "needs", "image", "run", "timeout"];
        assert_eq!(nearest("need", keys), Some("needs"));
        assert_eq!(nearest("imgae", keys), Some("image"));
        assert_eq!(nearest("timout", keys), Some("timeout"));
        assert_eq!(nearest("colour", keys), None);
    }

    #[test]
    fn globs_keep_slashes_apart() {
        let pattern = Pattern::new("release/*").unwrap();
        assert!(pattern.matches("release/1.0"));
        assert!(!pattern.matches("release/1.0/hotfix"));
        assert!(Pattern::new("src/**").unwrap().matches("src/a/b.rs"));
        assert!(Pattern::new("[a-").is_err());
    }
}
