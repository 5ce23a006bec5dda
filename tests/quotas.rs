//! `[quotas]` per owner and `[server] max_concurrent_turns`: past one, the request gets 429
//! (the owner's quota, named in `detail`) or 503 (the server's limit), with `Retry-After`;
//! other owners are not held back by one owner's quota.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{upload_form, Reply, TestApp};
use serde_json::{json, Value};

/// A turn that holds its place for a while.
fn slow(app: &TestApp, token: &str) {
    app.model
        .script(token, vec![Reply::delayed(1_500, Reply::text("done"))]);
}

async fn chat(
    app: &TestApp,
    client: &str,
    conversation: &str,
    message: &str,
) -> (u16, Option<String>, Value) {
    let response = app
        .http
        .post(app.api(&format!("/api/chat?conversation_id={conversation}"), client))
        .json(&json!({"message": message, "stream": false}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Waits until the server reports `n` turns running.
async fn until_running(app: &TestApp, n: usize) {
    for _ in 0..100 {
        if app.busy_owners().await.len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{n} turns never ran");
}

#[tokio::test]
async fn an_owner_past_concurrent_turns_gets_429_and_others_go_on() {
    let app = TestApp::spawn_with(|c| c.quotas.concurrent_turns = 1);
    slow(&app, "SLOW");
    let first = app.turn_in_background("/api/chat?conversation_id=one", "ann", "SLOW 1");
    until_running(&app, 1).await;
    let (status, retry_after, body) = chat(&app, "ann", "two", "another").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("concurrent_turns"),
        "{body}"
    );
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    let (status, _, _) = chat(&app, "ben", "two", "mine").await;
    assert_eq!(status, 200, "another owner is not held back");
    assert_eq!(first.await.unwrap(), 200);
    let (status, _, _) = chat(&app, "ann", "two", "again").await;
    assert_eq!(status, 200, "the place is free once the turn ended");
}

#[tokio::test]
async fn the_server_wide_turn_limit_answers_503() {
    let app = TestApp::spawn_with(|c| c.server.max_concurrent_turns = 1);
    slow(&app, "SLOW");
    let first = app.turn_in_background("/api/chat", "ann", "SLOW 1");
    until_running(&app, 1).await;
    let (status, retry_after, body) = chat(&app, "ben", "default", "hello").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("max_concurrent_turns"));
    assert!(retry_after.is_some());
    // The OpenAI-compatible route is held to the same limit.
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.url))
        .json(&json!({"model": "okcvm", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(first.await.unwrap(), 200);
}

#[tokio::test]
async fn turns_per_minute_is_a_bucket_per_owner() {
    let app = TestApp::spawn_with(|c| c.quotas.turns_per_minute = 2);
    // Requests refused before a turn starts cost nothing.
    for _ in 0..3 {
        let (status, _) = app
            .post_json(
                "/api/chat",
                "ann",
                json!({"message": "edit", "replace_from": "no-such-entry", "stream": false}),
            )
            .await;
        assert_eq!(status, 404);
    }
    for n in 0..2 {
        let (status, _, _) = chat(&app, "ann", "default", &format!("turn {n}")).await;
        assert_eq!(status, 200);
    }
    let (status, retry_after, body) = chat(&app, "ann", "default", "one too many").await;
    assert_eq!(status, 429);
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("turns_per_minute"));
    let wait: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let (status, _, _) = chat(&app, "ben", "default", "mine").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn uploads_past_the_daily_bytes_get_429_and_are_not_kept() {
    let app = TestApp::spawn_with(|c| c.quotas.upload_mb_per_day = 1);
    let upload = |name: &'static str, size: usize| {
        app.http
            .post(app.api("/api/session/files", "ann"))
            .multipart(upload_form(&[(name, vec![b'x'; size])]))
            .send()
    };
    assert_eq!(upload("a.bin", 600 * 1024).await.unwrap().status(), 200);
    let refused = upload("b.bin", 600 * 1024).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("upload_mb_per_day"));
    let (_, files) = app.get("/api/session/files", "ann").await;
    assert_eq!(common::strings(&files["files"], "name"), ["a.bin"]);
    // The refused bytes were given back: what is left of the day still fits.
    assert_eq!(upload("c.bin", 300 * 1024).await.unwrap().status(), 200);
}

#[tokio::test]
async fn live_sessions_evict_the_owners_idle_ones_and_refuse_when_all_are_busy() {
    let app = TestApp::spawn_with(|c| c.quotas.live_sessions = 1);
    let (status, _, _) = chat(&app, "ann", "one", "hello").await;
    assert_eq!(status, 200);
    // The idle session makes room for the next one.
    let (status, _, _) = chat(&app, "ann", "two", "hello").await;
    assert_eq!(status, 200);
    slow(&app, "SLOW");
    let running = app.turn_in_background("/api/chat?conversation_id=two", "ann", "SLOW");
    until_running(&app, 1).await;
    let (status, _) = app
        .get("/api/session/info?conversation_id=three", "ann")
        .await;
    assert_eq!(status, 429);
    let (status, _) = app
        .get("/api/session/info?conversation_id=three", "ben")
        .await;
    assert_eq!(status, 200);
    assert_eq!(running.await.unwrap(), 200);
}
