//! The bumps of a run: what each bump stage changed in which config repo.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::now_millis;
use crate::domain::BumpedFile;

/// One bump stage's result, as the run shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BumpReport {
    pub pipeline: String,
    pub stage: String,
    /// What it changed; the target alone when it failed.
    #[serde(flatten)]
    pub bumped: BumpedFile,
    pub error: Option<String>,
    /// When it was recorded (right after its push); `None` until it is.
    pub at: Option<String>,
}

impl super::Store {
    /// Records a bump stage's result; returns the bump's id.
    pub async fn record_bump(&self, run_id: i64, report: &BumpReport) -> anyhow::Result<i64> {
        let bumped = &report.bumped;
        let changes = serde_json::to_string(&bumped.changes).context("encoding bump changes")?;
        sqlx::query(
            "INSERT INTO bumps (run_id, pipeline, stage, repo, branch, file, image, changes, \
             commit_sha, pull_request, error, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(run_id)
        .bind(&report.pipeline)
        .bind(&report.stage)
        .bind(&bumped.repo)
        .bind(&bumped.branch)
        .bind(&bumped.file)
        .bind(&bumped.image)
        .bind(changes)
        .bind(&bumped.commit)
        .bind(&bumped.pull_request)
        .bind(&report.error)
        .bind(now_millis())
        .fetch_one(self.pool())
        .await
        .context("recording a bump")?
        .try_get(0)
        .map_err(Into::into)
    }

    pub async fn run_bumps(&self, run_id: i64) -> anyhow::Result<Vec<BumpReport>> {
        let rows = sqlx::query(
            "SELECT pipeline, stage, repo, branch, file, image, changes, commit_sha, \
             pull_request, error, created_at FROM bumps WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .context("reading a run's bumps")?;
        rows.iter()
            .map(|row| {
                let changes: String = row.try_get(6)?;
                Ok(BumpReport {
                    pipeline: row.try_get(0)?,
                    stage: row.try_get(1)?,
                    bumped: BumpedFile {
                        repo: row.try_get(2)?,
                        branch: row.try_get(3)?,
                        file: row.try_get(4)?,
                        image: row.try_get(5)?,
                        changes: serde_json::from_str(&changes).context("reading bump changes")?,
                        commit: row.try_get(7)?,
                        pull_request: row.try_get(8)?,
                    },
                    error: row.try_get(9)?,
                    at: Some(super::runs::timestamp(row.try_get(10)?)),
                })
            })
            .collect()
    }
}
