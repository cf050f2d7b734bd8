//! The HTTP surface: webhook intake, health, metrics, the JSON API, the web pages and
//! sign-in. Handlers stay thin: they verify, parse, store and answer; nothing here waits on
//! Docker or git, and only sign-in and permission checks (`crate::auth`) wait on a forge.

mod ansi;
mod api;
mod auth;
mod badges;
mod deploy_hooks;
mod events;
mod health;
mod hooks;
mod manual;
mod overview;
mod pages;
mod pictures;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

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
}

/// Webhook intake and the API: served by the `all` and `intake` roles.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(pages::runs_page))
        .route("/runs/{id}", web::get().to(pages::run_page))
        .route(
            "/runs/{id}/timeline.svg",
            web::get().to(pages::timeline_svg),
        )
        // Before `/hooks/{forge}`, which would take these names for forges.
        .route("/hooks/flux", web::post().to(deploy_hooks::receive_flux))
        .route(
            "/hooks/argocd",
            web::post().to(deploy_hooks::receive_argocd),
        )
        .route("/hooks/{forge}", web::post().to(hooks::receive))
        .route("/api/runs", web::get().to(api::list_runs))
        .route("/api/runs/{id}", web::get().to(api::get_run))
        .service(
            web::resource("/api/runs/{id}/log")
                .wrap(actix_web::middleware::Compress::default())
                .route(web::get().to(api::get_log)),
        )
        .route("/api/runs/{id}/events", web::get().to(events::run_events))
        .route("/api/runs/{id}/cancel", web::post().to(api::cancel_run))
        .route("/api/runs/{id}/rerun", web::post().to(api::rerun_run))
        .route("/api/runs/{id}/approve", web::post().to(api::approve_run))
        .route("/api/runs/{id}/decline", web::post().to(api::decline_run))
        .route("/runs/{id}/approve", web::post().to(pages::approve_form))
        .route("/runs/{id}/decline", web::post().to(pages::decline_form))
        .route("/api/runners", web::get().to(api::list_runners))
        .route("/runners", web::get().to(pages::runners_page))
        .route("/badges/{repo:.+}.svg", web::get().to(badges::badge))
        .route(
            "/api/repos/{repo:.+}/runs",
            web::post().to(manual::start_run),
        )
        .route(
            "/repos/{repo:.+}/runs",
            web::post().to(manual::start_run_form),
        )
        .route("/repos/{repo:.+}", web::get().to(overview::repo_page))
        .route("/login", web::get().to(auth::login_page))
        .route("/login", web::post().to(auth::login_with_token))
        .route("/login/{forge}", web::get().to(auth::login_with_forge))
        .route("/login/{forge}/callback", web::get().to(auth::callback))
        .route("/logout", web::post().to(auth::logout));
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
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}

/// The most of each stage's output the run page shows, and the event stream replays, before
/// going live: the end of a log is what people read, and a page of a 16 MiB log must stay
/// small. The whole log is a link away (`/api/runs/{id}/log?stage=…`).
const LOG_TAIL_BYTES: i64 = 512 * 1024;

/// The JSON body of every error answer: `{"error": "…"}`.
fn error_body(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}
