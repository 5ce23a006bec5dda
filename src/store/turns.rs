//! The events of each session's last turn, appended as they come: a small head per
//! conversation (`turns`: state and next sequence number) and one key per kept event
//! (`turn_events`: `owner 0x1F conversation 0x1F seq` big-endian), so a checkpoint writes only
//! what is new and a 1,000-call turn costs per call what a 10-call one does.
//!
//! Writes arrive from the flusher's thread (checkpoints) and the blocking pool (the end of a
//! turn) in no guaranteed order, so every write that moves the head checks that the stored
//! head is not ahead of it: a late checkpoint never undoes a finished turn.

use super::{decode, prefix, remove_prefix, Store, StoreError};
use crate::auth::SessionKey;
use crate::protocol::{ChatEvent, SeqEvent};
use crate::store::{TurnRecord, TurnState};

/// The key of event `seq` of the turn whose head is at `head` (`owner 0x1F conversation`).
fn event_key(head: &[u8], seq: u64) -> Vec<u8> {
    let mut key = head.to_vec();
    key.push(super::SEP);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

impl Store {
    /// The last turn: its head and every kept event before its next sequence number.
    pub fn load_turn(&self, key: &SessionKey) -> Result<Option<TurnRecord>, StoreError> {
        let Some(head) = self.turns.get(super::key(key))? else {
            return Ok(None);
        };
        let mut turn: TurnRecord = decode(&head)?;
        for item in self.turn_events.scan_prefix(prefix(key)) {
            let (_, value) = item?;
            let event: SeqEvent = decode(&value)?;
            if event.seq < turn.next_seq {
                turn.events.push(event);
            }
        }
        Ok(Some(turn))
    }

    /// A new turn starts at `next_seq`: the previous turn's events go (unless a later head is
    /// already stored).
    pub fn begin_turn(&self, key: &SessionKey, next_seq: u64) -> Result<(), StoreError> {
        if self.head_is_ahead(key, next_seq)? {
            return Ok(());
        }
        self.remove_events(key)?;
        self.set_head(key, TurnState::Running, next_seq)
    }

    /// Appends `events` (numbered below `next_seq`) to the turn and moves its head, unless a
    /// later head is already stored.
    pub fn append_turn(
        &self,
        key: &SessionKey,
        state: TurnState,
        next_seq: u64,
        events: &[SeqEvent],
    ) -> Result<(), StoreError> {
        if self.head_is_ahead(key, next_seq)? {
            return Ok(());
        }
        // One insert each, events before the head: a crash in between leaves events at or
        // past the stored head's `next_seq`, which `load_turn` leaves out. (A sled batch would
        // take the store-wide write lock on every turn.)
        let head = super::key(key);
        for event in events {
            self.turn_events
                .insert(event_key(&head, event.seq), serde_json::to_vec(event)?)?;
        }
        self.set_head(key, state, next_seq)
    }

    /// Forgets the turn's events; the next one starts again at 1.
    pub fn reset_turn(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.remove_turn(key)?;
        self.set_head(key, TurnState::Finished, 1)
    }

    pub(super) fn remove_turn(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.turns.remove(super::key(key))?;
        remove_prefix(&self.turn_events, &prefix(key))
    }

    /// The turn's events, removed one by one (a turn's start must not take the store-wide
    /// lock a batch does).
    fn remove_events(&self, key: &SessionKey) -> Result<(), StoreError> {
        for k in self.turn_events.scan_prefix(prefix(key)).keys() {
            self.turn_events.remove(k?)?;
        }
        Ok(())
    }

    /// Ends the streams of turns that were running when the server died with `error` + `stop`.
    pub(super) fn interrupt_running_turns(&self) -> Result<(), StoreError> {
        for item in self.turns.iter() {
            let (k, value) = item?;
            let mut head: TurnRecord = decode(&value)?;
            if head.state != TurnState::Running {
                continue;
            }
            let mut closing = Vec::new();
            for event in [
                ChatEvent::Error {
                    message: "interrupted: the server stopped during this turn".into(),
                    reason: crate::protocol::TurnFailure::Interrupted,
                },
                ChatEvent::Stop,
            ] {
                closing.push(SeqEvent {
                    seq: head.next_seq,
                    event,
                });
                head.next_seq += 1;
            }
            head.state = TurnState::Interrupted;
            let mut batch = sled::Batch::default();
            for event in &closing {
                batch.insert(event_key(&k, event.seq), serde_json::to_vec(event)?);
            }
            self.turn_events.apply_batch(batch)?;
            self.turns.insert(k, serde_json::to_vec(&head)?)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn head_is_ahead(&self, key: &SessionKey, next_seq: u64) -> Result<bool, StoreError> {
        Ok(self
            .turns
            .get(super::key(key))?
            .and_then(|bytes| decode::<TurnRecord>(&bytes).ok())
            .is_some_and(|stored| stored.next_seq > next_seq))
    }

    fn set_head(
        &self,
        key: &SessionKey,
        state: TurnState,
        next_seq: u64,
    ) -> Result<(), StoreError> {
        let head = TurnRecord {
            state,
            events: Vec::new(),
            next_seq,
        };
        self.turns
            .insert(super::key(key), serde_json::to_vec(&head)?)?;
        Ok(())
    }
}
