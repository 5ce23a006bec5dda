//! The bubblewrap sandbox that shell and Python processes run in.
//!
//! Owns the exact view a sandboxed process gets: system directories read-only, the session
//! workspace read-write at `/mnt/okcomputer`, a private `/tmp` and `$HOME`, new PID, IPC and
//! UTS namespaces, network only when `[sandbox] network = true`, a minimal environment, and
//! limits: per process through `prlimit`, per session through its control group
//! ([`cgroup`]). It never mounts the server's data directory, config, other workspaces or
//! `/proc` of the host, and nothing visible inside names a host path: a small launcher joins
//! the session's group, opens the workspace as descriptor 4 and execs bwrap, which binds that
//! descriptor (`--bind-fd`), so bwrap's own command line (pid 1 inside) holds sandbox paths
//! only. Sandboxed code never runs as host root: a server running as root starts bwrap
//! privileged (no user namespace) and the command drops to `[sandbox] uid`/`gid` through
//! `setpriv` with no capabilities left; any other server user is mapped by a user namespace.
//! Without bwrap it refuses to build a command unless `allow_unsandboxed` is set.

pub mod cgroup;

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::ToolError;
use crate::config::SandboxConfig;
use crate::workspace::{FileOwner, MOUNT};
use cgroup::{Cgroups, SessionCgroup};

/// System directories a process needs to run programs; mounted read-only.
const SYSTEM_DIRS: [&str; 5] = ["/usr", "/bin", "/lib", "/lib64", "/sbin"];
/// The parts of /etc programs need (name service, TLS roots, time zone); never all of /etc.
const ETC_ENTRIES: [&str; 15] = [
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/fonts",
    "/etc/mime.types",
    "/etc/python3.11",
    "/etc/matplotlibrc",
];
const PRLIMIT: &str = "/usr/bin/prlimit";
const SETPRIV: &str = "/usr/bin/setpriv";
/// The identity inside a user namespace (a server that does not run as root).
const SANDBOX_UID: &str = "1000";
/// Sets the address-space (`$2`, KiB) and CPU-time (`$3`, seconds, `-` for none) limits,
/// joins the session's control groups (`$5…`, `$4` of them), opens the workspace (`$1`) as
/// descriptor 4 for `--bind-fd`, then execs the rest (no `prlimit` process on the way);
/// exit 125 means the launch failed.
const LAUNCHER: &str = r#"ws=$1; as=$2; cpu=$3; n=$4; shift 4
ulimit -v "$as" || exit 125
[ "$cpu" = - ] || ulimit -t "$cpu" || exit 125
while [ "$n" -gt 0 ]; do
  echo $$ > "$1" || { echo "okcvm: cannot join the session's control group" >&2; exit 125; }
  shift; n=$((n - 1))
done
exec 4< "$ws" || exit 125
exec "$@""#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Bubblewrap(PathBuf),
    /// Explicitly allowed in okcvm.toml: no isolation, cwd is the host workspace.
    Unsandboxed,
    /// bwrap is missing and unsandboxed runs are not allowed.
    Unavailable(String),
}

/// How long a sandboxed process lives, which decides its CPU-time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// One command: limited to `[sandbox] cpu_secs` of CPU time.
    Command,
    /// A process that serves many calls (the Python interpreter): each call has its own
    /// timeout instead.
    Session,
}

/// Where one session's sandboxed processes run.
#[derive(Debug, Clone, Copy)]
pub struct Jail<'a> {
    pub workspace: &'a Path,
    pub cgroup: Option<&'a SessionCgroup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Allowed,
    Blocked,
}

#[derive(Debug)]
pub struct Sandbox {
    pub mode: Mode,
    pub network: Network,
    /// Per-session limits (available only with bubblewrap).
    pub cgroups: Cgroups,
    /// The host identity sandboxed code runs as, when this server runs as root.
    run_as: Option<FileOwner>,
    memory_bytes: u64,
    cpu_secs: u64,
    max_processes: u64,
    /// bwrap's arguments, the same for every command.
    bwrap_args: Vec<String>,
    has_prlimit: bool,
}

