//! Limits hold for a session's whole process tree: a process flood and a memory grab spread
//! over several processes stay inside the session's control group, and a restore stops what
//! the agent left running; sandboxed code never runs as host root and sees no host path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use common::limited::{shell, spawn};
use common::{tool_messages, Reply, TestApp};
use serde_json::json;

async fn run_shell(app: &TestApp, client: &str, token: &str, command: &str) -> String {
    app.model
        .script(token, vec![shell(command, 20_000), Reply::text("done")]);
    let (status, body) = app.chat_json(client, token).await;
    assert_eq!(status, 200, "{body}");
    tool_messages(&app.model.requests_for(token)[1])[0].clone()
}

#[tokio::test]
async fn the_sandbox_shows_no_host_path_and_never_runs_as_root() {
    let app = spawn();
    let output = run_shell(
        &app,
        "ident",
        "IDENT",
        "tr '\\0' ' ' < /proc/1/cmdline; echo; grep -h '^Uid' /proc/self/status; for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done; touch /mnt/okcomputer/made-inside",
    )
    .await;
    let host = app.dir.path().display().to_string();
    assert!(!output.contains(&host), "a host path is visible: {output}");
    assert!(!output.contains("data/workspaces"), "{output}");
    assert!(
        output.starts_with("Out: bwrap") || output.contains("bwrap"),
        "{output}"
    );
    let uid_line = output.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|id| id != "0"),
        "sandboxed code runs as root: {uid_line}"
    );
    let made = std::fs::metadata(app.workspace_of("ident").join("made-inside")).unwrap();
    assert_ne!(
        made.uid(),
        0,
        "a file made in the sandbox belongs to host root"
    );
}

#[tokio::test]
async fn a_session_cannot_start_more_processes_than_its_limit() {
    let app = spawn();
    let output = run_shell(
        &app,
        "forker",
        "FORKS",
        "python3 -c 'import os, time\nn = 0\nfor i in range(300):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n    n += 1\nprint(\"started\", n)'",
    )
    .await;
    let started: usize = output
        .split("started ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{output}"));
    assert!(
        started < 64,
        "{started} processes started in one session: {output}"
    );
}

#[tokio::test]
async fn memory_is_limited_for_the_session_as_a_whole() {
    let app = spawn();
    // Three processes of 120 MiB each fit a 256 MiB per-process limit, not a 256 MiB total.
    let grab = "python3 -c 'import time; b = bytearray(120 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(3)'";
    let command = format!(
        "{grab} & a=$!; {grab} & b=$!; {grab} & c=$!; wait $a; x=$?; wait $b; y=$?; wait $c; z=$?; echo statuses $x $y $z"
    );
    let output = run_shell(&app, "grabber", "GRAB", &command).await;
    let statuses: Vec<&str> = output
        .split("statuses ")
        .nth(1)
        .unwrap_or_else(|| panic!("{output}"))
        .split_whitespace()
        .take(3)
        .collect();
    assert!(
        statuses.iter().any(|s| *s != "0"),
        "all three grabs succeeded: {output}"
    );
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .count()
}

/// A restore rewrites the workspace as root: nothing the agent left running (even in a
/// session of its own) may keep swapping names under it.
#[tokio::test]
async fn a_restore_stops_what_the_agent_left_running() {
    let app = spawn();
    let marker = "okcvm-left-running-4711";
    app.model.script(
        "LEAVE",
        vec![
            Reply::tool(
                "mshtools-ipython",
                json!({"code": format!("import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 1000; echo {marker}'], start_new_session=True)\nopen('f.txt', 'w').write('x')")}),
            ),
            Reply::text("left"),
        ],
    );
    let (status, body) = app.chat_json("leaver", "LEAVE it running").await;
    assert_eq!(status, 200, "{body}");
    assert!(processes_with(marker) > 0, "the background process runs");
    let snapshot = body["workspace_state"]["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = app
        .post_json(
            "/api/session/workspace/restore",
            "leaver",
            json!({"snapshot_id": snapshot}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        processes_with(marker),
        0,
        "a background process survived the restore"
    );
}
