//! Load benchmark: `cargo bench --bench load` (optionally `-- --quick`).
//!
//! Starts the release `okcvm` binary as a child process against a scripted mock model on
//! loopback, then prints: cold start to a healthy `/healthz`, single-client echo latency,
//! throughput and latency at 64 clients, throughput with a 1 s model delay at 500 clients,
//! time to the first SSE event, and the server's RSS after many sessions.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mock_model.rs"]
mod mock_model;
#[path = "../tests/common/server_process.rs"]
mod server_process;

use std::time::{Duration, Instant};

use mock_model::{MockModel, Reply};
use serde_json::json;
use server_process::{disk_bytes, ServerProcess};

/// Starts the server on a fresh data folder; returns it with the time until `/healthz` answered.
async fn start_server(
    model_url: &str,
    http: &reqwest::Client,
) -> (ServerProcess, Duration, tempfile::TempDir) {
    start_server_with(model_url, http, "stream = false").await
}

/// [`start_server`] with these lines in `[llm]`.
async fn start_server_with(
    model_url: &str,
    http: &reqwest::Client,
    llm: &str,
) -> (ServerProcess, Duration, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("okcvm.toml");
    std::fs::write(
        &config,
        format!(
            "[llm]\nbase_url = \"{model_url}\"\nmodel = \"mock\"\n{llm}\n\
             [sessions]\nmax_sessions = 50000\nidle_timeout_secs = 3600\n[sandbox]\nallow_unsandboxed = true\n\
             [quotas]\nlive_sessions = 0\nconcurrent_turns = 0\n[server]\nmax_concurrent_turns = 100000\n"
        ),
    )
    .unwrap();
    let (server, ready) = server_process::start(
        env!("CARGO_BIN_EXE_okcvm"),
        &config,
        server_process::free_port(),
        http,
    )
    .await;
    (server, ready, dir)
}

