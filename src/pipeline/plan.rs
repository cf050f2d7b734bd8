//! Fitting a valid pipeline to one run: which stages run and which are skipped, the
//! variables each sees, the secrets each gets, and what pull requests from forks may not do.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::cache::{self, KeyPiece};
use super::matching::EventFacts;
use super::vars::{self, IMAGE_VARS};
use super::{
    BuildSpec, BumpSpec, Cache, Diagnostic, FileSelection, ParallelGroup, Pipeline, Service,
    StageKind,
};
use crate::domain::{ChangedPaths, GitRef, Secret, Trigger};
use crate::webhook::{Event, EventKind};

/// Everything about a run that a plan depends on.
#[derive(Debug, Clone)]
pub struct RunContext<'a> {
    pub run_id: i64,
    pub trigger: Trigger,
    pub repo: &'a str,
    pub commit_sha: &'a str,
    pub branch: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub base_branch: Option<&'a str>,
    pub pr_number: Option<u64>,
    pub from_fork: bool,
    /// Where the checkout is mounted in stage containers.
    pub workspace: &'a str,
    pub changed_paths: ChangedPaths,
    /// The repo's configured secrets (`[[repos]].secrets`).
    pub secrets: &'a BTreeMap<String, Secret>,
    /// A manual run's variables: environment variables of every stage.
    pub variables: &'a [(String, String)],
    /// The one pipeline a scheduled run is for.
    pub scheduled: Option<&'a str>,
}

impl<'a> RunContext<'a> {
    /// The context of a run for `event`; `None` when the event asks for no run.
    pub fn for_event(
        run_id: i64,
        event: &'a Event,
        workspace: &'a str,
        changed_paths: ChangedPaths,
        secrets: &'a BTreeMap<String, Secret>,
    ) -> Option<Self> {
        let run = event.run_request().ok()?;
        let repo = event.repo.as_ref()?.full_name.as_str();
        let (branch, tag, base_branch, from_fork) = match &event.kind {
            EventKind::PullRequest(pr) => (
                Some(pr.head_ref.as_str()),
                None,
                Some(pr.base_ref.as_str()),
                pr.from_fork,
            ),
            EventKind::Push(push) => match &push.git_ref {
                GitRef::Branch(name) => (Some(name.as_str()), None, None, false),
                GitRef::Tag(name) => (None, Some(name.as_str()), None, false),
            },
            EventKind::Manual(manual) => match &manual.git_ref {
                GitRef::Branch(name) => (Some(name.as_str()), None, None, false),
                GitRef::Tag(name) => (None, Some(name.as_str()), None, false),
            },
            EventKind::Scheduled(scheduled) => (Some(scheduled.git_ref.name()), None, None, false),
            _ => return None,
        };
        let (commit_sha, variables) = match &event.kind {
            EventKind::PullRequest(pr) => (pr.head_sha.as_str(), &[][..]),
            EventKind::Push(push) => (push.after.as_str(), &[][..]),
            EventKind::Manual(manual) => (manual.commit_sha.as_str(), &manual.variables[..]),
            EventKind::Scheduled(scheduled) => (scheduled.commit_sha.as_str(), &[][..]),
            _ => return None,
        };
        let scheduled = match &event.kind {
            EventKind::Scheduled(scheduled) => Some(scheduled.pipeline.as_str()),
            _ => None,
        };
        Some(Self {
            run_id,
            trigger: run.trigger,
            repo,
            commit_sha,
            branch,
            tag,
            base_branch,
            pr_number: run.pr_number,
            from_fork,
            workspace,
            changed_paths,
            secrets,
            variables,
            scheduled,
        })
    }