impl Sandbox {
    /// Finds bwrap, checks that it can start a sandbox here, and prepares per-session limits.
    pub fn detect(config: &SandboxConfig) -> Self {
        let run_as = nix::unistd::geteuid().is_root().then_some(FileOwner {
            uid: config.uid,
            gid: config.gid,
        });
        let mode = match super::exec::find_program(&config.bwrap_path) {
            Some(path) if bwrap_works(&path, run_as.is_some()) => Mode::Bubblewrap(path),
            found => {
                let reason = match found {
                    Some(path) => format!(
                        "{} cannot create a sandbox on this host (user namespaces disabled?)",
                        path.display()
                    ),
                    None => "bubblewrap (bwrap) is not installed; install the `bubblewrap` package"
                        .to_string(),
                };
                if config.allow_unsandboxed {
                    tracing::warn!(%reason, "running shell and Python WITHOUT a sandbox (sandbox.allow_unsandboxed = true)");
                    Mode::Unsandboxed
                } else {
                    tracing::warn!(%reason, "shell and Python tools are disabled until bwrap works or sandbox.allow_unsandboxed = true");
                    Mode::Unavailable(reason)
                }
            }
        };
        let limits = cgroup::Limits {
            max_processes: config.max_processes,
            memory_bytes: config.memory_mb * 1024 * 1024,
            cpu_percent: config.cpu_percent,
        };
        let cgroups = if matches!(mode, Mode::Bubblewrap(_)) {
            let cgroups = Cgroups::detect(limits);
            if !cgroups.available() {
                tracing::warn!(limits = %cgroups.describe(), "sessions are not limited as a whole");
            }
            cgroups
        } else {
            Cgroups::disabled("no sandbox", limits)
        };
        let run_as = run_as.filter(|_| matches!(mode, Mode::Bubblewrap(_)));
        let mut sandbox = Self {
            mode,
            network: if config.network {
                Network::Allowed
            } else {
                Network::Blocked
            },
            cgroups,
            run_as,
            memory_bytes: config.memory_mb * 1024 * 1024,
            cpu_secs: config.cpu_secs,
            max_processes: config.max_processes,
            bwrap_args: Vec::new(),
            has_prlimit: Path::new(PRLIMIT).exists(),
        };
        // Worked out once: it looks at the host's system folders.
        sandbox.bwrap_args = sandbox.make_bwrap_args();
        sandbox
    }

    /// Who owns what the server creates in workspaces: the sandbox's user when this server
    /// runs as root, so sandboxed code can change it.
    pub fn file_owner(&self) -> Option<FileOwner> {
        self.run_as
    }

    /// A command that runs `program args…` in the sandbox with the workspace at the mount,
    /// in the session's control group, limited in memory and CPU time.
    pub fn command(
        &self,
        jail: Jail<'_>,
        program: &str,
        args: &[&str],
        lifetime: Lifetime,
    ) -> Result<Command, ToolError> {
        let workspace_root = jail.workspace;
        let mut command = match &self.mode {
            Mode::Unavailable(reason) => {
                return Err(ToolError::RespondToModel(format!(
                    "code execution is unavailable on this server: {reason} (or set [sandbox] allow_unsandboxed = true in okcvm.toml)"
                )))
            }
            Mode::Unsandboxed => {
                let limits = self.limits(lifetime);
                let mut command = match limits.split_first() {
                    Some((prlimit, rest)) => {
                        let mut command = Command::new(prlimit);
                        command.args(rest).arg(program);
                        command
                    }
                    None => Command::new(program),
                };
                command.args(args).current_dir(workspace_root);
                command
            }
            Mode::Bubblewrap(bwrap) => {
                let procs = jail.cgroup.map(SessionCgroup::procs_files).unwrap_or_default();
                let mut command = Command::new("/bin/sh");
                command
                    .arg("-c")
                    .arg(LAUNCHER)
                    .arg("okcvm-sandbox")
                    .arg(workspace_root)
                    .arg((self.memory_bytes / 1024).to_string())
                    .arg(match lifetime {
                        Lifetime::Command => self.cpu_secs.to_string(),
                        Lifetime::Session => "-".to_string(),
                    })
                    .arg(procs.len().to_string())
                    .args(procs);
                if !self.cgroups.available() && self.run_as.is_some() && self.has_prlimit {
                    // Without a control group, the processes of the sandbox's own host user
                    // (all sessions together) are capped instead.
                    command.args([
                        PRLIMIT.to_string(),
                        format!("--nproc={}", self.max_processes),
                        "--".to_string(),
                    ]);
                }
                command.arg(bwrap).args(&self.bwrap_args);
                command.arg("--");
                if let Some(owner) = self.run_as {
                    command.args(drop_privileges(owner));
                }
                command.arg(program).args(args);
                command
            }
        };
        command
            .env_clear()
            .env(
                "PATH",
                "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
            )
            .env("HOME", "/tmp")
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env("PYTHONUNBUFFERED", "1")
            .env("MPLBACKEND", "Agg")
            .env("OKCOMPUTER_WORKSPACE", MOUNT);
        Ok(command)
    }

