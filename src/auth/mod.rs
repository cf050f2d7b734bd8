//! Who may see and do what. People sign in with their forge (`oauth`), the forge says what
//! they may do with each repo (`forge`), and [`Access`] decides each read and action from
//! that, the repo's visibility and `[auth]`.
//!
//! The rules (DESIGN.md, "Who may see and do what"): a public repo's runs are read as
//! `auth.anonymous` says; an internal repo's by anyone signed in with its forge; a private
//! repo's by those the forge lets read it. Actions need write, an admin, or the API token.

pub mod forge;
pub mod keys;
pub mod oauth;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::config::Settings;
use crate::domain::{AnonymousAccess, Forge, Permission, RepoName, Secret, Visibility};
use crate::store::{SessionRecord, Store, now_millis};
pub use keys::Keys;

/// A forge call made for sign-in or a permission may take this long.
const FORGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Permission lookups for one run list at once, so a first list does not flood the forge.
const PARALLEL_LOOKUPS: usize = 8;

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Viewer {
    Anonymous,
    /// `Authorization: Bearer <server.api_token>`: reads and does everything.
    ApiToken,
    User(User),
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct User {
    /// `None` for a sign-in with the API token on `/login`.
    pub forge: Option<Forge>,
    pub id: String,
    pub login: String,
    /// Their forge token, to ask the forge for permissions.
    pub token: Option<Secret>,
    /// What forms and JSON `POST`s sent with the session cookie must carry.
    pub csrf: String,
    pub admin: bool,
    /// The fingerprint of the session's cookie secret.
    pub session: String,
}

impl Viewer {
    /// Reads and does everything: the API token, an API-token sign-in, an admin.
    pub fn is_admin(&self) -> bool {
        match self {
            Viewer::ApiToken => true,
            Viewer::User(user) => user.admin,
            Viewer::Anonymous => false,
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Viewer::User(user) => Some(user),
            _ => None,
        }
    }
}

/// Why a read or an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not signed in: signing in might help (API 401, pages go to `/login`).
    SignIn,
    /// Signed in but not allowed to see the repo: answered as if it did not exist.
    Hidden,
    /// Allowed to see the repo, not to act on it.
    ReadOnly,
}

/// Decides reads and actions; holds what that needs. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    settings: Arc<Settings>,
    store: Store,
    keys: Keys,
    http: reqwest::Client,
}

