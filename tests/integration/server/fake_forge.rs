//! A stateful fake of the GitHub, GitLab and Gitea status APIs, served by wiremock. It checks
//! each request the way the real API does (path, auth header, body fields, allowed states,
//! GitHub's 140-character description limit), keeps every status it accepted per (commit,
//! context), and records anything it did not expect. As a GitHub App's GitHub it also checks
//! the app's signed token, hands out installation tokens, and keeps check runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Github,
    Gitlab,
    Gitea,
}

pub const TOKEN: &str = "forge-api-token";

/// One accepted status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub state: String,
    pub description: String,
    pub target_url: String,
}

/// Installation tokens the fake GitHub hands to the app.
pub const INSTALLATION_TOKEN: &str = "ghs_fake_installation_token";
const INSTALLATION_ID: u64 = 4242;

/// Where GitHub Enterprise Server serves its REST API; the app fake answers only there.
pub const ENTERPRISE_PREFIX: &str = "/api/v3";

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
    unexpected: Vec<String>,
    /// Answers to give before behaving: (status code, extra headers).
    scripted: Vec<(u16, Vec<(String, String)>)>,
    requests: usize,
}

#[derive(Clone)]
pub struct FakeForge {
    kind: Kind,
    repo: String,
    state: Arc<Mutex<State>>,
    app: Option<Arc<App>>,
}

impl FakeForge {
    pub async fn start(kind: Kind, repo: &str) -> (Self, MockServer) {
        let server = MockServer::start().await;
        let fake = Self {
            kind,
            repo: repo.to_owned(),
            state: Arc::default(),
            app: None,
        };
        Mock::given(any())
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        (fake, server)
    }

    /// GitHub Enterprise (API under [`ENTERPRISE_PREFIX`]) as a GitHub App `app_id` (whose
    /// PKCS#1 PEM key is at `key_file`) sees it.
    pub async fn start_app(
        repo: &str,
        app_id: u64,
        key_file: &std::path::Path,
    ) -> (Self, MockServer) {
        use base64::Engine as _;
        let pem = std::fs::read_to_string(key_file).unwrap();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .unwrap();
        let key = ring::signature::RsaKeyPair::from_der(&der).unwrap();
        let server = MockServer::start().await;
        let fake = Self {
            kind: Kind::Github,
            repo: repo.to_owned(),
            state: Arc::default(),
            app: Some(Arc::new(App {
                id: app_id,
                public_key: key.public().as_ref().to_vec(),
            })),
        };
        Mock::given(any())
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        (fake, server)
    }

