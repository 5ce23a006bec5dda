//! A session's workspace: the host directory the model knows as `/mnt/okcomputer/`.
//!
//! Owns the mapping between model paths and host paths and guarantees that no path leaves the
//! workspace: lexical `..` that escapes, foreign absolute paths and symlinks that resolve
//! outside are all errors the model can read. Host paths never appear in those errors.

pub mod git;

use std::path::{Component, Path, PathBuf};

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

/// The session's workspace directory on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// `root` must be absolute; it is created by [`Workspace::ensure`].
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the workspace with its `output/` and `upload/` folders.
    pub fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join(OUTPUT_DIR))?;
        std::fs::create_dir_all(self.root.join(UPLOAD_DIR))
    }

    /// Maps a model path (absolute under the mount, or relative to it) to its host path, with
    /// symlinks resolved as far as the path exists.
    pub fn resolve(&self, model_path: &str) -> Result<PathBuf, PathError> {
        let relative = relative_inside_mount(model_path)?;
        let host = self.root.join(&relative);
        self.check_symlinks(&host, model_path)?;
        Ok(host)
    }

    /// The model's view of a host path inside the workspace.
    pub fn model_path(&self, host: &Path) -> Option<String> {
        let rel = host.strip_prefix(&self.root).ok()?;
        Some(model_path_of(rel))
    }

    /// Follows symlinks of the longest existing prefix and checks it stays inside.
    fn check_symlinks(&self, host: &Path, shown: &str) -> Result<(), PathError> {
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        let mut existing = host.to_path_buf();
        let mut rest = Vec::new();
        loop {
            match existing.canonicalize() {
                Ok(real) => {
                    let mut full = real;
                    full.extend(rest.iter().rev());
                    if !full.starts_with(&root) {
                        return Err(PathError::Outside(shown.to_string()));
                    }
                    return Ok(());
                }
                Err(_) => {
                    // A dangling symlink cannot be followed safely: refuse it.
                    if existing.symlink_metadata().is_ok() {
                        return Err(PathError::Outside(shown.to_string()));
                    }
                    match (existing.file_name(), existing.parent()) {
                        (Some(name), Some(parent)) => {
                            rest.push(name.to_os_string());
                            existing = parent.to_path_buf();
                        }
                        _ => return Err(PathError::Outside(shown.to_string())),
                    }
                }
            }
        }
    }
}

/// Pure part of [`Workspace::resolve`]: the normalised path relative to the mount.
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

    #[test]
    fn symlinks_out_of_the_workspace_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let ws = Workspace::new(dir.path().join("ws"));
        ws.ensure().unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.root().join("link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", ws.root().join("dangling")).unwrap();
        std::os::unix::fs::symlink(ws.root().join("output"), ws.root().join("inner")).unwrap();
        assert!(matches!(
            ws.resolve("/mnt/okcomputer/link/secret"),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            ws.resolve("link/new-file"),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(ws.resolve("dangling"), Err(PathError::Outside(_))));
        assert_eq!(
            ws.resolve("inner/x.txt").unwrap(),
            ws.root().join("inner/x.txt")
        );
        assert_eq!(
            ws.resolve("/mnt/okcomputer/new/dir/file").unwrap(),
            ws.root().join("new/dir/file")
        );
    }
}
