//! A scripted OpenAI-compatible chat-completions server on loopback, for tests and the benchmark.
//!
//! Each request is matched to a script by a token that appears in its latest user message;
//! the n-th request carrying that token gets the script's n-th reply (the last one repeats).
//! Without a matching script the model echoes: `echo: <user message>`. Streaming follows the
//! request's `stream` flag. Every request body is recorded so tests can assert what the agent
//! sent back (e.g. that a tool result reached the next request).
//!
//! A summary request (its system message is `spec/compact_prompt.md`) is answered by a
//! summariser that keeps every `FACT-…` word it was shown, as a model keeping key facts would.
//! With [`MockModel::count_tokens`] the usage reported is the request's size in tokens of four
//! bytes, not a fixed number. The same answers are given in Ollama's native format on
//! `/api/chat` (NDJSON stream), with `/api/show` and `/api/tags` beside it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A plain assistant answer.
    Text(String),
    /// Tool calls `(name, arguments JSON text)`, optionally after some text.
    ToolCalls(String, Vec<(String, String)>),
    /// An HTTP error status, with an optional `Retry-After` in seconds.
    Status(u16, Option<u64>),
    /// An HTTP error status with this exact `Retry-After` value.
    StatusRetryAfter(u16, String),
    /// Wait this long, then give the inner reply.
    Delayed(Duration, Box<Reply>),
    /// Stream this text, then break the connection without finishing.
    BrokenStream(String),
    /// A stream whose chunk is not JSON.
    Garbage,
    /// A call of tool `name` (arguments `{}`), or `text` when the request ends with a tool
    /// result: one script gives every session a turn with one tool call.
    ToolThenText { name: String, text: String },
    /// `count` text deltas of `delta` each, then a call of tool `name` with `arguments`.
    ChattyTool {
        count: usize,
        delta: String,
        name: String,
        arguments: String,
    },
}

impl Reply {
    pub fn text(text: &str) -> Self {
        Reply::Text(text.to_string())
    }

    pub fn tool(name: &str, arguments: Value) -> Self {
        Reply::ToolCalls(
            String::new(),
            vec![(name.to_string(), arguments.to_string())],
        )
    }

    pub fn raw_tool(name: &str, arguments: &str) -> Self {
        Reply::ToolCalls(
            String::new(),
            vec![(name.to_string(), arguments.to_string())],
        )
    }

    pub fn delayed(ms: u64, inner: Reply) -> Self {
        Reply::Delayed(Duration::from_millis(ms), Box::new(inner))
    }
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, Vec<Reply>>,
    calls: HashMap<String, usize>,
    requests: Vec<Value>,
    served: usize,
    record: bool,
    count_tokens: bool,
    /// The context length `/api/show` reports.
    ollama_context_length: u64,
    /// How long the summariser takes to answer.
    summary_delay: Duration,
}

#[derive(Clone)]
pub struct MockModel {
    pub url: String,
    state: Arc<Mutex<State>>,
    server: actix_web::dev::ServerHandle,
}

impl MockModel {
    /// Starts the mock on a random loopback port (in its own thread) and returns its `/v1` URL.
    pub fn start() -> Self {
        Self::start_with(1, true)
    }