impl Access {
    /// Reads (or first makes) the session key.
    pub async fn new(settings: Arc<Settings>, store: Store) -> anyhow::Result<Self> {
        let master = match &settings.auth.session_key {
            Some(key) => key.expose().to_owned(),
            None => {
                store
                    .server_key(keys::STORED_KEY_NAME, &keys::random_secret()?)
                    .await?
            }
        };
        crate::forge::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(FORGE_TIMEOUT)
            // The token exchange must not follow a redirect anywhere (RFC 6749 §10.6 on
            // leaking codes); the forges' APIs do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            settings,
            store,
            keys: Keys::derive(master.as_bytes()),
            http,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The signed-in person behind a session cookie's secret, if the session lives.
    pub async fn session_user(&self, secret: &str) -> anyhow::Result<Option<User>> {
        let session = keys::fingerprint(secret);
        let Some(record) = self.store.session(&session).await? else {
            return Ok(None);
        };
        let token = match &record.token {
            // A token this key cannot open was sealed under another key: no session.
            Some(sealed) => match self.keys.decrypt(sealed) {
                Some(token) => Some(Secret::new(token)),
                None => return Ok(None),
            },
            None => None,
        };
        let admin = match record.forge {
            Some(forge) => self.settings.auth.is_admin(forge, &record.login),
            None => true,
        };
        Ok(Some(User {
            forge: record.forge,
            id: record.user_id,
            login: record.login,
            token,
            csrf: record.csrf,
            admin,
            session,
        }))
    }

    /// Starts a session; returns the secret for its cookie.
    pub async fn start_session(
        &self,
        forge: Option<Forge>,
        user: &forge::ForgeUser,
        token: Option<&Secret>,
    ) -> anyhow::Result<String> {
        let secret = keys::random_secret()?;
        let record = SessionRecord {
            forge,
            user_id: user.id.clone(),
            login: user.login.clone(),
            token: token
                .map(|token| self.keys.encrypt(token.expose()))
                .transpose()?,
            csrf: keys::random_secret()?,
            expires_at: now_millis() + self.settings.auth.session_ttl.as_millis() as i64,
        };
        self.store
            .create_session(&keys::fingerprint(&secret), &record)
            .await?;
        Ok(secret)
    }

    /// A repo's visibility: `[[repos]] visibility`, else what its latest delivery said,
    /// else private.
    pub async fn visibility(&self, forge: Forge, repo: &RepoName) -> anyhow::Result<Visibility> {
        if let Some(visibility) = self
            .settings
            .repo(forge, repo)
            .and_then(|configured| configured.visibility)
        {
            return Ok(visibility);
        }
        Ok(self
            .store
            .reported_visibility(forge, repo)
            .await?
            .unwrap_or(Visibility::Private))
    }

    /// What `user` may do with `repo`: from the cache while it is fresh, else from the forge.
    async fn permission(
        &self,
        user: &User,
        forge: Forge,
        repo: &RepoName,
    ) -> anyhow::Result<Permission> {
        if user.forge != Some(forge) {
            return Ok(Permission::None);
        }
        let fresh_after = now_millis() - self.settings.auth.permission_ttl.as_millis() as i64;
        if let Some(permission) = self
            .store
            .cached_permission(forge, &user.id, repo, fresh_after)
            .await?
        {
            return Ok(permission);
        }
        let (Some(token), Some(api)) = (&user.token, forge::api_url(&self.settings, forge)) else {
            return Ok(Permission::None);
        };
        let permission = match forge::permission(&self.http, &api, forge, token, repo).await {
            Ok(permission) => permission,
            // Fail closed, and ask again next time: a forge that is down grants nothing.
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), %repo, "permission lookup failed");
                return Ok(Permission::None);
            }
        };
        self.store
            .remember_permission(forge, &user.id, repo, permission)
            .await?;
        Ok(permission)
    }

    /// Whether `viewer` may read the runs of `repo`.
    pub async fn may_read(
        &self,
        viewer: &Viewer,
        forge: Forge,
        repo: &RepoName,
    ) -> anyhow::Result<Result<(), Denied>> {
        if viewer.is_admin() || self.settings.auth.anonymous == AnonymousAccess::All {
            return Ok(Ok(()));
        }
        let visibility = self.visibility(forge, repo).await?;
        let user = match viewer {
            Viewer::User(user) => user,
            _ if visibility == Visibility::Public
                && self.settings.auth.anonymous == AnonymousAccess::Public =>
            {
                return Ok(Ok(()));
            }
            _ => return Ok(Err(Denied::SignIn)),
        };
        let allowed = match visibility {
            Visibility::Public => true,
            Visibility::Internal => user.forge == Some(forge),
            Visibility::Private => self.permission(user, forge, repo).await? >= Permission::Read,
        };
        Ok(if allowed { Ok(()) } else { Err(Denied::Hidden) })
    }

    /// Whether `viewer` may act on the runs of `repo` (cancel, rerun, approve, …).
    pub async fn may_act(
        &self,
        viewer: &Viewer,
        forge: Forge,
        repo: &RepoName,
    ) -> anyhow::Result<Result<(), Denied>> {
        if viewer.is_admin() {
            return Ok(Ok(()));
        }
        let Viewer::User(user) = viewer else {
            return Ok(Err(Denied::SignIn));
        };
        if self.permission(user, forge, repo).await? >= Permission::Write {
            return Ok(Ok(()));
        }
        Ok(match self.may_read(viewer, forge, repo).await? {
            Ok(()) => Err(Denied::ReadOnly),
            Err(denied) => Err(denied),
        })
    }

    /// The repos whose runs `viewer` may read, or `None` for all of them. Candidates are the
    /// configured repos and those deliveries reported on.
    pub async fn readable_repos(
        &self,
        viewer: &Viewer,
    ) -> anyhow::Result<Option<Vec<(Forge, RepoName)>>> {
        if viewer.is_admin() || self.settings.auth.anonymous == AnonymousAccess::All {
            return Ok(None);
        }
        let mut candidates: Vec<(Forge, RepoName)> = self
            .settings
            .repos
            .iter()
            .map(|repo| (repo.forge, repo.name.clone()))
            .collect();
        for (forge, repo, _) in self.store.reported_repos().await? {
            if !candidates.contains(&(forge, repo.clone())) {
                candidates.push((forge, repo));
            }
        }
        let checks = futures_util::stream::iter(candidates)
            .map(|(forge, repo)| async move {
                let readable = self.may_read(viewer, forge, &repo).await;
                readable.map(|readable| readable.is_ok().then_some((forge, repo)))
            })
            .buffered(PARALLEL_LOOKUPS)
            .collect::<Vec<_>>()
            .await;
        let mut readable = Vec::new();
        for check in checks {
            match check {
                Ok(Some(repo)) => readable.push(repo),
                Ok(None) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Some(readable))
    }
}
