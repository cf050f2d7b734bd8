//! Commit statuses on each forge, through real runs: the webhook comes in, the pipeline runs
//! on the engine, and the fake forge ends up with the right states, in order, with links.

use std::time::{Duration, Instant};

use gantry::domain::Forge;
use serde_json::{Value, json};

use crate::server::{REPO, SECRET, Server, finished, git};
use crate::support::config::{TestConfig, quoted, sqlite_in};
use crate::support::deliveries::Delivery;
use crate::support::fake_forge::{Accepted, FakeForge, TOKEN};
use crate::support::git::Repo;

const PUBLIC_URL: &str = "http://gantry.test:8080";

const PIPELINES: &[(&str, &str)] = &[
    (
        ".gantry/ci.yml",
        "stages:\n  - name: check\n    image: IMAGE\n    run: echo fine\n",
    ),
    (
        ".gantry/bad.yml",
        "stages:\n  - name: boom\n    image: IMAGE\n    run: exit 3\n",
    ),
];

fn forge_with(files: &[(&str, &str)]) -> Repo {
    crate::server::app_repo_with(files[0].1, &files[1..])
}

/// A server whose one repo, `kind`'s `REPO`, is `forge`, reporting to the fake at `api`.
fn config(dir: &std::path::Path, forge: &Repo, kind: Forge, api: &str) -> TestConfig {
    TestConfig::new(&sqlite_in(dir))
        .text("server", "public_url", PUBLIC_URL)
        .text("runner", "pull", "never")
        .forge(kind, SECRET, Some((TOKEN, api)))
        .repo(
            kind,
            REPO,
            &[&format!("clone_url = {}", quoted(&forge.url()))],
        )
}

/// A push of `sha` to main, as `kind` would deliver it.
async fn deliver_push(server: &Server, kind: Forge, sha: &str) -> i64 {
    deliver_push_to(server, kind, "main", sha).await
}

/// A push of `sha` to `branch`, as `kind` would deliver it.
async fn deliver_push_to(server: &Server, kind: Forge, branch: &str, sha: &str) -> i64 {
    let git_ref = format!("refs/heads/{branch}");
    let zero = "0".repeat(40);
    let (forge, event, body) = match kind {
        Forge::Github => {
            return server
                .push(crate::server::push_payload(branch, sha, "change"))
                .await;
        }
        Forge::Gitlab => (
            Forge::Gitlab,
            "Push Hook",
            json!({
                "object_kind": "push", "ref": git_ref, "before": zero, "after": sha,
                "checkout_sha": sha, "user_username": "dev", "total_commits_count": 1,
                "commits": [{ "id": sha, "message": "change" }],
                "project": { "path_with_namespace": REPO, "git_http_url": "https://gitlab.invalid/acme/app.git", "web_url": "https://gitlab.invalid/acme/app" }
            }),
        ),
        Forge::Gitea => (
            Forge::Gitea,
            "push",
            json!({
                "ref": git_ref, "before": zero, "after": sha,
                "commits": [{ "id": sha, "message": "change" }],
                "head_commit": { "id": sha, "message": "change" },
                "repository": { "full_name": REPO, "clone_url": "https://gitea.invalid/acme/app.git", "html_url": "https://gitea.invalid/acme/app" },
                "pusher": { "login": "dev" }
            }),
        ),
    };
    let body = serde_json::to_vec(&body).unwrap();
    server
        .deliver(Delivery::signed(forge, SECRET, event, &body))
        .await
}

