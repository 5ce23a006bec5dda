//! Permissions: whether one tool call runs, waits for a person's yes, or is refused.
//!
//! The operator's `[permissions]` (a preset, rules per tool and per command) is the floor; a
//! conversation's owner may pick a stricter preset (or one no looser than `loosest_mode`),
//! make tools stricter, and approvals remembered for the conversation or for the owner turn
//! later `ask`s into `allow` — never a `deny`. Shell lines and the `!cmd` lines of Python are
//! read command by command (`shell.rs`, `commands.rs`). Only the tool's name and arguments are
//! looked at: nothing the model writes (a `confirmed: true`, a comment) changes a decision.
//! Pure: the runtime keeps the choices and asks the person.

mod commands;
mod shell;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;

pub use crate::config::permissions::{Decision, Mode, PermissionsConfig, Unattended};
pub use commands::{Class, CommandPart};

const SHELL_TOOL: &str = "mshtools-shell";
const PYTHON_TOOL: &str = "mshtools-ipython";

/// What a tool does, for the presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolKind {
    Reads,
    Writes,
    /// Reaches beyond the sandbox (a deploy, another server's tools).
    Risky,
}

fn tool_kind(name: &str, config: &Config) -> ToolKind {
    if let Some(rest) = name.strip_prefix("mcp__") {
        let server = rest.split("__").next().unwrap_or("");
        let trusted = config
            .mcp
            .servers
            .iter()
            .any(|s| s.trust && s.name == server);
        return if trusted {
            ToolKind::Writes
        } else {
            ToolKind::Risky
        };
    }
    match name.strip_prefix("mshtools-") {
        Some(
            "read_file"
            | "todo_read"
            | "web_search"
            | "image_search"
            | "browser_visit"
            | "browser_state"
            | "browser_find"
            | "browser_scroll_down"
            | "browser_scroll_up"
            | "get_data_source"
            | "get_data_source_desc"
            | "get_available_voices",
        ) => ToolKind::Reads,
        Some("deploy_website") | None => ToolKind::Risky,
        Some(_) => ToolKind::Writes,
    }
}

/// How far a call reaches, as one class: a tool's kind, or its riskiest command.
fn class_of_kind(kind: ToolKind) -> Class {
    match kind {
        ToolKind::Reads => Class::Reads,
        ToolKind::Writes => Class::Writes,
        ToolKind::Risky => Class::Risky,
    }
}

/// What a preset does with a class.
fn preset(mode: Mode, class: Class) -> Decision {
    match (class, mode) {
        (Class::Denied, _) => Decision::Deny,
        (Class::Allowed | Class::Reads, _) => Decision::Allow,
        (_, Mode::Auto) => Decision::Allow,
        (Class::Writes, Mode::AskRisky) => Decision::Allow,
        (Class::Writes | Class::Risky | Class::Opaque, _) => Decision::Ask,
    }
}

/// A conversation's own choices (set by its owner) and the approvals it remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversationPermissions {
    pub mode: Option<Mode>,
    pub tools: BTreeMap<String, Decision>,
    pub remembered: Vec<Remembered>,
}

/// An approval that stands for later calls: of `tool`, and for shell and Python only of
/// commands that start with `prefix` (a rule's words, or a command's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// The decision on one call, with what the person is shown when it asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub decision: Decision,
    /// The rule or preset that decided, in words.
    pub reason: String,
    /// For shell and Python: each command found, with its class.
    pub commands: Vec<CommandPart>,
    /// What "remember" would stand for: one entry per command that asked, or the tool.
    #[serde(skip)]
    pub covers: Vec<Remembered>,
}

/// The rules in force for one conversation.
pub struct Policy<'a> {
    /// The server's configuration: `[permissions]`, and `[mcp]` for trusted servers.
    pub config: &'a Config,
    pub conversation: &'a ConversationPermissions,
    /// The owner's standing approvals (every conversation).
    pub owner: &'a [Remembered],
}

