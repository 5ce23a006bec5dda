//! The permission routes: `POST /api/chat/approve` (the owner answers an approval the running
//! turn waits for: the only way a call that asked can run) and `PUT /api/session/permissions`
//! (the conversation's own preset and tool rules); and the policy as `/api/session/info`
//! shows it.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::identity::session_key;
use super::AppState;
use crate::auth::SessionKey;
use crate::permissions::{ConversationPermissions, Decision, Mode, Policy};
use crate::protocol::{ApprovalDecision, Remember};
use crate::runtime::approvals::Answer;
use crate::runtime::messages::{Approve, SetPermissions};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    approval_id: String,
    decision: ApprovalDecision,
    #[serde(default)]
    remember: Remember,
}

pub async fn approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ApproveBody>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let ApproveBody {
        approval_id,
        decision,
        remember,
    } = body.into_inner();
    let approval_id = super::identity::check_id("approval_id", &approval_id)?;
    let answer = Answer {
        decision,
        remember,
        by: key.owner.to_string(),
    };
    let approve = Approve {
        approval_id: approval_id.clone(),
        answer,
    };
    state.sessions.ask(&key, approve).await?;
    Ok(HttpResponse::Ok().json(json!({
        "approval_id": approval_id,
        "decision": decision,
        "remember": remember,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsBody {
    /// The conversation's preset; `null` or absent: the server's.
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    tools: BTreeMap<String, Decision>,
    #[serde(default)]
    forget_approvals: bool,
}

pub async fn set(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<PermissionsBody>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let PermissionsBody {
        mode,
        tools,
        forget_approvals,
    } = body.into_inner();
    let change = SetPermissions {
        mode,
        tools,
        forget_approvals,
    };
    let permissions = state.sessions.ask(&key, change).await?;
    Ok(HttpResponse::Ok().json(view(&state, &key, &permissions)))
}

/// The policy in force for a conversation, and where each part comes from.
pub fn view(state: &AppState, key: &SessionKey, conversation: &ConversationPermissions) -> Value {
    let operator = &state.services.config.permissions;
    let standing = state.services.standing.get(&key.owner).unwrap_or_default();
    let policy = Policy {
        config: &state.services.config,
        conversation,
        owner: &standing,
    };
    json!({
        "mode": policy.mode(),
        "conversation_mode": conversation.mode,
        "server_mode": operator.mode,
        "loosest_mode": operator.loosest_mode,
        "tools": conversation.tools,
        "server_tools": operator.tools,
        "remembered": conversation.remembered,
        "standing": *standing,
        "approval_timeout_secs": operator.approval_timeout_secs,
    })
}
