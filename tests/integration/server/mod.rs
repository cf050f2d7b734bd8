//! The whole loop through HTTP: a signed push webhook for a repo served from a local bare
//! git repo runs its pipeline on the real Docker engine, visible in the API; and a server
//! killed mid-run cleans up and takes its run back when it starts again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gantry::domain::Forge;
use serde_json::{Value, json};

use crate::support::config::{TestConfig, quoted, sqlite_in};
use crate::support::deliveries::Delivery;
use crate::support::git::{Repo, git};
use crate::support::process::spawn_gantry;

mod approval;
mod badges;
mod bumps;
mod caches;
mod deploys;
mod fleet;
mod logs;
mod manual;
mod matrix;
mod pages;
mod pictures;
mod schedules;
mod services;
mod sign_in;
mod statuses;

const SECRET: &str = "loop-secret";
const REPO: &str = "acme/app";
const API_TOKEN: &str = "server-api-token";

fn image() -> String {
    std::env::var("GANTRY_TEST_IMAGE").expect("GANTRY_TEST_IMAGE names the local busybox image")
}

/// The app repo as the forge serves it: `.gantry/ci.yml` holding `pipeline` (`IMAGE`
/// stands for the test image) and a README.
fn app_repo(pipeline: &str) -> Repo {
    Repo::new(&[
        (".gantry/ci.yml", &pipeline.replace("IMAGE", &image())),
        ("README", "the app\n"),
    ])
}

/// [`app_repo`] with `more` pipeline files (path, text with `IMAGE`), committed.
fn app_repo_with(pipeline: &str, more: &[(&str, &str)]) -> Repo {
    let forge = app_repo(pipeline);
    for (path, text) in more {
        std::fs::write(forge.work().join(path), text.replace("IMAGE", &image())).unwrap();
    }
    git(forge.work(), &["add", "."]);
    git(
        forge.work(),
        &["commit", "-q", "--allow-empty", "-m", "more pipelines"],
    );
    forge
}

/// The config of a server in `dir` whose one repo, GitHub's `REPO`, is `forge`, with a
/// secret for its stages.
fn config(dir: &Path, forge: &Repo) -> TestConfig {
    TestConfig::new(&sqlite_in(dir))
        .text("server", "api_token", API_TOKEN)
        .text("runner", "pull", "never")
        .forge(Forge::Github, SECRET, None)
        .repo(
            Forge::Github,
            REPO,
            &[
                &format!("clone_url = {}", quoted(&forge.url())),
                "secrets = { TOKEN = \"t0ps3cret\" }",
            ],
        )
}

/// A folder with the server's config (edited by `edit`) and, once it runs, its store.
fn config_dir(
    forge: &Repo,
    edit: impl FnOnce(TestConfig) -> TestConfig,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = edit(config(dir.path(), forge)).write(dir.path());
    (dir, path)
}

/// A GitHub push delivery for `branch` at `sha`.
fn push_payload(branch: &str, sha: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "created": true,
        "deleted": false,
        "forced": false,
        "commits": [],
        "head_commit": { "id": sha, "message": message },
        "repository": {
            "full_name": REPO,
            "clone_url": "https://github.invalid/acme/app.git",
            "html_url": "https://github.invalid/acme/app"
        },
        "sender": { "login": "dev" }
    }))
    .unwrap()
}

struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(config: &Path) -> Self {
        let (child, address) = spawn_gantry(&[], config);
        Self { child, address }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn push(&self, body: Vec<u8>) -> i64 {
        self.deliver(Delivery::signed(Forge::Github, SECRET, "push", &body))
            .await
    }

    /// Posts `delivery`, which must queue a run, and returns the run's id.
    async fn deliver(&self, delivery: Delivery) -> i64 {
        let response = delivery.post(&reqwest::Client::new(), &self.address).await;
        assert_eq!(response.status().as_u16(), 202);
        response.json::<Value>().await.unwrap()["run_id"]
            .as_i64()
            .unwrap()
    }

    async fn run(&self, id: i64) -> Value {
        reqwest::get(format!("{}/api/runs/{id}", self.address))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The body of `GET path` (`/metrics`, a page), whatever its status.
    async fn text(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample of `/metrics` (`name{labels}` exactly as printed), if any.
    async fn metric(&self, sample: &str) -> Option<f64> {
        self.text("/metrics")
            .await
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    async fn log(&self, id: i64) -> String {
        self.text(&format!("/api/runs/{id}/log")).await
    }

    /// Waits until the run reaches `done` (a predicate on the run's JSON).
    async fn wait_for(&self, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let run = self.run(id).await;
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never got {what}: {run:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn finished(run: &Value) -> bool {
    !matches!(
        run["state"].as_str(),
        Some("blocked" | "queued" | "running")
    )
}

const PIPELINE: &str = "stages:
  - name: check
    image: IMAGE
    secrets: [TOKEN]
    run: |
      cat README
      echo \"branch=$GANTRY_BRANCH\"
      echo \"token=$TOKEN\"
  - name: manifests
    validate: { paths: ['.gantry/*.yml'] }
";

#[tokio::test]
async fn a_signed_push_runs_its_pipeline_to_success() {
    let forge = app_repo(PIPELINE);
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);

    let id = server.push(push_payload("main", &sha, "add the app")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    assert_eq!(run["commit_sha"], sha.as_str());
    let pipeline = &run["pipelines"][0];
    assert_eq!(
        (pipeline["pipeline"].as_str(), pipeline["state"].as_str()),
        (Some("ci"), Some("success"))
    );
    let stages: Vec<(&str, &str)> = pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(stages, [("check", "success"), ("manifests", "success")]);
    let log = server.log(id).await;
    assert!(log.contains("[ci/check] the app\n"), "{log}");
    assert!(log.contains("[ci/check] branch=main\n"), "{log}");
    assert!(
        log.contains("[ci/check] token=****\n"),
        "the secret must be masked: {log}"
    );
    assert!(!log.contains("t0ps3cret"));
    let runs = server
        .metric("gantry_runs_total{repo=\"acme/app\",result=\"success\"}")
        .await;
    assert_eq!(runs, Some(1.0));
    let stages = server
        .metric("gantry_stage_duration_seconds_count{result=\"success\"}")
        .await;
    assert_eq!(stages, Some(2.0), "check and manifests");
}

#[tokio::test]
async fn a_branch_named_with_shell_characters_is_checked_out_and_runs_nothing_else() {
    let branch = "weird/$(touch${IFS}pwned);echo'&|\"<>`id`";
    let forge = app_repo(
        "stages:\n  - name: show\n    image: IMAGE\n    run: |\n      printf '%s\\n' \"$GANTRY_BRANCH\"\n      ls\n",
    );
    let sha = forge.push(branch);
    let (dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);

    let id = server.push(push_payload(branch, &sha, "weird")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let log = server.log(id).await;
    assert_eq!(
        log,
        format!("[ci/show] {branch}\n[ci/show] README\n"),
        "nothing from the branch name ran"
    );
    assert!(!Path::new("pwned").exists() && !dir.path().join("pwned").exists());
}

#[tokio::test]
async fn skip_ci_in_the_commit_message_skips_the_run() {
    let forge = app_repo(PIPELINE);
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let id = server
        .push(push_payload("main", &sha, "docs only [skip ci]"))
        .await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "skipped");
    assert_eq!(run["description"], "[skip ci] in the commit message");
}

#[tokio::test]
async fn a_broken_pipeline_file_fails_only_its_pipeline_with_its_location() {
    let forge = app_repo(PIPELINE);
    std::fs::write(
        forge.work().join(".gantry/broken.yml"),
        "stages:\n  - name: x\n    imgae: y\n",
    )
    .unwrap();
    git(forge.work(), &["add", "."]);
    git(forge.work(), &["commit", "-qm", "broken"]);
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let id = server.push(push_payload("main", &sha, "broken")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "error", "{run:#}");
    let pipelines = run["pipelines"].as_array().unwrap();
    let broken = pipelines
        .iter()
        .find(|p| p["pipeline"] == "broken")
        .unwrap();
    assert_eq!(broken["state"], "error");
    assert_eq!(
        broken["description"],
        ".gantry/broken.yml:3:5: unknown key `imgae`; did you mean `image`?"
    );
    let ci = pipelines
        .iter()
        .find(|p| p["pipeline"] == "ci")
        .unwrap_or_else(|| panic!("{run:#}"));
    assert_eq!(
        ci["state"], "success",
        "the other pipeline still ran: {run:#}"
    );
}

/// The installation id the server stored, which prefixes its run labels.
async fn installation(db: &Path) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("SELECT id FROM installation")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0)
}

/// Containers labelled with a run, as `docker ps` sees them: all, or only running ones (a
/// stage's, not the never-started one that uploads the checkout into the workspace).
fn containers_of(label: &str, running: bool) -> Vec<String> {
    let mut command = Command::new("docker");
    command.args([
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=gantry.run={label}"),
    ]);
    if running {
        command.args(["--filter", "status=running"]);
    }
    let output = command.output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_killed_server_cleans_up_and_takes_its_run_back_once() {
    let forge = app_repo("stages:\n  - name: wait\n    image: IMAGE\n    run: sleep 600\n");
    let sha = forge.push("main");
    let (dir, config_path) = config_dir(&forge, |config| config);

    let mut server = Server::start(&config_path);
    let id = server.push(push_payload("main", &sha, "slow")).await;
    // Each attempt labels what it creates with its own number.
    let installation = installation(&dir.path().join("gantry.db")).await;
    let (label_1, label_2) = (
        format!("{installation}-{id}.1"),
        format!("{installation}-{id}.2"),
    );
    let wait_for_container = |label: String| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = containers_of(&label, true);
            if !now.is_empty() {
                return now;
            }
            assert!(Instant::now() < deadline, "no container for {label}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let first = wait_for_container(label_1.clone()).await;
    server.kill();
    assert_eq!(
        containers_of(&label_1, true),
        first,
        "SIGKILL leaves the stage's container running"
    );

    // Start again: the leftover is removed and the run is queued again, once.
    let mut server = Server::start(&config_path);
    wait_for_container(label_2.clone()).await;
    assert!(
        containers_of(&label_1, false).is_empty(),
        "the first attempt's container was removed"
    );
    let run = server.run(id).await;
    assert_eq!(
        (run["state"].as_str(), run["attempts"].as_i64()),
        (Some("running"), Some(2)),
        "{run:#}"
    );
    server.kill();

    // Interrupted a second time: given up, and nothing left running.
    let server = Server::start(&config_path);
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "error");
    assert_eq!(
        run["description"],
        "runner lost on every attempt; not retried"
    );
    assert!(containers_of(&label_1, false).is_empty());
    assert!(containers_of(&label_2, false).is_empty());
}

#[tokio::test]
async fn a_newer_push_to_a_branch_cancels_the_older_run() {
    let forge = app_repo("stages:\n  - name: wait\n    image: IMAGE\n    run: sleep 600\n");
    let first_sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);

    let older = server.push(push_payload("main", &first_sha, "one")).await;
    server
        .wait_for(older, "to start", |run| run["state"] == "running")
        .await;
    std::fs::write(
        forge.work().join(".gantry/ci.yml"),
        format!(
            "stages:\n  - name: quick\n    image: {}\n    run: echo newer\n",
            image()
        ),
    )
    .unwrap();
    git(forge.work(), &["commit", "-qam", "two"]);
    let second_sha = forge.push("main");
    let newer = server.push(push_payload("main", &second_sha, "two")).await;

    let older_run = server.wait_for(older, "an end", finished).await;
    assert_eq!(older_run["state"], "canceled", "{older_run:#}");
    let stage = &older_run["pipelines"][0]["stages"][0];
    assert_eq!(
        (stage["stage"].as_str(), stage["state"].as_str()),
        (Some("wait"), Some("canceled"))
    );
    let newer_run = server.wait_for(newer, "an end", finished).await;
    assert_eq!(newer_run["state"], "success", "{newer_run:#}");
}

#[tokio::test]
async fn queued_runs_wait_for_a_free_slot() {
    // One slot: the second run (another branch, so nothing is superseded) waits.
    let forge = app_repo("stages:\n  - name: nap\n    image: IMAGE\n    run: sleep 2\n");
    let sha = forge.push("main");
    forge.push("other");
    let (_dir, config_path) = config_dir(&forge, |config| {
        config.set("runner", "max_parallel_runs", "1")
    });
    let server = Server::start(&config_path);
    let first = server.push(push_payload("main", &sha, "a")).await;
    let second = server.push(push_payload("other", &sha, "b")).await;
    server
        .wait_for(first, "to start", |run| run["state"] == "running")
        .await;
    assert_eq!(server.run(second).await["state"], "queued");
    let first_run = server.wait_for(first, "an end", finished).await;
    let second_run = server.wait_for(second, "an end", finished).await;
    assert_eq!(
        (first_run["state"].as_str(), second_run["state"].as_str()),
        (Some("success"), Some("success"))
    );
    assert!(
        second_run["started_at"].as_str() >= first_run["finished_at"].as_str(),
        "{first_run:#} {second_run:#}"
    );
}

#[tokio::test]
async fn canceling_a_running_run_through_the_api_stops_its_stage() {
    let forge = app_repo("stages:\n  - name: wait\n    image: IMAGE\n    run: sleep 600\n");
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let id = server.push(push_payload("main", &sha, "slow")).await;
    server
        .wait_for(id, "its stage to run", |run| {
            run["pipelines"][0]["stages"][0]["state"] == "running"
        })
        .await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/runs/{id}/cancel", server.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "canceled", "{run:#}");
    assert_eq!(run["pipelines"][0]["stages"][0]["state"], "canceled");
}
