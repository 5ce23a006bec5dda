//! `Registry`: maps session keys to live session actors, starts them on demand and evicts idle
//! ones per `[sessions]` in okcvm.toml.
//!
//! Sessions are spread over a fixed set of arbiters (one thread each) so turns use every core.
//! A session whose mailbox closed (it panicked or stopped) is replaced on the next request.
//! Busy sessions are never evicted; when every slot is busy a new session is refused.
//!
//! An idle eviction is a handshake: the entry stays registered (marked `evicting`) until the
//! session answers. It stops, and the entry goes; or a turn slipped in first, it refuses, and
//! the entry stays. Requests meanwhile get the same actor, so one key never has two live
//! actors; a request that reaches an actor which has just stopped asks again (`http::ask`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::eviction::{select_evictions, EntryView};
use super::messages::*;
use super::services::Services;
use super::session::SessionActor;
use crate::auth::quotas::QuotaExceeded;
use crate::auth::{Owner, SessionKey};

struct Entry {
    addr: Addr<SessionActor>,
    last_used: Instant,
    busy: bool,
    /// An idle eviction was asked for and the session has not answered yet.
    evicting: bool,
    /// See `SessionActivity::tools_process_group`.
    tools_process_group: Option<i32>,
}

pub struct Registry {
    services: Arc<Services>,
    sessions: HashMap<SessionKey, Entry>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    evictions: u64,
    started: u64,
    failed: u64,
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
            failed: 0,
        }
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.services.config.sessions.idle_timeout_secs)
    }

    /// The sessions that count towards `max_sessions` and may be chosen for eviction.
    fn views(&self, now: Instant) -> Vec<EntryView<SessionKey>> {
        self.sessions
            .iter()
            .filter(|(_, entry)| !entry.evicting)
            .map(|(key, entry)| EntryView {
                key: key.clone(),
                idle_for: now.saturating_duration_since(entry.last_used),
                busy: entry.busy,
            })
            .collect()
    }

    /// Asks the chosen idle sessions to stop; each is forgotten once it has.
    fn evict(&mut self, keys: Vec<SessionKey>, ctx: &mut Context<Self>) {
        for key in keys {
            let Some(entry) = self.sessions.get_mut(&key) else {
                continue;
            };
            if entry.evicting {
                continue;
            }
            entry.evicting = true;
            let addr = entry.addr.clone();
            let asked = addr.send(Evict { force: false });
            ctx.spawn(asked.into_actor(self).map(move |answer, registry, _ctx| {
                registry.eviction_answered(key, addr, answer.unwrap_or(Ok(())));
            }));
        }
    }

    /// `answer` is the session's reply to `Evict` (a closed mailbox counts as stopped).
    fn eviction_answered(
        &mut self,
        key: SessionKey,
        addr: Addr<SessionActor>,
        answer: Result<(), SessionError>,
    ) {
        let Some(entry) = self.sessions.get_mut(&key) else {
            return;
        };
        if entry.addr != addr {
            return; // replaced meanwhile (the session had stopped on its own)
        }
        if answer.is_err() {
            // A turn started first: the session stays (its own activity reports say busy).
            entry.evicting = false;
            entry.last_used = Instant::now();
            return;
        }
        self.sessions.remove(&key);
        self.evictions += 1;
        tracing::info!(owner = %key.owner, conversation = %key.conversation_id, "session evicted");
    }

    /// Forgets sessions whose actor is gone (it panicked, or stopped without being asked), so
    /// they neither hold a slot nor show in the stats.
    fn forget_dead(&mut self) {
        let before = self.sessions.len();
        self.sessions.retain(|key, entry| {
            // An entry being evicted stops on purpose; its answer removes and counts it.
            let alive = entry.evicting || entry.addr.connected();
            if !alive {
                tracing::warn!(owner = %key.owner, conversation = %key.conversation_id, "session actor is gone; its slot is free");
            }
            alive
        });
        self.failed += (before - self.sessions.len()) as u64;
    }

    /// Sessions that count towards `max_sessions`: those not on their way out.
    fn active_sessions(&self) -> usize {
        self.sessions.values().filter(|e| !e.evicting).count()
    }

    /// Under the owner's `live_sessions` quota, evicting the owner's least recently used idle
    /// session when at it; refused when all of them are busy.
    fn make_room_for(
        &mut self,
        owner: &Owner,
        ctx: &mut Context<Self>,
    ) -> Result<(), SessionError> {
        let quota = self.services.config.quotas.live_sessions;
        if quota == 0 {
            return Ok(());
        }
        let owners = |registry: &Self| -> Vec<EntryView<SessionKey>> {
            registry
                .views(Instant::now())
                .into_iter()
                .filter(|view| &view.key.owner == owner)
                .collect()
        };
        let mine = owners(self);
        if mine.len() < quota {
            return Ok(());
        }
        let keys = select_evictions(&mine, self.idle_timeout(), quota, 1);
        self.evict(keys, ctx);
        if owners(self).len() >= quota {
            return Err(QuotaExceeded {
                server_wide: false,
                message: format!(
                    "quota live_sessions: all {quota} of your sessions are busy; wait for a \
                     turn to end or stop one"
                ),
                retry_after_secs: 5,
            }
            .into());
        }
        Ok(())
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
                evicting: false,
                tools_process_group: None,
            },
        );
        addr
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = Duration::from_secs(self.services.config.sessions.sweep_interval_secs);
        ctx.run_interval(every, |registry, ctx| {
            registry.forget_dead();
            let keys = select_evictions(
                &registry.views(Instant::now()),
                registry.idle_timeout(),
                registry.services.config.sessions.max_sessions,
                0,
            );
            registry.evict(keys, ctx);
        });
    }
}

