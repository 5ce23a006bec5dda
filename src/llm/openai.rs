//! The OpenAI-compatible chat-completions format (OpenAI, vLLM, llama.cpp server, DeepSeek,
//! Ollama's `/v1`): the request with the tool manifest spliced in pre-encoded, and the answer
//! read whole or as a server-sent event stream. The transport is [`ModelClient`]'s.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::assemble::{ToolCallAssembler, ToolCallDelta};
use super::client::{call_id_prefix, is_event_stream, quote, Endpoint, ModelClient};
use super::sse::SseDecoder;
use super::{Completion, LlmError, LlmRequest, Message, Usage};

/// One chat-completions call on `endpoint`.
pub(super) async fn call(
    client: &ModelClient,
    endpoint: &Endpoint,
    request: LlmRequest<'_>,
    on_delta: &mut dyn FnMut(&str),
) -> Result<Completion, LlmError> {
    let body = WireRequest {
        model: &endpoint.model,
        messages: request.messages,
        tools: request.tools,
        stream: endpoint.stream,
        stream_options: endpoint.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        temperature: client.limits.temperature,
        // Only the operator's own cap: OpenAI's reasoning models refuse `max_tokens`, so a
        // request's wish (a summary's length) is not sent in this format.
        max_tokens: client.limits.max_tokens,
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| LlmError::Malformed(format!("cannot encode request: {e}")))?;
    let url = format!(
        "{}/chat/completions",
        endpoint.base_url.trim_end_matches('/')
    );
    let response = client
        .send_with_retries(&url, endpoint, body.into())
        .await?;
    let id_prefix = call_id_prefix();
    if is_event_stream(&response) {
        read_stream(client, response, on_delta, &id_prefix).await
    } else {
        read_json(client, response, on_delta, &id_prefix).await
    }
}

async fn read_json(
    client: &ModelClient,
    response: reqwest::Response,
    on_delta: &mut dyn FnMut(&str),
    id_prefix: &str,
) -> Result<Completion, LlmError> {
    let bytes = client.read_whole(response).await?;
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
    client: &ModelClient,
    response: reqwest::Response,
    on_delta: &mut dyn FnMut(&str),
    id_prefix: &str,
) -> Result<Completion, LlmError> {
    let mut body = response.bytes_stream();
    let mut decoder = SseDecoder::new();
    let mut state = StreamState::default();
    let mut received = 0usize;
    'read: while let Some(chunk) = client.next_chunk(&mut body, &mut received).await? {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a RawValue>,
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

#[cfg(test)]
mod tests;
