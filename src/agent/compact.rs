//! Compaction: making the model's view of a long history fit its window again.
//!
//! Two steps, cheapest first. Tool outputs older than the last few model steps are shortened
//! (head and tail, "run the tool again to see more"); when that is not enough, or when a
//! person asks, the model is asked for a summary of the older part (the prompt is
//! `spec/compact_prompt.md`: the task, decisions, files made, open todos, the user's
//! constraints), which then stands in for it. A part too long for one request is summarised
//! piece by piece, each piece added to the summary so far. Either way a [`Compaction`] entry
//! records the new view; nothing is removed from the history itself.

use tokio_util::sync::CancellationToken;

use super::context::{
    entry_tokens, is_record, shortened, starts_exchange, used_tokens, view_of, Compaction,
    TokenCounter, View,
};
use super::conversation::Conversation;
use super::turn::{call_model, ModelResult};
use crate::config::context::ContextLimits;
use crate::llm::{HistoryEntry, LlmClient, LlmError, LlmRequest, Message, Usage, UserContent};

/// Everything compaction and request building need to know about the context.
#[derive(Debug, Clone)]
pub struct ContextSettings {
    pub limits: ContextLimits,
    /// Tool outputs of the last this-many model steps stay whole.
    pub keep_tool_outputs_steps: usize,
    pub counter: TokenCounter,
    /// The summary prompt (`spec/compact_prompt.md`).
    pub compact_prompt: std::sync::Arc<str>,
}

impl ContextSettings {
    /// Tokens no request may pass: the window less room for the answer.
    pub fn hard_limit(&self) -> usize {
        let window = self.limits.window_tokens;
        let reserve = (window / 10).clamp(256, 8192);
        window.saturating_sub(reserve).max(self.limits.threshold())
    }

