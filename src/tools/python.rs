//! `mshtools-ipython`: one long-lived Python interpreter per session, inside the sandbox.
//!
//! The interpreter runs `python_driver.py` (compiled in) and speaks newline-delimited JSON
//! over stdin/stdout. Variables, imports and files persist between calls; the driver stops a
//! cell at its timeout and keeps the interpreter. A cell that does not come back within the
//! timeout plus a grace period, a cancel, `restart: true`, or the session's end kills the
//! interpreter's whole process group.

use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::exec::kill_group;
use super::output::cap_middle;
use super::sandbox::Lifetime;
use super::slots::Slot;
use super::{ToolContext, ToolError, ToolOutput, TypedTool};

const DRIVER: &str = include_str!("python_driver.py");
/// How long a fresh interpreter may take to say it is ready (IPython imports are slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line read from the driver (a cell's reply with its figures); a cell that writes
/// more into the protocol descriptor loses its interpreter instead of the server's memory.
const MAX_PROTOCOL_LINE: usize = 32 * 1024 * 1024;
/// Extra time the driver gets to report a timed-out cell before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// A running interpreter.
pub struct Kernel {
    child: Child,
    stdin: ChildStdin,
    stdout: FramedRead<ChildStdout, LinesCodec>,
    pgid: Option<Pid>,
    next_id: u64,
    pub engine: String,
    /// Its place among the server's interpreters (`[limits] python_interpreters`).
    slot: Slot,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("pgid", &self.pgid)
            .field("engine", &self.engine)
            .finish()
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        kill_group(self.pgid);
    }
}

/// One cell's result as the driver reports it.
#[derive(Debug, Default, Deserialize)]
pub struct CellReply {
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub timed_out: bool,
}

#[derive(Debug)]
pub enum CellError {
    /// The interpreter died or stopped answering; it has been killed.
    Lost(String),
}

