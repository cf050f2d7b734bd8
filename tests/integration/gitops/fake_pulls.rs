//! A stateful fake of the pull/merge request APIs of GitHub, GitLab and Gitea (wiremock).
//! It checks method, path, auth header and required body fields as the real APIs do, refuses
//! a second open pull request from one head branch (GitHub answers 422), keeps every pull
//! request it holds, and records any request it did not expect.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Github,
    Gitlab,
    Gitea,
}

pub const TOKEN: &str = "forge-pr-token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
}

#[derive(Default)]
struct State {
    pulls: Vec<PullRequest>,
    unexpected: Vec<String>,
}

#[derive(Clone)]
pub struct FakePulls {
    kind: Kind,
    /// `owner/name` (GitLab: the project's full path).
    repo: String,
    state: Arc<Mutex<State>>,
}

impl FakePulls {
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

    pub fn pulls(&self) -> Vec<PullRequest> {
        self.state.lock().unwrap().pulls.clone()
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.state.lock().unwrap().unexpected.clone()
    }

    fn url(&self, number: u64) -> String {
        match self.kind {
            Kind::Gitlab => format!(
                "https://gitlab.test/{}/-/merge_requests/{number}",
                self.repo
            ),
            _ => format!("https://forge.test/{}/pull/{number}", self.repo),
        }
    }

    fn authorized(&self, request: &Request) -> bool {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match self.kind {
            Kind::Github => header("authorization") == Some(format!("Bearer {TOKEN}")),
            Kind::Gitlab => header("private-token").as_deref() == Some(TOKEN),
            Kind::Gitea => header("authorization") == Some(format!("token {TOKEN}")),
        }
    }

    fn as_json(&self, pr: &PullRequest) -> Value {
        match self.kind {
            Kind::Gitlab => json!({
                "iid": pr.number, "web_url": self.url(pr.number), "title": pr.title,
                "source_branch": pr.head, "target_branch": pr.base, "state": "opened",
            }),
            _ => json!({
                "number": pr.number, "html_url": self.url(pr.number), "title": pr.title,
                "head": { "ref": pr.head }, "base": { "ref": pr.base }, "state": "open",
            }),
        }
    }

    fn answer(&self, request: &Request) -> Result<(u16, Value), String> {
        if !self.authorized(request) {
            return Ok((401, json!({ "message": "Bad credentials" })));
        }
        let method = request.method.as_str();
        let path = request.url.path();
        let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let (list_path, item_prefix) = match self.kind {
            Kind::Github | Kind::Gitea => (
                format!("/repos/{}/pulls", self.repo),
                format!("/repos/{}/pulls/", self.repo),
            ),
            Kind::Gitlab => {
                let project: String =
                    url::form_urlencoded::byte_serialize(self.repo.as_bytes()).collect();
                (
                    format!("/projects/{project}/merge_requests"),
                    format!("/projects/{project}/merge_requests/"),
                )
            }
        };
        // wiremock hands the path decoded once; GitLab's project id stays encoded in it.
        let raw_path = request
            .url
            .as_str()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let raw_path = raw_path
            .split_once("://")
            .map_or(raw_path.clone(), |(_, rest)| {
                rest.find('/')
                    .map_or(String::new(), |i| rest[i..].to_owned())
            });
        let path = if self.kind == Kind::Gitlab {
            raw_path.as_str()
        } else {
            path
        };
        let mut state = self.state.lock().unwrap();
        if method == "GET" && path == list_path {
            let open: Vec<Value> = state
                .pulls
                .iter()
                .filter(|pr| match self.kind {
                    Kind::Github => {
                        let owner = self.repo.split('/').next().unwrap();
                        param("head") == Some(format!("{owner}:{}", pr.head))
                            && param("base").is_none_or(|b| b == pr.base)
                    }
                    Kind::Gitlab => {
                        param("source_branch") == Some(pr.head.clone())
                            && param("target_branch").is_none_or(|b| b == pr.base)
                    }
                    Kind::Gitea => true,
                })
                .map(|pr| self.as_json(pr))
                .collect();
            return Ok((200, Value::Array(open)));
        }
        if method == "POST" && path == list_path {
            let (head, base, text) = match self.kind {
                Kind::Gitlab => (
                    field("source_branch"),
                    field("target_branch"),
                    field("description"),
                ),
                _ => (field("head"), field("base"), field("body")),
            };
            let (Some(head), Some(base), Some(title)) = (head, base, field("title")) else {
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
            let answer = self.as_json(&pr);
            state.pulls.push(pr);
            return Ok((201, answer));
        }
        let update = matches!(
            (self.kind, method),
            (Kind::Gitlab, "PUT") | (Kind::Github | Kind::Gitea, "PATCH")
        );
        if update && let Some(number) = path.strip_prefix(&item_prefix) {
            let number: u64 = number.parse().map_err(|_| format!("{method} {path}"))?;
            let description = if self.kind == Kind::Gitlab {
                "description"
            } else {
                "body"
            };
            let Some(pr) = state.pulls.iter_mut().find(|pr| pr.number == number) else {
                return Ok((404, json!({ "message": "Not Found" })));
            };
            if let Some(title) = field("title") {
                pr.title = title;
            }
            if let Some(body) = field(description) {
                pr.body = body;
            }
            let pr = pr.clone();
            return Ok((200, self.as_json(&pr)));
        }
        Err(format!("{method} {path}"))
    }
}

impl Respond for FakePulls {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match self.answer(request) {
            Ok((code, body)) => ResponseTemplate::new(code).set_body_json(body),
            Err(unexpected) => {
                self.state.lock().unwrap().unexpected.push(unexpected);
                ResponseTemplate::new(404).set_body_json(json!({ "message": "Not Found" }))
            }
        }
    }
}
