//! Decisions on runs that wait for approval.

use anyhow::Context;
use sqlx::Row;

use super::now_millis;
use crate::domain::{Decision, RunState};

impl super::Store {
    /// Approves (queues) or declines (ends) the blocked run `run_id` as `by`. `Err` with
    /// the run's state when it was not blocked, or with `None` when there is no such run:
    /// of two people deciding at once, one decides.
    pub async fn decide_run(
        &self,
        run_id: i64,
        decision: Decision,
        by: &str,
    ) -> anyhow::Result<Result<(), Option<RunState>>> {
        let now = now_millis();
        let changed = match decision {
            // Queued again unannounced: while it waits for a slot, the forge hears that it
            // waits for a runner, no longer for approval.
            Decision::Approved => sqlx::query(
                "UPDATE runs SET state = 'queued', approval_decision = $1, approval_by = $2, \
                 approval_at = $3, announced_at = NULL WHERE id = $4 AND state = 'blocked'",
            )
            .bind(decision)
            .bind(by)
            .bind(now)
            .bind(run_id),
            Decision::Declined => sqlx::query(
                "UPDATE runs SET state = 'declined', approval_decision = $1, approval_by = $2, \
                 approval_at = $3, finished_at = $3, description = $5 \
                 WHERE id = $4 AND state = 'blocked'",
            )
            .bind(decision)
            .bind(by)
            .bind(now)
            .bind(run_id)
            .bind(format!("declined by {by}")),
        }
        .execute(self.pool())
        .await
        .with_context(|| format!("deciding on run {run_id}"))?
        .rows_affected();
        if changed > 0 {
            if decision == Decision::Approved {
                self.queued().notify_one();
            }
            return Ok(Ok(()));
        }
        let state = sqlx::query("SELECT state FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(self.pool())
            .await
            .with_context(|| format!("reading run {run_id}"))?
            .map(|row| row.try_get::<RunState, _>(0))
            .transpose()?;
        Ok(Err(state))
    }
}
