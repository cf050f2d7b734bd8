//! Delivering queued commit statuses: in order per commit and context, with retries and
//! backoff on server errors and rate limits. A run never waits for this.

use crate::metrics::{ForgeLabels, Metrics};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Forges, gitlab};
use crate::domain::{CommitStatus, Forge};
use crate::store::{Attempt, Store, now_millis};

/// Updates claimed per round.
const BATCH: i64 = 20;
/// How long a claimed update is ours; a reporter that dies mid-send frees it after this.
const LEASE: Duration = Duration::from_secs(60);
/// How often due retries are looked for when nothing new is queued.
const INTERVAL: Duration = Duration::from_millis(500);
/// How long an update that fails for a passing reason (a server error, a rate limit, the
/// network) is retried before it is given up and shown as failed on the run: a forge outage
/// of hours must not leave a status pending for good.
pub const DELIVERY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// First retry delay, doubled each attempt, capped: 1 s, 2 s, 4 s … 5 min.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(300);

pub struct Reporter {
    store: Store,
    forges: Forges,
    metrics: Option<Metrics>,
}

impl Reporter {
    pub fn new(store: Store, forges: Forges) -> Self {
        Self {
            store,
            forges,
            metrics: None,
        }
    }

    /// Counts failed deliveries by forge.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let delivered = match self.deliver_due().await {
                Ok(count) => count,
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "delivering commit statuses failed");
                    0
                }
            };
            if delivered > 0 {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.store.statuses_queued().notified() => {}
                () = tokio::time::sleep(INTERVAL) => {}
            }
        }
    }

    /// Sends what is due; returns how many updates were attempted.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let claimed = self
            .store
            .claim_statuses(BATCH, LEASE.as_millis() as i64)
            .await?;
        for update in &claimed {
            if self.already_shown(&update.status).await? {
                self.store
                    .status_attempted(update.id, Attempt::Merged)
                    .await?;
                continue;
            }
            let result = self
                .forges
                .set_status(&update.status, update.remote_id.as_deref())
                .await;
            let attempts = update.attempts + 1;
            let outcome = match &result {
                Ok(remote_id) => Attempt::Delivered(remote_id.as_deref()),
                Err(err) => {
                    if let Some(metrics) = &self.metrics {
                        metrics
                            .status_failures
                            .get_or_create(&ForgeLabels {
                                forge: update.status.forge.as_str(),
                            })
                            .inc();
                    }
                    let retry_at =
                        next_attempt(now_millis(), update.created_at, attempts, err.retry_after);
                    tracing::warn!(
                        context = %update.status.context,
                        sha = %update.status.sha,
                        attempts,
                        retrying = retry_at.is_some(),
                        error = %err,
                        "setting a commit status failed"
                    );
                    match retry_at {
                        Some(at) => Attempt::Retry {
                            error: &err.message,
                            at,
                        },
                        None => Attempt::Failed {
                            error: &err.message,
                        },
                    }
                }
            };
            self.store.status_attempted(update.id, outcome).await?;
        }
        Ok(claimed.len())
    }

    /// Whether the forge already shows what `status` would tell it, in a way that makes
    /// telling it again a refusal: GitLab takes a status's state only once while it is
    /// pending or running (see `gitlab::accepts`).
    async fn already_shown(&self, status: &CommitStatus) -> anyhow::Result<bool> {
        Ok(match status.forge {
            Forge::Gitlab => {
                let last = self.store.last_delivered_state(status).await?;
                !gitlab::accepts(last, status.state)
            }
            Forge::Github | Forge::Gitea => false,
        })
    }
}

/// When to try a failed update again, if ever: not for a refusal the request itself caused
/// (`retry_after` `None`), nor once [`DELIVERY_WINDOW`] has passed since it was queued;
/// otherwise after the forge's wait or the backoff, whichever is longer.
fn next_attempt(
    now: i64,
    created_at: i64,
    attempts: i64,
    retry_after: Option<Duration>,
) -> Option<i64> {
    let after = retry_after?.max(backoff(attempts));
    let at = now + after.as_millis() as i64;
    (at <= created_at + DELIVERY_WINDOW.as_millis() as i64).then_some(at)
}

fn backoff(attempts: i64) -> Duration {
    let factor = 1u32 << attempts.clamp(0, 16) as u32;
    (BACKOFF_BASE * factor / 2).min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_failures_are_retried_for_the_whole_window_and_refusals_never() {
        let hour = 3_600_000;
        let queued = 1_000_000;
        // The 30th failure, an hour in: still retried, five minutes on.
        assert_eq!(
            next_attempt(queued + hour, queued, 30, Some(Duration::ZERO)),
            Some(queued + hour + BACKOFF_CAP.as_millis() as i64)
        );
        // A rate limit's reset beyond the backoff is honoured.
        assert_eq!(
            next_attempt(queued, queued, 1, Some(Duration::from_secs(90))),
            Some(queued + 90_000)
        );
        // Past the window: given up.
        assert_eq!(
            next_attempt(queued + 24 * hour, queued, 300, Some(Duration::ZERO)),
            None
        );
        // A 4xx the request caused: given up at once.
        assert_eq!(next_attempt(queued, queued, 1, None), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(20), BACKOFF_CAP);
    }
}
