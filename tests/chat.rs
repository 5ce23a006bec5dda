//! Chat turns end to end: plain replies, SSE framing, tool results reaching the model,
//! recovery from failing tools, history routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{tool_messages, types, Reply, TestApp};
use serde_json::json;

#[tokio::test]
async fn plain_reply_as_json_with_real_usage() {
    let app = TestApp::spawn();
    let (status, body) = app.chat_json("alice", "hello there").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "echo: hello there");
    assert_eq!(body["meta"]["model"], "mock-model");
    assert_eq!(body["meta"]["tokensIn"], 11);
    assert_eq!(body["meta"]["tokensOut"], 7);
    assert!(body["meta"]["latency"].as_f64().unwrap() >= 0.0);
    assert_eq!(body["workspace_state"]["paths"]["mount"], "/mnt/okcomputer");
    assert_eq!(body["upload_limit"], 100);
    let history = body["vm_history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["role"], "user");
    assert_eq!(history[1]["content"], "echo: hello there");
}

#[tokio::test]
async fn sse_frames_come_in_contract_order_with_ids() {
    let app = TestApp::spawn();
    app.model.script(
        "ORDER",
        vec![
            Reply::ToolCalls(
                "thinking".into(),
                vec![("mshtools-todo_read".into(), "{}".into())],
            ),
            Reply::text("all done"),
        ],
    );
    let frames = app.chat_sse("bob", "ORDER please").await;
    let kinds = types(&frames);
    let first_tool = kinds.iter().position(|k| k == "tool_started").unwrap();
    assert!(kinds[..first_tool].iter().all(|k| k == "token"));
    assert_eq!(kinds[first_tool + 1], "tool_completed");
    assert_eq!(&kinds[kinds.len() - 2..], ["final", "stop"]);
    let text: String = frames
        .iter()
        .filter(|f| f.data["type"] == "token")
        .map(|f| f.data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "thinkingall done");
    // A token's number advances by the bytes of its delta, any other event's by one.
    let mut expected = 0;
    for frame in &frames {
        expected += match frame.data["delta"].as_str() {
            Some(delta) => delta.len() as u64,
            None => 1,
        };
        assert_eq!(frame.id, Some(expected), "{frames:?}");
    }
    let started = &frames[first_tool].data;
    let completed = &frames[first_tool + 1].data;
    assert_eq!(started["invocation_id"], completed["invocation_id"]);
    assert_eq!(completed["status"], "success");
    let payload = &frames[frames.len() - 2].data["payload"];
    assert_eq!(payload["reply"], "all done");
    assert_eq!(payload["tool_calls"][0]["tool_name"], "mshtools-todo_read");
    assert_eq!(payload["meta"]["tokensIn"], 22);
}

#[tokio::test]
async fn tool_results_reach_the_next_model_request() {
    let app = TestApp::spawn();
    app.model.script(
        "FILES",
        vec![
            Reply::tool(
                "mshtools-write_file",
                json!({"file_path": "/mnt/okcomputer/output/note.txt", "content": "line one\nline two\n"}),
            ),
            Reply::tool("mshtools-read_file", json!({"file_path": "/mnt/okcomputer/output/note.txt"})),
            Reply::tool(
                "mshtools-edit_file",
                json!({"file_path": "/mnt/okcomputer/output/note.txt", "old_string": "two", "new_string": "2"}),
            ),
            Reply::text("finished"),
        ],
    );
    let (status, body) = app.chat_json("carol", "FILES go").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], "finished");
    let requests = app.model.requests_for("FILES");
    assert_eq!(requests.len(), 4);
    assert_eq!(
        tool_messages(&requests[1]),
        vec!["wrote 18 bytes to /mnt/okcomputer/output/note.txt"]
    );
    assert_eq!(
        tool_messages(&requests[2])[1],
        "     1\tline one\n     2\tline two\n"
    );
    assert_eq!(
        tool_messages(&requests[3])[2],
        "replaced 1 occurrence in /mnt/okcomputer/output/note.txt"
    );
    let on_disk =
        std::fs::read_to_string(app.workspace_of("carol").join("output/note.txt")).unwrap();
    assert_eq!(on_disk, "line one\nline 2\n");
    // The system prompt and the manifest go with every request.
    assert_eq!(requests[0]["messages"][0]["role"], "system");
    assert_eq!(requests[0]["tools"].as_array().unwrap().len(), 24);
}

