//! `GET /api/openapi.json`: every route the server mounts, described by OpenAPI 3.1.
//!
//! The document is generated from the handlers' own `#[utoipa::path]` annotations and the
//! types they answer with, so an answer that changes shape changes the document with it;
//! a test compares the routes mounted in `mod.rs` with the document's paths.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{api, auth, badges, deploy_hooks, events, health, hooks, manual, overview, pages};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gantry",
        description = "Forge webhooks in, pipeline runs in Docker, image tags handed to GitOps. \
            Reading follows each repo's visibility and the reader's permission on the forge; \
            acting needs write permission (a session) or the API token."
    ),
    paths(
        api::list_runs,
        api::get_run,
        api::get_log,
        events::run_events,
        api::cancel_run,
        api::rerun_run,
        api::approve_run,
        api::decline_run,
        manual::start_run,
        api::list_runners,
        openapi_json,
        hooks::receive,
        deploy_hooks::receive_flux,
        deploy_hooks::receive_argocd,
        health::healthz,
        health::readyz,
        health::metrics,
        badges::badge,
        pages::runs_page,
        pages::run_page,
        pages::timeline_svg,
        pages::approve_form,
        pages::decline_form,
        pages::runners_page,
        overview::repo_page,
        manual::start_run_form,
        auth::login_page,
        auth::login_with_token,
        auth::login_with_forge,
        auth::callback,
        auth::logout,
    ),
    modifiers(&SecuritySchemes, &BodyRefusals),
    tags(
        (name = "runs", description = "Run history, logs, live events and what can be done to a run"),
        (name = "runners", description = "The runner fleet"),
        (name = "webhooks", description = "Deliveries from forges and reports from GitOps controllers"),
        (name = "pages", description = "The web pages (HTML, SVG)"),
        (name = "sign-in", description = "Sign-in with a forge's OAuth, or with the API token"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The ways in: the API token (or a session's) as a bearer, the session cookie, the
/// metrics token, Argo CD's token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "bearer",
            bearer("`server.api_token`: reads and does everything"),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "gantry_session",
                "A signed-in person's session; its POSTs carry `X-CSRF-Token` (or a `csrf` \
                 form field) from the page",
            ))),
        );
        components.add_security_scheme("metrics", bearer("`server.metrics_token`"));
        components.add_security_scheme("argocd", bearer("One of `deploy.argocd_tokens`"));
    }
}

/// What `body::in_time` answers for any POST but a webhook's (which lists its own): a body
/// that is late or too large never reaches the handler.
struct BodyRefusals;

impl Modify for BodyRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let refusal = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let Some(post) = item.post.as_mut() else {
                continue;
            };
            if path.starts_with(super::body::DELIVERIES) {
                continue;
            }
            let responses = &mut post.responses.responses;
            responses.entry("408".into()).or_insert_with(|| {
                refusal("The body did not arrive within `server.request_timeout`").into()
            });
            responses.entry("413".into()).or_insert_with(|| {
                let limit = super::body::API_MAX_BODY_BYTES / 1024;
                refusal(&format!("The body is larger than {limit} KiB")).into()
            });
        }
    }
}

/// The document, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serialises")
    })
}

/// This document.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1", body = Object))
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