    /// Tokens a summary may take.
    fn summary_tokens(&self) -> usize {
        (self.limits.window_tokens / 8).clamp(256, 4096)
    }
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    pub entry_id: String,
    pub before_tokens: u64,
    pub after_tokens: u64,
    pub summarized: bool,
    /// What the summary requests cost.
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompactError {
    #[error("there is nothing older than the latest exchange to compact yet")]
    NothingToCompact,
    #[error("the model could not summarise the conversation: {0}")]
    Model(LlmError),
    #[error("cancelled")]
    Cancelled,
}

/// How a compaction was asked for.
#[derive(Debug, Clone, Copy)]
pub enum Trigger<'a> {
    /// The next request would pass `compact_at`.
    Full,
    /// A person asked, maybe saying what the summary should keep.
    Asked { instructions: Option<&'a str> },
}

/// Compacts `history`; `fixed` counts the system prompt and the tools. `Ok(None)` when an
/// automatic compaction found nothing it could make smaller.
pub async fn compact<L: LlmClient>(
    llm: &L,
    history: &mut Conversation,
    fixed: usize,
    settings: &ContextSettings,
    trigger: Trigger<'_>,
    cancel: &CancellationToken,
) -> Result<Option<Compacted>, CompactError> {
    let counter = &settings.counter;
    counter.count_missing(history.entries_mut());
    let entries = history.entries();
    let view = view_of(entries);
    let before = used_tokens(entries, &view, counter, fixed);
    let asked = matches!(trigger, Trigger::Asked { .. });
    let mark = shorten_mark(entries, settings.keep_tool_outputs_steps).max(view.shorten_before);
    let record =
        |keep_from: usize, shorten_before: usize, summarized: bool, after: usize| Compaction {
            keep_from: entries[keep_from.min(entries.len() - 1)].id.clone(),
            shorten_before: (shorten_before > keep_from)
                .then(|| entries.get(shorten_before).map(|e| e.id.clone()))
                .flatten(),
            summarized,
            manual: asked,
            before_tokens: before as u64,
            after_tokens: after as u64,
        };
    if !asked && mark > view.shorten_before {
        let shortened_view = trial(view.summary, view.start, mark, entries.len());
        let after = used_tokens(entries, &shortened_view, counter, fixed);
        if after <= settings.limits.threshold() * 3 / 4 {
            let compaction = record(view.start, mark, false, after);
            let summary = view.summary.unwrap_or("").to_string();
            return Ok(Some(push(history, &summary, compaction, Usage::default())));
        }
    }
    let cut = match trigger {
        Trigger::Asked { .. } => entries
            .iter()
            .rposition(|e| e.message.user_text().is_some())
            .unwrap_or(0),
        Trigger::Full => keep_cut(
            entries,
            view.start,
            settings.limits.window_tokens / 4,
            counter,
        ),
    };
    if cut <= view.start {
        return if asked {
            Err(CompactError::NothingToCompact)
        } else {
            Ok(None)
        };
    }
    let instructions = match trigger {
        Trigger::Asked { instructions } => instructions,
        Trigger::Full => None,
    };
    let (summary, usage) = summarise(
        llm,
        &entries[view.start..cut],
        view.summary,
        instructions,
        settings,
        cancel,
    )
    .await?;
    let mark = mark.max(cut);
    let summarised_view = trial(Some(&summary), cut, mark, entries.len());
    let after = used_tokens(entries, &summarised_view, counter, fixed);
    let compaction = record(cut, mark, true, after);
    Ok(Some(push(history, &summary, compaction, usage)))
}

fn push(
    history: &mut Conversation,
    summary: &str,
    compaction: Compaction,
    usage: Usage,
) -> Compacted {
    let (before_tokens, after_tokens, summarized) = (
        compaction.before_tokens,
        compaction.after_tokens,
        compaction.summarized,
    );
    history.push_compaction(summary, compaction);
    Compacted {
        entry_id: history
            .entries()
            .last()
            .map(|e| e.id.clone())
            .unwrap_or_default(),
        before_tokens,
        after_tokens,
        summarized,
        usage,
    }
}

/// A view as it would be after a compaction recorded at the end (`len`): no report of the
/// endpoint counts for it yet.
fn trial<'a>(
    summary: Option<&'a str>,
    start: usize,
    shorten_before: usize,
    len: usize,
) -> View<'a> {
    View {
        summary,
        start,
        shorten_before,
        compacted_at: Some(len),
    }
}

/// Where the tool outputs that stay whole begin: at the `steps`-th last model step.
fn shorten_mark(entries: &[HistoryEntry], steps: usize) -> usize {
    entries
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, e)| matches!(e.message, Message::Assistant { .. }))
        .nth(steps.saturating_sub(1))
        .map_or(0, |(at, _)| at)
}

/// Where the part kept whole begins: the earliest message that starts an exchange and after
/// which at most `budget` tokens remain; the latest such place when none is that small.
fn keep_cut(
    entries: &[HistoryEntry],
    start: usize,
    budget: usize,
    counter: &TokenCounter,
) -> usize {
    let mut kept = 0usize;
    let mut cut = None;
    for at in (start + 1..entries.len()).rev() {
        let entry = &entries[at];
        if is_record(entry) {
            continue;
        }
        kept += entry_tokens(entry, counter);
        if starts_exchange(&entry.message) {
            if kept > budget && cut.is_some() {
                break;
            }
            cut = Some(at);
        }
    }
    cut.unwrap_or(start)
}

