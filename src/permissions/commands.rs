//! What one command does, from its words: the operator's rules first (the longest matching
//! rule wins, the stricter between equals), then the commands known to only read, and the
//! commands that run other commands — wrappers (`sudo`, `env`, `timeout`, `xargs`,
//! `find -exec`) and shells given a script (`bash -c`, `eval`, `sh <<EOF`) — whose inner
//! command is read in turn. Anything else runs as `Writes`: it may change the workspace.

use serde::Serialize;

use crate::config::permissions::{CommandRules, Decision};

/// How far one command reaches, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// An `allow` rule names it.
    Allowed,
    /// Only reads: a command known to change nothing, used without its writing options.
    Reads,
    /// May change files in the workspace or runs code there.
    Writes,
    /// An `ask` rule names it (deletes for good, reaches the network, installs…).
    Risky,
    /// Cannot be read: a syntax error, a name only known when it runs.
    Opaque,
    /// A `deny` rule names it.
    Denied,
}

/// One command of a line, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandPart {
    /// The command's words as written.
    pub text: String,
    pub class: Class,
    /// The rule that matched, or why it is in its class.
    pub why: String,
    /// What an approval remembered for it stands for: later commands starting with these
    /// words (the rule's words, the command's name, or all of an unreadable line).
    pub prefix: String,
}

/// What reading one command's words found.
pub enum Invocation {
    Command(CommandPart),
    Opaque {
        text: String,
        why: String,
    },
    /// A shell given a script as text: the script is read too.
    Runs {
        part: CommandPart,
        script: String,
    },
    /// A command that runs the command in its arguments: that one is read too. `part` is
    /// the wrapper's own, when a rule names it.
    Wraps {
        part: Option<CommandPart>,
        inner: Vec<String>,
    },
}

const SHELLS: &[&str] = &["bash", "sh", "dash", "zsh", "ksh", "ash", "mksh", "fish"];

/// Commands that run the command in their arguments, with their options that take a value
/// and how many plain words come before the command.
const WRAPPERS: &[(&str, &[&str], usize)] = &[
    (
        "sudo",
        &[
            "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group",
        ],
        0,
    ),
    ("doas", &["-u", "-C"], 0),
    ("env", &["-u", "-C", "--unset", "--chdir"], 0),
    ("nice", &["-n", "--adjustment"], 0),
    ("nohup", &[], 0),
    ("setsid", &[], 0),
    ("builtin", &[], 0),
    ("command", &[], 0),
    ("exec", &["-a"], 0),
    ("time", &["-f", "-o", "--format", "--output"], 0),
    ("stdbuf", &["-i", "-o", "-e"], 0),
    ("ionice", &["-c", "-n", "-p"], 0),
    ("timeout", &["-s", "-k", "--signal", "--kill-after"], 1),
    ("watch", &["-n", "--interval"], 0),
    ("strace", &["-o", "-e", "-p", "-s", "-u", "-E"], 0),
    (
        "xargs",
        &[
            "-a",
            "-d",
            "-E",
            "-I",
            "-L",
            "-n",
            "-P",
            "-s",
            "--arg-file",
            "--delimiter",
            "--eof",
            "--replace",
            "--max-lines",
            "--max-args",
            "--max-procs",
            "--max-chars",
        ],
        0,
    ),
];

