//! The web console: every file under `static/` compiled into the binary, served under `/ui/`.
//! No build step and nothing fetched from elsewhere; unknown paths are 404.

use actix_web::{http::header, web, HttpResponse};
use rust_embed::RustEmbed;

use super::error::ApiError;

/// The console runs only its own scripts; previews go in sandboxed frames.
const CONSOLE_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data: blob:; media-src 'self' blob:; frame-src 'self' blob: data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub async fn root() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    let wanted = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path
    };
    let file = Assets::get(&wanted)
        .ok_or_else(|| ApiError::NotFound(format!("no console file {wanted}")))?;
    let content_type = file.metadata.mimetype().to_string();
    let content_type = if content_type.starts_with("text/") || content_type.ends_with("javascript")
    {
        format!("{content_type}; charset=utf-8")
    } else {
        content_type
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONSOLE_CSP))
        .body(file.data.into_owned()))
}
