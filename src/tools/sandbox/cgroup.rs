//! Per-session control groups: a process limit, a memory limit for the session's total and a
//! CPU share that hold for the whole tree of a session's sandboxed processes (shell commands,
//! the Python interpreter and everything they start).
//!
//! Each sandboxed process joins its session's group before bubblewrap starts (the launcher
//! writes its own pid into `cgroup.procs`, then execs), so nothing it forks is ever outside.
//! cgroup v2 is used where the host lets this server manage `pids`, `memory` and `cpu` under
//! its own group, the v1 controllers of the same names otherwise; where neither can be
//! written, [`Cgroups::detect`] says why and sessions run with per-process limits only.
//! Groups live under `okcvm/` in the server's own group; a session's group is emptied and
//! removed when the session ends, and groups left by a server that died are removed at start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The folder, below the server's own group, that holds the session groups.
const PARENT: &str = "okcvm";
/// CFS period for the CPU share (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// How long an ending session's processes get to disappear before its group is left behind.
const DRAIN_ATTEMPTS: usize = 50;
const DRAIN_PAUSE: Duration = Duration::from_millis(10);

/// What each session may use in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_processes: u64,
    pub memory_bytes: u64,
    /// Percent of one CPU (200 = two CPUs).
    pub cpu_percent: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// The unified hierarchy: session groups are made in `parent`, which has the three
    /// controllers enabled for its children.
    V2 { parent: PathBuf },
    /// One parent folder per v1 controller.
    V1 {
        pids: PathBuf,
        memory: PathBuf,
        cpu: Option<PathBuf>,
    },
}

/// The server's handle on per-session groups; one for the whole server.
#[derive(Debug)]
pub struct Cgroups {
    layout: Result<Layout, String>,
    limits: Limits,
    /// Names are `<server pid>-<instance>-<n>`: unique among servers of one process too.
    instance: String,
    next: AtomicU64,
}

impl Cgroups {
    /// Finds a hierarchy this server may write, prepares its `okcvm/` folder and removes
    /// groups that a previous server left behind.
    pub fn detect(limits: Limits) -> Self {
        let layout = find_layout();
        if let Ok(layout) = &layout {
            for parent in parents(layout) {
                remove_stale_groups(&parent);
            }
        }
        Self {
            layout,
            limits,
            instance: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            next: AtomicU64::new(1),
        }
    }

    /// Groups that are never created (tests of other parts, hosts without cgroups).
    pub fn disabled(reason: &str, limits: Limits) -> Self {
        Self {
            layout: Err(reason.to_string()),
            limits,
            instance: String::new(),
            next: AtomicU64::new(1),
        }
    }

    pub fn available(&self) -> bool {
        self.layout.is_ok()
    }

    /// One line for `okcvm check` and the start-up log.
    pub fn describe(&self) -> String {
        let Limits {
            max_processes,
            memory_bytes,
            cpu_percent,
        } = self.limits;
        let limits = format!(
            "{max_processes} processes, {} MiB, {cpu_percent}% CPU per session",
            memory_bytes / (1024 * 1024)
        );
        match &self.layout {
            Ok(Layout::V2 { .. }) => format!("cgroup v2: {limits}"),
            Ok(Layout::V1 { cpu, .. }) => format!(
                "cgroup v1 (pids, memory{}): {limits}",
                if cpu.is_some() { ", cpu" } else { "" }
            ),
            Err(reason) => format!("no per-session limits ({reason}); each process is still limited in memory and CPU time"),
        }
    }

    /// A new, empty group for one session, with its limits written. Blocking (a few small
    /// writes to cgroupfs).
    pub fn create(&self) -> Result<SessionCgroup, String> {
        let layout = self.layout.as_ref().map_err(Clone::clone)?;
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            self.instance,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let Limits {
            max_processes,
            memory_bytes,
            cpu_percent,
        } = self.limits;
        let quota = (cpu_percent * CPU_PERIOD_US / 100).max(1000);
        let mut group = SessionCgroup { dirs: Vec::new() };
        let mut make = |parent: &Path, settings: &[(&str, String)], optional: &[(&str, String)]| {
            let dir = parent.join(&name);
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            group.dirs.push(dir.clone());
            for (file, value) in settings {
                write(&dir.join(file), value)?;
            }
            for (file, value) in optional {
                let _ = write(&dir.join(file), value); // swap accounting may be off
            }
            Ok::<(), String>(())
        };
        match layout {
            Layout::V2 { parent } => make(
                parent,
                &[
                    ("pids.max", max_processes.to_string()),
                    ("memory.max", memory_bytes.to_string()),
                    ("cpu.max", format!("{quota} {CPU_PERIOD_US}")),
                ],
                &[("memory.swap.max", "0".into())],
            )?,
            Layout::V1 { pids, memory, cpu } => {
                make(pids, &[("pids.max", max_processes.to_string())], &[])?;
                make(
                    memory,
                    &[("memory.limit_in_bytes", memory_bytes.to_string())],
                    &[("memory.memsw.limit_in_bytes", memory_bytes.to_string())],
                )?;
                if let Some(cpu) = cpu {
                    make(
                        cpu,
                        &[
                            ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
                            ("cpu.cfs_quota_us", quota.to_string()),
                        ],
                        &[],
                    )?;
                }
            }
        }
        Ok(group)
    }
}

