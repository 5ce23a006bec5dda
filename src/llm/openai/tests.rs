//! Unit tests of the OpenAI-compatible client against scripted endpoints.

use super::*;
use crate::llm::ToolCall;

fn apply_all(payloads: &[&str]) -> Result<(StreamState, String), LlmError> {
    let mut state = StreamState::default();
    let mut seen = String::new();
    let mut on_delta = |t: &str| seen.push_str(t);
    for p in payloads {
        if state.apply(p, &mut on_delta)? {
            break;
        }
    }
    Ok((state, seen))
}

#[test]
fn stream_chunks_give_text_calls_and_usage() {
    let (state, seen) = apply_all(&[
        r#"{"choices":[{"delta":{"role":"assistant","content":"Hel"}}]}"#,
        r#"{"choices":[{"delta":{"content":"lo"}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"t","arguments":"{\"a\""}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#,
        "[DONE]",
    ])
    .unwrap();
    assert_eq!(seen, "Hello");
    assert_eq!(state.content, "Hello");
    assert!(state.done);
    assert_eq!(
        state.usage,
        Usage {
            prompt_tokens: 7,
            completion_tokens: 3
        }
    );
    assert_eq!(
        state.tool_calls.finish("x"),
        vec![ToolCall::new("c1", "t", "{\"a\":1}")]
    );
}

#[test]
fn garbage_and_in_stream_errors_are_malformed() {
    assert!(matches!(
        apply_all(&["{not json"]),
        Err(LlmError::Malformed(_))
    ));
    assert!(matches!(
        apply_all(&[r#"{"error":{"message":"overloaded"}}"#]),
        Err(LlmError::Malformed(_))
    ));
}
