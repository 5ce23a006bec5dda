//! Token accounting and the model's view of the history.
//!
//! Pure. The store keeps every entry; what the model reads is a *view*: the system prompt
//! (with the latest summary of the older part, when there is one), then the entries from the
//! view's start, with tool results before a mark sent shortened. Both are recorded in the
//! history itself, on a [`Compaction`] entry (role `system`, never sent as a message), so
//! edits, regenerations and version switches that cut the history also undo the compactions
//! made after the cut. Each entry's token count is kept on it (`tokens`); the next request's
//! size is the endpoint's own count of the last request (when it reported one that is
//! plausible) plus the estimates of what came after.

use std::borrow::Cow;

pub use crate::llm::Compaction;
use crate::llm::{ContentPart, HistoryEntry, Message, UserContent};
use crate::tools::output::cap_middle;

/// Bytes a shortened tool result keeps (head and tail).
pub const SHORTENED_BYTES: usize = 1200;
/// What a shortened tool result ends with.
const SHORTENED_NOTE: &str =
    "[older tool output shortened to keep the context small; run the tool again to see more]";
/// Tokens every message costs beyond its text (role, separators).
const MESSAGE_OVERHEAD: usize = 4;
/// Tokens one image costs a vision model, roughly.
const IMAGE_TOKENS: usize = 1000;
/// Bytes per token of the estimate for models without a known tokenizer: low, so the estimate
/// errs towards more tokens (code, JSON and non-English text run 2–3.5 bytes per token).
const BYTES_PER_TOKEN: usize = 3;
/// Texts longer than this are counted by the tokenizer on their first this-many bytes.
const BPE_SAMPLE_BYTES: usize = 16 * 1024;

/// Counts tokens: the model's own tokenizer when it is known (OpenAI's models), an estimate
/// otherwise.
#[derive(Clone, Copy)]
pub enum TokenCounter {
    Bpe(&'static tiktoken_rs::CoreBPE),
    Estimate,
}

/// Two counters are equal when they count alike: the same tokenizer, or both estimates.
impl PartialEq for TokenCounter {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TokenCounter::Bpe(a), TokenCounter::Bpe(b)) => std::ptr::eq(*a, *b),
            (TokenCounter::Estimate, TokenCounter::Estimate) => true,
            _ => false,
        }
    }
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenCounter::Bpe(_) => "TokenCounter::Bpe",
            TokenCounter::Estimate => "TokenCounter::Estimate",
        })
    }
}

/// Tokenizers already loaded (loading one takes a while: it is done off the actors' threads).
static LOADED: std::sync::Mutex<Vec<tiktoken_rs::tokenizer::Tokenizer>> =
    std::sync::Mutex::new(Vec::new());

impl TokenCounter {
    /// The counter for `model`: its tokenizer when tiktoken knows the name. Loading a
    /// tokenizer the first time blocks: call it on the blocking pool.
    pub fn for_model(model: &str) -> Self {
        let Some(tokenizer) = tiktoken_rs::tokenizer::get_tokenizer(model.trim()) else {
            return TokenCounter::Estimate;
        };
        match tiktoken_rs::bpe_for_tokenizer(tokenizer) {
            Ok(bpe) => {
                if let Ok(mut loaded) = LOADED.lock() {
                    if !loaded.contains(&tokenizer) {
                        loaded.push(tokenizer);
                    }
                }
                TokenCounter::Bpe(bpe)
            }
            Err(_) => TokenCounter::Estimate,
        }
    }

    /// [`for_model`](Self::for_model) when it would not wait: the model has no known
    /// tokenizer, or its tokenizer is loaded already.
    pub fn without_loading(model: &str) -> Option<Self> {
        match tiktoken_rs::tokenizer::get_tokenizer(model.trim()) {
            None => Some(TokenCounter::Estimate),
            Some(tokenizer) if LOADED.lock().is_ok_and(|l| l.contains(&tokenizer)) => {
                Some(Self::for_model(model))
            }
            Some(_) => None,
        }
    }

    /// The counter without the wait: the estimate until the model's tokenizer is loaded.
    pub fn loaded_for_model(model: &str) -> Self {
        Self::without_loading(model).unwrap_or(TokenCounter::Estimate)
    }

