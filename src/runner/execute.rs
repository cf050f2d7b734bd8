//! Running one planned pipeline: its stages as a DAG, independent ones side by side, each
//! `run` stage in its own container on the run's shared workspace volume.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::build::BuildRequest;
use super::engine::{
    ContainerExit, ContainerSpec, DockerError, Engine, GatedContainer, OutputStream, RUN_LABEL,
    with_default_tag,
};
use super::logs::{LineSplitter, Masker};
use crate::config::{RegistryCredentials, RunnerSettings};
use crate::domain::{Forge, StageState};
use crate::gitops::bump::{BumpRequest, BumpSource, Bumper, ConfigRepo};
use crate::gitops::edit::NewImage;
use crate::pipeline::{BumpPin, Plan, PlannedStage, StageAction};
use crate::store::BumpReport;

/// How one stage ended.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub state: StageState,
    pub exit_code: Option<i64>,
    /// What happened, for people: "exit code 2", "timed out after 20m", the skip reason.
    pub message: Option<String>,
    pub duration: Duration,
    pub attempts: u32,
}

/// How a pipeline ended: the worst of its stages.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineOutcome {
    pub state: StageState,
    pub stages: Vec<(String, StageOutcome)>,
    /// Wall time from the pipeline's start to its end.
    pub duration: Duration,
}

/// Receives what happens during a run: the server stores and broadcasts it, `gantry run`
/// prints it. Calls come from several tasks at once.
pub trait Observer: Send + Sync {
    fn stage_started(&self, pipeline: &str, stage: &str);
    fn stage_finished(&self, pipeline: &str, stage: &str, outcome: &StageOutcome);
    /// One line of output, secrets already masked.
    fn log_line(&self, pipeline: &str, stage: &str, line: &str);
    /// What a bump stage did to its config repo (before its `stage_finished`).
    fn bump_finished(&self, _pipeline: &str, _stage: &str, _report: &BumpReport) {}
}

/// One pipeline of one run, ready to execute.
pub struct PipelineJob {
    pub plan: Plan,
    /// The run id as it appears in labels and names.
    pub run_label: String,
    /// The checkout on this machine; the `validate` stage reads it directly.
    pub checkout: PathBuf,
    pub cancel: CancellationToken,
    /// The repo may run privileged stages with the engine's socket (`trusted` in its
    /// `[[repos]]` entry); never for pull requests from forks.
    pub trusted: bool,
    /// The app repo's forge: the default for opening bump pull requests.
    pub forge: Option<Forge>,
}

/// What bump stages need beyond the plan; without it (`gantry run`) they are skipped.
#[derive(Clone)]
pub struct BumpSetup {
    pub bumper: Bumper,
    /// Base of the run links in bump commit messages.
    pub public_url: String,
    /// The config repos bumps may push to (`[gitops] repos`).
    pub allowed_repos: Vec<String>,
    /// The forge that opens pull requests, when not the app repo's.
    pub forge: Option<Forge>,
}

/// Stops the whole run when any stage's setup fails in a way no retry fixes.
#[derive(Clone)]
pub struct Executor {
    engine: Engine,
    settings: Arc<RunnerSettings>,
    registries: Arc<BTreeMap<String, RegistryCredentials>>,
    bumps: Option<BumpSetup>,
}

impl Executor {
    pub fn new(engine: Engine, settings: Arc<RunnerSettings>) -> Self {
        Self {
            engine,
            settings,
            registries: Arc::default(),
            bumps: None,
        }
    }

    /// Lets bump stages run.
    pub fn with_bumps(mut self, setup: BumpSetup) -> Self {
        self.bumps = Some(setup);
        self
    }

