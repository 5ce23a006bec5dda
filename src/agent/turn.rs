//! One chat turn: the model ↔ tools loop.
//!
//! system prompt + history → model → tool calls, each first checked by the [`Gate`] (which
//! may wait for a person; a refusal goes to the model as the call's result), run in order →
//! results appended as `tool`
//! messages → model again, until it answers without tool calls, `max_steps` is reached, the
//! model call fails or the turn is cancelled. Tool failures of any kind go back to the model
//! and the loop goes on. Emits `token`, `tool_started` and `tool_completed` events; the
//! runtime adds `final`/`error`/`stop`. History stays well-formed whatever the ending.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::compact::{compact, CompactError, ContextSettings, Trigger};
use super::context::{system_message, used_tokens, view_messages, view_of};
use super::conversation::Conversation;
use crate::llm::{
    ContentPart, ImageUrl, LlmClient, LlmError, LlmRequest, Message, ToolCall, Usage,
};
use crate::protocol::{ApprovalRecord, ChatEvent, ToolCallRecord, ToolStatus};
use crate::tools::output::cap_middle;
use crate::tools::{ToolContext, ToolError, ToolOutput, ToolRegistry};

/// What the loop needs of the tools: the manifest offered to the model, the turn's cancel
/// token in the tool context, and a call. [`ToolRegistry`] is the real one; the unit tests
/// bring fakes.
pub trait Tools {
    type Context;

    /// The tools offered now (the built-in ones and those of MCP servers).
    fn manifest(&self, ctx: &Self::Context) -> Arc<RawValue>;

    fn cancel_token(ctx: &Self::Context) -> CancellationToken;

    fn call<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a str,
        ctx: &'a mut Self::Context,
    ) -> impl Future<Output = Result<ToolOutput, ToolError>> + 'a;
}

impl Tools for ToolRegistry {
    type Context = ToolContext;

    fn manifest(&self, ctx: &ToolContext) -> Arc<RawValue> {
        ctx.services.mcp.manifest(&self.spec().tools_json)
    }

    fn cancel_token(ctx: &ToolContext) -> CancellationToken {
        ctx.cancel.clone()
    }

    fn call<'a>(
        &'a self,
        name: &'a str,
        arguments: &'a str,
        ctx: &'a mut ToolContext,
    ) -> impl Future<Output = Result<ToolOutput, ToolError>> + 'a {
        ToolRegistry::call(self, name, arguments, ctx)
    }
}

/// Whether a tool call may run: the runtime's permission check, which may wait for a person
/// (and emits the approval events itself), or the unit tests' fakes.
pub trait Gate {
    fn check<'a>(
        &'a self,
        call: &'a ToolCall,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = Verdict> + 'a;
}

/// A gate's answer for one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Run it; the record says who approved, when someone had to.
    Run(Option<ApprovalRecord>),
    /// Do not run it; `message` goes to the model as the call's result.
    Refused {
        message: String,
        record: ApprovalRecord,
    },
    /// The turn was stopped while the call waited.
    Cancelled,
}

/// Lets every call run (tools without a policy: the benchmark's and tests' own services).
pub struct OpenGate;

impl Gate for OpenGate {
    async fn check(&self, _call: &ToolCall, _cancel: &CancellationToken) -> Verdict {
        Verdict::Run(None)
    }
}

/// Where a turn's events go (the session numbers, keeps and fans them out).
pub trait EventSink {
    fn emit(&self, event: ChatEvent);
}

