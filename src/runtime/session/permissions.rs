//! The owner's side of the permission policy in a session: answering an approval the running
//! turn waits for, and setting the conversation's own preset and tool rules (stored before the
//! reply, in force from the next tool call).

use super::*;
use crate::permissions::ConversationPermissions;

/// Most tool rules one conversation keeps.
const MAX_TOOL_RULES: usize = 100;

impl Handler<Approve> for SessionActor {
    type Result = Result<(), SessionError>;

    fn handle(&mut self, msg: Approve, _ctx: &mut Self::Context) -> Self::Result {
        self.approvals.answer(&msg.approval_id, msg.answer)
    }
}

impl Handler<SetPermissions> for SessionActor {
    type Result = ResponseActFuture<Self, Result<ConversationPermissions, SessionError>>;

    fn handle(&mut self, msg: SetPermissions, _ctx: &mut Self::Context) -> Self::Result {
        let operator = &self.services.config.permissions;
        if let Some(mode) = msg.mode.filter(|m| *m < operator.loosest_mode) {
            return Box::pin(actix::fut::ready(Err(SessionError::Invalid(format!(
                "mode {} is looser than this server allows (at most {})",
                mode.name(),
                operator.loosest_mode.name()
            )))));
        }
        if msg.tools.len() > MAX_TOOL_RULES {
            return Box::pin(actix::fut::ready(Err(SessionError::Invalid(format!(
                "at most {MAX_TOOL_RULES} tool rules"
            )))));
        }
        if let Some(bad) = msg
            .tools
            .keys()
            .find(|name| !crate::config::permissions::is_tool_pattern(name))
        {
            return Box::pin(actix::fut::ready(Err(SessionError::Invalid(format!(
                "{bad:?} is not a tool name (or a `prefix*` pattern)"
            )))));
        }
        // In force at once (the next tool call reads it); the reply waits for the store.
        let mut permissions = self.approvals.conversation();
        permissions.mode = msg.mode;
        permissions.tools = msg.tools;
        if msg.forget_approvals {
            permissions.remembered.clear();
        }
        self.approvals.set_conversation(permissions.clone());
        let (store, key, stored) = (
            self.services.store.clone(),
            self.key.clone(),
            permissions.clone(),
        );
        let save = crate::blocking::run(crate::blocking::STORE_WORK, move || {
            store.put_conversation_permissions(&key, &stored)
        });
        Box::pin(save.into_actor(self).map(move |saved, _actor, _ctx| {
            saved
                .map_err(|e| SessionError::Internal(e.to_string()))?
                .map_err(|e| SessionError::Internal(e.to_string()))?;
            Ok(permissions)
        }))
    }
}
