//! The end of a turn, in three named stages:
//!
//! - `collect` (on the actor): what the turn left in the parts and the event log, taken out
//!   into a [`Finished`] that owns everything the next stage needs;
//! - `persist` (off the actor, on the blocking pool or the flusher's thread): the workspace
//!   snapshot, the history, the conversation and the turn's events written, the closing
//!   `final`/`error` + `stop` built, and the store flushed before anyone sees them;
//! - `publish` (on the actor again): the registry hears the session is idle, the closing
//!   events go out, and the parts come back.

use std::time::Duration;

use actix::prelude::*;

use super::{tools_process_group, Parts, RunningTurn, SessionActor};
use crate::agent::TurnOutcome;
use crate::auth::SessionKey;
use crate::llm::{HistoryEntry, LlmClient};
use crate::protocol::{
    Artifact, ChatEvent, ChatResponse, ReplyMeta, SeqEvent, Slide, TurnFailure, WebPreview,
    WorkspaceState,
};
use crate::runtime::messages::SessionActivity;
use crate::runtime::services::Services;
use crate::runtime::turn_end::{
    closing_event, first_user_message, last_user_message, not_stored, snapshot_after_turn,
    summary_of, upload_entries, vm_history, VM_HISTORY_LEN,
};
use crate::store::TurnState;

/// Everything a finished turn hands from the actor to the persisting stage.
struct Finished {
    key: SessionKey,
    outcome: TurnOutcome,
    latency: Duration,
    named_conversation: bool,
    /// History entries already stored; `tail` starts at or before it.
    persisted_from: usize,
    total: usize,
    tail_start: usize,
    /// The entries to store and the ones `vm_history` shows.
    tail: Vec<HistoryEntry>,
    first_message: String,
    snapshot_label: String,
    root: std::path::PathBuf,
    /// The workspace state when no tool ran (nothing to snapshot).
    known_state: Option<WorkspaceState>,
    events: Vec<SeqEvent>,
    next_seq: u64,
    web_preview: Option<WebPreview>,
    ppt_slides: Vec<Slide>,
    artifacts: Vec<Artifact>,
}

/// What persisting hands back to the actor.
struct Persisted {
    closing: Vec<SeqEvent>,
    history_len: usize,
    workspace_state: WorkspaceState,
}

