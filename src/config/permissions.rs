//! `[permissions]`: what the agent may do without asking, what needs a person's yes, and what
//! never runs. The vocabulary (modes, decisions, rules) is here; `permissions/` applies it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A preset: how the tools and commands that are not named by a rule are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Everything inside the sandbox runs; only `deny` rules stop anything.
    Auto,
    /// Reading and work inside the workspace run; risky commands (deleting recursively, the
    /// network, installing), deploys and commands that cannot be read ask first.
    #[default]
    AskRisky,
    /// Only what reads runs; anything that writes, runs code or reaches out asks first.
    ReadOnly,
}

/// What happens to one tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Ask,
    Deny,
}

/// What `ask` becomes when no person is on the line (`/v1/chat/completions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unattended {
    #[default]
    Deny,
    Allow,
}

/// Rules on the commands of a shell line (and of `!cmd` lines in Python), by their words:
/// `"rm -rf"` matches `rm -rf x`, `rm -r -f x` and `rm -fr x`; `"git push"` matches
/// `git push origin main`. `allow` rules match only a command that starts with exactly their
/// words. A matching `deny` wins, then a matching `ask`, unless a longer `allow` matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandRules {
    pub allow: Vec<String>,
    /// Replaces the built-in list of risky commands when set.
    pub ask: Vec<String>,
    pub deny: Vec<String>,
}

impl Default for CommandRules {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            ask: DEFAULT_ASK.iter().map(|s| s.to_string()).collect(),
            deny: Vec::new(),
        }
    }
}

/// The commands `ask-risky` asks about unless the operator lists its own.
const DEFAULT_ASK: &[&str] = &[
    // deleting recursively or for good
    "rm -r",
    "rm -R",
    "rm --recursive",
    "rm -f",
    "rm --force",
    "find -delete",
    "shred",
    "dd",
    "mkfs",
    "git reset --hard",
    "git clean",
    "git push",
    "git filter-branch",
    // the network
    "curl",
    "wget",
    "ssh",
    "scp",
    "sftp",
    "rsync",
    "nc",
    "ncat",
    "socat",
    "telnet",
    "ftp",
    "git clone",
    "git fetch",
    "git pull",
    // installing
    "pip install",
    "pip3 install",
    "python -m pip",
    "python3 -m pip",
    "uv pip",
    "npm install",
    "npm i",
    "npm ci",
    "npx",
    "yarn add",
    "pnpm add",
    "pnpm install",
    "cargo install",
    "gem install",
    "go install",
    "apt",
    "apt-get",
    "dpkg",
    // other people's processes and rights
    "sudo",
    "su",
    "doas",
    "kill",
    "pkill",
    "killall",
    "chown",
    "chmod -R",
    "crontab",
];

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionsConfig {
    /// The preset of conversations that have not picked their own.
    pub mode: Mode,
    /// The loosest preset an owner may pick for a conversation.
    pub loosest_mode: Mode,
    /// A person's answer is awaited this long; no answer is a denial.
    pub approval_timeout_secs: u64,
    /// What `ask` becomes on `/v1/chat/completions`, where nobody can answer.
    pub unattended: Unattended,
    /// Per tool, by name (`mshtools-shell`, `mcp__server__tool`, `mcp__server__*`).
    pub tools: BTreeMap<String, Decision>,
    pub commands: CommandRules,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        Self {
            mode: Mode::AskRisky,
            loosest_mode: Mode::Auto,
            approval_timeout_secs: 300,
            unattended: Unattended::Deny,
            tools: BTreeMap::new(),
            commands: CommandRules::default(),
        }
    }
}

/// A name a tool rule may have: a tool's name or a `prefix*` pattern, 1–200 characters, no
/// white space or control characters (the server's rules and a conversation's alike).
pub fn is_tool_pattern(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 200
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl super::Config {
    /// The `[permissions]` checks of [`super::Config::validate`].
    pub(super) fn validate_permissions(&self) -> Result<(), super::ConfigError> {
        let invalid =
            |key: &'static str, message: String| Err(super::ConfigError::Invalid { key, message });
        let permissions = &self.permissions;
        if !(1..=86_400).contains(&permissions.approval_timeout_secs) {
            return invalid(
                "permissions.approval_timeout_secs",
                "must be between 1 and 86400 seconds".into(),
            );
        }
        if permissions.mode < permissions.loosest_mode {
            return invalid(
                "permissions.mode",
                format!(
                    "is {}, looser than permissions.loosest_mode ({})",
                    permissions.mode.name(),
                    permissions.loosest_mode.name()
                ),
            );
        }
        if let Some(name) = permissions.tools.keys().find(|name| !is_tool_pattern(name)) {
            return invalid("permissions.tools", format!("{name:?} is not a tool name"));
        }
        for (key, rules) in [
            ("permissions.commands.allow", &permissions.commands.allow),
            ("permissions.commands.ask", &permissions.commands.ask),
            ("permissions.commands.deny", &permissions.commands.deny),
        ] {
            if rules
                .iter()
                .any(|rule| rule.split_whitespace().next().is_none())
            {
                return invalid(key, "holds an empty rule, which would match nothing".into());
            }
        }
        Ok(())
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::AskRisky => "ask-risky",
            Mode::ReadOnly => "read-only",
        }
    }
}
