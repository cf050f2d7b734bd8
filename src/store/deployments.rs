//! Deploy feedback in the store: what Flux and Argo CD reported, and where each bump stands
//! in each environment it deploys to. Statuses for the app commits go through the outbox
//! (`status_updates`), like the pipelines' own.

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::now_millis;
use super::runs::timestamp;
use super::statuses::insert_status;
use crate::domain::{CommitStatus, DeployOutcome, DeploySource, DeployState, StatusState};

/// A controller's report, as the hooks store it.
#[derive(Debug, Clone)]
pub struct NewDeployEvent {
    pub source: DeploySource,
    /// `namespace/name` (Flux) or the application (Argo CD).
    pub object: String,
    pub environment: String,
    /// The config repo's commit the report is about.
    pub revision: String,
    pub outcome: DeployOutcome,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployRecorded {
    Stored {
        id: i64,
    },
    /// The object's last report had this revision and outcome already.
    Repeated,
}

/// A stored report a runner took to settle.
#[derive(Debug, Clone)]
pub struct ClaimedDeployEvent {
    pub id: i64,
    pub environment: String,
    pub revision: String,
    pub outcome: DeployOutcome,
    pub message: Option<String>,
}

/// A bump not yet known to be deployed in an environment.
#[derive(Debug, Clone)]
pub struct OpenDeployment {
    pub bump_id: i64,
    pub run_id: i64,
    /// The bump commit in the config repo.
    pub commit: String,
    pub branch: String,
    pub state: DeployState,
    /// Unix milliseconds.
    pub pushed_at: i64,
}

/// What settling a report decided for one open deployment.
#[derive(Debug, Clone)]
pub struct SettledDeployment {
    pub bump_id: i64,
    pub run_id: i64,
    pub state: DeployState,
    /// The description the app commit's status gets.
    pub description: String,
}

/// One environment's deployment of one of a run's bumps, as the run shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeployReport {
    pub environment: String,
    /// The bump stage: its pipeline and name.
    pub pipeline: String,
    pub stage: String,
    pub state: DeployState,
    /// The config repo's file the bump changed.
    pub file: String,
    /// The bump commit.
    pub commit: Option<String>,
    /// The revision whose report settled it.
    pub revision: Option<String>,
    pub message: Option<String>,
    pub pushed_at: String,
    pub settled_at: Option<String>,
}

/// The status context of an environment's deployments.
pub fn deploy_context(environment: &str) -> String {
    format!("gantry/deploy/{environment}")
}

impl super::Store {
    /// Stores a report unless it repeats the object's last one (same revision and outcome).
    pub async fn record_deploy_event(
        &self,
        event: &NewDeployEvent,
    ) -> anyhow::Result<DeployRecorded> {
        let row = sqlx::query(
            "INSERT INTO deploy_events (source, object, environment, revision, outcome, message, \
             received_at) SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE NOT EXISTS (SELECT 1 FROM deploy_events AS last \
             WHERE last.id = (SELECT MAX(id) FROM deploy_events \
             WHERE source = $1 AND object = $2) \
             AND last.revision = $4 AND last.outcome = $5) RETURNING id",
        )
        .bind(event.source)
        .bind(&event.object)
        .bind(&event.environment)
        .bind(&event.revision)
        .bind(event.outcome)
        .bind(&event.message)
        .bind(now_millis())
        .fetch_optional(self.pool())
        .await
        .context("recording a deploy report")?;
        Ok(match row {
            Some(row) => DeployRecorded::Stored {
                id: row.try_get(0)?,
            },
            None => DeployRecorded::Repeated,
        })
    }

