//! Pure turn logic: the conversation history, the model's view of it (token accounting,
//! compaction), and the model ↔ tools loop.
//!
//! Generic over [`LlmClient`](crate::llm::LlmClient) and [`Tools`] (the tool registry, or
//! fakes in the unit tests); it never touches HTTP, actors or the store. The runtime lends it the session's parts and gets them back when the turn ends.

pub mod compact;
pub mod context;
pub mod conversation;
pub mod turn;

pub use conversation::Conversation;
pub use turn::{
    run_turn, EventSink, Gate, OpenGate, Tools, TurnEnd, TurnOutcome, TurnSettings, Verdict,
};
