//! `GET /badges/{owner}/{repo}.svg`: the latest finished state of a branch (or of one
//! pipeline on it) as a small SVG for a README, readable under the same rule as the repo's
//! runs.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use crate::auth::Viewer;
use crate::domain::{RepoName, StageState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BadgeQuery {
    /// Default: the repo's `default_branch`, else `main`.
    branch: Option<String>,
    pipeline: Option<String>,
}

/// Light enough for an image proxy (GitHub's camo) to fetch often: no body beyond the SVG,
/// and cache headers that make it ask again rather than keep a stale state.
#[utoipa::path(
    get, path = "/badges/{repo}.svg", tag = "pages",
    params(("repo" = String, Path, description = "`owner/name`"), BadgeQuery),
    security((), ("session" = [])),
    responses(
        (status = 200, description = "The badge", content_type = "image/svg+xml", body = String),
        (status = 400, description = "A query it does not take", body = super::ErrorBody),
        (status = 404, description = "No such repo, or one the reader may not read", content_type = "text/plain", body = String),
        (status = 503, description = "The store is unavailable"),
    )
)]
pub async fn badge(
    state: web::Data<AppState>,
    viewer: Viewer,
    repo: web::Path<String>,
    query: web::Query<BadgeQuery>,
) -> HttpResponse {
    let name = RepoName::new(repo.into_inner());
    let Some(configured) = state.settings.repo_named(&name) else {
        return not_found();
    };
    // A badge is an image: whoever may not read the repo's runs learns nothing of it.
    match state
        .access
        .may_read(&viewer, configured.forge, &configured.name)
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return not_found(),
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "reading a badge's access failed");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    let branch = query
        .branch
        .clone()
        .or_else(|| configured.default_branch.clone())
        .unwrap_or_else(|| "main".into());
    let latest = state
        .store
        .latest_finished(
            configured.forge,
            &configured.name,
            &branch,
            query.pipeline.as_deref(),
        )
        .await;
    let result = match latest {
        Ok(result) => result,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "reading a badge's state failed");
            return HttpResponse::ServiceUnavailable().finish();
        }
    };
    let label = query.pipeline.as_deref().unwrap_or("gantry");
    HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache, max-age=0, must-revalidate"))
        .body(svg(label, result))
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("no such repo\n")
}

/// A flat badge: the label on grey, the state on its color.
fn svg(label: &str, state: Option<StageState>) -> String {
    let (message, color) = match state {
        Some(StageState::Success) => ("passing", "#4c1"),
        Some(StageState::Failure) => ("failing", "#e05d44"),
        Some(StageState::Error) => ("error", "#e05d44"),
        Some(StageState::Canceled) => ("canceled", "#9f9f9f"),
        Some(_) | None => ("unknown", "#9f9f9f"),
    };
    let label = escape(label);
    // About 6.5 px per character of 11 px Verdana, and 10 px of room on each side.
    let width = |text: &str| 10 + text.chars().count() * 13 / 2 + 10;
    let (left, right) = (width(&label), width(message));
    let total = left + right;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{color}"/><g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{rx}" y="14">{message}</text></g></svg>"##,
        lx = left / 2,
        rx = left + right / 2,
    )
}

/// Text for SVG: a pipeline name comes from the query string, cut to 40 characters.
fn escape(text: &str) -> String {
    super::pictures::escape(&text.chars().take(40).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_say_the_state_and_escape_the_label() {
        let passing = svg("ci", Some(StageState::Success));
        assert!(passing.contains(">passing<") && passing.contains("#4c1"));
        assert!(svg("ci", None).contains(">unknown<"));
        let hostile = svg("<script>", Some(StageState::Failure));
        assert!(!hostile.contains("<script>") && hostile.contains("&lt;script&gt;"));
    }
}
