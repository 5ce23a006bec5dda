//! Git history of a workspace (git2): a commit per turn, explicit snapshots, restore and
//! branches, and the `workspace_state` the API reports.
//!
//! Every function blocks: call them through `blocking::run`. Snapshot ids are full or
//! abbreviated hex commit ids and nothing else (no rev expressions); branch names are
//! validated. Files over the size cap and the ignore patterns of `[workspace]` stay out of
//! snapshots. What a snapshot stores is read through the confined opener (`open.rs`), so a
//! name swapped for a symlink to a host file can never put that file into a snapshot. Host
//! paths never appear in results.

use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, BranchType, Oid, Repository, ResetType, Signature};

use super::kept_out;
use crate::protocol::{GitState, SnapshotView, WorkspacePaths, WorkspaceState};
use crate::workspace::{model_path_of, Dir, Kind, MOUNT, OUTPUT_DIR};

/// The branch a new workspace starts on.
const DEFAULT_BRANCH: &str = "main";
const MAX_LABEL_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("unknown snapshot {0}")]
    UnknownSnapshot(String),
    #[error("unknown branch {0}")]
    UnknownBranch(String),
    #[error("invalid branch name {0:?}: use 1-200 letters, digits, '.', '_', '-' or '/'")]
    InvalidBranch(String),
    #[error("branch {0} already exists")]
    BranchExists(String),
    #[error("workspace history: {0}")]
    Git(#[from] git2::Error),
}

impl GitError {
    /// Errors the client caused (400) as opposed to a broken repository (500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, GitError::Git(_))
    }
}

/// What to snapshot and how.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub ignore: Vec<String>,
    pub max_file_bytes: u64,
}

/// Where a workspace's history lives: beside the workspace (`<dir>.git`), never inside it,
/// so nothing the agent runs can see or change it, and the agent's own `.git` is just data.
pub fn git_dir(root: &Path) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    root.with_file_name(format!("{name}.git"))
}

/// Opens the workspace repository, creating it (with the ignore patterns) if needed.
pub fn open_or_init(root: &Path, policy: &SnapshotPolicy) -> Result<Repository, GitError> {
    let dir = git_dir(root);
    match Repository::open(&dir) {
        Ok(repo) => Ok(repo),
        Err(_) => {
            std::fs::create_dir_all(root).map_err(|e| git2::Error::from_str(&e.to_string()))?;
            let mut options = git2::RepositoryInitOptions::new();
            options
                .initial_head(DEFAULT_BRANCH)
                .no_reinit(true)
                .bare(false)
                .no_dotgit_dir(true)
                .workdir_path(root);
            let repo = Repository::init_opts(&dir, &options)?;
            let exclude = dir.join("info/exclude");
            if let Some(parent) = exclude.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::fs::write(&exclude, kept_out::render(&policy.ignore, &[]))
                .map_err(|e| git2::Error::from_str(&e.to_string()))?;
            Ok(repo)
        }
    }
}