/// The summary of `part` (and of `earlier`, the summary before it), piece by piece when the
/// part is longer than one request may be.
async fn summarise<L: LlmClient>(
    llm: &L,
    part: &[HistoryEntry],
    earlier: Option<&str>,
    instructions: Option<&str>,
    settings: &ContextSettings,
    cancel: &CancellationToken,
) -> Result<(String, Usage), CompactError> {
    let counter = &settings.counter;
    let prompt = Message::System {
        content: settings.compact_prompt.to_string(),
    };
    let piece_budget = (settings.limits.window_tokens / 2)
        .saturating_sub(counter.message(&prompt) + settings.summary_tokens())
        .max(512);
    let mut summary = earlier.map(str::to_string);
    let mut usage = Usage::default();
    let mut pieces = transcript_pieces(part, counter, piece_budget)
        .into_iter()
        .peekable();
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        let mut text = String::new();
        if let Some(summary) = &summary {
            text.push_str("The summary so far:\n<summary>\n");
            text.push_str(summary);
            text.push_str("\n</summary>\n\n");
        }
        text.push_str("The conversation to add to it:\n<conversation>\n");
        text.push_str(&piece);
        text.push_str("</conversation>\n\nWrite the new summary now.");
        if let (true, Some(wish)) = (last, instructions.filter(|w| !w.trim().is_empty())) {
            text.push_str("\n\nThe user asks of this summary: ");
            text.push_str(wish.trim());
        }
        let user = Message::User {
            content: UserContent::Text(text),
        };
        let messages = [&prompt, &user];
        let request = LlmRequest {
            messages: &messages,
            tools: None,
            window_tokens: Some(settings.limits.window_tokens),
            max_tokens: Some(settings.summary_tokens() as u32),
        };
        let answer = match call_model(llm, request, &mut |_| {}, cancel).await {
            ModelResult::Cancelled => return Err(CompactError::Cancelled),
            ModelResult::Done(answer) => answer.map_err(CompactError::Model)?,
        };
        usage.add(answer.usage);
        let written = answer.content.trim();
        if written.is_empty() {
            return Err(CompactError::Model(LlmError::Malformed(
                "the model answered the summary request with nothing".into(),
            )));
        }
        // A model that ignored the length asked for is cut to it (about 4 bytes a token).
        summary = Some(crate::tools::output::cap_middle(
            written,
            settings.summary_tokens() * 4,
        ));
    }
    Ok((summary.unwrap_or_default(), usage))
}

/// The part as plain text for the summary request, in pieces of at most `budget` tokens
/// (one message longer than that is shortened to fit).
fn transcript_pieces(part: &[HistoryEntry], counter: &TokenCounter, budget: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut piece_tokens = 0usize;
    for entry in part.iter().filter(|e| !is_record(e)) {
        let mut line = transcript_line(&entry.message);
        let mut tokens = counter.text(&line);
        if tokens > budget {
            line = crate::tools::output::cap_middle(&line, budget.saturating_mul(2));
            tokens = counter.text(&line);
        }
        if piece_tokens + tokens > budget && !piece.is_empty() {
            pieces.push(std::mem::take(&mut piece));
            piece_tokens = 0;
        }
        piece.push_str(&line);
        piece_tokens += tokens;
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

/// One message as a transcript line; tool results shortened as the view would send them.
fn transcript_line(message: &Message) -> String {
    match message {
        Message::System { .. } => String::new(),
        Message::User {
            content: UserContent::Text(text),
        } => format!("[user]\n{text}\n\n"),
        Message::User {
            content: UserContent::Parts(parts),
        } => format!(
            "[images returned by tools: {}]\n\n",
            parts.len().saturating_sub(1)
        ),
        Message::Assistant {
            content,
            tool_calls,
        } => {
            let mut line = String::new();
            if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                line.push_str(&format!("[assistant]\n{text}\n\n"));
            }
            for call in tool_calls {
                let arguments = crate::tools::output::cap_middle(&call.function.arguments, 2000);
                line.push_str(&format!(
                    "[tool call {}] {arguments}\n\n",
                    call.function.name
                ));
            }
            line
        }
        Message::Tool { content, .. } => {
            let short = shortened(message);
            let content = match &short {
                Some(Message::Tool { content, .. }) => content,
                _ => content,
            };
            format!("[tool result]\n{content}\n\n")
        }
    }
}

#[cfg(test)]
mod tests;
