//! Gantry's own image: the runtime stage of the repository's `Dockerfile`, built on a Debian
//! made locally (`GANTRY_TEST_DEBIAN_IMAGE`, debootstrap) with the binary this test suite's
//! `cargo build` made, runs as a runner with the engine's socket mounted: it completes a run
//! queued by an intake on the host, then drains and exits 0 on `docker stop`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gantry::domain::Forge;
use serde_json::{Value, json};

use crate::intake::helpers::{Backend, fresh_store_url};
use crate::support::config::{TestConfig, quoted};
use crate::support::deliveries::Delivery;
use crate::support::git::Repo;
use crate::support::process::spawn_gantry;

const SECRET: &str = "image-secret";
const REPO: &str = "acme/app";

/// The line of the runtime stage that takes the binary from the build stage.
const COPY_BUILT: &str = "COPY --from=build /usr/local/bin/gantry /usr/local/bin/gantry";

/// The Dockerfile's `ARG`s and its runtime stage, taking the binary from the build context.
fn runtime_stage(dockerfile: &str) -> String {
    let args: Vec<&str> = dockerfile
        .lines()
        .take_while(|line| !line.starts_with("FROM "))
        .filter(|line| line.starts_with("ARG "))
        .collect();
    let start = dockerfile
        .find("FROM ${RUNTIME_IMAGE} AS runtime")
        .expect("the Dockerfile has a runtime stage");
    let stage = &dockerfile[start..];
    assert_eq!(stage.matches(COPY_BUILT).count(), 1, "{stage}");
    format!(
        "{}\n{}",
        args.join("\n"),
        stage.replace(COPY_BUILT, "COPY gantry /usr/local/bin/gantry")
    )
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Stops the intake and removes the container and the image when the test ends, however
/// it ends.
struct Leftovers {
    intake: Option<std::process::Child>,
    container: String,
    image: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if let Some(intake) = &mut self.intake {
            let _ = intake.kill();
            let _ = intake.wait();
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

fn config(store: &str, forge: &Repo) -> TestConfig {
    TestConfig::new(store)
        .text("runner", "pull", "never")
        .text("runner", "lease", "5s")
        .forge(Forge::Github, SECRET, None)
        .repo(
            Forge::Github,
            REPO,
            &[&format!("clone_url = {}", quoted(&forge.url()))],
        )
}

#[tokio::test]
async fn the_image_runs_as_a_runner_and_completes_a_run() {
    let base = std::env::var("GANTRY_TEST_DEBIAN_IMAGE")
        .expect("GANTRY_TEST_DEBIAN_IMAGE names a local Debian image (scripts/test-services.sh)");
    let tag = format!("gantry-test/gantry:{}", uuid::Uuid::new_v4().simple());
    let name = format!("gantry-image-test-{}", uuid::Uuid::new_v4().simple());
    let mut leftovers = Leftovers {
        intake: None,
        container: name.clone(),
        image: tag.clone(),
    };

    let context = tempfile::tempdir().unwrap();
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        runtime_stage(&dockerfile),
    )
    .unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_gantry"), context.path().join("gantry")).unwrap();
    docker(&[
        "build",
        "-q",
        "-t",
        &tag,
        "--build-arg",
        &format!("RUNTIME_IMAGE={base}"),
        &context.path().display().to_string(),
    ]);

    let image = std::env::var("GANTRY_TEST_IMAGE").unwrap();
    let forge = Repo::new(&[(
        ".gantry/ci.yml",
        &format!("stages:\n  - name: hello\n    image: {image}\n    run: echo from the image\n"),
    )]);
    let sha = forge.push("main");
    let dir = tempfile::tempdir().unwrap();
    let store = fresh_store_url(Backend::Postgres, dir.path()).await;
    let intake_config = config(&store, &forge).write(dir.path());
    let (child, intake) = spawn_gantry(&["--role", "intake"], &intake_config);
    leftovers.intake = Some(child);

    // The runner in the container: the host's network (for PostgreSQL on loopback), the
    // engine's socket, the config, and the repo at the same path as its file:// URL.
    let runner_dir = tempfile::tempdir().unwrap();
    let runner_config = config(&store, &forge)
        .text("runner", "name", "in-a-container")
        .write(runner_dir.path());
    let repo_dir = forge.url().trim_start_matches("file://").to_owned();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{}:/etc/gantry/gantry.toml:ro", runner_config.display()),
        "-v",
        &format!("{repo_dir}:{repo_dir}:ro"),
        "-e",
        "GANTRY__SERVER__LISTEN=127.0.0.1:0",
        &tag,
        "serve",
        "--role",
        "runner",
        "-c",
        "/etc/gantry/gantry.toml",
    ]);

    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": sha,
        "created": true, "deleted": false, "forced": false, "commits": [],
        "head_commit": { "id": sha, "message": "from the image" },
        "repository": { "full_name": REPO, "clone_url": "https://github.invalid/acme/app.git" },
        "sender": { "login": "dev" }
    }))
    .unwrap();
    let client = reqwest::Client::new();
    let response = Delivery::signed(Forge::Github, SECRET, "push", &body)
        .post(&client, &intake)
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.unwrap()["run_id"]
        .as_i64()
        .unwrap();

    let get = |path: String| {
        let request = client.get(format!("{intake}{path}"));
        async move { request.send().await.unwrap() }
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let run = loop {
        let run: Value = get(format!("/api/runs/{id}")).await.json().await.unwrap();
        if !matches!(run["state"].as_str(), Some("queued" | "running")) {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the containerised runner never ended run {id}: {run:#}\n{}",
            docker(&["logs", &name])
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        run["state"],
        "success",
        "{run:#}\n{}",
        docker(&["logs", &name])
    );
    let log = get(format!("/api/runs/{id}/log"))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("from the image"), "{log}");
    let runners: Value = get("/api/runners".into()).await.json().await.unwrap();
    assert_eq!(runners["runners"][0]["name"], "in-a-container", "{runners}");

    // `docker stop` sends SIGTERM: the runner drains (nothing in hand) and exits 0.
    docker(&["stop", "-t", "30", &name]);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]),
        "0"
    );
}
