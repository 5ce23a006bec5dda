//! Configuration: `okcvm.toml`, then `OKCVM__SECTION__KEY` environment overrides.
//!
//! Owns the typed settings of every layer and their validation. Guarantees: a loaded `Config`
//! is valid (every problem names its key), relative paths are already resolved against the
//! config file's folder, and the model API key is never printed (`Secret` redacts it).
//! Tests build a `Config` with [`Config::for_tests`]; nothing here mutates the environment.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything the server needs to start, already validated.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub llm: LlmConfig,
    pub sessions: SessionsConfig,
    pub workspace: WorkspaceConfig,
    pub store: StoreConfig,
    pub spec: SpecConfig,
    pub tools: ToolsConfig,
    pub uploads: UploadsConfig,
    pub sandbox: SandboxConfig,
    pub deploy: DeployConfig,
    pub search: SearchConfig,
    pub browser: BrowserConfig,
    pub data: DataConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub quotas: QuotasConfig,
    pub permissions: permissions::PermissionsConfig,
    pub mcp: mcp::McpConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Base URL under which clients reach this server (used in links the agent hands out).
    pub public_url: Option<String>,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Turns running at once, all owners together; past it a new turn gets 503.
    pub max_concurrent_turns: usize,
    /// Origins (`https://app.example.com`) whose pages may call the API from a browser;
    /// the console's own origin always may.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable that holds the API key (the key itself never lives in
    /// the file).
    pub api_key_env: String,
    /// Resolved from `api_key_env` at load time; never serialised, never logged.
    #[serde(skip)]
    pub api_key: Option<Secret>,
    pub stream: bool,
    pub max_steps: u32,
    pub request_timeout_secs: u64,
    /// A streaming response that sends nothing for this long is abandoned.
    pub idle_stream_timeout_secs: u64,
    pub max_retries: u32,
    /// The longest wait a `Retry-After` from the endpoint may ask for.
    pub max_retry_after_secs: u64,
    /// Bytes one answer of the model (one step) may take; a longer one ends the turn.
    pub max_response_bytes: usize,
    /// Which wire format the endpoint speaks (`auto`: Ollama on port 11434).
    pub provider: context::Provider,
    /// Tokens the model reads per request (prompt, tools, history and the answer); unset:
    /// 32,768 for Ollama, 128,000 otherwise, and never more than the model reports.
    #[serde(alias = "context_budget_tokens")]
    pub context_window_tokens: Option<usize>,
    /// The fraction of the window past which older history is compacted.
    pub compact_at: f64,
    /// Tool outputs older than this many model steps are shortened when compacting.
    pub keep_tool_outputs_steps: usize,
    /// How long Ollama keeps the model loaded after a request (`"30m"`, `"-1"` for ever).
    pub keep_alive: Option<String>,
    /// Per-model overrides of `context_window_tokens` and `compact_at`.
    pub models: std::collections::BTreeMap<String, context::ModelLimits>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    pub idle_timeout_secs: u64,
    pub max_sessions: usize,
    pub sweep_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspaceConfig {
    pub root: PathBuf,
    /// Patterns kept out of snapshots (gitignore syntax).
    pub ignore: Vec<String>,
    /// Files larger than this stay out of snapshots.
    pub snapshot_max_file_mb: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub path: PathBuf,
}

/// Optional replacements for the built-in prompt and tool manifest.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecConfig {
    pub system_prompt: Option<PathBuf>,
    pub tools: Option<PathBuf>,
    /// The prompt of the summary request that compacts a long conversation.
    pub compact_prompt: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    pub shell_default_timeout_ms: u64,
    pub shell_max_timeout_ms: u64,
    /// Bytes of one tool result that reach the model (head and tail are kept).
    pub output_cap_bytes: usize,
    /// Time one Python cell may run before it is interrupted.
    pub python_timeout_ms: u64,
    /// Send images that `read_file` opens to the model (needs a vision-capable model).
    pub vision: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    pub max_files: usize,
    pub max_file_size_mb: u64,
}