    /// Gives build stages the credentials of `[registries."HOST"]`.
    pub fn with_registries(mut self, registries: BTreeMap<String, RegistryCredentials>) -> Self {
        self.registries = Arc::new(registries);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs the pipeline to its end and removes its volume.
    pub async fn run(&self, job: PipelineJob, observer: Arc<dyn Observer>) -> PipelineOutcome {
        let scoped = Executor {
            engine: self.engine.scoped(),
            settings: self.settings.clone(),
            registries: self.registries.clone(),
            bumps: self.bumps.clone(),
        };
        scoped.run_scoped(job, observer).await
    }

    async fn run_scoped(&self, job: PipelineJob, observer: Arc<dyn Observer>) -> PipelineOutcome {
        let started = Instant::now();
        let volume = volume_name(&job.run_label, &job.plan.pipeline);
        let labels = vec![(RUN_LABEL.to_owned(), job.run_label.clone())];
        let needs_volume = job.plan.stages.iter().any(|stage| {
            stage.skipped.is_none() && matches!(stage.action, StageAction::Run { .. })
        });
        let prepared = if needs_volume {
            self.prepare_workspace(&job, &volume, &labels).await
        } else {
            Ok(())
        };
        let outcome = match prepared {
            Ok(()) => self.run_stages(&job, &volume, &labels, observer).await,
            Err(message) => {
                let first = job
                    .plan
                    .stages
                    .first()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                let outcome = StageOutcome {
                    state: StageState::Error,
                    exit_code: None,
                    message: Some(message),
                    duration: Duration::ZERO,
                    attempts: 0,
                };
                observer.stage_finished(&job.plan.pipeline, &first, &outcome);
                PipelineOutcome {
                    state: StageState::Error,
                    stages: vec![(first, outcome)],
                    duration: Duration::ZERO,
                }
            }
        };
        self.engine.finish_cleanup().await;
        if needs_volume {
            self.engine.remove_volume(&volume).await;
        }
        PipelineOutcome {
            duration: started.elapsed(),
            ..outcome
        }
    }

    /// Pulls the images the run needs and puts the checkout into its volume.
    async fn prepare_workspace(
        &self,
        job: &PipelineJob,
        volume: &str,
        labels: &[(String, String)],
    ) -> Result<(), String> {
        let mut images: Vec<&str> = Vec::new();
        for stage in &job.plan.stages {
            if let (None, StageAction::Run { image, .. }) = (&stage.skipped, &stage.action)
                && !images.contains(&image.as_str())
            {
                images.push(image);
            }
        }
        let pulls = futures_util::future::try_join_all(
            images
                .iter()
                .map(|image| self.engine.ensure_image(image, self.settings.pull)),
        );
        let (pulled, created) = tokio::join!(pulls, self.engine.create_volume(volume, labels));
        pulled.map_err(|err| err.to_string())?;
        created.map_err(|err| err.to_string())?;
        self.engine
            .upload_dir(&job.checkout, volume, images[0], labels)
            .await
            .map_err(|err| err.to_string())
    }

    async fn run_stages(
        &self,
        job: &PipelineJob,
        volume: &str,
        labels: &[(String, String)],
        observer: Arc<dyn Observer>,
    ) -> PipelineOutcome {
        let stages = &job.plan.stages;
        let mut states: Vec<Option<StageOutcome>> = vec![None; stages.len()];
        let mut started = vec![false; stages.len()];
        let mut running: JoinSet<(usize, StageOutcome)> = JoinSet::new();
        let mut warm: HashMap<usize, Warming> = HashMap::new();
        // What build stages hand to the stages after them (GANTRY_IMAGE…).
        let outputs: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let context = |job: &PipelineJob| StageContext {
            engine: self.engine.clone(),
            settings: self.settings.clone(),
            registries: self.registries.clone(),
            bumps: self.bumps.clone(),
            forge: job.forge,
            outputs: outputs.clone(),
            pipeline: job.plan.pipeline.clone(),
            run_label: job.run_label.clone(),
            volume: volume.to_owned(),
            labels: labels.to_vec(),
            checkout: job.checkout.clone(),
            cancel: job.cancel.clone(),
            trusted: job.trusted,
            observer: observer.clone(),
        };
        loop {
            // Start every stage whose needs are settled.
            for index in 0..stages.len() {
                if started[index] {
                    continue;
                }
                let needs = &stages[index].needs;
                if needs.iter().any(|&need| states[need].is_none()) {
                    continue;
                }
                started[index] = true;
                let stage = &stages[index];
                let blocked = needs
                    .iter()
                    .find(|&&need| !states[need].as_ref().is_some_and(|o| o.state.is_done_ok()));
                let early = if job.cancel.is_cancelled() {
                    Some((StageState::Canceled, "the run was canceled".to_owned()))
                } else if let Some(&need) = blocked {
                    Some((
                        StageState::Skipped,
                        format!("`{}` did not succeed", stages[need].name),
                    ))
                } else {
                    stage
                        .skipped
                        .clone()
                        .map(|reason| (StageState::Skipped, reason))
                };
                if let Some((state, message)) = early {
                    let outcome = StageOutcome {
                        state,
                        exit_code: None,
                        message: Some(message),
                        duration: Duration::ZERO,
                        attempts: 0,
                    };
                    observer.stage_finished(&job.plan.pipeline, &stage.name, &outcome);
                    states[index] = Some(outcome);
                    if let Some(unused) = warm.remove(&index) {
                        self.discard(unused);
                    }
                    continue;
                }
                observer.stage_started(&job.plan.pipeline, &stage.name);
                let context = context(job);
                let stage = stage.clone();
                let warmed = warm.remove(&index);
                running.spawn(async move {
                    let outcome = context.run(&stage, warmed).await;
                    context
                        .observer
                        .stage_finished(&context.pipeline, &stage.name, &outcome);
                    (index, outcome)
                });
            }
            // Start the containers of stages that will run next, while their needs run.
            // Not while a build runs: the stages after it get its image in their env.
            let build_pending = stages.iter().zip(&states).any(|(stage, state)| {
                matches!(stage.action, StageAction::Build { .. }) && state.is_none()
            });
            if !job.cancel.is_cancelled() && !build_pending {
                for index in 0..stages.len() {
                    let stage = &stages[index];
                    let next_up = !started[index]
                        && !warm.contains_key(&index)
                        && stage.skipped.is_none()
                        && matches!(stage.action, StageAction::Run { .. })
                        && stage.needs.iter().all(|&need| {
                            (started[need] || warm.contains_key(&need))
                                && states[need].as_ref().is_none_or(|o| o.state.is_done_ok())
                        });
                    if next_up && warm.len() < MAX_WARM {
                        let context = context(job);
                        let stage = stage.clone();
                        warm.insert(
                            index,
                            tokio::spawn(async move { context.warm(&stage).await }),
                        );
                    }
                }
            }
            // A stage settled without running may unblock others at once.
            if states
                .iter()
                .zip(&started)
                .any(|(s, &st)| s.is_none() && !st)
                && running.is_empty()
            {
                continue;
            }
            match running.join_next().await {
                Some(Ok((index, outcome))) => states[index] = Some(outcome),
                Some(Err(err)) => {
                    tracing::error!(error = %err, "a stage task failed");
                }
                None => break,
            }
        }
        for (_, unused) in warm.drain() {
            self.discard(unused);
        }
        let stages: Vec<(String, StageOutcome)> = stages
            .iter()
            .zip(states)
            .map(|(stage, outcome)| {
                (
                    stage.name.clone(),
                    outcome.unwrap_or(StageOutcome {
                        state: StageState::Error,
                        exit_code: None,
                        message: Some("the stage's task ended without a result".into()),
                        duration: Duration::ZERO,
                        attempts: 0,
                    }),
                )
            })
            .collect();
        PipelineOutcome {
            state: overall(stages.iter().map(|(_, o)| o.state)),
            stages,
            duration: Duration::ZERO,
        }
    }
}

/// Containers started ahead of their stage at once, at most: enough for a wide DAG's next
/// wave, few enough not to crowd the engine.
const MAX_WARM: usize = 4;

/// A stage container being started ahead of its turn.
type Warming = tokio::task::JoinHandle<Result<GatedContainer, DockerError>>;

impl Executor {
    /// Removes a container started for a stage that will not run.
    fn discard(&self, warming: Warming) {
        let engine = self.engine.clone();
        let removal = tokio::spawn(async move {
            if let Ok(Ok(container)) = warming.await {
                engine.discard(container);
            }
        });
        // Tracked like every removal, so the volume outlives the container.
        self.engine.track(removal);
    }
}

/// The worst state among a pipeline's stages decides the pipeline's.
pub fn overall(states: impl IntoIterator<Item = StageState>) -> StageState {
    let mut result = StageState::Success;
    for state in states {
        let rank = |s: StageState| match s {
            StageState::Success
            | StageState::Skipped
            | StageState::Pending
            | StageState::Running => 0,
            StageState::Failure => 2,
            StageState::Canceled => 3,
            StageState::Error => 1,
        };
        if rank(state) > rank(result) {
            result = state;
        }
    }
    result
}

pub fn volume_name(run_label: &str, pipeline: &str) -> String {
    format!("gantry-{run_label}-{pipeline}")
}

/// What one stage task needs.
struct StageContext {
    engine: Engine,
    settings: Arc<RunnerSettings>,
    registries: Arc<BTreeMap<String, RegistryCredentials>>,
    bumps: Option<BumpSetup>,
    forge: Option<Forge>,
    outputs: Arc<Mutex<Vec<(String, String)>>>,
    pipeline: String,
    run_label: String,
    volume: String,
    labels: Vec<(String, String)>,
    checkout: PathBuf,
    cancel: CancellationToken,
    trusted: bool,
    observer: Arc<dyn Observer>,
}

impl StageContext {
    /// Starts the stage's container ahead of its turn (see [`Engine::start_gated`]).
    async fn warm(&self, stage: &PlannedStage) -> Result<GatedContainer, DockerError> {
        let StageAction::Run { image, script } = &stage.action else {
            return Err(DockerError::Call {
                operation: format!("starting {}", stage.name),
                message: "only `run` stages have containers".into(),
            });
        };
        let (spec, _) = self.spec(stage, image, script, 1);
        self.engine.start_gated(&spec).await
    }

