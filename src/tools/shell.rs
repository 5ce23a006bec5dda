//! `mshtools-shell`: `bash -c` in `/mnt/okcomputer`, inside the sandbox.
//!
//! Combined stdout/stderr, capped; the exit code is always reported. A non-zero exit or a
//! timeout is an error result the model reads (the turn goes on). The timeout is in
//! milliseconds, bounded by `[tools] shell_max_timeout_ms`.

use std::time::Duration;

use serde::Deserialize;

use super::exec::{self, Ending};
use super::sandbox::Lifetime;
use super::{ToolContext, ToolError, ToolOutput, TypedTool};

pub struct Shell;

#[derive(Deserialize)]
pub struct Args {
    command: String,
    #[serde(default)]
    #[allow(dead_code)] // part of the contract: the console shows it, the shell ignores it
    description: Option<String>,
    #[serde(default)]
    timeout: Option<f64>,
}

impl TypedTool for Shell {
    const NAME: &'static str = "mshtools-shell";
    type Args = Args;

    async fn run(&self, args: Args, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        if args.command.trim().is_empty() {
            return Err(ToolError::RespondToModel(
                "command must not be empty".into(),
            ));
        }
        let timeout_ms = effective_timeout_ms(
            args.timeout,
            ctx.config.shell_default_timeout_ms,
            ctx.config.shell_max_timeout_ms,
        )?;
        let limit = &ctx.services.commands;
        let _running = limit.clone().try_acquire_owned().map_err(|_| {
            ToolError::RespondToModel(
                "the server is already running as many shell commands as it allows for all \
                 users together ([limits] sandboxed_commands); try again in a moment"
                    .into(),
            )
        })?;
        let command = ctx
            .sandboxed("bash", &["-c", &args.command], Lifetime::Command)
            .await?;
        let result = exec::run(
            command,
            Duration::from_millis(timeout_ms),
            ctx.config.output_cap_bytes,
            &ctx.cancel,
        )
        .await?;
        let output = if result.output.is_empty() {
            "(no output)".to_string()
        } else {
            result.output
        };
        match result.ending {
            Ending::Exited(0) => Ok(ToolOutput::text(format!("{output}\n[exit code: 0]"))),
            Ending::Exited(code) => Err(ToolError::RespondToModel(format!(
                "{output}\n[exit code: {code}]"
            ))),
            Ending::Signalled(signal) => Err(ToolError::RespondToModel(format!(
                "{output}\n[killed by signal {signal}; a CPU or memory limit may have been reached]"
            ))),
            Ending::TimedOut => Err(ToolError::RespondToModel(format!(
                "{output}\n[timed out after {timeout_ms} ms; the command and everything it started were killed. Use a longer timeout (max {} ms) or run less at once]",
                ctx.config.shell_max_timeout_ms
            ))),
            Ending::Cancelled => Err(ToolError::RespondToModel(format!(
                "{output}\n[cancelled by the user]"
            ))),
        }
    }
}

/// The timeout to use, in ms: the model's if it gave a sane one, capped at the maximum.
fn effective_timeout_ms(requested: Option<f64>, default: u64, max: u64) -> Result<u64, ToolError> {
    match requested {
        None => Ok(default),
        Some(ms) if ms.is_finite() && ms >= 1.0 => Ok((ms as u64).min(max)),
        Some(ms) => Err(ToolError::RespondToModel(format!(
            "timeout is in milliseconds and must be at least 1, got {ms}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_defaults_and_caps() {
        assert_eq!(effective_timeout_ms(None, 100, 1000), Ok(100));
        assert_eq!(effective_timeout_ms(Some(5000.0), 100, 1000), Ok(1000));
        assert_eq!(effective_timeout_ms(Some(250.0), 100, 1000), Ok(250));
        assert!(effective_timeout_ms(Some(0.0), 100, 1000).is_err());
        assert!(effective_timeout_ms(Some(f64::NAN), 100, 1000).is_err());
    }
}
