//! What a run's pipelines did with their caches.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use crate::domain::CacheOutcome;

/// One cache of one pipeline of a run: how it was restored, and whether it was saved.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CacheReport {
    pub pipeline: String,
    /// The key, its `${hash:…}`s resolved.
    pub key: String,
    pub outcome: CacheOutcome,
    /// The entry restored: its key (another than `key` for a `restore_keys` match) and
    /// scope (`branch/main`, `pull/7`).
    pub source_key: Option<String>,
    pub source_scope: Option<String>,
    pub restored_bytes: Option<i64>,
    pub restore_seconds: f64,
    /// `saved`, or why not (the pipeline failed, the key was restored as it is); `None`
    /// until the pipeline ends.
    pub saved: Option<String>,
    pub saved_bytes: Option<i64>,
    pub save_seconds: Option<f64>,
}

impl super::Store {
    /// Records the report, replacing the one before for the same pipeline and key (a
    /// restore first, the save after).
    pub async fn record_cache(&self, run_id: i64, report: &CacheReport) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO run_caches (run_id, pipeline, cache_key, outcome, source_key, \
             source_scope, restored_bytes, restore_seconds, saved, saved_bytes, save_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (run_id, pipeline, cache_key) DO UPDATE SET outcome = $4, \
             source_key = $5, source_scope = $6, restored_bytes = $7, restore_seconds = $8, \
             saved = $9, saved_bytes = $10, save_seconds = $11",
        )
        .bind(run_id)
        .bind(&report.pipeline)
        .bind(&report.key)
        .bind(report.outcome)
        .bind(&report.source_key)
        .bind(&report.source_scope)
        .bind(report.restored_bytes)
        .bind(report.restore_seconds)
        .bind(&report.saved)
        .bind(report.saved_bytes)
        .bind(report.save_seconds)
        .execute(self.pool())
        .await
        .context("recording a cache")?;
        Ok(())
    }

    pub async fn run_caches(&self, run_id: i64) -> anyhow::Result<Vec<CacheReport>> {
        let rows = sqlx::query(
            "SELECT pipeline, cache_key, outcome, source_key, source_scope, restored_bytes, \
             restore_seconds, saved, saved_bytes, save_seconds FROM run_caches \
             WHERE run_id = $1 ORDER BY pipeline, cache_key",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .context("reading a run's caches")?;
        rows.iter()
            .map(|row| {
                Ok(CacheReport {
                    pipeline: row.try_get(0)?,
                    key: row.try_get(1)?,
                    outcome: row.try_get(2)?,
                    source_key: row.try_get(3)?,
                    source_scope: row.try_get(4)?,
                    restored_bytes: row.try_get(5)?,
                    restore_seconds: row.try_get(6)?,
                    saved: row.try_get(7)?,
                    saved_bytes: row.try_get(8)?,
                    save_seconds: row.try_get(9)?,
                })
            })
            .collect()
    }
}
