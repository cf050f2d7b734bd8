//! Manual runs: `POST /api/repos/{owner}/{repo}/runs` and the "Run" form of the run list.
//! A manual run starts on the newest commit Gantry has seen pushed to the ref, runs the
//! pipelines that say `on: { manual: {} }`, with the variables given in every stage's
//! environment, and records who started it.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::api::ApiError;
use super::auth::{actionable_repo, login_url};
use crate::auth::Viewer;
use crate::config::RepoSettings;
use crate::domain::{GitRef, RepoName};
use crate::webhook::{Event, EventKind, Manual};

/// Most variables one manual run takes.
const MAX_VARIABLES: usize = 32;
/// Longest value of one variable.
const MAX_VALUE_BYTES: usize = 4096;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualRequest {
    /// `refs/heads/main`, `refs/tags/v1`, or a bare branch name.
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// `{"run_id": id}`
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Started {
    run_id: i64,
}

/// A manual run of a ref's newest known commit, with variables: 202 with the run's id.
#[utoipa::path(
    post, path = "/api/repos/{repo}/runs", tag = "runs",
    params(("repo" = String, Path, description = "`owner/name` (GitLab: `group/subgroup/name`)")),
    request_body = ManualRequest,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 202, description = "Queued", body = Started),
        (status = 400, description = "A body that is not a manual run request, or bad variables", body = super::ErrorBody),
        (status = 401, description = "Not signed in", body = super::ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = super::ErrorBody),
        (status = 404, description = "No such repo, or one the caller may not read", body = super::ErrorBody),
        (status = 422, description = "No pipeline runs on `manual`, or no commit of that ref is known", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", body = super::ErrorBody),
    )
)]
pub async fn start_run(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    repo: web::Path<String>,
    body: web::Json<ManualRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let variables: Vec<(String, String)> = body.variables.into_iter().collect();
    let id = start(
        &state,
        &request,
        &viewer,
        None,
        &repo,
        &body.git_ref,
        variables,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(Started { run_id: id }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualForm {
    csrf: Option<String>,
    #[serde(rename = "ref")]
    git_ref: String,
    /// `NAME=value`, one per line.
    #[serde(default)]
    variables: String,
}

/// The run list's "Run" form: starts a manual run, then to the run's page.
#[utoipa::path(
    post, path = "/repos/{repo}/runs", tag = "pages",
    params(("repo" = String, Path, description = "`owner/name`")),
    request_body(content = ManualForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("session" = [])),
    responses(
        (status = 303, description = "Started: to the run's page; or a visitor sent to sign in"),
        (status = 400, description = "A form that is not one, or a variable that is not `NAME=value`", body = super::ErrorBody),
        (status = 403, description = "Read permission only, or a bad CSRF token", body = super::ErrorBody),
        (status = 404, description = "No such repo, or one the reader may not read", body = super::ErrorBody),
        (status = 422, description = "No pipeline runs on `manual`, or no commit of that ref is known", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", body = super::ErrorBody),
    )
)]
pub async fn start_run_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    repo: web::Path<String>,
    form: web::Form<ManualForm>,
) -> Result<HttpResponse, ApiError> {
    if matches!(viewer, Viewer::Anonymous) {
        let back = format!("/?repo={}", urlencoding(&repo));
        return Ok(HttpResponse::SeeOther()
            .insert_header(("Location", login_url(&back)))
            .finish());
    }
    // An unknown repo is named as such before its variables are read.
    configured(&state, &repo)?;
    let mut variables = Vec::new();
    for line in form
        .variables
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| ApiError::BadQuery(format!("variable `{line}` is not `NAME=value`")))?;
        variables.push((name.trim().to_owned(), value.to_owned()));
    }
    let id = start(
        &state,
        &request,
        &viewer,
        form.csrf.as_deref(),
        &repo,
        &form.git_ref,
        variables,
    )
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", format!("/runs/{id}")))
        .finish())
}

/// Checks who asks, for what, and queues the run.
async fn start(
    state: &AppState,
    request: &HttpRequest,
    viewer: &Viewer,
    form_token: Option<&str>,
    repo: &str,
    git_ref: &str,
    variables: Vec<(String, String)>,
) -> Result<i64, ApiError> {
    let configured = configured(state, repo)?;
    actionable_repo(
        state,
        viewer,
        request,
        form_token,
        configured.forge,
        &configured.name,
    )
    .await?;
    check_variables(&variables)?;
    let git_ref = if git_ref.starts_with("refs/") {
        GitRef::parse(git_ref)
    } else {
        Some(GitRef::Branch(git_ref.to_owned()))
    }
    .ok_or_else(|| ApiError::BadQuery(format!("`{git_ref}` is not a branch or tag ref")))?;
    let known = state
        .store
        .known_refs(configured.forge, &configured.name)
        .await
        .map_err(ApiError::Store)?;
    let Some(known) = known.into_iter().find(|k| k.git_ref == git_ref.full()) else {
        return Err(ApiError::Unprocessable(format!(
            "Gantry has seen no push to `{}` of `{}`; a manual run starts on the newest commit \
             a push delivered",
            git_ref.full(),
            configured.name
        )));
    };
    // The repo as its forge described it in that push (its clone URL among others).
    let pushed = state
        .store
        .run(known.run_id)
        .await
        .map_err(ApiError::Store)?
        .and_then(|run| run.event);
    let event = Event {
        forge: configured.forge,
        repo: pushed.and_then(|event| event.repo),
        kind: EventKind::Manual(Manual {
            git_ref,
            commit_sha: known.commit_sha,
            variables,
            by: viewer.actor(),
        }),
    };
    let run = event.run_request().map_err(ApiError::BadQuery)?;
    let id = state
        .store
        .queue_manual_run(&configured.name, &event, &run)
        .await
        .map_err(ApiError::Store)?;
    tracing::info!(run_id = id, repo = %configured.name, by = %viewer.actor(), "manual run queued");
    Ok(id)
}

/// The configured repo of that name, on whichever forge.
fn configured<'s>(state: &'s AppState, repo: &str) -> Result<&'s RepoSettings, ApiError> {
    let name = RepoName::new(repo);
    state
        .settings
        .repo_named(&name)
        .ok_or_else(|| ApiError::UnknownRepo(repo.to_owned()))
}

/// Names like environment variables, none of Gantry's own, values bounded.
fn check_variables(variables: &[(String, String)]) -> Result<(), ApiError> {
    if variables.len() > MAX_VARIABLES {
        return Err(ApiError::BadQuery(format!(
            "{} variables; a manual run takes at most {MAX_VARIABLES}",
            variables.len()
        )));
    }
    for (name, value) in variables {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::BadQuery(format!(
                "`{name}` is not a variable name (letters, digits and `_`)"
            )));
        }
        if name == "CI" || name.starts_with("GANTRY_") {
            return Err(ApiError::BadQuery(format!(
                "`{name}` is one of Gantry's own variables"
            )));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(ApiError::BadQuery(format!(
                "the value of `{name}` is over {MAX_VALUE_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
