//! Unit tests of the turn loop with a scripted model and fake tools: no HTTP, no actors, no
//! sandbox.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::value::RawValue;

use super::*;
use crate::llm::{Completion, FunctionCall};
use crate::protocol::ApprovalDecision;
use crate::tools::ToolOutput;

/// A model that answers from a script and records how many messages each request had.
#[derive(Default)]
struct ScriptedModel {
    replies: Mutex<VecDeque<Result<Completion, LlmError>>>,
    requests: Mutex<Vec<Vec<Message>>>,
}

impl ScriptedModel {
    fn new(replies: Vec<Result<Completion, LlmError>>) -> Self {
        Self {
            replies: Mutex::new(replies.into()),
            ..Self::default()
        }
    }

    fn requests(&self) -> Vec<Vec<Message>> {
        self.requests.lock().unwrap().clone()
    }
}

impl LlmClient for ScriptedModel {
    fn complete<'a>(
        &'a self,
        request: LlmRequest<'a>,
        on_delta: &'a mut dyn FnMut(&str),
    ) -> impl std::future::Future<Output = Result<Completion, LlmError>> + 'a {
        self.requests
            .lock()
            .unwrap()
            .push(request.messages.iter().map(|m| (*m).clone()).collect());
        let reply = self.replies.lock().unwrap().pop_front();
        async move {
            match reply {
                Some(Ok(completion)) => {
                    if !completion.content.is_empty() {
                        on_delta(&completion.content);
                    }
                    Ok(completion)
                }
                Some(Err(error)) => Err(error),
                // Out of script: the model hangs (a cancel must end the call).
                None => std::future::pending().await,
            }
        }
    }

    fn model_name(&self) -> String {
        "scripted".into()
    }
}

fn text(content: &str) -> Result<Completion, LlmError> {
    Ok(Completion {
        content: content.into(),
        tool_calls: Vec::new(),
        usage: Usage::default(),
        finish_reason: None,
    })
}

fn calls(content: &str, calls: &[(&str, &str)]) -> Result<Completion, LlmError> {
    Ok(Completion {
        content: content.into(),
        tool_calls: calls
            .iter()
            .enumerate()
            .map(|(i, (name, arguments))| ToolCall {
                id: format!("call_{i}"),
                kind: "function".into(),
                function: FunctionCall {
                    name: (*name).into(),
                    arguments: (*arguments).into(),
                },
            })
            .collect(),
        usage: Usage::default(),
        finish_reason: None,
    })
}

/// Tools that answer by name: `echo` returns its arguments, `fail` an error for the model,
/// `broken` a server failure, `big` a long text, `stop` cancels the turn while it runs;
/// anything else is unknown, and arguments that are not JSON are refused, as the registry
/// does.
struct FakeTools {
    manifest: std::sync::Arc<RawValue>,
    ran: RefCell<Vec<String>>,
}

struct FakeContext {
    cancel: CancellationToken,
}

impl FakeTools {
    fn new() -> Self {
        Self {
            manifest: RawValue::from_string("[]".into()).unwrap().into(),
            ran: RefCell::default(),
        }
    }
}

impl Tools for FakeTools {
    type Context = FakeContext;

    fn manifest(&self, _ctx: &FakeContext) -> std::sync::Arc<RawValue> {
        self.manifest.clone()
    }

    fn cancel_token(ctx: &FakeContext) -> CancellationToken {
        ctx.cancel.clone()
    }

    async fn call(
        &self,
        name: &str,
        arguments: &str,
        ctx: &mut FakeContext,
    ) -> Result<ToolOutput, ToolError> {
        self.ran.borrow_mut().push(name.to_string());
        if serde_json::from_str::<Value>(arguments).is_err() {
            return Err(ToolError::RespondToModel(format!(
                "the arguments of {name} are not valid JSON"
            )));
        }
        match name {
            "echo" => Ok(ToolOutput::text(arguments)),
            "fail" => Err(ToolError::RespondToModel("no such file".into())),
            "broken" => Err(ToolError::Fatal("disk on fire".into())),
            "big" => Ok(ToolOutput::text("x".repeat(10_000))),
            "stop" => {
                ctx.cancel.cancel();
                Ok(ToolOutput::text("stopped midway"))
            }
            other => Err(ToolError::RespondToModel(format!("unknown tool {other}"))),
        }
    }
}

/// Refuses `forbidden`; `ask` waits until the turn is cancelled; `approved` runs with a
/// record of who approved it.
struct FakeGate;

fn record(decision: ApprovalDecision) -> ApprovalRecord {
    ApprovalRecord {
        approval_id: Some("a1".into()),
        decision,
        by: "@ann".into(),
        at: "2026-12-02T00:00:00Z".into(),
        reason: "rule".into(),
        remember: None,
    }
}

