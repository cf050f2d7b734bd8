//! The approval gate through real runs: a pull request from a fork waits, blocked, with
//! its checks pending on the forge and nothing of it on the engine, until it is approved
//! (then it runs, without secrets) or declined; for GitHub, GitLab and Gitea payloads.

use std::time::Duration;

use gantry::domain::Forge;
use serde_json::{Value, json};

use super::statuses::{states, statuses_reach};
use super::{REPO, SECRET, Server, app_repo, containers_of, finished, git, installation};
use crate::support::config::{TestConfig, quoted, sqlite_in};
use crate::support::deliveries::Delivery;
use crate::support::fake_forge::{FakeForge, TOKEN};
use crate::support::git::Repo;

const PUBLIC_URL: &str = "http://gantry.test:8080";
const API_TOKEN: &str = "approval-api-token";
/// What a stage prints of the repo's secret: `token=[]` when it was not given.
const PIPELINE: &str = "stages:
  - name: check
    image: IMAGE
    secrets: [TOKEN]
    run: echo \"token=[$TOKEN]\"
";
const FORK: &str = "mallory/app";

/// A server whose one repo, `kind`'s `REPO`, is `base`, with a secret, reporting to `fake`;
/// its `[[repos]]` entry also holds `lines`.
fn server(
    dir: &std::path::Path,
    base: &Repo,
    kind: Forge,
    fake: &FakeForge,
    lines: &[&str],
) -> Server {
    let mut repo_lines = vec![
        format!("clone_url = {}", quoted(&base.url())),
        "secrets = { TOKEN = \"t0ps3cret\" }".to_owned(),
    ];
    repo_lines.extend(lines.iter().map(|line| line.to_string()));
    let lines: Vec<&str> = repo_lines.iter().map(String::as_str).collect();
    let config = TestConfig::new(&sqlite_in(dir))
        .text("server", "public_url", PUBLIC_URL)
        .text("server", "api_token", API_TOKEN)
        .text("runner", "pull", "never")
        .forge(kind, SECRET, Some((TOKEN, &fake.api_url())))
        .repo(kind, REPO, &lines);
    Server::start(&config.write(dir))
}

/// One test's world: the app repo, a fork of it with a commit authored by `author`, the
/// fake forge, and a server whose repo entry also holds `lines`.
struct Case {
    fork: Repo,
    sha: String,
    fake: FakeForge,
    server: Server,
    dir: tempfile::TempDir,
    _base: Repo,
}

impl Case {
    async fn start(kind: Forge, author: &str, lines: &[&str]) -> Self {
        let base = app_repo(PIPELINE);
        let (fork, sha) = fork_with_commit(author);
        let fake = FakeForge::start(kind, REPO).await;
        let dir = tempfile::tempdir().unwrap();
        let server = server(dir.path(), &base, kind, &fake, lines);
        Self {
            fork,
            sha,
            fake,
            server,
            dir,
            _base: base,
        }
    }

    /// Pull request 5 from the fork's commit, sent by `sender`; it must store a run in
    /// `state`.
    async fn open(&self, kind: Forge, sender: &str, state: &str) -> i64 {
        deliver(
            &self.server,
            fork_pull_request(kind, &self.fork, &self.sha, sender, false),
            state,
        )
        .await
    }
}

/// A fork of the app whose branch `feature` has a commit authored by `author`; returns the
/// fork and the commit.
fn fork_with_commit(author: &str) -> (Repo, String) {
    let fork = app_repo(PIPELINE);
    git(
        fork.work(),
        &[
            "-c",
            &format!("user.name={author}"),
            "-c",
            &format!("user.email={author}@example.com"),
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "a change from a fork",
        ],
    );
    let sha = fork.push("feature");
    (fork, sha)
}

