//! A panic anywhere in a session costs only that turn: the client gets `error` + `stop`, the
//! dead session's slot is freed (`/api/sessions` and `/metrics` stay true), and the next
//! request starts the session again from the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{types, Reply, TestApp};
use okcvm::spec::Spec;
use okcvm::tools::{NoArgs, ToolContext, ToolError, ToolOutput, ToolRegistry, TypedTool};

/// A tool whose code has a bug.
struct Buggy;

impl TypedTool for Buggy {
    const NAME: &'static str = "buggy";
    type Args = NoArgs;

    async fn run(&self, _args: NoArgs, _ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        panic!("index out of bounds in a tool");
    }
}

fn with_buggy_tool(services: &mut okcvm::runtime::Services) {
    let spec = Spec::from_texts(
        "You are a test agent.".into(),
        r#"[{"type":"function","function":{"name":"buggy","description":"has a bug","parameters":{"type":"object","properties":{}}}}]"#,
    )
    .unwrap();
    services.tools = ToolRegistry::with_tools(Arc::new(spec), vec![Box::new(Buggy)]).unwrap();
}

#[tokio::test]
async fn a_panicking_turn_ends_with_error_and_frees_its_slot() {
    let app = TestApp::spawn_with_services(|c| c.sessions.max_sessions = 1, with_buggy_tool);
    app.model.script(
        "BUG",
        vec![
            Reply::ChattyTool {
                count: 3,
                delta: "let me try ".into(),
                name: "buggy".into(),
                arguments: "{}".into(),
            },
            Reply::text("unreachable"),
        ],
    );
    let frames = app.chat_sse("victim", "BUG please").await;
    let kinds = types(&frames);
    assert_eq!(&kinds[kinds.len() - 2..], ["error", "stop"], "{kinds:?}");
    let error = frames[frames.len() - 2].data["message"].as_str().unwrap();
    assert!(error.contains("internal error"), "{error}");

    // The only slot is free again: another client gets a session, not 503.
    let (status, body) = app.chat_json("next", "hello").await;
    assert_eq!(status, 200, "{body}");
    let (_, stats) = app.get("/api/sessions", "admin").await;
    assert_eq!(stats["failed"], 1, "{stats}");
    assert_eq!(app.busy_owners().await, Vec::<String>::new(), "{stats}");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("okcvm_sessions_failed_total 1"),
        "{metrics}"
    );

    // The victim's conversation goes on from the store; its last turn replays to the end.
    let (status, body) = app.chat_json("victim", "hello again").await;
    assert_eq!(status, 200, "{body}");
}
