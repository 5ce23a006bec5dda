//! The durable store (sled): conversations, server-side history, the events of each session's
//! last turn, and uploads.
//!
//! Key scheme: every key starts with `owner 0x1F conversation` (ids are validated to exclude
//! 0x1F), so no lookup can cross owners. Values are JSON. All methods block: call them through
//! `blocking::run`. `flush` makes everything written so far durable; the runtime calls it at
//! the end of every turn, before `final` is sent.

use std::path::Path;

mod flusher;
mod records;
mod turns;
pub use flusher::Flusher;
use records::Dated;
pub use records::{
    ConversationRecord, ConversationSummary, DeploymentRecord, HistoryBranch, TurnRecord,
    TurnState, UploadRecord,
};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::llm::HistoryEntry;

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
}

fn key(owner: &str, conversation: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(owner.len() + conversation.len() + 2);
    key.extend_from_slice(owner.as_bytes());
    key.push(SEP);
    key.extend_from_slice(conversation.as_bytes());
    key
}

/// Prefix of every record under (owner, conversation), e.g. history entries.
fn prefix(owner: &str, conversation: &str) -> Vec<u8> {
    let mut prefix = key(owner, conversation);
    prefix.push(SEP);
    prefix
}

/// `start-end` of a history chunk key suffix.
fn chunk_range(suffix: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(suffix).ok()?;
    let (start, end) = text.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
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
            db,
        };
        store.interrupt_running_turns()?;
        Ok(store)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    // ---- conversations ----

    /// The owner's conversations, newest `updated_at` first.
    /// The owner's conversations, newest first.
    pub fn list_conversations(&self, owner: &str) -> Result<Vec<ConversationRecord>, StoreError> {
        self.scan_conversations(owner)
    }

    /// The owner's conversations as id, title and timestamps only (the console's JSON is
    /// skipped while decoding), newest first.
    pub fn list_conversation_summaries(
        &self,
        owner: &str,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        self.scan_conversations(owner)
    }

    fn scan_conversations<T: DeserializeOwned + Dated>(
        &self,
        owner: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut records = Vec::new();
        for item in self.conversations.scan_prefix(owner_prefix(owner)) {
            let (k, value) = item?;
            let mut record = decode::<T>(&value)?;
            self.apply_activity(&k, record.updated_at_mut())?;
            records.push(record);
        }
        records.sort_by(|a, b| b.updated_at().cmp(a.updated_at()));
        Ok(records)
    }

    pub fn get_conversation(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let k = key(owner, id);
        let Some(value) = self.conversations.get(&k)? else {
            return Ok(None);
        };
        let mut record: ConversationRecord = decode(&value)?;
        self.apply_activity(&k, &mut record.updated_at)?;
        Ok(Some(record))
    }

    /// The later of the record's own time and its last turn.
    /// Moves `updated_at` to the conversation's last turn if that came later.
    fn apply_activity(&self, k: &[u8], updated_at: &mut String) -> Result<(), StoreError> {
        if let Some(stamp) = self.activity.get(k)? {
            let stamp = String::from_utf8_lossy(&stamp).into_owned();
            if stamp > *updated_at {
                *updated_at = stamp;
            }
        }
        Ok(())
    }

    /// Creates or replaces the client's JSON of a conversation, keeping `created_at`.
    pub fn put_conversation(
        &self,
        owner: &str,
        id: &str,
        data: Value,
    ) -> Result<ConversationRecord, StoreError> {
        let existing = self.get_conversation(owner, id)?;
        let stamp = now();
        let title = data
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| existing.as_ref().map(|r| r.title.clone()))
            .unwrap_or_else(|| "New conversation".into());
        let record = ConversationRecord {
            id: id.to_string(),
            title,
            created_at: existing.map_or_else(|| stamp.clone(), |r| r.created_at),
            updated_at: stamp,
            data,
        };
        self.conversations
            .insert(key(owner, id), serde_json::to_vec(&record)?)?;
        Ok(record)
    }

    /// After a turn: the conversation exists (titled by its first message) and is the newest.
    pub fn touch_conversation(
        &self,
        owner: &str,
        id: &str,
        first_message: &str,
    ) -> Result<(), StoreError> {
        let k = key(owner, id);
        let stamp = now();
        if !self.conversations.contains_key(&k)? {
            let record = ConversationRecord {
                id: id.to_string(),
                title: crate::protocol::cap_line(first_message.lines().next().unwrap_or(""), 60),
                created_at: stamp.clone(),
                updated_at: stamp.clone(),
                data: serde_json::json!({}),
            };
            self.conversations
                .insert(&k, serde_json::to_vec(&record)?)?;
        }
        self.activity.insert(k, stamp.as_bytes())?;
        Ok(())
    }

    /// Removes the conversation and everything recorded under it; false if it did not exist.
    pub fn delete_conversation(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let existed = self.conversations.remove(key(owner, id))?.is_some();
        self.activity.remove(key(owner, id))?;
        self.clear_history(owner, id)?;
        self.remove_turn(owner, id)?;
        remove_prefix(&self.uploads, &prefix(owner, id))?;
        Ok(existed)
    }

    // ---- history ----

    pub fn load_history(
        &self,
        owner: &str,
        conversation: &str,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut entries = Vec::new();
        for item in self.history.scan_prefix(prefix(owner, conversation)) {
            let (_, value) = item?;
            entries.extend(decode::<Vec<HistoryEntry>>(&value)?);
        }
        Ok(entries)
    }

    /// Makes the stored history the stored entries before `from` followed by `added`.
    ///
    /// History is kept in chunks, one per save, keyed `start-end`: the usual save (append a
    /// turn) is a single insert, which sled applies atomically, so a crash never leaves half
    /// a turn. Saving from inside an earlier chunk (an edited message) cuts that chunk and
    /// drops the later ones in one batch.
    pub fn save_history(
        &self,
        owner: &str,
        conversation: &str,
        from: usize,
        added: &[HistoryEntry],
    ) -> Result<(), StoreError> {
        let base = prefix(owner, conversation);
        let end = from + added.len();
        let chunk_key = |start: usize, end: usize| {
            let mut k = base.clone();
            k.extend_from_slice(format!("{start:010}-{end:010}").as_bytes());
            k
        };
        let mut batch = sled::Batch::default();
        let mut rewrites = false;
        for item in self.history.scan_prefix(&base).rev() {
            let (k, value) = item?;
            let Some((start, end)) = chunk_range(&k[base.len()..]) else {
                continue;
            };
            if end <= from {
                break;
            }
            rewrites = true;
            batch.remove(k);
            if start < from {
                let chunk: Vec<HistoryEntry> = decode(&value)?;
                let kept = &chunk[..(from - start).min(chunk.len())];
                batch.insert(
                    chunk_key(start, start + kept.len()),
                    serde_json::to_vec(kept)?,
                );
                break;
            }
        }
        if !added.is_empty() {
            let value = serde_json::to_vec(added)?;
            if !rewrites {
                self.history.insert(chunk_key(from, end), value)?;
                return Ok(());
            }
            batch.insert(chunk_key(from, end), value);
        }
        if rewrites {
            self.history.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Removes the history and every replaced version of it.
    pub fn clear_history(&self, owner: &str, conversation: &str) -> Result<(), StoreError> {
        remove_prefix(&self.history, &prefix(owner, conversation))?;
        remove_prefix(&self.branches, &prefix(owner, conversation))
    }

    /// Keeps a replaced version of the history (nothing is kept without a user message).
    pub fn save_branch(
        &self,
        owner: &str,
        conversation: &str,
        branch: &HistoryBranch,
    ) -> Result<(), StoreError> {
        let Some(id) = branch.id() else {
            return Ok(());
        };
        let mut k = prefix(owner, conversation);
        k.extend_from_slice(id.as_bytes());
        self.branches.insert(k, serde_json::to_vec(branch)?)?;
        Ok(())
    }

    /// Removes and returns the replaced version whose first user message is `id`.
    pub fn take_branch(
        &self,
        owner: &str,
        conversation: &str,
        id: &str,
    ) -> Result<Option<HistoryBranch>, StoreError> {
        let mut k = prefix(owner, conversation);
        k.extend_from_slice(id.as_bytes());
        self.branches.remove(k)?.map(|v| decode(&v)).transpose()
    }

    // ---- deployments ----

    pub fn put_deployment(
        &self,
        owner: &str,
        conversation: &str,
        deployment: &DeploymentRecord,
    ) -> Result<(), StoreError> {
        let mut k = prefix(owner, conversation);
        k.extend_from_slice(deployment.id.as_bytes());
        self.deployments
            .insert(k, serde_json::to_vec(deployment)?)?;
        Ok(())
    }

    pub fn list_deployments(
        &self,
        owner: &str,
        conversation: &str,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.deployments
            .scan_prefix(prefix(owner, conversation))
            .map(|item| decode(&item?.1))
            .collect()
    }

    /// Forgets a conversation's deployments and returns them (their files are the caller's).
    pub fn remove_deployments(
        &self,
        owner: &str,
        conversation: &str,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        let records = self.list_deployments(owner, conversation)?;
        remove_prefix(&self.deployments, &prefix(owner, conversation))?;
        Ok(records)
    }

    // ---- server settings ----

    pub fn get_setting<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.settings.get(name)?.map(|v| decode(&v)).transpose()
    }

    pub fn put_setting<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.settings.insert(name, serde_json::to_vec(value)?)?;
        Ok(())
    }

    // ---- uploads ----

    pub fn list_uploads(
        &self,
        owner: &str,
        conversation: &str,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        self.uploads
            .scan_prefix(prefix(owner, conversation))
            .map(|item| {
                let (_, value) = item?;
                decode(&value)
            })
            .collect()
    }

    pub fn put_upload(
        &self,
        owner: &str,
        conversation: &str,
        upload: &UploadRecord,
    ) -> Result<(), StoreError> {
        let mut k = prefix(owner, conversation);
        k.extend_from_slice(upload.name.as_bytes());
        self.uploads.insert(k, serde_json::to_vec(upload)?)?;
        Ok(())
    }

    pub fn clear_uploads(&self, owner: &str, conversation: &str) -> Result<(), StoreError> {
        remove_prefix(&self.uploads, &prefix(owner, conversation))
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
