//! The HTTP surface: the route table, shared handler state, and the only place that imports
//! actix-web. Handlers resolve who is asking, send one message to the runtime and shape the
//! reply; they never block and never hold session state.

pub mod access;
pub mod chat;
pub mod console;
pub mod context;
pub mod conversations;
pub mod deploy;
pub mod endpoints;
pub mod error;
pub mod files;
pub mod identity;
pub mod mcp;
pub mod openai;
pub mod permissions;
pub mod session;
pub mod sse;
pub mod trace;
pub mod unrouted;
pub mod workspace;

use std::sync::Arc;

use actix_web::web;

use crate::runtime::{Services, Sessions};

/// Largest JSON body accepted (chat messages included).
const JSON_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Largest conversation record: the console keeps every turn, version and (clipped) tool
/// output of a conversation in it, and a long agent task runs hundreds of tools.
const CONVERSATION_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// JSON bodies up to `limit` bytes, with the API's errors.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        // JSON only: a page elsewhere can post text/plain or forms without CORS, not JSON.
        .content_type_required(true)
        .error_handler(|err, _req| error::json_error(err).into())
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub sessions: Sessions,
    /// The names and origins the access gate accepts as this server's.
    pub own_names: Arc<access::OwnNames>,
    pub services: Arc<Services>,
}

/// The route table.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config(JSON_BODY_LIMIT))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _req| error::ApiError::BadRequest(err.to_string()).into()),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|err, _req| error::ApiError::BadRequest(err.to_string()).into()),
        )
        .route("/", web::get().to(console::root))
        .route("/ui", web::get().to(console::root))
        .route("/ui/{path:.*}", web::get().to(console::asset))
        .route("/healthz", web::get().to(session::healthz))
        .route("/metrics", web::get().to(session::metrics))
        .route("/openapi.json", web::get().to(session::openapi))
        .service(
            web::resource("/v1/chat/completions")
                .app_data(openai::json_config(JSON_BODY_LIMIT))
                .route(web::post().to(openai::completions)),
        )
        .route("/v1/models", web::get().to(openai::models))
        .route("/mcp", web::get().to(mcp::endpoint))
        .route("/mcp", web::post().to(mcp::endpoint))
        .route("/mcp", web::delete().to(mcp::endpoint))
        .route("/deploy/{id}", web::get().to(deploy::site_root))
        .route("/deploy/{id}/{path:.*}", web::get().to(deploy::site_file))
        .service(
            web::scope("/api")
                .route("/chat", web::post().to(chat::chat))
                .route("/config", web::get().to(endpoints::get))
                .route("/config", web::post().to(endpoints::update))
                .route("/chat/stop", web::post().to(chat::stop))
                .route("/chat/approve", web::post().to(permissions::approve))
                .route("/chat/events", web::get().to(chat::events))
                .service(
                    web::resource("/conversations")
                        .app_data(json_config(CONVERSATION_BODY_LIMIT))
                        .route(web::get().to(conversations::list))
                        .route(web::post().to(conversations::create)),
                )
                .service(
                    web::resource("/conversations/{id}")
                        .app_data(json_config(CONVERSATION_BODY_LIMIT))
                        .route(web::get().to(conversations::get))
                        .route(web::put().to(conversations::update))
                        .route(web::delete().to(conversations::delete)),
                )
                .route("/session/files", web::get().to(files::list))
                .route("/session/files", web::post().to(files::upload))
                .route(
                    "/session/workspace/snapshots",
                    web::get().to(workspace::snapshots),
                )
                .route(
                    "/session/workspace/snapshots",
                    web::post().to(workspace::create_snapshot),
                )
                .route(
                    "/session/workspace/restore",
                    web::post().to(workspace::restore),
                )
                .route(
                    "/session/workspace/branch",
                    web::post().to(workspace::branch),
                )
                .route("/session/workspace/files", web::get().to(workspace::files))
                .route("/session/workspace/file", web::get().to(workspace::file))
                .route("/session/info", web::get().to(session::info))
                .route("/session/permissions", web::put().to(permissions::set))
                .route("/session/boot", web::get().to(session::boot))
                .route("/session/history", web::delete().to(session::clear_history))
                .route("/session/history", web::get().to(context::history_page))
                .route("/session/compact", web::post().to(context::compact))
                .route(
                    "/session/history/switch",
                    web::post().to(session::switch_version),
                )
                .route(
                    "/session/history/{entry_id}",
                    web::get().to(session::history_entry),
                )
                .route("/sessions", web::get().to(session::sessions))
                .route("/me", web::get().to(session::me))
                .route("/mcp/servers", web::get().to(session::mcp_servers)),
        )
        .default_service(web::to(unrouted::unrouted));
}

/// Runs blocking work (sled, git2, file access) off the HTTP thread, within a time limit.
pub async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, error::ApiError>
where
    T: Send + 'static,
    E: Into<error::ApiError> + Send + 'static,
{
    crate::blocking::run(crate::blocking::STORE_WORK, work)
        .await
        .map_err(error::ApiError::from)?
        .map_err(Into::into)
}

/// A JSON body that may be left out: blank is `T::default()`, anything sent must be the
/// documented object (`what` names the request in the error).
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    what: &str,
) -> Result<T, error::ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| error::ApiError::BadRequest(format!("invalid {what} request: {e}")))
}
