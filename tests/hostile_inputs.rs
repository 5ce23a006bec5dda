//! Inputs that once crashed a session or answered 500: a `Retry-After` too large for a
//! duration, NUL bytes in snapshot labels and messages, a non-ASCII id header, an upload
//! folder the agent replaced with a symlink. Each gets a clear answer and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{upload_form, Reply, TestApp};
use serde_json::json;

#[tokio::test]
async fn a_huge_retry_after_is_capped_not_a_crash() {
    let app = TestApp::spawn_with(|c| {
        c.llm.max_retries = 2;
        c.llm.max_retry_after_secs = 0;
    });
    for (token, value) in [("HUGE300", "1e300"), ("HUGE20", "1e20")] {
        app.model.script(
            token,
            vec![
                Reply::StatusRetryAfter(429, value.to_string()),
                Reply::text("after the wait"),
            ],
        );
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(20), app.chat_json(token, token))
                .await
                .expect("the turn never ended");
        assert_eq!(status, 200, "{value}: {body}");
        assert_eq!(body["reply"], "after the wait");
        // The session is idle again and takes the next turn.
        let (status, _) = app.chat_json(token, "again").await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn nul_bytes_in_labels_and_messages_still_snapshot() {
    let app = TestApp::spawn();
    app.model.script(
        "NULTOOL",
        vec![
            Reply::tool(
                "mshtools-write_file",
                json!({"file_path": "/mnt/okcomputer/a.txt", "content": "a"}),
            ),
            Reply::text("written"),
        ],
    );
    let (status, body) = app.chat_json("nul", "NULTOOL\u{0} with a nul").await;
    assert_eq!(status, 200, "{body}");
    let (status, state) = app
        .post_json(
            "/api/session/workspace/snapshots",
            "nul",
            json!({"label": "bad\u{0}label"}),
        )
        .await;
    assert_eq!(status, 200, "{state}");
    let labels: Vec<&str> = state["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels.len(),
        2,
        "the turn's snapshot and the manual one: {labels:?}"
    );
    assert!(labels.contains(&"badlabel"), "{labels:?}");
    assert!(
        labels.iter().any(|l| l.starts_with("NULTOOL")),
        "{labels:?}"
    );
}

#[tokio::test]
async fn a_non_ascii_client_header_is_refused() {
    let app = TestApp::spawn();
    let response = app
        .http
        .get(format!("{}/api/session/info", app.url))
        .header(
            "x-okc-client-id",
            reqwest::header::HeaderValue::from_bytes("clïent".as_bytes()).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("x-okc-client-id"),
        "{body}"
    );
}

#[tokio::test]
async fn an_upload_folder_replaced_by_a_symlink_is_a_conflict() {
    let app = TestApp::spawn();
    let upload = |name: &str| {
        app.http
            .post(app.api("/api/session/files", "linked"))
            .multipart(upload_form(&[(name, b"data".to_vec())]))
            .send()
    };
    assert_eq!(upload("first.txt").await.unwrap().status(), 200);
    let root = app.workspace_of("linked");
    let outside = app.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::remove_dir_all(root.join("upload")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("upload")).unwrap();
    let response = upload("second.txt").await.unwrap();
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("upload/"),
        "{body}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[tokio::test]
async fn a_model_answer_past_its_cap_ends_the_turn_with_a_clear_error() {
    for stream in [true, false] {
        let app = TestApp::spawn_with(|c| {
            c.llm.stream = stream;
            c.llm.max_response_bytes = 1024 * 1024;
        });
        app.model
            .script("FLOODME", vec![Reply::Text("x".repeat(4 * 1024 * 1024))]);
        let (status, body) = app.chat_json("flooded", "FLOODME").await;
        assert_eq!(status, 502, "stream {stream}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("max_response_bytes"),
            "{body}"
        );
        let (status, body) = app.chat_json("flooded", "and now?").await;
        assert_eq!(status, 200, "{body}");
    }
}
