//! From a file as written to a valid [`Pipeline`]: every rule the YAML shape cannot express,
//! each broken rule reported at its own `file:line:col`, all of them at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::cache;
use super::file::{
    BumpModeFile, CacheFile, OneOrMany, PipelineFile, Scalar, ServiceFile, StageFile, TriggersFile,
};
use super::matrix::{self, Combination};
use super::vars::{self, BUILTIN_VARS, IMAGE_VARS};
use super::{
    BuildSpec, BumpMode, BumpSpec, Cache, Diagnostic, FileSelection, ParallelGroup, Pattern,
    Pipeline, PullRequestTrigger, PushTrigger, Readiness, ReadyCheck, Schedule, Service, Stage,
    StageKind, Triggers, When, nearest,
};
use crate::domain::{MAX_LABELS, Trigger, check_runner_label};

/// Most stages in one pipeline: far above real use, low enough to keep checking cheap.
pub const MAX_STAGES: usize = 1000;
/// Longest timeout a stage may ask for.
pub const MAX_STAGE_TIMEOUT: (Duration, &str) = (Duration::from_secs(24 * 60 * 60), "24h");
/// Most retries a stage may ask for: a stage that fails more often is broken, not flaky.
pub const MAX_RETRIES: u32 = 5;
/// Names end up in container names, status contexts and URLs.
const MAX_NAME_LEN: usize = 63;
/// Most `on.schedule` entries of one pipeline.
const MAX_SCHEDULES: usize = 10;
/// Most caches one pipeline keeps.
pub const MAX_CACHES: usize = 8;
/// Longest cache key, once written.
const MAX_CACHE_KEY_LEN: usize = 512;
/// Most services one pipeline starts.
pub const MAX_SERVICES: usize = 10;
/// How long a service may take to get ready when its `ready` does not say.
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a service may be given to get ready.
const MAX_READY_TIMEOUT: (Duration, &str) = (Duration::from_secs(30 * 60), "30m");
/// The branch a bump commits to when the stage names none.
const DEFAULT_BUMP_BRANCH: &str = "main";

pub(super) struct Findings<'f> {
    file: &'f str,
    pub(super) list: Vec<Diagnostic>,
}

impl Findings<'_> {
    pub(super) fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.list.push(Diagnostic::new(
            self.file,
            spanned.referenced.line(),
            spanned.referenced.column(),
            message,
        ));
    }
}

/// The labels of `runs_on`, each a valid label, sorted and without repeats.
fn runs_on(findings: &mut Findings, written: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
    if written.value.len() > MAX_LABELS {
        findings.at(
            written,
            format!(
                "{} labels; `runs_on` takes at most {MAX_LABELS}",
                written.value.len()
            ),
        );
        return Vec::new();
    }
    let mut labels = Vec::with_capacity(written.value.len());
    for label in &written.value {
        match check_runner_label(&label.value) {
            Ok(()) => labels.push(label.value.clone()),
            Err(message) => findings.at(label, message),
        }
    }
    labels.sort();
    labels.dedup();
    labels
}

