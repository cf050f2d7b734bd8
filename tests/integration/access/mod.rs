//! Who may see and do what, through HTTP against the real binary: visitors, readers,
//! writers, strangers, admins and the API token, on public, internal and private repos of
//! each forge, signed in through a stateful fake of the forge's OAuth and permission API.

mod rules;
mod sign_in;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;

use gantry::domain::Forge;
use serde_json::{Value, json};

use crate::support::config::{TestConfig, quoted, sqlite_in};
use crate::support::deliveries::Delivery;
use crate::support::fake_identity::{CLIENT_ID, CLIENT_SECRET, FakeIdentity, Person};
use crate::support::process::{LogLines, spawn_gantry_logged};

const SECRET: &str = "access-webhook-secret";
const API_TOKEN: &str = "access-api-token";
const METRICS_TOKEN: &str = "access-metrics-token";
pub const SESSION_KEY: &str = "a session key of at least thirty-two characters";

/// The three repos every test server knows, by their visibility on the forge.
pub const PUBLIC: &str = "acme/public-app";
pub const INTERNAL: &str = "acme/internal-app";
pub const PRIVATE: &str = "acme/private-app";

/// A loopback port nothing listens on now: the server's address must be known before it
/// starts, since its OAuth callback URL is registered with the forge.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Gantry (intake only: runs stay queued) whose people sign in with `forge` (the fake),
/// holding one queued run per repo.
pub struct Site {
    pub forge: Forge,
    pub fake: FakeIdentity,
    pub address: String,
    pub log: LogLines,
    pub runs: BTreeMap<&'static str, i64>,
    child: Child,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Site {
    pub async fn start(forge: Forge, edit: impl FnOnce(TestConfig) -> TestConfig) -> Self {
        Self::start_with(forge, &[], edit).await
    }

    /// A site whose three `[[repos]]` entries also hold `repo_lines`.
    pub async fn start_with(
        forge: Forge,
        repo_lines: &[&str],
        edit: impl FnOnce(TestConfig) -> TestConfig,
    ) -> Self {
        let fake = FakeIdentity::start(forge).await;
        fake.make_public(PUBLIC);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        fake.register_callback(&format!("{address}/login/{forge}/callback"));
        let section = format!("auth.{forge}");
        let mut config = TestConfig::new(&sqlite_in(dir.path()))
            .unset("auth", "anonymous")
            .text("server", "listen", &format!("127.0.0.1:{port}"))
            .text("server", "public_url", &address)
            .text("server", "api_token", API_TOKEN)
            .text("server", "metrics_token", METRICS_TOKEN)
            .text("auth", "session_key", SESSION_KEY)
            .set(
                "auth",
                "admins",
                &format!("[{}]", quoted(&format!("{forge}:boss"))),
            )
            .forge(forge, SECRET, None)
            .text(forge.as_str(), "api_url", &fake.api_url())
            .text(&section, "client_id", CLIENT_ID)
            .text(&section, "client_secret", CLIENT_SECRET)
            .text(&section, "web_url", &fake.web_url());
        for repo in [PUBLIC, INTERNAL, PRIVATE] {
            config = config.repo(forge, repo, repo_lines);
        }
        let config = edit(config).write(dir.path());
        let (child, address, log) = spawn_gantry_logged(&["--role", "intake"], &config);
        let mut site = Self {
            forge,
            fake,
            address,
            log,
            runs: BTreeMap::new(),
            child,
            config,
            dir,
        };
        for (repo, visibility) in [
            (PUBLIC, "public"),
            (INTERNAL, "internal"),
            (PRIVATE, "private"),
        ] {
            let id = site.push(repo, visibility).await;
            site.runs.insert(repo, id);
        }
        site
    }

    /// Stops the server and starts it again on the same store with `edit`ed config.
    pub fn restart(&mut self, edit: impl FnOnce(String) -> String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, edit(text)).unwrap();
        let (child, address, log) = spawn_gantry_logged(&["--role", "intake"], &self.config);
        assert_eq!(address, self.address);
        self.child = child;
        self.log = log;
    }

