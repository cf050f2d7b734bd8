//! Pipelines' schedules as the default branch last said, and the slots that started runs.

use anyhow::Context;
use sqlx::Row;

use super::now_millis;
use super::queue::insert_started_run;
use crate::domain::{Forge, RepoName};
use crate::webhook::{Event, RunRequest};

/// One `on.schedule` entry of one pipeline of a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEntry {
    pub pipeline: String,
    pub cron: String,
    pub branch: String,
}

/// A schedule as stored: since when it is known, and its last slot that started a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    pub forge: Forge,
    pub repo: RepoName,
    pub entry: ScheduleEntry,
    /// Milliseconds since the epoch; no slot before it is owed.
    pub since: i64,
    pub last_slot: Option<i64>,
}

impl super::Store {
    /// Makes `entries` the schedules of `repo`: entries known before keep the time they
    /// were first seen, new ones start now, the others go.
    pub async fn replace_schedules(
        &self,
        forge: Forge,
        repo: &RepoName,
        entries: &[ScheduleEntry],
    ) -> anyhow::Result<()> {
        // Writes first, so that the transaction holds SQLite's write lock from its first
        // statement (a read could not be followed by a write once another writer committed).
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("starting to record schedules")?;
        if entries.is_empty() {
            sqlx::query("DELETE FROM schedules WHERE forge = $1 AND repo = $2")
                .bind(forge)
                .bind(repo)
                .execute(&mut *tx)
                .await
                .context("removing a repo's schedules")?;
        }
        for entry in entries {
            sqlx::query(
                "INSERT INTO schedules (forge, repo, pipeline, cron, branch, since) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (forge, repo, pipeline, cron, branch) DO NOTHING",
            )
            .bind(forge)
            .bind(repo)
            .bind(&entry.pipeline)
            .bind(&entry.cron)
            .bind(&entry.branch)
            .bind(now_millis())
            .execute(&mut *tx)
            .await
            .context("recording a schedule")?;
        }
        let known = sqlx::query(
            "SELECT pipeline, cron, branch FROM schedules WHERE forge = $1 AND repo = $2",
        )
        .bind(forge)
        .bind(repo)
        .fetch_all(&mut *tx)
        .await
        .context("reading a repo's schedules")?;
        for row in known {
            let entry = ScheduleEntry {
                pipeline: row.try_get(0)?,
                cron: row.try_get(1)?,
                branch: row.try_get(2)?,
            };
            if !entries.contains(&entry) {
                sqlx::query(
                    "DELETE FROM schedules WHERE forge = $1 AND repo = $2 AND pipeline = $3 \
                     AND cron = $4 AND branch = $5",
                )
                .bind(forge)
                .bind(repo)
                .bind(&entry.pipeline)
                .bind(&entry.cron)
                .bind(&entry.branch)
                .execute(&mut *tx)
                .await
                .context("removing a schedule")?;
            }
        }
        tx.commit().await.context("committing schedules")?;
        Ok(())
    }

    /// Every schedule (of `repo` alone, when given), with its pipeline's last slot.
    pub async fn schedules(
        &self,
        repo: Option<(Forge, &RepoName)>,
    ) -> anyhow::Result<Vec<ScheduleRecord>> {
        let rows = sqlx::query(
            "SELECT s.forge, s.repo, s.pipeline, s.cron, s.branch, s.since, \
             (SELECT MAX(slot) FROM schedule_slots AS t WHERE t.forge = s.forge \
              AND t.repo = s.repo AND t.pipeline = s.pipeline) \
             FROM schedules AS s WHERE ($1 IS NULL OR (s.forge = $1 AND s.repo = $2)) \
             ORDER BY s.forge, s.repo, s.pipeline, s.cron",
        )
        .bind(repo.map(|(forge, _)| forge))
        .bind(repo.map(|(_, name)| name.clone()))
        .fetch_all(self.pool())
        .await
        .context("reading schedules")?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleRecord {
                    forge: row.try_get(0)?,
                    repo: row.try_get(1)?,
                    entry: ScheduleEntry {
                        pipeline: row.try_get(2)?,
                        cron: row.try_get(3)?,
                        branch: row.try_get(4)?,
                    },
                    since: row.try_get(5)?,
                    last_slot: row.try_get(6)?,
                })
            })
            .collect()
    }

    /// Claims `slot` of the schedule's pipeline and queues its run, in one transaction;
    /// `None` when the slot was claimed before (by another replica, say).
    pub async fn start_scheduled_run(
        &self,
        record: &ScheduleRecord,
        slot: i64,
        event: &Event,
        request: &RunRequest,
    ) -> anyhow::Result<Option<i64>> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("starting a scheduled run")?;
        let claimed = sqlx::query(
            "INSERT INTO schedule_slots (forge, repo, pipeline, slot) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (forge, repo, pipeline, slot) DO NOTHING",
        )
        .bind(record.forge)
        .bind(&record.repo)
        .bind(&record.entry.pipeline)
        .bind(slot)
        .execute(&mut *tx)
        .await
        .context("claiming a schedule's slot")?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let id = insert_started_run(&mut tx, &record.repo, event, request).await?;
        sqlx::query(
            "UPDATE schedule_slots SET run_id = $1 WHERE forge = $2 AND repo = $3 \
             AND pipeline = $4 AND slot = $5",
        )
        .bind(id)
        .bind(record.forge)
        .bind(&record.repo)
        .bind(&record.entry.pipeline)
        .bind(slot)
        .execute(&mut *tx)
        .await
        .context("recording a slot's run")?;
        tx.commit().await.context("committing a scheduled run")?;
        self.queued().notify_one();
        Ok(Some(id))
    }
}
