//! This runner among others: the heartbeat that keeps its runs (and its row on
//! `/runners`) alive and notices runs taken from it, taking back the runs of runners that
//! went silent, removing what lost attempts left on this engine, handing runs back (to a
//! runner with the labels they ask for, or on SIGTERM), and draining.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Scheduler;
use crate::domain::{RunnerState, StageState, StatusState};
use crate::forge::clamp_description;
use crate::runner::prepare::Verdict;
use crate::runner::record::StatusTemplate;
use crate::store::Hold;

/// Heartbeats per lease: a runner is presumed lost only after missing several in a row.
const HEARTBEATS_PER_LEASE: u32 = 6;

/// Why a run in hand stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Someone asked (the API, the page, a newer run for the same ref).
    Canceled,
    /// Taken back while this runner was silent: it is no longer ours to record.
    Lost,
    /// Draining ran out of time: back to the queue for another runner.
    HandBack,
}

/// A run this runner holds.
pub(super) struct InHand {
    pub cancel: CancellationToken,
    stop: Mutex<Option<Stop>>,
    /// When it was claimed: a heartbeat that asked the store before that cannot know it.
    since: Instant,
}

impl InHand {
    pub fn stop(&self) -> Option<Stop> {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the run for `why`, unless it was already stopped for a reason.
    fn stop_for(&self, why: Stop) {
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        if stop.is_none() {
            *stop = Some(why);
        }
        self.cancel.cancel();
    }
}

impl Scheduler {
    pub(super) fn lease(&self) -> Duration {
        self.settings.runner.lease
    }

    pub(super) fn lease_millis(&self) -> i64 {
        self.lease().as_millis().min(i64::MAX as u128) as i64
    }

    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// What the heartbeat says of this runner.
    fn runner_state(&self) -> RunnerState {
        if self.is_draining() {
            RunnerState::Draining
        } else {
            RunnerState::Active
        }
    }

    fn held_runs(&self) -> MutexGuard<'_, HashMap<i64, Arc<InHand>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn take_in_hand(&self, run_id: i64) -> Arc<InHand> {
        let in_hand = Arc::new(InHand {
            cancel: CancellationToken::new(),
            stop: Mutex::new(None),
            since: Instant::now(),
        });
        self.held_runs().insert(run_id, in_hand.clone());
        in_hand
    }

    /// The run has left this runner, however it ended.
    pub(super) fn release(&self, run_id: i64) {
        self.held_runs().remove(&run_id);
    }

    fn in_hand(&self) -> Vec<(i64, Arc<InHand>)> {
        self.held_runs()
            .iter()
            .map(|(id, in_hand)| (*id, in_hand.clone()))
            .collect()
    }

