//! The commit-status outbox: updates queued by runners, delivered by the reporter.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::{Hold, UNFINISHED, now_millis};
use crate::domain::{CommitStatus, DeliveryState, Forge, StatusState};

/// A queued update the reporter has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedStatus {
    pub id: i64,
    pub attempts: i64,
    pub status: CommitStatus,
    /// What an earlier delivered update of the same run and context created on the forge
    /// (a GitHub check run's id), for this one to update.
    pub remote_id: Option<String>,
    /// When it was queued (milliseconds since the epoch).
    pub created_at: i64,
}

/// The latest update of one context of a run, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusReport {
    pub context: String,
    pub state: StatusState,
    pub description: String,
    pub target_url: String,
    pub delivery: DeliveryState,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Inserts a waiting update (see [`super::Store::queue_status`]); with `hold`, only while
/// that runner holds the run. Returns whether it was inserted.
pub(super) async fn insert_status<'c, E>(
    executor: E,
    run_id: i64,
    hold: Option<&str>,
    status: &CommitStatus,
) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let inserted = sqlx::query(&format!(
        "INSERT INTO status_updates (run_id, forge, repo, commit_sha, git_ref, context, state, \
         description, target_url, delivery, next_attempt_at, created_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'waiting', $10, $10 \
         WHERE NOT EXISTS (SELECT 1 FROM status_updates WHERE repo = $3 AND commit_sha = $4 \
         AND git_ref = $5 AND context = $6 AND run_id > $1) AND ($11 IS NULL OR {HELD})",
        HELD = super::results::held("$1", "$11")
    ))
    .bind(run_id)
    .bind(status.forge)
    .bind(&status.repo)
    .bind(&status.sha)
    .bind(&status.git_ref)
    .bind(&status.context)
    .bind(status.state)
    .bind(&status.description)
    .bind(&status.target_url)
    .bind(now_millis())
    .bind(hold)
    .execute(executor)
    .await
    .context("queueing a commit status")?
    .rows_affected();
    Ok(inserted > 0)
}

/// Queues again, with `state` and `description`, the newest update of each of the run's
/// contexts (of `context` alone, when given) that left the forge at pending or running,
/// unless a newer run took that context over: how the forge hears that a run will not end
/// as last reported (abandoned, or queued again).
pub(super) async fn restate_open_statuses<'c, E>(
    executor: E,
    run_id: i64,
    context: Option<&str>,
    state: StatusState,
    description: &str,
) -> anyhow::Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let now = now_millis();
    sqlx::query(&format!(
        "INSERT INTO status_updates (run_id, forge, repo, commit_sha, git_ref, context, \
         state, description, target_url, delivery, next_attempt_at, created_at) \
         SELECT run_id, forge, repo, commit_sha, git_ref, context, $1, $2, target_url, \
         'waiting', $3, $3 FROM status_updates AS last \
         WHERE last.run_id = $4 AND ($5 IS NULL OR last.context = $5) \
         AND last.id = (SELECT MAX(id) FROM status_updates AS mine \
         WHERE mine.run_id = last.run_id AND mine.context = last.context) \
         AND last.state IN {UNFINISHED} \
         AND NOT EXISTS (SELECT 1 FROM status_updates AS other \
         WHERE other.repo = last.repo AND other.commit_sha = last.commit_sha \
         AND other.git_ref = last.git_ref AND other.context = last.context \
         AND other.run_id > last.run_id)"
    ))
    .bind(state)
    .bind(description)
    .bind(now)
    .bind(run_id)
    .bind(context)
    .execute(executor)
    .await
    .context("restating a run's open statuses")?;
    Ok(())
}

/// One status on the forge: a commit, its ref (where the forge keys by ref) and a context.
const SAME_KEY: &str = "other.repo = status_updates.repo AND other.commit_sha = status_updates.commit_sha \
     AND other.git_ref = status_updates.git_ref AND other.context = status_updates.context";

