//! Who is asking: the caller the access gate authenticated, and the session a request
//! addresses. The owner is the signed-in user, or in mode "none" the client id (query, then
//! header, then cookie, else "default"); the conversation id comes from the query or header.
//! Ids are validated so they are safe to use as store keys and directory names. Handlers get
//! an [`Owner`] or a [`SessionKey`] from here, never a raw id.

use actix_web::{HttpMessage, HttpRequest};
use serde::Deserialize;

use super::error::ApiError;
use crate::auth::{Caller, Owner, SessionKey};

const MAX_ID_BYTES: usize = 128;
const DEFAULT_ID: &str = "default";

#[derive(Deserialize)]
struct IdQuery {
    client_id: Option<String>,
    conversation_id: Option<String>,
}

/// The caller the access gate authenticated.
pub fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("this route is not behind the access gate".into()))
}

/// The caller, if an administrator; else 403.
pub fn admin(req: &HttpRequest) -> Result<Caller, ApiError> {
    let caller = caller(req)?;
    if caller.is_admin() {
        Ok(caller)
    } else {
        Err(ApiError::Forbidden(
            "only an administrator may do this".into(),
        ))
    }
}

/// Whose records the request touches.
pub fn owner(req: &HttpRequest) -> Result<Owner, ApiError> {
    Ok(session_key(req)?.owner)
}

/// The session a request addresses. Every id the request carries is checked, also one that
/// a source of higher precedence overrides, so a malformed id is never silently ignored.
pub fn session_key(req: &HttpRequest) -> Result<SessionKey, ApiError> {
    Ok(addressed_session(req)?.0)
}

/// [`session_key`], and whether the request named its conversation (query or header) rather
/// than using the implicit `default` one.
pub fn addressed_session(req: &HttpRequest) -> Result<(SessionKey, bool), ApiError> {
    let query: IdQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let query_client = given("client_id", query.client_id)?;
    let header_client = given("x-okc-client-id", header(req, "x-okc-client-id")?)?;
    let cookie_client = given(
        "the okc_client_id cookie",
        raw_cookie(req, "okc_client_id")?,
    )?;
    let query_conversation = given("conversation_id", query.conversation_id)?;
    let header_conversation = given(
        "x-okc-conversation-id",
        header(req, "x-okc-conversation-id")?,
    )?;
    let conversation = query_conversation.or(header_conversation);
    let named = conversation.is_some();
    let client_id = query_client
        .or(header_client)
        .or(cookie_client)
        .unwrap_or_else(|| DEFAULT_ID.to_string());
    let key = SessionKey {
        owner: caller(req)?.owner(&client_id),
        conversation_id: conversation.unwrap_or_else(|| DEFAULT_ID.to_string()),
    };
    super::trace::record_session(&key.owner, &key.conversation_id);
    Ok((key, named))
}

/// The header's value; one that is not visible ASCII is refused rather than ignored (it
/// would otherwise fall back to another identity).
fn header(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(|v| Some(v.to_string())).map_err(|_| {
            ApiError::BadRequest(format!(
                "the {name} header must be ASCII letters, digits, '.', '_' or '-'"
            ))
        }),
    }
}

/// The raw value of cookie `name`, read from the `Cookie` headers as sent (a header the
/// cookie parser would give up on must not make a malformed id disappear).
fn raw_cookie(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    let mut found = None;
    for value in req.headers().get_all(actix_web::http::header::COOKIE) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("the Cookie header must be visible ASCII".into()))?;
        for pair in text.split(';') {
            if let Some((key, value)) = pair.trim().split_once('=') {
                if key.trim() == name {
                    found = Some(value.trim().to_string());
                }
            }
        }
    }
    Ok(found)
}

/// An id the request gave (empty counts as not given), checked.
fn given(what: &str, raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(id) if !id.is_empty() => check_id(what, &id).map(Some),
        _ => Ok(None),
    }
}

/// The ids of `/api/conversations/{id}` and the session key: 1–128 bytes of
/// `[A-Za-z0-9._-]`, so they are safe as store keys and (prefixed) directory names.
pub fn check_id(what: &str, id: &str) -> Result<String, ApiError> {
    if id.is_empty() {
        return Err(ApiError::BadRequest(format!("{what} must not be empty")));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(ApiError::BadRequest(format!(
            "{what} is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ApiError::BadRequest(format!(
            "{what} may only contain letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_empty_means_not_given() {
        assert_eq!(given("c", None).unwrap(), None);
        assert_eq!(given("c", Some(String::new())).unwrap(), None);
        assert_eq!(check_id("c", "ab-1.x_Y").unwrap(), "ab-1.x_Y");
        // Directory names are prefixed, so dots alone are harmless.
        assert_eq!(check_id("c", "..").unwrap(), "..");
        assert!(check_id("c", " ab").is_err());
        assert!(check_id("c", "a/b").is_err());
        assert!(check_id("c", &"x".repeat(129)).is_err());
        assert!(check_id("c", "é").is_err());
        assert!(check_id("c", "").is_err());
    }
}