/// Pull request 5 from the fork's `feature` at `sha`, opened (or, with `update`, pushed
/// to) by `sender`, as `kind` delivers it. The commit's author, where the payload names
/// one, is `alice`.
fn fork_pull_request(kind: Forge, fork: &Repo, sha: &str, sender: &str, update: bool) -> Delivery {
    let base_sha = "1".repeat(40);
    let (event, body) = match kind {
        Forge::Github | Forge::Gitea => {
            let action = match (kind, update) {
                (_, false) => "opened",
                (Forge::Github, true) => "synchronize",
                _ => "synchronized",
            };
            (
                "pull_request",
                json!({
                    "action": action, "number": 5,
                    "pull_request": {
                        "title": "A change",
                        "head": {
                            "ref": "feature", "sha": sha, "label": "mallory:feature", "repo_id": 2,
                            "repo": { "id": 2, "full_name": FORK, "clone_url": fork.url() }
                        },
                        "base": {
                            "ref": "main", "sha": base_sha, "label": "acme:main", "repo_id": 1,
                            "repo": { "id": 1, "full_name": REPO, "clone_url": "https://forge.invalid/acme/app.git" }
                        }
                    },
                    "repository": {
                        "id": 1, "full_name": REPO, "private": false,
                        "clone_url": "https://forge.invalid/acme/app.git",
                        "html_url": "https://forge.invalid/acme/app"
                    },
                    "sender": { "login": sender, "id": 66 }
                }),
            )
        }
        Forge::Gitlab => {
            let mut attributes = json!({
                "action": if update { "update" } else { "open" },
                "iid": 5, "title": "A change", "source_branch": "feature",
                "target_branch": "main", "source_project_id": 2, "target_project_id": 1,
                "last_commit": {
                    "id": sha, "message": "a change from a fork",
                    "author": { "name": "alice", "email": "alice@example.com" }
                },
                "source": { "git_http_url": fork.url() }
            });
            if update {
                attributes["oldrev"] = json!(base_sha);
            }
            (
                "Merge Request Hook",
                json!({
                    "object_kind": "merge_request",
                    "user": { "username": sender, "id": 66 },
                    "project": {
                        "path_with_namespace": REPO, "visibility_level": 20,
                        "git_http_url": "https://gitlab.invalid/acme/app.git",
                        "web_url": "https://gitlab.invalid/acme/app"
                    },
                    "object_attributes": attributes
                }),
            )
        }
    };
    Delivery::signed(kind, SECRET, event, &serde_json::to_vec(&body).unwrap())
}

/// Posts `delivery`, which must store a run in `state`; returns the run's id.
async fn deliver(server: &Server, delivery: Delivery, state: &str) -> i64 {
    let response = delivery
        .post(&reqwest::Client::new(), &server.address)
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["state"], state, "{answer}");
    answer["run_id"].as_i64().unwrap()
}

/// `POST /api/runs/{id}/{action}` with the API token; the answer's status and body.
async fn act(server: &Server, id: i64, action: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/runs/{id}/{action}", server.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Nothing of run `id` ran: it is still blocked, no runner took it, it has no stage, and
/// the engine holds no container of it. Checked after a few of the runner's polls, in
/// which a claimable run would have started.
async fn nothing_ran(server: &Server, dir: &std::path::Path, id: i64) {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let run = server.run(id).await;
    assert_eq!(run["state"], "blocked", "{run:#}");
    assert_eq!(run["attempts"], 0, "{run:#}");
    assert!(run["started_at"].is_null(), "{run:#}");
    let stages: usize = run["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pipeline| pipeline["stages"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(stages, 0, "{run:#}");
    let installation = installation(&dir.join("gantry.db")).await;
    let label = format!("{installation}-{id}.");
    let listed = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Label \"gantry.run\"}}"])
        .output()
        .unwrap();
    let labels = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !labels.lines().any(|run| run.starts_with(&label)),
        "a container of run {id}: {labels}"
    );
    assert!(containers_of(&format!("{label}1"), false).is_empty());
}