    /// Opens a bump's deployment to each of `environments`, pending, and queues the pending
    /// status of each (when the run reports statuses), in one transaction.
    pub async fn open_deployments(
        &self,
        bump_id: i64,
        run_id: i64,
        environments: &[(String, Option<CommitStatus>)],
    ) -> anyhow::Result<()> {
        if environments.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await.context("opening deployments")?;
        let now = now_millis();
        for (environment, status) in environments {
            sqlx::query(
                "INSERT INTO deployments (bump_id, run_id, environment, state, pushed_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(bump_id)
            .bind(run_id)
            .bind(environment)
            .bind(DeployState::Pending)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context("opening a deployment")?;
            if let Some(status) = status {
                insert_status(&mut *tx, run_id, None, status).await?;
            }
        }
        tx.commit().await.context("committing deployments")?;
        Ok(())
    }

    /// Takes the oldest report nobody settled (or whose taker went quiet for `lease_millis`).
    pub async fn claim_deploy_event(
        &self,
        lease_millis: i64,
    ) -> anyhow::Result<Option<ClaimedDeployEvent>> {
        let now = now_millis();
        let row = sqlx::query(
            "UPDATE deploy_events SET claimed_at = $1 WHERE id = (SELECT id FROM deploy_events \
             WHERE settled_at IS NULL AND (claimed_at IS NULL OR claimed_at < $2) \
             ORDER BY id LIMIT 1) AND settled_at IS NULL \
             AND (claimed_at IS NULL OR claimed_at < $2) \
             RETURNING id, environment, revision, outcome, message",
        )
        .bind(now)
        .bind(now - lease_millis)
        .fetch_optional(self.pool())
        .await
        .context("claiming a deploy report")?;
        row.map(|row| {
            Ok(ClaimedDeployEvent {
                id: row.try_get(0)?,
                environment: row.try_get(1)?,
                revision: row.try_get(2)?,
                outcome: row.try_get(3)?,
                message: row.try_get(4)?,
            })
        })
        .transpose()
    }

    /// The bumps of an environment not yet deployed (pending, or failed and waiting for a
    /// revision that applies), oldest first.
    pub async fn open_deployments_of(
        &self,
        environment: &str,
    ) -> anyhow::Result<Vec<OpenDeployment>> {
        let rows = sqlx::query(
            "SELECT d.bump_id, d.run_id, b.commit_sha, b.branch, d.state, d.pushed_at \
             FROM deployments AS d JOIN bumps AS b ON b.id = d.bump_id \
             WHERE d.environment = $1 AND d.state IN ($2, $3) AND b.commit_sha IS NOT NULL \
             ORDER BY d.bump_id",
        )
        .bind(environment)
        .bind(DeployState::Pending)
        .bind(DeployState::Failure)
        .fetch_all(self.pool())
        .await
        .context("reading open deployments")?;
        rows.iter()
            .map(|row| {
                Ok(OpenDeployment {
                    bump_id: row.try_get(0)?,
                    run_id: row.try_get(1)?,
                    commit: row.try_get(2)?,
                    branch: row.try_get(3)?,
                    state: row.try_get(4)?,
                    pushed_at: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Records what a report decided and marks it settled, in one transaction. A
    /// deployment that succeeded meanwhile is left as it is; each changed one's app commit
    /// gets a status (a copy of its pending one with the new state), when it had one.
    /// Returns the bumps whose deployment changed.
    pub async fn settle_deploy_event(
        &self,
        event: &ClaimedDeployEvent,
        settled: &[SettledDeployment],
    ) -> anyhow::Result<Vec<i64>> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("settling a deploy report")?;
        let now = now_millis();
        sqlx::query("UPDATE deploy_events SET settled_at = $1 WHERE id = $2")
            .bind(now)
            .bind(event.id)
            .execute(&mut *tx)
            .await
            .context("marking a deploy report settled")?;
        let context = deploy_context(&event.environment);
        let mut changed_bumps = Vec::new();
        for deployment in settled {
            let changed = sqlx::query(
                "UPDATE deployments SET state = $1, revision = $2, message = $3, settled_at = $4 \
                 WHERE bump_id = $5 AND environment = $6 AND state <> $7",
            )
            .bind(deployment.state)
            .bind(&event.revision)
            .bind(&event.message)
            .bind(now)
            .bind(deployment.bump_id)
            .bind(&event.environment)
            .bind(DeployState::Success)
            .execute(&mut *tx)
            .await
            .context("settling a deployment")?
            .rows_affected();
            if changed == 0 {
                continue;
            }
            changed_bumps.push(deployment.bump_id);
            let state = match deployment.state {
                DeployState::Success => StatusState::Success,
                DeployState::Failure => StatusState::Failure,
                DeployState::Pending => StatusState::Pending,
            };
            sqlx::query(
                "INSERT INTO status_updates (run_id, forge, repo, commit_sha, git_ref, context, \
                 state, description, target_url, delivery, next_attempt_at, created_at) \
                 SELECT run_id, forge, repo, commit_sha, git_ref, context, $1, $2, target_url, \
                 'waiting', $3, $3 FROM status_updates \
                 WHERE id = (SELECT MAX(id) FROM status_updates WHERE run_id = $4 AND context = $5)",
            )
            .bind(state)
            .bind(&deployment.description)
            .bind(now)
            .bind(deployment.run_id)
            .bind(&context)
            .execute(&mut *tx)
            .await
            .context("queueing a deploy status")?;
        }
        tx.commit().await.context("committing a deploy report")?;
        Ok(changed_bumps)
    }

    /// Each environment's deployment of each of the run's bumps.
    pub async fn run_deployments(&self, run_id: i64) -> anyhow::Result<Vec<DeployReport>> {
        let rows = sqlx::query(
            "SELECT d.environment, d.state, b.file, b.commit_sha, d.revision, d.message, \
             d.pushed_at, d.settled_at, b.pipeline, b.stage FROM deployments AS d \
             JOIN bumps AS b ON b.id = d.bump_id WHERE d.run_id = $1 \
             ORDER BY d.bump_id, d.environment",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await
        .context("reading a run's deployments")?;
        rows.iter()
            .map(|row| {
                Ok(DeployReport {
                    environment: row.try_get(0)?,
                    pipeline: row.try_get(8)?,
                    stage: row.try_get(9)?,
                    state: row.try_get(1)?,
                    file: row.try_get(2)?,
                    commit: row.try_get(3)?,
                    revision: row.try_get(4)?,
                    message: row.try_get(5)?,
                    pushed_at: timestamp(row.try_get(6)?),
                    settled_at: row.try_get::<Option<i64>, _>(7)?.map(timestamp),
                })
            })
            .collect()
    }
}
