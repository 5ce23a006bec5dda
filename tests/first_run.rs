//! A first run that explains itself: `okcvm check` tries the model endpoint and says what to
//! do, works beside a running server, `okcvm serve` logs the same probe, and a turn that
//! cannot reach the model names the setting to change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{server_process, MockModel, TestApp};

fn check(config: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_okcvm"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

fn config_for(dir: &std::path::Path, base_url: &str, model: &str) -> std::path::PathBuf {
    let config = dir.join("okcvm.toml");
    std::fs::write(
        &config,
        format!("[llm]\nbase_url = \"{base_url}\"\nmodel = \"{model}\"\n[sandbox]\nallow_unsandboxed = true\n"),
    )
    .unwrap();
    config
}

#[test]
fn check_says_when_the_model_cannot_be_reached_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let closed = server_process::free_port();
    let (ok, said) = check(&config_for(
        dir.path(),
        &format!("http://127.0.0.1:{closed}/v1"),
        "some-model",
    ));
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("model: cannot reach http://127.0.0.1:{closed}/v1"))
            && said.contains("set [llm] base_url"),
        "{said}"
    );
}

#[tokio::test]
async fn check_tries_the_model_and_works_beside_a_running_server() {
    let model = MockModel::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path(), &model.url, "mock-model");
    let (ok, said) = check(&config);
    assert!(ok, "{said}");
    assert!(said.contains("it lists mock-model"), "{said}");
    assert!(
        said.contains("model: a one-step completion with a tool manifest works"),
        "{said}"
    );
    let missing = config_for(dir.path(), &model.url, "qwen-missing");
    let (_, said) = check(&missing);
    assert!(
        said.contains("does not list qwen-missing (it has: mock-model)"),
        "{said}"
    );

    // With a server running on the same store (and logging the same probe at start).
    let config = config_for(dir.path(), &model.url, "mock-model");
    let http = reqwest::Client::new();
    let log = dir.path().join("server.log");
    let (_server, _) = server_process::start_logging(
        env!("CARGO_BIN_EXE_okcvm"),
        &config,
        server_process::free_port(),
        &http,
        Some((&log, "info")),
    )
    .await;
    let started = std::time::Instant::now();
    let (ok, said) = check(&config);
    assert!(ok, "check failed beside a running server: {said}");
    assert!(said.contains("is in use by a running server"), "{said}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    let mut logged = String::new();
    for _ in 0..100 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("model: a one-step completion") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(logged.contains("model: reachable at"), "{logged}");
}

#[tokio::test]
async fn a_turn_that_cannot_reach_the_model_names_the_setting() {
    let closed = server_process::free_port();
    let app = TestApp::spawn_with(|c| {
        c.llm.base_url = format!("http://127.0.0.1:{closed}/v1");
        c.llm.max_retries = 0;
    });
    let (status, body) = app.chat_json("c", "hello").await;
    assert_eq!(status, 502);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("[llm] base_url"), "{detail}");
}
