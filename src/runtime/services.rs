//! What every session shares, read-only: config, the tool contract, the tool registry, the
//! model client, the sandbox and the store. Built once in `run` and passed down; no globals.

use std::sync::Arc;

use crate::agent::compact::ContextSettings;
use crate::agent::context::TokenCounter;
use crate::auth::SessionKey;
use crate::config::{Config, ToolsConfig};
use crate::llm::client::ModelClient;
use crate::spec::Spec;
use crate::store::{Flusher, Store};
use crate::tools::sandbox::Sandbox;
use crate::tools::{ToolContext, ToolRegistry, ToolState};
use crate::workspace::git::SnapshotPolicy;
use crate::workspace::Workspace;
use tokio_util::sync::CancellationToken;

pub struct Services {
    pub config: Arc<Config>,
    pub spec: Arc<Spec>,
    pub tools: ToolRegistry,
    pub llm: ModelClient,
    pub sandbox: Arc<Sandbox>,
    pub tools_config: Arc<ToolsConfig>,
    pub store: Store,
    pub flusher: Flusher,
    pub endpoints: Arc<crate::endpoints::Endpoints>,
    pub snapshot_policy: SnapshotPolicy,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub tool_services: Arc<crate::tools::ToolServices>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub quotas: Arc<crate::auth::quotas::Quotas>,
    /// Owners' approvals that stand in every conversation.
    pub standing: super::approvals::StandingApprovals,
    /// The tool manifest's token count, by manifest version and counter (it changes only
    /// when MCP servers come or go, or the model's tokenizer does).
    pub manifest_tokens: std::sync::Mutex<Option<(ManifestVersion, usize)>>,
}

/// Which manifest, counted how, a token count is of.
#[derive(Debug, PartialEq)]
pub struct ManifestVersion {
    address: usize,
    length: usize,
    counter: TokenCounter,
}

impl Services {
    /// The context settings for the model in force now. The model's own context length is
    /// asked once (Ollama); its tokenizer is loaded off this thread the first time.
    pub async fn context_settings(&self) -> ContextSettings {
        let reported = self.llm.reported_context().await;
        let model = self.llm.endpoint().model.clone();
        let counter = match TokenCounter::without_loading(&model) {
            Some(counter) => counter,
            None => crate::blocking::run(crate::blocking::STORE_WORK, move || {
                TokenCounter::for_model(&model)
            })
            .await
            .unwrap_or(TokenCounter::Estimate),
        };
        self.context_settings_with(reported, counter)
    }

    /// The same from what is known now, without waiting: the estimate until the model's
    /// tokenizer is loaded, the configured window until the model said its own.
    pub fn context_settings_known(&self) -> ContextSettings {
        let counter = TokenCounter::loaded_for_model(&self.llm.endpoint().model);
        self.context_settings_with(self.llm.known_context(), counter)
    }

    /// Tokens of what every request carries: `prompt` and the tools offered now (the
    /// manifest is counted once per manifest and counter).
    pub fn fixed_tokens(&self, counter: &TokenCounter, prompt: &str) -> usize {
        let manifest = self.tool_services.mcp.manifest(&self.spec.tools_json);
        // The manifest is known by its address and its length together (an address reused
        // by another manifest is not taken for it unless the length matches too).
        let version = ManifestVersion {
            address: std::sync::Arc::as_ptr(&manifest) as *const u8 as usize,
            length: manifest.get().len(),
            counter: *counter,
        };
        let mut known = match self.manifest_tokens.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let manifest_tokens = match known.as_ref() {
            Some((counted, tokens)) if *counted == version => *tokens,
            _ => {
                let tokens = counter.text(manifest.get());
                *known = Some((version, tokens));
                tokens
            }
        };
        counter.text(prompt) + manifest_tokens
    }

    /// `okcvm check`'s line on the context: the window and what the prompt and the tools
    /// take of it, with a warning when too little is left to work in.
    pub async fn describe_context(&self) -> String {
        /// Tokens a conversation needs beyond the prompt and the tools to get anywhere.
        const ROOM_TO_WORK: usize = 4096;
        let settings = self.context_settings().await;
        let counter = &settings.counter;
        let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let fixed = self.fixed_tokens(counter, &self.spec.render_prompt(&date, &[]));
        let endpoint = self.llm.endpoint();
        let window = settings.limits.window_tokens;
        let reported = match self.llm.known_context() {
            Some(length) => format!(", the model takes {length}"),
            None => String::new(),
        };
        let mut line = format!(
            "{window} tokens for {} ({:?}{reported}); the prompt and tools take {fixed}, \
             compaction starts at {}",
            endpoint.model,
            endpoint.provider,
            settings.limits.threshold()
        );
        if window < fixed + ROOM_TO_WORK {
            line.push_str(&format!(
                ". WARNING: that leaves less than {ROOM_TO_WORK} tokens to work in; raise [llm] \
                 context_window_tokens (or [llm.models.\"{}\"]) and use a model that takes it",
                endpoint.model
            ));
        }
        line
    }

