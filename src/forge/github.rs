//! GitHub, through octocrab: commit statuses with a token; with a GitHub App, check runs
//! (with annotations) authenticated per installation, octocrab signing the app's token and
//! minting and renewing installation tokens. `api_url` points it at GitHub Enterprise.
//!
//! Requests go through octocrab's raw calls rather than its typed ones, so that the
//! answer's status and rate-limit headers reach the reporter's retry logic like the other
//! forges' do, and on the same reqwest client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::secrecy::ExposeSecret;
use reqwest::Method;
use serde_json::json;

use super::{ApiCall, ForgeError, PullRequest};
use crate::config::GithubSettings;
use crate::domain::{CommitStatus, Forge, Secret, StatusState};

/// The REST API version Gantry is written against.
const API_VERSION: &str = "2022-11-28";
/// A token handed to git must outlive the fetch it is for.
const GIT_TOKEN_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

pub(super) struct Github {
    auth: Auth,
}

enum Auth {
    /// The configured token, which git uses too.
    Token(Octocrab, Secret),
    App {
        app: Octocrab,
        installations: Mutex<Installations>,
    },
}

/// Installation clients are shared, never cloned: each keeps its own token cache.
#[derive(Default)]
struct Installations {
    by_repo: HashMap<String, u64>,
    clients: HashMap<u64, Arc<Octocrab>>,
}

impl Github {
    /// The client the `[github]` settings ask for: an app (`app_id` + `private_key_file`),
    /// a token, or none.
    pub fn from_settings(
        settings: &GithubSettings,
        http: reqwest::Client,
    ) -> anyhow::Result<Option<Self>> {
        let builder = || -> anyhow::Result<octocrab::OctocrabBuilder<_, _, _, _>> {
            Ok(Octocrab::builder()
                .base_uri(settings.api_url.as_str())
                .with_context(|| format!("github.api_url `{}`", settings.api_url))?
                .add_header(
                    reqwest::header::ACCEPT,
                    "application/vnd.github+json".into(),
                )
                .add_header(
                    reqwest::header::HeaderName::from_static("x-github-api-version"),
                    API_VERSION.into(),
                ))
        };
        let auth = match (settings.app_id, &settings.private_key_file, &settings.token) {
            (Some(app_id), Some(file), _) => {
                let pem = std::fs::read(file)
                    .with_context(|| format!("reading github.private_key_file {file}"))?;
                let key = octocrab::EncodingKey::from_rsa_pem(&pem)
                    .map_err(anyhow::Error::from)
                    .and_then(|key| can_sign(&key).map(|()| key))
                    .with_context(|| {
                        format!("github.private_key_file {file} holds no usable RSA private key")
                    })?;
                Auth::App {
                    app: builder()?
                        .app(AppId(app_id), key)
                        .build_with_reqwest(http)
                        .context("building the GitHub App client")?,
                    installations: Mutex::default(),
                }
            }
            (None, None, Some(token)) => Auth::Token(
                builder()?
                    .personal_token(token.expose().to_owned())
                    .build_with_reqwest(http)
                    .context("building the GitHub client")?,
                token.clone(),
            ),
            (None, None, None) => return Ok(None),
            _ => anyhow::bail!("github.app_id and github.private_key_file go together"),
        };
        Ok(Some(Self { auth }))
    }

    /// A commit status; with an app a check run, created, or updated in place when
    /// `check_run` names the pipeline's (a vanished one is created again). Returns the
    /// check run's id.
    pub async fn set_status(
        &self,
        status: &CommitStatus,
        check_run: Option<&str>,
    ) -> Result<Option<String>, ForgeError> {
        if let Auth::Token(..) = self.auth {
            self.send(status.repo.as_str(), status_call(status)).await?;
            return Ok(None);
        }
        let updated = match check_run {
            Some(id) => match self
                .send(status.repo.as_str(), check_run_update(status, id))
                .await
            {
                Err(err) if err.answered == Some(reqwest::StatusCode::NOT_FOUND) => None,
                answer => Some(answer?),
            },
            None => None,
        };
        let answer = match updated {
            Some(answer) => answer,
            None => {
                self.send(status.repo.as_str(), check_run_create(status))
                    .await?
            }
        };
        Ok(answer
            .get("id")
            .and_then(|id| id.as_u64())
            .map(|id| id.to_string()))
    }

    /// The token git uses for `repo`: the configured one, or an installation token that
    /// stays valid for a while yet.
    pub async fn git_token(&self, repo: &str) -> Result<Secret, ForgeError> {
        match &self.auth {
            Auth::Token(_, token) => Ok(token.clone()),
            Auth::App { app, installations } => {
                let client = installation(app, installations, repo).await?;
                let token = client
                    .installation_token_with_buffer(GIT_TOKEN_MARGIN)
                    .await
                    .map_err(octocrab_error)?;
                Ok(Secret::new(token.expose_secret()))
            }
        }
    }

