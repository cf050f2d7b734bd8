//! `gantry run`: a local checkout's pipelines, run now on the local Docker engine, with each
//! stage's output prefixed by its name, a live board of running stages on a terminal, and a
//! summary at the end.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::execute::{
    CACHE_VOLUME_PREFIX, CacheSetup, Executor, Observer, PipelineJob, PipelineOutcome, StageOutcome,
};
use crate::config::RunnerSettings;
use crate::domain::{ChangedPaths, Secret, StageState, Trigger};
use crate::git::Git;
use crate::pipeline::{self, RunContext};
use crate::runner::Engine;

/// What `gantry run` was asked to do.
#[derive(Debug, Clone)]
pub struct LocalRun {
    pub dir: PathBuf,
    pub pipeline: Option<String>,
    pub trigger: Trigger,
    pub branch: Option<String>,
    pub sha: Option<String>,
}

/// Runs the pipelines and returns whether all succeeded. Ctrl-C cancels: running stages are
/// stopped and everything the run created is removed.
pub async fn run(
    request: LocalRun,
    settings: RunnerSettings,
    registries: std::collections::BTreeMap<String, crate::config::RegistryCredentials>,
) -> anyhow::Result<bool> {
    let dir = request
        .dir
        .canonicalize()
        .with_context(|| format!("reading {}", request.dir.display()))?;
    let pipelines_dir = dir.join(".gantry");
    let loaded = pipeline::load_dir(&pipelines_dir, ".gantry")
        .with_context(|| format!("reading {}", pipelines_dir.display()))?;
    if loaded.is_empty() {
        bail!("no pipeline files in {}", pipelines_dir.display());
    }
    let git = Git::new(&dir);
    let branch = match request.branch.clone() {
        Some(branch) => branch,
        None => git
            .run(&["rev-parse", "--abbrev-ref", "HEAD"])
            .await
            .map(|out| out.trim().to_owned())
            .unwrap_or_else(|_| "main".into()),
    };
    let sha = match request.sha.clone() {
        Some(sha) => sha,
        None => git
            .run(&["rev-parse", "HEAD"])
            .await
            .map(|out| out.trim().to_owned())
            .unwrap_or_else(|_| "0".repeat(40)),
    };
    let run_id = i64::from(std::process::id());
    let run_label = format!(
        "local-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let workspace = super::WORKSPACE_DIR;
    // Secrets come from the environment: a stage asking for TOKEN gets $TOKEN.
    let secrets = secrets_from_env(&loaded);
    let (tag, base_branch, trigger_branch) = match request.trigger {
        Trigger::Tag => (Some(branch.as_str()), None, None),
        Trigger::PullRequest => (None, Some(branch.as_str()), Some(branch.as_str())),
        Trigger::Push | Trigger::Manual | Trigger::Schedule => (None, None, Some(branch.as_str())),
    };
    let context = RunContext {
        run_id,
        trigger: request.trigger,
        repo: dir.file_name().and_then(|n| n.to_str()).unwrap_or("local"),
        commit_sha: &sha,
        branch: trigger_branch,
        tag,
        base_branch,
        pr_number: None,
        from_fork: false,
        workspace,
        changed_paths: ChangedPaths::Unknown,
        secrets: &secrets,
        variables: &[],
        scheduled: None,
    };

    let printer = Arc::new(Printer::new());
    let mut plans = Vec::new();
    let mut all_ok = true;
    for entry in &loaded {
        let pipeline = match &entry.result {
            Ok(pipeline) => pipeline,
            Err(diagnostics) => {
                if request.pipeline.is_none() {
                    for diagnostic in diagnostics {
                        printer.note(&format!("✘ {diagnostic}"));
                    }
                    all_ok = false;
                }
                continue;
            }
        };
        if request
            .pipeline
            .as_ref()
            .is_some_and(|wanted| *wanted != pipeline.name)
        {
            continue;
        }
        match pipeline.plan(&context) {
            Ok(Some(plan)) => plans.push(plan),
            Ok(None) => printer.note(&format!(
                "– {}: not triggered by this {}",
                pipeline.name,
                request.trigger.as_str()
            )),
            Err(err) => {
                printer.note(&format!("✘ {err}"));
                all_ok = false;
            }
        }
    }
    if let Some(wanted) = &request.pipeline
        && plans.is_empty()
        && all_ok
    {
        bail!(
            "no pipeline named `{wanted}` runs for this {}",
            request.trigger.as_str()
        );
    }

    let engine = Engine::connect(&settings.docker_host, settings.docker_tls.as_ref())?;
    engine.ping().await?;
    let cache_max_size = settings.cache_max_size;
    let executor = Executor::new(engine.clone(), Arc::new(settings)).with_registries(registries);
    let cancel = CancellationToken::new();
    let interrupted = {
        let cancel = cancel.clone();
        let printer = printer.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                printer.note("interrupted: stopping stages and cleaning up");
                cancel.cancel();
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        let job = PipelineJob {
            plan,
            run_label: run_label.clone(),
            checkout: dir.clone(),
            cancel: cancel.clone(),
            trusted: false,
            forge: None,
            // The same caches as the server's runner, in a scope of the folder's own.
            cache: Some(CacheSetup {
                volume: format!("{CACHE_VOLUME_PREFIX}-local"),
                repo: format!("local{}", dir.display()),
                save: format!("local/{branch}"),
                restore: vec![format!("local/{branch}")],
                max_bytes: cache_max_size,
            }),
        };
        let executor = executor.clone();
        let observer: Arc<dyn Observer> = printer.clone();
        tasks.spawn(async move {
            let name = job.plan.pipeline.clone();
            (name, executor.run(job, observer).await)
        });
    }
    let mut outcomes: Vec<(String, PipelineOutcome)> = Vec::new();
    while let Some(result) = tasks.join_next().await {
        outcomes.push(result.context("a pipeline task failed")?);
    }
    interrupted.abort();
    if cancel.is_cancelled() {
        let removed = engine.reap(Some(&run_label)).await;
        if removed > 0 {
            printer.note(&format!(
                "removed {removed} leftover container(s) and volume(s)"
            ));
        }
    }
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    printer.summary(&outcomes);
    Ok(all_ok
        && !cancel.is_cancelled()
        && outcomes.iter().all(|(_, o)| o.state == StageState::Success))
}

fn secrets_from_env(loaded: &[pipeline::Loaded]) -> std::collections::BTreeMap<String, Secret> {
    loaded
        .iter()
        .filter_map(|entry| entry.result.as_ref().ok())
        .flat_map(|pipeline| {
            pipeline
                .stages
                .iter()
                .flat_map(|stage| stage.secrets.iter())
        })
        .filter_map(|name| {
            std::env::var(name)
                .ok()
                .map(|value| (name.clone(), Secret::new(value)))
        })
        .collect()
}

/// How often the board of running stages is redrawn on a terminal.
const TICK: Duration = Duration::from_millis(250);

/// Prints stage output to stdout (`[pipeline/stage] line`) and progress to stderr: on a
/// terminal, a live board of the running stages at its bottom, with every line printed
/// above it (never beside it); elsewhere (CI logs, pipes) plain lines only.
struct Printer {
    out: Mutex<std::io::BufWriter<std::io::Stdout>>,
    out_is_terminal: bool,
    err_is_terminal: bool,
    /// Hidden when stderr is not a terminal.
    board: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Printer {
    fn new() -> Self {
        Self {
            out: Mutex::new(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            )),
            out_is_terminal: std::io::stdout().is_terminal(),
            err_is_terminal: std::io::stderr().is_terminal(),
            board: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Writes with the board out of the way, when there is one on the terminal.
    fn above_board<T>(&self, write: impl FnOnce() -> T) -> T {
        if self.err_is_terminal {
            self.board.suspend(write)
        } else {
            write()
        }
    }

    fn note(&self, line: &str) {
        self.above_board(|| {
            self.flush_out();
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        });
    }

    fn flush_out(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }

    fn summary(&self, outcomes: &[(String, PipelineOutcome)]) {
        let _ = self.board.clear();
        self.flush_out();
        let mut rows = vec![(
            "STAGE".to_owned(),
            "STATE".to_owned(),
            "TIME".to_owned(),
            "NOTE".to_owned(),
        )];
        for (pipeline, outcome) in outcomes {
            for (stage, result) in &outcome.stages {
                rows.push((
                    format!("{pipeline}/{stage}"),
                    result.state.as_str().to_owned(),
                    format_duration(result.duration),
                    result.message.clone().unwrap_or_default(),
                ));
            }
        }
        let width = |pick: fn(&(String, String, String, String)) -> &String| {
            rows.iter()
                .map(|row| pick(row).chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(|r| &r.0), width(|r| &r.1), width(|r| &r.2));
        let mut err = std::io::stderr().lock();
        for (stage, state, time, note) in &rows {
            let _ = writeln!(err, "{stage:<w0$}  {state:<w1$}  {time:>w2$}  {note}");
        }
    }
}

fn format_duration(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

impl Observer for Printer {
    fn cache_report(&self, report: &crate::store::CacheReport) {
        let restored = match &report.source_key {
            Some(source) if *source != report.key => format!("restored from `{source}`"),
            _ => report.outcome.as_str().to_owned(),
        };
        let line = match &report.saved {
            None => format!(
                "◆ {}: cache `{}`: {restored} ({:.1}s)",
                report.pipeline, report.key, report.restore_seconds
            ),
            Some(saved) => format!("◆ {}: cache `{}`: {saved}", report.pipeline, report.key),
        };
        self.note(&line);
    }

    fn stage_started(&self, pipeline: &str, stage: &str) {
        let name = format!("{pipeline}/{stage}");
        self.note(&format!("▶ {name} started"));
        let bar = self
            .board
            .add(ProgressBar::new_spinner().with_message(name.clone()));
        bar.set_style(
            ProgressStyle::with_template("{spinner} ⏵ {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(TICK);
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(name, bar);
        }
    }

    fn stage_finished(&self, pipeline: &str, stage: &str, outcome: &StageOutcome) {
        let name = format!("{pipeline}/{stage}");
        if let Some(bar) = self
            .bars
            .lock()
            .ok()
            .and_then(|mut bars| bars.remove(&name))
        {
            bar.finish_and_clear();
            self.board.remove(&bar);
        }
        let mark = match outcome.state {
            StageState::Success => "✔",
            StageState::Skipped => "–",
            _ => "✘",
        };
        let note = outcome
            .message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        self.note(&format!(
            "{mark} {name} {} in {}{note}",
            outcome.state.as_str(),
            format_duration(outcome.duration)
        ));
    }

    fn log_line(&self, pipeline: &str, stage: &str, line: &str) {
        let write = || {
            let Ok(mut out) = self.out.lock() else { return };
            let _ = writeln!(out, "[{pipeline}/{stage}] {line}");
            if self.out_is_terminal {
                let _ = out.flush();
            }
        };
        // Only a terminal shared with the board needs it moved out of the way.
        if self.out_is_terminal {
            self.above_board(write);
        } else {
            write();
        }
    }
}
