//! Building the message list of one model request within a context budget.
//!
//! Pure. The system prompt always goes first; history is cut from the front at user-message
//! boundaries only (so tool calls and their results stay together), and the latest user
//! message is always kept.

use crate::llm::HistoryEntry;
use crate::llm::Message;

/// Rough characters per token for budgeting; errs towards sending less.
const CHARS_PER_TOKEN: usize = 3;

/// Index of the first history entry to send so that the rest fits `budget_tokens`.
pub fn window_start(entries: &[HistoryEntry], budget_tokens: usize) -> usize {
    let budget = budget_tokens.saturating_mul(CHARS_PER_TOKEN);
    let mut used = 0usize;
    let mut start = entries.len();
    let mut best = None;
    for (index, entry) in entries.iter().enumerate().rev() {
        used += entry.message.text_len();
        if entry.message.user_text().is_some() {
            if used <= budget || best.is_none() {
                best = Some(index);
            } else {
                break;
            }
        }
        start = index;
    }
    best.unwrap_or(start)
}

/// The request's messages: system prompt, then the history window.
pub fn build_messages<'a>(
    system: &'a Message,
    entries: &'a [HistoryEntry],
    budget_tokens: usize,
) -> Vec<&'a Message> {
    let start = window_start(entries, budget_tokens);
    std::iter::once(system)
        .chain(entries[start..].iter().map(|e| &e.message))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Conversation;
    use crate::llm::Usage;

    fn conversation(turns: &[(&str, &str)]) -> Conversation {
        let mut c = Conversation::new();
        for (user, reply) in turns {
            c.push_user(user);
            c.push_assistant(reply, vec![], Usage::default());
        }
        c
    }

    #[test]
    fn everything_fits_in_a_large_budget() {
        let c = conversation(&[("a", "b"), ("c", "d")]);
        assert_eq!(window_start(c.entries(), 1000), 0);
    }

    #[test]
    fn old_turns_are_dropped_at_user_boundaries() {
        let long = "x".repeat(3000);
        let c = conversation(&[(&long, "b"), ("c", "d"), ("e", "f")]);
        assert_eq!(window_start(c.entries(), 100), 2);
    }

    #[test]
    fn the_latest_user_message_is_kept_even_if_too_big() {
        let long = "x".repeat(3000);
        let c = conversation(&[("a", "b"), (&long, "d")]);
        assert_eq!(window_start(c.entries(), 10), 2);
        let system = Message::System {
            content: "s".into(),
        };
        assert_eq!(build_messages(&system, c.entries(), 10).len(), 3);
    }
}
