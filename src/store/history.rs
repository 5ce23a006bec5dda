//! A conversation's server-side history, kept in chunks keyed `start-end` (`history`), and
//! the versions of it that an edit or a regeneration replaced, by the id of their first user
//! message (`branches`).

use super::{decode, prefix, remove_prefix, HistoryBranch, Store, StoreError};
use crate::auth::SessionKey;
use crate::llm::HistoryEntry;

/// `start-end` of a history chunk key suffix.
fn chunk_range(suffix: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(suffix).ok()?;
    let (start, end) = text.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

impl Store {
    pub fn load_history(&self, key: &SessionKey) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut entries = Vec::new();
        for item in self.history.scan_prefix(prefix(key)) {
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
        key: &SessionKey,
        from: usize,
        added: &[HistoryEntry],
    ) -> Result<(), StoreError> {
        let base = prefix(key);
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
    pub fn clear_history(&self, key: &SessionKey) -> Result<(), StoreError> {
        remove_prefix(&self.history, &prefix(key))?;
        remove_prefix(&self.branches, &prefix(key))
    }

    /// Keeps a replaced version of the history (nothing is kept without a user message).
    pub fn save_branch(&self, key: &SessionKey, branch: &HistoryBranch) -> Result<(), StoreError> {
        let Some(id) = branch.id() else {
            return Ok(());
        };
        let mut k = prefix(key);
        k.extend_from_slice(id.as_bytes());
        self.branches.insert(k, serde_json::to_vec(branch)?)?;
        Ok(())
    }

    /// Removes and returns the replaced version whose first user message is `id`.
    pub fn take_branch(
        &self,
        key: &SessionKey,
        id: &str,
    ) -> Result<Option<HistoryBranch>, StoreError> {
        let mut k = prefix(key);
        k.extend_from_slice(id.as_bytes());
        self.branches.remove(k)?.map(|v| decode(&v)).transpose()
    }
}
