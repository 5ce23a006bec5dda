//! The agent's contract: the system prompt and the tool manifest (`spec/`).
//!
//! Owns parsing `spec/tools.json` into typed [`ToolSpec`]s and keeping the manifest serialised
//! once (every model request carries it, so it is never re-encoded per call). The built-in
//! files are compiled in; `[spec]` in okcvm.toml may point to replacements.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::SpecConfig;

const BUILTIN_PROMPT: &str = include_str!("../spec/system_prompt.md");
const BUILTIN_TOOLS: &str = include_str!("../spec/tools.json");
const BUILTIN_COMPACT_PROMPT: &str = include_str!("../spec/compact_prompt.md");

/// The prompt placeholder replaced by the list of uploaded files.
const UPLOADS_PLACEHOLDER: &str = "{{uploads}}";
const DATE_PLACEHOLDER: &str = "{{date}}";

/// One tool of the manifest.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    /// Top-level argument names the schema marks as required.
    pub required: Vec<String>,
}

/// The loaded contract, shared read-only by every session.
#[derive(Debug, Clone)]
pub struct Spec {
    pub system_prompt: String,
    pub tools: Vec<ToolSpec>,
    /// The manifest as sent to the model (`tools` of a chat-completions request), encoded once.
    pub tools_json: Arc<RawValue>,
    /// The prompt of the summary request that compacts a long history.
    pub compact_prompt: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid tool manifest: {0}")]
    Manifest(String),
}

/// One tool as a manifest lists it: OpenAI's `{"type": "function", "function": {…}}`, or the
/// bare function of a `{"functions": [...]}` manifest (the seed's shape).
#[derive(Deserialize)]
#[serde(untagged)]
enum ManifestEntry {
    Wrapped {
        #[serde(rename = "type")]
        kind: String,
        function: ManifestFunction,
    },
    Bare(ManifestFunction),
}

/// A manifest: a list of tools, or an object holding them under `functions` (or `tools`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Manifest {
    List(Vec<ManifestEntry>),
    Functions { functions: Vec<ManifestEntry> },
    Tools { tools: Vec<ManifestEntry> },
}

#[derive(Deserialize)]
struct ManifestFunction {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "empty_object_schema")]
    parameters: Value,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

impl Spec {
    pub fn load(config: &SpecConfig) -> Result<Self, SpecError> {
        let prompt = match &config.system_prompt {
            Some(path) => read(path)?,
            None => BUILTIN_PROMPT.to_string(),
        };
        let tools = match &config.tools {
            Some(path) => read(path)?,
            None => BUILTIN_TOOLS.to_string(),
        };
        let mut spec = Self::from_texts(prompt, &tools)?;
        if let Some(path) = &config.compact_prompt {
            spec.compact_prompt = Arc::from(read(path)?);
        }
        Ok(spec)
    }

    pub fn builtin() -> Result<Self, SpecError> {
        Self::from_texts(BUILTIN_PROMPT.to_string(), BUILTIN_TOOLS)
    }

    pub fn from_texts(system_prompt: String, tools_text: &str) -> Result<Self, SpecError> {
        let manifest: Manifest = serde_json::from_str(tools_text).map_err(|e| {
            SpecError::Manifest(format!(
                "{e}; expected a list of tools or {{\"functions\": [...]}}, each tool \
                 {{\"type\": \"function\", \"function\": {{name, description, parameters}}}} \
                 or the function object itself"
            ))
        })?;
        let entries = match manifest {
            Manifest::List(entries)
            | Manifest::Functions { functions: entries }
            | Manifest::Tools { tools: entries } => entries,
        };
        let mut tools = Vec::with_capacity(entries.len());
        for entry in entries {
            let function = match entry {
                ManifestEntry::Wrapped { kind, function } if kind != "function" => {
                    return Err(SpecError::Manifest(format!(
                        "tool {} has type {kind:?}, expected \"function\"",
                        function.name
                    )));
                }
                ManifestEntry::Wrapped { function, .. } | ManifestEntry::Bare(function) => function,
            };
            if tools.iter().any(|t: &ToolSpec| t.name == function.name) {
                return Err(SpecError::Manifest(format!(
                    "tool {} is listed twice",
                    function.name
                )));
            }
            let required = function
                .parameters
                .get("required")
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            tools.push(ToolSpec {
                name: function.name,
                description: function.description,
                parameters: function.parameters,
                required,
            });
        }
        let wire: Vec<Value> = tools
            .iter()
            .map(|t| {
                serde_json::json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        let encoded =
            serde_json::to_string(&wire).map_err(|e| SpecError::Manifest(e.to_string()))?;
        let tools_json =
            RawValue::from_string(encoded).map_err(|e| SpecError::Manifest(e.to_string()))?;
        Ok(Self {
            system_prompt,
            tools,
            tools_json: Arc::from(tools_json),
            compact_prompt: Arc::from(BUILTIN_COMPACT_PROMPT),
        })
    }

    pub fn tool(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.iter().find(|t| t.name == name)
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.name.clone()).collect()
    }

    /// The system prompt with today's date and the session's uploads filled in.
    pub fn render_prompt(&self, date: &str, uploads: &[String]) -> String {
        let listing = if uploads.is_empty() {
            "(none)".to_string()
        } else {
            uploads
                .iter()
                .map(|path| format!("- {path}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let prompt = self.system_prompt.replace(DATE_PLACEHOLDER, date);
        if prompt.contains(UPLOADS_PLACEHOLDER) {
            prompt.replace(UPLOADS_PLACEHOLDER, &listing)
        } else if uploads.is_empty() {
            prompt
        } else {
            format!("{prompt}\n\n## Uploaded files\n{listing}\n")
        }
    }
}

fn read(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_has_the_24_tools() {
        let spec = Spec::builtin().unwrap();
        assert_eq!(spec.tools.len(), 24);
        assert!(spec.tools.iter().all(|t| t.name.starts_with("mshtools-")));
        let shell = spec.tool("mshtools-shell").unwrap();
        assert_eq!(shell.required, vec!["command".to_string()]);
        let parsed: Vec<Value> = serde_json::from_str(spec.tools_json.get()).unwrap();
        assert_eq!(parsed.len(), 24);
    }

    #[test]
    fn prompt_lists_uploads_where_the_placeholder_is() {
        let spec = Spec::from_texts("Date {{date}}\n{{uploads}}".into(), "[]").unwrap();
        let prompt = spec.render_prompt("2026-01-02", &["/mnt/okcomputer/upload/a.txt".into()]);
        assert_eq!(prompt, "Date 2026-01-02\n- /mnt/okcomputer/upload/a.txt");
        assert_eq!(spec.render_prompt("d", &[]), "Date d\n(none)");
    }

    #[test]
    fn duplicate_or_malformed_manifest_is_rejected() {
        let one = r#"{"type":"function","function":{"name":"a"}}"#;
        assert!(Spec::from_texts(String::new(), &format!("[{one},{one}]")).is_err());
        assert!(Spec::from_texts(String::new(), "{").is_err());
    }
}
