//! The seven `browser_*` tools on a session's tab: the page as the model reads it (address,
//! title, scroll position, numbered interactive elements, visible text) and the actions on
//! it, all through the page script `browser_page.js`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chromiumoxide::Page;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{answers, Tab};
use crate::tools::{ToolContext, ToolError, ToolOutput, TypedTool};

/// The page-side half of the tools: one function taking `{op, ...}`.
const PAGE_SCRIPT: &str = include_str!("browser_page.js");
/// How long a click or submit may keep the page loading before its state is read.
const SETTLE: Duration = Duration::from_secs(5);

/// The session's tab, opened on first use (again if its browser died, or if it was closed to
/// make room for another session's tab: the new one starts blank).
async fn tab(ctx: &mut ToolContext) -> Result<&Tab, ToolError> {
    if let Some(tab) = ctx.state.browser.as_ref() {
        if tab.slot.was_reclaimed() {
            ctx.state.browser = None;
        } else if !tab.alive.load(Ordering::Acquire) || !answers(&tab.browser).await {
            tab.alive.store(false, Ordering::Release);
            ctx.state.browser = None;
        }
    }
    if ctx.state.browser.is_none() {
        ctx.state.browser = Some(ctx.services.browser.open_tab().await?);
    }
    ctx.state
        .browser
        .as_ref()
        .ok_or_else(|| ToolError::Fatal("the tab vanished".into()))
}

/// Runs the page script with `command` and returns its answer.
async fn run_script(page: &Page, command: Value) -> Result<Value, ToolError> {
    let call = format!("() => ({PAGE_SCRIPT})({command})");
    let answer: Value = page
        .evaluate_function(call)
        .await
        .map_err(|e| ToolError::RespondToModel(format!("the page did not answer: {e}")))?
        .into_value()
        .map_err(|e| ToolError::RespondToModel(format!("the page answered oddly: {e}")))?;
    if let Some(error) = answer["error"].as_str() {
        return Err(ToolError::RespondToModel(error.to_string()));
    }
    Ok(answer)
}

