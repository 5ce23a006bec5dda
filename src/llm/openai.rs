//! The OpenAI-compatible chat-completions client (OpenAI, vLLM, llama.cpp server, Ollama `/v1`).
//!
//! Owns the HTTP exchange with the model: request encoding (the tool manifest spliced in
//! pre-encoded), retries with backoff for connect errors, 429 (honouring `Retry-After`) and
//! 5xx, a timeout until the response starts and an idle timeout while it streams. The
//! endpoint can be swapped at runtime (`POST /api/config`); a call in flight keeps the one it
//! started with. The API key is only ever put in the `Authorization` header.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::assemble::{ToolCallAssembler, ToolCallDelta};
use super::sse::SseDecoder;
use super::{Completion, LlmClient, LlmError, LlmRequest, Message, Usage};
use crate::config::{LlmConfig, Secret};

/// First retry waits this long, doubling each time: long enough for a restarting server.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// No backoff of our own is longer: a turn must not stall for minutes.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Error bodies are quoted to the user only this far.
const ERROR_BODY_CAP: usize = 600;

/// Where and how to reach the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    pub stream: bool,
}

#[derive(Debug, Clone)]
pub struct ClientLimits {
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_retries: u32,
    /// The longest wait a `Retry-After` may ask for.
    pub max_retry_after: Duration,
    /// Bytes one answer may take, streamed or not.
    pub max_response_bytes: usize,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: RwLock<Arc<Endpoint>>,
    limits: ClientLimits,
}

