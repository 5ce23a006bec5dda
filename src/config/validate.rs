//! The checks a loaded [`Config`] must pass before anything starts; every problem names its
//! key.

use super::{Config, ConfigError};

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
            key,
            message: message.to_string(),
        };
        if self.server.host.trim().is_empty() {
            return Err(invalid("server.host", "must not be empty"));
        }
        let base = self.llm.base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://"))
            || reqwest::Url::parse(base).is_err()
        {
            return Err(invalid(
                "llm.base_url",
                "must be an http:// or https:// URL such as http://127.0.0.1:11434/v1",
            ));
        }
        if self.llm.model.trim().is_empty() {
            return Err(invalid("llm.model", "must not be empty"));
        }
        if self.llm.max_steps == 0 {
            return Err(invalid("llm.max_steps", "must be at least 1"));
        }
        if self.llm.request_timeout_secs == 0 {
            return Err(invalid("llm.request_timeout_secs", "must be at least 1"));
        }
        if self.llm.idle_stream_timeout_secs == 0 {
            return Err(invalid(
                "llm.idle_stream_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.sessions.idle_timeout_secs == 0 {
            return Err(invalid("sessions.idle_timeout_secs", "must be at least 1"));
        }
        if self.sessions.max_sessions == 0 {
            return Err(invalid("sessions.max_sessions", "must be at least 1"));
        }
        if self.sessions.sweep_interval_secs == 0 {
            return Err(invalid(
                "sessions.sweep_interval_secs",
                "must be at least 1",
            ));
        }
        if self.tools.shell_default_timeout_ms == 0
            || self.tools.shell_default_timeout_ms > self.tools.shell_max_timeout_ms
        {
            return Err(invalid(
                "tools.shell_default_timeout_ms",
                "must be between 1 and tools.shell_max_timeout_ms",
            ));
        }
        if self.tools.python_timeout_ms == 0 {
            return Err(invalid("tools.python_timeout_ms", "must be at least 1"));
        }
        if self.tools.output_cap_bytes < 1024 {
            return Err(invalid("tools.output_cap_bytes", "must be at least 1024"));
        }
        if self.uploads.max_files == 0 {
            return Err(invalid("uploads.max_files", "must be at least 1"));
        }
        if self.uploads.max_file_size_mb == 0 {
            return Err(invalid("uploads.max_file_size_mb", "must be at least 1"));
        }
        if self.llm.max_response_bytes < 1024 {
            return Err(invalid("llm.max_response_bytes", "must be at least 1024"));
        }
        if self.sandbox.memory_mb < 64 {
            return Err(invalid("sandbox.memory_mb", "must be at least 64"));
        }
        if self.sandbox.cpu_secs == 0 {
            return Err(invalid("sandbox.cpu_secs", "must be at least 1"));
        }
        if self.sandbox.max_processes < 16 {
            return Err(invalid("sandbox.max_processes", "must be at least 16"));
        }
        if self.sandbox.cpu_percent == 0 {
            return Err(invalid("sandbox.cpu_percent", "must be at least 1"));
        }
        if self.sandbox.uid == 0 || self.sandbox.gid == 0 {
            return Err(invalid(
                "sandbox.uid",
                "sandboxed code must not run as root; give an unprivileged uid and gid",
            ));
        }
        match self.search.provider.as_str() {
            "" => {}
            "searxng" | "brave" => {
                let base = self.search.base_url.trim();
                if !(base.starts_with("http://") || base.starts_with("https://"))
                    || reqwest::Url::parse(base).is_err()
                {
                    return Err(invalid(
                        "search.base_url",
                        "must be an http(s) URL when search.provider is set",
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    "search.provider",
                    "must be \"\" (off), \"searxng\" or \"brave\"",
                ))
            }
        }
        if self.search.max_results == 0 || self.search.max_results > 50 {
            return Err(invalid("search.max_results", "must be between 1 and 50"));
        }
        if self.search.timeout_secs == 0 {
            return Err(invalid("search.timeout_secs", "must be at least 1"));
        }
        if self.data.timeout_secs == 0 {
            return Err(invalid("data.timeout_secs", "must be at least 1"));
        }
        if self.browser.page_timeout_secs == 0 {
            return Err(invalid("browser.page_timeout_secs", "must be at least 1"));
        }
        if self.deploy.max_site_mb == 0 {
            return Err(invalid("deploy.max_site_mb", "must be at least 1"));
        }
        if self.deploy.max_files == 0 {
            return Err(invalid("deploy.max_files", "must be at least 1"));
        }
        if let Some(url) = &self.server.public_url {
            if reqwest::Url::parse(url).is_err() {
                return Err(invalid("server.public_url", "must be an absolute URL"));
            }
        }
        let limits = &self.limits;
        for (key, value) in [
            (
                "limits.attachments_per_session",
                limits.attachments_per_session,
            ),
            ("limits.sandboxed_commands", limits.sandboxed_commands),
            ("limits.python_interpreters", limits.python_interpreters),
            ("limits.browser_tabs", limits.browser_tabs),
        ] {
            if !(1..=1_000_000).contains(&value) {
                return Err(invalid(key, "must be between 1 and 1000000"));
            }
        }
        self.llm.validate_context()?;
        self.validate_access()?;
        self.validate_permissions()?;
        self.validate_mcp()
    }
}
