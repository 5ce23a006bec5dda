//! Workspace routes: snapshots, restore, branches, the file tree and file downloads.
//!
//! Git work and directory walks run on the blocking pool. Changing the workspace while the
//! session's turn runs is refused (409). Downloads resolve the requested path through the
//! workspace's confinement rules, so nothing outside `/mnt/okcomputer/` can be read.

use std::path::Path;
use std::sync::Arc;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::identity::session_key;
use super::{ask, blocking, AppState};
use crate::protocol::{size_display, WorkspaceState};
use crate::runtime::messages::ChangeWorkspace;
use crate::runtime::SessionKey;
use crate::workspace::git::GitError;
use crate::workspace::{git, model_path_of};

const DEFAULT_SNAPSHOT_LIMIT: usize = 20;
const MAX_SNAPSHOT_LIMIT: usize = 500;
/// Files listed by the tree route; a workspace with more is cut with a flag.
const MAX_TREE_ENTRIES: usize = 10_000;

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
}

#[derive(Deserialize)]
pub struct SnapshotBody {
    label: Option<String>,
}

#[derive(Deserialize)]
pub struct RestoreBody {
    snapshot_id: Option<String>,
    branch: Option<String>,
    #[serde(default = "yes")]
    checkout: bool,
}

#[derive(Deserialize)]
pub struct BranchBody {
    branch: String,
    snapshot_id: Option<String>,
    #[serde(default = "yes")]
    checkout: bool,
}

#[derive(Deserialize)]
pub struct FileQuery {
    path: String,
}

fn yes() -> bool {
    true
}

/// The session's `workspace_state`.
pub async fn workspace_state(
    state: &AppState,
    key: &SessionKey,
    limit: usize,
) -> Result<WorkspaceState, ApiError> {
    let root = state.services.workspace_for(key).root().to_path_buf();
    let policy = state.services.snapshot_policy.clone();
    blocking(move || {
        if !root.exists() {
            return Ok(git::empty_state());
        }
        git::state(&root, limit, &policy)
    })
    .await
}

pub async fn snapshots(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_SNAPSHOT_LIMIT)
        .clamp(1, MAX_SNAPSHOT_LIMIT);
    Ok(HttpResponse::Ok().json(workspace_state(&state, &key, limit).await?))
}

pub async fn create_snapshot(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Option<web::Json<SnapshotBody>>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let label = body
        .and_then(|b| b.into_inner().label)
        .unwrap_or_else(|| "Manual snapshot".into());
    if label.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "label must be at most 200 characters".into(),
        ));
    }
    let root = state.services.workspace_for(&key).root().to_path_buf();
    let policy = state.services.snapshot_policy.clone();
    change_workspace(&state, &key, move || {
        git::snapshot(&root, &label, true, &policy).map(drop)
    })
    .await?;
    Ok(HttpResponse::Ok().json(workspace_state(&state, &key, DEFAULT_SNAPSHOT_LIMIT).await?))
}

pub async fn restore(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RestoreBody>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let body = body.into_inner();
    if body.snapshot_id.is_none() && body.branch.is_none() {
        return Err(ApiError::BadRequest(
            "give a snapshot_id or a branch".into(),
        ));
    }
    let root = state.services.workspace_for(&key).root().to_path_buf();
    let policy = state.services.snapshot_policy.clone();
    change_workspace(&state, &key, move || {
        match (&body.snapshot_id, &body.branch) {
            (Some(id), _) => git::restore_snapshot(&root, id.trim(), body.checkout, &policy),
            (None, Some(branch)) => {
                git::switch_branch(&root, branch.trim(), body.checkout, &policy)
            }
            (None, None) => Ok(()),
        }
    })
    .await?;
    let workspace_state = workspace_state(&state, &key, DEFAULT_SNAPSHOT_LIMIT).await?;
    Ok(HttpResponse::Ok().json(json!({ "workspace_state": workspace_state })))
}