/// One session's group (one folder per v1 controller); emptied and removed when dropped.
#[derive(Debug)]
pub struct SessionCgroup {
    dirs: Vec<PathBuf>,
}

impl SessionCgroup {
    /// The files a process writes its pid into to join the group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Something that kills every process in the group and waits (briefly) for them to go,
    /// to run on the blocking pool before the workspace is rewritten under them.
    pub fn stopper(&self) -> impl FnOnce() + Send + 'static {
        let dirs = self.dirs.clone();
        move || {
            for dir in &dirs {
                drain(dir);
            }
        }
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        let dirs = std::mem::take(&mut self.dirs);
        // Killing and waiting takes a moment: off the session's thread when there is a runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || remove_groups(&dirs));
            }
            Err(_) => remove_groups(&dirs),
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn pids_in(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Kills every process in a group until it is empty (or the attempts run out).
fn drain(dir: &Path) {
    for _ in 0..DRAIN_ATTEMPTS {
        let pids = pids_in(dir);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(DRAIN_PAUSE);
    }
}

/// Kills what is left in the groups and removes them.
fn remove_groups(dirs: &[PathBuf]) {
    for dir in dirs {
        drain(dir);
        if let Err(error) = std::fs::remove_dir(dir) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(group = %dir.display(), %error, "a session's control group could not be removed");
            }
        }
    }
}

fn parents(layout: &Layout) -> Vec<PathBuf> {
    match layout {
        Layout::V2 { parent } => vec![parent.clone()],
        Layout::V1 { pids, memory, cpu } => {
            let mut all = vec![pids.clone(), memory.clone()];
            all.extend(cpu.clone());
            all
        }
    }
}

/// Removes the groups of server processes that are gone (named `<pid>-…`).
fn remove_stale_groups(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let own = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, _)) = name.split_once('-') else {
            continue;
        };
        let alive = pid == own || Path::new("/proc").join(pid).exists();
        if entry.path().is_dir() && !alive {
            remove_groups(&[entry.path()]);
        }
    }
}

/// Where session groups can be made: v2 with all three controllers, else v1.
fn find_layout() -> Result<Layout, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let membership = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let mounts = cgroup_mounts(&mountinfo);
    let groups = own_groups(&membership);
    let v2_error = match v2_layout(&mounts, &groups) {
        Ok(layout) => return Ok(layout),
        Err(error) => error,
    };
    v1_layout(&mounts, &groups).map_err(|v1_error| format!("{v2_error}; {v1_error}"))
}

/// A cgroup file system mounted here: v2 (`controllers` empty) or v1 with its controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    v2: bool,
    /// The group shown at the mount point (not `/` inside containers).
    root: String,
    point: PathBuf,
    controllers: Vec<String>,
}

/// The cgroup mounts of a `/proc/self/mountinfo` text (pure).
fn cgroup_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split_whitespace().collect();
            let mut after = after.split_whitespace();
            let fstype = after.next()?;
            let _source = after.next()?;
            let options = after.next().unwrap_or("");
            let (root, point) = (fields.get(3)?, fields.get(4)?);
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let controllers = if v2 {
                Vec::new()
            } else {
                options
                    .split(',')
                    .filter(|o| matches!(*o, "pids" | "memory" | "cpu"))
                    .map(String::from)
                    .collect()
            };
            Some(Mount {
                v2,
                root: root.to_string(),
                point: PathBuf::from(point),
                controllers,
            })
        })
        .collect()
}

/// `(controllers, path)` of each line of `/proc/self/cgroup` (pure); v2's line has none.
fn own_groups(membership: &str) -> Vec<(Vec<String>, String)> {
    membership
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect();
            Some((controllers, path.to_string()))
        })
        .collect()
}

