//! Nothing a user did is lost: restarts, evictions and reconnects keep history, files,
//! conversations, snapshots and streams; uploads land where the model is told they are.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{parse_sse, tool_messages, types, upload_form, Reply, TestApp};
use futures_util::StreamExt;
use serde_json::{json, Value};

async fn upload(app: &TestApp, client: &str, files: &[(&str, Vec<u8>)]) -> (u16, Value) {
    let response = app
        .http
        .post(app.api("/api/session/files", client))
        .multipart(upload_form(files))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_restart_keeps_history_conversations_files_and_snapshots() {
    let app = TestApp::spawn();
    app.model.script(
        "KEEP",
        vec![
            Reply::tool(
                "mshtools-write_file",
                json!({"file_path": "/mnt/okcomputer/output/keep.txt", "content": "kept"}),
            ),
            Reply::text("saved it"),
        ],
    );
    let (status, body) = app.chat_json("ann", "KEEP this").await;
    assert_eq!(status, 200, "{body}");
    // `latest_snapshot` is the commit id; the list carries its label.
    let snapshot = body["workspace_state"]["latest_snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(body["workspace_state"]["snapshots"][0]["id"], snapshot);
    assert_eq!(
        body["workspace_state"]["snapshots"][0]["label"],
        "KEEP this"
    );
    let (status, _) = upload(&app, "ann", &[("notes.txt", b"hello notes".to_vec())]).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post_json(
            "/api/conversations",
            "ann",
            json!({"id": "other", "title": "Other", "pinned": true}),
        )
        .await;
    assert_eq!(status, 200);
    // PUT creates a conversation that does not exist yet.
    let response = app
        .http
        .put(app.api("/api/conversations/saved-by-put", "ann"))
        .json(&json!({"title": "Saved by PUT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let app = app.restart();
    let (_, info) = app.get("/api/session/info", "ann").await;
    assert_eq!(info["history_length"], 4);
    let (status, body) = app.chat_json("ann", "what did you save?").await;
    assert_eq!(status, 200, "{body}");
    let request = &app.model.requests_for("what did you save?")[0];
    let contents: Vec<&str> = common::strings(&request["messages"], "content");
    assert!(
        contents.contains(&"KEEP this") && contents.contains(&"saved it"),
        "{contents:?}"
    );
    let (_, list) = app.get("/api/conversations", "ann").await;
    let ids: Vec<&str> = common::strings(&list["conversations"], "id");
    // Turns without a conversation id created no record of an implicit `default` one.
    assert_eq!(ids, ["saved-by-put", "other"]);
    assert_eq!(list["conversations"][0]["title"], "Saved by PUT");
    assert_eq!(list["conversations"][1]["pinned"], true);
    let (_, summaries) = app.get("/api/conversations?summary=true", "ann").await;
    assert_eq!(common::strings(&summaries["conversations"], "id"), ids);
    let other = &summaries["conversations"][1];
    assert!(other["title"].is_string() && other["updated_at"].is_string());
    assert!(
        other.get("pinned").is_none(),
        "a summary leaves the console's JSON out: {other}"
    );
    let (_, files) = app.get("/api/session/files", "ann").await;
    assert_eq!(
        files["files"][0]["path"],
        "/mnt/okcomputer/upload/notes.txt"
    );
    let (_, state) = app.get("/api/session/workspace/snapshots", "ann").await;
    let ids: Vec<&str> = common::strings(&state["snapshots"], "id");
    assert!(ids.contains(&snapshot.as_str()), "{state}");
    let (status, file) = {
        let r = app
            .http
            .get(app.api(
                "/api/session/workspace/file?path=/mnt/okcomputer/output/keep.txt",
                "ann",
            ))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!((status, file.as_str()), (200, "kept"));
}

#[tokio::test]
async fn uploads_are_readable_at_the_advertised_path_and_listed_in_the_prompt() {
    let app = TestApp::spawn();
    let (status, body) = upload(&app, "uma", &[("../../data.csv", b"a,b\n1,2\n".to_vec())]).await;
    assert_eq!(status, 200, "{body}");
    let path = body["files"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(path, "/mnt/okcomputer/upload/data.csv");
    assert_eq!(body["files"][0]["size_display"], "8 B");
    assert!(body["system_prompt"]
        .as_str()
        .unwrap()
        .contains("/mnt/okcomputer/upload/data.csv"));
    app.model.script(
        "READUP",
        vec![
            Reply::tool("mshtools-read_file", json!({"file_path": path})),
            Reply::text("read"),
        ],
    );
    app.chat_json("uma", "READUP please").await;
    let requests = app.model.requests_for("READUP");
    assert_eq!(tool_messages(&requests[1])[0], "     1\ta,b\n     2\t1,2\n");
    assert!(requests[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("/mnt/okcomputer/upload/data.csv"));
}

#[tokio::test]
async fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let app = TestApp::spawn_with(|c| {
        c.uploads.max_files = 2;
        c.uploads.max_file_size_mb = 1;
    });
    let upload_dir = app.workspace_of("val").join("upload");
    for (files, want) in [
        (vec![("", b"x".to_vec())], 400),
        (vec![("..", b"x".to_vec())], 400),
        (
            vec![("a.txt", b"1".to_vec()), ("a.txt", b"2".to_vec())],
            409,
        ),
        (
            vec![
                ("a.txt", b"1".to_vec()),
                ("b.txt", b"2".to_vec()),
                ("c.txt", b"3".to_vec()),
            ],
            400,
        ),
        (
            vec![
                ("ok.txt", b"1".to_vec()),
                ("big.bin", vec![7u8; 1024 * 1024 + 1]),
            ],
            413,
        ),
    ] {
        let (status, body) = upload(&app, "val", &files).await;
        assert_eq!(status, want, "{body}");
        assert!(body["detail"].is_string());
        let left: Vec<_> = std::fs::read_dir(&upload_dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    let (status, _) = upload(
        &app,
        "val",
        &[("a.txt", b"1".to_vec()), ("b.txt", b"2".to_vec())],
    )
    .await;
    assert_eq!(status, 200);
    // Replacing an existing file does not count twice; a third name does.
    assert_eq!(
        upload(&app, "val", &[("a.txt", b"new".to_vec())]).await.0,
        200
    );
    assert_eq!(
        upload(&app, "val", &[("c.txt", b"3".to_vec())]).await.0,
        400
    );
}

#[tokio::test]
async fn snapshot_restore_and_branch_round_trip() {
    let app = TestApp::spawn();
    let write = |content: &str| {
        Reply::tool(
            "mshtools-write_file",
            json!({"file_path": "/mnt/okcomputer/doc.txt", "content": content}),
        )
    };
    app.model
        .script("V1", vec![write("version one"), Reply::text("v1")]);
    app.model
        .script("V2", vec![write("version two"), Reply::text("v2")]);
    let (_, first) = app.chat_json("sam", "V1 write").await;
    let v1 = first["workspace_state"]["latest_snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, second) = app.chat_json("sam", "V2 write").await;
    let v2 = second["workspace_state"]["latest_snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(v1, v2);
    let doc = app.workspace_of("sam").join("doc.txt");

    let (status, body) = app
        .post_json(
            "/api/session/workspace/restore",
            "sam",
            json!({"snapshot_id": v1}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "version one");
    assert_eq!(body["workspace_state"]["git"]["commit"], v1.as_str());

    let (status, body) = app
        .post_json(
            "/api/session/workspace/branch",
            "sam",
            json!({"branch": "second-try", "snapshot_id": v2}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["workspace_state"]["git"]["branch"], "second-try");
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "version two");
    let (status, _) = app
        .post_json(
            "/api/session/workspace/restore",
            "sam",
            json!({"branch": "main"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "version one");

    // A snapshot and a branch: the branch is pointed at the snapshot (created, or moved like
    // `git checkout -B`) and checked out.
    for _ in 0..2 {
        let (status, body) = app
            .post_json(
                "/api/session/workspace/restore",
                "sam",
                json!({"snapshot_id": v2, "branch": "from-v2"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["workspace_state"]["git"]["branch"], "from-v2");
        assert_eq!(body["workspace_state"]["git"]["commit"], v2.as_str());
        assert_eq!(std::fs::read_to_string(&doc).unwrap(), "version two");
    }
    let (status, _) = app
        .post_json(
            "/api/session/workspace/restore",
            "sam",
            json!({"branch": "main"}),
        )
        .await;
    assert_eq!(status, 200);

    let (status, body) = app
        .post_json(
            "/api/session/workspace/snapshots",
            "sam",
            json!({"label": "by hand"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["snapshots"][0]["label"], "by hand");
    assert_eq!(body["snapshots"][0]["id"], body["latest_snapshot"]);

    // What does not exist is 404, what is malformed 400.
    let (restore, branch) = (
        "/api/session/workspace/restore",
        "/api/session/workspace/branch",
    );
    for (path, body, want) in [
        (
            restore,
            json!({"snapshot_id": "0123456789abcdef0123456789abcdef01234567"}),
            404,
        ),
        (restore, json!({"snapshot_id": "HEAD~1"}), 404),
        (restore, json!({"branch": "nope"}), 404),
        (restore, json!({}), 400),
        (branch, json!({"branch": "../evil"}), 400),
        (branch, json!({"branch": ""}), 400),
        (branch, json!({"branch": "x", "snapshot_id": "zzz"}), 404),
        (
            "/api/session/workspace/snapshots",
            json!({"label": "l".repeat(201)}),
            400,
        ),
        (
            "/api/session/workspace/snapshots",
            json!({"label": {}}),
            400,
        ),
    ] {
        let (status, reply) = app.post_json(path, "sam", body.clone()).await;
        assert_eq!(status, want, "{path} {body} → {reply}");
    }
    // Another client's snapshot is unknown in this client's workspace.
    let (status, _) = app
        .post_json(
            "/api/session/workspace/restore",
            "eve",
            json!({"snapshot_id": v1}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn path_parameters_cannot_escape_the_workspace() {
    let app = TestApp::spawn();
    app.model.script(
        "MAKEWS",
        vec![
            Reply::tool(
                "mshtools-write_file",
                json!({"file_path": "/mnt/okcomputer/output/x.txt", "content": "x"}),
            ),
            Reply::text("made"),
        ],
    );
    app.chat_json("pat", "MAKEWS hello").await;
    let secret = app.dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    std::os::unix::fs::symlink(app.dir.path(), app.workspace_of("pat").join("escape")).unwrap();
    for path in [
        "../../secret.txt",
        "/etc/passwd",
        "%2e%2e/%2e%2e/secret.txt",
        "/mnt/okcomputer/../secret.txt",
        "escape/secret.txt",
    ] {
        let response = app
            .http
            .get(format!(
                "{}&path={path}",
                app.api("/api/session/workspace/file", "pat")
            ))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{path}: {text}");
        assert!(!text.contains("top secret"));
    }
    let (status, _) = app
        .get("/api/session/workspace/file?path=output/missing.txt", "pat")
        .await;
    assert_eq!(status, 404);
    for id in ["..", "a%2Fb", "%2e%2e", "%2e%2e%2f%2e%2e%2fstore"] {
        // Sent as is: an HTTP client would resolve the dots before the server saw them.
        let path = format!("/api/conversations/{id}?client_id=pat");
        let status = common::raw_get_status(&app.url, &path).await;
        assert!(status == 400 || status == 404, "{id}: {status}");
    }
    // Dots alone are an ordinary id: the directory is prefixed (`s-..`) and stays inside.
    let (status, body) = app.get("/api/session/info?conversation_id=..", "pat").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .get("/api/session/info?conversation_id=a/b", "pat")
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn conversations_are_separate_sessions_and_private_to_their_client() {
    let app = TestApp::spawn();
    let chat_in = |conversation: &'static str, message: &'static str| {
        app.http
            .post(format!(
                "{}&conversation_id={conversation}",
                app.api("/api/chat", "cat")
            ))
            .json(&json!({"message": message, "stream": false}))
            .send()
    };
    app.model.script(
        "first conversation",
        vec![
            Reply::tool(
                "mshtools-write_file",
                json!({"file_path": "/mnt/okcomputer/notes.txt", "content": "n"}),
            ),
            Reply::text("noted"),
        ],
    );
    chat_in("one", "first conversation").await.unwrap();
    chat_in("two", "second conversation").await.unwrap();
    let request = &app.model.requests_for("second conversation")[0];
    let users = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .count();
    assert_eq!(users, 1, "conversations share history");
    let (_, list) = app.get("/api/conversations", "cat").await;
    let titles: Vec<&str> = common::strings(&list["conversations"], "title");
    assert_eq!(titles, ["second conversation", "first conversation"]);

    assert_eq!(app.get("/api/conversations/one", "dog").await.0, 404);
    let put = app
        .http
        .put(app.api("/api/conversations/one", "dog"))
        .json(&json!({"title": "mine now"}))
        .send()
        .await
        .unwrap();
    // A PUT of the same id creates dog's own record; cat's is untouched (checked below).
    assert_eq!(put.status(), 200);
    let (_, dogs) = app.get("/api/conversations", "dog").await;
    assert_eq!(
        common::strings(&dogs["conversations"], "title"),
        ["mine now"]
    );
    let (_, cats) = app.get("/api/conversations/one", "cat").await;
    assert_eq!(cats["conversation"]["title"], "first conversation");
    assert_eq!(app.delete("/api/conversations/one", "dog").await.0, 200);
    assert_eq!(app.get("/api/conversations/one", "cat").await.0, 200);
    let (_, dog_files) = app
        .get("/api/session/workspace/files?conversation_id=one", "dog")
        .await;
    assert!(dog_files["files"].as_array().unwrap().is_empty());

    let put = app
        .http
        .put(app.api("/api/conversations/one", "cat"))
        .json(&json!({"title": "Renamed", "id": "ignored"}))
        .send()
        .await
        .unwrap();
    let put: Value = put.json().await.unwrap();
    assert_eq!(put["conversation"]["id"], "one");
    assert_eq!(put["conversation"]["title"], "Renamed");

    let workspace = app.workspace_root().join("c-cat/s-one");
    assert!(workspace.exists());
    let (_, deleted) = app.delete("/api/conversations/one", "cat").await;
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["workspace"]["removed"], true);
    assert!(!workspace.exists());
    assert_eq!(app.get("/api/conversations/one", "cat").await.0, 404);
    let (_, info) = app
        .get("/api/session/info?conversation_id=one", "cat")
        .await;
    assert_eq!(info["history_length"], 0);
    for bad in [
        json!({"title": "no id"}),
        json!([1, 2]),
        json!({"id": "../x"}),
    ] {
        let (status, _) = app
            .post_json("/api/conversations", "cat", bad.clone())
            .await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn eviction_then_resume_keeps_the_history_the_model_sees() {
    let app = TestApp::spawn_with(|c| {
        c.sessions.idle_timeout_secs = 1;
        c.sessions.sweep_interval_secs = 1;
    });
    app.chat_json("eli", "remember the number 7").await;
    let start = Instant::now();
    loop {
        let (_, stats) = app.get("/api/sessions", "admin").await;
        if stats["evictions"].as_u64() == Some(1) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never evicted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.chat_json("eli", "which number?").await;
    let request = &app.model.requests_for("which number?")[0];
    let contents: Vec<&str> = common::strings(&request["messages"], "content");
    assert!(contents.contains(&"remember the number 7"), "{contents:?}");
    assert!(
        contents.contains(&"echo: remember the number 7"),
        "{contents:?}"
    );
}

#[tokio::test]
async fn a_client_can_reattach_to_a_running_turn_and_replay_a_finished_one() {
    let app = TestApp::spawn();
    app.model.script(
        "ATTACH",
        vec![
            Reply::tool("mshtools-todo_read", json!({})),
            Reply::delayed(400, Reply::text("late answer")),
        ],
    );
    let response = app
        .http
        .post(app.api("/api/chat", "ray"))
        .header("accept", "text/event-stream")
        .json(&json!({"message": "ATTACH me"}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("tool_completed") {
        text.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    drop(body);
    let seen = parse_sse(&text);
    let last_seen = seen.last().unwrap().id.unwrap();
    let reattached = app
        .http
        .get(app.api("/api/chat/events", "ray"))
        .header("last-event-id", last_seen.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rest = parse_sse(&reattached);
    // Numbering goes on where the client stopped (a token's number counts its bytes).
    let first = rest.first().unwrap();
    let width = first.data["delta"].as_str().map_or(1, |d| d.len() as u64);
    assert_eq!(first.id.unwrap() - width, last_seen);
    assert_eq!(&types(&rest)[rest.len() - 2..], ["final", "stop"]);
    assert_eq!(rest[rest.len() - 2].data["payload"]["reply"], "late answer");
    // After the end, the whole turn replays from the start, also after a restart.
    let app = app.restart();
    let all = app.replay("ray").await;
    // The same events, with each run of token deltas kept as one.
    let runs = |frames: &[common::Frame]| -> Vec<String> {
        let mut kinds = types(frames);
        kinds.dedup_by(|a, b| a == "token" && b == "token");
        kinds
    };
    let both = [seen.clone(), rest.clone()].concat();
    assert_eq!(runs(&all), runs(&both));
    assert_eq!(all.last().unwrap().id, both.last().unwrap().id);
    assert_eq!(types(&all)[0], "tool_started");
}
