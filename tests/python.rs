//! `mshtools-ipython` through the agent: state across calls, interrupts, restart, figures,
//! and many sessions' interpreters side by side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{tool_messages, Reply, TestApp};
use serde_json::json;

fn cell(code: &str) -> Reply {
    Reply::tool("mshtools-ipython", json!({"code": code}))
}

#[tokio::test]
async fn state_persists_loops_are_interrupted_and_restart_clears() {
    let app = TestApp::spawn_with(|c| {
        c.tools.python_timeout_ms = 1000;
        c.llm.max_steps = 20;
    });
    app.model.script(
        "PY",
        vec![
            cell("x = 41"),
            cell("x + 1"),
            cell("print('hello'); 1/0"),
            cell("while True:\n    pass"),
            cell("x * 2"),
            Reply::tool("mshtools-ipython", json!({"code": "x", "restart": true})),
            cell("!echo from-shell; pwd"),
            cell("import os; os.write(1, b'raw bytes\\n'); 'protocol ok'"),
            cell("print('before'); os.system('echo via-system; echo oops >&2'); print('after')"),
            Reply::text("done"),
        ],
    );
    let (status, body) = app.chat_json("py", "PY run").await;
    assert_eq!(status, 200, "{body}");
    let results = tool_messages(app.model.requests_for("PY").last().unwrap());
    assert_eq!(results[0], "(no output)");
    assert_eq!(results[1], "Out: 42");
    assert!(
        results[2].starts_with("Error: hello\n") && results[2].contains("ZeroDivisionError"),
        "{}",
        results[2]
    );
    assert!(results[3].contains("timed out"), "{}", results[3]);
    assert_eq!(
        results[4], "Out: 82",
        "the interrupted interpreter kept its state"
    );
    assert!(results[5].contains("NameError"), "{}", results[5]);
    assert!(
        results[6].contains("from-shell") && results[6].contains("/mnt/okcomputer"),
        "{}",
        results[6]
    );
    assert_eq!(
        results[7], "raw bytes\nOut: 'protocol ok'",
        "what C code writes to fd 1 reaches the model without breaking the protocol"
    );
    assert_eq!(
        results[8], "before\nvia-system\nafter\n[stderr]\noops",
        "a child's output keeps its place among the cell's prints"
    );
    app.chat_json("no-python", "hello").await;
    let (_, stats) = app.get("/api/sessions", "admin").await;
    let memory_of = |client: &str| {
        stats["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["owner"] == client)
            .map(|s| s["tools_memory_kib"].as_u64().unwrap())
            .unwrap()
    };
    assert!(memory_of("py") > 1024, "the interpreter's memory: {stats}");
    assert_eq!(memory_of("no-python"), 0);
}

#[tokio::test]
async fn a_matplotlib_figure_becomes_a_png_in_the_workspace() {
    let has_matplotlib = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import matplotlib"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_matplotlib,
        "python3-matplotlib is needed for this test (.ci/run installs it)"
    );
    let app = TestApp::spawn();
    app.model.script(
        "PLOT",
        vec![cell("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')"), Reply::text("plotted")],
    );
    let (status, _) = app.chat_json("plotter", "PLOT it").await;
    assert_eq!(status, 200);
    let result = &tool_messages(&app.model.requests_for("PLOT")[1])[0];
    let path = result
        .lines()
        .find_map(|l| l.strip_prefix("Saved figure: "))
        .unwrap_or_else(|| panic!("no figure in {result}"));
    let rel = path.strip_prefix("/mnt/okcomputer/").unwrap();
    let png = std::fs::read(app.workspace_of("plotter").join(rel)).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test]
async fn twenty_sessions_run_python_at_once_in_isolation() {
    let app = TestApp::spawn();
    for i in 0..20 {
        app.model.script(
            &format!("ISOPY{i:02}X"),
            vec![
                cell(&format!("secret = {i}\nopen('mine-{i}.txt', 'w').write('x')")),
                cell("import os\n(secret, sorted(f for f in os.listdir('/mnt/okcomputer') if f.startswith('mine')))"),
                Reply::text("ok"),
            ],
        );
    }
    let turns = (0..20).map(|i| {
        let app = &app;
        async move {
            let (status, body) = app
                .chat_json(&format!("pyclient{i}"), &format!("ISOPY{i:02}X go"))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    });
    futures_util::future::join_all(turns).await;
    for i in 0..20 {
        let results = tool_messages(&app.model.requests_for(&format!("ISOPY{i:02}X"))[2]);
        assert_eq!(results[1], format!("Out: ({i}, ['mine-{i}.txt'])"));
    }
}

/// Resident memory of this test process (the server runs inside it), in MiB.
fn own_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[tokio::test]
async fn a_cell_flooding_the_protocol_channel_cannot_grow_the_server() {
    let app = TestApp::spawn();
    // Writes 256 MiB without a newline into every pipe the interpreter may write to,
    // which includes the driver's own protocol descriptor.
    let flood = "import os, stat, fcntl\n\
                 chunk = b'x' * (1 << 20)\n\
                 for fd in range(3, 64):\n\
                 \x20   try:\n\
                 \x20       if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_WRONLY:\n\
                 \x20           for _ in range(256):\n\
                 \x20               os.write(fd, chunk)\n\
                 \x20   except OSError:\n\
                 \x20       pass\n";
    app.model.script(
        "FLOOD",
        vec![cell(flood), cell("1 + 1"), Reply::text("done")],
    );
    let before = own_rss_mib();
    let (status, body) = app.chat_json("flooder", "FLOOD it").await;
    let grown = own_rss_mib().saturating_sub(before);
    assert_eq!(status, 200, "{body}");
    let results = tool_messages(&app.model.requests_for("FLOOD")[2]);
    assert!(
        results[0].contains("interpreter's own channel") && results[0].contains("restarted"),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("Out: 2"),
        "a new interpreter answers: {}",
        results[1]
    );
    assert!(grown < 128, "the server grew by {grown} MiB");
}