    async fn run(&self, stage: &PlannedStage, mut warmed: Option<Warming>) -> StageOutcome {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (state, exit_code, message) = match &stage.action {
                StageAction::Run { image, script } => {
                    let ready = match warmed.take() {
                        Some(warming) => warming.await.ok().and_then(Result::ok),
                        None => None,
                    };
                    self.run_container(stage, image, script, attempts, ready)
                        .await
                }
                StageAction::Validate { paths } => self.validate(&stage.name, paths).await,
                StageAction::Build { .. } => self.build(stage).await,
                StageAction::Bump { .. } => self.bump(stage).await,
            };
            let retry = matches!(state, StageState::Failure)
                && attempts <= stage.retries
                && !self.cancel.is_cancelled();
            if retry {
                self.observer.log_line(
                    &self.pipeline,
                    &stage.name,
                    &format!(
                        "gantry: attempt {attempts} failed ({}); retrying",
                        message.as_deref().unwrap_or("failed")
                    ),
                );
                continue;
            }
            return StageOutcome {
                state,
                exit_code,
                message,
                duration: started.elapsed(),
                attempts,
            };
        }
    }

    /// Builds (and pushes) the image, and hands its name, tag and digest to later stages.
    async fn build(&self, stage: &PlannedStage) -> (StageState, Option<i64>, Option<String>) {
        let StageAction::Build {
            context,
            dockerfile,
            image,
            tags,
            args,
            target,
            labels,
            push,
        } = &stage.action
        else {
            return (StageState::Error, None, Some("not a build stage".into()));
        };
        let env = |name: &str| stage.env_value(name).to_owned();
        // The OCI annotations that tie an image to its source, as `docker buildx` sets them.
        let mut all_labels = vec![
            (
                "org.opencontainers.image.source".to_owned(),
                env("GANTRY_REPO"),
            ),
            (
                "org.opencontainers.image.revision".to_owned(),
                env("GANTRY_COMMIT_SHA"),
            ),
            (
                "org.opencontainers.image.created".to_owned(),
                self.commit_time().await,
            ),
        ];
        all_labels.extend(labels.iter().cloned());
        let request = BuildRequest {
            checkout: &self.checkout,
            context,
            dockerfile,
            image,
            tags,
            args,
            target: target.as_deref(),
            labels: all_labels,
            push: *push,
            registries: &self.registries,
        };
        let result = self
            .engine
            .build_and_push(request, |line| {
                self.observer.log_line(&self.pipeline, &stage.name, line)
            })
            .await;
        match result {
            Ok(built) => {
                let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
                outputs.push(("GANTRY_IMAGE".into(), built.image.clone()));
                outputs.push(("GANTRY_IMAGE_TAG".into(), built.tag.clone()));
                outputs.push((
                    "GANTRY_IMAGE_DIGEST".into(),
                    built.digest.clone().unwrap_or_default(),
                ));
                let message = match &built.digest {
                    Some(digest) => format!("pushed {}:{} ({digest})", built.image, built.tag),
                    None => format!("built {}:{} (not pushed)", built.image, built.tag),
                };
                (StageState::Success, None, Some(message))
            }
            Err(err) => (StageState::Failure, None, Some(err.to_string())),
        }
    }

