//! `SessionActor`: owns one session's history, workspace and tool state.
//!
//! State machine: idle (it holds its parts) or running (a turn holds them, the actor keeps the
//! cancel token). Parts are lent to the turn future by value and come back when it ends, also
//! after a cancel. Every event of a turn passes through the actor, which numbers it, keeps it
//! for re-attaching clients and fans it out. One turn at a time: a second `StartTurn` is
//! `Busy`. Dropping the actor drops the tool state, which kills its processes.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use super::messages::*;
use super::services::Services;
use crate::agent::{run_turn, Conversation, TurnEnd, TurnOutcome, TurnSettings};
use crate::llm::{LlmClient, Message};
use crate::protocol::{
    ChatEvent, ChatResponse, GitState, ReplyMeta, SeqEvent, WorkspacePaths, WorkspaceState,
};
use crate::tools::{ToolContext, ToolState};
use crate::workspace::{Workspace, MOUNT, OUTPUT_DIR};

/// Entries of `vm_history` in a response.
const VM_HISTORY_LEN: usize = 25;

/// What a turn borrows.
struct Parts {
    history: Conversation,
    tools: ToolContext,
}

struct RunningTurn {
    cancel: CancellationToken,
    /// The turn's own sender; the actor sends `final`/`error`/`stop` through it so they
    /// arrive after every event the turn emitted.
    events: UnboundedSender<ChatEvent>,
    started: Instant,
}

/// The numbered events of the current (or last) turn and who is listening.
#[derive(Default)]
struct EventLog {
    next_seq: u64,
    events: Vec<SeqEvent>,
    subscribers: Vec<UnboundedSender<SeqEvent>>,
}

pub struct SessionActor {
    key: SessionKey,
    services: Arc<Services>,
    registry: Recipient<SessionActivity>,
    parts: Option<Parts>,
    running: Option<RunningTurn>,
    log: EventLog,
}

impl SessionActor {
    pub fn new(
        key: SessionKey,
        services: Arc<Services>,
        registry: Recipient<SessionActivity>,
    ) -> Self {
        let root = services
            .config
            .workspace
            .root
            .join(format!("c-{}", key.client_id))
            .join(format!("s-{}", key.conversation_id));
        let tools = ToolContext {
            workspace: Workspace::new(root),
            state: ToolState::default(),
            cancel: CancellationToken::new(),
            config: services.tools_config.clone(),
            sandbox: services.sandbox.clone(),
        };
        Self {
            key,
            services,
            registry,
            parts: Some(Parts {
                history: Conversation::new(),
                tools,
            }),
            running: None,
            log: EventLog::default(),
        }
    }

    fn parts(&self) -> Result<&Parts, SessionError> {
        self.parts.as_ref().ok_or(SessionError::Busy)
    }

    fn system_prompt(&self) -> String {
        let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
        self.services.spec.render_prompt(&date, &[])
    }

    fn workspace_state(&self) -> WorkspaceState {
        WorkspaceState {
            enabled: false,
            snapshots: Vec::new(),
            latest_snapshot: None,
            paths: WorkspacePaths {
                mount: MOUNT.to_string(),
                output: format!("{MOUNT}/{OUTPUT_DIR}"),
            },
            git: GitState::default(),
        }
    }

    fn respond(
        &self,
        history: &Conversation,
        outcome: &TurnOutcome,
        started: Instant,
    ) -> ChatResponse {
        let uploads = &self.services.config.uploads;
        ChatResponse {
            reply: outcome.reply.clone(),
            meta: ReplyMeta {
                model: self.services.llm.model_name(),
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                tokens_in: outcome.usage.prompt_tokens,
                tokens_out: outcome.usage.completion_tokens,
                latency: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                summary: summary_of(&outcome.reply),
            },
            web_preview: None,
            ppt_slides: Vec::new(),
            artifacts: Vec::new(),
            tool_calls: outcome.tool_calls.clone(),
            vm_history: history.tail_json(VM_HISTORY_LEN),
            workspace_state: self.workspace_state(),
            uploads: Vec::new(),
            upload_limit: uploads.max_files,
            max_upload_size_mb: uploads.max_file_size_mb,
            max_upload_size_bytes: uploads.max_file_size_mb * 1024 * 1024,
        }
    }

    /// Numbers an event, keeps it and hands it to every live subscriber.
    fn publish(&mut self, event: ChatEvent) {
        let seq = self.log.next_seq;
        self.log.next_seq += 1;
        let event = SeqEvent { seq, event };
        self.log
            .subscribers
            .retain(|subscriber| subscriber.send(event.clone()).is_ok());
        self.log.events.push(event);
    }

    fn finish_turn(&mut self, parts: Parts, outcome: TurnOutcome) {
        let Some(running) = self.running.take() else {
            return;
        };
        let closing = match &outcome.end {
            TurnEnd::Answered | TurnEnd::MaxSteps => ChatEvent::Final {
                payload: Box::new(self.respond(&parts.history, &outcome, running.started)),
            },
            TurnEnd::Cancelled => ChatEvent::Error {
                message: "cancelled".into(),
                status: 409,
            },
            TurnEnd::Failed(error) => {
                tracing::warn!(%error, "turn failed");
                ChatEvent::Error {
                    message: error.to_string(),
                    status: if error.is_timeout() { 504 } else { 502 },
                }
            }
        };
        let _ = running.events.send(closing);
        let _ = running.events.send(ChatEvent::Stop);
        self.parts = Some(parts);
        self.registry.do_send(SessionActivity {
            key: self.key.clone(),
            busy: false,
        });
    }
}