impl Handler<GetSession> for Registry {
    type Result = Result<Addr<SessionActor>, SessionError>;

    fn handle(&mut self, msg: GetSession, ctx: &mut Self::Context) -> Self::Result {
        match self.sessions.get_mut(&msg.key) {
            Some(entry) if entry.addr.connected() => {
                entry.last_used = Instant::now();
                return Ok(entry.addr.clone());
            }
            Some(entry) => {
                // Stopped by an eviction whose answer is still on its way, or by a panic.
                if entry.evicting {
                    self.evictions += 1;
                } else {
                    tracing::warn!(owner = %msg.key.owner, conversation = %msg.key.conversation_id, "session actor is gone; starting it again");
                    self.failed += 1;
                }
                self.sessions.remove(&msg.key);
            }
            None => {}
        }
        self.make_room_for(&msg.key.owner, ctx)?;
        let max = self.services.config.sessions.max_sessions;
        if self.active_sessions() >= max {
            // Only at the limit is every entry looked at: dead actors free their slots first.
            self.forget_dead();
        }
        if self.active_sessions() >= max {
            let keys = select_evictions(&self.views(Instant::now()), self.idle_timeout(), max, 1);
            self.evict(keys, ctx);
            if self.active_sessions() >= max {
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

impl Handler<SessionActivity> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SessionActivity, _ctx: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.key) {
            entry.busy = msg.busy;
            entry.last_used = Instant::now();
            if !msg.busy {
                entry.tools_process_group = msg.tools_process_group;
            }
        }
    }
}

impl Handler<GetStats> for Registry {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        self.forget_dead();
        let now = Instant::now();
        let mut sessions: Vec<SessionSummary> = self
            .sessions
            .iter()
            .map(|(key, entry)| SessionSummary {
                owner: key.owner.clone(),
                conversation_id: key.conversation_id.clone(),
                state: match (entry.evicting, entry.busy) {
                    (true, _) => "evicting",
                    (false, true) => "busy",
                    (false, false) => "idle",
                },
                idle_seconds: now.saturating_duration_since(entry.last_used).as_secs(),
                tools_memory_kib: 0,
                tools_process_group: entry.tools_process_group,
            })
            .collect();
        sessions
            .sort_by(|a, b| (&a.owner, &a.conversation_id).cmp(&(&b.owner, &b.conversation_id)));
        MessageResult(RegistryStats {
            sessions,
            evictions: self.evictions,
            started: self.started,
            failed: self.failed,
        })
    }
}