    pub fn text(&self, text: &str) -> usize {
        match self {
            // Long texts are counted on a sample and scaled: the count stays cheap.
            TokenCounter::Bpe(bpe) if text.len() > BPE_SAMPLE_BYTES => {
                let mut end = BPE_SAMPLE_BYTES;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let sampled = bpe.count_ordinary(&text[..end]);
                (sampled as f64 * text.len() as f64 / end as f64).ceil() as usize
            }
            TokenCounter::Bpe(bpe) => bpe.count_ordinary(text),
            TokenCounter::Estimate => text.len().div_ceil(BYTES_PER_TOKEN),
        }
    }

    pub fn message(&self, message: &Message) -> usize {
        MESSAGE_OVERHEAD
            + match message {
                Message::System { content } => self.text(content),
                Message::User {
                    content: UserContent::Text(text),
                } => self.text(text),
                Message::User {
                    content: UserContent::Parts(parts),
                } => parts
                    .iter()
                    .map(|part| match part {
                        ContentPart::Text { text } => self.text(text),
                        ContentPart::ImageUrl { .. } => IMAGE_TOKENS,
                    })
                    .sum(),
                Message::Tool { content, .. } => self.text(content) + MESSAGE_OVERHEAD,
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    content.as_deref().map_or(0, |c| self.text(c))
                        + tool_calls
                            .iter()
                            .map(|call| {
                                self.text(&call.function.name)
                                    + self.text(&call.function.arguments)
                                    + MESSAGE_OVERHEAD
                            })
                            .sum::<usize>()
                }
            }
    }

    /// Counts the newest entries that have no count yet. Entries are counted as they come
    /// (before the next request, or before the turn's end is stored), so the scan stops at
    /// the first one counted: the cost does not grow with the history.
    pub fn count_missing(&self, entries: &mut [HistoryEntry]) {
        for entry in entries.iter_mut().rev() {
            if entry.tokens.is_some() {
                break;
            }
            entry.tokens = Some(self.count_entry(entry));
        }
    }

    /// Counts every entry that has none (a history from an older store, when it is loaded).
    pub fn count_all_missing(&self, entries: &mut [HistoryEntry]) {
        for entry in entries.iter_mut().filter(|e| e.tokens.is_none()) {
            entry.tokens = Some(self.count_entry(entry));
        }
    }

    fn count_entry(&self, entry: &HistoryEntry) -> u32 {
        self.message(&entry.message).min(u32::MAX as usize) as u32
    }
}

/// What the model reads of a history, as positions in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View<'a> {
    /// The summary of everything before `start`, if one was made.
    pub summary: Option<&'a str>,
    pub start: usize,
    /// Tool results before this position are shortened.
    pub shorten_before: usize,
    /// Where the latest compaction entry is (entries up to it were compacted).
    pub compacted_at: Option<usize>,
}

/// Whether an entry records a compaction (and is never sent as a message).
pub fn is_record(entry: &HistoryEntry) -> bool {
    entry.compaction.is_some()
}

/// The current view: the latest compaction entry says it; without one, everything. An entry
/// whose first kept message is not before it (a damaged history) is passed over.
pub fn view_of(entries: &[HistoryEntry]) -> View<'_> {
    for (at, entry) in entries.iter().enumerate().rev() {
        let Some(record) = &entry.compaction else {
            continue;
        };
        let position = |id: &str| entries[..at].iter().rposition(|e| e.id == id);
        let Some(start) = position(&record.keep_from) else {
            continue;
        };
        let shorten_before = record
            .shorten_before
            .as_deref()
            .and_then(position)
            .unwrap_or(start)
            .max(start);
        let summary = match &entry.message {
            Message::System { content } if !content.is_empty() => Some(content.as_str()),
            _ => None,
        };
        return View {
            summary,
            start,
            shorten_before,
            compacted_at: Some(at),
        };
    }
    View::default()
}

