//! The event log of a session: numbers each event of the current (or last) turn, keeps it
//! for clients that re-attach, fans it out to live subscribers, and checkpoints a running
//! turn to the store. Shared only between a session actor and its own turn, on one thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::messages::SessionKey;
use super::services::Services;
use crate::agent::EventSink;
use crate::protocol::{ChatEvent, SeqEvent};
use crate::store::{TurnRecord, TurnState};

/// The numbered events of the current (or last) turn and who is listening. Shared between
/// the actor and its running turn on the actor's own thread (hence `Rc<RefCell>`, never
/// across threads).
pub struct EventLog {
    pub key: SessionKey,
    pub services: Arc<Services>,
    pub next_seq: u64,
    pub events: Vec<SeqEvent>,
    pub subscribers: Vec<UnboundedSender<SeqEvent>>,
    pub running: bool,
}

#[derive(Clone)]
pub struct SharedLog(pub Rc<RefCell<EventLog>>);

impl EventSink for SharedLog {
    fn emit(&self, event: ChatEvent) {
        let checkpoint = matches!(event, ChatEvent::ToolCompleted { .. });
        let mut log = self.0.borrow_mut();
        log.publish(event);
        if checkpoint {
            log.checkpoint();
        }
    }
}

impl EventLog {
    pub fn number(&mut self, event: ChatEvent) -> SeqEvent {
        let seq = self.next_seq;
        self.next_seq += 1;
        SeqEvent { seq, event }
    }

    pub fn publish(&mut self, event: ChatEvent) {
        let event = self.number(event);
        self.deliver(event);
    }

    pub fn deliver(&mut self, event: SeqEvent) {
        self.subscribers
            .retain(|subscriber| subscriber.send(event.clone()).is_ok());
        self.events.push(event);
    }

    pub fn record(&self, state: TurnState) -> TurnRecord {
        TurnRecord {
            state,
            events: self.events.clone(),
            next_seq: self.next_seq,
        }
    }

    /// Has the running turn recorded and flushed (on the flusher's thread, not this one),
    /// so a crash leaves its partial events behind.
    pub fn checkpoint(&self) {
        let record = self.record(TurnState::Running);
        let key = self.key.clone();
        self.services
            .flusher
            .write_soon("checkpointing a running turn", move |store| {
                store.checkpoint_turn(&key.client_id, &key.conversation_id, &record)
            });
    }

    /// A receiver that gets every kept event after `after`, then live ones while running.
    pub fn subscribe(&mut self, after: Option<u64>) -> UnboundedReceiver<SeqEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        for event in &self.events {
            if after.is_none_or(|after| event.seq > after) {
                let _ = tx.send(event.clone());
            }
        }
        if self.running {
            self.subscribers.push(tx);
        }
        rx
    }
}