impl Policy<'_> {
    fn operator(&self) -> &PermissionsConfig {
        &self.config.permissions
    }

    /// The preset in force: the conversation's, held to the operator's loosest.
    pub fn mode(&self) -> Mode {
        self.conversation.mode.map_or(self.operator().mode, |m| {
            m.max(self.operator().loosest_mode)
        })
    }

    /// The decision on calling `tool` with `arguments` (the model's JSON text).
    pub fn judge(&self, tool: &str, arguments: &str) -> Judgement {
        let mode = self.mode();
        let commands = self.commands(tool, arguments);
        let class = commands
            .iter()
            .map(|c| c.class)
            .max()
            .unwrap_or_else(|| class_of_kind(tool_kind(tool, self.config)));
        let mut decision = preset(mode, class);
        // The first of the riskiest commands.
        let mut reason = match commands.iter().rev().max_by_key(|c| c.class) {
            Some(part) if decision != Decision::Allow => format!("{}: {}", part.text, part.why),
            _ => format!("the {} preset", mode.name()),
        };
        // The operator's rule decides for its tool (a command's deny rule still holds).
        let operator_rule = tool_rule(&self.operator().tools, tool);
        if let Some((pattern, rule)) = operator_rule {
            let ruled = if class == Class::Denied {
                Decision::Deny
            } else {
                rule
            };
            if ruled != decision {
                decision = ruled;
                reason = format!("the server's rule for {pattern}");
            }
        }
        // The conversation's rule raises; it lowers only where the owner could have picked
        // `auto` anyway and the operator has no rule for the tool.
        if let Some((pattern, rule)) = tool_rule(&self.conversation.tools, tool) {
            let may_lower = operator_rule.is_none()
                && self.operator().loosest_mode == Mode::Auto
                && class != Class::Denied;
            let ruled = if may_lower { rule } else { rule.max(decision) };
            if ruled != decision {
                decision = ruled;
                reason = format!("this conversation's rule for {pattern}");
            }
        }
        let covers = self.covers(tool, &commands);
        if decision == Decision::Ask && self.remembered(tool, &covers) {
            decision = Decision::Allow;
            reason = "approved before".into();
        }
        Judgement {
            decision,
            reason,
            commands,
            covers,
        }
    }

    /// The commands a call runs, for the tools that run command lines.
    fn commands(&self, tool: &str, arguments: &str) -> Vec<CommandPart> {
        let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
        let rules = &self.operator().commands;
        match tool {
            SHELL_TOOL => match args.get("command").and_then(Value::as_str) {
                Some(line) => shell::read_line(line, rules),
                None => Vec::new(),
            },
            PYTHON_TOOL => {
                let code = args.get("code").and_then(Value::as_str).unwrap_or("");
                let mut parts = vec![CommandPart {
                    text: "python".into(),
                    class: Class::Writes,
                    why: "runs Python code".into(),
                    prefix: "python".into(),
                }];
                for line in code.lines() {
                    if let Some(command) = line.trim_start().strip_prefix('!') {
                        parts.extend(shell::read_line(command, rules));
                    }
                }
                parts
            }
            _ => Vec::new(),
        }
    }

    /// What remembering this call would stand for: the commands that ask, or the tool.
    fn covers(&self, tool: &str, commands: &[CommandPart]) -> Vec<Remembered> {
        let mode = self.mode();
        let asking: Vec<Remembered> = commands
            .iter()
            .filter(|c| preset(mode, c.class) == Decision::Ask)
            .map(|c| Remembered {
                tool: tool.to_string(),
                prefix: Some(c.prefix.clone()),
            })
            .collect();
        if asking.is_empty() {
            vec![Remembered {
                tool: tool.to_string(),
                prefix: None,
            }]
        } else {
            asking
        }
    }

    /// Every part that asks is covered by an approval that stands.
    fn remembered(&self, tool: &str, covers: &[Remembered]) -> bool {
        let standing = || self.conversation.remembered.iter().chain(self.owner);
        covers.iter().all(|need| {
            standing().any(|have| {
                have.tool == tool
                    && match (&have.prefix, &need.prefix) {
                        (None, _) => need.prefix.is_none(),
                        (Some(have), Some(need)) => starts_with_words(need, have),
                        (Some(_), None) => false,
                    }
            })
        })
    }
}

/// `text` begins with the words of `prefix`.
fn starts_with_words(text: &str, prefix: &str) -> bool {
    let mut words = text.split_whitespace();
    prefix.split_whitespace().all(|p| words.next() == Some(p))
}

/// The rule for `tool`: its own name first, then the longest `prefix*` that matches.
fn tool_rule<'r>(rules: &'r BTreeMap<String, Decision>, tool: &str) -> Option<(&'r str, Decision)> {
    if let Some((name, decision)) = rules.get_key_value(tool) {
        return Some((name, *decision));
    }
    rules
        .iter()
        .filter(|(pattern, _)| {
            pattern
                .strip_suffix('*')
                .is_some_and(|prefix| tool.starts_with(prefix))
        })
        .max_by_key(|(pattern, _)| pattern.len())
        .map(|(pattern, decision)| (pattern.as_str(), *decision))
}

#[cfg(test)]
mod tests;
