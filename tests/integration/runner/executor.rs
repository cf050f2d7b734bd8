//! The executor driven directly: states, logs, timing of parallel stages, cancel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gantry::config::RunnerSettings;
use gantry::pipeline;
use gantry::runner::{Engine, Executor, Observer, PipelineJob, PipelineOutcome, StageOutcome};
use tokio_util::sync::CancellationToken;

use crate::runner::checkout;
use gantry::domain::{Secret, StageState, Trigger};

#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<(String, String)>>,
    events: Mutex<Vec<String>>,
}

impl Observer for Recorder {
    fn stage_started(&self, _: &str, stage: &str) {
        self.events.lock().unwrap().push(format!("start {stage}"));
    }
    fn stage_finished(&self, _: &str, stage: &str, outcome: &StageOutcome) {
        self.events
            .lock()
            .unwrap()
            .push(format!("{} {stage}", outcome.state.as_str()));
    }
    fn log_line(&self, _: &str, stage: &str, line: &str) {
        self.lines
            .lock()
            .unwrap()
            .push((stage.to_owned(), line.to_owned()));
    }
}

impl Recorder {
    fn lines_of(&self, stage: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == stage)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        pull: gantry::config::PullPolicy::Never,
        ..RunnerSettings::default()
    }
}

async fn run_with(
    yaml: &str,
    secrets: BTreeMap<String, Secret>,
    cancel: CancellationToken,
) -> (PipelineOutcome, Arc<Recorder>, String) {
    run_configured(yaml, &[], secrets, cancel, settings()).await
}

