//! The confined opener: the one way anything under a workspace is opened, created, listed,
//! renamed or removed.
//!
//! Every name is resolved by the kernel beneath an open directory descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so the check and the open are one step:
//! agent code that swaps a name for a symlink between two calls can at worst make an open
//! fail, never reach outside. Opens are non-blocking and the descriptor is `fstat`ed before
//! use: a FIFO, socket or device is refused instead of hanging the caller. No path string is
//! re-opened after it was checked; callers keep the descriptors this module hands out. Every
//! function blocks on the file system: call them on the blocking pool.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

pub use rustix::fs::Stat;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::MOUNT;

/// How every name below a workspace is resolved: never above the directory, never through a
/// `/proc` magic link.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);
/// Flags of every open: no blocking on a FIFO, no controlling terminal, closed on exec.
const BASE_FLAGS: OFlags = OFlags::NONBLOCK
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);
/// Permissions of created files and folders (before the umask).
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
/// A workspace root: the server's, writable by the sandbox user's group.
const ROOT_MODE: u32 = 0o775;

/// Why a name below a workspace could not be used; every message names the path as the model
/// or the client gave it, never a host path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Path(#[from] super::PathError),
    #[error(
        "path {0} leads outside {MOUNT}/ (through a symlink); use a path inside the workspace"
    )]
    Escapes(String),
    #[error("cannot open {0}: no such file or folder")]
    NotFound(String),
    #[error("{0} is a folder; give a file path")]
    IsDir(String),
    #[error("{0} is not a folder")]
    NotDir(String),
    #[error("{shown} is a {kind}, not a regular file; only regular files can be read or written")]
    NotRegular { shown: String, kind: &'static str },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{shown}: permission denied")]
    Denied { shown: String },
    #[error("cannot use {shown}: {reason}")]
    Io { shown: String, reason: String },
}

/// The owner given to everything created below a workspace, so that sandboxed code (which
/// runs as this unprivileged user) can change what the server made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: u32,
}

/// How [`Dir::create_file`] treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Truncate,
    Append,
    /// Fail if the name exists (also as a symlink).
    New,
}

/// What a name below a workspace is, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One entry of [`Dir::entries`].
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: std::ffi::OsString,
    pub kind: Kind,
    pub size: u64,
    /// Seconds since the epoch.
    pub modified: i64,
}

/// An open directory of a workspace (its root, or a folder opened beneath it).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    owner: Option<FileOwner>,
}