/// Commands that only read, with their options that would write or run something.
const READ_ONLY: &[(&str, &[&str])] = &[
    ("ls", &[]),
    ("cat", &[]),
    ("head", &[]),
    ("tail", &[]),
    ("less", &[]),
    ("more", &[]),
    ("grep", &[]),
    ("egrep", &[]),
    ("fgrep", &[]),
    ("rg", &["--pre"]),
    ("wc", &[]),
    ("pwd", &[]),
    ("echo", &[]),
    ("printf", &[]),
    ("date", &["-s", "--set"]),
    ("whoami", &[]),
    ("id", &[]),
    ("uname", &[]),
    ("file", &[]),
    ("stat", &[]),
    ("du", &[]),
    ("df", &[]),
    ("tree", &["-o"]),
    ("sort", &["-o", "--output", "--compress-program"]),
    ("cut", &[]),
    ("tr", &[]),
    ("diff", &[]),
    ("cmp", &[]),
    ("comm", &[]),
    ("which", &[]),
    ("type", &[]),
    ("printenv", &[]),
    ("true", &[]),
    ("false", &[]),
    ("test", &[]),
    ("[", &[]),
    ("basename", &[]),
    ("dirname", &[]),
    ("realpath", &[]),
    ("readlink", &[]),
    ("jq", &[]),
    ("column", &[]),
    ("nl", &[]),
    ("md5sum", &[]),
    ("sha1sum", &[]),
    ("sha256sum", &[]),
    ("sha512sum", &[]),
    ("base64", &[]),
    ("seq", &[]),
    ("sleep", &[]),
    ("expr", &[]),
    ("cd", &[]),
    ("pushd", &[]),
    ("popd", &[]),
    ("export", &[]),
    ("unset", &[]),
    ("set", &[]),
    ("local", &[]),
    ("declare", &[]),
    ("read", &[]),
    ("shift", &[]),
    ("wait", &[]),
    ("exit", &[]),
    ("return", &[]),
    (":", &[]),
    ("env", &[]),
    ("xargs", &[]),
    (
        "find",
        &[
            "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf",
            "-fls",
        ],
    ),
];

/// `git` subcommands that only read, and the options that would make them write or run code.
const GIT_READS: &[&str] = &[
    "status",
    "log",
    "diff",
    "show",
    "ls-files",
    "rev-parse",
    "blame",
    "describe",
    "shortlog",
    "ls-tree",
    "cat-file",
    "grep",
];
const GIT_NOT_READING: &[&str] = &[
    "-c",
    "--output",
    "--ext-diff",
    "-O",
    "--open-files-in-pager",
    "--exec-path",
    "--config-env",
];

/// Reads one command from its words as written (quoted, unexpanded).
pub fn read(raw: &[&str], stdin: Option<&str>, rules: &CommandRules) -> Invocation {
    let text = crate::protocol::cap_line(&raw.join(" "), 200);
    let Some(first) = raw.first() else {
        return Invocation::Opaque {
            text,
            why: "an empty command".into(),
        };
    };
    if first.contains('$') || first.contains('`') || first.contains(['*', '?', '[']) {
        return Invocation::Opaque {
            text,
            why: "its name is only known when it runs".into(),
        };
    }
    let words: Vec<String> = raw.iter().map(|w| brush_parser::unquote_str(w)).collect();
    let name = base_name(&words[0]);
    let ruled = rule_for(&words, rules).map(|(decision, rule)| CommandPart {
        text: text.clone(),
        class: match decision {
            Decision::Allow => Class::Allowed,
            Decision::Ask => Class::Risky,
            Decision::Deny => Class::Denied,
        },
        why: format!("rule \"{rule}\""),
        prefix: rule,
    });
    let args = &words[1..];
    if SHELLS.contains(&name.as_str()) || name == "eval" {
        if let Some(script) = shell_script(&name, args, stdin) {
            let part = ruled.unwrap_or(CommandPart {
                text,
                class: Class::Writes,
                why: "runs a script".into(),
                prefix: name.clone(),
            });
            return match script {
                Ok(script) => Invocation::Runs { part, script },
                Err(why) => Invocation::Opaque {
                    text: part.text,
                    why: why.into(),
                },
            };
        }
    }
    match wrapped(&name, raw) {
        Some(Wrapped::Command(inner)) => return Invocation::Wraps { part: ruled, inner },
        Some(Wrapped::Opaque(why)) => {
            return Invocation::Opaque {
                text,
                why: why.into(),
            }
        }
        Some(Wrapped::Nothing) | None => {}
    }
    if let Some(part) = ruled {
        return Invocation::Command(part);
    }
    let (class, why) = if reads_only(&name, args) {
        (Class::Reads, "only reads".to_string())
    } else {
        (Class::Writes, format!("runs {name}"))
    };
    let prefix = match args.iter().find(|a| !a.starts_with('-')) {
        Some(subcommand) if name == "git" => format!("git {subcommand}"),
        _ => name,
    };
    Invocation::Command(CommandPart {
        text,
        class,
        why,
        prefix,
    })
}

