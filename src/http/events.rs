//! `GET /api/runs/{id}/events`: a run watched live, as Server-Sent Events.
//!
//! Output is stored in chunks whose ids only grow, so a chunk's id is its event's id and a
//! reconnecting client's `Last-Event-ID` (or `?after=`, for a page that rendered the log
//! so far) says exactly what it has seen: only later chunks are sent. Stage and run states
//! are sent as a whole snapshot (`event: state`, without an id) whenever they change, and
//! once at the start; `event: end` follows the last output of a finished run.
//!
//! The stream reads the store, so it works the same whether the run executes in this
//! process or in a runner replica elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::AppState;
use super::LOG_TAIL_BYTES;
use super::api::ApiError;
use super::api::LOG_PAGE_CHUNKS;
use super::auth::readable_run;
use crate::auth::Viewer;
use crate::domain::RunState;
use crate::store::{LogPage, PipelineResult, Store};

/// How often the store is read for news: the recorder stores output every 250 ms.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Events buffered for a slow client before the stream waits for it.
const BUFFERED_EVENTS: usize = 64;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The last output chunk the client has (a page that rendered the log so far).
    after: Option<i64>,
}

/// One event of the stream: `state` (data: the run's and every pipeline's and stage's
/// state), `log` (data: output lines; id: the chunk's) or `end` (data: the final state).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    event: String,
    /// JSON.
    data: String,
    id: Option<String>,
}

/// The `data` of a `log` event.
#[derive(Serialize)]
struct LogEvent<'a> {
    pipeline: &'a str,
    stage: &'a str,
    first_line: i64,
    lines: Vec<&'a str>,
}

/// The `data` of a `state` event.
#[derive(Serialize, PartialEq)]
struct StateEvent {
    state: RunState,
    description: Option<String>,
    pipelines: Vec<PipelineResult>,
}

/// The run live: `state` events with every pipeline's and stage's state, `log` events with
/// output lines (their id the chunk's, for `Last-Event-ID`), and `end` once it finished.
#[utoipa::path(
    get, path = "/api/runs/{id}/events", tag = "runs",
    params(
        ("id" = i64, Path, description = "The run"),
        EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, description = "Replays only what came after it"),
    ),
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Server-Sent Events", content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = "A query or header of the wrong type", body = super::ErrorBody),
        (status = 401, description = "Sign in to see this run", body = super::ErrorBody),
        (status = 404, description = "No such run, or one the caller may not read", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", body = super::ErrorBody),
    )
)]
pub async fn run_events(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
    query: web::Query<EventsQuery>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    readable_run(&state, &viewer, id).await?;
    let header = request
        .headers()
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::BadQuery("Last-Event-ID is not an event id".into()))
        })
        .transpose()?;
    let after = header.or(query.after).unwrap_or(0).max(0);
    let (sender, receiver) = mpsc::channel::<web::Bytes>(BUFFERED_EVENTS);
    tokio::spawn(stream(state.store.clone(), id, after, sender));
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok::<_, actix_web::Error>(bytes), receiver))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// Feeds one client until the run has ended and all its output was sent, or the client
/// went away (a failed send).
async fn stream(store: Store, run_id: i64, mut after: i64, sender: mpsc::Sender<web::Bytes>) {
    // What came before each stage's last LOG_TAIL_BYTES is not replayed.
    let skip: BTreeMap<(String, String), i64> = store
        .log_tails(run_id, LOG_TAIL_BYTES)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(stage, tail)| (stage, tail.after))
        .collect();
    let mut last_state: Option<StateEvent> = None;
    let mut quiet = Duration::ZERO;
    loop {
        if sender.is_closed() {
            return;
        }
        // Read the state first: output stored before a run ends is then read after it.
        let run = match store.run(run_id).await {
            Ok(Some(run)) => run,
            _ => return,
        };
        let finished = run.state.is_finished();
        let pipelines = store.pipeline_results(run_id).await.unwrap_or_default();
        let mut sent = false;
        loop {
            let page = LogPage::after(after, LOG_PAGE_CHUNKS);
            let chunks = store.log_chunks(run_id, &page).await.unwrap_or_default();
            let full = chunks.len() as i64 == LOG_PAGE_CHUNKS;
            for (id, chunk) in &chunks {
                after = *id;
                let key = (chunk.pipeline.clone(), chunk.stage.clone());
                if skip.get(&key).is_some_and(|&cut| *id <= cut) {
                    continue;
                }
                let data = LogEvent {
                    pipeline: &chunk.pipeline,
                    stage: &chunk.stage,
                    first_line: chunk.first_line,
                    lines: chunk.text.lines().collect(),
                };
                if !send(&sender, Some(*id), "log", &data).await {
                    return;
                }
                sent = true;
            }
            if !full {
                break;
            }
        }
        let snapshot = StateEvent {
            state: run.state,
            description: run.description.clone(),
            pipelines,
        };
        if last_state.as_ref() != Some(&snapshot) {
            if !send(&sender, None, "state", &snapshot).await {
                return;
            }
            last_state = Some(snapshot);
            sent = true;
        }
        if finished {
            let _ = send(
                &sender,
                None,
                "end",
                &serde_json::json!({ "state": run.state }),
            )
            .await;
            return;
        }
        quiet = if sent {
            Duration::ZERO
        } else {
            quiet + POLL_INTERVAL
        };
        if quiet >= KEEPALIVE_INTERVAL {
            if sender
                .send(web::Bytes::from_static(b": keep-alive\n\n"))
                .await
                .is_err()
            {
                return;
            }
            quiet = Duration::ZERO;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Writes one event; `false` when the client is gone.
async fn send(
    sender: &mpsc::Sender<web::Bytes>,
    id: Option<i64>,
    event: &str,
    data: &impl Serialize,
) -> bool {
    let Ok(json) = serde_json::to_string(data) else {
        return true;
    };
    let mut text = String::new();
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str(&format!("event: {event}\ndata: {json}\n\n"));
    sender.send(web::Bytes::from(text)).await.is_ok()
}
