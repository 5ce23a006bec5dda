//! A session's workspace: the host directory the model knows as `/mnt/okcomputer/`.
//!
//! Owns the mapping between model paths and the workspace and guarantees that no path leaves
//! it: lexical `..` that escapes and foreign absolute paths are refused here, and every open
//! goes through the confined opener ([`open`]), where the kernel resolves names beneath the
//! workspace root, so symlinks that lead outside (even ones swapped in at any moment) are
//! errors the model can read. Host paths never appear in those errors.

pub mod git;
mod kept_out;
pub mod open;

use std::path::{Component, Path, PathBuf};

pub use open::{Dir, FileOwner, Kind, OpenError, Write};

/// Where the workspace appears to the model and inside the sandbox.
pub const MOUNT: &str = "/mnt/okcomputer";
/// Deliverables for the user go here.
pub const OUTPUT_DIR: &str = "output";
/// Uploaded files are written here.
pub const UPLOAD_DIR: &str = "upload";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must not be empty")]
    Empty,
    #[error("path {0} is outside {MOUNT}/; use a path inside the workspace")]
    Outside(String),
    #[error("path {0} contains a NUL byte")]
    Nul(String),
}

/// A model path checked lexically: where it points below the workspace, and how to name it
/// in messages (as the model wrote it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPath {
    pub relative: PathBuf,
    pub shown: String,
}

impl ModelPath {
    pub fn parse(model_path: &str) -> Result<Self, PathError> {
        Ok(Self {
            relative: relative_inside_mount(model_path)?,
            shown: model_path.trim().to_string(),
        })
    }

    /// `/mnt/okcomputer/<relative>`, the canonical way to name it.
    pub fn canonical(&self) -> String {
        model_path_of(&self.relative)
    }
}

/// The session's workspace directory on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
    owner: Option<FileOwner>,
}

impl Workspace {
    /// `root` must be absolute; it is created by [`Workspace::ensure`].
    pub fn new(root: PathBuf) -> Self {
        Self { root, owner: None }
    }

    /// What the server creates in the workspace is handed to `owner` (the sandbox's user).
    pub fn with_owner(mut self, owner: Option<FileOwner>) -> Self {
        self.owner = owner;
        self
    }

    /// The host directory: for the sandbox's bind mount and git, never to open files by name.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn owner(&self) -> Option<FileOwner> {
        self.owner
    }

    /// Creates the workspace (writable by the sandbox's user) with its `output/` and `upload/`
    /// folders; the folders are best effort, since agent code may have put something else at
    /// their names.
    pub fn ensure(&self) -> Result<(), OpenError> {
        std::fs::create_dir_all(&self.root).map_err(|e| OpenError::Io {
            shown: format!("{MOUNT}/"),
            reason: e.to_string(),
        })?;
        let dir = self.open()?;
        if !dir.is_shared_with_owner() {
            dir.share_with_owner();
            dir.give_tree_to_owner();
        }
        for folder in [OUTPUT_DIR, UPLOAD_DIR] {
            let _ = dir.create_dir_all(Path::new(folder), folder);
        }
        Ok(())
    }

    /// The workspace root, opened: every file access starts from here.
    pub fn open(&self) -> Result<Dir, OpenError> {
        Dir::open_root(&self.root, self.owner).map_err(|e| match e.kind() {
            // Nothing was ever made in this session's workspace.
            std::io::ErrorKind::NotFound => OpenError::NotFound(format!("{MOUNT}/")),
            _ => OpenError::Io {
                shown: format!("{MOUNT}/"),
                reason: e.to_string(),
            },
        })
    }

    /// The regular file at a model path, opened for reading.
    pub fn open_file(&self, path: &ModelPath) -> Result<std::fs::File, OpenError> {
        self.open()?.open_file(&path.relative, &path.shown)
    }

    /// The folder at a model path.
    pub fn open_dir(&self, path: &ModelPath) -> Result<Dir, OpenError> {
        self.open()?.open_dir(&path.relative, &path.shown)
    }

    /// The regular file at a model path, created with its folders, opened for writing.
    pub fn create_file(&self, path: &ModelPath, how: Write) -> Result<std::fs::File, OpenError> {
        self.open()?.create_file(&path.relative, &path.shown, how)
    }
}

/// The normalised path relative to the mount (pure: no file system access).
pub fn relative_inside_mount(model_path: &str) -> Result<PathBuf, PathError> {
    let trimmed = model_path.trim();
    if trimmed.is_empty() {
        return Err(PathError::Empty);
    }
    if trimmed.contains('\0') {
        return Err(PathError::Nul(trimmed.replace('\0', "\\0")));
    }
    let path = Path::new(trimmed);
    let inside = if path.is_absolute() {
        match path.strip_prefix(MOUNT) {
            Ok(rest) => rest,
            Err(_) => return Err(PathError::Outside(trimmed.to_string())),
        }
    } else {
        path
    };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in inside.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(PathError::Outside(trimmed.to_string()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Outside(trimmed.to_string()))
            }
        }
    }
    Ok(parts.iter().collect())
}

/// `/mnt/okcomputer/<rel>` with forward slashes.
pub fn model_path_of(rel: &Path) -> String {
    let rel = rel.to_string_lossy();
    if rel.is_empty() {
        format!("{MOUNT}/")
    } else {
        format!("{MOUNT}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, want: Result<&str, PathError>) {
        assert_eq!(
            relative_inside_mount(input),
            want.map(PathBuf::from),
            "input {input:?}"
        );
    }

    #[test]
    fn lexical_resolution() {
        check("/mnt/okcomputer/a/b.txt", Ok("a/b.txt"));
        check("/mnt/okcomputer/", Ok(""));
        check("a/./b/../c", Ok("a/c"));
        check(
            "/mnt/okcomputer/a/../../etc/passwd",
            Err(PathError::Outside(
                "/mnt/okcomputer/a/../../etc/passwd".into(),
            )),
        );
        check("/etc/passwd", Err(PathError::Outside("/etc/passwd".into())));
        check(
            "/mnt/okcomputerx/a",
            Err(PathError::Outside("/mnt/okcomputerx/a".into())),
        );
        check("../x", Err(PathError::Outside("../x".into())));
        check("  ", Err(PathError::Empty));
    }
}
