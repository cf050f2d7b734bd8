//! The run queue as runners see it: claiming, owning (heartbeats, cancel requests), and
//! taking back what a crashed runner left.

use anyhow::Context;
use sqlx::Row;

use super::statuses::restate_open_statuses;
use super::{Backend, UNFINISHED, now_millis};
use crate::domain::{CommitSha, Decision, Forge, RepoName, RunState, StatusState, Trigger};
use crate::webhook::Event;

/// A run a runner has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub id: i64,
    pub repo: RepoName,
    pub event: Event,
    /// How many times the run has been claimed, this time included.
    pub attempts: i64,
}

/// Claims after which an interrupted run is given up instead of queued again.
pub const MAX_ATTEMPTS: i64 = 2;

/// What a run's pipelines say when its runner went silent and it was queued again.
pub const RUNNER_LOST: &str = "runner lost; queued again";
/// What a run says when it was given up after its runners were lost [`MAX_ATTEMPTS`] times.
const GIVEN_UP: &str = "runner lost on every attempt; not retried";

/// A run as held by one runner. Every write about the run's progress goes through it and
/// is dropped once the run is no longer that runner's: taken back while the runner was
/// silent (a network split, a paused VM) and perhaps running elsewhere now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub run_id: i64,
    /// The holding runner's process id (`runs.runner`).
    pub runner: String,
}

/// Whether a newer blocked, queued or running run of the same repo, event kind, ref and
/// pull request exists: the run (`runs`) is superseded. The pull request counts because two
/// forks may each open one from a branch of the same name.
const NEWER_EXISTS: &str = "EXISTS (SELECT 1 FROM runs AS newer WHERE newer.repo = runs.repo \
     AND newer.trigger_kind = runs.trigger_kind AND newer.git_ref = runs.git_ref \
     AND COALESCE(newer.pr_number, -1) = COALESCE(runs.pr_number, -1) \
     AND newer.id > runs.id AND newer.state IN ('blocked', 'queued', 'running'))";

impl super::Store {
    /// Cancels runs made obsolete by a newer run for the same repo, event kind and ref:
    /// blocked and queued ones at once, running ones through a cancel request their runner
    /// sees. (A new push to a pull request thus replaces its blocked run: approval holds
    /// for one commit.)
    pub async fn supersede_older_runs(&self) -> anyhow::Result<u64> {
        let now = now_millis();
        let canceled = sqlx::query(&format!(
            "UPDATE runs SET state = $1, finished_at = $2, \
             description = 'superseded by a newer run for the same ref' \
             WHERE state IN ('blocked', 'queued') AND trigger_kind <> 'tag' AND {NEWER_EXISTS}"
        ))
        .bind(RunState::Canceled)
        .bind(now)
        .execute(self.pool())
        .await
        .context("canceling superseded queued runs")?
        .rows_affected();
        let requested = sqlx::query(&format!(
            "UPDATE runs SET cancel_requested = 1 \
             WHERE state = 'running' AND cancel_requested = 0 AND trigger_kind <> 'tag' \
             AND {NEWER_EXISTS}"
        ))
        .execute(self.pool())
        .await
        .context("requesting cancel of superseded running runs")?
        .rows_affected();
        Ok(canceled + requested)
    }

