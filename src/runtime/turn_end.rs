//! What happens after a turn's loop ends, as plain functions: the closing event, the
//! workspace snapshot, and the small views of history and uploads the response carries.
//! Blocking work here (git, directory reads) runs on the blocking pool, called by the session.

use std::sync::Arc;

use crate::agent::{Conversation, TurnEnd, TurnOutcome};
use crate::llm::HistoryEntry;
use crate::llm::Message;
use crate::protocol::{ChatEvent, ChatResponse, RawJson, TurnFailure, UploadEntry, WorkspaceState};
use crate::store::UploadRecord;
use crate::workspace::{git, MOUNT, UPLOAD_DIR};

use super::services::Services;

/// Snapshots listed in a `workspace_state`.
const SNAPSHOT_LIST_LEN: usize = 20;
/// Entries of `vm_history` in a response.
pub const VM_HISTORY_LEN: usize = 25;

/// `vm_history`: the last entries of `entries`, encoded once.
pub fn vm_history(entries: &[HistoryEntry]) -> RawJson {
    RawJson::encode(&entries[entries.len().saturating_sub(VM_HISTORY_LEN)..])
}

pub fn closing_event(outcome: &TurnOutcome, response: impl FnOnce() -> ChatResponse) -> ChatEvent {
    match &outcome.end {
        TurnEnd::Answered | TurnEnd::MaxSteps => ChatEvent::Final {
            payload: Arc::new(response()),
        },
        TurnEnd::Cancelled => ChatEvent::Error {
            message: "cancelled".into(),
            reason: TurnFailure::Cancelled,
        },
        TurnEnd::Failed(error) => {
            tracing::warn!(%error, "turn failed");
            ChatEvent::Error {
                message: error.to_string(),
                reason: if error.is_timeout() {
                    TurnFailure::ModelTimedOut
                } else {
                    TurnFailure::ModelFailed
                },
            }
        }
    }
}

/// Commits the workspace after a turn and reports its state; failures are logged, not fatal.
/// A workspace that holds nothing but its empty folders gets no repository yet.
pub fn snapshot_after_turn(
    services: &Services,
    root: &std::path::Path,
    label: &str,
) -> WorkspaceState {
    let policy = &services.snapshot_policy;
    if !git::git_dir(root).exists() && is_pristine(root) {
        return git::empty_state();
    }
    if let Err(error) = git::snapshot(root, label, false, policy) {
        tracing::error!(%error, "cannot snapshot the workspace");
    }
    git::state(root, SNAPSHOT_LIST_LEN, policy).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot read the workspace state");
        git::empty_state()
    })
}

/// True when the workspace holds only empty `output/` and `upload/` folders.
fn is_pristine(root: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        return true;
    };
    entries.flatten().all(|entry| {
        entry.file_type().is_ok_and(|t| t.is_dir())
            && std::fs::read_dir(entry.path()).is_ok_and(|mut d| d.next().is_none())
    })
}

/// The upload records as the API lists them.
pub fn upload_entries(records: &[UploadRecord]) -> Vec<UploadEntry> {
    records
        .iter()
        .map(|u| UploadEntry {
            name: u.name.clone(),
            relative_path: format!("{UPLOAD_DIR}/{}", u.name),
            path: format!("{MOUNT}/{UPLOAD_DIR}/{}", u.name),
            display_path: format!("{UPLOAD_DIR}/{}", u.name),
            size_bytes: u.size_bytes,
            size_display: crate::protocol::size_display(u.size_bytes),
        })
        .collect()
}

pub fn first_user_message(history: &Conversation) -> String {
    history
        .entries()
        .iter()
        .find_map(|e| match &e.message {
            Message::User { .. } => e.message.user_text().map(str::to_string),
            _ => None,
        })
        .unwrap_or_default()
}

pub fn last_user_message(history: &Conversation) -> String {
    history
        .entries()
        .iter()
        .rev()
        .find_map(|e| match &e.message {
            Message::User { .. } => e.message.user_text().map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| "Turn".into())
}

/// The first line of the reply, cut to a title-sized summary.
pub fn summary_of(reply: &str) -> String {
    let line = reply
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    crate::protocol::cap_line(line, 160)
}

/// Deletes a workspace directory and its history; `Ok(false)` if there was none.
pub fn remove_workspace(root: &std::path::Path) -> std::io::Result<bool> {
    match std::fs::remove_dir_all(git::git_dir(root)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The closing event of a turn the store could not keep.
pub fn not_stored(error: &impl std::fmt::Display) -> ChatEvent {
    ChatEvent::Error {
        message: format!(
            "the turn could not be stored ({error}); its reply may be lost after a restart"
        ),
        reason: TurnFailure::NotStored,
    }
}
