//! One stateful fake of the forge APIs Gantry calls, served by wiremock: commit statuses on
//! GitHub, GitLab and Gitea, pull (merge) requests on all three, and, as GitHub Enterprise
//! seen by a GitHub App, installation tokens and check runs. It checks each request the way
//! the real API does (path, auth header, body fields, allowed states, GitHub's
//! 140-character description limit, one open pull request per head branch), keeps what it
//! accepted, and records anything it did not expect, so a test asserts on its state at the
//! end and on nothing unexpected having been called.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gantry::domain::Forge;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

/// The API token every fake forge takes.
pub const TOKEN: &str = "forge-api-token";
/// Installation tokens the fake GitHub hands to the app.
pub const INSTALLATION_TOKEN: &str = "ghs_fake_installation_token";
const INSTALLATION_ID: u64 = 4242;
/// Where GitHub Enterprise Server serves its REST API; the app fake answers only there.
pub const ENTERPRISE_PREFIX: &str = "/api/v3";

/// One accepted commit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub state: String,
    pub description: String,
    pub target_url: String,
    /// The ref it was posted for (GitLab's `ref`; empty elsewhere).
    pub git_ref: String,
}

/// One pull (merge) request the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
}

/// What the fake knows of the GitHub App it serves.
struct App {
    id: u64,
    /// The app's public key (PKCS#1 DER), to check its tokens' signatures.
    public_key: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// Check run id (from 1) → the check run after each accepted create or update.
    check_runs: BTreeMap<u64, Vec<Value>>,
    /// (sha, context) → every accepted status, in order.
    statuses: BTreeMap<(String, String), Vec<Accepted>>,
    /// GitLab's jobs per (sha, ref, name): the state of each, the last one current.
    gitlab_jobs: BTreeMap<(String, String, String), Vec<String>>,
    pulls: Vec<PullRequest>,
    unexpected: Vec<String>,
    /// Answers to give before behaving: (status code, extra headers).
    scripted: Vec<(u16, Vec<(String, String)>)>,
    requests: usize,
}

struct Shared {
    forge: Forge,
    /// `owner/name` (GitLab: the project's full path).
    repo: String,
    app: Option<App>,
    state: Mutex<State>,
}

/// The fake and the server it answers on.
pub struct FakeForge {
    shared: Arc<Shared>,
    server: MockServer,
}

impl FakeForge {
    /// `forge`'s API, holding the one repo `repo`, taking [`TOKEN`].
    pub async fn start(forge: Forge, repo: &str) -> Self {
        Self::serve(Shared {
            forge,
            repo: repo.to_owned(),
            app: None,
            state: Mutex::default(),
        })
        .await
    }

    /// GitHub Enterprise (API under [`ENTERPRISE_PREFIX`]) as a GitHub App `app_id` (whose
    /// PKCS#1 PEM key is at `key_file`) sees it.
    pub async fn start_app(repo: &str, app_id: u64, key_file: &std::path::Path) -> Self {
        use base64::Engine as _;
        let pem = std::fs::read_to_string(key_file).unwrap();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .unwrap();
        let key = ring::signature::RsaKeyPair::from_der(&der).unwrap();
        Self::serve(Shared {
            forge: Forge::Github,
            repo: repo.to_owned(),
            app: Some(App {
                id: app_id,
                public_key: key.public().as_ref().to_vec(),
            }),
            state: Mutex::default(),
        })
        .await
    }

    async fn serve(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(Responder(shared.clone()))
            .mount(&server)
            .await;
        Self { shared, server }
    }

    /// The API root to configure as the forge's `api_url`.
    pub fn api_url(&self) -> String {
        format!("{}{}", self.server.uri(), self.shared.api_prefix())
    }

    /// The check runs named `name` on `sha`, each as it was after every accepted create or
    /// update, in order.
    pub fn check_runs(&self, sha: &str, name: &str) -> Vec<Vec<Value>> {
        self.state()
            .check_runs
            .values()
            .filter(|history| {
                history
                    .last()
                    .is_some_and(|run| run["head_sha"] == sha && run["name"] == name)
            })
            .cloned()
            .collect()
    }