/// Waits until a page that an action may have navigated has loaded (or `SETTLE` passed).
async fn settle(page: &Page) {
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(150)).await;
    while started.elapsed() < SETTLE {
        let ready = page
            .evaluate("document.readyState")
            .await
            .ok()
            .and_then(|r| r.into_value::<String>().ok());
        if ready.as_deref() == Some("complete") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page as the model reads it.
async fn describe(page: &Page, heading: &str) -> Result<ToolOutput, ToolError> {
    let state = run_script(page, json!({"op": "state"})).await?;
    let mut out = String::new();
    if !heading.is_empty() {
        out.push_str(heading);
        out.push('\n');
    }
    out.push_str(&format!(
        "URL: {}\nTitle: {}\nScroll: {} of {} px (viewport {} px)\n",
        state["url"].as_str().unwrap_or(""),
        state["title"].as_str().unwrap_or(""),
        state["scroll_y"],
        state["scroll_height"],
        state["viewport"],
    ));
    let elements = state["elements"].as_array().cloned().unwrap_or_default();
    if elements.is_empty() {
        out.push_str("\nNo interactive elements in view.\n");
    } else {
        out.push_str("\nInteractive elements in view (use the number as element_index):\n");
        for element in &elements {
            out.push_str(&element_line(element));
            out.push('\n');
        }
    }
    out.push_str("\nVisible text:\n");
    out.push_str(state["text"].as_str().unwrap_or(""));
    Ok(ToolOutput::text(out.trim_end().to_string()))
}

fn element_line(element: &Value) -> String {
    let tag = element["tag"].as_str().unwrap_or("");
    let kind = element["type"].as_str().unwrap_or("");
    let label = element["label"].as_str().unwrap_or("");
    let mut line = format!("[{}] {tag}", element["index"]);
    if !kind.is_empty() {
        line.push_str(&format!("[{kind}]"));
    }
    if !label.is_empty() {
        line.push_str(&format!(" \"{label}\""));
    }
    if let Some(href) = element["href"].as_str().filter(|h| !h.is_empty()) {
        line.push_str(&format!(" -> {href}"));
    }
    if let Some(value) = element["value"].as_str().filter(|v| !v.is_empty()) {
        line.push_str(&format!(" value=\"{value}\""));
    }
    line
}

#[derive(Deserialize)]
pub struct VisitArgs {
    url: String,
    #[serde(default)]
    citation_id: Option<Value>,
}

pub struct BrowserVisit;

impl TypedTool for BrowserVisit {
    const NAME: &'static str = "mshtools-browser_visit";
    type Args = VisitArgs;

    async fn run(&self, args: VisitArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let url = ctx.services.browser.check_url(&args.url).await?;
        let (page, _in_use) = tab(ctx).await?.use_page();
        page.goto(url.as_str())
            .await
            .map_err(|e| ToolError::RespondToModel(format!("cannot open {url}: {e}")))?;
        settle(&page).await;
        let heading = match &args.citation_id {
            Some(Value::String(id)) if !id.is_empty() => format!("Opened [{id}] {url}"),
            Some(Value::Number(id)) => format!("Opened [{id}] {url}"),
            _ => format!("Opened {url}"),
        };
        describe(&page, &heading).await
    }
}

pub struct BrowserState;

impl TypedTool for BrowserState {
    const NAME: &'static str = "mshtools-browser_state";
    type Args = crate::tools::NoArgs;

    async fn run(
        &self,
        _args: crate::tools::NoArgs,
        ctx: &mut ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let (page, _in_use) = tab(ctx).await?.use_page();
        describe(&page, "").await
    }
}

#[derive(Deserialize)]
pub struct ClickArgs {
    element_index: u32,
}

pub struct BrowserClick;

impl TypedTool for BrowserClick {
    const NAME: &'static str = "mshtools-browser_click";
    type Args = ClickArgs;

    async fn run(&self, args: ClickArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let (page, _in_use) = tab(ctx).await?.use_page();
        run_script(&page, json!({"op": "click", "index": args.element_index})).await?;
        settle(&page).await;
        describe(&page, &format!("Clicked [{}]", args.element_index)).await
    }
}

#[derive(Deserialize)]
pub struct InputArgs {
    element_index: u32,
    content: String,
}

pub struct BrowserInput;

impl TypedTool for BrowserInput {
    const NAME: &'static str = "mshtools-browser_input";
    type Args = InputArgs;

    async fn run(&self, args: InputArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let (page, _in_use) = tab(ctx).await?.use_page();
        // A trailing newline submits, as pressing Enter would.
        let submit = args.content.ends_with('\n');
        let text = args.content.trim_end_matches('\n');
        let command =
            json!({"op": "input", "index": args.element_index, "text": text, "submit": submit});
        run_script(&page, command).await?;
        settle(&page).await;
        let done = if submit {
            "Typed and submitted"
        } else {
            "Typed"
        };
        describe(&page, &format!("{done} into [{}]", args.element_index)).await
    }
}

#[derive(Deserialize)]
pub struct ScrollArgs {
    #[serde(default)]
    scroll_amount: Option<i64>,
}

async fn scroll(
    ctx: &mut ToolContext,
    amount: Option<i64>,
    down: bool,
) -> Result<ToolOutput, ToolError> {
    let (page, _in_use) = tab(ctx).await?.use_page();
    let amount = amount.map(|a| a.clamp(1, 100_000));
    let signed = |a: i64| if down { a } else { -a };
    run_script(
        &page,
        json!({"op": "scroll", "amount": amount.map(signed), "down": down}),
    )
    .await?;
    describe(&page, if down { "Scrolled down" } else { "Scrolled up" }).await
}

pub struct BrowserScrollDown;

impl TypedTool for BrowserScrollDown {
    const NAME: &'static str = "mshtools-browser_scroll_down";
    type Args = ScrollArgs;

    async fn run(&self, args: ScrollArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        scroll(ctx, args.scroll_amount, true).await
    }
}

pub struct BrowserScrollUp;

impl TypedTool for BrowserScrollUp {
    const NAME: &'static str = "mshtools-browser_scroll_up";
    type Args = ScrollArgs;

    async fn run(&self, args: ScrollArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        scroll(ctx, args.scroll_amount, false).await
    }
}

#[derive(Deserialize)]
pub struct FindArgs {
    keyword: String,
    #[serde(default)]
    skip: Option<u32>,
}

pub struct BrowserFind;

impl TypedTool for BrowserFind {
    const NAME: &'static str = "mshtools-browser_find";
    type Args = FindArgs;

    async fn run(&self, args: FindArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        if args.keyword.trim().is_empty() {
            return Err(ToolError::RespondToModel(
                "keyword must not be empty".into(),
            ));
        }
        let (page, _in_use) = tab(ctx).await?.use_page();
        let skip = args.skip.unwrap_or(0);
        let found = run_script(
            &page,
            json!({"op": "find", "keyword": args.keyword.trim(), "skip": skip}),
        )
        .await?;
        let total = found["total"].as_u64().unwrap_or(0);
        let matches = found["matches"].as_array().cloned().unwrap_or_default();
        if total == 0 {
            return Ok(ToolOutput::text(format!(
                "\"{}\" does not occur on this page.",
                args.keyword.trim()
            )));
        }
        let mut out = format!(
            "\"{}\" occurs {total} times on the page",
            args.keyword.trim()
        );
        if matches.is_empty() {
            out.push_str(&format!("; skip {skip} passes all of them."));
            return Ok(ToolOutput::text(out));
        }
        out.push_str(&format!(
            " (showing {} from number {}; the first is scrolled into view):\n",
            matches.len(),
            skip + 1
        ));
        for (i, snippet) in matches.iter().enumerate() {
            out.push_str(&format!(
                "{}. …{}…\n",
                skip as usize + i + 1,
                snippet.as_str().unwrap_or("")
            ));
        }
        Ok(ToolOutput::text(out.trim_end().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_read_as_numbered_lines() {
        let line = element_line(
            &json!({"index": 3, "tag": "input", "type": "text", "label": "Search", "value": "rust"}),
        );
        assert_eq!(line, "[3] input[text] \"Search\" value=\"rust\"");
        let link = element_line(
            &json!({"index": 1, "tag": "a", "type": "", "label": "About", "href": "https://x/about"}),
        );
        assert_eq!(link, "[1] a \"About\" -> https://x/about");
    }
}
