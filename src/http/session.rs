//! Session routes: `/api/session/info`, `/boot`, `/history`, the admin `/api/sessions` list and
//! `/healthz`. Read-only except `DELETE /api/session/history`; `boot` never resets anything.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::identity::session_key;
use super::workspace::workspace_state;
use super::{blocking, AppState};
use crate::auth::SessionKey;
use crate::runtime::messages::{
    ClearHistory, GetHistoryEntry, GetInfo, SessionInfo, SwitchVersion,
};
use crate::runtime::session::upload_entries;
use crate::tools::exec::rss_by_process_group;
use crate::workspace::{MOUNT, OUTPUT_DIR};

const WELCOME: &str = "Hi, I'm OK Computer. Tell me what you want built, researched or analysed, and I'll plan it, work through it with my tools in a sandboxed workspace, and hand you the results.";

/// Healthy while the store can still be made durable (the flusher's thread runs).
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.services.flusher.is_alive() {
        HttpResponse::Ok().json(json!({"status": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "status": "unhealthy",
            "detail": "the store flusher stopped: turns can no longer be made durable",
        }))
    }
}

pub async fn info(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let info = session_info(&state, &key).await?;
    Ok(HttpResponse::Ok().json(vm_view(&state, &key, &info)))
}

pub async fn boot(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let info = session_info(&state, &key).await?;
    let body = json!({
        // The welcome text, never the last reply (the console shows it above the history).
        "reply": info.opening_reply.clone().unwrap_or_else(|| WELCOME.to_string()),
        "meta": {
            "model": state.services.llm.endpoint().model.clone(),
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "tokensIn": 0,
            "tokensOut": 0,
            "latency": 0.0,
            "summary": "",
        },
        "web_preview": Value::Null,
        "ppt_slides": [],
        "artifacts": [],
        "vm": vm_view(&state, &key, &info),
        "vm_history": info.vm_history,
        "workspace_state": workspace_state(&state, &key, 20).await?,
        "uploads": upload_entries(&uploads_of(&state, &key).await?),
    });
    Ok(HttpResponse::Ok().json(with_upload_limits(body, &state)))
}

pub async fn history_entry(
    state: web::Data<AppState>,
    req: HttpRequest,
    entry_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let entry_id = entry_id.into_inner();
    let lookup = GetHistoryEntry {
        entry_id: entry_id.clone(),
    };
    match state.sessions.ask(&key, lookup).await? {
        Some(entry) => Ok(HttpResponse::Ok().json(entry)),
        None => Err(ApiError::NotFound(format!("no history entry {entry_id}"))),
    }
}

pub async fn clear_history(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let cleared = state.sessions.ask(&key, ClearHistory).await?;
    let info = state.sessions.ask(&key, GetInfo).await?;
    let body = json!({
        "history_cleared": true,
        "cleared_messages": cleared.cleared_messages,
        "workspace": {
            "mount": MOUNT,
            "output": format!("{MOUNT}/{OUTPUT_DIR}"),
            "removed": cleared.workspace_removed,
        },
        "vm": vm_view(&state, &key, &info),
        "uploads": [],
    });
    Ok(HttpResponse::Ok().json(with_upload_limits(body, &state)))
}

#[derive(Debug, serde::Deserialize)]
pub struct SwitchVersionBody {
    entry_id: String,
}

/// `POST /api/session/history/switch`: the console switched a message to another of its
/// versions; the model's history follows (the version it leaves is kept in turn).
pub async fn switch_version(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<SwitchVersionBody>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let entry_id = super::identity::check_id("entry_id", &body.into_inner().entry_id)?;
    let switch = SwitchVersion { entry_id };
    state.sessions.ask(&key, switch).await?;
    let info = state.sessions.ask(&key, GetInfo).await?;
    Ok(HttpResponse::Ok().json(json!({
        "history_length": info.history_length,
        "vm_history": info.vm_history,
    })))
}

/// `GET /metrics`: the server's figures in the Prometheus text format (the metrics token
/// or an administrator).
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if req
        .extensions()
        .get::<super::access::MetricsGrant>()
        .is_none()
    {
        super::identity::admin(&req)?;
    }
    let stats = state.sessions.stats().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.services.metrics.render(&stats.figures())))
}

/// `GET /openapi.json`: the OpenAPI description of every route.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// The OpenAPI document, `spec/openapi.json`.
pub const OPENAPI: &str = include_str!("../../spec/openapi.json");

/// `GET /api/me`: who the server takes the caller for (the console shows it, and asks for a
/// token when this answers 401).
pub async fn me(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let caller = super::identity::caller(&req)?;
    Ok(HttpResponse::Ok().json(json!({
        "user": caller.user,
        "role": caller.role,
        "auth_mode": state.services.auth.mode(),
    })))
}

/// Admin view of the live sessions.
pub async fn sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    super::identity::admin(&req)?;
    let mut stats = state.sessions.stats().await?;
    if stats
        .sessions
        .iter()
        .any(|s| s.tools_process_group.is_some())
    {
        let memory = blocking(|| Ok::<_, ApiError>(rss_by_process_group())).await?;
        for session in &mut stats.sessions {
            session.tools_memory_kib = session
                .tools_process_group
                .and_then(|group| memory.get(&group).copied())
                .unwrap_or(0);
        }
    }
    Ok(HttpResponse::Ok().json(stats))
}

async fn session_info(state: &AppState, key: &SessionKey) -> Result<SessionInfo, ApiError> {
    Ok(state.sessions.ask(key, GetInfo).await?)
}

fn vm_view(state: &AppState, key: &SessionKey, info: &SessionInfo) -> Value {
    json!({
        "system_prompt": info.system_prompt,
        "tools": all_tool_names(state),
        "history_length": info.history_length,
        "busy": info.busy,
        "workspace_id": format!("{}/{}", key.owner, key.conversation_id),
        "workspace_mount": MOUNT,
        "workspace_output": format!("{MOUNT}/{OUTPUT_DIR}"),
        "history_namespace": format!("{}:{}", key.owner, key.conversation_id),
        "permissions": super::permissions::view(state, key, &info.permissions),
        "pending_approvals": info.pending_approvals,
        "context": info.context,
    })
}

async fn uploads_of(
    state: &AppState,
    key: &SessionKey,
) -> Result<Vec<crate::store::UploadRecord>, ApiError> {
    let store = state.services.store.clone();
    let key = key.clone();
    blocking(move || store.list_uploads(&key)).await
}

/// `body` with the upload limits beside its fields.
fn with_upload_limits(mut body: Value, state: &AppState) -> Value {
    if let (Some(fields), Ok(Value::Object(limits))) = (
        body.as_object_mut(),
        serde_json::to_value(state.services.upload_limits()),
    ) {
        fields.extend(limits);
    }
    body
}

/// The built-in tools, then the MCP servers' tools offered now.
fn all_tool_names(state: &AppState) -> Vec<String> {
    let mut names = state.services.spec.tool_names();
    names.extend(state.services.tool_services.mcp.tool_names());
    names
}

/// `GET /api/mcp/servers`: each configured MCP server, its state, its tools and last error.
pub async fn mcp_servers(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    super::identity::caller(&req)?;
    Ok(HttpResponse::Ok().json(json!({
        "servers": state.services.tool_services.mcp.statuses(),
    })))
}
