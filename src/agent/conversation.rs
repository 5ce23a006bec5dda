//! The model-facing history of one session: user, assistant and tool messages with ids.
//!
//! Guarantees the shape chat-completions requires: every assistant tool call is answered by a
//! tool message before the next user message (the turn loop adds results for calls that were
//! cancelled). Entries carry stable ids for `GET /api/session/history/{id}`.

use crate::llm::{Compaction, ContentPart, HistoryEntry, Message, ToolCall, Usage, UserContent};
use crate::protocol::ApprovalRecord;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    entries: Vec<HistoryEntry>,
}

/// Why an entry named by a client cannot be edited from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("no history entry {0}")]
    Missing(String),
    #[error("history entry {0} is not a user message")]
    NotUserMessage(String),
}

impl Conversation {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_entries(entries: Vec<HistoryEntry>) -> Self {
        Self { entries }
    }

    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn find(&self, id: &str) -> Option<&HistoryEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Removes everything; returns how many entries there were.
    pub fn clear(&mut self) -> usize {
        let count = self.entries.len();
        self.entries.clear();
        count
    }

    pub fn push_user(&mut self, content: &str) {
        self.push(
            Message::User {
                content: UserContent::Text(content.to_string()),
            },
            None,
        );
    }

    pub fn push_assistant(&mut self, content: &str, tool_calls: Vec<ToolCall>, usage: Usage) {
        let content = (!content.is_empty()).then(|| content.to_string());
        self.push(
            Message::Assistant {
                content,
                tool_calls,
            },
            Some(usage),
        );
    }

    pub fn push_tool_result(
        &mut self,
        call: &ToolCall,
        content: String,
        is_error: bool,
        approval: Option<ApprovalRecord>,
    ) {
        self.push(
            Message::Tool {
                tool_call_id: call.id.clone(),
                content,
            },
            None,
        );
        if let Some(last) = self.entries.last_mut() {
            last.tool_name = Some(call.function.name.clone());
            last.is_error = is_error;
            last.approval = approval;
        }
    }

    /// Images that tools returned, shown to a vision model as a user message of parts.
    pub fn push_images(&mut self, parts: Vec<ContentPart>) {
        self.push(
            Message::User {
                content: UserContent::Parts(parts),
            },
            None,
        );
    }

    /// Records a compaction: `summary` (the latest one, also when only tool outputs were
    /// shortened here) as the entry's content.
    pub fn push_compaction(&mut self, summary: &str, compaction: Compaction) {
        self.push(
            Message::System {
                content: summary.to_string(),
            },
            None,
        );
        if let Some(last) = self.entries.last_mut() {
            last.compaction = Some(Box::new(compaction));
        }
    }

    /// The entries, for counting their tokens.
    pub fn entries_mut(&mut self) -> &mut [HistoryEntry] {
        &mut self.entries
    }

    /// For `replace_last`: drops the last user message and everything after it, and returns
    /// what was dropped (empty when there is no user message).
    pub fn drop_last_exchange(&mut self) -> Vec<HistoryEntry> {
        match self
            .entries
            .iter()
            .rposition(|e| e.message.user_text().is_some())
        {
            Some(at) => self.entries.split_off(at),
            None => Vec::new(),
        }
    }

    /// A message sent again after its turn failed before any reply: the unanswered copy at
    /// the end of the history is dropped, so a retry never leaves the message twice.
    /// Whether one was.
    /// Compactions the failed turn made go with it (one asked for since stays, and so
    /// does the message then).
    pub fn drop_unanswered(&mut self, message: &str) -> bool {
        let records = self
            .entries
            .iter()
            .rev()
            .take_while(|e| e.compaction.as_ref().is_some_and(|c| !c.manual))
            .count();
        let Some(at) = self.entries.len().checked_sub(records + 1) else {
            return false;
        };
        let unanswered = self.entries[at].message.user_text() == Some(message);
        if unanswered {
            self.entries.truncate(at);
        }
        unanswered
    }

    /// For editing an earlier message: drops the user entry `id` and everything after it, and
    /// returns what was dropped. Only a message the person typed can be replaced.
    pub fn drop_from(&mut self, id: &str) -> Result<Vec<HistoryEntry>, EntryError> {
        let at = self.replaceable(id)?;
        Ok(self.entries.split_off(at))
    }

    /// Where entry `id` is, if the history can be edited from it.
    pub fn replaceable(&self, id: &str) -> Result<usize, EntryError> {
        match self.entries.iter().position(|e| e.id == id) {
            Some(at) if self.entries[at].message.user_text().is_some() => Ok(at),
            Some(_) => Err(EntryError::NotUserMessage(id.to_string())),
            None => Err(EntryError::Missing(id.to_string())),
        }
    }