    /// Says this runner and its runs are alive, several times per lease; stops the runs
    /// someone asked to cancel and those the store no longer gives to this runner.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.lease() / HEARTBEATS_PER_LEASE);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let asked = Instant::now();
            let held = match self
                .store
                .runner_heartbeat(&self.identity, self.runner_state(), self.lease_millis())
                .await
            {
                Ok(held) => held,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "heartbeat failed");
                    continue;
                }
            };
            // Each run the store still gives to this runner, with its cancel request.
            let still_ours: HashMap<i64, bool> = held
                .iter()
                .map(|run| (run.id, run.cancel_requested))
                .collect();
            for (run_id, in_hand) in self.in_hand() {
                match still_ours.get(&run_id) {
                    // Claimed after the store was asked: the answer cannot know it yet.
                    None if in_hand.since < asked => {
                        tracing::warn!(run_id, "this runner no longer holds the run; stopping it");
                        in_hand.stop_for(Stop::Lost);
                    }
                    Some(true) if in_hand.stop().is_none() => {
                        tracing::info!(run_id, "cancel requested");
                        in_hand.stop_for(Stop::Canceled);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Queues again the runs of runners silent past the lease (all running runs with
    /// `all_running`); returns whether it took any, so their leftovers are removed next.
    pub(super) async fn take_back_lost(&self, all_running: bool) -> anyhow::Result<bool> {
        let stale_before = crate::store::now_millis() - self.lease_millis();
        let taken = self
            .store
            .take_back_lost_runs(stale_before, all_running)
            .await?;
        if !taken.is_empty() {
            tracing::warn!(runs = ?taken, "took back the runs of a lost runner");
        }
        Ok(!taken.is_empty())
    }

    /// Removes from this runner's engine the containers and volumes of this installation's
    /// runs that no runner is executing now (an earlier attempt of a run taken back, a
    /// killed process's stages). Other installations' are never touched.
    pub(super) async fn reap_leftovers(&self) -> anyhow::Result<()> {
        let engine = self.executor.engine();
        // Listed before the running runs are read: a container seen here belongs to a run
        // claimed before that read, so a run claimed meanwhile is never taken for a leftover.
        let present = engine
            .runs_present(&format!("{}-", self.store.installation()))
            .await;
        if present.is_empty() {
            return Ok(());
        }
        let running = self.store.running_run_labels().await?;
        let mut removed = 0;
        for run in present.iter().filter(|run| !running.contains(run)) {
            removed += engine.reap(Some(run)).await;
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "removed containers and volumes left by earlier runs"
            );
        }
        Ok(())
    }

    /// Whether the run asks for labels this runner lacks; if so, it is handed back with
    /// them recorded, so that only a runner with them claims it again, and its pipelines
    /// say what they wait for.
    pub(super) async fn not_for_this_runner(
        &self,
        hold: &Hold,
        verdicts: &[Verdict],
        template: Option<&StatusTemplate>,
    ) -> anyhow::Result<bool> {
        let mut wanted: Vec<String> = verdicts
            .iter()
            .filter_map(|verdict| match verdict {
                Verdict::Runs(plan) => Some(plan.runs_on.iter().cloned()),
                Verdict::Ends { .. } => None,
            })
            .flatten()
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted
            .iter()
            .all(|label| self.identity.labels.contains(label))
        {
            return Ok(false);
        }
        let description = clamp_description(&format!(
            "waiting for a runner with labels {}",
            wanted.join(", ")
        ));
        for verdict in verdicts {
            if let Verdict::Runs(plan) = verdict {
                self.store
                    .set_pipeline(
                        hold,
                        &plan.pipeline,
                        &plan.file,
                        StageState::Pending,
                        Some(&description),
                    )
                    .await?;
                self.report(
                    hold,
                    template,
                    &plan.pipeline,
                    StatusState::Pending,
                    &description,
                )
                .await;
            }
        }
        self.store.hand_back(hold, &wanted, &description).await?;
        tracing::info!(run_id = hold.run_id, labels = ?wanted, "handed back a run asking for labels this runner lacks");
        Ok(true)
    }

    /// Gives a run back to the queue, having removed what it started here.
    pub(super) async fn hand_back(&self, hold: &Hold, run_label: &str) {
        self.executor.engine().reap(Some(run_label)).await;
        let description = format!(
            "handed back by runner {} (shutting down); queued again",
            self.identity.name
        );
        match self
            .store
            .hand_back(hold, &[], &clamp_description(&description))
            .await
        {
            Ok(true) => tracing::info!(run_id = hold.run_id, "handed the run back"),
            Ok(false) => {}
            Err(err) => {
                tracing::error!(run_id = hold.run_id, error = %format!("{err:#}"), "handing a run back failed")
            }
        }
    }

    /// Takes nothing new; waits for the runs in hand up to `[runner] drain_timeout` (or
    /// until `now` is canceled), then hands back the rest and waits for that.
    pub(super) async fn drain(&self, slots: &Arc<Semaphore>, now: CancellationToken) {
        self.draining.store(true, Ordering::SeqCst);
        let all = self.settings.runner.max_parallel_runs as u32;
        let held = self.in_hand().len();
        tracing::info!(
            runs = held,
            timeout = %humantime::format_duration(self.settings.runner.drain_timeout),
            "draining: taking no new runs"
        );
        // The heartbeat says so at once, for `/runners`.
        let _ = self
            .store
            .runner_heartbeat(&self.identity, self.runner_state(), self.lease_millis())
            .await;
        let finished = tokio::select! {
            permits = slots.acquire_many(all) => permits.ok(),
            () = tokio::time::sleep(self.settings.runner.drain_timeout) => None,
            () = now.cancelled() => None,
        };
        if finished.is_some() {
            tracing::info!("drained: every run in hand finished");
            return;
        }
        let rest = self.in_hand();
        tracing::warn!(runs = rest.len(), "handing back the runs still in hand");
        for (_, in_hand) in rest {
            in_hand.stop_for(Stop::HandBack);
        }
        let _ = slots.acquire_many(all).await;
    }
}