/// Waits until every status of the run is delivered or given up.
async fn settled_statuses(server: &Server, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = server.run(id).await;
        let statuses = run["statuses"].as_array().cloned().unwrap_or_default();
        let settled = finished(&run)
            && !statuses.is_empty()
            && statuses.iter().all(|s| {
                matches!(
                    s["delivery"].as_str(),
                    Some("delivered" | "merged" | "failed")
                )
            });
        if settled {
            return run;
        }
        assert!(Instant::now() < deadline, "statuses never settled: {run:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) fn states(accepted: &[Accepted]) -> Vec<&str> {
    accepted.iter().map(|a| a.state.as_str()).collect()
}

async fn full_loop(kind: Forge, expected_ok: &[&str], expected_bad: &[&str]) {
    let forge = forge_with(PIPELINES);
    let sha = forge.push("main");
    let fake = FakeForge::start(kind, REPO).await;
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start(&config(dir.path(), &forge, kind, &fake.api_url()).write(dir.path()));
    let id = deliver_push(&server, kind, &sha).await;
    let run = settled_statuses(&server, id).await;
    assert_eq!(run["state"], "failure", "{run:#}");

    let ok = fake.statuses(&sha, "gantry/ci");
    assert_eq!(states(&ok), expected_ok, "{ok:?}");
    assert_eq!(ok[0].description, "starting");
    assert_eq!(ok[1].description, "running check");
    assert!(ok[2].description.starts_with("passed in "), "{ok:?}");
    let bad = fake.statuses(&sha, "gantry/bad");
    assert_eq!(states(&bad), expected_bad, "{bad:?}");
    assert_eq!(bad.last().unwrap().description, "boom: exit code 3");
    assert_eq!(
        fake.contexts(),
        [
            (sha.clone(), "gantry/bad".to_owned()),
            (sha.clone(), "gantry/ci".to_owned())
        ],
        "one status context per pipeline, and no other"
    );
    let link = format!("{PUBLIC_URL}/runs/{id}");
    assert!(ok.iter().chain(&bad).all(|a| a.target_url == link));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[tokio::test]
async fn github_statuses_go_pending_then_to_the_result() {
    full_loop(
        Forge::Github,
        &["pending", "pending", "success"],
        &["pending", "pending", "failure"],
    )
    .await;
}

#[tokio::test]
async fn gitlab_statuses_show_running() {
    full_loop(
        Forge::Gitlab,
        &["pending", "running", "success"],
        &["pending", "running", "failed"],
    )
    .await;
}

#[tokio::test]
async fn gitea_statuses_go_pending_then_to_the_result() {
    full_loop(
        Forge::Gitea,
        &["pending", "pending", "success"],
        &["pending", "pending", "failure"],
    )
    .await;
}

#[tokio::test]
async fn an_invalid_pipeline_file_errors_with_its_location_within_140_characters() {
    let long_key = "k".repeat(150);
    let broken = format!("stages:\n  - name: x\n    {long_key}: y\n");
    let forge = forge_with(&[PIPELINES[0], (".gantry/broken.yml", broken.as_str())]);
    let sha = forge.push("main");
    let fake = FakeForge::start(Forge::Github, REPO).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &config(dir.path(), &forge, Forge::Github, &fake.api_url()).write(dir.path()),
    );
    let id = deliver_push(&server, Forge::Github, &sha).await;
    settled_statuses(&server, id).await;
    let broken = fake.statuses(&sha, "gantry/broken");
    assert_eq!(states(&broken), ["error"]);
    let description = &broken[0].description;
    assert!(
        description.starts_with(".gantry/broken.yml:3:5: unknown key `kkkk"),
        "{description}"
    );
    assert_eq!(description.chars().count(), 140);
    assert!(description.ends_with('…'));
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[tokio::test]
async fn a_flaky_forge_gets_every_status_in_the_end_and_never_an_older_one_last() {
    let forge = forge_with(&PIPELINES[..1]);
    let sha = forge.push("main");
    let fake = FakeForge::start(Forge::Github, REPO).await;
    // Two server errors, then a rate limit that resets in two seconds.
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2)
    .to_string();
    fake.script(vec![
        (503, vec![]),
        (503, vec![]),
        (
            403,
            vec![
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset),
            ],
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &config(dir.path(), &forge, Forge::Github, &fake.api_url()).write(dir.path()),
    );
    let id = deliver_push(&server, Forge::Github, &sha).await;
    let run = settled_statuses(&server, id).await;
    let ok = fake.statuses(&sha, "gantry/ci");
    assert_eq!(
        ok.last().map(|a| a.state.as_str()),
        Some("success"),
        "{ok:?}"
    );
    // Earlier states held back by the failures are superseded, never sent after a later one.
    let order: Vec<&str> = states(&ok);
    let success_at = order.iter().position(|s| *s == "success").unwrap();
    assert_eq!(success_at, order.len() - 1, "{order:?}");
    let status = &run["statuses"][0];
    assert_eq!(
        (status["delivery"].as_str(), status["state"].as_str()),
        (Some("delivered"), Some("success")),
        "{run:#}"
    );
    assert!(fake.requests() >= 4);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    let failures = server
        .metric("gantry_status_delivery_failures_total{forge=\"github\"}")
        .await;
    assert_eq!(failures, Some(3.0), "two 503s and one rate limit");
}

#[tokio::test]
async fn an_undeliverable_status_shows_on_the_run() {
    let forge = forge_with(&PIPELINES[..1]);
    let sha = forge.push("main");
    // The fake knows another repo: every status for this one is a 404, which no retry fixes.
    let fake = FakeForge::start(Forge::Github, "someone/else").await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &config(dir.path(), &forge, Forge::Github, &fake.api_url()).write(dir.path()),
    );
    let id = deliver_push(&server, Forge::Github, &sha).await;
    let run = settled_statuses(&server, id).await;
    assert_eq!(run["state"], "success", "reporting never fails a run");
    let status = &run["statuses"][0];
    assert_eq!(status["delivery"], "failed", "{run:#}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .starts_with("github answered 404 Not Found"),
        "{run:#}"
    );
    assert!(!fake.unexpected().is_empty());
    // The run's page says so too.
    let page = server.text(&format!("/runs/{id}")).await;
    let row = page
        .split("<tr data-context=\"gantry/ci\">")
        .nth(1)
        .expect("a status row for gantry/ci");
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("delivery-failed"), "{row}");
    assert!(row.contains("github answered 404 Not Found"), "{row}");
}