    /// `record = false` keeps no request bodies (for long benchmark runs).
    pub fn start_with(workers: usize, record: bool) -> Self {
        let state = Arc::new(Mutex::new(State {
            record,
            ollama_context_length: 8192,
            ..State::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let data = web::Data::new(server_state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                        .route("/v1/chat/completions", web::post().to(completions))
                        .route("/api/chat", web::post().to(ollama_chat))
                        .route("/api/show", web::post().to(ollama_show))
                        .route(
                            "/api/tags",
                            web::get().to(|| async {
                                HttpResponse::Ok().json(serde_json::json!({
                                    "models": [{"name": "mock-model", "model": "mock-model"}],
                                }))
                            }),
                        )
                        .route(
                            "/v1/models",
                            web::get().to(|| async {
                                HttpResponse::Ok().json(serde_json::json!({
                                    "object": "list",
                                    "data": [{"id": "mock-model", "object": "model"}],
                                }))
                            }),
                        )
                })
                .workers(workers)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            })
        });
        let server = rx.recv().unwrap();
        MockModel {
            url: format!("http://127.0.0.1:{port}/v1"),
            state,
            server,
        }
    }

    /// Requests whose latest user message contains `token` get `replies` in order.
    pub fn script(&self, token: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(token.to_string(), replies);
    }

    /// Every request body received so far whose latest user message contains `token`.
    pub fn requests_for(&self, token: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| latest_user_message(r).contains(token))
            .cloned()
            .collect()
    }

    /// Report usage as the request's size (four bytes a token) instead of a fixed number.
    pub fn count_tokens(&self) {
        self.state.lock().unwrap().count_tokens = true;
    }

    /// The context length `/api/show` reports for every model.
    pub fn set_ollama_context_length(&self, tokens: u64) {
        self.state.lock().unwrap().ollama_context_length = tokens;
    }

    /// The summariser waits this long before it answers.
    pub fn delay_summaries(&self, delay: Duration) {
        self.state.lock().unwrap().summary_delay = delay;
    }

    /// Every summary request received so far.
    pub fn summary_requests(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| is_summary_request(r))
            .cloned()
            .collect()
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits (up to 10 s) until a request whose latest user message contains `token` came
    /// in: the turn that sends it has reached the model. Other requests (the server's probe
    /// of the endpoint at start) do not count.
    pub async fn wait_for(&self, token: &str) {
        let started = std::time::Instant::now();
        while self.requests_for(token).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no request with {token} reached the model"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().served
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

/// The text of the last `user` message of a request.
pub fn latest_user_message(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user" && m["content"].is_string())
        })
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn completions(state: web::Data<Arc<Mutex<State>>>, body: Bytes) -> HttpResponse {
    let recording = state.lock().unwrap().record;
    if !recording {
        return respond_quickly(&state, &body).await;
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return HttpResponse::BadRequest().json(json!({"error": {"message": e.to_string()}}))
        }
    };
    let stream = request["stream"].as_bool().unwrap_or(false);
    let (reply, usage) = choose(&state, request, body.len());
    respond(reply, stream, usage).await
}

/// Whether a request asks for a summary of the conversation (compaction).
pub fn is_summary_request(request: &Value) -> bool {
    request["messages"][0]["content"]
        .as_str()
        .is_some_and(|text| text.starts_with("# Summarising a long conversation"))
}

/// The reply to a recorded request (and the usage to report), by script, summariser or echo.
fn choose(state: &Mutex<State>, request: Value, body_len: usize) -> (Reply, Value) {
    let user = latest_user_message(&request);
    let after_tool = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "tool");
    let summary = is_summary_request(&request);
    let mut state = state.lock().unwrap();
    let reply = if summary {
        let mut facts: Vec<&str> = user
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("FACT-"))
            .collect();
        facts.dedup();
        let summary = Reply::Text(format!(
            "Summary of the work so far. Facts to keep: {}",
            facts.join(" ")
        ));
        match state.summary_delay {
            delay if delay.is_zero() => summary,
            delay => Reply::Delayed(delay, Box::new(summary)),
        }
    } else {
        let found = state
            .scripts
            .iter()
            .find(|(token, _)| user.contains(token.as_str()))
            .map(|(token, replies)| (token.clone(), replies.clone()));
        match found {
            Some((token, replies)) => {
                let n = state.calls.entry(token).or_insert(0);
                let reply = replies[(*n).min(replies.len() - 1)].clone();
                *n += 1;
                reply
            }
            None => Reply::Text(format!("echo: {user}")),
        }
    };
    state.served += 1;
    let usage = if state.count_tokens {
        let prompt = body_len / 4;
        json!({"prompt_tokens": prompt, "completion_tokens": 10, "total_tokens": prompt + 10})
    } else {
        usage()
    };
    if state.record {
        state.requests.push(request);
    }
    (resolve(reply, after_tool), usage)
}

/// Picks the branch of a reply that depends on the request.
fn resolve(reply: Reply, after_tool: bool) -> Reply {
    match reply {
        Reply::ToolThenText { text, .. } if after_tool => Reply::Text(text),
        Reply::ToolThenText { name, .. } => {
            Reply::ToolCalls(String::new(), vec![(name, "{}".into())])
        }
        other => other,
    }
}

