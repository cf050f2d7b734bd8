//! `POST /hooks/flux` and `POST /hooks/argocd`: what the GitOps controllers applied.
//! Verified, stored and answered like the forge hooks (202 once on disk, 200 for a report
//! that repeats the object's last one or names nothing Gantry deploys, never a 500); a
//! runner settles each stored report (`crate::deploy`).

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::BytesMut;

use super::AppState;
use super::hooks::{HookError, read_then};
use crate::deploy::{argocd, flux};
use crate::domain::DeploySource;
use crate::metrics::DeliveryLabels;
use crate::store::{DeployRecorded, NewDeployEvent};

/// A report stored for a runner to settle.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ReportStored {
    event_id: i64,
    environment: String,
    revision: String,
    outcome: crate::domain::DeployOutcome,
}

/// Flux notification-controller's events (`generic-hmac` Provider).
#[utoipa::path(
    post, path = "/hooks/flux", tag = "webhooks",
    params(("X-Signature" = Option<String>, Header, nullable = false, description = "`sha256=<hex>` HMAC of the body")),
    request_body(content = Object, description = "A Flux event"),
    responses(
        (status = 202, description = "Stored for settling", body = ReportStored),
        (status = 200, description = "A repeat of the object's last report (`duplicate`), or one that names nothing deployed (`ignored`)", body = super::hooks::Ignored),
        (status = 400, description = "Not a Flux event", body = super::ErrorBody),
        (status = 401, description = "A missing or wrong signature", body = super::ErrorBody),
        (status = 408, description = "The body did not arrive within `server.request_timeout`", body = super::ErrorBody),
        (status = 413, description = "Larger than `server.max_body_bytes`", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable, or no turn came within `server.request_timeout`", body = super::ErrorBody),
    )
)]
pub async fn receive_flux(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &request, body, DeploySource::Flux).await
}

/// Argo CD notifications, with the template in the README.
#[utoipa::path(
    post, path = "/hooks/argocd", tag = "webhooks",
    request_body(content = Object, description = "The README template's body"),
    security(("argocd" = [])),
    responses(
        (status = 202, description = "Stored for settling", body = ReportStored),
        (status = 200, description = "A repeat of the app's last report (`duplicate`), or one that names nothing deployed (`ignored`)", body = super::hooks::Ignored),
        (status = 400, description = "Not the template's body", body = super::ErrorBody),
        (status = 401, description = "A missing or wrong bearer token", body = super::ErrorBody),
        (status = 408, description = "The body did not arrive within `server.request_timeout`", body = super::ErrorBody),
        (status = 413, description = "Larger than `server.max_body_bytes`", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable, or no turn came within `server.request_timeout`", body = super::ErrorBody),
    )
)]
pub async fn receive_argocd(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    receive(&state, &request, body, DeploySource::Argocd).await
}

async fn receive(
    state: &AppState,
    request: &HttpRequest,
    body: web::Payload,
    source: DeploySource,
) -> HttpResponse {
    let started = Instant::now();
    let (span, result) = read_then(state, request, body, |body| {
        accept(state, request, body, source)
    })
    .await;
    let (outcome, response) = span.in_scope(|| match result {
        Ok((outcome, response)) => (outcome, response),
        Err(err) => {
            if matches!(err, HookError::Store(_)) {
                tracing::error!(error = ?err, %source, "storing a deploy report failed");
            } else {
                let client_ip = super::spans::client_ip(request);
                tracing::info!(error = %err, %source, %client_ip, "deploy report refused");
            }
            (err.outcome(), err.error_response())
        }
    });
    state.metrics.observe_delivery(
        DeliveryLabels {
            forge: source.as_str(),
            outcome,
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn accept(
    state: &AppState,
    request: &HttpRequest,
    body: BytesMut,
    source: DeploySource,
) -> Result<(&'static str, HttpResponse), HookError> {
    let deploy = &state.settings.deploy;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let (report, environment) = match source {
        DeploySource::Flux => {
            let report = flux::read(&deploy.flux_secrets, header("X-Signature"), &body)?;
            let environment = deploy.flux_environment(&report.object);
            (report, environment)
        }
        DeploySource::Argocd => {
            let report = argocd::read(&deploy.argocd_tokens, super::bearer_token(request), &body)?;
            let environment = deploy.argocd_environment(&report.object);
            (report, environment)
        }
    };
    let ignored = |reason: String| ("not_acted_on", super::hooks::ignored(reason));
    let Some(environment) = environment else {
        return Ok(ignored(format!(
            "no [[deploy.environments]] entry names {source} `{}`",
            report.object
        )));
    };
    let Some(revision) = report.revision else {
        return Ok(ignored("the report names no git revision".into()));
    };
    let recorded = state
        .store
        .record_deploy_event(&NewDeployEvent {
            source,
            object: report.object,
            environment: environment.name.clone(),
            revision: revision.clone(),
            outcome: report.outcome,
            message: report.message,
        })
        .await
        .map_err(HookError::Store)?;
    Ok(match recorded {
        DeployRecorded::Stored { id } => {
            tracing::info!(%source, environment = %environment.name, %revision, outcome = %report.outcome, "deploy report stored");
            (
                "queued",
                HttpResponse::Accepted().json(ReportStored {
                    event_id: id,
                    environment: environment.name.clone(),
                    revision,
                    outcome: report.outcome,
                }),
            )
        }
        DeployRecorded::Repeated => ("duplicate", super::hooks::duplicate()),
    })
}
