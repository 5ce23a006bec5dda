//! `GET/POST /api/session/files`: uploads into `/mnt/okcomputer/upload/<name>`.
//!
//! The upload folder is opened once through the confined opener; multipart parts are streamed
//! to a temporary file in it and renamed into place (relative to that descriptor) only when
//! the whole batch is accepted: a bad name, a duplicate, too many files (400)
//! or a file over the size limit (413) leaves nothing of the batch on disk. Names are reduced
//! to a safe last component.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::error::ApiError;
use super::identity::session_key;
use super::{blocking, AppState};
use crate::runtime::messages::GetInfo;
use crate::runtime::session::upload_entries;
use crate::store::UploadRecord;
use crate::workspace::{Kind, Write, UPLOAD_DIR};

const MAX_NAME_BYTES: usize = 200;

pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let store = state.services.store.clone();
    let records = blocking(move || store.list_uploads(&key)).await?;
    let limits = &state.services.config.uploads;
    Ok(HttpResponse::Ok().json(json!({
        "files": upload_entries(&records),
        "limit": limits.max_files,
        "max_file_size_mb": limits.max_file_size_mb,
        "max_file_size_bytes": limits.max_file_size_mb * 1024 * 1024,
    })))
}

/// A part written to a temporary file, waiting for the batch to be accepted.
struct Staged {
    name: String,
    temp: PathBuf,
    size: u64,
}

