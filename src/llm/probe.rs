//! The model endpoint tried the way a turn will use it: is it reachable, does it list the
//! configured model, does a one-step completion with a tool manifest work? `okcvm check`
//! prints the report and `okcvm serve` logs it at start; each problem says what to do.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::{describe_reqwest, Endpoint};
use crate::config::context::Provider;

/// Bytes of an answer the probe reads.
const MAX_PROBE_BODY: usize = 4 * 1024 * 1024;
/// How long each request of the probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the probe found: `ok` when a completion with tools worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// Whether the endpoint is Ollama (or on its port), for the advice.
fn looks_like_ollama(endpoint: &Endpoint) -> bool {
    endpoint.provider == Provider::Ollama || endpoint.base_url.contains(":11434")
}

/// Tries `endpoint`, each request within [`PROBE_TIMEOUT`].
pub async fn probe(endpoint: &Endpoint) -> ProbeReport {
    let mut lines = Vec::new();
    let http = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(http) => http,
        Err(e) => {
            return ProbeReport {
                ok: false,
                lines: vec![format!("cannot build an HTTP client: {e}")],
            }
        }
    };
    let native = endpoint.provider == Provider::Ollama;
    let base = if native {
        super::ollama::api_root(&endpoint.base_url)
    } else {
        endpoint.base_url.trim_end_matches('/')
    };
    let model = &endpoint.model;
    let ollama = looks_like_ollama(endpoint);
    let (list_path, chat_path) = if native {
        ("/api/tags", "/api/chat")
    } else {
        ("/models", "/chat/completions")
    };
    let authorised = |builder: reqwest::RequestBuilder| match &endpoint.api_key {
        Some(key) => builder.bearer_auth(key.expose()),
        None => builder,
    };
    match authorised(http.get(format!("{base}{list_path}")))
        .send()
        .await
    {
        Err(error) => {
            let advice = if ollama {
                "Is Ollama running (`ollama serve`)? Or set [llm] base_url to your endpoint"
            } else {
                "Is the model server running? Or set [llm] base_url"
            };
            return ProbeReport {
                ok: false,
                lines: vec![format!(
                    "cannot reach {base}: {}. {advice}",
                    describe_reqwest(&error)
                )],
            };
        }
        Ok(response) if matches!(response.status().as_u16(), 401 | 403) => {
            return ProbeReport {
                ok: false,
                lines: vec![format!(
                    "{base} refused the API key ({}): set the environment variable [llm] \
                     api_key_env names",
                    response.status()
                )],
            };
        }
        Ok(response) if response.status().is_success() => {
            let listed = json_of(response).await.map(|body| model_ids(&body));
            match listed {
                Some(ids) if ids.iter().any(|id| id == model) => {
                    lines.push(format!("reachable at {base}; it lists {model}"));
                }
                Some(ids) => {
                    let pull = if ollama {
                        format!("`ollama pull {model}`, or ")
                    } else {
                        String::new()
                    };
                    let shown: Vec<&str> = ids.iter().take(8).map(String::as_str).collect();
                    lines.push(format!(
                        "reachable at {base}, but it does not list {model} (it has: {}). Run \
                         {pull}set [llm] model to one it has",
                        if shown.is_empty() {
                            "none".to_string()
                        } else {
                            shown.join(", ")
                        }
                    ));
                }
                None => lines.push(format!(
                    "reachable at {base} (its model list is unreadable)"
                )),
            }
        }
        Ok(response) => lines.push(format!(
            "reachable at {base} (GET {list_path} answered {})",
            response.status()
        )),
    }
    let mut request = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Reply with the word OK."}],
        "tools": [{"type": "function", "function": {
            "name": "noop",
            "description": "Does nothing.",
            "parameters": {"type": "object", "properties": {}},
        }}],
        "max_tokens": 16,
        "stream": false,
    });
    if native {
        request["options"] = json!({"num_predict": 16});
    }
    let answer = authorised(http.post(format!("{base}{chat_path}")))
        .json(&request)
        .send()
        .await;
    let ok = match answer {
        Err(error) => {
            lines.push(format!(
                "a completion with tools failed: {}",
                describe_reqwest(&error)
            ));
            false
        }
        Ok(response) if response.status().is_success() => {
            let body = json_of(response).await;
            let answered = |b: &Value| b["choices"].is_array() || b["message"].is_object();
            if body.as_ref().is_some_and(answered) {
                lines.push("a one-step completion with a tool manifest works".into());
                true
            } else {
                lines.push(
                    "a completion with tools answered something that is not a chat completion"
                        .into(),
                );
                false
            }
        }
        Ok(response) => {
            let status = response.status();
            let text = crate::capped_body::read(response, MAX_PROBE_BODY)
                .await
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .chars()
                        .take(300)
                        .collect::<String>()
                })
                .unwrap_or_default();
            let advice = if text.to_lowercase().contains("tool") {
                " (the model may not support tool calls: the agent needs one that does)"
            } else if status.as_u16() == 404 {
                " (check [llm] model and [llm] base_url)"
            } else {
                ""
            };
            lines.push(format!(
                "a completion with tools answered {status}: {text}{advice}"
            ));
            false
        }
    };
    ProbeReport { ok, lines }
}

async fn json_of(response: reqwest::Response) -> Option<Value> {
    let bytes = crate::capped_body::read(response, MAX_PROBE_BODY)
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The model ids of an OpenAI `/models` answer (`{"data": [{"id"}]}`) or of Ollama's
/// `/api/tags` (`{"models": [{"name"}]}`).
fn model_ids(body: &Value) -> Vec<String> {
    let (list, field) = match body["data"].as_array() {
        Some(list) => (list, "id"),
        None => match body["models"].as_array() {
            Some(list) => (list, "name"),
            None => return Vec::new(),
        },
    };
    list.iter()
        .filter_map(|m| m[field].as_str().map(str::to_string))
        .collect()
}