/// Commits the workspace as it is. Without `always`, an unchanged workspace makes no new
/// commit and the current one is returned.
pub fn snapshot(
    root: &Path,
    label: &str,
    always: bool,
    policy: &SnapshotPolicy,
) -> Result<SnapshotView, GitError> {
    let repo = open_or_init(root, policy)?;
    let mut index = repo.index()?;
    // Content is read through the confined opener, never by name: agent code may swap a
    // file for a symlink to a host file at any moment.
    let workspace =
        Dir::open_root(root, None).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    // Files kept out for their size stay out while they are still too large; the others are
    // looked at again by the status scan.
    let exclude = git_dir(root).join("info/exclude");
    let remembered = kept_out::parse(&std::fs::read_to_string(&exclude).unwrap_or_default());
    let mut kept: Vec<PathBuf> = remembered
        .iter()
        .filter(|path| too_large(&workspace, path, policy.max_file_bytes))
        .cloned()
        .collect();
    if kept != remembered {
        write_exclude(&exclude, policy, &kept)?;
    }
    // One status scan (which trusts the index's stat cache for unchanged files) finds what
    // changed; only those paths are staged.
    let mut options = git2::StatusOptions::new();
    options
        .show(git2::StatusShow::Workdir) // the index against the files; HEAD is not needed
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .exclude_submodules(true);
    let changes: Vec<(String, git2::Status)> = repo
        .statuses(Some(&mut options))?
        .iter()
        .filter_map(|entry| entry.path().map(|p| (p.to_string(), entry.status())))
        .collect();
    for (path, status) in changes {
        let relative = Path::new(&path);
        if status.is_wt_deleted() {
            index.remove_path(relative)?;
        } else if status.intersects(
            git2::Status::WT_NEW
                | git2::Status::WT_MODIFIED
                | git2::Status::WT_TYPECHANGE
                | git2::Status::WT_RENAMED,
        ) && stage(&mut index, &workspace, relative, policy.max_file_bytes)?
            == Staged::TooLarge
        {
            kept.push(relative.to_path_buf());
        }
    }
    kept.sort();
    kept.dedup();
    if kept != remembered {
        write_exclude(&exclude, policy, &kept)?;
    }
    // Trees first, then the index: the index file then keeps the tree cache, so the next
    // snapshot rebuilds only the trees above changed paths.
    let tree_id = index.write_tree()?;
    index.write()?;
    let parent = repo.head().ok().and_then(|head| head.peel_to_commit().ok());
    if let Some(parent) = &parent {
        if parent.tree_id() == tree_id && !always {
            return Ok(view(parent));
        }
    }
    let tree = repo.find_tree(tree_id)?;
    let signature = Signature::now("OKCVM", "okcvm@localhost")?;
    let label = label_of(label);
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let id = repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        &label,
        &tree,
        &parents,
    )?;
    let commit = repo.find_commit(id)?;
    let snapshot = view(&commit);
    Ok(snapshot)
}

/// The `workspace_state` of the API: recent snapshots of the current branch and git status.
pub fn state(
    root: &Path,
    limit: usize,
    policy: &SnapshotPolicy,
) -> Result<WorkspaceState, GitError> {
    let repo = open_or_init(root, policy)?;
    let head = repo.head().ok();
    let branch = match &head {
        Some(head) if head.is_branch() => head.shorthand().map(str::to_string),
        Some(_) => None,
        None => Some(DEFAULT_BRANCH.to_string()),
    };
    let head_commit = head.as_ref().and_then(|h| h.peel_to_commit().ok());
    let mut snapshots = Vec::new();
    if let Some(commit) = &head_commit {
        let mut walk = repo.revwalk()?;
        walk.push(commit.id())?;
        for oid in walk.take(limit) {
            snapshots.push(view(&repo.find_commit(oid?)?));
        }
    }
    let mut status_options = git2::StatusOptions::new();
    status_options
        .include_untracked(true)
        .exclude_submodules(true);
    let is_dirty = !repo.statuses(Some(&mut status_options))?.is_empty();
    let exclude = std::fs::read_to_string(git_dir(root).join("info/exclude")).unwrap_or_default();
    Ok(WorkspaceState {
        enabled: true,
        not_in_snapshots: kept_out::parse(&exclude)
            .iter()
            .map(|path| model_path_of(path))
            .collect(),
        latest_snapshot: head_commit.as_ref().map(|commit| commit.id().to_string()),
        snapshots,
        paths: paths(),
        git: GitState {
            commit: head_commit.map(|c| c.id().to_string()),
            branch,
            is_dirty,
        },
    })
}

/// Moves the current branch to a snapshot (files too, with `checkout`).
pub fn restore_snapshot(
    root: &Path,
    id: &str,
    checkout: bool,
    policy: &SnapshotPolicy,
) -> Result<(), GitError> {
    let repo = open_or_init(root, policy)?;
    let commit = find_commit(&repo, id)?;
    let kind = if checkout {
        ResetType::Hard
    } else {
        ResetType::Soft
    };
    let mut files = CheckoutBuilder::new();
    files.force().remove_untracked(true);
    repo.reset(commit.as_object(), kind, Some(&mut files))?;
    Ok(())
}