/// The benchmark's path: no request is kept, so none is parsed either (the load generator
/// shares the machine with the server); scripts match anywhere in the body.
async fn respond_quickly(state: &Mutex<State>, body: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(body);
    let stream = text.contains("\"stream\":true");
    let reply = {
        let mut state = state.lock().unwrap();
        state.served += 1;
        state
            .scripts
            .iter()
            .find(|(token, _)| text.contains(token.as_str()))
            .map_or_else(|| Reply::text("echo"), |(_, replies)| replies[0].clone())
    };
    let after_tool = text.rfind("\"role\":\"tool\"") > text.rfind("\"role\":\"user\"");
    respond(resolve(reply, after_tool), stream, usage()).await
}

async fn respond(reply: Reply, stream: bool, usage: Value) -> HttpResponse {
    let mut reply = reply;
    while let Reply::Delayed(wait, inner) = reply {
        tokio::time::sleep(wait).await;
        reply = *inner;
    }
    match reply {
        Reply::Status(code, retry_after) => {
            let mut response =
                HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap());
            if let Some(secs) = retry_after {
                response.insert_header(("Retry-After", secs.to_string()));
            }
            response.json(json!({"error": {"message": format!("mock failure {code}")}}))
        }
        Reply::StatusRetryAfter(code, value) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .insert_header(("Retry-After", value))
                .json(json!({"error": {"message": format!("mock failure {code}")}}))
        }
        Reply::Garbage => sse_response(vec![Ok(Bytes::from_static(b"data: {not json\n\n"))]),
        Reply::BrokenStream(text) => {
            // The first chunk goes out, then the connection breaks a moment later.
            let first = chunk(json!({"content": text}), None);
            let body = futures_util::stream::unfold(0, move |step| {
                let first = first.clone();
                async move {
                    match step {
                        0 => Some((Ok(first), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((Err(std::io::Error::other("connection dropped")), 2))
                        }
                        _ => None,
                    }
                }
            });
            HttpResponse::Ok().content_type("text/event-stream").streaming(body)
        }
        Reply::Text(text) if !stream => HttpResponse::Ok().json(json!({
            "id": "cmpl-mock", "object": "chat.completion", "model": "mock-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        })),
        Reply::ToolCalls(text, calls) if !stream => {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| json!({"id": format!("call_{i}_{}", uuid::Uuid::new_v4().simple()), "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
            HttpResponse::Ok().json(json!({
                "id": "cmpl-mock", "object": "chat.completion", "model": "mock-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }, "tool_calls": calls}, "finish_reason": "tool_calls"}],
                "usage": usage,
            }))
        }
        Reply::Text(text) => {
            let mut chunks = Vec::new();
            let mid = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
            for part in [&text[..mid], &text[mid..]] {
                if !part.is_empty() {
                    chunks.push(Ok(chunk(json!({"content": part}), None)));
                }
            }
            chunks.push(Ok(chunk(json!({}), Some("stop"))));
            chunks.extend(tail_chunks(&usage));
            sse_response(chunks)
        }
        Reply::ChattyTool {
            count,
            delta,
            name,
            arguments,
        } if !stream => HttpResponse::Ok().json(json!({
            "id": "cmpl-mock", "object": "chat.completion", "model": "mock-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": delta.repeat(count), "tool_calls": [{"id": format!("call_0_{}", uuid::Uuid::new_v4().simple()), "type": "function", "function": {"name": name, "arguments": arguments}}]}, "finish_reason": "tool_calls"}],
            "usage": usage,
        })),
        Reply::ChattyTool {
            count,
            delta,
            name,
            arguments,
        } => {
            let mut chunks: Vec<Result<Bytes, std::io::Error>> = (0..count)
                .map(|_| Ok(chunk(json!({"content": &delta}), None)))
                .collect();
            let id = format!("call_0_{}", uuid::Uuid::new_v4().simple());
            chunks.push(Ok(chunk(json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": arguments}}]}), None)));
            chunks.push(Ok(chunk(json!({}), Some("tool_calls"))));
            chunks.extend(tail_chunks(&usage));
            sse_response(chunks)
        }
        Reply::ToolCalls(text, calls) => {
            let mut chunks = Vec::new();
            if !text.is_empty() {
                chunks.push(Ok(chunk(json!({"content": text}), None)));
            }
            for (i, (name, args)) in calls.iter().enumerate() {
                let id = format!("call_{i}_{}", uuid::Uuid::new_v4().simple());
                let mid = args.char_indices().nth(args.chars().count() / 2).map_or(0, |(i, _)| i);
                chunks.push(Ok(chunk(json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": &args[..mid]}}]}), None)));
                chunks.push(Ok(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": &args[mid..]}}]}), None)));
            }
            chunks.push(Ok(chunk(json!({}), Some("tool_calls"))));
            chunks.extend(tail_chunks(&usage));
            sse_response(chunks)
        }
        Reply::Delayed(..) => unreachable!("delays are unwrapped above"),
        Reply::ToolThenText { .. } => unreachable!("resolved against the request first"),
    }
}

fn usage() -> Value {
    json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
}

fn chunk(delta: Value, finish: Option<&str>) -> Bytes {
    let body = json!({"id": "cmpl-mock", "object": "chat.completion.chunk", "model": "mock-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    Bytes::from(format!("data: {body}\n\n"))
}

fn tail_chunks(usage: &Value) -> Vec<Result<Bytes, std::io::Error>> {
    let usage = json!({"id": "cmpl-mock", "object": "chat.completion.chunk", "choices": [], "usage": usage});
    vec![
        Ok(Bytes::from(format!("data: {usage}\n\n"))),
        Ok(Bytes::from_static(b"data: [DONE]\n\n")),
    ]
}

fn sse_response(chunks: Vec<Result<Bytes, std::io::Error>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(futures_util::stream::iter(chunks))
}

/// Ollama's `/api/chat`: the same replies as NDJSON lines (or one object), whole tool calls
/// with arguments as objects, the token counts on the last line.
async fn ollama_chat(state: web::Data<Arc<Mutex<State>>>, body: Bytes) -> HttpResponse {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return HttpResponse::BadRequest().json(json!({"error": e.to_string()})),
    };
    let stream = request["stream"].as_bool().unwrap_or(true);
    let (mut reply, usage) = choose(&state, request, body.len());
    while let Reply::Delayed(wait, inner) = reply {
        tokio::time::sleep(wait).await;
        reply = *inner;
    }
    let message = |content: &str, calls: Vec<Value>| {
        let mut message = json!({"role": "assistant", "content": content});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        message
    };
    let (text, calls) = match reply {
        Reply::Text(text) => (text, Vec::new()),
        Reply::ToolCalls(text, calls) => (
            text,
            calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    json!({"function": {"index": i, "name": name,
                        "arguments": serde_json::from_str::<Value>(&args).unwrap_or(json!({}))}})
                })
                .collect(),
        ),
        Reply::Status(code, _) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .json(json!({"error": format!("mock failure {code}")}))
        }
        other => panic!("the Ollama mock does not give {other:?}"),
    };
    let last = json!({"model": "mock-model", "message": message("", Vec::new()), "done": true,
        "done_reason": "stop", "prompt_eval_count": usage["prompt_tokens"], "eval_count": usage["completion_tokens"]});
    if !stream {
        let mut whole = last;
        whole["message"] = message(&text, calls);
        return HttpResponse::Ok().json(whole);
    }
    let mut lines = Vec::new();
    let mid = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    for part in [&text[..mid], &text[mid..]] {
        if !part.is_empty() {
            lines.push(
                json!({"model": "mock-model", "message": message(part, Vec::new()), "done": false}),
            );
        }
    }
    if !calls.is_empty() {
        lines.push(json!({"model": "mock-model", "message": message("", calls), "done": false}));
    }
    lines.push(last);
    let body: Vec<Result<Bytes, std::io::Error>> = lines
        .into_iter()
        .map(|line| Ok(Bytes::from(format!("{line}\n"))))
        .collect();
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(futures_util::stream::iter(body))
}

/// Ollama's `/api/show`: the architecture and its context length.
async fn ollama_show(state: web::Data<Arc<Mutex<State>>>, body: Bytes) -> HttpResponse {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let length = state.lock().unwrap().ollama_context_length;
    if request["model"].as_str().is_none() {
        return HttpResponse::BadRequest().json(json!({"error": "model is required"}));
    }
    HttpResponse::Ok().json(json!({
        "details": {"family": "mock"},
        "model_info": {"general.architecture": "mock", "mock.context_length": length},
        "capabilities": ["completion", "tools"],
    }))
}
