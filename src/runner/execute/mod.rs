//! Running one planned pipeline: its stages as a DAG (`dag.rs`), independent ones side by
//! side, each stage by its kind: `run` in its own container on the run's shared workspace
//! volume (`run.rs`), `build` (`build.rs`), `validate` (`validate.rs`) and `bump`
//! (`bump.rs`). What every kind shares, retries included, is in `stage.rs`.

mod build;
mod bump;

pub use build::PUSHED;
mod caches;
mod dag;
mod run;
mod services;
mod stage;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::engine::{DockerError, Engine, RUN_LABEL};
use crate::config::{RegistryCredentials, RunnerSettings};
use crate::domain::{Forge, StageState, describe};
use crate::gitops::bump::Bumper;
use crate::gitops::stage::BumpPolicy;
use crate::pipeline::{Plan, StageAction};
use crate::store::{BumpReport, CacheReport};

/// How one stage ended.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub state: StageState,
    pub exit_code: Option<i64>,
    /// What happened, for people: "exit code 2", "timed out after 20m", the skip reason.
    pub message: Option<String>,
    pub duration: Duration,
    pub attempts: u32,
    /// Bytes of output dropped beyond `runner.max_log_size`.
    pub log_dropped: u64,
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
    /// How a cache was restored, and later whether it was saved.
    fn cache_report(&self, _report: &CacheReport) {}
}

pub use caches::{CACHE_VOLUME_PREFIX, CacheSetup};

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
    /// Where the pipeline's caches live; without it they are not used.
    pub cache: Option<CacheSetup>,
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

impl BumpSetup {
    fn policy(&self) -> BumpPolicy<'_> {
        BumpPolicy {
            allowed_repos: &self.allowed_repos,
            forge: self.forge,
        }
    }
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
            Ok(()) if needs_volume => self.run_around(&job, &volume, &labels, &observer).await,
            Ok(()) => {
                self.run_stages(&job, &volume, &labels, None, &[], observer.clone())
                    .await
            }
            Err(err) => {
                let first = job
                    .plan
                    .stages
                    .first()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                let outcome = StageOutcome {
                    state: StageState::Error,
                    exit_code: None,
                    message: Some(describe(&err)),
                    duration: Duration::ZERO,
                    attempts: 0,
                    log_dropped: 0,
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

    /// The stages with what surrounds them: caches restored, services started; then the
    /// services stopped and, once the stages' containers are gone, the caches saved.
    async fn run_around(
        &self,
        job: &PipelineJob,
        volume: &str,
        labels: &[(String, String)],
        observer: &Arc<dyn Observer>,
    ) -> PipelineOutcome {
        let caches = self.restore_caches(job, volume, labels, observer).await;
        let outcome = if job.plan.services.is_empty() {
            self.run_stages(job, volume, labels, None, &caches.mounts, observer.clone())
                .await
        } else {
            let (services, ready) = self.start_services(job, labels, observer).await;
            let outcome = match &ready {
                Ok(()) => {
                    self.run_stages(
                        job,
                        volume,
                        labels,
                        Some(&services.network),
                        &caches.mounts,
                        observer.clone(),
                    )
                    .await
                }
                Err(not_ready) => skip_all(job, not_ready, observer),
            };
            self.engine.finish_cleanup().await;
            self.stop_services(job, services, ready.as_ref().err(), observer)
                .await;
            outcome
        };
        self.engine.finish_cleanup().await;
        self.save_caches(job, volume, labels, caches, outcome.state, observer)
            .await;
        outcome
    }

    /// Pulls the images the run needs and puts the checkout into its volume.
    async fn prepare_workspace(
        &self,
        job: &PipelineJob,
        volume: &str,
        labels: &[(String, String)],
    ) -> Result<(), DockerError> {
        let mut images: Vec<&str> = Vec::new();
        for stage in &job.plan.stages {
            if let (None, StageAction::Run { image, .. }) = (&stage.skipped, &stage.action)
                && !images.contains(&image.as_str())
            {
                images.push(image);
            }
        }
        for service in &job.plan.services {
            if !images.contains(&service.image.as_str()) {
                images.push(&service.image);
            }
        }
        let pulls = futures_util::future::try_join_all(
            images
                .iter()
                .map(|image| self.engine.ensure_image(image, self.settings.pull)),
        );
        let (pulled, created) = tokio::join!(pulls, self.engine.create_volume(volume, labels));
        pulled?;
        created?;
        self.engine
            .upload_dir(&job.checkout, volume, images[0], labels)
            .await
    }
}

/// The pipeline's end when a service never got ready: that service's stage is the error
/// (reported when its service stops), and no stage ran.
fn skip_all(
    job: &PipelineJob,
    not_ready: &services::NotReady,
    observer: &Arc<dyn Observer>,
) -> PipelineOutcome {
    let message = format!("`{}` never got ready", not_ready.stage);
    let mut stages = vec![(
        not_ready.stage.clone(),
        StageOutcome {
            state: StageState::Error,
            exit_code: None,
            message: Some(not_ready.message.clone()),
            duration: Duration::ZERO,
            attempts: 0,
            log_dropped: 0,
        },
    )];
    for stage in &job.plan.stages {
        let outcome = StageOutcome {
            state: StageState::Skipped,
            exit_code: None,
            message: Some(message.clone()),
            duration: Duration::ZERO,
            attempts: 0,
            log_dropped: 0,
        };
        observer.stage_finished(&job.plan.pipeline, &stage.name, &outcome);
        stages.push((stage.name.clone(), outcome));
    }
    PipelineOutcome {
        state: StageState::Error,
        stages,
        duration: Duration::ZERO,
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
