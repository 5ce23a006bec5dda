//! Ollama's native chat format (`/api/chat`), the one that honours the context window: the
//! request carries `options.num_ctx` (Ollama's OpenAI-compatible `/v1` ignores any window and
//! runs the model with its small default, silently cutting the prompt), `keep_alive`, the tool
//! manifest and images as base64; the answer is one JSON object, or a stream of them, one per
//! line (NDJSON), the last with `done: true` and the token counts. `/api/show` says how long a
//! context the model can take. The transport is [`ModelClient`]'s.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::assemble::{ToolCallAssembler, ToolCallDelta};
use super::client::{call_id_prefix, describe_reqwest, quote, Endpoint, ModelClient};
use super::{Completion, ContentPart, LlmError, LlmRequest, Message, Usage, UserContent};

/// Ollama's API root for a configured base URL (`http://host:11434/v1` → `http://host:11434`).
pub fn api_root(base_url: &str) -> &str {
    let base = base_url.trim().trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base)
}

/// One `/api/chat` call on `endpoint`.
pub(super) async fn call(
    client: &ModelClient,
    endpoint: &Endpoint,
    request: LlmRequest<'_>,
    on_delta: &mut dyn FnMut(&str),
) -> Result<Completion, LlmError> {
    let mut options = Map::new();
    if let Some(window) = request.window_tokens {
        options.insert("num_ctx".into(), window.into());
    }
    if let Some(temperature) = client.limits.temperature {
        options.insert("temperature".into(), temperature.into());
    }
    if let Some(max) = request.max_tokens.or(client.limits.max_tokens) {
        options.insert("num_predict".into(), max.into());
    }
    let body = WireRequest {
        model: &endpoint.model,
        messages: wire_messages(request.messages),
        tools: request.tools,
        stream: endpoint.stream,
        options,
        keep_alive: client.limits.keep_alive.as_deref().map(keep_alive_value),
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| LlmError::Malformed(format!("cannot encode request: {e}")))?;
    let url = format!("{}/api/chat", api_root(&endpoint.base_url));
    let response = client
        .send_with_retries(&url, endpoint, body.into())
        .await?;
    let mut answer = Answer::new(call_id_prefix());
    if !endpoint.stream {
        let bytes = client.read_whole(response).await?;
        answer.apply(&bytes, on_delta)?;
    } else {
        let mut body = response.bytes_stream();
        let mut received = 0usize;
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = client.next_chunk(&mut body, &mut received).await? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                answer.apply(&line, on_delta)?;
            }
            if answer.done {
                break;
            }
        }
        if !answer.done {
            answer.apply(&pending, on_delta)?;
        }
    }
    answer.finish()
}

/// The context length `/api/show` reports for the endpoint's model: `Ok(None)` when Ollama
/// answered without one (or refused the model), `Err` when it could not be asked (not
/// running yet: ask again later).
pub(super) async fn context_length(
    client: &ModelClient,
    endpoint: &Endpoint,
) -> Result<Option<usize>, ()> {
    let url = format!("{}/api/show", api_root(&endpoint.base_url));
    let asked = client
        .http
        .post(&url)
        .json(&serde_json::json!({"model": endpoint.model}))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    let response = match asked {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            tracing::warn!(status = %response.status(), model = %endpoint.model, "Ollama /api/show refused the model");
            return Ok(None);
        }
        Err(error) => {
            tracing::warn!(error = %describe_reqwest(&error), "cannot ask Ollama /api/show");
            return Err(());
        }
    };
    let bytes = client.read_whole(response).await.map_err(|_| ())?;
    let shown: Value = serde_json::from_slice(&bytes).map_err(|_| ())?;
    Ok(shown_context_length(&shown))
}

/// `<architecture>.context_length` of a `/api/show` answer's `model_info`.
pub fn shown_context_length(shown: &Value) -> Option<usize> {
    let info = shown.get("model_info")?.as_object()?;
    let by_architecture = info
        .get("general.architecture")
        .and_then(Value::as_str)
        .and_then(|arch| info.get(&format!("{arch}.context_length")));
    by_architecture
        .or_else(|| {
            info.iter()
                .find(|(key, _)| key.ends_with(".context_length"))
                .map(|(_, value)| value)
        })
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// `keep_alive` as Ollama takes it: a number of seconds (negative: for ever), or a duration
/// text (`"30m"`).
fn keep_alive_value(text: &str) -> Value {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.into();
    }
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => seconds.into(),
        _ => text.into(),
    }
}

