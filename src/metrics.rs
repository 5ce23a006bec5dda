//! Server-wide counters for `GET /metrics` in the Prometheus text format.
//!
//! Session actors record each finished turn once (its ending, duration, tokens and tool
//! calls); the registry's live figures are read when the page is rendered. Plain atomics and
//! one small map of tool names; rendering is a pure function of the figures.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::agent::{TurnEnd, TurnOutcome};
use crate::protocol::ToolStatus;

/// The registry's figures when the page is rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFigures {
    pub busy: usize,
    pub idle: usize,
    pub started: u64,
    pub evictions: u64,
    pub failed: u64,
}

/// Upper bounds (seconds) of the turn duration histogram.
const TURN_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0];
/// How turns end, in the order of the `turns` counters.
const ENDINGS: [&str; 4] = ["answered", "max_steps", "cancelled", "failed"];

#[derive(Default)]
pub struct Metrics {
    turns: [AtomicU64; 4],
    turn_buckets: [AtomicU64; TURN_BUCKETS.len()],
    turn_micros_sum: AtomicU64,
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    /// Compactions: [older tool outputs shortened, older part summarised].
    compactions: [AtomicU64; 2],
    /// Calls per tool: [succeeded, failed].
    tools: Mutex<BTreeMap<String, [u64; 2]>>,
}

impl Metrics {
    /// Records a finished turn. Tool names the model made up (`known` says no) are counted as
    /// `unknown`, so a model cannot grow the label set without bound.
    pub fn record_turn(&self, outcome: &TurnOutcome, took: Duration, known: impl Fn(&str) -> bool) {
        let ending = match outcome.end {
            TurnEnd::Answered => 0,
            TurnEnd::MaxSteps => 1,
            TurnEnd::Cancelled => 2,
            TurnEnd::Failed(_) => 3,
        };
        self.turns[ending].fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        for (bound, count) in TURN_BUCKETS.iter().zip(&self.turn_buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.turn_micros_sum.fetch_add(micros, Ordering::Relaxed);
        self.tokens_in
            .fetch_add(outcome.usage.prompt_tokens, Ordering::Relaxed);
        self.tokens_out
            .fetch_add(outcome.usage.completion_tokens, Ordering::Relaxed);
        for summarized in &outcome.compactions {
            self.record_compaction(*summarized);
        }
        if outcome.tool_calls.is_empty() {
            return;
        }
        let Ok(mut tools) = self.tools.lock() else {
            return;
        };
        for call in &outcome.tool_calls {
            let name = if known(&call.tool_name) {
                call.tool_name.as_str()
            } else {
                "unknown"
            };
            let counts = tools.entry(name.to_string()).or_default();
            counts[usize::from(call.status != ToolStatus::Success)] += 1;
        }
    }

    /// Records a compaction (made in a turn, or asked for).
    pub fn record_compaction(&self, summarized: bool) {
        self.compactions[usize::from(summarized)].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text page.
    pub fn render(&self, registry: &SessionFigures) -> String {
        let mut page = String::new();
        let busy = registry.busy;
        let family = |page: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut page,
            "okcvm_sessions",
            "gauge",
            "Live sessions by state.",
        );
        let idle = registry.idle;
        let _ = writeln!(page, "okcvm_sessions{{state=\"busy\"}} {busy}");
        let _ = writeln!(page, "okcvm_sessions{{state=\"idle\"}} {idle}");
        family(
            &mut page,
            "okcvm_sessions_started_total",
            "counter",
            "Sessions started.",
        );
        let _ = writeln!(page, "okcvm_sessions_started_total {}", registry.started);
        family(
            &mut page,
            "okcvm_sessions_evicted_total",
            "counter",
            "Sessions evicted.",
        );
        let _ = writeln!(page, "okcvm_sessions_evicted_total {}", registry.evictions);
        family(
            &mut page,
            "okcvm_sessions_failed_total",
            "counter",
            "Session actors that ended without being asked to (a panic); their slots were freed.",
        );
        let _ = writeln!(page, "okcvm_sessions_failed_total {}", registry.failed);

        family(
            &mut page,
            "okcvm_turns_total",
            "counter",
            "Finished turns by how they ended.",
        );
        for (ending, count) in ENDINGS.iter().zip(&self.turns) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(page, "okcvm_turns_total{{ending=\"{ending}\"}} {count}");
        }
        family(
            &mut page,
            "okcvm_turn_duration_seconds",
            "histogram",
            "Turn duration.",
        );
        for (bound, count) in TURN_BUCKETS.iter().zip(&self.turn_buckets) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(
                page,
                "okcvm_turn_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let total: u64 = self.turns.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let sum = self.turn_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            page,
            "okcvm_turn_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(page, "okcvm_turn_duration_seconds_sum {sum}");
        let _ = writeln!(page, "okcvm_turn_duration_seconds_count {total}");

        family(
            &mut page,
            "okcvm_model_tokens_total",
            "counter",
            "Tokens the model reported.",
        );
        let tokens_in = self.tokens_in.load(Ordering::Relaxed);
        let tokens_out = self.tokens_out.load(Ordering::Relaxed);
        let _ = writeln!(
            page,
            "okcvm_model_tokens_total{{direction=\"in\"}} {tokens_in}"
        );
        let _ = writeln!(
            page,
            "okcvm_model_tokens_total{{direction=\"out\"}} {tokens_out}"
        );

        family(
            &mut page,
            "okcvm_context_compactions_total",
            "counter",
            "Compactions of the model's view of a history, by what they did.",
        );
        for (kind, count) in ["shortened", "summarized"].iter().zip(&self.compactions) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(
                page,
                "okcvm_context_compactions_total{{kind=\"{kind}\"}} {count}"
            );
        }

        family(
            &mut page,
            "okcvm_tool_calls_total",
            "counter",
            "Tool calls by tool and status.",
        );
        if let Ok(tools) = self.tools.lock() {
            for (tool, [succeeded, failed]) in tools.iter() {
                let tool = escape_label(tool);
                let _ = writeln!(
                    page,
                    "okcvm_tool_calls_total{{tool=\"{tool}\",status=\"success\"}} {succeeded}"
                );
                let _ = writeln!(
                    page,
                    "okcvm_tool_calls_total{{tool=\"{tool}\",status=\"error\"}} {failed}"
                );
            }
        }
        page
    }
}