pub async fn branch(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<BranchBody>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let body = body.into_inner();
    git::check_branch_name(body.branch.trim())?;
    let root = state.services.workspace_for(&key).root().to_path_buf();
    let policy = state.services.snapshot_policy.clone();
    change_workspace(&state, &key, move || {
        git::create_branch(
            &root,
            body.branch.trim(),
            body.snapshot_id.as_deref().map(str::trim),
            body.checkout,
            &policy,
        )
    })
    .await?;
    let workspace_state = workspace_state(&state, &key, DEFAULT_SNAPSHOT_LIMIT).await?;
    Ok(HttpResponse::Ok().json(json!({ "workspace_state": workspace_state })))
}

/// The workspace's files (without `.git`), with sizes.
pub async fn files(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let root = state.services.workspace_for(&key).root().to_path_buf();
    let (entries, truncated) = blocking(move || Ok::<_, ApiError>(walk(&root))).await?;
    Ok(HttpResponse::Ok().json(json!({
        "root": crate::workspace::MOUNT,
        "files": entries,
        "truncated": truncated,
    })))
}

/// One file of the workspace, with its content type.
pub async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<FileQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let workspace = state.services.workspace_for(&key);
    let requested = query.into_inner().path;
    let path = workspace
        .resolve(&requested)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    send_file(
        &path,
        "inline",
        &format!("no file {requested} in the workspace"),
    )
    .await
}

/// Streams the file at `path` with its content type, as an opaque origin: a page may run its
/// scripts but never acts as the console (no cookies, no same-origin access). `disposition`
/// is `inline` or empty (no header); a missing file or a folder answers 404 with `missing`.
pub async fn send_file(
    path: &Path,
    disposition: &str,
    missing: &str,
) -> Result<HttpResponse, ApiError> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(_) => return Err(ApiError::NotFound(missing.to_string())),
    };
    let is_file = file.metadata().await.map(|m| m.is_file()).unwrap_or(false);
    if !is_file {
        return Err(ApiError::NotFound(missing.to_string()));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let content_type = mime_guess::from_path(&name).first_or_octet_stream();
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, content_type.essence_str().to_string()))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads",
        ))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if !disposition.is_empty() {
        let safe_name: String = name
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        response.insert_header((
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename=\"{safe_name}\""),
        ));
    }
    Ok(response.streaming(tokio_util::io::ReaderStream::new(file)))
}

/// Runs a git operation on the workspace through its session, so that no turn runs meanwhile.
async fn change_workspace(
    state: &AppState,
    key: &SessionKey,
    work: impl Fn() -> Result<(), GitError> + Send + Sync + 'static,
) -> Result<(), ApiError> {
    let change = ChangeWorkspace {
        work: Arc::new(work),
    };
    match ask(state, key, change).await {
        Ok(done) => Ok(done?),
        Err(ApiError::Conflict(_)) => Err(ApiError::Conflict(
            "a turn is running in this session; stop it or wait before changing the workspace"
                .into(),
        )),
        Err(error) => Err(error),
    }
}

fn walk(root: &Path) -> (Vec<serde_json::Value>, bool) {
    let mut entries = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut children: Vec<_> = read.flatten().collect();
        children.sort_by_key(|e| e.file_name());
        for child in children.into_iter().rev() {
            let path = child.path();
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            if rel.as_os_str() == ".git" {
                continue;
            }
            let Ok(meta) = child.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            if entries.len() >= MAX_TREE_ENTRIES {
                return (entries, true);
            }
            let size = if meta.is_file() { meta.len() } else { 0 };
            entries.push(json!({
                "path": model_path_of(rel),
                "relative_path": rel.to_string_lossy(),
                "name": child.file_name().to_string_lossy(),
                "is_dir": meta.is_dir(),
                "size_bytes": size,
                "size_display": size_display(size),
                "modified": meta.modified().ok().map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            }));
        }
    }
    entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    (entries, false)
}
