//! `POST /hooks/{forge}`: verify, parse, store, answer.

use std::time::{Duration, Instant, SystemTime};

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::BytesMut;
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::{Instrument, Span};

use super::body::{self, BodyError};
use super::{AppState, error_body, spans};
use crate::approval;
use crate::deploy::ReportError;
use crate::domain::{Forge, RepoName, RunState};
use crate::metrics::DeliveryLabels;
use crate::store::{NewDelivery, Recorded};
use crate::webhook::{self, WebhookError};

/// Why a delivery got no 2xx. Mapped once to a status below; never a 500 for bad input.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("unknown forge `{0}`: use /hooks/github, /hooks/gitlab or /hooks/gitea")]
    UnknownForge(String),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error("repo `{repo}` is not configured for {forge}")]
    UnknownRepo { forge: Forge, repo: RepoName },
    #[error(transparent)]
    Report(#[from] crate::deploy::ReportError),
    #[error("the store is unavailable; the forge should retry this delivery")]
    Store(#[source] anyhow::Error),
    #[error(
        "all {DELIVERIES_AT_ONCE} turns for deliveries stayed taken for {}s; the forge should \
         retry this delivery",
        .0.as_secs()
    )]
    Busy(Duration),
}

impl HookError {
    /// The outcome label in the deliveries metric.
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            HookError::UnknownForge(_) => "unknown_forge",
            HookError::Body(BodyError::TooLarge { .. }) => "too_large",
            HookError::Body(BodyError::Broken(_)) => "bad_body",
            HookError::Body(BodyError::TimedOut(_)) => "timed_out",
            HookError::Webhook(WebhookError::MissingEventHeader(_)) => "missing_event",
            HookError::Webhook(WebhookError::Unauthorized(_)) => "unauthorized",
            HookError::Webhook(WebhookError::BadPayload(_)) => "bad_payload",
            HookError::UnknownRepo { .. } => "unknown_repo",
            HookError::Report(ReportError::Unauthorized(_)) => "unauthorized",
            HookError::Report(ReportError::BadBody(_)) => "bad_payload",
            HookError::Store(_) => "store_error",
            HookError::Busy(_) => "busy",
        }
    }
}

impl ResponseError for HookError {
    fn status_code(&self) -> StatusCode {
        match self {
            HookError::UnknownForge(_) | HookError::UnknownRepo { .. } => StatusCode::NOT_FOUND,
            HookError::Body(err) => err.status_code(),
            HookError::Webhook(WebhookError::MissingEventHeader(_))
            | HookError::Webhook(WebhookError::BadPayload(_))
            | HookError::Report(ReportError::BadBody(_)) => StatusCode::BAD_REQUEST,
            HookError::Webhook(WebhookError::Unauthorized(_))
            | HookError::Report(ReportError::Unauthorized(_)) => StatusCode::UNAUTHORIZED,
            // A 503 makes the forge retry later; the delivery is not lost.
            HookError::Store(_) | HookError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            HookError::Body(err) => err.error_response(),
            _ => HttpResponse::build(self.status_code()).json(error_body(&self.to_string())),
        }
    }
}

/// A delivery stored with its run: `state` is `queued`, or `blocked` while it waits for
/// approval.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Queued {
    run_id: i64,
    delivery_id: String,
    state: RunState,
}

/// `{"duplicate": true}`: delivered before; nothing was stored again.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Duplicate {
    duplicate: bool,
}

/// `{"ignored": why}`: verified, and nothing to do.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ignored {
    ignored: String,
}

pub(super) fn duplicate() -> HttpResponse {
    HttpResponse::Ok().json(Duplicate { duplicate: true })
}

pub(super) fn ignored(reason: String) -> HttpResponse {
    HttpResponse::Ok().json(Ignored { ignored: reason })
}

/// The 2xx answers.
enum Accepted {
    Queued {
        run_id: i64,
        delivery_id: String,
        /// The run waits for approval.
        blocked: bool,
    },
    Duplicate,
    NotActedOn(String),
}

impl Accepted {
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            Accepted::Queued { .. } => "queued",
            Accepted::Duplicate => "duplicate",
            Accepted::NotActedOn(_) => "not_acted_on",
        }
    }

    fn into_response(self) -> HttpResponse {
        match self {
            Accepted::Queued {
                run_id,
                delivery_id,
                blocked,
            } => HttpResponse::Accepted().json(Queued {
                run_id,
                delivery_id,
                state: if blocked {
                    RunState::Blocked
                } else {
                    RunState::Queued
                },
            }),
            Accepted::Duplicate => duplicate(),
            Accepted::NotActedOn(reason) => ignored(reason),
        }
    }
}