/// A label value as the text format wants it (tool names come from the model's manifest).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;
    use crate::protocol::ToolCallRecord;

    fn call(tool: &str, status: ToolStatus) -> ToolCallRecord {
        ToolCallRecord {
            step: 1,
            tool_name: tool.into(),
            tool_input: serde_json::json!({}),
            tool_output: String::new(),
            invocation_id: "call_1".into(),
            status,
        }
    }

    #[test]
    fn turns_tools_and_sessions_show_up_in_the_text_format() {
        let metrics = Metrics::default();
        let outcome = TurnOutcome {
            reply: "ok".into(),
            usage: Usage {
                prompt_tokens: 120,
                completion_tokens: 7,
            },
            tool_calls: vec![
                call("mshtools-shell", ToolStatus::Success),
                call("mshtools-shell", ToolStatus::Error),
                call("odd\"name", ToolStatus::Success),
                call("made-up", ToolStatus::Error),
            ],
            end: TurnEnd::Answered,
            compactions: vec![false, true],
        };
        let known = |name: &str| name.starts_with("mshtools-") || name.contains('"');
        metrics.record_turn(&outcome, Duration::from_millis(30), known);
        metrics.record_turn(
            &TurnOutcome {
                end: TurnEnd::Cancelled,
                tool_calls: vec![],
                compactions: vec![],
                ..outcome
            },
            Duration::from_secs(2),
            known,
        );
        let registry = SessionFigures {
            busy: 1,
            idle: 0,
            evictions: 3,
            started: 5,
            failed: 0,
        };
        let page = metrics.render(&registry);
        for line in [
            "okcvm_sessions{state=\"busy\"} 1",
            "okcvm_sessions{state=\"idle\"} 0",
            "okcvm_sessions_evicted_total 3",
            "okcvm_turns_total{ending=\"answered\"} 1",
            "okcvm_turns_total{ending=\"cancelled\"} 1",
            "okcvm_turn_duration_seconds_bucket{le=\"0.05\"} 1",
            "okcvm_turn_duration_seconds_bucket{le=\"5\"} 2",
            "okcvm_turn_duration_seconds_count 2",
            "okcvm_model_tokens_total{direction=\"in\"} 240",
            "okcvm_tool_calls_total{tool=\"mshtools-shell\",status=\"error\"} 1",
            "okcvm_tool_calls_total{tool=\"odd\\\"name\",status=\"success\"} 1",
            "okcvm_tool_calls_total{tool=\"unknown\",status=\"error\"} 1",
            "okcvm_context_compactions_total{kind=\"shortened\"} 1",
            "okcvm_context_compactions_total{kind=\"summarized\"} 1",
        ] {
            assert!(
                page.lines().any(|l| l == line),
                "missing {line:?} in\n{page}"
            );
        }
    }
}
