//! The event log of a session: numbers each event of the current (or last) turn, keeps it
//! for clients that re-attach, fans it out to live subscribers, and checkpoints a running
//! turn to the store. Shared only between a session actor and its own turn, on one thread.
//!
//! Numbering: a `token` event's number advances by the byte length of its delta, every other
//! event's by one. Consecutive deltas are kept as one `token` event (numbered as its last
//! delta), so a long answer costs one kept event, not one per delta, and a client that saw
//! part of it and re-attaches gets exactly the rest: the bytes it has are the numbers it saw.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::messages::SessionError;
use super::services::Services;
use crate::agent::EventSink;
use crate::auth::SessionKey;
use crate::protocol::{ChatEvent, SeqEvent};
use crate::store::TurnState;

/// Events a live subscriber may have waiting; one that falls further behind is dropped (its
/// stream ends with `error` + `stop`, and it can re-attach from the last number it saw).
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// What a subscriber is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every event (a stream).
    Everything,
    /// Only `final`, `error` and `stop` (a client waiting for the JSON answer).
    Ending,
}

impl Delivery {
    fn wants(self, event: &ChatEvent) -> bool {
        self == Delivery::Everything
            || matches!(
                event,
                ChatEvent::Final { .. } | ChatEvent::Error { .. } | ChatEvent::Stop
            )
    }
}

pub struct Subscriber {
    sender: mpsc::Sender<SeqEvent>,
    delivery: Delivery,
}

/// A client's view of a turn: the kept events it missed, then live ones. Ends after `stop`,
/// or early when the session dropped it (too slow) or ended.
pub struct Subscription {
    backlog: VecDeque<SeqEvent>,
    live: Option<mpsc::Receiver<SeqEvent>>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<SeqEvent> {
        if let Some(event) = self.backlog.pop_front() {
            return Some(event);
        }
        self.live.as_mut()?.recv().await
    }
}

/// The numbered events of the current (or last) turn and who is listening. Shared between
/// the actor and its running turn on the actor's own thread (hence `Rc<RefCell>`, never
/// across threads).
pub struct EventLog {
    pub key: SessionKey,
    pub services: Arc<Services>,
    pub next_seq: u64,
    pub events: Vec<SeqEvent>,
    /// How many of `events` have been handed to the store.
    pub stored: usize,
    pub subscribers: Vec<Subscriber>,
    pub running: bool,
}

#[derive(Clone)]
pub struct SharedLog(pub Rc<RefCell<EventLog>>);

impl EventSink for SharedLog {
    fn emit(&self, event: ChatEvent) {
        let checkpoint = matches!(
            event,
            ChatEvent::ToolCompleted { .. }
                | ChatEvent::ApprovalRequired { .. }
                | ChatEvent::ApprovalDecided { .. }
        );
        let mut log = self.0.borrow_mut();
        log.publish(event);
        if checkpoint {
            log.checkpoint();
        }
    }
}

impl EventLog {
    pub fn number(&mut self, event: ChatEvent) -> SeqEvent {
        let width = match &event {
            ChatEvent::Token { delta } => delta.len().max(1) as u64,
            _ => 1,
        };
        let seq = self.next_seq + width - 1;
        self.next_seq = seq + 1;
        SeqEvent { seq, event }
    }

    pub fn publish(&mut self, event: ChatEvent) {
        if matches!(&event, ChatEvent::Token { delta } if delta.is_empty()) {
            return;
        }
        let event = self.number(event);
        self.deliver(event);
    }

