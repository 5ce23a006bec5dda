//! `/api/config`: endpoints change at runtime, keys never come back, a restart keeps them;
//! `okcvm check` reports what each tool family can do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use serde_json::{json, Value};

async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/api/config", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(!text.contains("sk-secret"), "a key came back: {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn endpoints_update_at_runtime_without_ever_returning_keys() {
    let app = TestApp::spawn();
    let (_, initial) = app.get("/api/config", "x").await;
    assert_eq!(initial["chat"]["model"], "mock-model");
    assert_eq!(initial["chat"]["api_key_present"], false);
    assert_eq!(initial["image"], Value::Null);

    let (status, view) = post(
        &app,
        json!({"chat": {"model": "other-model", "api_key": "sk-secret"}}),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["chat"]["model"], "other-model");
    assert_eq!(view["chat"]["api_key_present"], true);
    assert!(view["chat"].get("api_key").is_none());
    app.chat_json("cfg", "which model?").await;
    let request = &app.model.requests_for("which model?")[0];
    assert_eq!(request["model"], "other-model");

    // Omitted key: kept. Empty key: cleared.
    let (_, view) = post(&app, json!({"chat": {"supports_streaming": false}})).await;
    assert_eq!(view["chat"]["api_key_present"], true);
    assert_eq!(view["chat"]["supports_streaming"], false);
    let (_, view) = post(&app, json!({"chat": {"api_key": ""}})).await;
    assert_eq!(view["chat"]["api_key_present"], false);

    let (status, view) = post(&app, json!({"image": {"model": "img-1", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-secret"}})).await;
    assert_eq!(status, 200);
    assert_eq!(view["image"]["api_key_present"], true);

    for bad in [
        json!({"chat": {"base_url": "ftp://x"}}),
        json!({"chat": {"model": ""}}),
        json!({"video": {"model": "x"}}),
        json!({"chat": {"model": 5}}),
        json!({"chat": {"colour": "red"}}),
        json!({"chat": {"base_url": " http://x"}}),
        json!([1]),
    ] {
        let (status, body) = post(&app, bad.clone()).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(body["detail"].is_string());
    }
    // A section that is not set up yet needs its model and its address.
    let (status, body) = post(&app, json!({"speech": {"model": "tts"}})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("base_url"),
        "{body}"
    );

    let app = app.restart();
    let (_, view) = app.get("/api/config", "x").await;
    assert_eq!(view["chat"]["model"], "other-model");
    assert_eq!(view["image"]["model"], "img-1");
    assert_eq!(view["image"]["api_key_present"], true);
    let (_, view) = post(&app, json!({"image": null, "chat": null})).await;
    assert_eq!(view["image"], Value::Null);
    assert_eq!(view["chat"]["model"], "mock-model");
}

/// `okcvm check --config <config>` with `env` set.
fn okcvm_check(config: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_okcvm"))
        .args(["check", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn check_reports_what_each_tool_family_can_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("okcvm.toml");
    std::fs::write(
        &config,
        "[browser]\nexecutable = \"/nonexistent/chromium\"\n\n[search]\nprovider = \"searxng\"\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let output = okcvm_check(&config, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("configuration OK\n"), "{stdout}");
    assert!(
        stdout.contains("browser: unavailable: /nonexistent/chromium not found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("search: searxng at http://127.0.0.1:9"),
        "{stdout}"
    );
    assert!(stdout.contains("media: image not set"), "{stdout}");
    assert!(
        stdout.contains("data sources: 5 sources: world_bank"),
        "{stdout}"
    );
    assert!(stdout.contains("shell and python: "), "{stdout}");
    assert!(
        stdout.contains("auth: mode none (every client trusted), loopback bind on 127.0.0.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stored API keys: stored in plain text: set OKCVM_SECRET_KEY"),
        "{stdout}"
    );
    // With tokens: how many users, and that keys are sealed once a secret key is set.
    std::fs::write(
        &config,
        "[auth]\nmode = \"token\"\nusers_file = \"users.toml\"\n",
    )
    .unwrap();
    okcvm::auth::users::add(
        &dir.path().join("users.toml"),
        "ann",
        okcvm::auth::Role::User,
    )
    .unwrap();
    let output = okcvm_check(&config, &[("OKCVM_SECRET_KEY", "a long random secret")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("auth: mode token, 1 user(s) in "),
        "{stdout}"
    );
    assert!(stdout.contains("stored API keys: encrypted"), "{stdout}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[search]\nprovider = \"altavista\"\n").unwrap();
    let output = okcvm_check(&bad, &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("search.provider"));
}

/// A model endpoint elsewhere that records the head of every request it gets and answers 500.
fn recording_endpoint() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    let origin = common::raw_http_server(move |mut stream| {
        use std::io::Write;
        seen.lock()
            .unwrap()
            .push(common::read_request_head(&mut stream));
        let _ = stream.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        );
    });
    (format!("{origin}/v1"), heads)
}

fn store_holds(app: &TestApp, needle: &[u8]) -> bool {
    fn walk(path: &std::path::Path, needle: &[u8]) -> bool {
        std::fs::read_dir(path).unwrap().flatten().any(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, needle)
            } else {
                std::fs::read(&path)
                    .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                    .unwrap_or(false)
            }
        })
    }
    walk(&app.config.store.path, needle)
}

#[tokio::test]
async fn the_operators_key_never_follows_the_chat_endpoint_elsewhere() {
    let app = TestApp::spawn_with(|c| {
        c.llm.api_key = Some(okcvm::config::Secret::new("sk-operator-key"));
        c.llm.max_retries = 0;
    });
    // Another model on okcvm.toml's endpoint keeps its key, by reference, not copied.
    let (status, view) = post(&app, json!({"chat": {"model": "other-model"}})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["chat"]["api_key_present"], true);
    assert!(
        !store_holds(&app, b"sk-operator-key"),
        "okcvm.toml's key was copied into the store"
    );

    // Pointing chat elsewhere sends no key there.
    let (elsewhere, heads) = recording_endpoint();
    let (status, view) = post(&app, json!({"chat": {"base_url": elsewhere}})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["chat"]["api_key_present"], false);
    let (status, _) = app.chat_json("victim", "hello").await;
    assert_eq!(status, 502);
    let head = heads.lock().unwrap().last().cloned().unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "a key went elsewhere: {head}"
    );

    // A key given for it goes there; moving the section to another host again drops it.
    let (status, _) = post(
        &app,
        json!({"chat": {"base_url": elsewhere, "api_key": "sk-elsewhere"}}),
    )
    .await;
    assert_eq!(status, 200);
    app.chat_json("victim", "hello").await;
    let head = heads.lock().unwrap().last().cloned().unwrap();
    assert!(head.contains("Bearer sk-elsewhere"), "{head}");
    let (elsewhere_too, heads_too) = recording_endpoint();
    let (_, view) = post(&app, json!({"chat": {"base_url": elsewhere_too}})).await;
    assert_eq!(view["chat"]["api_key_present"], false);
    app.chat_json("victim", "hello").await;
    let head = heads_too.lock().unwrap().last().cloned().unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "the key followed the section to a new host: {head}"
    );
}

#[tokio::test]
async fn without_authentication_the_server_listens_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("okcvm.toml");
    let port = common::server_process::free_port();
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!("[server]\nhost = \"0.0.0.0\"\nport = {port}\n[sandbox]\nallow_unsandboxed = true\n{extra}"),
        )
        .unwrap()
    };
    write("");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_okcvm"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "it started on 0.0.0.0");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("auth.mode")
            && said.contains("mode = \"token\"")
            && said.contains("[auth] allow_unauthenticated"),
        "{said}"
    );

    // The operator may say the network is trusted; every start then warns.
    write("[auth]\nallow_unauthenticated = true\n");
    let log = dir.path().join("server.log");
    let http = reqwest::Client::new();
    let (server, _) = common::server_process::start_logging(
        env!("CARGO_BIN_EXE_okcvm"),
        &config,
        port,
        &http,
        Some((&log, "warn")),
    )
    .await;
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("WITHOUT authentication"), "{logged}");
}

