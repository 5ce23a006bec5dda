//! `/api/conversations`: the caller's conversations (list, get, create, update, delete).
//!
//! Every record is keyed by the caller's owner id, so another client's conversation is simply
//! not found (404). Delete removes the session, its workspace and everything stored for it,
//! located from server-side records and the server's own path scheme, never a client path.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::ApiError;
use super::identity::{check_id, owner};
use super::{blocking, AppState};
use crate::auth::{Owner, SessionKey};
use crate::runtime::session::remove_workspace;
use crate::store::ConversationRecord;

#[derive(serde::Deserialize)]
pub struct ListQuery {
    /// Only id, title and timestamps of each conversation (what a sidebar needs).
    #[serde(default)]
    summary: bool,
}

pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner(&req)?;
    let store = state.services.store.clone();
    if query.summary {
        let summaries = blocking(move || store.list_conversation_summaries(&owner)).await?;
        return Ok(HttpResponse::Ok().json(json!({ "conversations": summaries })));
    }
    let records = blocking(move || store.list_conversations(&owner)).await?;
    let conversations: Vec<Value> = records.iter().map(|r| r.to_json()).collect();
    Ok(HttpResponse::Ok().json(json!({ "conversations": conversations })))
}

pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner(&req)?;
    let id = conversation_id(id.into_inner())?;
    let record = find(&state, &SessionKey::new(owner, id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "conversation": record.to_json() })))
}

pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner(&req)?;
    let body = body.into_inner();
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "the conversation must be a JSON object".into(),
        ));
    }
    let id = match body.get("id") {
        Some(Value::String(id)) => conversation_id(id.clone())?,
        Some(Value::Number(n)) if n.is_u64() => conversation_id(n.to_string())?,
        _ => {
            return Err(ApiError::BadRequest(
                "the conversation needs an `id`".into(),
            ))
        }
    };
    save(&state, owner, id, body).await
}

pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner(&req)?;
    let id = conversation_id(id.into_inner())?;
    let mut body = body.into_inner();
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the conversation must be a JSON object".into(),
        ));
    };
    fields.insert("id".into(), Value::String(id.clone()));
    // A PUT of an id the owner does not have yet creates it (the console saves every
    // conversation this way); records are keyed by owner, so it never reaches another's.
    save(&state, owner, id, body).await
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = owner(&req)?;
    let id = conversation_id(id.into_inner())?;
    let key = SessionKey::new(owner, id);
    find(&state, &key).await?;
    state.sessions.remove(key.clone()).await?;
    let root = state.services.workspace_for(&key).root().to_path_buf();
    let store = state.services.store.clone();
    let tool_services = state.services.tool_services.clone();
    let (removed, deployments_removed) = blocking(move || {
        let deployments_removed = tool_services
            .deployer
            .remove_all(&key)
            .map_err(|e| ApiError::Internal(format!("cannot remove the deployments: {e}")))?;
        store.delete_conversation(&key)?;
        store.flush()?;
        let removed = remove_workspace(&root)
            .map_err(|e| ApiError::Internal(format!("cannot remove the workspace: {e}")))?;
        Ok::<_, ApiError>((removed, deployments_removed))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "deleted": true,
        "workspace": {"removed": removed, "deployments_removed": deployments_removed},
    })))
}

async fn save(
    state: &AppState,
    owner: Owner,
    id: String,
    body: Value,
) -> Result<HttpResponse, ApiError> {
    for field in ["title", "created_at", "updated_at"] {
        if body.get(field).is_some_and(|value| !value.is_string()) {
            return Err(ApiError::BadRequest(format!(
                "the conversation's `{field}` must be a string"
            )));
        }
    }
    let store = state.services.store.clone();
    let key = SessionKey::new(owner, id);
    let record = blocking(move || {
        let record = store.put_conversation(&key, body)?;
        store.flush()?;
        Ok::<_, crate::store::StoreError>(record)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "conversation": record.to_json() })))
}

/// The caller's conversation, or 404.
async fn find(state: &AppState, key: &SessionKey) -> Result<ConversationRecord, ApiError> {
    let store = state.services.store.clone();
    let wanted = key.clone();
    blocking(move || store.get_conversation(&wanted))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {}", key.conversation_id)))
}

fn conversation_id(raw: String) -> Result<String, ApiError> {
    check_id("conversation id", &raw)
}