    /// Sends `call` on behalf of `repo`.
    pub async fn send(&self, repo: &str, call: ApiCall) -> Result<serde_json::Value, ForgeError> {
        match &self.auth {
            Auth::Token(client, _) => execute(client, call).await,
            Auth::App { app, installations } => {
                execute(&*installation(app, installations, repo).await?, call).await
            }
        }
    }
}

/// The app's client for the installation that covers `repo`, found once per repo.
async fn installation(
    app: &Octocrab,
    installations: &Mutex<Installations>,
    repo: &str,
) -> Result<Arc<Octocrab>, ForgeError> {
    let key = repo.to_ascii_lowercase();
    let known = {
        let installations = installations.lock().unwrap_or_else(|e| e.into_inner());
        installations
            .by_repo
            .get(&key)
            .and_then(|id| installations.clients.get(id))
            .cloned()
    };
    if let Some(client) = known {
        return Ok(client);
    }
    let found = execute(
        app,
        ApiCall::get(format!("/repos/{repo}/installation"), &[]),
    )
    .await?;
    let id = found
        .get("id")
        .and_then(|id| id.as_u64())
        .ok_or_else(|| ForgeError {
            message: format!("github answered an installation of {repo} without an id"),
            retry_after: Some(Duration::ZERO),
            answered: None,
        })?;
    let mut installations = installations.lock().unwrap_or_else(|e| e.into_inner());
    installations.by_repo.insert(key, id);
    if let Some(client) = installations.clients.get(&id) {
        return Ok(client.clone());
    }
    let client = Arc::new(
        app.installation(InstallationId(id))
            .map_err(octocrab_error)?,
    );
    installations.clients.insert(id, client.clone());
    Ok(client)
}

/// Whether an app key signs: a key octocrab cannot use fails at start-up, not at the first
/// status.
fn can_sign(key: &octocrab::EncodingKey) -> anyhow::Result<()> {
    use octocrab::jsonwebtoken::{Algorithm, Header, encode};
    encode(
        &Header::new(Algorithm::RS256),
        &json!({ "check": true }),
        key,
    )?;
    Ok(())
}

/// Sends one call through octocrab and reads the answer like any forge's.
async fn execute(client: &Octocrab, call: ApiCall) -> Result<serde_json::Value, ForgeError> {
    let body = call.body.as_ref();
    let response = match call.method {
        Method::GET => client._get(call.path).await,
        Method::POST => client._post(call.path, body).await,
        Method::PATCH => client._patch(call.path, body).await,
        Method::PUT => client._put(call.path, body).await,
        other => {
            return Err(ForgeError {
                message: format!("no {other} calls to GitHub"),
                retry_after: None,
                answered: None,
            });
        }
    }
    .map_err(octocrab_error)?;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map_err(octocrab_error)?.to_bytes();
    super::answer(Forge::Github, parts.status, &parts.headers, &bytes)
}

/// What octocrab could not do itself: GitHub's refusals (of an installation token) keep
/// their code; anything else is the network, worth another try.
fn octocrab_error(err: octocrab::Error) -> ForgeError {
    match &err {
        octocrab::Error::GitHub { source, .. } => {
            let code = source.status_code;
            ForgeError {
                message: format!("github answered {code}: {}", source.message),
                retry_after: (code.is_server_error()
                    || code == reqwest::StatusCode::TOO_MANY_REQUESTS)
                    .then_some(Duration::ZERO),
                answered: Some(code),
            }
        }
        _ => ForgeError {
            message: format!("github unreachable: {err}"),
            retry_after: Some(Duration::ZERO),
            answered: None,
        },
    }
}

/// GitHub (and Gitea, which copied its API) know no `running` or `canceled`: running shows
/// as pending, canceled as error (the description says which).
fn state(state: StatusState) -> &'static str {
    match state {
        StatusState::Pending | StatusState::Running => "pending",
        StatusState::Success => "success",
        StatusState::Failure => "failure",
        StatusState::Error | StatusState::Canceled => "error",
    }
}

/// `POST /repos/{repo}/statuses/{sha}`; Gitea takes the same.
pub(super) fn status_call(status: &CommitStatus) -> ApiCall {
    ApiCall::post(
        format!("/repos/{}/statuses/{}", status.repo, status.sha),
        json!({
            "state": state(status.state),
            "target_url": status.target_url,
            "description": status.description,
            "context": status.context,
        }),
    )
}

/// `GET /repos/{repo}/pulls?head=OWNER:BRANCH&state=open`: GitHub filters by head itself.
pub(super) fn find_pull_request(pr: &PullRequest) -> ApiCall {
    let owner = pr.repo.split('/').next().unwrap_or_default();
    ApiCall::get(
        format!("/repos/{}/pulls", pr.repo),
        &[
            ("state", "open"),
            ("head", &format!("{owner}:{}", pr.head)),
            ("base", &pr.base),
        ],
    )
}

