//! A fleet: one intake and runners as separate processes on one PostgreSQL store and the
//! real engine. A runner killed while it holds runs, one paused past its lease and resumed,
//! one told to stop, and runs routed by `runs_on` labels.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, app_repo, config, containers_of, finished, push_payload};
use crate::intake::helpers::{Backend, fresh_store_url};
use crate::support::config::quoted;
use crate::support::git::Repo;
use crate::support::process::spawn_gantry;

/// Short, so that the tests see a lost runner quickly; runners heartbeat six times per lease.
const LEASE: Duration = Duration::from_secs(3);

/// A process of the fleet, with its own config file.
struct Member {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Member {
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the process to exit, and returns its exit code.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.address))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One store for the fleet, and the app repo it runs.
struct Fleet {
    store: String,
    forge: Repo,
    intake: Server,
    _dir: tempfile::TempDir,
}

impl Fleet {
    async fn start(pipeline: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store_url(Backend::Postgres, dir.path()).await;
        let forge = app_repo(pipeline);
        let path = Self::config_file(&store, &forge, dir.path(), &[]);
        let (child, address) = spawn_gantry(&["--role", "intake"], &path);
        Self {
            store,
            forge,
            intake: Server { child, address },
            _dir: dir,
        }
    }

    fn config_file(store: &str, forge: &Repo, dir: &Path, runner: &[(&str, String)]) -> PathBuf {
        let mut config = config(dir, forge).text("store", "url", store).text(
            "runner",
            "lease",
            &format!("{}s", LEASE.as_secs()),
        );
        for (key, value) in runner {
            config = config.set("runner", key, value);
        }
        config.write(dir)
    }

    /// Starts a runner process named `name` with `settings` (`[runner]` keys, as TOML).
    fn runner(&self, name: &str, settings: &[(&str, String)]) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let mut runner = vec![("name", quoted(name))];
        runner.extend(settings.iter().cloned());
        let path = Self::config_file(&self.store, &self.forge, dir.path(), &runner);
        let (child, address) = spawn_gantry(&["--role", "runner"], &path);
        Member {
            child,
            address,
            _dir: dir,
        }
    }

    /// Pushes branch `branch` and returns its run's id.
    async fn push(&self, branch: &str) -> i64 {
        let sha = self.forge.push(branch);
        self.intake
            .push(push_payload(branch, &sha, &format!("work on {branch}")))
            .await
    }

    async fn runners(&self) -> Vec<Value> {
        let body: Value = reqwest::get(format!("{}/api/runners", self.intake.address))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["runners"].as_array().unwrap().clone()
    }

    async fn runner_state(&self, name: &str) -> Option<String> {
        self.runners()
            .await
            .iter()
            .find(|runner| runner["name"] == name)
            .map(|runner| runner["state"].as_str().unwrap().to_owned())
    }

    /// The installation id, which prefixes every run label.
    async fn installation(&self) -> String {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(&self.store).await.unwrap();
        sqlx::query("SELECT id FROM installation")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0)
    }
}

impl Fleet {
    /// Pushes `main` and waits until its first attempt's stage container runs; returns the
    /// run's id and that attempt's label.
    async fn stage_running(&self) -> (i64, String) {
        let id = self.push("main").await;
        self.intake.wait_for(id, "a start", running).await;
        let label = format!("{}-{id}.1", self.installation().await);
        let deadline = Instant::now() + Duration::from_secs(30);
        while containers_of(&label, true).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the stage of {label} never started"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (id, label)
    }
}

/// Asserts the run's state and how many attempts counted.
fn assert_run(run: &Value, state: &str, attempts: i64) {
    assert_eq!(
        (run["state"].as_str(), run["attempts"].as_i64()),
        (Some(state), Some(attempts)),
        "{run:#}"
    );
}

fn running(run: &Value) -> bool {
    run["state"] == "running"
}

const SLEEP_PIPELINE: &str =
    "stages:\n  - name: work\n    image: IMAGE\n    run: sleep 4; echo done\n";