    fn facts(&self) -> EventFacts<'_> {
        EventFacts {
            trigger: self.trigger,
            branch: self.branch,
            tag: self.tag,
            base_branch: self.base_branch,
            changed_paths: &self.changed_paths,
            scheduled: self.scheduled,
        }
    }

    /// The variables every stage sees, in a stable order.
    fn builtin_env(&self) -> Vec<(String, String)> {
        let pair = |name: &str, value: String| (name.to_owned(), value);
        vec![
            pair("CI", "true".into()),
            pair("GANTRY_EVENT", self.trigger.as_str().into()),
            pair("GANTRY_REPO", self.repo.into()),
            pair("GANTRY_COMMIT_SHA", self.commit_sha.into()),
            pair("GANTRY_BRANCH", self.branch.unwrap_or_default().into()),
            pair("GANTRY_TAG", self.tag.unwrap_or_default().into()),
            pair(
                "GANTRY_PR_NUMBER",
                self.pr_number.map(|n| n.to_string()).unwrap_or_default(),
            ),
            pair("GANTRY_RUN_ID", self.run_id.to_string()),
            pair("GANTRY_WORKSPACE", self.workspace.into()),
        ]
    }
}

/// One pipeline fitted to one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pipeline: String,
    pub file: String,
    /// Labels the runner must have (`runs_on`).
    pub runs_on: Vec<String>,
    /// The services, their `env` expanded.
    pub services: Vec<Service>,
    /// The caches, their keys' `${VAR}`s expanded (`${hash:…}` is left to the runner).
    pub caches: Vec<Cache>,
    pub stages: Vec<PlannedStage>,
}

#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub name: String,
    /// Indexes of the stages this one waits for. A skipped stage counts as done.
    pub needs: Vec<usize>,
    /// Why the stage does not run in this run, if it does not.
    pub skipped: Option<String>,
    pub action: StageAction,
    /// Built-in, pipeline and stage variables, expanded, in that order.
    pub env: Vec<(String, String)>,
    /// The secrets the stage asked for, with their values; empty for forks.
    pub secrets: Vec<(String, Secret)>,
    pub timeout: Option<Duration>,
    pub retries: u32,
    /// The matrix's cap on stages running at once, shared with its other stages.
    pub parallel: Option<ParallelGroup>,
}

