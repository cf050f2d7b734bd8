//! Spawning a real Gantry on port 0 and building correctly (or wrongly) signed deliveries.

use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gantry::config::Settings;
use gantry::domain::Forge;
pub use gantry::startup::{Application, Role};
use sqlx::Connection;

pub use crate::support::config::{TestConfig, quoted};
pub use crate::support::deliveries::{Delivery, fixture, fixture_dir};

pub const GITHUB_SECRET: &str = "github-secret";
pub const GITLAB_TOKEN: &str = "gitlab-token";
pub const GITLAB_SIGNING_KEY: &[u8] = b"gitlab signing key";
pub const GITEA_SECRET: &str = "gitea-secret";
pub const API_TOKEN: &str = "test-api-token";

/// Every repo named in the fixture payloads, so their pushes and pull requests queue runs.
const FIXTURE_REPOS: &[(&str, &str)] = &[
    ("github", "Codertocat/Hello-World"),
    ("github", "bradrydzewski/drone-test-go"),
    ("github", "baxterthehacker/public-repo"),
    ("github", "binkkatal/sample_app"),
    ("github", "wings-software/meet-git-sync-test"),
    ("gitlab", "gitlab-org/hello-world"),
    ("gitlab", "mike/diaspora"),
    ("gitlab", "jsmith/example"),
    ("gitlab", "gitlabhq/gitlab-test"),
    ("gitlab", "test/woodpecker"),
    ("gitlab", "group1/group2/group3/grp2repo"),
    ("gitlab", "exm-namespace/example-project"),
    ("gitlab", "rathod.meetsatish/meet"),
    ("gitea", "gogits/hello-world"),
    ("gitea", "jcitizen/my-repo"),
    ("gitea", "example/example"),
    ("gitea", "test_it/test_ci_thing"),
    ("gitea", "gordon/hello-world"),
    ("gitea", "Test-CI/multi-line-secrets"),
    ("gitea", "meisam/woodpecktester"),
    ("github", "runatlantis/atlantis-tests"),
    ("github", "jessesuen/test-repo"),
    ("github", "6543/oxiduct"),
    ("github", "6543/test_ci_tmp"),
    ("gitlab", "quan.hoang/atlantis-example"),
    ("gitlab", "bdangit/quickstart-generic"),
    ("gitlab", "demoaccount2-commits-group/test_ci_tmp"),
    ("gitlab", "anbraten/woodpecker"),
    ("gitlab", "repo-org/repo-name"),
    ("gitlab", "dibyom/triggers"),
];

/// The config every test app starts from: secrets for each forge and the fixture repos.
pub fn config(store_url: &str) -> TestConfig {
    let config = TestConfig::new(store_url)
        .set("server", "max_body_bytes", &MAX_BODY.to_string())
        .text("server", "api_token", API_TOKEN)
        .forge(Forge::Github, GITHUB_SECRET, None)
        // A secret being rotated out: a delivery signed with either is taken.
        .set(
            "github",
            "webhook_secrets",
            &format!("[\"rotated-out\", {}]", quoted(GITHUB_SECRET)),
        )
        .forge(Forge::Gitlab, GITLAB_TOKEN, None)
        .set(
            "gitlab",
            "signing_tokens",
            &format!("[\"whsec_{}\"]", BASE64.encode(GITLAB_SIGNING_KEY)),
        )
        .forge(Forge::Gitea, GITEA_SECRET, None);
    FIXTURE_REPOS.iter().fold(config, |config, (forge, name)| {
        config.repo(forge.parse().unwrap(), name, &[])
    })
}

/// Small enough that a test can exceed it cheaply, large enough for every fixture.
pub const MAX_BODY: usize = 256 * 1024;

pub fn settings_for(dir: &Path, store_url: &str) -> Settings {
    config(store_url).settings(dir)
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store location: a SQLite file in `dir`, or a new PostgreSQL database on
/// the server named by `GANTRY_TEST_POSTGRES_URL` (which `.ci/run` starts).
pub async fn fresh_store_url(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("gantry.db").display()),
        Backend::Postgres => {
            let admin = std::env::var("GANTRY_TEST_POSTGRES_URL").expect(
                "GANTRY_TEST_POSTGRES_URL must name a PostgreSQL server for the store tests \
                 (scripts/test.sh starts one)",
            );
            let name = format!("gantry_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connecting to the test PostgreSQL server");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("creating a test database");
            let mut url = url::Url::parse(&admin).expect("GANTRY_TEST_POSTGRES_URL is a URL");
            url.set_path(&name);
            url.to_string()
        }
    }
}

/// A running Gantry, served from a background task for the length of one test.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// Holds the store file of an app this test spawned.
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// An intake-only app: deliveries stay queued, so tests can look at them.
    pub async fn spawn() -> Self {
        Self::spawn_as(Role::Intake).await
    }

    pub async fn spawn_as(role: Role) -> Self {
        gantry::forge::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
        let settings = settings_for(dir.path(), &url);
        let app = Application::build(settings, role)
            .await
            .expect("app builds");
        let address = format!("http://{}", app.address());
        tokio::spawn(app.run());
        Self {
            address,
            client: reqwest::Client::new(),
            _dir: Some(dir),
        }
    }

    /// Talks to a Gantry running elsewhere (a child process).
    pub fn attach(address: String) -> Self {
        gantry::forge::install_crypto_provider();
        Self {
            address,
            client: reqwest::Client::new(),
            _dir: None,
        }
    }

    pub async fn post_hook(&self, forge: &str, request: &Delivery) -> reqwest::Response {
        request.post_to(&self.client, &self.address, forge).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request reaches the server");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Number of runs in the store, read through the API.
    pub async fn run_count(&self) -> usize {
        let (status, body) = self.get_json("/api/runs?limit=500").await;
        assert_eq!(status, 200, "{body}");
        body["runs"].as_array().expect("runs array").len()
    }

    /// Asserts the server still answers after whatever a test threw at it.
    pub async fn assert_healthy(&self) {
        let (status, _) = self.get_json("/healthz").await;
        assert_eq!(status, 200);
    }
}

/// A correctly signed GitHub delivery under this config's secret.
pub fn github(event: &str, body: &[u8]) -> Delivery {
    Delivery::signed(Forge::Github, GITHUB_SECRET, event, body)
}

pub fn gitlab(event: &str, body: &[u8]) -> Delivery {
    Delivery::signed(Forge::Gitlab, GITLAB_TOKEN, event, body)
}

/// A GitLab delivery signed with the HMAC scheme (no plain token), sent at `sent_at`.
pub fn gitlab_signed(event: &str, body: &[u8], sent_at: SystemTime) -> Delivery {
    Delivery::gitlab_hmac(GITLAB_SIGNING_KEY, event, body, sent_at)
}

pub fn gitea(event: &str, body: &[u8]) -> Delivery {
    Delivery::signed(Forge::Gitea, GITEA_SECRET, event, body)
}

/// A correctly signed delivery for `forge`.
pub fn signed(forge: &str, event: &str, body: &[u8]) -> Delivery {
    match forge.parse().expect("a forge name") {
        Forge::Github => github(event, body),
        Forge::Gitlab => gitlab(event, body),
        Forge::Gitea => gitea(event, body),
    }
}
