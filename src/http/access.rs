//! The gate in front of every handler. It refuses state-changing requests from other sites
//! (CSRF: an `Origin` that is neither this server's nor one of `[server] cors_origins`),
//! and authenticates every request but the console's files, `/healthz`, `/openapi.json` and
//! deployed sites per `[auth]`, leaving the [`Caller`] in the request for `identity`. Nothing
//! behind it reads credentials again.
//!
//! Credentials: `Authorization: Bearer <token>`, or the console's `okcvm_token` cookie
//! (SameSite=Strict; it lets media, downloads and frames load) in mode "token"; the trusted
//! proxy's user header in mode "proxy"; nothing in mode "none". `/metrics` also takes the
//! token of `[auth] metrics_token_env`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};

use super::error::{ApiError, OpenAiError};
use super::AppState;
use crate::auth::{Authenticator, Caller};
use crate::config::AuthMode;

/// The cookie the console keeps its token in, for requests that cannot carry a header.
pub const TOKEN_COOKIE: &str = "okcvm_token";

/// The names and origins this server knows itself by, worked out once from `[server]`.
pub struct OwnNames {
    /// Bound to every interface: any host name is this server's.
    any_host: bool,
    configured_host: String,
    public_host: Option<String>,
    public_origin: Option<String>,
}

impl OwnNames {
    pub fn new(server: &crate::config::ServerConfig) -> Self {
        let configured_host = server.host.trim().trim_matches(['[', ']']).to_string();
        let public = server
            .public_url
            .as_deref()
            .and_then(|url| reqwest::Url::parse(url).ok());
        Self {
            any_host: configured_host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified()),
            configured_host,
            public_host: public.as_ref().and_then(|url| {
                url.host_str()
                    .map(|h| h.trim_matches(['[', ']']).to_string())
            }),
            public_origin: public.map(|url| url.origin().ascii_serialization()),
        }
    }
}

/// Left in a `/metrics` request that presented the metrics token.
#[derive(Clone, Copy)]
pub struct MetricsGrant;

/// The middleware (for `App::wrap(from_fn(gate))`).
pub async fn gate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if let Err(refused) = check_host(&req, &state).and_then(|()| check_origin(&req, &state)) {
        return Ok(reject(req, refused));
    }
    // The path as the router sees it (percent-decoded), so `/%61pi/…` is `/api/…` here too.
    let path = req.match_info().as_str();
    if path == "/metrics" && bearer(&req).is_some_and(|t| state.services.auth.is_metrics_token(t)) {
        req.extensions_mut().insert(MetricsGrant);
    } else if !is_public(path) {
        match authenticate(&req, &state.services.auth) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
            }
            Err(refused) => return Ok(reject(req, refused)),
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// What anyone may fetch: the console's files, health, the API description and deployed
/// sites (public by their unguessable address). Everything else needs an identity.
fn is_public(path: &str) -> bool {
    matches!(path, "/" | "/ui" | "/healthz" | "/openapi.json")
        || path.starts_with("/ui/")
        || path.starts_with("/deploy/")
}

fn reject<B>(
    req: ServiceRequest,
    error: ApiError,
) -> ServiceResponse<actix_web::body::EitherBody<B>> {
    let response = if req.path().starts_with("/v1/") {
        OpenAiError(error).error_response()
    } else {
        error.error_response()
    };
    req.into_response(response).map_into_right_body()
}

fn authenticate(req: &ServiceRequest, auth: &Authenticator) -> Result<Caller, ApiError> {
    let found = match auth.mode() {
        AuthMode::None => Ok(Authenticator::anonymous()),
        AuthMode::Token => {
            let cookie = req.cookie(TOKEN_COOKIE);
            let token = bearer(req).or(cookie.as_ref().map(|c| c.value()));
            auth.by_token(token)
        }
        AuthMode::Proxy => {
            // One value only: a proxy that appends to a client's header must not let the
            // client's value through.
            let mut values = req.headers().get_all(auth.user_header());
            let named = match (values.next(), values.next()) {
                (Some(value), None) => value.to_str().ok(),
                _ => None,
            };
            auth.by_proxy(req.peer_addr().map(|a| a.ip()), named)
        }
    };
    found.map_err(|why| ApiError::Unauthorized(why.to_string()))
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A request that changes state and names an origin must come from this server's pages or
/// from an origin the operator listed. Requests without `Origin` (scripts, SDKs) pass.
fn check_origin(req: &ServiceRequest, state: &AppState) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        return if cross_site {
            Err(ApiError::Forbidden("cross-site request refused".into()))
        } else {
            Ok(())
        };
    };
    let origin = origin.to_str().unwrap_or("null");
    let names = &state.own_names;
    let own_host = req.connection_info().host().to_string();
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    let same_origin = !own_host.is_empty() && authority.eq_ignore_ascii_case(&own_host);
    let public_origin = names
        .public_origin
        .as_deref()
        .is_some_and(|public| public.eq_ignore_ascii_case(origin));
    let listed = state
        .services
        .config
        .server
        .cors_origins
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(origin));
    if same_origin || public_origin || listed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "cross-site request refused: pages from {origin} may not change anything here \
             (an operator can allow an origin with [server] cors_origins)"
        )))
    }
}

/// Without authentication, a page on any site could reach a loopback server through a name
/// it points at 127.0.0.1 (DNS rebinding) and act as its owner, so in mode "none" the
/// server answers only to loopback names, its configured host and `public_url`'s host. A
/// server bound to every interface (a trusted network) answers to any name.
fn check_host(req: &ServiceRequest, state: &AppState) -> Result<(), ApiError> {
    let names = &state.own_names;
    if state.services.auth.mode() != AuthMode::None || names.any_host {
        return Ok(());
    }
    // The Host header as sent (never X-Forwarded-Host: a rebound page may set that).
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
    else {
        return Ok(());
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let known = crate::config::is_loopback_name(name)
        || name.eq_ignore_ascii_case(&names.configured_host)
        || names
            .public_host
            .as_deref()
            .is_some_and(|public| public.eq_ignore_ascii_case(name));
    if known {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this server answers only to its own address, not to {name:?} (set [server] \
             public_url to the name clients use)"
        )))
    }
}

/// CORS grants for the origins in `[server] cors_origins` only; any other origin gets no
/// CORS headers (its requests still reach non-browser clients as before).
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-okc-client-id"),
            header::HeaderName::from_static("x-okc-conversation-id"),
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("x-should-retry"),
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}
