//! What every session shares, read-only: config, the tool contract, the tool registry, the
//! model client and the sandbox. Built once in `run` and passed down; no globals.

use std::sync::Arc;

use crate::config::Config;
use crate::llm::openai::OpenAiClient;
use crate::spec::Spec;
use crate::tools::sandbox::Sandbox;
use crate::tools::ToolRegistry;

pub struct Services {
    pub config: Arc<Config>,
    pub spec: Arc<Spec>,
    pub tools: ToolRegistry,
    pub llm: OpenAiClient,
    pub sandbox: Arc<Sandbox>,
    pub tools_config: Arc<crate::config::ToolsConfig>,
}
