//! The HTTP surface: webhook intake, health, metrics, the JSON API, the web pages and
//! sign-in. Handlers stay thin: they verify, parse, store and answer; nothing here waits on
//! Docker or git, and only sign-in and permission checks (`crate::auth`) wait on a forge.

mod ansi;
mod api;
mod auth;
mod badges;
pub mod body;
mod deploy_hooks;
mod events;
mod health;
mod hooks;
pub use hooks::DELIVERIES_AT_ONCE;
mod manual;
pub mod openapi;
mod overview;
mod pages;
mod pictures;
pub mod spans;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web;

use crate::auth::Access;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::runner::Engine;
use crate::store::Store;

/// How long a request's headers may take to arrive, on every route; past it, 408 and the
/// connection is closed. A webhook's body then has `server.request_timeout`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts each connection in `/metrics` while it is open, and the ones that reach the cap.
pub fn count_connection(
    metrics: Metrics,
    cap: usize,
) -> impl Fn(&dyn Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
    move |_, extensions| {
        metrics.connections.inc();
        let open = metrics.connections_open.inc() + 1;
        if open >= cap as i64 {
            metrics.connections_at_cap.inc();
        }
        extensions.insert(OpenConnection(metrics.connections_open.clone()));
    }
}

/// Gives the request's header values storage of their own.
///
/// The values arrive as slices of the connection's 8 KiB read buffer, and actix-web keeps
/// up to 128 finished requests and 128 request heads per worker for reuse, clearing their
/// headers only when one is reused. After a burst (thousands of slow uploads at once) every
/// pooled head kept a closed connection's whole buffer and a map sized for 32 headers:
/// 8.5 MB that never went back. Copied, a pooled head holds its map and no buffer, and
/// a webhook's head not even that ([`release_headers`]).
pub fn own_headers(head: &mut actix_web::dev::RequestHead) {
    use actix_web::http::header::{HeaderMap, HeaderValue};
    let shared = std::mem::replace(&mut head.headers, HeaderMap::new());
    head.headers.reserve(shared.len());
    for (name, value) in shared {
        // The parser let only valid values through, so the copy is valid too.
        let owned = match HeaderValue::from_bytes(value.as_bytes()) {
            Ok(mut owned) => {
                owned.set_sensitive(value.is_sensitive());
                owned
            }
            Err(_) => value,
        };
        head.headers.append(name, owned);
    }
}

/// Empties a finished request's header map, so that the pools of finished requests (see
/// [`own_headers`]) keep none of a delivery's or a refused body's headers: each map holds
/// room for at least eight entries of four values, 1,792 B even for a request of four
/// headers, and after thousands of slow uploads the 512 pooled heads kept 0.9 MB of them. A
/// reused head grows a map again as it parses. Other requests' maps are still pooled.
///
/// Only for a request nothing else holds (`ServiceRequest::head_mut` panics otherwise): one
/// refused before any handler saw it, or a webhook's, whose handlers keep nothing of it.
pub fn release_headers(head: &mut actix_web::dev::RequestHead) {
    head.headers = actix_web::http::header::HeaderMap::new();
}

/// Lives as long as its connection (in the connection's extensions): while it does, the
/// connection counts as open.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    /// Decides who may read and act on what.
    pub access: Access,
    pub metrics: Metrics,
    /// The Docker engine `/readyz` checks; `None` where this process runs nothing.
    pub engine: Option<Engine>,
    /// Set once the process was told to stop: `/readyz` answers 503 from then on, so load
    /// balancers stop sending work while runs in hand finish.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Turns for deliveries whose body is in ([`DELIVERIES_AT_ONCE`]).
    pub deliveries: Arc<tokio::sync::Semaphore>,
}

/// Webhook intake and the API: served by the `all` and `intake` roles. Each path is one
/// resource with its methods, so another method on it is answered 405.
pub fn routes(config: &mut web::ServiceConfig) {
    use web::{get, post, resource};
    config
        .app_data(bad_json())
        .app_data(bad_query())
        .app_data(bad_form())
        .app_data(bad_path())
        .service(resource("/api/openapi.json").route(get().to(openapi::openapi_json)))
        .service(resource("/").route(get().to(pages::runs_page)))
        .service(resource("/runs/{id}").route(get().to(pages::run_page)))
        .service(resource("/runs/{id}/timeline.svg").route(get().to(pages::timeline_svg)))
        // Before `/hooks/{forge}`, which would take these names for forges.
        .service(resource("/hooks/flux").route(post().to(deploy_hooks::receive_flux)))
        .service(resource("/hooks/argocd").route(post().to(deploy_hooks::receive_argocd)))
        .service(resource("/hooks/{forge}").route(post().to(hooks::receive)))
        .service(resource("/api/runs").route(get().to(api::list_runs)))
        .service(resource("/api/runs/{id}").route(get().to(api::get_run)))
        .service(
            resource("/api/runs/{id}/log")
                .wrap(actix_web::middleware::Compress::default())
                .route(get().to(api::get_log)),
        )
        .service(resource("/api/runs/{id}/events").route(get().to(events::run_events)))
        .service(resource("/api/runs/{id}/cancel").route(post().to(api::cancel_run)))
        .service(resource("/api/runs/{id}/rerun").route(post().to(api::rerun_run)))
        .service(resource("/api/runs/{id}/approve").route(post().to(api::approve_run)))
        .service(resource("/api/runs/{id}/decline").route(post().to(api::decline_run)))
        .service(resource("/runs/{id}/approve").route(post().to(pages::approve_form)))
        .service(resource("/runs/{id}/decline").route(post().to(pages::decline_form)))
        .service(resource("/api/runners").route(get().to(api::list_runners)))
        .service(resource("/runners").route(get().to(pages::runners_page)))
        .service(resource("/badges/{repo:.+}.svg").route(get().to(badges::badge)))
        .service(resource("/api/repos/{repo:.+}/runs").route(post().to(manual::start_run)))
        .service(resource("/repos/{repo:.+}/runs").route(post().to(manual::start_run_form)))
        .service(resource("/repos/{repo:.+}").route(get().to(overview::repo_page)))
        .service(
            resource("/login")
                .route(get().to(auth::login_page))
                .route(post().to(auth::login_with_token)),
        )
        .service(resource("/login/{forge}").route(get().to(auth::login_with_forge)))
        .service(resource("/login/{forge}/callback").route(get().to(auth::callback)))
        .service(resource("/logout").route(post().to(auth::logout)));
}

