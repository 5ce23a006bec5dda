//! `/deploy/<id>/…`: the files of websites published by `mshtools-deploy_website`.
//!
//! Anyone with the address may read a site (that is what publishing means); ids are long
//! random hex, checked before they touch the file system. Paths are confined to the site's
//! folder (`..`, absolute paths and backslashes → 400). Pages are served as an opaque origin,
//! like workspace previews, so a site's scripts can never act as the console.

use actix_web::{http::header, web, HttpResponse};

use super::error::ApiError;
use super::workspace::{file_name, send_file};
use super::AppState;
use crate::tools::deploy::is_deployment_id;
use crate::workspace::{Dir, Kind, OpenError};

/// `GET /deploy/{id}`: the site lives at `/deploy/{id}/`, so relative links resolve there.
pub async fn site_root(id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if !is_deployment_id(&id) {
        return Err(ApiError::NotFound(format!(
            "no deployed site {}",
            id.as_str()
        )));
    }
    Ok(HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, format!("/deploy/{}/", id.as_str())))
        .finish())
}

/// `GET /deploy/{id}/{path}` (the index page for an empty path or a folder).
pub async fn site_file(
    state: web::Data<AppState>,
    params: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, path) = params.into_inner();
    let missing = || ApiError::NotFound(format!("no deployed site {id}"));
    let site = state
        .services
        .tool_services
        .deployer
        .site_dir(&id)
        .ok_or_else(missing)?;
    let mut relative = site_path(&path)?;
    let shown = path.clone();
    let opened = crate::blocking::run(crate::blocking::FILE_WORK, move || {
        let dir = Dir::open_root(&site, None).map_err(|_| OpenError::NotFound(String::new()))?;
        if path.is_empty() || path.ends_with('/') || dir.kind(&relative, &path)? == Some(Kind::Dir)
        {
            relative.push("index.html");
        }
        let name = file_name(&relative);
        dir.open_file(&relative, &path).map(|file| (file, name))
    })
    .await?;
    match opened {
        Ok((file, name)) => Ok(send_file(file, &name, "")),
        Err(OpenError::NotFound(_) | OpenError::IsDir(_) | OpenError::NotDir(_)) => {
            Err(ApiError::NotFound(format!("no file {shown} in site {id}")))
        }
        Err(error) => Err(error.into()),
    }
}

/// The path inside a site, refused if it could leave the site's folder.
fn site_path(path: &str) -> Result<std::path::PathBuf, ApiError> {
    let refuse = || ApiError::BadRequest(format!("invalid path in a deployed site: {path}"));
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return Err(refuse());
    }
    let mut relative = std::path::PathBuf::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(refuse()),
            part => relative.push(part),
        }
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_paths_stay_inside_the_site() {
        assert_eq!(site_path("").unwrap(), std::path::PathBuf::new());
        assert_eq!(
            site_path("css/a.css").unwrap(),
            std::path::PathBuf::from("css/a.css")
        );
        assert_eq!(
            site_path("./a//b/").unwrap(),
            std::path::PathBuf::from("a/b")
        );
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\..\\b", "a\0b"] {
            assert!(site_path(bad).is_err(), "{bad:?}");
        }
    }
}
