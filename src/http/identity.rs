//! Who is asking: the client id and conversation id of a request, resolved as API.md says
//! (query, then header, then cookie, else "default") and validated so they are safe to use
//! as store keys and directory names.

use actix_web::HttpRequest;
use serde::Deserialize;

use super::error::ApiError;
use crate::runtime::SessionKey;

const MAX_ID_BYTES: usize = 128;
const DEFAULT_ID: &str = "default";

#[derive(Deserialize, Default)]
struct IdQuery {
    client_id: Option<String>,
    conversation_id: Option<String>,
}

/// The session a request addresses.
pub fn session_key(req: &HttpRequest) -> Result<SessionKey, ApiError> {
    let query: IdQuery = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let client = match query.client_id {
        Some(id) => Some(id),
        None => header(req, "x-okc-client-id")?,
    }
    .or_else(|| req.cookie("okc_client_id").map(|c| c.value().to_string()));
    let conversation = match query.conversation_id {
        Some(id) => Some(id),
        None => header(req, "x-okc-conversation-id")?,
    };
    let key = SessionKey {
        client_id: validate_id("client_id", client)?,
        conversation_id: validate_id("conversation_id", conversation)?,
    };
    super::trace::record_session(&key.client_id, &key.conversation_id);
    Ok(key)
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

/// Trims; empty means "default"; checks length and characters.
pub fn validate_id(what: &str, raw: Option<String>) -> Result<String, ApiError> {
    let id = raw.as_deref().map(str::trim).unwrap_or("");
    if id.is_empty() {
        return Ok(DEFAULT_ID.to_string());
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
    if id.bytes().all(|b| b == b'.') {
        return Err(ApiError::BadRequest(format!(
            "{what} must not be only dots"
        )));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_defaulted_and_checked() {
        assert_eq!(validate_id("c", None).unwrap(), "default");
        assert_eq!(
            validate_id("c", Some("  ab-1.x_Y ".into())).unwrap(),
            "ab-1.x_Y"
        );
        assert!(validate_id("c", Some("a/b".into())).is_err());
        assert!(validate_id("c", Some("..".into())).is_err());
        assert!(validate_id("c", Some("x".repeat(129))).is_err());
        assert!(validate_id("c", Some("é".into())).is_err());
    }
}
