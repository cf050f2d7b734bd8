//! The run queue as runners see it: claiming, owning (heartbeats, cancel requests), and
//! taking back what a crashed runner left.

use anyhow::Context;
use sqlx::Row;

use super::{Backend, now_millis};
use crate::domain::{CommitSha, Forge, RepoName, RunState, Trigger};
use crate::webhook::Event;

/// A run a runner has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub id: i64,
    pub repo: RepoName,
    pub event: Event,
    /// How many times the run has been claimed, this time included.
    pub attempts: i64,
}

/// Claims after which an interrupted run is given up instead of queued again.
pub const MAX_ATTEMPTS: i64 = 2;

impl super::Store {
    /// Cancels runs made obsolete by a newer run for the same repo, event kind and ref:
    /// queued ones at once, running ones through a cancel request their runner sees.
    pub async fn supersede_older_runs(&self) -> anyhow::Result<u64> {
        let now = now_millis();
        let newer_exists = "EXISTS (SELECT 1 FROM runs AS newer WHERE newer.repo = runs.repo \
             AND newer.trigger_kind = runs.trigger_kind AND newer.git_ref = runs.git_ref \
             AND newer.id > runs.id AND newer.state IN ('queued', 'running'))";
        let canceled = sqlx::query(&format!(
            "UPDATE runs SET state = $1, finished_at = $2, \
             description = 'superseded by a newer run for the same ref' \
             WHERE state = 'queued' AND trigger_kind <> 'tag' AND {newer_exists}"
        ))
        .bind(RunState::Canceled)
        .bind(now)
        .execute(self.pool())
        .await
        .context("canceling superseded queued runs")?
        .rows_affected();
        let requested = sqlx::query(&format!(
            "UPDATE runs SET cancel_requested = 1 \
             WHERE state = 'running' AND cancel_requested = 0 AND trigger_kind <> 'tag' \
             AND {newer_exists}"
        ))
        .execute(self.pool())
        .await
        .context("requesting cancel of superseded running runs")?
        .rows_affected();
        Ok(canceled + requested)
    }