pub(super) fn check(file: &str, written: PipelineFile) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut findings = Findings {
        file,
        list: Vec::new(),
    };
    let name = match &written.name {
        Some(name) => {
            check_name(&mut findings, name, "pipeline");
            name.value.clone()
        }
        None => file_stem(file),
    };
    let triggers = match &written.on {
        Some(on) => triggers(&mut findings, on),
        None => Triggers::default_triggers(),
    };
    let env = env_map(&mut findings, &written.env, BUILTIN_VARS);
    let runs_on = written
        .runs_on
        .as_ref()
        .map(|labels| runs_on(&mut findings, labels))
        .unwrap_or_default();
    let pipeline_env_names: Vec<&str> = written.env.keys().map(String::as_str).collect();
    let service_vars: Vec<&str> = BUILTIN_VARS
        .iter()
        .copied()
        .chain(pipeline_env_names.iter().copied())
        .collect();
    let services = written
        .services
        .as_ref()
        .map(|services| check_services(&mut findings, services, &service_vars))
        .unwrap_or_default();
    let caches = written
        .cache
        .as_ref()
        .map(|caches| check_caches(&mut findings, caches, &service_vars))
        .unwrap_or_default();

    let stages_written = &written.stages;
    if stages_written.value.is_empty() {
        findings.at(stages_written, "a pipeline needs at least one stage");
    }
    if stages_written.value.len() > MAX_STAGES {
        findings.at(
            stages_written,
            format!(
                "{} stages; a pipeline has at most {MAX_STAGES}",
                stages_written.value.len()
            ),
        );
        return Err(findings.list);
    }
    // Each written stage becomes one stage, or one per combination of its matrix.
    let combinations: Vec<Vec<Combination>> = stages_written
        .value
        .iter()
        .map(|stage| match &stage.value.matrix {
            Some(matrix) => matrix::combinations(&mut findings, matrix),
            None => vec![Vec::new()],
        })
        .collect();
    let mut expanded: Vec<Vec<usize>> = Vec::with_capacity(combinations.len());
    let mut origins: Vec<&Spanned<StageFile>> = Vec::new();
    for (stage, combinations) in stages_written.value.iter().zip(&combinations) {
        expanded.push((origins.len()..origins.len() + combinations.len()).collect());
        origins.extend(std::iter::repeat_n(stage, combinations.len()));
    }
    if origins.len() > MAX_STAGES {
        findings.at(
            stages_written,
            format!(
                "{} stages once matrices are expanded; a pipeline has at most {MAX_STAGES}",
                origins.len()
            ),
        );
        return Err(findings.list);
    }
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for (index, stage) in stages_written.value.iter().enumerate() {
        let name = &stage.value.name;
        check_name(&mut findings, name, "stage");
        if index_of.insert(name.value.as_str(), index).is_some() {
            findings.at(name, format!("stage name `{}` is used twice", name.value));
        }
    }
    let known: Vec<&str> = BUILTIN_VARS
        .iter()
        .copied()
        .chain(pipeline_env_names.iter().copied())
        .collect();
    let mut stages = Vec::with_capacity(origins.len());
    for (index, stage) in stages_written.value.iter().enumerate() {
        let place = Place {
            index,
            expanded: &expanded,
            index_of: &index_of,
        };
        // A broken matrix still has its stage's other keys checked, once.
        let fallback = [Vec::new()];
        let each = if combinations[index].is_empty() {
            &fallback[..]
        } else {
            &combinations[index][..]
        };
        for combination in each {
            if let Some(stage) = check_stage(&mut findings, &place, stage, combination, &known) {
                stages.push(stage);
            }
        }
    }
    if findings.list.is_empty() {
        check_cycles(&mut findings, &stages, &origins);
    }
    if findings.list.is_empty() {
        check_bumps_have_builds(&mut findings, &stages, &origins);
    }
    if findings.list.is_empty() {
        Ok(Pipeline {
            name,
            file: file.to_owned(),
            triggers,
            env,
            runs_on,
            services,
            caches,
            stages,
        })
    } else {
        findings.list.sort_by_key(|d| (d.line, d.column));
        Err(findings.list)
    }
}

