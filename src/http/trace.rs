//! One tracing span per HTTP request: method, path, a request id (the client's sane
//! `x-request-id`, else a fresh one, echoed in the response) and, once a handler resolved
//! them, the owner and conversation. Every log line written while the request is handled
//! carries them, and a turn's own span (see `runtime::session`) carries the same owner and
//! conversation, so an incident can be followed from the request to the turn.

use std::future::Future;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Instrument;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID: usize = 64;

/// The client's request id when it is short visible ASCII without spaces, else a new one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_string())
}

/// The middleware (for `App::wrap_fn`).
pub fn traced<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.path(),
        owner = tracing::field::Empty,
        conversation = tracing::field::Empty,
    );
    let call = service.call(req);
    async move {
        let started = std::time::Instant::now();
        let mut response = call.await?;
        tracing::debug!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "answered"
        );
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
    }
    .instrument(span)
}

/// Notes who the current request is for on its span.
pub fn record_session(owner: &str, conversation: &str) {
    let span = tracing::Span::current();
    span.record("owner", tracing::field::display(owner));
    span.record("conversation", tracing::field::display(conversation));
}
