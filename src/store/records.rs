//! The records the store keeps, as serde values: conversations, turns, uploads, kept
//! versions of the history and deployments.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::HistoryEntry;
use crate::protocol::SeqEvent;

/// A conversation as the console sees it: its own JSON kept as given, plus server fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: String,
    pub title: String,
    pub created_at: String,
    pub updated_at: String,
    /// The client's JSON, unknown keys included.
    pub data: Value,
}

impl ConversationRecord {
    /// The client's JSON with `id`, `title` and the timestamps filled in where it lacks them.
    pub fn to_json(&self) -> Value {
        let mut out = match &self.data {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        out.insert("id".into(), Value::String(self.id.clone()));
        out.entry("title")
            .or_insert_with(|| Value::String(self.title.clone()));
        out.entry("created_at")
            .or_insert_with(|| Value::String(self.created_at.clone()));
        out.insert("updated_at".into(), Value::String(self.updated_at.clone()));
        Value::Object(out)
    }
}

/// A conversation without the console's JSON: what a list of conversations shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Records listed newest first.
pub(super) trait Dated {
    fn updated_at(&self) -> &str;
    fn updated_at_mut(&mut self) -> &mut String;
}

impl Dated for ConversationRecord {
    fn updated_at(&self) -> &str {
        &self.updated_at
    }
    fn updated_at_mut(&mut self) -> &mut String {
        &mut self.updated_at
    }
}

impl Dated for ConversationSummary {
    fn updated_at(&self) -> &str {
        &self.updated_at
    }
    fn updated_at_mut(&mut self) -> &mut String {
        &mut self.updated_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    Running,
    Finished,
    Interrupted,
}

/// The last turn of a session with its numbered events, for re-attaching clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    pub state: TurnState,
    /// Empty in the stored head (events have keys of their own); filled by `load_turn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SeqEvent>,
    pub next_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub name: String,
    pub size_bytes: u64,
    pub uploaded_at: String,
}

/// History that an edit or a regeneration replaced, kept so the person can switch back to
/// that version: the entries from its first user message on, and the entry they followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryBranch {
    /// The entry before the branch; `None` when it starts the conversation.
    pub after: Option<String>,
    pub entries: Vec<HistoryEntry>,
}

impl HistoryBranch {
    /// The id a branch is found by: its first user message's.
    pub fn id(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.message.user_text().is_some())
            .map(|e| e.id.as_str())
    }
}

/// A website published from a conversation's workspace (`mshtools-deploy_website`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: String,
    /// The folder it was published from, as the model names it.
    pub local_dir: String,
    pub files: usize,
    pub bytes: u64,
    pub created_at: String,
    pub updated_at: String,
}
