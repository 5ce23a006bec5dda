//! The session's history as clients read and change it: `GetInfo`, one entry by id, switching
//! to a kept version, wiping the history. Store reads run on the blocking pool; while a turn
//! holds the history, readers get what the store has.

use super::*;

impl Handler<GetInfo> for SessionActor {
    type Result = ResponseActFuture<Self, Result<SessionInfo, SessionError>>;

    /// Reads the uploads (and, while a turn holds the history, the stored history) off the
    /// actor's thread.
    fn handle(&mut self, _msg: GetInfo, _ctx: &mut Self::Context) -> Self::Result {
        let busy = self.running.is_some();
        let context = self.context_report();
        let in_memory = self
            .parts
            .as_ref()
            .map(|parts| history_view(&parts.history));
        let (services, key) = (self.services.clone(), self.key.clone());
        let load = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            let store = &services.store;
            let uploads = store.list_uploads(&key)?;
            let view = match in_memory {
                Some(view) => view,
                None => history_view(&Conversation::from_entries(store.load_history(&key)?)),
            };
            let system_prompt = render_system_prompt(&services, &uploads);
            Ok::<_, crate::store::StoreError>((uploads, view, system_prompt))
        });
        Box::pin(load.into_actor(self).map(move |loaded, actor, _ctx| {
            let (uploads, (history_length, vm_history, opening_reply), system_prompt) = loaded
                .map_err(|e| SessionError::Internal(e.to_string()))?
                .map_err(|e| SessionError::Internal(e.to_string()))?;
            actor.uploads = uploads;
            Ok(SessionInfo {
                history_length,
                busy,
                system_prompt,
                vm_history,
                opening_reply,
                pending_approvals: actor.approvals.pending(),
                permissions: actor.approvals.conversation(),
                context,
            })
        }))
    }
}

/// `(length, vm_history, opening reply)` of a history, as `GetInfo` answers them.
fn history_view(history: &Conversation) -> (usize, crate::protocol::RawJson, Option<String>) {
    (
        history.len(),
        crate::runtime::turn_end::vm_history(history.entries()),
        opening_assistant_text(history),
    )
}

pub(super) fn render_system_prompt(services: &Services, uploads: &[UploadRecord]) -> String {
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let uploads: Vec<String> = uploads
        .iter()
        .map(|u| {
            format!(
                "{MOUNT}/{UPLOAD_DIR}/{} ({})",
                u.name,
                crate::protocol::size_display(u.size_bytes)
            )
        })
        .collect();
    services.spec.render_prompt(&date, &uploads)
}

/// The text of the history's first entry when the assistant spoke first (a greeting).
fn opening_assistant_text(history: &Conversation) -> Option<String> {
    match &history.entries().first()?.message {
        Message::Assistant {
            content: Some(text),
            ..
        } if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

impl SessionActor {
    /// `read` on the history the actor holds; while a turn holds it, on what the store has,
    /// off the actor's thread.
    pub(super) fn read_history<T: 'static + Send>(
        &self,
        read: impl FnOnce(&[HistoryEntry]) -> Result<T, SessionError> + Send + 'static,
    ) -> ResponseActFuture<Self, Result<T, SessionError>> {
        if let Some(parts) = &self.parts {
            return Box::pin(actix::fut::ready(read(parts.history.entries())));
        }
        let (store, key) = (self.services.store.clone(), self.key.clone());
        let load = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            store
                .load_history(&key)
                .map_err(|e| SessionError::Internal(e.to_string()))
                .and_then(|entries| read(&entries))
        });
        Box::pin(
            async move {
                load.await
                    .map_err(|e| SessionError::Internal(e.to_string()))?
            }
            .into_actor(self),
        )
    }
}

impl Handler<GetHistoryEntry> for SessionActor {
    type Result = ResponseActFuture<Self, Result<Option<HistoryEntry>, SessionError>>;

    fn handle(&mut self, msg: GetHistoryEntry, _ctx: &mut Self::Context) -> Self::Result {
        self.read_history(move |entries| Ok(entries.iter().find(|e| e.id == msg.entry_id).cloned()))
    }
}

impl Handler<SwitchVersion> for SessionActor {
    type Result = ResponseActFuture<Self, Result<(), SessionError>>;

