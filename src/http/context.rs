//! Context routes: `POST /api/session/compact` (compact the history now, optionally saying
//! what the summary must keep) and `GET /api/session/history` (every entry, page by page,
//! newest page first).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::identity::{check_id, session_key};
use super::AppState;
use crate::runtime::messages::{Compact, GetHistoryPage};

/// Entries of a history page when the request says nothing.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// Characters of instructions a compaction takes.
const MAX_INSTRUCTIONS: usize = 4000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactBody {
    #[serde(default)]
    instructions: Option<String>,
}

pub async fn compact(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let body: CompactBody = super::optional_json(&body, "compact")?;
    let instructions = body.instructions.filter(|text| !text.trim().is_empty());
    if instructions
        .as_ref()
        .is_some_and(|text| text.chars().count() > MAX_INSTRUCTIONS)
    {
        return Err(ApiError::BadRequest(format!(
            "instructions must be at most {MAX_INSTRUCTIONS} characters"
        )));
    }
    let (done, context) = state.sessions.ask(&key, Compact { instructions }).await?;
    Ok(HttpResponse::Ok().json(json!({
        "compacted": true,
        "entry_id": done.entry_id,
        "before_tokens": done.before_tokens,
        "after_tokens": done.after_tokens,
        "summarized": done.summarized,
        "context": context,
    })))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    before: Option<String>,
    limit: Option<usize>,
}

pub async fn history_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let PageQuery { before, limit } = query.into_inner();
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = before.map(|id| check_id("before", &id)).transpose()?;
    let page = state
        .sessions
        .ask(&key, GetHistoryPage { before, limit })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
