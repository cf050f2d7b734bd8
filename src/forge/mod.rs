//! Talking back to the forges: commit statuses, one per pipeline (`gantry/<pipeline>`), and
//! the pull requests of `pull_request`-mode bumps.
//!
//! Each forge's file describes its API's requests as [`ApiCall`]s; GitHub's also holds its
//! client (octocrab, with a token or as a GitHub App). What they share (sending GitLab's and
//! Gitea's calls with reqwest, reading answers, when to retry) lives here. The reporter
//! (`reporter.rs`) delivers queued updates with retries, so reporting never blocks or fails
//! a run.

mod gitea;
mod github;
mod gitlab;
pub mod reporter;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::domain::{CommitStatus, Forge, GitRef, RepoName, Secret};

/// Longest description GitHub accepts (it answers 422 beyond); the others take it too.
pub const MAX_DESCRIPTION_CHARS: usize = 140;
/// One status request may take this long before it counts as failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The ref a run's statuses name (see [`CommitStatus::git_ref`]): GitHub and Gitea keep one
/// status per commit and context, so none; GitLab keys them by ref as well.
pub fn status_ref(forge: Forge, git_ref: &GitRef, pr_number: Option<u64>) -> String {
    match forge {
        Forge::Gitlab => gitlab::status_ref(git_ref, pr_number),
        Forge::Github | Forge::Gitea => String::new(),
    }
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
    /// The forge's answer, when it gave one.
    pub answered: Option<reqwest::StatusCode>,
}

/// The forge APIs Gantry reports to, built from the config. Production and tests build it
/// the same way; tests point `api_url` at a fake.
#[derive(Clone)]
pub struct Forges {
    http: reqwest::Client,
    /// GitHub goes through octocrab, with a token or as a GitHub App.
    github: Option<Arc<github::Github>>,
    gitlab: Option<Api>,
    gitea: Option<Api>,
}

/// A forge reached with reqwest: its API base and token.
#[derive(Clone)]
struct Api {
    base: String,
    token: Secret,
}

/// One API request, described apart from the client that sends it (octocrab for GitHub,
/// reqwest for GitLab and Gitea), so each forge's file says only what its API wants.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiCall {
    pub method: reqwest::Method,
    /// Under the API base, query included and encoded.
    pub path: String,
    pub body: Option<serde_json::Value>,
}

impl ApiCall {
    fn get(path: String, query: &[(&str, &str)]) -> Self {
        let mut path = path;
        if !query.is_empty() {
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish();
            path = format!("{path}?{encoded}");
        }
        Self {
            method: reqwest::Method::GET,
            path,
            body: None,
        }
    }

    fn with_body(method: reqwest::Method, path: String, body: serde_json::Value) -> Self {
        Self {
            method,
            path,
            body: Some(body),
        }
    }

    fn post(path: String, body: serde_json::Value) -> Self {
        Self::with_body(reqwest::Method::POST, path, body)
    }

    fn patch(path: String, body: serde_json::Value) -> Self {
        Self::with_body(reqwest::Method::PATCH, path, body)
    }