/// Limits of one turn.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    pub max_steps: u32,
    /// Bytes of one tool result sent to the model.
    pub output_cap: usize,
    pub context: ContextSettings,
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEnd {
    Answered,
    MaxSteps,
    Cancelled,
    Failed(LlmError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    pub reply: String,
    /// Every model request of the turn, summaries included.
    pub usage: Usage,
    pub tool_calls: Vec<ToolCallRecord>,
    pub end: TurnEnd,
    /// For each compaction the turn made: whether it summarised (else it shortened outputs).
    pub compactions: Vec<bool>,
}

/// Runs one turn for `user_message` on the lent history and tool context.
#[allow(clippy::too_many_arguments)] // each is a distinct borrowed part of the session
pub async fn run_turn<L: LlmClient, T: Tools, G: Gate, S: EventSink>(
    llm: &L,
    tools: &T,
    gate: &G,
    history: &mut Conversation,
    ctx: &mut T::Context,
    system_prompt: String,
    user_message: &str,
    settings: &TurnSettings,
    events: &S,
) -> TurnOutcome {
    let cancel = T::cancel_token(ctx);
    let context = &settings.context;
    let prompt_tokens = context.counter.text(&system_prompt);
    // A compaction that failed is not tried again in the same turn (the hard cut still holds).
    let mut may_compact = true;
    let mut counted_manifest: Option<(Arc<RawValue>, usize)> = None;
    let mut system_cache: Option<(Option<String>, Message, usize)> = None;
    history.push_user(user_message);
    let mut outcome = TurnOutcome {
        reply: String::new(),
        usage: Usage::default(),
        tool_calls: Vec::new(),
        end: TurnEnd::MaxSteps,
        compactions: Vec::new(),
    };
    for step in 1..=settings.max_steps {
        let manifest = tools.manifest(ctx);
        // The manifest changes only when MCP servers come or go: counted once per version.
        let manifest_tokens = match &counted_manifest {
            Some((known, tokens)) if Arc::ptr_eq(known, &manifest) => *tokens,
            _ => {
                let tokens = context.counter.text(manifest.get());
                counted_manifest = Some((manifest.clone(), tokens));
                tokens
            }
        };
        let fixed = prompt_tokens + manifest_tokens;
        context.counter.count_missing(history.entries_mut());
        let view = view_of(history.entries());
        if may_compact
            && used_tokens(history.entries(), &view, &context.counter, fixed)
                > context.limits.threshold()
        {
            match compact(llm, history, fixed, context, Trigger::Full, &cancel).await {
                Ok(Some(done)) => {
                    // Still full (one huge message): the hard cut takes over for this turn.
                    may_compact = done.after_tokens as usize <= context.limits.threshold();
                    outcome.usage.add(done.usage);
                    outcome.compactions.push(done.summarized);
                    events.emit(ChatEvent::ContextCompacted {
                        entry_id: done.entry_id,
                        before_tokens: done.before_tokens,
                        after_tokens: done.after_tokens,
                        summarized: done.summarized,
                    });
                }
                Ok(None) => {}
                Err(CompactError::Cancelled) => {
                    outcome.end = TurnEnd::Cancelled;
                    return outcome;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot compact the history; older turns are left out instead");
                    may_compact = false;
                }
            }
        }
        let mut streamed = String::new();
        let result = {
            let view = view_of(history.entries());
            // The system message changes only with the summary: built (and counted) again
            // only then.
            let (system, system_tokens) = match &mut system_cache {
                Some((summary, message, tokens)) if summary.as_deref() == view.summary => {
                    (&*message, *tokens)
                }
                slot => {
                    let message = system_message(&system_prompt, view.summary);
                    let tokens = context.counter.message(&message);
                    let (_, message, tokens) =
                        slot.insert((view.summary.map(str::to_string), message, tokens));
                    (&*message, *tokens)
                }
            };
            let fixed = system_tokens + manifest_tokens;
            let history_messages = view_messages(
                history.entries(),
                &view,
                &context.counter,
                fixed,
                context.hard_limit(),
            );
            let messages: Vec<&Message> = std::iter::once(system)
                .chain(history_messages.iter().map(AsRef::as_ref))
                .collect();
            let request = LlmRequest {
                messages: &messages,
                tools: Some(&manifest),
                window_tokens: Some(context.limits.window_tokens),
                max_tokens: None,
            };
            let mut on_delta = |text: &str| {
                streamed.push_str(text);
                events.emit(ChatEvent::Token {
                    delta: text.to_string(),
                });
            };
            call_model(llm, request, &mut on_delta, &cancel).await
        };
        let completion = match result {
            ModelResult::Done(Ok(completion)) => completion,
            ModelResult::Done(Err(error)) => {
                outcome.end = TurnEnd::Failed(error);
                return outcome;
            }
            ModelResult::Cancelled => {
                if !streamed.is_empty() {
                    history.push_assistant(&streamed, Vec::new(), Usage::default());
                    outcome.reply = streamed;
                }
                outcome.end = TurnEnd::Cancelled;
                return outcome;
            }
        };
        outcome.usage.add(completion.usage);
        if !completion.content.is_empty() {
            outcome.reply = completion.content.clone();
        }
        let calls = completion.tool_calls;
        history.push_assistant(&completion.content, calls.clone(), completion.usage);
        if calls.is_empty() {
            outcome.end = TurnEnd::Answered;
            return outcome;
        }
        let mut images = Vec::new();
        for call in &calls {
            if cancel.is_cancelled() {
                history.push_tool_result(call, NOT_RUN.into(), true, None);
                continue;
            }
            let input = serde_json::from_str::<Value>(&call.function.arguments)
                .unwrap_or_else(|_| Value::String(call.function.arguments.clone()));
            events.emit(ChatEvent::ToolStarted {
                invocation_id: call.id.clone(),
                tool_name: call.function.name.clone(),
                input: input.clone(),
            });
            let approval = match gate.check(call, &cancel).await {
                Verdict::Run(approval) => approval,
                Verdict::Refused { message, record } => {
                    events.emit(not_run(call, &message));
                    history.push_tool_result(call, format!("Error: {message}"), true, Some(record));
                    outcome.tool_calls.push(ToolCallRecord {
                        step,
                        tool_name: call.function.name.clone(),
                        tool_input: input,
                        tool_output: message,
                        invocation_id: call.id.clone(),
                        status: ToolStatus::Error,
                    });
                    continue;
                }
                Verdict::Cancelled => {
                    events.emit(not_run(call, NOT_RUN));
                    history.push_tool_result(call, NOT_RUN.into(), true, None);
                    continue;
                }
            };
            let started = Instant::now();
            let result = tools
                .call(&call.function.name, &call.function.arguments, ctx)
                .await;
            let duration_ms = started.elapsed().as_millis() as u64;
            let (status, text) = match result {
                Ok(output) => {
                    images.extend(output.images);
                    (ToolStatus::Success, output.text)
                }
                Err(ToolError::RespondToModel(message)) => (ToolStatus::Error, message),
                Err(error @ ToolError::Fatal(_)) => {
                    tracing::error!(tool = %call.function.name, %error, "tool failed");
                    (ToolStatus::Error, error.to_string())
                }
            };
            let text = cap_middle(&text, settings.output_cap);
            let is_error = status == ToolStatus::Error;
            events.emit(ChatEvent::ToolCompleted {
                invocation_id: call.id.clone(),
                tool_name: call.function.name.clone(),
                status,
                duration_ms,
                output: (!is_error).then(|| text.clone()),
                error: is_error.then(|| text.clone()),
            });
            let for_model = if is_error {
                format!("Error: {text}")
            } else {
                text.clone()
            };
            history.push_tool_result(call, for_model, is_error, approval);
            outcome.tool_calls.push(ToolCallRecord {
                step,
                tool_name: call.function.name.clone(),
                tool_input: input,
                tool_output: text,
                invocation_id: call.id.clone(),
                status,
            });
        }
        if !images.is_empty() {
            // Tool messages cannot carry images in chat-completions; a user message can.
            let mut parts = vec![ContentPart::Text {
                text: "Images returned by the tool calls above:".into(),
            }];
            parts.extend(images.into_iter().map(|url| ContentPart::ImageUrl {
                image_url: ImageUrl { url },
            }));
            history.push_images(parts);
        }
        if cancel.is_cancelled() {
            outcome.end = TurnEnd::Cancelled;
            return outcome;
        }
    }
    let note = format!(
        "I stopped after {} steps, the limit for one turn. Send a message to let me continue.",
        settings.max_steps
    );
    outcome.reply = if outcome.reply.is_empty() {
        note.clone()
    } else {
        format!("{}\n\n{note}", outcome.reply)
    };
    history.push_assistant(&note, Vec::new(), Usage::default());
    outcome
}

/// The result of a call the turn was stopped before.
const NOT_RUN: &str = "cancelled by the user before it ran";

/// The `tool_completed` of a call that did not run, saying why.
fn not_run(call: &ToolCall, why: &str) -> ChatEvent {
    ChatEvent::ToolCompleted {
        invocation_id: call.id.clone(),
        tool_name: call.function.name.clone(),
        status: ToolStatus::Error,
        duration_ms: 0,
        output: None,
        error: Some(why.to_string()),
    }
}

pub(super) enum ModelResult {
    Done(Result<crate::llm::Completion, LlmError>),
    Cancelled,
}

/// The model call, abandoned (its connection dropped) as soon as the turn is cancelled (a
/// step's request, or a summary compaction asks for).
pub(super) async fn call_model<L: LlmClient>(
    llm: &L,
    request: LlmRequest<'_>,
    on_delta: &mut dyn FnMut(&str),
    cancel: &CancellationToken,
) -> ModelResult {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => ModelResult::Cancelled,
        result = llm.complete(request, on_delta) => ModelResult::Done(result),
    }
}

#[cfg(test)]
mod tests;
