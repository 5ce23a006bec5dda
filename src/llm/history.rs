//! One entry of a session's history as it is kept: the chat message, its id and time, the
//! model's usage for it, its token count, for tool results which tool answered, and for
//! compaction entries how the model's view changed. The agent appends them,
//! the store persists them, the console reads them; none of those owns the type.

use serde::{Deserialize, Serialize};

use super::{Message, Usage};

/// One history entry: the chat message plus what the console and the store need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: String,
    #[serde(flatten)]
    pub message: Message,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// For tool results: which tool produced it and whether it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// For tool results: who allowed or refused the call, when it needed a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::protocol::ApprovalRecord>,
    /// Tokens this message takes, counted once (the model's tokenizer, or an estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
    /// On a compaction entry (role `system`, its content the summary): how the model's view
    /// of the history changed here (boxed: most entries have none, and every live history
    /// is in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<Box<Compaction>>,
}

/// Recorded on a history entry where the model's view of the history changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    /// The first entry the model reads in full; what came before is in the summary.
    pub keep_from: String,
    /// Tool results before this entry are sent shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shorten_before: Option<String>,
    /// Whether a summary of the older part was made here (otherwise only tool outputs were
    /// shortened, and the summary, if any, is the previous one).
    pub summarized: bool,
    /// Asked for (`POST /api/session/compact`), not made because the context was full.
    #[serde(default)]
    pub manual: bool,
    pub before_tokens: u64,
    pub after_tokens: u64,
}
