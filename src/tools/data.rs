//! `get_data_source_desc` and `get_data_source`: structured data from public HTTP APIs,
//! described in `spec/data_sources.json` (or the file `[data] sources_file` names, so an
//! operator can add their own).
//!
//! A source is a base URL and named APIs; each API is a path and query template whose
//! `{placeholders}` are filled from the call's `params` (percent-encoded; an optional query
//! parameter left out is dropped). Only the described APIs can be reached, so the model cannot
//! point these tools at arbitrary addresses. Answers come back pretty-printed when they are
//! JSON, capped in size.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ToolContext, ToolError, ToolOutput, TypedTool};
use crate::config::DataConfig;

const BUILTIN: &str = include_str!("../../spec/data_sources.json");
/// Largest answer read (bytes); the tool output cap applies after this.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
pub struct DataSource {
    pub name: String,
    pub description: String,
    pub base_url: String,
    pub apis: Vec<DataApi>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DataApi {
    pub name: String,
    pub description: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub params: Vec<DataParam>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DataParam {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read the data sources file {path}: {message}")]
    Load { path: String, message: String },
    #[error("cannot start the data client: {0}")]
    Client(#[from] reqwest::Error),
}

pub struct DataClient {
    http: reqwest::Client,
    sources: Vec<DataSource>,
    enabled: bool,
}

impl DataClient {
    pub fn new(config: &DataConfig) -> Result<Self, DataError> {
        let (text, path) = match &config.sources_file {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|e| DataError::Load {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?,
                path.display().to_string(),
            ),
            None => (BUILTIN.to_string(), "spec/data_sources.json".into()),
        };
        let sources: Vec<DataSource> =
            serde_json::from_str(&text).map_err(|e| DataError::Load {
                path,
                message: e.to_string(),
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(config.timeout_secs))
            .user_agent("OKCVM data sources")
            .build()?;
        Ok(Self {
            http,
            sources,
            enabled: config.enabled,
        })
    }

    /// One line for `okcvm check` and the start-up log.
    pub fn readiness(&self) -> String {
        if !self.enabled {
            return "off ([data] enabled = false)".into();
        }
        let names: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
        format!("{} sources: {}", names.len(), names.join(", "))
    }

    fn source(&self, name: &str) -> Result<&DataSource, ToolError> {
        if !self.enabled {
            return Err(ToolError::RespondToModel(
                "data sources are turned off on this server ([data] enabled = false in okcvm.toml)"
                    .into(),
            ));
        }
        self.sources
            .iter()
            .find(|s| s.name == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                ToolError::RespondToModel(format!(
                    "no data source {name:?}; the sources are: {}",
                    names.join(", ")
                ))
            })
    }
}

/// A parameter value as text (numbers and booleans as written, lists joined by commas).
fn param_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(param_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

/// Fills `{name}` placeholders of `template`; `None` when one of them has no value.
fn fill(template: &str, params: &Map<String, Value>, encode: bool) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}')? + start;
        out.push_str(&rest[..start]);
        let value = param_text(params.get(&rest[start + 1..end])?)?;
        if encode {
            out.push_str(&percent_encode_segment(&value));
        } else {
            out.push_str(&value);
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Percent-encodes everything but unreserved characters (so `/` and `..` cannot change
/// the path).
fn percent_encode_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' | b';' | b',' | b':' => {
                (b as char).to_string()
            }
            b'.' => ".".into(),
            _ => format!("%{b:02X}"),
        })
        .collect::<String>()
        .replace("..", "%2E%2E")
}

/// The URL of one call, or what is wrong with its parameters.
fn request_url(
    source: &DataSource,
    api: &DataApi,
    params: &Map<String, Value>,
) -> Result<reqwest::Url, ToolError> {
    let known: Vec<&str> = api.params.iter().map(|p| p.name.as_str()).collect();
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ToolError::RespondToModel(format!(
            "{}.{} takes no parameter {unknown:?}; it takes: {}",
            source.name,
            api.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let missing: Vec<&str> = api
        .params
        .iter()
        .filter(|p| p.required && params.get(&p.name).and_then(param_text).is_none())
        .map(|p| p.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ToolError::RespondToModel(format!(
            "{}.{} needs {}",
            source.name,
            api.name,
            missing.join(", ")
        )));
    }
    let path = fill(&api.path, params, true).ok_or_else(|| {
        ToolError::RespondToModel(format!(
            "{}.{}: a path parameter is missing",
            source.name, api.name
        ))
    })?;
    let mut url = reqwest::Url::parse(&format!("{}{path}", source.base_url.trim_end_matches('/')))
        .map_err(|e| {
            ToolError::Fatal(format!(
                "data source {} has a bad address: {e}",
                source.name
            ))
        })?;
    {
        let mut query = url.query_pairs_mut();
        for (key, template) in &api.query {
            if let Some(value) = fill(template, params, false) {
                query.append_pair(key, &value);
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url)
}

fn describe(source: &DataSource) -> String {
    let mut out = format!("{}: {}\n", source.name, source.description);
    for api in &source.apis {
        out.push_str(&format!("\nAPI {} — {}\n", api.name, api.description));
        if api.params.is_empty() {
            out.push_str("  (no parameters)\n");
        }
        for param in &api.params {
            out.push_str(&format!(
                "  - {} ({}): {}\n",
                param.name,
                if param.required {
                    "required"
                } else {
                    "optional"
                },
                param.description
            ));
        }
    }
    out.push_str(&format!(
        "\nCall get_data_source with data_source_name \"{}\", api_name and params.",
        source.name
    ));
    out
}

pub struct GetDataSourceDesc;

#[derive(Deserialize)]
pub struct DescArgs {
    data_source_name: String,
}

impl TypedTool for GetDataSourceDesc {
    const NAME: &'static str = "mshtools-get_data_source_desc";
    type Args = DescArgs;

    async fn run(&self, args: DescArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let source = ctx.services.data.source(&args.data_source_name)?;
        Ok(ToolOutput::text(describe(source)))
    }
}

pub struct GetDataSource;

#[derive(Deserialize)]
pub struct FetchArgs {
    data_source_name: String,
    api_name: String,
    #[serde(default)]
    params: Option<Map<String, Value>>,
}

impl TypedTool for GetDataSource {
    const NAME: &'static str = "mshtools-get_data_source";
    type Args = FetchArgs;

    async fn run(&self, args: FetchArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let data = &ctx.services.data;
        let source = data.source(&args.data_source_name)?;
        let api = source
            .apis
            .iter()
            .find(|a| a.name == args.api_name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = source.apis.iter().map(|a| a.name.as_str()).collect();
                ToolError::RespondToModel(format!(
                    "{} has no API {:?}; it has: {}",
                    source.name,
                    args.api_name,
                    names.join(", ")
                ))
            })?;
        let url = request_url(source, api, &args.params.unwrap_or_default())?;
        let request = data.http.get(url.clone()).send();
        let response = request.await.map_err(|e| {
            ToolError::RespondToModel(format!("{} cannot be reached: {e}", source.name))
        })?;
        let status = response.status();
        let body = super::read_capped(response, MAX_ANSWER)
            .await
            .map_err(|e| ToolError::RespondToModel(format!("{}: {e}", source.name)))?;
        let text = match serde_json::from_slice::<Value>(&body) {
            Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&body).into_owned(),
        };
        if !status.is_success() {
            let detail: String = text.chars().take(500).collect();
            return Err(ToolError::RespondToModel(format!(
                "{}.{} answered {status}: {detail}",
                source.name, api.name
            )));
        }
        Ok(ToolOutput::text(format!(
            "{}.{} ({url}):\n{text}",
            source.name, api.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builtin() -> Vec<DataSource> {
        serde_json::from_str(BUILTIN).unwrap()
    }

    #[test]
    fn the_builtin_sources_are_well_formed() {
        let sources = builtin();
        assert!(sources.len() >= 4);
        for source in &sources {
            assert!(
                reqwest::Url::parse(&source.base_url).is_ok(),
                "{}",
                source.name
            );
            for api in &source.apis {
                let named: Vec<&str> = api.params.iter().map(|p| p.name.as_str()).collect();
                let templates = std::iter::once(api.path.as_str())
                    .chain(api.query.values().map(String::as_str));
                for template in templates {
                    for piece in template.split('{').skip(1) {
                        let name = piece.split('}').next().unwrap();
                        assert!(
                            named.contains(&name),
                            "{}.{}: {{{name}}} is not a parameter",
                            source.name,
                            api.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn urls_are_built_from_templates_and_checked() {
        let sources = builtin();
        let bank = sources.iter().find(|s| s.name == "world_bank").unwrap();
        let indicator = &bank.apis[0];
        let params = json!({"country": "US;CN", "indicator": "NY.GDP.MKTP.CD"});
        let url = request_url(bank, indicator, params.as_object().unwrap()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.worldbank.org/v2/country/US;CN/indicator/NY.GDP.MKTP.CD?format=json&per_page=500"
        );
        let sneaky = json!({"country": "../../x?y=", "indicator": "a/b"});
        let url = request_url(bank, indicator, sneaky.as_object().unwrap()).unwrap();
        assert!(
            url.path()
                .starts_with("/v2/country/%2E%2E%2F%2E%2E%2Fx%3Fy%3D/indicator/a%2Fb"),
            "{url}"
        );
        let err = request_url(
            bank,
            indicator,
            json!({"country": "US"}).as_object().unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs indicator"), "{err}");
        let err = request_url(
            bank,
            indicator,
            json!({"country": "US", "indicator": "x", "year": 1})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no parameter \"year\""), "{err}");
        let rates = sources.iter().find(|s| s.name == "frankfurter").unwrap();
        let url = request_url(
            rates,
            &rates.apis[1],
            json!({"start": "2024-01-01", "end": "2024-01-31", "to": ["EUR", "JPY"]})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.frankfurter.app/2024-01-01..2024-01-31?to=EUR%2CJPY"
        );
    }
}
