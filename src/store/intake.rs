//! Recording accepted deliveries and their queued runs, with group commit.
//!
//! A 202 promises that the delivery and its run are on disk, which costs one durable commit.
//! Committing each delivery on its own would cap the intake at the disk's fsync rate, so one
//! writer task gathers the deliveries waiting at that moment into a single transaction and
//! answers each caller once it commits. Under light load a batch is one delivery and adds no
//! delay; under heavy load one fsync serves many requests.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{Backend, now_millis};
use crate::domain::{Forge, RepoName, RunState};
use crate::webhook::{Delivery, RunRequest};

/// Most deliveries committed in one transaction: bounds the latency a batch adds to its last
/// member, the size of a transaction that must be retried one by one after a failure, and
/// the parameters of one statement (256 × 12, far under SQLite's 32,766 and PostgreSQL's
/// 65,535).
const MAX_BATCH: usize = 256;
/// Deliveries waiting for the writer before callers wait for room. More than the hooks'
/// turns (`http::DELIVERIES_AT_ONCE`), so the hooks wait for a turn, not here.
const QUEUE_CAPACITY: usize = 4096;

/// What the intake stores for one delivery that asks for a run.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery: Delivery,
    pub run: RunRequest,
    /// The repo's name as configured (the forge's spelling may differ in case).
    pub repo: RepoName,
    /// Why the run must wait for approval (it is stored `blocked`); `None`: it is queued.
    pub approval: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored as a run: queued, or blocked when it waits for approval.
    Queued { run_id: i64 },
    /// The forge delivered this id before; nothing was stored or queued again.
    Duplicate,
}

type Reply = oneshot::Sender<anyhow::Result<Recorded>>;

/// Wakes the runner once the batch's replies are sent, i.e. after the commit.
struct WakeOnDrop<'a>(&'a Notify);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

#[derive(Clone)]
pub(super) struct IntakeWriter {
    queue: mpsc::Sender<(NewDelivery, Reply)>,
}

impl IntakeWriter {
    pub(super) fn start(pool: AnyPool, backend: Backend, queued: Arc<Notify>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(pool, backend, receiver, queued));
        Self { queue }
    }
}

impl super::Store {
    /// Stores the delivery and its queued run in one durable transaction, or recognises a
    /// redelivery. Returns once the commit is on disk.
    pub async fn record_delivery(&self, new: NewDelivery) -> anyhow::Result<Recorded> {
        let (reply, answer) = oneshot::channel();
        self.intake
            .queue
            .send((new, reply))
            .await
            .ok()
            .context("the store's intake writer has stopped")?;
        answer
            .await
            .context("the store's intake writer has stopped")?
    }
}

async fn write_batches(
    pool: AnyPool,
    backend: Backend,
    mut receiver: mpsc::Receiver<(NewDelivery, Reply)>,
    queued: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Whatever this batch queues, a runner may look now (a spurious wake-up is cheap).
        let _wake = WakeOnDrop(&queued);
        match commit_batch(&pool, backend, &batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(err) if batch.len() == 1 => {
                let (_, reply) = batch.pop().expect("batch has one entry");
                let _ = reply.send(Err(err));
            }
            Err(err) => {
                // One bad entry must not fail the others: retry each on its own.
                tracing::warn!(error = %format!("{err:#}"), size = batch.len(),
                    "batched intake commit failed; committing one by one");
                for (new, reply) in batch.drain(..) {
                    let result = commit_batch(&pool, backend, std::slice::from_ref(&(new, ())))
                        .await
                        .map(|mut results| results.remove(0));
                    let _ = reply.send(result);
                }
            }
        }
    }
}

async fn commit_batch<T>(
    pool: &AnyPool,
    backend: Backend,
    batch: &[(NewDelivery, T)],
) -> anyhow::Result<Vec<Recorded>> {
    let mut tx = pool.begin().await.context("starting intake transaction")?;
    let results = insert_batch(&mut tx, backend, batch).await?;
    tx.commit().await.context("committing intake transaction")?;
    Ok(results)
}