impl ServerConfig {
    /// Whether `host` is a loopback address (`localhost`, 127.0.0.0/8, ::1).
    pub fn is_loopback(&self) -> bool {
        is_loopback_name(self.host.trim().trim_matches(['[', ']']))
    }
}

/// Whether a host name (without brackets or port) is `localhost` or a loopback address.
pub fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Server-wide caps on what sessions hold at once (`[limits]`): reaching one refuses the one
/// request or tool call that would pass it, with a message saying which cap.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Clients following one session's events at once (`/api/chat` streams and
    /// `/api/chat/events` attachments).
    pub attachments_per_session: usize,
    /// Shell commands running at once, all sessions together.
    pub sandboxed_commands: usize,
    /// Python interpreters alive at once, all sessions together.
    pub python_interpreters: usize,
    /// Browser tabs open at once, all sessions together.
    pub browser_tabs: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            attachments_per_session: 16,
            sandboxed_commands: 64,
            python_interpreters: 32,
            browser_tabs: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Whether shell and Python may reach the network.
    pub network: bool,
    /// Run shell and Python without bubblewrap when it is missing (no isolation at all).
    pub allow_unsandboxed: bool,
    pub bwrap_path: PathBuf,
    /// Memory of a session's sandboxed processes together (and of each one), in MiB.
    pub memory_mb: u64,
    /// CPU seconds one command may use.
    pub cpu_secs: u64,
    /// Processes a session may have at once (its shell commands, Python and their children).
    pub max_processes: u64,
    /// CPU share of a session's sandboxed processes together, in percent of one core.
    pub cpu_percent: u64,
    /// The host user and group sandboxed code runs as when the server runs as root.
    pub uid: u32,
    pub gid: u32,
}

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The trimmed value of environment variable `name`, if it is set and not blank.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .map(|key| key.trim().to_string())
            .filter(|key| !key.is_empty())
            .map(Self)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {message}")]
    Load { path: String, message: String },
    #[error("invalid configuration value `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            public_url: None,
            workers: 0,
            max_concurrent_turns: 256,
            cors_origins: Vec::new(),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:11434/v1".into(),
            model: "qwen2.5:7b".into(),
            api_key_env: "OKCVM_LLM_API_KEY".into(),
            api_key: None,
            stream: true,
            max_steps: 40,
            request_timeout_secs: 300,
            idle_stream_timeout_secs: 120,
            max_retries: 3,
            max_retry_after_secs: 30,
            max_response_bytes: 16 * 1024 * 1024,
            provider: context::Provider::Auto,
            context_window_tokens: None,
            compact_at: 0.8,
            keep_tool_outputs_steps: 6,
            keep_alive: None,
            models: std::collections::BTreeMap::new(),
            temperature: None,
            max_tokens: None,
        }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 1800,
            max_sessions: 10_000,
            sweep_interval_secs: 30,
        }
    }
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("data/workspaces"),
            ignore: [
                "node_modules/",
                "__pycache__/",
                ".venv/",
                "*.pyc",
                ".cache/",
            ]
            .map(String::from)
            .to_vec(),
            snapshot_max_file_mb: 50,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/store"),
        }
    }
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            shell_default_timeout_ms: 120_000,
            shell_max_timeout_ms: 600_000,
            output_cap_bytes: 32 * 1024,
            python_timeout_ms: 120_000,
            vision: false,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            network: false,
            allow_unsandboxed: false,
            bwrap_path: PathBuf::from("bwrap"),
            memory_mb: 4096,
            cpu_secs: 600,
            max_processes: 512,
            cpu_percent: 100,
            uid: 65534,
            gid: 65534,
        }
    }
}

/// `[browser]`: the headless Chromium behind the `browser_*` tools.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    pub enabled: bool,
    /// The Chromium binary (a name looked up in PATH, or a path).
    pub executable: String,
    /// Whether pages on loopback, private and link-local addresses may be opened (they are
    /// this server's neighbours: off unless the operator wants it).
    pub allow_private_networks: bool,
    /// Hosts (`host` or `host:port`) the browser may open even on a private address, e.g. an
    /// intranet wiki.
    pub allowed_hosts: Vec<String>,
    /// Time one page load may take.
    pub page_timeout_secs: u64,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            executable: "chromium".into(),
            allow_private_networks: false,
            allowed_hosts: Vec::new(),
            page_timeout_secs: 30,
        }
    }
}

