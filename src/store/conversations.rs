//! Conversation records: the console's JSON of each conversation with its title and
//! timestamps (`conversations`), and when each last had a turn (`activity`), listed per owner
//! newest first. Deleting a conversation removes everything stored under it.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::records::Dated;
use super::{
    decode, now, owner_prefix, prefix, remove_prefix, ConversationRecord, ConversationSummary,
    Store, StoreError,
};
use crate::auth::SessionKey;

impl Store {
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
        key: &SessionKey,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        let k = super::key(key);
        let Some(value) = self.conversations.get(&k)? else {
            return Ok(None);
        };
        let mut record: ConversationRecord = decode(&value)?;
        self.apply_activity(&k, &mut record.updated_at)?;
        Ok(Some(record))
    }

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
        key: &SessionKey,
        data: Value,
    ) -> Result<ConversationRecord, StoreError> {
        let existing = self.get_conversation(key)?;
        let stamp = now();
        let title = data
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| existing.as_ref().map(|r| r.title.clone()))
            .unwrap_or_else(|| "New conversation".into());
        let record = ConversationRecord {
            id: key.conversation_id.clone(),
            title,
            created_at: existing.map_or_else(|| stamp.clone(), |r| r.created_at),
            updated_at: stamp,
            data,
        };
        self.conversations
            .insert(super::key(key), serde_json::to_vec(&record)?)?;
        Ok(record)
    }

    /// After a turn: the conversation exists (titled by its first message) and is the newest.
    pub fn touch_conversation(
        &self,
        key: &SessionKey,
        first_message: &str,
    ) -> Result<(), StoreError> {
        let k = super::key(key);
        let stamp = now();
        if !self.conversations.contains_key(&k)? {
            let record = ConversationRecord {
                id: key.conversation_id.clone(),
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
    pub fn delete_conversation(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let existed = self.conversations.remove(super::key(key))?.is_some();
        self.activity.remove(super::key(key))?;
        self.clear_history(key)?;
        self.remove_turn(key)?;
        remove_prefix(&self.uploads, &prefix(key))?;
        self.remove_conversation_permissions(key)?;
        Ok(existed)
    }
}