/// Inserts a batch with one statement per table, so a batch costs four round trips to the
/// database (begin, two inserts, commit) whatever its size.
async fn insert_batch<T>(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    batch: &[(NewDelivery, T)],
) -> anyhow::Result<Vec<Recorded>> {
    let now = now_millis();
    let mut sql = String::from(
        "INSERT INTO deliveries (forge, delivery_id, event_name, repo, received_at) VALUES ",
    );
    push_placeholders(&mut sql, backend, batch.len(), 5);
    sql.push_str(" ON CONFLICT (forge, delivery_id) DO NOTHING RETURNING id, forge, delivery_id");
    let mut query = sqlx::query(&sql);
    for (new, _) in batch {
        query = query
            .bind(new.delivery.event.forge)
            .bind(new.delivery.id.as_str())
            .bind(new.delivery.event_name.as_str())
            .bind(&new.repo)
            .bind(now);
    }
    let rows = query
        .fetch_all(&mut **tx)
        .await
        .context("inserting deliveries")?;
    // Rows come back in no promised order; match them to the batch by key. When one batch
    // holds the same delivery twice, its first occurrence is the one that was recorded.
    let mut inserted: HashMap<(Forge, String), i64> = HashMap::with_capacity(rows.len());
    for row in rows {
        inserted.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
    }
    let delivery_rows: Vec<Option<i64>> = batch
        .iter()
        .map(|(new, _)| {
            let key = (
                new.delivery.event.forge,
                new.delivery.id.as_str().to_owned(),
            );
            inserted.remove(&key)
        })
        .collect();

    let queued: Vec<(&NewDelivery, i64)> = batch
        .iter()
        .zip(&delivery_rows)
        .filter_map(|((new, _), row)| row.map(|row| (new, row)))
        .collect();
    let mut run_ids: HashMap<i64, i64> = HashMap::with_capacity(queued.len());
    if !queued.is_empty() {
        let mut sql = String::from(
            "INSERT INTO runs (delivery, forge, repo, trigger_kind, git_ref, commit_sha, \
             commit_message, pr_number, state, event, created_at, approval_reason) VALUES ",
        );
        push_placeholders(&mut sql, backend, queued.len(), 12);
        sql.push_str(" RETURNING id, delivery");
        let mut query = sqlx::query(&sql);
        for (new, delivery_row) in &queued {
            let event = serde_json::to_string(&new.delivery.event).context("encoding event")?;
            let run = &new.run;
            query = query
                .bind(*delivery_row)
                .bind(new.delivery.event.forge)
                .bind(&new.repo)
                .bind(run.trigger)
                .bind(run.git_ref.full())
                .bind(&run.commit_sha)
                .bind(run.commit_message.clone())
                .bind(run.pr_number.map(|number| number as i64))
                .bind(match new.approval {
                    Some(_) => RunState::Blocked,
                    None => RunState::Queued,
                })
                .bind(event)
                .bind(now)
                .bind(new.approval.clone());
        }
        for row in query.fetch_all(&mut **tx).await.context("inserting runs")? {
            run_ids.insert(row.try_get(1)?, row.try_get(0)?);
        }
    }
    delivery_rows
        .into_iter()
        .map(|row| match row {
            None => Ok(Recorded::Duplicate),
            Some(row) => run_ids
                .get(&row)
                .map(|&run_id| Recorded::Queued { run_id })
                .context("a run insert returned no id"),
        })
        .collect()
}

/// Appends `rows` groups of `columns` parameters: `($1, $2), ($3, $4)` for PostgreSQL,
/// `(?, ?), (?, ?)` for SQLite, where looking up numbered names costs time quadratic in the
/// number of parameters.
fn push_placeholders(sql: &mut String, backend: Backend, rows: usize, columns: usize) {
    use std::fmt::Write as _;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * columns + column + 1);
                }
            }
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let mut sql = String::new();
        push_placeholders(&mut sql, Backend::Postgres, 2, 3);
        assert_eq!(sql, "($1, $2, $3), ($4, $5, $6)");
        let mut sql = String::new();
        push_placeholders(&mut sql, Backend::Sqlite, 2, 2);
        assert_eq!(sql, "(?, ?), (?, ?)");
    }
}
