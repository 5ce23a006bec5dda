//! Every actor message of the runtime with its typed reply: the protocol on one screen.
//!
//! Imperative names (`StartTurn`, `Evict`) are requests; `SessionActivity` reports a fact.

pub use super::events::{Delivery, Subscription};
use actix::prelude::*;
use serde::Serialize;

use crate::auth::{Owner, SessionKey};
use crate::llm::HistoryEntry;
use crate::workspace::git::GitError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(
        "a turn is already running in this session; wait for it or stop it (POST /api/chat/stop)"
    )]
    Busy,
    #[error("no turn is running in this session")]
    NotRunning,
    #[error("the server is at its limit of {0} active sessions, all busy; try again shortly")]
    AtCapacity(usize),
    #[error("this session already has {0} clients following its events; close one first")]
    TooManyAttachments(usize),
    #[error("the session stopped unexpectedly; retry the request")]
    Gone,
    /// A quota of the owner, or the server's turn limit.
    #[error(transparent)]
    OverQuota(#[from] crate::auth::quotas::QuotaExceeded),
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist (a history entry, an earlier version).
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the session's current state.
    #[error("{0}")]
    Conflict(String),
    /// The model endpoint failed a request the session made for the client (a summary).
    #[error("{0}")]
    Model(crate::llm::LlmError),
    #[error("{0}")]
    Internal(String),
}

impl From<MailboxError> for SessionError {
    fn from(_: MailboxError) -> Self {
        SessionError::Gone
    }
}

// ---- to the registry ----

/// Find the session for `key`, starting (or restarting) it if needed.
#[derive(Message)]
#[rtype(result = "Result<Addr<crate::runtime::session::SessionActor>, SessionError>")]
pub struct GetSession {
    pub key: SessionKey,
}

/// A session's turn started (`busy`) or ended; busy sessions are never evicted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionActivity {
    pub key: SessionKey,
    pub busy: bool,
    /// When idle: the process group of the session's long-lived tool process (its Python
    /// interpreter), if one runs, so `/api/sessions` can report its memory.
    pub tools_process_group: Option<i32>,
}

/// Stop and forget a session whatever its state (its conversation is being deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveSession {
    pub key: SessionKey,
}

/// Live sessions and counters, for `GET /api/sessions` and `/metrics`.
#[derive(Message)]
#[rtype(result = "RegistryStats")]
pub struct GetStats;

#[derive(Debug, Clone, Serialize)]
pub struct RegistryStats {
    pub sessions: Vec<SessionSummary>,
    pub evictions: u64,
    pub started: u64,
    /// Session actors that ended without being asked to (a panic), since start.
    pub failed: u64,
}

/// A history entry a client named: missing is 404, not a user message 409.
impl From<crate::agent::conversation::EntryError> for SessionError {
    fn from(error: crate::agent::conversation::EntryError) -> Self {
        use crate::agent::conversation::EntryError;
        match error {
            EntryError::Missing(_) => SessionError::NotFound(error.to_string()),
            EntryError::NotUserMessage(_) => SessionError::Conflict(error.to_string()),
        }
    }
}