pub async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let key = session_key(&req)?;
    let workspace = state.services.workspace_for(&key);
    let limits = &state.services.config.uploads;
    let max_bytes = limits.max_file_size_mb * 1024 * 1024;
    let upload_dir = blocking(move || {
        workspace.ensure()?;
        workspace.open()?.create_dir_all(Path::new(UPLOAD_DIR), UPLOAD_DIR)
    })
    .await
    .map_err(|error| match error {
        ApiError::BadRequest(why) => ApiError::Conflict(format!(
            "the workspace's {UPLOAD_DIR}/ folder cannot take uploads ({why}); it was replaced by something that is not a folder of the workspace"
        )),
        other => other,
    })?;
    let upload_dir = Arc::new(upload_dir);
    let store = state.services.store.clone();
    let session = key.clone();
    let existing = blocking(move || store.list_uploads(&session)).await?;

    let quotas = state.services.quotas.clone();
    // Bytes counted against the owner's daily uploads; given back if the upload fails.
    let mut charged = 0u64;
    let mut staged: Vec<Staged> = Vec::new();
    let result = async {
        while let Some(mut field) = payload
            .try_next()
            .await
            .map_err(|e| ApiError::BadRequest(format!("invalid multipart body: {e}")))?
        {
            let disposition = field.content_disposition().cloned();
            let part = disposition.as_ref().and_then(|d| d.get_name());
            if part != Some("files") {
                return Err(ApiError::BadRequest(format!(
                    "unexpected form field {:?}: an upload has only `files` parts",
                    part.unwrap_or("")
                )));
            }
            let raw_name = disposition
                .as_ref()
                .and_then(|d| d.get_filename())
                .unwrap_or("");
            let name = safe_file_name(raw_name).ok_or_else(|| {
                ApiError::BadRequest(format!("invalid or empty file name {raw_name:?}"))
            })?;
            if staged.iter().any(|s| s.name == name) {
                return Err(ApiError::Conflict(format!(
                    "the file name {name} appears twice in this upload"
                )));
            }
            let new_names = staged.len()
                + 1
                + existing
                    .iter()
                    .filter(|e| e.name != name && !staged.iter().any(|s| s.name == e.name))
                    .count();
            if new_names > limits.max_files {
                return Err(ApiError::BadRequest(format!(
                    "at most {} files may be uploaded to a session",
                    limits.max_files
                )));
            }
            let temp = PathBuf::from(format!(".incoming-{}", uuid::Uuid::new_v4().simple()));
            let (dir, temp_name) = (upload_dir.clone(), temp.clone());
            let file =
                blocking(move || dir.create_file(&temp_name, UPLOAD_DIR, Write::New)).await?;
            let mut file = tokio::fs::File::from_std(file);
            staged.push(Staged {
                name: name.clone(),
                temp,
                size: 0,
            });
            let mut size = 0u64;
            while let Some(chunk) = field
                .try_next()
                .await
                .map_err(|e| ApiError::BadRequest(format!("upload interrupted: {e}")))?
            {
                size += chunk.len() as u64;
                quotas.charge_upload(&key.owner, chunk.len() as u64)?;
                charged += chunk.len() as u64;
                if size > max_bytes {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "{name} is larger than the limit of {} MB",
                        limits.max_file_size_mb
                    )));
                }
                file.write_all(&chunk)
                    .await
                    .map_err(|e| ApiError::Internal(format!("cannot store the upload: {e}")))?;
            }
            file.flush()
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Some(last) = staged.last_mut() {
                last.size = size;
            }
        }
        if staged.is_empty() {
            return Err(ApiError::BadRequest(
                "no files in the upload (use the multipart field `files`)".into(),
            ));
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        quotas.refund_upload(&key.owner, charged);
        let (dir, temps) = (
            upload_dir.clone(),
            staged.iter().map(|s| s.temp.clone()).collect::<Vec<_>>(),
        );
        let _ = blocking(move || {
            for temp in temps {
                dir.remove_file(&temp, UPLOAD_DIR)?;
            }
            Ok::<_, ApiError>(())
        })
        .await;
        return Err(error);
    }

    let mut summaries = Vec::new();
    let uploaded_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut records = Vec::new();
    for part in &staged {
        let (dir, temp, name) = (upload_dir.clone(), part.temp.clone(), part.name.clone());
        blocking(move || {
            let target = Path::new(&name);
            if matches!(dir.kind(target, &name)?, Some(Kind::Dir | Kind::Symlink)) {
                return Err(ApiError::BadRequest(format!("{name} cannot be replaced")));
            }
            // renameat replaces the name itself: a symlink swapped in meanwhile is replaced,
            // never followed.
            dir.rename(&temp, target, &name).map_err(ApiError::from)
        })
        .await?;
        summaries.push(format!(
            "Uploaded {} ({}) to /mnt/okcomputer/{UPLOAD_DIR}/{}",
            part.name,
            crate::protocol::size_display(part.size),
            part.name
        ));
        records.push(UploadRecord {
            name: part.name.clone(),
            size_bytes: part.size,
            uploaded_at: uploaded_at.clone(),
        });
    }
    let store = state.services.store.clone();
    let session = key.clone();
    let all = blocking(move || {
        for record in &records {
            store.put_upload(&session, record)?;
        }
        store.flush()?;
        store.list_uploads(&session)
    })
    .await?;
    let info = state.sessions.ask(&key, GetInfo).await?;
    Ok(HttpResponse::Ok().json(json!({
        "files": upload_entries(&all),
        "summaries": summaries,
        "system_prompt": info.system_prompt,
        "limit": limits.max_files,
        "max_file_size_mb": limits.max_file_size_mb,
        "max_file_size_bytes": max_bytes,
    })))
}

/// The last path component, without control characters; `None` if nothing usable is left.
pub fn safe_file_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." || cleaned.starts_with(".incoming-")
    {
        return None;
    }
    let mut name = String::new();
    for c in cleaned.chars() {
        if name.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        name.push(c);
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reduced_to_a_safe_last_component() {
        for (raw, want) in [
            ("report.pdf", Some("report.pdf")),
            ("../../etc/passwd", Some("passwd")),
            ("C:\\Users\\x\\data.csv", Some("data.csv")),
            ("a\u{0}b\nc.txt", Some("abc.txt")),
            ("..", None),
            ("dir/", None),
            ("   ", None),
            ("", None),
        ] {
            assert_eq!(safe_file_name(raw).as_deref(), want, "{raw:?}");
        }
        assert_eq!(safe_file_name(&"é".repeat(300)).unwrap().len(), 200);
    }
}
