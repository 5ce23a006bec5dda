//! `mshtools-slides_generator`: HTML slides to a PowerPoint file, as the seed's manifest
//! defines the tool: `file_path` is an HTML file of the workspace to convert, or `content`
//! the HTML itself (a `file_path` ending in `.pptx` with `content` still names the deck).
//!
//! Each slide (`html.rs`: `.ppt-slide` elements, else `<section>`s) becomes a 16:9 slide: its
//! title, bullets (nested lists indented), tables as PowerPoint tables, `<img>` pictures from
//! the workspace (png, jpeg, gif; relative paths resolve against the HTML file's folder) on
//! the right, and speaker notes. The .pptx is written by hand as Office Open XML (`pptx.rs`),
//! so nothing outside this server is needed. The deck goes next to the HTML file (or under
//! `/mnt/okcomputer/output/`); the reply's `ppt_slides` carries the outline and the file is
//! listed as an artifact.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{files, save_artifact, ToolContext, ToolError, ToolOutput, TypedTool};
use crate::protocol::{size_display, Slide};
use crate::workspace::{ModelPath, Workspace, MOUNT};
use html::{check_nesting, parse_deck};
use pptx::build_pptx;

mod html;
mod pptx;

const MAX_SLIDES: usize = 200;
const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;
/// The largest HTML file converted.
const MAX_HTML_BYTES: u64 = 2 * 1024 * 1024;

/// One slide as read from the HTML.
#[derive(Debug, Clone, PartialEq, Default)]
struct SlideSpec {
    title: String,
    bullets: Vec<Bullet>,
    /// Each table's rows of cell texts.
    tables: Vec<Vec<Vec<String>>>,
    images: Vec<String>,
    /// Speaker notes (`<aside class="notes">`).
    notes: String,
}

/// One line of a slide's text; `level` 0 is a top-level bullet.
#[derive(Debug, Clone, PartialEq, Default)]
struct Bullet {
    text: String,
    level: u8,
}

/// A picture ready to embed.
struct Picture {
    data: Vec<u8>,
    extension: &'static str,
    width: i64,
    height: i64,
}

/// Loads the pictures a slide names, from the workspace; what cannot be used is reported.
fn load_pictures(
    workspace: &Workspace,
    deck_dir: &str,
    sources: &[String],
    notes: &mut Vec<String>,
) -> Vec<Picture> {
    let mut pictures = Vec::new();
    for src in sources.iter().take(3) {
        let src = src.trim();
        if src.starts_with("http://") || src.starts_with("https://") || src.starts_with("data:") {
            notes.push(format!(
                "{src}: only images saved in the workspace are embedded; download it first"
            ));
            continue;
        }
        let model_path = if src.starts_with('/') {
            src.to_string()
        } else {
            format!(
                "{}/{}",
                deck_dir.trim_end_matches('/'),
                src.trim_start_matches("./")
            )
        };
        let loaded = ModelPath::parse(&model_path)
            .map_err(|e| e.to_string())
            .and_then(|path| read_capped(workspace, &path, MAX_IMAGE_BYTES))
            .and_then(|data| {
                let extension = match imagesize::image_type(&data) {
                    Ok(imagesize::ImageType::Png) => "png",
                    Ok(imagesize::ImageType::Jpeg) => "jpeg",
                    Ok(imagesize::ImageType::Gif) => "gif",
                    _ => return Err("not a png, jpeg or gif image".to_string()),
                };
                let size =
                    imagesize::blob_size(&data).map_err(|_| "unreadable image".to_string())?;
                Ok(Picture {
                    data,
                    extension,
                    width: size.width as i64,
                    height: size.height as i64,
                })
            });
        match loaded {
            Ok(picture) => pictures.push(picture),
            Err(why) => notes.push(format!("{src}: {why}")),
        }
    }
    pictures
}

pub struct SlidesGenerator;

/// The folder of a model path (the mount for a path at its top).
fn parent_of(path: &ModelPath) -> String {
    Path::new(&path.canonical())
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| MOUNT.to_string())
}

/// The bytes of the workspace file at `path`, refused when larger than `max`.
fn read_capped(workspace: &Workspace, path: &ModelPath, max: u64) -> Result<Vec<u8>, String> {
    let file = workspace.open_file(path).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if data.len() as u64 > max {
        return Err(format!("larger than {}", size_display(max)));
    }
    Ok(data)
}

/// The text of the HTML file at `path`, at most [`MAX_HTML_BYTES`].
fn read_html(workspace: &Workspace, path: &ModelPath) -> Result<String, ToolError> {
    read_capped(workspace, path, MAX_HTML_BYTES)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|why| {
            ToolError::RespondToModel(format!(
                "cannot read the HTML file {}: {why}",
                path.canonical()
            ))
        })
}

