//! What a run produced: each pipeline's result, each stage's state, and the output.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use std::collections::BTreeMap;

use super::{Backend, Hold, now_millis};
use crate::domain::StageState;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PipelineResult {
    pub pipeline: String,
    pub file: String,
    pub state: StageState,
    pub description: Option<String>,
    pub stages: Vec<StageResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StageResult {
    pub stage: String,
    pub state: StageState,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    pub attempts: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Bytes of output dropped beyond `runner.max_log_size`; 0 when the log is whole.
    pub log_dropped: i64,
}

/// A stage's state change, as the runner reports it.
#[derive(Debug, Clone)]
pub struct StageUpdate<'a> {
    pub pipeline: &'a str,
    pub stage: &'a str,
    pub position: i64,
    pub state: StageState,
    pub exit_code: Option<i64>,
    pub message: Option<&'a str>,
    pub attempts: i64,
    pub started: bool,
    pub finished: bool,
    pub log_dropped: i64,
}

/// Which chunks of a run's output to read (see [`super::Store::log_chunks`]).
#[derive(Debug, Clone, Copy)]
pub struct LogPage<'a> {
    pub after: i64,
    pub until: i64,
    pub stage: Option<(&'a str, &'a str)>,
    pub limit: i64,
}

impl<'a> LogPage<'a> {
    /// The first `limit` chunks after `after`, of every stage.
    pub fn after(after: i64, limit: i64) -> Self {
        Self {
            after,
            until: i64::MAX,
            stage: None,
            limit,
        }
    }
}

/// Where a stage's shown tail of output starts (see [`super::Store::log_tails`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTail {
    /// The id of the last chunk not shown: the tail is the stage's chunks after it.
    pub after: i64,
    /// The id of the stage's newest chunk.
    pub last: i64,
    /// Bytes in the tail.
    pub shown: i64,
    /// Bytes before it, not shown.
    pub hidden: i64,
}

/// Some consecutive lines of one stage.
#[derive(Debug, Clone)]
pub struct LogChunk {
    pub run_id: i64,
    pub pipeline: String,
    pub stage: String,
    pub first_line: i64,
    pub line_count: i64,
    pub text: String,
}

/// Records a pipeline's state and why (see [`super::Store::set_pipeline`]); with `hold`,
/// only while that runner holds the run.
pub(super) async fn upsert_pipeline<'c, E>(
    executor: E,
    run_id: i64,
    hold: Option<&str>,
    pipeline: &str,
    file: &str,
    state: StageState,
    description: Option<&str>,
) -> anyhow::Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "INSERT INTO run_pipelines (run_id, pipeline, file, state, description) \
         SELECT $1, $2, $3, $4, $5 WHERE $6 IS NULL OR {HELD} \
         ON CONFLICT (run_id, pipeline) \
         DO UPDATE SET state = excluded.state, description = excluded.description",
        HELD = held("$1", "$6")
    ))
    .bind(run_id)
    .bind(pipeline)
    .bind(file)
    .bind(state)
    .bind(description)
    .bind(hold)
    .execute(executor)
    .await
    .with_context(|| format!("recording pipeline {pipeline} of run {run_id}"))?;
    Ok(())
}

/// The SQL condition that run `run` is held by runner `runner` (both placeholders).
pub(super) fn held(run: &str, runner: &str) -> String {
    format!("EXISTS (SELECT 1 FROM runs AS held WHERE held.id = {run} AND held.runner = {runner})")
}

impl super::Store {
    /// Records a pipeline's state, while `hold` is still the run's.
    pub async fn set_pipeline(
        &self,
        hold: &Hold,
        pipeline: &str,
        file: &str,
        state: StageState,
        description: Option<&str>,
    ) -> anyhow::Result<()> {
        upsert_pipeline(
            self.pool(),
            hold.run_id,
            Some(&hold.runner),
            pipeline,
            file,
            state,
            description,
        )
        .await
    }

