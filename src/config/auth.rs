//! `[auth]`: who may see and do what, and the forges people sign in with.

use std::time::Duration;

use serde::Deserialize;

use super::duration;
use crate::domain::{AnonymousAccess, Forge, Secret};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// What visitors who are not signed in may read.
    pub anonymous: AnonymousAccess,
    /// How long a sign-in lasts.
    #[serde(deserialize_with = "duration")]
    pub session_ttl: Duration,
    /// How long a person's permission on a repo, as the forge gave it, is trusted.
    #[serde(deserialize_with = "duration")]
    pub permission_ttl: Duration,
    /// `forge:login` pairs that may do everything.
    pub admins: Vec<String>,
    /// Signs session cookies and encrypts the forge tokens sessions keep. Unset: a key is
    /// generated once and kept in the store, so every replica shares it.
    pub session_key: Option<Secret>,
    pub github: Option<OAuthApp>,
    pub gitlab: Option<OAuthApp>,
    pub gitea: Option<OAuthApp>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            anonymous: AnonymousAccess::Public,
            session_ttl: Duration::from_secs(12 * 3600),
            permission_ttl: Duration::from_secs(600),
            admins: Vec::new(),
            session_key: None,
            github: None,
            gitlab: None,
            gitea: None,
        }
    }
}

/// An OAuth application registered on a forge ("Sign in with …").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: Secret,
    /// The forge's web root, where people sign in (GitHub: `https://github.com`; GitHub
    /// Enterprise, self-managed GitLab and Gitea: their own host).
    pub web_url: Option<String>,
}

impl AuthSettings {
    /// The OAuth application of `forge`, if sign-in with it is configured.
    pub fn app(&self, forge: Forge) -> Option<&OAuthApp> {
        match forge {
            Forge::Github => self.github.as_ref(),
            Forge::Gitlab => self.gitlab.as_ref(),
            Forge::Gitea => self.gitea.as_ref(),
        }
    }

    /// The forges people may sign in with, in a fixed order.
    pub fn sign_in_forges(&self) -> Vec<Forge> {
        Forge::ALL
            .iter()
            .copied()
            .filter(|forge| self.app(*forge).is_some())
            .collect()
    }

    /// Whether `login` on `forge` is listed in `admins`.
    pub fn is_admin(&self, forge: Forge, login: &str) -> bool {
        self.admins.iter().any(|admin| {
            admin.split_once(':').is_some_and(|(name, admin_login)| {
                name == forge.as_str() && admin_login.eq_ignore_ascii_case(login)
            })
        })
    }

    pub(super) fn check(&self) -> Result<(), super::ConfigError> {
        for (index, admin) in self.admins.iter().enumerate() {
            let valid = admin
                .split_once(':')
                .is_some_and(|(forge, login)| forge.parse::<Forge>().is_ok() && !login.is_empty());
            if !valid {
                return Err(super::ConfigError::Key {
                    key: format!("auth.admins[{index}]"),
                    message: format!("`{admin}` is not `forge:login` (like `github:octocat`)"),
                });
            }
        }
        if let Some(key) = &self.session_key
            && key.expose().len() < 32
        {
            return Err(super::ConfigError::Key {
                key: "auth.session_key".into(),
                message: "must be at least 32 characters".into(),
            });
        }
        if self.gitea.as_ref().is_some_and(|app| app.web_url.is_none()) {
            return Err(super::ConfigError::Key {
                key: "auth.gitea.web_url".into(),
                message: "is required: Gitea has no default host".into(),
            });
        }
        Ok(())
    }
}
