//! Statuses outside a runner's hands: pipelines announced as pending while their run waits
//! for a slot, and pipelines a run left pending or running when it ended some other way
//! (canceled or superseded while queued, given up after crashes, an internal error).
//! Together they keep the forge's view prompt and never stale.

use anyhow::Context;
use sqlx::Row;

use super::UNFINISHED;
use super::results::upsert_pipeline;
use super::statuses::{insert_status, restate_open_statuses};
use super::{ClaimedRun, now_millis};
use crate::domain::{CommitStatus, RunState, StageState, StatusState};

/// A run that waits, for a runner or for approval, as the announcer reads it.
#[derive(Debug, Clone)]
pub struct WaitingRun {
    pub run: ClaimedRun,
    pub state: RunState,
}

/// One pipeline of a waiting run, as announced.
#[derive(Debug, Clone)]
pub struct AnnouncedPipeline<'a> {
    pub pipeline: &'a str,
    pub file: &'a str,
    pub state: StageState,
    pub description: Option<&'a str>,
}

/// A pipeline that a finished run left pending or running, with how its run ended.
#[derive(Debug, Clone)]
pub struct AbandonedPipeline {
    pub run_id: i64,
    pub pipeline: String,
    pub run_state: RunState,
    pub run_description: Option<String>,
}

/// How an abandoned pipeline ends: its own state, and the status the forge gets where it
/// last heard pending or running.
#[derive(Debug, Clone)]
pub struct Resolution<'a> {
    pub state: StageState,
    pub status: StatusState,
    /// The status context the pipeline reported under.
    pub context: &'a str,
    pub description: &'a str,
}

impl super::Store {
    /// Runs whose pipelines were not announced yet, oldest first: blocked ones, and
    /// queued ones too with `queued_too` (when no runner slot is free for them).
    pub async fn unannounced_runs(
        &self,
        limit: i64,
        queued_too: bool,
    ) -> anyhow::Result<Vec<WaitingRun>> {
        let rows = sqlx::query(
            "SELECT id, repo, event, attempts, state FROM runs \
             WHERE (state = 'blocked' OR ($1 = 1 AND state = 'queued')) \
             AND announced_at IS NULL ORDER BY id LIMIT $2",
        )
        .bind(i64::from(queued_too))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .context("listing runs to announce")?;
        rows.iter()
            .map(|row| {
                let event: String = row.try_get(2)?;
                Ok(WaitingRun {
                    run: ClaimedRun {
                        id: row.try_get(0)?,
                        repo: row.try_get(1)?,
                        event: serde_json::from_str(&event)
                            .context("decoding a waiting run's event")?,
                        attempts: row.try_get(3)?,
                    },
                    state: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Records a waiting run's pipelines and queues their statuses, in one transaction and
    /// only while the run is still in `state` (blocked or queued) and not yet announced.
    /// Returns false, having written nothing, when it no longer is: a runner claimed it
    /// (its own statuses are newer), it was approved, canceled, or another replica
    /// announced it.
    pub async fn announce_run(
        &self,
        run_id: i64,
        state: RunState,
        pipelines: &[AnnouncedPipeline<'_>],
        statuses: &[CommitStatus],
    ) -> anyhow::Result<bool> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("starting an announcement")?;
        // Written first: it takes the run's row lock (PostgreSQL) or the write lock
        // (SQLite), so a claim cannot slip in between the check and the inserts.
        let marked = sqlx::query(
            "UPDATE runs SET announced_at = $1 \
             WHERE id = $2 AND state = $3 AND announced_at IS NULL",
        )
        .bind(now_millis())
        .bind(run_id)
        .bind(state)
        .execute(&mut *tx)
        .await
        .context("marking a run announced")?
        .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        for pipeline in pipelines {
            upsert_pipeline(
                &mut *tx,
                run_id,
                None,
                pipeline.pipeline,
                pipeline.file,
                pipeline.state,
                pipeline.description,
            )
            .await?;
        }
        for status in statuses {
            insert_status(&mut *tx, run_id, None, status).await?;
        }
        tx.commit().await.context("committing an announcement")?;
        if !statuses.is_empty() {
            self.statuses_queued().notify_one();
        }
        Ok(true)
    }

    /// Pipelines that finished runs left pending or running.
    pub async fn abandoned_pipelines(&self) -> anyhow::Result<Vec<AbandonedPipeline>> {
        let rows = sqlx::query(&format!(
            "SELECT p.run_id, p.pipeline, r.state, r.description FROM run_pipelines AS p \
             JOIN runs AS r ON r.id = p.run_id \
             WHERE p.state IN {UNFINISHED} AND r.state NOT IN ('blocked', 'queued', 'running')"
        ))
        .fetch_all(self.pool())
        .await
        .context("looking for abandoned pipelines")?;
        rows.iter()
            .map(|row| {
                Ok(AbandonedPipeline {
                    run_id: row.try_get(0)?,
                    pipeline: row.try_get(1)?,
                    run_state: row.try_get(2)?,
                    run_description: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Ends an abandoned pipeline (and its unfinished stages) as `resolution` says, and
    /// queues a copy of its newest status with the new state, if the forge was told
    /// pending or running and no newer run took the context over. Returns false, having
    /// written nothing, when another replica resolved it first.
    pub async fn resolve_pipeline(
        &self,
        run_id: i64,
        pipeline: &str,
        resolution: &Resolution<'_>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool().begin().await.context("starting a resolution")?;
        // The guard: of two replicas resolving one pipeline, one changes the row.
        let changed = sqlx::query(&format!(
            "UPDATE run_pipelines SET state = $1, description = $2 \
             WHERE run_id = $3 AND pipeline = $4 AND state IN {UNFINISHED}"
        ))
        .bind(resolution.state)
        .bind(resolution.description)
        .bind(run_id)
        .bind(pipeline)
        .execute(&mut *tx)
        .await
        .context("resolving an abandoned pipeline")?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        sqlx::query(&format!(
            "UPDATE stages SET state = $1 WHERE run_id = $2 AND pipeline = $3 \
             AND state IN {UNFINISHED}"
        ))
        .bind(resolution.state)
        .bind(run_id)
        .bind(pipeline)
        .execute(&mut *tx)
        .await
        .context("resolving an abandoned pipeline's stages")?;
        restate_open_statuses(
            &mut *tx,
            run_id,
            Some(resolution.context),
            resolution.status,
            resolution.description,
        )
        .await
        .context("queueing an abandoned pipeline's status")?;
        tx.commit().await.context("committing a resolution")?;
        self.statuses_queued().notify_one();
        Ok(true)
    }
}