/// A call's arguments as the object Ollama requires; text that is not a JSON object (a
/// malformed call the model made) is kept under `_raw`, since Ollama refuses anything else.
fn object_arguments(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => value,
        _ if text.trim().is_empty() => Value::Object(Map::new()),
        _ => serde_json::json!({"_raw": text}),
    }
}

/// The chat messages in Ollama's shape: arguments as objects, images as bare base64, and each
/// tool result named after the call it answers.
fn wire_messages(messages: &[&Message]) -> Vec<Value> {
    let mut names: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        let value = match message {
            Message::System { content } => {
                serde_json::json!({"role": "system", "content": content})
            }
            Message::User {
                content: UserContent::Text(text),
            } => serde_json::json!({"role": "user", "content": text}),
            Message::User {
                content: UserContent::Parts(parts),
            } => {
                let mut text = Vec::new();
                let mut images = Vec::new();
                for part in parts {
                    match part {
                        ContentPart::Text { text: t } => text.push(t.as_str()),
                        ContentPart::ImageUrl { image_url } => {
                            let data = image_url
                                .url
                                .split_once(";base64,")
                                .map_or(image_url.url.as_str(), |(_, data)| data);
                            images.push(data);
                        }
                    }
                }
                serde_json::json!({"role": "user", "content": text.join("\n"), "images": images})
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|call| {
                        names.insert(&call.id, &call.function.name);
                        let arguments = object_arguments(&call.function.arguments);
                        serde_json::json!({
                            "id": call.id,
                            "function": {"name": call.function.name, "arguments": arguments},
                        })
                    })
                    .collect();
                let mut value = serde_json::json!({
                    "role": "assistant",
                    "content": content.as_deref().unwrap_or(""),
                });
                if !calls.is_empty() {
                    value["tool_calls"] = Value::Array(calls);
                }
                value
            }
            Message::Tool {
                tool_call_id,
                content,
            } => {
                let mut value = serde_json::json!({
                    "role": "tool",
                    "content": content,
                    "tool_call_id": tool_call_id,
                });
                if let Some(name) = names.get(tool_call_id.as_str()) {
                    value["tool_name"] = Value::String((*name).to_string());
                }
                value
            }
        };
        out.push(value);
    }
    out
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a RawValue>,
    stream: bool,
    #[serde(skip_serializing_if = "Map::is_empty")]
    options: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<Value>,
}

/// One line of the answer (or the whole non-streamed answer).
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// What the answer has delivered so far.
struct Answer {
    content: String,
    tool_calls: ToolCallAssembler,
    calls_seen: usize,
    usage: Usage,
    finish_reason: Option<String>,
    done: bool,
    id_prefix: String,
}

impl Answer {
    fn new(id_prefix: String) -> Self {
        Self {
            content: String::new(),
            tool_calls: ToolCallAssembler::new(),
            calls_seen: 0,
            usage: Usage::default(),
            finish_reason: None,
            done: false,
            id_prefix,
        }
    }