    pub fn deliver(&mut self, event: SeqEvent) {
        self.subscribers.retain(|subscriber| {
            if !subscriber.delivery.wants(&event.event) {
                return !subscriber.sender.is_closed();
            }
            match subscriber.sender.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("a client fell too far behind the turn's events; it is dropped");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        let unstored = self.events.len() > self.stored;
        if let (ChatEvent::Token { delta }, Some(last)) = (&event.event, self.events.last_mut()) {
            if let (ChatEvent::Token { delta: kept }, true) = (&mut last.event, unstored) {
                kept.push_str(delta);
                last.seq = event.seq;
                return;
            }
        }
        self.events.push(event);
    }

    /// The turn's start in the store: the previous turn's events are dropped there.
    pub fn begin(&mut self) {
        self.events.clear();
        self.stored = 0;
        let (key, next_seq) = (self.key.clone(), self.next_seq);
        self.services
            .flusher
            .write_soon("starting a turn", move |store| {
                store.begin_turn(&key, next_seq)
            });
    }

    /// The kept events not yet handed to the store; they count as stored from now on.
    pub fn take_unstored(&mut self) -> Vec<SeqEvent> {
        let unstored = self.events[self.stored..].to_vec();
        self.stored = self.events.len();
        unstored
    }

    /// Has the running turn's new events appended and flushed (on the flusher's thread, not
    /// this one), so a crash leaves its partial events behind.
    pub fn checkpoint(&mut self) {
        let events = self.take_unstored();
        let (key, next_seq) = (self.key.clone(), self.next_seq);
        self.services
            .flusher
            .write_soon("checkpointing a running turn", move |store| {
                store.append_turn(&key, TurnState::Running, next_seq, &events)
            });
    }

    /// The kept events after `after`, then live ones while the turn runs; refused when the
    /// session already has `limit` live subscribers.
    pub fn subscribe(
        &mut self,
        after: Option<u64>,
        delivery: Delivery,
        limit: usize,
    ) -> Result<Subscription, SessionError> {
        self.subscribers.retain(|s| !s.sender.is_closed());
        if self.running && self.subscribers.len() >= limit {
            return Err(SessionError::TooManyAttachments(limit));
        }
        Ok(self.subscribe_unchecked(after, delivery))
    }

    /// [`Self::subscribe`] without the limit (the client starting a turn is always let in).
    pub fn subscribe_unchecked(&mut self, after: Option<u64>, delivery: Delivery) -> Subscription {
        let backlog = self
            .events
            .iter()
            .filter_map(|event| missed_part(event, after))
            .filter(|event| delivery.wants(&event.event))
            .collect();
        let live = self.running.then(|| {
            let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
            self.subscribers.push(Subscriber { sender, delivery });
            receiver
        });
        Subscription { backlog, live }
    }
}

/// What a client that saw every number up to `after` has not seen of `event`: all of it, none
/// of it, or the rest of a kept run of token deltas.
pub fn missed_part(event: &SeqEvent, after: Option<u64>) -> Option<SeqEvent> {
    let Some(after) = after else {
        return Some(event.clone());
    };
    if event.seq <= after {
        return None;
    }
    let ChatEvent::Token { delta } = &event.event else {
        return Some(event.clone());
    };
    let first = event.seq + 1 - delta.len().max(1) as u64;
    if after < first {
        return Some(event.clone());
    }
    let mut seen = (after + 1 - first) as usize;
    while !delta.is_char_boundary(seen) {
        seen += 1;
    }
    Some(SeqEvent {
        seq: event.seq,
        event: ChatEvent::Token {
            delta: delta[seen..].to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(seq: u64, delta: &str) -> SeqEvent {
        SeqEvent {
            seq,
            event: ChatEvent::Token {
                delta: delta.into(),
            },
        }
    }

    #[test]
    fn a_client_that_saw_part_of_a_kept_run_gets_exactly_the_rest() {
        // Deltas "ab" (seqs 1-2), "cé" (3-5) and "f" (6), kept as one event numbered 6.
        let kept = token(6, "abcéf");
        assert_eq!(missed_part(&kept, None), Some(kept.clone()));
        assert_eq!(missed_part(&kept, Some(0)), Some(kept.clone()));
        assert_eq!(missed_part(&kept, Some(2)), Some(token(6, "céf")));
        assert_eq!(missed_part(&kept, Some(5)), Some(token(6, "f")));
        assert_eq!(missed_part(&kept, Some(6)), None);
        // A number that is not a delta boundary never splits a character.
        assert_eq!(missed_part(&kept, Some(3)), Some(token(6, "éf")));
        assert_eq!(missed_part(&kept, Some(4)), Some(token(6, "f")));
        let stop = SeqEvent {
            seq: 7,
            event: ChatEvent::Stop,
        };
        assert_eq!(missed_part(&stop, Some(6)), Some(stop.clone()));
        assert_eq!(missed_part(&stop, Some(7)), None);
    }
}