impl Dir {
    /// Opens the workspace root itself, the one host path opened by name: it lives in the
    /// server's data directory, which sandboxed code never sees.
    pub fn open_root(root: &Path, owner: Option<FileOwner>) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | BASE_FLAGS,
            Mode::empty(),
        )?;
        Ok(Self { fd, owner })
    }

    /// The regular file at `relative`, opened for reading.
    pub fn open_file(&self, relative: &Path, shown: &str) -> Result<File, OpenError> {
        let fd = self.open_beneath(relative, OFlags::RDONLY, shown)?;
        expect_regular(&fd, shown)?;
        Ok(File::from(fd))
    }

    /// The regular file at `relative` (a final symlink is refused, not followed), opened for
    /// reading, with what `fstat` says of the descriptor.
    pub fn open_file_no_follow(
        &self,
        relative: &Path,
        shown: &str,
    ) -> Result<(File, Stat), OpenError> {
        let fd = self.open_beneath(relative, OFlags::RDONLY | OFlags::NOFOLLOW, shown)?;
        expect_regular(&fd, shown)?;
        let stat = rustix::fs::fstat(&fd).map_err(|errno| classify(errno, shown))?;
        Ok((File::from(fd), stat))
    }

    /// The target of the symlink at `relative`, as stored (never followed).
    pub fn read_link(&self, relative: &Path, shown: &str) -> Result<Vec<u8>, OpenError> {
        let (parent, name) = split_last(relative, shown)?;
        let dir = self.open_dir(parent, shown)?;
        rustix::fs::readlinkat(&dir.fd, name, Vec::new())
            .map(|target| target.into_bytes())
            .map_err(|errno| classify(errno, shown))
    }

    /// The existing regular file at `relative`, opened for reading and writing (to change it
    /// in place through one descriptor).
    pub fn open_file_for_update(&self, relative: &Path, shown: &str) -> Result<File, OpenError> {
        let fd = self.open_beneath(relative, OFlags::RDWR, shown)?;
        expect_regular(&fd, shown)?;
        Ok(File::from(fd))
    }

    /// The folder at `relative` (the root itself for an empty path).
    pub fn open_dir(&self, relative: &Path, shown: &str) -> Result<Dir, OpenError> {
        let fd = self.open_beneath(relative, OFlags::RDONLY | OFlags::DIRECTORY, shown)?;
        Ok(Dir {
            fd,
            owner: self.owner,
        })
    }

    /// Creates (or opens) the regular file at `relative` for writing, with its folders.
    pub fn create_file(&self, relative: &Path, shown: &str, how: Write) -> Result<File, OpenError> {
        let (parent, name) = split_last(relative, shown)?;
        let folder = self.create_dir_all(parent, shown)?;
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | match how {
                Write::Truncate => OFlags::TRUNC,
                Write::Append => OFlags::APPEND,
                Write::New => OFlags::EXCL,
            };
        let fd = folder.open_beneath(Path::new(name), flags, shown)?;
        expect_regular(&fd, shown)?;
        self.give_to_owner(&fd);
        Ok(File::from(fd))
    }

    /// The folder at `relative`, created with every missing parent.
    pub fn create_dir_all(&self, relative: &Path, shown: &str) -> Result<Dir, OpenError> {
        let mut prefix = PathBuf::new();
        let mut current = self.open_dir(Path::new(""), shown)?;
        for name in normal_names(relative, shown)? {
            prefix.push(name);
            match rustix::fs::mkdirat(&current.fd, name, Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(errno) => return Err(classify(errno, shown)),
            }
            // Resolved from the root again: a name that is a symlink to a folder inside the
            // workspace is followed, one that leads outside is refused.
            current = self.open_dir(&prefix, shown)?;
            self.give_to_owner(&current.fd);
        }
        Ok(current)
    }

    /// Moves `from` to `to` (both below this folder); an existing file at `to` is replaced,
    /// a symlink at either name is moved or replaced itself, never followed.
    pub fn rename(&self, from: &Path, to: &Path, shown: &str) -> Result<(), OpenError> {
        let (from_parent, from_name) = split_last(from, shown)?;
        let (to_parent, to_name) = split_last(to, shown)?;
        let from_dir = self.open_dir(from_parent, shown)?;
        let to_dir = self.create_dir_all(to_parent, shown)?;
        rustix::fs::renameat(&from_dir.fd, from_name, &to_dir.fd, to_name)
            .map_err(|errno| classify(errno, shown))
    }

    /// Removes the file (or symlink) at `relative`; a missing one is not an error.
    pub fn remove_file(&self, relative: &Path, shown: &str) -> Result<(), OpenError> {
        let (parent, name) = split_last(relative, shown)?;
        let dir = self.open_dir(parent, shown)?;
        match rustix::fs::unlinkat(&dir.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(classify(errno, shown)),
        }
    }

    /// What `relative` is (a final symlink is reported, not followed); `None` if missing.
    pub fn kind(&self, relative: &Path, shown: &str) -> Result<Option<Kind>, OpenError> {
        let Ok((parent, name)) = split_last(relative, shown) else {
            return Ok(Some(Kind::Dir)); // the folder itself
        };
        let dir = match self.open_dir(parent, shown) {
            Ok(dir) => dir,
            Err(OpenError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(kind_of(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(classify(errno, shown)),
        }
    }

    /// The entries of this folder (without `.` and `..`), final symlinks not followed.
    pub fn entries(&self) -> std::io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_os_string();
            let Ok(stat) = rustix::fs::statat(&self.fd, &name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue; // removed meanwhile
            };
            entries.push(Entry {
                name,
                kind: kind_of(&stat),
                size: u64::try_from(stat.st_size).unwrap_or(0),
                modified: stat.st_mtime,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Hands this folder and everything below it that is not the owner's yet to the owner
    /// (after git wrote files, or for a workspace made before an owner was set); symlinks are
    /// changed themselves, never followed. `.git` is left to the server.
    pub fn give_tree_to_owner(&self) {
        let Some(owner) = self.owner else { return };
        let (uid, gid) = (
            Some(rustix::fs::Uid::from_raw(owner.uid)),
            Some(rustix::fs::Gid::from_raw(owner.gid)),
        );
        let mut stack = vec![self.open_dir(Path::new(""), "")];
        while let Some(Ok(dir)) = stack.pop() {
            let Ok(entries) = dir.entries() else { continue };
            for entry in entries {
                if entry.name == ".git" {
                    continue;
                }
                let _ =
                    rustix::fs::chownat(&dir.fd, &entry.name, uid, gid, AtFlags::SYMLINK_NOFOLLOW);
                if entry.kind == Kind::Dir {
                    stack.push(dir.open_dir(Path::new(&entry.name), ""));
                }
            }
        }
    }

    fn open_beneath(
        &self,
        relative: &Path,
        flags: OFlags,
        shown: &str,
    ) -> Result<OwnedFd, OpenError> {
        let names = normal_names(relative, shown)?;
        let path: PathBuf = if names.is_empty() {
            PathBuf::from(".")
        } else {
            names.iter().collect()
        };
        // openat2 insists on no mode unless a file may be created.
        let mode = if flags.contains(OFlags::CREATE) {
            Mode::from_raw_mode(FILE_MODE)
        } else {
            Mode::empty()
        };
        rustix::fs::openat2(&self.fd, &path, flags | BASE_FLAGS, mode, BENEATH)
            .map_err(|errno| classify(errno, shown))
    }

    /// Whether this folder (a workspace root) is shared with the owner already (always,
    /// without an owner).
    pub fn is_shared_with_owner(&self) -> bool {
        let Some(owner) = self.owner else { return true };
        rustix::fs::fstat(&self.fd)
            .is_ok_and(|stat| stat.st_gid == owner.gid && stat.st_mode & ROOT_MODE == ROOT_MODE)
    }

    /// Lets the owner write in this folder (a workspace root) through its group, while the
    /// server keeps owning it: git refuses a work tree that another user owns.
    pub fn share_with_owner(&self) {
        let Some(owner) = self.owner else { return };
        let _ = rustix::fs::fchown(&self.fd, None, Some(rustix::fs::Gid::from_raw(owner.gid)));
        let _ = rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(ROOT_MODE));
    }

    /// Hands what the server created to the sandbox's user (only when one is set, i.e. the
    /// server runs as root); failure leaves it owned by the server, readable by the agent.
    fn give_to_owner(&self, fd: &OwnedFd) {
        let Some(owner) = self.owner else { return };
        let Ok(stat) = rustix::fs::fstat(fd) else {
            return;
        };
        if stat.st_uid != owner.uid || stat.st_gid != owner.gid {
            let _ = rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(owner.uid)),
                Some(rustix::fs::Gid::from_raw(owner.gid)),
            );
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Refuses anything but a regular file, on the descriptor actually opened.
fn expect_regular(fd: &OwnedFd, shown: &str) -> Result<(), OpenError> {
    let stat = rustix::fs::fstat(fd).map_err(|errno| classify(errno, shown))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Directory => Err(OpenError::IsDir(shown.to_string())),
        other => Err(OpenError::NotRegular {
            shown: shown.to_string(),
            kind: type_name(other),
        }),
    }
}

fn kind_of(stat: &Stat) -> Kind {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn type_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "FIFO (named pipe)",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Symlink => "symlink",
        _ => "special file",
    }
}

/// The errno of a confined call as a message for whoever gave the path.
fn classify(errno: Errno, shown: &str) -> OpenError {
    let shown = shown.to_string();
    match errno {
        // RESOLVE_BENEATH refuses a step above the directory; NO_MAGICLINKS a /proc link.
        Errno::XDEV | Errno::LOOP => OpenError::Escapes(shown),
        Errno::NOENT => OpenError::NotFound(shown),
        Errno::ISDIR => OpenError::IsDir(shown),
        Errno::NOTDIR => OpenError::NotDir(shown),
        Errno::EXIST => OpenError::Exists(shown),
        // A FIFO opened for writing without a reader, or a socket.
        Errno::NXIO | Errno::OPNOTSUPP => OpenError::NotRegular {
            shown,
            kind: "special file",
        },
        Errno::ACCESS | Errno::PERM | Errno::ROFS => OpenError::Denied { shown },
        Errno::NOSYS => OpenError::Io {
            shown,
            reason: "this kernel lacks openat2 (Linux 5.6 or later is needed)".into(),
        },
        other => OpenError::Io {
            shown,
            reason: std::io::Error::from(other).to_string(),
        },
    }
}

/// The plain names of a relative path (already normalised by `relative_inside_mount`).
fn normal_names<'a>(relative: &'a Path, shown: &str) -> Result<Vec<&'a OsStr>, OpenError> {
    relative
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(OpenError::Escapes(shown.to_string())),
        })
        .collect()
}

/// `(parent, last name)` of a relative path; an empty path has no last name.
fn split_last<'a>(relative: &'a Path, shown: &str) -> Result<(&'a Path, &'a OsStr), OpenError> {
    match (relative.parent(), relative.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(OpenError::IsDir(shown.to_string())),
    }
}

#[cfg(test)]
mod tests;