impl Gate for FakeGate {
    async fn check(&self, call: &ToolCall, cancel: &CancellationToken) -> Verdict {
        match call.function.name.as_str() {
            "forbidden" => Verdict::Refused {
                message: "the user denied this call".into(),
                record: record(ApprovalDecision::Deny),
            },
            "ask" => {
                cancel.cancelled().await;
                Verdict::Cancelled
            }
            "approved" => Verdict::Run(Some(record(ApprovalDecision::Approve))),
            _ => Verdict::Run(None),
        }
    }
}

#[derive(Default)]
struct Events(RefCell<Vec<ChatEvent>>);

impl EventSink for Events {
    fn emit(&self, event: ChatEvent) {
        self.0.borrow_mut().push(event);
    }
}

/// A window no test of the loop comes near.
fn big_context() -> crate::agent::compact::ContextSettings {
    crate::agent::compact::ContextSettings {
        limits: crate::config::context::ContextLimits {
            window_tokens: 100_000,
            compact_at: 0.8,
        },
        keep_tool_outputs_steps: 6,
        counter: crate::agent::context::TokenCounter::Estimate,
        compact_prompt: "summarise".into(),
    }
}

struct Run {
    outcome: TurnOutcome,
    history: Conversation,
    model: ScriptedModel,
    tools: FakeTools,
    events: Vec<ChatEvent>,
}

async fn run(script: Vec<Result<Completion, LlmError>>, max_steps: u32) -> Run {
    run_with(script, max_steps, CancellationToken::new()).await
}

async fn run_with(
    script: Vec<Result<Completion, LlmError>>,
    max_steps: u32,
    cancel: CancellationToken,
) -> Run {
    let model = ScriptedModel::new(script);
    let tools = FakeTools::new();
    let mut history = Conversation::new();
    let mut ctx = FakeContext { cancel };
    let events = Events::default();
    let settings = TurnSettings {
        max_steps,
        output_cap: 1_000,
        context: big_context(),
    };
    let outcome = run_turn(
        &model,
        &tools,
        &FakeGate,
        &mut history,
        &mut ctx,
        "system".into(),
        "hello",
        &settings,
        &events,
    )
    .await;
    Run {
        outcome,
        history,
        model,
        tools,
        events: events.0.into_inner(),
    }
}

