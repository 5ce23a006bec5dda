//! `web_search` and `image_search` through the provider of `[search]` in okcvm.toml: a
//! SearXNG instance's JSON API or the Brave Search API.
//!
//! Queries of one call run concurrently; results are numbered across them (the numbers are
//! the citation ids the prompt asks the model to cite), duplicates dropped, snippets stripped
//! of markup. Without a provider the tools say what to configure. The key never leaves the
//! request header.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::Value;

use super::{ToolContext, ToolError, ToolOutput, TypedTool};
use crate::config::SearchConfig;

/// Queries one call may run.
const MAX_QUERIES: usize = 5;
/// Largest answer read from the provider (bytes).
const MAX_ANSWER: usize = 8 * 1024 * 1024;
/// Images one `image_search` call may return.
const MAX_IMAGES: usize = 50;

pub struct SearchClient {
    http: reqwest::Client,
    config: SearchConfig,
}

#[derive(Debug, Clone, PartialEq)]
struct WebResult {
    title: String,
    url: String,
    snippet: String,
}

#[derive(Debug, Clone, PartialEq)]
struct ImageResult {
    title: String,
    image_url: String,
    page_url: String,
    size: Option<String>,
}

impl SearchClient {
    pub fn new(config: &SearchConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            // The key travels in a header a redirect would hand to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(config.timeout_secs))
            .build()?;
        Ok(Self {
            http,
            config: config.clone(),
        })
    }

    /// One line for `okcvm check` and the start-up log.
    pub fn readiness(&self) -> String {
        match self.config.provider.as_str() {
            "" => "off (set [search] provider)".into(),
            provider => {
                // The address without any user:password in it.
                let shown = reqwest::Url::parse(&self.config.base_url)
                    .map(|mut url| {
                        let _ = url.set_username("");
                        let _ = url.set_password(None);
                        url.to_string()
                    })
                    .unwrap_or_default();
                format!("{provider} at {shown}")
            }
        }
    }

    fn check_configured(&self, what: &str) -> Result<(), ToolError> {
        if self.config.provider.is_empty() {
            return Err(ToolError::RespondToModel(format!(
                "{what} needs a search provider, and none is configured on this server: the \
                 operator sets [search] provider = \"searxng\" (with base_url of a SearXNG \
                 instance) or \"brave\" (with a key in OKCVM_SEARCH_API_KEY) in okcvm.toml"
            )));
        }
        Ok(())
    }

    /// GET `path` of the provider with `params`, as JSON.
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, ToolError> {
        let url = format!("{}/{path}", self.config.base_url.trim_end_matches('/'));
        let mut request = self
            .http
            .get(url)
            .query(params)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.header("X-Subscription-Token", key.expose());
        }
        let response = request.send().await.map_err(|e| {
            ToolError::RespondToModel(format!("the search provider cannot be reached: {e}"))
        })?;
        let status = response.status();
        let body = super::read_capped(response, MAX_ANSWER)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| ToolError::RespondToModel(format!("the search provider: {e}")))?;
        if !status.is_success() {
            let detail: String = body.chars().take(200).collect();
            return Err(ToolError::RespondToModel(format!(
                "the search provider answered {status}: {detail}"
            )));
        }
        serde_json::from_str(&body).map_err(|_| {
            ToolError::RespondToModel(
                "the search provider did not answer with JSON (for SearXNG, enable the json format in its settings)".into(),
            )
        })
    }

    async fn web(&self, query: &str) -> Result<Vec<WebResult>, ToolError> {
        let count = self.config.max_results;
        let results = if self.config.provider == "brave" {
            let answer = self
                .get(
                    "web/search",
                    // Brave returns at most 20 web results per request.
                    &[("q", query.into()), ("count", count.min(20).to_string())],
                )
                .await?;
            web_results(&answer["web"]["results"], "description")
        } else {
            let answer = self
                .get("search", &[("q", query.into()), ("format", "json".into())])
                .await?;
            web_results(&answer["results"], "content")
        };
        Ok(results.into_iter().take(count).collect())
    }

    async fn images(&self, query: &str, count: usize) -> Result<Vec<ImageResult>, ToolError> {
        let results = if self.config.provider == "brave" {
            let answer = self
                .get(
                    "images/search",
                    &[("q", query.into()), ("count", count.to_string())],
                )
                .await?;
            brave_images(&answer["results"])
        } else {
            let params = [
                ("q", query.to_string()),
                ("format", "json".into()),
                ("categories", "images".into()),
            ];
            searxng_images(&self.get("search", &params).await?["results"])
        };
        Ok(results.into_iter().take(count).collect())
    }
}