/// How one delivery attempt of a status update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// The forge took it; with what it created there, if later updates must refer to it.
    Delivered(Option<&'a str>),
    /// Not sent: the forge already shows this state.
    Merged,
    /// Failed for a passing reason; tried again at this time (ms since the epoch).
    Retry { error: &'a str, at: i64 },
    /// Given up.
    Failed { error: &'a str },
}

impl super::Store {
    /// Queues `status` for delivery, unless a newer run already queued one for the same
    /// commit and context (a rerun, or a push and a pull request on one commit): a later
    /// run's state is never overwritten by an earlier run's.
    /// Only while `hold` is still the run's.
    pub async fn queue_status(&self, hold: &Hold, status: &CommitStatus) -> anyhow::Result<()> {
        insert_status(self.pool(), hold.run_id, Some(&hold.runner), status).await?;
        self.statuses_queued.notify_one();
        Ok(())
    }

    /// Claims up to `limit` due updates, at most one per (repo, commit, context) and never
    /// while an earlier one of that key is still being sent. Waiting updates that a newer
    /// one of their key replaces are marked superseded first, so an earlier state is never
    /// sent after a later one. A claim lasts `lease_millis`.
    pub async fn claim_statuses(
        &self,
        limit: i64,
        lease_millis: i64,
    ) -> anyhow::Result<Vec<ClaimedStatus>> {
        let now = now_millis();
        sqlx::query(&format!(
            "UPDATE status_updates SET delivery = 'superseded' WHERE delivery = 'waiting' \
             AND EXISTS (SELECT 1 FROM status_updates AS other WHERE {SAME_KEY} \
             AND other.id > status_updates.id)"
        ))
        .execute(self.pool())
        .await
        .context("superseding old status updates")?;
        // A claim whose sender died (its lease ran out) is waiting again.
        sqlx::query("UPDATE status_updates SET delivery = 'waiting' WHERE delivery = 'sending' AND next_attempt_at < $1")
            .bind(now)
            .execute(self.pool())
            .await
            .context("releasing expired status claims")?;
        let due = sqlx::query(
            "SELECT id FROM status_updates WHERE delivery = 'waiting' AND next_attempt_at <= $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .context("listing due status updates")?;
        let mut claimed = Vec::new();
        for row in due {
            let id: i64 = row.try_get(0)?;
            let row = sqlx::query(&format!(
                "UPDATE status_updates SET delivery = 'sending', next_attempt_at = $1 \
                 WHERE id = $2 AND delivery = 'waiting' AND NOT EXISTS (SELECT 1 FROM \
                 status_updates AS other WHERE {SAME_KEY} AND other.delivery = 'sending') \
                 RETURNING forge, repo, commit_sha, git_ref, context, state, description, \
                 target_url, attempts, run_id, created_at"
            ))
            .bind(now + lease_millis)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .context("claiming a status update")?;
            let Some(row) = row else { continue };
            let forge: Forge = row.try_get(0)?;
            let context: String = row.try_get(4)?;
            // Only GitHub check runs are created once and updated after.
            let remote_id: Option<String> = match forge {
                Forge::Github => sqlx::query(
                    "SELECT remote_id FROM status_updates WHERE run_id = $1 AND context = $2 \
                     AND remote_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                )
                .bind(row.try_get::<i64, _>(9)?)
                .bind(&context)
                .fetch_optional(self.pool())
                .await
                .context("reading what an earlier status update created")?
                .map(|row| row.try_get(0))
                .transpose()?,
                Forge::Gitlab | Forge::Gitea => None,
            };
            claimed.push(ClaimedStatus {
                id,
                attempts: row.try_get(8)?,
                remote_id,
                created_at: row.try_get(10)?,
                status: CommitStatus {
                    forge,
                    repo: row.try_get(1)?,
                    sha: row.try_get(2)?,
                    git_ref: row.try_get(3)?,
                    context,
                    state: row.try_get(5)?,
                    description: row.try_get(6)?,
                    target_url: row.try_get(7)?,
                },
            });
        }
        Ok(claimed)
    }

    /// Records the outcome of one delivery attempt.
    pub async fn status_attempted(&self, id: i64, attempt: Attempt<'_>) -> anyhow::Result<()> {
        let query = match attempt {
            Attempt::Delivered(remote_id) => sqlx::query(
                "UPDATE status_updates SET delivery = 'delivered', attempts = attempts + 1, \
                 last_error = NULL, remote_id = $1 WHERE id = $2",
            )
            .bind(remote_id.map(str::to_owned))
            .bind(id),
            Attempt::Merged => sqlx::query(
                "UPDATE status_updates SET delivery = 'merged', last_error = NULL WHERE id = $1",
            )
            .bind(id),
            Attempt::Retry {
                error,
                at: retry_at,
            } => sqlx::query(
                "UPDATE status_updates SET delivery = 'waiting', attempts = attempts + 1, \
                 last_error = $1, next_attempt_at = $2 WHERE id = $3",
            )
            .bind(error.to_owned())
            .bind(retry_at)
            .bind(id),
            Attempt::Failed { error } => sqlx::query(
                "UPDATE status_updates SET delivery = 'failed', attempts = attempts + 1, \
                 last_error = $1 WHERE id = $2",
            )
            .bind(error.to_owned())
            .bind(id),
        };
        query
            .execute(self.pool())
            .await
            .context("recording a status delivery")?;
        Ok(())
    }

    /// The state the forge was last told for `status`'s commit, ref and context, by any run.
    pub async fn last_delivered_state(
        &self,
        status: &CommitStatus,
    ) -> anyhow::Result<Option<StatusState>> {
        let row = sqlx::query(
            "SELECT state FROM status_updates WHERE repo = $1 AND commit_sha = $2 \
             AND git_ref = $3 AND context = $4 AND delivery = 'delivered' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&status.repo)
        .bind(&status.sha)
        .bind(&status.git_ref)
        .bind(&status.context)
        .fetch_optional(self.pool())
        .await
        .context("reading the state a forge last heard")?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(Into::into)
    }

    /// The newest update of each context of a run.
    pub async fn run_statuses(&self, run_id: i64) -> anyhow::Result<Vec<StatusReport>> {
        let rows = sqlx::query(
            "SELECT context, state, description, target_url, delivery, attempts, last_error \
             FROM status_updates WHERE run_id = $1 AND id IN \
             (SELECT MAX(id) FROM status_updates WHERE run_id = $1 GROUP BY context) \
             ORDER BY context",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .context("reading a run's statuses")?;
        rows.iter()
            .map(|row| {
                Ok(StatusReport {
                    context: row.try_get(0)?,
                    state: row.try_get(1)?,
                    description: row.try_get(2)?,
                    target_url: row.try_get(3)?,
                    delivery: row.try_get(4)?,
                    attempts: row.try_get(5)?,
                    last_error: row.try_get(6)?,
                })
            })
            .collect()
    }
}
