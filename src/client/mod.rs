//! `okcvm chat`: a terminal client of a running OKCVM server, over its public HTTP API only
//! (so it works against a remote server): one-shot (`-p`), JSON lines for scripts (`--json`),
//! or an interactive session with slash commands (`interactive.rs`). This file holds the API
//! calls; `turn.rs` follows one turn's event stream and shows it.

// A terminal client: writing to stdout and stderr is what it is for.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod interactive;
mod turn;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use turn::Outcome;

/// How the client reaches and identifies to the server.
pub struct ChatOptions {
    pub server: String,
    /// The environment variable holding the token; else `OKCVM_TOKEN`, else the token file.
    pub token_env: Option<String>,
    pub client_id: String,
    pub conversation: Conversation,
    /// `-p`: this message once, then exit.
    pub prompt: Option<String>,
    /// Every event as a JSON line on stdout.
    pub json: bool,
}

/// Which conversation to talk in.
pub enum Conversation {
    Named(String),
    /// The owner's most recently active one.
    Continue,
    New,
}

/// An API failure, said plainly.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Local(String),
}

/// The API of one server, as one client.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    client_id: String,
    pub conversation: String,
}

impl Api {
    pub fn new(base: &str, token: Option<String>, client_id: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Local(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            client_id: client_id.to_string(),
            conversation: new_conversation_id(),
        })
    }

    /// A request to `path` in the current conversation, identified.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{path}{sep}conversation_id={}",
            self.base, self.conversation
        );
        let request = self
            .http
            .request(method, url)
            .header("x-okc-client-id", &self.client_id);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(self.base.clone(), e.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let detail = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|b| b["detail"].as_str().map(str::to_string))
            .unwrap_or_default();
        Err(ClientError::Refused(format!(
            "the server answered {status}: {detail}"
        )))
    }

    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Refused(format!("the answer is not JSON: {e}")))
    }

    /// Starts a turn; the response is its event stream.
    pub async fn chat(&self, message: &str) -> Result<reqwest::Response, ClientError> {
        let request = self
            .request(reqwest::Method::POST, "/api/chat")
            .header("accept", "text/event-stream")
            .json(&serde_json::json!({"message": message, "stream": true}));
        self.send(request).await
    }

    pub async fn stop(&self) -> Result<(), ClientError> {
        self.json(
            reqwest::Method::POST,
            "/api/chat/stop",
            Some(serde_json::json!({})),
        )
        .await
        .map(|_| ())
    }

    pub async fn approve(
        &self,
        approval_id: &str,
        decision: &str,
        remember: &str,
    ) -> Result<(), ClientError> {
        let body = serde_json::json!({"approval_id": approval_id, "decision": decision, "remember": remember});
        self.json(reqwest::Method::POST, "/api/chat/approve", Some(body))
            .await
            .map(|_| ())
    }

    /// The owner's conversations, newest first: `(id, title)`.
    pub async fn conversations(&self) -> Result<Vec<(String, String)>, ClientError> {
        let body = self
            .json(
                reqwest::Method::GET,
                "/api/conversations?summary=true",
                None,
            )
            .await?;
        Ok(body["conversations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c["id"].as_str()?.to_string(),
                    c["title"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect())
    }

    pub async fn download(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let encoded: String = url_encode(path);
        let request = self.request(
            reqwest::Method::GET,
            &format!("/api/session/workspace/file?path={encoded}"),
        );
        let response = self.send(request).await?;
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError::Refused(e.to_string()))
    }

    pub async fn upload(&self, file: &Path) -> Result<Value, ClientError> {
        let bytes = std::fs::read(file)
            .map_err(|e| ClientError::Local(format!("cannot read {}: {e}", file.display())))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload".into());
        let form = reqwest::multipart::Form::new().part(
            "files",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        let request = self
            .request(reqwest::Method::POST, "/api/session/files")
            .multipart(form);
        self.send(request)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Refused(e.to_string()))
    }
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn new_conversation_id() -> String {
    format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The token: from `token_env`, else `OKCVM_TOKEN`, else `~/.config/okcvm/token` when only
/// its owner can read it. Never from the command line.
fn token(token_env: Option<&str>) -> Result<Option<String>, ClientError> {
    if let Some(name) = token_env {
        return std::env::var(name)
            .map(Some)
            .map_err(|_| ClientError::Local(format!("the variable {name} is not set")));
    }
    if let Ok(token) = std::env::var("OKCVM_TOKEN") {
        return Ok(Some(token));
    }
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(None);
    };
    let file = PathBuf::from(home).join(".config/okcvm/token");
    let Ok(metadata) = std::fs::metadata(&file) else {
        return Ok(None);
    };
    use std::os::unix::fs::PermissionsExt as _;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(ClientError::Local(format!(
            "{} is readable by others; chmod 600 it",
            file.display()
        )));
    }
    std::fs::read_to_string(&file)
        .map(|t| Some(t.trim().to_string()))
        .map_err(|e| ClientError::Local(format!("cannot read {}: {e}", file.display())))
}

/// Runs `okcvm chat`; the process exit status.
pub async fn run(options: ChatOptions) -> i32 {
    match run_inner(options).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("okcvm chat: {error}");
            2
        }
    }
}

async fn run_inner(options: ChatOptions) -> Result<i32, ClientError> {
    let token = token(options.token_env.as_deref())?;
    let mut api = Api::new(&options.server, token, &options.client_id)?;
    match &options.conversation {
        Conversation::Named(id) => api.conversation = id.clone(),
        Conversation::New => {}
        Conversation::Continue => match api.conversations().await?.first() {
            Some((id, _)) => api.conversation = id.clone(),
            None => {
                return Err(ClientError::Local(
                    "there is no conversation to continue".into(),
                ))
            }
        },
    }
    let piped = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| ClientError::Local(format!("cannot read stdin: {e}")))?;
        Some(text)
    };
    let message = match (options.prompt, piped) {
        (Some(prompt), Some(input)) if !input.trim().is_empty() => {
            Some(format!("{prompt}\n\n{input}"))
        }
        (Some(prompt), _) => Some(prompt),
        (None, Some(input)) => Some(input),
        (None, None) => None,
    };
    match message {
        Some(message) => {
            let view = turn::View::for_output(options.json);
            let outcome = turn::run(&api, &message, &view, &mut Vec::new()).await?;
            Ok(outcome.exit_code())
        }
        None => interactive::run(api).await,
    }
}