/// Switches to an existing branch (files too, with `checkout`).
pub fn switch_branch(
    root: &Path,
    name: &str,
    checkout: bool,
    policy: &SnapshotPolicy,
) -> Result<(), GitError> {
    check_branch_name(name)?;
    let repo = open_or_init(root, policy)?;
    repo.find_branch(name, BranchType::Local)
        .map_err(|_| GitError::UnknownBranch(name.to_string()))?;
    repo.set_head(&format!("refs/heads/{name}"))?;
    if checkout {
        repo.checkout_head(Some(CheckoutBuilder::new().force().remove_untracked(true)))?;
    }
    Ok(())
}

/// Points branch `name` at snapshot `id`, creating it or moving it (`git checkout -B`), and
/// switches to it (files too, with `checkout`).
pub fn branch_at_snapshot(
    root: &Path,
    name: &str,
    id: &str,
    checkout: bool,
    policy: &SnapshotPolicy,
) -> Result<(), GitError> {
    check_branch_name(name)?;
    let repo = open_or_init(root, policy)?;
    let current = repo
        .head()
        .ok()
        .and_then(|h| h.shorthand().map(str::to_string));
    if current.as_deref() == Some(name) {
        // git will not move the branch it is on; moving it is a reset of the current branch.
        return restore_snapshot(root, id, checkout, policy);
    }
    {
        let commit = find_commit(&repo, id)?;
        repo.branch(name, &commit, true)?;
    }
    repo.set_head(&format!("refs/heads/{name}"))?;
    if checkout {
        repo.checkout_head(Some(CheckoutBuilder::new().force().remove_untracked(true)))?;
    }
    Ok(())
}

/// Creates a branch at a snapshot (or the current commit) and optionally switches to it.
pub fn create_branch(
    root: &Path,
    name: &str,
    at: Option<&str>,
    checkout: bool,
    policy: &SnapshotPolicy,
) -> Result<(), GitError> {
    check_branch_name(name)?;
    if at.is_none() && state(root, 1, policy)?.latest_snapshot.is_none() {
        // A branch needs a commit to point at: record the workspace as it is.
        snapshot(root, "Initial snapshot", true, policy)?;
    }
    let repo = open_or_init(root, policy)?;
    if repo.find_branch(name, BranchType::Local).is_ok() {
        return Err(GitError::BranchExists(name.to_string()));
    }
    {
        let commit = match at {
            Some(id) => find_commit(&repo, id)?,
            None => repo.head()?.peel_to_commit()?,
        };
        repo.branch(name, &commit, false)?;
    }
    if checkout {
        switch_branch(root, name, true, policy)?;
    }
    Ok(())
}

pub fn paths() -> WorkspacePaths {
    WorkspacePaths {
        mount: MOUNT.to_string(),
        output: format!("{MOUNT}/{OUTPUT_DIR}"),
    }
}

/// The state of a workspace that has no history yet (or whose history cannot be read).
pub fn empty_state() -> WorkspaceState {
    WorkspaceState {
        enabled: true,
        not_in_snapshots: Vec::new(),
        snapshots: Vec::new(),
        latest_snapshot: None,
        paths: paths(),
        git: GitState {
            commit: None,
            branch: Some(DEFAULT_BRANCH.to_string()),
            is_dirty: false,
        },
    }
}

/// 1-200 characters of `[A-Za-z0-9._/-]`, not starting with `-`, `/` or `.`, without `..`, `//`
/// or `/.`, no component ending in `.lock`, not ending in `/` or `.` (the OpenAPI pattern).
pub fn check_branch_name(name: &str) -> Result<(), GitError> {
    let valid = (1..=200).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("/.")
        && !name.contains(".lock/")
        && !name.ends_with(".lock")
        && git2::Branch::name_is_valid(name).unwrap_or(false);
    if valid {
        Ok(())
    } else {
        Err(GitError::InvalidBranch(name.to_string()))
    }
}

fn find_commit<'r>(repo: &'r Repository, id: &str) -> Result<git2::Commit<'r>, GitError> {
    let unknown = || GitError::UnknownSnapshot(id.to_string());
    if !(4..=40).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let object = if id.len() == 40 {
        repo.find_object(Oid::from_str(id).map_err(|_| unknown())?, None)
    } else {
        repo.revparse_single(id)
    }
    .map_err(|_| unknown())?;
    object.peel_to_commit().map_err(|_| unknown())
}

