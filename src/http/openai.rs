//! `POST /v1/chat/completions` and `GET /v1/models`: the agent as an OpenAI-compatible model,
//! so any chat client that speaks that API can use it.
//!
//! The server keeps the conversation (history, workspace, tools) as for `/api/chat`: the
//! session is chosen by the usual client and conversation ids, and only the latest user
//! message with text starts a turn; earlier messages in the request are the client's copy and
//! are not replayed. Errors come in OpenAI's envelope, and a turn that ran and failed says
//! `x-should-retry: false` so an SDK does not run it again. Streaming (`stream: true`) sends `chat.completion.chunk`s with
//! the text of every model step as it comes (what the model says before its tool calls too)
//! and ends with `data: [DONE]`; the JSON answer holds the final reply only. Tool activity
//! stays inside the agent. A failed turn is a JSON error (502/504) or, once streaming, an
//! `error` chunk.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_lab::sse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::chat::final_payload;
use super::error::{ApiError, OpenAiError};
use super::identity::addressed_session;
use super::sse::rendered_stream;
use super::AppState;
use crate::protocol::{ChatEvent, SeqEvent};
use crate::runtime::messages::{Delivery, StartTurn};

#[derive(Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(serde::Deserialize, Default)]
pub struct StreamOptions {
    /// A last chunk with no choices and the turn's `usage`, before `[DONE]`.
    #[serde(default)]
    include_usage: bool,
}

/// OpenAI's `usage` object for a finished turn.
fn usage(meta: &crate::protocol::ReplyMeta) -> Value {
    json!({
        "prompt_tokens": meta.tokens_in,
        "completion_tokens": meta.tokens_out,
        "total_tokens": meta.tokens_in + meta.tokens_out,
    })
}

/// The text of a message's `content` (a string, or the text parts of a list).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// `GET /v1/models`: the one model this server is, as OpenAI-compatible clients list it.
pub async fn models(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OpenAiError> {
    super::identity::caller(&req)?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": [{
            "id": AGENT_MODEL,
            "object": "model",
            "created": 0,
            "owned_by": "okcvm",
            "description": format!("the OK Computer agent, on {}", state.services.llm.endpoint().model),
        }],
    })))
}

/// The model name `/v1/models` lists and answers carry when the request names none.
const AGENT_MODEL: &str = "okcvm-agent";

/// The JSON body of `/v1/chat/completions`, with OpenAI-style errors.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .error_handler(|err, _req| OpenAiError(super::error::json_error(err)).into())
}

pub async fn completions(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<CompletionRequest>,
) -> Result<HttpResponse, OpenAiError> {
    let (key, named_conversation) = addressed_session(&req)?;
    let body = body.into_inner();
    // The agent answers the latest user message with text (clients may end the list with
    // their own assistant prefill or a system note).
    let Some(message) = body
        .messages
        .iter()
        .rev()
        .filter(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
        .find(|text| !crate::protocol::is_blank(text))
    else {
        return Err(ApiError::BadRequest(
            "messages must hold a user message with text: it is what the agent answers".into(),
        )
        .into());
    };
    let model = body.model.unwrap_or_else(|| AGENT_MODEL.into());
    let turn = StartTurn {
        message,
        replace_last: false,
        replace_from: None,
        delivery: if body.stream {
            Delivery::Everything
        } else {
            Delivery::Ending
        },
        named_conversation,
        attended: false,
    };
    let handle = state.sessions.ask(&key, turn).await?;
    let id = completion_id();
    let created = chrono::Utc::now().timestamp();
    if body.stream {
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
        return Ok(rendered_stream(handle.events, &req, move |event| {
            chunks(event, &id, created, &model, include_usage)
        }));
    }
    let payload = final_payload(handle.events).await?;
    let usage = usage(&payload.meta);
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": payload.reply},
            "finish_reason": "stop",
        }],
        "usage": usage,
    })))
}

/// The stream frames of one turn event.
fn chunks(
    event: &SeqEvent,
    id: &str,
    created: i64,
    model: &str,
    include_usage: bool,
) -> Vec<sse::Event> {
    let frame = |choices: Value, usage: Option<Value>| {
        let mut data = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            data["usage"] = usage;
        }
        sse::Event::Data(sse::Data::new(data.to_string()))
    };
    let chunk = |delta: Value, finish: Value| {
        frame(
            json!([{"index": 0, "delta": delta, "finish_reason": finish}]),
            None,
        )
    };
    match &event.event {
        ChatEvent::Token { delta } => {
            vec![chunk(
                json!({"role": "assistant", "content": delta}),
                Value::Null,
            )]
        }
        ChatEvent::Final { payload } => {
            let mut frames = vec![chunk(json!({}), json!("stop"))];
            if include_usage {
                frames.push(frame(json!([]), Some(usage(&payload.meta))));
            }
            frames
        }
        ChatEvent::Error { message, .. } => {
            let error = json!({"error": {"message": message, "type": "agent_error"}});
            vec![sse::Event::Data(sse::Data::new(error.to_string()))]
        }
        ChatEvent::Stop => vec![sse::Event::Data(sse::Data::new("[DONE]"))],
        ChatEvent::ToolStarted { .. }
        | ChatEvent::ToolCompleted { .. }
        | ChatEvent::ApprovalRequired { .. }
        | ChatEvent::ApprovalDecided { .. }
        | ChatEvent::ContextCompacted { .. } => Vec::new(),
    }
}
