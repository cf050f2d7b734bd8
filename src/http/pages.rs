//! The web pages: the run list (`/`) and one run (`/runs/{id}`), rendered on the server
//! from askama templates. Everything from a payload or a log is escaped by the templates
//! (log lines by `ansi::to_html`); the run page's script follows the run live through
//! `/api/runs/{id}/events`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::ansi;
use super::api::{self, ApiError, LOG_PAGE_CHUNKS};
use super::auth::{Nav, login_url, page_denied, sign_in_first};
use super::pictures::timeline;
use super::{AppState, LOG_TAIL_BYTES};
use crate::auth::Viewer;
use crate::domain::{
    CacheOutcome, Decision, DeployState, Forge, RepoName, RunState, StageState, Trigger,
};
use crate::store::{
    Approval, BumpReport, CacheReport, DeployReport, LogPage, PipelineResult, Run, RunFilter,
    RunnerRecord, StatusReport,
};

/// Runs listed on the front page.
const PAGE_SIZE: u32 = 100;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this repo.
    repo: Option<String>,
    /// Only runs in this state (an unknown one filters nothing).
    state: Option<String>,
    /// A branch (`main`) or a full ref.
    branch: Option<String>,
    /// The kind of event (an unknown one filters nothing).
    event: Option<String>,
    /// Runs older than this id: the next page.
    before: Option<i64>,
}

/// One row of the run list.
struct RunRow {
    id: i64,
    repo: RepoName,
    target: String,
    commit: String,
    trigger: Trigger,
    state: RunState,
    duration: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    nav: Nav,
    runs: Vec<RunRow>,
    repos: Vec<RepoName>,
    states: Vec<&'static str>,
    events: Vec<&'static str>,
    repo: String,
    state: String,
    branch: String,
    event: String,
    /// The query of the next (older) page, when there may be one.
    older: Option<String>,
    /// The "Run" form, when one repo is shown and the reader may start its runs.
    manual: Option<ManualForm>,
    /// The shown repo's schedules, each with its next slot.
    schedules: Vec<String>,
}

/// Where a manual run of the shown repo can start: the refs pushes delivered.
struct ManualForm {
    repo: RepoName,
    refs: Vec<String>,
    csrf: String,
}

/// One stage as the run page shows it.
struct StageView {
    pipeline: String,
    stage: String,
    state: StageState,
    message: String,
    duration: String,
    /// The end of its log.
    log: ShownLog,
    /// Bytes its output lost to `runner.max_log_size`.
    log_dropped: i64,
    /// Where the whole log is.
    log_url: String,
    /// The id of its log on the page (stage names may hold spaces: a matrix's do).
    anchor: String,
}

struct PipelineView {
    name: String,
    file: String,
    state: StageState,
    description: String,
    stages: Vec<StageView>,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    run: Run,
    target: String,
    commit_url: Option<String>,
    pull_request_url: Option<String>,
    duration: String,
    finished: bool,
    pipelines: Vec<PipelineView>,
    bumps: Vec<BumpView>,
    /// What the forge was told of each pipeline, and whether it heard.
    statuses: Vec<StatusReport>,
    /// The last output chunk rendered: the live stream starts after it.
    after: i64,
    /// Why the run had to wait for approval, and what was decided by whom.
    approval: Option<String>,
    /// Who started a manual run, with which variables.
    started: Option<String>,
    caches: Vec<CacheView>,
    /// The reader may approve or decline it now.
    may_decide: bool,
    /// The run on one time axis, as inline SVG.
    timeline: String,
    deployments: Vec<DeploymentView>,
}

/// One environment's deployment of one bump, as the run page shows it.
struct DeploymentView {
    environment: String,
    state: DeployState,
    file: String,
    revision: String,
    message: String,
    at: String,
}

/// One cache of one pipeline, as the run page shows it.
struct CacheView {
    pipeline: String,
    key: String,
    /// hit, miss, or "restored from `KEY` (SCOPE)".
    restored: String,
    size: String,
    seconds: String,
    saved: String,
}

