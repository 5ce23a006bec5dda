//! The session's context as clients see and steer it: how full it is (`context` of
//! `GET /api/session/info`), compaction on request (`POST /api/session/compact`), and the
//! whole history page by page (`GET /api/session/history`).

use tokio_util::sync::CancellationToken;

use super::*;
use crate::agent::compact::{compact, CompactError, Compacted, Trigger};
use crate::agent::context::{is_record, used_tokens, view_of};
use crate::protocol::ContextReport;
use crate::runtime::messages::{Compact, GetHistoryPage, HistoryPage};

impl SessionActor {
    /// How full the context is, from the history the actor holds; while a turn holds it, the
    /// last report.
    pub(super) fn context_report(&mut self) -> ContextReport {
        let prompt = self.system_prompt();
        let Some(parts) = self.parts.as_mut() else {
            return self.context;
        };
        let services = &self.services;
        let settings = services.context_settings_known();
        let counter = &settings.counter;
        counter.count_missing(parts.history.entries_mut());
        let fixed = services.fixed_tokens(counter, &prompt);
        let entries = parts.history.entries();
        self.context = ContextReport {
            used_tokens: used_tokens(entries, &view_of(entries), counter, fixed) as u64,
            window_tokens: settings.limits.window_tokens as u64,
            compactions: entries.iter().filter(|e| is_record(e)).count() as u64,
        };
        self.context
    }
}

impl Handler<Compact> for SessionActor {
    type Result = ResponseActFuture<Self, Result<(Compacted, ContextReport), SessionError>>;

    /// Holds the parts like a turn (and counts as one under the quotas): the summary is a
    /// model call. The new entry is stored before the answer.
    fn handle(&mut self, msg: Compact, _ctx: &mut Self::Context) -> Self::Result {
        let permit = match self.services.quotas.start_turn(&self.key.owner) {
            Ok(permit) => permit,
            Err(refusal) => return Box::pin(actix::fut::ready(Err(refusal.into()))),
        };
        let prompt = self.system_prompt();
        let Some(mut parts) = self.parts.take() else {
            return Box::pin(actix::fut::ready(Err(SessionError::Busy)));
        };
        let (services, key) = (self.services.clone(), self.key.clone());
        // `POST /api/chat/stop` ends it like a turn.
        let cancel = CancellationToken::new();
        self.compacting = Some(cancel.clone());
        let work = async move {
            let _permit = permit;
            let result =
                compact_and_store(&services, &key, &mut parts, &prompt, msg, &cancel).await;
            (parts, result)
        };
        let work = std::panic::AssertUnwindSafe(work).catch_unwind();
        Box::pin(
            work.into_actor(self)
                .map(|joined, actor, ctx| match joined {
                    Ok((parts, result)) => {
                        actor.compacting = None;
                        actor.parts = Some(parts);
                        let answer = result.map(|done| (done, actor.context_report()));
                        actor.stop_if_asked(ctx);
                        answer
                    }
                    Err(_panic) => {
                        // The parts went with the panic: the session starts again from the store.
                        tracing::error!("compaction panicked; the session stops");
                        ctx.stop();
                        Err(SessionError::Internal("compaction failed".into()))
                    }
                }),
        )
    }
}

async fn compact_and_store(
    services: &Services,
    key: &SessionKey,
    parts: &mut Parts,
    prompt: &str,
    msg: Compact,
    cancel: &CancellationToken,
) -> Result<Compacted, SessionError> {
    let settings = services.context_settings().await;
    let counter = &settings.counter;
    let fixed = services.fixed_tokens(counter, prompt);
    let trigger = Trigger::Asked {
        instructions: msg.instructions.as_deref(),
    };
    let done = match compact(
        &services.llm,
        &mut parts.history,
        fixed,
        &settings,
        trigger,
        cancel,
    )
    .await
    {
        Ok(Some(done)) => done,
        Ok(None) | Err(CompactError::NothingToCompact) => {
            return Err(SessionError::Conflict(
                CompactError::NothingToCompact.to_string(),
            ))
        }
        Err(CompactError::Model(error)) => return Err(SessionError::Model(error)),
        Err(CompactError::Cancelled) => {
            return Err(SessionError::Conflict(
                "the compaction was stopped; nothing changed".into(),
            ))
        }
    };
    let from = parts.persisted.min(parts.history.len());
    let added = parts.history.entries()[from..].to_vec();
    let (store, owned_key) = (services.store.clone(), key.clone());
    let saved = crate::blocking::run(crate::blocking::STORE_WORK, move || {
        store.save_history(&owned_key, from, &added)
    })
    .await;
    let written = match saved {
        Ok(written) => written.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = written {
        // Not kept: the compaction entry goes again, so memory and store agree.
        parts
            .history
            .splice_from(parts.history.len() - 1, Vec::new());
        return Err(SessionError::Internal(format!(
            "the compaction could not be stored: {error}"
        )));
    }
    parts.persisted = parts.history.len();
    services.metrics.record_compaction(done.summarized);
    // Written: memory and store agree; a flush that fails is the store's trouble, logged
    // (the next turn's flush reports it to its client).
    if let Err(error) = services.flusher.flush().await {
        tracing::error!(%error, "cannot flush the store after a compaction");
    }
    Ok(done)
}

impl Handler<GetHistoryPage> for SessionActor {
    type Result = ResponseActFuture<Self, Result<HistoryPage, SessionError>>;

    fn handle(&mut self, msg: GetHistoryPage, _ctx: &mut Self::Context) -> Self::Result {
        self.read_history(move |entries| history_page(entries, &msg))
    }
}

/// Up to `limit` entries before `before` (the newest without it), oldest first.
fn history_page(
    entries: &[HistoryEntry],
    ask: &GetHistoryPage,
) -> Result<HistoryPage, SessionError> {
    let end = match &ask.before {
        None => entries.len(),
        Some(id) => entries
            .iter()
            .rposition(|e| &e.id == id)
            .ok_or_else(|| SessionError::NotFound(format!("no history entry {id}")))?,
    };
    let start = end.saturating_sub(ask.limit);
    Ok(HistoryPage {
        entries: entries[start..end].to_vec(),
        has_more: start > 0,
        history_length: entries.len(),
    })
}
