//! `Registry`: maps session keys to live session actors, starts them on demand and evicts idle
//! ones per `[sessions]` in okcvm.toml.
//!
//! Sessions are spread over a fixed set of arbiters (one thread each) so turns use every core.
//! A session whose mailbox closed (it panicked or stopped) is replaced on the next request.
//! Busy sessions are never evicted; when every slot is busy a new session is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::eviction::{select_evictions, EntryView};
use super::messages::*;
use super::services::Services;
use super::session::SessionActor;

struct Entry {
    addr: Addr<SessionActor>,
    last_used: Instant,
    busy: bool,
}

pub struct Registry {
    services: Arc<Services>,
    sessions: HashMap<SessionKey, Entry>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    evictions: u64,
    started: u64,
}

impl Registry {
    pub fn new(services: Arc<Services>, arbiters: Vec<ArbiterHandle>) -> Self {
        Self {
            services,
            sessions: HashMap::new(),
            arbiters,
            next_arbiter: 0,
            evictions: 0,
            started: 0,
        }
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.services.config.sessions.idle_timeout_secs)
    }

    fn views(&self, now: Instant) -> Vec<EntryView<SessionKey>> {
        self.sessions
            .iter()
            .map(|(key, entry)| EntryView {
                key: key.clone(),
                idle_for: now.saturating_duration_since(entry.last_used),
                busy: entry.busy,
            })
            .collect()
    }

    /// Evicts the chosen idle sessions. The registry forgets them at once; a session whose
    /// turn slipped in refuses `Evict` and asks to be reinstated.
    fn evict(&mut self, keys: Vec<SessionKey>) -> usize {
        let mut count = 0;
        for key in keys {
            if let Some(entry) = self.sessions.remove(&key) {
                entry.addr.do_send(Evict { force: false });
                self.evictions += 1;
                count += 1;
                tracing::info!(client = %key.client_id, conversation = %key.conversation_id, "session evicted");
            }
        }
        count
    }

    fn start_session(&mut self, key: SessionKey, ctx: &mut Context<Self>) -> Addr<SessionActor> {
        let services = self.services.clone();
        let registry = ctx.address();
        let actor_key = key.clone();
        let addr = match self
            .arbiters
            .get(self.next_arbiter % self.arbiters.len().max(1))
        {
            Some(arbiter) => SessionActor::start_in_arbiter(arbiter, move |_| {
                SessionActor::new(actor_key, services, registry)
            }),
            None => SessionActor::new(actor_key, services, registry).start(),
        };
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        self.started += 1;
        self.sessions.insert(
            key,
            Entry {
                addr: addr.clone(),
                last_used: Instant::now(),
                busy: false,
            },
        );
        addr
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = Duration::from_secs(self.services.config.sessions.sweep_interval_secs);
        ctx.run_interval(every, |registry, _ctx| {
            let keys = select_evictions(
                &registry.views(Instant::now()),
                registry.idle_timeout(),
                registry.services.config.sessions.max_sessions,
                0,
            );
            registry.evict(keys);
        });
    }
}

impl Handler<GetSession> for Registry {
    type Result = Result<Addr<SessionActor>, SessionError>;

    fn handle(&mut self, msg: GetSession, ctx: &mut Self::Context) -> Self::Result {
        if let Some(entry) = self.sessions.get_mut(&msg.key) {
            if entry.addr.connected() {
                entry.last_used = Instant::now();
                return Ok(entry.addr.clone());
            }
            tracing::warn!(client = %msg.key.client_id, conversation = %msg.key.conversation_id, "session had stopped; restarting it");
            self.sessions.remove(&msg.key);
        }
        let max = self.services.config.sessions.max_sessions;
        if self.sessions.len() >= max {
            let keys = select_evictions(&self.views(Instant::now()), self.idle_timeout(), max, 1);
            self.evict(keys);
            if self.sessions.len() >= max {
                return Err(SessionError::AtCapacity(max));
            }
        }
        Ok(self.start_session(msg.key, ctx))
    }
}

impl Handler<RemoveSession> for Registry {
    type Result = ResponseFuture<()>;

    /// Replies once the session has stopped (after persisting a running turn).
    fn handle(&mut self, msg: RemoveSession, _ctx: &mut Self::Context) -> Self::Result {
        let entry = self.sessions.remove(&msg.key);
        Box::pin(async move {
            if let Some(entry) = entry {
                let _ = entry.addr.send(Evict { force: true }).await;
            }
        })
    }
}

impl Handler<Reinstate> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Reinstate, _ctx: &mut Self::Context) {
        if self.sessions.contains_key(&msg.key) {
            // A new actor took the key meanwhile; the old one finishes its turn and is
            // forgotten (its turn is persisted, the new one reads the store).
            return;
        }
        self.evictions = self.evictions.saturating_sub(1);
        self.sessions.insert(
            msg.key,
            Entry {
                addr: msg.addr,
                last_used: Instant::now(),
                busy: true,
            },
        );
    }
}

impl Handler<SessionActivity> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SessionActivity, _ctx: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.key) {
            entry.busy = msg.busy;
            entry.last_used = Instant::now();
        }
    }
}

impl Handler<GetStats> for Registry {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let mut sessions: Vec<SessionSummary> = self
            .sessions
            .iter()
            .map(|(key, entry)| SessionSummary {
                client_id: key.client_id.clone(),
                conversation_id: key.conversation_id.clone(),
                state: if entry.busy { "busy" } else { "idle" },
                idle_seconds: now.saturating_duration_since(entry.last_used).as_secs(),
            })
            .collect();
        sessions.sort_by(|a, b| {
            (&a.client_id, &a.conversation_id).cmp(&(&b.client_id, &b.conversation_id))
        });
        MessageResult(RegistryStats {
            sessions,
            evictions: self.evictions,
            started: self.started,
        })
    }
}