fn cache_view(report: &CacheReport) -> CacheView {
    let scope = report
        .source_scope
        .as_deref()
        .map(|scope| format!(" ({scope})"))
        .unwrap_or_default();
    let restored = match (report.outcome, &report.source_key) {
        (CacheOutcome::Restored, Some(source)) => format!("restored from `{source}`{scope}"),
        (CacheOutcome::Hit, _) => format!("hit{scope}"),
        (outcome, _) => outcome.as_str().to_owned(),
    };
    let kib = |bytes: Option<i64>| bytes.map(|b| format!("{} KiB", b / 1024));
    CacheView {
        pipeline: report.pipeline.clone(),
        key: report.key.clone(),
        restored,
        size: kib(report.saved_bytes.or(report.restored_bytes)).unwrap_or_default(),
        seconds: match report.save_seconds {
            Some(save) => format!("{:.1}s + {:.1}s", report.restore_seconds, save),
            None => format!("{:.1}s", report.restore_seconds),
        },
        saved: report.saved.clone().unwrap_or_default(),
    }
}

struct BumpView {
    place: String,
    changes: Vec<String>,
    outcome: String,
    link: Option<String>,
}

#[derive(Template)]
#[template(path = "missing.html")]
struct MissingPage {
    nav: Nav,
    message: String,
}

/// The run list: a hundred runs a page, filtered by repo, state, branch and event; the
/// "Run" form and the schedules when one repo is shown.
#[utoipa::path(
    get, path = "/", tag = "pages",
    params(RunsQuery),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "A filter of the wrong type", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", content_type = "text/html", body = String),
    )
)]
pub async fn runs_page(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<RunsQuery>,
) -> HttpResponse {
    let readable = match state.access.readable_repos(&viewer).await {
        Ok(readable) => readable,
        Err(err) => return unavailable(err),
    };
    let filter_state = query.state.as_deref().and_then(|s| s.parse().ok());
    let filter_event = query
        .event
        .as_deref()
        .and_then(|e| e.parse::<Trigger>().ok());
    let filter = RunFilter {
        git_ref: api::ref_filter(query.branch.as_deref()),
        trigger: filter_event,
        repo: query
            .repo
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(RepoName::new),
        state: filter_state,
        before: query.before,
        limit: PAGE_SIZE,
        readable,
    };
    let runs = match state.store.list_runs(&filter).await {
        Ok(runs) => runs,
        Err(err) => return unavailable(err),
    };
    let older = (runs.len() == PAGE_SIZE as usize)
        .then(|| runs.last().map(|run| run.id))
        .flatten()
        .map(|before| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("repo", query.repo.as_deref().unwrap_or_default())
                .append_pair("state", query.state.as_deref().unwrap_or_default())
                .append_pair("branch", query.branch.as_deref().unwrap_or_default())
                .append_pair("event", query.event.as_deref().unwrap_or_default())
                .append_pair("before", &before.to_string())
                .finish()
        });
    let manual = manual_form(&state, &viewer, query.repo.as_deref()).await;
    let schedules = schedule_lines(&state, &filter).await;
    let page = RunsPage {
        nav: Nav::of(&viewer),
        manual,
        schedules,
        older,
        runs: runs
            .iter()
            .map(|run| RunRow {
                id: run.id,
                repo: run.repo.clone(),
                target: target(run),
                commit: run.commit_sha.as_str()[..10].to_owned(),
                trigger: run.trigger,
                state: run.state,
                duration: duration(run.started_at.as_deref(), run.finished_at.as_deref()),
                created_at: short_time(&run.created_at),
            })
            .collect(),
        repos: state
            .settings
            .repos
            .iter()
            .filter(|r| {
                filter
                    .readable
                    .as_ref()
                    .is_none_or(|readable| readable.contains(&(r.forge, r.name.clone())))
            })
            .map(|r| r.name.clone())
            .collect(),
        states: RunState::ALL.iter().map(|s| s.as_str()).collect(),
        events: Trigger::ALL.iter().map(|t| t.as_str()).collect(),
        repo: query.repo.clone().unwrap_or_default(),
        state: filter_state
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        branch: query.branch.clone().unwrap_or_default(),
        event: filter_event
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default(),
    };
    html(StatusCode::OK, page.render())
}

