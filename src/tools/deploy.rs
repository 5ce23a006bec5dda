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

use futures_util::future::{BoxFuture, FutureExt};
use serde::Deserialize;
use serde_json::Value;

use super::{parse_args, Tool, ToolContext, ToolError, ToolOutput};
use crate::config::DeployConfig;
use crate::protocol::{size_display, WebPreview};
use crate::store::{DeploymentRecord, Store, StoreError};

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
    /// Every file is opened through `open_beneath` from the workspace root, so a symlink
    /// swapped in while the copy runs cannot make it read anything outside the site.
    pub fn publish(
        &self,
        owner: &str,
        conversation: &str,
        source: &SiteSource,
        model_dir: &str,
    ) -> Result<(DeploymentRecord, Option<String>), DeployError> {
        let index_is_file = source
            .open(Path::new("index.html"), false)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| m.is_file());
        if !index_is_file {
            return Err(DeployError::Site(format!(
                "{model_dir} has no index.html at its top level; write the site's entry page there and deploy again"
            )));
        }
        let files = self.collect(source, model_dir)?;
        let bytes = files.iter().map(|(_, size)| size).sum();
        let existing = self
            .store
            .list_deployments(owner, conversation)?
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
        self.store.put_deployment(owner, conversation, &record)?;
        let title = source
            .open(Path::new("index.html"), false)
            .ok()
            .and_then(page_title);
        Ok((record, title))
    }

    /// The site's regular files (relative paths) with their sizes, within the limits.
    fn collect(
        &self,
        source: &SiteSource,
        model_dir: &str,
    ) -> Result<Vec<(PathBuf, u64)>, DeployError> {
        let mut files = Vec::new();
        let mut total = 0u64;
        let mut stack = vec![PathBuf::new()];
        while let Some(relative) = stack.pop() {
            let dir = source.open(&relative, true)?;
            for entry in std::fs::read_dir(fd_path(&dir))? {
                let entry = entry?;
                let path = relative.join(entry.file_name());
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    if entry.file_name() != ".git" {
                        stack.push(path);
                    }
                    continue;
                }
                if !kind.is_file() {
                    continue; // symlinks and special files are not published
                }
                let size = entry.metadata()?.len();
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
    fn copy_site(
        &self,
        source: &SiteSource,
        files: &[(PathBuf, u64)],
        id: &str,
    ) -> std::io::Result<()> {
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
                let file = source.open(relative, false)?;
                if !file.metadata()?.is_file() {
                    return Err(std::io::Error::other(format!(
                        "{} changed while it was being published",
                        relative.display()
                    )));
                }
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
    pub fn remove_all(&self, owner: &str, conversation: &str) -> Result<usize, DeployError> {
        let records = self.store.remove_deployments(owner, conversation)?;
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

/// The folder a site is published from: `site` inside the workspace `root`.
pub struct SiteSource {
    pub root: PathBuf,
    pub site: PathBuf,
}

impl SiteSource {
    /// Opens `relative` inside the site without following a symlink anywhere below the
    /// workspace root: each step opens one name relative to the folder opened before it
    /// (through `/proc/self/fd`), with `O_NOFOLLOW`.
    fn open(&self, relative: &Path, directory: bool) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let names: Vec<&std::ffi::OsStr> = self
            .site
            .components()
            .chain(relative.components())
            .filter_map(|c| match c {
                std::path::Component::Normal(name) => Some(Ok(name)),
                std::path::Component::CurDir => None,
                _ => Some(Err(std::io::Error::other("the path leaves the workspace"))),
            })
            .collect::<std::io::Result<_>>()?;
        let open = |path: &Path, as_dir: bool| {
            // O_NONBLOCK: a FIFO put in the site must not block the open (regular files and
            // folders read the same with it).
            let mut flags = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK;
            if as_dir {
                flags |= nix::libc::O_DIRECTORY;
            }
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)
        };
        let mut current = open(&self.root, true)?;
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            current = open(&fd_path(&current).join(name), !last || directory)?;
        }
        Ok(current)
    }
}

/// The `/proc/self/fd` path of an open file: names joined to it resolve inside that folder.
fn fd_path(file: &std::fs::File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
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
struct Args {
    r#type: String,
    local_dir: String,
}

impl Tool for DeployWebsite {
    fn name(&self) -> &'static str {
        TOOL
    }

    fn call<'a>(
        &'a self,
        args: Value,
        ctx: &'a mut ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        async move {
            let args: Args = parse_args(TOOL, args)?;
            if args.r#type != "static" {
                return Err(ToolError::RespondToModel(format!(
                    "deployment type {:?} is not supported; use \"static\" for a folder with index.html",
                    args.r#type
                )));
            }
            let source = ctx.workspace.resolve(&args.local_dir)?;
            if !source.is_dir() {
                return Err(ToolError::RespondToModel(format!(
                    "{} is not a folder; give the folder that holds index.html",
                    args.local_dir
                )));
            }
            let model_dir = ctx
                .workspace
                .model_path(&source)
                .map(|p| p.trim_end_matches('/').to_string())
                .unwrap_or_else(|| args.local_dir.clone());
            let root = ctx.workspace.root().to_path_buf();
            let site = source
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .map_err(|_| ToolError::RespondToModel(format!("{} is outside the workspace", args.local_dir)))?;
            let source = SiteSource { root, site };
            let services = ctx.services.clone();
            let (owner, conversation) = (ctx.owner.clone(), ctx.conversation.clone());
            let shown = model_dir.clone();
            let published = tokio::task::spawn_blocking(move || {
                services
                    .deployer
                    .publish(&owner, &conversation, &source, &shown)
            })
            .await
            .map_err(|e| ToolError::Fatal(format!("deployment task failed: {e}")))?;
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
        .boxed()
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
        let source = SiteSource {
            root: root.clone(),
            site: PathBuf::from("site"),
        };
        let mut text = String::new();
        source
            .open(Path::new("css/a.css"), false)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a");
        assert!(
            source.open(Path::new("out/secret.txt"), false).is_err(),
            "a symlinked folder"
        );
        assert!(
            source.open(Path::new("index.html"), false).is_err(),
            "a symlinked file"
        );
        assert!(
            source.open(Path::new("../site/css/a.css"), false).is_err(),
            "a way up"
        );
        nix::unistd::mkfifo(&root.join("site/pipe.html"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let fifo = source.open(Path::new("pipe.html"), false).unwrap();
        assert!(
            !fifo.metadata().unwrap().is_file(),
            "a FIFO opens at once and shows what it is"
        );
        let linked = SiteSource {
            root,
            site: PathBuf::from("site/out"),
        };
        assert!(
            linked.open(Path::new("secret.txt"), false).is_err(),
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
