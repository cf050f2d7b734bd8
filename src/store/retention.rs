//! Retention: which finished runs, and which logs, may go, and removing them in small
//! transactions so the intake's writes are never held up for long.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::{Backend, now_millis};

/// What `[store] keep_*` allow to stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Runs kept per repo, newest first.
    pub keep_runs: u32,
    /// Runs older than this many days go.
    pub keep_days: u32,
    /// Runs older than this many days keep their record and lose their log.
    pub keep_logs_days: u32,
}

/// A run that may go (or lose its log), as `gantry prune --dry-run` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prunable {
    pub id: i64,
    pub repo: String,
    pub git_ref: String,
    pub created_at: String,
}

/// Unfinished runs are never pruned.
const FINISHED: &str = "state NOT IN ('blocked', 'queued', 'running')";

const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

impl super::Store {
    /// Finished runs beyond `keep_runs` of their repo or older than `keep_days`, oldest
    /// first, at most `limit` — except, always, the newest finished run of each pipeline on
    /// each ref.
    pub async fn prunable_runs(
        &self,
        retention: &Retention,
        limit: i64,
    ) -> anyhow::Result<Vec<Prunable>> {
        let cutoff = now_millis() - i64::from(retention.keep_days) * DAY_MILLIS;
        let sql = format!(
            "WITH ranked AS (SELECT id, forge, repo, git_ref, created_at, state, \
             ROW_NUMBER() OVER (PARTITION BY forge, repo ORDER BY id DESC) AS place FROM runs) \
             SELECT r.id, r.repo, r.git_ref, r.created_at FROM ranked AS r \
             WHERE r.{FINISHED} AND (r.place > $1 OR r.created_at < $2) \
             AND NOT EXISTS (SELECT 1 FROM run_pipelines AS p WHERE p.run_id = r.id \
               AND NOT EXISTS (SELECT 1 FROM runs AS newer \
                 JOIN run_pipelines AS q ON q.run_id = newer.id AND q.pipeline = p.pipeline \
                 WHERE newer.repo = r.repo AND newer.forge = r.forge \
                 AND newer.git_ref = r.git_ref AND newer.id > r.id AND newer.{FINISHED})) \
             ORDER BY r.id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(retention.keep_runs))
            .bind(cutoff)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .context("finding runs to prune")?;
        rows.iter().map(prunable).collect()
    }

    /// Finished runs older than `keep_logs_days` that still have a log, oldest first.
    pub async fn prunable_logs(
        &self,
        retention: &Retention,
        limit: i64,
    ) -> anyhow::Result<Vec<Prunable>> {
        let cutoff = now_millis() - i64::from(retention.keep_logs_days) * DAY_MILLIS;
        let rows = sqlx::query(&format!(
            "SELECT id, repo, git_ref, created_at FROM runs WHERE {FINISHED} \
             AND created_at < $1 AND EXISTS (SELECT 1 FROM log_chunks WHERE run_id = runs.id) \
             ORDER BY id LIMIT $2"
        ))
        .bind(cutoff)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .context("finding logs to prune")?;
        rows.iter().map(prunable).collect()
    }

    /// Removes the runs `ids` with everything recorded of them, and their deliveries, in
    /// one transaction. Returns how many runs went.
    pub async fn remove_runs(&self, ids: &[i64]) -> anyhow::Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Writes only, the first of them taking the write lock: a SQLite transaction that
        // read first could not write once the intake had committed since its read.
        let mut tx = self.pool().begin().await.context("starting a prune")?;
        for table in [
            "log_chunks",
            "stages",
            "run_pipelines",
            "status_updates",
            "deployments",
            "bumps",
            "run_labels",
            "run_caches",
        ] {
            let sql = format!("DELETE FROM {table} WHERE run_id IN ({{ids}})");
            for_ids(&mut *tx, &sql, ids)
                .await
                .with_context(|| format!("pruning {table}"))?;
        }
        let sql = format!(
            "DELETE FROM runs WHERE id IN ({}) RETURNING delivery",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id);
        }
        let deliveries: Vec<i64> = query
            .fetch_all(&mut *tx)
            .await
            .context("pruning runs")?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let removed = deliveries.len() as u64;
        // Each delivery queued one run (a rerun or a manual run has one of its own).
        for_ids(
            &mut *tx,
            "DELETE FROM deliveries WHERE id IN ({ids})",
            &deliveries,
        )
        .await
        .context("pruning deliveries")?;
        tx.commit().await.context("committing a prune")?;
        Ok(removed)
    }

    /// Removes the logs of the runs `ids`; their records stay. Returns the chunks removed.
    pub async fn remove_logs(&self, ids: &[i64]) -> anyhow::Result<u64> {
        for_ids(
            self.pool(),
            "DELETE FROM log_chunks WHERE run_id IN ({ids})",
            ids,
        )
        .await
        .context("pruning logs")
    }

    /// Gives SQLite's free pages back to the file system, a bounded number at a time (a
    /// store made by an older Gantry, without incremental auto-vacuum, keeps its size until
    /// a `VACUUM`).
    pub async fn reclaim_space(&self) -> anyhow::Result<()> {
        if self.backend() == Backend::Sqlite {
            sqlx::query("PRAGMA incremental_vacuum(4096)")
                .execute(self.pool())
                .await
                .context("reclaiming free pages")?;
        }
        Ok(())
    }

    /// The store's size on disk in bytes: the SQLite file's pages in use, or the
    /// PostgreSQL database's size.
    pub async fn size_bytes(&self) -> anyhow::Result<i64> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            }
            Backend::Postgres => "SELECT pg_database_size(current_database())",
        };
        let row = sqlx::query(sql)
            .fetch_one(self.pool())
            .await
            .context("reading the store's size")?;
        Ok(row.try_get(0)?)
    }
}

fn prunable(row: &sqlx::any::AnyRow) -> anyhow::Result<Prunable> {
    Ok(Prunable {
        id: row.try_get(0)?,
        repo: row.try_get(1)?,
        git_ref: row.try_get(2)?,
        created_at: super::runs::timestamp(row.try_get(3)?),
    })
}

/// Executes `sql` with `{ids}` replaced by one placeholder per id and the ids bound;
/// nothing for no id. Returns the rows affected.
async fn for_ids<'c, E>(executor: E, sql: &str, ids: &[i64]) -> anyhow::Result<u64>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = sql.replace("{ids}", &placeholders(ids.len()));
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query.execute(executor).await?.rows_affected())
}

/// `$1, $2, …` for `count` values.
fn placeholders(count: usize) -> String {
    (1..=count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