    /// Takes the oldest queued run for `runner` that asks for no label outside `labels`
    /// (runs not read yet ask for none) and that no newer run of its ref supersedes, or
    /// `None` when there is none; older runs of its ref still running are asked to cancel.
    /// Safe with several runners on one PostgreSQL: each run is claimed once.
    pub async fn claim_run(
        &self,
        runner: &str,
        labels: &[String],
    ) -> anyhow::Result<Option<ClaimedRun>> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            // SQLite has one writer at a time; the UPDATE is atomic on its own.
            Backend::Sqlite => "",
        };
        let offered = if labels.is_empty() {
            String::new()
        } else {
            let placeholders: Vec<String> =
                (0..labels.len()).map(|i| format!("${}", i + 3)).collect();
            format!(" AND l.label NOT IN ({})", placeholders.join(", "))
        };
        let now = now_millis();
        // `now` is read before the query waits for a connection or the write lock, while the
        // intake may commit the run it then claims: a run never starts before it was created.
        let sql = format!(
            "UPDATE runs SET state = 'running', runner = $1, heartbeat_at = $2, \
             started_at = CASE WHEN created_at > $2 THEN created_at ELSE $2 END, \
             attempts = attempts + 1, description = NULL \
             WHERE id = (SELECT id FROM runs WHERE state = 'queued' AND NOT EXISTS \
             (SELECT 1 FROM run_labels AS l WHERE l.run_id = runs.id{offered}) \
             AND (trigger_kind = 'tag' OR NOT {NEWER_EXISTS}) \
             ORDER BY id LIMIT 1{lock}) \
             RETURNING id, repo, event, attempts, git_ref, trigger_kind, pr_number"
        );
        let mut query = sqlx::query(&sql).bind(runner).bind(now);
        for label in labels {
            query = query.bind(label);
        }
        let row = query
            .fetch_optional(self.pool())
            .await
            .context("claiming a queued run")?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get(0)?;
        let trigger: Trigger = row.try_get(5)?;
        if trigger != Trigger::Tag {
            // Asked here, not only by the periodic upkeep: the newer run could otherwise
            // end before an older one of its ref is told to stop.
            sqlx::query(
                "UPDATE runs SET cancel_requested = 1 WHERE repo = $1 AND git_ref = $2 \
                 AND trigger_kind = $3 AND COALESCE(pr_number, -1) = COALESCE($5, -1) \
                 AND id < $4 AND state = 'running' AND cancel_requested = 0",
            )
            .bind(row.try_get::<RepoName, _>(1)?)
            .bind(row.try_get::<String, _>(4)?)
            .bind(trigger)
            .bind(id)
            .bind(row.try_get::<Option<i64>, _>(6)?)
            .execute(self.pool())
            .await
            .context("asking older runs of the ref to cancel")?;
        }
        let event: String = row.try_get(2)?;
        Ok(Some(ClaimedRun {
            id: row.try_get(0)?,
            repo: row.try_get(1)?,
            event: serde_json::from_str(&event).context("decoding a queued run's event")?,
            attempts: row.try_get(3)?,
        }))
    }

    /// Gives a held run back to the queue without counting the attempt (a draining runner,
    /// or one without the labels the run asks for, which are recorded so that only runners
    /// with them claim it again). Its unfinished pipelines, and the forge where it last
    /// heard pending or running, say `description`. Returns false when the run was no
    /// longer held.
    pub async fn hand_back(
        &self,
        hold: &Hold,
        labels: &[String],
        description: &str,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool().begin().await.context("starting a hand-back")?;
        let changed = sqlx::query(
            "UPDATE runs SET state = 'queued', runner = NULL, heartbeat_at = NULL, \
             started_at = NULL, attempts = attempts - 1, description = $1, cancel_requested = 0 \
             WHERE id = $2 AND runner = $3 AND state = 'running'",
        )
        .bind(description)
        .bind(hold.run_id)
        .bind(&hold.runner)
        .execute(&mut *tx)
        .await
        .context("handing a run back")?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        for label in labels {
            sqlx::query(
                "INSERT INTO run_labels (run_id, label) VALUES ($1, $2) \
                 ON CONFLICT (run_id, label) DO NOTHING",
            )
            .bind(hold.run_id)
            .bind(label)
            .execute(&mut *tx)
            .await
            .context("recording the labels a run asks for")?;
        }
        requeue_pipelines(&mut tx, hold.run_id, description).await?;
        tx.commit().await.context("committing a hand-back")?;
        self.statuses_queued().notify_one();
        self.queued().notify_one();
        Ok(true)
    }

    /// The labels a run asks for, as learnt by the first runner that read it.
    pub async fn run_labels(&self, run_id: i64) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT label FROM run_labels WHERE run_id = $1 ORDER BY label")
            .bind(run_id)
            .fetch_all(self.pool())
            .await
            .context("reading a run's labels")?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Cancels a blocked or queued run at once, and asks the runner of a running one to
    /// cancel it. Returns false when the run is already finished (or does not exist).
    pub async fn request_cancel(&self, run_id: i64) -> anyhow::Result<bool> {
        let queued = sqlx::query(
            "UPDATE runs SET state = 'canceled', finished_at = $1, description = 'canceled' \
             WHERE id = $2 AND state IN ('blocked', 'queued')",
        )
        .bind(now_millis())
        .bind(run_id)
        .execute(self.pool())
        .await
        .context("canceling a queued run")?
        .rows_affected();
        let running =
            sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND state = 'running'")
                .bind(run_id)
                .execute(self.pool())
                .await
                .context("requesting cancel of a running run")?
                .rows_affected();
        Ok(queued + running > 0)
    }

    /// Records a run's end. Returns false, having written nothing, when the run was no
    /// longer held: it was taken back, and ends by its new runner.
    pub async fn finish_run(
        &self,
        hold: &Hold,
        state: RunState,
        description: Option<&str>,
    ) -> anyhow::Result<bool> {
        let changed = sqlx::query(
            "UPDATE runs SET state = $1, description = $2, finished_at = $3, runner = NULL \
             WHERE id = $4 AND runner = $5 AND state = 'running'",
        )
        .bind(state)
        .bind(description)
        .bind(now_millis())
        .bind(hold.run_id)
        .bind(&hold.runner)
        .execute(self.pool())
        .await
        .with_context(|| format!("finishing run {}", hold.run_id))?
        .rows_affected();
        Ok(changed > 0)
    }

    /// Runs whose runner has not heartbeated since `stale_before_millis` (all running
    /// runs, with `all_running`: the single-node SQLite case at start-up) are queued
    /// again, their pipelines and statuses saying [`RUNNER_LOST`]; a run lost
    /// [`MAX_ATTEMPTS`] times ends as `error`. Returns the ids taken back.
    pub async fn take_back_lost_runs(
        &self,
        stale_before_millis: i64,
        all_running: bool,
    ) -> anyhow::Result<Vec<i64>> {
        let mut tx = self.pool().begin().await.context("starting a take-back")?;
        let rows = sqlx::query(
            "UPDATE runs SET \
               state = CASE WHEN attempts >= $1 THEN 'error' ELSE 'queued' END, \
               description = CASE WHEN attempts >= $1 THEN $5 ELSE $6 END, \
               finished_at = CASE WHEN attempts >= $1 THEN $2 ELSE NULL END, \
               runner = NULL, heartbeat_at = NULL, cancel_requested = 0 \
             WHERE state = 'running' AND ($3 = 1 OR heartbeat_at < $4) RETURNING id, state",
        )
        .bind(MAX_ATTEMPTS)
        .bind(now_millis())
        .bind(i64::from(all_running))
        .bind(stale_before_millis)
        .bind(GIVEN_UP)
        .bind(RUNNER_LOST)
        .fetch_all(&mut *tx)
        .await
        .context("taking back the runs of lost runners")?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            if row.try_get::<RunState, _>(1)? == RunState::Queued {
                requeue_pipelines(&mut tx, id, RUNNER_LOST).await?;
            }
            ids.push(id);
        }
        tx.commit().await.context("committing a take-back")?;
        if !ids.is_empty() {
            self.statuses_queued().notify_one();
            self.queued().notify_one();
        }
        Ok(ids)
    }

    /// Labels (`{installation}-{run}.{attempt}`) of the runs some runner is executing now:
    /// what an engine's leftovers are checked against.
    pub async fn running_run_labels(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT id, attempts FROM runs WHERE state = 'running'")
            .fetch_all(self.pool())
            .await
            .context("listing running runs")?;
        rows.iter()
            .map(|row| Ok(self.run_label(row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// The label (and name part) of everything an attempt of a run creates on an engine.
    /// The attempt is part of it, so that removing one attempt's leftovers never touches
    /// the next attempt's containers on the same engine.
    pub fn run_label(&self, run_id: i64, attempt: i64) -> String {
        format!("{}-{run_id}.{attempt}", self.installation())
    }
}

/// A run queued again: its unfinished pipelines wait, saying `description`, and so does
/// the forge wherever it last heard pending or running from this run (unless a newer run
/// took the context over).
async fn requeue_pipelines(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: i64,
    description: &str,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "UPDATE run_pipelines SET state = 'pending', description = $1 \
         WHERE run_id = $2 AND state IN {UNFINISHED}"
    ))
    .bind(description)
    .bind(run_id)
    .execute(&mut **tx)
    .await
    .context("marking a requeued run's pipelines")?;
    restate_open_statuses(&mut **tx, run_id, None, StatusState::Pending, description)
        .await
        .context("queueing a requeued run's statuses")?;
    Ok(())
}

impl super::Store {
    /// Queues the run again as a new run for the same event (its own delivery, marked
    /// `rerun`), and returns the new run's id; `None` when there is no such run. Approval
    /// holds for the commit: a rerun of a run that had to wait and was never approved waits
    /// again, one of an approved run carries its approval.
    pub async fn rerun(&self, run_id: i64) -> anyhow::Result<Option<i64>> {
        let mut tx = self.pool().begin().await.context("starting a rerun")?;
        // The delivery is written first, from the old run's row: a SQLite transaction that
        // read first could not write once another writer had committed since its read.
        let now = now_millis();
        let Some(delivery) = sqlx::query(
            "INSERT INTO deliveries (forge, delivery_id, event_name, repo, received_at) \
             SELECT forge, $1, 'rerun', repo, $2 FROM runs WHERE id = $3 RETURNING id",
        )
        .bind(format!(
            "rerun-of-{run_id}-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .bind(now)
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .context("recording the rerun")?
        else {
            return Ok(None);
        };
        let delivery: i64 = delivery.try_get(0)?;
        let old = sqlx::query(
            "SELECT forge, repo, trigger_kind, git_ref, commit_sha, commit_message, pr_number, \
             event, approval_reason, approval_decision, approval_by, approval_at \
             FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await
        .with_context(|| format!("reading run {run_id}"))?;
        let forge: Forge = old.try_get(0)?;
        let repo: RepoName = old.try_get(1)?;
        let reason: Option<String> = old.try_get(8)?;
        let approved = old.try_get::<Option<Decision>, _>(9)? == Some(Decision::Approved);
        let state = match (&reason, approved) {
            (Some(_), false) => RunState::Blocked,
            _ => RunState::Queued,
        };
        let new_id: i64 = sqlx::query(
            "INSERT INTO runs (delivery, forge, repo, trigger_kind, git_ref, commit_sha, \
             commit_message, pr_number, state, event, created_at, approval_reason, \
             approval_decision, approval_by, approval_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING id",
        )
        .bind(delivery)
        .bind(forge)
        .bind(&repo)
        .bind(old.try_get::<Trigger, _>(2)?)
        .bind(old.try_get::<String, _>(3)?)
        .bind(old.try_get::<CommitSha, _>(4)?)
        .bind(old.try_get::<Option<String>, _>(5)?)
        .bind(old.try_get::<Option<i64>, _>(6)?)
        .bind(state)
        .bind(old.try_get::<String, _>(7)?)
        .bind(now)
        .bind(reason)
        .bind(approved.then_some(Decision::Approved))
        .bind(
            approved
                .then(|| old.try_get::<Option<String>, _>(10))
                .transpose()?
                .flatten(),
        )
        .bind(
            approved
                .then(|| old.try_get::<Option<i64>, _>(11))
                .transpose()?
                .flatten(),
        )
        .fetch_one(&mut *tx)
        .await
        .context("queueing the rerun")?
        .try_get(0)?;
        tx.commit().await.context("committing the rerun")?;
        self.queued().notify_one();
        Ok(Some(new_id))
    }
}

/// A ref of a repo and its newest commit that Gantry has seen pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRef {
    /// In full: `refs/heads/main`.
    pub git_ref: String,
    pub commit_sha: CommitSha,
    /// The run of that push, whose event names the repo as its forge described it.
    pub run_id: i64,
}

impl super::Store {
    /// The branches and tags of `repo` that pushes delivered, each with its newest commit:
    /// what a manual run can start on.
    pub async fn known_refs(&self, forge: Forge, repo: &RepoName) -> anyhow::Result<Vec<KnownRef>> {
        let rows = sqlx::query(
            "SELECT git_ref, commit_sha, id FROM runs WHERE id IN (SELECT MAX(id) FROM runs \
             WHERE forge = $1 AND repo = $2 AND trigger_kind IN ('push', 'tag') GROUP BY git_ref) \
             ORDER BY git_ref",
        )
        .bind(forge)
        .bind(repo)
        .fetch_all(self.pool())
        .await
        .context("listing a repo's known refs")?;
        rows.iter()
            .map(|row| {
                Ok(KnownRef {
                    git_ref: row.try_get(0)?,
                    commit_sha: row.try_get(1)?,
                    run_id: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// Queues a run for `event` (a manual run) of `repo`, under a delivery of its own;
    /// returns the run's id.
    pub async fn queue_manual_run(
        &self,
        repo: &RepoName,
        event: &Event,
        request: &crate::webhook::RunRequest,
    ) -> anyhow::Result<i64> {
        let mut tx = self.pool().begin().await.context("starting a manual run")?;
        let id = insert_started_run(&mut tx, repo, event, request).await?;
        tx.commit().await.context("committing the manual run")?;
        self.queued().notify_one();
        Ok(id)
    }
}

/// Inserts a run Gantry started itself (by hand or on a schedule) for `event`, under a
/// delivery of its own named after its trigger; returns the run's id.
pub(super) async fn insert_started_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &RepoName,
    event: &Event,
    request: &crate::webhook::RunRequest,
) -> anyhow::Result<i64> {
    let now = now_millis();
    let kind = request.trigger.as_str();
    let delivery: i64 = sqlx::query(
        "INSERT INTO deliveries (forge, delivery_id, event_name, repo, received_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(event.forge)
    .bind(format!("{kind}-{}", uuid::Uuid::new_v4().simple()))
    .bind(kind)
    .bind(repo)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .context("recording a started run")?
    .try_get(0)?;
    let id: i64 = sqlx::query(
        "INSERT INTO runs (delivery, forge, repo, trigger_kind, git_ref, commit_sha, \
         commit_message, pr_number, state, event, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $8, $9) RETURNING id",
    )
    .bind(delivery)
    .bind(event.forge)
    .bind(repo)
    .bind(request.trigger)
    .bind(request.git_ref.full())
    .bind(&request.commit_sha)
    .bind(RunState::Queued)
    .bind(serde_json::to_string(event).context("encoding a started run's event")?)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .context("queueing a started run")?
    .try_get(0)?;
    Ok(id)
}
