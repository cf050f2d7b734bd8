//! One stage task: what it needs whatever its kind, how an attempt ends, and the retries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::dag::Warming;
use super::{BumpSetup, Observer, StageOutcome};
use crate::config::{RegistryCredentials, RunnerSettings};
use crate::domain::{Forge, StageState};
use crate::pipeline::{PlannedStage, StageAction};
use crate::runner::engine::Engine;
use crate::runner::logs::LogBudget;

/// What one stage task needs.
pub(super) struct StageContext {
    pub engine: Engine,
    pub settings: Arc<RunnerSettings>,
    pub registries: Arc<BTreeMap<String, RegistryCredentials>>,
    pub bumps: Option<BumpSetup>,
    /// The app repo's forge: the default for opening bump pull requests.
    pub forge: Option<Forge>,
    /// What build stages hand to the stages after them (`GANTRY_IMAGE…`), newest last.
    pub outputs: Arc<Mutex<Vec<(String, String)>>>,
    pub pipeline: String,
    pub run_label: String,
    pub volume: String,
    /// The pipeline's network, when it has services.
    pub network: Option<String>,
    /// Volumes of cached absolute paths, mounted in every `run` stage: (volume, path).
    pub mounts: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub checkout: PathBuf,
    /// What this stage may still write to its log.
    pub log_budget: LogBudget,
    pub cancel: CancellationToken,
    pub trusted: bool,
    pub observer: Arc<dyn Observer>,
}

/// How one attempt of a stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StageEnd {
    pub state: StageState,
    pub exit_code: Option<i64>,
    /// What happened, for people: "exit code 2", "timed out after 20m", the skip reason.
    pub message: Option<String>,
}

impl StageEnd {
    pub fn success(message: Option<String>) -> Self {
        Self::with(StageState::Success, message)
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self::with(StageState::Failure, Some(message.into()))
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::with(StageState::Error, Some(message.into()))
    }

    pub fn skipped(message: impl Into<String>) -> Self {
        Self::with(StageState::Skipped, Some(message.into()))
    }

    fn with(state: StageState, message: Option<String>) -> Self {
        Self {
            state,
            exit_code: None,
            message,
        }
    }
}

impl StageContext {
    /// Runs the stage, again after a failure while it has retries left.
    pub async fn run(&self, stage: &PlannedStage, mut warmed: Option<Warming>) -> StageOutcome {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let end = match &stage.action {
                StageAction::Run { image, script } => {
                    let ready = match warmed.take() {
                        Some(warming) => warming.await.ok().and_then(Result::ok),
                        None => None,
                    };
                    self.run_container(stage, image, script, attempts, ready)
                        .await
                }
                StageAction::Validate(selection) => self.validate(&stage.name, selection).await,
                StageAction::Build(build) => self.build(stage, build).await,
                StageAction::Bump(bump) => self.bump(stage, bump).await,
            };
            let retry = end.state == StageState::Failure
                && attempts <= stage.retries
                && !self.cancel.is_cancelled();
            if retry {
                self.log(
                    &stage.name,
                    &format!(
                        "gantry: attempt {attempts} failed ({}); retrying",
                        end.message.as_deref().unwrap_or("failed")
                    ),
                );
                continue;
            }
            let log_dropped = self.log_budget.dropped();
            if log_dropped > 0 {
                self.observer.log_line(
                    &self.pipeline,
                    &stage.name,
                    &format!(
                        "gantry: the log was cut at {} (runner.max_log_size): {log_dropped} \
                         bytes of output were dropped",
                        size_text(self.settings.max_log_size)
                    ),
                );
            }
            return StageOutcome {
                state: end.state,
                exit_code: end.exit_code,
                message: end.message,
                duration: started.elapsed(),
                attempts,
                log_dropped,
            };
        }
    }

    /// One line of the stage's log, kept while the log has room.
    pub fn log(&self, stage: &str, line: &str) {
        if self.log_budget.take(line) {
            self.observer.log_line(&self.pipeline, stage, line);
        }
    }
}

/// A size for people: `16 MiB`, `4 KiB`, `512 bytes`.
fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}