/// The script a shell or `eval` runs: `Some(Ok)` when it can be read, `Some(Err)` when it
/// cannot, `None` when the shell runs a script file (a command like any other).
fn shell_script(
    name: &str,
    args: &[String],
    stdin: Option<&str>,
) -> Option<Result<String, &'static str>> {
    if name == "eval" {
        return Some(Ok(args.join(" ")));
    }
    let mut at = 0;
    while at < args.len() {
        let arg = &args[at];
        if arg == "--" {
            at += 1;
            break;
        }
        if !arg.starts_with('-') && !arg.starts_with('+') || arg == "-" {
            break;
        }
        if arg.starts_with("--") {
            at += 1;
            continue;
        }
        if arg.contains('c') {
            // `-c script`: the first word after the options.
            let script = args[at + 1..].iter().position(|a| !a.starts_with('-'));
            return Some(match script {
                Some(offset) => Ok(args[at + 1 + offset].clone()),
                None => Err("a shell without its script"),
            });
        }
        if arg.ends_with('o') || arg.ends_with('O') {
            at += 1; // `-o option`
        }
        at += 1;
    }
    match (args.get(at), stdin) {
        (None, Some(script)) => Some(Ok(script.to_string())),
        (Some(s), Some(script)) if s == "-" || s == "-s" => Some(Ok(script.to_string())),
        (None, None) => Some(Err("runs the commands it reads from its input")),
        _ => None,
    }
}

/// What a wrapper runs.
enum Wrapped {
    /// Nothing (`env` alone prints the environment, `command -v` a path).
    Nothing,
    /// This command, its words as written.
    Command(Vec<String>),
    Opaque(&'static str),
}

/// The command a wrapper runs; `None` when `name` is not a wrapper.
fn wrapped(name: &str, raw: &[&str]) -> Option<Wrapped> {
    if name == "find" {
        return Some(find_exec(raw).map_or(Wrapped::Nothing, Wrapped::Command));
    }
    let (_, valued, positional) = WRAPPERS.iter().find(|(n, _, _)| *n == name)?;
    let mut positional = *positional;
    let mut at = 1;
    while at < raw.len() {
        let word = brush_parser::unquote_str(raw[at]);
        if word == "--" {
            at += 1;
            break;
        }
        if word.starts_with('-') && word.len() > 1 {
            if name == "command" && (word == "-v" || word == "-V") {
                return Some(Wrapped::Nothing);
            }
            if name == "env" && (word.starts_with("-S") || word.starts_with("--split-string")) {
                return Some(Wrapped::Opaque("runs a command line split from a string"));
            }
            at += if valued.contains(&word.as_str()) {
                2
            } else {
                1
            };
            continue;
        }
        if name == "env" && word.contains('=') {
            at += 1;
            continue;
        }
        if positional > 0 {
            positional -= 1;
            at += 1;
            continue;
        }
        break;
    }
    let inner: Vec<String> = raw[at.min(raw.len())..]
        .iter()
        .map(|w| w.to_string())
        .collect();
    Some(if inner.is_empty() {
        Wrapped::Nothing
    } else {
        Wrapped::Command(inner)
    })
}

/// The command of `find … -exec CMD … ;` (also `-execdir`, `-ok`, `-okdir`).
fn find_exec(raw: &[&str]) -> Option<Vec<String>> {
    let start = raw.iter().position(|w| {
        matches!(
            brush_parser::unquote_str(w).as_str(),
            "-exec" | "-execdir" | "-ok" | "-okdir"
        )
    })? + 1;
    let inner: Vec<String> = raw[start..]
        .iter()
        .map(|w| w.to_string())
        .take_while(|w| {
            let plain = brush_parser::unquote_str(w);
            plain != ";" && plain != "+"
        })
        .collect();
    (!inner.is_empty()).then_some(inner)
}

fn reads_only(name: &str, args: &[String]) -> bool {
    if name == "git" {
        let subcommand = args.iter().find(|a| !a.starts_with('-'));
        return subcommand.is_some_and(|s| GIT_READS.contains(&s.as_str()))
            && !GIT_NOT_READING.iter().any(|flag| has_flag(args, flag));
    }
    READ_ONLY
        .iter()
        .find(|(n, _)| *n == name)
        .is_some_and(|(_, writing)| !writing.iter().any(|flag| has_flag(args, flag)))
}

/// The decision and text of the rule that governs `words`, if any: a `deny` that matches
/// wins unless a longer `allow` matches; then an `ask`, unless a longer `allow` matches.
fn rule_for(words: &[String], rules: &CommandRules) -> Option<(Decision, String)> {
    /// The first of the longest matching rules.
    fn longest<'r>(
        list: &'r [String],
        words: &[String],
        exact: bool,
    ) -> Option<(usize, &'r String)> {
        list.iter()
            .rev()
            .filter(|rule| {
                let pattern: Vec<&str> = rule.split_whitespace().collect();
                if exact {
                    matches_exactly(&pattern, words)
                } else {
                    matches_loosely(&pattern, words)
                }
            })
            .max_by_key(|rule| rule.split_whitespace().count())
            .map(|rule| (rule.split_whitespace().count(), rule))
    }
    let allow = longest(&rules.allow, words, true);
    let beaten = |(len, _): (usize, &String)| allow.is_none_or(|(longer, _)| longer <= len);
    let strict = [
        (Decision::Deny, longest(&rules.deny, words, false)),
        (Decision::Ask, longest(&rules.ask, words, false)),
    ];
    strict
        .into_iter()
        .find_map(|(decision, rule)| {
            rule.filter(|r| beaten(*r))
                .map(|(_, r)| (decision, r.clone()))
        })
        .or_else(|| allow.map(|(_, rule)| (Decision::Allow, rule.clone())))
}

