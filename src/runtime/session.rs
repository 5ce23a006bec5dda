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

use super::events::{EventLog, SharedLog};
use super::messages::*;
use super::registry::Registry;
use super::services::Services;
use super::turn_end::{
    closing_event, first_user_message, last_user_message, not_stored, snapshot_after_turn,
    summary_of, vm_history, VM_HISTORY_LEN,
};
pub use super::turn_end::{remove_workspace, upload_entries};
use crate::agent::{run_turn, Conversation, TurnOutcome, TurnSettings};
use crate::auth::SessionKey;
use crate::llm::HistoryEntry;
use crate::llm::{LlmClient, Message};
use crate::protocol::{Artifact, ChatEvent, ChatResponse, ReplyMeta, SeqEvent, WorkspaceState};
use crate::store::{HistoryBranch, TurnState, UploadRecord};
use crate::tools::{ToolContext, ToolState};
use crate::workspace::git::GitError;
use crate::workspace::{MOUNT, UPLOAD_DIR};

mod history;
mod panicked;
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
}

/// What the end-of-turn persistence hands back to the actor.
struct Persisted {
    closing: Vec<SeqEvent>,
    history_len: usize,
    workspace_state: WorkspaceState,
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

    fn finish_turn(&mut self, mut parts: Parts, outcome: TurnOutcome, ctx: &mut Context<Self>) {
        let Some(running) = self.running.take() else {
            return;
        };
        let span = running.span.clone();
        let named_conversation = running.named_conversation;
        let _in_turn = span.enter();
        tracing::info!(end = ?outcome.end, tools = outcome.tool_calls.len(), ms = running.started.elapsed().as_millis() as u64, "turn finished");
        let services = self.services.clone();
        let key = self.key.clone();
        let persisted_from = parts.persisted;
        // Only what is saved and what `vm_history` shows leaves this thread.
        let total = parts.history.len();
        let tail_start = persisted_from.min(total.saturating_sub(VM_HISTORY_LEN));
        let tail = parts.history.entries()[tail_start..].to_vec();
        let first_message = first_user_message(&parts.history);
        let label = last_user_message(&parts.history);
        let root = parts.tools.workspace.root().to_path_buf();
        let (events, mut next_seq) = {
            let mut log = self.log.0.borrow_mut();
            (log.take_unstored(), log.next_seq)
        };
        let web_preview = parts.tools.state.web_preview.take();
        let ppt_slides = std::mem::take(&mut parts.tools.state.slides);
        let mut artifacts = std::mem::take(&mut parts.tools.state.artifacts);
        artifacts.extend(web_preview.iter().filter_map(|preview| {
            Some(Artifact {
                kind: "website".into(),
                name: preview.title.clone().unwrap_or_else(|| "Website".into()),
                url: preview.url.clone()?,
            })
        }));
        let latency = running.started.elapsed();
        let tools = &self.services.tools;
        self.services
            .metrics
            .record_turn(&outcome, latency, |name| tools.spec().tool(name).is_some());
        let model = services.llm.model_name();
        // Only tools change the workspace; a turn without them keeps the last known state.
        let known_state = if outcome.tool_calls.is_empty() {
            self.workspace_state.clone()
        } else {
            None
        };
        // Without git work left, the store writes go to the flusher's thread right before the
        // flush they need (one thread hop for both); a turn that ran tools first snapshots the
        // workspace on the blocking pool.
        let store_only = known_state.is_some();
        let persist_span = span.clone();
        let persist = move || {
            let _in_turn = persist_span.enter();
            let workspace_state = match known_state {
                Some(state) => state,
                None => snapshot_after_turn(&services, &root, &label),
            };
            let reported_state = workspace_state.clone();
            let uploads = upload_entries(&services.store.list_uploads(&key).unwrap_or_default());
            let closing_event = closing_event(&outcome, || ChatResponse {
                reply: outcome.reply.clone(),
                meta: ReplyMeta {
                    model,
                    timestamp: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    tokens_in: outcome.usage.prompt_tokens,
                    tokens_out: outcome.usage.completion_tokens,
                    latency: (latency.as_secs_f64() * 1000.0).round() / 1000.0,
                    summary: summary_of(&outcome.reply),
                },
                web_preview,
                ppt_slides,
                artifacts,
                tool_calls: outcome.tool_calls.clone(),
                vm_history: vm_history(&tail),
                workspace_state: reported_state,
                uploads,
                upload_limit: services.config.uploads.max_files,
                max_upload_size_mb: services.config.uploads.max_file_size_mb,
                max_upload_size_bytes: services.config.uploads.max_file_size_mb * 1024 * 1024,
            });
            let store = &services.store;
            let saved = store
                .save_history(&key, persisted_from, &tail[persisted_from - tail_start..])
                .and_then(|()| {
                    if named_conversation {
                        store.touch_conversation(&key, &first_message)
                    } else {
                        Ok(())
                    }
                });
            // A turn that was not stored is never reported as done.
            let closing_event = match &saved {
                Ok(()) => closing_event,
                Err(error) => {
                    tracing::error!(%error, "cannot persist the turn");
                    not_stored(error)
                }
            };
            let mut closing = Vec::new();
            for event in [closing_event, ChatEvent::Stop] {
                closing.push(SeqEvent {
                    seq: next_seq,
                    event,
                });
                next_seq += 1;
            }
            let mut all_events = events;
            all_events.extend(closing.iter().cloned());
            if let Err(error) = store.append_turn(&key, TurnState::Finished, next_seq, &all_events)
            {
                tracing::error!(%error, "cannot keep the turn's events");
            }
            Persisted {
                closing,
                workspace_state,
                history_len: if saved.is_ok() { total } else { persisted_from },
            }
        };
        let flusher = self.services.flusher.clone();
        let work = async move {
            let mut persisted = if store_only {
                let (tx, rx) = tokio::sync::oneshot::channel();
                flusher.write_soon("storing the end of a turn", move |_| {
                    let _ = tx.send(persist());
                    Ok(())
                });
                rx.await
                    .map_err(|_| "the store flusher stopped".to_string())
            } else {
                crate::blocking::run(crate::blocking::STORE_WORK, persist)
                    .await
                    .map_err(|e| e.to_string())
            };
            // Durable before anyone sees `final`; a flush that failed turns it into an error.
            if let Err(error) = flusher.flush().await {
                tracing::error!(%error, "cannot flush the store");
                if let Ok(persisted) = &mut persisted {
                    if let Some(first) = persisted.closing.first_mut() {
                        first.event = not_stored(&error);
                    }
                }
            }
            persisted
        };
        let mut parts = Some(parts);
        let work = tracing::Instrument::instrument(work, span.clone());
        let span_for_end = span.clone();
        ctx.spawn(work.into_actor(self).map(move |result, actor, ctx| {
            let _in_turn = span_for_end.enter();
            let Some(mut parts) = parts.take() else {
                return;
            };
            // The registry hears the session is idle before any client hears the turn ended,
            // so a request that follows the reply never sees it busy.
            actor.registry.do_send(SessionActivity {
                key: actor.key.clone(),
                busy: false,
                tools_process_group: tools_process_group(&parts),
            });
            match result {
                Ok(persisted) => {
                    parts.persisted = persisted.history_len;
                    actor.workspace_state = Some(persisted.workspace_state);
                    let mut log = actor.log.0.borrow_mut();
                    log.next_seq = persisted.closing.last().map_or(log.next_seq, |e| e.seq + 1);
                    for event in persisted.closing {
                        log.deliver(event);
                    }
                    log.stored = log.events.len();
                    log.running = false;
                    log.subscribers.clear();
                }
                Err(error) => {
                    tracing::error!(%error, "end-of-turn task failed");
                    let mut log = actor.log.0.borrow_mut();
                    log.publish(ChatEvent::Error {
                        message: format!("internal error: {error}"),
                        reason: crate::protocol::TurnFailure::Internal,
                    });
                    log.publish(ChatEvent::Stop);
                    log.running = false;
                    log.subscribers.clear();
                }
            }
            actor.parts = Some(parts);
            actor.stop_if_asked(ctx);
        }));
    }

    /// Once the parts are back: stops the session if a forced eviction waits for it.
    fn stop_if_asked(&mut self, ctx: &mut Context<Self>) {
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
        let load = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            let history = store.load_history(&key)?;
            let turn = store.load_turn(&key)?;
            let uploads = store.list_uploads(&key)?;
            Ok::<_, crate::store::StoreError>((history, turn, uploads))
        });
        ctx.wait(
            load.into_actor(self)
                .map(|result, actor, _ctx| match result {
                    Ok(Ok((history, turn, uploads))) => {
                        actor.uploads = uploads;
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
        let settings = TurnSettings {
            max_steps: services.config.llm.max_steps,
            output_cap: services.config.tools.output_cap_bytes,
            context_budget_tokens: services.config.llm.context_budget_tokens,
        };
        let sink = self.log.clone();
        let turn = async move {
            let mut parts = parts;
            let outcome = run_turn(
                &services.llm,
                &services.tools,
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
        match &self.running {
            Some(running) => {
                running.cancel.cancel();
                Ok(())
            }
            None => Err(SessionError::NotRunning),
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
