//! Durable state: deliveries and runs, in SQLite (the embedded default) or PostgreSQL (for
//! several replicas sharing one queue).
//!
//! Both go through sqlx's `Any` driver so that every query is written once; the SQL used is
//! the common subset of the two (`$n` parameters, `ON CONFLICT`, `RETURNING`). Each backend
//! has its own migrations, run at start.

mod access;
mod announcements;
mod approvals;
mod bumps;
mod caches;
mod deployments;
mod intake;
mod locks;
mod overview;
mod queue;
mod results;
mod retention;
mod runners;
mod runs;
mod schedules;
mod statuses;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::sync::Notify;

pub use access::{PendingSignIn, SessionRecord};
pub use announcements::{AbandonedPipeline, AnnouncedPipeline, Resolution, WaitingRun};
pub use bumps::BumpReport;
pub use caches::CacheReport;
pub use deployments::{
    ClaimedDeployEvent, DeployRecorded, DeployReport, NewDeployEvent, OpenDeployment,
    SettledDeployment, deploy_context,
};
pub use intake::{NewDelivery, Recorded};
pub use locks::LaneLock;
pub use overview::{LastBump, PipelineHistory, PipelineOutcome};
pub use queue::{ClaimedRun, Hold, KnownRef, MAX_ATTEMPTS, RUNNER_LOST};
pub use results::{LogChunk, LogPage, LogTail, PipelineResult, StageResult, StageUpdate};
pub use retention::{Prunable, Retention};
pub use runners::{HeldRun, RunnerIdentity, RunnerRecord};
pub use runs::{Approval, Run, RunFilter, WaitingRuns};
pub use schedules::{ScheduleEntry, ScheduleRecord};
pub use statuses::{Attempt, ClaimedStatus, StatusReport};

/// How long a connection waits for SQLite's write lock before giving up. Writes are short
/// (the intake batches them), so waiting this long means something is wrong.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections kept open. SQLite serialises writers anyway; readers (API, pages) share the
/// rest. PostgreSQL deployments run several replicas, each with this many.
const MAX_CONNECTIONS: u32 = 8;
/// Waiting longer than this for a free connection means the store is down or overloaded;
/// the caller gets an error instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after idling this long (checked as often), so that a burst's
/// connections, their file descriptors and SQLite's per-connection page cache are handed
/// back seconds after it, not minutes. None is kept open while idle: the pool would close
/// and reopen it every few seconds (a thread and a SQLite open each time). A delivery after
/// a pause pays for opening one: about 1.5 ms with SQLite, a connection and a login with
/// PostgreSQL.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The handle every part of Gantry shares. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    intake: intake::IntakeWriter,
    /// Woken when this process queues a run, so a runner in the same process starts it at
    /// once instead of at its next poll.
    queued: Arc<Notify>,
    /// Woken when this process queues a commit status for the reporter.
    statuses_queued: Arc<Notify>,
    installation: String,
}

impl Store {
    /// Opens (creating if needed) the store at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalise_url(url)?;
        let options = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("store url `{}`", redact_url(&url)))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(IDLE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the API read while the intake writes; FULL makes each commit
                        // reach the disk before the 202 that depends on it goes out.
                        // Incremental auto-vacuum (which takes effect in a new file) lets
                        // pruning give pages back; it also sends large logs' overflow pages
                        // through the page cache, hence a cache of 1 MiB per connection, so
                        // that many readers of a large log stay small.
                        conn.execute(sqlx::raw_sql(&format!(
                            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA cache_size = -1024; \
                             PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {};",
                            SQLITE_BUSY_TIMEOUT.as_millis()
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to store `{}`", redact_url(&url)))?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator
            .run(&pool)
            .await
            .context("running store migrations")?;
        let installation = installation_id(&pool).await?;
        let queued = Arc::new(Notify::new());
        let intake = intake::IntakeWriter::start(pool.clone(), backend, queued.clone());
        Ok(Self {
            pool,
            backend,
            intake,
            queued,
            statuses_queued: Arc::new(Notify::new()),
            installation,
        })
    }

    /// This installation's id: the prefix of the run labels its runners put on containers.
    pub fn installation(&self) -> &str {
        &self.installation
    }

    /// Notified whenever this process queues a commit status.
    pub fn statuses_queued(&self) -> &Notify {
        &self.statuses_queued
    }

    /// Notified whenever this process queues a run.
    pub fn queued(&self) -> &Notify {
        &self.queued
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when the store answers a trivial query: what `/readyz` reports.
    pub async fn is_reachable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Reads the installation id, creating it on first start. Replicas starting together all
/// insert; the first insert wins and all read the same id.
async fn installation_id(pool: &AnyPool) -> anyhow::Result<String> {
    let fresh = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    sqlx::query(
        "INSERT INTO installation (id) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM installation)",
    )
    .bind(&fresh)
    .execute(pool)
    .await
    .context("creating the installation id")?;
    let row = sqlx::query("SELECT id FROM installation ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await
        .context("reading the installation id")?;
    Ok(sqlx::Row::try_get(&row, 0)?)
}

/// Picks the backend from the URL, and makes a SQLite URL create its file when missing (the
/// embedded default must work on a fresh machine).
fn normalise_url(url: &str) -> anyhow::Result<(Backend, String)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if !url.starts_with("sqlite:") {
        bail!(
            "store url `{}` is neither `sqlite://…` nor `postgres://…`",
            redact_url(url)
        );
    }
    if url.contains("mode=") || url.contains(":memory:") {
        return Ok((Backend::Sqlite, url.to_owned()));
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok((Backend::Sqlite, format!("{url}{separator}mode=rwc")))
}

/// A store URL with its password replaced, for error messages and logs.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("[redacted]"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Pipeline, stage and status states that are not an end: a run that will not end as they
/// say must not leave them.
const UNFINISHED: &str = "('pending', 'running')";

/// Milliseconds since the Unix epoch: how every time is stored, the same in both backends.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_their_file() {
        assert_eq!(
            normalise_url("sqlite://gantry.db").unwrap(),
            (Backend::Sqlite, "sqlite://gantry.db?mode=rwc".into())
        );
        assert_eq!(
            normalise_url("sqlite://a.db?mode=ro").unwrap().1,
            "sqlite://a.db?mode=ro"
        );
        assert_eq!(
            normalise_url("postgres://u:p@h/db").unwrap().0,
            Backend::Postgres
        );
        assert!(normalise_url("mysql://h/db").is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://gantry:hunter2@db/gantry"),
            "postgres://gantry:%5Bredacted%5D@db/gantry"
        );
    }
}
