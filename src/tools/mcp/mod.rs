//! Tools from MCP servers (`[[mcp.servers]]`), offered beside the built-in ones as
//! `mcp__<server>__<tool>` with their JSON Schema.
//!
//! At start every enabled server is started once to list its tools (a session-scoped server
//! in a scratch sandbox, then stopped; a shared one is kept): its status, tool count and
//! last error are what `GET /api/mcp/servers` shows, and a server that fails is logged and
//! reported to the model when it calls its tools — never a silently missing tool. A call is
//! checked against the tool's schema, then runs on the session's own copy of the server
//! (started in the session's sandbox on first use, stopped with the session) or on the shared
//! one. A server that stopped is started again on the next call, after a back-off.

pub mod connection;
mod output;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::mcp::{McpScope, McpServerConfig, McpTransport};
use connection::{Connection, McpError};

use super::sandbox::{Jail, Lifetime, Sandbox};
use super::{ToolContext, ToolError, ToolOutput};

/// What every MCP tool name starts with.
pub const PREFIX: &str = "mcp__";
/// The longest wait before a stopped server is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A server as `GET /api/mcp/servers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub transport: McpTransport,
    pub scope: McpScope,
    /// `starting`, `ready` or `failed`.
    pub status: &'static str,
    pub tools: Vec<String>,
    pub last_error: Option<String>,
}

/// One offered tool.
struct Offered {
    server: String,
    tool: String,
    validator: Option<Arc<jsonschema::Validator>>,
}

/// Every configured server, the tools they offer and the shared connections.
pub struct McpHub {
    servers: Vec<McpServerConfig>,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    statuses: BTreeMap<String, ServerStatus>,
    offered: BTreeMap<String, Offered>,
    /// The manifest entries of the offered tools, in name order.
    definitions: Vec<Value>,
    /// The built-in manifest with the offered tools, made when first asked for.
    manifest: Option<Arc<RawValue>>,
    shared: HashMap<String, Arc<Connection>>,
    retry: HashMap<String, Backoff>,
}

/// When a stopped server may be started again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    not_before: Instant,
}

impl Backoff {
    fn after_failure(previous: Option<Backoff>) -> Self {
        let failures = previous.map_or(1, |b| b.failures + 1);
        let wait = Duration::from_secs(1 << failures.min(6)).min(MAX_BACKOFF);
        Self {
            failures,
            not_before: Instant::now() + wait,
        }
    }
}

/// The session's own copies of its session-scoped servers; dropping it stops them.
#[derive(Default)]
pub struct SessionServers {
    running: HashMap<String, Arc<Connection>>,
    retry: HashMap<String, Backoff>,
}

