//! The actor runtime: one [`SessionActor`](session::SessionActor) per (client, conversation),
//! supervised by the [`Registry`](registry::Registry) that starts, finds and evicts them.
//!
//! The only module that imports actix. HTTP handlers talk to it through the messages in
//! `messages.rs`; nothing else reaches into session state.

pub mod approvals;
pub mod events;
pub mod eviction;
pub mod handle;
pub mod messages;
pub mod registry;
pub mod services;
pub mod session;
pub mod turn_end;

pub use handle::Sessions;
pub use messages::SessionError;
pub use registry::Registry;
pub use services::Services;