/// The pipeline's services: each named as a host name, unique, with an image, and a
/// readiness check of one kind.
fn check_services(
    findings: &mut Findings,
    written: &Spanned<Vec<Spanned<ServiceFile>>>,
    known: &[&str],
) -> Vec<Service> {
    if written.value.len() > MAX_SERVICES {
        findings.at(
            written,
            format!(
                "{} services; a pipeline has at most {MAX_SERVICES}",
                written.value.len()
            ),
        );
        return Vec::new();
    }
    let mut services: Vec<Service> = Vec::with_capacity(written.value.len());
    for service in &written.value {
        let service = &service.value;
        let name = &service.name.value;
        let host_name = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !host_name {
            findings.at(
                &service.name,
                format!(
                    "service name `{name}` is the host name stages reach it by: 1 to \
                     {MAX_NAME_LEN} lowercase letters, digits or `-`, starting with a letter"
                ),
            );
        }
        if services.iter().any(|other| other.name == *name) {
            findings.at(
                &service.name,
                format!("service name `{name}` is used twice"),
            );
        }
        if service.image.value.trim().is_empty() {
            findings.at(&service.image, "`image` is empty");
        }
        let env = env_map(findings, &service.env, known);
        let command = service.command.as_ref().map(|command| {
            if command.value.is_empty() {
                findings.at(
                    command,
                    "`command` is empty; leave it out to keep the image's",
                );
            }
            command
                .value
                .iter()
                .map(|part| part.value.clone())
                .collect()
        });
        let ready = match &service.ready {
            None => Readiness {
                check: ReadyCheck::Running,
                timeout: DEFAULT_READY_TIMEOUT,
            },
            Some(ready) => {
                let check = match (&ready.value.cmd, &ready.value.port) {
                    (Some(_), Some(port)) => {
                        findings.at(port, "`ready` takes `cmd` or `port`, not both");
                        ReadyCheck::Running
                    }
                    (Some(cmd), None) if cmd.value.trim().is_empty() => {
                        findings.at(cmd, "`ready.cmd` is empty");
                        ReadyCheck::Running
                    }
                    (Some(cmd), None) => ReadyCheck::Command(cmd.value.clone()),
                    (None, Some(port)) if port.value == 0 => {
                        findings.at(port, "`ready.port` must be 1 to 65535");
                        ReadyCheck::Running
                    }
                    (None, Some(port)) => ReadyCheck::Port(port.value),
                    (None, None) => {
                        findings.at(ready, "`ready` needs `cmd` or `port`");
                        ReadyCheck::Running
                    }
                };
                let timeout =
                    ready
                        .value
                        .timeout
                        .as_ref()
                        .map_or(DEFAULT_READY_TIMEOUT, |timeout| {
                            duration(findings, timeout, "ready.timeout", MAX_READY_TIMEOUT)
                                .unwrap_or(DEFAULT_READY_TIMEOUT)
                        });
                Readiness { check, timeout }
            }
        };
        services.push(Service {
            name: name.clone(),
            image: service.image.value.clone(),
            env,
            command,
            ready,
        });
    }
    services
}

/// The pipeline's caches: keys of known variables and hashes of files of the checkout,
/// each key once, paths inside the checkout or absolute elsewhere.
fn check_caches(
    findings: &mut Findings,
    written: &Spanned<Vec<Spanned<CacheFile>>>,
    known: &[&str],
) -> Vec<Cache> {
    if written.value.len() > MAX_CACHES {
        findings.at(
            written,
            format!(
                "{} caches; a pipeline has at most {MAX_CACHES}",
                written.value.len()
            ),
        );
        return Vec::new();
    }
    let mut caches: Vec<Cache> = Vec::with_capacity(written.value.len());
    for cache in &written.value {
        let cache = &cache.value;
        for key in std::iter::once(&cache.key).chain(&cache.restore_keys.0) {
            if key.value.trim().is_empty() || key.value.len() > MAX_CACHE_KEY_LEN {
                findings.at(
                    key,
                    format!("a cache key is 1 to {MAX_CACHE_KEY_LEN} characters"),
                );
            }
            match cache::pieces(&key.value) {
                Err(message) => findings.at(key, message),
                Ok(pieces) => {
                    for piece in pieces {
                        if let cache::KeyPiece::Text(text) = piece {
                            check_references(findings, key, &text, known);
                        }
                    }
                }
            }
        }
        if caches.iter().any(|other| other.key == cache.key.value) {
            findings.at(
                &cache.key,
                format!("cache key `{}` is used twice", cache.key.value),
            );
        }
        if cache.paths.0.is_empty() {
            findings.at(&cache.key, "the cache lists no `paths`");
        }
        for path in &cache.paths.0 {
            let text = path.value.trim_end_matches('/');
            if caches
                .iter()
                .any(|other| other.paths.iter().any(|p| p == text))
            {
                findings.at(path, format!("cache path `{text}` is in two caches"));
            }
            let climbs = text.split('/').any(|part| part == "..");
            if text.is_empty() || text == "." || climbs {
                findings.at(
                    path,
                    format!(
                        "cache path `{}` must be a folder inside the checkout, or an absolute \
                         path other than `/`",
                        path.value
                    ),
                );
            }
        }
        caches.push(Cache {
            key: cache.key.value.clone(),
            restore_keys: cache
                .restore_keys
                .0
                .iter()
                .map(|k| k.value.clone())
                .collect(),
            paths: cache
                .paths
                .0
                .iter()
                .map(|p| p.value.trim_end_matches('/').to_owned())
                .collect(),
        });
    }
    caches
}