/// The schedules of the one repo the list shows (one the reader may read), each as
/// "pipeline: `cron` on branch, next at …".
async fn schedule_lines(state: &AppState, filter: &RunFilter) -> Vec<String> {
    let Some(name) = &filter.repo else {
        return Vec::new();
    };
    let Some(configured) = state.settings.repo_named(name) else {
        return Vec::new();
    };
    if filter
        .readable
        .as_ref()
        .is_some_and(|readable| !readable.contains(&(configured.forge, configured.name.clone())))
    {
        return Vec::new();
    }
    let records = state
        .store
        .schedules(Some((configured.forge, &configured.name)))
        .await
        .unwrap_or_default();
    let now = crate::store::now_millis();
    records
        .iter()
        .map(|record| {
            let next = crate::pipeline::schedule::parse(&record.entry.cron)
                .ok()
                .and_then(|cron| crate::pipeline::schedule::next_slot(&cron, now))
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "never".into());
            format!(
                "{}: `{}` on {}, next at {next}",
                record.entry.pipeline, record.entry.cron, record.entry.branch
            )
        })
        .collect()
}

/// The "Run" form for `repo`, if it is one configured repo whose runs the reader may start
/// and of which pushes are known.
async fn manual_form(state: &AppState, viewer: &Viewer, repo: Option<&str>) -> Option<ManualForm> {
    let name = RepoName::new(repo.filter(|r| !r.is_empty())?);
    let configured = state.settings.repo_named(&name)?;
    if !matches!(
        state
            .access
            .may_act(viewer, configured.forge, &configured.name)
            .await,
        Ok(Ok(()))
    ) {
        return None;
    }
    let refs = state
        .store
        .known_refs(configured.forge, &configured.name)
        .await
        .ok()?;
    (!refs.is_empty()).then(|| ManualForm {
        repo: configured.name.clone(),
        refs: refs.into_iter().map(|known| known.git_ref).collect(),
        csrf: Nav::of(viewer).csrf,
    })
}

#[derive(Template)]
#[template(path = "runners.html")]
struct RunnersPage {
    nav: Nav,
    runners: Vec<RunnerRecord>,
}

/// The runner fleet.
#[utoipa::path(
    get, path = "/runners", tag = "pages",
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "Visitors may not see the fleet here: to sign-in"),
        (status = 503, description = "The store is unavailable", content_type = "text/html", body = String),
    )
)]
pub async fn runners_page(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
) -> HttpResponse {
    if !super::may_see_fleet(&state, &viewer) {
        return sign_in_first(&request);
    }
    let lease = state.settings.runner.lease.as_millis() as i64;
    match state.store.runners(lease).await {
        Ok(runners) => html(
            StatusCode::OK,
            RunnersPage {
                nav: Nav::of(&viewer),
                runners: runners
                    .into_iter()
                    .map(|mut runner| {
                        runner.last_heartbeat = short_time(&runner.last_heartbeat);
                        runner.started_at = short_time(&runner.started_at);
                        runner
                    })
                    .collect(),
            }
            .render(),
        ),
        Err(err) => unavailable(err),
    }
}

/// One run: its facts, timeline, approval, bumps, deployments, caches, statuses, stages
/// and the end of each stage's log, followed live while it runs.
#[utoipa::path(
    get, path = "/runs/{id}", tag = "pages",
    params(("id" = i64, Path, description = "The run")),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A visitor who must sign in first"),
        (status = 404, description = "No such run, or one the reader may not read", content(
            (String = "text/html"), (super::ErrorBody = "application/json"),
        )),
        (status = 503, description = "The store is unavailable", content_type = "text/html", body = String),
    )
)]
pub async fn run_page(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    id: web::Path<i64>,
) -> HttpResponse {
    let id = id.into_inner();
    let nav = Nav::of(&viewer);
    let not_found = format!("Run {id} does not exist.");
    let run = match state.store.run(id).await {
        Ok(Some(run)) => run,
        Ok(None) => return missing(nav, not_found),
        Err(err) => return unavailable(err),
    };
    match state.access.may_read(&viewer, run.forge, &run.repo).await {
        Ok(Ok(())) => {}
        Ok(Err(denied)) => return page_denied(&request, denied, nav, not_found),
        Err(err) => return unavailable(err),
    }
    let results = state.store.pipeline_results(id).await;
    let logs = log_tails(&state, id).await;
    let bumps = state.store.run_bumps(id).await;
    let statuses = state.store.run_statuses(id).await;
    let caches = match state.store.run_caches(id).await {
        Ok(caches) => caches,
        Err(err) => return unavailable(err),
    };
    let deployments = match state.store.run_deployments(id).await {
        Ok(deployments) => deployments,
        Err(err) => return unavailable(err),
    };
    let (results, (after, mut lines), bumps, statuses) = match (results, logs, bumps, statuses) {
        (Ok(results), Ok(logs), Ok(bumps), Ok(statuses)) => (results, logs, bumps, statuses),
        (Err(err), ..) | (_, Err(err), ..) | (_, _, Err(err), _) | (.., Err(err)) => {
            return unavailable(err);
        }
    };
    let (commit_url, pull_request_url) = forge_links(&run);
    let timeline = timeline::render(&timeline::Facts {
        run: &run,
        pipelines: &results,
        bumps: &bumps,
        deployments: &deployments,
        now: crate::store::now_millis(),
    });
    let may_decide = run.state == RunState::Blocked
        && matches!(
            state.access.may_act(&viewer, run.forge, &run.repo).await,
            Ok(Ok(()))
        );
    let page = RunPage {
        approval: run.approval.as_ref().map(approval_note),
        started: match run.event.as_ref().map(|event| &event.kind) {
            Some(crate::webhook::EventKind::Manual(manual)) => Some(started_note(manual)),
            _ => None,
        },
        caches: caches.iter().map(cache_view).collect(),
        may_decide,
        timeline,
        deployments: deployments.iter().map(deployment_view).collect(),
        nav,
        target: target(&run),
        commit_url,
        pull_request_url,
        duration: duration(run.started_at.as_deref(), run.finished_at.as_deref()),
        finished: run.state.is_finished(),
        pipelines: results
            .into_iter()
            .map(|pipeline| pipeline_view(id, pipeline, &mut lines))
            .collect(),
        bumps: bumps.iter().map(bump_view).collect(),
        statuses,
        after,
        run,
    };
    html(StatusCode::OK, page.render())
}

