//! Approvals: the session's side of the permission policy.
//!
//! Before each tool call the turn asks the [`SessionGate`]: it judges the call with
//! `permissions::Policy` (the operator's rules, the conversation's choices, the owner's
//! standing approvals), and when the answer is `ask` it emits `approval_required`, parks a
//! pending approval on the session's [`Approvals`] desk and waits — for the owner's answer
//! (`POST /api/chat/approve`, the only way one arrives), the timeout (a denial), or a stop.
//! The decision is emitted as `approval_decided` and kept on the call's history entry.
//! Nobody on the line (`/v1/chat/completions`) turns `ask` into `[permissions] unattended`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::events::SharedLog;
use super::messages::SessionError;
use super::services::Services;
use crate::agent::{EventSink, Gate, Verdict};
use crate::auth::SessionKey;
use crate::llm::ToolCall;
use crate::permissions::{
    ConversationPermissions, Decision, Judgement, Policy, Remembered, Unattended,
};
use crate::protocol::{ApprovalCommand, ApprovalDecision, ApprovalRecord, ChatEvent, Remember};

/// Arguments longer than this are judged on the blocking pool (reading a long shell line
/// takes a while).
const INLINE_JUDGE_BYTES: usize = 4096;

/// A person's answer to one approval.
#[derive(Debug, Clone)]
pub struct Answer {
    pub decision: ApprovalDecision,
    pub remember: Remember,
    /// Who answered (the owner).
    pub by: String,
}

/// The session's permission choices and the approvals waiting for an answer; shared by the
/// actor (which answers) and the running turn (which waits).
#[derive(Clone, Default)]
pub struct Approvals(Rc<RefCell<Desk>>);

#[derive(Default)]
struct Desk {
    conversation: ConversationPermissions,
    pending: Vec<Pending>,
}

struct Pending {
    approval_id: String,
    request: ChatEvent,
    answer: oneshot::Sender<Answer>,
}

impl Approvals {
    pub fn conversation(&self) -> ConversationPermissions {
        self.0.borrow().conversation.clone()
    }

    pub fn set_conversation(&self, permissions: ConversationPermissions) {
        self.0.borrow_mut().conversation = permissions;
    }

    /// The `approval_required` events still waiting.
    pub fn pending(&self) -> Vec<ChatEvent> {
        self.0
            .borrow()
            .pending
            .iter()
            .map(|p| p.request.clone())
            .collect()
    }

    /// Hands `answer` to the call waiting under `approval_id`.
    pub fn answer(&self, approval_id: &str, answer: Answer) -> Result<(), SessionError> {
        let mut desk = self.0.borrow_mut();
        let at = desk
            .pending
            .iter()
            .position(|p| p.approval_id == approval_id)
            .ok_or_else(|| {
                SessionError::NotFound(format!(
                    "no approval {approval_id} is waiting in this session (it may have been \
                     answered, timed out or stopped)"
                ))
            })?;
        let pending = desk.pending.remove(at);
        pending
            .answer
            .send(answer)
            .map_err(|_| SessionError::Conflict("the call stopped waiting".into()))
    }

    fn park(&self, approval_id: String, request: ChatEvent) -> oneshot::Receiver<Answer> {
        let (answer, receiver) = oneshot::channel();
        self.0.borrow_mut().pending.push(Pending {
            approval_id,
            request,
            answer,
        });
        receiver
    }

    fn unpark(&self, approval_id: &str) {
        self.0
            .borrow_mut()
            .pending
            .retain(|p| p.approval_id != approval_id);
    }

    /// Adds approvals that stand for the rest of the conversation; returns the new choices.
    fn remember(&self, covers: Vec<Remembered>) -> ConversationPermissions {
        let mut desk = self.0.borrow_mut();
        for cover in covers {
            if !desk.conversation.remembered.contains(&cover) {
                desk.conversation.remembered.push(cover);
            }
        }
        desk.conversation.clone()
    }
}

/// Every owner's standing approvals, loaded from the store by the owner's first session.
#[derive(Default)]
pub struct StandingApprovals(Mutex<HashMap<String, Arc<Vec<Remembered>>>>);

impl StandingApprovals {
    pub fn get(&self, owner: &str) -> Option<Arc<Vec<Remembered>>> {
        self.lock().get(owner).cloned()
    }

    /// Keeps what the store holds unless a session already added to it.
    pub fn loaded(&self, owner: &str, stored: Vec<Remembered>) {
        self.lock()
            .entry(owner.to_string())
            .or_insert_with(|| Arc::new(stored));
    }

