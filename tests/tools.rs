//! The tool contract through the agent: every manifest tool is reachable with the manifest's
//! parameter names, and the shell runs for real in the sandboxed workspace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{tool_messages, Reply, TestApp};
use serde_json::{json, Value};

/// Arguments for each manifest tool, using exactly the manifest's parameter names.
fn sample_arguments(name: &str) -> Value {
    match name {
        "mshtools-todo_read" | "mshtools-browser_state" | "mshtools-get_available_voices" => {
            json!({})
        }
        "mshtools-todo_write" => {
            json!({"todos": [{"id": "1", "content": "plan", "status": "pending", "priority": "high"}]})
        }
        "mshtools-ipython" => json!({"code": "1 + 1", "restart": false}),
        "mshtools-read_file" => {
            json!({"file_path": "/mnt/okcomputer/output/a.txt", "offset": 1, "limit": 10})
        }
        "mshtools-edit_file" => {
            json!({"file_path": "/mnt/okcomputer/output/a.txt", "old_string": "alpha", "new_string": "beta", "replace_all": false})
        }
        "mshtools-write_file" => {
            json!({"file_path": "/mnt/okcomputer/output/a.txt", "content": "alpha\n", "append": false})
        }
        "mshtools-shell" => json!({"command": "pwd", "description": "where am I", "timeout": 5000}),
        "mshtools-browser_click" => json!({"element_index": 1}),
        "mshtools-browser_find" => json!({"keyword": "okcvm", "skip": 0}),
        "mshtools-browser_input" => json!({"element_index": 1, "content": "text"}),
        "mshtools-browser_scroll_down" | "mshtools-browser_scroll_up" => {
            json!({"scroll_amount": 300})
        }
        "mshtools-browser_visit" => json!({"url": "http://127.0.0.1:9/", "citation_id": "c1"}),
        "mshtools-web_search" => json!({"queries": ["okcvm"]}),
        "mshtools-image_search" => json!({"queries": ["okcvm"], "total_count": 2}),
        "mshtools-generate_image" => {
            json!({"description": "a cat", "output_file": "/mnt/okcomputer/output/cat.png"})
        }
        "mshtools-generate_speech" => {
            json!({"text": "hi", "voice_id": "v1", "output_path": "/mnt/okcomputer/output/hi.mp3"})
        }
        "mshtools-generate_sound_effects" => {
            json!({"description": "rain", "duration": 2, "output_path": "/mnt/okcomputer/output/rain.mp3"})
        }
        "mshtools-get_data_source_desc" => json!({"data_source_name": "yahoo_finance"}),
        "mshtools-get_data_source" => {
            json!({"data_source_name": "yahoo_finance", "api_name": "quote", "params": {"symbol": "X"}})
        }
        "mshtools-deploy_website" => {
            json!({"type": "static", "local_dir": "/mnt/okcomputer/output"})
        }
        "mshtools-slides_generator" => {
            json!({"file_path": "/mnt/okcomputer/output/deck.pptx", "content": "<section><h1>Hi</h1></section>"})
        }
        other => panic!("no sample arguments for {other}: the manifest changed"),
    }
}