/// A duration written like `30s` or `1h 30m`, longer than zero and at most `max` (written
/// as `max_text` in messages); `what` names the key.
fn duration(
    findings: &mut Findings,
    written: &Spanned<String>,
    what: &str,
    (max, max_text): (Duration, &str),
) -> Option<Duration> {
    match humantime::parse_duration(&written.value) {
        Ok(duration) if duration.is_zero() => {
            findings.at(written, format!("`{what}` must be longer than 0s"));
            None
        }
        Ok(duration) if duration > max => {
            findings.at(
                written,
                format!(
                    "`{what}` of `{}` is over the {max_text} limit",
                    written.value
                ),
            );
            None
        }
        Ok(duration) => Some(duration),
        Err(_) => {
            findings.at(
                written,
                format!(
                    "`{}` is not a duration like `30s`, `20m` or `1h 30m`",
                    written.value
                ),
            );
            None
        }
    }
}

/// Where a written stage sits: its index, and the stages each written stage became.
struct Place<'a> {
    index: usize,
    expanded: &'a [Vec<usize>],
    index_of: &'a HashMap<&'a str, usize>,
}

/// `${matrix.AXIS}` replaced in `text` for `combination`, reported at `at` when it cannot be.
fn substituted<T>(
    findings: &mut Findings,
    at: &Spanned<T>,
    text: &mut String,
    combination: &Combination,
) {
    match matrix::substitute(text, combination) {
        Ok(done) => *text = done,
        Err(message) => findings.at(at, message),
    }
}

fn file_stem(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.rsplit_once('.')
        .map_or(base, |(stem, _)| stem)
        .to_owned()
}

fn check_name(findings: &mut Findings, name: &Spanned<String>, what: &str) {
    let text = &name.value;
    let valid = !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        findings.at(
            name,
            format!(
                "{what} name `{text}` must be 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or \
                 `.`, starting with a letter or digit"
            ),
        );
    }
}

impl Triggers {
    /// Pushes to any branch and pull requests to any branch.
    fn default_triggers() -> Self {
        Triggers {
            push: Some(PushTrigger {
                branches: None,
                tags: Some(Vec::new()),
                paths: None,
            }),
            pull_request: Some(PullRequestTrigger::default()),
            manual: false,
            schedules: Vec::new(),
        }
    }
}