/// The command starts with exactly the rule's words.
fn matches_exactly(pattern: &[&str], words: &[String]) -> bool {
    pattern.len() <= words.len()
        && base_name(&words[0]) == base_name(pattern[0])
        && pattern[1..].iter().zip(&words[1..]).all(|(p, w)| p == w)
}

/// The command has the rule's name, every option of the rule (short options in any
/// grouping), and the rule's other words in order among its own.
fn matches_loosely(pattern: &[&str], words: &[String]) -> bool {
    let Some((name, rest)) = pattern.split_first() else {
        return false;
    };
    if base_name(&words[0]) != base_name(name) {
        return false;
    }
    let args = &words[1..];
    let mut plain = args.iter().filter(|a| !a.starts_with('-'));
    rest.iter().all(|p| {
        if p.starts_with('-') {
            has_options(args, p)
        } else {
            plain.any(|a| a == p)
        }
    })
}

/// Whether `args` use the option `flag`, by its word (`-exec`, `--force`, also
/// `--output=x`), or for a one-letter option also inside a group or with its value attached
/// (`-rf` has `-f`, `-ofile` has `-o`).
fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter().any(|arg| {
        arg == flag
            || arg.starts_with(&format!("{flag}="))
            || flag.len() == 2 && flag.starts_with('-') && flag != "--" && in_group(arg, &flag[1..])
    })
}

/// Whether `args` use every option of a rule's option word: `--force` by its word, a short
/// group (`-rf`, at most three letters) letter by letter across all groups (`-r -f`, `-fr`).
fn has_options(args: &[String], word: &str) -> bool {
    if has_flag(args, word) {
        return true;
    }
    let letters = &word[1..];
    !word.starts_with("--")
        && letters.len() <= 3
        && letters
            .chars()
            .all(|letter| args.iter().any(|arg| in_group(arg, &letter.to_string())))
}

/// `arg` is a group of short options (`-rf`) that holds `letter`.
fn in_group(arg: &str, letter: &str) -> bool {
    arg.len() <= 6
        && arg.starts_with('-')
        && !arg.starts_with("--")
        && arg[1..].chars().all(|c| c.is_ascii_alphanumeric())
        && arg[1..].contains(letter)
}

/// `/usr/bin/python3.11` → `python`, `mkfs.ext4` → `mkfs`: the file name without its
/// extension or version.
fn base_name(word: &str) -> String {
    let file = word.rsplit('/').next().unwrap_or(word);
    let name = file
        .split('.')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or(file);
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if trimmed.ends_with(|c: char| c.is_ascii_alphabetic()) {
        trimmed.to_string()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests;