    /// Applies one line (blank lines are skipped).
    fn apply(&mut self, line: &[u8], on_delta: &mut dyn FnMut(&str)) -> Result<(), LlmError> {
        if line.iter().all(u8::is_ascii_whitespace) || self.done {
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_slice(line)
            .map_err(|e| LlmError::Malformed(format!("{e}: {}", quote(line))))?;
        if let Some(error) = chunk.error {
            let text = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string);
            return Err(LlmError::Malformed(format!("error in stream: {text}")));
        }
        if let Some(message) = chunk.message {
            if let Some(text) = message.content.filter(|t| !t.is_empty()) {
                on_delta(&text);
                self.content.push_str(&text);
            }
            // Ollama sends each call whole.
            for call in message.tool_calls.unwrap_or_default() {
                let arguments = match call.function.arguments {
                    Value::String(text) => text,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                self.tool_calls.feed(ToolCallDelta {
                    index: Some(self.calls_seen),
                    id: call.id,
                    name: Some(call.function.name),
                    arguments: Some(arguments),
                });
                self.calls_seen += 1;
            }
        }
        if chunk.done {
            self.done = true;
            self.finish_reason = chunk.done_reason.or(Some("stop".into()));
            self.usage = Usage {
                prompt_tokens: chunk.prompt_eval_count.unwrap_or(0),
                completion_tokens: chunk.eval_count.unwrap_or(0),
            };
        }
        Ok(())
    }

    fn finish(self) -> Result<Completion, LlmError> {
        if !self.done {
            return Err(LlmError::Malformed(
                "the stream ended before the model finished its answer".into(),
            ));
        }
        let tool_calls = self.tool_calls.finish(&self.id_prefix);
        let finish_reason = if tool_calls.is_empty() {
            self.finish_reason
        } else {
            Some("tool_calls".into())
        };
        Ok(Completion {
            content: self.content,
            tool_calls,
            usage: self.usage,
            finish_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    #[test]
    fn the_api_root_drops_the_openai_suffix() {
        assert_eq!(api_root("http://h:11434/v1/"), "http://h:11434");
        assert_eq!(api_root("http://h:11434"), "http://h:11434");
    }

    #[test]
    fn lines_give_text_whole_calls_and_counts() {
        let mut answer = Answer::new("x_".into());
        let mut seen = String::new();
        let mut on_delta = |t: &str| seen.push_str(t);
        for line in [
            r#"{"message":{"role":"assistant","content":"Hel"},"done":false}"#,
            r#"{"message":{"role":"assistant","content":"lo","tool_calls":[{"function":{"name":"t","arguments":{"a":1}}}]},"done":false}"#,
            "",
            r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":42,"eval_count":5}"#,
        ] {
            answer.apply(line.as_bytes(), &mut on_delta).unwrap();
        }
        let completion = answer.finish().unwrap();
        assert_eq!(seen, "Hello");
        assert_eq!(
            completion.tool_calls,
            vec![ToolCall::new("x_0", "t", "{\"a\":1}")]
        );
        assert_eq!(completion.usage.prompt_tokens, 42);
        assert_eq!(completion.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn an_error_line_and_a_cut_stream_fail() {
        let mut answer = Answer::new("x".into());
        let error = answer
            .apply(br#"{"error":"model 'nope' not found"}"#, &mut |_| {})
            .unwrap_err();
        assert!(error.to_string().contains("not found"));
        let mut answer = Answer::new("x".into());
        answer
            .apply(
                br#"{"message":{"content":"part"},"done":false}"#,
                &mut |_| {},
            )
            .unwrap();
        assert!(answer.finish().is_err());
    }

    #[test]
    fn messages_name_tool_results_and_carry_images() {
        let call = ToolCall::new("c1", "mshtools-shell", "{\"command\":\"ls\"}");
        let assistant = Message::Assistant {
            content: None,
            tool_calls: vec![call],
        };
        let result = Message::Tool {
            tool_call_id: "c1".into(),
            content: "a.txt".into(),
        };
        let image = Message::User {
            content: UserContent::Parts(vec![
                ContentPart::Text { text: "see".into() },
                ContentPart::ImageUrl {
                    image_url: crate::llm::ImageUrl {
                        url: "data:image/png;base64,AAAA".into(),
                    },
                },
            ]),
        };
        let wire = wire_messages(&[&assistant, &result, &image]);
        assert_eq!(
            wire[0]["tool_calls"][0]["function"]["arguments"]["command"],
            "ls"
        );
        assert_eq!(wire[1]["tool_name"], "mshtools-shell");
        assert_eq!(wire[2]["images"][0], "AAAA");
        assert_eq!(wire[2]["content"], "see");
    }

    #[test]
    fn arguments_are_always_objects_and_keep_alive_a_number_when_it_is_one() {
        assert_eq!(object_arguments("{\"a\":1}"), serde_json::json!({"a": 1}));
        assert_eq!(object_arguments(""), serde_json::json!({}));
        assert_eq!(object_arguments("[1]"), serde_json::json!({"_raw": "[1]"}));
        assert_eq!(
            object_arguments("{broken"),
            serde_json::json!({"_raw": "{broken"})
        );
        assert_eq!(keep_alive_value("-1"), serde_json::json!(-1));
        assert_eq!(keep_alive_value("1.5"), serde_json::json!(1.5));
        assert_eq!(keep_alive_value("30m"), serde_json::json!("30m"));
    }

    #[test]
    fn the_context_length_is_the_architectures() {
        let shown = serde_json::json!({"model_info": {
            "general.architecture": "qwen2",
            "qwen2.context_length": 32768,
            "other.context_length": 4,
        }});
        assert_eq!(shown_context_length(&shown), Some(32768));
        let bare = serde_json::json!({"model_info": {"llama.context_length": 8192}});
        assert_eq!(shown_context_length(&bare), Some(8192));
        assert_eq!(shown_context_length(&serde_json::json!({})), None);
    }
}
