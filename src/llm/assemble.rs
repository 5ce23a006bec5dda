//! Assembles streamed tool-call fragments into whole [`ToolCall`]s.
//!
//! Pure. Chat-completions streams send each call's id and name once and its JSON arguments in
//! pieces, keyed by `index`; several calls may interleave. Servers that omit `index` (some
//! llama.cpp and Ollama builds) get one: a fragment with a new id starts a new call, a fragment
//! without one continues the last. Calls that arrive without an id are given a stable one.

use super::ToolCall;

/// One `choices[0].delta.tool_calls[]` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallDelta {
    pub index: Option<usize>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: Option<String>,
}

#[derive(Debug, Default)]
struct Partial {
    index: usize,
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Default)]
pub struct ToolCallAssembler {
    calls: Vec<Partial>,
}

impl ToolCallAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, delta: ToolCallDelta) {
        let slot = match delta.index {
            Some(index) => self.calls.iter().position(|c| c.index == index),
            None => {
                let starts_new = delta.id.as_deref().is_some_and(|id| {
                    !id.is_empty() && self.calls.last().is_none_or(|c| c.id != id)
                });
                if starts_new {
                    None
                } else {
                    self.calls.len().checked_sub(1)
                }
            }
        };
        let slot = match slot {
            Some(slot) => slot,
            None => {
                let index = delta.index.unwrap_or(self.calls.len());
                self.calls.push(Partial {
                    index,
                    ..Partial::default()
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[slot];
        if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(name) = delta.name {
            // Names normally arrive whole; a server that splits them still gets them right.
            if call.name != name {
                call.name.push_str(&name);
            }
        }
        if let Some(arguments) = delta.arguments {
            call.arguments.push_str(&arguments);
        }
    }

    /// The calls in index order; an empty argument string becomes `{}`.
    pub fn finish(mut self, id_prefix: &str) -> Vec<ToolCall> {
        self.calls.sort_by_key(|c| c.index);
        self.calls
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !c.name.is_empty())
            .map(|(n, c)| {
                let id = if c.id.is_empty() {
                    format!("{id_prefix}{n}")
                } else {
                    c.id
                };
                let arguments = if c.arguments.trim().is_empty() {
                    "{}".to_string()
                } else {
                    c.arguments
                };
                ToolCall::new(id, c.name, arguments)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(
        index: Option<usize>,
        id: Option<&str>,
        name: Option<&str>,
        args: &str,
    ) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id: id.map(str::to_string),
            name: name.map(str::to_string),
            arguments: Some(args.to_string()),
        }
    }

    fn check(deltas: Vec<ToolCallDelta>, want: Vec<ToolCall>) {
        let mut assembler = ToolCallAssembler::new();
        for d in deltas {
            assembler.feed(d);
        }
        assert_eq!(assembler.finish("call_"), want);
    }

    #[test]
    fn interleaved_indexed_calls() {
        check(
            vec![
                delta(Some(0), Some("a"), Some("mshtools-shell"), ""),
                delta(Some(1), Some("b"), Some("mshtools-todo_read"), ""),
                delta(Some(0), None, None, "{\"command\":"),
                delta(Some(1), None, None, ""),
                delta(Some(0), None, None, "\"ls\"}"),
            ],
            vec![
                ToolCall::new("a", "mshtools-shell", "{\"command\":\"ls\"}"),
                ToolCall::new("b", "mshtools-todo_read", "{}"),
            ],
        );
    }

    #[test]
    fn calls_without_index_are_split_by_id() {
        check(
            vec![
                delta(None, Some("x"), Some("one"), "{\"a\""),
                delta(None, None, None, ":1}"),
                delta(None, Some("y"), Some("two"), "{}"),
            ],
            vec![
                ToolCall::new("x", "one", "{\"a\":1}"),
                ToolCall::new("y", "two", "{}"),
            ],
        );
    }

    #[test]
    fn missing_ids_are_generated_and_nameless_fragments_dropped() {
        check(
            vec![
                delta(Some(0), None, Some("one"), "{}"),
                delta(Some(1), None, None, "{}"),
            ],
            vec![ToolCall::new("call_0", "one", "{}")],
        );
    }
}
