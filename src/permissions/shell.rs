//! A shell line read with a real bash parser (`brush-parser`), not by substrings: every
//! simple command in its pipelines, lists, subshells, compound commands and function bodies,
//! in `$(…)`, backticks and process substitutions, in here-documents that expand, and in the
//! scripts handed to `bash -c`, `sh -c` and `eval`, is found and put in its [`Class`] by
//! `commands.rs`. A line is as risky as its riskiest command. What cannot be read (a syntax
//! error, a name computed when the line runs, nesting too deep to read safely) is
//! [`Class::Opaque`], never guessed.

use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};

use super::commands::{self, Class, CommandPart, Invocation};
use crate::config::permissions::CommandRules;

/// Longest line read; a longer one is opaque.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Brackets and compound keywords nested deeper than this are not handed to the parser
/// (whose recursion would follow them).
const MAX_NESTING: usize = 40;
/// Scripts inside scripts (`bash -c "bash -c '…'"`, `$( $(…) )`) read at most this deep.
const MAX_SCRIPT_DEPTH: usize = 8;

/// Every command of `line`, each with its class and why; never empty.
pub fn read_line(line: &str, rules: &CommandRules) -> Vec<CommandPart> {
    let mut walk = Walk {
        rules,
        parts: Vec::new(),
    };
    walk.script(line, 0);
    if walk.parts.is_empty() {
        walk.parts.push(CommandPart {
            text: line.trim().to_string(),
            class: Class::Reads,
            why: "runs no command".into(),
            prefix: String::new(),
        });
    }
    walk.parts
}

struct Walk<'r> {
    rules: &'r CommandRules,
    parts: Vec<CommandPart>,
}