fn text(value: &Value) -> String {
    strip_markup(value.as_str().unwrap_or(""))
        .trim()
        .to_string()
}

/// Text without tags and with the common entities decoded (snippets carry `<strong>`).
fn strip_markup(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
}

fn web_results(items: &Value, snippet_field: &str) -> Vec<WebResult> {
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let url = item["url"].as_str()?.to_string();
                    Some(WebResult {
                        title: text(&item["title"]),
                        url,
                        snippet: text(&item[snippet_field]),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn searxng_images(items: &Value) -> Vec<ImageResult> {
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some(ImageResult {
                        title: text(&item["title"]),
                        image_url: item["img_src"].as_str()?.to_string(),
                        page_url: item["url"].as_str().unwrap_or("").to_string(),
                        size: item["resolution"]
                            .as_str()
                            .map(|r| r.replace(' ', ""))
                            .filter(|r| !r.is_empty()),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn brave_images(items: &Value) -> Vec<ImageResult> {
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let properties = &item["properties"];
                    let size = match (properties["width"].as_u64(), properties["height"].as_u64()) {
                        (Some(w), Some(h)) => Some(format!("{w}x{h}")),
                        _ => None,
                    };
                    Some(ImageResult {
                        title: text(&item["title"]),
                        image_url: properties["url"].as_str()?.to_string(),
                        page_url: item["url"].as_str().unwrap_or("").to_string(),
                        size,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The queries of a call: trimmed, non-empty, at most `MAX_QUERIES`.
fn clean_queries(tool: &str, queries: Vec<String>) -> Result<Vec<String>, ToolError> {
    let queries: Vec<String> = queries
        .into_iter()
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty())
        .collect();
    if queries.is_empty() {
        return Err(ToolError::RespondToModel(format!(
            "{tool}: give at least one non-empty query"
        )));
    }
    if queries.len() > MAX_QUERIES {
        return Err(ToolError::RespondToModel(format!(
            "{tool}: at most {MAX_QUERIES} queries per call"
        )));
    }
    Ok(queries)
}

/// Results of several queries as one numbered list, each address once.
fn render_web(
    answers: Vec<(String, Result<Vec<WebResult>, ToolError>)>,
) -> Result<String, ToolError> {
    let mut seen = HashSet::new();
    let mut out = String::new();
    let mut number = 0;
    let mut failures = Vec::new();
    for (query, answer) in answers {
        out.push_str(&format!("## Results for \"{query}\"\n"));
        match answer {
            Err(error) => {
                out.push_str(&format!("(failed: {error})\n\n"));
                failures.push(error);
                continue;
            }
            Ok(results) => {
                let fresh: Vec<WebResult> = results
                    .into_iter()
                    .filter(|r| seen.insert(r.url.clone()))
                    .collect();
                if fresh.is_empty() {
                    out.push_str("(no new results)\n");
                }
                for result in fresh {
                    number += 1;
                    out.push_str(&format!("[{number}] {}\n{}\n", result.title, result.url));
                    if !result.snippet.is_empty() {
                        out.push_str(&format!("{}\n", result.snippet));
                    }
                }
                out.push('\n');
            }
        }
    }
    if number == 0 {
        if let Some(error) = failures.into_iter().next() {
            return Err(error);
        }
    }
    out.push_str("Cite results by their number, e.g. [1].");
    Ok(out)
}

pub struct WebSearch;

#[derive(Deserialize)]
pub struct WebArgs {
    queries: Vec<String>,
}

impl TypedTool for WebSearch {
    const NAME: &'static str = "mshtools-web_search";
    type Args = WebArgs;

    async fn run(&self, args: WebArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let search = &ctx.services.search;
        search.check_configured("web search")?;
        let queries = clean_queries(Self::NAME, args.queries)?;
        let answers = join_all(queries.iter().map(|q| search.web(q))).await;
        let text = render_web(queries.into_iter().zip(answers).collect())?;
        Ok(ToolOutput::text(text))
    }
}

pub struct ImageSearch;

#[derive(Deserialize)]
pub struct ImageArgs {
    queries: Vec<String>,
    #[serde(default)]
    total_count: Option<usize>,
}

impl TypedTool for ImageSearch {
    const NAME: &'static str = "mshtools-image_search";
    type Args = ImageArgs;

    async fn run(&self, args: ImageArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let search = &ctx.services.search;
        search.check_configured("image search")?;
        let queries = clean_queries(Self::NAME, args.queries)?;
        let total = args.total_count.unwrap_or(10).clamp(1, MAX_IMAGES);
        let per_query = total.div_ceil(queries.len());
        let answers = join_all(queries.iter().map(|q| search.images(q, per_query))).await;
        let mut seen = HashSet::new();
        let mut lines = Vec::new();
        let mut first_error = None;
        for answer in answers {
            match answer {
                Ok(images) => lines.extend(
                    images
                        .into_iter()
                        .filter(|i| seen.insert(i.image_url.clone())),
                ),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if lines.is_empty() {
            return match first_error {
                Some(error) => Err(error),
                None => Ok(ToolOutput::text("No images found.")),
            };
        }
        let text = lines
            .into_iter()
            .take(total)
            .enumerate()
            .map(|(i, image)| {
                format!(
                    "[{}] {}{}\nimage: {}\npage: {}",
                    i + 1,
                    image.title,
                    image.size.map(|s| format!(" ({s})")).unwrap_or_default(),
                    image.image_url,
                    image.page_url
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        Ok(ToolOutput::text(format!(
            "{text}\n\nDownload the images you use into /mnt/okcomputer/ (e.g. with curl when the sandbox has network) rather than hot-linking them."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markup_is_stripped_from_snippets() {
        assert_eq!(
            strip_markup("<strong>Rust</strong> &amp; <em>actix</em>"),
            "Rust & actix"
        );
        assert_eq!(strip_markup("a < b"), "a ");
    }

    #[test]
    fn results_are_numbered_across_queries_without_duplicates() {
        let hit = |url: &str| WebResult {
            title: format!("T {url}"),
            url: url.into(),
            snippet: "s".into(),
        };
        let text = render_web(vec![
            ("one".into(), Ok(vec![hit("https://a"), hit("https://b")])),
            ("two".into(), Ok(vec![hit("https://b"), hit("https://c")])),
            (
                "three".into(),
                Err(ToolError::RespondToModel("boom".into())),
            ),
        ])
        .unwrap();
        assert!(
            text.contains("[1] T https://a") && text.contains("[3] T https://c"),
            "{text}"
        );
        assert_eq!(text.matches("T https://b").count(), 1, "{text}");
        assert!(text.contains("(failed: boom)"));
        let only_errors = render_web(vec![(
            "x".into(),
            Err(ToolError::RespondToModel("down".into())),
        )]);
        assert_eq!(only_errors, Err(ToolError::RespondToModel("down".into())));
    }

    #[test]
    fn provider_answers_are_read() {
        let searx = json!([{"title": "Pic", "img_src": "https://i/1.png", "url": "https://p/1", "resolution": "800 x 600"}, {"title": "no src"}]);
        assert_eq!(
            searxng_images(&searx),
            [ImageResult {
                title: "Pic".into(),
                image_url: "https://i/1.png".into(),
                page_url: "https://p/1".into(),
                size: Some("800x600".into()),
            }]
        );
        let brave = json!([{"title": "B", "url": "https://p", "properties": {"url": "https://i/b.jpg", "width": 10, "height": 20}}]);
        assert_eq!(brave_images(&brave)[0].size.as_deref(), Some("10x20"));
        let web = json!([{"title": "<b>A</b>", "url": "https://a", "description": "d"}]);
        assert_eq!(web_results(&web, "description")[0].title, "A");
    }
}
