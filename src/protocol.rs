//! Wire types of the HTTP/SSE contract (`API.md`), and nothing else.
//!
//! Field names here are the contract existing clients depend on: rename nothing. No behaviour
//! lives in this file beyond small constructors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `POST /api/chat`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub message: String,
    #[serde(default)]
    pub replace_last: bool,
    /// Edit an earlier message: drop the history from this user entry on (its `id` from
    /// `vm_history`) and answer `message` in its place.
    #[serde(default)]
    pub replace_from: Option<String>,
    #[serde(default = "default_true")]
    pub stream: bool,
}

fn default_true() -> bool {
    true
}

/// One SSE frame's payload (`type` tagged), also kept with the turn for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    Token {
        delta: String,
    },
    ToolStarted {
        invocation_id: String,
        tool_name: String,
        input: Value,
    },
    ToolCompleted {
        invocation_id: String,
        tool_name: String,
        status: ToolStatus,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A tool call waits for a person's yes (`POST /api/chat/approve`); `tool_started`
    /// with the same `invocation_id` came before it.
    ApprovalRequired {
        approval_id: String,
        invocation_id: String,
        tool_name: String,
        arguments: Value,
        /// The rule or preset that asked, in words.
        reason: String,
        /// RFC 3339 time after which the call is denied.
        expires_at: String,
        /// For shell and Python: each command found, with its class.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        commands: Vec<ApprovalCommand>,
    },
    /// How a call that asked (or was refused by a rule) was decided.
    ApprovalDecided {
        invocation_id: String,
        tool_name: String,
        #[serde(flatten)]
        record: ApprovalRecord,
    },
    /// The model's view of the history was made smaller: older tool outputs shortened and,
    /// when `summarized`, the older part replaced by a summary (history entry `entry_id`).
    ContextCompacted {
        entry_id: String,
        before_tokens: u64,
        after_tokens: u64,
        summarized: bool,
    },
    Final {
        /// Shared: the payload is kept, replayed and sent to every subscriber without copies.
        payload: std::sync::Arc<ChatResponse>,
    },
    Error {
        message: String,
        /// What kind of failure this is; `http/error.rs` maps it to the status a JSON caller
        /// gets. Events stored before it existed read as `internal`.
        #[serde(default)]
        reason: TurnFailure,
    },
    Stop,
}

/// How full the model's context is, for `GET /api/session/info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextReport {
    /// Tokens the next request would take (prompt, tools and the history the model reads).
    pub used_tokens: u64,
    pub window_tokens: u64,
    /// Compactions in the current history.
    pub compactions: u64,
}

/// Every way a turn can end other than with its reply: a closed set, named in the `error`
/// event's `reason`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnFailure {
    /// Stopped by its owner (`POST /api/chat/stop`).
    Cancelled,
    /// The model endpoint could not be reached or refused the request.
    ModelFailed,
    /// The model endpoint did not answer in time.
    ModelTimedOut,
    /// The turn ran, but the store could not keep it.
    NotStored,
    /// The server stopped while the turn ran.
    Interrupted,
    /// This stream ended before the turn did (a slow client, or the session ended).
    StreamCutShort,
    /// Something inside the server failed (a panic, a lost end-of-turn task).
    #[default]
    Internal,
}

/// One command of a shell line as an approval shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalCommand {
    pub text: String,
    /// `allowed`, `reads`, `writes`, `risky`, `opaque` or `denied`.
    pub class: String,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    Approve,
    Deny,
}

/// How long an approval stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remember {
    /// This call only.
    #[default]
    Once,
    /// The same tool (for shell, the same commands) for the rest of the conversation.
    Conversation,
    /// The same tool or command prefix in every conversation of this owner.
    AlwaysForThisPrefix,
}

/// A decision on a tool call, kept in the turn's events and on the call's history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Absent when a rule refused the call without asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    pub decision: ApprovalDecision,
    /// Who decided: the owner who answered, `timeout`, `policy` or `stop`.
    pub by: String,
    /// RFC 3339.
    pub at: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember: Option<Remember>,
}

/// An event with its sequence number within the session (the SSE `id:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqEvent {
    pub seq: u64,
    pub event: ChatEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Success,
    Error,
}

/// Response of a non-streamed chat, and the `payload` of the `final` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub reply: String,
    pub meta: ReplyMeta,
    pub web_preview: Option<WebPreview>,
    pub ppt_slides: Vec<Slide>,
    pub artifacts: Vec<Artifact>,
    pub tool_calls: Vec<ToolCallRecord>,
    /// The last history entries, encoded once.
    pub vm_history: RawJson,
    pub workspace_state: WorkspaceState,
    pub uploads: Vec<UploadEntry>,
    #[serde(flatten)]
    pub upload_limits: UploadLimits,
}

/// The upload limits every response that lists uploads carries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UploadLimits {
    pub upload_limit: usize,
    pub max_upload_size_mb: u64,
    pub max_upload_size_bytes: u64,
}