    /// Delivers a push to `repo`, whose payload says it is `visibility`; returns the run.
    pub async fn push(&self, repo: &str, visibility: &str) -> i64 {
        let sha = format!("{:040x}", rand_u64());
        let body = match self.forge {
            Forge::Gitlab => json!({
                "object_kind": "push", "ref": "refs/heads/main",
                "before": "0000000000000000000000000000000000000000", "after": sha,
                "checkout_sha": sha, "user_username": "dev", "total_commits_count": 0,
                "commits": [],
                "project": {
                    "path_with_namespace": repo,
                    "git_http_url": format!("https://gitlab.invalid/{repo}.git"),
                    "web_url": format!("https://gitlab.invalid/{repo}"),
                    "visibility_level": match visibility { "public" => 20, "internal" => 10, _ => 0 },
                },
            }),
            Forge::Github | Forge::Gitea => json!({
                "ref": "refs/heads/main",
                "before": "0000000000000000000000000000000000000000",
                "after": sha, "created": true, "deleted": false, "forced": false,
                "commits": [], "head_commit": { "id": sha, "message": "change" },
                "repository": {
                    "full_name": repo,
                    "clone_url": format!("https://forge.invalid/{repo}.git"),
                    "html_url": format!("https://forge.invalid/{repo}"),
                    "private": visibility != "public",
                    "internal": visibility == "internal",
                    "visibility": visibility,
                },
                "sender": { "login": "dev" },
            }),
        };
        let event = match self.forge {
            Forge::Gitlab => "Push Hook",
            _ => "push",
        };
        let delivery = Delivery::signed(
            self.forge,
            SECRET,
            event,
            &serde_json::to_vec(&body).unwrap(),
        );
        let response = delivery.post(&reqwest::Client::new(), &self.address).await;
        assert_eq!(response.status().as_u16(), 202);
        response.json::<Value>().await.unwrap()["run_id"]
            .as_i64()
            .unwrap()
    }

    pub fn run(&self, repo: &str) -> i64 {
        self.runs[repo]
    }

    /// A browser without cookies.
    pub fn visitor(&self) -> Browser {
        Browser::new(&self.address)
    }

    /// A browser signed in as `person` through the forge's OAuth, landing on `next`.
    pub async fn signed_in(&self, person: &Person) -> Browser {
        self.fake.sign_in_as(person);
        let mut browser = self.visitor();
        let landed = browser.sign_in(self.forge, "/").await;
        assert_eq!(
            landed,
            (303, Some("/".to_owned())),
            "signing in as {}",
            person.login
        );
        browser
    }

    /// Every line logged so far, joined.
    pub fn logged(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
}

/// An HTTP client that keeps cookies as a browser does and follows no redirect by itself.
pub struct Browser {
    address: String,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    /// Every answer's headers and body, for checks that no secret ever reaches one.
    pub seen: Vec<String>,
}

/// An answer: status, `Location`, and body.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Browser {
    fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A restarted server must not meet a connection of the one before.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            seen: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends `request` with the cookies, and keeps the cookies the answer sets.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("Cookie", self.cookie_header())
        };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let removed = text.contains("Max-Age=0") || value.is_empty();
            if removed {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let headers = format!("{:?}", response.headers());
        let answer = Answer {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|value| value.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap_or_default(),
        };
        self.seen.push(format!("{headers}\n{}", answer.body));
        answer
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.address)
        }
    }

    /// The status of `GET path`, without reading the body (an event stream never ends).
    pub async fn status(&mut self, path: &str) -> u16 {
        let mut request = self.client.get(self.url(path));
        if !self.cookies.is_empty() {
            request = request.header("Cookie", self.cookie_header());
        }
        request.send().await.unwrap().status().as_u16()
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let request = self.client.get(self.url(path));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, csrf: Option<&str>) -> Answer {
        let mut request = self.client.post(self.url(path));
        if let Some(token) = csrf {
            request = request.header("X-CSRF-Token", token);
        }
        self.send(request).await
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Goes through sign-in with `forge` from `/login/{forge}?next=…` up to Gantry's answer
    /// to the callback: its status and `Location`.
    pub async fn sign_in(&mut self, forge: Forge, next: &str) -> (u16, Option<String>) {
        let start = format!(
            "/login/{forge}?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish()
        );
        let to_forge = self.get(&start).await;
        assert_eq!(to_forge.status, 303, "{}", to_forge.body);
        let at_forge = self.get(&to_forge.location.unwrap()).await;
        assert_eq!(
            at_forge.status, 302,
            "the forge's authorize page: {}",
            at_forge.body
        );
        let back = self.get(&at_forge.location.unwrap()).await;
        (back.status, back.location)
    }

    /// The CSRF token of the signed-in session, read from a page's `<meta>`.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/").await;
        let marker = "<meta name=\"csrf-token\" content=\"";
        let start = page.body.find(marker).expect("pages carry the CSRF token") + marker.len();
        page.body[start..start + page.body[start..].find('"').unwrap()].to_owned()
    }

    /// The ids of the runs `/api/runs` lists.
    pub async fn listed(&mut self) -> Vec<i64> {
        let answer = self.get("/api/runs").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let mut ids: Vec<i64> = answer.json()["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["id"].as_i64().unwrap())
            .collect();
        ids.sort();
        ids
    }
}