    /// Adds `covers`; returns the owner's whole list, to store.
    fn add(&self, owner: &str, covers: Vec<Remembered>) -> Vec<Remembered> {
        let mut map = self.lock();
        let entry = map.entry(owner.to_string()).or_default();
        let mut list = entry.as_ref().clone();
        for cover in covers {
            if !list.contains(&cover) {
                list.push(cover);
            }
        }
        *entry = Arc::new(list.clone());
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<Remembered>>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The permission check of one turn.
pub struct SessionGate {
    pub approvals: Approvals,
    pub services: Arc<Services>,
    pub key: SessionKey,
    pub log: SharedLog,
    /// Whether a person can answer (false on `/v1/chat/completions`).
    pub attended: bool,
}

impl Gate for SessionGate {
    async fn check(&self, call: &ToolCall, cancel: &CancellationToken) -> Verdict {
        let judgement = match self.judge(call).await {
            Ok(judgement) => judgement,
            Err(why) => return self.refuse(call, "policy", why),
        };
        match judgement.decision {
            Decision::Allow => Verdict::Run(None),
            Decision::Deny => self.refuse(call, "policy", judgement.reason),
            Decision::Ask if !self.attended => match self.services.config.permissions.unattended {
                Unattended::Allow => Verdict::Run(None),
                Unattended::Deny => self.refuse(
                    call,
                    "policy",
                    format!(
                        "{}; it needs a person's approval and nobody can answer on this API",
                        judgement.reason
                    ),
                ),
            },
            Decision::Ask => self.ask(call, judgement, cancel).await,
        }
    }
}

impl SessionGate {
    async fn judge(&self, call: &ToolCall) -> Result<Judgement, String> {
        let config = self.services.config.clone();
        let conversation = self.approvals.conversation();
        let standing = self.services.standing.get(&self.key.owner);
        let (tool, arguments) = (call.function.name.clone(), call.function.arguments.clone());
        let long = arguments.len() > INLINE_JUDGE_BYTES;
        let judge = move || {
            Policy {
                config: &config,
                conversation: &conversation,
                owner: standing.as_deref().map_or(&[], Vec::as_slice),
            }
            .judge(&tool, &arguments)
        };
        if !long {
            return Ok(judge());
        }
        crate::blocking::run(crate::blocking::FILE_WORK, judge)
            .await
            .map_err(|e| format!("its permission check failed ({e})"))
    }

    /// Refuses without asking (a rule, the unattended policy, a check that failed).
    fn refuse(&self, call: &ToolCall, by: &str, reason: String) -> Verdict {
        let record = record(None, ApprovalDecision::Deny, by, reason.clone(), None);
        self.decided(call, &record);
        Verdict::Refused {
            message: format!(
                "This call was not run: {reason}. The permission settings of this conversation \
                 do not allow it; do not try to reach the same end another way. Tell the user \
                 what you wanted to do and why."
            ),
            record,
        }
    }

    async fn ask(
        &self,
        call: &ToolCall,
        judgement: Judgement,
        cancel: &CancellationToken,
    ) -> Verdict {
        let approval_id = format!("apr_{}", uuid::Uuid::new_v4().simple());
        let wait = Duration::from_secs(self.services.config.permissions.approval_timeout_secs);
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
        let request = ChatEvent::ApprovalRequired {
            approval_id: approval_id.clone(),
            invocation_id: call.id.clone(),
            tool_name: call.function.name.clone(),
            arguments: serde_json::from_str(&call.function.arguments)
                .unwrap_or_else(|_| serde_json::Value::String(call.function.arguments.clone())),
            reason: judgement.reason.clone(),
            expires_at: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            commands: judgement
                .commands
                .iter()
                .map(|part| ApprovalCommand {
                    text: part.text.clone(),
                    class: serde_json::to_value(part.class)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    why: part.why.clone(),
                })
                .collect(),
        };
        let answer = self.approvals.park(approval_id.clone(), request.clone());
        self.log.emit(request);
        let answer = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err("stop"),
            answer = answer => answer.map_err(|_| "stop"),
            _ = tokio::time::sleep(wait) => Err("timeout"),
        };
        self.approvals.unpark(&approval_id);
        let id = Some(approval_id);
        let reason = judgement.reason;
        match answer {
            Err("timeout") => {
                let why = format!("nobody answered within {} s", wait.as_secs());
                let record = record(id, ApprovalDecision::Deny, "timeout", why.clone(), None);
                self.decided(call, &record);
                Verdict::Refused {
                    message: format!(
                        "This call was not run: it needed the user's approval ({reason}) and \
                         {why}. Do not try it another way; ask the user how to go on."
                    ),
                    record,
                }
            }
            Err(_) => {
                let record = record(id, ApprovalDecision::Deny, "stop", reason, None);
                self.decided(call, &record);
                Verdict::Cancelled
            }
            Ok(answer) if answer.decision == ApprovalDecision::Deny => {
                let record = record(id, ApprovalDecision::Deny, &answer.by, reason.clone(), None);
                self.decided(call, &record);
                Verdict::Refused {
                    message: format!(
                        "The user denied this call ({reason}). Do not try to reach the same end \
                         another way; ask the user how to go on if you need it."
                    ),
                    record,
                }
            }
            Ok(answer) => {
                self.remember(answer.remember, judgement.covers);
                let remember = Some(answer.remember);
                let record = record(id, ApprovalDecision::Approve, &answer.by, reason, remember);
                self.decided(call, &record);
                Verdict::Run(Some(record))
            }
        }
    }

    fn remember(&self, remember: Remember, covers: Vec<Remembered>) {
        let flusher = &self.services.flusher;
        let key = self.key.clone();
        match remember {
            Remember::Once => {}
            Remember::Conversation => {
                let permissions = self.approvals.remember(covers);
                flusher.write_soon("keeping an approval", move |store| {
                    store.put_conversation_permissions(&key, &permissions)
                });
            }
            Remember::AlwaysForThisPrefix => {
                let list = self.services.standing.add(&key.owner, covers);
                flusher.write_soon("keeping a standing approval", move |store| {
                    store.put_standing_approvals(&key.owner, &list)
                });
            }
        }
    }

    fn decided(&self, call: &ToolCall, record: &ApprovalRecord) {
        tracing::info!(tool = %call.function.name, decision = ?record.decision, by = %record.by, reason = %record.reason, "tool call decided");
        self.log.emit(ChatEvent::ApprovalDecided {
            invocation_id: call.id.clone(),
            tool_name: call.function.name.clone(),
            record: record.clone(),
        });
    }
}

fn record(
    approval_id: Option<String>,
    decision: ApprovalDecision,
    by: &str,
    reason: String,
    remember: Option<Remember>,
) -> ApprovalRecord {
    ApprovalRecord {
        approval_id,
        decision,
        by: by.to_string(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        reason,
        remember,
    }
}
