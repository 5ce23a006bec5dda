//! Unit tests of compaction with a model that summarises by listing the facts it was shown.

use std::sync::Mutex;

use super::*;
use crate::agent::context::view_messages;
use crate::llm::{Completion, ToolCall, Usage};

/// Answers every summary request with the `FACT-…` words it contains, and keeps the requests.
#[derive(Default)]
struct Summariser {
    requests: Mutex<Vec<String>>,
}

impl LlmClient for Summariser {
    fn complete<'a>(
        &'a self,
        request: LlmRequest<'a>,
        _on_delta: &'a mut dyn FnMut(&str),
    ) -> impl std::future::Future<Output = Result<Completion, LlmError>> + 'a {
        assert!(request.tools.is_none(), "a summary request offers no tools");
        let text: String = request
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::User {
                    content: UserContent::Text(t),
                } => Some(t.as_str()),
                _ => None,
            })
            .collect();
        let facts: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || c == '.' || c == ',')
            .filter(|w| w.starts_with("FACT-"))
            .collect();
        let summary = format!("Summary. Facts: {}", facts.join(" "));
        self.requests.lock().unwrap().push(text.clone());
        std::future::ready(Ok(Completion {
            content: summary,
            ..Completion::default()
        }))
    }

    fn model_name(&self) -> String {
        "summariser".into()
    }
}

fn settings(window: usize) -> ContextSettings {
    ContextSettings {
        limits: ContextLimits {
            window_tokens: window,
            compact_at: 0.8,
        },
        keep_tool_outputs_steps: 2,
        counter: TokenCounter::Estimate,
        compact_prompt: "summarise".into(),
    }
}

/// `turns` exchanges: a question, a tool call with `output_bytes` of output, an answer.
fn history(turns: usize, output_bytes: usize) -> Conversation {
    let mut c = Conversation::new();
    for n in 0..turns {
        let fact = if n == 0 { " Remember FACT-ZEBRA." } else { "" };
        c.push_user(&format!("question {n}.{fact}"));
        let call = ToolCall::new(format!("c{n}"), "mshtools-shell", "{\"command\":\"ls\"}");
        c.push_assistant("", vec![call.clone()], Usage::default());
        c.push_tool_result(&call, "o".repeat(output_bytes), false, None);
        c.push_assistant(&format!("answer {n}"), vec![], Usage::default());
    }
    c
}

async fn run(
    c: &mut Conversation,
    settings: &ContextSettings,
    trigger: Trigger<'_>,
) -> (Result<Option<Compacted>, CompactError>, Vec<String>) {
    let model = Summariser::default();
    let result = compact(&model, c, 100, settings, trigger, &CancellationToken::new()).await;
    (result, model.requests.into_inner().unwrap())
}

#[tokio::test]
async fn old_tool_outputs_are_shortened_before_any_summary() {
    let mut c = history(10, 6000);
    let settings = settings(30_000);
    let (result, requests) = run(&mut c, &settings, Trigger::Full).await;
    let done = result.unwrap().expect("compacted");
    assert!(!done.summarized, "shortening was enough");
    assert!(requests.is_empty(), "no summary was asked for");
    assert!(done.after_tokens < done.before_tokens / 2, "{done:?}");
    let view = view_of(c.entries());
    assert_eq!(view.start, 0);
    let sent = view_messages(c.entries(), &view, &TokenCounter::Estimate, 0, usize::MAX);
    let tool_lengths: Vec<usize> = sent
        .iter()
        .filter_map(|m| match m.as_ref() {
            Message::Tool { content, .. } => Some(content.len()),
            _ => None,
        })
        .collect();
    assert!(
        tool_lengths[..9].iter().all(|&len| len < 2000),
        "{tool_lengths:?}"
    );
    assert_eq!(
        tool_lengths[9], 6000,
        "the outputs of the last two model steps stay whole"
    );
}

#[tokio::test]
async fn a_summary_replaces_the_older_part_and_keeps_the_first_messages_facts() {
    let mut c = history(60, 3000);
    let settings = settings(8192);
    let (result, requests) = run(&mut c, &settings, Trigger::Full).await;
    let done = result.unwrap().expect("compacted");
    assert!(done.summarized);
    assert!(!requests.is_empty());
    assert!(
        requests[0].contains("FACT-ZEBRA"),
        "the first message reached the summary"
    );
    let view = view_of(c.entries());
    assert!(view.start > 0);
    assert!(
        view.summary.unwrap().contains("FACT-ZEBRA"),
        "{:?}",
        view.summary
    );
    assert!(
        (done.after_tokens as usize) < settings.limits.threshold(),
        "{done:?}"
    );
    // The part was longer than one request may be: it went piece by piece, each piece with
    // the summary so far.
    assert!(requests.len() > 1, "{}", requests.len());
    assert!(requests[1].contains("<summary>") && requests[1].contains("FACT-ZEBRA"));
    // A second compaction folds the first summary in.
    for n in 0..40 {
        c.push_user(&format!("more {n}"));
        c.push_assistant(&"a".repeat(1500), vec![], Usage::default());
    }
    let (result, requests) = run(&mut c, &settings, Trigger::Full).await;
    assert!(result.unwrap().unwrap().summarized);
    assert!(requests[0].contains("FACT-ZEBRA"));
    assert!(view_of(c.entries()).summary.unwrap().contains("FACT-ZEBRA"));
}

#[tokio::test]
async fn asked_for_it_summarises_all_but_the_latest_exchange_with_the_wish() {
    let mut c = history(3, 100);
    let settings = settings(100_000);
    let trigger = Trigger::Asked {
        instructions: Some("keep the file names"),
    };
    let (result, requests) = run(&mut c, &settings, trigger).await;
    let done = result.unwrap().unwrap();
    assert!(done.summarized);
    assert!(requests[0].contains("keep the file names"));
    let view = view_of(c.entries());
    assert_eq!(
        c.entries()[view.start].message.user_text(),
        Some("question 2.")
    );
    let record = c.entries().last().unwrap().compaction.clone().unwrap();
    assert!(record.manual);

    let mut single = history(1, 100);
    let (result, _) = run(
        &mut single,
        &settings,
        Trigger::Asked { instructions: None },
    )
    .await;
    assert_eq!(result, Err(CompactError::NothingToCompact));
}

#[test]
fn a_failed_turn_retried_takes_its_compaction_with_it_but_not_one_asked_for() {
    let record = |manual| Compaction {
        keep_from: String::new(),
        shorten_before: None,
        summarized: true,
        manual,
        before_tokens: 10,
        after_tokens: 5,
    };
    let mut c = history(3, 100);
    c.push_user("again");
    c.push_compaction("made by the failed turn", record(false));
    assert!(c.drop_unanswered("again"));
    assert!(c.entries().iter().all(|e| e.compaction.is_none()));
    assert_eq!(c.len(), 12);
    c.push_user("again");
    c.push_compaction("asked for after it failed", record(true));
    assert!(
        !c.drop_unanswered("again"),
        "the message stays with the compaction"
    );
    assert_eq!(c.len(), 14);
}
