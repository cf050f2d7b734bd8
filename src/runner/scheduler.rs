//! The server's runner: takes queued runs from the store, at most `runner.max_parallel_runs`
//! at a time, and carries each from checkout to result. Runners on several machines share
//! one PostgreSQL store: each run is claimed by one of them, which heartbeats while it
//! holds it; every runner, on every poll, takes back the runs of a runner silent past its
//! lease (`fleet.rs`). A runner drains on SIGTERM: it takes nothing new and finishes or
//! hands back what it holds.

use crate::metrics::{Metrics, ResultLabels, RunLabels};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::execute::{
    CACHE_VOLUME_PREFIX, CacheSetup, Executor, Observer, PipelineJob, PipelineOutcome, overall,
};
use super::prepare::{Prepared, Skip, Verdict, prepare, read_schedules};
use super::record::{Recorder, StatusTemplate};
use crate::config::Settings;
use crate::domain::{CommitStatus, RunState, StageState, StatusState};
use crate::forge::{Forges, status_ref};
use crate::pipeline::Service;
use crate::store::{Backend, ClaimedRun, Hold, RunnerIdentity, Store};

mod abandoned;
mod announce;
mod fleet;
mod schedules;

pub use abandoned::resolve_abandoned_pipelines;
use fleet::{InHand, Stop};
pub use schedules::fire_due;

/// How often the queue is looked at when no in-process notification arrives (runs queued
/// by another replica).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub struct Scheduler {
    store: Store,
    executor: Executor,
    settings: Arc<Settings>,
    identity: RunnerIdentity,
    /// Where statuses can be reported; forges without a token get none.
    forges: Option<Forges>,
    metrics: Option<Metrics>,
    /// Whether an announcement pass (`announce.rs`) is going on.
    announcing: AtomicBool,
    /// The runs this process holds, by id, with how to stop each.
    held: Mutex<HashMap<i64, Arc<InHand>>>,
    /// Set on the first SIGTERM: nothing new is claimed.
    draining: AtomicBool,
    /// Woken when a run in hand ends, so its slot is filled at once, not at the next poll.
    slot_freed: tokio::sync::Notify,
}

/// When the queue's upkeep last ran.
#[derive(Default)]
struct Chores {
    settled: Option<std::time::Instant>,
    reaped: Option<std::time::Instant>,
}

/// How a run in hand left this runner.
enum Outcome {
    /// It ended here, as recorded.
    Ended(RunState, Option<String>),
    /// It asks for labels this runner lacks; it went back to the queue for another.
    NotForThisRunner,
}