    /// The next answers, before the fake behaves normally again.
    pub fn script(&self, answers: Vec<(u16, Vec<(&str, String)>)>) {
        self.state().scripted = answers
            .into_iter()
            .map(|(code, headers)| {
                (
                    code,
                    headers
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            })
            .collect();
    }

    pub fn statuses(&self, sha: &str, context: &str) -> Vec<Accepted> {
        self.state()
            .statuses
            .get(&(sha.to_owned(), context.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// The statuses accepted for `sha`, `context` and one ref (GitLab keys them by ref).
    pub fn statuses_on(&self, sha: &str, git_ref: &str, context: &str) -> Vec<Accepted> {
        self.statuses(sha, context)
            .into_iter()
            .filter(|accepted| accepted.git_ref == git_ref)
            .collect()
    }

    pub fn contexts(&self) -> Vec<(String, String)> {
        self.state().statuses.keys().cloned().collect()
    }

    pub fn pulls(&self) -> Vec<PullRequest> {
        self.state().pulls.clone()
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.state().unexpected.clone()
    }

    pub fn requests(&self) -> usize {
        self.state().requests
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }
}

impl Shared {
    /// Where the forge serves its API under the server's root.
    fn api_prefix(&self) -> &'static str {
        match (self.forge, &self.app) {
            (Forge::Github, Some(_)) => ENTERPRISE_PREFIX,
            (Forge::Github, None) => "",
            (Forge::Gitlab, _) => "/api/v4",
            (Forge::Gitea, _) => "/api/v1",
        }
    }

    /// The repo's part of API paths: `repos/owner/name`, GitLab's `projects/<encoded path>`.
    fn repo_path(&self) -> String {
        match self.forge {
            Forge::Github | Forge::Gitea => format!("/repos/{}", self.repo),
            Forge::Gitlab => format!(
                "/projects/{}",
                url::form_urlencoded::byte_serialize(self.repo.as_bytes()).collect::<String>()
            ),
        }
    }
}

/// Answers requests on behalf of the fake.
#[derive(Clone)]
struct Responder(Arc<Shared>);

/// A request, read once: method, raw path under the API root (GitLab's project id stays
/// URL-encoded, as it is on the wire), query, headers and JSON body.
struct Call {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    authorization: Option<String>,
    private_token: Option<String>,
    user_agent: bool,
}

impl Call {
    fn param(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn field(&self, name: &str) -> Option<String> {
        self.body
            .as_ref()
            .and_then(|body| body.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// An answer: status code and JSON body, or a request the fake did not expect (answered
/// with the code, and recorded).
type Answer = Result<(u16, Value), (u16, String)>;

fn refuse(code: u16, why: impl Into<String>) -> Answer {
    Err((code, why.into()))
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let mut state = shared.state.lock().unwrap();
        state.requests += 1;
        if !state.scripted.is_empty() {
            let (code, headers) = state.scripted.remove(0);
            let mut response =
                ResponseTemplate::new(code).set_body_json(json!({ "message": "scripted" }));
            for (name, value) in headers {
                response = response.insert_header(name.as_str(), value.as_str());
            }
            return response;
        }
        let answer = match call_of(request, shared.api_prefix()) {
            Err(path) => refuse(404, format!("{path} is not under {}", shared.api_prefix())),
            Ok(call) => match &shared.app {
                Some(app) => shared.answer_app(app, &call, &mut state),
                None => shared.answer(&call, &mut state),
            },
        };
        match answer {
            Ok((code, body)) => ResponseTemplate::new(code).set_body_json(body),
            Err((code, why)) => {
                state.unexpected.push(why.clone());
                ResponseTemplate::new(code).set_body_json(json!({ "message": why }))
            }
        }
    }
}

/// Reads `request`; `Err` with its path when it is not under `prefix`.
fn call_of(request: &Request, prefix: &str) -> Result<Call, String> {
    let url = request.url.as_str();
    let after_host = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let raw_path = after_host.split('?').next().unwrap_or_default();
    let path = raw_path
        .strip_prefix(prefix)
        .ok_or_else(|| raw_path.to_owned())?;
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(Call {
        method: request.method.as_str().to_owned(),
        path: path.to_owned(),
        query: request.url.query_pairs().into_owned().collect(),
        body: serde_json::from_slice(&request.body).ok(),
        authorization: header("authorization"),
        private_token: header("private-token"),
        user_agent: header("user-agent").is_some(),
    })
}

impl Shared {
    fn answer(&self, call: &Call, state: &mut State) -> Answer {
        let authorized = match self.forge {
            Forge::Github => call.authorization == Some(format!("Bearer {TOKEN}")),
            Forge::Gitlab => call.private_token.as_deref() == Some(TOKEN),
            Forge::Gitea => call.authorization == Some(format!("token {TOKEN}")),
        };
        if !authorized {
            return Ok((401, json!({ "message": "Bad credentials" })));
        }
        if self.forge == Forge::Github && !call.user_agent {
            return refuse(403, "GitHub requires a User-Agent");
        }
        let Some(rest) = call.path.strip_prefix(&self.repo_path()) else {
            return refuse(404, format!("no repo at {}", call.path));
        };
        if let Some(sha) = rest.strip_prefix("/statuses/") {
            return self.status(call, sha, state);
        }
        let pulls = match self.forge {
            Forge::Gitlab => "/merge_requests",
            Forge::Github | Forge::Gitea => "/pulls",
        };
        match rest.strip_prefix(pulls) {
            Some("") => self.pulls(call, state),
            Some(item) => match item.strip_prefix('/').and_then(|n| n.parse().ok()) {
                Some(number) => self.update_pull(call, number, state),
                None => refuse(404, format!("{} {}", call.method, call.path)),
            },
            None => refuse(404, format!("{} {}", call.method, call.path)),
        }
    }

    /// `POST …/statuses/{sha}`.
    fn status(&self, call: &Call, sha: &str, state: &mut State) -> Answer {
        if call.method != "POST" {
            return refuse(405, format!("{} {}", call.method, call.path));
        }
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return refuse(422, format!("not a commit: {sha}"));
        }
        let Some(body) = &call.body else {
            return refuse(400, "body is not JSON");
        };
        let (context_key, allowed): (&str, &[&str]) = match self.forge {
            Forge::Github => ("context", &["error", "failure", "pending", "success"]),
            Forge::Gitea => (
                "context",
                &["pending", "success", "error", "failure", "warning"],
            ),
            Forge::Gitlab => (
                "name",
                &[
                    "pending", "running", "success", "failed", "canceled", "skipped",
                ],
            ),
        };
        let Some(status_state) = call
            .field("state")
            .filter(|s| allowed.contains(&s.as_str()))
        else {
            return refuse(
                400,
                format!("state does not have a valid value: {}", body["state"]),
            );
        };
        let (Some(context), Some(description), Some(target_url)) = (
            call.field(context_key),
            call.field("description"),
            call.field("target_url"),
        ) else {
            return refuse(
                422,
                format!("missing {context_key}, description or target_url: {body}"),
            );
        };
        if self.forge == Forge::Github && description.chars().count() > 140 {
            return refuse(
                422,
                "Validation Failed: description is too long (maximum is 140 characters)",
            );
        }
        let git_ref = call.field("ref").unwrap_or_default();
        if self.forge == Forge::Gitlab {
            if git_ref.is_empty() {
                return refuse(400, "ref is missing");
            }
            for (field, value) in [
                ("ref", &git_ref),
                ("description", &description),
                ("target_url", &target_url),
            ] {
                if value.chars().count() > 255 {
                    return refuse(
                        400,
                        format!("{field} is too long (maximum is 255 characters)"),
                    );
                }
            }
            if !target_url.starts_with("http://") && !target_url.starts_with("https://") {
                return refuse(400, "target_url is not an http(s) URL");
            }
            let jobs = state
                .gitlab_jobs
                .entry((sha.to_owned(), git_ref.clone(), context.clone()))
                .or_default();
            if let Err(refusal) = gitlab_transition(jobs, &status_state) {
                return refuse(400, refusal);
            }
        }
        state
            .statuses
            .entry((sha.to_owned(), context.clone()))
            .or_default()
            .push(Accepted {
                state: status_state.clone(),
                description,
                target_url,
                git_ref,
            });
        Ok((201, json!({ "state": status_state, "context": context })))
    }

    fn pull_url(&self, number: u64) -> String {
        match self.forge {
            Forge::Gitlab => format!(
                "https://gitlab.test/{}/-/merge_requests/{number}",
                self.repo
            ),
            Forge::Github | Forge::Gitea => {
                format!("https://forge.test/{}/pull/{number}", self.repo)
            }
        }
    }

    fn pull_json(&self, pr: &PullRequest) -> Value {
        match self.forge {
            Forge::Gitlab => json!({
                "iid": pr.number, "web_url": self.pull_url(pr.number), "title": pr.title,
                "source_branch": pr.head, "target_branch": pr.base, "state": "opened",
            }),
            Forge::Github | Forge::Gitea => json!({
                "number": pr.number, "html_url": self.pull_url(pr.number), "title": pr.title,
                "head": { "ref": pr.head }, "base": { "ref": pr.base }, "state": "open",
            }),
        }
    }

    /// `GET` (open ones, filtered as the forge filters) or `POST` (open one) on the list.
    fn pulls(&self, call: &Call, state: &mut State) -> Answer {
        match call.method.as_str() {
            "GET" => {
                let open: Vec<Value> = state
                    .pulls
                    .iter()
                    .filter(|pr| match self.forge {
                        Forge::Github => {
                            let owner = self.repo.split('/').next().unwrap();
                            call.param("head") == Some(format!("{owner}:{}", pr.head))
                                && call.param("base").is_none_or(|b| b == pr.base)
                        }
                        Forge::Gitlab => {
                            call.param("source_branch") == Some(pr.head.clone())
                                && call.param("target_branch").is_none_or(|b| b == pr.base)
                        }
                        // Gitea's list has no head filter.
                        Forge::Gitea => true,
                    })
                    .map(|pr| self.pull_json(pr))
                    .collect();
                Ok((200, Value::Array(open)))
            }
            "POST" => {
                let (head, base, text) = match self.forge {
                    Forge::Gitlab => (
                        call.field("source_branch"),
                        call.field("target_branch"),
                        call.field("description"),
                    ),
                    Forge::Github | Forge::Gitea => {
                        (call.field("head"), call.field("base"), call.field("body"))
                    }
                };
                let (Some(head), Some(base), Some(title)) = (head, base, call.field("title"))
                else {
                    return Ok((422, json!({ "message": "Validation Failed" })));
                };
                if state.pulls.iter().any(|pr| pr.head == head) {
                    return Ok((422, json!({ "message": "A pull request already exists" })));
                }
                let pr = PullRequest {
                    number: state.pulls.len() as u64 + 1,
                    head,
                    base,
                    title,
                    body: text.unwrap_or_default(),
                };
                let answer = self.pull_json(&pr);
                state.pulls.push(pr);
                Ok((201, answer))
            }
            _ => refuse(405, format!("{} {}", call.method, call.path)),
        }
    }

    /// `PATCH` (GitHub, Gitea) or `PUT` (GitLab) of one pull request's title and body.
    fn update_pull(&self, call: &Call, number: u64, state: &mut State) -> Answer {
        let (method, description) = match self.forge {
            Forge::Gitlab => ("PUT", "description"),
            Forge::Github | Forge::Gitea => ("PATCH", "body"),
        };
        if call.method != method {
            return refuse(405, format!("{} {}", call.method, call.path));
        }
        let Some(pr) = state.pulls.iter_mut().find(|pr| pr.number == number) else {
            return Ok((404, json!({ "message": "Not Found" })));
        };
        if let Some(title) = call.field("title") {
            pr.title = title;
        }
        if let Some(body) = call.field(description) {
            pr.body = body;
        }
        let pr = pr.clone();
        Ok((200, self.pull_json(&pr)))
    }

    /// The app's side of GitHub: its installation, installation tokens and check runs.
    fn answer_app(&self, app: &App, call: &Call, state: &mut State) -> Answer {
        let repo_prefix = self.repo_path();
        let (method, path) = (call.method.as_str(), call.path.as_str());
        if method == "GET" && path == format!("{repo_prefix}/installation")
            || method == "POST"
                && path == format!("/app/installations/{INSTALLATION_ID}/access_tokens")
        {
            if let Err(why) = app_token_ok(app, call.authorization.clone()) {
                return refuse(401, why);
            }
            if method == "GET" {
                return Ok((200, json!({ "id": INSTALLATION_ID })));
            }
            let expires = chrono::Utc::now() + chrono::Duration::hours(1);
            return Ok((
                201,
                json!({
                    "token": INSTALLATION_TOKEN,
                    "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "permissions": { "checks": "write", "contents": "read", "metadata": "read" },
                    "repository_selection": "selected",
                }),
            ));
        }
        let check_runs = format!("{repo_prefix}/check-runs");
        let updating = match (method, path.strip_prefix(&check_runs)) {
            ("POST", Some("")) => None,
            ("PATCH", Some(id)) => match id.strip_prefix('/').and_then(|id| id.parse().ok()) {
                Some(id) => Some(id),
                None => return refuse(404, format!("no check run {id}")),
            },
            _ => return refuse(404, format!("{method} {path} (an app reports check runs)")),
        };
        if call.authorization != Some(format!("Bearer {INSTALLATION_TOKEN}")) {
            return refuse(401, "check runs need the installation token");
        }
        let Some(body) = call.body.clone() else {
            return refuse(400, "body is not JSON");
        };
        // An update changes the fields it names; the check run must be valid afterwards.
        let (id, merged) = match updating {
            None => {
                if body["head_sha"].as_str().is_none_or(|sha| sha.len() != 40) {
                    return refuse(422, format!("head_sha is required: {body}"));
                }
                (state.check_runs.len() as u64 + 1, body)
            }
            Some(id) => {
                let Some(run) = state.check_runs.get(&id) else {
                    return refuse(404, format!("no check run {id}"));
                };
                let mut merged = run.last().cloned().unwrap_or_default();
                for (key, value) in body.as_object().into_iter().flatten() {
                    merged[key] = value.clone();
                }
                if body.get("status").is_some() && body["status"] != "completed" {
                    merged.as_object_mut().unwrap().remove("conclusion");
                }
                (id, merged)
            }
        };
        if let Err(why) = check_run_valid(&merged) {
            return refuse(422, format!("Validation Failed: {why}: {merged}"));
        }
        state.check_runs.entry(id).or_default().push(merged);
        let code = if updating.is_some() { 200 } else { 201 };
        Ok((code, json!({ "id": id })))
    }
}

/// Checks the app's JWT as GitHub does: RS256 by the app's key, issued by the app, at
/// most ten minutes long, not expired.
fn app_token_ok(app: &App, authorization: Option<String>) -> Result<(), String> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or("no bearer token")?;
    let (message, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    let signature = engine
        .decode(signature)
        .map_err(|_| "bad signature encoding")?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &app.public_key,
    )
    .verify(message.as_bytes(), &signature)
    .map_err(|_| "signature does not verify")?;
    let (header, claims) = message.split_once('.').ok_or("not a JWT")?;
    let header: Value = serde_json::from_slice(&engine.decode(header).map_err(|_| "header")?)
        .map_err(|_| "header")?;
    let claims: Value = serde_json::from_slice(&engine.decode(claims).map_err(|_| "claims")?)
        .map_err(|_| "claims")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    if header["alg"] != "RS256"
        // GitHub takes the app id as a string or a number.
        || (claims["iss"].as_str() != Some(app.id.to_string().as_str())
            && claims["iss"].as_u64() != Some(app.id))
        || exp <= now
        || iat > now
        || exp - iat > 600
    {
        return Err(format!("JWT refused: {header} {claims}"));
    }
    Ok(())
}

/// GitLab's state machine for one commit status (its jobs for a commit, ref and name): a
/// job is updated only while it is pending or running, and refuses an event its state does
/// not allow, as GitLab's `CommitStatus` does; after a final state, a post starts a new job.
fn gitlab_transition(jobs: &mut Vec<String>, posted: &str) -> Result<(), String> {
    let current = jobs
        .last()
        .filter(|state| matches!(state.as_str(), "pending" | "running"))
        .cloned();
    let refused = |event: &str, from: &str| {
        format!(
            "Cannot transition status via :{event} from :{from} (Reason(s): Status cannot \
             transition via \"{event}\")"
        )
    };
    match (current.as_deref(), posted) {
        (Some("pending"), "pending") => Err(refused("enqueue", "pending")),
        (Some("running"), "pending") => Err(refused("enqueue", "running")),
        (Some("running"), "running") => Err(refused("run", "running")),
        (Some("running"), "skipped") => Err(refused("skip", "running")),
        (Some(_), _) => {
            *jobs.last_mut().unwrap() = posted.to_owned();
            Ok(())
        }
        (None, _) => {
            jobs.push(posted.to_owned());
            Ok(())
        }
    }
}

/// A check run as GitHub validates it: a name, a status that fits its conclusion, an output
/// with a title and a summary, well-formed annotations, an http details URL.
fn check_run_valid(run: &Value) -> Result<(), &'static str> {
    let text = |pointer: &str| run.pointer(pointer).and_then(Value::as_str);
    if text("/name").is_none() {
        return Err("name is required");
    }
    let conclusion = text("/conclusion");
    let status_ok = match text("/status") {
        Some("queued" | "in_progress") => conclusion.is_none(),
        Some("completed") => conclusion.is_some_and(|c| {
            [
                "action_required",
                "cancelled",
                "failure",
                "neutral",
                "success",
                "skipped",
                "timed_out",
            ]
            .contains(&c)
        }),
        _ => false,
    };
    if !status_ok {
        return Err("status and conclusion do not fit");
    }
    if text("/output/title").is_none() || text("/output/summary").is_none() {
        return Err("output needs a title and a summary");
    }
    let annotations_ok = run["output"]["annotations"].as_array().is_none_or(|all| {
        all.iter().all(|a| {
            a["path"].is_string()
                && a["start_line"].is_u64()
                && a["end_line"].is_u64()
                && a["message"].is_string()
                && ["notice", "warning", "failure"]
                    .contains(&a["annotation_level"].as_str().unwrap_or(""))
        })
    });
    if !annotations_ok {
        return Err("an annotation is malformed");
    }
    if !text("/details_url").is_some_and(|u| u.starts_with("http")) {
        return Err("details_url must be an http URL");
    }
    Ok(())
}