    fn context_settings_with(
        &self,
        reported: Option<usize>,
        counter: TokenCounter,
    ) -> ContextSettings {
        let endpoint = self.llm.endpoint();
        ContextSettings {
            limits: self
                .config
                .llm
                .limits(endpoint.provider, &endpoint.model, reported),
            keep_tool_outputs_steps: self.config.llm.keep_tool_outputs_steps,
            counter,
            compact_prompt: self.spec.compact_prompt.clone(),
        }
    }

    /// What each tool family can do on this host, one `(family, state)` per line: printed by
    /// `okcvm check` and logged at start, so an operator sees what the agent lacks.
    pub fn readiness(&self) -> Vec<(&'static str, String)> {
        let sandbox = match &self.sandbox.mode {
            crate::tools::sandbox::Mode::Bubblewrap(path) => {
                format!(
                    "bubblewrap ({}); {}",
                    path.display(),
                    self.sandbox.cgroups.describe()
                )
            }
            crate::tools::sandbox::Mode::Unsandboxed => {
                "UNSANDBOXED: shell and Python run without isolation".into()
            }
            crate::tools::sandbox::Mode::Unavailable(reason) => format!("unavailable: {reason}"),
        };
        let tools = &self.tool_services;
        vec![
            ("auth", self.describe_auth()),
            ("permissions", self.describe_permissions()),
            (
                "stored API keys",
                if self.endpoints.encrypts_keys() {
                    "encrypted (ChaCha20-Poly1305)".to_string()
                } else {
                    format!(
                        "stored in plain text: set {} to encrypt them",
                        self.config.auth.secret_key_env
                    )
                },
            ),
            ("shell and python", sandbox),
            ("browser", tools.browser.readiness()),
            ("search", tools.search.readiness()),
            ("media", tools.media.readiness()),
            ("data sources", tools.data.readiness()),
            (
                "deploy",
                format!("sites in {}", self.config.deploy.root.display()),
            ),
        ]
    }

    fn describe_auth(&self) -> String {
        use crate::config::AuthMode;
        let public = !self.config.server.is_loopback();
        let bind = format!(
            "{} on {}",
            if public {
                "public bind"
            } else {
                "loopback bind"
            },
            self.config.server.host
        );
        match self.auth.mode() {
            AuthMode::None if public => {
                format!(
                    "mode none, {bind}: ANYONE WHO REACHES IT IS TRUSTED (allow_unauthenticated)"
                )
            }
            AuthMode::None => format!("mode none (every client trusted), {bind}"),
            AuthMode::Token => format!(
                "mode token, {} user(s) in {}, {bind}",
                self.auth.user_count(),
                self.config.auth.users_file.display()
            ),
            AuthMode::Proxy => format!(
                "mode proxy (user from {} set by {}), {bind}",
                self.config.auth.user_header,
                self.config.auth.trusted_proxies.join(", ")
            ),
        }
    }

    fn describe_permissions(&self) -> String {
        let p = &self.config.permissions;
        let unattended = match p.unattended {
            crate::permissions::Unattended::Deny => "denied",
            crate::permissions::Unattended::Allow => "allowed",
        };
        format!(
            "preset {} (owners may pick down to {}); {} tool rules, {} allow / {} ask / {} deny \
             command rules; approvals wait {} s; on /v1 what asks is {unattended}",
            p.mode.name(),
            p.loosest_mode.name(),
            p.tools.len(),
            p.commands.allow.len(),
            p.commands.ask.len(),
            p.commands.deny.len(),
            p.approval_timeout_secs,
        )
    }

    /// The upload limits responses carry.
    pub fn upload_limits(&self) -> crate::protocol::UploadLimits {
        let uploads = &self.config.uploads;
        crate::protocol::UploadLimits::new(uploads.max_files, uploads.max_file_size_mb)
    }

    /// A session's tool context, before its first call: empty tool state, its workspace.
    pub fn tool_context(&self, key: &SessionKey) -> ToolContext {
        ToolContext {
            workspace: self.workspace_for(key),
            state: ToolState::default(),
            cancel: CancellationToken::new(),
            config: self.tools_config.clone(),
            sandbox: self.sandbox.clone(),
            workspace_ready: false,
            services: self.tool_services.clone(),
            session: key.clone(),
        }
    }

    /// The one place that maps a session to its workspace directory. Ids are validated to
    /// `[A-Za-z0-9._-]` and prefixed, so `.` and `..` can never be a directory name here.
    pub fn workspace_for(&self, key: &SessionKey) -> Workspace {
        Workspace::new(
            self.config
                .workspace
                .root
                .join(format!("c-{}", key.owner))
                .join(format!("s-{}", key.conversation_id)),
        )
        .with_owner(self.sandbox.file_owner())
    }
}
