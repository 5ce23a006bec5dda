//! `POST /api/chat` (SSE or JSON) and `POST /api/chat/stop`.
//!
//! A chat request becomes one `StartTurn` to the session; its events are streamed as SSE when
//! the client asked for a stream and accepts `text/event-stream`, otherwise collected into
//! the `final` payload (or the error's status: 502/504 for the model, 409 when cancelled).

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::identity::{addressed_session, session_key};
use super::sse::event_stream;
use super::AppState;
use crate::protocol::{ChatEvent, ChatRequest};
use crate::runtime::messages::{CancelTurn, Delivery, StartTurn, Subscribe, Subscription};

pub async fn chat(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let (key, named_conversation) = addressed_session(&req)?;
    let body = body.into_inner();
    if crate::protocol::is_blank(&body.message) {
        return Err(ApiError::BadRequest("message must not be empty".into()));
    }
    let wants_stream = body.stream && accepts_event_stream(&req);
    let turn = StartTurn {
        message: body.message,
        replace_last: body.replace_last,
        replace_from: body.replace_from,
        delivery: if wants_stream {
            Delivery::Everything
        } else {
            Delivery::Ending
        },
        named_conversation,
        attended: true,
    };
    let handle = state.sessions.ask(&key, turn).await?;
    if wants_stream {
        return Ok(event_stream(handle.events, &req));
    }
    let payload = final_payload(handle.events).await?;
    Ok(HttpResponse::Ok().json(payload))
}

/// Waits for the end of a turn: its `final` payload, or the error it failed with (502/504
/// for the model, 409 when it was cancelled).
pub async fn final_payload(
    mut events: Subscription,
) -> Result<std::sync::Arc<crate::protocol::ChatResponse>, ApiError> {
    let mut failure = None;
    while let Some(event) = events.recv().await {
        match event.event {
            ChatEvent::Final { payload } => return Ok(payload),
            ChatEvent::Error { message, reason } => failure = Some((reason, message)),
            ChatEvent::Stop => break,
            _ => {}
        }
    }
    match failure {
        Some((reason, message)) => Err(ApiError::turn_failed(reason, message)),
        None => Err(ApiError::Internal(
            "the session ended before the turn did; its conversation goes on from the last stored turn"
                .into(),
        )),
    }
}

pub async fn stop(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    state.sessions.ask(&key, CancelTurn).await?;
    Ok(HttpResponse::Ok().json(json!({"stopped": true})))
}

#[derive(serde::Deserialize)]
pub struct EventsQuery {
    after: Option<u64>,
}

/// Re-attach to the running or last turn: replays events after `after` (or `Last-Event-ID`),
/// then follows the turn live until `stop`.
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest("Last-Event-ID must be an event number".into()))
        })
        .transpose()?;
    let after = query.after.or(last_event_id);
    let events = state.sessions.ask(&key, Subscribe { after }).await?;
    Ok(event_stream(events, &req))
}

fn accepts_event_stream(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}
