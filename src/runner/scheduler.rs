//! The server's runner: takes queued runs from the store, at most `runner.max_parallel_runs`
//! at a time, and carries each from checkout to result. Several replicas can share one
//! PostgreSQL store; each run is claimed by one of them, which heartbeats while it works.

use crate::metrics::{Metrics, ResultLabels, RunLabels};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::execute::{Executor, Observer, PipelineJob, PipelineOutcome, overall};
use super::prepare::{Prepared, Skip, Verdict, prepare};
use super::record::{Recorder, StatusTemplate};
use crate::config::Settings;
use crate::domain::{CommitStatus, RunState, StageState, StatusState};
use crate::forge::{Forges, status_ref};
use crate::store::{Backend, ClaimedRun, Store};

mod abandoned;
mod announce;

pub use abandoned::resolve_abandoned_pipelines;

/// How often a busy runner says it still owns its runs (and looks for cancel requests).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A run whose runner has not heartbeated for this long is taken back and queued again.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often the queue is looked at when no in-process notification arrives (runs queued
/// by another replica).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct Scheduler {
    store: Store,
    executor: Executor,
    settings: Arc<Settings>,
    runner_id: String,
    /// Where statuses can be reported; forges without a token get none.
    forges: Option<Forges>,
    metrics: Option<Metrics>,
    /// Whether an announcement pass (`announce.rs`) is going on.
    announcing: AtomicBool,
}

