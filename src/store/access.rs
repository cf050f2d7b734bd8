//! What sign-in keeps: the shared session key, sessions, OAuth sign-ins under way, the
//! permissions forges gave, and each repo's visibility.

use anyhow::Context;
use sqlx::Row;

use super::now_millis;
use crate::domain::{Forge, Permission, RepoName, Visibility};

/// A session as stored: who, and (encrypted) the forge token they signed in with.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// `None` for a sign-in with the API token.
    pub forge: Option<Forge>,
    pub user_id: String,
    pub login: String,
    /// The forge's access token, encrypted with the session key.
    pub token: Option<String>,
    pub csrf: String,
    pub expires_at: i64,
}

/// An OAuth sign-in under way, as `GET /login/{forge}` left it.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    pub forge: Forge,
    /// The PKCE verifier, encrypted with the session key.
    pub verifier: String,
    /// Where to go once signed in (a path on Gantry).
    pub next: String,
    pub created_at: i64,
}

impl super::Store {
    /// The key named `name`, created from `fresh` on first use. Replicas starting together
    /// all insert; the first insert wins and all read the same key.
    pub async fn server_key(&self, name: &str, fresh: &str) -> anyhow::Result<String> {
        sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(fresh)
            .execute(self.pool())
            .await
            .context("creating a server key")?;
        let row = sqlx::query("SELECT value FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await
            .context("reading a server key")?;
        Ok(row.try_get(0)?)
    }

    /// Stores a new session under `id` (the hash of its cookie's secret); sessions that
    /// expired go at the same time.
    pub async fn create_session(&self, id: &str, session: &SessionRecord) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await
            .context("removing expired sessions")?;
        sqlx::query(
            "INSERT INTO sessions (id, forge, user_id, login, token, csrf, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(session.forge)
        .bind(&session.user_id)
        .bind(&session.login)
        .bind(&session.token)
        .bind(&session.csrf)
        .bind(now)
        .bind(session.expires_at)
        .execute(self.pool())
        .await
        .context("storing a session")?;
        Ok(())
    }

    /// The session stored under `id`, unless it expired.
    pub async fn session(&self, id: &str) -> anyhow::Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT forge, user_id, login, token, csrf, expires_at FROM sessions \
             WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(now_millis())
        .fetch_optional(self.pool())
        .await
        .context("reading a session")?;
        row.map(|row| {
            Ok(SessionRecord {
                forge: row.try_get(0)?,
                user_id: row.try_get(1)?,
                login: row.try_get(2)?,
                token: row.try_get(3)?,
                csrf: row.try_get(4)?,
                expires_at: row.try_get(5)?,
            })
        })
        .transpose()
    }

    /// Ends a session (sign-out).
    pub async fn end_session(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .context("ending a session")?;
        Ok(())
    }

    /// Remembers an OAuth sign-in under way under its hashed `state`; sign-ins older than
    /// `max_age_millis` go at the same time.
    pub async fn begin_sign_in(
        &self,
        state: &str,
        pending: &PendingSignIn,
        max_age_millis: i64,
    ) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sign_ins WHERE created_at < $1")
            .bind(now_millis() - max_age_millis)
            .execute(self.pool())
            .await
            .context("removing stale sign-ins")?;
        sqlx::query(
            "INSERT INTO sign_ins (state, forge, verifier, next, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state)
        .bind(pending.forge)
        .bind(&pending.verifier)
        .bind(&pending.next)
        .bind(pending.created_at)
        .execute(self.pool())
        .await
        .context("storing a sign-in")?;
        Ok(())
    }

    /// Takes the sign-in under `state` out of the store: a `state` is good for one callback.
    pub async fn take_sign_in(&self, state: &str) -> anyhow::Result<Option<PendingSignIn>> {
        let row = sqlx::query(
            "DELETE FROM sign_ins WHERE state = $1 \
             RETURNING forge, verifier, next, created_at",
        )
        .bind(state)
        .fetch_optional(self.pool())
        .await
        .context("taking a sign-in")?;
        row.map(|row| {
            Ok(PendingSignIn {
                forge: row.try_get(0)?,
                verifier: row.try_get(1)?,
                next: row.try_get(2)?,
                created_at: row.try_get(3)?,
            })
        })
        .transpose()
    }

    /// The permission the forge gave `user_id` on `repo`, if it was asked after
    /// `checked_after` (milliseconds).
    pub async fn cached_permission(
        &self,
        forge: Forge,
        user_id: &str,
        repo: &RepoName,
        checked_after: i64,
    ) -> anyhow::Result<Option<Permission>> {
        let row = sqlx::query(
            "SELECT permission FROM permissions WHERE forge = $1 AND user_id = $2 \
             AND repo = $3 AND checked_at > $4",
        )
        .bind(forge)
        .bind(user_id)
        .bind(repo.as_str())
        .bind(checked_after)
        .fetch_optional(self.pool())
        .await
        .context("reading a cached permission")?;
        row.map(|row| Ok(row.try_get(0)?)).transpose()
    }

    pub async fn remember_permission(
        &self,
        forge: Forge,
        user_id: &str,
        repo: &RepoName,
        permission: Permission,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO permissions (forge, user_id, repo, permission, checked_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (forge, user_id, repo) \
             DO UPDATE SET permission = excluded.permission, checked_at = excluded.checked_at",
        )
        .bind(forge)
        .bind(user_id)
        .bind(repo.as_str())
        .bind(permission)
        .bind(now_millis())
        .execute(self.pool())
        .await
        .context("caching a permission")?;
        Ok(())
    }

    /// Records the visibility a delivery reported for `repo` (its configured name). Writes
    /// only when it changed, so the intake's hot path stays a read.
    pub async fn record_visibility(
        &self,
        forge: Forge,
        repo: &RepoName,
        visibility: Visibility,
    ) -> anyhow::Result<()> {
        if self.reported_visibility(forge, repo).await? == Some(visibility) {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO repo_visibility (forge, repo, visibility, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (forge, repo) \
             DO UPDATE SET visibility = excluded.visibility, updated_at = excluded.updated_at",
        )
        .bind(forge)
        .bind(repo.as_str())
        .bind(visibility)
        .bind(now_millis())
        .execute(self.pool())
        .await
        .context("recording a repo's visibility")?;
        Ok(())
    }

    /// The visibility the latest delivery reported for `repo`, if any did.
    pub async fn reported_visibility(
        &self,
        forge: Forge,
        repo: &RepoName,
    ) -> anyhow::Result<Option<Visibility>> {
        let row =
            sqlx::query("SELECT visibility FROM repo_visibility WHERE forge = $1 AND repo = $2")
                .bind(forge)
                .bind(repo.as_str())
                .fetch_optional(self.pool())
                .await
                .context("reading a repo's visibility")?;
        row.map(|row| Ok(row.try_get(0)?)).transpose()
    }

    /// Every repo a delivery reported a visibility for.
    pub async fn reported_repos(&self) -> anyhow::Result<Vec<(Forge, RepoName, Visibility)>> {
        let rows = sqlx::query("SELECT forge, repo, visibility FROM repo_visibility")
            .fetch_all(self.pool())
            .await
            .context("listing the repos' visibility")?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }
}
