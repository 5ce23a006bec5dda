//! Every log line of a turn names its owner, conversation and turn, and every line written
//! while a request is handled names the request (its id echoed in `x-request-id`), its owner
//! and conversation: an incident in the log leads to the session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::server_process::{free_port, start_logging};
use common::{MockModel, Reply};
use serde_json::json;

#[tokio::test]
async fn log_lines_of_a_turn_and_a_request_name_their_session() {
    let model = MockModel::start();
    model.script("FAILING", vec![Reply::Status(500, None)]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("okcvm.toml");
    std::fs::write(
        &config,
        format!(
            "[llm]\nbase_url = \"{}\"\nmodel = \"mock\"\nmax_retries = 0\n[sandbox]\nallow_unsandboxed = true\n",
            model.url
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (server, _) = start_logging(
        env!("CARGO_BIN_EXE_okcvm"),
        &config,
        free_port(),
        &http,
        Some((&log, "info,okcvm=debug")),
    )
    .await;
    let response = http
        .post(format!(
            "{}/api/chat?client_id=tracer&conversation_id=incident",
            server.url
        ))
        .header("x-request-id", "req-4711")
        .json(&json!({"message": "FAILING now", "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-request-id"], "req-4711");
    let generated = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert!(generated.headers().contains_key("x-request-id"));
    drop(server);

    let log = std::fs::read_to_string(&log).unwrap();
    let failed = log
        .lines()
        .find(|line| line.contains("turn failed"))
        .unwrap_or_else(|| panic!("no 'turn failed' line in:\n{log}"));
    for field in ["owner=tracer", "conversation=incident", "turn="] {
        assert!(failed.contains(field), "{field} missing from: {failed}");
    }
    let answered = log
        .lines()
        .find(|line| line.contains("req-4711") && line.contains("trace: answered"))
        .unwrap_or_else(|| panic!("no line of request req-4711 in:\n{log}"));
    for field in ["owner=tracer", "conversation=incident", "status=502"] {
        assert!(answered.contains(field), "{field} missing from: {answered}");
    }
}
