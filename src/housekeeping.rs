//! Housekeeping: pruning finished runs and old logs as `[store] keep_*` allow, in the
//! background of every server and at once with `gantry prune`. Each batch is one short
//! transaction with a pause after it, so the intake's writes are never held up for long.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::StoreSettings;
use crate::metrics::Metrics;
use crate::store::{Prunable, Retention, Store};

/// Runs removed (or stripped of their log) per transaction.
pub const BATCH: usize = 200;
/// Runs looked for at once: finding them reads every run, so it is done once per this many.
const LOOKUP: i64 = 10_000;
/// Between two batches: room for the intake's writes.
const PAUSE: Duration = Duration::from_millis(20);
/// How often a server prunes.
const EVERY: Duration = Duration::from_secs(10 * 60);
/// The first pass waits this long after start, out of the way of a restart's recovery.
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// What `[store]` keeps.
pub fn retention(settings: &StoreSettings) -> Retention {
    Retention {
        keep_runs: settings.keep_runs,
        keep_days: settings.keep_days,
        keep_logs_days: settings.keep_logs_days,
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    /// Runs whose log was removed while their record stays.
    pub logs: u64,
}

/// Removes everything `retention` lets go, batch by batch, then gives SQLite's free pages
/// back.
pub async fn prune(
    store: &Store,
    retention: &Retention,
    metrics: Option<&Metrics>,
) -> anyhow::Result<Pruned> {
    let mut pruned = Pruned::default();
    loop {
        let runs = store.prunable_runs(retention, LOOKUP).await?;
        if runs.is_empty() {
            break;
        }
        for batch in runs.chunks(BATCH) {
            let removed = store.remove_runs(&ids(batch)).await?;
            pruned.runs += removed;
            if let Some(metrics) = metrics {
                metrics.pruned_runs.inc_by(removed);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    loop {
        let runs = store.prunable_logs(retention, LOOKUP).await?;
        if runs.is_empty() {
            break;
        }
        for batch in runs.chunks(BATCH) {
            store.remove_logs(&ids(batch)).await?;
            pruned.logs += batch.len() as u64;
            if let Some(metrics) = metrics {
                metrics.pruned_logs.inc_by(batch.len() as u64);
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    store.reclaim_space().await?;
    Ok(pruned)
}

/// What a pass would remove now: whole runs, and runs that would lose their log.
pub async fn planned(
    store: &Store,
    retention: &Retention,
) -> anyhow::Result<(Vec<Prunable>, Vec<Prunable>)> {
    let runs = store.prunable_runs(retention, i64::MAX).await?;
    let mut logs = store.prunable_logs(retention, i64::MAX).await?;
    logs.retain(|log| !runs.iter().any(|run| run.id == log.id));
    Ok((runs, logs))
}

/// Prunes every [`EVERY`] until `shutdown`.
pub async fn run(
    store: Store,
    retention: Retention,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut wait = FIRST_AFTER;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        match prune(&store, &retention, Some(&metrics)).await {
            Ok(pruned) if pruned != Pruned::default() => {
                tracing::info!(runs = pruned.runs, logs = pruned.logs, "pruned the store");
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %format!("{err:#}"), "pruning the store failed"),
        }
    }
}

fn ids(runs: &[Prunable]) -> Vec<i64> {
    runs.iter().map(|run| run.id).collect()
}
