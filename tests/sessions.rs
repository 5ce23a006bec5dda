//! Many sessions at once: isolation between 50 concurrent clients, idle eviction, one turn
//! at a time per session (409), and stopping a running turn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{parse_sse, tool_messages, types, Reply, TestApp};
use futures_util::StreamExt;
use serde_json::json;

/// Polls `check` every 20 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn fifty_concurrent_clients_see_only_their_own_history_and_files() {
    let app = TestApp::spawn();
    for i in 0..50 {
        app.model.script(
            &format!("ISO{i:02}X"),
            vec![
                Reply::tool(
                    "mshtools-shell",
                    json!({"command": format!("echo secret-{i} > mine.txt; ls; cat mine.txt")}),
                ),
                Reply::text(&format!("done {i}")),
            ],
        );
    }
    let turns = (0..50).map(|i| {
        let app = &app;
        async move {
            let client = format!("client{i}");
            let (status, body) = app.chat_json(&client, &format!("ISO{i:02}X start")).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["reply"], format!("done {i}"));
            let (status, body) = app.chat_json(&client, &format!("follow-up {i:02}X")).await;
            assert_eq!(status, 200, "{body}");
        }
    });
    futures_util::future::join_all(turns).await;
    for i in 0..50 {
        let first = app.model.requests_for(&format!("ISO{i:02}X"));
        // The shell ran in this client's own workspace: only its own file is there.
        assert_eq!(
            tool_messages(&first[1])[0],
            format!("mine.txt\noutput\nupload\nsecret-{i}\n\n[exit code: 0]")
        );
        let second = &app.model.requests_for(&format!("follow-up {i:02}X"))[0];
        let users: Vec<&str> = second["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(
            users,
            [format!("ISO{i:02}X start"), format!("follow-up {i:02}X")]
        );
    }
}

#[tokio::test]
async fn idle_sessions_are_evicted_and_come_back_on_the_next_request() {
    let app = TestApp::spawn_with(|c| {
        c.sessions.idle_timeout_secs = 1;
        c.sessions.sweep_interval_secs = 1;
    });
    let (status, _) = app.chat_json("sleepy", "hello").await;
    assert_eq!(status, 200);
    let evicted = eventually(Duration::from_secs(10), || async {
        let (_, stats) = app.get("/api/sessions", "admin").await;
        stats["evictions"].as_u64() == Some(1)
    })
    .await;
    assert!(evicted, "the idle session was never evicted");
    let (_, stats) = app.get("/api/sessions", "admin").await;
    assert_eq!(stats["failed"], 0, "an eviction is not a failure: {stats}");
    let (status, body) = app.chat_json("sleepy", "still there?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "echo: still there?");
}

#[tokio::test]
async fn the_session_limit_evicts_the_least_recently_used_idle_session() {
    let app = TestApp::spawn_with(|c| c.sessions.max_sessions = 2);
    for client in ["one", "two", "three"] {
        let (status, _) = app.chat_json(client, "hi").await;
        assert_eq!(status, 200);
    }
    // The evicted session leaves the list once it has answered (at once, being idle).
    let settled = eventually(Duration::from_secs(5), || async {
        let (_, stats) = app.get("/api/sessions", "admin").await;
        let live: Vec<&str> = common::strings(&stats["sessions"], "owner");
        live == ["three", "two"] && stats["evictions"] == 1
    })
    .await;
    let (_, stats) = app.get("/api/sessions", "admin").await;
    assert!(
        settled,
        "expected sessions three and two after one eviction: {stats}"
    );
}

#[tokio::test]
async fn a_second_turn_in_the_same_session_gets_409_and_stop_cancels_the_first() {
    let app = TestApp::spawn();
    app.model.script(
        "LONG",
        vec![
            Reply::tool("mshtools-shell", json!({"command": "sleep 30; echo never"})),
            Reply::text("should not be asked"),
        ],
    );
    let started = Instant::now();
    let response = app
        .http
        .post(app.api("/api/chat", "busy"))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "LONG job"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    // Wait until the shell command is running.
    while !text.contains("tool_started") {
        let chunk = body.next().await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (status, conflict) = app.chat_json("busy", "me too").await;
    assert_eq!(status, 409, "{conflict}");
    for (path, body) in [
        (
            "/api/session/workspace/snapshots",
            json!({"label": "mid-turn"}),
        ),
        ("/api/session/workspace/restore", json!({"branch": "main"})),
        (
            "/api/session/workspace/branch",
            json!({"branch": "mid-turn"}),
        ),
    ] {
        let (status, refused) = app.post_json(path, "busy", body).await;
        assert_eq!(status, 409, "{path} during a turn: {refused}");
        assert!(
            refused["detail"].as_str().unwrap().contains("workspace"),
            "{refused}"
        );
    }
    assert!(conflict["detail"]
        .as_str()
        .unwrap()
        .contains("already running"));
    // Other sessions are not blocked.
    let (status, _) = app.chat_json("someone-else", "hi").await;
    assert_eq!(status, 200);

    let stop = app
        .http
        .post(app.api("/api/chat/stop", "busy"))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 200);
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stop did not kill the command"
    );
    let frames = parse_sse(&text);
    let kinds = types(&frames);
    assert_eq!(&kinds[kinds.len() - 2..], ["error", "stop"]);
    assert_eq!(frames[frames.len() - 2].data["message"], "cancelled");
    assert_eq!(frames[frames.len() - 2].data["reason"], "cancelled");
    assert_eq!(
        app.model.requests_for("LONG").len(),
        1,
        "the model was called after stop"
    );
    // The session takes new turns, and its history stayed well-formed.
    let (status, body) = app.chat_json("busy", "after the stop").await;
    assert_eq!(status, 200, "{body}");
    let request = &app.model.requests_for("after the stop")[0];
    assert!(tool_messages(request)[0].contains("cancelled"), "{request}");
}
