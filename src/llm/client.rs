//! The model client: one HTTP transport for every wire format. Owns the endpoint (swappable at
//! runtime by `POST /api/config`; a call in flight keeps the one it started with), retries with
//! backoff for connect errors, 429 (honouring `Retry-After`) and 5xx, a timeout until the
//! response starts, an idle timeout while it streams and a cap on the answer's size. The
//! request and answer formats are `openai.rs` (chat-completions) and `ollama.rs` (Ollama's
//! native `/api/chat`). The API key is only ever put in the `Authorization` header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;

use super::{Completion, LlmClient, LlmError, LlmRequest};
use crate::config::context::Provider;
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
    /// Resolved: never `auto`.
    pub provider: Provider,
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
    /// Ollama's `keep_alive`.
    pub keep_alive: Option<String>,
}

pub struct ModelClient {
    pub(super) http: reqwest::Client,
    endpoint: RwLock<Arc<Endpoint>>,
    pub(super) limits: ClientLimits,
    /// Context lengths models reported, by base URL and model (Ollama's `/api/show`).
    reported: Mutex<HashMap<(String, String), Option<usize>>>,
}

impl ModelClient {
    pub fn new(config: &LlmConfig) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::Unreachable(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            reported: Mutex::new(HashMap::new()),
            endpoint: RwLock::new(Arc::new(Endpoint {
                provider: config.provider.for_url(&config.base_url),
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
                keep_alive: config.keep_alive.clone(),
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
        match endpoint.provider {
            Provider::Ollama => super::ollama::call(self, &endpoint, request, on_delta).await,
            _ => super::openai::call(self, &endpoint, request, on_delta).await,
        }
    }

    /// The context length the current model reports, asked once per endpoint and model
    /// (only Ollama says; an Ollama that cannot be reached is asked again next time).
    pub async fn reported_context(&self) -> Option<usize> {
        let endpoint = self.endpoint();
        if endpoint.provider != Provider::Ollama {
            return None;
        }
        let key = (endpoint.base_url.clone(), endpoint.model.clone());
        if let Some(known) = self.lock_reported().get(&key) {
            return *known;
        }
        match super::ollama::context_length(self, &endpoint).await {
            Ok(found) => {
                self.lock_reported().insert(key, found);
                found
            }
            // Not reachable now: asked again by the next turn.
            Err(()) => None,
        }
    }

    /// The context length the current model reported, if it was asked already.
    pub fn known_context(&self) -> Option<usize> {
        let endpoint = self.endpoint();
        let key = (endpoint.base_url.clone(), endpoint.model.clone());
        self.lock_reported().get(&key).copied().flatten()
    }

    fn lock_reported(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Option<usize>>> {
        match self.reported.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Waits for the next piece of a streamed answer within the idle timeout, counting its
    /// bytes against the size cap; `None` when the stream ended.
    pub(super) async fn next_chunk<S>(
        &self,
        body: &mut S,
        received: &mut usize,
    ) -> Result<Option<bytes::Bytes>, LlmError>
    where
        S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
    {
        let next = tokio::time::timeout(self.limits.idle_timeout, body.next())
            .await
            .map_err(|_| {
                LlmError::Timeout(format!(
                    "the stream sent nothing for {} s",
                    self.limits.idle_timeout.as_secs()
                ))
            })?;
        match next {
            None => Ok(None),
            Some(Ok(chunk)) => {
                *received += chunk.len();
                if *received > self.limits.max_response_bytes {
                    return Err(too_large(self.limits.max_response_bytes));
                }
                Ok(Some(chunk))
            }
            Some(Err(e)) => Err(LlmError::Malformed(format!(
                "the stream broke off: {}",
                describe_reqwest(&e)
            ))),
        }
    }

    /// A whole (non-streamed) answer within the request timeout and the size cap.
    pub(super) async fn read_whole(
        &self,
        response: reqwest::Response,
    ) -> Result<Vec<u8>, LlmError> {
        tokio::time::timeout(
            self.limits.request_timeout,
            read_capped(response, self.limits.max_response_bytes),
        )
        .await
        .map_err(|_| LlmError::Timeout("response body did not finish in time".into()))?
    }

    pub(super) async fn send_with_retries(
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
}

impl LlmClient for ModelClient {
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

    fn reported_context(&self) -> impl std::future::Future<Output = Option<usize>> + '_ {
        ModelClient::reported_context(self)
    }
}

/// Whether a response is a server-sent event stream.
pub(super) fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A fresh prefix for ids of tool calls the endpoint sent without one.
pub(super) fn call_id_prefix() -> String {
    format!("call_{}_", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The answer passed `[llm] max_response_bytes`.
pub(super) fn too_large(max: usize) -> LlmError {
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

pub(super) fn quote(bytes: &[u8]) -> String {
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
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
        for huge in ["1e300", "1e20", "18446744073709551616"] {
            headers.insert(RETRY_AFTER, huge.parse().unwrap());
            assert_eq!(parse_retry_after(&headers), Some(Duration::MAX), "{huge}");
        }
        headers.insert(RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc2822();
        headers.insert(RETRY_AFTER, soon.parse().unwrap());
        let wait = parse_retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(90) && wait <= Duration::from_secs(100),
            "{wait:?}"
        );
        headers.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
    }
}
