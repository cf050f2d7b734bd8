//! Talking back to the forges: commit statuses, one per pipeline (`gantry/<pipeline>`), and
//! the pull requests of `pull_request`-mode bumps.
//!
//! Each forge's API is a small request builder in its own file; what they share (the HTTP
//! client, what a failure means, when to retry) lives here. The reporter (`reporter.rs`)
//! delivers queued updates with retries, so reporting never blocks or fails a run.

mod gitea;
mod github;
mod github_app;
mod gitlab;
pub mod reporter;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Secret, Settings};
use crate::webhook::Forge;

/// Longest description GitHub accepts (it answers 422 beyond); the others take it too.
pub const MAX_DESCRIPTION_CHARS: usize = 140;
/// One status request may take this long before it counts as failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A pipeline's state as a forge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Pending,
    Running,
    Success,
    Failure,
    Error,
    Canceled,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Running => "running",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
            StatusState::Canceled => "canceled",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            StatusState::Pending,
            StatusState::Running,
            StatusState::Success,
            StatusState::Failure,
            StatusState::Error,
            StatusState::Canceled,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// One status to set on a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub forge: Forge,
    pub repo: String,
    pub sha: String,
    /// The branch (GitLab wants it with each status).
    pub git_ref: String,
    pub context: String,
    pub state: StatusState,
    pub description: String,
    pub target_url: String,
}

/// The status context of a pipeline: what the forge lists it as on a commit.
pub fn status_context(pipeline: &str) -> String {
    format!("gantry/{pipeline}")
}

/// Cuts a description to what the forges accept, marking the cut.
pub fn clamp_description(text: &str) -> String {
    let text = text.lines().next().unwrap_or_default();
    if text.chars().count() <= MAX_DESCRIPTION_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Why a status could not be set. `retry_after` says when trying again makes sense; `None`
/// means it never will (a 4xx the request itself caused).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ForgeError {
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// The forge APIs Gantry reports to, built from the config. Production and tests build it
/// the same way; tests point `api_url` at a fake.
#[derive(Clone)]
pub struct Forges {
    http: reqwest::Client,
    github: Option<Api>,
    gitlab: Option<Api>,
    gitea: Option<Api>,
    /// With a GitHub App, GitHub gets check runs, authenticated per installation.
    github_app: Option<(String, Arc<github_app::GithubApp>)>,
}

#[derive(Clone)]
struct Api {
    base: String,
    token: Secret,
}

impl Forges {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let api = |url: Option<&String>, token: Option<&Secret>| {
            Some(Api {
                base: url?.trim_end_matches('/').to_owned(),
                token: token?.clone(),
            })
        };
        let github_app = match (settings.github.app_id, &settings.github.private_key_file) {
            (Some(app_id), Some(file)) => Some((
                settings.github.api_url.trim_end_matches('/').to_owned(),
                Arc::new(github_app::GithubApp::load(app_id, file)?),
            )),
            (None, None) => None,
            _ => anyhow::bail!("github.app_id and github.private_key_file go together"),
        };
        Ok(Self {
            http,
            github_app,
            github: api(
                Some(&settings.github.api_url),
                settings.github.token.as_ref(),
            ),
            gitlab: api(
                Some(&settings.gitlab.api_url),
                settings.gitlab.token.as_ref(),
            ),
            gitea: api(
                settings.gitea.api_url.as_ref(),
                settings.gitea.token.as_ref(),
            ),
        })
    }

    /// Whether statuses can be sent to `forge` (a token and API URL are configured).
    pub fn reports_to(&self, forge: Forge) -> bool {
        self.api(forge).is_some() || (forge == Forge::Github && self.github_app.is_some())
    }

    /// The API base and the token to use for `repo`: a GitHub App's installation token
    /// where an app is configured, else the configured token.
    async fn credentials(&self, forge: Forge, repo: &str) -> Result<(String, Secret), ForgeError> {
        if forge == Forge::Github
            && let Some((base, app)) = &self.github_app
        {
            let token = app.installation_token(&self.http, base, repo).await?;
            return Ok((base.clone(), token));
        }
        match self.api(forge) {
            Some(api) => Ok((api.base.clone(), api.token.clone())),
            None => Err(ForgeError {
                message: format!("no {forge} token configured"),
                retry_after: None,
            }),
        }
    }

    /// The token git uses to fetch `repo` over HTTPS, if any.
    pub async fn git_token(&self, forge: Forge, repo: &str) -> Option<Secret> {
        if !self.reports_to(forge) {
            return None;
        }
        match self.credentials(forge, repo).await {
            Ok((_, token)) => Some(token),
            Err(err) => {
                tracing::warn!(%forge, repo, error = %err, "no token for git; fetching without");
                None
            }
        }
    }

    fn api(&self, forge: Forge) -> Option<&Api> {
        match forge {
            Forge::Github => self.github.as_ref(),
            Forge::Gitlab => self.gitlab.as_ref(),
            Forge::Gitea => self.gitea.as_ref(),
        }
    }

    /// Sets one status.
    pub async fn set_status(&self, status: &CommitStatus) -> Result<(), ForgeError> {
        let (base, token) = self.credentials(status.forge, &status.repo).await?;
        let request = match status.forge {
            Forge::Github if self.github_app.is_some() => {
                github::check_run_request(&self.http, &base, &token, status)
            }
            Forge::Github => github::status_request(&self.http, &base, &token, status),
            Forge::Gitlab => gitlab::status_request(&self.http, &base, &token, status),
            Forge::Gitea => gitea::status_request(&self.http, &base, &token, status),
        };
        send(status.forge, request).await.map(|_| ())
    }

    /// Opens a pull (merge) request from `head` to `base`, or, when one from `head` is
    /// already open, updates its title and body. Returns its web address.
    pub async fn open_pull_request(
        &self,
        forge: Forge,
        request: &PullRequest,
    ) -> Result<String, ForgeError> {
        let (base, token) = self.credentials(forge, &request.repo).await?;
        let (http, base, token) = (&self.http, base.as_str(), &token);
        let open = match forge {
            Forge::Github => github::find_pull_request(http, base, token, request),
            Forge::Gitlab => gitlab::find_pull_request(http, base, token, request),
            Forge::Gitea => gitea::find_pull_request(http, base, token, request),
        };
        let open = send(forge, open).await?;
        let existing = match forge {
            Forge::Github => github::existing_pull_request(&open),
            Forge::Gitlab => gitlab::existing_pull_request(&open),
            Forge::Gitea => gitea::existing_pull_request(&open, request),
        };
        let answer = match &existing {
            Some((number, _)) => {
                let update = match forge {
                    Forge::Github => {
                        github::update_pull_request(http, base, token, request, number)
                    }
                    Forge::Gitlab => {
                        gitlab::update_pull_request(http, base, token, request, number)
                    }
                    Forge::Gitea => gitea::update_pull_request(http, base, token, request, number),
                };
                send(forge, update).await?
            }
            None => {
                let create = match forge {
                    Forge::Github => github::create_pull_request(http, base, token, request),
                    Forge::Gitlab => gitlab::create_pull_request(http, base, token, request),
                    Forge::Gitea => gitea::create_pull_request(http, base, token, request),
                };
                send(forge, create).await?
            }
        };
        // GitHub and Gitea call the page `html_url`, GitLab `web_url`.
        answer
            .get("html_url")
            .or_else(|| answer.get("web_url"))
            .and_then(|url| url.as_str())
            .map(str::to_owned)
            .or(existing.map(|(_, url)| url))
            .ok_or_else(|| ForgeError {
                message: format!("{forge} answered without the pull request's address"),
                retry_after: None,
            })
    }
}

