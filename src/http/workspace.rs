//! Workspace routes: snapshots, restore, branches, the file tree and file downloads.
//!
//! Git work and directory walks run on the blocking pool. Changing the workspace while the
//! session's turn runs is refused (409). Downloads and the tree go through the confined
//! opener (`workspace::open`), so nothing outside `/mnt/okcomputer/` can be read, and only
//! regular files are sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::identity::session_key;
use super::{blocking, AppState};
use crate::auth::SessionKey;
use crate::protocol::{size_display, WorkspaceState};
use crate::runtime::messages::{ChangeWorkspace, WorkspaceEffect};
use crate::workspace::git::GitError;
use crate::workspace::{git, model_path_of, Kind, ModelPath, OpenError, Workspace};

const DEFAULT_SNAPSHOT_LIMIT: usize = 20;
const MAX_SNAPSHOT_LIMIT: usize = 500;
/// Files listed by the tree route; a workspace with more is cut with a flag.
const MAX_TREE_ENTRIES: usize = 10_000;

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    let limit = query.limit.unwrap_or(DEFAULT_SNAPSHOT_LIMIT);
    if !(1..=MAX_SNAPSHOT_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_SNAPSHOT_LIMIT}"
        )));
    }
    Ok(HttpResponse::Ok().json(workspace_state(&state, &key, limit).await?))
}

pub async fn create_snapshot(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let body: SnapshotBody = super::optional_json(&body, "snapshot")?;
    let label = body.label.unwrap_or_else(|| "Manual snapshot".into());
    if label.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "label must be at most 200 characters".into(),
        ));
    }
    let root = state.services.workspace_for(&key).root().to_path_buf();
    let policy = state.services.snapshot_policy.clone();
    change_workspace(&state, &key, WorkspaceEffect::Reads, move || {
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
    let workspace = state.services.workspace_for(&key);
    let policy = state.services.snapshot_policy.clone();
    let effect = if body.checkout {
        WorkspaceEffect::Rewrites
    } else {
        WorkspaceEffect::Reads
    };
    change_workspace(&state, &key, effect, move || {
        let root = workspace.root();
        match (&body.snapshot_id, &body.branch) {
            (Some(id), Some(branch)) => {
                git::branch_at_snapshot(root, branch, id, body.checkout, &policy)
            }
            (Some(id), None) => git::restore_snapshot(root, id, body.checkout, &policy),
            (None, Some(branch)) => git::switch_branch(root, branch, body.checkout, &policy),
            (None, None) => Ok(()),
        }?;
        give_checkout_to_sandbox(&workspace);
        Ok(())
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
    git::check_branch_name(&body.branch)?;
    let workspace = state.services.workspace_for(&key);
    let policy = state.services.snapshot_policy.clone();
    let effect = if body.checkout {
        WorkspaceEffect::Rewrites
    } else {
        WorkspaceEffect::Reads
    };
    change_workspace(&state, &key, effect, move || {
        git::create_branch(
            workspace.root(),
            &body.branch,
            body.snapshot_id.as_deref().map(str::trim),
            body.checkout,
            &policy,
        )?;
        give_checkout_to_sandbox(&workspace);
        Ok(())
    })
    .await?;
    let workspace_state = workspace_state(&state, &key, DEFAULT_SNAPSHOT_LIMIT).await?;
    Ok(HttpResponse::Ok().json(json!({ "workspace_state": workspace_state })))
}

/// The workspace's files (without `.git`), with sizes.
pub async fn files(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let workspace = state.services.workspace_for(&key);
    let (entries, truncated) = blocking(move || walk(&workspace)).await?;
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
    let path = ModelPath::parse(&requested).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let name = file_name(&path.relative);
    let opened = crate::blocking::run(crate::blocking::FILE_WORK, move || {
        workspace.open_file(&path)
    })
    .await?;
    match opened {
        Ok(file) => Ok(send_file(file, &name, "inline")),
        Err(OpenError::NotFound(_) | OpenError::IsDir(_) | OpenError::NotDir(_)) => Err(
            ApiError::NotFound(format!("no file {requested} in the workspace")),
        ),
        Err(error) => Err(error.into()),
    }
}

/// The last name of a path, for the content type and the download name.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Streams an opened regular file with the content type of `name`, as an opaque origin: a
/// page may run its scripts but never acts as the console (no cookies, no same-origin
/// access). `disposition` is `inline` or empty (no header).
pub fn send_file(file: std::fs::File, name: &str, disposition: &str) -> HttpResponse {
    let content_type = mime_guess::from_path(name).first_or_octet_stream();
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
    let file = tokio::fs::File::from_std(file);
    response.streaming(tokio_util::io::ReaderStream::new(file))
}

/// Files git wrote belong to the server: hand them to the sandbox's user so agent code can
/// change them again.
fn give_checkout_to_sandbox(workspace: &Workspace) {
    if let Ok(dir) = workspace.open() {
        dir.give_tree_to_owner();
    }
}

/// Runs a git operation on the workspace through its session, so that no turn runs meanwhile.
async fn change_workspace(
    state: &AppState,
    key: &SessionKey,
    effect: WorkspaceEffect,
    work: impl Fn() -> Result<(), GitError> + Send + Sync + 'static,
) -> Result<(), ApiError> {
    let change = ChangeWorkspace {
        work: Arc::new(work),
        effect,
    };
    match state
        .sessions
        .ask(key, change)
        .await
        .map_err(ApiError::from)
    {
        Ok(done) => Ok(done?),
        Err(ApiError::Conflict(_)) => Err(ApiError::Conflict(
            "a turn is running in this session; stop it or wait before changing the workspace"
                .into(),
        )),
        Err(error) => Err(error),
    }
}

/// Every entry below the workspace root through the confined opener (symlinks are listed,
/// never followed), at most `MAX_TREE_ENTRIES`.
fn walk(workspace: &Workspace) -> Result<(Vec<serde_json::Value>, bool), ApiError> {
    let mut entries = Vec::new();
    let root = match workspace.open() {
        Ok(root) => root,
        Err(_) => return Ok((entries, false)), // no workspace yet
    };
    let mut stack = vec![(PathBuf::new(), root)];
    while let Some((relative, dir)) = stack.pop() {
        let Ok(children) = dir.entries() else {
            continue;
        };
        for child in children.into_iter().rev() {
            let rel = relative.join(&child.name);
            if rel.as_os_str() == ".git" {
                continue;
            }
            let is_dir = child.kind == Kind::Dir;
            if is_dir {
                if let Ok(sub) = dir.open_dir(Path::new(&child.name), "") {
                    stack.push((rel.clone(), sub));
                }
            }
            if entries.len() >= MAX_TREE_ENTRIES {
                return Ok((entries, true));
            }
            let size = if child.kind == Kind::File {
                child.size
            } else {
                0
            };
            let modified = chrono::DateTime::<chrono::Utc>::from_timestamp(child.modified, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            entries.push(json!({
                "path": model_path_of(&rel),
                "relative_path": rel.to_string_lossy(),
                "name": child.name.to_string_lossy(),
                "is_dir": is_dir,
                "size_bytes": size,
                "size_display": size_display(size),
                "modified": modified,
            }));
        }
    }
    entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Ok((entries, false))
}
