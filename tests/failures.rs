//! The model endpoint failing in every way, and bad client requests: clear errors, never a
//! panic, never a 500 for the client's mistake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{types, Reply, TestApp};
use serde_json::json;

#[tokio::test]
async fn model_500_gives_502_after_retries() {
    let app = TestApp::spawn();
    app.model.script("FAIL500", vec![Reply::Status(500, None)]);
    let (status, body) = app.chat_json("a", "FAIL500").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("500"), "{body}");
    // One try plus max_retries (2) retries.
    assert_eq!(app.model.requests_for("FAIL500").len(), 3);
}

#[tokio::test]
async fn model_500_on_a_stream_gives_error_then_stop() {
    let app = TestApp::spawn();
    app.model.script("SSE500", vec![Reply::Status(503, None)]);
    let frames = app.chat_sse("a", "SSE500").await;
    assert_eq!(types(&frames), ["error", "stop"]);
    assert!(frames[0].data["message"].as_str().unwrap().contains("503"));
    assert_eq!(frames[0].data["reason"], "model_failed");
}

#[tokio::test]
async fn model_429_is_retried_honouring_retry_after() {
    let app = TestApp::spawn();
    app.model.script(
        "RATE",
        vec![Reply::Status(429, Some(0)), Reply::text("after the wait")],
    );
    let (status, body) = app.chat_json("a", "RATE").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "after the wait");
}

#[tokio::test]
async fn a_hanging_model_gives_504() {
    let app = TestApp::spawn_with(|c| c.llm.request_timeout_secs = 1);
    app.model.script(
        "HANG",
        vec![Reply::delayed(30_000, Reply::text("too late"))],
    );
    let (status, body) = app.chat_json("a", "HANG").await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    // The stream names the same failure, and the stored turn keeps it for a re-attach.
    app.model.script(
        "HANG2",
        vec![Reply::delayed(30_000, Reply::text("too late"))],
    );
    let frames = app.chat_sse("a", "HANG2").await;
    assert_eq!(frames[frames.len() - 2].data["reason"], "model_timed_out");
    let replay = app.replay("a").await;
    assert_eq!(replay[replay.len() - 2].data["reason"], "model_timed_out");
}

#[tokio::test]
async fn a_stream_that_breaks_off_ends_with_error_then_stop() {
    let app = TestApp::spawn();
    app.model
        .script("BROKEN", vec![Reply::BrokenStream("partial ".into())]);
    let frames = app.chat_sse("a", "BROKEN").await;
    let kinds = types(&frames);
    assert_eq!(kinds.first().map(String::as_str), Some("token"));
    assert_eq!(&kinds[kinds.len() - 2..], ["error", "stop"]);
    // The session is still usable.
    let (status, body) = app.chat_json("a", "are you there").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn garbage_from_the_model_is_an_error_not_a_crash() {
    let app = TestApp::spawn();
    app.model.script("GARBAGE", vec![Reply::Garbage]);
    let frames = app.chat_sse("a", "GARBAGE").await;
    assert_eq!(types(&frames), ["error", "stop"]);
    assert!(frames[0].data["message"]
        .as_str()
        .unwrap()
        .contains("malformed"));
}

#[tokio::test]
async fn unreachable_model_gives_502() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let app = TestApp::spawn_with(|c| {
        c.llm.base_url = url;
        c.llm.max_retries = 0;
    });
    let (status, body) = app.chat_json("a", "anyone?").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
}

