//! `okcvm chat` against the real server with the scripted model: the one-shot reply on stdout
//! and tool lines on stderr, a model failure's exit status, `--json` lines, stdin piped in,
//! `--continue`, and Ctrl-C (SIGINT) stopping the turn on the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Reply, TestApp};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt as _;

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn chat(app: &TestApp, client: &str, args: &[&str]) -> tokio::process::Command {
    chat_with(&app.url, app.dir.path(), client, args)
}

fn chat_with(
    server: &str,
    home: &std::path::Path,
    client: &str,
    args: &[&str],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_okcvm"));
    command
        .args(["chat", "--server", server, "--client-id", client])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("OKCVM_TOKEN")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run(mut command: tokio::process::Command, stdin: Option<&str>) -> Ran {
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("cannot start okcvm chat");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("okcvm chat did not finish")
        .unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn one_shot_prints_the_reply_and_tool_lines_apart() {
    let app = TestApp::spawn();
    app.model.script(
        "ONESHOT",
        vec![
            Reply::tool(
                "mshtools-shell",
                json!({"command": "echo made > output/made.txt"}),
            ),
            Reply::text("All done."),
        ],
    );
    let ran = run(chat(&app, "cli-a", &["-p", "ONESHOT please"]), None).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, "All done.\n");
    assert!(
        ran.stderr
            .contains("▸ shell  echo made > output/made.txt  (")
            && ran.stderr.contains(" ms, ok)"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("\x1b["), "NO_COLOR: {:?}", ran.stderr);
}

#[tokio::test]
async fn a_failed_turn_exits_non_zero() {
    let app = TestApp::spawn_with(|c| c.llm.max_retries = 0);
    app.model
        .script("BROKENMODEL", vec![Reply::Status(500, None)]);
    let ran = run(chat(&app, "cli-b", &["-p", "BROKENMODEL"]), None).await;
    assert_eq!(ran.code, 1, "{ran:?}", ran = ran.stderr);
    assert!(ran.stderr.contains("failed"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    // An unreachable server is a clear error too.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let command = chat_with(&url, app.dir.path(), "cli-b", &["-p", "anyone?"]);
    let ran = run(command, None).await;
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.contains("cannot reach"), "{}", ran.stderr);
}

#[tokio::test]
async fn json_lines_carry_every_event() {
    let app = TestApp::spawn();
    app.model.script(
        "JSONL",
        vec![
            Reply::tool("mshtools-todo_read", json!({})),
            Reply::text("listed"),
        ],
    );
    let ran = run(chat(&app, "cli-c", &["-p", "JSONL", "--json"]), None).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let events: Vec<Value> = ran
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"tool_started") && kinds.contains(&"tool_completed"),
        "{kinds:?}"
    );
    assert_eq!(&kinds[kinds.len() - 2..], ["final", "stop"]);
    assert_eq!(events[events.len() - 2]["payload"]["reply"], "listed");
}

#[tokio::test]
async fn piped_stdin_joins_the_prompt_and_continue_resumes_the_conversation() {
    let app = TestApp::spawn();
    app.model
        .script("SUMMARISE", vec![Reply::text("It is a log of two lines.")]);
    let ran = run(
        chat(&app, "cli-d", &["-p", "SUMMARISE this"]),
        Some("error: disk full\nwarning: retrying\n"),
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let asked = common::mock_model::latest_user_message(&app.model.requests_for("SUMMARISE")[0]);
    assert!(
        asked.starts_with("SUMMARISE this") && asked.contains("error: disk full"),
        "{asked}"
    );
    // --continue talks in the same conversation: the model sees the earlier exchange.
    app.model.script("FOLLOWUP", vec![Reply::text("Yes, two.")]);
    let ran = run(
        chat(&app, "cli-d", &["--continue", "-p", "FOLLOWUP how many?"]),
        None,
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let request = &app.model.requests_for("FOLLOWUP")[0];
    assert!(
        request.to_string().contains("error: disk full"),
        "{request}"
    );
    // Without anything to continue, it says so.
    let ran = run(chat(&app, "cli-nobody", &["--continue", "-p", "hi"]), None).await;
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("no conversation to continue"),
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn ctrl_c_stops_the_turn_on_the_server() {
    let app = TestApp::spawn();
    app.model.script(
        "SLOWCLI",
        vec![Reply::delayed(30_000, Reply::text("too late"))],
    );
    let child = chat(&app, "cli-e", &["-p", "SLOWCLI"]).spawn().unwrap();
    app.model.wait_for("SLOWCLI").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("okcvm chat did not end after Ctrl-C")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(app.busy_owners().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interactive_client_answers_slash_commands_in_a_terminal() {
    let app = TestApp::spawn();
    app.model
        .script("PTYHELLO", vec![Reply::text("Hello from the terminal.")]);
    let upload = app.dir.path().join("notes-for-agent.txt");
    std::fs::write(&upload, "some notes\n").unwrap();
    let (url, home) = (app.url.clone(), app.dir.path().to_path_buf());
    let upload = upload.display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_okcvm"));
        command
            .args(["chat", "--server", &url, "--client-id", "pty-a"])
            .env("NO_COLOR", "1")
            .env_remove("OKCVM_TOKEN")
            .env("HOME", &home);
        let mut pty = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
        pty.exp_string("/help for commands").unwrap();
        pty.send_line("/new").unwrap();
        pty.exp_string("new conversation cli-").unwrap();
        pty.send_line("PTYHELLO there").unwrap();
        pty.exp_string("Hello from the terminal.").unwrap();
        pty.send_line("/tools").unwrap();
        pty.exp_string("the last turn called no tool").unwrap();
        // Ctrl-O types /tools.
        pty.send_control('o').unwrap();
        pty.send_line("").unwrap();
        pty.exp_string("the last turn called no tool").unwrap();
        pty.send_line("/list").unwrap();
        pty.exp_string("PTYHELLO there").unwrap();
        // A second exchange, then the first is summarised on request.
        pty.send_line("PTYHELLO again").unwrap();
        pty.exp_string("Hello from the terminal.").unwrap();
        pty.send_line("/compact keep the greeting").unwrap();
        pty.exp_string("compacted: ").unwrap();
        pty.exp_string("the older part is now a summary").unwrap();
        pty.send_line("/context").unwrap();
        pty.exp_string("1 compaction(s)").unwrap();
        pty.send_line(&format!("/upload {upload}")).unwrap();
        pty.exp_string("uploaded: /mnt/okcomputer/upload/notes-for-agent.txt")
            .unwrap();
        pty.send_line("/files").unwrap();
        pty.exp_string("notes-for-agent.txt").unwrap();
        pty.send_line("/quit").unwrap();
        pty.exp_eof().unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_drawn_as_markdown_on_a_colour_terminal() {
    let app = TestApp::spawn();
    app.model.script(
        "PTYMARK",
        vec![Reply::text(
            "# Summary\n\nSome **bold** words and `code`.\n\n- one\n- two",
        )],
    );
    let (url, home) = (app.url.clone(), app.dir.path().to_path_buf());
    let drawn = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_okcvm"));
        command
            .args(["chat", "--server", &url, "--client-id", "pty-b"])
            .env_remove("NO_COLOR")
            .env_remove("OKCVM_TOKEN")
            .env("TERM", "xterm-256color")
            .env("HOME", &home);
        let mut pty = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
        pty.exp_string("/help for commands").unwrap();
        pty.send_line("PTYMARK").unwrap();
        let drawn = pty.exp_string("two").unwrap();
        pty.send_line("/quit").unwrap();
        pty.exp_eof().unwrap();
        drawn
    })
    .await
    .unwrap();
    let after_prompt = drawn.rsplit("PTYMARK").next().unwrap();
    assert!(
        after_prompt.contains("Summary") && after_prompt.contains("bold"),
        "{drawn:?}"
    );
    assert!(
        !after_prompt.contains("**bold**") && !after_prompt.contains("# Summary"),
        "{after_prompt:?}"
    );
    assert!(after_prompt.contains("\u{1b}["), "styled: {after_prompt:?}");
}
