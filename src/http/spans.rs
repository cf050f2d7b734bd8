//! The span each request's events are logged in.
//!
//! A span holds a slot in the log subscriber's registry while it is open, and the registry
//! never gives slots back: it keeps as many as were ever open at once, each with its own
//! field map. So no span is open while a stranger's body is on its way: other requests'
//! bodies are read before the root span opens (`body::in_time`, outside the logger), and a
//! webhook delivery, which reads its own, opens its span once the body has arrived. Five
//! thousand slow uploads then leave no slots behind.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

use super::body::is_delivery;

/// tracing-actix-web's root span for every request except deliveries, which open
/// [`delivery`] themselves once their body is in.
pub struct RequestSpans;

impl RootSpanBuilder for RequestSpans {
    fn on_request_start(request: &ServiceRequest) -> Span {
        if is_delivery(request) {
            Span::none()
        } else {
            tracing_actix_web::root_span!(request)
        }
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// A delivery's span, with the fields other requests' root spans carry that say who sent
/// what.
pub fn delivery(request: &HttpRequest) -> Span {
    let request_id = request.extensions().get::<RequestId>().copied();
    tracing::info_span!(
        "HTTP request",
        http.method = %request.method(),
        http.route = request.match_pattern().as_deref().unwrap_or(""),
        http.target = %request.uri().path(),
        http.client_ip = %client_ip(request),
        http.user_agent = request
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or(""),
        request_id = request_id.map(tracing::field::display),
    )
}

/// Who sent the request, as the root spans say it (a proxy's `Forwarded` header first).
pub fn client_ip(request: &HttpRequest) -> String {
    request
        .connection_info()
        .realip_remote_addr()
        .unwrap_or("")
        .to_owned()
}