/// The tool messages of the history, in order.
fn tool_results(history: &Conversation) -> Vec<String> {
    history
        .entries()
        .iter()
        .filter_map(|e| match &e.message {
            Message::Tool { content, .. } => Some(content.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn tool_errors_go_back_to_the_model_and_the_turn_goes_on() {
    let run = run(
        vec![
            calls(
                "",
                &[
                    ("fail", "{}"),
                    ("broken", "{}"),
                    ("nope", "{}"),
                    ("echo", "not json"),
                ],
            ),
            text("recovered"),
        ],
        8,
    )
    .await;
    assert_eq!(run.outcome.end, TurnEnd::Answered);
    assert_eq!(run.outcome.reply, "recovered");
    assert_eq!(
        tool_results(&run.history),
        [
            "Error: no such file",
            "Error: internal tool failure: disk on fire",
            "Error: unknown tool nope",
            "Error: the arguments of echo are not valid JSON",
        ]
    );
    // The second request carried every result back to the model.
    let second = &run.model.requests()[1];
    assert_eq!(
        second
            .iter()
            .filter(|m| matches!(m, Message::Tool { .. }))
            .count(),
        4
    );
    assert!(run
        .outcome
        .tool_calls
        .iter()
        .all(|c| c.status == ToolStatus::Error));
}

#[tokio::test]
async fn several_calls_in_one_reply_run_in_order_with_their_events() {
    let run = run(
        vec![
            calls("working", &[("echo", "{\"n\":1}"), ("echo", "{\"n\":2}")]),
            text("done"),
        ],
        8,
    )
    .await;
    assert_eq!(run.tools.ran.borrow().as_slice(), ["echo", "echo"]);
    assert_eq!(tool_results(&run.history), ["{\"n\":1}", "{\"n\":2}"]);
    let kinds: Vec<&str> = run
        .events
        .iter()
        .map(|e| match e {
            ChatEvent::Token { .. } => "token",
            ChatEvent::ToolStarted { .. } => "started",
            ChatEvent::ToolCompleted { .. } => "completed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "token",
            "started",
            "completed",
            "started",
            "completed",
            "token"
        ]
    );
    assert_eq!(run.outcome.tool_calls.len(), 2);
    assert_eq!(run.outcome.tool_calls[1].step, 1);
}

#[tokio::test]
async fn tool_output_is_capped_for_the_model() {
    let run = run(vec![calls("", &[("big", "{}")]), text("ok")], 8).await;
    let result = &tool_results(&run.history)[0];
    assert!(
        result.len() < 1_200,
        "{} bytes reached the model",
        result.len()
    );
    assert!(result.contains("omitted"));
}

#[tokio::test]
async fn max_steps_keeps_the_partial_text_and_says_why_it_stopped() {
    let run = run(
        vec![
            calls("first part", &[("echo", "{}")]),
            calls("", &[("echo", "{}")]),
            text("never asked"),
        ],
        2,
    )
    .await;
    assert_eq!(run.outcome.end, TurnEnd::MaxSteps);
    assert!(run.outcome.reply.starts_with("first part\n\n"));
    assert!(run.outcome.reply.contains("I stopped after 2 steps"));
    assert_eq!(run.model.requests().len(), 2);
    // The history ends with the note, after every call was answered.
    let last = run.history.entries().last().unwrap();
    assert!(
        matches!(&last.message, Message::Assistant { content: Some(c), .. } if c.contains("2 steps"))
    );
}

#[tokio::test]
async fn a_cancel_during_a_tool_call_answers_the_remaining_calls_and_ends_the_turn() {
    let run = run(
        vec![
            calls("", &[("stop", "{}"), ("echo", "{}")]),
            text("never asked"),
        ],
        8,
    )
    .await;
    assert_eq!(run.outcome.end, TurnEnd::Cancelled);
    assert_eq!(
        run.tools.ran.borrow().as_slice(),
        ["stop"],
        "echo never ran"
    );
    assert_eq!(
        tool_results(&run.history),
        ["stopped midway", "cancelled by the user before it ran"]
    );
    assert_eq!(run.model.requests().len(), 1);
}

#[tokio::test]
async fn a_cancel_while_the_model_is_asked_ends_the_turn_at_once() {
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        stopper.cancel();
    });
    // One tool round, then the script runs out: the model hangs until the cancel.
    let run = run_with(vec![calls("thinking", &[("echo", "{}")])], 8, cancel).await;
    assert_eq!(run.outcome.end, TurnEnd::Cancelled);
    assert_eq!(run.model.requests().len(), 2);
    assert_eq!(tool_results(&run.history), ["{}"]);
}

#[tokio::test]
async fn a_failed_model_call_ends_the_turn_with_its_error() {
    let error = LlmError::Status {
        status: 500,
        body: "boom".into(),
    };
    let run = run(vec![calls("", &[("echo", "{}")]), Err(error.clone())], 8).await;
    assert_eq!(run.outcome.end, TurnEnd::Failed(error));
    assert_eq!(tool_results(&run.history), ["{}"]);
}

#[tokio::test]
async fn a_refused_call_does_not_run_and_the_model_reads_why() {
    let run = run(
        vec![
            calls("", &[("forbidden", "{}"), ("echo", "{}")]),
            text("fine, I will not"),
        ],
        8,
    )
    .await;
    assert_eq!(run.outcome.end, TurnEnd::Answered);
    assert_eq!(*run.tools.ran.borrow(), ["echo"]);
    assert_eq!(
        tool_results(&run.history),
        ["Error: the user denied this call", "{}"]
    );
    let refused = run
        .history
        .entries()
        .iter()
        .find(|e| e.tool_name.as_deref() == Some("forbidden"))
        .unwrap();
    assert_eq!(refused.approval, Some(record(ApprovalDecision::Deny)));
    assert!(run.events.iter().any(|e| matches!(e,
        ChatEvent::ToolCompleted { tool_name, status: ToolStatus::Error, .. } if tool_name == "forbidden")));
}

#[tokio::test]
async fn an_approved_call_keeps_who_approved_it_in_the_history() {
    let run = run(vec![calls("", &[("approved", "{}")]), text("done")], 8).await;
    assert_eq!(*run.tools.ran.borrow(), ["approved"]);
    let entry = run
        .history
        .entries()
        .iter()
        .find(|e| e.tool_name.as_deref() == Some("approved"))
        .unwrap();
    assert_eq!(entry.approval, Some(record(ApprovalDecision::Approve)));
}

#[tokio::test]
async fn a_stop_while_a_call_waits_for_approval_ends_the_turn_without_running_it() {
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stopper.cancel();
    });
    let run = run_with(
        vec![calls("", &[("ask", "{}"), ("echo", "{}")]), text("never")],
        8,
        cancel,
    )
    .await;
    assert_eq!(run.outcome.end, TurnEnd::Cancelled);
    assert!(run.tools.ran.borrow().is_empty());
    assert_eq!(run.model.requests().len(), 1);
    assert_eq!(
        tool_results(&run.history),
        [
            "cancelled by the user before it ran",
            "cancelled by the user before it ran"
        ]
    );
}
