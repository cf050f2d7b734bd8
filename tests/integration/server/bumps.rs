//! The GitOps hand-off end to end: a push builds an image, and the bump stage commits its
//! tag to a config repo, recorded on the run.

use crate::server::{Server, app_repo, config_dir, finished, git, push_payload};
use crate::support::config::{TestConfig, quoted};
use crate::support::git::Repo;
use crate::support::registry::{PASSWORD, Registry, USER};

pub(super) const OVERLAY: &str = "apps/app/overlays/dev/kustomization.yaml";

/// Builds and pushes to REGISTRY, then pins the tag and the pushed digest in the overlay.
const PIPELINE: &str = "stages:
  - name: image
    build:
      image: REGISTRY/acme/app
      tags: ['${GANTRY_COMMIT_SHA}']
      PUSH
  - name: deploy-dev
    bump:
      repo: CONFIG_URL
      file: apps/app/overlays/dev/kustomization.yaml
      pin: tag@digest
";

/// A config repo holding the overlay for `registry`'s image.
pub(super) fn config_repo(registry: &str) -> Repo {
    Repo::new(&[(
        OVERLAY,
        &format!(
            "kind: Kustomization\nimages:\n  - name: {registry}/acme/app\n    newTag: old # set by Gantry\n"
        ),
    )])
}

/// The app repo; `push` is the build's `push:` line (empty: push, as on any push event).
fn app_with_dockerfile(config_url: &str, registry: &str, push: &str) -> Repo {
    with_dockerfile(&PIPELINE.replace("PUSH", push), config_url, registry)
}

/// The app repo with `pipeline` (`CONFIG_URL`, `REGISTRY` and `IMAGE` stand for the config
/// repo, the registry and the test image) and a Dockerfile.
pub(super) fn with_dockerfile(pipeline: &str, config_url: &str, registry: &str) -> Repo {
    let forge = app_repo(
        &pipeline
            .replace("CONFIG_URL", config_url)
            .replace("REGISTRY", registry),
    );
    // A context no other test builds: identical builds running at once in other tests
    // would leave the engine two cached layer chains for it, and a re-run could then be
    // built on the other one, a new image with a new digest.
    std::fs::write(
        forge.work().join("build-id"),
        uuid::Uuid::new_v4().to_string(),
    )
    .unwrap();
    std::fs::write(
        forge.work().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY build-id /build-id\nCOPY README /README\n",
            crate::server::image()
        ),
    )
    .unwrap();
    git(forge.work(), &["add", "."]);
    git(forge.work(), &["commit", "-qm", "dockerfile"]);
    forge
}

/// The hand-off on real parts: a registry, a config repo, the app repo with `pipeline` (see
/// [`with_dockerfile`]) pushed to main as `sha`, and a server whose config has the registry
/// and the config repo, then `edit`'s changes (given the config repo's URL).
pub(super) struct GitopsLoop {
    pub registry: Registry,
    pub configs: Repo,
    pub forge: Repo,
    pub sha: String,
    pub server: Server,
    _dir: tempfile::TempDir,
}

pub(super) fn gitops_loop(
    pipeline: &str,
    edit: impl FnOnce(TestConfig, &str) -> TestConfig,
) -> GitopsLoop {
    let registry = Registry::start();
    let configs = config_repo(&registry.host);
    let config_url = configs.url();
    let forge = with_dockerfile(pipeline, &config_url, &registry.host);
    let sha = forge.push("main");
    let (dir, config_path) = config_dir(&forge, |config| {
        edit(
            with_registry_and_gitops(config, &registry.host, &config_url),
            &config_url,
        )
    });
    let server = Server::start(&config_path);
    GitopsLoop {
        registry,
        configs,
        forge,
        sha,
        server,
        _dir: dir,
    }
}

/// `config` with the registry's credentials and the config repo allowed as a bump target.
pub(super) fn with_registry_and_gitops(
    config: TestConfig,
    registry: &str,
    config_url: &str,
) -> TestConfig {
    config
        .table(&format!(
            "[registries.\"{registry}\"]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\""
        ))
        .text("gitops", "author", "Gantry Bot <bot@example.com>")
        .set("gitops", "repos", &format!("[{}]", quoted(config_url)))
}

