//! `web_search` and `image_search` through the agent, against SearXNG- and Brave-shaped APIs
//! on loopback: numbered results across queries, markup stripped, keys sent, failures and a
//! missing provider explained to the model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mock_apis::MockApis;
use common::{tool_messages, Reply, TestApp};
use okcvm::config::Secret;
use serde_json::json;

#[tokio::test]
async fn searxng_results_are_numbered_across_queries() {
    let apis = MockApis::start();
    let app = TestApp::spawn_with(|c| {
        c.search.provider = "searxng".into();
        c.search.base_url = apis.origin.clone();
    });
    app.model.script(
        "SEARCH",
        vec![
            Reply::tool(
                "mshtools-web_search",
                json!({"queries": ["rust", " actix ", ""]}),
            ),
            Reply::tool("mshtools-web_search", json!({"queries": ["FAIL now"]})),
            Reply::tool(
                "mshtools-web_search",
                json!({"queries": ["a", "b", "c", "d", "e", "f"]}),
            ),
            Reply::tool(
                "mshtools-image_search",
                json!({"queries": ["cats", "dogs"], "total_count": 3}),
            ),
            Reply::text("searched"),
        ],
    );
    let (status, body) = app.chat_json("seeker", "SEARCH things").await;
    assert_eq!(status, 200, "{body}");
    let results = tool_messages(app.model.requests_for("SEARCH").last().unwrap());
    let web = &results[0];
    assert!(
        web.contains("## Results for \"rust\"") && web.contains("## Results for \"actix\""),
        "{web}"
    );
    assert!(
        web.contains("[1] rust guide\nhttps://rust.example/guide\nAll about rust & more"),
        "{web}"
    );
    assert!(web.contains("[3] actix guide"), "{web}");
    assert_eq!(web.matches("https://shared.example/").count(), 1, "{web}");
    assert!(results[1].contains("answered 400"), "{}", results[1]);
    assert!(results[2].contains("at most 5 queries"), "{}", results[2]);
    let images = &results[3];
    assert!(
        images.contains("[1] cats photo (640x480)\nimage: https://img.example/cats/1.jpg"),
        "{images}"
    );
    assert!(
        images.contains("[3]") && !images.contains("[4]"),
        "total_count caps the list: {images}"
    );
    assert_eq!(images.matches("shared.jpg").count(), 1, "{images}");
    let sent = apis.requests();
    assert!(sent
        .iter()
        .all(|r| r.path == "/search" && r.body["format"] == "json"));
    assert!(sent.iter().any(|r| r.body["categories"] == "images"));
}

#[tokio::test]
async fn brave_is_asked_with_its_key() {
    let apis = MockApis::start();
    let app = TestApp::spawn_with(|c| {
        c.search.provider = "brave".into();
        c.search.base_url = format!("{}/brave", apis.origin);
        c.search.api_key = Some(Secret::new("brave-key"));
    });
    app.model.script(
        "BRAVE",
        vec![
            Reply::tool("mshtools-web_search", json!({"queries": ["zig"]})),
            Reply::tool("mshtools-image_search", json!({"queries": ["zig"]})),
            Reply::text("done"),
        ],
    );
    let (status, _) = app.chat_json("brave", "BRAVE search").await;
    assert_eq!(status, 200);
    let results = tool_messages(app.model.requests_for("BRAVE").last().unwrap());
    assert!(
        results[0].contains("[1] Brave zig\nhttps://brave.example/zig\nfound by Brave"),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("image: https://brave.example/zig.png")
            && results[1].contains("(100x50)"),
        "{}",
        results[1]
    );
    let sent = apis.requests();
    assert!(
        sent.iter()
            .all(|r| r.bearer.as_deref() == Some("brave-key")),
        "{sent:?}"
    );
    assert_eq!(sent[0].body["count"], "8");
}

#[tokio::test]
async fn without_a_provider_search_says_what_to_configure() {
    let app = TestApp::spawn();
    app.model.script(
        "NOSEARCH",
        vec![
            Reply::tool("mshtools-web_search", json!({"queries": ["x"]})),
            Reply::text("no search"),
        ],
    );
    app.chat_json("plain", "NOSEARCH").await;
    let results = tool_messages(app.model.requests_for("NOSEARCH").last().unwrap());
    assert!(results[0].contains("[search] provider"), "{}", results[0]);
}
