//! One running MCP server: a program over stdio (in a session's sandbox, or on the host for a
//! shared server) or a Streamable HTTP endpoint, initialised, its tools listed, calls made
//! within the server's time limit. The last lines a program wrote to stderr are kept, so a
//! server that fails says why.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use crate::config::mcp::{McpServerConfig, McpTransport};

/// Lines of stderr kept, and the longest kept line.
const STDERR_LINES: usize = 20;
const STDERR_LINE_CHARS: usize = 400;

#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    #[error("could not start: {0}")]
    Start(String),
    #[error("did not answer within {0} s")]
    TimedOut(u64),
    #[error("stopped running{0}")]
    Closed(String),
    #[error("{0}")]
    Failed(String),
}

/// The last lines a server process wrote to stderr.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(crate::protocol::cap_line(line, STDERR_LINE_CHARS));
    }

    /// `: <last lines>` for an error message, or nothing.
    pub fn suffix(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.is_empty() {
            String::new()
        } else {
            let tail: Vec<&str> = lines.iter().map(String::as_str).collect();
            format!("; its last output: {}", tail.join(" | "))
        }
    }
}

pub struct Connection {
    service: RunningService<RoleClient, ()>,
    pub stderr: StderrTail,
    timeout: Duration,
}

impl Connection {
    /// Starts the server (`command` is the stdio program, already placed in its sandbox when
    /// it runs in one) and initialises it.
    pub async fn start(
        config: &McpServerConfig,
        command: Option<Command>,
    ) -> Result<Self, McpError> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let stderr = StderrTail::default();
        let started = match (config.transport, command) {
            (McpTransport::Stdio, Some(mut command)) => {
                command.kill_on_drop(true);
                let (transport, pipe) = TokioChildProcess::builder(command)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| McpError::Start(format!("{}: {e}", config.command)))?;
                if let Some(pipe) = pipe {
                    let tail = stderr.clone();
                    tokio::spawn(async move {
                        let mut lines = tokio::io::BufReader::new(pipe).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            tail.push(&line);
                        }
                    });
                }
                tokio::time::timeout(timeout, ().serve(transport)).await
            }
            (McpTransport::Stdio, None) => {
                return Err(McpError::Start("no command to run".into()));
            }
            (McpTransport::Http, _) => {
                let transport = StreamableHttpClientTransport::from_config(http_config(config)?);
                tokio::time::timeout(timeout, ().serve(transport)).await
            }
        };
        match started {
            Err(_) => Err(McpError::TimedOut(config.timeout_secs)),
            Ok(Err(error)) => {
                // Let the reader catch the last lines of a process that just died.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(McpError::Start(format!("{error}{}", stderr.suffix())))
            }
            Ok(Ok(service)) => Ok(Self {
                service,
                stderr,
                timeout,
            }),
        }
    }

    pub async fn list_tools(&self) -> Result<Vec<Tool>, McpError> {
        match tokio::time::timeout(self.timeout, self.service.list_all_tools()).await {
            Err(_) => Err(McpError::TimedOut(self.timeout.as_secs())),
            Ok(result) => result.map_err(|e| self.failure(e)),
        }
    }

    /// Calls `tool`; dropping the future (a stop) tells the server the call is abandoned.
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CallToolResult, McpError> {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        match tokio::time::timeout(self.timeout, self.service.call_tool(params)).await {
            Err(_) => Err(McpError::TimedOut(self.timeout.as_secs())),
            Ok(result) => result.map_err(|e| self.failure(e)),
        }
    }

    /// Whether the server can still be reached.
    pub fn is_alive(&self) -> bool {
        !self.service.is_transport_closed()
    }

    fn failure(&self, error: ServiceError) -> McpError {
        match error {
            ServiceError::TransportClosed => McpError::Closed(self.stderr.suffix()),
            ServiceError::McpError(data) => McpError::Failed(data.message.to_string()),
            other => McpError::Failed(other.to_string()),
        }
    }
}

fn http_config(config: &McpServerConfig) -> Result<StreamableHttpClientTransportConfig, McpError> {
    // The process's TLS crypto, once (a second install is refused, harmlessly).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut http = StreamableHttpClientTransportConfig::with_uri(config.url.as_str());
    if let Some(variable) = &config.bearer_token_env {
        let token = std::env::var(variable).map_err(|_| {
            McpError::Start(format!("the bearer token variable {variable} is not set"))
        })?;
        http = http.auth_header(token);
    }
    let mut headers = std::collections::HashMap::new();
    for (name, variable) in &config.headers_from_env {
        let value = std::env::var(variable)
            .map_err(|_| McpError::Start(format!("the header variable {variable} is not set")))?;
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| McpError::Start(format!("{name} is not a header name")))?;
        let value = http::HeaderValue::from_str(&value).map_err(|_| {
            McpError::Start(format!("the value of {variable} is not a header value"))
        })?;
        headers.insert(name, value);
    }
    if !headers.is_empty() {
        http = http.custom_headers(headers);
    }
    Ok(http)
}

/// The environment a stdio server gets besides its sandbox's (or, on the host, besides
/// `PATH`, `HOME` and `LANG`): `env`, then `env_from` read from this server's environment.
pub fn server_env(config: &McpServerConfig) -> Result<Vec<(String, String)>, McpError> {
    let mut env: Vec<(String, String)> = config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, variable) in &config.env_from {
        let value = std::env::var(variable).map_err(|_| {
            McpError::Start(format!("the variable {variable} (for {name}) is not set"))
        })?;
        env.push((name.clone(), value));
    }
    Ok(env)
}

/// A stdio server run on the host (a shared server, or `sandbox = false`): a clean
/// environment, the configured working directory.
pub fn host_command(config: &McpServerConfig) -> Result<Command, McpError> {
    let mut command = Command::new(&config.command);
    command.args(&config.args).env_clear();
    for name in ["PATH", "HOME", "LANG"] {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    command.envs(server_env(config)?);
    if let Some(cwd) = &config.cwd {
        command.current_dir(cwd);
    }
    Ok(command)
}
