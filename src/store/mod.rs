//! The durable store (sled): conversations, server-side history, the events of each session's
//! last turn, and uploads.
//!
//! Key scheme: every key starts with `owner 0x1F conversation` (ids are validated to exclude
//! 0x1F), so no lookup can cross owners. Values are JSON. All methods block: call them through
//! `blocking::run`. `flush` makes everything written so far durable; the runtime calls it at
//! the end of every turn, before `final` is sent.
//!
//! This file holds the `Store` itself, opening it and the key helpers; each kind of record has
//! a file of its own.

use std::path::Path;

mod conversations;
mod deployments;
mod flusher;
mod history;
mod permissions;
mod records;
mod settings;
mod turns;
mod uploads;
pub use flusher::Flusher;
pub use records::{
    ConversationRecord, ConversationSummary, DeploymentRecord, HistoryBranch, TurnRecord,
    TurnState, UploadRecord,
};

use serde::de::DeserializeOwned;

use crate::auth::SessionKey;

const SEP: u8 = 0x1f;
/// How long opening waits for a previous process to release the store.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "the store {0} is in use by another okcvm process: stop it, or give this one its own \
         [store] path"
    )]
    InUse(String),
    #[error("store record is corrupt: {0}")]
    Codec(#[from] serde_json::Error),
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    conversations: sled::Tree,
    history: sled::Tree,
    /// The head of each conversation's last turn (`store/turns.rs`).
    turns: sled::Tree,
    /// The kept events of each conversation's last turn, one key each.
    turn_events: sled::Tree,
    uploads: sled::Tree,
    settings: sled::Tree,
    /// Replaced versions of each conversation's history, by the id of their first user message.
    branches: sled::Tree,
    /// Published websites of each conversation, by deployment id.
    deployments: sled::Tree,
    /// When each conversation last had a turn; kept apart so a turn never rewrites the
    /// console's (possibly large) conversation JSON.
    activity: sled::Tree,
    /// Conversations' permission choices and owners' standing approvals.
    permissions: sled::Tree,
}

fn key(session: &SessionKey) -> Vec<u8> {
    let (owner, conversation) = (&*session.owner, &session.conversation_id);
    let mut key = Vec::with_capacity(owner.len() + conversation.len() + 2);
    key.extend_from_slice(owner.as_bytes());
    key.push(SEP);
    key.extend_from_slice(conversation.as_bytes());
    key
}

/// Prefix of every record under (owner, conversation), e.g. history entries.
fn prefix(session: &SessionKey) -> Vec<u8> {
    let mut prefix = key(session);
    prefix.push(SEP);
    prefix
}

fn owner_prefix(owner: &str) -> Vec<u8> {
    let mut prefix = owner.as_bytes().to_vec();
    prefix.push(SEP);
    prefix
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Nanosecond timestamps, so that "newest first" is a strict order.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Store {
    /// Opens (or creates) the store and marks turns that were running when the server died
    /// as interrupted, ending their event streams with `error` + `stop`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_waiting(path, LOCK_WAIT)
    }

    /// [`Store::open`], waiting at most `lock_wait` for another process to let go of it.
    pub fn open_waiting(path: &Path, lock_wait: std::time::Duration) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(path)
            // No background flushing: the flusher below does all of it, so writers never
            // stall behind a second flush (checkpoints ask it for one with `flush_soon`).
            .flush_every_ms(None);
        // A server that is still shutting down (its last threads letting go of the file)
        // holds the lock for a moment; wait for it rather than fail a restart.
        let started = std::time::Instant::now();
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if started.elapsed() >= lock_wait {
                        return Err(StoreError::InUse(path.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let store = Self {
            conversations: db.open_tree("conversations")?,
            history: db.open_tree("history")?,
            turns: db.open_tree("turns")?,
            turn_events: db.open_tree("turn_events")?,
            uploads: db.open_tree("uploads")?,
            settings: db.open_tree("settings")?,
            branches: db.open_tree("branches")?,
            deployments: db.open_tree("deployments")?,
            activity: db.open_tree("activity")?,
            permissions: db.open_tree("permissions")?,
            db,
        };
        store.interrupt_running_turns()?;
        Ok(store)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn remove_prefix(tree: &sled::Tree, prefix: &[u8]) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut any = false;
    for item in tree.scan_prefix(prefix).keys() {
        batch.remove(item?);
        any = true;
    }
    if any {
        tree.apply_batch(batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