    /// Takes the oldest queued run for `runner`, or `None` when the queue is empty. Safe
    /// with several runners on one PostgreSQL: each run is claimed once.
    pub async fn claim_run(&self, runner: &str) -> anyhow::Result<Option<ClaimedRun>> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            // SQLite has one writer at a time; the UPDATE is atomic on its own.
            Backend::Sqlite => "",
        };
        let now = now_millis();
        let row = sqlx::query(&format!(
            "UPDATE runs SET state = 'running', runner = $1, heartbeat_at = $2, started_at = $2, \
             attempts = attempts + 1, description = NULL \
             WHERE id = (SELECT id FROM runs WHERE state = 'queued' ORDER BY id LIMIT 1{lock}) \
             RETURNING id, repo, event, attempts"
        ))
        .bind(runner)
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .context("claiming a queued run")?;
        let Some(row) = row else { return Ok(None) };
        let event: String = row.try_get(2)?;
        Ok(Some(ClaimedRun {
            id: row.try_get(0)?,
            repo: row.try_get(1)?,
            event: serde_json::from_str(&event).context("decoding a queued run's event")?,
            attempts: row.try_get(3)?,
        }))
    }

    /// Says the run is still owned, and returns whether someone asked to cancel it.
    pub async fn heartbeat(&self, run_id: i64, runner: &str) -> anyhow::Result<bool> {
        let row = sqlx::query(
            "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND runner = $3 \
             RETURNING cancel_requested",
        )
        .bind(now_millis())
        .bind(run_id)
        .bind(runner)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("heartbeat of run {run_id}"))?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>(0)? != 0,
            // The run is no longer ours (requeued after a lost lease): stop working on it.
            None => true,
        })
    }

    /// Asks the runner of a queued or running run to cancel it. Returns false when the run
    /// is already finished (or does not exist).
    pub async fn request_cancel(&self, run_id: i64) -> anyhow::Result<bool> {
        let queued = sqlx::query(
            "UPDATE runs SET state = 'canceled', finished_at = $1, description = 'canceled' \
             WHERE id = $2 AND state = 'queued'",
        )
        .bind(now_millis())
        .bind(run_id)
        .execute(self.pool())
        .await
        .context("canceling a queued run")?
        .rows_affected();
        let running =
            sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND state = 'running'")
                .bind(run_id)
                .execute(self.pool())
                .await
                .context("requesting cancel of a running run")?
                .rows_affected();
        Ok(queued + running > 0)
    }

    /// Records a run's end.
    pub async fn finish_run(
        &self,
        run_id: i64,
        state: RunState,
        description: Option<&str>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE runs SET state = $1, description = $2, finished_at = $3, runner = NULL \
             WHERE id = $4",
        )
        .bind(state)
        .bind(description)
        .bind(now_millis())
        .bind(run_id)
        .execute(self.pool())
        .await
        .with_context(|| format!("finishing run {run_id}"))?;
        Ok(())
    }

    /// Runs left `running` by a runner that stopped heartbeating (all of them, with
    /// `all_running`: the single-node SQLite case at start-up) are queued again, once; a
    /// run interrupted [`MAX_ATTEMPTS`] times ends as `error`. Returns the ids taken back.
    pub async fn recover_interrupted(
        &self,
        stale_before_millis: i64,
        all_running: bool,
    ) -> anyhow::Result<Vec<i64>> {
        let rows = sqlx::query(
            "UPDATE runs SET \
               state = CASE WHEN attempts >= $1 THEN 'error' ELSE 'queued' END, \
               description = CASE WHEN attempts >= $1 \
                 THEN 'interrupted twice (the runner stopped); not retried' \
                 ELSE 'interrupted (the runner stopped); queued again' END, \
               finished_at = CASE WHEN attempts >= $1 THEN $2 ELSE NULL END, \
               runner = NULL, cancel_requested = 0 \
             WHERE state = 'running' AND ($3 = 1 OR heartbeat_at < $4) RETURNING id",
        )
        .bind(MAX_ATTEMPTS)
        .bind(now_millis())
        .bind(i64::from(all_running))
        .bind(stale_before_millis)
        .fetch_all(self.pool())
        .await
        .context("recovering interrupted runs")?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Ids of the runs some runner is executing now.
    pub async fn running_run_ids(&self) -> anyhow::Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM runs WHERE state = 'running'")
            .fetch_all(self.pool())
            .await
            .context("listing running runs")?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }
}

impl super::Store {
    /// Queues the run again as a new run for the same event (its own delivery, marked
    /// `rerun`), and returns the new run's id; `None` when there is no such run.
    pub async fn rerun(&self, run_id: i64) -> anyhow::Result<Option<i64>> {
        let mut tx = self.pool().begin().await.context("starting a rerun")?;
        let Some(old) = sqlx::query(
            "SELECT forge, repo, trigger_kind, git_ref, commit_sha, commit_message, pr_number, event \
             FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .with_context(|| format!("reading run {run_id}"))?
        else {
            return Ok(None);
        };
        let now = now_millis();
        let forge: Forge = old.try_get(0)?;
        let repo: RepoName = old.try_get(1)?;
        let delivery: i64 = sqlx::query(
            "INSERT INTO deliveries (forge, delivery_id, event_name, repo, received_at) \
             VALUES ($1, $2, 'rerun', $3, $4) RETURNING id",
        )
        .bind(forge)
        .bind(format!(
            "rerun-of-{run_id}-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .bind(&repo)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context("recording the rerun")?
        .try_get(0)?;
        let new_id: i64 = sqlx::query(
            "INSERT INTO runs (delivery, forge, repo, trigger_kind, git_ref, commit_sha, \
             commit_message, pr_number, state, event, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(delivery)
        .bind(forge)
        .bind(&repo)
        .bind(old.try_get::<Trigger, _>(2)?)
        .bind(old.try_get::<String, _>(3)?)
        .bind(old.try_get::<CommitSha, _>(4)?)
        .bind(old.try_get::<Option<String>, _>(5)?)
        .bind(old.try_get::<Option<i64>, _>(6)?)
        .bind(RunState::Queued)
        .bind(old.try_get::<String, _>(7)?)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context("queueing the rerun")?
        .try_get(0)?;
        tx.commit().await.context("committing the rerun")?;
        self.queued().notify_one();
        Ok(Some(new_id))
    }
}