    fn put(path: String, body: serde_json::Value) -> Self {
        Self::with_body(reqwest::Method::PUT, path, body)
    }
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
        Ok(Self {
            github: github::Github::from_settings(&settings.github, http.clone())?.map(Arc::new),
            gitlab: api(
                Some(&settings.gitlab.api_url),
                settings.gitlab.token.as_ref(),
            ),
            gitea: api(
                settings.gitea.api_url.as_ref(),
                settings.gitea.token.as_ref(),
            ),
            http,
        })
    }

    /// Whether statuses can be sent to `forge` (a token, or a GitHub App, is configured).
    pub fn reports_to(&self, forge: Forge) -> bool {
        match forge {
            Forge::Github => self.github.is_some(),
            Forge::Gitlab => self.gitlab.is_some(),
            Forge::Gitea => self.gitea.is_some(),
        }
    }

    /// The token git uses to fetch `repo` over HTTPS, if any: with a GitHub App, an
    /// installation token.
    pub async fn git_token(&self, forge: Forge, repo: &RepoName) -> Option<Secret> {
        let token = match forge {
            Forge::Github => self.github.as_ref()?.git_token(repo.as_str()).await,
            Forge::Gitlab => Ok(self.gitlab.as_ref()?.token.clone()),
            Forge::Gitea => Ok(self.gitea.as_ref()?.token.clone()),
        };
        match token {
            Ok(token) => Some(token),
            Err(err) => {
                tracing::warn!(%forge, %repo, error = %err, "no token for git; fetching without");
                None
            }
        }
    }

    /// Sends `call` to `forge` on behalf of `repo`; the answer's JSON (or `null`).
    async fn send(
        &self,
        forge: Forge,
        repo: &str,
        call: ApiCall,
    ) -> Result<serde_json::Value, ForgeError> {
        let no_token = || no_token(forge);
        let (api, auth) = match forge {
            Forge::Github => {
                let github = self.github.as_ref().ok_or_else(no_token)?;
                return github.send(repo, call).await;
            }
            Forge::Gitlab => {
                let api = self.gitlab.as_ref().ok_or_else(no_token)?;
                (api, ("PRIVATE-TOKEN", api.token.expose().to_owned()))
            }
            Forge::Gitea => {
                let api = self.gitea.as_ref().ok_or_else(no_token)?;
                (
                    api,
                    ("Authorization", format!("token {}", api.token.expose())),
                )
            }
        };
        let mut request = self
            .http
            .request(call.method, format!("{}{}", api.base, call.path))
            .header(auth.0, auth.1);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| ForgeError {
            message: format!("{forge} unreachable: {}", without_url(&err)),
            retry_after: Some(Duration::ZERO),
            answered: None,
        })?;
        let (code, headers) = (response.status(), response.headers().clone());
        let body = response.bytes().await.unwrap_or_default();
        answer(forge, code, &headers, &body)
    }

    /// Sets one status. With a GitHub App it is a check run: created, or updated when
    /// `remote_id` names the one an earlier update created; its id is returned for the
    /// next.
    pub async fn set_status(
        &self,
        status: &CommitStatus,
        remote_id: Option<&str>,
    ) -> Result<Option<String>, ForgeError> {
        let call = match status.forge {
            Forge::Github => {
                let github = self
                    .github
                    .as_ref()
                    .ok_or_else(|| no_token(Forge::Github))?;
                return github.set_status(status, remote_id).await;
            }
            Forge::Gitlab => gitlab::status_call(status),
            Forge::Gitea => gitea::status_call(status),
        };
        self.send(status.forge, status.repo.as_str(), call).await?;
        Ok(None)
    }

    /// Opens a pull (merge) request from `head` to `base`, or, when one from `head` is
    /// already open, updates its title and body. Returns its web address.
    pub async fn open_pull_request(
        &self,
        forge: Forge,
        request: &PullRequest,
    ) -> Result<String, ForgeError> {
        let find = match forge {
            Forge::Github => github::find_pull_request(request),
            Forge::Gitlab => gitlab::find_pull_request(request),
            Forge::Gitea => gitea::find_pull_request(request),
        };
        let open = self.send(forge, &request.repo, find).await?;
        let existing = match forge {
            Forge::Github => github::existing_pull_request(&open),
            Forge::Gitlab => gitlab::existing_pull_request(&open),
            Forge::Gitea => gitea::existing_pull_request(&open, request),
        };
        let call = match (&existing, forge) {
            (Some((number, _)), Forge::Github) => github::update_pull_request(request, number),
            (Some((iid, _)), Forge::Gitlab) => gitlab::update_pull_request(request, iid),
            (Some((number, _)), Forge::Gitea) => gitea::update_pull_request(request, number),
            (None, Forge::Github) => github::create_pull_request(request),
            (None, Forge::Gitlab) => gitlab::create_pull_request(request),
            (None, Forge::Gitea) => gitea::create_pull_request(request),
        };
        let answer = self.send(forge, &request.repo, call).await?;
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
                answered: None,
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

/// What sending to a forge Gantry has no credentials for means; never worth a retry.
fn no_token(forge: Forge) -> ForgeError {
    ForgeError {
        message: format!("no {forge} token configured"),
        retry_after: None,
        answered: None,
    }
}

/// Reads an answer: a success's JSON body (or `null`), or what went wrong and whether to
/// try again.
fn answer(
    forge: Forge,
    code: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Result<serde_json::Value, ForgeError> {
    if code.is_success() {
        return Ok(serde_json::from_slice(body).unwrap_or(serde_json::Value::Null));
    }
    let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
    Err(ForgeError {
        message: format!("{forge} answered {code}: {}", text.trim()),
        retry_after: retry_after(code, headers),
        answered: Some(code),
    })
}

/// When a failed request is worth repeating: server errors, conflicts and rate limits, honouring
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
    // GitLab answers 409 when another update of the same commit status holds its lock.
    if code.is_server_error() || code == reqwest::StatusCode::CONFLICT {
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