impl OpenAiClient {
    pub fn new(config: &LlmConfig) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::Unreachable(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint: RwLock::new(Arc::new(Endpoint {
                base_url: config.base_url.trim().to_string(),
                model: config.model.trim().to_string(),
                api_key: config.api_key.clone(),
                stream: config.stream,
            })),
            limits: ClientLimits {
                request_timeout: Duration::from_secs(config.request_timeout_secs),
                idle_timeout: Duration::from_secs(config.idle_stream_timeout_secs),
                max_retries: config.max_retries,
                max_retry_after: Duration::from_secs(config.max_retry_after_secs),
                max_response_bytes: config.max_response_bytes,
                temperature: config.temperature,
                max_tokens: config.max_tokens,
            },
        })
    }

    pub fn endpoint(&self) -> Arc<Endpoint> {
        match self.endpoint.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies to every call that starts after this one returns.
    pub fn set_endpoint(&self, endpoint: Endpoint) {
        let mut guard = match self.endpoint.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(endpoint);
    }

    async fn call(
        &self,
        request: LlmRequest<'_>,
        on_delta: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        let endpoint = self.endpoint();
        let body = WireRequest {
            model: &endpoint.model,
            messages: request.messages,
            tools: request.tools,
            stream: endpoint.stream,
            stream_options: endpoint.stream.then_some(StreamOptions {
                include_usage: true,
            }),
            temperature: self.limits.temperature,
            max_tokens: self.limits.max_tokens,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| LlmError::Malformed(format!("cannot encode request: {e}")))?;
        let url = format!(
            "{}/chat/completions",
            endpoint.base_url.trim_end_matches('/')
        );
        let response = self.send_with_retries(&url, &endpoint, body.into()).await?;
        let is_event_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let id_prefix = format!("call_{}_", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        if is_event_stream {
            self.read_stream(response, on_delta, &id_prefix).await
        } else {
            self.read_json(response, on_delta, &id_prefix).await
        }
    }

    async fn send_with_retries(
        &self,
        url: &str,
        endpoint: &Endpoint,
        body: bytes::Bytes,
    ) -> Result<reqwest::Response, LlmError> {
        let mut attempt = 0;
        loop {
            let mut builder = self
                .http
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(key) = &endpoint.api_key {
                builder = builder.bearer_auth(key.expose());
            }
            let (error, retry_after) =
                match tokio::time::timeout(self.limits.request_timeout, builder.send()).await {
                    Err(_) => {
                        return Err(LlmError::Timeout(format!(
                            "no response within {} s",
                            self.limits.request_timeout.as_secs()
                        )))
                    }
                    // Refused, or a kept-alive connection the endpoint closed as the request
                    // went out: nothing was answered, so it is sent again.
                    Ok(Err(e)) if e.is_connect() || (e.is_request() && !e.is_timeout()) => {
                        (LlmError::Unreachable(describe_reqwest(&e)), None)
                    }
                    Ok(Err(e)) if e.is_timeout() => {
                        return Err(LlmError::Timeout(describe_reqwest(&e)))
                    }
                    Ok(Err(e)) => return Err(LlmError::Unreachable(describe_reqwest(&e))),
                    Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                    Ok(Ok(response)) => {
                        let status = response.status();
                        let retry_after = parse_retry_after(response.headers());
                        let body = read_error_body(response).await;
                        let error = LlmError::Status {
                            status: status.as_u16(),
                            body,
                        };
                        if status.as_u16() == 429 || status.is_server_error() {
                            (error, retry_after)
                        } else {
                            return Err(error);
                        }
                    }
                };
            if attempt >= self.limits.max_retries {
                return Err(error);
            }
            let wait = match retry_after {
                Some(asked) => asked.min(self.limits.max_retry_after),
                None => jittered(BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt)))
                    .min(BACKOFF_CAP),
            };
            tracing::warn!(%error, attempt, wait_ms = wait.as_millis() as u64, "retrying model call");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn read_json(
        &self,
        response: reqwest::Response,
        on_delta: &mut dyn FnMut(&str),
        id_prefix: &str,
    ) -> Result<Completion, LlmError> {
        let bytes = tokio::time::timeout(
            self.limits.request_timeout,
            read_capped(response, self.limits.max_response_bytes),
        )
        .await
        .map_err(|_| LlmError::Timeout("response body did not finish in time".into()))??;
        let parsed: WireResponse = serde_json::from_slice(&bytes)
            .map_err(|e| LlmError::Malformed(format!("{e}: {}", quote(&bytes))))?;
        if let Some(error) = parsed.error {
            return Err(LlmError::Malformed(error.to_string()));
        }
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Malformed("response has no choices".into()))?;
        let content = choice.message.content.unwrap_or_default();
        if !content.is_empty() {
            on_delta(&content);
        }
        let mut assembler = ToolCallAssembler::new();
        for (index, call) in choice.message.tool_calls.into_iter().enumerate() {
            assembler.feed(call.into_delta(Some(index)));
        }
        Ok(Completion {
            content,
            tool_calls: assembler.finish(id_prefix),
            usage: parsed.usage.unwrap_or_default(),
            finish_reason: choice.finish_reason,
        })
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        on_delta: &mut dyn FnMut(&str),
        id_prefix: &str,
    ) -> Result<Completion, LlmError> {
        let mut body = response.bytes_stream();
        let mut decoder = SseDecoder::new();
        let mut state = StreamState::default();
        let mut received = 0usize;
        'read: loop {
            let next = tokio::time::timeout(self.limits.idle_timeout, body.next())
                .await
                .map_err(|_| {
                    LlmError::Timeout(format!(
                        "the stream sent nothing for {} s",
                        self.limits.idle_timeout.as_secs()
                    ))
                })?;
            let chunk = match next {
                None => break,
                Some(Ok(chunk)) => {
                    received += chunk.len();
                    if received > self.limits.max_response_bytes {
                        return Err(too_large(self.limits.max_response_bytes));
                    }
                    chunk
                }
                Some(Err(e)) => {
                    return Err(LlmError::Malformed(format!(
                        "the stream broke off: {}",
                        describe_reqwest(&e)
                    )))
                }
            };
            let payloads = decoder
                .feed(&chunk)
                .map_err(|e| LlmError::Malformed(e.to_string()))?;
            for payload in payloads {
                if state.apply(&payload, on_delta)? {
                    break 'read;
                }
            }
        }
        if !state.done {
            if let Some(payload) = decoder.finish() {
                state.apply(&payload, on_delta)?;
            }
        }
        if !state.done && state.finish_reason.is_none() {
            return Err(LlmError::Malformed(
                "the stream ended before the model finished its answer".into(),
            ));
        }
        Ok(Completion {
            content: state.content,
            tool_calls: state.tool_calls.finish(id_prefix),
            usage: state.usage,
            finish_reason: state.finish_reason,
        })
    }
}

