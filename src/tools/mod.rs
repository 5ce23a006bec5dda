//! The tool layer: the [`Tool`] trait, what a call may touch ([`ToolContext`]) and how it fails
//! ([`ToolError`]).
//!
//! One file per tool family; `registry.rs` pairs them with the manifest. A tool never sees a
//! host path it was not given through [`Workspace`], and every error says who must act:
//! `RespondToModel` goes back to the model as the tool result, `Fatal` means a broken
//! invariant of the server.

pub mod browser;
pub mod data;
pub mod deploy;
pub mod exec;
pub mod files;
pub mod mcp;
pub mod media;
pub mod output;
pub mod python;
pub mod registry;
pub mod sandbox;
pub mod search;
pub mod shell;
pub mod slides;
pub mod slots;
pub mod todo;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::SessionKey;
use crate::config::ToolsConfig;
use crate::workspace::{ModelPath, OpenError, PathError, Workspace, Write};

pub use registry::ToolRegistry;

/// What a tool returns to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub text: String,
    /// Images for a vision model, as `data:` URLs.
    pub images: Vec<String>,
}

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            images: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The model can fix this (bad arguments, missing file, non-zero exit, timeout).
    #[error("{0}")]
    RespondToModel(String),
    /// The server is broken; the turn still goes on, the operator must look.
    #[error("internal tool failure: {0}")]
    Fatal(String),
}

impl From<PathError> for ToolError {
    fn from(error: PathError) -> Self {
        ToolError::RespondToModel(error.to_string())
    }
}

impl From<OpenError> for ToolError {
    fn from(error: OpenError) -> Self {
        ToolError::RespondToModel(error.to_string())
    }
}

/// Per-session state that tools keep between calls; lent to each turn with the session.
#[derive(Debug, Default)]
pub struct ToolState {
    pub todos: Vec<todo::TodoItem>,
    /// The session's Python interpreter, started on first use; dropping it kills it.
    pub python: Option<python::Kernel>,
    /// What this turn published, for the reply's `web_preview` (taken at the end of the turn).
    pub web_preview: Option<crate::protocol::WebPreview>,
    /// Files this turn made for the user (images, audio), for the reply's `artifacts`.
    pub artifacts: Vec<crate::protocol::Artifact>,
    /// The outline of the deck this turn made, for the reply's `ppt_slides`.
    pub slides: Vec<crate::protocol::Slide>,
    /// The session's browser tab, opened on first use; dropping it closes it.
    pub browser: Option<browser::Tab>,
    /// The session's own copies of its MCP servers; dropping them stops them.
    pub mcp: mcp::SessionServers,
    /// The control group of the session's sandboxed processes, made on first use; dropping
    /// it kills what is left in it. Last, so the interpreter above is stopped first.
    pub cgroup: Option<sandbox::cgroup::SessionCgroup>,
}

/// Everything one tool call may use.
pub struct ToolContext {
    pub workspace: Workspace,
    pub state: ToolState,
    pub cancel: CancellationToken,
    pub config: Arc<ToolsConfig>,
    pub sandbox: Arc<sandbox::Sandbox>,
    /// The workspace folders exist; created before the session's first tool call.
    pub workspace_ready: bool,
    /// Clients shared by every session's tools.
    pub services: Arc<ToolServices>,
    /// Whose session this is (deployments are recorded under it).
    pub session: SessionKey,
}

impl ToolContext {
    /// A command running `program args…` in this session's sandbox and control group (made
    /// on first use; without it the command is refused rather than run unlimited).
    pub async fn sandboxed(
        &mut self,
        program: &str,
        args: &[&str],
        lifetime: sandbox::Lifetime,
    ) -> Result<tokio::process::Command, ToolError> {
        if self.state.cgroup.is_none() && self.sandbox.cgroups.available() {
            let sandbox = self.sandbox.clone();
            let group =
                crate::blocking::run(crate::blocking::FILE_WORK, move || sandbox.cgroups.create())
                    .await
                    .map_err(|e| ToolError::Fatal(e.to_string()))?
                    .map_err(|e| {
                        ToolError::RespondToModel(format!(
                            "cannot set up this session's resource limits, so nothing can run: {e}"
                        ))
                    })?;
            self.state.cgroup = Some(group);
        }
        let jail = sandbox::Jail {
            workspace: self.workspace.root(),
            cgroup: self.state.cgroup.as_ref(),
        };
        self.sandbox.command(jail, program, args, lifetime)
    }
}

