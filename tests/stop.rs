//! Stop, eviction and conversation delete finish within 2 s whatever the running tool is
//! doing: here a data source whose API sends its headers and then nothing, which keeps
//! `get_data_source` reading the body until its 60 s timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Reply, TestApp};
use serde_json::json;

/// The most a stop may take, from the request to the turn's end.
const STOP_WITHIN: Duration = Duration::from_secs(2);

/// An HTTP server on loopback that answers every request with headers promising a body it
/// never sends, holding each connection for a minute.
fn stalling_api() -> String {
    common::raw_http_server(|mut stream| {
        common::read_request_head(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        );
        std::thread::sleep(Duration::from_secs(60));
    })
}

/// A server whose only data source is the stalling API, and a model that calls it.
fn app_with_stalled_tool(token: &str) -> TestApp {
    let api = stalling_api();
    let mut source: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(include_str!("../spec/data_sources.json"))
            .unwrap()[0]
            .clone();
    source["base_url"] = json!(api);
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources.json");
    std::fs::write(&sources, serde_json::to_string(&json!([source])).unwrap()).unwrap();
    let app = TestApp::spawn_with(|c| {
        c.data.sources_file = Some(sources.clone());
        c.data.timeout_secs = 60;
    });
    std::mem::forget(dir);
    app.model.script(
        token,
        vec![
            Reply::tool(
                "mshtools-get_data_source",
                json!({"data_source_name": "world_bank", "api_name": "countries", "params": {}}),
            ),
            Reply::text("never"),
        ],
    );
    app
}

/// Starts a non-streamed turn and waits until its tool runs; the turn's answer comes from the
/// returned task.
async fn start_stalled_turn(
    app: &TestApp,
    path: &str,
    client: &str,
    message: &str,
) -> tokio::task::JoinHandle<u16> {
    let turn = app.turn_in_background(path, client, message);
    app.model.wait_for(message).await;
    // The tool call is made right after the model's first answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    turn
}

#[tokio::test]
async fn stop_ends_a_turn_whose_tool_is_stuck() {
    let app = app_with_stalled_tool("STALL");
    let turn = start_stalled_turn(&app, "/api/chat", "stopper", "STALL now").await;
    let asked = Instant::now();
    let (status, _) = app.post_json("/api/chat/stop", "stopper", json!({})).await;
    assert_eq!(status, 200);
    let answer = tokio::time::timeout(Duration::from_secs(30), turn)
        .await
        .expect("the stopped turn never answered")
        .unwrap();
    assert!(
        asked.elapsed() < STOP_WITHIN,
        "the turn ended {:?} after the stop",
        asked.elapsed()
    );
    assert_eq!(answer, 409, "a stopped turn answers 409");
    app.model.script("AFTER", vec![Reply::text("free again")]);
    let (status, body) = app.chat_json("stopper", "AFTER stop").await;
    assert_eq!(status, 200, "the next turn must run: {body}");
    let request = &app.model.requests_for("AFTER")[0];
    assert!(
        common::tool_messages(request)
            .iter()
            .any(|m| m.contains("cancelled by the user")),
        "the model reads that the call was cancelled: {request}"
    );
}

#[tokio::test]
async fn deleting_the_conversation_of_a_stuck_turn_answers_promptly() {
    let app = app_with_stalled_tool("STALLDEL");
    let (status, body) = app
        .post_json(
            "/api/conversations",
            "deleter",
            json!({"id": "doomed", "title": "to delete"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let turn = start_stalled_turn(
        &app,
        "/api/chat?conversation_id=doomed",
        "deleter",
        "STALLDEL now",
    )
    .await;
    let asked = Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(30),
        app.delete("/api/conversations/doomed", "deleter"),
    )
    .await
    .expect("the delete never answered");
    assert!(
        asked.elapsed() < STOP_WITHIN,
        "the delete took {:?}",
        asked.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(Duration::from_secs(5), turn)
        .await
        .expect("the turn never answered")
        .unwrap();
}
