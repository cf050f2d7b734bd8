//! What a repo's overview page reads: the newest run of each branch and open pull request,
//! where its bumps last left each config file, and each pipeline's recent history.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::now_millis;
use super::runs::{RUN_COLUMNS, run_from_row, timestamp};
use crate::domain::{Forge, RepoName, StageState};
use crate::store::Run;

/// Branches (and pull requests) listed at most: a repo with more shows its busiest.
const MAX_HEADS: i64 = 50;
/// Runs of the repo read for pipeline histories: enough for 50 of each of a few pipelines.
const HISTORY_RUNS: i64 = 1000;

/// Where one config file stands after this repo's newest bump of it.
#[derive(Debug, Clone, Serialize)]
pub struct LastBump {
    /// The config repo, as the pipeline named it.
    pub repo: String,
    pub branch: String,
    pub file: String,
    pub image: String,
    /// The value written: a tag, or a digest; the last change when the bump made several.
    pub value: Option<String>,
    pub commit: Option<String>,
    pub pull_request: Option<String>,
    pub at: String,
    pub run_id: i64,
}

/// One finished pipeline of one run, for a pipeline's trend.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineOutcome {
    pub run_id: i64,
    pub state: StageState,
    /// From its first stage's start to its last stage's end; `None` when no stage ran.
    pub millis: Option<i64>,
}

/// A pipeline's recent outcomes, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineHistory {
    pub pipeline: String,
    pub outcomes: Vec<PipelineOutcome>,
}

impl super::Store {
    /// Remembers that a pull request was closed (or merged): it leaves the open ones until a
    /// newer run of it (it was reopened) brings it back.
    pub async fn record_pull_request_closed(
        &self,
        forge: Forge,
        repo: &RepoName,
        number: i64,
        merged: bool,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO pull_request_closes (forge, repo, number, closed_at, merged) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (forge, repo, number) \
             DO UPDATE SET closed_at = excluded.closed_at, merged = excluded.merged",
        )
        .bind(forge)
        .bind(repo)
        .bind(number)
        .bind(now_millis())
        .bind(i64::from(merged))
        .execute(self.pool())
        .await
        .context("recording a closed pull request")?;
        Ok(())
    }

    /// The newest run of each branch that pushes ran on, newest first.
    pub async fn branch_heads(&self, forge: Forge, repo: &RepoName) -> anyhow::Result<Vec<Run>> {
        self.newest_runs(
            "SELECT MAX(id) FROM runs WHERE forge = $1 AND repo = $2 AND pr_number IS NULL \
             AND git_ref LIKE 'refs/heads/%' GROUP BY git_ref",
            forge,
            repo,
        )
        .await
        .context("reading the newest run of each branch")
    }

    /// The newest run of each pull request not closed since, newest first (with its event,
    /// which holds the title).
    pub async fn open_pull_requests(
        &self,
        forge: Forge,
        repo: &RepoName,
    ) -> anyhow::Result<Vec<Run>> {
        self.newest_runs(
            "SELECT newest.id FROM (SELECT pr_number, MAX(id) AS id, MAX(created_at) AS at \
             FROM runs WHERE forge = $1 AND repo = $2 AND pr_number IS NOT NULL \
             GROUP BY pr_number) AS newest \
             WHERE NOT EXISTS (SELECT 1 FROM pull_request_closes AS c \
             WHERE c.forge = $1 AND c.repo = $2 AND c.number = newest.pr_number \
             AND c.closed_at >= newest.at)",
            forge,
            repo,
        )
        .await
        .context("reading the newest run of each open pull request")
    }

    async fn newest_runs(
        &self,
        newest_ids: &str,
        forge: Forge,
        repo: &RepoName,
    ) -> anyhow::Result<Vec<Run>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS}, runs.event FROM runs \
             JOIN deliveries ON deliveries.id = runs.delivery \
             WHERE runs.id IN ({newest_ids}) ORDER BY runs.id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(forge)
            .bind(repo)
            .bind(MAX_HEADS)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| run_from_row(row, true)).collect()
    }

    /// Each config file this repo's runs bumped, as its newest bump that did not fail left
    /// it.
    pub async fn last_bumps(&self, forge: Forge, repo: &RepoName) -> anyhow::Result<Vec<LastBump>> {
        let rows = sqlx::query(
            "SELECT b.repo, b.branch, b.file, b.image, b.changes, b.commit_sha, \
             b.pull_request, b.created_at, b.run_id FROM bumps AS b \
             WHERE b.id IN (SELECT MAX(x.id) FROM bumps AS x JOIN runs AS r ON r.id = x.run_id \
             WHERE r.forge = $1 AND r.repo = $2 AND x.error IS NULL \
             GROUP BY x.repo, x.branch, x.file) \
             ORDER BY b.id DESC",
        )
        .bind(forge)
        .bind(repo)
        .fetch_all(self.pool())
        .await
        .context("reading a repo's last bumps")?;
        rows.iter()
            .map(|row| {
                let changes: String = row.try_get(4)?;
                let changes: Vec<crate::domain::ValueChange> =
                    serde_json::from_str(&changes).context("reading bump changes")?;
                Ok(LastBump {
                    repo: row.try_get(0)?,
                    branch: row.try_get(1)?,
                    file: row.try_get(2)?,
                    image: row.try_get(3)?,
                    value: changes.last().map(|change| change.new.clone()),
                    commit: row.try_get(5)?,
                    pull_request: row.try_get(6)?,
                    at: timestamp(row.try_get(7)?),
                    run_id: row.try_get(8)?,
                })
            })
            .collect()
    }

    /// Each pipeline's last `per_pipeline` finished outcomes among the repo's recent runs,
    /// by pipeline name.
    pub async fn pipeline_histories(
        &self,
        forge: Forge,
        repo: &RepoName,
        per_pipeline: usize,
    ) -> anyhow::Result<Vec<PipelineHistory>> {
        let rows = sqlx::query(
            "SELECT p.pipeline, p.run_id, p.state, MIN(s.started_at), MAX(s.finished_at) \
             FROM run_pipelines AS p \
             LEFT JOIN stages AS s ON s.run_id = p.run_id AND s.pipeline = p.pipeline \
             WHERE p.run_id IN (SELECT id FROM runs WHERE forge = $1 AND repo = $2 \
             ORDER BY id DESC LIMIT $3) \
             AND p.state IN ('success', 'failure', 'error', 'canceled') \
             GROUP BY p.pipeline, p.run_id, p.state ORDER BY p.pipeline, p.run_id DESC",
        )
        .bind(forge)
        .bind(repo)
        .bind(HISTORY_RUNS)
        .fetch_all(self.pool())
        .await
        .context("reading pipeline histories")?;
        let mut histories: Vec<PipelineHistory> = Vec::new();
        for row in &rows {
            let pipeline: String = row.try_get(0)?;
            let started: Option<i64> = row.try_get(3)?;
            let finished: Option<i64> = row.try_get(4)?;
            let outcome = PipelineOutcome {
                run_id: row.try_get(1)?,
                state: row.try_get(2)?,
                millis: started
                    .zip(finished)
                    .map(|(start, end)| (end - start).max(0)),
            };
            match histories.last_mut() {
                Some(history) if history.pipeline == pipeline => {
                    if history.outcomes.len() < per_pipeline {
                        history.outcomes.push(outcome);
                    }
                }
                _ => histories.push(PipelineHistory {
                    pipeline,
                    outcomes: vec![outcome],
                }),
            }
        }
        Ok(histories)
    }
}
