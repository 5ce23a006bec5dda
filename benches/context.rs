//! Request-building benchmark: `cargo bench --bench context`.
//!
//! Builds conversations of 10, 100 and 1,000 turns (a question, a tool call with 4 KB of
//! output, an answer), compacting them as a session does whenever the next request would
//! pass `compact_at` of a 32,768-token window (the summary comes from an instant stand-in
//! model), then times what every model request costs before it goes out: the view of the
//! history, the token count and the encoded request body. The cost must stay flat as the
//! history grows.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use okcvm::agent::compact::{compact, ContextSettings, Trigger};
use okcvm::agent::context::{system_message, used_tokens, view_messages, view_of, TokenCounter};
use okcvm::agent::Conversation;
use okcvm::config::context::ContextLimits;
use okcvm::llm::{Completion, LlmClient, LlmError, LlmRequest, Message, ToolCall, Usage};
use tokio_util::sync::CancellationToken;

/// Answers every summary request at once with a short summary.
struct InstantSummary;

impl LlmClient for InstantSummary {
    fn complete<'a>(
        &'a self,
        _request: LlmRequest<'a>,
        _on_delta: &'a mut dyn FnMut(&str),
    ) -> impl std::future::Future<Output = Result<Completion, LlmError>> + 'a {
        std::future::ready(Ok(Completion {
            content: "Summary: the task, the decisions, the files made so far. ".repeat(20),
            ..Completion::default()
        }))
    }

    fn model_name(&self) -> String {
        "instant".into()
    }
}

fn settings() -> ContextSettings {
    ContextSettings {
        limits: ContextLimits {
            window_tokens: 32_768,
            compact_at: 0.8,
        },
        keep_tool_outputs_steps: 6,
        counter: TokenCounter::Estimate,
        compact_prompt: "Summarise.".into(),
    }
}

/// A conversation of `turns` turns, compacted whenever it would pass the threshold.
async fn conversation(
    turns: usize,
    fixed: usize,
    settings: &ContextSettings,
) -> (Conversation, usize) {
    let mut history = Conversation::new();
    let mut compactions = 0;
    let output = "line of tool output with some numbers 12345 and words\n".repeat(75);
    for n in 0..turns {
        history.push_user(&format!(
            "Step {n}: go on with the task and report what changed."
        ));
        let call = ToolCall::new(
            format!("call_{n}"),
            "mshtools-shell",
            "{\"command\":\"make\"}",
        );
        history.push_assistant("", vec![call.clone()], Usage::default());
        history.push_tool_result(&call, output.clone(), false, None);
        history.push_assistant(
            &format!("Step {n} is done; the build passes."),
            Vec::new(),
            Usage::default(),
        );
        settings.counter.count_missing(history.entries_mut());
        let view = view_of(history.entries());
        if used_tokens(history.entries(), &view, &settings.counter, fixed)
            > settings.limits.threshold()
        {
            let done = compact(
                &InstantSummary,
                &mut history,
                fixed,
                settings,
                Trigger::Full,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
            compactions += usize::from(done.is_some());
        }
    }
    (history, compactions)
}

/// What a turn does before each model request, once.
fn build_request(
    history: &Conversation,
    prompt: &str,
    manifest: &str,
    fixed: usize,
    settings: &ContextSettings,
) -> (usize, usize) {
    let entries = history.entries();
    let view = view_of(entries);
    let used = used_tokens(entries, &view, &settings.counter, fixed);
    let system = system_message(prompt, view.summary);
    let sent = view_messages(
        entries,
        &view,
        &settings.counter,
        fixed,
        settings.hard_limit(),
    );
    let messages: Vec<&Message> = std::iter::once(&system)
        .chain(sent.iter().map(AsRef::as_ref))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "model": "m",
        "messages": messages,
        "tools": serde_json::value::RawValue::from_string(manifest.to_string()).unwrap(),
    }))
    .unwrap();
    std::hint::black_box((used, body.len()));
    (messages.len(), used)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let settings = settings();
    let prompt = include_str!("../spec/system_prompt.md");
    let manifest = include_str!("../spec/tools.json");
    let fixed = settings.counter.text(prompt) + settings.counter.text(manifest);
    println!("\nOKCVM request building (window 32,768 tokens, compaction at 80%)\n");
    println!(
        "{:>6} {:>9} {:>12} {:>10} {:>14} {:>12}",
        "turns", "entries", "compactions", "messages", "tokens sent", "build p50"
    );
    for turns in [10, 100, 1000] {
        let (history, compactions) = runtime.block_on(conversation(turns, fixed, &settings));
        let mut times: Vec<Duration> = Vec::new();
        let mut shape = (0, 0);
        for _ in 0..200 {
            let started = Instant::now();
            shape = build_request(&history, prompt, manifest, fixed, &settings);
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{turns:>6} {:>9} {compactions:>12} {:>10} {:>14} {:>9.1} µs",
            history.len(),
            shape.0,
            shape.1,
            times[times.len() / 2].as_secs_f64() * 1e6
        );
    }
}