/// A fork's pull request waits with its check pending "waiting for approval", runs
/// nothing, and once approved runs without the repo's secret. Its commit is authored by a
/// trusted login, which changes nothing: only the sender counts.
async fn approved_fork_pull_request(kind: Forge) {
    let case = Case::start(kind, "alice", &["trusted_users = [\"alice\"]"]).await;
    let Case {
        sha,
        fake,
        server,
        dir,
        ..
    } = &case;
    let id = case.open(kind, "mallory", "blocked").await;
    let announced = statuses_reach(fake, sha, "gantry/ci", 1).await;
    assert_eq!(states(&announced)[..1], ["pending"], "{kind}");
    assert_eq!(announced[0].description, "waiting for approval");
    assert_eq!(announced[0].target_url, format!("{PUBLIC_URL}/runs/{id}"));
    let run = server.run(id).await;
    let reason = run["approval"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "a pull request from a fork, sent by mallory (user id 66), who is not in trusted_users"
    );
    assert_eq!(run["pipelines"][0]["description"], "waiting for approval");
    nothing_ran(server, dir.path(), id).await;

    assert_eq!(act(server, id, "approve").await.0, 202);
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{kind}: {run:#}");
    assert_eq!(
        (
            run["approval"]["decision"].as_str(),
            run["approval"]["by"].as_str()
        ),
        (Some("approved"), Some("api-token"))
    );
    let log = server.log(id).await;
    assert!(
        log.contains("token=[]"),
        "{kind}: a fork gets no secret: {log}"
    );
    assert!(!log.contains("t0ps3cret"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !fake
        .statuses(sha, "gantry/ci")
        .last()
        .is_some_and(|last| last.description.starts_with("passed in "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{kind}: {:?}",
            fake.statuses(sha, "gantry/ci")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.unexpected(), Vec::<String>::new(), "{kind}");
    let page = server.text(&format!("/runs/{id}")).await;
    assert!(page.contains("Approved by api-token at "), "{page}");
    assert_eq!(
        server
            .metric("gantry_run_approvals_total{outcome=\"approved\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(act(server, id, "approve").await.0, 409, "a finished run");
}

#[tokio::test]
async fn a_github_fork_pull_request_waits_for_approval_then_runs_without_secrets() {
    approved_fork_pull_request(Forge::Github).await;
}

#[tokio::test]
async fn a_gitlab_fork_merge_request_waits_for_approval_then_runs_without_secrets() {
    approved_fork_pull_request(Forge::Gitlab).await;
}

#[tokio::test]
async fn a_gitea_fork_pull_request_waits_for_approval_then_runs_without_secrets() {
    approved_fork_pull_request(Forge::Gitea).await;
}

/// Declined: the run ends `declined` without having run, and its check errors "declined
/// by …" on the forge (GitLab, which refuses a repeated state, takes each status).
async fn declined_fork_pull_request(kind: Forge, error_state: &str) {
    let case = Case::start(kind, "mallory", &[]).await;
    let Case {
        sha, fake, server, ..
    } = &case;
    let id = case.open(kind, "mallory", "blocked").await;
    statuses_reach(fake, sha, "gantry/ci", 1).await;
    let (status, body) = act(server, id, "decline").await;
    assert_eq!((status, body), (200, json!({ "declined": id })));
    let told = statuses_reach(fake, sha, "gantry/ci", 2).await;
    assert_eq!(states(&told), ["pending", error_state], "{kind}");
    assert_eq!(told[1].description, "declined by api-token");
    let run = server.run(id).await;
    assert_eq!(run["state"], "declined", "{run:#}");
    assert_eq!(run["pipelines"][0]["state"], "canceled", "{run:#}");
    assert!(run["started_at"].is_null());
    assert_eq!(act(server, id, "approve").await.0, 409);
    assert_eq!(fake.unexpected(), Vec::<String>::new(), "{kind}");
}

#[tokio::test]
async fn a_declined_github_fork_pull_request_errors_declined() {
    declined_fork_pull_request(Forge::Github, "error").await;
}

#[tokio::test]
async fn a_declined_gitlab_fork_merge_request_fails_declined() {
    declined_fork_pull_request(Forge::Gitlab, "failed").await;
}

#[tokio::test]
async fn a_declined_gitea_fork_pull_request_errors_declined() {
    declined_fork_pull_request(Forge::Gitea, "error").await;
}

/// Approval holds for one commit: a new push to the pull request replaces its blocked run
/// with a new blocked one, and the old commit's check says so. A blocked run can be
/// canceled.
#[tokio::test]
async fn a_new_push_to_a_blocked_pull_request_supersedes_it() {
    let kind = Forge::Gitlab;
    let case = Case::start(kind, "mallory", &[]).await;
    let Case {
        fork,
        sha: first_sha,
        fake,
        server,
        ..
    } = &case;
    let first = case.open(kind, "mallory", "blocked").await;
    statuses_reach(fake, first_sha, "gantry/ci", 1).await;
    git(
        fork.work(),
        &["commit", "-q", "--allow-empty", "-m", "another change"],
    );
    let second_sha = fork.push("feature");
    let second = deliver(
        server,
        fork_pull_request(kind, fork, &second_sha, "mallory", true),
        "blocked",
    )
    .await;
    let old = statuses_reach(fake, first_sha, "gantry/ci", 2).await;
    assert_eq!(states(&old), ["pending", "canceled"]);
    assert_eq!(
        old[1].description,
        "superseded by a newer run for the same ref"
    );
    assert_eq!(server.run(first).await["state"], "canceled");
    let new = statuses_reach(fake, &second_sha, "gantry/ci", 1).await;
    assert_eq!(new[0].description, "waiting for approval");
    assert_eq!(server.run(second).await["state"], "blocked");

    assert_eq!(act(server, second, "cancel").await.0, 202);
    let canceled = statuses_reach(fake, &second_sha, "gantry/ci", 2).await;
    assert_eq!(states(&canceled), ["pending", "canceled"]);
    assert_eq!(server.run(second).await["state"], "canceled");
    assert_eq!(act(server, second, "approve").await.0, 409);
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

/// A sender in `trusted_users` never waits; a fork still gets no secret.
#[tokio::test]
async fn a_trusted_senders_fork_pull_request_runs_at_once_without_secrets() {
    let kind = Forge::Github;
    let case = Case::start(kind, "alice", &["trusted_users = [\"Alice\"]"]).await;
    let id = case.open(kind, "alice", "queued").await;
    let server = &case.server;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    assert!(run["approval"].is_null(), "{run:#}");
    assert!(server.log(id).await.contains("token=[]"));
}

/// `approval = "none"` lets a fork's pull request run at once; `"all"` makes even a push
/// wait, and an approved push is no fork: it gets its secret.
#[tokio::test]
async fn approval_none_runs_forks_at_once_and_all_holds_pushes_too() {
    let kind = Forge::Github;
    let case = Case::start(kind, "mallory", &["approval = \"none\""]).await;
    let id = case.open(kind, "mallory", "queued").await;
    let run = case.server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let Case {
        fake, _base: base, ..
    } = &case;

    let dir = tempfile::tempdir().unwrap();
    let strict = server(dir.path(), base, kind, fake, &["approval = \"all\""]);
    let base_sha = base.push("main");
    let pushed = deliver(
        &strict,
        Delivery::signed(
            kind,
            SECRET,
            "push",
            &super::push_payload("main", &base_sha, "a push"),
        ),
        "blocked",
    )
    .await;
    let run = strict.run(pushed).await;
    assert!(
        run["approval"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("a run of this repo, sent by dev"),
        "{run:#}"
    );
    nothing_ran(&strict, dir.path(), pushed).await;
    assert_eq!(act(&strict, pushed, "approve").await.0, 202);
    let run = strict.wait_for(pushed, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    assert!(
        strict.log(pushed).await.contains("token=[****]"),
        "not a fork: the secret is given, masked in the log"
    );
}
