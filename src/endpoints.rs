//! Model endpoints changed at runtime through `/api/config`: the chat model and the media
//! endpoints (image, speech, sound effects, speech recognition).
//!
//! Guarantees: keys are never returned (only `api_key_present`) and never logged; an omitted
//! key keeps the old one, `""` clears it; every value is validated as sent (the OpenAPI
//! document states the same rules) before it is applied; the chat endpoint applies to every session's next model call; everything is
//! persisted in the store so a restart keeps it. Removing the chat section restores the
//! endpoint of okcvm.toml.

use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::secrets::{SecretBox, SecretError};
use crate::config::{LlmConfig, Secret};
use crate::llm::client::{Endpoint, ModelClient};
use crate::store::{Store, StoreError};

pub const SECTIONS: [&str; 5] = ["chat", "image", "speech", "sound_effects", "asr"];

/// One configured endpoint, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSettings {
    pub model: String,
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    pub supports_streaming: bool,
    /// The chat section uses okcvm.toml's key, which is never copied into the store (and
    /// only ever sent to okcvm.toml's origin: changing the address drops it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uses_config_key: bool,
    /// A stored key that cannot be opened (no secret key, or another one): never used, but
    /// kept in the store as it is until the section's key or address changes.
    #[serde(skip)]
    pub sealed_key: Option<String>,
}

