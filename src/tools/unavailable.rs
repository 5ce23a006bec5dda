//! Manifest tools this server cannot run yet: each answers with a clear error naming what is
//! missing, so the model can choose another way and the user sees why.

use futures_util::future::{BoxFuture, FutureExt};
use serde_json::Value;

use super::{Tool, ToolContext, ToolError, ToolOutput};

pub struct Unavailable {
    pub name: &'static str,
    pub reason: &'static str,
}

impl Tool for Unavailable {
    fn name(&self) -> &'static str {
        self.name
    }

    fn call<'a>(
        &'a self,
        _args: Value,
        _ctx: &'a mut ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        let message = format!(
            "{} is not available on this server: {}. Tell the user if the task depends on it, and use the other tools where you can",
            self.name, self.reason
        );
        async move { Err(ToolError::RespondToModel(message)) }.boxed()
    }
}

/// Every manifest tool without an implementation yet, with what it needs.
pub fn all() -> Vec<Unavailable> {
    const DATA: &str = "data sources are not configured in this build";
    let entries: [(&'static str, &'static str); 2] = [
        ("mshtools-get_data_source_desc", DATA),
        ("mshtools-get_data_source", DATA),
    ];
    entries
        .into_iter()
        .map(|(name, reason)| Unavailable { name, reason })
        .collect()
}