impl Scheduler {
    pub fn new(
        store: Store,
        executor: Executor,
        settings: Arc<Settings>,
        forges: Option<Forges>,
    ) -> Self {
        let runner_id = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            store,
            executor,
            settings,
            runner_id,
            forges,
            metrics: None,
            announcing: AtomicBool::new(false),
        }
    }

    /// Counts finished runs and stage durations.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The status every pipeline of this run reports, or `None` when the forge gets none.
    fn status_template(&self, claimed: &ClaimedRun) -> Option<StatusTemplate> {
        let event = &claimed.event;
        if !self
            .forges
            .as_ref()
            .is_some_and(|forges| forges.reports_to(event.forge))
        {
            return None;
        }
        let request = event.run_request().ok()?;
        Some(StatusTemplate {
            status: CommitStatus {
                forge: event.forge,
                repo: claimed.repo.clone(),
                sha: request.commit_sha.clone(),
                git_ref: status_ref(event.forge, &request.git_ref, request.pr_number),
                context: String::new(),
                state: StatusState::Pending,
                description: String::new(),
                target_url: format!(
                    "{}/runs/{}",
                    self.settings.server.public_url.trim_end_matches('/'),
                    claimed.id
                ),
            },
        })
    }

    async fn report(
        &self,
        run_id: i64,
        template: Option<&StatusTemplate>,
        pipeline: &str,
        state: StatusState,
        description: &str,
    ) {
        let Some(template) = template else { return };
        let status = template.for_pipeline(pipeline, state, description);
        if let Err(err) = self.store.queue_status(run_id, &status).await {
            tracing::error!(run_id, error = %format!("{err:#}"), "queueing a status failed");
        }
    }

    /// Takes back what a previous process left: runs it was running are queued again once,
    /// and containers and volumes of runs nobody runs are removed.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let stale_before = crate::store::now_millis() - LEASE.as_millis() as i64;
        // With SQLite there is one process; whatever is `running` at start was interrupted.
        let all_running = self.store.backend() == Backend::Sqlite;
        let recovered = self
            .store
            .recover_interrupted(stale_before, all_running)
            .await?;
        if !recovered.is_empty() {
            tracing::warn!(runs = ?recovered, "took back runs interrupted by a stopped runner");
        }
        let running: Vec<String> = self
            .store
            .running_run_ids()
            .await?
            .into_iter()
            .map(|id| self.run_label(id))
            .collect();
        let prefix = format!("{}-", self.store.installation());
        let removed = self.executor.engine().reap_except(&prefix, &running).await;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed containers and volumes left by earlier runs"
            );
        }
        Ok(())
    }

    /// Works the queue until `shutdown` is canceled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.settings.runner.max_parallel_runs));
        loop {
            if let Err(err) = self.store.supersede_older_runs().await {
                tracing::error!(error = %format!("{err:#}"), "superseding older runs failed");
            }
            if let Err(err) = resolve_abandoned_pipelines(&self.store).await {
                tracing::error!(error = %format!("{err:#}"), "resolving abandoned pipelines failed");
            }
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                match self.store.claim_run(&self.runner_id).await {
                    Ok(Some(claimed)) => {
                        let scheduler = self.clone();
                        tokio::spawn(async move {
                            scheduler.execute(claimed).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(error = %format!("{err:#}"), "claiming a run failed");
                        break;
                    }
                }
            }
            if slots.available_permits() == 0 {
                self.announce_waiting();
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.store.queued().notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// The label value (and name part) of everything a run creates on the engine.
    pub fn run_label(&self, run_id: i64) -> String {
        format!("{}-{run_id}", self.store.installation())
    }

    async fn execute(&self, claimed: ClaimedRun) {
        let run_id = claimed.id;
        tracing::info!(run_id, repo = %claimed.repo, attempt = claimed.attempts, "run started");
        let cancel = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            run_id,
            self.runner_id.clone(),
            cancel.clone(),
        ));
        let (state, description) = match self.execute_pipelines(&claimed, &cancel).await {
            Ok(result) => result,
            Err(err) => (RunState::Error, Some(format!("{err:#}"))),
        };
        heartbeat.abort();
        let state = if cancel.is_cancelled() && state != RunState::Success {
            RunState::Canceled
        } else {
            state
        };
        if let Err(err) = self
            .store
            .finish_run(run_id, state, description.as_deref())
            .await
        {
            tracing::error!(run_id, error = %format!("{err:#}"), "recording a run's end failed");
        }
        if let Some(metrics) = &self.metrics {
            metrics
                .runs
                .get_or_create(&RunLabels {
                    repo: claimed.repo.to_string(),
                    result: state.as_str(),
                })
                .inc();
        }
        tracing::info!(run_id, state = state.as_str(), "run finished");
    }

    async fn execute_pipelines(
        &self,
        claimed: &ClaimedRun,
        cancel: &CancellationToken,
    ) -> anyhow::Result<(RunState, Option<String>)> {
        let prepared = match prepare(&self.settings, self.forges.as_ref(), claimed).await? {
            Ok(prepared) => prepared,
            Err(Skip(why)) => return Ok((RunState::Skipped, Some(why))),
        };
        let Prepared {
            repo,
            checkout,
            from_fork,
            verdicts,
        } = prepared;
        let template = self.status_template(claimed);
        let mut plans = Vec::new();
        let mut states = Vec::new();
        for verdict in verdicts {
            let (name, file, state, description) = match verdict {
                Verdict::Runs(plan) => {
                    plans.push(plan);
                    continue;
                }
                Verdict::Ends {
                    name,
                    file,
                    state,
                    description,
                } => (name, file, state, description),
            };
            self.store
                .set_pipeline(claimed.id, &name, &file, state, Some(&description))
                .await?;
            if state == StageState::Error {
                self.report(
                    claimed.id,
                    template.as_ref(),
                    &name,
                    StatusState::Error,
                    &description,
                )
                .await;
                states.push(state);
            }
        }

        let mut positions = HashMap::new();
        for plan in &plans {
            self.store
                .set_pipeline(
                    claimed.id,
                    &plan.pipeline,
                    &plan.file,
                    StageState::Running,
                    None,
                )
                .await?;
            self.report(
                claimed.id,
                template.as_ref(),
                &plan.pipeline,
                StatusState::Pending,
                "starting",
            )
            .await;
            for (position, stage) in plan.stages.iter().enumerate() {
                positions.insert((plan.pipeline.clone(), stage.name.clone()), position as i64);
                self.store
                    .set_stage(&crate::store::StageUpdate {
                        run_id: claimed.id,
                        pipeline: &plan.pipeline,
                        stage: &stage.name,
                        position: position as i64,
                        state: StageState::Pending,
                        exit_code: None,
                        message: None,
                        attempts: 0,
                        started: false,
                        finished: false,
                        log_dropped: 0,
                    })
                    .await?;
            }
        }
        let (recorder, writer) =
            Recorder::start(self.store.clone(), claimed.id, positions, template.clone());
        let observer: Arc<dyn Observer> = Arc::new(recorder);
        let mut tasks = tokio::task::JoinSet::new();
        for plan in plans {
            let job = PipelineJob {
                plan,
                run_label: self.run_label(claimed.id),
                checkout: checkout.dir.path().to_owned(),
                cancel: cancel.clone(),
                trusted: repo.trusted && !from_fork,
                forge: Some(repo.forge),
            };
            let executor = self.executor.clone();
            let observer = observer.clone();
            tasks.spawn(async move {
                let name = job.plan.pipeline.clone();
                let file = job.plan.file.clone();
                (name, file, executor.run(job, observer).await)
            });
        }
        while let Some(result) = tasks.join_next().await {
            let (name, file, outcome) = result.context("a pipeline task failed")?;
            if let Some(metrics) = &self.metrics {
                for (_, stage) in &outcome.stages {
                    if stage.attempts > 0 {
                        metrics
                            .stage_durations
                            .get_or_create(&ResultLabels {
                                result: stage.state.as_str(),
                            })
                            .observe(stage.duration.as_secs_f64());
                    }
                }
            }
            let failed = outcome
                .stages
                .iter()
                .find(|(_, o)| !matches!(o.state, StageState::Success | StageState::Skipped));
            let description = failed.map(|(stage, o)| {
                format!(
                    "{stage}: {}",
                    o.message.clone().unwrap_or_else(|| o.state.as_str().into())
                )
            });
            self.store
                .set_pipeline(
                    claimed.id,
                    &name,
                    &file,
                    outcome.state,
                    description.as_deref(),
                )
                .await?;
            let (state, text) = final_status(&outcome, description.as_deref());
            self.report(claimed.id, template.as_ref(), &name, state, &text)
                .await;
            states.push(outcome.state);
        }
        drop(observer);
        let _ = writer.await;
        Ok((run_state(overall(states)), None))
    }
}

