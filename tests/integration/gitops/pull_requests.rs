//! `mode: pull_request`: the bump goes to its own branch and a pull (merge) request, opened
//! once and updated by later bumps of the same file and image.

use gantry::config::Settings;
use gantry::forge::Forges;
use gantry::gitops::bump::{Author, Bumper};
use gantry::pipeline::BumpMode;

use crate::gitops::bumps::request;
use crate::support::fake_forge::{FakeForge, TOKEN};
use crate::support::git::{Repo, git};
use gantry::domain::{Forge, describe};
use gantry::git::GitAuth;

const FILE: &str = "values.yaml";
const VALUES: &str = "image:\n  repository: registry.example.com/acme/web\n  tag: v1\n";

/// Forge clients built as the service builds them, from settings (here from environment
/// overrides), pointed at the fake.
fn forges(forge: Forge, api_url: &str, token: &str) -> Forges {
    let section = forge.as_str().to_ascii_uppercase();
    let settings = Settings::load_with_env(
        None,
        [
            (format!("GANTRY__{section}__API_URL"), api_url.to_owned()),
            (format!("GANTRY__{section}__TOKEN"), token.to_owned()),
        ],
    )
    .unwrap();
    Forges::from_settings(&settings).unwrap()
}

async fn opens_then_updates_one_pull_request(forge: Forge) {
    let repo = Repo::new(&[(FILE, VALUES)]);
    // The fake forge knows the repo by the name its URL gives: `<folder>/repo`.
    let owner = repo
        .bare
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let fake = FakeForge::start(forge, &format!("{owner}/repo")).await;
    let bumper = Bumper::new(
        Author::parse("Gantry <g@example.com>").unwrap(),
        GitAuth::None,
    )
    .with_forges(forges(forge, &fake.api_url(), TOKEN));
    let main_before = repo.head();
    let bump = |tag: &str| {
        let mut request = request(&repo, FILE, "registry.example.com/acme/web", tag);
        request.mode = BumpMode::PullRequest;
        request.forge = Some(forge);
        request
    };
    let first = bumper.bump(bump("v2")).await.unwrap();
    let url = first.bumped.pull_request.clone().expect("a pull request");
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let head = pulls[0].head.clone();
    assert!(head.starts_with("gantry/bump/main-web-"), "{head}");
    assert_eq!(pulls[0].base, "main");
    assert_eq!(pulls[0].title, "Bump registry.example.com/acme/web to v2");
    assert!(
        pulls[0].body.contains("Source: acme/web@"),
        "{}",
        pulls[0].body
    );
    let branch_file = git(&repo.bare, &["show", &format!("{head}:{FILE}")]);
    assert!(branch_file.contains("tag: v2"), "{branch_file}");
    assert_eq!(repo.head(), main_before, "main is left to the reviewer");

    let second = bumper.bump(bump("v3")).await.unwrap();
    assert_eq!(second.bumped.pull_request.as_deref(), Some(url.as_str()));
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1, "updated, not opened again: {pulls:?}");
    assert_eq!(pulls[0].title, "Bump registry.example.com/acme/web to v3");
    let branch_file = git(&repo.bare, &["show", &format!("{head}:{FILE}")]);
    assert!(branch_file.contains("tag: v3"), "{branch_file}");
    assert_eq!(
        git(&repo.bare, &["rev-list", "--count", &head]).trim(),
        "2",
        "the branch is one commit on top of main, rewritten"
    );
    assert!(fake.unexpected().is_empty(), "{:?}", fake.unexpected());
}

#[tokio::test]
async fn github_pull_request_is_opened_once_and_updated() {
    opens_then_updates_one_pull_request(Forge::Github).await;
}

#[tokio::test]
async fn gitlab_merge_request_is_opened_once_and_updated() {
    opens_then_updates_one_pull_request(Forge::Gitlab).await;
}

#[tokio::test]
async fn gitea_pull_request_is_opened_once_and_updated() {
    opens_then_updates_one_pull_request(Forge::Gitea).await;
}

#[tokio::test]
async fn a_forge_that_refuses_the_token_fails_the_bump_with_its_answer() {
    let repo = Repo::new(&[(FILE, VALUES)]);
    let fake = FakeForge::start(Forge::Github, "x/config").await;
    let bumper = Bumper::new(
        Author::parse("Gantry <g@example.com>").unwrap(),
        GitAuth::None,
    )
    .with_forges(forges(Forge::Github, &fake.api_url(), "wrong"));
    let mut request = request(&repo, FILE, "registry.example.com/acme/web", "v2");
    request.mode = BumpMode::PullRequest;
    request.forge = Some(Forge::Github);
    let err = describe(&bumper.bump(request).await.unwrap_err());
    assert!(
        err.starts_with("pull request: github answered 401"),
        "{err}"
    );
    assert!(!err.contains("wrong"));
}
