//! One turn as the terminal shows it: the reply as it comes, drawn as Markdown (on a terminal;
//! in a pipe only the final reply, so scripts read exactly it), tool calls as compact lines on
//! stderr (`▸ shell  ls -la  (12 ms, ok)`), approvals asked inline (y / n / a), or with
//! `--json` every event as a JSON line; a spinner on stderr while nothing comes. Ctrl-C stops
//! the turn (`POST /api/chat/stop`); a second Ctrl-C leaves at once.

use std::io::{IsTerminal as _, Write as _};

use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use serde_json::Value;

use super::{Api, ClientError};
use crate::protocol::{ChatEvent, ToolCallRecord, ToolStatus, TurnFailure};

/// How a turn ended, and the exit status it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Failed(String),
    Stopped,
    /// A second Ctrl-C: leave the client at once.
    Left,
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Answered => 0,
            Outcome::Failed(_) => 1,
            Outcome::Stopped | Outcome::Left => 130,
        }
    }
}

/// Where and how a turn is shown.
pub struct View {
    pub json: bool,
    /// Stream the tokens (stdout is a terminal); otherwise print the final reply alone.
    pub stream_tokens: bool,
    /// Colours on stderr (a terminal, and `NO_COLOR` unset).
    pub color: bool,
    /// Approvals can be answered here (stdin is a terminal).
    pub can_ask: bool,
    /// A spinner on stderr while nothing comes (stderr is a terminal, not `--json`).
    pub spinner: bool,
}

impl View {
    pub fn for_output(json: bool) -> Self {
        Self {
            json,
            stream_tokens: std::io::stdout().is_terminal(),
            color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            can_ask: std::io::stdin().is_terminal(),
            spinner: std::io::stderr().is_terminal() && !json,
        }
    }

    fn dim(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Sends `message` and follows its turn to the end; `calls` gets the turn's tool calls in
/// full (for `/tools`).
pub async fn run(
    api: &Api,
    message: &str,
    view: &View,
    calls: &mut Vec<ToolCallRecord>,
) -> Result<Outcome, ClientError> {
    let response = api.chat(message).await?;
    let mut events = response.bytes_stream().eventsource();
    let mut outcome = Outcome::Failed("the stream ended before the turn did".into());
    let mut streamed = false;
    let mut stopping = false;
    let mut inputs: std::collections::HashMap<String, Value> = Default::default();
    let mut spinner = Spinner::default();
    let mut markdown = Markdown::new(view.color);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(120));
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = tick.tick(), if view.spinner && !streamed => {
                spinner.draw();
                continue;
            }
            _ = tokio::signal::ctrl_c() => {
                if stopping {
                    return Ok(Outcome::Left);
                }
                stopping = true;
                eprintln!("{}", view.dim("stopping the turn… (Ctrl-C again to leave now)"));
                if let Err(error) = api.stop().await {
                    eprintln!("okcvm chat: {error}");
                }
                continue;
            }
        };
        let event = match next {
            None => break,
            Some(Err(error)) => {
                outcome = Outcome::Failed(format!("the event stream broke: {error}"));
                break;
            }
            Some(Ok(event)) => event,
        };
        spinner.clear();
        if view.json {
            println!("{}", event.data);
        }
        let Ok(event) = serde_json::from_str::<ChatEvent>(&event.data) else {
            continue;
        };
        match event {
            ChatEvent::Token { delta } if view.stream_tokens && !view.json => {
                markdown.push(&delta);
                streamed = true;
            }
            ChatEvent::ToolStarted {
                invocation_id,
                input,
                ..
            } => {
                inputs.insert(invocation_id, input);
            }
            ChatEvent::ToolCompleted {
                invocation_id,
                tool_name,
                status,
                duration_ms,
                ..
            } if !view.json => {
                let input = inputs.remove(&invocation_id).unwrap_or(Value::Null);
                if streamed {
                    markdown.finish();
                    streamed = false;
                }
                let ok = if status == ToolStatus::Success {
                    "ok"
                } else {
                    "error"
                };
                let line = format!(
                    "▸ {}  {}  ({duration_ms} ms, {ok})",
                    short_name(&tool_name),
                    summary(&input)
                );
                eprintln!("{}", view.dim(&line));
            }
            ChatEvent::ApprovalRequired {
                approval_id,
                tool_name,
                arguments,
                reason,
                ..
            } if !view.json => {
                ask(api, view, &approval_id, &tool_name, &arguments, &reason).await;
            }
            ChatEvent::Final { payload } => {
                calls.clone_from(&payload.tool_calls);
                if !view.json {
                    if streamed {
                        markdown.finish();
                    } else {
                        println!("{}", payload.reply);
                    }
                }
                outcome = Outcome::Answered;
            }
            ChatEvent::Error { message, reason } => {
                outcome = if reason == TurnFailure::Cancelled {
                    Outcome::Stopped
                } else {
                    Outcome::Failed(message.clone())
                };
                if !view.json {
                    if streamed {
                        markdown.finish();
                    }
                    eprintln!(
                        "okcvm chat: the turn {}",
                        match reason {
                            TurnFailure::Cancelled => "was stopped".to_string(),
                            _ => format!("failed: {message}"),
                        }
                    );
                }
            }
            ChatEvent::ContextCompacted {
                before_tokens,
                after_tokens,
                summarized,
                ..
            } if !view.json => {
                let what = if summarized {
                    "the older part is now a summary"
                } else {
                    "older tool outputs shortened"
                };
                let line = format!(
                    "▸ context compacted: {before_tokens} → {after_tokens} tokens ({what})"
                );
                eprintln!("{}", view.dim(&line));
            }
            ChatEvent::Stop => break,
            _ => {}
        }
    }
    Ok(outcome)
}