/// The run page's timeline alone, which the page fetches again while the run runs;
/// readable as the run is.
#[utoipa::path(
    get, path = "/runs/{id}/timeline.svg", tag = "pages",
    params(("id" = i64, Path, description = "The run")),
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The timeline", content_type = "image/svg+xml", body = String),
        (status = 401, description = "Sign in to see this run", body = super::ErrorBody),
        (status = 404, description = "No such run, or one the reader may not read", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", body = super::ErrorBody),
    )
)]
pub async fn timeline_svg(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let run = super::auth::readable_run(&state, &viewer, id).await?;
    let pipelines = state
        .store
        .pipeline_results(id)
        .await
        .map_err(ApiError::Store)?;
    let bumps = state.store.run_bumps(id).await.map_err(ApiError::Store)?;
    let deployments = state
        .store
        .run_deployments(id)
        .await
        .map_err(ApiError::Store)?;
    let svg = timeline::render(&timeline::Facts {
        run: &run,
        pipelines: &pipelines,
        bumps: &bumps,
        deployments: &deployments,
        now: crate::store::now_millis(),
    });
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(svg))
}

/// The run page's "Approve and run" button: approves, then back to the page.
#[utoipa::path(
    post, path = "/runs/{id}/approve", tag = "pages",
    params(("id" = i64, Path, description = "The run")),
    request_body(content = DecisionForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("session" = [])),
    responses(
        (status = 303, description = "Approved: back to the run; or a visitor sent to sign in"),
        (status = 400, description = "A form that is not one", body = super::ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = super::ErrorBody),
        (status = 404, description = "No such run, or one the reader may not read", body = super::ErrorBody),
        (status = 409, description = "The run is not waiting for approval", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", body = super::ErrorBody),
    )
)]
pub async fn approve_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    id: web::Path<i64>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ApiError> {
    decide_form(&state, &request, &viewer, *id, &form, Decision::Approved).await
}

/// The run page's "Decline" button: declines, then back to the page.
#[utoipa::path(
    post, path = "/runs/{id}/decline", tag = "pages",
    params(("id" = i64, Path, description = "The run")),
    request_body(content = DecisionForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("session" = [])),
    responses(
        (status = 303, description = "Declined: back to the run; or a visitor sent to sign in"),
        (status = 400, description = "A form that is not one", body = super::ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = super::ErrorBody),
        (status = 404, description = "No such run, or one the reader may not read", body = super::ErrorBody),
        (status = 409, description = "The run is not waiting for approval", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", body = super::ErrorBody),
    )
)]
pub async fn decline_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    id: web::Path<i64>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ApiError> {
    decide_form(&state, &request, &viewer, *id, &form, Decision::Declined).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionForm {
    csrf: Option<String>,
}

async fn decide_form(
    state: &AppState,
    request: &HttpRequest,
    viewer: &Viewer,
    id: i64,
    form: &DecisionForm,
    decision: Decision,
) -> Result<HttpResponse, ApiError> {
    let page = format!("/runs/{id}");
    if matches!(viewer, Viewer::Anonymous) {
        return Ok(HttpResponse::SeeOther()
            .insert_header(("Location", login_url(&page)))
            .finish());
    }
    api::decide(state, request, viewer, form.csrf.as_deref(), id, decision).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", page))
        .finish())
}

