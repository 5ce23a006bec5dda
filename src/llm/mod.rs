//! The model boundary: chat messages in the OpenAI wire shape, the [`LlmClient`] trait the agent
//! is generic over, and the errors a model call can end with.
//!
//! Nothing here knows about sessions, tools or HTTP routes. `client.rs` is the one real client
//! (its wire formats are `openai.rs` and `ollama.rs`); tests substitute their own
//! implementation or a scripted mock server.

pub mod assemble;
pub mod client;
mod history;
pub mod ollama;
pub mod openai;
pub mod probe;
pub mod sse;

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use history::{Compaction, HistoryEntry};

/// One chat message, serialised exactly as chat-completions expects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: UserContent,
    },
    Assistant {
        #[serde(default)]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

/// A user message's content: plain text, or parts (text and images) for vision models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// A `data:` URL carrying the image itself.
    pub url: String,
}

impl Message {
    /// The text of a user message the person typed (not tool images the server attached).
    pub fn user_text(&self) -> Option<&str> {
        match self {
            Message::User {
                content: UserContent::Text(text),
            } => Some(text),
            _ => None,
        }
    }

    /// Characters of text this message carries (images count as a fixed amount).
    pub fn text_len(&self) -> usize {
        match self {
            Message::System { content } => content.len(),
            Message::User {
                content: UserContent::Text(text),
            } => text.len(),
            Message::User {
                content: UserContent::Parts(parts),
            } => parts
                .iter()
                .map(|part| match part {
                    ContentPart::Text { text } => text.len(),
                    // Roughly what a vision model charges for one image, in characters.
                    ContentPart::ImageUrl { .. } => 3000,
                })
                .sum(),
            Message::Tool { content, .. } => content.len() + 16,
            Message::Assistant {
                content,
                tool_calls,
            } => {
                content.as_deref().map_or(0, str::len)
                    + tool_calls
                        .iter()
                        .map(|c| c.function.arguments.len() + c.function.name.len() + 16)
                        .sum::<usize>()
            }
        }
    }
}

/// A tool call the model asked for; `arguments` is the raw JSON text the model produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

fn function_kind() -> String {
    "function".into()
}

impl ToolCall {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

/// Token counts as the endpoint reported them (zero when it reported none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

/// What one model call produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub finish_reason: Option<String>,
}

/// One model request: the conversation so far and the cached tool manifest.
#[derive(Debug, Clone, Copy)]
pub struct LlmRequest<'a> {
    pub messages: &'a [&'a Message],
    /// None for a request that offers no tools (a summary).
    pub tools: Option<&'a RawValue>,
    /// Tokens the model reads and writes per request (Ollama's `num_ctx`).
    pub window_tokens: Option<usize>,
    /// A cap on the answer for this request, where the format takes one safely (Ollama's
    /// `num_predict`); chat-completions sends only `[llm] max_tokens`.
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error(
        "model endpoint unreachable: {0} (is the model server running? The address is [llm] \
         base_url in okcvm.toml, or the chat endpoint in Settings)"
    )]
    Unreachable(String),
    #[error("model endpoint answered {status}: {body}{}", status_advice(*.status))]
    Status { status: u16, body: String },
    #[error("model endpoint timed out: {0}")]
    Timeout(String),
    #[error("model endpoint sent a malformed response: {0}")]
    Malformed(String),
}

/// What to change for a status that says the request, not the moment, was wrong.
fn status_advice(status: u16) -> &'static str {
    match status {
        401 | 403 => " (the endpoint refused the API key: set the variable [llm] api_key_env names, or the key in Settings)",
        404 => " (check [llm] model and [llm] base_url, or the chat endpoint in Settings)",
        _ => "",
    }
}

impl LlmError {
    /// A timeout maps to 504 at the HTTP edge, every other failure to 502.
    pub fn is_timeout(&self) -> bool {
        matches!(self, LlmError::Timeout(_))
    }
}

/// Anything that can answer a chat-completions request. `on_delta` receives each text chunk as
/// it arrives (streaming) or the whole text once (non-streaming).
pub trait LlmClient: Send + Sync + 'static {
    fn complete<'a>(
        &'a self,
        request: LlmRequest<'a>,
        on_delta: &'a mut dyn FnMut(&str),
    ) -> impl Future<Output = Result<Completion, LlmError>> + 'a;

    /// The model name reported in `meta.model`.
    fn model_name(&self) -> String;

    /// The context length the model itself reports, when the endpoint says (Ollama).
    fn reported_context(&self) -> impl Future<Output = Option<usize>> + '_ {
        std::future::ready(None)
    }
}