#[tokio::test]
async fn a_merge_bumps_the_config_repo_and_the_run_records_it() {
    // Held whole: its parts (the repos' folders, the store) live as long as it does.
    let gitops = gitops_loop(&PIPELINE.replace("PUSH", ""), |config, _| config);
    let (registry, configs, sha, server) = (
        &gitops.registry,
        &gitops.configs,
        &gitops.sha,
        &gitops.server,
    );
    let id = server.push(push_payload("main", sha, "ship it")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");

    let bare = &configs.bare;
    let digest = registry.manifest_digest("acme/app", sha).await;
    let file = git(bare, &["show", &format!("main:{OVERLAY}")]);
    let file = file.trim_end();
    assert!(
        file.ends_with(&format!(
            "    newTag: {sha} # set by Gantry\n    digest: {digest}"
        )),
        "{file}"
    );
    let head = git(bare, &["rev-parse", "main"]).trim().to_owned();
    let bump = &run["bumps"][0];
    assert_eq!(bump["commit"], head.as_str(), "{run:#}");
    assert_eq!(bump["file"], OVERLAY);
    assert_eq!(bump["changes"][0]["old"], "old");
    assert_eq!(bump["changes"][0]["new"], sha.as_str());
    assert_eq!(bump["changes"][1]["new"], digest.as_str());
    let message = git(bare, &["log", "-1", "--format=%B%n%an", "main"]);
    let message = message.trim_end();
    assert!(
        message.contains(&format!("Source: acme/app@{sha}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("Image: {}/acme/app:{sha}@{digest}", registry.host)),
        "{message}"
    );
    assert!(
        message.contains(&format!("Run: http://localhost:8080/runs/{id}")),
        "{message}"
    );
    assert!(message.ends_with("Gantry Bot"), "{message}");
    let log = server.log(id).await;
    assert!(
        log.contains(&format!(
            "[ci/deploy-dev] gantry: {OVERLAY}:4 images[0].newTag: old -> {sha}"
        )),
        "{log}"
    );

    // The same commit again (a re-run) changes nothing and commits nothing.
    let again = server.push(push_payload("main", sha, "ship it")).await;
    let run = server.wait_for(again, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    assert_eq!(
        run["bumps"][0]["commit"],
        serde_json::Value::Null,
        "{run:#}"
    );
    assert_eq!(git(bare, &["rev-parse", "main"]).trim(), head);
    let metric = |name: &'static str| server.metric(name);
    assert_eq!(
        metric("gantry_bumps_total{outcome=\"applied\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric("gantry_bumps_total{outcome=\"unchanged\"}").await,
        Some(1.0)
    );
    assert_eq!(metric("gantry_bump_pushes_total").await, Some(1.0));
}

#[tokio::test]
async fn a_bump_to_a_repo_not_listed_in_gitops_repos_fails_and_pushes_nothing() {
    let configs = config_repo("registry.example.com");
    let config_url = configs.url();
    let forge = app_with_dockerfile(&config_url, "registry.example.com", "push: false");
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let id = server.push(push_payload("main", &sha, "ship it")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "failure", "{run:#}");
    let stage = &run["pipelines"][0]["stages"][1];
    assert_eq!(stage["state"], "failure");
    assert!(
        stage["message"]
            .as_str()
            .unwrap()
            .contains("is not listed in `[gitops] repos`"),
        "{run:#}"
    );
    let bare = &configs.bare;
    assert_eq!(git(bare, &["rev-list", "--count", "main"]).trim(), "1");
}

#[tokio::test]
async fn an_image_that_was_not_pushed_is_not_bumped() {
    let configs = config_repo("registry.example.com");
    let config_url = configs.url();
    let forge = app_with_dockerfile(&config_url, "registry.example.com", "push: false");
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| {
        config.set("gitops", "repos", &format!("[{}]", quoted(&config_url)))
    });
    let server = Server::start(&config_path);
    let id = server.push(push_payload("main", &sha, "ship it")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let stage = &run["pipelines"][0]["stages"][1];
    assert_eq!(stage["state"], "skipped", "{run:#}");
    assert!(
        stage["message"]
            .as_str()
            .unwrap()
            .starts_with("the build did not push the image"),
        "{run:#}"
    );
    assert_eq!(run["bumps"], serde_json::json!([]));
    let bare = &configs.bare;
    assert_eq!(git(bare, &["rev-list", "--count", "main"]).trim(), "1");
}