/// What tools reach beyond the session: one of each for the whole server.
pub struct ToolServices {
    pub browser: browser::BrowserPool,
    /// Shell commands running at once, server-wide (`[limits] sandboxed_commands`).
    pub commands: Arc<tokio::sync::Semaphore>,
    /// Live Python interpreters, server-wide (`[limits] python_interpreters`).
    pub interpreters: Arc<slots::Slots>,
    pub data: data::DataClient,
    pub deployer: deploy::Deployer,
    pub media: media::MediaClient,
    pub search: search::SearchClient,
    /// MCP servers' tools.
    pub mcp: Arc<mcp::McpHub>,
}

/// One tool as the registry holds it. Implement [`TypedTool`] instead; this object-safe form
/// exists for the registry's table and for tools whose name is only known at run time.
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;

    /// `args` is a JSON object carrying every field the manifest marks as required.
    fn call<'a>(
        &'a self,
        args: Value,
        ctx: &'a mut ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;
}

/// The one way to write a tool: a name, typed arguments and an async body. Parsing the
/// arguments (with a message the model can act on) and boxing the future are done once, by
/// the blanket [`Tool`] impl; the registry races every call with the turn's cancel token.
pub trait TypedTool: Send + Sync + 'static {
    const NAME: &'static str;
    type Args: DeserializeOwned + Send;

    fn run(
        &self,
        args: Self::Args,
        ctx: &mut ToolContext,
    ) -> impl std::future::Future<Output = Result<ToolOutput, ToolError>> + Send;
}

impl<T: TypedTool> Tool for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn call<'a>(
        &'a self,
        args: Value,
        ctx: &'a mut ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let args = parse_args(T::NAME, args)?;
            self.run(args, ctx).await
        })
    }
}

/// Arguments of a tool that takes none (whatever the model sends is ignored).
#[derive(Debug, serde::Deserialize)]
pub struct NoArgs {}

/// How long a cancelled tool gets to wind down by itself (kill its processes, report what it
/// had) before the registry abandons it.
pub const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// A file of the workspace (`model_path`, as the model names it) as a reply artifact, with
/// the download address the console resolves for the session.
pub fn workspace_artifact(kind: &str, model_path: &str) -> crate::protocol::Artifact {
    let name = std::path::Path::new(model_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| model_path.to_string());
    let query = serde_urlencoded::to_string([("path", model_path)]).unwrap_or_default();
    crate::protocol::Artifact {
        kind: kind.into(),
        name,
        url: format!("/api/session/workspace/file?{query}"),
    }
}

/// Writes `data` at the model path `target` in the workspace (creating its folder, through
/// the confined opener, on the blocking pool) and lists it as an artifact of the reply;
/// returns the path as the model names it and the size shown.
pub async fn save_artifact(
    ctx: &mut ToolContext,
    target: &str,
    data: Vec<u8>,
    kind: &str,
) -> Result<(String, String), ToolError> {
    let path = ModelPath::parse(target)?;
    let shown = path.canonical();
    let size = crate::protocol::size_display(data.len() as u64);
    let workspace = ctx.workspace.clone();
    files::blocking(move || {
        use std::io::Write as _;
        let mut file = workspace.create_file(&path, Write::Truncate)?;
        file.write_all(&data)
            .map_err(|e| ToolError::RespondToModel(format!("cannot write {}: {e}", path.shown)))
    })
    .await?;
    ctx.state.artifacts.push(workspace_artifact(kind, &shown));
    Ok((shown, size))
}

/// Reads a third-party answer of at most `max` bytes (see [`crate::capped_body`]).
pub async fn read_capped(response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    crate::capped_body::read(response, max)
        .await
        .map_err(|e| e.to_string())
}

/// Deserialises a tool's private `Args` struct, turning serde's complaint into a message the
/// model can act on.
pub fn parse_args<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolError> {
    serde_json::from_value(args)
        .map_err(|e| ToolError::RespondToModel(format!("invalid arguments for {tool}: {e}")))
}