async fn echo_turn(http: &reqwest::Client, url: &str, client: &str, message: &str) -> Duration {
    let started = Instant::now();
    let response = http
        .post(format!("{url}/api/chat?client_id={client}"))
        .json(&json!({"message": message, "stream": false}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "turn failed: {}",
        response.status()
    );
    let _ = response.bytes().await.unwrap();
    started.elapsed()
}

/// Cost per tool call of one long turn (100 streamed deltas before each call), in time and
/// in bytes added to the store, for a turn of `calls` calls.
async fn long_turn_cost(
    model: &MockModel,
    http: &reqwest::Client,
    calls: usize,
) -> (Duration, u64) {
    model.script(
        "LONGTURN",
        vec![Reply::ChattyTool {
            count: 100,
            delta: "token ".into(),
            name: "mshtools-todo_read".into(),
            arguments: "{}".into(),
        }],
    );
    let llm = format!("stream = true\nmax_steps = {calls}");
    let (server, _, dir) = start_server_with(&model.url, http, &llm).await;
    let store = dir.path().join("data/store");
    echo_turn(http, &server.url, "warm", "hello").await;
    let before = disk_bytes(&store);
    let took = echo_turn(http, &server.url, "long", "LONGTURN go").await;
    let grown = disk_bytes(&store).saturating_sub(before);
    (took / calls as u32, grown / calls as u64)
}

/// Server RSS once `sessions` sessions each hold a conversation of `turns` turns with one tool
/// call each, then sit idle.
async fn idle_conversations_rss(
    model: &MockModel,
    http: &reqwest::Client,
    sessions: usize,
    turns: usize,
) -> (u64, u64) {
    model.script(
        "HOLDTURN",
        vec![Reply::ToolThenText {
            name: "mshtools-todo_read".into(),
            text: "noted".into(),
        }],
    );
    let (server, _, _dir) = start_server(&model.url, http).await;
    let base = rss_kib(server.child.id());
    let workers: Vec<_> = (0..64)
        .map(|w| {
            let (http, url) = (http.clone(), server.url.clone());
            tokio::spawn(async move {
                for session in (w..sessions).step_by(64) {
                    for turn in 0..turns {
                        let message = format!("HOLDTURN {turn}");
                        echo_turn(&http, &url, &format!("hold{session}"), &message).await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    (base, rss_kib(server.child.id()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `clients` loops of echo turns for `duration`; returns all latencies.
async fn closed_loop(
    http: &reqwest::Client,
    url: &str,
    clients: usize,
    duration: Duration,
    prefix: &str,
    message: &str,
) -> (Vec<Duration>, Vec<Duration>) {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let http = http.clone();
            let url = url.to_string();
            let client = format!("{prefix}{i}");
            let message = message.to_string();
            tokio::spawn(async move {
                let (mut first, mut later) = (Vec::new(), Vec::new());
                let mut turn = 0;
                while Instant::now() < deadline {
                    // A fresh conversation every 50 turns keeps requests at a realistic size.
                    let conversation = turn / 50;
                    let id = format!("{client}&conversation_id=c{conversation}");
                    let latency = echo_turn(&http, &url, &id, &message).await;
                    if turn % 50 == 0 {
                        first.push(latency)
                    } else {
                        later.push(latency)
                    }
                    turn += 1;
                }
                (first, later)
            })
        })
        .collect();
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for task in tasks {
        let (f, l) = task.await.unwrap();
        first.extend(f);
        later.extend(l);
    }
    let mut all: Vec<Duration> = first.iter().chain(&later).copied().collect();
    all.sort();
    later.sort();
    (all, later)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Per-turn persistence costs measured on the library directly: the git snapshot of a
/// 1,000-file workspace with one file changed, and a history write + flush.
fn persistence_figures() -> (Duration, Duration) {
    use okcvm::agent::Conversation;
    use okcvm::workspace::git::{snapshot, SnapshotPolicy};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    for i in 0..1000 {
        let sub = root.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(20),
        )
        .unwrap();
    }
    let policy = SnapshotPolicy {
        ignore: vec![],
        max_file_bytes: 50 << 20,
    };
    snapshot(&root, "initial", false, &policy).unwrap();
    let mut times = Vec::new();
    for round in 0..20 {
        std::fs::write(root.join("d3/f3.txt"), format!("changed {round}")).unwrap();
        let started = Instant::now();
        snapshot(&root, "turn", false, &policy).unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let store = okcvm::store::Store::open(&dir.path().join("store")).unwrap();
    let key = okcvm::auth::SessionKey::new(okcvm::auth::Owner::client("bench"), "c");
    let mut history = Conversation::new();
    let mut flushes = Vec::new();
    for turn in 0..50 {
        let from = history.len();
        history.push_user(&format!("message {turn}"));
        history.push_assistant("a reply of moderate length", vec![], Default::default());
        let started = Instant::now();
        store
            .save_history(&key, from, &history.entries()[from..])
            .unwrap();
        store.flush().unwrap();
        flushes.push(started.elapsed());
    }
    flushes.sort();
    (percentile(&times, 0.5), percentile(&flushes, 0.5))
}

/// Sandbox figures on the library directly: shell `echo` round trip through bwrap, a warm
/// Python cell, and the resident memory of an idle interpreter.
async fn sandbox_figures() -> Option<(Duration, Duration, u64)> {
    use okcvm::tools::{exec, python::Kernel};
    let dir = tempfile::tempdir().unwrap();
    let config = okcvm::config::Config::for_tests(dir.path(), "http://127.0.0.1:9/v1");
    let services = okcvm::build_services(config).unwrap();
    let sandbox = services.sandbox.clone();
    if !matches!(sandbox.mode, okcvm::tools::sandbox::Mode::Bubblewrap(_)) {
        println!("(bubblewrap unavailable: sandbox figures skipped)");
        return None;
    }
    let mut ctx = services.tool_context(&okcvm::auth::SessionKey {
        owner: okcvm::auth::Owner::client("bench"),
        conversation_id: "default".into(),
    });
    let workspace = ctx.workspace.clone();
    workspace.ensure().unwrap();
    ctx.workspace_ready = true;
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut echo = Vec::new();
    for _ in 0..30 {
        let jail = okcvm::tools::sandbox::Jail {
            workspace: workspace.root(),
            cgroup: None,
        };
        let command = sandbox
            .command(
                jail,
                "bash",
                &["-c", "echo hi"],
                okcvm::tools::sandbox::Lifetime::Command,
            )
            .unwrap();
        let started = Instant::now();
        let result = exec::run(command, Duration::from_secs(10), 4096, &cancel)
            .await
            .unwrap();
        echo.push(started.elapsed());
        assert_eq!(result.output, "hi\n");
    }
    echo.sort();
    let mut kernel = Kernel::start(&mut ctx).await.unwrap();
    kernel.run("x = 1", Duration::from_secs(10)).await.unwrap();
    let mut cells = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        kernel.run("x + 1", Duration::from_secs(10)).await.unwrap();
        cells.push(started.elapsed());
    }
    cells.sort();
    let memory = kernel.memory_kib();
    Some((percentile(&echo, 0.5), percentile(&cells, 0.5), memory))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (snapshot_time, flush_time) = persistence_figures();
    println!(
        "snapshot of 1,000 files, one changed (p50): {}   target <= 20 ms",
        ms(snapshot_time)
    );
    println!("history write + flush per turn (p50): {}", ms(flush_time));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some((echo, cell, memory)) = runtime.block_on(sandbox_figures()) {
        println!(
            "shell echo through the sandbox (p50): {}   target <= 15 ms",
            ms(echo)
        );
        println!(
            "warm Python cell round trip (p50): {}   target <= 5 ms",
            ms(cell)
        );
        println!(
            "idle Python interpreter RSS: {:.1} MiB",
            memory as f64 / 1024.0
        );
    }
    runtime.block_on(run(quick));
}

async fn run(quick: bool) {
    let model = MockModel::start_with(1, false);
    model.script(
        "SLOW",
        vec![Reply::delayed(1000, Reply::text("slow answer"))],
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2000)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let secs = if quick { 2 } else { 5 };

    let mut cold = Vec::new();
    for _ in 0..5 {
        let (server, ready, dir) = start_server(&model.url, &http).await;
        cold.push(ready);
        drop(server);
        drop(dir);
    }
    cold.sort();
    let (server, _, _data) = start_server(&model.url, &http).await;
    let url = server.url.clone();
    let base_rss = rss_kib(server.child.id());

    // Warm up connections and code paths.
    closed_loop(
        &http,
        &url,
        8,
        Duration::from_millis(500),
        "warm",
        "warm up",
    )
    .await;

    let mut single = Vec::new();
    for i in 0..300 {
        single.push(
            echo_turn(
                &http,
                &url,
                &format!("single&conversation_id=c{}", i / 100),
                "hello",
            )
            .await,
        );
    }
    single.sort();
    let mut starts = Vec::new();
    for i in 0..100 {
        starts.push(
            echo_turn(
                &http,
                &url,
                &format!("starter&conversation_id=s{i}"),
                "hello",
            )
            .await,
        );
    }
    starts.sort();

    let (at64, at64_warm) = closed_loop(
        &http,
        &url,
        64,
        Duration::from_secs(secs),
        "c64-",
        "echo this",
    )
    .await;
    let at64_rate = at64.len() as f64 / secs as f64;

    let slow_secs = secs.max(3);
    let (at500, _) = closed_loop(
        &http,
        &url,
        500,
        Duration::from_secs(slow_secs),
        "slow-",
        "SLOW please",
    )
    .await;
    let at500_rate = at500.len() as f64 / slow_secs as f64;

    let mut first_event = Vec::new();
    for i in 0..100 {
        let started = Instant::now();
        let mut response = http
            .post(format!(
                "{url}/api/chat?client_id=sse&conversation_id=c{}",
                i / 50
            ))
            .header("accept", "text/event-stream")
            .json(&json!({"message": "stream me"}))
            .send()
            .await
            .unwrap();
        let _first = response.chunk().await.unwrap();
        first_event.push(started.elapsed());
        while response.chunk().await.unwrap().is_some() {}
    }
    first_event.sort();

    let target_sessions: usize = if quick { 2_000 } else { 10_000 };
    let stats: serde_json::Value = http
        .get(format!("{url}/api/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let existing = stats["sessions"].as_array().map_or(0, Vec::len);
    let to_create = target_sessions.saturating_sub(existing);
    let per_task = to_create.div_ceil(64);
    let creators: Vec<_> = (0..64)
        .map(|t| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    echo_turn(&http, &url, &format!("idle{t}x{i}"), "remember me").await;
                }
            })
        })
        .collect();
    for c in creators {
        c.await.unwrap();
    }
    let stats: serde_json::Value = http
        .get(format!("{url}/api/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = stats["sessions"].as_array().map_or(0, Vec::len);
    let rss = rss_kib(server.child.id());

    let line = |name: &str, value: String, target: &str| {
        println!("{name:<46} {value:>16}   target {target}");
    };
    println!(
        "\nOKCVM load benchmark ({} cores, mock model on loopback)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    line(
        "cold start to healthy /healthz (median of 5)",
        ms(percentile(&cold, 0.5)),
        "<= 100 ms",
    );
    line(
        "single-client echo turn p50",
        ms(percentile(&single, 0.5)),
        "<= 2 ms",
    );
    line(
        "single-client echo turn p99",
        ms(percentile(&single, 0.99)),
        "-",
    );
    line(
        "first turn of a new conversation p50",
        ms(percentile(&starts, 0.5)),
        "-",
    );
    line(
        "64 clients: echo turns/s",
        format!("{at64_rate:.0}"),
        ">= 2000",
    );
    line("64 clients: p50", ms(percentile(&at64, 0.5)), "-");
    line("64 clients: p99", ms(percentile(&at64, 0.99)), "<= 50 ms");
    line(
        "64 clients: p99 without conversation starts",
        ms(percentile(&at64_warm, 0.99)),
        "-",
    );
    line(
        "500 clients, 1 s model delay: turns/s",
        format!("{at500_rate:.0}"),
        ">= 450",
    );
    line(
        "500 clients, 1 s model delay: p99",
        ms(percentile(&at500, 0.99)),
        "-",
    );
    line(
        "time to first SSE event p50",
        ms(percentile(&first_event, 0.5)),
        "-",
    );
    line(
        "server RSS at start",
        format!("{:.1} MiB", base_rss as f64 / 1024.0),
        "-",
    );
    line(
        &format!("server RSS with {sessions} sessions"),
        format!("{:.1} MiB", rss as f64 / 1024.0),
        "<= 500 MB at 10,000",
    );
    line(
        "RSS per session",
        format!(
            "{:.1} KiB",
            rss.saturating_sub(base_rss) as f64 / sessions.max(1) as f64
        ),
        "-",
    );
    drop(server);

    let (ten, ten_bytes) = long_turn_cost(&model, &http, 10).await;
    let (thousand, thousand_bytes) = long_turn_cost(&model, &http, 1000).await;
    line(
        "one turn, 10 tool calls: per call",
        format!("{} {:.1} KiB", ms(ten), ten_bytes as f64 / 1024.0),
        "-",
    );
    line(
        "one turn, 1,000 tool calls: per call",
        format!("{} {:.1} KiB", ms(thousand), thousand_bytes as f64 / 1024.0),
        "<= 2x the 10-call cost",
    );
    let held = if quick { 100 } else { 1000 };
    let (base, rss) = idle_conversations_rss(&model, &http, held, 20).await;
    line(
        &format!("server RSS, {held} idle sessions x 20 turns"),
        format!("{:.1} MiB", rss as f64 / 1024.0),
        "-",
    );
    line(
        "  per session (with its 20-turn history)",
        format!("{:.1} KiB", rss.saturating_sub(base) as f64 / held as f64),
        "-",
    );
    println!(
        "model requests served by the mock: {}",
        model.request_count()
    );
}