impl UploadLimits {
    pub fn new(max_files: usize, max_file_size_mb: u64) -> Self {
        Self {
            upload_limit: max_files,
            max_upload_size_mb: max_file_size_mb,
            max_upload_size_bytes: max_file_size_mb * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyMeta {
    pub model: String,
    /// RFC 3339 time the turn ended.
    pub timestamp: String,
    #[serde(rename = "tokensIn")]
    pub tokens_in: u64,
    #[serde(rename = "tokensOut")]
    pub tokens_out: u64,
    /// Measured wall time of the turn, in seconds.
    pub latency: f64,
    pub summary: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebPreview {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slide {
    pub title: String,
    pub bullets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub step: u32,
    pub tool_name: String,
    pub tool_input: Value,
    pub tool_output: String,
    pub invocation_id: String,
    pub status: ToolStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceState {
    pub enabled: bool,
    /// Files kept out of snapshots for their size (model paths); restore leaves them alone.
    #[serde(default)]
    pub not_in_snapshots: Vec<String>,
    pub snapshots: Vec<SnapshotView>,
    /// The commit id of the newest snapshot (the list has the details).
    pub latest_snapshot: Option<String>,
    pub paths: WorkspacePaths,
    pub git: GitState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotView {
    pub id: String,
    pub label: String,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspacePaths {
    pub mount: String,
    pub output: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitState {
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub is_dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadEntry {
    pub name: String,
    pub relative_path: String,
    pub path: String,
    pub display_path: String,
    pub size_bytes: u64,
    pub size_display: String,
}

/// JSON kept as encoded text: cheap to clone, written out verbatim.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<serde_json::value::RawValue>);

impl<'de> Deserialize<'de> for RawJson {
    /// Through a `Value`, because inside a tagged enum serde buffers the content and a
    /// `RawValue` cannot be read from that buffer.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        serde_json::value::to_raw_value(&value)
            .map(RawJson)
            .map_err(serde::de::Error::custom)
    }
}

impl RawJson {
    /// Encodes `value`; a value that cannot be encoded (never the case for our types) is
    /// logged and becomes `null`.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => RawJson(raw),
            Err(error) => {
                tracing::error!(%error, "cannot encode JSON");
                RawJson(Box::default())
            }
        }
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// `{"detail": "..."}`, the body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub detail: String,
}

/// Human size as the console shows it: "12 B", "1.5 KB", "2 MB".
/// Whether a message has nothing to answer: only white space, as the OpenAPI document's
/// `\S` pattern (a Python/ECMAScript class, which also counts U+001C–U+001F) sees it.
pub fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

pub fn size_display(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

/// Cuts one line to `max_chars` characters with a marker.
pub fn cap_line(line: &str, max_chars: usize) -> String {
    match line.char_indices().nth(max_chars) {
        None => line.to_string(),
        Some((at, _)) => format!("{}… [line cut at {max_chars} characters]", &line[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::cap_line;

    #[test]
    fn lines_are_cut_with_a_marker() {
        assert_eq!(cap_line("abcdef", 3), "abc… [line cut at 3 characters]");
        assert_eq!(cap_line("abc", 3), "abc");
    }

    use super::*;

    #[test]
    fn sizes_read_like_the_console_expects() {
        for (bytes, want) in [
            (12, "12 B"),
            (1536, "1.5 KB"),
            (2 * 1024 * 1024, "2 MB"),
            (1024, "1 KB"),
        ] {
            assert_eq!(size_display(bytes), want);
        }
    }

    #[test]
    fn raw_json_round_trips_through_buffered_content() {
        let raw = RawJson::encode(&serde_json::json!([{"id": "m1"}]));
        // An untagged/tagged context buffers content first, as the stored `final` events do.
        let buffered: serde_json::Value =
            serde_json::from_str(&format!("[{}]", raw.0.get())).unwrap();
        let back: Vec<RawJson> = serde_json::from_value(buffered).unwrap();
        assert_eq!(back[0], raw);
        let wrapped: Vec<RawJson> = serde_json::from_str(&format!("[{}]", raw.0.get())).unwrap();
        assert_eq!(wrapped[0], raw);
    }

    #[test]
    fn events_are_tagged_by_type() {
        let token = serde_json::to_value(ChatEvent::Token { delta: "hi".into() }).unwrap();
        assert_eq!(token, serde_json::json!({"type": "token", "delta": "hi"}));
        let stop = serde_json::to_value(ChatEvent::Stop).unwrap();
        assert_eq!(stop, serde_json::json!({"type": "stop"}));
        let done = serde_json::to_value(ChatEvent::ToolCompleted {
            invocation_id: "c1".into(),
            tool_name: "t".into(),
            status: ToolStatus::Error,
            duration_ms: 3,
            output: None,
            error: Some("bad".into()),
        })
        .unwrap();
        assert_eq!(
            done,
            serde_json::json!({"type": "tool_completed", "invocation_id": "c1", "tool_name": "t",
                "status": "error", "duration_ms": 3, "error": "bad"})
        );
    }
}