/// The run page's line on a manual run: who, and the variables.
fn started_note(manual: &crate::webhook::Manual) -> String {
    if manual.variables.is_empty() {
        return format!("by {}, without variables", manual.by);
    }
    let variables: Vec<String> = manual
        .variables
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    format!("by {} with {}", manual.by, variables.join(" "))
}

/// The run page's line on approval: why the run had to wait, and what was decided.
fn approval_note(approval: &Approval) -> String {
    let mut note = format!("Had to wait: {}.", approval.reason);
    if let Some(decision) = approval.decision {
        note.push_str(&format!(
            " {} by {}",
            match decision {
                Decision::Approved => "Approved",
                Decision::Declined => "Declined",
            },
            approval.by.as_deref().unwrap_or("someone")
        ));
        if let Some(at) = &approval.at {
            note.push_str(&format!(" at {at}"));
        }
        note.push('.');
    }
    note
}

/// Each stage's shown log: the last [`LOG_TAIL_BYTES`] of it as HTML lines, and how much
/// came before; with the id of the last chunk read, where the live stream picks up.
async fn log_tails(
    state: &AppState,
    id: i64,
) -> anyhow::Result<(i64, BTreeMap<(String, String), ShownLog>)> {
    let tails = state.store.log_tails(id, LOG_TAIL_BYTES).await?;
    // Chunks stored while the page is built are left to the live stream.
    let until = tails.values().map(|tail| tail.last).max().unwrap_or(0);
    let mut shown = BTreeMap::new();
    for ((pipeline, stage), tail) in tails {
        let mut log = ShownLog {
            lines: Vec::new(),
            hidden: tail.hidden,
        };
        let mut after = tail.after;
        loop {
            let page = LogPage {
                after,
                until,
                stage: Some((&pipeline, &stage)),
                limit: LOG_PAGE_CHUNKS,
            };
            let chunks = state.store.log_chunks(id, &page).await?;
            for (chunk_id, chunk) in &chunks {
                after = *chunk_id;
                log.lines.extend(chunk.text.lines().map(ansi::to_html));
            }
            if (chunks.len() as i64) < LOG_PAGE_CHUNKS {
                break;
            }
        }
        shown.insert((pipeline, stage), log);
    }
    Ok((until, shown))
}

/// What the page shows of one stage's log.
#[derive(Default)]
struct ShownLog {
    /// Output lines as HTML (escaped, with colour spans).
    lines: Vec<String>,
    /// Bytes of output before them, not shown.
    hidden: i64,
}

fn pipeline_view(
    run_id: i64,
    pipeline: PipelineResult,
    logs: &mut BTreeMap<(String, String), ShownLog>,
) -> PipelineView {
    PipelineView {
        stages: pipeline
            .stages
            .iter()
            .enumerate()
            .map(|(position, stage)| StageView {
                anchor: format!("log-{}-{}", pipeline.pipeline, position + 1),
                log: logs
                    .remove(&(pipeline.pipeline.clone(), stage.stage.clone()))
                    .unwrap_or_default(),
                log_dropped: stage.log_dropped,
                log_url: format!(
                    "/api/runs/{run_id}/log?{}",
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("stage", &format!("{}/{}", pipeline.pipeline, stage.stage))
                        .finish()
                ),
                pipeline: pipeline.pipeline.clone(),
                stage: stage.stage.clone(),
                state: stage.state,
                message: stage.message.clone().unwrap_or_default(),
                duration: duration(stage.started_at.as_deref(), stage.finished_at.as_deref()),
            })
            .collect(),
        name: pipeline.pipeline,
        file: pipeline.file,
        state: pipeline.state,
        description: pipeline.description.unwrap_or_default(),
    }
}

fn deployment_view(report: &DeployReport) -> DeploymentView {
    DeploymentView {
        environment: report.environment.clone(),
        state: report.state,
        file: report.file.clone(),
        revision: report
            .revision
            .as_deref()
            .map(|revision| revision[..revision.len().min(12)].to_owned())
            .unwrap_or_default(),
        message: report.message.clone().unwrap_or_default(),
        at: report
            .settled_at
            .as_deref()
            .map(short_time)
            .unwrap_or_default(),
    }
}