#[tokio::test]
async fn every_manifest_tool_is_reachable_with_the_manifest_parameter_names() {
    let app = TestApp::spawn_with(|c| c.llm.max_steps = 30);
    let spec = okcvm::spec::Spec::builtin().unwrap();
    assert_eq!(spec.tools.len(), 24);
    // write_file first so that read_file and edit_file find the file.
    let mut names: Vec<String> = spec.tool_names();
    names.sort_by_key(|n| n != "mshtools-write_file");
    let mut script: Vec<Reply> = names
        .iter()
        .map(|name| Reply::tool(name, sample_arguments(name)))
        .collect();
    script.push(Reply::text("tour complete"));
    app.model.script("TOUR", script);
    let (status, body) = app.chat_json("tourist", "TOUR all tools").await;
    assert_eq!(status, 200, "{body}");
    let calls = body["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 24);
    for call in calls {
        let output = call["tool_output"].as_str().unwrap();
        let name = call["tool_name"].as_str().unwrap();
        for wrong in [
            "unknown tool",
            "missing required",
            "invalid arguments",
            "not valid JSON",
        ] {
            assert!(!output.contains(wrong), "{name}: {output}");
        }
        if call["status"] == "error" {
            // The tour's output folder has no index.html: a real check of the deploy tool.
            // The media tools have no endpoint configured here: they say which one they need.
            let expected = match name {
                "mshtools-deploy_website" => "no index.html",
                "mshtools-generate_image"
                | "mshtools-generate_speech"
                | "mshtools-get_available_voices"
                | "mshtools-generate_sound_effects" => "needs an endpoint",
                "mshtools-web_search" | "mshtools-image_search" => "needs a search provider",
                // A loopback address, refused by default; about:blank has nothing to click.
                "mshtools-browser_visit" => "private network address",
                "mshtools-browser_click" | "mshtools-browser_input" => "no element [1] in view",
                "mshtools-get_data_source_desc" | "mshtools-get_data_source" => {
                    "no data source \"yahoo_finance\""
                }
                other => panic!("{other} failed: {output}"),
            };
            assert!(output.contains(expected), "{name}: {output}");
        }
    }
    let by_name =
        |n: &str| calls.iter().find(|c| c["tool_name"] == n).unwrap()["tool_output"].clone();
    assert_eq!(
        by_name("mshtools-shell"),
        "/mnt/okcomputer\n\n[exit code: 0]"
    );
    assert_eq!(by_name("mshtools-read_file"), "     1\talpha\n");
    assert!(by_name("mshtools-todo_write")
        .as_str()
        .unwrap()
        .contains("\"plan\""));
}

#[tokio::test]
async fn shell_pipes_exit_codes_and_timeouts() {
    let app = TestApp::spawn();
    app.model.script(
        "SHELL",
        vec![
            Reply::tool(
                "mshtools-shell",
                json!({"command": "echo a | tr a b && echo done > out.txt; cat out.txt"}),
            ),
            Reply::tool(
                "mshtools-shell",
                json!({"command": "echo oops >&2; exit 7"}),
            ),
            Reply::tool(
                "mshtools-shell",
                json!({"command": "sleep 100 & sleep 100", "timeout": 300}),
            ),
            Reply::text("ok"),
        ],
    );
    let started = std::time::Instant::now();
    let (status, body) = app.chat_json("sheller", "SHELL run").await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let results = tool_messages(&app.model.requests_for("SHELL")[3]);
    assert_eq!(results[0], "b\ndone\n\n[exit code: 0]");
    assert_eq!(results[1], "Error: oops\n\n[exit code: 7]");
    assert!(
        results[2].starts_with("Error: (no output)\n[timed out after 300 ms"),
        "{}",
        results[2]
    );
}

#[tokio::test]
async fn file_tools_refuse_paths_outside_the_workspace() {
    let app = TestApp::spawn();
    let outside = app.dir.path().join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();
    let workspace = app.workspace_of("guard");
    std::fs::create_dir_all(&workspace).unwrap();
    std::os::unix::fs::symlink(app.dir.path(), workspace.join("escape")).unwrap();
    app.model.script(
        "ESCAPE",
        vec![
            Reply::tool("mshtools-read_file", json!({"file_path": outside.to_str().unwrap()})),
            Reply::tool("mshtools-read_file", json!({"file_path": "/mnt/okcomputer/../../etc/passwd"})),
            Reply::tool("mshtools-read_file", json!({"file_path": "/mnt/okcomputer/escape/outside.txt"})),
            Reply::tool("mshtools-write_file", json!({"file_path": "/mnt/okcomputer/escape/new.txt", "content": "x"})),
            Reply::tool("mshtools-edit_file", json!({"file_path": "/mnt/okcomputer/escape/outside.txt", "old_string": "secret", "new_string": "owned"})),
            Reply::text("blocked"),
        ],
    );
    let (status, _) = app.chat_json("guard", "ESCAPE attempt").await;
    assert_eq!(status, 200);
    let results = tool_messages(&app.model.requests_for("ESCAPE")[5]);
    assert_eq!(results.len(), 5);
    for result in &results {
        assert!(
            result.starts_with("Error: ") && result.contains("outside /mnt/okcomputer/"),
            "{result}"
        );
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
    assert!(!app.dir.path().join("new.txt").exists());
}

#[tokio::test]
async fn read_file_shows_images_to_a_vision_model() {
    let app = TestApp::spawn_with(|c| c.tools.vision = true);
    let workspace = app.workspace_of("viewer");
    std::fs::create_dir_all(workspace.join("output")).unwrap();
    // A 1x1 PNG.
    let png: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0,
        0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44,
        0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0,
        0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    std::fs::write(workspace.join("output/dot.png"), png).unwrap();
    app.model.script(
        "LOOK",
        vec![
            Reply::tool(
                "mshtools-read_file",
                json!({"file_path": "/mnt/okcomputer/output/dot.png"}),
            ),
            Reply::text("a dot"),
        ],
    );
    let (status, body) = app.chat_json("viewer", "LOOK at it").await;
    assert_eq!(status, 200, "{body}");
    let request = &app.model.requests_for("LOOK")[1];
    let messages = request["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][1]["type"], "image_url");
    assert!(last["content"][1]["image_url"]["url"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    assert!(tool_messages(request)[0].contains("PNG image, 1x1 pixels"));
    // The next turn still counts its own message as the latest exchange.
    let (status, _) = app.chat_json("viewer", "and now?").await;
    assert_eq!(status, 200);
}
