//! A stateful fake of the GitHub, GitLab and Gitea status APIs, served by wiremock. It checks
//! each request the way the real API does (path, auth header, body fields, allowed states,
//! GitHub's 140-character description limit), keeps every status it accepted per (commit,
//! context), and records anything it did not expect.

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

#[derive(Default)]
struct State {
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
}

impl FakeForge {
    pub async fn start(kind: Kind, repo: &str) -> (Self, MockServer) {
        let server = MockServer::start().await;
        let fake = Self {
            kind,
            repo: repo.to_owned(),
            state: Arc::default(),
        };
        Mock::given(any())
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        (fake, server)
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
        self.handle(request, &mut state)
    }
}
