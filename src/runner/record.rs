//! Recording a server run as it happens: stage states and output go to the store (output in
//! chunks of many lines), written by one task so stages never wait on the database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::execute::{Observer, StageOutcome};
use crate::config::Settings;
use crate::domain::{CommitStatus, StageState, StatusState};
use crate::forge::{clamp_description, status_context};
use crate::store::{BumpReport, CacheReport, Hold, LogChunk, StageUpdate, Store};

/// Output is stored when a stage's buffer reaches this size…
const CHUNK_BYTES: usize = 64 * 1024;
/// …or after this long, so a quiet stage's lines still show up promptly.
const CHUNK_INTERVAL: Duration = Duration::from_millis(250);

enum Message {
    Stage {
        pipeline: String,
        stage: String,
        state: StageState,
        outcome: Option<StageOutcome>,
    },
    Line {
        pipeline: String,
        stage: String,
        line: String,
    },
    Bump(BumpReport),
    Cache(CacheReport),
}

/// What every commit status of one run shares; the recorder reports a pipeline as running
/// when its first stage starts.
#[derive(Debug, Clone)]
pub struct StatusTemplate {
    pub status: CommitStatus,
}

impl StatusTemplate {
    pub fn for_pipeline(
        &self,
        pipeline: &str,
        state: StatusState,
        description: &str,
    ) -> CommitStatus {
        CommitStatus {
            context: status_context(pipeline),
            state,
            description: clamp_description(description),
            ..self.status.clone()
        }
    }
}

/// The observer the scheduler gives to a run's pipelines.
pub struct Recorder {
    sender: mpsc::UnboundedSender<Message>,
}

impl Recorder {
    /// Starts the writer task. `positions` gives each (pipeline, stage) its place in its
    /// pipeline. The task ends, having written everything, once the recorder is dropped.
    /// `deploy` says which environments a bump deploys to.
    pub fn start(
        store: Store,
        hold: Hold,
        positions: HashMap<(String, String), i64>,
        statuses: Option<StatusTemplate>,
        deploy: Arc<Settings>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(write(store, hold, positions, statuses, deploy, receiver));
        (Self { sender }, task)
    }
}

impl Observer for Recorder {
    fn stage_started(&self, pipeline: &str, stage: &str) {
        let _ = self.sender.send(Message::Stage {
            pipeline: pipeline.into(),
            stage: stage.into(),
            state: StageState::Running,
            outcome: None,
        });
    }

    fn stage_finished(&self, pipeline: &str, stage: &str, outcome: &StageOutcome) {
        let _ = self.sender.send(Message::Stage {
            pipeline: pipeline.into(),
            stage: stage.into(),
            state: outcome.state,
            outcome: Some(outcome.clone()),
        });
    }

    fn log_line(&self, pipeline: &str, stage: &str, line: &str) {
        let _ = self.sender.send(Message::Line {
            pipeline: pipeline.into(),
            stage: stage.into(),
            line: line.into(),
        });
    }

    fn bump_finished(&self, _pipeline: &str, _stage: &str, report: &BumpReport) {
        let _ = self.sender.send(Message::Bump(report.clone()));
    }

    fn cache_report(&self, report: &CacheReport) {
        let _ = self.sender.send(Message::Cache(report.clone()));
    }
}

#[derive(Default)]
struct Buffer {
    text: String,
    lines: i64,
    /// Lines of this stage stored so far.
    stored: i64,
}

async fn write(
    store: Store,
    hold: Hold,
    positions: HashMap<(String, String), i64>,
    statuses: Option<StatusTemplate>,
    deploy: Arc<Settings>,
    mut receiver: mpsc::UnboundedReceiver<Message>,
) {
    let run_id = hold.run_id;
    let mut buffers: HashMap<(String, String), Buffer> = HashMap::new();
    let mut reported_running: HashSet<String> = HashSet::new();
    let mut ticker = tokio::time::interval(CHUNK_INTERVAL);
    loop {
        let message = tokio::select! {
            message = receiver.recv() => message,
            _ = ticker.tick() => {
                for (key, buffer) in buffers.iter_mut() {
                    flush(&store, &hold, key, buffer).await;
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        match message {
            Message::Line {
                pipeline,
                stage,
                line,
            } => {
                let key = (pipeline, stage);
                let buffer = buffers.entry(key.clone()).or_default();
                buffer.text.push_str(&line);
                buffer.text.push('\n');
                buffer.lines += 1;
                if buffer.text.len() >= CHUNK_BYTES {
                    flush(&store, &hold, &key, buffer).await;
                }
            }
            Message::Bump(report) => {
                let recorded = match store.record_bump(run_id, &report).await {
                    Ok(bump_id) => {
                        let status = statuses.as_ref().map(|template| &template.status);
                        crate::deploy::open_deployments(
                            &store,
                            &deploy.deploy,
                            run_id,
                            bump_id,
                            &report,
                            status,
                        )
                        .await
                    }
                    Err(err) => Err(err),
                };
                if let Err(err) = recorded {
                    tracing::error!(run_id, error = %format!("{err:#}"), "recording a bump failed");
                }
            }
            Message::Cache(report) => {
                if let Err(err) = store.record_cache(run_id, &report).await {
                    tracing::error!(run_id, error = %format!("{err:#}"), "recording a cache failed");
                }
            }
            Message::Stage {
                pipeline,
                stage,
                state,
                outcome,
            } => {
                let key = (pipeline, stage);
                if let Some(buffer) = buffers.get_mut(&key) {
                    flush(&store, &hold, &key, buffer).await;
                }
                let update = StageUpdate {
                    pipeline: &key.0,
                    stage: &key.1,
                    position: positions.get(&key).copied().unwrap_or(0),
                    state,
                    exit_code: outcome.as_ref().and_then(|o| o.exit_code),
                    message: outcome.as_ref().and_then(|o| o.message.as_deref()),
                    attempts: outcome.as_ref().map_or(0, |o| i64::from(o.attempts)),
                    started: state == StageState::Running,
                    finished: outcome.is_some(),
                    log_dropped: outcome
                        .as_ref()
                        .map_or(0, |o| o.log_dropped.min(i64::MAX as u64) as i64),
                };
                if let Err(err) = store.set_stage(&hold, &update).await {
                    tracing::error!(run_id, error = %format!("{err:#}"), "recording a stage failed");
                }
                if let Some(template) = &statuses
                    && state == StageState::Running
                    && reported_running.insert(key.0.clone())
                {
                    let status = template.for_pipeline(
                        &key.0,
                        StatusState::Running,
                        &format!("running {}", key.1),
                    );
                    if let Err(err) = store.queue_status(&hold, &status).await {
                        tracing::error!(run_id, error = %format!("{err:#}"), "queueing a status failed");
                    }
                }
            }
        }
    }
    for (key, buffer) in buffers.iter_mut() {
        flush(&store, &hold, key, buffer).await;
    }
}

async fn flush(store: &Store, hold: &Hold, key: &(String, String), buffer: &mut Buffer) {
    if buffer.lines == 0 {
        return;
    }
    let chunk = LogChunk {
        run_id: hold.run_id,
        pipeline: key.0.clone(),
        stage: key.1.clone(),
        first_line: buffer.stored + 1,
        line_count: buffer.lines,
        text: std::mem::take(&mut buffer.text),
    };
    buffer.stored += buffer.lines;
    buffer.lines = 0;
    if let Err(err) = store.append_log(hold, &chunk).await {
        tracing::error!(run_id = hold.run_id, error = %format!("{err:#}"), "storing output failed");
    }
}