/// The number and address of the first open pull request listed.
pub(super) fn existing_pull_request(listed: &serde_json::Value) -> Option<(String, String)> {
    let first = listed.as_array()?.first()?;
    Some((
        first.get("number")?.as_u64()?.to_string(),
        first.get("html_url")?.as_str()?.to_owned(),
    ))
}

/// `PATCH /repos/{repo}/pulls/{number}`; Gitea takes the same.
pub(super) fn update_pull_request(pr: &PullRequest, number: &str) -> ApiCall {
    ApiCall::patch(
        format!("/repos/{}/pulls/{number}", pr.repo),
        json!({ "title": pr.title, "body": pr.body }),
    )
}

/// `POST /repos/{repo}/pulls`; Gitea takes the same.
pub(super) fn create_pull_request(pr: &PullRequest) -> ApiCall {
    ApiCall::post(
        format!("/repos/{}/pulls", pr.repo),
        json!({ "title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body }),
    )
}

/// `POST /repos/{repo}/check-runs`: a pipeline's check run, at its first update.
fn check_run_create(status: &CommitStatus) -> ApiCall {
    let mut body = check_run_body(status);
    body["head_sha"] = json!(status.sha);
    ApiCall::post(format!("/repos/{}/check-runs", status.repo), body)
}

/// `PATCH /repos/{repo}/check-runs/{id}`: the pipeline's later states, on the same check run.
fn check_run_update(status: &CommitStatus, id: &str) -> ApiCall {
    ApiCall::patch(
        format!("/repos/{}/check-runs/{id}", status.repo),
        check_run_body(status),
    )
}

/// What creating and updating a check run share: its name, link, state and output.
fn check_run_body(status: &CommitStatus) -> serde_json::Value {
    let (run_status, conclusion) = match status.state {
        StatusState::Pending => ("queued", None),
        StatusState::Running => ("in_progress", None),
        StatusState::Success => ("completed", Some("success")),
        StatusState::Failure | StatusState::Error => ("completed", Some("failure")),
        StatusState::Canceled => ("completed", Some("cancelled")),
    };
    let annotations: Vec<serde_json::Value> = match conclusion {
        Some("failure") => annotation(&status.description).into_iter().collect(),
        _ => Vec::new(),
    };
    let mut body = json!({
        "name": status.context,
        "details_url": status.target_url,
        "status": run_status,
        "output": {
            "title": status.description,
            "summary": format!("{}\n\n[The run in Gantry]({})", status.description, status.target_url),
            "annotations": annotations,
        },
    });
    if let Some(conclusion) = conclusion {
        body["conclusion"] = json!(conclusion);
    }
    body
}

/// An annotation at the place a description names (`file:line:col: message`, as pipeline
/// file errors read), so the error shows on the file's line in the pull request.
fn annotation(description: &str) -> Option<serde_json::Value> {
    let mut parts = description.splitn(4, ':');
    let (path, line, column, message) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let line: u64 = line.parse().ok()?;
    let column: u64 = column.parse().ok()?;
    if path.is_empty() || path.contains(' ') || line == 0 {
        return None;
    }
    Some(json!({
        "path": path,
        "start_line": line,
        "end_line": line,
        "start_column": column,
        "end_column": column,
        "annotation_level": "failure",
        "message": message.trim(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_become_annotations_and_other_descriptions_do_not() {
        let found =
            annotation(".gantry/web.yml:8:5: unknown key `need`; did you mean `needs`?").unwrap();
        assert_eq!(found["path"], ".gantry/web.yml");
        assert_eq!(
            (found["start_line"].as_u64(), found["start_column"].as_u64()),
            (Some(8), Some(5))
        );
        assert_eq!(
            found["message"],
            "unknown key `need`; did you mean `needs`?"
        );
        assert!(annotation("test: exit code 2").is_none());
        assert!(annotation("build: registry.example.com:5000: unauthorized").is_none());
    }

    #[test]
    fn an_app_key_that_cannot_sign_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.pem");
        std::fs::write(
            &file,
            "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        let settings = GithubSettings {
            app_id: Some(1),
            private_key_file: Some(file.display().to_string()),
            ..GithubSettings::default()
        };
        super::super::install_crypto_provider();
        let err = Github::from_settings(&settings, reqwest::Client::new())
            .err()
            .expect("a broken key is refused");
        assert!(
            format!("{err:#}").contains("holds no usable RSA private key"),
            "{err:#}"
        );
    }

    #[test]
    fn pull_request_lookups_encode_the_branch() {
        let pr = PullRequest {
            repo: "acme/config".into(),
            base: "main".into(),
            head: "gantry/bump/main-web&x=1".into(),
            title: String::new(),
            body: String::new(),
        };
        assert_eq!(
            find_pull_request(&pr).path,
            "/repos/acme/config/pulls?state=open&head=acme%3Agantry%2Fbump%2Fmain-web%26x%3D1&base=main"
        );
    }
}
