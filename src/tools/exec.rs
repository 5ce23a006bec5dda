//! Running a child process for a tool: combined output, a cap, a timeout and cancellation.
//!
//! Owns the child's lifetime. The child leads its own process group; on timeout or cancel the
//! whole group is killed (under bwrap that also ends the PID namespace, so nothing survives).
//! Output is read as it comes into a bounded head+tail buffer, so a runaway command cannot
//! exhaust memory. Background processes that keep the pipe open cannot hold a call hostage:
//! once the child exits, the pipe gets a short grace period and the group is killed.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::output::HeadTailBuffer;
use super::ToolError;

/// How long output may keep arriving after the child exited (from its background children).
const DRAIN_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    Cancelled,
}

#[derive(Debug)]
pub struct ExecResult {
    pub output: String,
    pub ending: Ending,
    pub elapsed: Duration,
}

/// Runs `command` to completion (or timeout/cancel) with stdout and stderr combined.
pub async fn run(
    mut command: Command,
    timeout: Duration,
    output_cap: usize,
    cancel: &CancellationToken,
) -> Result<ExecResult, ToolError> {
    let started = Instant::now();
    let (reader, writer) =
        std::io::pipe().map_err(|e| ToolError::Fatal(format!("cannot create a pipe: {e}")))?;
    let writer_for_stderr = writer
        .try_clone()
        .map_err(|e| ToolError::Fatal(format!("cannot clone a pipe: {e}")))?;
    command
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_for_stderr)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| ToolError::RespondToModel(format!("cannot start the process: {e}")))?;
    // Our copies of the write end must close, or the pipe never reports EOF.
    drop(command);
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    // Also when this future is dropped mid-run (a stop abandons a tool that is slow to end).
    let _group = GroupGuard(pgid);
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| ToolError::Fatal(format!("cannot read the pipe: {e}")))?;
    let mut buffer = HeadTailBuffer::new(output_cap);
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut pipe_open = true;
    let mut ending = None;
    while ending.is_none() {
        tokio::select! {
            read = pipe.read(&mut chunk), if pipe_open => match read {
                Ok(0) | Err(_) => pipe_open = false,
                Ok(n) => buffer.push(&chunk[..n]),
            },
            status = child.wait() => {
                ending = Some(match status {
                    Ok(status) => match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                        (Some(code), _) => Ending::Exited(code),
                        (None, Some(signal)) => Ending::Signalled(signal),
                        (None, None) => Ending::Exited(-1),
                    },
                    Err(e) => return Err(ToolError::Fatal(format!("cannot wait for the process: {e}"))),
                });
            }
            _ = &mut deadline => ending = Some(Ending::TimedOut),
            _ = cancel.cancelled() => ending = Some(Ending::Cancelled),
        }
    }
    let ending = ending.unwrap_or(Ending::Cancelled);
    if matches!(ending, Ending::TimedOut | Ending::Cancelled) {
        kill_group(pgid);
        let _ = child.wait().await;
    }
    // Collect what is still in the pipe, without waiting on background holders for long.
    let grace = tokio::time::sleep(DRAIN_GRACE);
    tokio::pin!(grace);
    while pipe_open {
        tokio::select! {
            read = pipe.read(&mut chunk) => match read {
                Ok(0) | Err(_) => pipe_open = false,
                Ok(n) => buffer.push(&chunk[..n]),
            },
            _ = &mut grace => pipe_open = false,
        }
    }
    // Like the sandbox's PID namespace, nothing the command started outlives the call (the
    // guard kills the group as it goes out of scope).
    Ok(ExecResult {
        output: buffer.into_text(),
        ending,
        elapsed: started.elapsed(),
    })
}

/// Kills the child's process group when dropped.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

/// Kills the process group led by the child (ESRCH when it is already gone is fine).
pub fn kill_group(pgid: Option<Pid>) {
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// A program by name (looked up in `PATH`) or by path.
pub fn find_program(name: &std::path::Path) -> Option<std::path::PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Resident memory in KiB of every process group on the machine, from one pass over /proc
/// (a sandboxed tool's processes all share the group of the process it started).
pub fn rss_by_process_group() -> HashMap<i32, u64> {
    let page_kib = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4, |bytes| (bytes / 1024).max(1) as u64);
    let mut groups = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for entry in entries.flatten() {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((group, pages)) = group_and_rss_pages(&stat) {
            *groups.entry(group).or_insert(0) += pages * page_kib;
        }
    }
    groups
}

/// The process group and resident pages of a `/proc/<pid>/stat` line.
fn group_and_rss_pages(stat: &str) -> Option<(i32, u64)> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Field 3 (state) is fields[0]: pgrp is field 5, rss field 24.
    Some((fields.get(2)?.parse().ok()?, fields.get(21)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_their_group_and_resident_pages() {
        let stat = "4242 (python3 (x) y) S 1 4240 4240 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 1 0 \
                    100 1000000 2500 18446744073709551615";
        assert_eq!(group_and_rss_pages(stat), Some((4240, 2500)));
        assert_eq!(group_and_rss_pages("garbage"), None);
        let own = rss_by_process_group();
        let group = nix::unistd::getpgrp().as_raw();
        assert!(
            own.get(&group).is_some_and(|&kib| kib > 0),
            "this test's own group"
        );
    }

    fn bash(script: &str) -> Command {
        let mut command = Command::new("bash");
        command.arg("-c").arg(script);
        command
    }

    #[tokio::test]
    async fn combined_output_and_exit_code() {
        let result = run(
            bash("echo out; echo err >&2; exit 3"),
            Duration::from_secs(5),
            1024,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(result.ending, Ending::Exited(3));
        assert_eq!(result.output, "out\nerr\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("(sleep 1; touch {}) & sleep 100", marker.display());
        let result = run(
            bash(&script),
            Duration::from_millis(200),
            1024,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(result.ending, Ending::TimedOut);
        assert!(result.elapsed < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(
            !marker.exists(),
            "a child of the timed-out command survived"
        );
    }

    #[tokio::test]
    async fn cancel_stops_the_command() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            trigger.cancel();
        });
        let result = run(bash("sleep 100"), Duration::from_secs(30), 1024, &cancel)
            .await
            .unwrap();
        assert_eq!(result.ending, Ending::Cancelled);
    }

    #[tokio::test]
    async fn background_holder_of_the_pipe_does_not_block() {
        let result = run(
            bash("sleep 30 & echo done"),
            Duration::from_secs(10),
            1024,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(result.ending, Ending::Exited(0));
        assert_eq!(result.output, "done\n");
        assert!(result.elapsed < Duration::from_secs(5));
    }
}
