//! `mshtools-deploy_website`: publishes a static site from the workspace at
//! `<public url>/deploy/<id>/`.
//!
//! A deployment is a copy of the site's folder under `[deploy] root` (outside every workspace
//! and the sandbox's view), so later edits in the workspace do not change what was published
//! until the model deploys again. Deploying the same folder again from the same conversation
//! replaces the copy and keeps the address. Only regular files are copied (symlinks are
//! skipped); the size and file-count limits come from okcvm.toml. The store keeps one record
//! per deployment under its owner, so deleting a conversation finds and removes its sites.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{files, ToolContext, ToolError, ToolOutput, TypedTool};
use crate::auth::SessionKey;
use crate::config::DeployConfig;
use crate::protocol::{size_display, WebPreview};
use crate::store::{DeploymentRecord, Store, StoreError};
use crate::workspace::{Dir, Kind, ModelPath, OpenError};

pub const TOOL: &str = "mshtools-deploy_website";

/// Publishes sites for every session; shared by all of them.
pub struct Deployer {
    root: PathBuf,
    base_url: String,
    max_bytes: u64,
    max_files: usize,
    store: Store,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Site(String),
    #[error("cannot write the deployment: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Deployer {
    /// `base_url`: how clients reach this server, without a trailing slash.
    pub fn new(config: &DeployConfig, base_url: &str, store: Store) -> Self {
        Self {
            root: config.root.clone(),
            base_url: base_url.trim_end_matches('/').to_string(),
            max_bytes: config.max_site_mb * 1024 * 1024,
            max_files: config.max_files,
            store,
        }
    }

    /// Where deployment `id` is stored, if `id` has the shape of one (never a path of the
    /// client's making).
    pub fn site_dir(&self, id: &str) -> Option<PathBuf> {
        is_deployment_id(id).then(|| self.root.join(id))
    }

    pub fn url_of(&self, id: &str) -> String {
        format!("{}/deploy/{id}/", self.base_url)
    }

    /// Copies `source` (a folder of the workspace, shown to the model as `model_dir`) to the
    /// conversation's deployment of that folder, creating it on first use. Blocking.
    ///
    /// Every file is opened through the confined opener beneath the site's folder, so a
    /// symlink swapped in while the copy runs cannot make it read anything outside the site.
    pub fn publish(
        &self,
        key: &SessionKey,
        source: &Dir,
        model_dir: &str,
    ) -> Result<(DeploymentRecord, Option<String>), DeployError> {
        let index_is_file = source
            .open_file(Path::new("index.html"), "index.html")
            .is_ok();
        if !index_is_file {
            return Err(DeployError::Site(format!(
                "{model_dir} has no index.html at its top level; write the site's entry page there and deploy again"
            )));
        }
        let files = self.collect(source, model_dir)?;
        let bytes = files.iter().map(|(_, size)| size).sum();
        let existing = self
            .store
            .list_deployments(key)?
            .into_iter()
            .find(|d| d.local_dir == model_dir);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let record = match existing {
            Some(mut record) => {
                record.updated_at = now;
                record.files = files.len();
                record.bytes = bytes;
                record
            }
            None => DeploymentRecord {
                id: new_deployment_id(),
                local_dir: model_dir.to_string(),
                files: files.len(),
                bytes,
                created_at: now.clone(),
                updated_at: now,
            },
        };
        self.copy_site(source, &files, &record.id)?;
        self.store.put_deployment(key, &record)?;
        let title = source
            .open_file(Path::new("index.html"), "index.html")
            .ok()
            .and_then(page_title);
        Ok((record, title))
    }

    /// The site's regular files (relative paths) with their sizes, within the limits.
    fn collect(&self, source: &Dir, model_dir: &str) -> Result<Vec<(PathBuf, u64)>, DeployError> {
        let mut files = Vec::new();
        let mut total = 0u64;
        let mut stack = vec![PathBuf::new()];
        while let Some(relative) = stack.pop() {
            let dir = source.open_dir(&relative, model_dir).map_err(site_error)?;
            for entry in dir.entries()? {
                let path = relative.join(&entry.name);
                match entry.kind {
                    Kind::Dir if entry.name != ".git" => {
                        stack.push(path);
                        continue;
                    }
                    Kind::File => {}
                    _ => continue, // symlinks and special files are not published
                }
                let size = entry.size;
                total += size;
                if files.len() >= self.max_files {
                    return Err(DeployError::Site(format!(
                        "{model_dir} holds more than {} files, the deployment limit",
                        self.max_files
                    )));
                }
                if total > self.max_bytes {
                    return Err(DeployError::Site(format!(
                        "{model_dir} is larger than {}, the deployment limit",
                        size_display(self.max_bytes)
                    )));
                }
                files.push((path, size));
            }
        }
        Ok(files)
    }