/// Runs the pipeline `yaml` in a checkout holding it, a README and `files`.
async fn run_configured(
    yaml: &str,
    files: &[(&str, &str)],
    secrets: BTreeMap<String, Secret>,
    cancel: CancellationToken,
    settings: RunnerSettings,
) -> (PipelineOutcome, Arc<Recorder>, String) {
    let mut all = vec![(".gantry/t.yml", yaml), ("README", "the checkout\n")];
    all.extend_from_slice(files);
    let dir = checkout(&all);
    let pipeline = pipeline::parse(
        ".gantry/t.yml",
        &std::fs::read_to_string(dir.path().join(".gantry/t.yml")).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let sha = "a".repeat(40);
    let context = crate::runner::context(1, Trigger::Push, &sha, &secrets);
    let plan = pipeline.plan(&context).unwrap().unwrap();
    let engine = Engine::connect(&settings.docker_host, None).unwrap();
    let executor = Executor::new(engine, Arc::new(settings));
    let recorder = Arc::new(Recorder::default());
    let label = format!("test-{}", uuid::Uuid::new_v4().simple());
    let job = PipelineJob {
        plan,
        run_label: label.clone(),
        checkout: dir.path().to_owned(),
        cancel,
        trusted: false,
        forge: None,
        cache: None,
    };
    let outcome = executor.run(job, recorder.clone()).await;
    (outcome, recorder, label)
}

async fn run(yaml: &str) -> (PipelineOutcome, Arc<Recorder>) {
    let (outcome, recorder, label) =
        run_with(yaml, BTreeMap::new(), CancellationToken::new()).await;
    assert_eq!(
        leftovers(&label).await,
        0,
        "the run left containers or volumes behind"
    );
    (outcome, recorder)
}

/// Containers and volumes still labelled with the run.
async fn leftovers(label: &str) -> usize {
    let engine = Engine::connect("unix:///var/run/docker.sock", None).unwrap();
    engine.reap(Some(label)).await
}

fn state_of(outcome: &PipelineOutcome, stage: &str) -> StageState {
    outcome
        .stages
        .iter()
        .find(|(name, _)| name == stage)
        .unwrap()
        .1
        .state
}

#[tokio::test]
async fn a_successful_stage_sees_the_workspace_and_variables() {
    let (outcome, recorder) = run(
        "stages:\n  - name: look\n    image: IMAGE\n    env: {GREETING: hi}\n    run: |\n      cat README\n      echo \"$GREETING $GANTRY_REPO $GANTRY_BRANCH $CI $PWD\"\n",
    )
    .await;
    assert_eq!(outcome.state, StageState::Success, "{outcome:?}");
    assert_eq!(
        recorder.lines_of("look"),
        ["the checkout", "hi acme/app main true /workspace"]
    );
}

#[tokio::test]
async fn a_failing_command_fails_the_stage_with_its_exit_code_and_stops_later_stages() {
    let (outcome, recorder) = run(
        "stages:\n  - name: a\n    image: IMAGE\n    run: |\n      echo before\n      false\n      echo not reached\n  - name: b\n    image: IMAGE\n    run: echo never\n",
    )
    .await;
    assert_eq!(outcome.state, StageState::Failure);
    let a = &outcome.stages[0].1;
    assert_eq!((a.state, a.exit_code), (StageState::Failure, Some(1)));
    assert_eq!(
        recorder.lines_of("a"),
        ["before"],
        "sh -e stops at the first failure"
    );
    assert_eq!(state_of(&outcome, "b"), StageState::Skipped);
    assert_eq!(
        outcome.stages[1].1.message.as_deref(),
        Some("`a` did not succeed")
    );
}

#[tokio::test]
async fn a_stage_over_its_timeout_is_stopped() {
    let started = std::time::Instant::now();
    let (outcome, _) =
        run("stages:\n  - name: slow\n    image: IMAGE\n    timeout: 2s\n    run: sleep 60\n")
            .await;
    let slow = &outcome.stages[0].1;
    assert_eq!(slow.state, StageState::Failure);
    assert_eq!(slow.message.as_deref(), Some("timed out after 2s"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped, not waited out"
    );
}

#[tokio::test]
async fn a_flaky_stage_passes_on_retry() {
    let (outcome, recorder) = run(
        "stages:\n  - name: flaky\n    image: IMAGE\n    retries: 2\n    run: |\n      if [ -f tried ]; then echo second; exit 0; fi\n      touch tried\n      echo first\n      exit 1\n",
    )
    .await;
    let flaky = &outcome.stages[0].1;
    assert_eq!((flaky.state, flaky.attempts), (StageState::Success, 2));
    let lines = recorder.lines_of("flaky");
    assert_eq!(lines[0], "first");
    assert!(lines[1].starts_with("gantry: attempt 1 failed (exit code 1); retrying"));
    assert_eq!(lines[2], "second");
}

#[tokio::test]
async fn independent_stages_run_side_by_side() {
    // Each stage records when it ran; `a` and `b` need nothing, so their spans overlap.
    let stage = |name: &str| {
        format!(
            "  - name: {name}\n    image: IMAGE\n    needs: []\n    run: |\n      cut -d' ' -f1 /proc/uptime > {name}.start\n      sleep 2\n      cut -d' ' -f1 /proc/uptime > {name}.end\n"
        )
    };
    let yaml = format!(
        "stages:\n{}{}  - name: join\n    image: IMAGE\n    needs: [a, b]\n    run: cat a.start a.end b.start b.end\n",
        stage("a"),
        stage("b")
    );
    let (outcome, recorder) = run(&yaml).await;
    assert_eq!(outcome.state, StageState::Success, "{outcome:?}");
    let times: Vec<f64> = recorder
        .lines_of("join")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    let (a_start, a_end, b_start, b_end) = (times[0], times[1], times[2], times[3]);
    assert!(
        a_start < b_end && b_start < a_end,
        "a {a_start}..{a_end} and b {b_start}..{b_end} did not overlap"
    );
}

#[tokio::test]
async fn secrets_are_masked_wherever_they_appear_in_a_line() {
    let secrets = BTreeMap::from([("TOKEN".to_owned(), Secret::new("s3cr3t-v4lue"))]);
    let (outcome, recorder, label) = run_with(
        "stages:\n  - name: leak\n    image: IMAGE\n    secrets: [TOKEN]\n    run: |\n      echo \"$TOKEN\"\n      echo \"token=$TOKEN; again:$TOKEN!\"\n      echo \"$TOKEN\" >&2\n      printf 'no newline %s' \"$TOKEN\"\n",
        secrets,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.state, StageState::Success);
    let mut lines = recorder.lines_of("leak");
    lines.sort();
    assert_eq!(
        lines,
        ["****", "****", "no newline ****", "token=****; again:****!"]
    );
    assert_eq!(leftovers(&label).await, 0);
}

#[tokio::test]
async fn a_canceled_run_stops_its_stage_and_leaves_nothing() {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let (outcome, _, label) = run_with(
        "stages:\n  - name: long\n    image: IMAGE\n    run: sleep 120\n  - name: next\n    image: IMAGE\n    run: 'true'\n",
        BTreeMap::new(),
        cancel,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(state_of(&outcome, "long"), StageState::Canceled);
    assert_eq!(state_of(&outcome, "next"), StageState::Canceled);
    assert_eq!(outcome.state, StageState::Canceled);
    assert_eq!(leftovers(&label).await, 0);
}

#[tokio::test]
async fn the_validate_stage_runs_without_a_container() {
    let (outcome, recorder) =
        run("stages:\n  - name: manifests\n    validate: {paths: ['*.yml', '.gantry/*.yml']}\n")
            .await;
    assert_eq!(
        state_of(&outcome, "manifests"),
        StageState::Success,
        "{:?}",
        recorder.lines_of("manifests")
    );
}

/// `exclude` keeps a folder out of the check, and the stage's log says what the files it
/// checked were taken for (a chart's templates are not parsed).
#[tokio::test]
async fn the_validate_stage_leaves_out_what_is_excluded() {
    let files = [
        (
            "deploy/web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
        ),
        (
            "deploy/chart/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 1.0.0\n",
        ),
        (
            "deploy/chart/templates/cm.yaml",
            "{{- if .Values.on }}\nkind: ConfigMap\n{{- end }}\n",
        ),
        ("vendor/broken.yaml", "a: [\n"),
    ];
    let stage = |exclude: &str| {
        format!(
            "stages:\n  - name: manifests\n    validate: {{paths: ['**/*.yaml'], exclude: [{exclude}]}}\n"
        )
    };
    let run = |yaml: String| async move {
        let (outcome, recorder, _) = run_configured(
            &yaml,
            &files,
            BTreeMap::new(),
            CancellationToken::new(),
            settings(),
        )
        .await;
        (
            state_of(&outcome, "manifests"),
            recorder.lines_of("manifests"),
        )
    };
    let (state, lines) = run(stage("'vendor/**'")).await;
    assert_eq!(state, StageState::Success, "{lines:?}");
    assert_eq!(
        lines,
        ["checked 3 files: 1 cluster objects, 1 Helm charts (1 templates not parsed); 0 findings"]
    );
    let (state, lines) = run(stage("'nothing/**'")).await;
    assert_eq!(state, StageState::Failure);
    assert_eq!(lines[0], "vendor/broken.yaml:1:4: unclosed bracket '['");
}

/// A stage printing far more than `runner.max_log_size` keeps the cap's worth of whole lines
/// from its start and says how many bytes it dropped; its exit code still decides its state;
/// the secret on the line that crosses the cap is not revealed, not even in part.
#[tokio::test]
async fn output_beyond_the_log_cap_is_dropped_and_counted() {
    let secret = "s3cr3t-v4lue-that-is-long";
    let secrets = BTreeMap::from([("TOKEN".to_owned(), Secret::new(secret))]);
    // Lines of 50 bytes: 81 fill 4050 of the 4096; the 82nd carries the secret across the
    // cap; 118 more follow; then the stage fails.
    let yaml = "stages:\n  - name: loud\n    image: IMAGE\n    secrets: [TOKEN]\n    run: |\n      \
                for i in $(seq 1 81); do printf 'line %044d\\n' $i; done\n      \
                echo \"x$(printf '%050d' 0) $TOKEN\"\n      \
                for i in $(seq 83 200); do printf 'line %044d\\n' $i; done\n      \
                exit 3\n";
    let settings = RunnerSettings {
        max_log_size: 4096,
        ..settings()
    };
    let (outcome, recorder, label) =
        run_configured(yaml, &[], secrets, CancellationToken::new(), settings).await;
    assert_eq!(leftovers(&label).await, 0);
    let (_, loud) = &outcome.stages[0];
    assert_eq!(loud.state, StageState::Failure, "the exit code decides");
    assert_eq!(loud.exit_code, Some(3));
    // The secret's line, masked, is `x`, 50 zeros, ` ****` and its newline (its secret
    // spans the cap); then 118 lines of 50.
    let dropped = 57 + 118 * 50;
    assert_eq!(loud.log_dropped, dropped);
    let lines = recorder.lines_of("loud");
    assert_eq!(lines.len(), 82, "{lines:?}");
    let kept: usize = lines[..81].iter().map(|l| l.len() + 1).sum();
    assert_eq!(kept, 4050);
    assert_eq!(lines[80], format!("line {:044}", 81));
    assert_eq!(
        lines[81],
        format!(
            "gantry: the log was cut at 4 KiB (runner.max_log_size): {dropped} bytes of \
             output were dropped"
        )
    );
    assert!(
        lines.iter().all(|l| !l.contains("s3cr3t")),
        "a part of the secret leaked"
    );
}