fn triggers(findings: &mut Findings, on: &Spanned<TriggersFile>) -> Triggers {
    if on.value.push.is_none()
        && on.value.pull_request.is_none()
        && on.value.manual.is_none()
        && on.value.schedule.is_none()
    {
        findings.at(
            on,
            "`on` names no event; use `push`, `pull_request`, `manual` and/or `schedule`",
        );
    }
    let mut schedules = Vec::new();
    if let Some(written) = &on.value.schedule {
        if written.value.len() > MAX_SCHEDULES {
            findings.at(
                written,
                format!(
                    "{} schedules; a pipeline has at most {MAX_SCHEDULES}",
                    written.value.len()
                ),
            );
        }
        for entry in &written.value {
            if let Err(message) = super::schedule::parse(&entry.value.cron.value) {
                findings.at(&entry.value.cron, message);
            }
            schedules.push(Schedule {
                cron: entry.value.cron.value.clone(),
                branch: entry.value.branch.as_ref().map(|b| b.value.clone()),
            });
        }
    }
    let push = on.value.push.as_ref().map(|push| {
        let written = push.value.as_ref();
        let branches = written
            .and_then(|w| w.branches.as_ref())
            .map(|b| patterns(findings, b));
        let tags = written
            .and_then(|w| w.tags.as_ref())
            .map(|t| patterns(findings, t));
        let paths = written
            .and_then(|w| w.paths.as_ref())
            .map(|p| patterns(findings, p));
        // As in GitHub Actions: naming only branches means no tags, and the other way round.
        let (branches, tags) = match (branches, tags) {
            (Some(branches), None) => (Some(branches), Some(Vec::new())),
            (None, Some(tags)) => (Some(Vec::new()), Some(tags)),
            other => other,
        };
        PushTrigger {
            branches,
            tags,
            paths,
        }
    });
    let pull_request = on.value.pull_request.as_ref().map(|pr| {
        let written = pr.value.as_ref();
        PullRequestTrigger {
            branches: written
                .and_then(|w| w.branches.as_ref())
                .map(|b| patterns(findings, b)),
            paths: written
                .and_then(|w| w.paths.as_ref())
                .map(|p| patterns(findings, p)),
        }
    });
    Triggers {
        push,
        pull_request,
        manual: on.value.manual.is_some(),
        schedules,
    }
}

fn patterns(findings: &mut Findings, written: &OneOrMany) -> Vec<Pattern> {
    written
        .0
        .iter()
        .filter_map(|glob| match Pattern::new(&glob.value) {
            Ok(pattern) => Some(pattern),
            Err(message) => {
                findings.at(glob, message);
                None
            }
        })
        .collect()
}

