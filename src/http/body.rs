//! Request bodies: each must arrive within `server.request_timeout`, and none is held in
//! memory past its cap. A webhook's handler reads its own (`hooks.rs`: up to
//! `server.max_body_bytes`, counted by forge and outcome); every other request's body is read
//! by [`in_time`] before its handler runs, so that a slow sender holds a connection and what
//! it sent, and nothing else: no handler, no log span.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::{AppState, error_body};

/// The largest body the API and the pages take: their JSON and forms are a few hundred bytes.
/// The JSON extractor's limit (`http::bad_json`) is the same.
pub const API_MAX_BODY_BYTES: usize = 256 * 1024;

/// The path under which webhooks arrive; their handlers read their bodies themselves.
pub const DELIVERIES: &str = "/hooks/";

/// Whether the request is a webhook delivery, whose handler reads its body itself. Judged on
/// the path routing sees (percent-decoded), so that no spelling of a hook's path is treated
/// as another route's.
pub fn is_delivery(request: &ServiceRequest) -> bool {
    request.match_info().as_str().starts_with(DELIVERIES)
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body is larger than {setting} ({limit} bytes)")]
    TooLarge { setting: &'static str, limit: usize },
    #[error("reading body: {0}")]
    Broken(String),
    #[error("the body did not arrive within server.request_timeout ({}s)", .0.as_secs())]
    TimedOut(Duration),
}

impl ResponseError for BodyError {
    fn status_code(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        // A body that never finished is not read further: the connection goes with it.
        if matches!(self, BodyError::TimedOut(_)) {
            response.force_close();
        }
        response.json(error_body(&self.to_string()))
    }
}

/// Reads the body within `server.request_timeout` and up to `limit` bytes (`setting` names
/// the limit in the refusal). A timeout is counted in `/metrics`.
pub(super) async fn read_in_time(
    state: &AppState,
    headers: &HeaderMap,
    payload: impl Stream<Item = Result<Bytes, PayloadError>>,
    (setting, limit): (&'static str, usize),
) -> Result<BytesMut, BodyError> {
    let deadline = state.settings.server.request_timeout;
    match tokio::time::timeout(deadline, read(headers, payload, setting, limit)).await {
        Ok(body) => body,
        Err(_) => {
            state.metrics.requests_timed_out.inc();
            Err(BodyError::TimedOut(deadline))
        }
    }
}

/// Reads the body up to `limit` bytes. A `Content-Length` over the limit is refused before a
/// byte is read; a chunked body is cut off as soon as it passes the limit.
async fn read(
    headers: &HeaderMap,
    payload: impl Stream<Item = Result<Bytes, PayloadError>>,
    setting: &'static str,
    limit: usize,
) -> Result<BytesMut, BodyError> {
    let mut payload = std::pin::pin!(payload);
    let too_large = || BodyError::TooLarge { setting, limit };
    if declared_length(headers).is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    // The declared length is the sender's word: room is made as bytes arrive, so that a
    // slow upload holds what it sent and no more (thousands may be held at once).
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| BodyError::Broken(err.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// Middleware: reads the body of every request but a webhook's before the rest of the app
/// sees the request, within `server.request_timeout` and up to [`API_MAX_BODY_BYTES`].
/// Requests without a body pass straight through. A webhook's request and a refused one
/// release their headers once answered ([`super::release_headers`]).
pub async fn in_time(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let payload = request.take_payload();
    // The parser decides which requests have a body (a length, chunks, or an upgrade's
    // stream); the headers alone would let some through unread.
    let delivery = is_delivery(&request);
    let ours = !matches!(payload, Payload::None) && !delivery;
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let (true, Some(state)) = (ours, state) else {
        request.set_payload(payload);
        let response = next.call(request).await?;
        // A delivery's handlers keep nothing of its request, so here it is the only one.
        let response = if delivery {
            without_headers(response)
        } else {
            response
        };
        return Ok(response.map_into_left_body());
    };
    let limit = ("the API's limit", API_MAX_BODY_BYTES);
    match read_in_time(&state, request.headers(), payload, limit).await {
        Ok(body) => {
            request.set_payload(Payload::from(body.freeze()));
            Ok(next.call(request).await?.map_into_left_body())
        }
        Err(err) => {
            tracing::info!(
                path = %request.path(),
                client_ip = %super::spans::client_ip(request.request()),
                error = %err,
                "request body refused"
            );
            super::release_headers(request.head_mut());
            Ok(request
                .into_response(err.error_response())
                .map_into_right_body())
        }
    }
}

/// The response, its request's headers released ([`super::release_headers`]).
fn without_headers<B>(response: ServiceResponse<B>) -> ServiceResponse<B> {
    let (request, response) = response.into_parts();
    let mut request = ServiceRequest::from_request(request);
    super::release_headers(request.head_mut());
    let (request, _) = request.into_parts();
    ServiceResponse::new(request, response)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use futures_util::stream;

    use super::*;

    fn declaring(length: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        headers
    }

    #[tokio::test]
    async fn a_body_holds_what_arrived_not_what_was_declared() {
        let chunks = stream::iter([Ok(Bytes::from_static(b"{"))]);
        let body = read(&declaring(1_000_000), chunks, "a limit", 2_000_000)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{");
        assert!(
            body.capacity() < 1024,
            "a one-byte body took {} bytes of room",
            body.capacity()
        );
    }

    #[tokio::test]
    async fn a_body_arriving_in_pieces_is_whole() {
        let text = b"{\"zen\": \"Keep it logically awesome.\"}";
        let chunks = stream::iter(
            text.chunks(3)
                .map(|piece| Ok(Bytes::copy_from_slice(piece))),
        );
        let body = read(&declaring(text.len()), chunks, "a limit", 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], text);
    }

    #[tokio::test]
    async fn a_body_is_cut_off_past_the_limit() {
        let chunks = stream::iter([
            Ok(Bytes::from_static(b"0123")),
            Ok(Bytes::from_static(b"4567")),
        ]);
        let refused = read(&HeaderMap::new(), chunks, "a limit", 6).await;
        assert!(
            matches!(refused, Err(BodyError::TooLarge { limit: 6, .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let chunks = stream::iter([Err(PayloadError::Incomplete(None))]);
        let refused = read(&declaring(7), chunks, "a limit", 6).await;
        assert!(
            matches!(refused, Err(BodyError::TooLarge { limit: 6, .. })),
            "{refused:?}"
        );
    }

    /// Answers with how many headers its handler saw.
    async fn count_headers(request: actix_web::HttpRequest) -> HttpResponse {
        HttpResponse::Accepted().body(request.headers().len().to_string())
    }

    #[actix_web::test]
    async fn a_delivery_hands_back_its_headers_once_answered_and_no_sooner() {
        use actix_web::{App, test};
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(in_time))
                .route("/hooks/{forge}", web::post().to(count_headers))
                .route("/api/runs", web::get().to(count_headers)),
        )
        .await;
        let delivery = test::TestRequest::post()
            .uri("/hooks/github")
            .insert_header(("X-GitHub-Event", "push"))
            .insert_header(("X-GitHub-Delivery", "1"))
            .to_request();
        let answered = test::call_service(&app, delivery).await;
        assert!(
            answered.request().headers().is_empty(),
            "the finished delivery kept {:?}",
            answered.request().headers()
        );
        assert_eq!(test::read_body(answered).await, "2");

        // Any other request may still be held by its handler: its headers stay.
        let page = test::TestRequest::get()
            .uri("/api/runs")
            .insert_header(("Accept", "application/json"))
            .to_request();
        let answered = test::call_service(&app, page).await;
        assert_eq!(answered.request().headers().len(), 1);
    }
}