fn bump_view(report: &BumpReport) -> BumpView {
    let bump = &report.bumped;
    let (outcome, link) = match &report.error {
        Some(error) => (format!("failed: {error}"), None),
        None => bump_outcome(
            &bump.repo,
            bump.pull_request.as_deref(),
            bump.commit.as_deref(),
        ),
    };
    BumpView {
        place: format!("{} ({}): {}", bump.repo, bump.branch, bump.file),
        changes: bump
            .changes
            .iter()
            .map(|c| {
                format!(
                    "line {} {}: {} → {}",
                    c.line,
                    c.place,
                    c.old.as_deref().unwrap_or("(new)"),
                    c.new
                )
            })
            .collect(),
        outcome,
        link,
    }
}

/// What a bump that did not fail made: its pull request, or its commit (linked when the
/// config repo's address is a web one), or nothing.
pub(super) fn bump_outcome(
    repo: &str,
    pull_request: Option<&str>,
    commit: Option<&str>,
) -> (String, Option<String>) {
    match (pull_request, commit) {
        (Some(url), _) => (format!("pull request {url}"), Some(url.to_owned())),
        (None, Some(commit)) => (
            format!("commit {}", &commit[..commit.len().min(12)]),
            repo.starts_with("https://")
                .then(|| format!("{}/commit/{commit}", repo.trim_end_matches(".git"))),
        ),
        (None, None) => ("already up to date".into(), None),
    }
}

/// The commit's and the pull request's pages on the forge, when the payload named the
/// repo's web address.
fn forge_links(run: &Run) -> (Option<String>, Option<String>) {
    let Some(web) = run
        .event
        .as_ref()
        .and_then(|event| event.repo.as_ref())
        .and_then(|repo| repo.web_url.clone())
    else {
        return (None, None);
    };
    let web = web.trim_end_matches('/');
    let forge = match run.forge.as_str() {
        "gitlab" => Forge::Gitlab,
        "gitea" => Forge::Gitea,
        _ => Forge::Github,
    };
    let commit = match forge {
        Forge::Gitlab => format!("{web}/-/commit/{}", run.commit_sha),
        _ => format!("{web}/commit/{}", run.commit_sha),
    };
    let pull_request = run.pr_number.map(|number| match forge {
        Forge::Github => format!("{web}/pull/{number}"),
        Forge::Gitlab => format!("{web}/-/merge_requests/{number}"),
        Forge::Gitea => format!("{web}/pulls/{number}"),
    });
    (Some(commit), pull_request)
}

/// What the run ran for: `PR #12`, a branch, or a tag.
fn target(run: &Run) -> String {
    if let Some(number) = run.pr_number {
        return format!("PR #{number}");
    }
    run.git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| run.git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(&run.git_ref)
        .to_owned()
}

/// `1m 5s` between two stored times; up to now while only the start is known.
fn duration(started: Option<&str>, finished: Option<&str>) -> String {
    let parse = |text: &str| chrono::DateTime::parse_from_rfc3339(text).ok();
    let Some(start) = started.and_then(parse) else {
        return String::new();
    };
    let end = finished
        .and_then(parse)
        .map_or_else(chrono::Utc::now, |end| end.with_timezone(&chrono::Utc));
    let millis = (end - start.with_timezone(&chrono::Utc))
        .num_milliseconds()
        .max(0);
    let seconds = millis / 1000;
    match seconds {
        0 => format!("{:.1}s", millis as f64 / 1000.0),
        1..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// `2026-11-26 03:25:08` from a stored RFC 3339 time.
pub(super) fn short_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| text.to_owned())
}

/// The 404 page.
pub(super) fn missing(nav: Nav, message: String) -> HttpResponse {
    html(StatusCode::NOT_FOUND, MissingPage { nav, message }.render())
}

pub(super) fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> HttpResponse {
    match rendered {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(err) => {
            tracing::error!(error = %err, "rendering a page failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

pub(super) fn unavailable(err: anyhow::Error) -> HttpResponse {
    tracing::error!(error = ?err, "page store query failed");
    let page = MissingPage {
        nav: Nav::default(),
        message: "The store is unavailable; try again shortly.".into(),
    };
    html(StatusCode::SERVICE_UNAVAILABLE, page.render())
}