    /// The check runs named `name` on `sha`, each as it was after every accepted create or
    /// update, in order.
    pub fn check_runs(&self, sha: &str, name: &str) -> Vec<Vec<Value>> {
        self.state
            .lock()
            .unwrap()
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

    /// Checks the app's JWT as GitHub does: RS256 by the app's key, issued by the app, at
    /// most ten minutes long, not expired.
    fn app_token_ok(&self, app: &App, authorization: Option<String>) -> Result<(), String> {
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

    fn handle_app(&self, app: &App, request: &Request, state: &mut State) -> ResponseTemplate {
        let Some(path) = request.url.path().strip_prefix(ENTERPRISE_PREFIX) else {
            let path = request.url.path().to_owned();
            return self.error(
                state,
                404,
                format!("{path} is not under {ENTERPRISE_PREFIX}"),
            );
        };
        let path = path.to_owned();
        let method = request.method.as_str().to_owned();
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let repo_prefix = format!("/repos/{}", self.repo);
        if method == "GET" && path == format!("{repo_prefix}/installation")
            || method == "POST"
                && path == format!("/app/installations/{INSTALLATION_ID}/access_tokens")
        {
            if let Err(why) = self.app_token_ok(app, authorization) {
                return self.error(state, 401, why);
            }
            if method == "GET" {
                return ResponseTemplate::new(200).set_body_json(json!({ "id": INSTALLATION_ID }));
            }
            let expires = chrono::Utc::now() + chrono::Duration::hours(1);
            return ResponseTemplate::new(201).set_body_json(json!({
                "token": INSTALLATION_TOKEN,
                "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "permissions": { "checks": "write", "contents": "read", "metadata": "read" },
                "repository_selection": "selected",
            }));
        }
        let check_runs = format!("{repo_prefix}/check-runs");
        let updating = match (method.as_str(), path.strip_prefix(&check_runs)) {
            ("POST", Some("")) => None,
            ("PATCH", Some(id)) => match id.strip_prefix('/').and_then(|id| id.parse().ok()) {
                Some(id) => Some(id),
                None => return self.error(state, 404, format!("no check run {id}")),
            },
            _ => {
                return self.error(
                    state,
                    404,
                    format!("{method} {path} (an app reports check runs)"),
                );
            }
        };
        if authorization != Some(format!("Bearer {INSTALLATION_TOKEN}")) {
            return self.error(state, 401, "check runs need the installation token".into());
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return self.error(state, 400, "body is not JSON".into());
        };
        // An update changes the fields it names; the check run must be valid afterwards.
        let (id, merged) = match updating {
            None => {
                if body["head_sha"].as_str().is_none_or(|sha| sha.len() != 40) {
                    return self.error(state, 422, format!("head_sha is required: {body}"));
                }
                (state.check_runs.len() as u64 + 1, body)
            }
            Some(id) => {
                let Some(run) = state.check_runs.get(&id) else {
                    return self.error(state, 404, format!("no check run {id}"));
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
            return self.error(state, 422, format!("Validation Failed: {why}: {merged}"));
        }
        state.check_runs.entry(id).or_default().push(merged);
        let code = if updating.is_some() { 200 } else { 201 };
        ResponseTemplate::new(code).set_body_json(json!({ "id": id }))
    }

    /// The next answers, before the fake behaves normally again.
    pub fn script(&self, answers: Vec<(u16, Vec<(&str, String)>)>) {
        let mut state = self.state.lock().unwrap();
        state.scripted = answers
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
        let state = self.state.lock().unwrap();
        state
            .statuses
            .get(&(sha.to_owned(), context.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn contexts(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .unwrap()
            .statuses
            .keys()
            .cloned()
            .collect()
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.state.lock().unwrap().unexpected.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    fn error(&self, state: &mut State, code: u16, why: String) -> ResponseTemplate {
        state.unexpected.push(why.clone());
        ResponseTemplate::new(code).set_body_json(json!({ "message": why }))
    }

    fn handle(&self, request: &Request, state: &mut State) -> ResponseTemplate {
        let path = request.url.path().to_owned();
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (repo_part, sha) = match self.kind {
            Kind::Github | Kind::Gitea => {
                let base = if self.kind == Kind::Gitea {
                    "/api/v1/repos/"
                } else {
                    "/repos/"
                };
                let Some(rest) = path.strip_prefix(base) else {
                    return self.error(state, 404, format!("unknown path {path}"));
                };
                let Some((repo, sha)) = rest.split_once("/statuses/") else {
                    return self.error(state, 404, format!("unknown path {path}"));
                };
                (repo.to_owned(), sha.to_owned())
            }
            Kind::Gitlab => {
                let Some(rest) = request.url.as_str().split("/api/v4/projects/").nth(1) else {
                    return self.error(state, 404, format!("unknown path {path}"));
                };
                let Some((project, sha)) = rest.split_once("/statuses/") else {
                    return self.error(state, 404, format!("unknown path {path}"));
                };
                // GitLab names a project by its URL-encoded path.
                if project.contains('/') {
                    return self.error(
                        state,
                        404,
                        format!("project id not URL-encoded: {project}"),
                    );
                }
                (project.replace("%2F", "/"), sha.to_owned())
            }
        };
        if request.method.as_str() != "POST" {
            return self.error(state, 405, format!("{} {path}", request.method));
        }
        let auth_ok = match self.kind {
            Kind::Github => header("authorization") == Some(format!("Bearer {TOKEN}")),
            Kind::Gitlab => header("private-token") == Some(TOKEN.to_owned()),
            Kind::Gitea => header("authorization") == Some(format!("token {TOKEN}")),
        };
        if !auth_ok {
            return self.error(state, 401, "bad credentials".into());
        }
        if self.kind == Kind::Github && header("user-agent").is_none() {
            return self.error(state, 403, "GitHub requires a User-Agent".into());
        }
        if repo_part != self.repo {
            return self.error(state, 404, format!("no repo {repo_part}"));
        }
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.error(state, 422, format!("not a commit: {sha}"));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return self.error(state, 400, "body is not JSON".into());
        };
        let text = |key: &str| body[key].as_str().map(str::to_owned);
        let (context_key, allowed): (&str, &[&str]) = match self.kind {
            Kind::Github => ("context", &["error", "failure", "pending", "success"]),
            Kind::Gitea => (
                "context",
                &["pending", "success", "error", "failure", "warning"],
            ),
            Kind::Gitlab => (
                "name",
                &[
                    "pending", "running", "success", "failed", "canceled", "skipped",
                ],
            ),
        };
        let Some(status_state) = text("state").filter(|s| allowed.contains(&s.as_str())) else {
            return self.error(
                state,
                400,
                format!("state does not have a valid value: {}", body["state"]),
            );
        };
        let (Some(context), Some(description), Some(target_url)) =
            (text(context_key), text("description"), text("target_url"))
        else {
            return self.error(
                state,
                422,
                format!("missing {context_key}, description or target_url: {body}"),
            );
        };
        if self.kind == Kind::Github && description.chars().count() > 140 {
            return self.error(
                state,
                422,
                "Validation Failed: description is too long (maximum is 140 characters)".into(),
            );
        }
        if self.kind == Kind::Gitlab && text("ref").is_none() {
            return self.error(state, 400, "ref is missing".into());
        }
        state
            .statuses
            .entry((sha.clone(), context.clone()))
            .or_default()
            .push(Accepted {
                state: status_state.clone(),
                description,
                target_url,
            });
        ResponseTemplate::new(201)
            .set_body_json(json!({ "state": status_state, "context": context }))
    }
}

impl Respond for FakeForge {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
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
        match &self.app {
            Some(app) => self.handle_app(app, request, &mut state),
            None => self.handle(request, &mut state),
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
