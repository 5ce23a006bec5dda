//! `SessionActor`: owns one session's history, workspace and tool state.
//!
//! State machine: idle (it holds its parts) or running (a turn holds them, the actor keeps the
//! cancel token). Parts are lent to the turn future by value and come back when it ends, also
//! after a cancel. Events are numbered, kept and fanned out by the session's [`EventLog`];
//! the running turn is checkpointed to the store after each tool call, and at the end of the
//! turn the workspace is snapshotted and history, conversation and events are written and
//! flushed before `final` goes out. A restarted or evicted session is rebuilt from the store.
//! Dropping the actor drops the tool state, which kills its processes.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::approvals::{Approvals, SessionGate};
use super::events::{EventLog, SharedLog};
use super::messages::*;
use super::registry::Registry;
use super::services::Services;
pub use super::turn_end::{remove_workspace, upload_entries};
use crate::agent::{run_turn, Conversation, TurnSettings};
use crate::auth::SessionKey;
use crate::llm::HistoryEntry;
use crate::llm::Message;
use crate::protocol::WorkspaceState;
use crate::store::{HistoryBranch, UploadRecord};
use crate::tools::{ToolContext, ToolState};
use crate::workspace::git::GitError;
use crate::workspace::{MOUNT, UPLOAD_DIR};

mod context;
mod ending;
mod history;
mod panicked;
mod permissions;
use history::render_system_prompt;

/// What a turn borrows.
struct Parts {
    history: Conversation,
    tools: ToolContext,
    /// History entries already in the store; the rest is written at the end of the turn.
    persisted: usize,
}

struct RunningTurn {
    cancel: CancellationToken,
    started: Instant,
    /// Every log line of the turn, wherever it runs, is written inside this span.
    span: tracing::Span,
    /// See `StartTurn::named_conversation`.
    named_conversation: bool,
    /// The turn's place under the owner's quotas and the server's turn limit.
    _permit: crate::auth::quotas::TurnPermit,
}

pub struct SessionActor {
    key: SessionKey,
    services: Arc<Services>,
    registry: Addr<Registry>,
    parts: Option<Parts>,
    running: Option<RunningTurn>,
    log: SharedLog,
    /// The last `workspace_state` computed; turns that ran no tool reuse it instead of
    /// scanning the workspace again. Cleared when the workspace changes outside a turn.
    workspace_state: Option<WorkspaceState>,
    /// The session's uploads as the store last said (loaded at start, refreshed by every
    /// `GetInfo`, which the upload route sends after storing), for the system prompt.
    uploads: Vec<UploadRecord>,
    /// Forced evictions waiting for the running turn to be persisted.
    stop_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// The conversation's permission choices and the approvals waiting for an answer.
    approvals: Approvals,
    /// How full the context was when last asked (reported while a turn holds the history).
    context: crate::protocol::ContextReport,
    /// Stops the compaction asked for that runs now, if one does.
    compacting: Option<CancellationToken>,
}

impl SessionActor {
    pub fn new(key: SessionKey, services: Arc<Services>, registry: Addr<Registry>) -> Self {
        let tools = services.tool_context(&key);
        let log = SharedLog(Rc::new(RefCell::new(EventLog {
            key: key.clone(),
            services: services.clone(),
            next_seq: 1,
            events: Vec::new(),
            stored: 0,
            subscribers: Vec::new(),
            running: false,
        })));
        Self {
            key,
            services,
            registry,
            parts: Some(Parts {
                history: Conversation::new(),
                tools,
                persisted: 0,
            }),
            running: None,
            log,
            workspace_state: None,
            uploads: Vec::new(),
            stop_waiters: Vec::new(),
            approvals: Approvals::default(),
            context: crate::protocol::ContextReport::default(),
            compacting: None,
        }
    }

    /// What the store has (every finished turn); blocking, used only to recover from a store
    /// task that failed.
    fn stored_history(&self) -> Conversation {
        match self.services.store.load_history(&self.key) {
            Ok(entries) => Conversation::from_entries(entries),
            Err(error) => {
                tracing::error!(%error, "cannot read the stored history");
                Conversation::new()
            }
        }
    }

    /// The system prompt with the session's uploads listed.
    fn system_prompt(&self) -> String {
        render_system_prompt(&self.services, &self.uploads)
    }

    /// Keeps history that an edit or a regeneration replaced, so it can be switched back to
    /// (written on the flusher's thread, not this one).
    fn keep_version(&self, branch: HistoryBranch) {
        let key = self.key.clone();
        self.services.flusher.write_soon(
            "keeping the replaced version of the history",
            move |store| store.save_branch(&key, &branch),
        );
    }