/// Checks env names and the references in their values against `known` variables.
fn env_map(
    findings: &mut Findings,
    written: &BTreeMap<String, Spanned<Scalar>>,
    known: &[&str],
) -> Vec<(String, String)> {
    let mut env = Vec::with_capacity(written.len());
    for (name, value) in written {
        if !is_env_name(name) {
            findings.at(
                value,
                format!("`{name}` is not a valid variable name (letters, digits and `_`)"),
            );
        }
        check_references(findings, value, &value.value.0, known);
        env.push((name.clone(), value.value.0.clone()));
    }
    env
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_references<T>(findings: &mut Findings, at: &Spanned<T>, text: &str, known: &[&str]) {
    match vars::references(text) {
        Err(message) => findings.at(at, message),
        Ok(names) => {
            for name in names {
                if !known.contains(&name) {
                    let hint = nearest(name, known.iter().copied())
                        .map(|near| format!("; did you mean `${{{near}}}`?"))
                        .unwrap_or_default();
                    findings.at(at, format!("unknown variable `${{{name}}}`{hint}"));
                }
            }
        }
    }
}

/// A path inside the workspace: relative, and never climbing out with `..`.
fn check_workspace_path(findings: &mut Findings, path: &Spanned<String>, what: &str) {
    let text = &path.value;
    if text.starts_with('/') || text.split('/').any(|part| part == "..") {
        findings.at(
            path,
            format!("{what} `{text}` must be a relative path inside the repository"),
        );
    }
}

fn check_stage(
    findings: &mut Findings,
    place: &Place,
    spanned: &Spanned<StageFile>,
    combination: &Combination,
    pipeline_vars: &[&str],
) -> Option<Stage> {
    let mut stage = spanned.value.clone();
    let name = &matrix::stage_name(&spanned.value.name.value, combination);
    let errors_before = findings.list.len();

    // A broken matrix has no combination to fill in; its own findings say why.
    if !(combination.is_empty() && stage.matrix.is_some()) {
        if let Some(image) = &mut stage.image {
            let at = image.clone();
            substituted(findings, &at, &mut image.value, combination);
        }
        if let Some(run) = &mut stage.run {
            let at = run.clone();
            substituted(findings, &at, &mut run.value, combination);
        }
        for value in stage.env.values_mut() {
            let at = value.clone();
            substituted(findings, &at, &mut value.value.0, combination);
        }
    }
    if let Some(matrix) = &stage.matrix
        && stage.run.is_none()
    {
        findings.at(matrix, "`matrix` is only for `run` stages");
    }
    let parallel = match (&stage.max_parallel, &stage.matrix) {
        (Some(max), None) => {
            findings.at(max, "`max_parallel` is only for stages with a `matrix`");
            None
        }
        (Some(max), Some(_)) if max.value == 0 => {
            findings.at(max, "`max_parallel` must be at least 1");
            None
        }
        (Some(max), Some(_)) => Some(ParallelGroup {
            id: place.index,
            max: max.value as usize,
        }),
        (None, _) => None,
    };
    let stage = &stage;

    let stage_env_names: Vec<&str> = stage.env.keys().map(String::as_str).collect();
    let mut env = env_map(findings, &stage.env, pipeline_vars);
    env.extend(matrix::environment(combination));
    let mut known: Vec<&str> = pipeline_vars.to_vec();
    known.extend(stage_env_names.iter().copied());

    let kinds: Vec<&str> = [
        stage.run.as_ref().map(|_| "run"),
        stage.build.as_ref().map(|_| "build"),
        stage.validate.as_ref().map(|_| "validate"),
        stage.bump.as_ref().map(|_| "bump"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match kinds.as_slice() {
        [] => findings.at(
            &stage.name,
            format!("stage `{name}` has none of `run`, `build`, `validate` or `bump`"),
        ),
        [_] => {}
        [first, second, ..] => findings.at(
            &stage.name,
            format!("stage `{name}` has both `{first}` and `{second}`; a stage does one thing"),
        ),
    }
    if let (Some(image), false) = (&stage.image, stage.run.is_some()) {
        findings.at(image, "`image` is only for `run` stages");
    }

    let action = if let Some(run) = &stage.run {
        if run.value.trim().is_empty() {
            findings.at(run, "`run` is empty");
        }
        match &stage.image {
            Some(image) if image.value.trim().is_empty() => {
                findings.at(image, "`image` is empty");
                None
            }
            Some(image) => Some(StageKind::Run {
                image: image.value.clone(),
                script: run.value.clone(),
            }),
            None => {
                findings.at(
                    &stage.name,
                    format!("stage `{name}` has `run` but no `image` to run it in"),
                );
                None
            }
        }
    } else if let Some(build) = &stage.build {
        let b = &build.value;
        check_image_name(findings, &b.image);
        for tag in &b.tags {
            check_references(findings, tag, &tag.value, &known);
        }
        if let Some(context) = &b.context {
            check_workspace_path(findings, context, "build context");
        }
        if let Some(dockerfile) = &b.dockerfile {
            check_workspace_path(findings, dockerfile, "dockerfile");
        }
        let pairs = |map: &BTreeMap<String, Spanned<Scalar>>| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.value.0.clone()))
                .collect()
        };
        Some(StageKind::Build(BuildSpec {
            context: b
                .context
                .as_ref()
                .map_or_else(|| ".".into(), |c| c.value.clone()),
            dockerfile: b
                .dockerfile
                .as_ref()
                .map_or_else(|| "Dockerfile".into(), |d| d.value.clone()),
            image: b.image.value.clone(),
            tags: if b.tags.is_empty() {
                vec!["${GANTRY_COMMIT_SHA}".into()]
            } else {
                b.tags.iter().map(|t| t.value.clone()).collect()
            },
            args: pairs(&b.args),
            target: b.target.as_ref().map(|t| t.value.clone()),
            labels: pairs(&b.labels),
            push: b.push,
        }))
    } else if let Some(validate) = &stage.validate {
        let paths = patterns(findings, &validate.value.paths);
        if validate.value.paths.0.is_empty() {
            findings.at(validate, "`validate.paths` lists no files");
        }
        let exclude = patterns(findings, &validate.value.exclude);
        Some(StageKind::Validate(FileSelection { paths, exclude }))
    } else if let Some(bump) = &stage.bump {
        let b = &bump.value;
        let mut bump_vars = known.clone();
        bump_vars.extend(IMAGE_VARS);
        for value in [
            Some(&b.repo),
            b.branch.as_ref(),
            Some(&b.file),
            b.image.as_ref(),
            b.key.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            check_references(findings, value, &value.value, &bump_vars);
        }
        if b.repo.value.trim().is_empty() {
            findings.at(&b.repo, "`bump.repo` is empty");
        }
        check_workspace_path(findings, &b.file, "bump file");
        Some(StageKind::Bump(BumpSpec {
            repo: b.repo.value.clone(),
            branch: b
                .branch
                .as_ref()
                .map_or_else(|| DEFAULT_BUMP_BRANCH.into(), |b| b.value.clone()),
            file: b.file.value.clone(),
            image: b.image.as_ref().map(|i| i.value.clone()),
            key: b.key.as_ref().map(|k| k.value.clone()),
            mode: match b.mode.as_ref().map(|m| m.value) {
                Some(BumpModeFile::PullRequest) => BumpMode::PullRequest,
                Some(BumpModeFile::Commit) | None => BumpMode::Commit,
            },
            pin: b.pin.as_ref().map(|p| p.value).unwrap_or_default(),
        }))
    } else {
        None
    };

    let needs = match &stage.needs {
        // The stage before, all of its matrix.
        None => place
            .index
            .checked_sub(1)
            .map(|before| place.expanded[before].clone())
            .unwrap_or_default(),
        Some(needs) => {
            let mut resolved = Vec::with_capacity(needs.len());
            for need in needs {
                match place.index_of.get(need.value.as_str()) {
                    Some(&target) if target == place.index => {
                        findings.at(need, format!("stage `{}` needs itself", stage.name.value));
                    }
                    Some(&target) => resolved.extend(&place.expanded[target]),
                    None => {
                        let hint = nearest(&need.value, place.index_of.keys().copied())
                            .map(|near| format!("; did you mean `{near}`?"))
                            .unwrap_or_default();
                        findings.at(
                            need,
                            format!("`needs` names no stage `{}`{hint}", need.value),
                        );
                    }
                }
            }
            resolved.sort_unstable();
            resolved.dedup();
            resolved
        }
    };

    let timeout = stage
        .timeout
        .as_ref()
        .and_then(|timeout| duration(findings, timeout, "timeout", MAX_STAGE_TIMEOUT));
    let retries = match &stage.retries {
        Some(retries) if retries.value > MAX_RETRIES => {
            findings.at(retries, format!("`retries` is at most {MAX_RETRIES}"));
            0
        }
        Some(retries) => retries.value,
        None => 0,
    };

    let mut secrets = Vec::with_capacity(stage.secrets.len());
    for secret in &stage.secrets {
        if !is_env_name(&secret.value) {
            findings.at(
                secret,
                format!("`{}` is not a valid secret name", secret.value),
            );
        } else if secrets.contains(&secret.value) {
            findings.at(secret, format!("secret `{}` is listed twice", secret.value));
        } else {
            secrets.push(secret.value.clone());
        }
    }

    let when = stage.when.as_ref().map(|when| {
        let w = &when.value;
        if w.event.is_none() && w.branch.is_none() && w.tag.is_none() {
            findings.at(
                when,
                "`when` sets no condition; use `event`, `branch` or `tag`",
            );
        }
        When {
            events: w.event.as_ref().map(|events| {
                events
                    .0
                    .iter()
                    .filter_map(|event| match event.value.parse::<Trigger>().ok() {
                        Some(trigger) => Some(trigger),
                        None => {
                            findings.at(
                                event,
                                format!(
                                    "unknown event `{}`; expected push, pull_request, tag, manual or schedule",
                                    event.value
                                ),
                            );
                            None
                        }
                    })
                    .collect()
            }),
            branches: w.branch.as_ref().map(|b| patterns(findings, b)),
            tags: w.tag.as_ref().map(|t| patterns(findings, t)),
        }
    });

    if findings.list.len() > errors_before {
        return None;
    }
    Some(Stage {
        name: name.clone(),
        action: action?,
        needs,
        when: when.unwrap_or_default(),
        env,
        secrets,
        timeout,
        retries,
        parallel,
        line: stage.name.referenced.line(),
        column: stage.name.referenced.column(),
    })
}

