//! `GET /repos/{owner}/{repo}`: one repo at a glance. Its branches and open pull requests
//! with their newest run, where its bumps last left each config file, and each pipeline's
//! last runs as a trend with its success rate. Readable as the repo's runs are.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::AppState;
use super::auth::{Nav, page_denied};
use super::pages::{html, missing, unavailable};
use super::pictures::sparkline;
use crate::auth::Viewer;
use crate::domain::{RepoName, RunState};
use crate::store::{LastBump, Run};

/// Runs of each pipeline in its trend.
const TREND_RUNS: usize = 50;

/// A branch or pull request with its newest run.
struct HeadRow {
    /// The branch, or `#12`.
    name: String,
    /// The pull request's title; empty for a branch.
    title: String,
    /// The run list filtered to it.
    runs_url: String,
    run_id: i64,
    state: RunState,
    commit: String,
    at: String,
}

struct BumpRow {
    place: String,
    image: String,
    value: String,
    /// The commit or pull request the bump made, with a link when the forge's page is known.
    outcome: String,
    link: Option<String>,
    at: String,
    run_id: i64,
}

struct TrendRow {
    pipeline: String,
    /// Inline SVG.
    sparkline: String,
    /// "92% of 48"; empty when no run counts.
    success: String,
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPage {
    nav: Nav,
    repo: RepoName,
    /// The run list filtered to the repo.
    runs_url: String,
    branches: Vec<HeadRow>,
    pull_requests: Vec<HeadRow>,
    bumps: Vec<BumpRow>,
    trends: Vec<TrendRow>,
}

/// One repo at a glance.
#[utoipa::path(
    get, path = "/repos/{repo}", tag = "pages",
    params(("repo" = String, Path, description = "`owner/name` (GitLab: `group/subgroup/name`)")),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A visitor who must sign in first"),
        (status = 404, description = "No such repo here, or one the reader may not read", content(
            (String = "text/html"), (super::ErrorBody = "application/json"),
        )),
        (status = 503, description = "The store is unavailable", content_type = "text/html", body = String),
    )
)]
pub async fn repo_page(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    repo: web::Path<String>,
) -> HttpResponse {
    let name = RepoName::new(repo.into_inner());
    let nav = Nav::of(&viewer);
    let not_found = format!("Repo {name} is not configured here.");
    let Some(configured) = state.settings.repo_named(&name) else {
        return missing(nav, not_found);
    };
    let (forge, name) = (configured.forge, configured.name.clone());
    match state.access.may_read(&viewer, forge, &name).await {
        Ok(Ok(())) => {}
        Ok(Err(denied)) => return page_denied(&request, denied, nav, not_found),
        Err(err) => return unavailable(err),
    }
    let store = &state.store;
    let read = futures_util::future::try_join4(
        store.branch_heads(forge, &name),
        store.open_pull_requests(forge, &name),
        store.last_bumps(forge, &name),
        store.pipeline_histories(forge, &name, TREND_RUNS),
    )
    .await;
    let (branches, pull_requests, bumps, histories) = match read {
        Ok(read) => read,
        Err(err) => return unavailable(err),
    };
    let runs_url = |extra: &[(&str, &str)]| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("repo", name.as_str());
        for (key, value) in extra {
            query.append_pair(key, value);
        }
        format!("/?{}", query.finish())
    };
    let page = RepoPage {
        runs_url: runs_url(&[]),
        branches: branches
            .iter()
            .map(|run| {
                let branch = run.git_ref.trim_start_matches("refs/heads/").to_owned();
                HeadRow {
                    runs_url: runs_url(&[("branch", &run.git_ref)]),
                    name: branch,
                    title: String::new(),
                    ..head_row(run)
                }
            })
            .collect(),
        pull_requests: pull_requests
            .iter()
            .map(|run| HeadRow {
                name: format!("#{}", run.pr_number.unwrap_or_default()),
                title: pull_request_title(run),
                runs_url: runs_url(&[("branch", &run.git_ref), ("event", "pull_request")]),
                ..head_row(run)
            })
            .collect(),
        bumps: bumps.iter().map(bump_row).collect(),
        trends: histories
            .iter()
            .map(|history| {
                let counted = history
                    .outcomes
                    .iter()
                    .filter(|o| o.state != crate::domain::StageState::Canceled)
                    .count();
                TrendRow {
                    sparkline: sparkline::render(&history.pipeline, &history.outcomes),
                    success: sparkline::success_rate(&history.outcomes)
                        .map(|rate| format!("{rate}% of {counted}"))
                        .unwrap_or_default(),
                    pipeline: history.pipeline.clone(),
                }
            })
            .collect(),
        repo: name,
        nav,
    };
    html(StatusCode::OK, page.render())
}

/// What a branch's and a pull request's rows share: their newest run.
fn head_row(run: &Run) -> HeadRow {
    HeadRow {
        name: String::new(),
        title: String::new(),
        runs_url: String::new(),
        run_id: run.id,
        state: run.state,
        commit: run.commit_sha.as_str()[..10].to_owned(),
        at: super::pages::short_time(&run.created_at),
    }
}

fn pull_request_title(run: &Run) -> String {
    match run.event.as_ref().map(|event| &event.kind) {
        Some(crate::webhook::EventKind::PullRequest(pull_request)) => pull_request.title.clone(),
        _ => String::new(),
    }
}

fn bump_row(bump: &LastBump) -> BumpRow {
    let (outcome, link) = super::pages::bump_outcome(
        &bump.repo,
        bump.pull_request.as_deref(),
        bump.commit.as_deref(),
    );
    BumpRow {
        place: format!("{} ({}): {}", bump.repo, bump.branch, bump.file),
        image: bump.image.clone(),
        value: bump.value.clone().unwrap_or_default(),
        outcome,
        link,
        at: super::pages::short_time(&bump.at),
        run_id: bump.run_id,
    }
}
