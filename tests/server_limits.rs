//! `[limits]`: server-wide caps on shell commands, Python interpreters and browser tabs. At a
//! cap the tool says so to the model and the turn goes on; an idle interpreter of another
//! session is closed to make room, and its session is told when it next runs a cell.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{tool_messages, Reply, TestApp};
use serde_json::json;

fn cell(code: &str) -> Reply {
    Reply::tool("mshtools-ipython", json!({"code": code}))
}

fn shell(command: &str) -> Reply {
    Reply::tool("mshtools-shell", json!({"command": command}))
}

#[tokio::test]
async fn an_idle_interpreter_makes_room_and_busy_ones_refuse() {
    let app = TestApp::spawn_with(|c| c.limits.python_interpreters = 1);
    app.model
        .script("KEEP", vec![cell("kept = 41"), Reply::text("kept")]);
    app.model
        .script("TAKE", vec![cell("print('taken')"), Reply::text("taken")]);
    app.model
        .script("LOST", vec![cell("print(kept + 1)"), Reply::text("lost")]);
    assert_eq!(app.chat_json("first", "KEEP it").await.0, 200);
    assert_eq!(app.chat_json("second", "TAKE it").await.0, 200);
    let taken = tool_messages(&app.model.requests_for("TAKE")[1])
        .pop()
        .unwrap();
    assert!(taken.contains("taken"), "{taken}");
    assert_eq!(app.chat_json("first", "LOST it").await.0, 200);
    let lost = tool_messages(&app.model.requests_for("LOST")[1])
        .pop()
        .unwrap();
    assert!(
        lost.contains("closed to make room") && lost.contains("NameError"),
        "{lost}"
    );

    // While one interpreter runs a cell, nobody may take it; the other turn goes on.
    app.model.script(
        "BUSY",
        vec![cell("import time; time.sleep(3)"), Reply::text("slept")],
    );
    app.model
        .script("WANT", vec![cell("print('never')"), Reply::text("went on")]);
    let busy = app.turn_in_background("/api/chat", "second", "BUSY now");
    while app.model.requests_for("BUSY").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (status, body) = app.chat_json("first", "WANT one").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "went on");
    let refused = tool_messages(&app.model.requests_for("WANT")[1])
        .pop()
        .unwrap();
    assert!(
        refused.contains("[limits] python_interpreters"),
        "{refused}"
    );
    assert_eq!(busy.await.unwrap(), 200);
}

#[tokio::test]
async fn shell_commands_beyond_the_server_cap_are_refused() {
    let app = TestApp::spawn_with(|c| c.limits.sandboxed_commands = 1);
    app.model
        .script("LONGCMD", vec![shell("sleep 3"), Reply::text("slept")]);
    app.model
        .script("SHORTCMD", vec![shell("echo hi"), Reply::text("went on")]);
    let long = app.turn_in_background("/api/chat", "sleeper", "LONGCMD now");
    while app.model.requests_for("LONGCMD").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (status, body) = app.chat_json("other", "SHORTCMD now").await;
    assert_eq!(status, 200, "{body}");
    let refused = tool_messages(&app.model.requests_for("SHORTCMD")[1])
        .pop()
        .unwrap();
    assert!(refused.contains("[limits] sandboxed_commands"), "{refused}");
    assert_eq!(long.await.unwrap(), 200);
    // Once the long one is done, commands run again.
    app.model
        .script("AGAINCMD", vec![shell("echo again"), Reply::text("ok")]);
    app.chat_json("other", "AGAINCMD now").await;
    let again = tool_messages(&app.model.requests_for("AGAINCMD")[1])
        .pop()
        .unwrap();
    assert!(again.contains("again"), "{again}");
}