    /// Writes the files into a fresh folder and swaps it in, so a visitor never sees a
    /// half-copied site.
    fn copy_site(&self, source: &Dir, files: &[(PathBuf, u64)], id: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let staging = self
            .root
            .join(format!(".{id}.{}", uuid::Uuid::new_v4().simple()));
        let copied = (|| {
            for (relative, size) in files {
                let target = staging.join(relative);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let file = source
                    .open_file(relative, &relative.to_string_lossy())
                    .map_err(|e| {
                        std::io::Error::other(format!(
                            "{e} (it changed while it was being published)"
                        ))
                    })?;
                let mut out = std::fs::File::create(&target)?;
                let copied = std::io::copy(&mut file.take(size + 1), &mut out)?;
                if copied > *size {
                    return Err(std::io::Error::other(format!(
                        "{} grew while it was being published",
                        relative.display()
                    )));
                }
            }
            std::fs::create_dir_all(&staging)
        })();
        if let Err(error) = copied {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
        let live = self.root.join(id);
        let retired = self
            .root
            .join(format!(".{id}.old.{}", uuid::Uuid::new_v4().simple()));
        let had_live = std::fs::rename(&live, &retired).is_ok();
        std::fs::rename(&staging, &live)?;
        if had_live {
            let _ = std::fs::remove_dir_all(&retired);
        }
        Ok(())
    }

    /// Removes every deployment of a conversation (files and records); returns how many.
    pub fn remove_all(&self, key: &SessionKey) -> Result<usize, DeployError> {
        let records = self.store.remove_deployments(key)?;
        for record in &records {
            if let Some(dir) = self.site_dir(&record.id) {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(records.len())
    }
}

fn site_error(error: OpenError) -> DeployError {
    DeployError::Site(error.to_string())
}

/// Ids are 24 lowercase hex digits: unguessable, and safe as a folder name.
fn new_deployment_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..24].to_string()
}

pub fn is_deployment_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The text of the page's `<title>`, if it has a short one.
fn page_title(index: std::fs::File) -> Option<String> {
    let mut head = String::new();
    index.take(64 * 1024).read_to_string(&mut head).ok()?;
    let lower = head.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = head[open_end..close]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then(|| title.chars().take(200).collect())
}

pub struct DeployWebsite;

#[derive(Deserialize)]
pub struct Args {
    r#type: String,
    local_dir: String,
}

impl TypedTool for DeployWebsite {
    const NAME: &'static str = TOOL;
    type Args = Args;

    async fn run(&self, args: Args, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        if args.r#type != "static" {
            return Err(ToolError::RespondToModel(format!(
                "deployment type {:?} is not supported; use \"static\" for a folder with index.html",
                args.r#type
            )));
        }
        let path = ModelPath::parse(&args.local_dir)?;
        let model_dir = path.canonical().trim_end_matches('/').to_string();
        let workspace = ctx.workspace.clone();
        let services = ctx.services.clone();
        let session = ctx.session.clone();
        let shown = model_dir.clone();
        let published = files::blocking(move || {
            let source = workspace.open_dir(&path).map_err(|error| match error {
                OpenError::NotDir(_) | OpenError::NotFound(_) => {
                    ToolError::RespondToModel(format!(
                        "{} is not a folder; give the folder that holds index.html",
                        path.shown
                    ))
                }
                other => other.into(),
            })?;
            Ok(services.deployer.publish(&session, &source, &shown))
        })
        .await?;
        let (record, title) = published.map_err(|error| match error {
            DeployError::Site(message) => ToolError::RespondToModel(message),
            other => ToolError::Fatal(other.to_string()),
        })?;
        let url = ctx.services.deployer.url_of(&record.id);
        ctx.state.web_preview = Some(WebPreview {
            url: Some(url.clone()),
            deployment_id: Some(record.id.clone()),
            title: title.clone(),
            html: None,
        });
        Ok(ToolOutput::text(format!(
            "Deployed {} ({} files, {}) to {url}{}\nThe address stays the same when you deploy this folder again.",
            model_dir,
            record.files,
            size_display(record.bytes),
            title.map(|t| format!(" — \"{t}\"")).unwrap_or_default(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_one_length_only() {
        let id = new_deployment_id();
        assert!(is_deployment_id(&id), "{id}");
        for bad in [
            "",
            "..",
            "../etc",
            &id[..23],
            &id.to_uppercase(),
            "g".repeat(24).as_str(),
        ] {
            assert!(!is_deployment_id(bad), "{bad}");
        }
    }

    #[test]
    fn site_files_are_opened_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("site/css")).unwrap();
        std::fs::write(root.join("site/css/a.css"), "a").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("site/out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("site/index.html"))
            .unwrap();
        let workspace = Dir::open_root(&root, None).unwrap();
        let source = workspace.open_dir(Path::new("site"), "site").unwrap();
        let mut text = String::new();
        source
            .open_file(Path::new("css/a.css"), "a.css")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a");
        for (path, what) in [
            ("out/secret.txt", "a symlinked folder"),
            ("index.html", "a symlinked file"),
            ("../site/css/a.css", "a way up"),
        ] {
            assert!(source.open_file(Path::new(path), path).is_err(), "{what}");
        }
        nix::unistd::mkfifo(&root.join("site/pipe.html"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(
            source.open_file(Path::new("pipe.html"), "pipe").is_err(),
            "a FIFO is refused at once"
        );
        assert!(
            workspace.open_dir(Path::new("site/out"), "out").is_err(),
            "a symlinked site folder"
        );
    }

    #[test]
    fn titles_are_read_from_the_page_head() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("index.html");
        std::fs::write(&page, "<html><HEAD><Title lang=en>\n  My   site </title>").unwrap();
        let open = || std::fs::File::open(&page).unwrap();
        assert_eq!(page_title(open()).as_deref(), Some("My site"));
        std::fs::write(&page, "<html><body>no title</body>").unwrap();
        assert_eq!(page_title(open()), None);
    }
}