/// Every section; `None` means not configured (for chat: the okcvm.toml endpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSet {
    pub chat: Option<EndpointSettings>,
    pub image: Option<EndpointSettings>,
    pub speech: Option<EndpointSettings>,
    pub sound_effects: Option<EndpointSettings>,
    pub asr: Option<EndpointSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("{0}")]
    Invalid(String),
    /// A section that does not exist yet was patched without what it needs to exist.
    #[error("{0}")]
    NotSetUp(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The endpoint addresses accepted: http(s), a host name (letters, digits, `_`, `-`; labels
/// start with a letter) or a dotted IPv4 address, an optional port, an
/// optional path. The OpenAPI document carries the same pattern.
pub const BASE_URL_PATTERN: &str = r"^https?://(?:[A-Za-z][A-Za-z0-9_-]{0,62}(?:\.[A-Za-z][A-Za-z0-9_-]{0,62})*|(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$";

fn is_endpoint_url(url: &str) -> bool {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(BASE_URL_PATTERN).ok());
    PATTERN.as_ref().is_some_and(|p| p.is_match(url)) && reqwest::Url::parse(url).is_ok()
}

pub struct Endpoints {
    current: RwLock<EndpointSet>,
    defaults: LlmConfig,
    /// Seals the keys on their way into the store.
    secrets: SecretBox,
}

impl EndpointSet {
    fn section_mut(&mut self, name: &str) -> Option<&mut Option<EndpointSettings>> {
        match name {
            "chat" => Some(&mut self.chat),
            "image" => Some(&mut self.image),
            "speech" => Some(&mut self.speech),
            "sound_effects" => Some(&mut self.sound_effects),
            "asr" => Some(&mut self.asr),
            _ => None,
        }
    }

    fn section(&self, name: &str) -> Option<&EndpointSettings> {
        match name {
            "chat" => self.chat.as_ref(),
            "image" => self.image.as_ref(),
            "speech" => self.speech.as_ref(),
            "sound_effects" => self.sound_effects.as_ref(),
            "asr" => self.asr.as_ref(),
            _ => None,
        }
    }
}

impl Endpoints {
    /// Loads saved endpoints and applies the chat one to `llm`. Stored keys are opened with
    /// `secrets`; one that cannot be (no or another secret key) is not used, said in the log,
    /// and kept in the store as it is.
    pub fn load(
        store: &Store,
        defaults: &LlmConfig,
        llm: &ModelClient,
        secrets: SecretBox,
    ) -> Result<Self, EndpointsError> {
        let mut saved: EndpointSet = store.get_setting("endpoints")?.unwrap_or_default();
        // Whether the store must be written back: a plain key to seal, an old copy to drop.
        let mut rewrite = false;
        for name in SECTIONS {
            let Some(Some(section)) = saved.section_mut(name) else {
                continue;
            };
            let Some(key) = section.api_key.take() else {
                continue;
            };
            rewrite |= secrets.encrypts() && !SecretBox::is_sealed(&key);
            match secrets.open(&key) {
                Ok(key) => section.api_key = Some(key),
                Err(error) => {
                    tracing::error!(
                        section = name,
                        %error,
                        "the stored API key of this endpoint cannot be used; it stays in the store \
                         until the secret key is set again or a new key is entered"
                    );
                    section.sealed_key = Some(key);
                }
            }
        }
        // Older stores kept a copy of okcvm.toml's key in the chat section: refer to it instead.
        if let (Some(chat), Some(key)) = (saved.chat.as_mut(), defaults.api_key.as_ref()) {
            if chat.api_key.as_deref() == Some(key.expose()) {
                chat.api_key = None;
                chat.uses_config_key = true;
                rewrite = true;
            }
        }
        let endpoints = Self {
            current: RwLock::new(saved.clone()),
            defaults: defaults.clone(),
            secrets,
        };
        if rewrite {
            store.put_setting("endpoints", &endpoints.sealed(&saved)?)?;
            store.flush()?;
        }
        llm.set_endpoint(endpoints.chat_endpoint());
        Ok(endpoints)
    }

    /// Whether keys are encrypted in the store.
    pub fn encrypts_keys(&self) -> bool {
        self.secrets.encrypts()
    }

    /// `set` as stored: every key sealed (with a secret key), keys that could not be opened
    /// as they were.
    fn sealed(&self, set: &EndpointSet) -> Result<EndpointSet, SecretError> {
        let mut sealed = set.clone();
        for name in SECTIONS {
            if let Some(Some(section)) = sealed.section_mut(name) {
                section.api_key = match (&section.api_key, section.sealed_key.take()) {
                    (Some(key), _) => Some(self.secrets.seal(key)?),
                    (None, kept) => kept,
                };
            }
        }
        Ok(sealed)
    }

    pub fn snapshot(&self) -> EndpointSet {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The chat endpoint in force: the saved one, else okcvm.toml's.
    pub fn chat_endpoint(&self) -> Endpoint {
        match self.snapshot().chat {
            Some(chat) => Endpoint {
                provider: self.defaults.provider.for_url(&chat.base_url),
                api_key: if chat.uses_config_key {
                    self.defaults.api_key.clone()
                } else {
                    chat.api_key.map(Secret::new)
                },
                base_url: chat.base_url,
                model: chat.model,
                stream: chat.supports_streaming,
            },
            None => Endpoint {
                provider: self.defaults.provider.for_url(&self.defaults.base_url),
                base_url: self.defaults.base_url.clone(),
                model: self.defaults.model.clone(),
                api_key: self.defaults.api_key.clone(),
                stream: self.defaults.stream,
            },
        }
    }

    /// `GET /api/config`: every section without its key.
    pub fn public_view(&self) -> Value {
        let current = self.snapshot();
        let chat = self.chat_endpoint();
        let mut out = Map::new();
        out.insert(
            "chat".into(),
            endpoint_view(
                &chat.model,
                &chat.base_url,
                chat.stream,
                chat.api_key.is_some(),
            ),
        );
        for name in &SECTIONS[1..] {
            let view = current.section(name).map_or(Value::Null, |s| {
                endpoint_view(
                    &s.model,
                    &s.base_url,
                    s.supports_streaming,
                    s.api_key.is_some(),
                )
            });
            out.insert((*name).into(), view);
        }
        Value::Object(out)
    }

    /// Applies a `POST /api/config` body, persists it and updates the chat client.
    pub fn update(
        &self,
        body: &Value,
        store: &Store,
        llm: &ModelClient,
    ) -> Result<(), EndpointsError> {
        let Value::Object(sections) = body else {
            return Err(EndpointsError::Invalid(
                "the body must be a JSON object".into(),
            ));
        };
        let mut next = self.snapshot();
        for (name, patch) in sections {
            let Some(slot) = next.section_mut(name) else {
                return Err(EndpointsError::Invalid(format!(
                    "unknown section {name:?}; expected one of {}",
                    SECTIONS.join(", ")
                )));
            };
            *slot = match patch {
                Value::Null => None,
                Value::Object(fields) => Some(apply_patch(
                    name,
                    slot.take(),
                    fields,
                    name == "chat",
                    &self.defaults,
                )?),
                _ => {
                    return Err(EndpointsError::Invalid(format!(
                        "section {name} must be null or an object"
                    )))
                }
            };
        }
        let sealed = self.sealed(&next)?;
        store.put_setting("endpoints", &sealed)?;
        store.flush()?;
        {
            let mut guard = match self.current.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            *guard = next;
        }
        llm.set_endpoint(self.chat_endpoint());
        Ok(())
    }
}

/// One section as `GET /api/config` shows it: everything but the key.
fn endpoint_view(
    model: &str,
    base_url: &str,
    supports_streaming: bool,
    api_key_present: bool,
) -> Value {
    serde_json::json!({
        "model": model,
        "base_url": base_url,
        "supports_streaming": supports_streaming,
        "api_key_present": api_key_present,
    })
}

fn apply_patch(
    section: &str,
    old: Option<EndpointSettings>,
    fields: &Map<String, Value>,
    is_chat: bool,
    defaults: &LlmConfig,
) -> Result<EndpointSettings, EndpointsError> {
    let invalid = |message: String| EndpointsError::Invalid(format!("{section}: {message}"));
    for key in fields.keys() {
        if !["model", "base_url", "api_key", "supports_streaming"].contains(&key.as_str()) {
            return Err(invalid(format!("unknown field {key:?}")));
        }
    }
    let text = |key: &str| -> Result<Option<String>, EndpointsError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("{key} must be a string"))),
        }
    };
    // A new chat section starts from okcvm.toml's endpoint, other sections from nothing.
    let old_is_none = old.is_none() && !is_chat;
    let base = old.unwrap_or_else(|| EndpointSettings {
        model: if is_chat {
            defaults.model.clone()
        } else {
            String::new()
        },
        base_url: if is_chat {
            defaults.base_url.clone()
        } else {
            String::new()
        },
        api_key: None,
        supports_streaming: if is_chat { defaults.stream } else { false },
        uses_config_key: is_chat && defaults.api_key.is_some(),
        sealed_key: None,
    });
    let (model, base_url) = (text("model")?, text("base_url")?);
    if old_is_none && (model.is_none() || base_url.is_none()) {
        return Err(EndpointsError::NotSetUp(format!(
            "{section} is not set up yet: give its model and base_url"
        )));
    }
    let model = model.unwrap_or(base.model);
    let base_url = base_url.unwrap_or_else(|| base.base_url.clone());
    // A key is only ever sent to the origin it was given for: a new address drops it.
    let same_origin = origin(&base.base_url) == origin(&base_url);
    let (api_key, uses_config_key, sealed_key) = match text("api_key")? {
        Some(key) if key.is_empty() => (None, false, None),
        Some(key) => (Some(key), false, None),
        None if same_origin => (base.api_key, base.uses_config_key, base.sealed_key),
        None => (None, false, None),
    };
    let supports_streaming = match fields.get("supports_streaming") {
        None | Some(Value::Null) => base.supports_streaming,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("supports_streaming must be true or false".into())),
    };
    if model.is_empty() || model.chars().count() > 200 {
        return Err(invalid("model must be 1-200 characters".into()));
    }
    if !is_endpoint_url(&base_url) {
        return Err(invalid(
            "base_url must be an http:// or https:// URL with a host name or IPv4 address".into(),
        ));
    }
    if api_key
        .as_ref()
        .is_some_and(|k| k.chars().count() > 4096 || k.chars().any(char::is_control))
    {
        return Err(invalid("api_key is not a valid key".into()));
    }
    Ok(EndpointSettings {
        model,
        base_url,
        api_key,
        supports_streaming,
        uses_config_key,
        sealed_key,
    })
}

/// `scheme://host:port` of an address (None when it does not parse).
fn origin(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .map(|url| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_addresses_follow_the_documented_pattern() {
        for good in [
            "http://localhost:11434/v1",
            "https://api.openai.com/v1",
            "http://ollama_server:11434",
            "http://10.0.0.7:8080/v1/",
        ] {
            assert!(is_endpoint_url(good), "{good}");
        }
        for bad in [
            "ftp://x",
            " http://x",
            "http://999.1.1.1",
            "http://1.2.3.4.5",
            "http://x:70000",
            "http://",
            "http://x y",
        ] {
            assert!(!is_endpoint_url(bad), "{bad}");
        }
    }
}
