//! A long turn costs the store what its events are, not the square of them: 300 tool calls,
//! each after a 100-delta answer, while every call checkpoints the running turn. Also: the
//! re-attaching client gets every byte of a long answer exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::server_process::disk_bytes;
use common::{parse_sse, types, Reply, TestApp};
use serde_json::json;

const STEPS: usize = 300;

#[tokio::test]
async fn a_long_turn_grows_the_store_linearly() {
    let app = TestApp::spawn_with(|c| c.llm.max_steps = STEPS as u32 + 5);
    let mut replies: Vec<Reply> = (0..STEPS)
        .map(|_| Reply::ChattyTool {
            count: 100,
            delta: "token ".into(),
            name: "mshtools-todo_read".into(),
            arguments: "{}".into(),
        })
        .collect();
    replies.push(Reply::text("all done"));
    app.model.script("LONG", replies);
    app.model.script("WARM", vec![Reply::text("warm")]);
    app.chat_json("longer", "WARM up").await;
    let before = disk_bytes(&app.config.store.path);
    let frames = app.chat_sse("longer", "LONG turn").await;
    assert_eq!(
        types(&frames)
            .iter()
            .filter(|t| *t == "tool_completed")
            .count(),
        STEPS
    );
    let grown = disk_bytes(&app.config.store.path).saturating_sub(before);
    // The turn's events are ~1 KiB per step; re-writing the turn at every call made this
    // hundreds of MiB.
    assert!(
        grown < 24 * 1024 * 1024,
        "the store grew by {} MiB for one turn",
        grown / 1024 / 1024
    );
    // The kept log has one event per run of deltas, and replays every byte once.
    let replayed = app.replay("longer").await;
    let tokens = |frames: &[common::Frame]| -> String {
        frames
            .iter()
            .filter(|f| f.data["type"] == "token")
            .map(|f| f.data["delta"].as_str().unwrap())
            .collect()
    };
    assert_eq!(tokens(&replayed), tokens(&frames));
    assert!(replayed.len() < STEPS * 4, "{} kept events", replayed.len());
    // A client that saw part of an answer gets the rest of it, not all of it again.
    let cut = frames
        .iter()
        .position(|f| f.data["type"] == "token")
        .unwrap()
        + 40;
    let seen = &frames[..=cut];
    let rest = app
        .http
        .get(app.api("/api/chat/events", "longer"))
        .header(
            "last-event-id",
            seen.last().unwrap().id.unwrap().to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rest = parse_sse(&rest);
    assert_eq!(
        format!("{}{}", tokens(seen), tokens(&rest)),
        tokens(&frames)
    );
    assert_eq!(json!(types(&rest).last()), json!("stop"));
}