/// The folder of the server's own group on a mount.
fn own_dir(mount: &Mount, own_path: &str) -> PathBuf {
    let relative = own_path
        .strip_prefix(mount.root.trim_end_matches('/'))
        .unwrap_or(own_path)
        .trim_start_matches('/');
    mount.point.join(relative)
}

fn v2_layout(mounts: &[Mount], groups: &[(Vec<String>, String)]) -> Result<Layout, String> {
    let mount = mounts.iter().find(|m| m.v2).ok_or("no cgroup v2 mount")?;
    let own_path = groups
        .iter()
        .find(|(controllers, _)| controllers.is_empty())
        .map(|(_, path)| path.as_str())
        .ok_or("not in a cgroup v2 group")?;
    let own = own_dir(mount, own_path);
    let available = std::fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    let wanted = ["pids", "memory", "cpu"];
    if !wanted
        .iter()
        .all(|c| available.split_whitespace().any(|a| a == *c))
    {
        return Err(format!(
            "cgroup v2 does not delegate pids, memory and cpu to {}",
            own.display()
        ));
    }
    let enable = "+pids +memory +cpu";
    // A group with processes cannot hand controllers to children: move this server into a
    // leaf of its own first.
    if write(&own.join("cgroup.subtree_control"), enable).is_err() {
        let leaf = own.join("okcvm-server");
        let _ = std::fs::create_dir(&leaf);
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        write(&own.join("cgroup.subtree_control"), enable)?;
    }
    let parent = own.join(PARENT);
    match std::fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", parent.display())),
    }
    write(&parent.join("cgroup.subtree_control"), enable)?;
    Ok(Layout::V2 { parent })
}

fn v1_layout(mounts: &[Mount], groups: &[(Vec<String>, String)]) -> Result<Layout, String> {
    let parent_of = |controller: &str| -> Result<PathBuf, String> {
        let mount = mounts
            .iter()
            .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
            .ok_or(format!("no cgroup v1 {controller} controller"))?;
        let own_path = groups
            .iter()
            .find(|(controllers, _)| controllers.iter().any(|c| c == controller))
            .map_or("/", |(_, path)| path.as_str());
        let parent = own_dir(mount, own_path).join(PARENT);
        std::fs::create_dir_all(&parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        Ok(parent)
    };
    Ok(Layout::V1 {
        pids: parent_of("pids")?,
        memory: parent_of("memory")?,
        cpu: parent_of("cpu").ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:34 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 23 254:0 / / rw - ext4 /dev/vda rw";

    const MEMBERSHIP: &str = "\
8:pids:/
4:memory:/docker/abc/worker
1:cpu,cpuacct:/
0::/user.slice";

    #[test]
    fn mounts_and_own_groups_are_read() {
        let mounts = cgroup_mounts(MOUNTINFO);
        assert_eq!(mounts.len(), 4);
        assert!(mounts[0].v2);
        assert_eq!(mounts[1].controllers, vec!["cpu"]);
        let groups = own_groups(MEMBERSHIP);
        assert_eq!(
            groups[1],
            (vec!["memory".to_string()], "/docker/abc/worker".to_string())
        );
        assert_eq!(groups[3], (vec![], "/user.slice".to_string()));
        // A mount whose root is a group shows that group at its mount point.
        assert_eq!(
            own_dir(&mounts[2], "/docker/abc/worker"),
            PathBuf::from("/sys/fs/cgroup/memory/worker")
        );
        assert_eq!(
            own_dir(&mounts[3], "/"),
            PathBuf::from("/sys/fs/cgroup/pids")
        );
    }

    #[test]
    fn a_session_group_holds_its_processes_and_goes_away() {
        let limits = Limits {
            max_processes: 20,
            memory_bytes: 256 * 1024 * 1024,
            cpu_percent: 50,
        };
        let cgroups = Cgroups::detect(limits);
        if !cgroups.available() {
            return; // this host gives no cgroups to write
        }
        let group = cgroups.create().unwrap();
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg("for f; do echo $$ > \"$f\"; done; exec sleep 30")
            .arg("sh")
            .args(group.procs_files())
            .spawn()
            .unwrap();
        let mut joined = false;
        for _ in 0..100 {
            if !pids_in(&group.dirs[0]).is_empty() {
                joined = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(joined, "the process joined its group");
        let dirs = group.dirs.clone();
        let reaper = std::thread::spawn(move || {
            let mut child = child;
            child.wait()
        });
        drop(group);
        let _ = reaper.join();
        assert!(dirs.iter().all(|d| !d.exists()), "the group was removed");
    }
}
