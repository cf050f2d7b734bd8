//! Recording accepted deliveries and their queued runs, with group commit.
//!
//! A 202 promises that the delivery and its run are on disk, which costs one durable commit.
//! Committing each delivery on its own would cap the intake at the disk's fsync rate, so one
//! writer task gathers the deliveries waiting at that moment into a single transaction and
//! answers each caller once it commits. Under light load a batch is one delivery and adds no
//! delay; under heavy load one fsync serves many requests.

use anyhow::Context;
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::now_millis;
use crate::webhook::{Delivery, RunRequest};

/// Most deliveries committed in one transaction: bounds the latency a batch adds to its last
/// member and the size of a transaction that must be retried one by one after a failure.
const MAX_BATCH: usize = 256;
/// Deliveries waiting for the writer before callers wait for room: back-pressure on the
/// HTTP workers instead of unbounded memory.
const QUEUE_CAPACITY: usize = 4096;

/// What the intake stores for one delivery that asks for a run.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery: Delivery,
    pub run: RunRequest,
    pub repo: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Queued {
        run_id: i64,
    },
    /// The forge delivered this id before; nothing was stored or queued again.
    Duplicate,
}

type Reply = oneshot::Sender<Result<Recorded, String>>;

#[derive(Clone)]
pub(super) struct IntakeWriter {
    queue: mpsc::Sender<(NewDelivery, Reply)>,
}

impl IntakeWriter {
    pub(super) fn start(pool: AnyPool) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(pool, receiver));
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
            .map_err(anyhow::Error::msg)
    }
}

async fn write_batches(pool: AnyPool, mut receiver: mpsc::Receiver<(NewDelivery, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit_batch(&pool, &batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(err) if batch.len() == 1 => {
                let (_, reply) = batch.pop().expect("batch has one entry");
                let _ = reply.send(Err(format!("{err:#}")));
            }
            Err(err) => {
                // One bad entry must not fail the others: retry each on its own.
                tracing::warn!(error = %format!("{err:#}"), size = batch.len(),
                    "batched intake commit failed; committing one by one");
                for (new, reply) in batch.drain(..) {
                    let result = commit_batch(&pool, std::slice::from_ref(&(new, ())))
                        .await
                        .map(|mut results| results.remove(0))
                        .map_err(|err| format!("{err:#}"));
                    let _ = reply.send(result);
                }
            }
        }
    }
}

async fn commit_batch<T>(
    pool: &AnyPool,
    batch: &[(NewDelivery, T)],
) -> anyhow::Result<Vec<Recorded>> {
    let mut tx = pool.begin().await.context("starting intake transaction")?;
    let mut results = Vec::with_capacity(batch.len());
    for (new, _) in batch {
        results.push(insert(&mut tx, new).await?);
    }
    tx.commit().await.context("committing intake transaction")?;
    Ok(results)
}

async fn insert(tx: &mut Transaction<'_, Any>, new: &NewDelivery) -> anyhow::Result<Recorded> {
    let now = now_millis();
    let delivery = &new.delivery;
    let forge = delivery.event.forge.as_str();
    let inserted = sqlx::query(
        "INSERT INTO deliveries (forge, delivery_id, event_name, repo, received_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (forge, delivery_id) DO NOTHING RETURNING id",
    )
    .bind(forge)
    .bind(delivery.id.as_str())
    .bind(&delivery.event_name)
    .bind(&new.repo)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .context("inserting delivery")?;
    let Some(row) = inserted else {
        return Ok(Recorded::Duplicate);
    };
    let delivery_row: i64 = row.try_get(0)?;
    let event = serde_json::to_string(&delivery.event).context("encoding event")?;
    let run = &new.run;
    let run_id: i64 = sqlx::query(
        "INSERT INTO runs (delivery, forge, repo, trigger_kind, git_ref, commit_sha, \
         commit_message, pr_number, state, event, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(delivery_row)
    .bind(forge)
    .bind(&new.repo)
    .bind(run.trigger.as_str())
    .bind(run.git_ref.full())
    .bind(run.commit_sha.as_str())
    .bind(run.commit_message.as_deref())
    .bind(run.pr_number.map(|number| number as i64))
    .bind(super::RunState::Queued.as_str())
    .bind(event)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .context("inserting run")?
    .try_get(0)?;
    Ok(Recorded::Queued { run_id })
}