/// A finished pipeline's status: its state, and for a failure the stage and why.
fn final_status(outcome: &PipelineOutcome, failure: Option<&str>) -> (StatusState, String) {
    match outcome.state {
        StageState::Success | StageState::Skipped | StageState::Pending | StageState::Running => {
            let took = Duration::from_secs(outcome.duration.as_secs().max(1));
            (
                StatusState::Success,
                format!("passed in {}", humantime::format_duration(took)),
            )
        }
        StageState::Failure => (StatusState::Failure, failure.unwrap_or("failed").to_owned()),
        StageState::Error => (StatusState::Error, failure.unwrap_or("error").to_owned()),
        StageState::Canceled => (StatusState::Canceled, "canceled".into()),
    }
}

fn run_state(state: StageState) -> RunState {
    match state {
        StageState::Success | StageState::Pending | StageState::Running => RunState::Success,
        StageState::Skipped => RunState::Skipped,
        StageState::Failure => RunState::Failure,
        StageState::Canceled => RunState::Canceled,
        StageState::Error => RunState::Error,
    }
}

async fn heartbeat(store: Store, run_id: i64, runner: String, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        ticker.tick().await;
        match store.heartbeat(run_id, &runner).await {
            Ok(true) => {
                tracing::info!(run_id, "cancel requested");
                cancel.cancel();
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(run_id, error = %format!("{err:#}"), "heartbeat failed"),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "gantry".into())
}
