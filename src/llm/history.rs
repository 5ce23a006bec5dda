//! One entry of a session's history as it is kept: the chat message, its id and time, the
//! model's usage for it and, for tool results, which tool answered. The agent appends them,
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
}
