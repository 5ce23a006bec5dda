//! The web console: static files compiled into the binary, served under `/ui/`.

use actix_web::{http::header, web, HttpResponse};

use super::error::ApiError;

/// `(path under static/, content type, bytes)` for every console file.
const ASSETS: &[(&str, &str, &[u8])] = &[(
    "index.html",
    "text/html; charset=utf-8",
    include_bytes!("../../static/index.html"),
)];

pub async fn root() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    let wanted = if path.is_empty() {
        "index.html"
    } else {
        path.as_str()
    };
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == wanted)
        .map(|(_, content_type, bytes)| {
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, *content_type))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(*bytes)
        })
        .ok_or_else(|| ApiError::NotFound(format!("no console file {wanted}")))
}