    /// Records a stage's state, while `hold` is still the run's.
    pub async fn set_stage(&self, hold: &Hold, update: &StageUpdate<'_>) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query(&format!(
            "INSERT INTO stages (run_id, pipeline, stage, position, state, exit_code, message, \
             attempts, started_at, finished_at, log_dropped) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 WHERE {HELD} \
             ON CONFLICT (run_id, pipeline, stage) DO UPDATE SET state = excluded.state, \
             exit_code = excluded.exit_code, message = excluded.message, \
             attempts = excluded.attempts, \
             started_at = COALESCE(stages.started_at, excluded.started_at), \
             finished_at = excluded.finished_at, log_dropped = excluded.log_dropped",
            HELD = held("$1", "$12")
        ))
        .bind(hold.run_id)
        .bind(update.pipeline)
        .bind(update.stage)
        .bind(update.position)
        .bind(update.state)
        .bind(update.exit_code)
        .bind(update.message)
        .bind(update.attempts)
        .bind(update.started.then_some(now))
        .bind(update.finished.then_some(now))
        .bind(update.log_dropped)
        .bind(&hold.runner)
        .execute(self.pool())
        .await
        .with_context(|| format!("recording stage {} of run {}", update.stage, hold.run_id))?;
        Ok(())
    }

    /// Stores a chunk of output, while `hold` is still the run's.
    pub async fn append_log(&self, hold: &Hold, chunk: &LogChunk) -> anyhow::Result<()> {
        sqlx::query(&format!(
            "INSERT INTO log_chunks (run_id, pipeline, stage, first_line, line_count, text) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE {HELD}",
            HELD = held("$1", "$7")
        ))
        .bind(hold.run_id)
        .bind(&chunk.pipeline)
        .bind(&chunk.stage)
        .bind(chunk.first_line)
        .bind(chunk.line_count)
        .bind(&chunk.text)
        .bind(&hold.runner)
        .execute(self.pool())
        .await
        .with_context(|| format!("storing output of run {}", hold.run_id))?;
        Ok(())
    }

    /// Up to `page.limit` chunks of a run's output stored after the chunk with id
    /// `page.after` (and at most up to `page.until`; of one stage only, when given), in the
    /// order they were stored, with their ids. Ids only grow, so the last id is where the
    /// next page starts, and a live viewer's event id. Callers page through a log this way:
    /// never all of it at once.
    pub async fn log_chunks(
        &self,
        run_id: i64,
        page: &LogPage<'_>,
    ) -> anyhow::Result<Vec<(i64, LogChunk)>> {
        let (pipeline, stage) = page.stage.unzip();
        let rows = sqlx::query(
            "SELECT id, pipeline, stage, first_line, line_count, text FROM log_chunks \
             WHERE run_id = $1 AND id > $2 AND id <= $3 \
             AND ($4 IS NULL OR (pipeline = $4 AND stage = $5)) ORDER BY id LIMIT $6",
        )
        .bind(run_id)
        .bind(page.after)
        .bind(page.until)
        .bind(pipeline)
        .bind(stage)
        .bind(page.limit)
        .fetch_all(self.pool())
        .await
        .with_context(|| format!("reading output of run {run_id}"))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    LogChunk {
                        run_id,
                        pipeline: row.try_get(1)?,
                        stage: row.try_get(2)?,
                        first_line: row.try_get(3)?,
                        line_count: row.try_get(4)?,
                        text: row.try_get(5)?,
                    },
                ))
            })
            .collect()
    }

    /// Where each stage's last `tail_bytes` of output start: per `(pipeline, stage)`, the
    /// id before its first chunk to show, and the bytes of the chunks before it. Reads
    /// only the chunks' sizes.
    pub async fn log_tails(
        &self,
        run_id: i64,
        tail_bytes: i64,
    ) -> anyhow::Result<BTreeMap<(String, String), LogTail>> {
        let size = match self.backend() {
            Backend::Postgres => "octet_length(text)",
            Backend::Sqlite => "length(CAST(text AS BLOB))",
        };
        let rows = sqlx::query(&format!(
            "SELECT id, pipeline, stage, {size} FROM log_chunks WHERE run_id = $1 \
             ORDER BY id DESC"
        ))
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .with_context(|| format!("reading the output sizes of run {run_id}"))?;
        let mut tails: BTreeMap<(String, String), LogTail> = BTreeMap::new();
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let bytes: i64 = row.try_get(3)?;
            let tail = tails
                .entry((row.try_get(1)?, row.try_get(2)?))
                .or_insert(LogTail {
                    after: 0,
                    last: id,
                    shown: 0,
                    hidden: 0,
                });
            if tail.hidden == 0 && (tail.shown == 0 || tail.shown + bytes <= tail_bytes) {
                tail.shown += bytes;
            } else {
                tail.after = tail.after.max(id);
                tail.hidden += bytes;
            }
        }
        Ok(tails)
    }

    pub async fn pipeline_results(&self, run_id: i64) -> anyhow::Result<Vec<PipelineResult>> {
        let pipelines = sqlx::query(
            "SELECT pipeline, file, state, description FROM run_pipelines WHERE run_id = $1 \
             ORDER BY pipeline",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .context("reading pipeline results")?;
        let stages = sqlx::query(
            "SELECT pipeline, stage, state, exit_code, message, attempts, started_at, \
             finished_at, log_dropped FROM stages WHERE run_id = $1 ORDER BY pipeline, position",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .context("reading stage results")?;
        let mut results: Vec<PipelineResult> = pipelines
            .iter()
            .map(|row| {
                Ok(PipelineResult {
                    pipeline: row.try_get(0)?,
                    file: row.try_get(1)?,
                    state: row.try_get(2)?,
                    description: row.try_get(3)?,
                    stages: Vec::new(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        for row in &stages {
            let pipeline: String = row.try_get(0)?;
            let Some(result) = results.iter_mut().find(|r| r.pipeline == pipeline) else {
                continue;
            };
            result.stages.push(StageResult {
                stage: row.try_get(1)?,
                state: row.try_get(2)?,
                exit_code: row.try_get(3)?,
                message: row.try_get(4)?,
                attempts: row.try_get(5)?,
                started_at: row
                    .try_get::<Option<i64>, _>(6)?
                    .map(super::runs::timestamp),
                finished_at: row
                    .try_get::<Option<i64>, _>(7)?
                    .map(super::runs::timestamp),
                log_dropped: row.try_get(8)?,
            });
        }
        Ok(results)
    }
}