impl SessionActor {
    pub(super) fn finish_turn(
        &mut self,
        parts: Parts,
        outcome: TurnOutcome,
        ctx: &mut Context<Self>,
    ) {
        let Some(running) = self.running.take() else {
            return;
        };
        let span = running.span.clone();
        let _in_turn = span.enter();
        let (parts, finished) = self.collect(parts, outcome, &running);
        // Without git work left, the store writes go to the flusher's thread right before the
        // flush they need (one thread hop for both); a turn that ran tools first snapshots the
        // workspace on the blocking pool.
        let store_only = finished.known_state.is_some();
        let services = self.services.clone();
        let persist_span = span.clone();
        let persist = move || {
            let _in_turn = persist_span.enter();
            persist(&services, finished)
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
                if let Some(first) = persisted.as_mut().ok().and_then(|p| p.closing.first_mut()) {
                    first.event = not_stored(&error);
                }
            }
            persisted
        };
        let mut parts = Some(parts);
        let work = tracing::Instrument::instrument(work, span.clone());
        let publish_span = span.clone();
        ctx.spawn(work.into_actor(self).map(move |result, actor, ctx| {
            let _in_turn = publish_span.enter();
            if let Some(parts) = parts.take() {
                actor.publish(parts, result, ctx);
            }
        }));
    }

    /// Stage one: takes what the turn left, records its metrics.
    fn collect(
        &mut self,
        mut parts: Parts,
        outcome: TurnOutcome,
        running: &RunningTurn,
    ) -> (Parts, Finished) {
        let latency = running.started.elapsed();
        tracing::info!(end = ?outcome.end, tools = outcome.tool_calls.len(), ms = latency.as_millis() as u64, "turn finished");
        let tools = &self.services.tools;
        self.services
            .metrics
            .record_turn(&outcome, latency, |name| tools.spec().tool(name).is_some());
        let persisted_from = parts.persisted;
        // The turn's last answer is counted before it is stored (the others were counted
        // for the requests that followed them).
        let counter = self.services.context_settings_known().counter;
        let from = persisted_from.min(parts.history.len());
        counter.count_missing(&mut parts.history.entries_mut()[from..]);
        // Only what is saved and what `vm_history` shows leaves this thread.
        let total = parts.history.len();
        let tail_start = persisted_from.min(total.saturating_sub(VM_HISTORY_LEN));
        let (events, next_seq) = {
            let mut log = self.log.0.borrow_mut();
            (log.take_unstored(), log.next_seq)
        };
        let web_preview = parts.tools.state.web_preview.take();
        let mut artifacts = std::mem::take(&mut parts.tools.state.artifacts);
        artifacts.extend(web_preview.iter().filter_map(|preview| {
            Some(Artifact {
                kind: "website".into(),
                name: preview.title.clone().unwrap_or_else(|| "Website".into()),
                url: preview.url.clone()?,
            })
        }));
        let finished = Finished {
            key: self.key.clone(),
            latency,
            named_conversation: running.named_conversation,
            persisted_from,
            total,
            tail_start,
            tail: parts.history.entries()[tail_start..].to_vec(),
            first_message: first_user_message(&parts.history),
            snapshot_label: last_user_message(&parts.history),
            root: parts.tools.workspace.root().to_path_buf(),
            // Only tools change the workspace; a turn without them keeps the last known state.
            known_state: if outcome.tool_calls.is_empty() {
                self.workspace_state.clone()
            } else {
                None
            },
            outcome,
            events,
            next_seq,
            web_preview,
            ppt_slides: std::mem::take(&mut parts.tools.state.slides),
            artifacts,
        };
        (parts, finished)
    }

    /// Stage three: the closing events go out and the parts come back.
    fn publish(
        &mut self,
        mut parts: Parts,
        result: Result<Persisted, String>,
        ctx: &mut Context<Self>,
    ) {
        // The registry hears the session is idle before any client hears the turn ended,
        // so a request that follows the reply never sees it busy.
        self.registry.do_send(SessionActivity {
            key: self.key.clone(),
            busy: false,
            tools_process_group: tools_process_group(&parts),
        });
        {
            let mut log = self.log.0.borrow_mut();
            match result {
                Ok(persisted) => {
                    parts.persisted = persisted.history_len;
                    self.workspace_state = Some(persisted.workspace_state);
                    log.next_seq = persisted.closing.last().map_or(log.next_seq, |e| e.seq + 1);
                    for event in persisted.closing {
                        log.deliver(event);
                    }
                    log.stored = log.events.len();
                }
                Err(error) => {
                    tracing::error!(%error, "end-of-turn task failed");
                    log.publish(ChatEvent::Error {
                        message: format!("internal error: {error}"),
                        reason: TurnFailure::Internal,
                    });
                    log.publish(ChatEvent::Stop);
                }
            }
            log.running = false;
            log.subscribers.clear();
        }
        self.parts = Some(parts);
        self.stop_if_asked(ctx);
    }
}

/// Stage two (blocking): snapshot, store, closing events. A turn that was not stored is
/// never reported as done.
fn persist(services: &Services, finished: Finished) -> Persisted {
    let Finished {
        key,
        outcome,
        latency,
        named_conversation,
        persisted_from,
        total,
        tail_start,
        tail,
        first_message,
        snapshot_label,
        root,
        known_state,
        events,
        mut next_seq,
        web_preview,
        ppt_slides,
        artifacts,
    } = finished;
    let workspace_state = match known_state {
        Some(state) => state,
        None => snapshot_after_turn(services, &root, &snapshot_label),
    };
    let store = &services.store;
    let uploads = upload_entries(&store.list_uploads(&key).unwrap_or_default());
    let closing_event = closing_event(&outcome, || ChatResponse {
        reply: outcome.reply.clone(),
        meta: ReplyMeta {
            model: services.llm.model_name(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
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
        workspace_state: workspace_state.clone(),
        uploads,
        upload_limits: services.upload_limits(),
    });
    let saved = store
        .save_history(&key, persisted_from, &tail[persisted_from - tail_start..])
        .and_then(|()| {
            if named_conversation {
                store.touch_conversation(&key, &first_message)
            } else {
                Ok(())
            }
        });
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
    if let Err(error) = store.append_turn(&key, TurnState::Finished, next_seq, &all_events) {
        tracing::error!(%error, "cannot keep the turn's events");
    }
    Persisted {
        closing,
        workspace_state,
        history_len: if saved.is_ok() { total } else { persisted_from },
    }
}
