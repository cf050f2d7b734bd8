//! Caches on the real engine: a miss then a hit across runs, a fall-back to a
//! `restore_keys` prefix, a pull request that reads the default branch's cache but never
//! writes to it, two runs saving one key at once, and eviction beyond the size cap.

use serde_json::{Value, json};

use super::{API_TOKEN, SECRET, Server, app_repo, config_dir, finished, push_payload};
use crate::support::deliveries::Delivery;
use crate::support::git::Repo;
use gantry::domain::Forge;

/// Caches `vendor` (in the checkout) and `/opt/tool` (outside it); the stage says what it
/// found, and writes what it did not.
const PIPELINE: &str = "cache:
  - key: deps-${hash:deps.lock}
    restore_keys: [deps-]
    paths: [vendor, /opt/tool]
stages:
  - name: build
    image: IMAGE
    run: |
      if [ -f vendor/a ]; then echo \"vendor=cached $(cat vendor/a) $(cat vendor/b)\"; else echo vendor=cold; mkdir -p vendor; echo \"$GANTRY_RUN_ID\" > vendor/a; sleep 1; echo \"$GANTRY_RUN_ID\" > vendor/b; fi
      if [ -f /opt/tool/bin ]; then echo tool=cached; else echo tool=cold; mkdir -p /opt/tool; echo x > /opt/tool/bin; fi
      if [ -n \"$BLOB_KIB\" ]; then dd if=/dev/zero of=vendor/blob bs=1024 count=$BLOB_KIB 2>/dev/null; fi
";

fn forge() -> Repo {
    let forge = app_repo(PIPELINE);
    forge.commit(&[("deps.lock", "one\n")], "deps");
    forge
}

fn cache(run: &Value) -> Value {
    let caches = run["caches"].as_array().expect("caches in the run JSON");
    assert_eq!(caches.len(), 1, "{run:#}");
    caches[0].clone()
}

/// The report's outcome, the scope it restored from, and whether it saved.
fn restored(report: &Value) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        report["outcome"].as_str(),
        report["source_scope"].as_str(),
        report["saved"].as_str(),
    )
}

async fn run_to_end(server: &Server, id: i64) -> (Value, String) {
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    (run, server.log(id).await)
}