/// The streamed reply drawn for the terminal a line at a time (termimad: headers, emphasis,
/// inline code, lists and tables, wrapped to the terminal's width; fenced code as written);
/// without colours, the text as it comes.
struct Markdown {
    skin: Option<termimad::MadSkin>,
    line: String,
    in_code: bool,
}

impl Markdown {
    fn new(color: bool) -> Self {
        Self {
            skin: color.then(termimad::MadSkin::default),
            line: String::new(),
            in_code: false,
        }
    }

    fn push(&mut self, delta: &str) {
        if self.skin.is_none() {
            print!("{delta}");
            let _ = std::io::stdout().flush();
            return;
        }
        self.line.push_str(delta);
        while let Some(end) = self.line.find('\n') {
            let line: String = self.line.drain(..=end).collect();
            self.draw(line.trim_end_matches('\n'));
        }
    }

    /// Draws what is left and ends the line.
    fn finish(&mut self) {
        if self.skin.is_none() {
            println!();
            return;
        }
        let rest = std::mem::take(&mut self.line);
        if !rest.is_empty() {
            self.draw(&rest);
        }
        self.in_code = false;
    }

    fn draw(&mut self, line: &str) {
        let Some(skin) = &self.skin else {
            return;
        };
        if line.trim_start().starts_with("```") {
            self.in_code = !self.in_code;
            println!("{line}");
        } else if self.in_code || line.trim().is_empty() {
            println!("{line}");
        } else {
            print!("{}", skin.term_text(line));
        }
        let _ = std::io::stdout().flush();
    }
}

/// "The agent is working" on stderr, drawn in place and wiped before anything else is shown.
#[derive(Default)]
struct Spinner {
    frame: usize,
    shown: bool,
}

impl Spinner {
    const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

    fn draw(&mut self) {
        self.frame = (self.frame + 1) % Self::FRAMES.len();
        eprint!("\r{} working…", Self::FRAMES[self.frame]);
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
            self.shown = false;
        }
    }
}

/// Asks the person on the terminal about a call waiting for approval.
async fn ask(
    api: &Api,
    view: &View,
    approval_id: &str,
    tool: &str,
    arguments: &Value,
    reason: &str,
) {
    eprintln!(
        "? the agent wants to run {}  {}",
        short_name(tool),
        summary(arguments)
    );
    eprintln!("  {}", view.dim(reason));
    if !view.can_ask {
        eprintln!("  (no terminal to answer here: answer in the console, or it is denied when it expires)");
        return;
    }
    eprint!("  approve? [y]es / [n]o / [a]lways for this conversation: ");
    let _ = std::io::stderr().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    let line = match answer {
        Ok(Ok(line)) => line.trim().to_lowercase(),
        _ => String::new(),
    };
    let (decision, remember) = match line.as_str() {
        "y" | "yes" => ("approve", "once"),
        "a" | "always" => ("approve", "conversation"),
        _ => ("deny", "once"),
    };
    if let Err(error) = api.approve(approval_id, decision, remember).await {
        eprintln!("okcvm chat: {error}");
    }
}

/// `mshtools-shell` → `shell`.
fn short_name(tool: &str) -> &str {
    tool.strip_prefix("mshtools-").unwrap_or(tool)
}

/// A call's arguments in a few words: the command, the path or the query when there is
/// one, else compact JSON; at most 80 characters.
fn summary(arguments: &Value) -> String {
    let text = ["command", "file_path", "query", "url", "code", "message"]
        .iter()
        .find_map(|key| arguments.get(key).and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| match arguments {
            Value::Null => String::new(),
            other => other.to_string(),
        });
    let line = text.lines().next().unwrap_or("");
    crate::protocol::cap_line(line, 80)
}
