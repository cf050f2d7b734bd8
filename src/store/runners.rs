//! The runner fleet as the store sees it: each runner process's row (name, labels,
//! capacity, last heartbeat), and one heartbeat that keeps both the row and every run the
//! runner holds alive.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::now_millis;
use super::runs::timestamp;
use crate::domain::RunnerState;

/// What a runner says about itself when it starts.
#[derive(Debug, Clone)]
pub struct RunnerIdentity {
    /// Unique per process: what `runs.runner` holds.
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    pub capacity: i64,
    pub version: String,
}

/// A runner as `/api/runners` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunnerRecord {
    pub name: String,
    pub labels: Vec<String>,
    pub capacity: i64,
    /// Runs it holds now.
    pub runs: i64,
    pub version: String,
    pub state: RunnerState,
    pub started_at: String,
    pub last_heartbeat: String,
    /// Seconds since the last heartbeat.
    pub silent_for: f64,
}

/// A run a runner holds, as its heartbeat found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRun {
    pub id: i64,
    pub cancel_requested: bool,
}

impl super::Store {
    /// Adds this runner to the fleet. Rows of earlier processes under the same name that
    /// went silent past `lease_millis` are dropped: the restarted runner replaces them.
    /// With `only_runner` (SQLite: one process), every other row is.
    pub async fn register_runner(
        &self,
        me: &RunnerIdentity,
        lease_millis: i64,
        only_runner: bool,
    ) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query("DELETE FROM runners WHERE (name = $1 AND heartbeat_at < $2) OR $3 = 1")
            .bind(&me.name)
            .bind(now - lease_millis)
            .bind(i64::from(only_runner))
            .execute(self.pool())
            .await
            .context("dropping the rows of this runner's earlier processes")?;
        sqlx::query(
            "INSERT INTO runners (id, name, labels, capacity, version, state, started_at, \
             heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&me.id)
        .bind(&me.name)
        .bind(serde_json::to_string(&me.labels)?)
        .bind(me.capacity)
        .bind(&me.version)
        .bind(RunnerState::Active)
        .bind(now)
        .execute(self.pool())
        .await
        .context("registering the runner")?;
        Ok(())
    }

    /// Says the runner and every run it holds are alive, records whether it is draining,
    /// and returns the runs it still holds (a run taken back while the runner was silent
    /// is missing). A runner whose row was dropped as lost gets it back.
    pub async fn runner_heartbeat(
        &self,
        me: &RunnerIdentity,
        state: RunnerState,
        lease_millis: i64,
    ) -> anyhow::Result<Vec<HeldRun>> {
        let now = now_millis();
        let updated = sqlx::query("UPDATE runners SET heartbeat_at = $1, state = $2 WHERE id = $3")
            .bind(now)
            .bind(state)
            .bind(&me.id)
            .execute(self.pool())
            .await
            .context("runner heartbeat")?
            .rows_affected();
        if updated == 0 {
            self.register_runner(me, lease_millis, false).await?;
        }
        let rows = sqlx::query(
            "UPDATE runs SET heartbeat_at = $1 WHERE runner = $2 AND state = 'running' \
             RETURNING id, cancel_requested",
        )
        .bind(now)
        .bind(&me.id)
        .fetch_all(self.pool())
        .await
        .context("heartbeat of the runner's runs")?;
        rows.iter()
            .map(|row| {
                Ok(HeldRun {
                    id: row.try_get(0)?,
                    cancel_requested: row.try_get::<i64, _>(1)? != 0,
                })
            })
            .collect()
    }

    /// Removes the runner from the fleet: it has stopped and holds nothing.
    pub async fn unregister_runner(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM runners WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .context("unregistering the runner")?;
        Ok(())
    }

    /// Every known runner, by name; one silent past `lease_millis` shows as lost.
    pub async fn runners(&self, lease_millis: i64) -> anyhow::Result<Vec<RunnerRecord>> {
        let rows = sqlx::query(
            "SELECT r.name, r.labels, r.capacity, r.version, r.state, r.started_at, \
             r.heartbeat_at, (SELECT COUNT(*) FROM runs WHERE runs.runner = r.id \
             AND runs.state = 'running') FROM runners AS r ORDER BY r.name, r.started_at",
        )
        .fetch_all(self.pool())
        .await
        .context("listing runners")?;
        let now = now_millis();
        rows.iter()
            .map(|row| {
                let labels: String = row.try_get(1)?;
                let heartbeat: i64 = row.try_get(6)?;
                let silent = now - heartbeat;
                let state = if silent > lease_millis {
                    RunnerState::Lost
                } else {
                    row.try_get(4)?
                };
                Ok(RunnerRecord {
                    name: row.try_get(0)?,
                    labels: serde_json::from_str(&labels).context("a runner's labels")?,
                    capacity: row.try_get(2)?,
                    version: row.try_get(3)?,
                    state,
                    started_at: timestamp(row.try_get(5)?),
                    last_heartbeat: timestamp(heartbeat),
                    silent_for: silent.max(0) as f64 / 1000.0,
                    runs: row.try_get(7)?,
                })
            })
            .collect()
    }
}
