//! Which pipelines and stages run for real events (built from the webhook fixtures), and
//! the plans Gantry makes for them.

use std::collections::BTreeMap;

use gantry::domain::{ChangedPaths, Forge, Secret};
use gantry::pipeline::{
    self, BuildAction, BumpSpec, EventFacts, Pipeline, RunContext, StageAction,
};
use gantry::webhook::{self, Event};

use crate::support::config::TestConfig;
use crate::support::deliveries::{self, Delivery};

mod caches;
mod matrix;
mod robustness;
mod services;
mod validate_corpus;
mod validate_stage;

const SECRET: &str = "s";

/// The event Gantry makes of a fixture delivery.
fn event(forge: Forge, event_name: &str, fixture: &str) -> Event {
    let delivery = Delivery::signed(forge, SECRET, event_name, &deliveries::fixture(fixture));
    let dir = tempfile::tempdir().unwrap();
    let settings = Forge::ALL
        .iter()
        .fold(TestConfig::new("sqlite::memory:"), |config, forge| {
            config.forge(*forge, SECRET, None)
        })
        .settings(dir.path());
    delivery.receive(&settings).unwrap().event
}

fn pipeline(yaml: &str) -> Pipeline {
    pipeline::parse(".gantry/test.yml", yaml).unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Each problem `yaml` has, as `gantry validate` prints it.
fn errors(yaml: &str) -> Vec<String> {
    pipeline::parse(".gantry/test.yml", yaml)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn triggered(pipeline: &Pipeline, event: &Event) -> bool {
    let changed = event.changed_paths();
    let facts = EventFacts::from_event(event, &changed).expect("event asks for a run");
    pipeline.triggered_by(&facts)
}

const STAGE: &str = "stages:\n  - name: a\n    image: x\n    run: 'true'\n";

/// goscm__push.json: a push to `master` in Codertocat/Hello-World changing README.md.
fn github_push() -> Event {
    event(Forge::Github, "push", "github/push/goscm__push.json")
}

/// goscm__push_tag.json: the tag v0.0.1.
fn github_tag() -> Event {
    event(Forge::Github, "push", "github/push/goscm__push_tag.json")
}

/// octokit opened: a pull request from `changes` into `master`.
fn github_pr() -> Event {
    event(
        Forge::Github,
        "pull_request",
        "github/pull_request/octokit__opened.payload.json",
    )
}

#[test]
fn without_on_pushes_to_branches_and_pull_requests_run_but_tags_do_not() {
    let p = pipeline(STAGE);
    assert!(triggered(&p, &github_push()));
    assert!(triggered(&p, &github_pr()));
    assert!(!triggered(&p, &github_tag()));
}

#[test]
fn push_branch_globs_pick_branches() {
    let main_only = pipeline(&format!("on: {{push: {{branches: [main]}}}}\n{STAGE}"));
    assert!(!triggered(&main_only, &github_push()));
    let master = pipeline(&format!("on: {{push: {{branches: ['mast*']}}}}\n{STAGE}"));
    assert!(triggered(&master, &github_push()));
    // Only branches named: tags do not start it, nor pull requests.
    assert!(!triggered(&master, &github_tag()));
    assert!(!triggered(&master, &github_pr()));
}

#[test]
fn tag_globs_pick_tags_and_exclude_branches() {
    let tags = pipeline(&format!("on: {{push: {{tags: ['v*']}}}}\n{STAGE}"));
    assert!(triggered(&tags, &github_tag()));
    assert!(!triggered(&tags, &github_push()));
    let other = pipeline(&format!("on: {{push: {{tags: ['release-*']}}}}\n{STAGE}"));
    assert!(!triggered(&other, &github_tag()));
}

#[test]
fn paths_filter_on_the_files_the_payload_lists() {
    let docs = pipeline(&format!("on: {{push: {{paths: ['*.md']}}}}\n{STAGE}"));
    assert!(triggered(&docs, &github_push()), "README.md changed");
    let src = pipeline(&format!("on: {{push: {{paths: ['src/**']}}}}\n{STAGE}"));
    assert!(!triggered(&src, &github_push()));
    // GitLab's payload lists files too.
    let gitlab = event(Forge::Gitlab, "Push Hook", "gitlab/push/goscm__push.json");
    assert!(triggered(&docs, &gitlab));
    assert!(!triggered(&src, &gitlab));
    // A new branch's payload cannot tell: the pipeline runs rather than silently skipping.
    let new_branch = event(
        Forge::Github,
        "push",
        "github/push/octokit__with-new-branch.json",
    );
    assert_eq!(new_branch.changed_paths(), ChangedPaths::Unknown);
    assert!(triggered(&src, &new_branch));
}

#[test]
fn pull_request_branches_filter_on_the_base_branch() {
    let to_master = pipeline(&format!(
        "on: {{pull_request: {{branches: [master]}}}}\n{STAGE}"
    ));
    assert!(triggered(&to_master, &github_pr()));
    let to_main = pipeline(&format!(
        "on: {{pull_request: {{branches: [main]}}}}\n{STAGE}"
    ));
    assert!(!triggered(&to_main, &github_pr()));
    let gitlab_mr = event(
        Forge::Gitlab,
        "Merge Request Hook",
        "gitlab/merge_request/goscm__pull_request_create.json",
    );
    let gitea_pr = event(
        Forge::Gitea,
        "pull_request",
        "gitea/pull_request/goscm__pull_request_opened.json",
    );
    assert!(triggered(&to_master, &gitlab_mr));
    assert!(triggered(&to_master, &gitea_pr));
    assert!(!triggered(&to_main, &gitea_pr));
}

#[test]
fn push_only_pipelines_ignore_pull_requests() {
    let push = pipeline(&format!("on: {{push: }}\n{STAGE}"));
    assert!(triggered(&push, &github_push()));
    assert!(
        triggered(&push, &github_tag()),
        "`push:` with no filter takes tags too"
    );
    assert!(!triggered(&push, &github_pr()));
}

#[test]
fn skip_ci_in_the_head_commit_message_is_detected() {
    let event = github_push();
    let message = match &event.kind {
        webhook::EventKind::Push(push) => push.head_commit_message.clone(),
        _ => None,
    };
    assert!(!pipeline::skip_ci_requested(message.as_deref()));
    assert!(pipeline::skip_ci_requested(Some(&format!(
        "{} [skip ci]",
        message.unwrap()
    ))));
}

fn plan(
    p: &Pipeline,
    event: &Event,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Option<pipeline::Plan>, pipeline::PlanError> {
    let context =
        RunContext::for_event(7, event, "/workspace", event.changed_paths(), secrets).unwrap();
    p.plan(&context)
}

const FULL: &str = r#"
env:
  IMAGE_NAME: registry.local/acme/web
stages:
  - name: test
    image: busybox
    secrets: [TOKEN]
    env: { WHERE: "${GANTRY_REPO}@${GANTRY_BRANCH}" }
    run: make test
  - name: image
    build:
      image: registry.local/acme/web
      tags: ["${GANTRY_COMMIT_SHA}", "run-${GANTRY_RUN_ID}"]
  - name: deploy
    bump:
      repo: file:///config.git
      file: apps/web/kustomization.yaml
      image: ${GANTRY_IMAGE}
    when: { event: push, branch: master }
"#;

fn secrets() -> BTreeMap<String, Secret> {
    BTreeMap::from([("TOKEN".to_owned(), Secret::new("t0ken"))])
}

#[test]
fn a_push_plan_expands_variables_and_hands_out_secrets() {
    let plan = plan(&pipeline(FULL), &github_push(), &secrets())
        .unwrap()
        .unwrap();
    let test = &plan.stages[0];
    let env: BTreeMap<_, _> = test.env.iter().cloned().collect();
    assert_eq!(env["CI"], "true");
    assert_eq!(env["GANTRY_EVENT"], "push");
    assert_eq!(
        env["GANTRY_COMMIT_SHA"],
        "199eddf46df50de8d02e99bf1c5fdb4101338224"
    );
    assert_eq!(env["GANTRY_RUN_ID"], "7");
    assert_eq!(env["GANTRY_WORKSPACE"], "/workspace");
    assert_eq!(env["IMAGE_NAME"], "registry.local/acme/web");
    assert_eq!(env["WHERE"], "Codertocat/Hello-World@master");
    assert_eq!(test.secrets.len(), 1);
    assert_eq!(test.secrets[0].1.expose(), "t0ken");

    let StageAction::Build(BuildAction { build, push }) = &plan.stages[1].action else {
        panic!()
    };
    assert_eq!(
        build.tags,
        ["199eddf46df50de8d02e99bf1c5fdb4101338224", "run-7"]
    );
    assert!(push);
    assert_eq!(plan.stages[1].needs, [0], "file order without `needs`");

    let deploy = &plan.stages[2];
    assert_eq!(deploy.skipped, None);
    let StageAction::Bump(BumpSpec { image, .. }) = &deploy.action else {
        panic!()
    };
    assert_eq!(
        image.as_deref(),
        Some("${GANTRY_IMAGE}"),
        "filled in after the build"
    );
}

#[test]
fn a_pull_request_builds_without_pushing_and_skips_push_only_stages() {
    let plan = plan(&pipeline(FULL), &github_pr(), &secrets())
        .unwrap()
        .unwrap();
    let StageAction::Build(BuildAction { push, .. }) = &plan.stages[1].action else {
        panic!()
    };
    assert!(!push);
    assert_eq!(
        plan.stages[2].skipped.as_deref(),
        Some("`when.event` excludes pull_request")
    );
    assert_eq!(
        plan.stages[0].secrets.len(),
        1,
        "not a fork: secrets are given"
    );
}

#[test]
fn a_fork_pull_request_gets_no_secrets_no_push_and_no_bump() {
    let mut fork = github_pr();
    if let webhook::EventKind::PullRequest(pr) = &mut fork.kind {
        pr.from_fork = true;
    }
    let yaml = FULL.replace(
        "when: { event: push, branch: master }",
        "when: { branch: master }",
    );
    let plan = plan(&pipeline(&yaml), &fork, &secrets()).unwrap().unwrap();
    assert!(plan.stages[0].secrets.is_empty());
    let StageAction::Build(BuildAction { push, .. }) = &plan.stages[1].action else {
        panic!()
    };
    assert!(!push);
    assert_eq!(
        plan.stages[2].skipped.as_deref(),
        Some("pull requests from forks get no bump")
    );
}

#[test]
fn a_secret_the_repo_lacks_fails_the_plan_at_the_stage() {
    let err = plan(&pipeline(FULL), &github_push(), &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        ".gantry/test.yml:5:11: stage `test` asks for secret `TOKEN`, which repo \
         `Codertocat/Hello-World` does not define (add it under `secrets` of its `[[repos]]` entry)"
    );
}

#[test]
fn a_tag_that_expands_to_nothing_fails_the_plan() {
    let p = pipeline(
        "on: {push: }\nstages:\n  - name: image\n    build:\n      image: registry.local/app\n      tags: [\"${GANTRY_TAG}\"]\n",
    );
    let err = plan(&p, &github_push(), &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        ".gantry/test.yml:3:11: build tag `${GANTRY_TAG}` expands to nothing in this run"
    );
    assert!(matches!(
        plan(&p, &github_tag(), &BTreeMap::new()),
        Ok(Some(_))
    ));
}

#[test]
fn an_untriggered_pipeline_has_no_plan() {
    let p = pipeline(&format!("on: {{push: {{branches: [main]}}}}\n{STAGE}"));
    assert!(
        plan(&p, &github_push(), &BTreeMap::new())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_broken_file_fails_only_its_own_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yml"), STAGE).unwrap();
    std::fs::write(dir.path().join("b.yml"), "stages: [\n").unwrap();
    std::fs::write(dir.path().join("c.yaml"), format!("name: a\n{STAGE}")).unwrap();
    let loaded = pipeline::load_dir(dir.path(), ".gantry").unwrap();
    let outcome: Vec<(&str, Result<&str, String>)> = loaded
        .iter()
        .map(|entry| {
            (
                entry.file.as_str(),
                entry
                    .result
                    .as_ref()
                    .map(|p| p.name.as_str())
                    .map_err(|e| e[0].to_string()),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        [
            (".gantry/a.yml", Ok("a")),
            (".gantry/b.yml", Err(".gantry/b.yml:1:9: unclosed bracket '['".into())),
            (
                ".gantry/c.yaml",
                Err(".gantry/c.yaml:1:1: pipeline name `a` is already used by .gantry/a.yml; names must be unique".into())
            ),
        ]
    );
}
