//! An MCP tool's result as the model reads it: text parts joined, structured content as JSON
//! when there is no text, embedded text resources inline, images and binary resources saved
//! into the workspace (`output/mcp/`) and listed as artifacts, images also shown to a vision
//! model. Every size is bounded before anything is decoded.

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

use crate::tools::{save_artifact, ToolContext, ToolError, ToolOutput};

/// Largest decoded picture or file kept from one result.
const MAX_BINARY_BYTES: usize = 16 * 1024 * 1024;

pub async fn to_output(
    server: &str,
    result: CallToolResult,
    ctx: &mut ToolContext,
) -> Result<ToolOutput, ToolError> {
    let mut parts: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for (index, block) in result.content.into_iter().enumerate() {
        match block {
            ContentBlock::Text(text) => parts.push(text.text),
            ContentBlock::Image(image) => {
                let saved = save(ctx, server, index, &image.mime_type, &image.data).await?;
                if ctx.config.vision {
                    images.push(format!("data:{};base64,{}", image.mime_type, image.data));
                }
                parts.push(format!("[image saved as {saved}]"));
            }
            ContentBlock::Audio(audio) => {
                let saved = save(ctx, server, index, &audio.mime_type, &audio.data).await?;
                parts.push(format!("[audio saved as {saved}]"));
            }
            ContentBlock::Resource(embedded) => match embedded.resource {
                ResourceContents::TextResourceContents { uri, text, .. } => {
                    parts.push(format!("[resource {uri}]\n{text}"));
                }
                ResourceContents::BlobResourceContents {
                    uri,
                    mime_type,
                    blob,
                    ..
                } => {
                    let mime = mime_type.as_deref().unwrap_or("application/octet-stream");
                    let saved = save(ctx, server, index, mime, &blob).await?;
                    parts.push(format!("[resource {uri} saved as {saved}]"));
                }
                _ => parts.push("[a resource of a kind this server cannot show]".into()),
            },
            ContentBlock::ResourceLink(link) => {
                parts.push(format!("[resource link {} ({})]", link.uri, link.name));
            }
            _ => parts.push("[content of a kind this server cannot show]".into()),
        }
    }
    if parts.is_empty() {
        if let Some(structured) = &result.structured_content {
            parts.push(structured.to_string());
        }
    }
    let text = parts.join("\n");
    if result.is_error == Some(true) {
        return Err(ToolError::RespondToModel(if text.is_empty() {
            "the tool reported an error without saying more".into()
        } else {
            text
        }));
    }
    Ok(ToolOutput { text, images })
}

/// Decodes base64 `data` and saves it as `output/mcp/<server>-<n>.<ext>`; the model path.
async fn save(
    ctx: &mut ToolContext,
    server: &str,
    index: usize,
    mime: &str,
    data: &str,
) -> Result<String, ToolError> {
    if data.len() / 4 * 3 > MAX_BINARY_BYTES {
        return Err(ToolError::RespondToModel(format!(
            "the server sent a file larger than {} MB",
            MAX_BINARY_BYTES / (1024 * 1024)
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| {
            ToolError::RespondToModel(format!("the server sent a file that is not base64 ({e})"))
        })?;
    let extension = mime
        .split('/')
        .nth(1)
        .map(|sub| sub.split(['+', ';']).next().unwrap_or("bin"))
        .filter(|ext| !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("bin");
    let stamp = chrono::Utc::now().format("%H%M%S%3f");
    let target = format!("/mnt/okcomputer/output/mcp/{server}-{stamp}-{index}.{extension}");
    let kind = if mime.starts_with("image/") {
        "image"
    } else if mime.starts_with("audio/") {
        "audio"
    } else {
        "file"
    };
    let (path, _) = save_artifact(ctx, &target, bytes, kind).await?;
    Ok(path)
}
