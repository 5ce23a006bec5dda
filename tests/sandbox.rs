//! The sandbox holds: from the agent's shell nothing of the server, its data or other
//! sessions is visible, writes outside the workspace fail, the network is off by default, and
//! timeouts and stop kill whole process trees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{tool_messages, Reply, TestApp};
use okcvm::tools::sandbox::{Mode, Sandbox};
use serde_json::json;

fn shell(command: &str) -> Reply {
    Reply::tool(
        "mshtools-shell",
        json!({"command": command, "timeout": 5000}),
    )
}

fn require_bwrap(app: &TestApp) {
    let sandbox = Sandbox::detect(&app.config.sandbox);
    assert!(
        matches!(sandbox.mode, Mode::Bubblewrap(_)),
        "bubblewrap must work on this machine for the sandbox tests (.ci/run installs it): {:?}",
        sandbox.mode
    );
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test]
async fn the_shell_sees_nothing_of_the_server_or_other_sessions() {
    let app = TestApp::spawn_with(|c| c.llm.max_steps = 20);
    require_bwrap(&app);
    // Another session with a file of its own, and a config file beside the data.
    app.model.script(
        "OTHER",
        vec![
            shell("echo other-secret > /mnt/okcomputer/private.txt"),
            Reply::text("ok"),
        ],
    );
    app.chat_json("victim", "OTHER session").await;
    let config_file = app.dir.path().join("okcvm.toml");
    std::fs::write(&config_file, "[llm]\napi_key_env = \"SECRET\"\n").unwrap();
    let store = app.config.store.path.display().to_string();
    let victim = app
        .workspace_of("victim")
        .join("private.txt")
        .display()
        .to_string();
    let config_path = config_file.display().to_string();
    let probes = [
        format!("ls {store}"),
        format!("cat {victim}"),
        format!("cat {config_path}"),
        "cat /proc/1/environ | tr '\\0' '\\n' | grep -c OKCVM".to_string(),
        format!("cat /proc/{}/environ", std::process::id()),
        "ls /root /home 2>&1; cat /etc/shadow".to_string(),
        "echo x > /usr/evil".to_string(),
        "echo x > /etc/evil".to_string(),
        "ls /mnt/*.git /mnt/okcomputer.git /mnt/okcomputer/../*.git".to_string(),
    ];
    let mut script: Vec<Reply> = probes.iter().map(|p| shell(p)).collect();
    script.push(shell("whoami; echo ok > /mnt/okcomputer/output/inside.txt && cat /mnt/okcomputer/output/inside.txt"));
    script.push(Reply::text("probed"));
    app.model.script("PROBE", script);
    let (status, body) = app.chat_json("attacker", "PROBE the box").await;
    assert_eq!(status, 200, "{body}");
    let results = tool_messages(app.model.requests_for("PROBE").last().unwrap());
    for (probe, result) in probes.iter().zip(&results) {
        assert!(result.starts_with("Error: "), "{probe} succeeded: {result}");
        assert!(
            !result.contains("other-secret") && !result.contains("SECRET"),
            "{probe} leaked: {result}"
        );
    }
    assert!(
        results.last().unwrap().ends_with("ok\n\n[exit code: 0]"),
        "{}",
        results.last().unwrap()
    );
    assert!(
        !std::path::Path::new("/usr/evil").exists() && !std::path::Path::new("/etc/evil").exists()
    );
}

#[tokio::test]
async fn the_network_is_off_unless_configured() {
    let app = TestApp::spawn();
    require_bwrap(&app);
    let port = app.url.rsplit(':').next().unwrap().to_string();
    let probe = format!("python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('connected')\"");
    app.model
        .script("NET", vec![shell(&probe), Reply::text("done")]);
    app.chat_json("net", "NET check").await;
    let result = &tool_messages(&app.model.requests_for("NET")[1])[0];
    assert!(
        result.starts_with("Error: ") && !result.contains("connected"),
        "{result}"
    );
}

#[tokio::test]
async fn timeouts_and_stop_kill_the_whole_process_tree() {
    let app = TestApp::spawn();
    require_bwrap(&app);
    app.model.script(
        "TREE",
        vec![
            Reply::tool(
                "mshtools-shell",
                json!({"command": "(sleep 101.25 &); sleep 101.5", "timeout": 300}),
            ),
            Reply::text("timed out as expected"),
        ],
    );
    let (status, _) = app.chat_json("tree", "TREE timeout").await;
    assert_eq!(status, 200);
    let result = &tool_messages(&app.model.requests_for("TREE")[1])[0];
    assert!(result.contains("timed out after 300 ms"), "{result}");
    assert_eq!(
        processes_with("sleep 101.25") + processes_with("sleep 101.5"),
        0,
        "a process survived the timeout"
    );

    app.model.script(
        "STOPME",
        vec![shell("(sleep 102.25 &); sleep 102.5"), Reply::text("never")],
    );
    let http = app.http.clone();
    let url = app.api("/api/chat", "stopper");
    let turn = tokio::spawn(async move {
        http.post(url)
            .json(&json!({"message": "STOPME now", "stream": false}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let started = Instant::now();
    while processes_with("sleep 102.5") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = app
        .http
        .post(app.api("/api/chat/stop", "stopper"))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 200);
    assert_eq!(turn.await.unwrap(), 409);
    assert_eq!(
        processes_with("sleep 102.25") + processes_with("sleep 102.5"),
        0,
        "a process survived stop"
    );
}

#[tokio::test]
async fn eviction_stops_the_session_interpreter_and_its_children() {
    let app = TestApp::spawn_with(|c| {
        c.sessions.idle_timeout_secs = 1;
        c.sessions.sweep_interval_secs = 1;
    });
    require_bwrap(&app);
    app.model.script(
        "EVICTPY",
        vec![
            Reply::tool(
                "mshtools-ipython",
                json!({"code": "import subprocess\nchild = subprocess.Popen(['sleep', '103.75'])\nchild.pid > 0"}),
            ),
            Reply::text("started"),
        ],
    );
    let (status, _) = app.chat_json("evictee", "EVICTPY start").await;
    assert_eq!(status, 200);
    assert_eq!(
        processes_with("sleep 103.75"),
        1,
        "the interpreter's child should be running"
    );
    let started = Instant::now();
    loop {
        let (_, stats) = app.get("/api/sessions", "admin").await;
        if stats["evictions"].as_u64() == Some(1) && processes_with("sleep 103.75") == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the evicted session's processes survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