#[tokio::test]
async fn a_killed_runner_s_runs_are_finished_by_another_runner() {
    let fleet = Fleet::start(SLEEP_PIPELINE).await;
    let mut lost = fleet.runner("lost", &[("max_parallel_runs", "2".into())]);
    let runs = [fleet.push("one").await, fleet.push("two").await];
    for id in runs {
        fleet.intake.wait_for(id, "a start", running).await;
    }
    let other = fleet.runner("other", &[]);
    assert_eq!(fleet.runner_state("other").await.as_deref(), Some("active"));

    lost.child.kill().unwrap();
    lost.child.wait().unwrap();
    let killed = Instant::now();
    for id in runs {
        let run = fleet.intake.wait_for(id, "an end", finished).await;
        assert_run(&run, "success", 2);
    }
    // Lease, one poll, then the two 4 s stages one after the other (capacity 1), with room
    // for starting containers.
    let took = killed.elapsed();
    assert!(
        took < LEASE + Duration::from_secs(1) + Duration::from_secs(8) + Duration::from_secs(8),
        "the runs took {took:?} to finish after the kill"
    );
    assert_eq!(fleet.runner_state("lost").await.as_deref(), Some("lost"));
    let page = reqwest::get(format!("{}/runners", fleet.intake.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(">lost</span>") && page.contains(">other<"),
        "{page}"
    );
    let installation = fleet.installation().await;
    for id in runs {
        assert!(
            containers_of(&format!("{installation}-{id}.1"), false).is_empty(),
            "the lost attempt's containers were removed"
        );
    }
    drop(other);
}

#[tokio::test]
async fn a_runner_resumed_after_its_lease_stops_the_run_it_lost() {
    let fleet = Fleet::start(
        "stages:\n  - name: work\n    image: IMAGE\n    run: sleep 6; echo attempt done\n",
    )
    .await;
    let paused = fleet.runner("paused", &[]);
    let (id, first) = fleet.stage_running().await;

    paused.signal("STOP");
    let other = fleet.runner("other", &[]);
    let run = fleet.intake.wait_for(id, "an end", finished).await;
    assert_run(&run, "success", 2);
    assert_eq!(fleet.runner_state("paused").await.as_deref(), Some("lost"));

    // Resumed, the paused runner finds the run is no longer its own: it stops its attempt
    // and records nothing, so the run stays as the other runner ended it.
    paused.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    while fleet.runner_state("paused").await.as_deref() != Some("active") {
        assert!(
            Instant::now() < deadline,
            "the resumed runner never heartbeated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(LEASE).await;
    let again = fleet.intake.run(id).await;
    assert_eq!(
        (&again["state"], &again["finished_at"], &again["pipelines"]),
        (&run["state"], &run["finished_at"], &run["pipelines"]),
    );
    assert!(
        containers_of(&first, false).is_empty(),
        "{first} left containers"
    );
    drop(other);
}

#[tokio::test]
async fn sigterm_drains_a_runner_then_it_exits() {
    let fleet = Fleet::start(SLEEP_PIPELINE).await;
    let mut runner = fleet.runner("draining", &[]);
    let id = fleet.push("main").await;
    fleet.intake.wait_for(id, "a start", running).await;

    runner.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = runner.get("/readyz").await;
        if status == 503 {
            assert_eq!(body["draining"], true, "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still answers {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A run queued while draining is not taken.
    let waiting = fleet.push("later").await;
    assert_eq!(
        fleet.runner_state("draining").await.as_deref(),
        Some("draining")
    );

    assert_eq!(runner.exit_code(Duration::from_secs(30)), Some(0));
    let run = fleet.intake.run(id).await;
    assert_run(&run, "success", 1);
    assert_eq!(fleet.intake.run(waiting).await["state"], "queued");
    assert_eq!(
        fleet.runner_state("draining").await,
        None,
        "it left the fleet"
    );
}

#[tokio::test]
async fn a_drain_past_its_timeout_hands_the_run_back_uncounted() {
    let fleet =
        Fleet::start("stages:\n  - name: work\n    image: IMAGE\n    run: sleep 600\n").await;
    let mut runner = fleet.runner("short", &[("drain_timeout", quoted("1s"))]);
    let (id, label) = fleet.stage_running().await;

    runner.signal("TERM");
    assert_eq!(runner.exit_code(Duration::from_secs(30)), Some(0));
    let run = fleet.intake.run(id).await;
    assert_run(&run, "queued", 0);
    assert_eq!(
        run["description"],
        "handed back by runner short (shutting down); queued again"
    );
    assert!(
        containers_of(&label, false).is_empty(),
        "{label} left containers"
    );
}

#[tokio::test]
async fn runs_on_labels_route_a_run_to_a_runner_that_has_them() {
    let fleet = Fleet::start(
        "runs_on: [big, linux/amd64]\nstages:\n  - name: work\n    image: IMAGE\n    run: echo on a big runner\n",
    )
    .await;
    let _small = fleet.runner("small", &[("labels", "[\"linux/amd64\"]".into())]);
    let id = fleet.push("main").await;
    let run = fleet
        .intake
        .wait_for(id, "a hand-back", |run| {
            run["state"] == "queued" && run["description"].as_str().is_some()
        })
        .await;
    assert_eq!(
        run["description"],
        "waiting for a runner with labels big, linux/amd64"
    );
    assert_eq!(run["attempts"], 0);
    assert_eq!(
        run["pipelines"][0]["description"], "waiting for a runner with labels big, linux/amd64",
        "{run:#}"
    );
    // The small runner does not take it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fleet.intake.run(id).await["attempts"], 0);

    let _big = fleet.runner(
        "big",
        &[("labels", "[\"big\", \"linux/amd64\", \"gpu\"]".into())],
    );
    let run = fleet.intake.wait_for(id, "an end", finished).await;
    assert_run(&run, "success", 1);
}

#[tokio::test]
async fn a_second_sigterm_hands_back_at_once() {
    let fleet =
        Fleet::start("stages:\n  - name: work\n    image: IMAGE\n    run: sleep 600\n").await;
    let mut runner = fleet.runner("impatient", &[("drain_timeout", quoted("10m"))]);
    let (id, _) = fleet.stage_running().await;

    runner.signal("TERM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(runner.child.try_wait().unwrap().is_none(), "it drains");
    runner.signal("TERM");
    assert_eq!(runner.exit_code(Duration::from_secs(30)), Some(0));
    let run = fleet.intake.run(id).await;
    assert_run(&run, "queued", 0);
}

#[tokio::test]
async fn a_closed_log_pipe_does_not_stop_sigterm_from_stopping_gantry() {
    use std::io::{BufRead, BufReader};
    gantry::forge::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let path =
        crate::support::config::TestConfig::new(&crate::support::config::sqlite_in(dir.path()))
            .write(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["serve", "--role", "intake", "-c"])
        .arg(&path)
        .env("GANTRY__LOG__FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().unwrap().unwrap();
        let entry: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if entry["fields"]["message"] == "gantry listening" {
            break entry["fields"]["address"].as_str().unwrap().to_owned();
        }
    };
    // The reader goes away (a log collector restarted): every later log line fails.
    drop(lines);
    let health = reqwest::get(format!("http://{address}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let mut member = Member {
        child,
        address: format!("http://{address}"),
        _dir: dir,
    };
    member.signal("TERM");
    assert_eq!(member.exit_code(Duration::from_secs(15)), Some(0));
}