impl LlmClient for OpenAiClient {
    fn complete<'a>(
        &'a self,
        request: LlmRequest<'a>,
        on_delta: &'a mut dyn FnMut(&str),
    ) -> impl std::future::Future<Output = Result<Completion, LlmError>> + 'a {
        self.call(request, on_delta)
    }

    fn model_name(&self) -> String {
        self.endpoint().model.clone()
    }
}

/// What a stream has delivered so far.
#[derive(Default)]
struct StreamState {
    content: String,
    tool_calls: ToolCallAssembler,
    usage: Usage,
    finish_reason: Option<String>,
    done: bool,
}

impl StreamState {
    /// Applies one event payload; `Ok(true)` once `[DONE]` arrives.
    fn apply(&mut self, payload: &str, on_delta: &mut dyn FnMut(&str)) -> Result<bool, LlmError> {
        let payload = payload.trim();
        if payload == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        if payload.is_empty() {
            return Ok(false);
        }
        let chunk: WireChunk = serde_json::from_str(payload)
            .map_err(|e| LlmError::Malformed(format!("{e}: {}", quote(payload.as_bytes()))))?;
        if let Some(error) = chunk.error {
            return Err(LlmError::Malformed(format!("error in stream: {error}")));
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                on_delta(&text);
                self.content.push_str(&text);
            }
            for call in choice.delta.tool_calls {
                let index = call.index;
                self.tool_calls.feed(call.into_delta(index));
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        Ok(false)
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [&'a Message],
    tools: &'a RawValue,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: WireFunction,
}

#[derive(Deserialize, Default)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    /// A string by the spec; some servers send the object itself.
    #[serde(default)]
    arguments: Option<Value>,
}

impl WireToolCall {
    fn into_delta(self, index: Option<usize>) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id: self.id,
            name: self.function.name,
            arguments: self.function.arguments.map(|value| match value {
                Value::String(text) => text,
                Value::Null => String::new(),
                other => other.to_string(),
            }),
        }
    }
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The answer passed `[llm] max_response_bytes`.
fn too_large(max: usize) -> LlmError {
    LlmError::Malformed(format!(
        "the model's answer is larger than {} ([llm] max_response_bytes); the turn was stopped",
        crate::protocol::size_display(max as u64)
    ))
}

/// A whole (non-streamed) answer, refused as soon as it passes `max` bytes.
async fn read_capped(response: reqwest::Response, max: usize) -> Result<Vec<u8>, LlmError> {
    crate::capped_body::read(response, max)
        .await
        .map_err(|error| match error {
            crate::capped_body::BodyError::TooLarge(max) => too_large(max),
            crate::capped_body::BodyError::Broken(e) => LlmError::Unreachable(describe_reqwest(&e)),
        })
}

/// `Retry-After` as seconds or an HTTP date; any number (even 1e300) becomes a duration
/// without overflow (the caller caps it).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Between half and all of `wait`, so clients that failed together do not retry together.
fn jittered(wait: Duration) -> Duration {
    let fraction = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 2000.0;
    wait.mul_f64(0.5 + fraction)
}

async fn read_error_body(response: reqwest::Response) -> String {
    let bytes = match tokio::time::timeout(Duration::from_secs(5), response.bytes()).await {
        Ok(Ok(bytes)) => bytes,
        _ => return String::new(),
    };
    // Prefer the endpoint's own `error.message` when it sends JSON.
    if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
        if let Some(message) = value
            .pointer("/error/message")
            .or_else(|| value.get("error"))
            .or_else(|| value.get("detail"))
            .and_then(Value::as_str)
        {
            return message.chars().take(ERROR_BODY_CAP).collect();
        }
    }
    quote(&bytes)
}

fn quote(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(ERROR_BODY_CAP)
        .collect()
}

/// reqwest's Display hides the cause (e.g. "connection refused"); include the chain.
pub(crate) fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
