//! `mshtools-slides_generator`: HTML slides (one `<section>` each) to a PowerPoint file.
//!
//! Each section becomes a 16:9 slide: its first heading is the title, its list items (or,
//! without a list, its paragraphs) the bullets, and its `<img>` pictures from the workspace
//! (png, jpeg, gif) are placed on the right. The .pptx is written by hand as Office Open XML
//! (one master, one layout, one theme), so nothing outside this server is needed. The reply's
//! `ppt_slides` carries the outline and the file is listed as an artifact.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{files, save_artifact, ToolContext, ToolError, ToolOutput, TypedTool};
use crate::protocol::{size_display, Slide};
use crate::workspace::{ModelPath, Workspace, MOUNT};
use html::parse_deck;
use pptx::build_pptx;

mod html;
mod pptx;

const MAX_SLIDES: usize = 200;
const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

/// One slide as read from its `<section>`.
#[derive(Debug, Clone, PartialEq, Default)]
struct SlideSpec {
    title: String,
    bullets: Vec<String>,
    images: Vec<String>,
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
            .and_then(|path| workspace.open_file(&path).map_err(|e| e.to_string()))
            .and_then(|file| {
                let mut data = Vec::new();
                file.take(MAX_IMAGE_BYTES + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| e.to_string())?;
                if data.len() as u64 > MAX_IMAGE_BYTES {
                    return Err(format!("larger than {}", size_display(MAX_IMAGE_BYTES)));
                }
                Ok(data)
            })
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

#[derive(Deserialize)]
pub struct Args {
    file_path: String,
    content: String,
}

impl TypedTool for SlidesGenerator {
    const NAME: &'static str = "mshtools-slides_generator";
    type Args = Args;

    async fn run(&self, args: Args, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        if !args.file_path.to_ascii_lowercase().ends_with(".pptx") {
            return Err(ToolError::RespondToModel(
                "file_path must end in .pptx".into(),
            ));
        }
        let target = ModelPath::parse(&args.file_path)?;
        let specs = parse_deck(&args.content);
        if specs.is_empty() {
            return Err(ToolError::RespondToModel(
                "no <section> found: write one <section> element per slide".into(),
            ));
        }
        if specs.len() > MAX_SLIDES {
            return Err(ToolError::RespondToModel(format!(
                "at most {MAX_SLIDES} slides per deck"
            )));
        }
        let shown = target.canonical();
        let deck_dir = Path::new(&shown)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| MOUNT.to_string());
        // Pictures are read and the deck zipped on the blocking pool.
        let (workspace, deck) = (ctx.workspace.clone(), specs.clone());
        let (bytes, pictures, notes) = files::blocking(move || {
            let mut notes = Vec::new();
            let pictures: Vec<Vec<Picture>> = deck
                .iter()
                .map(|spec| load_pictures(&workspace, &deck_dir, &spec.images, &mut notes))
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
                bullets: s.bullets.clone(),
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
                "{}. {title} — {} bullets, {} pictures\n",
                i + 1,
                spec.bullets.len(),
                pictures[i]
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
