//! Liveness, readiness and metrics.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::domain::describe;

/// What `/readyz` says of each thing it checked.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ok` or `unreachable`.
    store: &'static str,
    /// `ok`, `not used` (this process runs no stages) or `unreachable: …`.
    docker: String,
    /// The process was told to stop and finishes what it holds.
    draining: bool,
}

/// Alive: the process answers HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"})))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready: the store answers, and so does the Docker engine where this process runs stages,
/// and the process is not shutting down.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: the store or the engine is unreachable, or the process is draining", body = Readiness),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = state.store.is_reachable().await;
    let docker = match &state.engine {
        Some(engine) => Some(engine.ping().await),
        None => None,
    };
    let docker_ok = docker.as_ref().is_none_or(|result| result.is_ok());
    let docker_text = match &docker {
        None => "not used".to_owned(),
        Some(Ok(())) => "ok".to_owned(),
        Some(Err(err)) => format!("unreachable: {}", describe(err)),
    };
    let draining = state.draining.load(std::sync::atomic::Ordering::SeqCst);
    let body = Readiness {
        store: if store_ok { "ok" } else { "unreachable" },
        docker: docker_text,
        draining,
    };
    if store_ok && docker_ok && !draining {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics; behind `server.metrics_token` when it is set, since they name every
/// repo.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    security((), ("metrics" = [])),
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "`server.metrics_token` is set and was not given", body = super::ErrorBody),
    )
)]
pub async fn metrics(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    if let Some(token) = &state.settings.server.metrics_token {
        let presented = super::bearer_token(&request);
        if !presented.is_some_and(|presented| token.matches(presented.as_bytes())) {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(super::error_body(
                    "`/metrics` needs `Authorization: Bearer <metrics token>`",
                ));
        }
    }
    // Waiting runs are counted at scrape time rather than tracked on every change, so the
    // counts are right across replicas sharing one store.
    if let Ok(waiting) = state.store.waiting_runs().await {
        state.metrics.queue_depth.set(waiting.queued);
        state.metrics.runs_blocked.set(waiting.blocked);
    }
    if let Ok(bytes) = state.store.size_bytes().await {
        state.metrics.store_bytes.set(bytes);
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
