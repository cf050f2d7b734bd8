//! The `build` stage against a real OCI registry: Debian's docker-registry with htpasswd
//! auth, started on a free loopback port for each test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gantry::config::{RegistryCredentials, RunnerSettings};
use gantry::pipeline;
use gantry::runner::{Engine, Executor, Observer, PipelineJob, PipelineOutcome, StageOutcome};
use tokio_util::sync::CancellationToken;

use crate::runner::{checkout, image};

use crate::support::registry::{PASSWORD, Registry, USER};
use gantry::domain::{Secret, StageState, Trigger};

#[derive(Default)]
struct Lines(Mutex<Vec<(String, String)>>);

impl Observer for Lines {
    fn stage_started(&self, _: &str, _: &str) {}
    fn stage_finished(&self, _: &str, _: &str, _: &StageOutcome) {}
    fn log_line(&self, _: &str, stage: &str, line: &str) {
        self.0
            .lock()
            .unwrap()
            .push((stage.to_owned(), line.to_owned()));
    }
}

impl Lines {
    fn of(&self, stage: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == stage)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

async fn run_build(
    files: &[(&str, &str)],
    registry: &str,
    password: &str,
    trigger: Trigger,
) -> (PipelineOutcome, Arc<Lines>) {
    let files: Vec<(&str, String)> = files
        .iter()
        .map(|(p, t)| (*p, t.replace("REGISTRY", registry)))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let dir = checkout(&refs);
    let text = std::fs::read_to_string(dir.path().join(".gantry/build.yml")).unwrap();
    let pipeline = pipeline::parse(".gantry/build.yml", &text).unwrap_or_else(|e| panic!("{e:?}"));
    let secrets = BTreeMap::new();
    let sha = "c".repeat(40);
    let context = crate::runner::context(9, trigger, &sha, &secrets);
    let plan = pipeline.plan(&context).unwrap().unwrap();
    let settings = RunnerSettings {
        pull: gantry::config::PullPolicy::Never,
        ..RunnerSettings::default()
    };
    let registries = BTreeMap::from([(
        registry.to_owned(),
        RegistryCredentials {
            username: USER.into(),
            password: Secret::new(password),
        },
    )]);
    let executor = Executor::new(
        Engine::connect(&settings.docker_host, None).unwrap(),
        Arc::new(settings),
    )
    .with_registries(registries);
    let lines = Arc::new(Lines::default());
    let job = PipelineJob {
        plan,
        run_label: format!("test-{}", uuid::Uuid::new_v4().simple()),
        checkout: dir.path().to_owned(),
        cancel: CancellationToken::new(),
        trusted: false,
        forge: None,
        cache: None,
    };
    (executor.run(job, lines.clone()).await, lines)
}

fn pipeline_file(extra_build: &str) -> String {
    format!(
        "stages:\n  - name: image\n    build:\n      image: REGISTRY/acme/app\n      tags: [\"${{GANTRY_COMMIT_SHA}}\", latest]\n{extra_build}  - name: after\n    image: {}\n    run: env | grep ^GANTRY_IMA | sort\n",
        image()
    )
}

fn dockerfile(body: &str) -> String {
    format!("FROM {}\n{body}", image())
}

fn outcome_of<'a>(outcome: &'a PipelineOutcome, stage: &str) -> &'a StageOutcome {
    &outcome
        .stages
        .iter()
        .find(|(name, _)| name == stage)
        .unwrap()
        .1
}

#[tokio::test]
async fn a_pushed_image_has_the_digest_the_registry_serves() {
    let registry = Registry::start();
    let file = pipeline_file("");
    let docker = dockerfile("COPY . /ctx\n");
    let (outcome, lines) = run_build(
        &[
            (".gantry/build.yml", &file),
            ("Dockerfile", &docker),
            ("app.txt", "app\n"),
        ],
        &registry.host,
        PASSWORD,
        Trigger::Push,
    )
    .await;
    assert_eq!(
        outcome.state,
        StageState::Success,
        "{outcome:?} {:?}",
        lines.of("image")
    );
    let served = registry.manifest_digest("acme/app", &"c".repeat(40)).await;
    let latest = registry.manifest_digest("acme/app", "latest").await;
    assert_eq!(served, latest, "both tags name one manifest");
    let message = outcome_of(&outcome, "image").message.clone().unwrap();
    assert_eq!(
        message,
        format!(
            "pushed {}/acme/app:{} ({served})",
            registry.host,
            "c".repeat(40)
        )
    );
    assert_eq!(
        lines.of("after"),
        [
            format!("GANTRY_IMAGE={}/acme/app", registry.host),
            format!("GANTRY_IMAGE_DIGEST={served}"),
            format!("GANTRY_IMAGE_TAG={}", "c".repeat(40)),
        ]
    );
}