impl Kernel {
    /// Starts the driver in the sandbox and waits for its ready line.
    pub async fn start(ctx: &mut ToolContext) -> Result<Self, ToolError> {
        // Reclaiming the slot kills the interpreter's process group (known once it runs).
        let group = Arc::new(AtomicI32::new(0));
        let slot = ctx.services.interpreters.acquire({
            let group = group.clone();
            move || match group.load(Ordering::Acquire) {
                0 => {}
                pgid => kill_group(Some(Pid::from_raw(pgid))),
            }
        })?;
        let mut command = ctx
            .sandboxed("python3", &["-u", "-c", DRIVER], Lifetime::Session)
            .await?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| ToolError::RespondToModel(format!("cannot start Python: {e}")))?;
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        group.store(pgid.map_or(0, Pid::as_raw), Ordering::Release);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_group(pgid);
            return Err(ToolError::Fatal("Python started without pipes".into()));
        };
        let mut kernel = Kernel {
            child,
            stdin,
            stdout: FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_PROTOCOL_LINE)),
            pgid,
            next_id: 1,
            engine: String::new(),
            slot,
        };
        let ready = tokio::time::timeout(START_TIMEOUT, kernel.stdout.next()).await;
        match ready {
            Ok(Some(Ok(line))) => {
                let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if value["ready"] != true {
                    return Err(ToolError::RespondToModel(format!(
                        "Python did not start properly: {line}"
                    )));
                }
                kernel.engine = value["engine"].as_str().unwrap_or("python").to_string();
                Ok(kernel)
            }
            Ok(_) => Err(ToolError::RespondToModel(
                "Python exited during start-up (is python3 installed on the server?)".into(),
            )),
            Err(_) => Err(ToolError::RespondToModel(
                "Python did not start within 30 s".into(),
            )),
        }
    }

    /// Runs one cell; the driver enforces `timeout`, this side allows a grace period more.
    pub async fn run(&mut self, code: &str, timeout: Duration) -> Result<CellReply, CellError> {
        let _in_use = self.slot.in_use();
        let id = self.next_id;
        self.next_id += 1;
        let mut request =
            json!({"id": id, "code": code, "timeout": timeout.as_secs_f64()}).to_string();
        request.push('\n');
        if let Err(e) = self.stdin.write_all(request.as_bytes()).await {
            return Err(CellError::Lost(format!("the interpreter is gone ({e})")));
        }
        let _ = self.stdin.flush().await;
        let deadline = tokio::time::Instant::now() + timeout + GRACE;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.stdout.next()).await {
                Err(_) => {
                    return Err(CellError::Lost(format!(
                        "the cell did not stop within {} s",
                        (timeout + GRACE).as_secs()
                    )))
                }
                Ok(Some(Ok(line))) => line,
                Ok(Some(Err(LinesCodecError::MaxLineLengthExceeded))) => {
                    return Err(CellError::Lost(format!(
                        "the cell wrote more than {} MiB into the interpreter's own channel, so the interpreter was stopped",
                        MAX_PROTOCOL_LINE / (1024 * 1024)
                    )))
                }
                Ok(_) => {
                    return Err(CellError::Lost(
                        "the interpreter exited (out of memory or CPU time?)".into(),
                    ))
                }
            };
            let value: Value = match serde_json::from_str(&line) {
                Ok(value) => value,
                Err(_) => continue,
            };
            if value["id"].as_u64() != Some(id) {
                continue;
            }
            return serde_json::from_value(value).map_err(|e| {
                CellError::Lost(format!("unreadable reply from the interpreter: {e}"))
            });
        }
    }

    /// Resident memory of the interpreter's process group, in KiB.
    pub fn memory_kib(&self) -> u64 {
        self.process_group()
            .and_then(|pgid| super::exec::rss_by_process_group().get(&pgid).copied())
            .unwrap_or(0)
    }

    /// The process group the interpreter (and whatever it started) runs in.
    pub fn process_group(&self) -> Option<i32> {
        self.pgid.map(Pid::as_raw)
    }

    /// Whether it was closed to make room for another session's interpreter.
    pub fn was_reclaimed(&self) -> bool {
        self.slot.was_reclaimed()
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

pub struct IPython;

#[derive(Deserialize)]
pub struct Args {
    code: String,
    #[serde(default)]
    restart: bool,
}

impl TypedTool for IPython {
    const NAME: &'static str = "mshtools-ipython";
    type Args = Args;

    async fn run(&self, args: Args, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        if args.restart {
            ctx.state.python = None;
        }
        if args.code.trim().is_empty() {
            return if args.restart {
                Ok(ToolOutput::text(
                    "The interpreter was restarted; all variables are cleared.",
                ))
            } else {
                Err(ToolError::RespondToModel("code must not be empty".into()))
            };
        }
        let mut note = "";
        let running = match ctx.state.python.take() {
            Some(kernel) if kernel.was_reclaimed() => {
                note = "[The previous interpreter was closed to make room for other sessions' \
                        work ([limits] python_interpreters); variables and imports are gone and \
                        this cell ran in a fresh one.]\n";
                None
            }
            Some(mut kernel) => kernel.is_alive().then_some(kernel),
            None => None,
        };
        let mut kernel = match running {
            Some(kernel) => kernel,
            None => Kernel::start(ctx).await?,
        };
        let timeout = Duration::from_millis(ctx.config.python_timeout_ms);
        let cancel = ctx.cancel.clone();
        let reply = tokio::select! {
            reply = kernel.run(&args.code, timeout) => reply,
            _ = cancel.cancelled() => {
                drop(kernel);
                return Err(ToolError::RespondToModel(
                    "cancelled by the user; the interpreter was stopped and its state cleared".into(),
                ));
            }
        };
        match reply {
            Ok(reply) => {
                ctx.state.python = Some(kernel);
                let text = cap_middle(
                    &format!("{note}{}", format_reply(&reply)),
                    ctx.config.output_cap_bytes,
                );
                if reply.error.is_some() || reply.timed_out {
                    Err(ToolError::RespondToModel(text))
                } else {
                    Ok(ToolOutput::text(text))
                }
            }
            Err(CellError::Lost(reason)) => {
                drop(kernel);
                Err(ToolError::RespondToModel(format!(
                    "{reason}; the interpreter was restarted and its state is lost"
                )))
            }
        }
    }
}

/// The cell's outputs as the model reads them, notebook style.
pub fn format_reply(reply: &CellReply) -> String {
    let mut parts = Vec::new();
    if !reply.stdout.is_empty() {
        parts.push(reply.stdout.trim_end().to_string());
    }
    if !reply.stderr.is_empty() {
        parts.push(format!("[stderr]\n{}", reply.stderr.trim_end()));
    }
    if let Some(result) = &reply.result {
        parts.push(format!("Out: {result}"));
    }
    if let Some(error) = &reply.error {
        parts.push(error.trim_end().to_string());
    }
    for image in &reply.images {
        parts.push(format!("Saved figure: {image}"));
    }
    if parts.is_empty() {
        "(no output)".to_string()
    } else {
        parts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_like_a_notebook_cell() {
        let reply = CellReply {
            stdout: "hi\n".into(),
            result: Some("42".into()),
            images: vec!["/mnt/okcomputer/output/figure-1-1.png".into()],
            ..CellReply::default()
        };
        assert_eq!(
            format_reply(&reply),
            "hi\nOut: 42\nSaved figure: /mnt/okcomputer/output/figure-1-1.png"
        );
        assert_eq!(format_reply(&CellReply::default()), "(no output)");
    }
}
