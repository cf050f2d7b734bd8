//! Locks shared by replicas: on PostgreSQL a transaction-scoped advisory lock, released
//! when the holder commits, rolls back or drops it (so a crashed or canceled holder cannot
//! keep it). SQLite means one process, whose own lanes already serialise the work.

use anyhow::Context;
use sha2::Digest as _;

use super::{Backend, Store};

/// Held while the lane's work runs; dropping it releases the lock.
pub struct LaneLock {
    _transaction: sqlx::Transaction<'static, sqlx::Any>,
}

impl Store {
    /// Waits for the lock named `name`. `None` on SQLite, where no other process shares it.
    pub async fn lock_lane(&self, name: &str) -> anyhow::Result<Option<LaneLock>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let hash = sha2::Sha256::digest(name.as_bytes());
        let key = i64::from_be_bytes(hash[..8].try_into().unwrap_or_default());
        let mut transaction = self
            .pool
            .begin()
            .await
            .context("opening a transaction for a lane lock")?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *transaction)
            .await
            .with_context(|| format!("waiting for the lock of {name}"))?;
        Ok(Some(LaneLock {
            _transaction: transaction,
        }))
    }
}