    /// The store work runs off the actor's thread with the parts lent, like a turn.
    fn handle(&mut self, msg: SwitchVersion, _ctx: &mut Self::Context) -> Self::Result {
        let Some(mut parts) = self.parts.take() else {
            return Box::pin(actix::fut::ready(Err(SessionError::Busy)));
        };
        if parts.history.has_user_entry(&msg.entry_id) {
            self.parts = Some(parts);
            return Box::pin(actix::fut::ready(Ok(()))); // already the current version
        }
        let mut history = std::mem::take(&mut parts.history);
        let persisted = parts.persisted;
        let store = self.services.store.clone();
        let key = self.key.clone();
        let work = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            let switched = switch_version(&store, &key, &mut history, persisted, &msg.entry_id);
            (history, switched)
        });
        Box::pin(work.into_actor(self).map(move |joined, actor, ctx| {
            let result = match joined {
                Ok((history, switched)) => {
                    parts.history = history;
                    switched.map(|persisted| parts.persisted = persisted)
                }
                Err(error) => {
                    // The history went down with the task: the store has every finished turn.
                    parts.history = actor.stored_history();
                    parts.persisted = parts.history.len();
                    Err(SessionError::Internal(format!(
                        "version switch failed: {error}"
                    )))
                }
            };
            actor.parts = Some(parts);
            if result.is_ok() {
                actor.services.flusher.flush_soon();
            }
            actor.stop_if_asked(ctx);
            result
        }))
    }
}

/// Makes the stored version whose first user message is `entry_id` the history, keeping the
/// one it replaces as a version. Blocking. Returns how many entries are now stored; on failure
/// `history` is as it was.
fn switch_version(
    store: &crate::store::Store,
    key: &SessionKey,
    history: &mut Conversation,
    persisted: usize,
    entry_id: &str,
) -> Result<usize, SessionError> {
    let internal = |e: crate::store::StoreError| SessionError::Internal(e.to_string());
    let branch = store
        .take_branch(key, entry_id)
        .map_err(internal)?
        .ok_or_else(|| {
            SessionError::NotFound(format!(
                "no earlier version of the history starts with entry {entry_id}"
            ))
        })?;
    let Some(at) = history.branch_point(branch.after.as_deref()) else {
        store.save_branch(key, &branch).map_err(internal)?;
        return Err(SessionError::Conflict(format!(
            "the version starting with entry {entry_id} continues another version of an \
             earlier message; switch that message first"
        )));
    };
    let current = HistoryBranch {
        after: branch.after.clone(),
        entries: history.splice_from(at, branch.entries.clone()),
    };
    let from = at.min(persisted);
    let saved = store
        .save_branch(key, &current)
        .and_then(|()| store.save_history(key, from, &history.entries()[from..]));
    if let Err(error) = saved {
        tracing::error!(%error, "cannot persist a version switch");
        // Nothing is lost: the history goes back to the version it had, and the taken
        // version is kept again (best effort: the store is failing).
        history.splice_from(at, current.entries);
        let _ = store.save_branch(key, &branch);
        return Err(internal(error));
    }
    Ok(history.len())
}

impl Handler<ClearHistory> for SessionActor {
    type Result = ResponseActFuture<Self, Result<ClearedHistory, SessionError>>;

    fn handle(&mut self, _msg: ClearHistory, _ctx: &mut Self::Context) -> Self::Result {
        let Some(mut parts) = self.parts.take() else {
            return Box::pin(actix::fut::ready(Err(SessionError::Busy)));
        };
        let cleared_messages = parts.history.clear();
        parts.tools.workspace_ready = false;
        self.workspace_state = None;
        parts.persisted = 0;
        parts.tools.state = ToolState::default();
        {
            let mut log = self.log.0.borrow_mut();
            log.events.clear();
            log.stored = 0;
            log.subscribers.clear();
        }
        let root = parts.tools.workspace.root().to_path_buf();
        let store = self.services.store.clone();
        let key = self.key.clone();
        let wipe = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            store
                .clear_history(&key)
                .and_then(|()| store.clear_uploads(&key))
                .and_then(|()| store.reset_turn(&key))
                .and_then(|()| store.flush())
                .map_err(|e| e.to_string())?;
            remove_workspace(&root).map_err(|e| format!("cannot empty the workspace: {e}"))
        });
        Box::pin(wipe.into_actor(self).map(move |result, actor, ctx| {
            actor.parts = Some(parts);
            actor.stop_if_asked(ctx);
            match result {
                Ok(Ok(workspace_removed)) => Ok(ClearedHistory {
                    cleared_messages,
                    workspace_removed,
                }),
                Ok(Err(message)) => Err(SessionError::Internal(message)),
                Err(e) => Err(SessionError::Internal(e.to_string())),
            }
        }))
    }
}