    /// Once the parts are back: stops the session if a forced eviction waits for it.
    pub(super) fn stop_if_asked(&mut self, ctx: &mut Context<Self>) {
        if self.stop_waiters.is_empty() {
            return;
        }
        for waiter in self.stop_waiters.drain(..) {
            let _ = waiter.send(());
        }
        ctx.stop();
    }
}

/// The process group of the session's Python interpreter, if it runs.
fn tools_process_group(parts: &Parts) -> Option<i32> {
    parts
        .tools
        .state
        .python
        .as_ref()
        .and_then(|kernel| kernel.process_group())
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    /// Rebuilds the session from the store before any message is handled.
    fn started(&mut self, ctx: &mut Self::Context) {
        let store = self.services.store.clone();
        let key = self.key.clone();
        // The owner's standing approvals are read by the owner's first session only.
        let standing_known = self.services.standing.get(&key.owner).is_some();
        let model = self.services.llm.endpoint().model.clone();
        let load = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            let mut history = store.load_history(&key)?;
            // Entries of older stores have no token counts: counted here, off the actor.
            if history.iter().any(|e| e.tokens.is_none()) {
                crate::agent::context::TokenCounter::for_model(&model)
                    .count_all_missing(&mut history);
            }
            let turn = store.load_turn(&key)?;
            let uploads = store.list_uploads(&key)?;
            let permissions = store.conversation_permissions(&key)?;
            let standing = if standing_known {
                None
            } else {
                Some(store.standing_approvals(&key.owner)?)
            };
            Ok::<_, crate::store::StoreError>((history, turn, uploads, permissions, standing))
        });
        ctx.wait(
            load.into_actor(self)
                .map(|result, actor, _ctx| match result {
                    Ok(Ok((history, turn, uploads, permissions, standing))) => {
                        actor.uploads = uploads;
                        actor.approvals.set_conversation(permissions);
                        if let Some(standing) = standing {
                            actor.services.standing.loaded(&actor.key.owner, standing);
                        }
                        if let Some(parts) = &mut actor.parts {
                            parts.persisted = history.len();
                            parts.history = Conversation::from_entries(history);
                        }
                        if let Some(turn) = turn {
                            let mut log = actor.log.0.borrow_mut();
                            log.next_seq = turn.next_seq;
                            log.events = turn.events;
                            log.stored = log.events.len();
                        }
                    }
                    Ok(Err(error)) => {
                        tracing::error!(%error, "cannot load the session from the store")
                    }
                    Err(error) => tracing::error!(%error, "cannot load the session from the store"),
                }),
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(running) = &self.running {
            running.cancel.cancel();
        }
    }
}

impl Handler<StartTurn> for SessionActor {
    type Result = Result<TurnHandle, SessionError>;

    fn handle(&mut self, msg: StartTurn, ctx: &mut Self::Context) -> Self::Result {
        if self.parts.is_none() {
            return Err(SessionError::Busy);
        }
        if let (Some(id), Some(parts)) = (&msg.replace_from, &self.parts) {
            // Checked before the turn takes its place under the quotas.
            parts.history.replaceable(id)?;
        }
        let permit = self.services.quotas.start_turn(&self.key.owner)?;
        let system_prompt = self.system_prompt();
        let Some(mut parts) = self.parts.take() else {
            return Err(SessionError::Busy);
        };
        let replaced = if let Some(id) = &msg.replace_from {
            // Checked above; the history has not changed since (the actor holds it).
            parts.history.drop_from(id).unwrap_or_default()
        } else if msg.replace_last {
            parts.history.drop_last_exchange()
        } else {
            // A retry of a turn that failed before any reply (an SDK retrying, a person
            // sending again) replaces the unanswered copy.
            parts.history.drop_unanswered(&msg.message);
            Vec::new()
        };
        if !replaced.is_empty() {
            self.keep_version(HistoryBranch {
                after: parts.history.entries().last().map(|e| e.id.clone()),
                entries: replaced,
            });
        }
        parts.persisted = parts.persisted.min(parts.history.len());
        let cancel = CancellationToken::new();
        parts.tools.cancel = cancel.clone();
        let events = {
            let mut log = self.log.0.borrow_mut();
            log.subscribers.clear();
            log.running = true;
            log.begin();
            log.subscribe_unchecked(None, msg.delivery)
        };
        let turn_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let span = tracing::info_span!(
            "turn",
            owner = %self.key.owner,
            conversation = %self.key.conversation_id,
            turn = %turn_id,
        );
        tracing::info!(parent: &span, "turn started");
        self.running = Some(RunningTurn {
            cancel,
            started: Instant::now(),
            span: span.clone(),
            named_conversation: msg.named_conversation,
            _permit: permit,
        });
        self.registry.do_send(SessionActivity {
            key: self.key.clone(),
            busy: true,
            tools_process_group: None,
        });
        let services = self.services.clone();
        let sink = self.log.clone();
        let gate = SessionGate {
            approvals: self.approvals.clone(),
            services: services.clone(),
            key: self.key.clone(),
            log: self.log.clone(),
            attended: msg.attended,
        };
        let turn = async move {
            let mut parts = parts;
            let settings = TurnSettings {
                max_steps: services.config.llm.max_steps,
                output_cap: services.config.tools.output_cap_bytes,
                context: services.context_settings().await,
            };
            let outcome = run_turn(
                &services.llm,
                &services.tools,
                &gate,
                &mut parts.history,
                &mut parts.tools,
                system_prompt,
                &msg.message,
                &settings,
                &sink,
            )
            .await;
            (parts, outcome)
        };
        // A panic anywhere in the turn ends it for the client and stops the session (its parts
        // went with the panic); the registry frees the slot and the next request starts it
        // again from the store.
        let turn = std::panic::AssertUnwindSafe(tracing::Instrument::instrument(turn, span))
            .catch_unwind();
        ctx.spawn(
            turn.into_actor(self)
                .map(|result, actor, ctx| match result {
                    Ok((parts, outcome)) => actor.finish_turn(parts, outcome, ctx),
                    Err(panic) => actor.turn_panicked(&*panic, ctx),
                }),
        );
        Ok(TurnHandle { events })
    }
}