/// The first line of the reply, cut to a title-sized summary.
fn summary_of(reply: &str) -> String {
    let line = reply
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    crate::tools::output::cap_line(line, 160)
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(client = %self.key.client_id, conversation = %self.key.conversation_id, "session started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(running) = &self.running {
            running.cancel.cancel();
        }
        tracing::debug!(client = %self.key.client_id, conversation = %self.key.conversation_id, "session stopped");
    }
}

impl StreamHandler<ChatEvent> for SessionActor {
    fn handle(&mut self, event: ChatEvent, _ctx: &mut Self::Context) {
        self.publish(event);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The turn's event stream ended; the session itself lives on. Subscribers are told
        // by their channel closing.
        self.log.subscribers.clear();
    }
}

impl Handler<StartTurn> for SessionActor {
    type Result = Result<TurnHandle, SessionError>;

    fn handle(&mut self, msg: StartTurn, ctx: &mut Self::Context) -> Self::Result {
        let Some(mut parts) = self.parts.take() else {
            return Err(SessionError::Busy);
        };
        if let Err(e) = parts.tools.workspace.ensure() {
            self.parts = Some(parts);
            return Err(SessionError::Internal(format!(
                "cannot create the workspace: {e}"
            )));
        }
        if msg.replace_last {
            parts.history.drop_last_exchange();
        }
        let cancel = CancellationToken::new();
        parts.tools.cancel = cancel.clone();
        let (turn_tx, turn_rx) = mpsc::unbounded_channel();
        let (client_tx, client_rx) = mpsc::unbounded_channel();
        self.log.events.clear();
        self.log.subscribers = vec![client_tx];
        self.running = Some(RunningTurn {
            cancel,
            events: turn_tx.clone(),
            started: Instant::now(),
        });
        ctx.add_stream(UnboundedReceiverStream::new(turn_rx));
        self.registry.do_send(SessionActivity {
            key: self.key.clone(),
            busy: true,
        });
        let services = self.services.clone();
        let system_prompt = self.system_prompt();
        let llm_settings = &services.config.llm;
        let settings = TurnSettings {
            max_steps: llm_settings.max_steps,
            output_cap: services.config.tools.output_cap_bytes,
            context_budget_tokens: llm_settings.context_budget_tokens,
        };
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
                &turn_tx,
            )
            .await;
            (parts, outcome)
        };
        ctx.spawn(
            turn.into_actor(self)
                .map(|(parts, outcome), actor, _ctx| actor.finish_turn(parts, outcome)),
        );
        Ok(TurnHandle { events: client_rx })
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
    type Result = Result<(), SessionError>;

    fn handle(&mut self, _msg: Evict, ctx: &mut Self::Context) -> Self::Result {
        if self.running.is_some() {
            return Err(SessionError::Busy);
        }
        ctx.stop();
        Ok(())
    }
}

impl Handler<GetInfo> for SessionActor {
    type Result = Result<SessionInfo, SessionError>;

    fn handle(&mut self, _msg: GetInfo, _ctx: &mut Self::Context) -> Self::Result {
        let system_prompt = self.system_prompt();
        let (history_length, vm_history, last_reply) = match &self.parts {
            Some(parts) => (
                parts.history.len(),
                parts.history.tail_json(VM_HISTORY_LEN),
                last_assistant_text(&parts.history),
            ),
            None => (0, Vec::new(), None),
        };
        Ok(SessionInfo {
            history_length,
            busy: self.running.is_some(),
            system_prompt,
            vm_history,
            last_reply,
        })
    }
}

fn last_assistant_text(history: &Conversation) -> Option<String> {
    history
        .entries()
        .iter()
        .rev()
        .find_map(|e| match &e.message {
            Message::Assistant {
                content: Some(text),
                ..
            } if !text.is_empty() => Some(text.clone()),
            _ => None,
        })
}

impl Handler<GetHistoryEntry> for SessionActor {
    type Result = Result<Option<crate::agent::HistoryEntry>, SessionError>;

    fn handle(&mut self, msg: GetHistoryEntry, _ctx: &mut Self::Context) -> Self::Result {
        Ok(self.parts()?.history.find(&msg.entry_id).cloned())
    }
}

impl Handler<ClearHistory> for SessionActor {
    type Result = ResponseActFuture<Self, Result<ClearedHistory, SessionError>>;

    fn handle(&mut self, _msg: ClearHistory, _ctx: &mut Self::Context) -> Self::Result {
        let Some(mut parts) = self.parts.take() else {
            return Box::pin(actix::fut::ready(Err(SessionError::Busy)));
        };
        let cleared_messages = parts.history.clear();
        parts.tools.state = ToolState::default();
        self.log = EventLog {
            next_seq: self.log.next_seq,
            ..EventLog::default()
        };
        let root = parts.tools.workspace.root().to_path_buf();
        let wipe = tokio::task::spawn_blocking(move || {
            let existed = root.exists();
            let result = if existed {
                std::fs::remove_dir_all(&root)
            } else {
                Ok(())
            };
            result.map(|()| existed)
        });
        Box::pin(wipe.into_actor(self).map(move |result, actor, _ctx| {
            actor.parts = Some(parts);
            match result {
                Ok(Ok(workspace_removed)) => Ok(ClearedHistory {
                    cleared_messages,
                    workspace_removed,
                }),
                Ok(Err(e)) => Err(SessionError::Internal(format!(
                    "cannot empty the workspace: {e}"
                ))),
                Err(e) => Err(SessionError::Internal(format!(
                    "cannot empty the workspace: {e}"
                ))),
            }
        }))
    }
}