impl Scheduler {
    pub fn new(
        store: Store,
        executor: Executor,
        settings: Arc<Settings>,
        forges: Option<Forges>,
    ) -> Self {
        let name = settings.runner.name.clone().unwrap_or_else(hostname);
        let mut labels = settings.runner.labels.clone();
        labels.sort();
        labels.dedup();
        let identity = RunnerIdentity {
            id: format!(
                "{name}-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            name,
            labels,
            capacity: settings.runner.max_parallel_runs as i64,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        Self {
            store,
            executor,
            settings,
            identity,
            forges,
            metrics: None,
            announcing: AtomicBool::new(false),
            held: Mutex::default(),
            draining: AtomicBool::new(false),
            slot_freed: tokio::sync::Notify::new(),
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
        hold: &Hold,
        template: Option<&StatusTemplate>,
        pipeline: &str,
        state: StatusState,
        description: &str,
    ) {
        let Some(template) = template else { return };
        let status = template.for_pipeline(pipeline, state, description);
        if let Err(err) = self.store.queue_status(hold, &status).await {
            tracing::error!(run_id = hold.run_id, error = %format!("{err:#}"), "queueing a status failed");
        }
    }

    /// Joins the fleet and takes back what a previous process left: runs it was running
    /// are queued again (with SQLite, the only process, all of them), and containers and
    /// volumes of runs nobody runs are removed.
    pub async fn recover(&self) -> anyhow::Result<()> {
        // With SQLite there is one process; whatever is `running` at start was interrupted.
        let all_running = self.store.backend() == Backend::Sqlite;
        self.store
            .register_runner(&self.identity, self.lease_millis(), all_running)
            .await?;
        self.take_back_lost(all_running).await?;
        self.reap_leftovers().await?;
        self.read_schedules_in_background();
        Ok(())
    }

    /// Reads each configured repo's schedules from its default branch, in the background:
    /// a start must not wait on git.
    fn read_schedules_in_background(&self) {
        let (settings, forges, store) = (
            self.settings.clone(),
            self.forges.clone(),
            self.store.clone(),
        );
        tokio::spawn(async move {
            for repo in &settings.repos {
                if let Err(err) = read_schedules(&settings, forges.as_ref(), &store, repo).await {
                    tracing::warn!(repo = %repo.name, error = %format!("{err:#}"),
                        "reading the repo's schedules at start failed");
                }
            }
        });
    }

    /// Works the queue until `drain` is canceled, then drains: takes nothing new, lets the
    /// runs in hand finish for up to `[runner] drain_timeout` (or until `now` is
    /// canceled), hands back the rest, and leaves the fleet.
    pub async fn run(self: Arc<Self>, drain: CancellationToken, now: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.settings.runner.max_parallel_runs));
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let mut chores = Chores::default();
        while !drain.is_cancelled() {
            self.settle(&mut chores).await;
            self.claim(&slots).await;
            tokio::select! {
                () = drain.cancelled() => {}
                () = self.store.queued().notified() => {}
                () = self.slot_freed.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
        self.drain(&slots, now).await;
        heartbeat.abort();
        if let Err(err) = self.store.unregister_runner(&self.identity.id).await {
            tracing::error!(error = %format!("{err:#}"), "leaving the fleet failed");
        }
    }

    /// The queue's upkeep, once per poll interval however often the runner wakes: runs of
    /// lost runners taken back, superseded runs canceled, abandoned pipelines settled, and
    /// what lost attempts left on this engine removed (after a take-back, and about once
    /// per lease).
    async fn settle(&self, chores: &mut Chores) {
        let now = std::time::Instant::now();
        if chores.settled.is_some_and(|at| now - at < POLL_INTERVAL) {
            return;
        }
        chores.settled = Some(now);
        let took = self.take_back_lost(false).await.unwrap_or_else(|err| {
            tracing::error!(error = %format!("{err:#}"), "taking back lost runs failed");
            false
        });
        if took || chores.reaped.is_none_or(|at| now - at >= self.lease()) {
            chores.reaped = Some(now);
            if let Err(err) = self.reap_leftovers().await {
                tracing::error!(error = %format!("{err:#}"), "removing leftovers failed");
            }
        }
        if let Err(err) = self.store.supersede_older_runs().await {
            tracing::error!(error = %format!("{err:#}"), "superseding older runs failed");
        }
        if let Err(err) = resolve_abandoned_pipelines(&self.store).await {
            tracing::error!(error = %format!("{err:#}"), "resolving abandoned pipelines failed");
        }
        let settings = &self.settings;
        let configured = |event: &crate::webhook::Event| {
            event
                .repo
                .as_ref()
                .is_some_and(|repo| settings.repo(event.forge, &repo.full_name).is_some())
        };
        if let Err(err) = fire_due(&self.store, crate::store::now_millis(), configured).await {
            tracing::error!(error = %format!("{err:#}"), "firing schedules failed");
        }
    }

    /// Claims as many runs as there are free slots (never one a newer run of its ref
    /// supersedes; claiming asks older running ones of its ref to cancel).
    async fn claim(self: &Arc<Self>, slots: &Arc<Semaphore>) {
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            if self.is_draining() {
                break;
            }
            let asked = std::time::Instant::now();
            match self
                .store
                .claim_run(&self.identity.id, &self.identity.labels)
                .await
            {
                Ok(Some(claimed)) => {
                    // What `scripts/bench-dispatch.sh` reads from the log.
                    let claim_ms = asked.elapsed().as_secs_f64() * 1000.0;
                    let in_hand = self.take_in_hand(claimed.id);
                    let scheduler = self.clone();
                    tokio::spawn(async move {
                        scheduler.execute(claimed, in_hand, claim_ms).await;
                        drop(permit);
                        scheduler.slot_freed.notify_one();
                    });
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "claiming a run failed");
                    break;
                }
            }
        }
        // Blocked runs are announced whatever the slots; queued ones when they must wait.
        self.announce_waiting(slots.available_permits() == 0);
    }

    async fn execute(&self, claimed: ClaimedRun, in_hand: Arc<InHand>, claim_ms: f64) {
        let run_id = claimed.id;
        let hold = Hold {
            run_id,
            runner: self.identity.id.clone(),
        };
        let label = self.store.run_label(run_id, claimed.attempts);
        tracing::info!(
            run_id,
            repo = %claimed.repo,
            attempt = claimed.attempts,
            claim_ms,
            "run started"
        );
        let outcome = match self
            .execute_pipelines(&claimed, &hold, &label, &in_hand.cancel)
            .await
        {
            Ok(outcome) => outcome,
            Err(err) => Outcome::Ended(RunState::Error, Some(format!("{err:#}"))),
        };
        match (in_hand.stop(), outcome) {
            (_, Outcome::NotForThisRunner) => {}
            (Some(Stop::Lost), _) => {
                let removed = self.executor.engine().reap(Some(&label)).await;
                tracing::warn!(
                    run_id,
                    removed,
                    "the run was taken back while this runner was silent; stopped it here"
                );
            }
            (Some(Stop::HandBack), _) => self.hand_back(&hold, &label).await,
            (stop, Outcome::Ended(state, description)) => {
                let state = if stop == Some(Stop::Canceled) && state != RunState::Success {
                    RunState::Canceled
                } else {
                    state
                };
                self.finish(&claimed, &hold, state, description.as_deref())
                    .await;
            }
        }
        self.release(run_id);
    }

    async fn finish(
        &self,
        claimed: &ClaimedRun,
        hold: &Hold,
        state: RunState,
        description: Option<&str>,
    ) {
        let run_id = hold.run_id;
        match self.store.finish_run(hold, state, description).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    run_id,
                    "the run was taken back before it ended here; its end is not recorded"
                );
                return;
            }
            Err(err) => {
                tracing::error!(run_id, error = %format!("{err:#}"), "recording a run's end failed");
            }
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
        hold: &Hold,
        run_label: &str,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Outcome> {
        let prepared =
            match prepare(&self.settings, self.forges.as_ref(), &self.store, claimed).await? {
                Ok(prepared) => prepared,
                Err(Skip(why)) => return Ok(Outcome::Ended(RunState::Skipped, Some(why))),
            };
        let Prepared {
            repo,
            checkout,
            from_fork,
            verdicts,
        } = prepared;
        let template = self.status_template(claimed);
        if self
            .not_for_this_runner(hold, &verdicts, template.as_ref())
            .await?
        {
            return Ok(Outcome::NotForThisRunner);
        }
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
                .set_pipeline(hold, &name, &file, state, Some(&description))
                .await?;
            if state == StageState::Error {
                self.report(
                    hold,
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
            // Services come first among the pipeline's stages, in the order written.
            for (position, service) in plan.services.iter().enumerate() {
                let stage = Service::stage_name(&service.name);
                let position = position as i64 - plan.services.len() as i64;
                positions.insert((plan.pipeline.clone(), stage), position);
            }
            self.store
                .set_pipeline(hold, &plan.pipeline, &plan.file, StageState::Running, None)
                .await?;
            self.report(
                hold,
                template.as_ref(),
                &plan.pipeline,
                StatusState::Pending,
                "starting",
            )
            .await;
            for (position, stage) in plan.stages.iter().enumerate() {
                positions.insert((plan.pipeline.clone(), stage.name.clone()), position as i64);
                self.store
                    .set_stage(
                        hold,
                        &crate::store::StageUpdate {
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
                        },
                    )
                    .await?;
            }
        }
        let (recorder, writer) = Recorder::start(
            self.store.clone(),
            hold.clone(),
            positions,
            template.clone(),
            self.settings.clone(),
        );
        let observer: Arc<dyn Observer> = Arc::new(recorder);
        let mut tasks = tokio::task::JoinSet::new();
        for plan in plans {
            let job = PipelineJob {
                plan,
                run_label: run_label.to_owned(),
                checkout: checkout.dir.path().to_owned(),
                cancel: cancel.clone(),
                trusted: repo.trusted && !from_fork,
                forge: Some(repo.forge),
                cache: CacheSetup::for_event(
                    format!("{CACHE_VOLUME_PREFIX}-{}", self.store.installation()),
                    &repo,
                    &claimed.event,
                    self.settings.runner.cache_max_size,
                ),
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
                .set_pipeline(hold, &name, &file, outcome.state, description.as_deref())
                .await?;
            let (state, text) = final_status(&outcome, description.as_deref());
            self.report(hold, template.as_ref(), &name, state, &text)
                .await;
            states.push(outcome.state);
        }
        drop(observer);
        let _ = writer.await;
        Ok(Outcome::Ended(run_state(overall(states)), None))
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

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "gantry".into())
}