/// A forge's webhook: verified by its signature or token, parsed, and stored with its run
/// before the answer.
#[utoipa::path(
    post, path = "/hooks/{forge}", tag = "webhooks",
    params(
        ("forge" = String, Path, description = "github, gitlab or gitea"),
        ("X-GitHub-Event" = Option<String>, Header, nullable = false), ("X-GitHub-Delivery" = Option<String>, Header, nullable = false),
        ("X-Hub-Signature-256" = Option<String>, Header, nullable = false, description = "`sha256=<hex>` HMAC of the body"),
        ("X-Gitlab-Event" = Option<String>, Header, nullable = false), ("X-Gitlab-Token" = Option<String>, Header, nullable = false),
        ("X-Gitea-Event" = Option<String>, Header, nullable = false), ("X-Gitea-Signature" = Option<String>, Header, nullable = false),
        ("X-Forgejo-Event" = Option<String>, Header, nullable = false), ("X-Forgejo-Signature" = Option<String>, Header, nullable = false),
    ),
    request_body(content = Object, description = "The forge's event payload"),
    responses(
        (status = 202, description = "Stored with its run", body = Queued),
        (status = 200, description = "A redelivery (`duplicate`), or an event Gantry does not act on (`ignored`)", body = Ignored),
        (status = 400, description = "No event header, or a body that is not the event's JSON", body = super::ErrorBody),
        (status = 401, description = "A missing or wrong signature or token", body = super::ErrorBody),
        (status = 404, description = "An unknown forge, or a repo that is not configured", body = super::ErrorBody),
        (status = 408, description = "The body did not arrive within `server.request_timeout`", body = super::ErrorBody),
        (status = 413, description = "Larger than `server.max_body_bytes`", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable, or no turn came within `server.request_timeout`: the forge should retry", body = super::ErrorBody),
    )
)]
pub async fn receive(
    state: web::Data<AppState>,
    forge: web::Path<String>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let forge_name = forge.into_inner();
    let forge = forge_name.parse::<Forge>().ok();
    let (span, result) = match forge {
        Some(forge) => {
            read_then(&state, &request, body, |body| {
                accept(&state, forge, &request, body)
            })
            .await
        }
        None => (
            Span::none(),
            Err(HookError::UnknownForge(forge_name.clone())),
        ),
    };
    let (outcome, response) = span.in_scope(|| match result {
        Ok(accepted) => (accepted.outcome(), accepted.into_response()),
        Err(err) => {
            if matches!(err, HookError::Store(_)) {
                tracing::error!(error = ?err, "storing a delivery failed");
            } else {
                // Without the span when the body never came: who sent it is said here.
                let client_ip = spans::client_ip(&request);
                tracing::info!(forge = %forge_name, %client_ip, error = %err, "delivery refused");
            }
            (err.outcome(), err.error_response())
        }
    });
    state.metrics.observe_delivery(
        DeliveryLabels {
            forge: forge.map_or("unknown", Forge::as_str),
            outcome,
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn accept(
    state: &AppState,
    forge: Forge,
    request: &HttpRequest,
    body: BytesMut,
) -> Result<Accepted, HookError> {
    let settings = &state.settings;
    let delivery = webhook::receive(
        forge,
        &RequestHeaders(request.headers()),
        &body,
        settings,
        SystemTime::now(),
    )?;
    record_visibility(state, forge, &delivery).await?;
    let run = match delivery.event.run_request() {
        Ok(run) => run,
        Err(reason) => {
            record_closed_pull_request(state, forge, &delivery).await?;
            return Ok(Accepted::NotActedOn(reason));
        }
    };
    let repo_name = delivery
        .event
        .repo
        .as_ref()
        .map(|repo| repo.full_name.clone())
        .ok_or_else(|| WebhookError::BadPayload("payload names no repository".into()))?;
    let repo = settings
        .repo(forge, &repo_name)
        .ok_or_else(|| HookError::UnknownRepo {
            forge,
            repo: repo_name.clone(),
        })?;
    // The run fetches the commit from the payload's clone URL unless the config names one.
    let payload_url = delivery
        .event
        .repo
        .as_ref()
        .and_then(|repo| repo.clone_url.as_ref());
    if repo.clone_url.is_none() && payload_url.is_none() {
        return Err(WebhookError::BadPayload(format!(
            "the payload gives no clone URL for `{repo_name}`, and its `[[repos]]` entry sets no \
             `clone_url`"
        ))
        .into());
    }
    let delivery_id = delivery.id.as_str().to_owned();
    let approval = approval::reason(repo, &delivery.event);
    let blocked = approval.is_some();
    let recorded = state
        .store
        .record_delivery(NewDelivery {
            delivery,
            run,
            repo: repo.name.clone(),
            approval,
        })
        .await
        .map_err(HookError::Store)?;
    Ok(match recorded {
        Recorded::Queued { run_id } => {
            if blocked {
                state.metrics.observe_approval("blocked");
                tracing::info!(%forge, repo = %repo.name, run_id, %delivery_id, "run waits for approval");
            } else {
                tracing::info!(%forge, repo = %repo.name, run_id, %delivery_id, "run queued");
            }
            Accepted::Queued {
                run_id,
                delivery_id,
                blocked,
            }
        }
        Recorded::Duplicate => Accepted::Duplicate,
    })
}

/// Keeps the visibility a verified delivery reports for a configured repo, whatever its
/// event: a repo made private (GitHub's `repository` `privatized`) hides its runs at once.
async fn record_visibility(
    state: &AppState,
    forge: Forge,
    delivery: &webhook::Delivery,
) -> Result<(), HookError> {
    let Some(repo) = &delivery.event.repo else {
        return Ok(());
    };
    let (Some(visibility), Some(configured)) =
        (repo.visibility, state.settings.repo(forge, &repo.full_name))
    else {
        return Ok(());
    };
    state
        .store
        .record_visibility(forge, &configured.name, visibility)
        .await
        .map_err(HookError::Store)
}

/// Keeps that a configured repo's pull request was closed or merged, so that its overview
/// stops listing it as open.
async fn record_closed_pull_request(
    state: &AppState,
    forge: Forge,
    delivery: &webhook::Delivery,
) -> Result<(), HookError> {
    let webhook::EventKind::PullRequest(pull_request) = &delivery.event.kind else {
        return Ok(());
    };
    let merged = match pull_request.action {
        webhook::PullRequestAction::Closed => false,
        webhook::PullRequestAction::Merged => true,
        _ => return Ok(()),
    };
    let Some(configured) = delivery
        .event
        .repo
        .as_ref()
        .and_then(|repo| state.settings.repo(forge, &repo.full_name))
    else {
        return Ok(());
    };
    let number = i64::try_from(pull_request.number).unwrap_or(i64::MAX);
    state
        .store
        .record_pull_request_closed(forge, &configured.name, number, merged)
        .await
        .map_err(HookError::Store)
}

/// Deliveries verified, parsed and stored at once, each in its log span. Two of the store's
/// batches of queued runs (`store::intake`), so that one fills while the other commits; the
/// rest wait for a turn holding their connection, request and body, but no log span and no
/// parsed payload. A burst of 5,000 at once otherwise held as many of both, and the log
/// subscriber keeps a slot for every span that was ever open at the same time: about 1 MiB
/// more stayed after it (`scripts/bench-abuse.sh`).
pub const DELIVERIES_AT_ONCE: usize = 512;

/// Waits up to `wait` (`server.request_timeout`) for a delivery's turn; past it, the forge is
/// told to retry, so that a stalled store does not gather deliveries without end.
async fn take_turn(turns: &Semaphore, wait: Duration) -> Result<SemaphorePermit<'_>, HookError> {
    match tokio::time::timeout(wait, turns.acquire()).await {
        Ok(Ok(turn)) => Ok(turn),
        // The turns are never closed; were they, that too is a reason to retry.
        Ok(Err(_)) | Err(_) => Err(HookError::Busy(wait)),
    }
}

/// Reads a delivery's body, waits for its turn, then hands it to `handle` in the delivery's
/// span, which it returns for the answer's own events. A body that does not arrive has no
/// span (`spans.rs`: a slow upload must leave nothing in the log subscriber behind).
pub(super) async fn read_then<T, Handled>(
    state: &AppState,
    request: &HttpRequest,
    body: web::Payload,
    handle: impl FnOnce(BytesMut) -> Handled,
) -> (Span, Result<T, HookError>)
where
    Handled: Future<Output = Result<T, HookError>>,
{
    let limit = (
        "server.max_body_bytes",
        state.settings.server.max_body_bytes,
    );
    match body::read_in_time(state, request.headers(), body, limit).await {
        Ok(body) => {
            let wait = state.settings.server.request_timeout;
            let _turn = match take_turn(&state.deliveries, wait).await {
                Ok(turn) => turn,
                Err(err) => return (Span::none(), Err(err)),
            };
            let span = spans::delivery(request);
            let result = handle(body).instrument(span.clone()).await;
            (span, result)
        }
        Err(err) => (Span::none(), Err(err.into())),
    }
}

struct RequestHeaders<'a>(&'a HeaderMap);

impl webhook::Headers for RequestHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|value| value.to_str().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_delivery_that_gets_no_turn_in_time_is_told_to_retry() {
        let wait = Duration::from_millis(50);
        let turns = Semaphore::new(1);
        let held = take_turn(&turns, wait).await.unwrap();
        let refused = take_turn(&turns, wait).await.unwrap_err();
        assert!(matches!(refused, HookError::Busy(_)), "{refused}");
        assert_eq!(refused.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.outcome(), "busy");
        drop(held);
        let _turn = take_turn(&turns, wait).await.unwrap();
    }
}