#[tokio::test]
async fn keys_set_at_runtime_are_encrypted_in_the_store_when_a_secret_key_is_set() {
    std::env::set_var(
        "OKCVM_TEST_SECRET_KEY",
        "a long random secret for this test",
    );
    let sealed = TestApp::spawn_with(|c| c.auth.secret_key_env = "OKCVM_TEST_SECRET_KEY".into());
    let key = "sk-marker-7f3a9c";
    let body =
        json!({"image": {"model": "img", "base_url": "http://127.0.0.1:9/v1", "api_key": key}});
    let (status, view) = post(&sealed, body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(view["image"]["api_key_present"], true);
    assert!(
        !store_holds(&sealed, key.as_bytes()),
        "the key is in the store in plain text"
    );
    // It is still there after a restart with the same secret key.
    let sealed = sealed.restart();
    let (_, view) = sealed.get("/api/config", "default").await;
    assert_eq!(view["image"]["api_key_present"], true);

    // A start without the secret key cannot use the key, but does not lose it either.
    let mut sealed = sealed;
    sealed.config.auth.secret_key_env = "OKCVM_TEST_SECRET_KEY_UNSET".into();
    let mut sealed = sealed.restart();
    let (_, view) = sealed.get("/api/config", "default").await;
    assert_eq!(view["image"]["api_key_present"], false);
    sealed.config.auth.secret_key_env = "OKCVM_TEST_SECRET_KEY".into();
    let sealed = sealed.restart();
    let (_, view) = sealed.get("/api/config", "default").await;
    assert_eq!(
        view["image"]["api_key_present"], true,
        "the key is back with the secret key"
    );

    // Without a secret key the same key is stored as given (what the test above rules out).
    let plain = TestApp::spawn();
    post(&plain, body).await;
    assert!(store_holds(&plain, key.as_bytes()));
}

#[test]
fn check_warns_when_the_window_leaves_no_room_to_work() {
    let model = common::mock_model::MockModel::start();
    // Ollama's model takes 4,096 tokens: less than the prompt and the 24 tools.
    model.set_ollama_context_length(4096);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("okcvm.toml");
    let base = &model.url;
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[llm]\nbase_url = \"{base}\"\nmodel = \"mock-model\"\nprovider = \"ollama\"\n{extra}"
            ),
        )
        .unwrap();
    };
    let check = || {
        let output = okcvm_check(&config, &[]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    write("");
    let stdout = check();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("context: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("4096 tokens for mock-model (Ollama, the model takes 4096)"),
        "{line}"
    );
    assert!(line.contains("WARNING"), "{line}");
    assert!(
        stdout.contains("model: a one-step completion with a tool manifest works"),
        "{stdout}"
    );
    model.set_ollama_context_length(131_072);
    write("context_window_tokens = 65536\n");
    let stdout = check();
    let line = stdout.lines().find(|l| l.starts_with("context: ")).unwrap();
    assert!(line.starts_with("context: 65536 tokens"), "{line}");
    assert!(!line.contains("WARNING"), "{line}");
}
