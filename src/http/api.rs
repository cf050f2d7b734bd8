//! The JSON API: run history.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{actionable_run, readable_run};
use super::{AppState, ErrorBody, error_body};
use crate::auth::Viewer;
use crate::domain::{Decision, RepoName, RunState, Trigger};
use crate::runner::resolve_abandoned_pipelines;
use crate::store::{
    BumpReport, CacheReport, DeployReport, LogPage, PipelineResult, Run, RunFilter, RunnerRecord,
    StatusReport,
};

/// Runs per page when the caller does not say.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page served: keeps one request's work bounded.
const MAX_PAGE_SIZE: u32 = 500;
/// Output chunks read from the store per page of a streamed log: chunks are at most 64 KiB
/// (and a line), so a reader holds about 128 KiB at a time (twice, while it is formatted,
/// and more while the store's driver copies rows).
pub(super) const LOG_PAGE_CHUNKS: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("run {0} has already finished")]
    Finished(i64),
    #[error("run {id} is not waiting for approval: it is {state}")]
    NotBlocked { id: i64, state: RunState },
    #[error("run {0} not found")]
    NotFound(i64),
    #[error("repo `{0}` not found")]
    UnknownRepo(String),
    /// Well-formed, but not something Gantry can do.
    #[error("{0}")]
    Unprocessable(String),
    #[error("the store is unavailable")]
    Store(#[source] anyhow::Error),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Finished(_) | ApiError::NotBlocked { .. } => StatusCode::CONFLICT,
            ApiError::NotFound(_) | ApiError::UnknownRepo(_) => StatusCode::NOT_FOUND,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Store(err) = self {
            tracing::error!(error = ?err, "API store query failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized(_)) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(error_body(&self.to_string()))
    }
}

/// `{"canceled": id}`
#[derive(Serialize, ToSchema)]
pub struct Canceled {
    canceled: i64,
}

/// `{"run_id": new, "rerun_of": id}`
#[derive(Serialize, ToSchema)]
pub struct Rerun {
    run_id: i64,
    rerun_of: i64,
}

/// `{"approved": id}`
#[derive(Serialize, ToSchema)]
pub struct Approved {
    approved: i64,
}

/// `{"declined": id}`
#[derive(Serialize, ToSchema)]
pub struct Declined {
    declined: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    runs: Vec<Run>,
}

#[derive(Serialize, ToSchema)]
pub struct RunnerList {
    runners: Vec<RunnerRecord>,
}

/// A queued run ends at once; a running one is stopped by its runner within a heartbeat.
#[utoipa::path(
    post, path = "/api/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path, description = "The run")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 202, description = "Cancel requested", body = Canceled),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = ErrorBody),
        (status = 404, description = "No such run, or one the caller may not read", body = ErrorBody),
        (status = 409, description = "The run has already finished", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn cancel_run(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = actionable_run(&state, &viewer, &request, None, id.into_inner())
        .await?
        .id;
    if state
        .store
        .request_cancel(id)
        .await
        .map_err(ApiError::Store)?
    {
        Ok(HttpResponse::Accepted().json(Canceled { canceled: id }))
    } else {
        Err(ApiError::Finished(id))
    }
}

/// The same event queued again as a new run.
#[utoipa::path(
    post, path = "/api/runs/{id}/rerun", tag = "runs",
    params(("id" = i64, Path, description = "The run")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 202, description = "Queued again", body = Rerun),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = ErrorBody),
        (status = 404, description = "No such run, or one the caller may not read", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn rerun_run(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = actionable_run(&state, &viewer, &request, None, id.into_inner())
        .await?
        .id;
    let new_id = state
        .store
        .rerun(id)
        .await
        .map_err(ApiError::Store)?
        .ok_or(ApiError::NotFound(id))?;
    Ok(HttpResponse::Accepted().json(Rerun {
        run_id: new_id,
        rerun_of: id,
    }))
}

/// A blocked run is queued, its approver kept on it.
#[utoipa::path(
    post, path = "/api/runs/{id}/approve", tag = "runs",
    params(("id" = i64, Path, description = "The run")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 202, description = "Approved and queued", body = Approved),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = ErrorBody),
        (status = 404, description = "No such run, or one the caller may not read", body = ErrorBody),
        (status = 409, description = "The run is not waiting for approval", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn approve_run(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = decide(&state, &request, &viewer, None, *id, Decision::Approved).await?;
    Ok(HttpResponse::Accepted().json(Approved { approved: id }))
}

/// A blocked run ends `declined`, never having run.
#[utoipa::path(
    post, path = "/api/runs/{id}/decline", tag = "runs",
    params(("id" = i64, Path, description = "The run")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Declined", body = Declined),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = ErrorBody),
        (status = 404, description = "No such run, or one the caller may not read", body = ErrorBody),
        (status = 409, description = "The run is not waiting for approval", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn decline_run(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = decide(&state, &request, &viewer, None, *id, Decision::Declined).await?;
    Ok(HttpResponse::Ok().json(Declined { declined: id }))
}

/// Approves or declines the blocked run `id` for `viewer`, who must be allowed to act on
/// it; returns its id. Of two decisions at once, the first holds.
pub(super) async fn decide(
    state: &AppState,
    request: &HttpRequest,
    viewer: &Viewer,
    form_token: Option<&str>,
    id: i64,
    decision: Decision,
) -> Result<i64, ApiError> {
    let run = actionable_run(state, viewer, request, form_token, id).await?;
    let by = viewer.actor();
    match state
        .store
        .decide_run(run.id, decision, &by)
        .await
        .map_err(ApiError::Store)?
    {
        Ok(()) => {}
        Err(Some(now)) => return Err(ApiError::NotBlocked { id, state: now }),
        Err(None) => return Err(ApiError::NotFound(id)),
    }
    state.metrics.observe_approval(decision.as_str());
    tracing::info!(run_id = id, decision = decision.as_str(), by, "run decided");
    if decision == Decision::Declined {
        // Its pipelines were announced pending: the forge hears the end now, not at a
        // runner's next upkeep.
        resolve_abandoned_pipelines(&state.store)
            .await
            .map_err(ApiError::Store)?;
    }
    Ok(id)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs of this repo (`owner/name`).
    repo: Option<String>,
    /// Only runs in this state.
    #[param(value_type = Option<RunState>)]
    state: Option<String>,
    /// A branch (`main`) or a full ref (`refs/tags/v1`).
    branch: Option<String>,
    /// The kind of event: `push`, `pull_request`, …
    #[param(value_type = Option<Trigger>)]
    event: Option<String>,
    /// Only runs older than this id: the next page.
    before: Option<i64>,
    /// Runs per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The full ref a `branch` filter means: a name is a branch, `refs/…` is taken as it is.
pub(super) fn ref_filter(branch: Option<&str>) -> Option<String> {
    let branch = branch.map(str::trim).filter(|branch| !branch.is_empty())?;
    Some(if branch.starts_with("refs/") {
        branch.to_owned()
    } else {
        format!("refs/heads/{branch}")
    })
}

/// The event kind an `event` filter names; an empty one filters nothing.
fn trigger_filter(event: Option<&str>) -> Result<Option<Trigger>, ApiError> {
    event
        .filter(|event| !event.is_empty())
        .map(|name| {
            name.parse::<Trigger>().map_err(|_| {
                let known: Vec<_> = Trigger::ALL.iter().map(|kind| kind.as_str()).collect();
                ApiError::BadQuery(format!(
                    "unknown event `{name}`; expected one of {}",
                    known.join(", ")
                ))
            })
        })
        .transpose()
}

/// Run history, newest first, as the caller may read it.
#[utoipa::path(
    get, path = "/api/runs", tag = "runs",
    params(ListQuery),
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "A page of runs", body = RunList),
        (status = 400, description = "A filter that means nothing", body = ErrorBody),
        (status = 401, description = "A token or session that is not valid", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn list_runs(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let run_state = query
        .state
        .as_deref()
        .map(|name| {
            name.parse::<RunState>().map_err(|_| {
                let known: Vec<_> = RunState::ALL.iter().map(|state| state.as_str()).collect();
                ApiError::BadQuery(format!(
                    "unknown state `{name}`; expected one of {}",
                    known.join(", ")
                ))
            })
        })
        .transpose()?;
    let filter = RunFilter {
        git_ref: ref_filter(query.branch.as_deref()),
        trigger: trigger_filter(query.event.as_deref())?,
        repo: query.repo.map(RepoName::new),
        state: run_state,
        before: query.before,
        limit: match query.limit {
            None => DEFAULT_PAGE_SIZE,
            Some(limit @ 1..=MAX_PAGE_SIZE) => limit,
            Some(limit) => {
                return Err(ApiError::BadQuery(format!(
                    "limit {limit} is not between 1 and {MAX_PAGE_SIZE}"
                )));
            }
        },
        readable: state
            .access
            .readable_repos(&viewer)
            .await
            .map_err(ApiError::Store)?,
    };
    let runs = state
        .store
        .list_runs(&filter)
        .await
        .map_err(ApiError::Store)?;
    Ok(HttpResponse::Ok().json(RunList { runs }))
}

/// The runner fleet: each runner's name, labels, capacity, runs in hand, last heartbeat
/// and state.
#[utoipa::path(
    get, path = "/api/runners", tag = "runners",
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The runners sharing the store", body = RunnerList),
        (status = 401, description = "Visitors may not see the fleet here", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn list_runners(
    state: web::Data<AppState>,
    viewer: Viewer,
) -> Result<HttpResponse, ApiError> {
    if !super::may_see_fleet(&state, &viewer) {
        return Err(ApiError::Unauthorized("sign in to see the runners"));
    }
    let lease = state.settings.runner.lease.as_millis() as i64;
    let runners = state.store.runners(lease).await.map_err(ApiError::Store)?;
    Ok(HttpResponse::Ok().json(RunnerList { runners }))
}

/// One run: its pipelines and stages, statuses, bumps, caches and deployments.
#[utoipa::path(
    get, path = "/api/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "The run")),
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 401, description = "Sign in to see this run", body = ErrorBody),
        (status = 404, description = "No such run, or one the caller may not read", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn get_run(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let run = readable_run(&state, &viewer, id).await?;
    let pipelines = state
        .store
        .pipeline_results(id)
        .await
        .map_err(ApiError::Store)?;
    let statuses = state
        .store
        .run_statuses(id)
        .await
        .map_err(ApiError::Store)?;
    let bumps = state.store.run_bumps(id).await.map_err(ApiError::Store)?;
    let caches = state.store.run_caches(id).await.map_err(ApiError::Store)?;
    let deployments = state
        .store
        .run_deployments(id)
        .await
        .map_err(ApiError::Store)?;
    Ok(HttpResponse::Ok().json(RunDetail {
        run,
        pipelines,
        statuses,
        bumps,
        caches,
        deployments,
    }))
}

/// The run with this id, or the 404 the API answers for a missing one.
pub(super) async fn existing_run(state: &AppState, id: i64) -> Result<Run, ApiError> {
    state
        .store
        .run(id)
        .await
        .map_err(ApiError::Store)?
        .ok_or(ApiError::NotFound(id))
}

/// One run with what it produced: each pipeline's and stage's result, and the commit
/// statuses reported for it with their delivery state.
#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    run: Run,
    pipelines: Vec<PipelineResult>,
    statuses: Vec<StatusReport>,
    /// What bump stages changed in config repos.
    bumps: Vec<BumpReport>,
    /// How each pipeline's caches were restored and saved.
    caches: Vec<CacheReport>,
    /// Where each bump stands in each environment it deploys to.
    deployments: Vec<DeployReport>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// `PIPELINE/STAGE`: only that stage's output.
    #[param(pattern = "^[^/]+/.+$")]
    stage: Option<String>,
}

/// The run's output as text, each line prefixed with `[pipeline/stage]` (or only one
/// stage's, bare), streamed page by page from the store: however large the log and however
/// many read it, each reader holds one page. Gzipped when the client asks.
#[utoipa::path(
    get, path = "/api/runs/{id}/log", tag = "runs",
    params(("id" = i64, Path, description = "The run"), LogQuery),
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The log", content_type = "text/plain", body = String),
        (status = 400, description = "A stage that is not `PIPELINE/STAGE`", body = ErrorBody),
        (status = 401, description = "Sign in to see this run", body = ErrorBody),
        (status = 404, description = "No such run, or one the caller may not read", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn get_log(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    readable_run(&state, &viewer, id).await?;
    let stage = match &query.stage {
        None => None,
        Some(text) => Some(
            text.split_once('/')
                .map(|(pipeline, stage)| (pipeline.to_owned(), stage.to_owned()))
                .ok_or_else(|| {
                    ApiError::BadQuery(format!("stage `{text}` is not `PIPELINE/STAGE`"))
                })?,
        ),
    };
    // Stage names come from the query: only safe characters reach the header.
    let filename = match &stage {
        Some((pipeline, stage)) => format!("run-{id}-{pipeline}-{stage}.log")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        None => format!("run-{id}.log"),
    };
    let pages = futures_util::stream::unfold(
        (state.store.clone(), 0_i64, false),
        move |(store, after, done)| {
            let stage = stage.clone();
            async move {
                if done {
                    return None;
                }
                let filter = stage.as_ref().map(|(p, s)| (p.as_str(), s.as_str()));
                let page = LogPage {
                    stage: filter,
                    ..LogPage::after(after, LOG_PAGE_CHUNKS)
                };
                let chunks = match store.log_chunks(id, &page).await {
                    Ok(chunks) => chunks,
                    Err(err) => {
                        tracing::error!(error = ?err, run_id = id, "streaming a log failed");
                        return Some((Err(ApiError::Store(err).into()), (store, after, true)));
                    }
                };
                let last = chunks.last()?.0;
                let text = log_page_text(chunks.iter().map(|(_, chunk)| chunk), filter.is_none());
                let page: Result<web::Bytes, actix_web::Error> = Ok(web::Bytes::from(text));
                Some((page, (store, last, false)))
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(pages))
}

/// A page of a downloaded log as text, each line prefixed with `[pipeline/stage] ` when the
/// download is the whole run's. Sized before it is written: eight slow readers of a large
/// log each hold one page, not the page and the copies of growing it.
fn log_page_text<'a>(
    chunks: impl Iterator<Item = &'a crate::store::LogChunk> + Clone,
    prefixed: bool,
) -> String {
    let prefix = |chunk: &crate::store::LogChunk| {
        if prefixed {
            chunk.pipeline.len() + chunk.stage.len() + 4
        } else {
            0
        }
    };
    // The stored line count, not a second pass over the text: it only sizes the string.
    let size = chunks
        .clone()
        .map(|chunk| {
            let lines = usize::try_from(chunk.line_count).unwrap_or(0);
            chunk.text.len() + 1 + lines * prefix(chunk)
        })
        .sum();
    let mut text = String::with_capacity(size);
    for chunk in chunks {
        for line in chunk.text.lines() {
            if prefixed {
                text.push('[');
                text.push_str(&chunk.pipeline);
                text.push('/');
                text.push_str(&chunk.stage);
                text.push_str("] ");
            }
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::store::LogChunk;

    use super::log_page_text;

    fn chunk(stage: &str, text: &str) -> LogChunk {
        LogChunk {
            run_id: 1,
            pipeline: "ci".into(),
            stage: stage.into(),
            first_line: 1,
            line_count: text.lines().count() as i64,
            text: text.into(),
        }
    }

    #[test]
    fn a_log_page_is_written_into_room_made_for_it() {
        let chunks = [chunk("test", "one\ntwo\r\n"), chunk("build", "three")];
        let whole = log_page_text(chunks.iter(), true);
        assert_eq!(whole, "[ci/test] one\n[ci/test] two\n[ci/build] three\n");
        assert!(whole.capacity() >= whole.len() && whole.capacity() <= whole.len() + 4);
        let one_stage = log_page_text(chunks[..1].iter(), false);
        assert_eq!(one_stage, "one\ntwo\n");
    }
}