#[tokio::test]
async fn a_failing_tool_goes_back_to_the_model_and_the_turn_goes_on() {
    let app = TestApp::spawn();
    app.model.script(
        "RECOVER",
        vec![
            Reply::tool(
                "mshtools-read_file",
                json!({"file_path": "/mnt/okcomputer/missing.txt"}),
            ),
            Reply::raw_tool("mshtools-shell", "{not json"),
            Reply::raw_tool("mshtools-no_such_tool", "{}"),
            Reply::text("recovered"),
        ],
    );
    let frames = app.chat_sse("dave", "RECOVER now").await;
    let completed: Vec<_> = frames
        .iter()
        .filter(|f| f.data["type"] == "tool_completed")
        .collect();
    assert_eq!(completed.len(), 3);
    assert!(completed
        .iter()
        .all(|f| f.data["status"] == "error" && f.data["error"].is_string()));
    let requests = app.model.requests_for("RECOVER");
    let last = tool_messages(&requests[3]);
    assert!(
        last[0].starts_with("Error: cannot open /mnt/okcomputer/missing.txt"),
        "{}",
        last[0]
    );
    assert!(last[1].contains("not valid JSON"), "{}", last[1]);
    assert!(
        last[2].contains("unknown tool `mshtools-no_such_tool`"),
        "{}",
        last[2]
    );
    assert_eq!(
        frames[frames.len() - 2].data["payload"]["reply"],
        "recovered"
    );
}

#[tokio::test]
async fn history_carries_over_turns_and_can_be_read_and_cleared() {
    let app = TestApp::spawn();
    app.model.script(
        "HIST",
        vec![
            Reply::tool("mshtools-todo_read", json!({})),
            Reply::text("first"),
        ],
    );
    app.chat_json("erin", "HIST one").await;
    app.chat_json("erin", "second message").await;
    let requests = app.model.requests_for("second message");
    let roles: Vec<&str> = common::strings(&requests[0]["messages"], "role");
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );

    let (status, info) = app.get("/api/session/info", "erin").await;
    assert_eq!(status, 200);
    assert_eq!(info["history_length"], 6);
    assert_eq!(info["tools"].as_array().unwrap().len(), 24);
    assert_eq!(info["workspace_mount"], "/mnt/okcomputer");

    let (_, boot) = app.get("/api/session/boot", "erin").await;
    // The boot reply is the welcome text, never the last reply (which is in the history).
    let welcome = boot["reply"].as_str().unwrap();
    assert!(welcome.starts_with("Hi, I'm OK Computer"), "{welcome}");
    let entry_id = boot["vm_history"][0]["id"].as_str().unwrap().to_string();
    let (status, entry) = app
        .get(&format!("/api/session/history/{entry_id}"), "erin")
        .await;
    assert_eq!(status, 200);
    assert_eq!(entry["content"], "HIST one");
    let (status, missing) = app.get("/api/session/history/msg_nope", "erin").await;
    assert_eq!(status, 404);
    assert!(missing["detail"].is_string());
    // Another client cannot read it.
    let (status, _) = app
        .get(&format!("/api/session/history/{entry_id}"), "mallory")
        .await;
    assert_eq!(status, 404);

    let (_, cleared) = app.delete("/api/session/history", "erin").await;
    assert_eq!(cleared["history_cleared"], true);
    assert_eq!(cleared["cleared_messages"], 6);
    assert_eq!(cleared["vm"]["history_length"], 0);
}

