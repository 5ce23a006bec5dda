//! The workspace is a wall: agent code that swaps a name between a regular file and a symlink
//! to a host file, as fast as it can, never makes a route or a tool read or write outside the
//! workspace; FIFOs, sockets and devices are refused at once wherever a path is opened.
//!
//! The swapping runs on the host side (as agent code left running in the background would,
//! with `renameat2(RENAME_EXCHANGE)`), so it races the server with no sandbox in between.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{tool_messages, upload_form, Reply, TestApp};
use serde_json::{json, Value};

const CLIENT: &str = "wall";
/// Attempts per route or tool; the unconfined opener escaped about once in four downloads.
const ATTEMPTS: usize = 1000;
/// Tool calls per model step.
const CALLS_PER_STEP: usize = 100;
const SECRET: &str = "SECRET host file inside-out";

/// A host directory outside every workspace, with a secret file.
fn outside(app: &TestApp) -> PathBuf {
    let dir = app.dir.path().join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
    dir
}

/// Swaps each pair of names in `root` until dropped.
struct Flipper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Flipper {
    fn start(root: &Path, pairs: &[(&str, &str)]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let (root, flag) = (root.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            let dir = std::fs::File::open(&root).unwrap();
            let mut swaps = 0;
            while !flag.load(Ordering::Relaxed) {
                for (a, b) in &pairs {
                    let _ = rustix::fs::renameat_with(
                        &dir,
                        a.as_str(),
                        &dir,
                        b.as_str(),
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
                swaps += 1;
            }
            swaps
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Makes the client's workspace exist (an upload creates it).
async fn make_workspace(app: &TestApp) -> PathBuf {
    let response = app
        .http
        .post(app.api("/api/session/files", CLIENT))
        .multipart(upload_form(&[("seed.txt", b"seed".to_vec())]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.workspace_of(CLIENT)
}

/// `x` is a regular file and `y` a symlink to the secret; `sub` a folder and `z` a symlink to
/// the outside folder.
fn plant(root: &Path, outside: &Path, content: &[u8]) {
    std::fs::write(root.join("x"), content).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("y")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(outside, root.join("z")).unwrap();
}

fn assert_outside_untouched(outside: &Path) {
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        SECRET,
        "the host file was changed"
    );
    let names: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["secret.txt"], "something was created outside");
}

/// Runs `ATTEMPTS` calls of one tool in turns of `CALLS_PER_STEP`; returns every tool result.
async fn run_tool_calls(app: &TestApp, token: &str, tool: &str, args: Value) -> Vec<String> {
    let calls = vec![(tool.to_string(), args.to_string()); CALLS_PER_STEP];
    let turns = ATTEMPTS / CALLS_PER_STEP;
    let mut script = Vec::new();
    for _ in 0..turns {
        script.push(Reply::ToolCalls(String::new(), calls.clone()));
        script.push(Reply::text("done"));
    }
    app.model.script(token, script);
    for _ in 0..turns {
        let (status, body) = app.chat_json(CLIENT, token).await;
        assert_eq!(status, 200, "{body}");
    }
    app.model
        .requests_for(token)
        .iter()
        .flat_map(tool_messages)
        .collect()
}

fn spawn() -> TestApp {
    TestApp::spawn_with(|c| {
        c.llm.max_steps = 4;
        // Earlier turns' hundreds of tool results stay out of the requests to the mock.
        c.llm.context_window_tokens = Some(20_000);
    })
}

#[tokio::test]
async fn downloads_never_leave_the_workspace() {
    let app = spawn();
    let outside = outside(&app);
    let root = make_workspace(&app).await;
    plant(&root, &outside, b"inside");
    let flipper = Flipper::start(&root, &[("x", "y")]);
    let mut inside = 0;
    for i in 0..ATTEMPTS {
        let response = app
            .http
            .get(app.api("/api/session/workspace/file?path=x", CLIENT))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(!body.contains("SECRET"), "download {i} read the host file");
        if status == 200 {
            assert_eq!(body, "inside");
            inside += 1;
        } else {
            assert_eq!(status, 400, "{body}");
        }
    }
    assert!(flipper.finish() > 0);
    assert!(inside > 0, "some downloads got the file");
}

#[tokio::test]
async fn read_write_and_edit_never_leave_the_workspace() {
    let app = spawn();
    let outside = outside(&app);
    let root = make_workspace(&app).await;
    plant(&root, &outside, b"inside");
    let flipper = Flipper::start(&root, &[("x", "y"), ("sub", "z")]);

    let read = run_tool_calls(
        &app,
        "READX",
        "mshtools-read_file",
        json!({"file_path": "/mnt/okcomputer/x"}),
    )
    .await;
    assert!(read.len() >= ATTEMPTS);
    assert!(read.iter().all(|r| !r.contains("SECRET")), "a read escaped");
    assert!(
        read.iter().any(|r| r.contains("inside")),
        "some reads worked"
    );

    let written = run_tool_calls(
        &app,
        "WRITEX",
        "mshtools-write_file",
        json!({"file_path": "/mnt/okcomputer/x", "content": "inside"}),
    )
    .await;
    assert!(
        written.iter().any(|r| r.starts_with("wrote")),
        "some writes worked"
    );
    run_tool_calls(
        &app,
        "WRITESUB",
        "mshtools-write_file",
        json!({"file_path": "/mnt/okcomputer/sub/new.txt", "content": "x"}),
    )
    .await;

    // The secret holds "inside" too: an edit that escaped would change it.
    let edited = run_tool_calls(
        &app,
        "EDITX",
        "mshtools-edit_file",
        json!({"file_path": "/mnt/okcomputer/x", "old_string": "inside", "new_string": "inside", "replace_all": true}),
    )
    .await;
    assert!(!edited.is_empty());
    run_tool_calls(
        &app,
        "EDITX2",
        "mshtools-edit_file",
        json!({"file_path": "/mnt/okcomputer/x", "old_string": "side", "new_string": "SIDE", "replace_all": true}),
    )
    .await;
    assert!(flipper.finish() > 0);
    assert_outside_untouched(&outside);
}

/// A 1x1 PNG (the picture inside), and a large PNG outside: a deck that took the outside one
/// would be far larger.
const DOT_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

#[tokio::test]
async fn slides_pictures_and_artifacts_never_leave_the_workspace() {
    let app = spawn();
    let outside = outside(&app);
    let root = make_workspace(&app).await;
    plant(&root, &outside, b"inside");
    std::fs::write(root.join("pic.png"), DOT_PNG).unwrap();
    let mut big = DOT_PNG.to_vec();
    big.extend(std::iter::repeat_n(7u8, 2 * 1024 * 1024));
    let big_png = outside.join("big.png");
    std::fs::write(&big_png, &big).unwrap();
    std::os::unix::fs::symlink(&big_png, root.join("pic-link")).unwrap();
    let flipper = Flipper::start(&root, &[("pic.png", "pic-link"), ("sub", "z")]);
    let deck = "<section><h1>T</h1><img src=\"/mnt/okcomputer/pic.png\"></section>";
    let results = run_tool_calls(
        &app,
        "SLIDES",
        "mshtools-slides_generator",
        json!({"file_path": "/mnt/okcomputer/deck.pptx", "content": deck}),
    )
    .await;
    assert!(
        results.iter().any(|r| r.starts_with("Created")),
        "{:?}",
        &results[..2]
    );
    // Decks written into the swapped folder land inside or are refused.
    run_tool_calls(
        &app,
        "SLIDESUB",
        "mshtools-slides_generator",
        json!({"file_path": "/mnt/okcomputer/sub/deck.pptx", "content": deck}),
    )
    .await;
    assert!(flipper.finish() > 0);
    let deck_size = std::fs::metadata(root.join("deck.pptx")).unwrap().len();
    assert!(deck_size < 1024 * 1024, "the deck took the outside picture");
    std::fs::remove_file(&big_png).unwrap();
    assert_outside_untouched(&outside);
}

#[tokio::test]
async fn uploads_never_leave_the_workspace() {
    let app = spawn();
    let outside = outside(&app);
    let root = make_workspace(&app).await;
    std::os::unix::fs::symlink(&outside, root.join("upload-link")).unwrap();
    let flipper = Flipper::start(&root, &[("upload", "upload-link")]);
    let mut stored = 0;
    for i in 0..ATTEMPTS {
        let name = format!("f{}.txt", i % 50);
        let response = app
            .http
            .post(app.api("/api/session/files", CLIENT))
            .multipart(upload_form(&[(&name, b"upload".to_vec())]))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(status == 200 || status == 409, "upload {i}: {status}");
        stored += usize::from(status == 200);
    }
    assert!(flipper.finish() > 0);
    assert!(stored > 0, "some uploads went through");
    assert_outside_untouched(&outside);
}

/// A FIFO, a socket and a device at every path a route or tool opens: refused at once, and
/// the session still answers.
#[tokio::test]
async fn special_files_are_refused_without_hanging() {
    let app = spawn();
    let root = make_workspace(&app).await;
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let mut names = vec!["fifo", "sock"];
    let device = nix::sys::stat::mknod(
        &root.join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    );
    if device.is_ok() {
        names.push("zero");
    }
    nix::unistd::mkfifo(&root.join("pic.png"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    nix::unistd::mkfifo(&root.join("out.pptx"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    for name in &names {
        let response = app
            .http
            .get(app.api(&format!("/api/session/workspace/file?path={name}"), CLIENT))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "download of {name}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("not a regular file")
                || body["detail"].as_str().unwrap().contains("special file"),
            "{body}"
        );
    }
    let deck = "<section><h1>T</h1><img src=\"/mnt/okcomputer/pic.png\"></section>";
    let mut calls = Vec::new();
    for name in &names {
        let path = format!("/mnt/okcomputer/{name}");
        calls.push((
            "mshtools-read_file".to_string(),
            json!({"file_path": path}).to_string(),
        ));
        calls.push((
            "mshtools-write_file".to_string(),
            json!({"file_path": path, "content": "x"}).to_string(),
        ));
        calls.push((
            "mshtools-edit_file".to_string(),
            json!({"file_path": path, "old_string": "a", "new_string": "b"}).to_string(),
        ));
    }
    calls.push((
        "mshtools-slides_generator".to_string(),
        json!({"file_path": "/mnt/okcomputer/out.pptx", "content": deck}).to_string(),
    ));
    calls.push((
        "mshtools-slides_generator".to_string(),
        json!({"file_path": "/mnt/okcomputer/d.pptx", "content": deck}).to_string(),
    ));
    app.model.script(
        "SPECIAL",
        vec![Reply::ToolCalls(String::new(), calls), Reply::text("done")],
    );
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(30), app.chat_json(CLIENT, "SPECIAL"))
            .await
            .expect("a special file hung the turn");
    assert_eq!(status, 200, "{body}");
    let results = tool_messages(app.model.requests_for("SPECIAL").last().unwrap());
    let refusals = results
        .iter()
        .filter(|r| r.contains("not a regular file") || r.contains("special file"))
        .count();
    assert!(
        refusals > names.len() * 3,
        "every special file was refused: {results:#?}"
    );
    let slides = results.last().unwrap();
    assert!(
        slides.contains("pic.png"),
        "the FIFO picture was left out: {slides}"
    );
    let (status, _) = app.chat_json(CLIENT, "still there?").await;
    assert_eq!(status, 200);
}