#[tokio::test]
async fn a_cache_misses_then_hits_and_falls_back_to_a_restore_key() {
    let forge = forge();
    let sha = forge.push("main");
    let (_dir, config) = config_dir(&forge, |config| config);
    let server = Server::start(&config);

    let first = server.push(push_payload("main", &sha, "one")).await;
    let (run, log) = run_to_end(&server, first).await;
    assert!(
        log.contains("vendor=cold") && log.contains("tool=cold"),
        "{log}"
    );
    let report = cache(&run);
    assert_eq!(report["outcome"], "miss", "{report}");
    assert_eq!(report["saved"], "saved", "{report}");
    let key = report["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("deps-") && key.len() == 21, "{key}");

    let response = reqwest::Client::new()
        .post(format!("{}/api/runs/{first}/rerun", server.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let again = response.json::<Value>().await.unwrap()["run_id"]
        .as_i64()
        .unwrap();
    let (run, log) = run_to_end(&server, again).await;
    assert!(
        log.contains(&format!("vendor=cached {first} {first}")) && log.contains("tool=cached"),
        "{log}"
    );
    let report = cache(&run);
    assert_eq!(
        (report["outcome"].as_str(), report["source_scope"].as_str()),
        (Some("hit"), Some("branch/main")),
        "{report}"
    );
    assert_eq!(report["saved"], "not saved: restored under its own key");

    // New dependencies: the key changes; the entry of the old one is the fall-back.
    forge.commit(&[("deps.lock", "two\n")], "more deps");
    let sha = forge.push("main");
    let third = server.push(push_payload("main", &sha, "two")).await;
    let (run, log) = run_to_end(&server, third).await;
    assert!(
        log.contains(&format!("vendor=cached {first} {first}")),
        "{log}"
    );
    let report = cache(&run);
    assert_eq!(
        (report["outcome"].as_str(), report["source_key"].as_str()),
        (Some("restored"), Some(key.as_str())),
        "{report}"
    );
    assert_eq!(report["saved"], "saved");
    assert_ne!(report["key"], key.as_str());
    let page = server.text(&format!("/runs/{third}")).await;
    assert!(
        page.contains(&format!("restored from `{key}` (branch/main)")),
        "{page}"
    );
}

/// A pull request of the same repo, from `branch` at `sha` into main.
fn pull_request(branch: &str, sha: &str, number: u64) -> Delivery {
    let body = json!({
        "action": "opened", "number": number,
        "pull_request": {
            "title": "deps", "head": { "ref": branch, "sha": sha, "repo": { "id": 1, "full_name": super::REPO } },
            "base": { "ref": "main", "sha": sha, "repo": { "id": 1, "full_name": super::REPO } }
        },
        "repository": { "id": 1, "full_name": super::REPO, "clone_url": "https://github.invalid/acme/app.git", "default_branch": "main" },
        "sender": { "login": "dev", "id": 5 }
    });
    Delivery::signed(
        Forge::Github,
        SECRET,
        "pull_request",
        &serde_json::to_vec(&body).unwrap(),
    )
}

#[tokio::test]
async fn a_pull_request_reads_the_default_branchs_cache_and_never_writes_to_it() {
    let forge = forge();
    let main_sha = forge.push("main");
    let (_dir, config) = config_dir(&forge, |config| config);
    let server = Server::start(&config);
    let first = server.push(push_payload("main", &main_sha, "main")).await;
    run_to_end(&server, first).await;

    forge.commit(&[("deps.lock", "pr\n")], "new deps in a pull request");
    let pr_sha = forge.push("feature");
    let opened = server.deliver(pull_request("feature", &pr_sha, 7)).await;
    let (run, log) = run_to_end(&server, opened).await;
    assert!(
        log.contains(&format!("vendor=cached {first} {first}")),
        "{log}"
    );
    let report = cache(&run);
    assert_eq!(
        restored(&report),
        (Some("restored"), Some("branch/main"), Some("saved")),
        "{report}"
    );
    let pr_key = report["key"].as_str().unwrap().to_owned();

    // The same dependencies pushed to main: the pull request's entry is not main's.
    let merged = server.push(push_payload("main", &pr_sha, "merged")).await;
    let (run, _) = run_to_end(&server, merged).await;
    let report = cache(&run);
    assert_eq!(report["key"], pr_key.as_str());
    assert_eq!(
        (report["outcome"].as_str(), report["source_scope"].as_str()),
        (Some("restored"), Some("branch/main")),
        "main restores its own older entry, never the pull request's: {report}"
    );
}

#[tokio::test]
async fn two_runs_saving_one_key_at_once_leave_a_whole_entry() {
    let forge = app_repo(&format!("on: {{ push: {{ tags: [v1] }} }}\n{PIPELINE}"));
    forge.commit(&[("deps.lock", "one\n")], "deps");
    let sha = forge.push("main");
    git_tag(&forge, "v1");
    let (_dir, config) = config_dir(&forge, |config| {
        config.set("runner", "max_parallel_runs", "2")
    });
    let server = Server::start(&config);
    // Two deliveries of one tag: runs of a tag are never superseded, so both run at once
    // and both save the same key into the tag's scope.
    let tag = || push_payload_for_ref("refs/tags/v1", &sha);
    let (one, two) = tokio::join!(server.push(tag()), server.push(tag()));
    let (first, second) = tokio::join!(run_to_end(&server, one), run_to_end(&server, two));
    for (run, _) in [&first, &second] {
        assert_eq!(cache(run)["saved"], "saved", "{run:#}");
    }
    let third = server.push(tag()).await;
    let (run, log) = run_to_end(&server, third).await;
    assert_eq!(cache(&run)["outcome"], "hit", "{run:#}");
    let line = log
        .lines()
        .find(|line| line.contains("vendor=cached"))
        .unwrap_or_else(|| panic!("{log}"));
    let ids: Vec<&str> = line
        .rsplit("vendor=cached ")
        .next()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(ids[0], ids[1], "both files of one run's save: {line}");
    assert!(
        [one.to_string(), two.to_string()].contains(&ids[0].to_owned()),
        "{line}"
    );
}

fn git_tag(forge: &Repo, tag: &str) {
    super::git(forge.work(), &["tag", tag]);
    super::git(forge.work(), &["push", "-q", "origin", tag]);
}

fn push_payload_for_ref(git_ref: &str, sha: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&push_payload("main", sha, "tag")).unwrap();
    body["ref"] = json!(git_ref);
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test]
async fn caches_beyond_the_size_cap_go_least_recently_used_first() {
    // Each branch keys its own entry of a 400 KiB blob; two of them pass 600 KiB.
    let pipeline = PIPELINE
        .replace(
            "deps-${hash:deps.lock}",
            "deps-${GANTRY_BRANCH}-${hash:deps.lock}",
        )
        .replace("cache:\n", "env: { BLOB_KIB: 400 }\ncache:\n");
    let forge = app_repo(&pipeline);
    forge.commit(&[("deps.lock", "one\n")], "deps");
    let sha = forge.push("main");
    forge.push("other");
    let (_dir, config) = config_dir(&forge, |config| {
        config
            .text("runner", "cache_max_size", "600KiB")
            .set("runner", "max_parallel_runs", "1")
    });
    let server = Server::start(&config);
    let on_main = server.push(push_payload("main", &sha, "blob")).await;
    run_to_end(&server, on_main).await;
    let on_other = server.push(push_payload("other", &sha, "blob")).await;
    let (run, _) = run_to_end(&server, on_other).await;
    let report = cache(&run);
    assert_eq!(
        restored(&report),
        (Some("restored"), Some("branch/main"), Some("saved")),
        "other falls back to main's entry, then saves its own: {report}"
    );
    // Two entries passed the cap: main's, used least recently, was evicted.
    let again = server.push(push_payload("main", &sha, "blob")).await;
    let (run, log) = run_to_end(&server, again).await;
    assert_eq!(cache(&run)["outcome"], "miss", "{run:#}");
    assert!(log.contains("vendor=cold"), "{log}");
}