#[derive(Deserialize)]
pub struct Args {
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

/// Where the HTML comes from and where the deck goes.
enum Source {
    /// An HTML file of the workspace (its text, unless `content` was given too).
    File(ModelPath, Option<String>),
    /// HTML given inline; the deck goes to `deck` when the call named one.
    Inline(String, Option<ModelPath>),
}

impl Source {
    fn from_args(args: Args) -> Result<Self, ToolError> {
        match (args.file_path, args.content) {
            (None, None) => Err(ToolError::RespondToModel(
                "give file_path (an HTML file in the workspace) or content (the HTML)".into(),
            )),
            (Some(path), content) if path.to_ascii_lowercase().ends_with(".pptx") => {
                let content = content.ok_or_else(|| {
                    ToolError::RespondToModel(
                        "file_path names a .pptx: give the HTML file as file_path, or the HTML as content"
                            .into(),
                    )
                })?;
                Ok(Source::Inline(content, Some(ModelPath::parse(&path)?)))
            }
            (Some(path), content) => Ok(Source::File(ModelPath::parse(&path)?, content)),
            (None, Some(content)) => Ok(Source::Inline(content, None)),
        }
    }
}

/// A file name from a slide title: lowercase letters, digits and dashes.
fn slug(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "slides".to_string()
    } else {
        slug.to_string()
    }
}

/// The model path with its extension replaced by `.pptx`.
fn beside(path: &ModelPath) -> Result<ModelPath, ToolError> {
    let deck = Path::new(&path.canonical()).with_extension("pptx");
    Ok(ModelPath::parse(&deck.to_string_lossy())?)
}

impl TypedTool for SlidesGenerator {
    const NAME: &'static str = "mshtools-slides_generator";
    type Args = Args;

    async fn run(&self, args: Args, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let (html, html_dir, named) = match Source::from_args(args)? {
            Source::File(path, Some(content)) => (content, parent_of(&path), Some(beside(&path)?)),
            Source::File(path, None) => {
                let workspace = ctx.workspace.clone();
                let source = path.clone();
                let html = files::blocking(move || read_html(&workspace, &source)).await?;
                (html, parent_of(&path), Some(beside(&path)?))
            }
            Source::Inline(content, deck) => {
                let dir = deck
                    .as_ref()
                    .map_or_else(|| format!("{MOUNT}/output"), parent_of);
                (content, dir, deck)
            }
        };
        if html.len() as u64 > MAX_HTML_BYTES {
            return Err(ToolError::RespondToModel(format!(
                "the HTML is larger than {}",
                size_display(MAX_HTML_BYTES)
            )));
        }
        // Parsing a large deck takes a while: off the session's thread.
        let specs = files::blocking(move || {
            check_nesting(&html).map_err(ToolError::RespondToModel)?;
            Ok(parse_deck(&html))
        })
        .await?;
        if specs.is_empty() {
            return Err(ToolError::RespondToModel(
                "no slide found: mark each slide with class=\"ppt-slide\" (or write one <section> per slide)".into(),
            ));
        }
        if specs.len() > MAX_SLIDES {
            return Err(ToolError::RespondToModel(format!(
                "at most {MAX_SLIDES} slides per deck"
            )));
        }
        let target = match named {
            Some(target) => target,
            None => ModelPath::parse(&format!("{MOUNT}/output/{}.pptx", slug(&specs[0].title)))?,
        };
        let shown = target.canonical();
        // Pictures are read and the deck zipped on the blocking pool.
        let (workspace, deck) = (ctx.workspace.clone(), specs.clone());
        let (bytes, pictures, notes) = files::blocking(move || {
            let mut notes = Vec::new();
            let pictures: Vec<Vec<Picture>> = deck
                .iter()
                .map(|spec| load_pictures(&workspace, &html_dir, &spec.images, &mut notes))
                .collect();
            let bytes = build_pptx(&deck, &pictures, &deck[0].title)
                .map_err(|e| ToolError::Fatal(format!("cannot build the deck: {e}")))?;
            let counts: Vec<usize> = pictures.iter().map(Vec::len).collect();
            Ok((bytes, counts, notes))
        })
        .await?;
        let (shown, size) = save_artifact(ctx, &shown, bytes, "presentation").await?;
        let outline: Vec<Slide> = specs
            .iter()
            .map(|s| Slide {
                title: s.title.clone(),
                bullets: s.bullets.iter().map(|b| b.text.clone()).collect(),
            })
            .collect();
        ctx.state.slides = outline;
        let mut out = format!("Created {shown} ({size}, {} slides):\n", specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let title = if spec.title.is_empty() {
                "(no title)"
            } else {
                &spec.title
            };
            out.push_str(&format!(
                "{}. {title} — {} bullets, {} tables, {} pictures{}\n",
                i + 1,
                spec.bullets.len(),
                spec.tables.len(),
                pictures[i],
                if spec.notes.is_empty() { "" } else { ", notes" }
            ));
        }
        if !notes.is_empty() {
            out.push_str("Pictures left out:\n");
            for note in notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        Ok(ToolOutput::text(out.trim_end().to_string()))
    }
}