/// `[data]`: the structured data sources of `get_data_source(_desc)`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub enabled: bool,
    /// A JSON file of sources replacing the built-in `spec/data_sources.json`.
    pub sources_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sources_file: None,
            timeout_secs: 30,
        }
    }
}

/// `[search]`: the provider behind `web_search` and `image_search`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// `""` (search off), `"searxng"` (a SearXNG instance's JSON API) or `"brave"`.
    pub provider: String,
    /// The provider's address: the SearXNG instance, or Brave's API base.
    pub base_url: String,
    /// Name of the environment variable holding the provider's key (Brave needs one).
    pub api_key_env: String,
    #[serde(skip)]
    pub api_key: Option<Secret>,
    /// Results per query shown to the model.
    pub max_results: usize,
    pub timeout_secs: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            provider: String::new(),
            base_url: String::new(),
            api_key_env: "OKCVM_SEARCH_API_KEY".into(),
            api_key: None,
            max_results: 8,
            timeout_secs: 20,
        }
    }
}

/// `[deploy]`: websites published by `mshtools-deploy_website`, served at `/deploy/<id>/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Where published copies of the sites are kept (outside every workspace).
    pub root: PathBuf,
    pub max_site_mb: u64,
    pub max_files: usize,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("data/deployments"),
            max_site_mb: 100,
            max_files: 5000,
        }
    }
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            max_files: 100,
            max_file_size_mb: 100,
        }
    }
}

impl Config {
    /// Loads `path` (which must exist), applies `OKCVM__SECTION__KEY` overrides, resolves
    /// relative paths against the file's folder, reads the API key and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let load_error = |message: String| ConfigError::Load {
            path: path.display().to_string(),
            message,
        };
        if !path.is_file() {
            return Err(load_error("file not found".into()));
        }
        let raw = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("OKCVM")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| load_error(e.to_string()))?;
        let mut config: Config = raw
            .try_deserialize()
            .map_err(|e| load_error(e.to_string()))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        config.resolve_paths(&base);
        config.llm.api_key = Secret::from_env(&config.llm.api_key_env);
        config.search.api_key = Secret::from_env(&config.search.api_key_env);
        config.validate()?;
        Ok(config)
    }

    /// A config for tests: data under `dir`, the model at `model_url`, short timeouts.
    pub fn for_tests(dir: &Path, model_url: &str) -> Self {
        let mut config = Config::default();
        config.server.port = 0;
        config.server.workers = 2;
        config.llm.base_url = model_url.to_string();
        config.llm.model = "mock-model".into();
        config.llm.request_timeout_secs = 10;
        config.llm.idle_stream_timeout_secs = 5;
        config.llm.max_retries = 2;
        config.llm.max_steps = 8;
        // Tests of the tools run them without asking; tests of permissions set their own.
        config.permissions.mode = permissions::Mode::Auto;
        config.resolve_paths(dir);
        config
    }

    /// The address clients use to reach the server, without a trailing slash.
    pub fn public_base(&self, bound_port: u16) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}:{bound_port}", self.server.host),
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        self.workspace.root = resolve(&self.workspace.root);
        self.store.path = resolve(&self.store.path);
        self.deploy.root = resolve(&self.deploy.root);
        self.auth.users_file = resolve(&self.auth.users_file);
        self.data.sources_file = self.data.sources_file.as_deref().map(resolve);
        self.spec.system_prompt = self.spec.system_prompt.as_deref().map(resolve);
        self.spec.tools = self.spec.tools.as_deref().map(resolve);
        self.spec.compact_prompt = self.spec.compact_prompt.as_deref().map(resolve);
    }
}

mod access;
pub mod context;
pub mod mcp;
pub mod permissions;
mod validate;

pub use access::{AuthConfig, AuthMode, QuotasConfig};

#[cfg(test)]
mod tests;
