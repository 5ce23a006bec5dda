//! `[mcp]`: Model Context Protocol servers whose tools the agent gets beside its own, each a
//! `[[mcp.servers]]` entry (a program over stdio, or a Streamable HTTP endpoint).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    pub servers: Vec<McpServerConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    #[default]
    Stdio,
    Http,
}

/// Who shares one running server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpScope {
    /// One process per session, started on the session's first call, stopped with it.
    #[default]
    Session,
    /// One process (or HTTP connection) for the whole server.
    Shared,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerConfig {
    /// Letters, digits and `-` only: tools are offered as `mcp__<name>__<tool>`.
    pub name: String,
    pub enabled: bool,
    pub transport: McpTransport,
    /// stdio: the program and its arguments.
    pub command: String,
    pub args: Vec<String>,
    /// stdio: environment values given as they are.
    pub env: BTreeMap<String, String>,
    /// stdio: environment values read from the server's own environment (`NAME = "HOST_VAR"`),
    /// for secrets that do not belong in the file.
    pub env_from: BTreeMap<String, String>,
    /// stdio: the working directory (inside the sandbox: the workspace when unset).
    pub cwd: Option<PathBuf>,
    /// stdio: run inside the session's sandbox, like the shell (only with `scope = "session"`).
    pub sandbox: bool,
    pub scope: McpScope,
    /// http: the endpoint, e.g. `https://mcp.example.com/mcp`.
    pub url: String,
    /// http: headers whose values come from environment variables (`Authorization = "VAR"`).
    pub headers_from_env: BTreeMap<String, String>,
    /// http: the bearer token's environment variable.
    pub bearer_token_env: Option<String>,
    /// Only these tools are offered (empty: all).
    pub tools: Vec<String>,
    /// Longest a start or one call may take.
    pub timeout_secs: u64,
    /// Its tools run without asking under `ask-risky` (they count as work in the workspace).
    pub trust: bool,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            enabled: true,
            transport: McpTransport::Stdio,
            command: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_from: BTreeMap::new(),
            cwd: None,
            sandbox: true,
            scope: McpScope::Session,
            url: String::new(),
            headers_from_env: BTreeMap::new(),
            bearer_token_env: None,
            tools: Vec::new(),
            timeout_secs: 60,
            trust: false,
        }
    }
}

impl McpServerConfig {
    /// Whether each session runs its own copy in its sandbox.
    pub fn sandboxed(&self) -> bool {
        self.transport == McpTransport::Stdio && self.sandbox && self.scope == McpScope::Session
    }
}

impl super::Config {
    /// The `[mcp]` checks of [`super::Config::validate`].
    pub(super) fn validate_mcp(&self) -> Result<(), super::ConfigError> {
        let invalid =
            |key: &'static str, message: String| Err(super::ConfigError::Invalid { key, message });
        let mut names = std::collections::BTreeSet::new();
        for server in &self.mcp.servers {
            let name = &server.name;
            if name.is_empty()
                || name.len() > 32
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return invalid(
                    "mcp.servers.name",
                    format!("{name:?} must be 1-32 letters, digits or '-'"),
                );
            }
            if !names.insert(name) {
                return invalid("mcp.servers.name", format!("{name:?} is used twice"));
            }
            match server.transport {
                McpTransport::Stdio if server.command.trim().is_empty() => {
                    return invalid(
                        "mcp.servers.command",
                        format!("server {name} (stdio) needs a command"),
                    );
                }
                McpTransport::Http
                    if !(server.url.starts_with("http://")
                        || server.url.starts_with("https://"))
                        || reqwest::Url::parse(&server.url).is_err() =>
                {
                    return invalid(
                        "mcp.servers.url",
                        format!("server {name} (http) needs an http:// or https:// url"),
                    );
                }
                _ => {}
            }
            if !(1..=3600).contains(&server.timeout_secs) {
                return invalid(
                    "mcp.servers.timeout_secs",
                    format!("server {name}: must be between 1 and 3600"),
                );
            }
        }
        Ok(())
    }
}
