//! Clients following a turn are bounded: a session takes at most
//! `[limits] attachments_per_session` of them (one more gets 429), and a client that stops
//! reading is dropped once it falls too far behind, its stream ending with `error` + `stop`
//! instead of the server buffering the whole turn for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{parse_sse, types, Reply, TestApp};
use serde_json::json;

async fn wait_until_idle(app: &TestApp, client: &str) {
    let started = Instant::now();
    loop {
        if !app.busy_owners().await.iter().any(|owner| owner == client) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the turn never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_session_takes_a_bounded_number_of_followers() {
    let app = TestApp::spawn_with(|c| c.limits.attachments_per_session = 2);
    app.model.script(
        "SLOW",
        // Long enough that the two follows below land while the turn runs, even while the
        // other test of this file keeps both cores busy.
        vec![Reply::delayed(5000, Reply::text("slowly done"))],
    );
    let turn = app.turn_in_background("/api/chat", "popular", "SLOW please");
    app.model.wait_for("SLOW").await;
    let follow = || {
        app.http
            .get(app.api("/api/chat/events?after=0", "popular"))
            .send()
    };
    let first = follow().await.unwrap();
    assert_eq!(first.status(), 200);
    let refused = follow().await.unwrap();
    assert_eq!(refused.status(), 429);
    let detail = refused.json::<serde_json::Value>().await.unwrap();
    assert!(
        detail["detail"].as_str().unwrap().contains("2 clients"),
        "{detail}"
    );
    let replay = parse_sse(&first.text().await.unwrap());
    assert_eq!(types(&replay).last().unwrap(), "stop");
    assert_eq!(turn.await.unwrap(), 200);
    // Once the turn is over, anyone may replay it.
    for _ in 0..3 {
        assert_eq!(follow().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_not_buffered() {
    let app = TestApp::spawn_with(|c| c.llm.max_response_bytes = 64 * 1024 * 1024);
    app.model.script(
        "FLOOD",
        vec![
            Reply::ChattyTool {
                count: 150_000,
                delta: "a delta of some words ".into(),
                name: "mshtools-todo_read".into(),
                arguments: "{}".into(),
            },
            Reply::text("flooded"),
        ],
    );
    // A client that starts the turn as a stream and then reads nothing while it runs.
    let response = app
        .http
        .post(app.api("/api/chat", "sleepy"))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "FLOOD me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_until_idle(&app, "sleepy").await;
    let frames = parse_sse(&response.text().await.unwrap());
    let kinds = types(&frames);
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["error", "stop"],
        "{:?}",
        &kinds[kinds.len() - 3..]
    );
    let cut = &frames[frames.len() - 2];
    assert_eq!(cut.id, None, "the ending of a cut stream has no number");
    assert!(
        cut.data["message"].as_str().unwrap().contains("re-attach"),
        "{}",
        cut.data
    );
    // Re-attaching from the last number seen gets the rest, up to the real end.
    let last_seen = frames.iter().rev().find_map(|f| f.id).unwrap();
    let rest = app
        .http
        .get(app.api(&format!("/api/chat/events?after={last_seen}"), "sleepy"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rest = parse_sse(&rest);
    assert_eq!(&types(&rest)[rest.len() - 2..], ["final", "stop"]);
}
