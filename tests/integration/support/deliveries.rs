//! Deliveries as the forges send them: a raw body and headers, signed the way each forge
//! signs, with a fresh delivery id. Tests post them to a running Gantry or hand them to the
//! webhook module directly.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gantry::config::Settings;
use gantry::domain::Forge;
use gantry::webhook::signature::hmac_hex;
use gantry::webhook::{self, WebhookError};

/// One delivery: what goes on the wire.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub forge: Forge,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    /// `body` as `forge` delivers `event`, authenticated with `secret`: GitHub's
    /// `X-Hub-Signature-256`, GitLab's `X-Gitlab-Token`, Gitea's bare-hex HMAC.
    pub fn signed(forge: Forge, secret: &str, event: &str, body: &[u8]) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let hmac = || hmac_hex(secret.as_bytes(), body);
        let headers: Vec<(&str, String)> = match forge {
            Forge::Github => vec![
                ("X-GitHub-Event", event.into()),
                ("X-GitHub-Delivery", id),
                ("X-GitHub-Hook-ID", "4242".into()),
                ("X-Hub-Signature-256", format!("sha256={}", hmac())),
            ],
            Forge::Gitlab => vec![
                ("X-Gitlab-Event", event.into()),
                ("X-Gitlab-Event-UUID", id),
                ("X-Gitlab-Token", secret.into()),
            ],
            Forge::Gitea => vec![
                ("X-Gitea-Event", event.into()),
                ("X-Gitea-Delivery", id),
                ("X-Gitea-Signature", hmac()),
            ],
        };
        Self {
            forge,
            headers: std::iter::once(("Content-Type", "application/json".to_owned()))
                .chain(headers)
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// A GitLab delivery signed with the HMAC scheme (no plain token) under the key of a
    /// `whsec_` token, sent at `sent_at`.
    pub fn gitlab_hmac(key: &[u8], event: &str, body: &[u8], sent_at: SystemTime) -> Self {
        let timestamp = sent_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
            .to_string();
        let id = format!("msg_{}", uuid::Uuid::new_v4());
        let message = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
        let signature = hex::decode(hmac_hex(key, &message)).expect("hex");
        Self::signed(Forge::Gitlab, "", event, body)
            .without_header("X-Gitlab-Token")
            .with_header("webhook-id", &id)
            .with_header("webhook-timestamp", &timestamp)
            .with_header(
                "webhook-signature",
                &format!("v1,{}", BASE64.encode(signature)),
            )
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        self
    }

    /// What Gantry's webhook module makes of it under `settings`, now.
    pub fn receive(&self, settings: &Settings) -> Result<webhook::Delivery, WebhookError> {
        webhook::receive(
            self.forge,
            &self.headers,
            &self.body,
            settings,
            SystemTime::now(),
        )
    }

    /// Posts it to `/hooks/{forge}` of the Gantry at `base` (`http://127.0.0.1:PORT`).
    pub async fn post(&self, client: &reqwest::Client, base: &str) -> reqwest::Response {
        self.post_to(client, base, self.forge.as_str()).await
    }

    /// Posts it to `/hooks/{route}`, whichever forge's route that is.
    pub async fn post_to(
        &self,
        client: &reqwest::Client,
        base: &str,
        route: &str,
    ) -> reqwest::Response {
        let mut request = client
            .post(format!("{base}/hooks/{route}"))
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
            .send()
            .await
            .expect("the delivery reaches the server")
    }
}

/// The folder of captured payloads (`tests/fixtures/webhooks`, with its SOURCES.md).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks")
}

/// One captured payload, by its path under [`fixture_dir`].
pub fn fixture(relative: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(relative))
        .unwrap_or_else(|err| panic!("reading fixture {relative}: {err}"))
}
