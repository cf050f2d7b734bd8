//! Reading runs back: the history the API and pages show.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::domain::{CommitSha, Decision, Forge, RepoName, RunState, StageState, Trigger};
use crate::webhook::Event;

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Run {
    pub id: i64,
    pub forge: Forge,
    pub repo: RepoName,
    pub trigger: Trigger,
    /// In full: `refs/heads/main`.
    pub git_ref: String,
    pub commit_sha: CommitSha,
    pub commit_message: Option<String>,
    pub pr_number: Option<i64>,
    pub state: RunState,
    /// Why the run ended as it did, when that needs saying (interrupted, superseded).
    pub description: Option<String>,
    /// How many times a runner took the run (more than one: it was interrupted).
    pub attempts: i64,
    pub delivery_id: String,
    /// When the delivery that asked for the run arrived (a rerun, manual or scheduled run:
    /// when it was asked for).
    pub received_at: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why the run had to wait for approval, and what was decided; `None` when it did not.
    pub approval: Option<Approval>,
    /// The whole event; only filled when one run is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub event: Option<Event>,
}

/// A run that had to wait for approval: why, and who decided what, when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Approval {
    pub reason: String,
    /// `None` while the run waits (or once it was canceled or superseded while waiting).
    pub decision: Option<Decision>,
    pub by: Option<String>,
    pub at: Option<String>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub repo: Option<RepoName>,
    pub state: Option<RunState>,
    /// Only runs of this ref, in full (`refs/heads/main`).
    pub git_ref: Option<String>,
    /// Only runs started by this kind of event.
    pub trigger: Option<Trigger>,
    /// Only runs with an id below this (the last id of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
    /// Only runs of these repos (what the reader may read); `None`: of every repo.
    pub readable: Option<Vec<(Forge, RepoName)>>,
}

pub(super) const RUN_COLUMNS: &str = "runs.id, runs.forge, runs.repo, runs.trigger_kind, runs.git_ref, \
    runs.commit_sha, runs.commit_message, runs.pr_number, runs.state, deliveries.delivery_id, \
    runs.created_at, runs.started_at, runs.finished_at, runs.description, runs.attempts, \
    runs.approval_reason, runs.approval_decision, runs.approval_by, runs.approval_at, \
    deliveries.received_at";

impl super::Store {
    pub async fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<Run>> {
        // Absent filters are bound as NULL, so one statement serves every combination but
        // the readable repos, which add one pair of parameters each.
        let readable = match &filter.readable {
            None => String::new(),
            Some(repos) if repos.is_empty() => return Ok(Vec::new()),
            Some(repos) => {
                let pairs: Vec<String> = (0..repos.len())
                    .map(|i| {
                        format!(
                            "(runs.forge = ${} AND runs.repo = ${})",
                            7 + 2 * i,
                            8 + 2 * i
                        )
                    })
                    .collect();
                format!(" AND ({})", pairs.join(" OR "))
            }
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs JOIN deliveries ON deliveries.id = runs.delivery \
             WHERE ($1 IS NULL OR runs.repo = $1) AND ($2 IS NULL OR runs.state = $2) \
             AND ($3 IS NULL OR runs.id < $3) AND ($5 IS NULL OR runs.git_ref = $5) \
             AND ($6 IS NULL OR runs.trigger_kind = $6){readable} \
             ORDER BY runs.id DESC LIMIT $4"
        );
        let mut query = sqlx::query(&sql)
            .bind(filter.repo.clone())
            .bind(filter.state)
            .bind(filter.before)
            .bind(i64::from(filter.limit))
            .bind(filter.git_ref.clone())
            .bind(filter.trigger);
        for (forge, repo) in filter.readable.iter().flatten() {
            query = query.bind(*forge).bind(repo.clone());
        }
        let rows = query.fetch_all(self.pool()).await.context("listing runs")?;
        rows.iter().map(|row| run_from_row(row, false)).collect()
    }