impl Handler<Subscribe> for SessionActor {
    type Result = Result<Subscription, SessionError>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        let limit = self.services.config.limits.attachments_per_session;
        self.log
            .0
            .borrow_mut()
            .subscribe(msg.after, Delivery::Everything, limit)
    }
}

impl Handler<ChangeWorkspace> for SessionActor {
    type Result = ResponseActFuture<Self, Result<Result<(), GitError>, SessionError>>;

    fn handle(&mut self, msg: ChangeWorkspace, _ctx: &mut Self::Context) -> Self::Result {
        // Holding the parts keeps turns out until the operation is done.
        let Some(mut parts) = self.parts.take() else {
            return Box::pin(actix::fut::ready(Err(SessionError::Busy)));
        };
        self.workspace_state = None;
        let stop_processes = match msg.effect {
            WorkspaceEffect::Reads => None,
            WorkspaceEffect::Rewrites => {
                parts.tools.state.python = None; // its whole process group is killed
                parts
                    .tools
                    .state
                    .cgroup
                    .as_ref()
                    .map(|group| group.stopper())
            }
        };
        let work = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            if let Some(stop) = stop_processes {
                stop();
            }
            (msg.work)()
        });
        Box::pin(work.into_actor(self).map(move |result, actor, ctx| {
            actor.parts = Some(parts);
            actor.workspace_state = None;
            actor.stop_if_asked(ctx);
            result.map_err(|e| SessionError::Internal(format!("workspace operation failed: {e}")))
        }))
    }
}

impl Handler<CancelTurn> for SessionActor {
    type Result = Result<(), SessionError>;

    fn handle(&mut self, _msg: CancelTurn, _ctx: &mut Self::Context) -> Self::Result {
        match (&self.running, &self.compacting) {
            (Some(running), _) => {
                running.cancel.cancel();
                Ok(())
            }
            (None, Some(compacting)) => {
                compacting.cancel();
                Ok(())
            }
            (None, None) => Err(SessionError::NotRunning),
        }
    }
}

impl Handler<Evict> for SessionActor {
    type Result = ResponseActFuture<Self, Result<(), SessionError>>;

    /// An idle session stops at once. A forced eviction of a busy one cancels the turn and
    /// stops once the turn has been persisted, so nothing is written after the reply.
    fn handle(&mut self, msg: Evict, ctx: &mut Self::Context) -> Self::Result {
        // The parts are lent while a turn, a workspace operation or a history wipe runs.
        if self.parts.is_some() {
            ctx.stop();
            return Box::pin(actix::fut::ready(Ok(())));
        }
        if !msg.force {
            // Work started after the registry chose this session: it stays.
            return Box::pin(actix::fut::ready(Err(SessionError::Busy)));
        }
        if let Some(running) = &self.running {
            running.cancel.cancel();
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.stop_waiters.push(tx);
        Box::pin(async move { rx.await.map_err(|_| SessionError::Gone) }.into_actor(self))
    }
}
