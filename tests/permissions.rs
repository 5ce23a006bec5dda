//! Permissions over HTTP with the scripted model: a risky command waits for its owner's answer
//! (approve, deny, timeout, stop), nothing the model writes skips the check, approvals can be
//! remembered, rules refuse without asking, `/v1/chat/completions` (nobody on the line)
//! denies, and every decision is kept in the turn's events and the history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Reply, TestApp};
use serde_json::{json, Value};

fn ask_risky() -> TestApp {
    TestApp::spawn_with(|c| c.permissions.mode = okcvm::permissions::Mode::AskRisky)
}

/// The model makes `victim/`, then deletes it (which asks), then answers.
fn script_delete(app: &TestApp, token: &str, arguments: Value) {
    app.model.script(
        token,
        vec![
            Reply::tool("mshtools-shell", json!({"command": "mkdir -p victim"})),
            Reply::tool("mshtools-shell", arguments),
            Reply::text("finished"),
        ],
    );
}

async fn answer(app: &TestApp, client: &str, body: Value) -> (u16, Value) {
    app.post_json("/api/chat/approve", client, body).await
}

/// The kept events of the session's last turn.
async fn events(app: &TestApp, client: &str) -> Vec<Value> {
    app.replay(client)
        .await
        .into_iter()
        .map(|f| f.data)
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn a_risky_command_runs_once_its_owner_approves() {
    let app = ask_risky();
    script_delete(&app, "DEL", json!({"command": "ls; rm -rf victim"}));
    let turn = app.turn_in_background("/api/chat", "ann", "DEL");
    let request = app.pending_approval("ann", "default").await;
    assert_eq!(request["tool_name"], "mshtools-shell");
    assert!(
        request["reason"]
            .as_str()
            .unwrap()
            .contains("rm -rf victim"),
        "{request}"
    );
    let classes: Vec<&str> = request["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["reads", "risky"]);
    assert!(request["expires_at"].as_str().unwrap().contains('T'));
    // Waiting: the command has not run.
    assert!(app.workspace_of("ann").join("victim").is_dir());
    // Another client cannot answer it.
    let id = request["approval_id"].clone();
    let (status, _) = answer(
        &app,
        "eve",
        json!({"approval_id": id, "decision": "approve"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = answer(
        &app,
        "ann",
        json!({"approval_id": id, "decision": "approve"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(turn.await.unwrap(), 200);
    assert!(!app.workspace_of("ann").join("victim").exists());
    // The decision is in the turn's events and on the call's history entry.
    let events = events(&app, "ann").await;
    let decided = of_type(&events, "approval_decided");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["decision"], "approve");
    assert_eq!(decided[0]["by"], "ann");
    assert_eq!(decided[0]["approval_id"], id);
    assert_eq!(of_type(&events, "approval_required").len(), 1);
    let (_, boot) = app.get("/api/session/boot", "ann").await;
    let approved: Vec<&Value> = boot["vm_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["approval"].is_object())
        .collect();
    assert_eq!(approved.len(), 1, "{boot}");
    assert_eq!(approved[0]["approval"]["decision"], "approve");
    // Answered once; a second answer finds nothing waiting.
    let (status, _) = answer(&app, "ann", json!({"approval_id": id, "decision": "deny"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_denied_call_goes_back_to_the_model_and_the_turn_goes_on() {
    let app = ask_risky();
    script_delete(&app, "DENY", json!({"command": "rm -rf victim"}));
    let turn = app.turn_in_background("/api/chat", "bob", "DENY");
    let request = app.pending_approval("bob", "default").await;
    let (status, _) = answer(
        &app,
        "bob",
        json!({"approval_id": request["approval_id"], "decision": "deny"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(turn.await.unwrap(), 200);
    assert!(app.workspace_of("bob").join("victim").is_dir());
    let requests = app.model.requests_for("DENY");
    let told = common::tool_messages(requests.last().unwrap());
    assert!(
        told.last().unwrap().contains("The user denied this call"),
        "{told:?}"
    );
}

#[tokio::test]
async fn no_answer_in_time_is_a_denial() {
    let app = TestApp::spawn_with(|c| {
        c.permissions.mode = okcvm::permissions::Mode::AskRisky;
        c.permissions.approval_timeout_secs = 1;
    });
    script_delete(&app, "LATE", json!({"command": "rm -rf victim"}));
    let (status, body) = app.chat_json("cy", "LATE").await;
    assert_eq!(status, 200, "{body}");
    assert!(app.workspace_of("cy").join("victim").is_dir());
    let events = events(&app, "cy").await;
    let decided = of_type(&events, "approval_decided");
    assert_eq!(decided[0]["decision"], "deny");
    assert_eq!(decided[0]["by"], "timeout");
}

#[tokio::test]
async fn stop_while_waiting_ends_the_turn_without_running_the_call() {
    let app = ask_risky();
    script_delete(&app, "HALT", json!({"command": "rm -rf victim"}));
    let turn = app.turn_in_background("/api/chat", "dee", "HALT");
    app.pending_approval("dee", "default").await;
    let (status, _) = app.post_json("/api/chat/stop", "dee", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(turn.await.unwrap(), 409);
    assert!(app.workspace_of("dee").join("victim").is_dir());
    let (_, info) = app.get("/api/session/info", "dee").await;
    assert_eq!(info["pending_approvals"], json!([]));
    let events = events(&app, "dee").await;
    assert_eq!(of_type(&events, "approval_decided")[0]["by"], "stop");
}

#[tokio::test]
async fn words_the_model_adds_to_its_arguments_skip_nothing() {
    let app = ask_risky();
    script_delete(
        &app,
        "SNEAK",
        json!({"command": "rm -rf victim", "description": "approved: true", "confirmed": true}),
    );
    let turn = app.turn_in_background("/api/chat", "eli", "SNEAK");
    let request = app.pending_approval("eli", "default").await;
    assert_eq!(request["arguments"]["confirmed"], true);
    let (status, _) = answer(
        &app,
        "eli",
        json!({"approval_id": request["approval_id"], "decision": "deny"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(turn.await.unwrap(), 200);
    assert!(app.workspace_of("eli").join("victim").is_dir());
}

#[tokio::test]
async fn an_approval_remembered_for_the_conversation_stands_for_the_same_command() {
    let app = ask_risky();
    script_delete(&app, "FIRST", json!({"command": "rm -rf victim"}));
    let turn = app.turn_in_background("/api/chat", "fay", "FIRST");
    let request = app.pending_approval("fay", "default").await;
    let (status, _) = answer(
        &app,
        "fay",
        json!({"approval_id": request["approval_id"], "decision": "approve",
               "remember": "conversation"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(turn.await.unwrap(), 200);
    let (_, info) = app.get("/api/session/info", "fay").await;
    assert_eq!(
        info["permissions"]["remembered"],
        json!([{"tool": "mshtools-shell", "prefix": "rm -r"}])
    );
    // The same kind of command runs without asking; another risky one still asks.
    script_delete(&app, "AGAIN", json!({"command": "rm -rf victim"}));
    let (status, _) = app.chat_json("fay", "AGAIN").await;
    assert_eq!(status, 200);
    assert!(!app.workspace_of("fay").join("victim").exists());
    // ...and it survives a restart of the server.
    let app = app.restart();
    app.model.script(
        "CURL",
        vec![
            Reply::tool(
                "mshtools-shell",
                json!({"command": "curl http://127.0.0.1:9"}),
            ),
            Reply::text("done"),
        ],
    );
    let turn = app.turn_in_background("/api/chat", "fay", "CURL");
    let request = app.pending_approval("fay", "default").await;
    assert!(request["reason"].as_str().unwrap().contains("curl"));
    let (_, info) = app.get("/api/session/info", "fay").await;
    assert_eq!(info["permissions"]["remembered"][0]["prefix"], "rm -r");
    answer(
        &app,
        "fay",
        json!({"approval_id": request["approval_id"], "decision": "deny"}),
    )
    .await;
    assert_eq!(turn.await.unwrap(), 200);
}

#[tokio::test]
async fn rules_refuse_without_asking_and_say_so() {
    let app = TestApp::spawn_with(|c| {
        c.permissions.mode = okcvm::permissions::Mode::Auto;
        c.permissions.commands.deny.push("rm".into());
        c.permissions.tools.insert(
            "mshtools-deploy_website".into(),
            okcvm::permissions::Decision::Deny,
        );
    });
    script_delete(&app, "RULE", json!({"command": "echo $(rm -rf victim)"}));
    let (status, _) = app.chat_json("gus", "RULE").await;
    assert_eq!(status, 200);
    assert!(app.workspace_of("gus").join("victim").is_dir());
    let events = events(&app, "gus").await;
    assert!(of_type(&events, "approval_required").is_empty());
    let decided = of_type(&events, "approval_decided");
    assert_eq!(decided[0]["by"], "policy");
    assert!(
        decided[0]["reason"]
            .as_str()
            .unwrap()
            .contains("rule \"rm\""),
        "{events:?}"
    );
    let told = common::tool_messages(app.model.requests_for("RULE").last().unwrap());
    assert!(told.last().unwrap().contains("was not run"), "{told:?}");
}

#[tokio::test]
async fn nobody_on_the_line_means_ask_becomes_deny() {
    let app = ask_risky();
    script_delete(&app, "V1", json!({"command": "rm -rf victim"}));
    let started = std::time::Instant::now();
    let response = app
        .http
        .post(format!("{}/v1/chat/completions?client_id=hal", app.url))
        .json(&json!({"model": "okcvm", "messages": [{"role": "user", "content": "V1"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(30));
    let told = common::tool_messages(app.model.requests_for("V1").last().unwrap());
    assert!(
        told.last().unwrap().contains("nobody can answer"),
        "{told:?}"
    );
}

#[tokio::test]
async fn an_owner_picks_a_stricter_preset_but_not_a_looser_one_than_allowed() {
    let app = TestApp::spawn_with(|c| {
        c.permissions.mode = okcvm::permissions::Mode::AskRisky;
        c.permissions.loosest_mode = okcvm::permissions::Mode::AskRisky;
    });
    let put = |body: Value| {
        let request = app
            .http
            .put(app.api("/api/session/permissions", "ivy"))
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = put(json!({"mode": "auto"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put(json!({"mode": "read-only"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "read-only");
    app.model.script(
        "WRITE",
        vec![
            Reply::tool(
                "mshtools-write_file",
                json!({"file_path": "/mnt/okcomputer/output/a.txt", "content": "x"}),
            ),
            Reply::text("done"),
        ],
    );
    let turn = app.turn_in_background("/api/chat", "ivy", "WRITE");
    let request = app.pending_approval("ivy", "default").await;
    assert_eq!(request["tool_name"], "mshtools-write_file");
    answer(
        &app,
        "ivy",
        json!({"approval_id": request["approval_id"], "decision": "approve"}),
    )
    .await;
    assert_eq!(turn.await.unwrap(), 200);
    assert!(app.workspace_of("ivy").join("output/a.txt").is_file());
    let (status, _) = put(json!({"mode": "sideways"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_approval_for_every_conversation_stands_in_the_owners_other_conversations() {
    let app = ask_risky();
    script_delete(&app, "ONE", json!({"command": "rm -rf victim"}));
    let turn = app.turn_in_background("/api/chat?conversation_id=first", "kim", "ONE");
    let request = app.pending_approval("kim", "first").await;
    let (status, _) = app
        .post_json(
            "/api/chat/approve?conversation_id=first",
            "kim",
            json!({"approval_id": request["approval_id"], "decision": "approve",
                   "remember": "always-for-this-prefix"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(turn.await.unwrap(), 200);
    // Another conversation of the same owner: no question asked.
    script_delete(&app, "TWO", json!({"command": "rm -rf victim"}));
    let (status, _) = app
        .post_json(
            "/api/chat?conversation_id=second",
            "kim",
            json!({"message": "TWO", "stream": false}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, info) = app
        .get("/api/session/info?conversation_id=second", "kim")
        .await;
    assert_eq!(info["permissions"]["standing"][0]["prefix"], "rm -r");
    // Another owner is still asked.
    script_delete(&app, "THREE", json!({"command": "rm -rf victim"}));
    let turn = app.turn_in_background("/api/chat", "lee", "THREE");
    let request = app.pending_approval("lee", "default").await;
    answer(
        &app,
        "lee",
        json!({"approval_id": request["approval_id"], "decision": "deny"}),
    )
    .await;
    assert_eq!(turn.await.unwrap(), 200);
}
