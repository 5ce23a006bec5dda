//! A turn that panicked: its clients get `error` + `stop`, the store records it as
//! interrupted, and the session stops (its parts went with the panic); the registry forgets
//! the dead actor and the next request starts the session again from the store.

use actix::prelude::*;

use super::SessionActor;
use crate::protocol::ChatEvent;
use crate::store::TurnState;

impl SessionActor {
    /// Ends a turn that panicked: `error` + `stop` for its clients and in the store, then the
    /// session stops.
    pub(super) fn turn_panicked(
        &mut self,
        panic: &(dyn std::any::Any + Send),
        ctx: &mut Context<Self>,
    ) {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        if let Some(running) = self.running.take() {
            tracing::error!(parent: &running.span, %reason, "the turn panicked; the session stops");
        }
        let mut log = self.log.0.borrow_mut();
        log.publish(ChatEvent::Error {
            message: format!(
                "internal error: the turn failed ({reason}); the conversation goes on from its last stored turn"
            ),
            reason: crate::protocol::TurnFailure::Internal,
        });
        log.publish(ChatEvent::Stop);
        log.running = false;
        log.subscribers.clear();
        let events = log.take_unstored();
        let (key, next_seq) = (self.key.clone(), log.next_seq);
        self.services
            .flusher
            .write_soon("ending a turn that panicked", move |store| {
                store.append_turn(&key, TurnState::Interrupted, next_seq, &events)
            });
        ctx.stop();
    }
}