impl Walk<'_> {
    fn opaque(&mut self, text: &str, why: impl Into<String>) {
        let text = crate::protocol::cap_line(text.trim(), 200);
        self.parts.push(CommandPart {
            prefix: text.clone(),
            text,
            class: Class::Opaque,
            why: why.into(),
        });
    }

    fn script(&mut self, text: &str, depth: usize) {
        if depth > MAX_SCRIPT_DEPTH {
            return self.opaque(text, "scripts nested too deep to read");
        }
        if text.len() > MAX_LINE_BYTES {
            return self.opaque(text, "too long to read");
        }
        if nesting(text) > MAX_NESTING {
            return self.opaque(text, "nested too deep to read");
        }
        let options = brush_parser::ParserOptions::default();
        let mut parser = brush_parser::Parser::new(std::io::Cursor::new(text), &options);
        match parser.parse_program() {
            Ok(program) => {
                for list in &program.complete_commands {
                    self.list(list, depth);
                }
            }
            Err(error) => self.opaque(text, format!("bash cannot read it ({error})")),
        }
    }

    fn list(&mut self, list: &ast::CompoundList, depth: usize) {
        for item in &list.0 {
            for (_, pipeline) in item.0.iter() {
                for command in &pipeline.seq {
                    self.command(command, depth);
                }
            }
        }
    }

    fn command(&mut self, command: &ast::Command, depth: usize) {
        match command {
            ast::Command::Simple(simple) => self.simple(simple, depth),
            ast::Command::Compound(compound, redirects) => {
                self.compound(compound, depth);
                self.redirects(redirects.as_ref(), depth);
            }
            ast::Command::Function(function) => {
                // A function's body is read where it is defined, as if it ran.
                self.compound(&function.body.0, depth);
                self.redirects(function.body.1.as_ref(), depth);
            }
            ast::Command::ExtendedTest(test, redirects) => {
                self.test(&test.expr, depth);
                self.redirects(redirects.as_ref(), depth);
            }
        }
    }

    fn compound(&mut self, compound: &ast::CompoundCommand, depth: usize) {
        use ast::CompoundCommand as C;
        match compound {
            C::Arithmetic(arithmetic) => self.text(&arithmetic.expr.value, depth),
            C::ArithmeticForClause(clause) => {
                for expr in [&clause.initializer, &clause.condition, &clause.updater]
                    .into_iter()
                    .flatten()
                {
                    self.text(&expr.value, depth);
                }
                self.list(&clause.body.list, depth);
            }
            C::BraceGroup(group) => self.list(&group.list, depth),
            C::Subshell(subshell) => self.list(&subshell.list, depth),
            C::ForClause(clause) => {
                for value in clause.values.iter().flatten() {
                    self.word(value, depth);
                }
                self.list(&clause.body.list, depth);
            }
            C::CaseClause(clause) => {
                self.word(&clause.value, depth);
                for case in &clause.cases {
                    for pattern in &case.patterns {
                        self.word(pattern, depth);
                    }
                    if let Some(list) = &case.cmd {
                        self.list(list, depth);
                    }
                }
            }
            C::IfClause(clause) => {
                self.list(&clause.condition, depth);
                self.list(&clause.then, depth);
                for other in clause.elses.iter().flatten() {
                    if let Some(condition) = &other.condition {
                        self.list(condition, depth);
                    }
                    self.list(&other.body, depth);
                }
            }
            C::WhileClause(clause) | C::UntilClause(clause) => {
                self.list(&clause.0, depth);
                self.list(&clause.1.list, depth);
            }
            C::Coprocess(coprocess) => self.command(&coprocess.body, depth),
        }
    }

    fn test(&mut self, expr: &ast::ExtendedTestExpr, depth: usize) {
        use ast::ExtendedTestExpr as T;
        match expr {
            T::And(a, b) | T::Or(a, b) => {
                self.test(a, depth);
                self.test(b, depth);
            }
            T::Not(inner) | T::Parenthesized(inner) => self.test(inner, depth),
            T::UnaryTest(_, word) => self.word(word, depth),
            T::BinaryTest(_, left, right) => {
                self.word(left, depth);
                self.word(right, depth);
            }
        }
    }

    fn simple(&mut self, simple: &ast::SimpleCommand, depth: usize) {
        let mut words: Vec<&ast::Word> = simple.word_or_name.iter().collect();
        let mut stdin_script = None;
        let items = simple
            .prefix
            .iter()
            .flat_map(|p| &p.0)
            .chain(simple.suffix.iter().flat_map(|s| &s.0));
        for item in items {
            use ast::CommandPrefixOrSuffixItem as I;
            match item {
                I::Word(word) => words.push(word),
                I::AssignmentWord(assignment, _) => match &assignment.value {
                    ast::AssignmentValue::Scalar(word) => self.word(word, depth),
                    ast::AssignmentValue::Array(values) => {
                        for (key, value) in values {
                            if let Some(key) = key {
                                self.word(key, depth);
                            }
                            self.word(value, depth);
                        }
                    }
                },
                I::ProcessSubstitution(_, subshell) => self.list(&subshell.list, depth),
                I::IoRedirect(redirect) => {
                    if let Some(script) = self.redirect(redirect, depth) {
                        stdin_script = Some(script);
                    }
                }
            }
        }
        for word in &words {
            self.word(word, depth);
        }
        if words.is_empty() {
            return;
        }
        let raw: Vec<&str> = words.iter().map(|w| w.value.as_str()).collect();
        self.invocation(&raw, stdin_script.as_deref(), depth);
    }

    /// One command with its words as written; `stdin` is the text a here-document or
    /// here-string feeds it.
    fn invocation(&mut self, raw: &[&str], stdin: Option<&str>, depth: usize) {
        match commands::read(raw, stdin, self.rules) {
            Invocation::Command(part) => self.parts.push(part),
            Invocation::Opaque { text, why } => self.opaque(&text, why),
            Invocation::Runs { part, script } => {
                self.parts.push(part);
                self.script(&script, depth + 1);
            }
            Invocation::Wraps { part, inner } => {
                if let Some(part) = part {
                    self.parts.push(part);
                }
                let inner: Vec<&str> = inner.iter().map(String::as_str).collect();
                self.invocation(&inner, stdin, depth + 1);
            }
        }
    }

    fn redirects(&mut self, list: Option<&ast::RedirectList>, depth: usize) {
        for redirect in list.iter().flat_map(|l| &l.0) {
            self.redirect(redirect, depth);
        }
    }

    /// Reads a redirection; writing to a file is a part of its own. Returns the text fed to
    /// the command's input by a here-document or here-string.
    fn redirect(&mut self, redirect: &ast::IoRedirect, depth: usize) -> Option<String> {
        use ast::IoFileRedirectKind as K;
        match redirect {
            ast::IoRedirect::File(_, kind, target) => {
                match target {
                    ast::IoFileRedirectTarget::Filename(word) => {
                        self.word(word, depth);
                        let writes =
                            matches!(kind, K::Write | K::Append | K::Clobber | K::ReadAndWrite);
                        if writes {
                            self.writes_to(&word.value);
                        }
                    }
                    ast::IoFileRedirectTarget::ProcessSubstitution(_, subshell) => {
                        self.list(&subshell.list, depth);
                    }
                    ast::IoFileRedirectTarget::Duplicate(word) => self.word(word, depth),
                    ast::IoFileRedirectTarget::Fd(_) => {}
                }
                None
            }
            ast::IoRedirect::OutputAndError(word, _) => {
                self.word(word, depth);
                self.writes_to(&word.value);
                None
            }
            ast::IoRedirect::HereString(_, word) => {
                self.word(word, depth);
                Some(brush_parser::unquote_str(&word.value))
            }
            ast::IoRedirect::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    self.expanding(&doc.doc.value, depth, true);
                }
                Some(doc.doc.value.clone())
            }
        }
    }

    fn writes_to(&mut self, target: &str) {
        if target != "/dev/null" {
            self.parts.push(CommandPart {
                text: format!("> {target}"),
                class: Class::Writes,
                why: "writes a file".into(),
                prefix: ">".into(),
            });
        }
    }

    fn word(&mut self, word: &ast::Word, depth: usize) {
        self.text(&word.value, depth);
    }

    /// Finds the commands that run while `text` (a word, an arithmetic expression) expands.
    fn text(&mut self, text: &str, depth: usize) {
        self.expanding(text, depth, false);
    }

    fn expanding(&mut self, text: &str, depth: usize, heredoc: bool) {
        if !text.contains("$(")
            && !text.contains('`')
            && !text.contains("<(")
            && !text.contains(">(")
        {
            return;
        }
        if depth > MAX_SCRIPT_DEPTH {
            return self.opaque(text, "substitutions nested too deep to read");
        }
        let options = brush_parser::ParserOptions::default();
        let pieces = if heredoc {
            word::parse_heredoc(text, &options)
        } else {
            word::parse(text, &options)
        };
        match pieces {
            Ok(pieces) => self.pieces(text, &pieces, depth),
            Err(error) => self.opaque(text, format!("bash cannot read this word ({error})")),
        }
    }

    fn pieces(&mut self, text: &str, pieces: &[WordPieceWithSource], depth: usize) {
        for piece in pieces {
            match &piece.piece {
                WordPiece::CommandSubstitution(script)
                | WordPiece::BackquotedCommandSubstitution(script) => {
                    self.script(script, depth + 1);
                }
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    self.pieces(text, inner, depth);
                }
                WordPiece::ArithmeticExpression(expr) => self.text(&expr.value, depth + 1),
                WordPiece::ParameterExpansion(_) => {
                    let source = text.get(piece.start_index..piece.end_index).unwrap_or(text);
                    if source.contains("$(") || source.contains('`') {
                        self.opaque(source, "a command inside a parameter expansion");
                    }
                }
                WordPiece::Text(source) if source.contains("<(") || source.contains(">(") => {
                    // A process substitution the word parser leaves as text (inside a word).
                    self.opaque(source, "a process substitution inside a word");
                }
                _ => {}
            }
        }
    }
}

/// How deeply brackets and compound keywords nest, counted without regard to quoting (an
/// over-count only makes a line opaque).
fn nesting(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut deepest = 0;
    let mut word = String::new();
    let close_word = |word: &mut String, depth: &mut usize| {
        match word.as_str() {
            "if" | "while" | "until" | "for" | "case" | "select" | "function" => *depth += 1,
            "fi" | "done" | "esac" => *depth = depth.saturating_sub(1),
            _ => {}
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
            continue;
        }
        close_word(&mut word, &mut depth);
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    close_word(&mut word, &mut depth);
    deepest.max(depth)
}

#[cfg(test)]
mod tests;