/// A tool result as the view sends it: shortened before the mark.
pub fn shortened(message: &Message) -> Option<Message> {
    match message {
        Message::Tool {
            tool_call_id,
            content,
        } if content.len() > SHORTENED_BYTES + SHORTENED_NOTE.len() => Some(Message::Tool {
            tool_call_id: tool_call_id.clone(),
            content: format!("{}\n{SHORTENED_NOTE}", cap_middle(content, SHORTENED_BYTES)),
        }),
        _ => None,
    }
}

/// The system message of a request: the prompt, and the summary of the older part.
pub fn system_message(prompt: &str, summary: Option<&str>) -> Message {
    let content = match summary {
        Some(summary) => format!(
            "{prompt}\n\n# Earlier in this conversation\n\nThe older part of this conversation \
             was summarised to keep the context small. The summary:\n\n{summary}"
        ),
        None => prompt.to_string(),
    };
    Message::System { content }
}

/// The messages of a request on `view`: the system message, then every entry from the start
/// (records skipped, tool results before the mark shortened), cut from the front at a
/// message boundary if they still pass `hard_limit` tokens (`fixed` counts the system message
/// and the tools). When the view does not begin with a message the person typed (a long
/// task cut inside its turn), the latest one before it goes first: every request carries the
/// task it works on, and chat templates that need a user message get one.
pub fn view_messages<'a>(
    entries: &'a [HistoryEntry],
    view: &View<'_>,
    counter: &TokenCounter,
    fixed: usize,
    hard_limit: usize,
) -> Vec<Cow<'a, Message>> {
    let mut messages: Vec<(usize, usize, Cow<'a, Message>)> = Vec::new();
    let mut total = fixed;
    for (at, entry) in entries.iter().enumerate().skip(view.start) {
        if is_record(entry) {
            continue;
        }
        let (message, tokens) = as_sent(at, entry, view, counter);
        total = total.saturating_add(tokens);
        messages.push((at, tokens, message));
    }
    // The last resort: never more than the window. Cut at a user or assistant message so a
    // tool result never comes without its call.
    let mut first = 0;
    while total > hard_limit {
        let Some(next) = (first + 1..messages.len()).find(|&i| starts_exchange(&messages[i].2))
        else {
            break;
        };
        total -= messages[first..next]
            .iter()
            .map(|(_, t, _)| t)
            .sum::<usize>();
        first = next;
    }
    messages.drain(..first);
    let begins_with_user = messages
        .first()
        .is_some_and(|(_, _, m)| m.user_text().is_some());
    let pinned = match messages.first() {
        Some((at, _, _)) if !begins_with_user => entries[..*at]
            .iter()
            .rev()
            .find(|e| e.message.user_text().is_some())
            .map(|e| Cow::Borrowed(&e.message)),
        _ => None,
    };
    pinned
        .into_iter()
        .chain(messages.into_iter().map(|(_, _, message)| message))
        .collect()
}

/// Entry `at` as `view` sends it (shortened before the mark, else as it is) and its tokens.
fn as_sent<'a>(
    at: usize,
    entry: &'a HistoryEntry,
    view: &View<'_>,
    counter: &TokenCounter,
) -> (Cow<'a, Message>, usize) {
    match (at < view.shorten_before)
        .then(|| shortened(&entry.message))
        .flatten()
    {
        Some(short) => {
            let tokens = counter.message(&short);
            (Cow::Owned(short), tokens)
        }
        None => (Cow::Borrowed(&entry.message), entry_tokens(entry, counter)),
    }
}

/// Whether a view may begin at this message (not a tool result, whose call would be lost).
pub fn starts_exchange(message: &Message) -> bool {
    !matches!(message, Message::Tool { .. } | Message::System { .. })
}

/// An entry's tokens: its kept count, or counted now.
pub fn entry_tokens(entry: &HistoryEntry, counter: &TokenCounter) -> usize {
    entry
        .tokens
        .map_or_else(|| counter.message(&entry.message), |t| t as usize)
}

