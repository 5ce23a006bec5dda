//! This server as an MCP server, so other agents (Claude Desktop, codex, goose) can hand work
//! to an OK Computer: at `/mcp` over Streamable HTTP (rmcp's service, behind the same gate as
//! the API), and as `okcvm mcp-serve` over stdio, which relays to a running server's API. One
//! tool, `okcvm_task` {`message`, `conversation_id`?}: it runs a turn in the caller's
//! conversation (a new one when none is named) with nobody on the line to approve
//! (`[permissions] unattended`), and answers the final reply, the artifacts' paths and the
//! conversation id to continue with.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use http_body_util::BodyExt as _;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{json, Value};

use super::error::ApiError;
use super::identity::{check_id, owner};
use crate::auth::{Owner, SessionKey};
use crate::client::Api;
use crate::runtime::messages::{Delivery, StartTurn};
use crate::runtime::Sessions;

const TASK_TOOL: &str = "okcvm_task";

/// The MCP service mounted at `/mcp`.
pub type McpService = StreamableHttpService<TaskServer, LocalSessionManager>;

pub fn service(sessions: Sessions) -> McpService {
    // The gate in front has checked the caller, the host and the origin already.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    StreamableHttpService::new(
        move || {
            Ok(TaskServer {
                runner: Runner::Local(sessions.clone()),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// Runs `okcvm_task` calls as turns.
#[derive(Clone)]
pub struct TaskServer {
    runner: Runner,
}

/// Where a task's turn runs.
#[derive(Clone)]
enum Runner {
    /// In this server, as the owner the gate found.
    Local(Sessions),
    /// In a running server reached over its API (`okcvm mcp-serve`).
    Remote(Api),
}

/// What a finished task answers.
struct Finished {
    reply: String,
    artifacts: Vec<String>,
}

/// The stdio server of `okcvm mcp-serve`: serves until the client closes its input.
pub async fn serve_stdio(remote: Api) -> Result<(), String> {
    use rmcp::ServiceExt as _;
    let server = TaskServer {
        runner: Runner::Remote(remote),
    };
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("cannot start the MCP server: {e}"))?;
    running
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("the MCP server failed: {e}"))
}

impl Runner {
    async fn run(
        &self,
        context: &RequestContext<RoleServer>,
        conversation_id: &str,
        message: &str,
    ) -> Result<Finished, String> {
        match self {
            Runner::Local(sessions) => {
                let owner = context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|parts| parts.extensions.get::<Owner>())
                    .cloned()
                    .ok_or("the caller is not known")?;
                let key = SessionKey::new(owner, conversation_id.to_string());
                let turn = StartTurn {
                    message: message.to_string(),
                    replace_last: false,
                    replace_from: None,
                    delivery: Delivery::Ending,
                    named_conversation: true,
                    attended: false,
                };
                let ran = async {
                    let handle = sessions.ask(&key, turn).await.map_err(ApiError::from)?;
                    super::chat::final_payload(handle.events).await
                };
                let payload = tokio::select! {
                    payload = ran => payload.map_err(|e| e.to_string())?,
                    () = context.ct.cancelled() => {
                        let _ = sessions.ask(&key, crate::runtime::messages::CancelTurn).await;
                        return Err("cancelled by the client".into());
                    }
                };
                Ok(Finished {
                    reply: payload.reply.clone(),
                    artifacts: payload.artifacts.iter().map(|a| a.url.clone()).collect(),
                })
            }
            Runner::Remote(api) => run_remote(api, conversation_id, message, &context.ct).await,
        }
    }
}

/// A task run by a remote server (`okcvm mcp-serve`), in `conversation_id`; a cancel from the
/// MCP client stops the turn there.
async fn run_remote(
    api: &Api,
    conversation_id: &str,
    message: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Finished, String> {
    let mut api = api.clone();
    api.conversation = conversation_id.to_string();
    let turn = api.json(
        reqwest::Method::POST,
        "/api/chat",
        Some(json!({"message": message, "stream": false})),
    );
    let body = tokio::select! {
        body = turn => body.map_err(|e| e.to_string())?,
        () = cancel.cancelled() => {
            let _ = api.stop().await;
            return Err("cancelled by the client".into());
        }
    };
    Ok(Finished {
        reply: body["reply"].as_str().unwrap_or_default().to_string(),
        artifacts: body["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["url"].as_str().map(str::to_string))
            .collect(),
    })
}

fn task_tool() -> Tool {
    let schema = json!({
        "type": "object",
        "properties": {
            "message": {"type": "string", "description": "What the OK Computer agent should do."},
            "conversation_id": {
                "type": "string",
                "pattern": "^[A-Za-z0-9._-]{1,128}$",
                "description": "Continue this conversation (as returned by an earlier call); a new one when absent."
            }
        },
        "required": ["message"],
        "additionalProperties": false
    });
    let Value::Object(schema) = schema else {
        unreachable!("the schema is an object literal")
    };
    Tool::new(
        TASK_TOOL,
        "Hand a task to an OK Computer agent: it works in its own sandboxed workspace with a \
         shell, Python, a browser, web search, file, slide and website tools, and answers with \
         its final reply, the files it made and the conversation id to continue with.",
        schema,
    )
}

impl ServerHandler for TaskServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("okcvm", env!("CARGO_PKG_VERSION")))
            .with_instructions("Call okcvm_task with a task; pass conversation_id to continue.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![task_tool()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != TASK_TOOL {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {}; the only tool is {TASK_TOOL}",
                    request.name
                ),
                None,
            ));
        }
        let arguments = request.arguments.unwrap_or_default();
        let Some(message) = arguments.get("message").and_then(Value::as_str) else {
            return Err(ErrorData::invalid_params(
                "message (a string) is required",
                None,
            ));
        };
        let conversation_id = match arguments.get("conversation_id").and_then(Value::as_str) {
            Some(id) => check_id("conversation_id", id)
                .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?,
            None => format!("mcp-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        };
        let finished = self.runner.run(&context, &conversation_id, message).await;
        let result = match finished {
            Ok(finished) => {
                let artifacts = finished.artifacts;
                let mut text = finished.reply.clone();
                if !artifacts.is_empty() {
                    text.push_str(&format!("\n\nFiles: {}", artifacts.join(", ")));
                }
                text.push_str(&format!("\n\n(conversation_id: {conversation_id})"));
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                result.structured_content = Some(json!({
                    "reply": finished.reply,
                    "artifacts": artifacts,
                    "conversation_id": conversation_id,
                }));
                result
            }
            Err(error) => CallToolResult::error(vec![ContentBlock::text(format!(
                "the task failed: {error} (conversation_id: {conversation_id})"
            ))]),
        };
        Ok(result.into())
    }
}

/// `/mcp` (GET, POST, DELETE): the request handed to the MCP service with the caller's owner,
/// its answer (often an event stream) passed back as it comes.
pub async fn endpoint(
    service: web::Data<McpService>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let owner = owner(&req)?;
    let mut request = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        request = request.header(name.as_str(), value.as_bytes());
    }
    let mut request = request
        .body(http_body_util::Full::new(body))
        .map_err(|e| ApiError::BadRequest(format!("cannot read the request: {e}")))?;
    request.extensions_mut().insert(owner);
    let (parts, body) = service.handle(request).await.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        response.append_header((name.as_str(), value.as_bytes()));
    }
    if !parts.headers.contains_key(http::header::CONTENT_TYPE) {
        response.content_type("text/plain; charset=utf-8");
    }
    Ok(response.streaming(body.into_data_stream()))
}
