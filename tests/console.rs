//! The web console in a real browser: starts the server with a scripted mock model, then runs
//! `tests/browser/console.spec.mjs` (playwright-core driving Debian's chromium) against it.
//! Needs `node`, `/usr/bin/chromium` (or `CHROMIUM`) and `tests/browser/node_modules`; `.ci/run`
//! installs them. Missing pieces fail the test with that message rather than skipping it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reply, TestApp};
use serde_json::json;

/// The whole browser run must finish within this.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Agent page</title></head>
<body>
<h1 id="headline">Agent page OK</h1>
<p id="result">script did not run</p>
<script>
var out = [];
try { out.push('parent-cookie:' + parent.document.cookie); } catch (e) { out.push('parent-cookie-blocked'); }
try { out.push('own-cookie:' + document.cookie); } catch (e) { out.push('own-cookie-blocked'); }
fetch('/api/conversations', {credentials: 'include'})
  .then(function (r) { return r.text(); })
  .then(function (t) { parent.postMessage({leak: 'api', body: t}, '*'); }, function () { out.push('api-blocked'); });
fetch('/api/chat', {method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: {'content-type': 'text/plain'}, body: JSON.stringify({message: 'PWNED by the preview', stream: false})});
document.getElementById('result').textContent = out.join(' ');
parent.postMessage({report: out.join(' ')}, '*');
</script>
</body></html>
"#;

fn write(path: &str, content: &str) -> Reply {
    Reply::tool(
        "mshtools-write_file",
        json!({"file_path": path, "content": content, "append": false}),
    )
}

fn script_model(app: &TestApp) {
    app.model.script(
        "TOOLDEMO",
        vec![
            write("/mnt/okcomputer/output/notes.md", "# Notes\nhello from the tool\n"),
            Reply::text(
                "Done: I wrote **notes.md** with `write_file`.\n\n- one\n- two\n\n```rust\nfn main() {}\n```",
            ),
        ],
    );
    app.model.script(
        "SLOWTURN",
        vec![Reply::delayed(60_000, Reply::text("too late"))],
    );
    app.model.script(
        "FILEV",
        vec![
            write("/mnt/okcomputer/output/version.txt", "version one\n"),
            Reply::text("This is the first version."),
            write("/mnt/okcomputer/output/version.txt", "version two\n"),
            Reply::text("This is the second version."),
        ],
    );
    app.model.script(
        "DEPLOYSITE",
        vec![
            write(
                "/mnt/okcomputer/site/index.html",
                "<html><head><title>Stand site</title></head><body><h1 id=\"headline\">Deployed OK</h1></body></html>",
            ),
            Reply::tool(
                "mshtools-deploy_website",
                json!({"type": "static", "local_dir": "/mnt/okcomputer/site"}),
            ),
            Reply::text("Your site is live."),
        ],
    );
    app.model.script(
        "APPROVEME",
        vec![
            Reply::tool(
                "mshtools-shell",
                json!({"command": "mkdir -p old-drafts && rm -rf old-drafts"}),
            ),
            Reply::text("Tidied."),
        ],
    );
    app.model.script(
        "HTMLPAGE",
        vec![
            write("/mnt/okcomputer/output/page.html", PAGE),
            Reply::text("I wrote **page.html**."),
        ],
    );
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What is missing to run the browser test, if anything.
fn missing_prerequisites(root: &Path, chromium: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(node, Ok(status) if status.success()) {
        missing.push("`node` (Debian package nodejs)".to_string());
    }
    if !Path::new(chromium).exists() {
        missing.push(format!("the browser {chromium} (Debian package chromium)"));
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        missing.push("tests/browser/node_modules (npm ci in tests/browser)".to_string());
    }
    missing
}

/// Runs the browser script `spec` against `url` with `env`; its stdout, or a failure with
/// everything it said.
async fn run_spec(root: &Path, spec: &str, url: &str, env: &[(&str, &str)]) -> String {
    let child = tokio::process::Command::new("node")
        .arg(spec)
        .arg(url)
        .current_dir(root)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start node");
    let started = Instant::now();
    let output = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish within {BROWSER_TIMEOUT:?}"))
        .expect("node failed to run");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test {spec} failed ({}) after {:.1} s\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status,
        started.elapsed().as_secs_f64()
    );
    stdout
}

