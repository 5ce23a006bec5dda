//! How the model is spoken to and how much it can read: `[llm] provider` (which wire format),
//! the context window and the compaction threshold, with per-model overrides in
//! `[llm.models."<name>"]`.
//!
//! Pure. The window a session works with is the configured one (per model, else the
//! provider's default), never more than what the model itself reports it can read.

use serde::{Deserialize, Serialize};

/// The wire format of the model endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Ollama when the base URL is Ollama's port (11434), OpenAI-compatible otherwise.
    #[default]
    Auto,
    /// OpenAI-compatible `/chat/completions` (OpenAI, vLLM, llama.cpp server, DeepSeek, …).
    Openai,
    /// Ollama's native `/api/chat`, which honours the context window (`num_ctx`); its
    /// OpenAI-compatible `/v1` runs every model with Ollama's small default window.
    Ollama,
}

/// Ollama's port; a base URL on it is taken for Ollama when the provider is `auto`.
const OLLAMA_PORT: u16 = 11434;

impl Provider {
    /// The provider a base URL is spoken to with (`auto` resolved).
    pub fn for_url(self, base_url: &str) -> Provider {
        match self {
            Provider::Auto => {
                let port = url::Url::parse(base_url.trim())
                    .ok()
                    .and_then(|url| url.port_or_known_default());
                if port == Some(OLLAMA_PORT) {
                    Provider::Ollama
                } else {
                    Provider::Openai
                }
            }
            chosen => chosen,
        }
    }

    /// The window a model gets when neither `[llm]` nor its `[llm.models]` entry sets one.
    pub fn default_window(self) -> usize {
        match self {
            // What Ollama's common models (qwen2.5, llama3.1) run well with on one GPU.
            Provider::Ollama => 32_768,
            _ => 128_000,
        }
    }
}

/// Overrides for one model, by its exact name (`[llm.models."qwen2.5:7b"]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelLimits {
    pub context_window_tokens: Option<usize>,
    pub compact_at: Option<f64>,
}

/// The context limits that hold for one model now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextLimits {
    pub window_tokens: usize,
    pub compact_at: f64,
}

impl ContextLimits {
    /// Tokens past which the history is compacted.
    pub fn threshold(&self) -> usize {
        (self.window_tokens as f64 * self.compact_at) as usize
    }
}

impl super::LlmConfig {
    /// The limits for `model` on `provider`; `reported` is the context length the model
    /// itself reports (Ollama's `/api/show`), which caps the window.
    pub fn limits(
        &self,
        provider: Provider,
        model: &str,
        reported: Option<usize>,
    ) -> ContextLimits {
        let own = self.models.get(model.trim());
        let configured = own
            .and_then(|m| m.context_window_tokens)
            .or(self.context_window_tokens)
            .unwrap_or_else(|| provider.default_window());
        let window_tokens = reported.map_or(configured, |max| configured.min(max.max(1)));
        ContextLimits {
            window_tokens,
            compact_at: own.and_then(|m| m.compact_at).unwrap_or(self.compact_at),
        }
    }

    /// Checks every value; the error names the key.
    pub(super) fn validate_context(&self) -> Result<(), super::ConfigError> {
        let invalid =
            |key: &'static str, message: String| super::ConfigError::Invalid { key, message };
        let fraction_ok = |value: f64| (0.1..=0.95).contains(&value);
        let window_ok = |value: Option<usize>| value.is_none_or(|tokens| tokens >= 2048);
        if !fraction_ok(self.compact_at) {
            return Err(invalid(
                "llm.compact_at",
                format!("must be between 0.1 and 0.95, not {}", self.compact_at),
            ));
        }
        if !window_ok(self.context_window_tokens) {
            return Err(invalid(
                "llm.context_window_tokens",
                "must be at least 2048 tokens".into(),
            ));
        }
        if self.keep_tool_outputs_steps == 0 {
            return Err(invalid(
                "llm.keep_tool_outputs_steps",
                "must be at least 1".into(),
            ));
        }
        for (name, limits) in &self.models {
            if name.trim().is_empty() {
                return Err(invalid("llm.models", "a model name is empty".into()));
            }
            if !limits.compact_at.is_none_or(fraction_ok) {
                return Err(invalid(
                    "llm.models",
                    format!("compact_at of \"{name}\" must be between 0.1 and 0.95"),
                ));
            }
            if !window_ok(limits.context_window_tokens) {
                return Err(invalid(
                    "llm.models",
                    format!("context_window_tokens of \"{name}\" must be at least 2048"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_ollama_on_its_port_only() {
        assert_eq!(
            Provider::Auto.for_url("http://127.0.0.1:11434/v1"),
            Provider::Ollama
        );
        assert_eq!(
            Provider::Auto.for_url("https://api.openai.com/v1"),
            Provider::Openai
        );
        assert_eq!(
            Provider::Ollama.for_url("http://gpu:8080"),
            Provider::Ollama
        );
    }

    #[test]
    fn a_model_entry_wins_and_the_reported_length_caps() {
        let mut config = crate::config::LlmConfig::default();
        config.models.insert(
            "big".into(),
            ModelLimits {
                context_window_tokens: Some(200_000),
                compact_at: Some(0.5),
            },
        );
        let big = config.limits(Provider::Openai, "big", None);
        assert_eq!((big.window_tokens, big.compact_at), (200_000, 0.5));
        assert_eq!(big.threshold(), 100_000);
        let other = config.limits(Provider::Ollama, "small", Some(8192));
        assert_eq!((other.window_tokens, other.compact_at), (8192, 0.8));
        assert_eq!(
            config.limits(Provider::Openai, "x", None).window_tokens,
            128_000
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut config = crate::config::LlmConfig {
            compact_at: 1.5,
            ..crate::config::LlmConfig::default()
        };
        assert!(config
            .validate_context()
            .unwrap_err()
            .to_string()
            .contains("llm.compact_at"));
        config.compact_at = 0.8;
        config.models.insert(
            "m".into(),
            ModelLimits {
                context_window_tokens: Some(100),
                compact_at: None,
            },
        );
        let error = config.validate_context().unwrap_err().to_string();
        assert!(
            error.contains("llm.models") && error.contains("\"m\""),
            "{error}"
        );
    }
}