#[tokio::test]
async fn bad_requests_get_4xx_with_detail() {
    let app = TestApp::spawn();
    let post = |body: &'static str, client: &str| {
        app.http
            .post(app.api("/api/chat", client))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, client, want) in [
        ("{not json", "ok", 400),
        ("{}", "ok", 400),
        ("{\"message\": 42}", "ok", 400),
        ("{\"message\": \"   \"}", "ok", 400),
        ("{\"message\": \"hi\"}", "bad%2Fid", 400),
        ("{\"message\": \"hi\"}", "a%20b", 400),
    ] {
        let response = post(body, client).await.unwrap();
        assert_eq!(response.status().as_u16(), want, "{body} as {client}");
        let detail: serde_json::Value = response.json().await.unwrap();
        assert!(
            detail["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    let plain = app
        .http
        .post(app.api("/api/chat", "ok"))
        .header("content-type", "text/plain")
        .body("{\"message\": \"cross-site\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415, "a non-JSON body must not start a turn");
    let long_id = "x".repeat(200);
    let response = app
        .http
        .post(format!("{}/api/chat", app.url))
        .header("x-okc-client-id", long_id)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let huge = json!({"message": "x".repeat(3 * 1024 * 1024)});
    let response = app
        .http
        .post(app.api("/api/chat", "ok"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // A long agent task makes a big conversation record: several MiB are fine, not 65.
    let long = json!({"id": "long", "turns": ["tool output ".repeat(500_000)]});
    let (status, body) = app.post_json("/api/conversations", "ok", long).await;
    assert_eq!(status, 200, "{body}");
    let (_, stored) = app.get("/api/conversations/long", "ok").await;
    assert_eq!(
        stored["conversation"]["turns"][0].as_str().unwrap().len(),
        6_000_000
    );
    let response = app
        .http
        .put(app.api("/api/conversations/long", "ok"))
        .header("content-type", "application/json")
        .body(vec![b' '; 65 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let (status, body) = app.get("/api/nothing-here", "ok").await;
    assert_eq!(status, 404);
    assert!(body["detail"].is_string());
    let stop = app
        .http
        .post(app.api("/api/chat/stop", "idle"))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 409);
}

#[tokio::test]
async fn healthz_and_console_are_served() {
    let app = TestApp::spawn();
    let (status, body) = app.get("/healthz", "x").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = no_redirect
        .get(format!("{}/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 307);
    assert_eq!(root.headers()["location"], "/ui/");
    let page = app
        .http
        .get(format!("{}/ui/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
}

#[tokio::test]
async fn metrics_count_sessions_turns_and_tools() {
    let app = TestApp::spawn();
    app.model.script(
        "METRIC",
        vec![
            Reply::tool("mshtools-todo_read", json!({})),
            Reply::tool(
                "mshtools-read_file",
                json!({"file_path": "/mnt/okcomputer/none.txt"}),
            ),
            Reply::text("counted"),
        ],
    );
    let (status, _) = app.chat_json("metered", "METRIC please").await;
    assert_eq!(status, 200);
    app.chat_json("metered", "and a plain one").await;
    let response = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let page = response.text().await.unwrap();
    for line in [
        "okcvm_sessions{state=\"idle\"} 1",
        "okcvm_turns_total{ending=\"answered\"} 2",
        "okcvm_tool_calls_total{tool=\"mshtools-todo_read\",status=\"success\"} 1",
        "okcvm_tool_calls_total{tool=\"mshtools-read_file\",status=\"error\"} 1",
        "okcvm_turn_duration_seconds_count 2",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing {line:?} in\n{page}"
        );
    }
}

#[tokio::test]
async fn every_route_in_the_openapi_document_is_served() {
    let app = TestApp::spawn();
    let response = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spec: serde_json::Value = response.json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{} paths", paths.len());
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, operations) in paths {
        let concrete = path
            .replace("{id}", "nope")
            .replace("{entry_id}", "msg_nope")
            .replace("{path}", "index.html");
        for method in ["get", "post", "put", "delete"] {
            if operations.get(method).is_none() {
                continue;
            }
            let url = format!("{}{concrete}?client_id=openapi", app.url);
            let request = match method {
                "get" => no_redirect.get(&url),
                "post" => no_redirect.post(&url).json(&json!({})),
                "put" => no_redirect.put(&url).json(&json!({})),
                _ => no_redirect.delete(&url),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert!(
                !(status == 404 && body.contains("no route for")) && status != 405,
                "{method} {path} is documented but not served ({status} {body})"
            );
        }
    }
}
