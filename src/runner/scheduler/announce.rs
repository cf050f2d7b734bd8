//! Announcing runs that wait, for a free slot or for approval: their pipelines are read
//! (never run) and posted as pending at once, so a pull request shows its checks while the
//! run waits, not only once it starts. One announcement pass at a time per process; across
//! replicas, the store lets one announcement per run through.

use std::sync::atomic::Ordering;

use super::Scheduler;
use crate::approval::WAITING_FOR_APPROVAL;
use crate::domain::{RunState, StageState, StatusState};
use crate::runner::prepare::{Skip, Verdict, prepare};
use crate::store::{AnnouncedPipeline, WaitingRun};

/// Runs read from the store per round of a pass.
const BATCH: i64 = 10;
/// What a waiting pipeline's status says.
pub const WAITING: &str = "queued: waiting for a free runner";

impl Scheduler {
    /// Starts a pass over the unannounced blocked runs (and queued ones, with
    /// `queued_too`) unless one is going on.
    pub(super) fn announce_waiting(self: &std::sync::Arc<Self>, queued_too: bool) {
        if self.forges.is_none() || self.announcing.swap(true, Ordering::SeqCst) {
            return;
        }
        let scheduler = self.clone();
        tokio::spawn(async move {
            if let Err(err) = scheduler.announce_pass(queued_too).await {
                tracing::error!(error = %format!("{err:#}"), "announcing waiting runs failed");
            }
            scheduler.announcing.store(false, Ordering::SeqCst);
        });
    }

    async fn announce_pass(&self, queued_too: bool) -> anyhow::Result<()> {
        loop {
            let runs = self.store.unannounced_runs(BATCH, queued_too).await?;
            if runs.is_empty() {
                return Ok(());
            }
            for run in runs {
                self.announce(&run).await?;
            }
        }
    }

    /// Reads the run's pipelines and records them with pending statuses; a run that needs
    /// no statuses, or whose commit cannot be read now, is only marked (its runner reports
    /// what happened).
    async fn announce(&self, waiting: &WaitingRun) -> anyhow::Result<()> {
        let run = &waiting.run;
        let template = self.status_template(run);
        let prepared = match &template {
            Some(_) => prepare(&self.settings, self.forges.as_ref(), &self.store, run).await,
            None => Ok(Err(Skip("no statuses for this forge".into()))),
        };
        let verdicts = match prepared {
            Ok(Ok(prepared)) => prepared.verdicts,
            Ok(Err(Skip(_))) => Vec::new(),
            Err(err) => {
                tracing::warn!(run_id = run.id, error = %format!("{err:#}"), "a waiting run could not be read");
                Vec::new()
            }
        };
        let waits_for = match waiting.state {
            RunState::Blocked => WAITING_FOR_APPROVAL,
            _ => WAITING,
        };
        let mut pipelines = Vec::new();
        let mut statuses = Vec::new();
        for verdict in &verdicts {
            let (name, file) = verdict.pipeline();
            let (state, description, status) = match verdict {
                Verdict::Runs(_) => (StageState::Pending, waits_for, Some(StatusState::Pending)),
                Verdict::Ends {
                    state, description, ..
                } => (
                    *state,
                    description.as_str(),
                    (*state == StageState::Error).then_some(StatusState::Error),
                ),
            };
            pipelines.push(AnnouncedPipeline {
                pipeline: name,
                file,
                state,
                description: Some(description),
            });
            if let (Some(template), Some(status)) = (&template, status) {
                statuses.push(template.for_pipeline(name, status, description));
            }
        }
        let announced = self
            .store
            .announce_run(run.id, waiting.state, &pipelines, &statuses)
            .await?;
        if announced && !statuses.is_empty() {
            tracing::info!(
                run_id = run.id,
                pipelines = statuses.len(),
                "announced a waiting run"
            );
        }
        Ok(())
    }
}
