//! The one `ResponseError`: every failure a handler can return, mapped to a status and a
//! `{"detail": "..."}` body. Only this file knows status codes; 5xx are logged here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::protocol::{ErrorBody, TurnFailure};
use crate::runtime::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// No identity (401, with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// An identity without the right (403): admin routes, cross-site requests.
    #[error("{0}")]
    Forbidden(String),
    /// A quota (429) or the server-wide turn limit (503), with `Retry-After`.
    #[error("{0}")]
    OverQuota(#[from] crate::auth::quotas::QuotaExceeded),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    /// The model endpoint failed (502).
    #[error("{0}")]
    ModelFailed(String),
    /// The model endpoint did not answer in time (504).
    #[error("{0}")]
    ModelTimedOut(String),
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::OverQuota(refusal) if refusal.server_wide => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::OverQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ModelFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::ModelTimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request rejected");
        }
        self.response_builder().json(ErrorBody {
            detail: self.to_string(),
        })
    }
}

impl ApiError {
    /// The status and the headers that go with it (`WWW-Authenticate`, `Retry-After`).
    fn response_builder(&self) -> actix_web::HttpResponseBuilder {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                response.insert_header((
                    actix_web::http::header::WWW_AUTHENTICATE,
                    "Bearer realm=\"okcvm\"",
                ));
            }
            ApiError::OverQuota(refusal) => {
                response.insert_header((
                    actix_web::http::header::RETRY_AFTER,
                    refusal.retry_after_secs.to_string(),
                ));
            }
            _ => {}
        }
        response
    }
}

impl ApiError {
    /// How a JSON caller learns that its turn failed.
    pub fn turn_failed(reason: TurnFailure, message: String) -> Self {
        match reason {
            TurnFailure::Cancelled => ApiError::Conflict(format!("the turn was {message}")),
            TurnFailure::ModelFailed => ApiError::ModelFailed(message),
            TurnFailure::ModelTimedOut => ApiError::ModelTimedOut(message),
            TurnFailure::Interrupted | TurnFailure::StreamCutShort => {
                ApiError::Unavailable(message)
            }
            TurnFailure::NotStored | TurnFailure::Internal => ApiError::Internal(message),
        }
    }
}

impl From<crate::blocking::BlockingError> for ApiError {
    fn from(error: crate::blocking::BlockingError) -> Self {
        match error {
            crate::blocking::BlockingError::TimedOut(_) => ApiError::Unavailable(error.to_string()),
            crate::blocking::BlockingError::Panicked(_) => ApiError::Internal(error.to_string()),
        }
    }
}

/// A workspace path a client gave: a missing file is 404, a path that is not allowed (outside,
/// through a symlink, not a regular file) 400, anything else the server's fault.
impl From<crate::workspace::OpenError> for ApiError {
    fn from(error: crate::workspace::OpenError) -> Self {
        use crate::workspace::OpenError;
        match error {
            OpenError::NotFound(_) => ApiError::NotFound(error.to_string()),
            OpenError::Io { .. } => ApiError::Internal(error.to_string()),
            OpenError::Exists(_) => ApiError::Conflict(error.to_string()),
            _ => ApiError::BadRequest(error.to_string()),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Busy => ApiError::Conflict(error.to_string()),
            SessionError::NotRunning => ApiError::Conflict(error.to_string()),
            SessionError::AtCapacity(_) => ApiError::Unavailable(error.to_string()),
            SessionError::TooManyAttachments(_) => ApiError::TooManyRequests(error.to_string()),
            SessionError::Gone => ApiError::Unavailable(error.to_string()),
            SessionError::Invalid(message) => ApiError::BadRequest(message),
            SessionError::NotFound(message) => ApiError::NotFound(message),
            SessionError::Conflict(message) => ApiError::Conflict(message),
            SessionError::Model(error) if error.is_timeout() => {
                ApiError::ModelTimedOut(error.to_string())
            }
            SessionError::Model(error) => ApiError::ModelFailed(error.to_string()),
            SessionError::Internal(message) => ApiError::Internal(message),
            SessionError::OverQuota(refusal) => ApiError::OverQuota(refusal),
        }
    }
}

impl From<crate::endpoints::EndpointsError> for ApiError {
    fn from(error: crate::endpoints::EndpointsError) -> Self {
        match error {
            crate::endpoints::EndpointsError::Invalid(message) => ApiError::BadRequest(message),
            crate::endpoints::EndpointsError::NotSetUp(message) => ApiError::Conflict(message),
            crate::endpoints::EndpointsError::Store(e) => ApiError::Internal(e.to_string()),
            crate::endpoints::EndpointsError::Secret(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl From<crate::workspace::git::GitError> for ApiError {
    fn from(error: crate::workspace::git::GitError) -> Self {
        use crate::workspace::git::GitError;
        match error {
            GitError::UnknownSnapshot(_) | GitError::UnknownBranch(_) => {
                ApiError::NotFound(error.to_string())
            }
            GitError::BranchExists(_) => ApiError::Conflict(error.to_string()),
            GitError::InvalidBranch(_) => ApiError::BadRequest(error.to_string()),
            GitError::Git(_) => ApiError::Internal(error.to_string()),
        }
    }
}

/// Body and query extractor failures are the client's mistake: 400 (413 when too large).
pub fn json_error(error: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError;
    match error {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(format!("request body is larger than {limit} bytes"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".into(),
        ),
        other => ApiError::BadRequest(format!("invalid request body: {other}")),
    }
}

/// An [`ApiError`] in OpenAI's envelope, for `/v1/*`: `{"error": {"message", "type", "code"}}`.
/// A failed or cancelled turn (409, 502, 504) carries `x-should-retry: false`: the turn ran,
/// and an SDK's automatic retry would run it again.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct OpenAiError(#[from] pub ApiError);

impl ResponseError for OpenAiError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (kind, code) = match status.as_u16() {
            400 | 413 | 415 => ("invalid_request_error", "invalid_request"),
            401 => ("authentication_error", "invalid_api_key"),
            403 => ("permission_error", "forbidden"),
            503 => ("api_error", "overloaded"),
            404 => ("invalid_request_error", "not_found"),
            409 => ("invalid_request_error", "conflict"),
            429 => ("rate_limit_error", "rate_limited"),
            502 | 504 => ("api_error", "model_endpoint_failed"),
            _ => ("api_error", "server_error"),
        };
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self.0, "request failed");
        }
        let mut response = self.0.response_builder();
        if matches!(status.as_u16(), 409 | 502 | 504) {
            response.insert_header(("x-should-retry", "false"));
        }
        response.json(serde_json::json!({
            "error": {"message": self.0.to_string(), "type": kind, "code": code}
        }))
    }
}

impl From<SessionError> for OpenAiError {
    fn from(error: SessionError) -> Self {
        OpenAiError(error.into())
    }
}