/// A pull request a bump wants open, in the repo `repo` (`owner/name`, or GitLab's full
/// project path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub repo: String,
    pub base: String,
    pub head: String,
    pub title: String,
    pub body: String,
}

/// Sends one API request; a success's JSON body (or `null`), or what went wrong.
async fn send(
    forge: Forge,
    request: reqwest::RequestBuilder,
) -> Result<serde_json::Value, ForgeError> {
    let response = request.send().await.map_err(|err| ForgeError {
        message: format!("{forge} unreachable: {}", without_url(&err)),
        retry_after: Some(Duration::ZERO),
    })?;
    let code = response.status();
    if code.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Ok(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
    }
    let retry_after = retry_after(code, response.headers());
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(ForgeError {
        message: format!("{forge} answered {code}: {}", body.trim()),
        retry_after,
    })
}

/// When a failed request is worth repeating: server errors and rate limits, honouring
/// `Retry-After` and GitHub's `X-RateLimit-Reset`.
fn retry_after(
    code: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let after = header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let rate_limited = code == reqwest::StatusCode::TOO_MANY_REQUESTS
        || (code == reqwest::StatusCode::FORBIDDEN
            && (header("x-ratelimit-remaining") == Some("0") || after.is_some()));
    if rate_limited {
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|reset| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                Duration::from_secs(reset.saturating_sub(now))
            });
        return Some(after.or(reset).unwrap_or(Duration::from_secs(60)));
    }
    if code.is_server_error() {
        return Some(after.unwrap_or(Duration::ZERO));
    }
    None
}

/// reqwest errors can carry the URL; ours never has a token in it, but keep messages short.
fn without_url(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    if let Some(url) = err.url() {
        message = message.replace(url.as_str(), "");
    }
    message.trim().to_owned()
}

/// rustls needs one process-wide crypto provider; ring builds with a C compiler alone.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_cut_to_the_limit() {
        assert_eq!(clamp_description("short"), "short");
        let long = "x".repeat(200);
        let cut = clamp_description(&long);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(clamp_description("first\nsecond"), "first");
    }

    #[test]
    fn retries_follow_the_forge() {
        use reqwest::StatusCode;
        use reqwest::header::{HeaderMap, HeaderValue};
        let none = HeaderMap::new();
        assert_eq!(
            retry_after(StatusCode::SERVICE_UNAVAILABLE, &none),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(StatusCode::UNPROCESSABLE_ENTITY, &none), None);
        assert_eq!(retry_after(StatusCode::FORBIDDEN, &none), None);
        let mut limited = HeaderMap::new();
        limited.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        limited.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(
            retry_after(StatusCode::FORBIDDEN, &limited),
            Some(Duration::from_secs(7))
        );
    }
}