impl PlannedStage {
    /// The value of one of the stage's variables; empty when it has none by that name.
    pub fn env_value(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub enum StageAction {
    Run {
        image: String,
        script: String,
    },
    Build(BuildAction),
    Validate(FileSelection),
    /// Its fields expanded, but for `${GANTRY_IMAGE…}` references: they are filled when the
    /// build before the bump has run.
    Bump(BumpSpec),
}

/// A build stage fitted to this run.
#[derive(Debug, Clone)]
pub struct BuildAction {
    /// As written, its tags expanded.
    pub build: BuildSpec,
    /// Whether the image is pushed: never for forks, by default not for pull requests.
    pub push: bool,
}

/// Why a valid pipeline cannot run for this event, at the stage that asks for too much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub Diagnostic);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Pipeline {
    /// The plan for this run, or `Ok(None)` when the pipeline's `on` does not ask for it.
    pub fn plan(&self, run: &RunContext<'_>) -> Result<Option<Plan>, PlanError> {
        let facts = run.facts();
        if !self.triggered_by(&facts) {
            return Ok(None);
        }
        let builtins = run.builtin_env();
        let mut pipeline_env = builtins.clone();
        for (name, value) in &self.env {
            let expanded = expand(value, &builtins)
                .map_err(|message| PlanError(Diagnostic::new(&self.file, 1, 1, message)))?;
            pipeline_env.push((name.clone(), expanded));
        }
        let mut services = Vec::with_capacity(self.services.len());
        for service in &self.services {
            let mut env = Vec::with_capacity(service.env.len());
            for (name, value) in &service.env {
                let expanded = expand(value, &pipeline_env)
                    .map_err(|message| PlanError(Diagnostic::new(&self.file, 1, 1, message)))?;
                env.push((name.clone(), expanded));
            }
            services.push(Service {
                env,
                ..service.clone()
            });
        }
        let caches = self
            .caches
            .iter()
            .map(|cache| {
                let key = |written: &str| -> Result<String, PlanError> {
                    let fail =
                        |message: String| PlanError(Diagnostic::new(&self.file, 1, 1, message));
                    let pieces = cache::pieces(written)
                        .map_err(fail)?
                        .into_iter()
                        .map(|piece| match piece {
                            KeyPiece::Text(text) => {
                                expand(&text, &pipeline_env).map(KeyPiece::Text)
                            }
                            hash => Ok(hash),
                        })
                        .collect::<Result<Vec<_>, String>>()
                        .map_err(fail)?;
                    Ok(cache::join(&pieces))
                };
                Ok(Cache {
                    key: key(&cache.key)?,
                    restore_keys: cache
                        .restore_keys
                        .iter()
                        .map(|k| key(k))
                        .collect::<Result<_, _>>()?,
                    paths: cache.paths.clone(),
                })
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        let is_pull_request = run.trigger == Trigger::PullRequest;
        let mut stages = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let error = |message: String| {
                PlanError(Diagnostic::new(
                    &self.file,
                    stage.line,
                    stage.column,
                    message,
                ))
            };
            let mut env = pipeline_env.clone();
            for (name, value) in &stage.env {
                let expanded = expand(value, &pipeline_env).map_err(error)?;
                env.push((name.clone(), expanded));
            }
            env.extend(run.variables.iter().cloned());
            let mut skipped = stage.when.skip_reason(&facts);
            let mut secrets = Vec::new();
            for name in &stage.secrets {
                let Some(value) = run.secrets.get(name) else {
                    return Err(error(format!(
                        "stage `{}` asks for secret `{name}`, which repo `{}` does not define \
                         (add it under `secrets` of its `[[repos]]` entry)",
                        stage.name, run.repo
                    )));
                };
                if !run.from_fork {
                    secrets.push((name.clone(), value.clone()));
                }
            }
            let action = match &stage.action {
                StageKind::Run { image, script } => StageAction::Run {
                    image: image.clone(),
                    script: script.clone(),
                },
                StageKind::Build(build) => StageAction::Build(BuildAction {
                    build: BuildSpec {
                        tags: build
                            .tags
                            .iter()
                            .map(|tag| {
                                let expanded = expand(tag, &env)?;
                                if expanded.is_empty() {
                                    return Err(format!(
                                        "build tag `{tag}` expands to nothing in this run"
                                    ));
                                }
                                Ok(expanded)
                            })
                            .collect::<Result<_, _>>()
                            .map_err(error)?,
                        ..build.clone()
                    },
                    push: !run.from_fork && build.push.unwrap_or(!is_pull_request),
                }),
                StageKind::Validate(selection) => StageAction::Validate(selection.clone()),
                StageKind::Bump(bump) => {
                    if run.from_fork && skipped.is_none() {
                        skipped = Some("pull requests from forks get no bump".into());
                    }
                    let mut bump_env = env.clone();
                    bump_env.extend(
                        IMAGE_VARS
                            .iter()
                            .map(|name| (name.to_string(), format!("${{{name}}}"))),
                    );
                    let field = |value: &str| expand(value, &bump_env).map_err(error);
                    StageAction::Bump(BumpSpec {
                        repo: field(&bump.repo)?,
                        branch: field(&bump.branch)?,
                        file: field(&bump.file)?,
                        image: bump.image.as_deref().map(field).transpose()?,
                        key: bump.key.as_deref().map(field).transpose()?,
                        mode: bump.mode,
                        pin: bump.pin,
                    })
                }
            };
            stages.push(PlannedStage {
                name: stage.name.clone(),
                needs: stage.needs.clone(),
                skipped,
                action,
                env,
                secrets,
                timeout: stage.timeout,
                retries: stage.retries,
                parallel: stage.parallel,
            });
        }
        Ok(Some(Plan {
            pipeline: self.name.clone(),
            file: self.file.clone(),
            runs_on: self.runs_on.clone(),
            services,
            caches,
            stages,
        }))
    }
}

fn expand(text: &str, env: &[(String, String)]) -> Result<String, String> {
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars::expand(text, |name| lookup.get(name).copied())
}
