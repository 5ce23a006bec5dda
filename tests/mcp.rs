//! MCP servers nobody here wrote, driven through the agent with the scripted model:
//! `@modelcontextprotocol/server-everything` (npm) over stdio in each session's sandbox and
//! over Streamable HTTP, and `mcp-server-time` (PyPI) shared by the whole server; a server
//! that fails at start; a long call stopped; MCP tools under the permission policy.
//! `.ci/run` installs both servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Reply, TestApp};
use okcvm::config::mcp::{McpScope, McpServerConfig, McpTransport};
use serde_json::{json, Value};

const EVERYTHING: &str = "mcp-server-everything";
const VENV_PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python-pptx/bin/python");

fn everything_stdio() -> McpServerConfig {
    McpServerConfig {
        name: "everything".into(),
        command: EVERYTHING.into(),
        args: vec!["stdio".into()],
        ..McpServerConfig::default()
    }
}

/// Waits until every server has left `starting`; their statuses by name.
async fn servers_settled(app: &TestApp) -> Value {
    for _ in 0..300 {
        let (status, body) = app.get("/api/mcp/servers", "ops").await;
        assert_eq!(status, 200, "{body}");
        let servers = body["servers"].as_array().unwrap();
        if servers.iter().all(|s| s["status"] != "starting") {
            return servers
                .iter()
                .map(|s| (s["name"].as_str().unwrap().to_string(), s.clone()))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the MCP servers never finished starting");
}

fn tool_results(app: &TestApp, token: &str) -> Vec<String> {
    let requests = app.model.requests_for(token);
    common::tool_messages(requests.last().unwrap())
}

#[tokio::test]
async fn a_stdio_server_in_the_sandbox_offers_its_tools_to_the_agent() {
    assert!(
        which(EVERYTHING),
        "{EVERYTHING} is needed (.ci/run installs @modelcontextprotocol/server-everything)"
    );
    let app = TestApp::spawn_with(|c| c.mcp.servers.push(everything_stdio()));
    let servers = servers_settled(&app).await;
    let everything = &servers["everything"];
    assert_eq!(everything["status"], "ready", "{everything}");
    let tools: Vec<&str> = everything["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tools.contains(&"mcp__everything__echo"), "{tools:?}");
    assert!(tools.contains(&"mcp__everything__get-sum"), "{tools:?}");
    app.model.script(
        "MCPCALLS",
        vec![
            Reply::tool("mcp__everything__echo", json!({"message": "hi there"})),
            Reply::tool("mcp__everything__get-sum", json!({"a": 2, "b": 3})),
            Reply::tool("mcp__everything__get-sum", json!({"a": "two"})),
            Reply::text("done"),
        ],
    );
    let (status, body) = app.chat_json("mia", "MCPCALLS").await;
    assert_eq!(status, 200, "{body}");
    let requests = app.model.requests_for("MCPCALLS");
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(offered.contains(&"mcp__everything__echo"));
    assert!(offered.contains(&"mshtools-shell"));
    let results = tool_results(&app, "MCPCALLS");
    assert!(results[0].contains("Echo: hi there"), "{results:?}");
    assert!(results[1].contains("5"), "{results:?}");
    assert!(results[2].contains("schema"), "{results:?}");
    let calls = body["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["status"], "success");
    assert_eq!(calls[2]["status"], "error");
    let (_, info) = app.get("/api/session/info", "mia").await;
    assert!(info["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "mcp__everything__echo"));
}

#[tokio::test]
async fn a_long_mcp_call_is_stopped_with_the_turn() {
    let app = TestApp::spawn_with(|c| c.mcp.servers.push(everything_stdio()));
    servers_settled(&app).await;
    app.model.script(
        "MCPLONG",
        vec![
            Reply::tool(
                "mcp__everything__trigger-long-running-operation",
                json!({"duration": 60, "steps": 60}),
            ),
            Reply::text("never"),
        ],
    );
    let turn = app.turn_in_background("/api/chat", "ned", "MCPLONG");
    for _ in 0..200 {
        if app.busy_owners().await.contains(&"ned".to_string())
            && app.model.requests_for("MCPLONG").len() == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let (status, _) = app.post_json("/api/chat/stop", "ned", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(turn.await.unwrap(), 409);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_fails_at_start_is_reported_and_the_rest_works() {
    let app = TestApp::spawn_with(|c| {
        c.mcp.servers.push(McpServerConfig {
            name: "broken".into(),
            command: "/bin/sh".into(),
            args: vec!["-c".into(), "echo boom-at-start >&2; exit 3".into()],
            sandbox: false,
            ..McpServerConfig::default()
        });
    });
    let servers = servers_settled(&app).await;
    let broken = &servers["broken"];
    assert_eq!(broken["status"], "failed", "{broken}");
    assert!(
        broken["last_error"]
            .as_str()
            .unwrap()
            .contains("boom-at-start"),
        "{broken}"
    );
    app.model.script(
        "BROKEN",
        vec![
            Reply::tool("mcp__broken__anything", json!({})),
            Reply::tool("mshtools-todo_read", json!({})),
            Reply::text("ok"),
        ],
    );
    let (status, _) = app.chat_json("ola", "BROKEN").await;
    assert_eq!(status, 200);
    let results = tool_results(&app, "BROKEN");
    assert!(
        results[0].contains("not available") && results[0].contains("boom-at-start"),
        "{results:?}"
    );
    assert!(!results[1].starts_with("Error"), "{results:?}");
}

#[tokio::test]
async fn a_shared_python_server_answers_every_session() {
    assert!(
        std::process::Command::new(VENV_PYTHON)
            .args(["-c", "import mcp_server_time"])
            .status()
            .is_ok_and(|s| s.success()),
        "mcp-server-time is needed (.ci/run installs it into target/python-pptx)"
    );
    let app = TestApp::spawn_with(|c| {
        c.mcp.servers.push(McpServerConfig {
            name: "time".into(),
            command: VENV_PYTHON.into(),
            args: vec![
                "-m".into(),
                "mcp_server_time".into(),
                "--local-timezone".into(),
                "UTC".into(),
            ],
            sandbox: false,
            scope: McpScope::Shared,
            ..McpServerConfig::default()
        });
    });
    let servers = servers_settled(&app).await;
    assert_eq!(servers["time"]["status"], "ready", "{}", servers["time"]);
    for client in ["pat", "quin"] {
        let token = format!("TIME-{client}");
        app.model.script(
            &token,
            vec![
                Reply::tool(
                    "mcp__time__convert_time",
                    json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
                ),
                Reply::text("ok"),
            ],
        );
        let (status, _) = app.chat_json(client, &token).await;
        assert_eq!(status, 200);
        let results = tool_results(&app, &token);
        assert!(results[0].contains("21:00"), "{results:?}");
    }
}

#[tokio::test]
async fn a_streamable_http_server_is_reached_over_loopback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new(EVERYTHING)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start server-everything");
    let url = format!("http://127.0.0.1:{port}/mcp");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = TestApp::spawn_with(|c| {
        c.mcp.servers.push(McpServerConfig {
            name: "remote".into(),
            transport: McpTransport::Http,
            url: url.clone(),
            scope: McpScope::Shared,
            tools: vec!["echo".into()],
            ..McpServerConfig::default()
        });
    });
    let servers = servers_settled(&app).await;
    assert_eq!(
        servers["remote"]["tools"],
        json!(["mcp__remote__echo"]),
        "{}",
        servers["remote"]
    );
    app.model.script(
        "REMOTE",
        vec![
            Reply::tool("mcp__remote__echo", json!({"message": "over http"})),
            Reply::text("ok"),
        ],
    );
    let (status, _) = app.chat_json("rae", "REMOTE").await;
    assert_eq!(status, 200);
    assert!(tool_results(&app, "REMOTE")[0].contains("Echo: over http"));
    server.kill().await.ok();
}

#[tokio::test]
async fn an_untrusted_servers_tools_ask_first() {
    let app = TestApp::spawn_with(|c| {
        c.permissions.mode = okcvm::permissions::Mode::AskRisky;
        c.mcp.servers.push(everything_stdio());
    });
    servers_settled(&app).await;
    app.model.script(
        "ASKMCP",
        vec![
            Reply::tool("mcp__everything__echo", json!({"message": "may I"})),
            Reply::text("ok"),
        ],
    );
    let turn = app.turn_in_background("/api/chat", "sal", "ASKMCP");
    let pending = app.pending_approval("sal", "default").await;
    assert_eq!(pending["tool_name"], "mcp__everything__echo", "{pending}");
    let (status, _) = app
        .post_json(
            "/api/chat/approve",
            "sal",
            json!({"approval_id": pending["approval_id"], "decision": "approve"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(turn.await.unwrap(), 200);
    assert!(tool_results(&app, "ASKMCP")[0].contains("Echo: may I"));
}

fn which(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn this_server_is_an_mcp_server_for_other_agents() {
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;

    let app = TestApp::spawn();
    app.model.script(
        "DELEGATED",
        vec![
            Reply::tool(
                "mshtools-write_file",
                json!({"file_path": "/mnt/okcomputer/output/report.md", "content": "# Report\n"}),
            ),
            Reply::text("The report is written."),
        ],
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client_id = http::HeaderName::from_static("x-okc-client-id");
    let headers = [(client_id, http::HeaderValue::from_static("agent-7"))].into();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.url))
            .custom_headers(headers),
    );
    let client = ().serve(transport).await.expect("cannot initialise");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "okcvm_task");
    let mut arguments = serde_json::Map::new();
    arguments.insert("message".into(), json!("DELEGATED write a report"));
    let result = client
        .call_tool(CallToolRequestParams::new("okcvm_task").with_arguments(arguments))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let structured = result.structured_content.unwrap();
    assert_eq!(structured["reply"], "The report is written.");
    let conversation = structured["conversation_id"].as_str().unwrap().to_string();
    assert!(conversation.starts_with("mcp-"), "{structured}");
    // The work happened in the caller's own conversation.
    let (_, list) = app.get("/api/conversations", "agent-7").await;
    assert!(list.to_string().contains(&conversation), "{list}");
    // Unknown callers do not get in when sign-in is on.
    client.cancel().await.ok();
    let locked = TestApp::spawn_with(|c| c.auth.mode = okcvm::config::AuthMode::Token);
    let refused = reqwest::Client::new()
        .post(format!("{}/mcp", locked.url))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn okcvm_mcp_serve_relays_tasks_over_stdio() {
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;
    use rmcp::ServiceExt;

    let app = TestApp::spawn();
    app.model
        .script("RELAYED", vec![Reply::text("Relayed and done.")]);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_okcvm"));
    command.args([
        "mcp-serve",
        "--server",
        &app.url,
        "--client-id",
        "desk-agent",
    ]);
    let transport = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
        .0;
    let client = ().serve(transport).await.expect("cannot initialise");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools[0].name, "okcvm_task");
    let mut arguments = serde_json::Map::new();
    arguments.insert("message".into(), json!("RELAYED please"));
    arguments.insert("conversation_id".into(), json!("desk-1"));
    let result = client
        .call_tool(CallToolRequestParams::new("okcvm_task").with_arguments(arguments))
        .await
        .unwrap();
    let structured = result.structured_content.unwrap();
    assert_eq!(structured["reply"], "Relayed and done.");
    assert_eq!(structured["conversation_id"], "desk-1");
    let (_, list) = app.get("/api/conversations", "desk-agent").await;
    assert!(list.to_string().contains("desk-1"), "{list}");
    client.cancel().await.ok();
}