/// The token of an `Authorization: Bearer …` header, if the request has one.
fn bearer_token(request: &actix_web::HttpRequest) -> Option<&str> {
    request
        .headers()
        .get("Authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The runner fleet names no repo; it is hidden only where visitors may read nothing.
fn may_see_fleet(state: &AppState, viewer: &crate::auth::Viewer) -> bool {
    !matches!(viewer, crate::auth::Viewer::Anonymous)
        || state.settings.auth.anonymous != crate::domain::AnonymousAccess::None
}

/// Health and metrics: served by every role.
pub fn health_routes(config: &mut web::ServiceConfig) {
    use web::{get, resource};
    config
        .service(resource("/healthz").route(get().to(health::healthz)))
        .service(resource("/readyz").route(get().to(health::readyz)))
        .service(resource("/metrics").route(get().to(health::metrics)));
}

/// The most of each stage's output the run page shows, and the event stream replays, before
/// going live: the end of a log is what people read, and a page of a 16 MiB log must stay
/// small. The whole log is a link away (`/api/runs/{id}/log?stage=…`).
const LOG_TAIL_BYTES: i64 = 512 * 1024;

/// The JSON body of every error answer: `{"error": "…"}`.
/// A body, query or path its handler cannot read is refused as the API refuses anything:
/// JSON with the reason (a path that is not one names nothing: 404).
fn bad_json() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(body::API_MAX_BODY_BYTES)
        .error_handler(|err, _| refusal(StatusCode::BAD_REQUEST, &err))
}

fn bad_query() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| refusal(StatusCode::BAD_REQUEST, &err))
}

fn bad_form() -> web::FormConfig {
    web::FormConfig::default().error_handler(|err, _| refusal(StatusCode::BAD_REQUEST, &err))
}

fn bad_path() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| refusal(StatusCode::NOT_FOUND, &err))
}

fn refusal(status: StatusCode, err: &dyn std::fmt::Display) -> actix_web::Error {
    let response = actix_web::HttpResponse::build(status).json(error_body(&err.to_string()));
    actix_web::error::InternalError::from_response(err.to_string(), response).into()
}

/// What every refusal answers: `{"error": "…"}`, a sentence for people.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: String,
}

fn error_body(message: &str) -> ErrorBody {
    ErrorBody {
        error: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::dev::RequestHead;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use bytes::Bytes;

    use super::own_headers;

    #[test]
    fn header_values_are_copied_out_of_the_read_buffer() {
        let buffer = Bytes::from_static(b"sha256=abc123 push token-xyz");
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        let shared = |from: usize, to: usize| {
            HeaderValue::from_maybe_shared(buffer.slice(from..to)).unwrap()
        };
        let mut head = RequestHead::default();
        let signature = HeaderName::from_static("x-hub-signature-256");
        let event = HeaderName::from_static("x-github-event");
        let mut token = shared(19, 28);
        token.set_sensitive(true);
        head.headers.append(signature.clone(), shared(0, 13));
        head.headers.append(event.clone(), shared(14, 18));
        head.headers.append(event.clone(), shared(14, 18));
        head.headers
            .append(actix_web::http::header::AUTHORIZATION, token);

        own_headers(&mut head);

        assert_eq!(head.headers.len(), 4);
        assert_eq!(head.headers.get(&signature).unwrap(), "sha256=abc123");
        assert_eq!(head.headers.get_all(&event).count(), 2);
        let authorization = head
            .headers
            .get(actix_web::http::header::AUTHORIZATION)
            .unwrap();
        assert_eq!(authorization, "token-xyz");
        assert!(authorization.is_sensitive());
        for (_, value) in head.headers.iter() {
            let at = value.as_bytes().as_ptr() as usize;
            assert!(
                !range.contains(&at),
                "{value:?} still points into the read buffer"
            );
        }
    }
}