    pub async fn run(&self, id: i64) -> anyhow::Result<Option<Run>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS}, runs.event FROM runs \
             JOIN deliveries ON deliveries.id = runs.delivery WHERE runs.id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .with_context(|| format!("reading run {id}"))?;
        row.map(|row| run_from_row(&row, true)).transpose()
    }

    /// The state of the newest finished push run of `repo` on `branch` (with `pipeline`:
    /// that pipeline's state in the newest such run where it ended), or `None` when there
    /// is none. Skipped runs and pipelines say nothing of the branch and are passed over.
    pub async fn latest_finished(
        &self,
        forge: Forge,
        repo: &RepoName,
        branch: &str,
        pipeline: Option<&str>,
    ) -> anyhow::Result<Option<StageState>> {
        let git_ref = format!("refs/heads/{branch}");
        let row = match pipeline {
            None => sqlx::query(
                "SELECT state FROM runs WHERE forge = $1 AND repo = $2 AND git_ref = $3 \
                 AND trigger_kind = 'push' \
                 AND state IN ('success', 'failure', 'error', 'canceled') \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(forge)
            .bind(repo)
            .bind(&git_ref),
            Some(pipeline) => sqlx::query(
                "SELECT p.state FROM run_pipelines AS p JOIN runs AS r ON r.id = p.run_id \
                 WHERE r.forge = $1 AND r.repo = $2 AND r.git_ref = $3 \
                 AND r.trigger_kind = 'push' AND p.pipeline = $4 \
                 AND p.state IN ('success', 'failure', 'error', 'canceled') \
                 ORDER BY r.id DESC LIMIT 1",
            )
            .bind(forge)
            .bind(repo)
            .bind(&git_ref)
            .bind(pipeline),
        }
        .fetch_optional(self.pool())
        .await
        .context("reading a badge's state")?;
        // Run and stage states share their names for every finished state read here.
        row.map(|row| {
            let state: String = row.try_get(0)?;
            state.parse::<StageState>().map_err(anyhow::Error::from)
        })
        .transpose()
    }

    /// How many runs wait for a runner, and how many for approval.
    pub async fn waiting_runs(&self) -> anyhow::Result<WaitingRuns> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) FROM runs WHERE state IN ($1, $2) GROUP BY state")
                .bind(RunState::Queued)
                .bind(RunState::Blocked)
                .fetch_all(self.pool())
                .await
                .context("counting waiting runs")?;
        let mut waiting = WaitingRuns::default();
        for row in rows {
            let count: i64 = row.try_get(1)?;
            match row.try_get::<RunState, _>(0)? {
                RunState::Blocked => waiting.blocked = count,
                _ => waiting.queued = count,
            }
        }
        Ok(waiting)
    }
}

/// Runs that wait: for a runner (`queued`) or for approval (`blocked`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitingRuns {
    pub queued: i64,
    pub blocked: i64,
}

pub(super) fn run_from_row(row: &AnyRow, with_event: bool) -> anyhow::Result<Run> {
    let event = if with_event {
        let json: String = row.try_get("event")?;
        Some(serde_json::from_str(&json).context("decoding stored event")?)
    } else {
        None
    };
    Ok(Run {
        id: row.try_get(0)?,
        forge: row.try_get(1)?,
        repo: row.try_get(2)?,
        trigger: row.try_get(3)?,
        git_ref: row.try_get(4)?,
        commit_sha: row.try_get(5)?,
        commit_message: row.try_get(6)?,
        pr_number: row.try_get(7)?,
        state: row.try_get(8)?,
        delivery_id: row.try_get(9)?,
        received_at: timestamp(row.try_get(19)?),
        created_at: timestamp(row.try_get(10)?),
        started_at: row.try_get::<Option<i64>, _>(11)?.map(timestamp),
        finished_at: row.try_get::<Option<i64>, _>(12)?.map(timestamp),
        description: row.try_get(13)?,
        attempts: row.try_get(14)?,
        approval: row
            .try_get::<Option<String>, _>(15)?
            .map(|reason| -> anyhow::Result<Approval> {
                Ok(Approval {
                    reason,
                    decision: row.try_get(16)?,
                    by: row.try_get(17)?,
                    at: row.try_get::<Option<i64>, _>(18)?.map(timestamp),
                })
            })
            .transpose()?,
        event,
    })
}

pub(super) fn timestamp(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
