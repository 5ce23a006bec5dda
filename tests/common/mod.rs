//! Test harness: the real server on a random loopback port (in its own actix system thread),
//! a scripted mock model, and small HTTP/SSE helpers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod limited;
pub mod mock_apis;
pub mod mock_model;
pub mod server_process;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use okcvm::config::Config;
use serde_json::{json, Value};

#[allow(unused_imports)]
pub use mock_model::{MockModel, Reply};

pub struct TestApp {
    pub url: String,
    pub model: MockModel,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub config: Config,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One SSE frame: its `id:` and its JSON `data:`.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: Option<u64>,
    pub data: Value,
}

impl TestApp {
    pub fn spawn() -> Self {
        Self::spawn_with(|_| {})
    }

    /// Starts a mock model and the server with a test config adjusted by `tune`.
    pub fn spawn_with(tune: impl FnOnce(&mut Config)) -> Self {
        let model = MockModel::start();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path(), &model.url);
        config.sandbox.allow_unsandboxed = true;
        tune(&mut config);
        Self::spawn_on(config, model, dir)
    }

    pub fn spawn_on(config: Config, model: MockModel, dir: tempfile::TempDir) -> Self {
        Self::spawn_tuned(config, model, dir, |_| {})
    }

    /// Starts the server with its shared services adjusted by `tune_services` (e.g. a tool
    /// registry with a tool that misbehaves on purpose).
    pub fn spawn_with_services(
        tune: impl FnOnce(&mut Config),
        tune_services: impl FnOnce(&mut okcvm::runtime::Services) + Send + 'static,
    ) -> Self {
        let model = MockModel::start();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path(), &model.url);
        config.sandbox.allow_unsandboxed = true;
        tune(&mut config);
        Self::spawn_tuned(config, model, dir, tune_services)
    }

    fn spawn_tuned(
        config: Config,
        model: MockModel,
        dir: tempfile::TempDir,
        tune_services: impl FnOnce(&mut okcvm::runtime::Services) + Send + 'static,
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("OKCVM_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let server_config = config.clone();
        let thread = std::thread::spawn(move || {
            let config = server_config;
            actix_rt::System::new().block_on(async move {
                let shutdown = async move {
                    let _ = shutdown_rx.await;
                };
                let mut services = okcvm::services_for(config, &listener).unwrap();
                tune_services(&mut services);
                if let Err(e) =
                    okcvm::serve(std::sync::Arc::new(services), listener, shutdown).await
                {
                    panic!("server failed: {e}");
                }
            })
        });
        TestApp {
            url,
            model,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            config,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// Stops the server and starts a new one on the same data directory and model.
    pub fn restart(mut self) -> Self {
        self.stop_server();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::spawn_on(self.config.clone(), self.model.clone(), dir)
    }

    fn stop_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn workspace_root(&self) -> PathBuf {
        self.dir.path().join("data/workspaces")
    }

    /// The host directory of a client's default conversation.
    pub fn workspace_of(&self, client: &str) -> PathBuf {
        self.workspace_root()
            .join(format!("c-{client}"))
            .join("s-default")
    }

    pub fn api(&self, path: &str, client: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}client_id={client}", self.url)
    }

    /// Waits until the turn in `conversation` of `client` waits for an approval; its
    /// `approval_required` event (from `GET /api/session/info`).
    pub async fn pending_approval(&self, client: &str, conversation: &str) -> Value {
        for _ in 0..200 {
            let path = format!("/api/session/info?conversation_id={conversation}");
            let (_, info) = self.get(&path, client).await;
            if let Some(first) = info["pending_approvals"].as_array().and_then(|a| a.first()) {
                return first.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no approval became pending in {conversation}");
    }

    /// Every kept event of the session's last turn (`GET /api/chat/events?after=0`).
    pub async fn replay(&self, client: &str) -> Vec<Frame> {
        let body = self
            .http
            .get(self.api("/api/chat/events?after=0", client))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        parse_sse(&body)
    }

    /// Non-streamed chat: the status and JSON body.
    pub async fn chat_json(&self, client: &str, message: &str) -> (u16, Value) {
        self.post_json(
            "/api/chat",
            client,
            json!({"message": message, "stream": false}),
        )
        .await
    }

    /// Streamed chat: every frame until the stream ends.
    pub async fn chat_sse(&self, client: &str, message: &str) -> Vec<Frame> {
        let response = self
            .http
            .post(self.api("/api/chat", client))
            .header("accept", "text/event-stream")
            .json(&json!({"message": message}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "chat failed: {:?}",
            response.text().await
        );
        parse_sse(&response.text().await.unwrap())
    }

    pub async fn post_json(&self, path: &str, client: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.api(path, client))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str, client: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(self.api(path, client))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts a non-streamed turn at `path` (e.g. `/api/chat?conversation_id=x`) and returns
    /// at once; the task answers with the turn's status.
    pub fn turn_in_background(
        &self,
        path: &str,
        client: &str,
        message: &str,
    ) -> tokio::task::JoinHandle<u16> {
        let http = self.http.clone();
        let url = self.api(path, client);
        let body = json!({"message": message, "stream": false});
        tokio::spawn(async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }

    /// The owners of the sessions running a turn now, as `/api/sessions` lists them.
    pub async fn busy_owners(&self) -> Vec<String> {
        let (_, stats) = self.get("/api/sessions", "admin").await;
        stats["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "busy")
            .map(|s| s["owner"].as_str().unwrap().to_string())
            .collect()
    }

    /// The text of `path` (no identity added: `/metrics`, pages), asserting it answered 200.
    pub async fn text_of(&self, path: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    pub async fn get(&self, path: &str, client: &str) -> (u16, Value) {
        let response = self.http.get(self.api(path, client)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// A multipart body with one `files` part per `(name, bytes)`.
pub fn upload_form(files: &[(&str, Vec<u8>)]) -> reqwest::multipart::Form {
    files
        .iter()
        .fold(reqwest::multipart::Form::new(), |form, (name, bytes)| {
            form.part(
                "files",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            )
        })
}

pub fn parse_sse(body: &str) -> Vec<Frame> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            (!data.is_empty()).then(|| Frame {
                id,
                data: serde_json::from_str(&data).unwrap(),
            })
        })
        .collect()
}

/// The string `field` of each object in the JSON array `items` (objects without it are
/// skipped), e.g. the ids of a list or the contents of a request's messages.
pub fn strings<'a>(items: &'a Value, field: &str) -> Vec<&'a str> {
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item[field].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The `type` of each frame, in order.
pub fn types(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f.data["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The `tool` messages of a recorded model request.
/// The status of a GET sent byte for byte (HTTP clients normalise `..` and `%2e%2e` away).
pub async fn raw_get_status(base_url: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let head = String::from_utf8_lossy(&response);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

pub fn tool_messages(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

/// A bare HTTP server on loopback for misbehaving third-party APIs: each connection is handed
/// to `serve` on a thread of its own. Returns `http://127.0.0.1:<port>`.
pub fn raw_http_server(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let serve = std::sync::Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    origin
}

/// The head of the request read from `stream` (what one read gives, up to 64 KiB).
pub fn read_request_head(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut buffer = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buffer).unwrap_or(0);
    let text = String::from_utf8_lossy(&buffer[..n]).to_string();
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
}
