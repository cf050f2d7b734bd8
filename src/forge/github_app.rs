//! GitHub App authentication: a JSON Web Token signed with the app's private key proves the
//! app, and buys an installation token per repo (valid an hour) for the API and for git.
//! With an app, Gantry reports check runs (with annotations) instead of commit statuses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

use super::ForgeError;
use crate::config::Secret;

/// GitHub refuses app tokens that live longer than ten minutes; one minute of clock skew is
/// allowed for by starting the token in the past.
const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// An installation token is replaced this long before GitHub says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

pub struct GithubApp {
    app_id: u64,
    key: RsaKeyPair,
    /// Installation tokens by repo, with when to stop using them.
    tokens: Mutex<HashMap<String, (Secret, SystemTime)>>,
}

impl GithubApp {
    /// Reads the app's private key: the PEM GitHub hands out (PKCS#1), or PKCS#8.
    pub fn load(app_id: u64, private_key_file: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(private_key_file)
            .with_context(|| format!("reading github.private_key_file {private_key_file}"))?;
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD
            .decode(body.trim())
            .context("github.private_key_file is not a PEM file")?;
        let key = if pem.contains("BEGIN RSA PRIVATE KEY") {
            RsaKeyPair::from_der(&der)
        } else if pem.contains("BEGIN PRIVATE KEY") {
            RsaKeyPair::from_pkcs8(&der)
        } else {
            bail!("github.private_key_file holds no RSA private key");
        }
        .map_err(|err| anyhow::anyhow!("github.private_key_file: {err}"))?;
        Ok(Self {
            app_id,
            key,
            tokens: Mutex::default(),
        })
    }

    /// The app's own token (RS256 JWT), for the app endpoints.
    fn jwt(&self) -> Result<String, ForgeError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({
                "iat": now - CLOCK_SKEW.as_secs(),
                "exp": now + JWT_LIFETIME.as_secs(),
                "iss": self.app_id.to_string(),
            })
            .to_string(),
        );
        let message = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| ForgeError {
                message: "signing the GitHub App token failed".into(),
                retry_after: None,
            })?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// An installation token for `repo` (`owner/name`), from the cache while it is fresh.
    pub async fn installation_token(
        &self,
        http: &reqwest::Client,
        base: &str,
        repo: &str,
    ) -> Result<Secret, ForgeError> {
        if let Some((token, until)) = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(repo)
            && SystemTime::now() < *until
        {
            return Ok(token.clone());
        }
        let jwt = self.jwt()?;
        let app = |request: reqwest::RequestBuilder| {
            request
                .bearer_auth(&jwt)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
        };
        let installation = super::send(
            super::Forge::Github,
            app(http.get(format!("{base}/repos/{repo}/installation"))),
        )
        .await?;
        let Some(id) = installation.get("id").and_then(|id| id.as_u64()) else {
            return Err(unexpected("an installation without an id"));
        };
        let answer = super::send(
            super::Forge::Github,
            app(http.post(format!("{base}/app/installations/{id}/access_tokens"))),
        )
        .await?;
        let Some(token) = answer.get("token").and_then(|t| t.as_str()) else {
            return Err(unexpected("an installation token answer without a token"));
        };
        let expires = answer
            .get("expires_at")
            .and_then(|t| t.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64))
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600));
        let token = Secret::new(token);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(repo.to_owned(), (token.clone(), expires - TOKEN_MARGIN));
        Ok(token)
    }
}

fn unexpected(what: &str) -> ForgeError {
    ForgeError {
        message: format!("GitHub answered {what}"),
        retry_after: Some(Duration::ZERO),
    }
}
