//! The bubblewrap sandbox that shell and Python processes run in.
//!
//! Owns the exact view a sandboxed process gets: system directories read-only, the session
//! workspace read-write at `/mnt/okcomputer`, a private `/tmp` and `$HOME`, new user, PID, IPC
//! and UTS namespaces, network only when `[sandbox] network = true`, a minimal environment,
//! and CPU/memory limits through `prlimit`. It never mounts the server's data directory,
//! config, other workspaces or `/proc` of the host. Without bwrap it refuses to build a
//! command unless `allow_unsandboxed` is set.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::ToolError;
use crate::config::SandboxConfig;
use crate::workspace::MOUNT;

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
/// The unprivileged identity inside the sandbox.
const SANDBOX_UID: &str = "1000";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Bubblewrap(PathBuf),
    /// Explicitly allowed in okcvm.toml: no isolation, cwd is the host workspace.
    Unsandboxed,
    /// bwrap is missing and unsandboxed runs are not allowed.
    Unavailable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuLimit {
    PerCommand,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Allowed,
    Blocked,
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    pub mode: Mode,
    pub network: Network,
    memory_bytes: u64,
    cpu_secs: u64,
}

impl Sandbox {
    /// Finds bwrap and checks that it can start a namespace here.
    pub fn detect(config: &SandboxConfig) -> Self {
        let mode = match super::exec::find_program(&config.bwrap_path) {
            Some(path) if bwrap_works(&path) => Mode::Bubblewrap(path),
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
        Self {
            mode,
            network: if config.network {
                Network::Allowed
            } else {
                Network::Blocked
            },
            memory_bytes: config.memory_mb * 1024 * 1024,
            cpu_secs: config.cpu_secs,
        }
    }

    /// A command that runs `program args…` in the sandbox with the workspace at the mount,
    /// limited in memory and CPU time.
    pub fn command(
        &self,
        workspace_root: &Path,
        program: &str,
        args: &[&str],
    ) -> Result<Command, ToolError> {
        self.build(workspace_root, program, args, CpuLimit::PerCommand)
    }

    /// Like [`Sandbox::command`] for a process that lives across many calls (the Python
    /// interpreter): no cumulative CPU limit, since each call has its own timeout.
    pub fn long_lived_command(
        &self,
        workspace_root: &Path,
        program: &str,
        args: &[&str],
    ) -> Result<Command, ToolError> {
        self.build(workspace_root, program, args, CpuLimit::None)
    }

    fn build(
        &self,
        workspace_root: &Path,
        program: &str,
        args: &[&str],
        cpu: CpuLimit,
    ) -> Result<Command, ToolError> {
        let mut command = match &self.mode {
            Mode::Unavailable(reason) => {
                return Err(ToolError::RespondToModel(format!(
                    "code execution is unavailable on this server: {reason} (or set [sandbox] allow_unsandboxed = true in okcvm.toml)"
                )))
            }
            Mode::Unsandboxed => {
                let mut command = self.limited(program, cpu);
                command.args(args).current_dir(workspace_root);
                command
            }
            Mode::Bubblewrap(bwrap) => {
                let mut command = self.limited(&bwrap.to_string_lossy(), cpu);
                command.args(self.bwrap_args(workspace_root));
                command.arg("--").arg(program).args(args);
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

    fn limited(&self, program: &str, cpu: CpuLimit) -> Command {
        if Path::new(PRLIMIT).exists() {
            let mut command = Command::new(PRLIMIT);
            command.arg(format!("--as={}", self.memory_bytes));
            if cpu == CpuLimit::PerCommand {
                command.arg(format!("--cpu={}", self.cpu_secs));
            }
            command.arg("--").arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn bwrap_args(&self, workspace_root: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "--unshare-all",
            "--die-with-parent",
            "--uid",
            SANDBOX_UID,
            "--gid",
            SANDBOX_UID,
            "--hostname",
            "okcomputer",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ]
        .map(String::from)
        .to_vec();
        if self.network == Network::Allowed {
            args.push("--share-net".into());
        }
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
        for entry in ETC_ENTRIES {
            if Path::new(entry).exists() {
                args.extend(["--ro-bind".into(), entry.into(), entry.into()]);
            }
        }
        let root = workspace_root.to_string_lossy().into_owned();
        args.extend(["--bind".into(), root, MOUNT.into()]);
        // The sandbox's own root (where /etc and /mnt were created) becomes read-only too;
        // only the workspace and the private /tmp stay writable.
        args.extend(["--remount-ro".into(), "/".into()]);
        args.extend(["--chdir".into(), MOUNT.into()]);
        args
    }
}

/// bwrap may be installed yet unable to create namespaces (e.g. in some containers).
fn bwrap_works(bwrap: &Path) -> bool {
    std::process::Command::new(bwrap)
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}