impl RegistryStats {
    /// The figures `/metrics` shows.
    pub fn figures(&self) -> crate::metrics::SessionFigures {
        let busy = self.sessions.iter().filter(|s| s.state == "busy").count();
        crate::metrics::SessionFigures {
            busy,
            idle: self.sessions.len() - busy,
            started: self.started,
            evictions: self.evictions,
            failed: self.failed,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub owner: Owner,
    pub conversation_id: String,
    pub state: &'static str,
    pub idle_seconds: u64,
    /// Resident memory of the session's tool processes (its Python interpreter), in KiB;
    /// filled in by the HTTP layer from `tools_process_group`.
    pub tools_memory_kib: u64,
    #[serde(skip)]
    pub tools_process_group: Option<i32>,
}

// ---- to a session ----

/// Start a turn; the reply carries the stream of its events.
#[derive(Message, Clone)]
#[rtype(result = "Result<TurnHandle, SessionError>")]
pub struct StartTurn {
    pub message: String,
    pub replace_last: bool,
    pub replace_from: Option<String>,
    /// What the client that started the turn is sent.
    pub delivery: Delivery,
    /// The request named its conversation: the turn creates or touches its record. Turns on
    /// the implicit conversation (no id given) leave the conversation list alone.
    pub named_conversation: bool,
    /// A person follows the turn and can answer approvals (not on `/v1/chat/completions`).
    pub attended: bool,
}

pub struct TurnHandle {
    pub events: Subscription,
}

/// A git operation on the workspace (snapshot, restore, branch), run off the actor thread
/// while no turn can start: a turn asked for meanwhile gets 409, and a running turn refuses the
/// operation. The session forgets its cached workspace state afterwards.
#[derive(Message, Clone)]
#[rtype(result = "Result<Result<(), GitError>, SessionError>")]
pub struct ChangeWorkspace {
    pub work: std::sync::Arc<dyn Fn() -> Result<(), GitError> + Send + Sync>,
    pub effect: WorkspaceEffect,
}

/// Whether a workspace operation only reads the files or writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceEffect {
    /// A snapshot.
    Reads,
    /// A restore or a checkout: the session's sandboxed processes (the interpreter and
    /// anything left running in the background) are stopped first, so nothing swaps names
    /// while git writes.
    Rewrites,
}

/// Cancel the running turn.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), SessionError>")]
pub struct CancelTurn;

/// Stop the session: only if idle (`Err(Busy)` otherwise), or with `force` cancelling its turn.
#[derive(Message)]
#[rtype(result = "Result<(), SessionError>")]
pub struct Evict {
    pub force: bool,
}

/// Re-attach: the kept events after `after`, then live ones while the turn runs.
#[derive(Message, Clone)]
#[rtype(result = "Result<Subscription, SessionError>")]
pub struct Subscribe {
    pub after: Option<u64>,
}

/// The owner's answer to an approval the running turn waits for.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), SessionError>")]
pub struct Approve {
    pub approval_id: String,
    pub answer: super::approvals::Answer,
}

/// The owner's choices for this conversation: a preset (`None`: the server's) and tool rules.
#[derive(Message, Clone)]
#[rtype(result = "Result<crate::permissions::ConversationPermissions, SessionError>")]
pub struct SetPermissions {
    pub mode: Option<crate::permissions::Mode>,
    pub tools: std::collections::BTreeMap<String, crate::permissions::Decision>,
    /// Forget the approvals remembered for this conversation.
    pub forget_approvals: bool,
}

/// Session facts for `/api/session/info` and `/boot`.
#[derive(Message, Clone)]
#[rtype(result = "Result<SessionInfo, SessionError>")]
pub struct GetInfo;

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub history_length: usize,
    pub busy: bool,
    pub system_prompt: String,
    pub vm_history: crate::protocol::RawJson,
    /// The first history entry's text when it is the assistant's (the boot screen shows it
    /// instead of the welcome text).
    pub opening_reply: Option<String>,
    /// The `approval_required` events the running turn waits on.
    pub pending_approvals: Vec<crate::protocol::ChatEvent>,
    pub permissions: crate::permissions::ConversationPermissions,
    pub context: crate::protocol::ContextReport,
}

/// Compact the history now (`POST /api/session/compact`), with what the summary should keep;
/// the answer says how full the context is afterwards.
#[derive(Message, Clone)]
#[rtype(
    result = "Result<(crate::agent::compact::Compacted, crate::protocol::ContextReport), SessionError>"
)]
pub struct Compact {
    pub instructions: Option<String>,
}

/// A page of the history: up to `limit` entries before entry `before` (the newest without).
#[derive(Message, Clone)]
#[rtype(result = "Result<HistoryPage, SessionError>")]
pub struct GetHistoryPage {
    pub before: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    /// Oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Whether older entries remain.
    pub has_more: bool,
    pub history_length: usize,
}

/// One history entry by id.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<HistoryEntry>, SessionError>")]
pub struct GetHistoryEntry {
    pub entry_id: String,
}

/// Forget the history and empty the workspace; returns how many entries were removed.
#[derive(Message, Clone)]
#[rtype(result = "Result<ClearedHistory, SessionError>")]
pub struct ClearHistory;

/// Makes the replaced version of the history whose first user message is `entry_id` current
/// again; the history it replaces is kept as a version in turn.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), SessionError>")]
pub struct SwitchVersion {
    pub entry_id: String,
}

#[derive(Debug, Clone)]
pub struct ClearedHistory {
    pub cleared_messages: usize,
    pub workspace_removed: bool,
}