/// An image reference without tag: lowercase path components, optional registry host.
fn check_image_name(findings: &mut Findings, image: &Spanned<String>) {
    let text = &image.value;
    let (host, path) = match text.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, text.as_str()),
    };
    let host_ok = host.is_none_or(|host| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
    });
    let path_ok = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
        });
    if !host_ok || !path_ok {
        findings.at(
            image,
            format!(
                "`{text}` is not an image name like `registry.example.com/team/app` \
                 (lowercase, no tag: tags go in `tags`)"
            ),
        );
    }
}

/// Finds a cycle in the dependency graph and names it.
fn check_cycles(findings: &mut Findings, stages: &[Stage], written: &[&Spanned<StageFile>]) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; stages.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        node: usize,
        stages: &[Stage],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[node] = Mark::Open;
        path.push(node);
        for &next in &stages[node].needs {
            match marks[next] {
                Mark::Open => {
                    let start = path.iter().position(|&n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, stages, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[node] = Mark::Done;
        None
    }
    for start in 0..stages.len() {
        if marks[start] != Mark::New {
            continue;
        }
        if let Some(cycle) = visit(start, stages, &mut marks, &mut path) {
            let names: Vec<String> = cycle
                .iter()
                .map(|&i| format!("`{}`", stages[i].name))
                .collect();
            let first = *cycle.iter().min().unwrap_or(&cycle[0]);
            findings.at(
                &written[first].value.name,
                format!(
                    "stages wait for each other in a cycle: {} (a stage without `needs` waits \
                     for the one before it)",
                    names.join(" → ")
                ),
            );
            return;
        }
    }
}

/// A bump takes its image from a build stage that runs before it.
fn check_bumps_have_builds(
    findings: &mut Findings,
    stages: &[Stage],
    written: &[&Spanned<StageFile>],
) {
    for (index, stage) in stages.iter().enumerate() {
        let StageKind::Bump(bump) = &stage.action else {
            continue;
        };
        let mut ancestors = vec![false; stages.len()];
        let mut todo = stage.needs.clone();
        while let Some(next) = todo.pop() {
            if !ancestors[next] {
                ancestors[next] = true;
                todo.extend(&stages[next].needs);
            }
        }
        let builds: Vec<&BuildSpec> = stages
            .iter()
            .enumerate()
            .filter(|(i, _)| ancestors[*i])
            .filter_map(|(_, s)| match &s.action {
                StageKind::Build(build) => Some(build),
                _ => None,
            })
            .collect();
        let at = &written[index].value.name;
        if builds.is_empty() {
            findings.at(
                at,
                format!(
                    "bump stage `{}` has no `build` stage before it to take the image from",
                    stage.name
                ),
            );
        } else if let Some(image) = &bump.image
            && !image.contains("${")
            && !builds.iter().any(|build| build.image == *image)
        {
            findings.at(
                at,
                format!(
                    "bump stage `{}` bumps `{image}`, which no build stage before it builds",
                    stage.name
                ),
            );
        }
    }
}