    /// `prlimit` and its arguments (ending in `--`) for an unsandboxed command, or nothing
    /// where it is missing.
    fn limits(&self, lifetime: Lifetime) -> Vec<String> {
        if !self.has_prlimit {
            return Vec::new();
        }
        let mut args = vec![PRLIMIT.to_string(), format!("--as={}", self.memory_bytes)];
        if lifetime == Lifetime::Command {
            args.push(format!("--cpu={}", self.cpu_secs));
        }
        args.push("--".into());
        args
    }

    /// bwrap's arguments: sandbox paths only (the workspace comes as descriptor 4).
    fn make_bwrap_args(&self) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        if self.run_as.is_some() {
            // Privileged bwrap without a user namespace; the command drops to the sandbox
            // user itself, so bwrap keeps only what setpriv needs for that.
            args.extend(
                [
                    "--unshare-pid",
                    "--unshare-ipc",
                    "--unshare-uts",
                    "--unshare-cgroup-try",
                    "--cap-add",
                    "CAP_SETUID",
                    "--cap-add",
                    "CAP_SETGID",
                ]
                .map(String::from),
            );
            if self.network == Network::Blocked {
                args.push("--unshare-net".into());
            }
        } else {
            args.extend(
                ["--unshare-all", "--uid", SANDBOX_UID, "--gid", SANDBOX_UID].map(String::from),
            );
            if self.network == Network::Allowed {
                args.push("--share-net".into());
            }
        }
        args.extend(
            [
                "--die-with-parent",
                "--hostname",
                "okcomputer",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
            ]
            .map(String::from),
        );
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            match std::fs::read_link(path) {
                Ok(target) => args.extend([
                    "--symlink".into(),
                    target.to_string_lossy().into_owned(),
                    dir.into(),
                ]),
                Err(_) if path.is_dir() => {
                    args.extend(["--ro-bind".into(), dir.into(), dir.into()])
                }
                Err(_) => {}
            }
        }
        // Folders bwrap makes for mount points are private to root unless told otherwise; the
        // sandbox user must be able to walk them.
        for dir in ["/etc", "/mnt"] {
            args.extend(["--perms".into(), "0755".into(), "--dir".into(), dir.into()]);
        }
        for entry in ETC_ENTRIES {
            if Path::new(entry).exists() {
                args.extend(["--ro-bind".into(), entry.into(), entry.into()]);
            }
        }
        args.extend(["--bind-fd".into(), "4".into(), MOUNT.into()]);
        // The sandbox's own root (where /etc and /mnt were created) becomes read-only too;
        // only the workspace and the private /tmp stay writable.
        args.extend(["--remount-ro".into(), "/".into()]);
        args.extend(["--chdir".into(), MOUNT.into()]);
        args
    }
}

/// `setpriv` switching to `owner` with no capabilities and no way to gain any, then `--`.
fn drop_privileges(owner: FileOwner) -> Vec<String> {
    vec![
        SETPRIV.into(),
        format!("--reuid={}", owner.uid),
        format!("--regid={}", owner.gid),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "--bounding-set=-all".into(),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

/// bwrap may be installed yet unable to create a sandbox here (no user namespaces, or no
/// setpriv for a server running as root).
fn bwrap_works(bwrap: &Path, privileged: bool) -> bool {
    let mut command = std::process::Command::new(bwrap);
    if privileged {
        if !Path::new(SETPRIV).exists() {
            return false;
        }
        command.args([
            "--unshare-pid",
            "--unshare-net",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--",
        ]);
        command.args(drop_privileges(FileOwner {
            uid: 65534,
            gid: 65534,
        }));
        command.arg("true");
    } else {
        command.args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "true",
        ]);
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}