    /// Writes the built image into the config repo (see `gitops::bump`).
    async fn bump(&self, stage: &PlannedStage) -> (StageState, Option<i64>, Option<String>) {
        let StageAction::Bump {
            repo,
            branch,
            file,
            image,
            key,
            mode,
            pin,
        } = &stage.action
        else {
            return (StageState::Error, None, Some("not a bump stage".into()));
        };
        let Some(setup) = &self.bumps else {
            return (
                StageState::Skipped,
                None,
                Some("bumps run in the service, or with `gantry bump`".into()),
            );
        };
        let outputs = self
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // The newest value a build handed on under `name`.
        let lookup = |name: &str| {
            outputs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let output = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(str::to_owned);
        let fail = |message: String| (StageState::Failure, None, Some(message));
        // `${GANTRY_IMAGE…}` were left for now, when the build has run.
        let expand = |text: &str| crate::pipeline::vars::expand(text, lookup);
        let expanded = (|| -> Result<_, String> {
            Ok((
                expand(repo)?,
                expand(branch)?,
                expand(file)?,
                image.as_deref().map(expand).transpose()?,
                key.as_deref().map(expand).transpose()?,
            ))
        })();
        let (repo, branch, file, image, key) = match expanded {
            Ok(fields) => fields,
            Err(_) => return fail("no image was built in this run to bump".into()),
        };
        let Some(image) = image.or_else(|| output("GANTRY_IMAGE")) else {
            return fail("no image was built in this run to bump".into());
        };
        if !setup.allowed_repos.contains(&repo) {
            return fail(format!(
                "config repo `{repo}` is not listed in `[gitops] repos`; Gantry pushes only there"
            ));
        }
        // Only a pushed image can be deployed: a pull request's build, or `push: false`,
        // leaves nothing in the registry for the config repo to point at.
        let Some(pushed_digest) = output("GANTRY_IMAGE_DIGEST") else {
            return (
                StageState::Skipped,
                None,
                Some(
                    "the build did not push the image (a pull request, or `push: false`), so \
                     there is nothing to deploy"
                        .into(),
                ),
            );
        };
        let tag = output("GANTRY_IMAGE_TAG");
        let (tag, digest) = match pin {
            BumpPin::Tag => (tag, None),
            BumpPin::Digest => (None, Some(pushed_digest.clone())),
            BumpPin::TagAndDigest => (tag, Some(pushed_digest.clone())),
        };
        if *pin != BumpPin::Digest && tag.is_none() {
            return fail("the build gave the image no tag to bump to".into());
        }
        let env = |name: &str| stage.env_value(name).to_owned();
        let request = BumpRequest {
            repo: ConfigRepo {
                url: repo.clone(),
                branch: branch.clone(),
            },
            file: file.clone(),
            new: NewImage {
                image: image.clone(),
                tag,
                digest,
                key,
            },
            mode: *mode,
            forge: setup.forge.or(self.forge),
            source: Some(BumpSource {
                repo: env("GANTRY_REPO"),
                commit: env("GANTRY_COMMIT_SHA"),
                run_url: Some(format!(
                    "{}/runs/{}",
                    setup.public_url.trim_end_matches('/'),
                    env("GANTRY_RUN_ID")
                )),
                digest: Some(pushed_digest),
            }),
        };
        let log = |line: &str| self.observer.log_line(&self.pipeline, &stage.name, line);
        log(&format!(
            "gantry: bumping {image} in {repo} ({branch}): {file}"
        ));
        let result = setup.bumper.bump(request).await;
        let mut report = BumpReport {
            pipeline: self.pipeline.clone(),
            stage: stage.name.clone(),
            repo,
            branch,
            file,
            image,
            changes: Vec::new(),
            commit: None,
            pull_request: None,
            error: None,
        };
        let answer = match result {
            Ok(outcome) => {
                for line in outcome.change_lines() {
                    log(&format!("gantry: {line}"));
                }
                let summary = outcome.summary();
                log(&format!("gantry: {summary}"));
                report.changes = outcome.changes;
                report.commit = outcome.commit;
                report.pull_request = outcome.pull_request;
                (StageState::Success, None, Some(summary))
            }
            Err(err) => {
                report.error = Some(err.to_string());
                fail(err.to_string())
            }
        };
        self.observer
            .bump_finished(&self.pipeline, &stage.name, &report);
        answer
    }

    /// When the checked-out commit was made: the image's `created`, so that building the
    /// same commit twice gives the same image (and a cached build pushes nothing new).
    /// Outside a git checkout, now.
    async fn commit_time(&self) -> String {
        crate::git::Git::new(&self.checkout)
            .run(&["log", "-1", "--format=%cI", "HEAD"])
            .await
            .map(|time| time.trim().to_owned())
            .ok()
            .filter(|time| !time.is_empty())
            .unwrap_or_else(|| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
    }

    /// The container a stage attempt runs in, and the masker for its output.
    fn spec(
        &self,
        stage: &PlannedStage,
        image: &str,
        script: &str,
        attempt: u32,
    ) -> (ContainerSpec, Masker) {
        let masker = Masker::new(stage.secrets.iter().map(|(_, secret)| secret));
        let mut env: Vec<String> = stage.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(
            stage
                .secrets
                .iter()
                .map(|(k, v)| format!("{k}={}", v.expose())),
        );
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        env.extend(outputs.iter().map(|(k, v)| format!("{k}={v}")));
        drop(outputs);
        let mut labels = self.labels.clone();
        labels.push(("gantry.stage".into(), stage.name.clone()));
        let spec = ContainerSpec {
            name: format!(
                "gantry-{}-{}-{}-{attempt}",
                self.run_label, self.pipeline, stage.name
            ),
            image: with_default_tag(image),
            script: script.to_owned(),
            env,
            labels,
            volume: self.volume.clone(),
            timeout: stage.timeout.unwrap_or(self.settings.stage_timeout),
            memory_bytes: self.settings.stage_memory_bytes(),
            nano_cpus: self.settings.stage_nano_cpus(),
            trusted: self.trusted,
        };
        (spec, masker)
    }

    async fn run_container(
        &self,
        stage: &PlannedStage,
        image: &str,
        script: &str,
        attempt: u32,
        warmed: Option<GatedContainer>,
    ) -> (StageState, Option<i64>, Option<String>) {
        let (spec, masker) = self.spec(stage, image, script, attempt);
        let mut splitters: HashMap<bool, LineSplitter> = HashMap::new();
        let emit = |line: &str| {
            self.observer
                .log_line(&self.pipeline, &stage.name, &masker.mask(line));
        };
        let on_output = |stream: OutputStream, chunk: &[u8]| {
            splitters
                .entry(stream == OutputStream::Stderr)
                .or_default()
                .push(chunk, emit);
        };
        let result = match warmed {
            Some(container) => {
                self.engine
                    .release(container, spec.timeout, &self.cancel, on_output)
                    .await
            }
            None => {
                self.engine
                    .run_container(&spec, &self.cancel, on_output)
                    .await
            }
        };
        for splitter in splitters.values_mut() {
            splitter.finish(emit);
        }
        match result {
            Ok(ContainerExit::Exited(0)) => (StageState::Success, Some(0), None),
            Ok(ContainerExit::Exited(code)) => (
                StageState::Failure,
                Some(code),
                Some(format!("exit code {code}")),
            ),
            Ok(ContainerExit::TimedOut) => (
                StageState::Failure,
                None,
                Some(format!(
                    "timed out after {}",
                    humantime::format_duration(spec.timeout)
                )),
            ),
            Ok(ContainerExit::Canceled) => (StageState::Canceled, None, Some("canceled".into())),
            Err(err) => (StageState::Error, None, Some(err.to_string())),
        }
    }

    async fn validate(
        &self,
        stage: &str,
        paths: &[crate::pipeline::Pattern],
    ) -> (StageState, Option<i64>, Option<String>) {
        let root = self.checkout.clone();
        let patterns = paths.to_vec();
        let report = tokio::task::spawn_blocking(move || {
            crate::gitops::validate::check_tree(&root, &patterns)
        })
        .await;
        let report = match report {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => {
                return (
                    StageState::Error,
                    None,
                    Some(format!("reading the checkout: {err}")),
                );
            }
            Err(err) => {
                return (
                    StageState::Error,
                    None,
                    Some(format!("the check stopped: {err}")),
                );
            }
        };
        for finding in &report.findings {
            self.observer
                .log_line(&self.pipeline, stage, &finding.to_string());
        }
        if report.files_checked == 0 {
            let patterns: Vec<&str> = paths.iter().map(|p| p.text.as_str()).collect();
            return (
                StageState::Failure,
                None,
                Some(format!("no file matches {}", patterns.join(", "))),
            );
        }
        match report.findings.first() {
            None => (StageState::Success, None, None),
            Some(first) => (
                StageState::Failure,
                None,
                Some(format!(
                    "{} finding(s), first at {first}",
                    report.findings.len()
                )),
            ),
        }
    }
}