/// With a GitHub App, each pipeline becomes one check run, created at its first state and
/// updated in place after, authenticated by an installation token bought with the app's
/// signed token; a broken pipeline file is annotated at its line. The fake is GitHub
/// Enterprise: every call, the token's too, goes under `api_url`'s path.
#[tokio::test]
async fn a_github_app_reports_check_runs_with_an_annotation_at_the_broken_line() {
    let broken = (".gantry/broken.yml", "stages:\n  - name: x\n    imgae: y\n");
    // Slow enough that its queued and in-progress states reach GitHub before the end.
    let slow = (
        ".gantry/ci.yml",
        "stages:\n  - name: check\n    image: IMAGE\n    run: sleep 2\n",
    );
    let forge = forge_with(&[slow, broken]);
    let sha = forge.push("main");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    let generated = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let fake = FakeForge::start_app(REPO, 987, &key).await;
    let path = config(dir.path(), &forge, Forge::Github, &fake.api_url())
        .unset("github", "token")
        .set("github", "app_id", "987")
        .text("github", "private_key_file", &key.display().to_string())
        .write(dir.path());
    let server = Server::start(&path);
    let id = deliver_push(&server, Forge::Github, &sha).await;
    let run = settled_statuses(&server, id).await;
    assert_eq!(run["state"], "error", "{run:#}");

    let runs = fake.check_runs(&sha, "gantry/ci");
    assert_eq!(runs.len(), 1, "one check run per pipeline: {runs:#?}");
    let ci = &runs[0];
    assert!(ci.len() >= 2, "later states update the check run: {ci:#?}");
    let last = ci.last().unwrap();
    assert_eq!(
        (last["status"].as_str(), last["conclusion"].as_str()),
        (Some("completed"), Some("success"))
    );
    assert_eq!(last["details_url"], format!("{PUBLIC_URL}/runs/{id}"));
    let order: Vec<&str> = ci.iter().map(|c| c["status"].as_str().unwrap()).collect();
    let rank = |s: &str| {
        ["queued", "in_progress", "completed"]
            .iter()
            .position(|x| *x == s)
    };
    assert!(
        order.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{order:?}"
    );

    let runs = fake.check_runs(&sha, "gantry/broken");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let last = runs[0].last().unwrap();
    assert_eq!(last["conclusion"], "failure");
    let annotation = &last["output"]["annotations"][0];
    assert_eq!(annotation["path"], ".gantry/broken.yml", "{last:#}");
    assert_eq!(
        (
            annotation["start_line"].as_u64(),
            annotation["annotation_level"].as_str()
        ),
        (Some(3), Some("failure"))
    );
    assert!(
        annotation["message"].as_str().unwrap().contains("imgae"),
        "{annotation}"
    );
    assert!(
        last["output"]["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("/runs/{id}"))
    );
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// Waits until the fake holds `count` statuses for the commit and context, and returns them.
pub(super) async fn statuses_reach(
    fake: &FakeForge,
    sha: &str,
    context: &str,
    count: usize,
) -> Vec<Accepted> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let accepted = fake.statuses(sha, context);
        if accepted.len() >= count {
            return accepted;
        }
        assert!(
            Instant::now() < deadline,
            "{context} on {sha} never reached {count} statuses: {accepted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A run waiting for a slot shows pending on the forge at once; one superseded or canceled
/// while it waits ends as canceled, never left pending.
#[tokio::test]
async fn waiting_runs_show_pending_and_end_canceled_when_they_never_run() {
    let forge = forge_with(&[(
        ".gantry/ci.yml",
        "stages:\n  - name: nap\n    image: IMAGE\n    run: sleep 4\n",
    )]);
    let busy_sha = forge.push("main");
    let fake = FakeForge::start(Forge::Gitlab, REPO).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), &forge, Forge::Gitlab, &fake.api_url())
        .text("server", "api_token", "status-api-token")
        .set("runner", "max_parallel_runs", "1")
        .write(dir.path());
    let server = Server::start(&path);
    // The only slot is taken by a run on main.
    let busy = deliver_push(&server, Forge::Gitlab, &busy_sha).await;
    server
        .wait_for(busy, "to start", |run| run["state"] == "running")
        .await;

    git(
        forge.work(),
        &["commit", "-q", "--allow-empty", "-m", "two"],
    );
    let waiting_sha = forge.push("other");
    let waiting = deliver_push_to(&server, Forge::Gitlab, "other", &waiting_sha).await;
    let announced = statuses_reach(&fake, &waiting_sha, "gantry/ci", 1).await;
    assert_eq!(server.run(waiting).await["state"], "queued");
    assert_eq!(states(&announced), ["pending"]);
    assert_eq!(
        announced[0].description,
        "queued: waiting for a free runner"
    );
    assert_eq!(
        announced[0].target_url,
        format!("{PUBLIC_URL}/runs/{waiting}")
    );
    let run = server.run(waiting).await;
    assert_eq!(
        (
            run["pipelines"][0]["pipeline"].as_str(),
            run["pipelines"][0]["state"].as_str()
        ),
        (Some("ci"), Some("pending")),
        "{run:#}"
    );

    // A newer push to the same branch supersedes the waiting run.
    git(
        forge.work(),
        &["commit", "-q", "--allow-empty", "-m", "three"],
    );
    let newest_sha = forge.push("other");
    let newest = deliver_push_to(&server, Forge::Gitlab, "other", &newest_sha).await;
    let superseded = statuses_reach(&fake, &waiting_sha, "gantry/ci", 2).await;
    assert_eq!(states(&superseded), ["pending", "canceled"]);
    assert_eq!(
        superseded[1].description,
        "superseded by a newer run for the same ref"
    );
    let run = server.run(waiting).await;
    assert_eq!(run["state"], "canceled");
    assert_eq!(run["pipelines"][0]["state"], "canceled", "{run:#}");

    // The newest waits too, and is canceled through the API before it runs.
    statuses_reach(&fake, &newest_sha, "gantry/ci", 1).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/runs/{newest}/cancel", server.address))
        .bearer_auth("status-api-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let canceled = statuses_reach(&fake, &newest_sha, "gantry/ci", 2).await;
    assert_eq!(states(&canceled), ["pending", "canceled"]);
    assert_eq!(canceled[1].description, "canceled");

    // The run that had the slot is untouched by all this, and nothing stays pending.
    let busy_run = server.wait_for(busy, "an end", finished).await;
    assert_eq!(busy_run["state"], "success", "{busy_run:#}");
    let done = statuses_reach(&fake, &busy_sha, "gantry/ci", 3).await;
    assert_eq!(states(&done), ["pending", "running", "success"]);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// A GitLab server with one slot, whose repo is `forge`, reporting to `fake`.
fn gitlab_server(dir: &std::path::Path, forge: &Repo, fake: &FakeForge, slots: usize) -> Server {
    Server::start(
        &config(dir, forge, Forge::Gitlab, &fake.api_url())
            .text("server", "api_token", "status-api-token")
            .set("runner", "max_parallel_runs", &slots.to_string())
            .write(dir),
    )
}

/// Each run's own statuses as the run page shows them: (context, state, delivery).
fn deliveries(run: &Value) -> Vec<(String, String, String)> {
    run["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |key: &str| s[key].as_str().unwrap_or_default().to_owned();
            (text("context"), text("state"), text("delivery"))
        })
        .collect()
}

/// A run that waited for a slot was announced pending; when it starts it would tell GitLab
/// pending again ("starting"), which GitLab refuses. The repeat is merged instead of sent,
/// and every status GitLab is sent, it takes.
#[tokio::test]
async fn gitlab_takes_every_status_of_a_run_that_waited_for_a_slot() {
    let forge = forge_with(&[(
        ".gantry/ci.yml",
        "stages:\n  - name: nap\n    image: IMAGE\n    run: sleep 2\n",
    )]);
    let busy_sha = forge.push("main");
    git(
        forge.work(),
        &["commit", "-q", "--allow-empty", "-m", "two"],
    );
    let waiting_sha = forge.push("other");
    let fake = FakeForge::start(Forge::Gitlab, REPO).await;
    let dir = tempfile::tempdir().unwrap();
    let server = gitlab_server(dir.path(), &forge, &fake, 1);
    let busy = deliver_push(&server, Forge::Gitlab, &busy_sha).await;
    server
        .wait_for(busy, "to start", |run| run["state"] == "running")
        .await;
    let waiting = deliver_push_to(&server, Forge::Gitlab, "other", &waiting_sha).await;
    statuses_reach(&fake, &waiting_sha, "gantry/ci", 1).await;

    let run = settled_statuses(&server, waiting).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let accepted = fake.statuses(&waiting_sha, "gantry/ci");
    assert_eq!(states(&accepted), ["pending", "running", "success"]);
    assert_eq!(accepted[0].description, "queued: waiting for a free runner");
    assert_eq!(fake.unexpected(), Vec::<String>::new());
    assert_eq!(
        deliveries(&run),
        [("gantry/ci".into(), "success".into(), "delivered".into())]
    );
}

/// A push of a branch and a merge request from it report on one commit: on GitLab they are
/// two statuses (the branch's ref, and the merge request's own), each taking its whole
/// story.
#[tokio::test]
async fn gitlab_push_and_merge_request_on_one_commit_are_two_statuses() {
    let forge = forge_with(&[(
        ".gantry/ci.yml",
        "stages:\n  - name: nap\n    image: IMAGE\n    run: sleep 1\n",
    )]);
    let sha = forge.push("feature");
    let fake = FakeForge::start(Forge::Gitlab, REPO).await;
    let dir = tempfile::tempdir().unwrap();
    let server = gitlab_server(dir.path(), &forge, &fake, 2);
    let push = deliver_push_to(&server, Forge::Gitlab, "feature", &sha).await;
    let merge_request = serde_json::to_vec(&json!({
        "object_kind": "merge_request",
        "user": { "username": "dev" },
        "project": { "path_with_namespace": REPO, "git_http_url": "https://gitlab.invalid/acme/app.git" },
        "object_attributes": {
            "action": "open", "iid": 7, "title": "A feature", "source_branch": "feature",
            "target_branch": "main", "source_project_id": 1, "target_project_id": 1,
            "last_commit": { "id": sha, "message": "change" }
        }
    }))
    .unwrap();
    let opened = server
        .deliver(Delivery::signed(
            Forge::Gitlab,
            SECRET,
            "Merge Request Hook",
            &merge_request,
        ))
        .await;
    for id in [push, opened] {
        let run = settled_statuses(&server, id).await;
        assert_eq!(run["state"], "success", "{run:#}");
    }
    for git_ref in ["feature", "refs/merge-requests/7/head"] {
        assert_eq!(
            states(&fake.statuses_on(&sha, git_ref, "gantry/ci")),
            ["pending", "running", "success"],
            "{git_ref}"
        );
    }
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// A rerun of a finished commit tells GitLab its story again: after a final state GitLab
/// starts a new job, so every status is taken.
#[tokio::test]
async fn gitlab_takes_a_rerun_of_a_finished_commit() {
    let forge = forge_with(&[(
        ".gantry/ci.yml",
        "stages:\n  - name: quick\n    image: IMAGE\n    run: 'true'\n",
    )]);
    let sha = forge.push("main");
    let fake = FakeForge::start(Forge::Gitlab, REPO).await;
    let dir = tempfile::tempdir().unwrap();
    let server = gitlab_server(dir.path(), &forge, &fake, 1);
    let first = deliver_push(&server, Forge::Gitlab, &sha).await;
    settled_statuses(&server, first).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/runs/{first}/rerun", server.address))
        .bearer_auth("status-api-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let rerun = response.json::<Value>().await.unwrap()["run_id"]
        .as_i64()
        .unwrap();
    let run = settled_statuses(&server, rerun).await;
    assert_eq!(run["state"], "success", "{run:#}");
    assert_eq!(
        states(&fake.statuses(&sha, "gantry/ci")),
        [
            "pending", "running", "success", "pending", "running", "success"
        ]
    );
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}
