//! Requests no route takes: 405 with `Allow` when the path is one the API serves with other
//! methods, else 404. The routes are read from the OpenAPI document, which a test keeps equal
//! to the route table.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use super::error::ApiError;
use crate::protocol::ErrorBody;

/// One documented path: its segments (`None` for a `{parameter}`) and its methods.
struct Route {
    segments: Vec<Option<String>>,
    /// The last parameter takes the rest of the path (`{path}`).
    rest: bool,
    methods: Vec<String>,
}

static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    let document: Value = serde_json::from_str(super::session::OPENAPI).unwrap_or_default();
    let Some(paths) = document["paths"].as_object() else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, operations)| {
            let segments: Vec<Option<String>> = path
                .trim_start_matches('/')
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                .collect();
            Route {
                rest: path.ends_with("{path}"),
                segments,
                methods: operations
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
});

impl Route {
    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| s.is_some()).count()
    }

    fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if self.rest {
            if parts.len() < self.segments.len() {
                return false;
            }
        } else if parts.len() != self.segments.len() {
            return false;
        }
        self.segments
            .iter()
            .zip(&parts)
            .all(|(segment, part)| segment.as_deref().is_none_or(|s| s == *part))
    }
}

/// The methods the API serves `path` with (empty when it serves no such path). A literal
/// segment wins over a parameter (`/api/session/history/switch` is not `{entry_id}`).
fn allowed_methods(path: &str) -> Vec<String> {
    let matching: Vec<&Route> = ROUTES.iter().filter(|route| route.matches(path)).collect();
    let most_literal = matching.iter().map(|r| r.literals()).max().unwrap_or(0);
    let mut methods: Vec<String> = matching
        .iter()
        .filter(|route| route.literals() == most_literal)
        .flat_map(|route| route.methods.iter().cloned())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

pub async fn unrouted(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() || allowed.iter().any(|m| m == req.method().as_str()) {
        return Err(ApiError::NotFound(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )));
    }
    let allow = allowed.join(", ");
    Ok(HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow.clone()))
        .json(ErrorBody {
            detail: format!(
                "{} {} is not served; allowed: {allow}",
                req.method(),
                req.path()
            ),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths_answer_with_their_methods() {
        assert_eq!(allowed_methods("/healthz"), ["GET"]);
        assert_eq!(
            allowed_methods("/api/conversations/abc"),
            ["DELETE", "GET", "PUT"]
        );
        assert_eq!(allowed_methods("/deploy/abc/css/site.css"), ["GET"]);
        assert_eq!(allowed_methods("/api/session/history/switch"), ["POST"]);
        assert!(allowed_methods("/nowhere").is_empty());
        assert!(allowed_methods("/api/conversations/a/b").is_empty());
    }
}
