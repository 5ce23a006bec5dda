//! Server-wide caps on long-lived tool resources (`[limits]`): live Python interpreters and
//! browser tabs. Whoever holds one holds a [`Slot`]. A new slot asked for at the cap closes
//! the least recently used idle one, of any session, to make room (its owner finds it closed
//! and says so to its model); when every slot is in use the asking tool is refused with a
//! message for the model, and the turn goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::ToolError;

type Close = Arc<dyn Fn() + Send + Sync>;

struct Entry {
    id: u64,
    last_used: Instant,
    in_use: bool,
    reclaimed: Arc<AtomicBool>,
    close: Close,
}

#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    next_id: u64,
}

/// The slots of one kind of resource.
pub struct Slots {
    /// What a slot holds, plural, for messages ("Python interpreters").
    what: &'static str,
    /// The `[limits]` key that sets the cap, for messages.
    key: &'static str,
    capacity: usize,
    table: Mutex<Table>,
}

impl Slots {
    pub fn new(what: &'static str, key: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            what,
            key,
            capacity,
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a new resource that `close` shuts down if it is ever reclaimed.
    pub fn acquire(
        self: &Arc<Self>,
        close: impl Fn() + Send + Sync + 'static,
    ) -> Result<Slot, ToolError> {
        let reclaimed = Arc::new(AtomicBool::new(false));
        let victim = {
            let mut table = self.table();
            let victim = if table.entries.len() >= self.capacity {
                let Some(index) = table
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(_, entry)| !entry.in_use)
                    .min_by_key(|(_, entry)| entry.last_used)
                    .map(|(index, _)| index)
                else {
                    return Err(ToolError::RespondToModel(format!(
                        "all {} {} this server allows ([limits] {}) are busy with running work; \
                         try again in a moment or do this step another way",
                        self.capacity, self.what, self.key
                    )));
                };
                Some(table.entries.swap_remove(index))
            } else {
                None
            };
            table.next_id += 1;
            let id = table.next_id;
            table.entries.push(Entry {
                id,
                last_used: Instant::now(),
                in_use: false,
                reclaimed: reclaimed.clone(),
                close: Arc::new(close),
            });
            (victim, id)
        };
        let (victim, id) = victim;
        if let Some(victim) = victim {
            tracing::info!(
                what = self.what,
                "closing the least recently used to make room"
            );
            victim.reclaimed.store(true, Ordering::Release);
            (victim.close)();
        }
        Ok(Slot {
            slots: self.clone(),
            id,
            reclaimed,
        })
    }

    /// How many slots are held.
    pub fn held(&self) -> usize {
        self.table().entries.len()
    }

    fn mark(&self, id: u64, in_use: bool) {
        if let Some(entry) = self.table().entries.iter_mut().find(|e| e.id == id) {
            entry.in_use = in_use;
            entry.last_used = Instant::now();
        }
    }
}

/// A held slot; dropping it frees it.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    reclaimed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({} #{})", self.slots.what, self.id)
    }
}

impl Slot {
    /// Marks the resource busy until the guard is dropped: it is never reclaimed meanwhile.
    pub fn in_use(&self) -> InUse {
        self.slots.mark(self.id, true);
        InUse {
            slots: self.slots.clone(),
            id: self.id,
        }
    }

    /// Whether the resource was closed to make room for another session's.
    pub fn was_reclaimed(&self) -> bool {
        self.reclaimed.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .table()
            .entries
            .retain(|entry| entry.id != self.id);
    }
}

/// See [`Slot::in_use`].
pub struct InUse {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.slots.mark(self.id, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_least_recently_used_idle_slot_makes_room_and_busy_ones_never_do() {
        let slots = Slots::new("things", "things", 2);
        let closed = Arc::new(AtomicUsize::new(0));
        let closer = |n: usize| {
            let closed = closed.clone();
            move || {
                closed.store(n, Ordering::SeqCst);
            }
        };
        let first = slots.acquire(closer(1)).unwrap();
        let second = slots.acquire(closer(2)).unwrap();
        // The first was used last, so the second is the least recently used.
        drop(first.in_use());
        let third = slots.acquire(closer(3)).unwrap();
        assert_eq!(closed.load(Ordering::SeqCst), 2);
        assert!(second.was_reclaimed() && !first.was_reclaimed());
        assert_eq!(slots.held(), 2);
        // With every slot busy, a new one is refused with the key that sets the cap.
        let (_a, _b) = (first.in_use(), third.in_use());
        let refused = slots.acquire(closer(4)).unwrap_err();
        assert!(refused.to_string().contains("[limits] things"), "{refused}");
        assert_eq!(closed.load(Ordering::SeqCst), 2);
        // A reclaimed slot dropped by its owner frees nothing twice; dropping frees.
        drop(second);
        assert_eq!(slots.held(), 2);
        drop(_a);
        drop(first);
        assert_eq!(slots.held(), 1);
        assert!(slots.acquire(closer(5)).is_ok());
    }
}
