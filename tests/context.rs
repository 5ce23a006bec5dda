//! Long tasks against the real server and the scripted mock model: a long conversation never
//! sends a request over the window and keeps its first message's facts through summaries;
//! old tool outputs are shortened before anything is summarised; compaction on request; the
//! whole history page by page; and Ollama's native API with the window it must be given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mock_model::{is_summary_request, MockModel, Reply};
use common::{types, TestApp};
use okcvm::config::Config;
use serde_json::{json, Value};

/// The size of a request in the mock's tokens (four bytes each), as the mock reports it.
fn request_tokens(request: &Value) -> usize {
    serde_json::to_string(request).unwrap().len() / 4
}

/// The system message of a request.
fn system_text(request: &Value) -> String {
    request["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Plants a text file of `bytes` in `client`'s workspace.
fn plant_big_file(app: &TestApp, client: &str, bytes: usize) {
    let root = app.workspace_of(client);
    std::fs::create_dir_all(&root).unwrap();
    let line = "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    std::fs::write(root.join("big.txt"), line.repeat(bytes / line.len() + 1)).unwrap();
}

fn read_big_file() -> Reply {
    Reply::tool(
        "mshtools-read_file",
        json!({"file_path": "/mnt/okcomputer/big.txt"}),
    )
}

#[tokio::test]
async fn a_300_turn_conversation_stays_in_its_window_and_keeps_its_first_facts() {
    const WINDOW: usize = 24_576;
    let app = TestApp::spawn_with(|c| c.llm.context_window_tokens = Some(WINDOW));
    app.model.count_tokens();
    plant_big_file(&app, "long", 12_000);
    let first = "I am Ada. The key fact is FACT-BLUE-TIGER: the site must be deployed to Mars. \
                 Keep it in mind for the whole task.";
    let (status, _) = app.chat_json("long", first).await;
    assert_eq!(status, 200);
    let filler = "Please continue with the next part of the work and report briefly. ".repeat(6);
    for turn in 1..300 {
        let message = if turn % 5 == 0 {
            let token = format!("READ{turn}X");
            app.model.script(
                &token,
                vec![read_big_file(), Reply::text("I read the file again.")],
            );
            format!("{token} read big.txt once more. {filler}")
        } else {
            format!("Step {turn}. {filler}")
        };
        let (status, body) = app.chat_json("long", &message).await;
        assert_eq!(status, 200, "turn {turn}: {body}");
    }
    let requests = app.model.requests();
    let biggest = requests.iter().map(request_tokens).max().unwrap();
    assert!(
        biggest <= WINDOW,
        "a request of {biggest} tokens passed the window of {WINDOW}"
    );
    let summaries = app.model.summary_requests();
    assert!(
        !summaries.is_empty(),
        "the conversation was never summarised"
    );
    for summary in &summaries {
        let asked = serde_json::to_string(summary).unwrap();
        assert!(
            asked.contains("FACT-BLUE-TIGER"),
            "a summary request lost the first message's fact"
        );
    }
    // The model still reads the fact, from the summary in the system message.
    let (_, _) = app.chat_json("long", "Where must the site go?").await;
    let last = app.model.requests().last().unwrap().clone();
    assert!(!is_summary_request(&last));
    assert!(system_text(&last).contains("FACT-BLUE-TIGER"));
    assert!(!serde_json::to_string(&last).unwrap().contains("I am Ada"));
    let (_, info) = app.get("/api/session/info", "long").await;
    let context = &info["context"];
    assert_eq!(context["window_tokens"], WINDOW);
    assert!(context["compactions"].as_u64().unwrap() >= 1, "{context}");
    let used = context["used_tokens"].as_u64().unwrap() as usize;
    assert!(used > 0 && used < WINDOW, "{context}");
    // Nothing was lost: the first message is still in the stored history.
    let (status, page) = app.get("/api/session/history?limit=500", "long").await;
    assert_eq!(status, 200);
    assert!(page["history_length"].as_u64().unwrap() > 600);
    let mut oldest = page["entries"][0].clone();
    let mut more = page["has_more"].as_bool().unwrap();
    while more {
        let id = oldest["id"].as_str().unwrap();
        let (_, page) = app
            .get(
                &format!("/api/session/history?limit=500&before={id}"),
                "long",
            )
            .await;
        oldest = page["entries"][0].clone();
        more = page["has_more"].as_bool().unwrap();
    }
    assert_eq!(oldest["content"], first);
}

#[tokio::test]
async fn one_long_task_is_compacted_inside_its_turn_and_every_request_keeps_the_task() {
    const WINDOW: usize = 24_576;
    let app = TestApp::spawn_with(|c| {
        c.llm.context_window_tokens = Some(WINDOW);
        c.llm.max_steps = 60;
    });
    app.model.count_tokens();
    plant_big_file(&app, "task", 12_000);
    let mut replies: Vec<Reply> = (0..45).map(|_| read_big_file()).collect();
    replies.push(Reply::text("All 45 reads are done."));
    app.model.script("LONGTASK", replies);
    let frames = app
        .chat_sse(
            "task",
            "LONGTASK read big.txt 45 times. The key fact is FACT-RIVER-7.",
        )
        .await;
    let last = frames
        .iter()
        .rev()
        .find(|f| f.data["type"] == "final")
        .unwrap();
    assert_eq!(last.data["payload"]["reply"], "All 45 reads are done.");
    let compactions = frames
        .iter()
        .filter(|f| f.data["type"] == "context_compacted")
        .count();
    assert!(
        compactions >= 1,
        "a 45-step turn in a small window was never compacted"
    );
    let requests = app.model.requests();
    // The agent's requests (not the summaries, nor the start-up probe of the endpoint).
    let turn_requests = requests
        .iter()
        .filter(|r| !is_summary_request(r) && r["messages"][0]["role"] == "system");
    for request in turn_requests {
        assert!(request_tokens(request) <= WINDOW);
        let first = &request["messages"][1];
        assert_eq!(first["role"], "user", "{first}");
        assert!(first["content"].as_str().unwrap().contains("FACT-RIVER-7"));
    }
}

#[tokio::test]
async fn old_tool_outputs_are_shortened_before_anything_is_summarised() {
    let app = TestApp::spawn_with(|c| {
        c.llm.context_window_tokens = Some(32_768);
        c.llm.keep_tool_outputs_steps = 2;
    });
    plant_big_file(&app, "tools", 24_000);
    let mut compactions = Vec::new();
    for turn in 0..12 {
        let token = format!("BIG{turn}Z");
        app.model
            .script(&token, vec![read_big_file(), Reply::text("read")]);
        let frames = app
            .chat_sse("tools", &format!("{token} read the big file"))
            .await;
        assert_eq!(types(&frames).last().map(String::as_str), Some("stop"));
        compactions.extend(
            frames
                .into_iter()
                .filter(|f| f.data["type"] == "context_compacted")
                .map(|f| f.data),
        );
        if !compactions.is_empty() {
            break;
        }
    }
    let first = compactions
        .first()
        .expect("the context filled up and was compacted");
    assert_eq!(first["summarized"], false, "{first}");
    assert!(first["after_tokens"].as_u64() < first["before_tokens"].as_u64());
    assert!(app.model.summary_requests().is_empty());
    // The next request sends the old outputs shortened, the latest ones whole.
    let last = app.model.requests().last().unwrap().clone();
    let outputs: Vec<String> = common::tool_messages(&last);
    assert!(outputs.len() >= 2);
    assert!(outputs[0].len() < 3000 && outputs[0].contains("run the tool again"));
    assert!(outputs.last().unwrap().len() > 20_000);
    // The record is in the history; the full output is still there.
    let (_, page) = app.get("/api/session/history?limit=500", "tools").await;
    let entries = page["entries"].as_array().unwrap();
    let record = entries
        .iter()
        .find(|e| e["compaction"].is_object())
        .expect("a compaction entry");
    assert_eq!(record["role"], "system");
    let whole = entries.iter().find(|e| e["role"] == "tool").unwrap();
    assert!(whole["content"].as_str().unwrap().len() > 20_000);
}

#[tokio::test]
async fn compaction_on_request_summarises_all_but_the_latest_exchange() {
    let app = TestApp::spawn();
    for message in [
        "Build a site about FACT-OWLS.",
        "Make the header green.",
        "Now add a page.",
    ] {
        assert_eq!(app.chat_json("ask", message).await.0, 200);
    }
    let url = app.api("/api/session/compact", "ask");
    let response = app
        .http
        .post(&url)
        .json(&json!({"instructions": "keep FACT-COLOURS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["summarized"], true, "{body}");
    assert_eq!(body["context"]["compactions"], 1);
    let asked = serde_json::to_string(&app.model.summary_requests()[0]).unwrap();
    assert!(asked.contains("FACT-OWLS") && asked.contains("keep FACT-COLOURS"));
    assert!(
        !asked.contains("Now add a page"),
        "the latest exchange stays whole"
    );

    app.chat_json("ask", "And a footer?").await;
    let next = app.model.requests().last().unwrap().clone();
    assert!(system_text(&next).contains("FACT-OWLS"));
    let users: Vec<&str> = next["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(users, ["Now add a page.", "And a footer?"]);

    // Stop ends a compaction that takes long, and nothing changes.
    app.model
        .delay_summaries(std::time::Duration::from_secs(30));
    let slow = tokio::spawn({
        let (http, url) = (app.http.clone(), url.clone());
        async move { http.post(&url).json(&json!({})).send().await.unwrap() }
    });
    let stopped = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (status, _) = app.post_json("/api/chat/stop", "ask", json!({})).await;
        if status == 200 {
            break;
        }
        assert!(
            stopped.elapsed().as_secs() < 10,
            "the compaction never started"
        );
    }
    let answer = slow.await.unwrap();
    assert_eq!(answer.status(), 409);
    assert!(stopped.elapsed().as_secs() < 10);
    let (_, info) = app.get("/api/session/info", "ask").await;
    assert_eq!(
        info["context"]["compactions"], 1,
        "the stopped compaction left nothing"
    );
    app.model.delay_summaries(std::time::Duration::ZERO);

    // Operators see them in /metrics.
    let page = app.text_of("/metrics").await;
    assert!(
        page.contains("okcvm_context_compactions_total{kind=\"summarized\"} 1"),
        "{page}"
    );

    // Bad bodies and a conversation with nothing older than its one exchange.
    let bad = app
        .http
        .post(&url)
        .body("{\"instructions\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    app.chat_json("fresh", "hello").await;
    let (status, body) = app
        .post_json("/api/session/compact", "fresh", json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("nothing"));
}

#[tokio::test]
async fn the_whole_history_is_reachable_page_by_page() {
    let model = MockModel::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path(), &model.url);
    config.sandbox.allow_unsandboxed = true;
    let mut history = okcvm::agent::Conversation::new();
    for n in 0..500 {
        history.push_user(&format!("message {n}"));
        history.push_assistant(&format!("reply {n}"), Vec::new(), Default::default());
    }
    {
        let store = okcvm::store::Store::open(&config.store.path).unwrap();
        let key = okcvm::auth::SessionKey::new(okcvm::auth::Owner::client("pager"), "default");
        store.save_history(&key, 0, history.entries()).unwrap();
        store.flush().unwrap();
    }
    let app = TestApp::spawn_on(config, model, dir);
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/api/session/history?limit=100".to_string();
    loop {
        let (status, page) = app.get(&path, "pager").await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["history_length"], 1000);
        let entries = page["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 100);
        let ids: Vec<String> = entries
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        seen.splice(0..0, ids);
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        path = format!("/api/session/history?limit=100&before={}", seen[0]);
    }
    let stored: Vec<String> = history.entries().iter().map(|e| e.id.clone()).collect();
    assert_eq!(seen, stored, "every entry once, in order");
    let (status, _) = app
        .get("/api/session/history?before=msg_nope", "pager")
        .await;
    assert_eq!(status, 404);
    for bad in ["limit=0", "limit=501", "limit=x"] {
        let (status, _) = app
            .get(&format!("/api/session/history?{bad}"), "pager")
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    // The final payload keeps its 25-entry tail for free-OKC.
    let (_, body) = app.chat_json("pager", "one more").await;
    assert_eq!(body["vm_history"].as_array().unwrap().len(), 25);
}

#[tokio::test]
async fn ollama_gets_its_native_api_with_the_window_it_can_take() {
    let model = MockModel::start();
    model.set_ollama_context_length(12_288);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path(), &model.url);
    config.sandbox.allow_unsandboxed = true;
    config.llm.provider = okcvm::config::context::Provider::Ollama;
    config.llm.context_window_tokens = Some(32_768);
    config.llm.keep_alive = Some("30m".into());
    let app = TestApp::spawn_on(config, model, dir);
    app.model.script(
        "OLLAMA",
        vec![Reply::ToolThenText {
            name: "mshtools-todo_read".into(),
            text: "Nothing to do.".into(),
        }],
    );
    let frames = app.chat_sse("llama", "OLLAMA what is on the list?").await;
    let kinds = types(&frames);
    assert!(kinds.contains(&"tool_completed".to_string()), "{kinds:?}");
    let last = frames
        .iter()
        .rev()
        .find(|f| f.data["type"] == "final")
        .unwrap();
    assert_eq!(last.data["payload"]["reply"], "Nothing to do.");
    assert!(last.data["payload"]["meta"]["tokensIn"].as_u64().unwrap() > 0);
    let requests = app.model.requests_for("OLLAMA");
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request["options"]["num_ctx"], 12_288, "capped by /api/show");
        assert_eq!(request["keep_alive"], "30m");
        assert_eq!(request["stream"], true);
        assert!(request["tools"].as_array().unwrap().len() >= 24);
    }
    let messages = requests[1]["messages"].as_array().unwrap();
    let call = messages
        .iter()
        .find(|m| m["tool_calls"].is_array())
        .unwrap();
    assert!(call["tool_calls"][0]["function"]["arguments"].is_object());
    let result = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(result["tool_name"], "mshtools-todo_read");
    let (_, info) = app.get("/api/session/info", "llama").await;
    assert_eq!(info["context"]["window_tokens"], 12_288);
    // An error line in the stream ends the turn with the model's words.
    app.model.script("BROKEN", vec![Reply::Status(404, None)]);
    let (status, body) = app.chat_json("llama", "BROKEN").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("mock failure 404"));
}