/// The browser and node, or the test fails saying what is missing.
fn browser_prerequisites(root: &Path) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = missing_prerequisites(root, &chromium);
    assert!(
        missing.is_empty(),
        "the browser test needs {}; run .ci/run to install them",
        missing.join(", ")
    );
    chromium
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_signs_in_with_a_token_and_shows_each_user_their_own() {
    let root = repo_root();
    let chromium = browser_prerequisites(&root);
    let mut tokens = None;
    let app = TestApp::spawn_with(|config| {
        use okcvm::auth::{users, Role};
        config.auth.mode = okcvm::config::AuthMode::Token;
        let file = &config.auth.users_file;
        tokens = Some((
            users::add(file, "alice", Role::User).unwrap(),
            users::add(file, "bob", Role::User).unwrap(),
        ));
    });
    let (alice, bob) = tokens.unwrap();
    run_spec(
        &root,
        "tests/browser/signin.spec.mjs",
        &app.url,
        &[
            ("CHROMIUM", chromium.as_str()),
            ("ALICE_TOKEN", alice.as_str()),
            ("BOB_TOKEN", bob.as_str()),
        ],
    )
    .await;
    assert!(!app.model.requests_for("ALICE-PRIVATE").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_works_in_a_real_browser() {
    let root = repo_root();
    let chromium = browser_prerequisites(&root);

    // Shell calls ask: the console's approval card is exercised by the `APPROVEME` turn.
    let app = TestApp::spawn_with(|config| {
        config
            .permissions
            .tools
            .insert("mshtools-shell".into(), okcvm::permissions::Decision::Ask);
        // An MCP server that fails at start: Settings must say so.
        config
            .mcp
            .servers
            .push(okcvm::config::mcp::McpServerConfig {
                name: "broken".into(),
                command: "/bin/sh".into(),
                args: vec!["-c".into(), "echo no-such-server >&2; exit 3".into()],
                sandbox: false,
                ..Default::default()
            });
    });
    script_model(&app);
    let url = app.url.clone();
    let model_url = app.model.url.clone();
    let screenshot = root.join("target/console-screenshot.png");

    let stdout = run_spec(
        &root,
        "tests/browser/console.spec.mjs",
        &url,
        &[
            ("CHROMIUM", chromium.as_str()),
            ("MOCK_MODEL_URL", model_url.as_str()),
            ("SCREENSHOT", screenshot.to_str().unwrap()),
        ],
    )
    .await;
    println!("{stdout}");
    assert!(
        screenshot.exists(),
        "the screenshot {} was not written",
        screenshot.display()
    );
    // Editing the first of three messages sent only the system prompt and the edited text.
    let edited = app.model.requests_for("MANGO-EDITED");
    assert!(
        !edited.is_empty(),
        "the edited message never reached the model"
    );
    let messages = edited[0]["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "an edit of the first message must drop the later history: {messages:?}"
    );
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        messages[1]["content"],
        "MANGO-EDITED first question, edited"
    );
    // The oldest message of a history loaded page by page was edited from the top.
    let edited = app.model.requests_for("HISTORY-1 edited from the top");
    assert!(
        !edited.is_empty(),
        "the edit of the oldest message never reached the model"
    );
    assert_eq!(edited[0]["messages"].as_array().unwrap().len(), 2);
    // Compaction asked for in the console reached the model with its wish.
    let summaries = app.model.summary_requests();
    assert!(
        summaries
            .iter()
            .any(|r| r.to_string().contains("keep FACT-KIWI")),
        "Compact now did not ask for a summary with the wish"
    );
    // A page in the preview frame must never have reached the model as any client.
    assert!(
        app.model.requests_for("PWNED").is_empty(),
        "the sandboxed HTML page started a turn"
    );
}