fn view(commit: &git2::Commit) -> SnapshotView {
    let timestamp = chrono::DateTime::from_timestamp(commit.time().seconds(), 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    SnapshotView {
        id: commit.id().to_string(),
        label: commit.summary().unwrap_or("").to_string(),
        timestamp,
    }
}

/// What [`stage`] did with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Staged {
    Added,
    TooLarge,
    /// Gone, or changed kind meanwhile: left for the next snapshot.
    Skipped,
}

fn write_exclude(
    exclude: &Path,
    policy: &SnapshotPolicy,
    kept: &[PathBuf],
) -> Result<(), GitError> {
    std::fs::write(exclude, kept_out::render(&policy.ignore, kept))
        .map_err(|e| GitError::from(git2::Error::from_str(&e.to_string())))
}

/// Whether `relative` is a regular file larger than `max_bytes`.
fn too_large(workspace: &Dir, relative: &Path, max_bytes: u64) -> bool {
    workspace
        .open_file_no_follow(relative, "")
        .is_ok_and(|(_, stat)| u64::try_from(stat.st_size).unwrap_or(u64::MAX) > max_bytes)
}

/// Stages one changed path with content read beneath the workspace root: a regular file
/// (not followed through a final symlink; larger than `max_bytes` left out) or a symlink as
/// a link.
fn stage(
    index: &mut git2::Index,
    workspace: &Dir,
    relative: &Path,
    max_bytes: u64,
) -> Result<Staged, GitError> {
    let shown = relative.to_string_lossy();
    let Ok(Some(kind)) = workspace.kind(relative, &shown) else {
        return Ok(Staged::Skipped);
    };
    let path = relative.as_os_str().as_encoded_bytes().to_vec();
    let (data, stat, mode) = match kind {
        Kind::File => {
            let Ok((file, stat)) = workspace.open_file_no_follow(relative, &shown) else {
                return Ok(Staged::Skipped);
            };
            if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > max_bytes {
                return Ok(Staged::TooLarge);
            }
            let mut data = Vec::new();
            use std::io::Read as _;
            if file.take(max_bytes + 1).read_to_end(&mut data).is_err() {
                return Ok(Staged::Skipped);
            }
            if data.len() as u64 > max_bytes {
                return Ok(Staged::TooLarge);
            }
            let mode = if stat.st_mode & 0o111 != 0 {
                0o100755
            } else {
                0o100644
            };
            (data, Some(stat), mode)
        }
        Kind::Symlink => match workspace.read_link(relative, &shown) {
            Ok(target) => (target, None, 0o120000),
            Err(_) => return Ok(Staged::Skipped),
        },
        Kind::Dir | Kind::Other => return Ok(Staged::Skipped),
    };
    let time =
        |secs: i64, nanos: u32| git2::IndexTime::new(i32::try_from(secs).unwrap_or(0), nanos);
    let entry = git2::IndexEntry {
        ctime: stat.map_or(time(0, 0), |s| {
            time(s.st_ctime, u32::try_from(s.st_ctime_nsec).unwrap_or(0))
        }),
        mtime: stat.map_or(time(0, 0), |s| {
            time(s.st_mtime, u32::try_from(s.st_mtime_nsec).unwrap_or(0))
        }),
        dev: stat.map_or(0, |s| s.st_dev as u32),
        ino: stat.map_or(0, |s| s.st_ino as u32),
        mode,
        uid: stat.map_or(0, |s| s.st_uid),
        gid: stat.map_or(0, |s| s.st_gid),
        file_size: data.len() as u32,
        id: git2::Oid::zero(),
        flags: 0,
        flags_extended: 0,
        path,
    };
    index.add_frombuffer(&entry, &data)?;
    Ok(Staged::Added)
}

/// The first non-blank line of `label`, without control characters (a NUL cannot be in a
/// commit message), capped; "Snapshot" when nothing is left.
fn label_of(label: &str) -> String {
    let first: String = label
        .lines()
        .map(|line| line.chars().filter(|c| !c.is_control()).collect::<String>())
        .find(|line| !line.trim().is_empty())
        .unwrap_or_else(|| "Snapshot".into());
    first.trim().chars().take(MAX_LABEL_CHARS).collect()
}

#[cfg(test)]
mod tests;