#[tokio::test]
async fn max_steps_ends_the_turn_with_a_note() {
    let app = TestApp::spawn_with(|c| c.llm.max_steps = 3);
    app.model
        .script("LOOP", vec![Reply::tool("mshtools-todo_read", json!({}))]);
    let (status, body) = app.chat_json("frank", "LOOP forever").await;
    assert_eq!(status, 200);
    assert!(
        body["reply"]
            .as_str()
            .unwrap()
            .contains("stopped after 3 steps"),
        "{body}"
    );
    assert_eq!(body["tool_calls"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn replace_last_drops_the_previous_exchange() {
    let app = TestApp::spawn();
    app.chat_json("gina", "first try").await;
    let response: serde_json::Value = app
        .http
        .post(app.api("/api/chat", "gina"))
        .json(&json!({"message": "second try", "stream": false, "replace_last": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let history = response["vm_history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["content"], "second try");
}

#[tokio::test]
async fn replace_from_edits_an_earlier_message() {
    let app = TestApp::spawn();
    app.chat_json("hana", "first question").await;
    let (_, second) = app.chat_json("hana", "second question").await;
    let first_id = second["vm_history"][0]["id"].as_str().unwrap().to_string();
    let reply_id = second["vm_history"][1]["id"].as_str().unwrap().to_string();
    let edit = |replace_from: String, message: &'static str| {
        app.http
            .post(app.api("/api/chat", "hana"))
            .json(&json!({"message": message, "stream": false, "replace_from": replace_from}))
            .send()
    };
    let response = edit(reply_id, "not a user message").await.unwrap();
    assert_eq!(response.status(), 409);
    let response = edit("msg_unknown".into(), "unknown").await.unwrap();
    assert_eq!(response.status(), 404);
    let edited: serde_json::Value = edit(first_id, "first question, edited")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let history = edited["vm_history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["content"], "first question, edited");
    let request = &app.model.requests_for("first question, edited")[0];
    assert_eq!(
        request["messages"].as_array().unwrap().len(),
        2,
        "system + the edited message only"
    );
}

/// The user-message contents of the history a model request carried.
fn user_messages(request: &serde_json::Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn the_model_history_follows_a_switch_between_versions() {
    let app = TestApp::spawn();
    let chat = |body: serde_json::Value| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.api("/api/chat", "vera"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let user_id = |reply: &serde_json::Value, text: &str| {
        reply["vm_history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["role"] == "user" && e["content"] == text)
            .and_then(|e| e["id"].as_str())
            .unwrap()
            .to_string()
    };
    let one = chat(json!({"message": "apple one", "stream": false})).await;
    let first_v1 = user_id(&one, "apple one");
    let two = chat(json!({"message": "banana two", "stream": false})).await;
    let second_v1 = user_id(&two, "banana two");
    // Regenerate the last reply, then edit the first message: two replaced versions.
    let regen = chat(json!({"message": "banana two", "stream": false, "replace_last": true})).await;
    let second_v2 = user_id(&regen, "banana two");
    assert_ne!(second_v1, second_v2);
    let edited =
        chat(json!({"message": "cherry edited", "stream": false, "replace_from": first_v1})).await;
    assert_eq!(edited["vm_history"].as_array().unwrap().len(), 2);

    let switch = |entry_id: &str, client: &'static str| {
        app.post_json(
            "/api/session/history/switch",
            client,
            json!({ "entry_id": entry_id }),
        )
    };
    // Back to the first version of the first message: its later turn (v2 of the second) is back.
    let (status, body) = switch(&first_v1, "vera").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["history_length"], 4);
    chat(json!({"message": "probe after first switch", "stream": false})).await;
    let seen = user_messages(&app.model.requests_for("probe after first switch")[0]);
    assert_eq!(
        seen,
        ["apple one", "banana two", "probe after first switch"]
    );
    // The probe turn belongs to this version now; the first version of "banana two" is
    // reachable from here, the edited first message is kept as a version too.
    let (status, body) = switch(&second_v1, "vera").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["history_length"], 4,
        "apple one + the first banana two exchange"
    );
    let (status, _) = switch(&second_v1, "vera").await;
    assert_eq!(
        status, 200,
        "switching to the current version changes nothing"
    );
    let (status, body) = switch("msg_unknown", "vera").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = switch(&second_v2, "mallory").await;
    assert_eq!(status, 404, "another client's versions are not reachable");
    let (status, _) = switch("", "vera").await;
    assert_eq!(status, 400);

    // The versions survive a restart; so does the switched history.
    let app = app.restart();
    let (status, body) = app
        .post_json(
            "/api/session/history/switch",
            "vera",
            json!({ "entry_id": second_v2 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = app
        .post_json(
            "/api/session/history/switch",
            "vera",
            json!({ "entry_id": "cherry-not-an-id" }),
        )
        .await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("cherry-not-an-id"));
    let (status, info) = app.get("/api/session/boot", "vera").await;
    assert_eq!(status, 200);
    let users: Vec<&str> = info["vm_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["role"] == "user")
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(
        users,
        ["apple one", "banana two", "probe after first switch"]
    );
    let edited_first = user_id(&edited, "cherry edited");
    let (status, body) = app
        .post_json(
            "/api/session/history/switch",
            "vera",
            json!({ "entry_id": edited_first }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["history_length"], 2,
        "the edited first message and its reply"
    );
}

#[tokio::test]
async fn the_agent_answers_as_an_openai_compatible_model() {
    let app = TestApp::spawn();
    let url = format!("{}/v1/chat/completions?client_id=oai", app.url);
    let body = json!({
        "model": "okcvm",
        "messages": [
            {"role": "system", "content": "ignored: the agent has its own prompt"},
            {"role": "user", "content": [{"type": "text", "text": "hello agent"}]},
        ],
    });
    let response = app.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "okcvm");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello agent"
    );
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["messages"][1]["content"] = json!("stream please");
    let text = app
        .http
        .post(&url)
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let content: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "echo: stream please");
    assert!(text.contains("\"finish_reason\":\"stop\""), "{text}");

    // The server keeps the conversation: the second request's history holds the first.
    let request = &app.model.requests_for("stream please")[0];
    assert!(
        serde_json::to_string(request)
            .unwrap()
            .contains("hello agent"),
        "the session's history carries over"
    );
    for bad in [
        json!({"messages": []}),
        json!({"messages": [{"role": "assistant", "content": "yo"}]}),
        json!({"messages": [{"role": "user", "content": "   "}]}),
        json!({"messages": "not a list"}),
    ] {
        let response = app.http.post(&url).json(&bad).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        // OpenAI's error envelope, which the SDKs read.
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    let models: serde_json::Value = app
        .http
        .get(format!("{}/v1/models", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "okcvm-agent");

    // A failed turn is not to be retried by the SDK: it ran.
    app.model.script("FAILV1", vec![Reply::Status(500, None)]);
    let response = app
        .http
        .post(&url)
        .json(&json!({"messages": [{"role": "user", "content": "FAILV1 now"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_endpoint_failed", "{body}");
}