/// Tokens the next request on `view` will take: the endpoint's count of the latest request
/// in the view plus estimates of what came after it (scaled by how the endpoint's count of
/// that request compared with the estimate of it), or estimates alone when the endpoint
/// reported nothing, or a count that cannot be right (under 60% of the estimate: a server
/// that counts only the tokens it had not cached, a fixed number, a request that was cut).
pub fn used_tokens(
    entries: &[HistoryEntry],
    view: &View<'_>,
    counter: &TokenCounter,
    fixed: usize,
) -> usize {
    let from = view.compacted_at.map_or(view.start, |at| at + 1);
    let summary = view.summary.map_or(0, |s| counter.text(s));
    let mut estimated = fixed + summary;
    let mut anchor: Option<(usize, usize)> = None; // (reported, estimate up to it)
    for (at, entry) in entries.iter().enumerate().skip(view.start) {
        if is_record(entry) {
            continue;
        }
        estimated += as_sent(at, entry, view, counter).1;
        if at >= from {
            if let Some(usage) = entry.usage.filter(|u| u.prompt_tokens > 0) {
                // The prompt as the endpoint counted it, and this answer as it is sent back
                // (a reasoning model's thinking, counted in its completion, is not).
                let prompt = usize::try_from(usage.prompt_tokens).unwrap_or(usize::MAX);
                let reported = prompt.saturating_add(entry_tokens(entry, counter));
                anchor = Some((reported, estimated));
            }
        }
    }
    match anchor {
        Some((reported, estimate_then))
            if reported.saturating_mul(5) >= estimate_then.saturating_mul(3) =>
        {
            // The estimate of what came after, calibrated by how the endpoint counted the
            // rest (within bounds: one odd report does not make a new message free).
            let ratio = (reported as f64 / estimate_then.max(1) as f64).clamp(0.6, 2.0);
            let after = ((estimated - estimate_then) as f64 * ratio).ceil() as usize;
            reported.saturating_add(after)
        }
        _ => estimated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Conversation;
    use crate::llm::{ToolCall, Usage};

    fn record(keep_from: &str, shorten_before: Option<&str>, summary: &str) -> HistoryEntry {
        let mut c = Conversation::new();
        c.push_compaction(
            summary,
            Compaction {
                keep_from: keep_from.into(),
                shorten_before: shorten_before.map(str::to_string),
                summarized: !summary.is_empty(),
                manual: false,
                before_tokens: 10,
                after_tokens: 5,
            },
        );
        c.entries()[0].clone()
    }

    fn long_tool_turn(c: &mut Conversation, n: usize) {
        c.push_user(&format!("question {n}"));
        let call = ToolCall::new(format!("c{n}"), "mshtools-shell", "{}");
        c.push_assistant("", vec![call.clone()], Usage::default());
        c.push_tool_result(&call, "x".repeat(10_000), false, None);
        c.push_assistant(&format!("answer {n}"), vec![], Usage::default());
    }

    #[test]
    fn without_a_record_the_view_is_everything() {
        let mut c = Conversation::new();
        long_tool_turn(&mut c, 1);
        assert_eq!(view_of(c.entries()), View::default());
        let messages = view_messages(
            c.entries(),
            &View::default(),
            &TokenCounter::Estimate,
            0,
            usize::MAX,
        );
        assert_eq!(messages.len(), 4);
    }

    #[test]
    fn a_record_starts_the_view_shortens_and_is_never_sent() {
        let mut c = Conversation::new();
        long_tool_turn(&mut c, 1);
        long_tool_turn(&mut c, 2);
        let second = c.entries()[4].id.clone();
        let first_tool = c.entries()[2].id.clone();
        let _ = first_tool;
        let mut entries = c.entries().to_vec();
        entries.push(record(&entries[0].id.clone(), Some(&second), ""));
        let view = view_of(&entries);
        assert_eq!(
            (view.start, view.shorten_before, view.summary),
            (0, 4, None)
        );
        let messages = view_messages(&entries, &view, &TokenCounter::Estimate, 0, usize::MAX);
        assert_eq!(messages.len(), 8, "the record is not a message");
        let Message::Tool { content, .. } = messages[2].as_ref() else {
            panic!("a tool result")
        };
        assert!(content.len() < 2000 && content.contains("run the tool again"));
        let Message::Tool { content, .. } = messages[6].as_ref() else {
            panic!("a tool result")
        };
        assert_eq!(content.len(), 10_000, "after the mark it is whole");

        entries.push(record(&second, None, "the summary"));
        let view = view_of(&entries);
        assert_eq!((view.start, view.summary), (4, Some("the summary")));
        assert_eq!(
            view_messages(&entries, &view, &TokenCounter::Estimate, 0, usize::MAX).len(),
            4
        );
    }

    #[test]
    fn the_hard_limit_cuts_whole_exchanges_from_the_front() {
        let mut c = Conversation::new();
        long_tool_turn(&mut c, 1);
        long_tool_turn(&mut c, 2);
        let messages = view_messages(
            c.entries(),
            &View::default(),
            &TokenCounter::Estimate,
            0,
            5000,
        );
        assert!(matches!(
            messages[0].as_ref(),
            Message::Assistant { .. } | Message::User { .. }
        ));
        assert!(messages.len() < 8);
        assert!(!matches!(messages[0].as_ref(), Message::Tool { .. }));
    }

    #[test]
    fn a_plausible_reported_count_anchors_the_estimate() {
        let mut c = Conversation::new();
        c.push_user(&"q".repeat(3000));
        c.push_assistant(
            "a",
            vec![],
            Usage {
                prompt_tokens: 1500,
                completion_tokens: 10,
            },
        );
        c.push_user(&"r".repeat(300));
        let mut entries = c.entries().to_vec();
        TokenCounter::Estimate.count_missing(&mut entries);
        let used = used_tokens(&entries, &view_of(&entries), &TokenCounter::Estimate, 0);
        // The endpoint counted 1,505 where the estimate said 1,009: the new message's
        // estimate of 104 is scaled by the same 1.49 (155.1, rounded up).
        assert_eq!(
            used,
            1505 + 156,
            "the reported prompt, the answer as sent back, then the new message calibrated"
        );
        // A count far below the estimate (a fixed number, cached tokens only) is not believed.
        entries[1].usage = Some(Usage {
            prompt_tokens: 11,
            completion_tokens: 7,
        });
        let used = used_tokens(&entries, &view_of(&entries), &TokenCounter::Estimate, 0);
        assert_eq!(used, 1004 + 5 + 104);
    }

    #[test]
    fn a_view_cut_inside_a_turn_still_begins_with_its_task() {
        let mut c = Conversation::new();
        long_tool_turn(&mut c, 1);
        let mut entries = c.entries().to_vec();
        // Kept from the tool call on: the question that asked for it goes first.
        entries.push(record(&entries[1].id.clone(), None, "summary"));
        let view = view_of(&entries);
        let sent = view_messages(&entries, &view, &TokenCounter::Estimate, 0, usize::MAX);
        assert_eq!(sent[0].user_text(), Some("question 1"));
        assert!(matches!(sent[1].as_ref(), Message::Assistant { .. }));
        assert_eq!(sent.len(), 4);
        // The hard cut too: cut past the question, the question still goes first.
        let sent = view_messages(
            c.entries(),
            &View::default(),
            &TokenCounter::Estimate,
            0,
            100,
        );
        assert_eq!(sent[0].user_text(), Some("question 1"));
        assert!(
            matches!(sent[1].as_ref(), Message::Assistant { tool_calls, .. } if tool_calls.is_empty())
        );
    }

    #[test]
    fn a_record_whose_first_kept_entry_is_gone_is_passed_over() {
        let mut c = Conversation::new();
        long_tool_turn(&mut c, 1);
        let mut entries = c.entries().to_vec();
        entries.push(record(&entries[2].id.clone(), None, "first summary"));
        entries.push(record("msg_gone", None, "second summary"));
        let view = view_of(&entries);
        assert_eq!((view.start, view.summary), (2, Some("first summary")));
    }

    #[test]
    fn openai_models_are_counted_with_their_tokenizer() {
        let counter = TokenCounter::for_model("gpt-4o");
        assert!(matches!(counter, TokenCounter::Bpe(_)));
        assert_eq!(counter.text("hello world"), 2);
        assert!(matches!(
            TokenCounter::for_model("qwen2.5:7b"),
            TokenCounter::Estimate
        ));
    }
}
