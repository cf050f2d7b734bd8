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

use std::collections::BTreeMap;
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

    /// How an action of this viewer is signed on a run (who approved it, say): the forge
    /// login, or `api-token`.
    pub fn actor(&self) -> String {
        match self {
            Viewer::User(user) => user.login.clone(),
            Viewer::ApiToken => "api-token".into(),
            Viewer::Anonymous => "a visitor".into(),
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
        self.judge(viewer, forge, repo, None, Permission::Read)
            .await
    }

    /// Whether `viewer` may act on the runs of `repo` (cancel, rerun, approve, …).
    pub async fn may_act(
        &self,
        viewer: &Viewer,
        forge: Forge,
        repo: &RepoName,
    ) -> anyhow::Result<Result<(), Denied>> {
        self.judge(viewer, forge, repo, None, Permission::Write)
            .await
    }

    /// The rules: whether `viewer` has `needed` (read, or write to act) on `repo`, whose
    /// visibility is looked up unless given. The forge is asked only when the visibility
    /// alone does not settle it, and at most once.
    async fn judge(
        &self,
        viewer: &Viewer,
        forge: Forge,
        repo: &RepoName,
        visibility: Option<Visibility>,
        needed: Permission,
    ) -> anyhow::Result<Result<(), Denied>> {
        let reading = needed <= Permission::Read;
        let anonymous = self.settings.auth.anonymous;
        if viewer.is_admin() || (reading && anonymous == AnonymousAccess::All) {
            return Ok(Ok(()));
        }
        let visibility = match visibility {
            Some(visibility) => visibility,
            None => self.visibility(forge, repo).await?,
        };
        let Viewer::User(user) = viewer else {
            let public = visibility == Visibility::Public && anonymous == AnonymousAccess::Public;
            return Ok(if reading && public {
                Ok(())
            } else {
                Err(Denied::SignIn)
            });
        };
        // What a signed-in person reads whatever the forge says of them.
        let open = anonymous == AnonymousAccess::All
            || match visibility {
                Visibility::Public => true,
                Visibility::Internal => user.forge == Some(forge),
                Visibility::Private => false,
            };
        if reading && open {
            return Ok(Ok(()));
        }
        let permission = self.permission(user, forge, repo).await?;
        Ok(if permission >= needed {
            Ok(())
        } else if open || permission >= Permission::Read {
            Err(Denied::ReadOnly)
        } else {
            Err(Denied::Hidden)
        })
    }

    /// The repos whose runs `viewer` may read, or `None` for all of them. Candidates are the
    /// configured repos and those deliveries reported on, each with its visibility read once
    /// for the whole list.
    pub async fn readable_repos(
        &self,
        viewer: &Viewer,
    ) -> anyhow::Result<Option<Vec<(Forge, RepoName)>>> {
        if viewer.is_admin() || self.settings.auth.anonymous == AnonymousAccess::All {
            return Ok(None);
        }
        let mut reported: BTreeMap<(Forge, RepoName), Visibility> = self
            .store
            .reported_repos()
            .await?
            .into_iter()
            .map(|(forge, repo, visibility)| ((forge, repo), visibility))
            .collect();
        let mut candidates: Vec<(Forge, RepoName, Visibility)> = Vec::new();
        for configured in &self.settings.repos {
            let reported = reported.remove(&(configured.forge, configured.name.clone()));
            let visibility = configured
                .visibility
                .or(reported)
                .unwrap_or(Visibility::Private);
            candidates.push((configured.forge, configured.name.clone(), visibility));
        }
        candidates.extend(
            reported
                .into_iter()
                .map(|((forge, repo), visibility)| (forge, repo, visibility)),
        );
        let checks = futures_util::stream::iter(candidates)
            .map(|(forge, repo, visibility)| async move {
                let readable = self
                    .judge(viewer, forge, &repo, Some(visibility), Permission::Read)
                    .await;
                readable.map(|readable| readable.is_ok().then_some((forge, repo)))
            })
            .buffered(PARALLEL_LOOKUPS)
            .collect::<Vec<_>>()
            .await;
        let mut readable = Vec::new();
        for check in checks {
            if let Some(repo) = check? {
                readable.push(repo);
            }
        }
        Ok(Some(readable))
    }
}