    /// Whether `id` is a message the person typed, in the current history.
    pub fn has_user_entry(&self, id: &str) -> bool {
        self.find(id)
            .is_some_and(|e| e.message.user_text().is_some())
    }

    /// Where a branch that follows entry `after` (the start for `None`) begins, if that entry
    /// is in the current history.
    pub fn branch_point(&self, after: Option<&str>) -> Option<usize> {
        match after {
            None => Some(0),
            Some(id) => self
                .entries
                .iter()
                .position(|e| e.id == id)
                .map(|at| at + 1),
        }
    }

    /// Replaces everything from `at` on with `entries`; returns what was there.
    pub fn splice_from(&mut self, at: usize, entries: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
        let replaced = self.entries.split_off(at.min(self.entries.len()));
        self.entries.extend(entries);
        replaced
    }

    /// The id of the entry just before `at`, where a branch cut at `at` attaches.
    pub fn id_before(&self, at: usize) -> Option<String> {
        at.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map(|e| e.id.clone())
    }

    fn push(&mut self, message: Message, usage: Option<Usage>) {
        self.entries.push(HistoryEntry {
            id: new_entry_id(),
            message,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            usage,
            tool_name: None,
            is_error: false,
            approval: None,
            tokens: None,
            compaction: None,
        });
    }
}

fn new_entry_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_resent_message_replaces_only_its_unanswered_copy() {
        let mut history = Conversation::new();
        history.push_user("first");
        history.push_assistant("answer", Vec::new(), Usage::default());
        assert!(
            !history.drop_unanswered("first"),
            "an answered message stays"
        );
        history.push_user("second");
        assert!(!history.drop_unanswered("other"));
        assert!(history.drop_unanswered("second"));
        assert_eq!(history.len(), 2);
    }

    use super::*;

    #[test]
    fn entries_serialise_flat_with_role() {
        let mut c = Conversation::new();
        c.push_user("hi");
        let value = serde_json::to_value(&c.entries()[0]).unwrap();
        assert_eq!(value["role"], "user");
        assert_eq!(value["content"], "hi");
        assert!(value["id"].as_str().unwrap().starts_with("msg_"));
        let back: HistoryEntry = serde_json::from_value(value).unwrap();
        assert_eq!(&back, &c.entries()[0]);
    }

    #[test]
    fn drop_from_cuts_at_a_user_message_only() {
        let mut c = Conversation::new();
        c.push_user("one");
        c.push_assistant("a", vec![], Usage::default());
        c.push_user("two");
        let first = c.entries()[0].id.clone();
        let reply = c.entries()[1].id.clone();
        assert!(c.drop_from(&reply).is_err());
        assert!(c.drop_from("msg_nope").is_err());
        assert_eq!(c.len(), 3);
        assert_eq!(c.drop_from(&first).unwrap().len(), 3);
        assert!(c.is_empty());
    }

    #[test]
    fn a_dropped_branch_splices_back_where_it_was_cut() {
        let mut c = Conversation::new();
        c.push_user("one");
        c.push_assistant("a", vec![], Usage::default());
        c.push_user("two");
        c.push_assistant("b", vec![], Usage::default());
        let second = c.entries()[2].id.clone();
        let after = c.id_before(2);
        assert_eq!(after.as_deref(), Some(c.entries()[1].id.as_str()));
        let old = c.drop_from(&second).unwrap();
        c.push_user("two, edited");
        assert!(!c.has_user_entry(&second));
        let at = c.branch_point(after.as_deref()).unwrap();
        assert_eq!(at, 2);
        let edited = c.splice_from(at, old);
        assert_eq!(edited.len(), 1);
        assert!(c.has_user_entry(&second));
        assert_eq!(c.len(), 4);
        assert_eq!(c.branch_point(None), Some(0));
        assert_eq!(c.branch_point(Some("msg_gone")), None);
    }

    #[test]
    fn drop_last_exchange_removes_from_the_last_user_message() {
        let mut c = Conversation::new();
        c.push_user("one");
        c.push_assistant("a", vec![], Usage::default());
        c.push_user("two");
        c.push_assistant("b", vec![], Usage::default());
        let dropped = c.drop_last_exchange();
        assert_eq!(dropped.len(), 2);
        assert!(dropped[0].message.user_text().is_some());
        assert_eq!(c.len(), 2);
        let last = &c.entries()[1].message;
        assert!(matches!(last, Message::Assistant { content: Some(a), .. } if a == "a"));
    }
}
