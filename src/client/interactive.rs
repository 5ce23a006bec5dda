//! The interactive `okcvm chat`: a line editor with history (rustyline, kept in
//! `~/.okcvm_chat_history`), each line a message, and slash commands for the rest: `/new`,
//! `/list`, `/switch ID`, `/files`, `/get PATH [DEST]`, `/upload FILE`, `/snapshots`,
//! `/restore ID`, `/tools` (the last turn's calls expanded), `/stop`, `/help`, `/quit`.

use std::path::PathBuf;

use reqwest::Method;
use rustyline::error::ReadlineError;
use serde_json::json;

use super::turn::{self, View};
use super::{new_conversation_id, Api, ClientError};

const HELP: &str = "\
/new              start a new conversation
/list             your conversations, newest first
/switch ID        continue conversation ID
/files            the workspace's files
/get PATH [DEST]  download a workspace file (to DEST, or its name here)
/upload FILE      upload a file into the workspace's upload/ folder
/snapshots        the workspace's snapshots
/restore ID       bring the workspace back to snapshot ID
/tools            the last turn's tool calls in full: arguments and output (Ctrl-O types it)
/context          how full the model's context is
/compact [WISH]   summarise the older part of the conversation now (WISH: what to keep)
/stop             stop the running turn
/help             this list
/quit             leave (Ctrl-D too); Ctrl-C during a turn stops it";

pub async fn run(mut api: Api) -> Result<i32, ClientError> {
    let view = View::for_output(false);
    let mut editor =
        rustyline::DefaultEditor::new().map_err(|e| ClientError::Local(e.to_string()))?;
    // Ctrl-O expands the last turn's tool calls (it types `/tools`; Enter shows them).
    editor.bind_sequence(
        rustyline::KeyEvent::ctrl('O'),
        rustyline::Cmd::Replace(rustyline::Movement::WholeLine, Some("/tools".into())),
    );
    let history =
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".okcvm_chat_history"));
    if let Some(history) = &history {
        let _ = editor.load_history(history);
    }
    eprintln!(
        "okcvm chat: conversation {} — /help for commands",
        api.conversation
    );
    let mut last_calls = Vec::new();
    loop {
        // The editor blocks; it reads on the blocking pool and comes back.
        let (returned, line) = tokio::task::spawn_blocking(move || {
            let line = editor.readline("› ");
            (editor, line)
        })
        .await
        .map_err(|e| ClientError::Local(e.to_string()))?;
        editor = returned;
        let line = match line {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(ClientError::Local(error.to_string())),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        let done = match line.strip_prefix('/') {
            Some("tools") => {
                show_calls(&last_calls);
                Ok(false)
            }
            Some(command) => command_line(&mut api, command).await,
            None => turn::run(&api, line, &view, &mut last_calls)
                .await
                .map(|outcome| outcome == turn::Outcome::Left),
        };
        match done {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => eprintln!("okcvm chat: {error}"),
        }
    }
    if let Some(history) = &history {
        let _ = editor.save_history(history);
    }
    Ok(0)
}

/// Runs one slash command; `true` to leave.
async fn command_line(api: &mut Api, line: &str) -> Result<bool, ClientError> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    match (command, args.as_slice()) {
        ("quit" | "exit", _) => return Ok(true),
        ("help", _) => eprintln!("{HELP}"),
        ("new", _) => {
            api.conversation = new_conversation_id();
            eprintln!("new conversation {}", api.conversation);
        }
        ("list", _) => {
            for (id, title) in api.conversations().await? {
                let mark = if id == api.conversation { "*" } else { " " };
                println!("{mark} {id}  {title}");
            }
        }
        ("switch", [id]) => {
            api.conversation = id.to_string();
            eprintln!("conversation {id}");
        }
        ("files", _) => {
            let body = api
                .json(Method::GET, "/api/session/workspace/files", None)
                .await?;
            for file in body["files"].as_array().into_iter().flatten() {
                if file["is_dir"] != true {
                    println!(
                        "{}  {}",
                        file["path"].as_str().unwrap_or(""),
                        file["size_display"].as_str().unwrap_or("")
                    );
                }
            }
        }
        ("get", [path, rest @ ..]) if rest.len() <= 1 => {
            let bytes = api.download(path).await?;
            let dest = rest
                .first()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(path.rsplit('/').next().unwrap_or("download")));
            std::fs::write(&dest, &bytes)
                .map_err(|e| ClientError::Local(format!("cannot write {}: {e}", dest.display())))?;
            eprintln!("saved {} ({} bytes)", dest.display(), bytes.len());
        }
        ("upload", [file]) => {
            let path = std::path::Path::new(file);
            let body = api.upload(path).await?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            // The answer lists every upload of the session; this one is the one by its name.
            let stored = body["files"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|u| u["name"].as_str() == name.as_deref())
                .and_then(|u| u["path"].as_str())
                .unwrap_or("the upload folder");
            eprintln!("uploaded: {stored}");
        }
        ("snapshots", _) => {
            let body = api
                .json(Method::GET, "/api/session/workspace/snapshots", None)
                .await?;
            for snapshot in body["snapshots"].as_array().into_iter().flatten() {
                let field = |name: &str| snapshot[name].as_str().unwrap_or("").to_string();
                println!(
                    "{}  {}  {}",
                    field("id"),
                    field("timestamp"),
                    field("label")
                );
            }
        }
        ("restore", [id]) => {
            api.json(
                Method::POST,
                "/api/session/workspace/restore",
                Some(json!({"snapshot_id": id})),
            )
            .await?;
            eprintln!("the workspace is back at {id}");
        }
        ("stop", _) => api.stop().await?,
        ("compact", wish) => {
            let body = match wish.join(" ") {
                wish if wish.is_empty() => json!({}),
                wish => json!({"instructions": wish}),
            };
            eprintln!("compacting…");
            let done = api
                .json(Method::POST, "/api/session/compact", Some(body))
                .await?;
            let tokens = |name: &str| done[name].as_u64().unwrap_or(0);
            eprintln!(
                "compacted: {} → {} tokens of {} ({})",
                tokens("before_tokens"),
                tokens("after_tokens"),
                done["context"]["window_tokens"].as_u64().unwrap_or(0),
                if done["summarized"] == true {
                    "the older part is now a summary"
                } else {
                    "older tool outputs shortened"
                }
            );
        }
        ("context", _) => {
            let info = api.json(Method::GET, "/api/session/info", None).await?;
            let context = &info["context"];
            let number = |name: &str| context[name].as_u64().unwrap_or(0);
            let (used, window) = (number("used_tokens"), number("window_tokens").max(1));
            println!(
                "{used} of {window} tokens ({}%), {} compaction(s)",
                used * 100 / window,
                number("compactions")
            );
        }
        _ => eprintln!("unknown command /{line}; /help lists them"),
    }
    Ok(false)
}

/// The tool calls of the last turn, expanded.
fn show_calls(calls: &[crate::protocol::ToolCallRecord]) {
    if calls.is_empty() {
        eprintln!("the last turn called no tool");
    }
    for call in calls {
        let input = serde_json::to_string_pretty(&call.tool_input).unwrap_or_default();
        let output = crate::protocol::cap_line(&call.tool_output, 4000);
        println!(
            "▸ {} ({:?})\n{input}\n{output}\n",
            call.tool_name, call.status
        );
    }
}