impl std::fmt::Debug for SessionServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionServers")
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl McpHub {
    pub fn new(servers: &[McpServerConfig]) -> Self {
        let servers: Vec<McpServerConfig> = servers.iter().filter(|s| s.enabled).cloned().collect();
        let statuses = servers
            .iter()
            .map(|s| {
                let status = ServerStatus {
                    name: s.name.clone(),
                    transport: s.transport,
                    scope: s.scope,
                    status: "starting",
                    tools: Vec::new(),
                    last_error: None,
                };
                (s.name.clone(), status)
            })
            .collect();
        Self {
            servers,
            state: Mutex::new(HubState {
                statuses,
                ..HubState::default()
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn statuses(&self) -> Vec<ServerStatus> {
        self.lock().statuses.values().cloned().collect()
    }

    /// The names of the tools offered now.
    pub fn tool_names(&self) -> Vec<String> {
        self.lock().offered.keys().cloned().collect()
    }

    /// `builtin` (the manifest of the built-in tools) with the offered tools after it.
    pub fn manifest(&self, builtin: &Arc<RawValue>) -> Arc<RawValue> {
        let mut state = self.lock();
        if state.definitions.is_empty() {
            return builtin.clone();
        }
        if let Some(manifest) = &state.manifest {
            return manifest.clone();
        }
        let mut all: Vec<Value> = serde_json::from_str(builtin.get()).unwrap_or_default();
        all.extend(state.definitions.iter().cloned());
        let encoded = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
        let manifest: Arc<RawValue> = RawValue::from_string(encoded)
            .map(Arc::from)
            .unwrap_or_else(|_| builtin.clone());
        state.manifest = Some(manifest.clone());
        manifest
    }

    /// Starts every server once to learn its tools (in the background, one task each);
    /// `scratch` holds the empty workspaces session-scoped servers are listed in.
    pub fn discover(self: &Arc<Self>, sandbox: Arc<Sandbox>, scratch: PathBuf) {
        for config in self.servers.clone() {
            let hub = self.clone();
            let (sandbox, scratch) = (sandbox.clone(), scratch.join(&config.name));
            let watcher = (self.clone(), config.clone());
            let listing = tokio::spawn(async move {
                let started = async {
                    let command = if config.sandboxed() {
                        std::fs::create_dir_all(&scratch).map_err(|e| {
                            McpError::Start(format!("cannot make {}: {e}", scratch.display()))
                        })?;
                        let jail = Jail {
                            workspace: &scratch,
                            cgroup: None,
                        };
                        Some(sandboxed_command(&sandbox, jail, &config)?)
                    } else if config.transport == McpTransport::Stdio {
                        Some(connection::host_command(&config)?)
                    } else {
                        None
                    };
                    Connection::start(&config, command).await
                };
                match started.await {
                    Ok(connection) => {
                        let connection = Arc::new(connection);
                        let listed = connection.list_tools().await;
                        hub.listed(&config, listed);
                        if config.scope == McpScope::Shared {
                            hub.lock().shared.insert(config.name.clone(), connection);
                        }
                    }
                    Err(error) => hub.listed(&config, Err(error)),
                }
            });
            tokio::spawn(async move {
                if let Err(error) = listing.await {
                    let (hub, config) = watcher;
                    hub.listed(
                        &config,
                        Err(McpError::Start(format!("the listing failed: {error}"))),
                    );
                }
            });
        }
    }

    /// Records what listing a server's tools gave.
    fn listed(&self, config: &McpServerConfig, tools: Result<Vec<rmcp::model::Tool>, McpError>) {
        let mut state = self.lock();
        let tools = match tools {
            Ok(tools) => tools,
            Err(error) => {
                tracing::warn!(server = %config.name, %error, "MCP server failed");
                if let Some(status) = state.statuses.get_mut(&config.name) {
                    status.status = "failed";
                    status.last_error = Some(error.to_string());
                }
                return;
            }
        };
        let mut names = Vec::new();
        for tool in tools {
            let name = tool.name.to_string();
            if !config.tools.is_empty() && !config.tools.contains(&name) {
                continue;
            }
            let offered_name = offered_name(&config.name, &name);
            let schema = Value::Object((*tool.input_schema).clone());
            let validator = jsonschema::validator_for(&schema).ok().map(Arc::new);
            state.definitions.push(serde_json::json!({
                "type": "function",
                "function": {
                    "name": offered_name,
                    "description": tool.description.as_deref().unwrap_or(""),
                    "parameters": schema,
                }
            }));
            state.offered.insert(
                offered_name.clone(),
                Offered {
                    server: config.name.clone(),
                    tool: name,
                    validator,
                },
            );
            names.push(offered_name);
        }
        state.definitions.sort_by(|a, b| {
            a["function"]["name"]
                .as_str()
                .cmp(&b["function"]["name"].as_str())
        });
        state.manifest = None;
        tracing::info!(server = %config.name, tools = names.len(), "MCP server ready");
        if let Some(status) = state.statuses.get_mut(&config.name) {
            status.status = "ready";
            status.tools = names;
            status.last_error = None;
        }
    }

    /// Runs the offered tool `name` with `arguments` (a JSON object).
    pub async fn call(
        &self,
        name: &str,
        arguments: Value,
        ctx: &mut ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let (server, tool, validator) = {
            let state = self.lock();
            match state.offered.get(name) {
                Some(offered) => (
                    offered.server.clone(),
                    offered.tool.clone(),
                    offered.validator.clone(),
                ),
                None => return Err(ToolError::RespondToModel(self.unknown(&state, name))),
            }
        };
        if let Some(validator) = validator {
            let problems: Vec<String> = validator
                .iter_errors(&arguments)
                .take(5)
                .map(|e| format!("{} (at {})", e, e.instance_path()))
                .collect();
            if !problems.is_empty() {
                return Err(ToolError::RespondToModel(format!(
                    "the arguments do not fit {name}'s schema: {}",
                    problems.join("; ")
                )));
            }
        }
        let Some(config) = self.servers.iter().find(|s| s.name == server).cloned() else {
            return Err(ToolError::RespondToModel(format!("no MCP server {server}")));
        };
        let connection = self.connection(&config, ctx).await?;
        let Value::Object(arguments) = arguments else {
            return Err(ToolError::RespondToModel(
                "the arguments must be a JSON object".into(),
            ));
        };
        let cancel = ctx.cancel.clone();
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                return Err(ToolError::RespondToModel("cancelled by the user while it ran".into()));
            }
            result = connection.call(&tool, arguments) => result,
        };
        match result {
            Ok(result) => output::to_output(&server, result, ctx).await,
            Err(error @ McpError::Closed(_)) => {
                self.stopped(&config, ctx, &error);
                Err(ToolError::RespondToModel(format!(
                    "the MCP server {server} {error}; it is started again on the next call"
                )))
            }
            Err(error) => Err(ToolError::RespondToModel(format!(
                "the MCP server {server}: {error}"
            ))),
        }
    }

    /// The running copy of `config`'s server for this call, started if needed.
    async fn connection(
        &self,
        config: &McpServerConfig,
        ctx: &mut ToolContext,
    ) -> Result<Arc<Connection>, ToolError> {
        let name = &config.name;
        let (running, backoff) = match config.scope {
            McpScope::Shared => {
                let state = self.lock();
                (
                    state.shared.get(name).cloned(),
                    state.retry.get(name).copied(),
                )
            }
            McpScope::Session => (
                ctx.state.mcp.running.get(name).cloned(),
                ctx.state.mcp.retry.get(name).copied(),
            ),
        };
        if let Some(connection) = running.filter(|c| c.is_alive()) {
            return Ok(connection);
        }
        if let Some(backoff) = backoff.filter(|b| b.not_before > Instant::now()) {
            let wait = backoff.not_before.saturating_duration_since(Instant::now());
            return Err(ToolError::RespondToModel(format!(
                "the MCP server {name} stopped; it is tried again in {} s",
                wait.as_secs().max(1)
            )));
        }
        let command = match (config.transport, config.sandboxed()) {
            (McpTransport::Http, _) => None,
            (McpTransport::Stdio, true) => {
                let args: Vec<&str> = config.args.iter().map(String::as_str).collect();
                let mut command = ctx
                    .sandboxed(&config.command, &args, Lifetime::Session)
                    .await?;
                command.envs(connection::server_env(config).map_err(start_error(name))?);
                Some(command)
            }
            (McpTransport::Stdio, false) => {
                Some(connection::host_command(config).map_err(start_error(name))?)
            }
        };
        match Connection::start(config, command).await {
            Ok(connection) => {
                let connection = Arc::new(connection);
                match config.scope {
                    McpScope::Shared => {
                        let mut state = self.lock();
                        state.shared.insert(name.clone(), connection.clone());
                        state.retry.remove(name);
                        if let Some(status) = state.statuses.get_mut(name) {
                            status.status = "ready";
                        }
                    }
                    McpScope::Session => {
                        ctx.state
                            .mcp
                            .running
                            .insert(name.clone(), connection.clone());
                        ctx.state.mcp.retry.remove(name);
                    }
                }
                Ok(connection)
            }
            Err(error) => {
                self.stopped(config, ctx, &error);
                Err(start_error(name)(error))
            }
        }
    }

    /// Forgets a copy that stopped (or would not start) and sets when to try again.
    fn stopped(&self, config: &McpServerConfig, ctx: &mut ToolContext, error: &McpError) {
        tracing::warn!(server = %config.name, %error, "MCP server stopped");
        let name = &config.name;
        match config.scope {
            McpScope::Shared => {
                let mut state = self.lock();
                state.shared.remove(name);
                let previous = state.retry.get(name).copied();
                state
                    .retry
                    .insert(name.clone(), Backoff::after_failure(previous));
                if let Some(status) = state.statuses.get_mut(name) {
                    status.status = "failed";
                    status.last_error = Some(error.to_string());
                }
            }
            McpScope::Session => {
                ctx.state.mcp.running.remove(name);
                let previous = ctx.state.mcp.retry.get(name).copied();
                ctx.state
                    .mcp
                    .retry
                    .insert(name.clone(), Backoff::after_failure(previous));
                if let Some(status) = self.lock().statuses.get_mut(name) {
                    status.last_error = Some(error.to_string());
                }
            }
        }
    }

    /// Why `name` is not an offered tool, for the model.
    fn unknown(&self, state: &HubState, name: &str) -> String {
        let server = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split("__").next())
            .unwrap_or("");
        match state.statuses.get(server) {
            Some(status) if status.status == "failed" => format!(
                "the MCP server {server} is not available: {}",
                status.last_error.as_deref().unwrap_or("it failed")
            ),
            Some(status) if status.status == "starting" => {
                format!("the MCP server {server} is still starting; try again shortly")
            }
            _ => format!(
                "unknown tool `{name}`; the MCP tools offered are: {}",
                state.offered.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn start_error(server: &str) -> impl Fn(McpError) -> ToolError + '_ {
    move |error| ToolError::RespondToModel(format!("the MCP server {server} {error}"))
}

/// A session-scoped server in a sandbox without a session (the listing at start).
fn sandboxed_command(
    sandbox: &Sandbox,
    jail: Jail<'_>,
    config: &McpServerConfig,
) -> Result<tokio::process::Command, McpError> {
    let args: Vec<&str> = config.args.iter().map(String::as_str).collect();
    let mut command = sandbox
        .command(jail, &config.command, &args, Lifetime::Session)
        .map_err(|e| McpError::Start(e.to_string()))?;
    command.envs(connection::server_env(config)?);
    Ok(command)
}

/// The longest function name model endpoints take (OpenAI's limit).
const MAX_FUNCTION_NAME: usize = 64;

/// The name a server's tool is offered under: `mcp__<server>__<tool>`, the tool's part
/// spelled as a function name may be. One longer than endpoints take keeps its start and
/// ends with a hash of the tool's own name, so it stays the same and two long names stay
/// apart.
fn offered_name(server: &str, tool: &str) -> String {
    let full = format!("{PREFIX}{server}__{}", sanitize(tool));
    if full.len() <= MAX_FUNCTION_NAME {
        return full;
    }
    use sha2::Digest as _;
    let digest = hex::encode(&sha2::Sha256::digest(tool.as_bytes())[..4]);
    // Every character of `full` is ASCII, so any cut is a character boundary.
    format!("{}_{digest}", &full[..MAX_FUNCTION_NAME - digest.len() - 1])
}

/// A tool name as a function name may spell it: letters, digits, `_` and `-`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_names_fit_what_endpoints_take() {
        assert_eq!(offered_name("files", "read file"), "mcp__files__read_file");
        let server = "a-server-name-of-thirty-two-char";
        let long = offered_name(
            server,
            "get_pull_request_review_comments_for_the_repository",
        );
        let other = offered_name(
            server,
            "get_pull_request_review_comments_for_the_organisation",
        );
        assert_eq!(long.len(), 64);
        assert_ne!(long, other, "two long names stay apart");
        assert!(long.starts_with(&format!("mcp__{server}__get_pull")));
        assert_eq!(
            long,
            offered_name(
                server,
                "get_pull_request_review_comments_for_the_repository"
            ),
            "the same name every time"
        );
        for name in [&long, &other] {
            assert!(name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
    }
}