#[tokio::test]
async fn a_wrong_password_fails_the_stage_naming_the_registry() {
    let registry = Registry::start();
    let file = pipeline_file("");
    let docker = dockerfile("");
    let (outcome, _) = run_build(
        &[(".gantry/build.yml", &file), ("Dockerfile", &docker)],
        &registry.host,
        "wrong",
        Trigger::Push,
    )
    .await;
    let image = outcome_of(&outcome, "image");
    assert_eq!(image.state, StageState::Failure);
    let message = image.message.as_deref().unwrap();
    assert!(
        message.contains(&format!(
            "registry {} refused the credentials",
            registry.host
        )),
        "{message}"
    );
    assert_eq!(outcome_of(&outcome, "after").state, StageState::Skipped);
}

#[tokio::test]
async fn a_stopped_registry_fails_the_stage_without_hanging() {
    let host = {
        let registry = Registry::start();
        registry.host.clone()
    };
    let started = Instant::now();
    let file = pipeline_file("");
    let docker = dockerfile("");
    let (outcome, _) = run_build(
        &[(".gantry/build.yml", &file), ("Dockerfile", &docker)],
        &host,
        PASSWORD,
        Trigger::Push,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(60));
    let image = outcome_of(&outcome, "image");
    assert_eq!(image.state, StageState::Failure);
    let message = image.message.as_deref().unwrap();
    assert!(
        message.starts_with(&format!("pushing {host}/acme/app:")),
        "{message}"
    );
    assert!(message.contains(&format!("registry {host}")), "{message}");
}

#[tokio::test]
async fn dockerignore_keeps_files_out_and_build_args_reach_the_build() {
    let registry = Registry::start();
    let file = pipeline_file("      args: { GREETING: hello }\n      push: false\n");
    let docker = dockerfile(
        "ARG GREETING\nCOPY . /ctx\nRUN test \"$GREETING\" = hello\nRUN test -f /ctx/kept.txt && test ! -e /ctx/secret.txt && test ! -e /ctx/logs\n",
    );
    let (outcome, lines) = run_build(
        &[
            (".gantry/build.yml", &file),
            ("Dockerfile", &docker),
            (".dockerignore", "secret.txt\nlogs\n"),
            ("kept.txt", "keep\n"),
            ("secret.txt", "do not ship\n"),
            ("logs/app.log", "noise\n"),
        ],
        &registry.host,
        PASSWORD,
        Trigger::Push,
    )
    .await;
    assert_eq!(
        outcome.state,
        StageState::Success,
        "{:?}",
        lines.of("image")
    );
    let message = outcome_of(&outcome, "image").message.clone().unwrap();
    assert!(message.ends_with("(not pushed)"), "{message}");
}

#[tokio::test]
async fn pull_requests_build_without_pushing() {
    let registry = Registry::start();
    let file = pipeline_file("");
    let docker = dockerfile("");
    let (outcome, _) = run_build(
        &[(".gantry/build.yml", &file), ("Dockerfile", &docker)],
        &registry.host,
        PASSWORD,
        Trigger::PullRequest,
    )
    .await;
    assert_eq!(outcome.state, StageState::Success);
    assert!(
        outcome_of(&outcome, "image")
            .message
            .as_deref()
            .unwrap()
            .ends_with("(not pushed)")
    );
    let response = reqwest::Client::new()
        .get(format!("http://{}/v2/acme/app/tags/list", registry.host))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404, "nothing was pushed");
}

#[tokio::test]
async fn a_dockerfile_error_fails_with_the_engines_message() {
    let registry = Registry::start();
    let file = pipeline_file("");
    let docker = dockerfile("RUN exit 7\n");
    let (outcome, _) = run_build(
        &[(".gantry/build.yml", &file), ("Dockerfile", &docker)],
        &registry.host,
        PASSWORD,
        Trigger::Push,
    )
    .await;
    let image = outcome_of(&outcome, "image");
    assert_eq!(image.state, StageState::Failure);
    let message = image.message.as_deref().unwrap();
    assert!(
        message.starts_with("building ") && message.contains("returned a non-zero code: 7"),
        "{message}"
    );
}
