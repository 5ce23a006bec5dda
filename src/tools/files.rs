//! `mshtools-read_file`, `mshtools-write_file`, `mshtools-edit_file`: text files in the workspace.
//!
//! Every file is opened through the workspace's confined opener, so nothing outside
//! `/mnt/okcomputer/` (after symlinks, even ones swapped in meanwhile) is read or written, and
//! only regular files are. File I/O runs on the blocking pool. Results name files by their
//! model path, never by host path.

use std::io::{BufRead, BufReader, Read, Seek, Write as _};
use std::path::Path;

use serde::Deserialize;

use super::{ToolContext, ToolError, ToolOutput, TypedTool};
use crate::protocol::cap_line;
use crate::workspace::{ModelPath, Workspace, Write};

/// Lines returned when the model gives no `limit`.
const DEFAULT_LINE_LIMIT: usize = 1000;
/// Characters of one line shown; minified files would otherwise flood the context.
const MAX_LINE_CHARS: usize = 2000;
/// Bytes sniffed to tell text from binary.
const SNIFF_BYTES: usize = 8192;
/// Largest image sent to a vision model (base64 grows it by a third).
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Largest file `edit_file` loads into memory.
const MAX_EDIT_BYTES: u64 = 20 * 1024 * 1024;

pub struct ReadFile;
pub struct WriteFile;
pub struct EditFile;

#[derive(Deserialize)]
pub struct ReadArgs {
    file_path: String,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Deserialize)]
pub struct WriteArgs {
    file_path: String,
    content: String,
    #[serde(default)]
    append: bool,
}

#[derive(Deserialize)]
pub struct EditArgs {
    file_path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
}

impl TypedTool for ReadFile {
    const NAME: &'static str = "mshtools-read_file";
    type Args = ReadArgs;

    async fn run(&self, args: ReadArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let workspace = ctx.workspace.clone();
        let vision = ctx.config.vision;
        blocking(move || read_file(&workspace, &args, vision)).await
    }
}

impl TypedTool for WriteFile {
    const NAME: &'static str = "mshtools-write_file";
    type Args = WriteArgs;

    async fn run(&self, args: WriteArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let workspace = ctx.workspace.clone();
        blocking(move || write_file(&workspace, &args)).await
    }
}

impl TypedTool for EditFile {
    const NAME: &'static str = "mshtools-edit_file";
    type Args = EditArgs;

    async fn run(&self, args: EditArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let workspace = ctx.workspace.clone();
        blocking(move || edit_file(&workspace, &args)).await
    }
}

/// Runs file work on the blocking pool so the session's thread never waits on disk.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    crate::blocking::run(crate::blocking::FILE_WORK, work)
        .await
        .map_err(|e| ToolError::RespondToModel(format!("the file operation failed: {e}")))?
}

fn read_file(
    workspace: &Workspace,
    args: &ReadArgs,
    vision: bool,
) -> Result<ToolOutput, ToolError> {
    let path = ModelPath::parse(&args.file_path)?;
    let shown = path.shown.as_str();
    if let Some(kind) = image_kind(&path.relative) {
        return read_image(workspace.open_file(&path)?, shown, kind, vision);
    }
    let offset = match args.offset {
        None => 1,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            return Err(ToolError::RespondToModel(format!(
                "offset must be 1 or more (it is the first line to show), got {n}"
            )))
        }
    };
    let limit = match args.limit {
        None => DEFAULT_LINE_LIMIT,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            return Err(ToolError::RespondToModel(format!(
                "limit must be 1 or more, got {n}"
            )))
        }
    };
    let file = workspace.open_file(&path)?;
    let mut reader = BufReader::new(file);
    let sniff = reader.fill_buf().map_err(|e| io_error("read", shown, &e))?;
    if sniff[..sniff.len().min(SNIFF_BYTES)].contains(&0) {
        return Err(ToolError::RespondToModel(format!(
            "{shown} is a binary file; inspect it with mshtools-shell (e.g. `file`, `xxd | head`) or mshtools-ipython"
        )));
    }
    if sniff.is_empty() {
        return Ok(ToolOutput::text(format!("{shown} is empty")));
    }
    let mut out = String::new();
    let mut total = 0usize;
    let mut shown_lines = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error("read", shown, &e))?;
        if read == 0 {
            break;
        }
        total += 1;
        if total < offset || shown_lines >= limit {
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        out.push_str(&format!("{total:>6}\t{}\n", cap_line(line, MAX_LINE_CHARS)));
        shown_lines += 1;
    }
    if offset > total {
        return Err(ToolError::RespondToModel(format!(
            "{shown} has {total} lines; offset {offset} is past the end"
        )));
    }
    let last = offset + shown_lines - 1;
    if last < total {
        out.push_str(&format!(
            "\n[showing lines {offset}-{last} of {total}; use offset={} to read on]\n",
            last + 1
        ));
    }
    Ok(ToolOutput::text(out))
}

/// `(mime type, label)` of the image formats a vision model accepts, by extension.
fn image_kind(path: &Path) -> Option<(&'static str, &'static str)> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some(("image/png", "PNG")),
        "jpg" | "jpeg" => Some(("image/jpeg", "JPEG")),
        "gif" => Some(("image/gif", "GIF")),
        "webp" => Some(("image/webp", "WebP")),
        _ => None,
    }
}

/// An image: attached for a vision model, described otherwise.
fn read_image(
    file: std::fs::File,
    shown: &str,
    (mime, label): (&str, &str),
    vision: bool,
) -> Result<ToolOutput, ToolError> {
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_BYTES as u64 * 4)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", shown, &e))?;
    let Ok(size) = imagesize::blob_size(&bytes) else {
        return Err(ToolError::RespondToModel(format!(
            "{shown} has an image extension but is not a readable {label} image"
        )));
    };
    let description = format!(
        "{shown} is a {label} image, {}x{} pixels, {}",
        size.width,
        size.height,
        crate::protocol::size_display(bytes.len() as u64)
    );
    if !vision {
        return Ok(ToolOutput::text(format!(
            "{description}. The model endpoint is not set up for images ([tools] vision = true in okcvm.toml), so it cannot be shown; inspect it with mshtools-ipython (e.g. PIL) if you need its content."
        )));
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Ok(ToolOutput::text(format!(
            "{description}; it is too large to show (limit {}), so resize it first (e.g. with PIL in mshtools-ipython)",
            crate::protocol::size_display(MAX_IMAGE_BYTES as u64)
        )));
    }
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Ok(ToolOutput {
        text: format!("{description}; the image is attached below."),
        images: vec![format!("data:{mime};base64,{data}")],
    })
}

fn write_file(workspace: &Workspace, args: &WriteArgs) -> Result<ToolOutput, ToolError> {
    let path = ModelPath::parse(&args.file_path)?;
    let how = if args.append {
        Write::Append
    } else {
        Write::Truncate
    };
    let mut file = workspace.create_file(&path, how)?;
    file.write_all(args.content.as_bytes())
        .map_err(|e| io_error("write", &path.shown, &e))?;
    let verb = if args.append { "appended" } else { "wrote" };
    Ok(ToolOutput::text(format!(
        "{verb} {} bytes to {}",
        args.content.len(),
        path.shown
    )))
}

fn edit_file(workspace: &Workspace, args: &EditArgs) -> Result<ToolOutput, ToolError> {
    let path = ModelPath::parse(&args.file_path)?;
    let shown = path.shown.as_str();
    if args.old_string.is_empty() {
        return Err(ToolError::RespondToModel(
            "old_string must not be empty; use mshtools-write_file to create a file".into(),
        ));
    }
    if args.old_string == args.new_string {
        return Err(ToolError::RespondToModel(
            "old_string and new_string are the same; nothing to change".into(),
        ));
    }
    let mut file = workspace
        .open()?
        .open_file_for_update(&path.relative, shown)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_EDIT_BYTES {
        return Err(ToolError::RespondToModel(format!(
            "{shown} is {size} bytes, too large to edit in place; use mshtools-shell (sed) instead"
        )));
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_EDIT_BYTES)
        .read_to_string(&mut text)
        .map_err(|_| {
            ToolError::RespondToModel(format!("{shown} is not UTF-8 text; it cannot be edited"))
        })?;
    let count = text.matches(&args.old_string).count();
    let updated = match (count, args.replace_all) {
        (0, _) => {
            return Err(ToolError::RespondToModel(format!(
                "old_string was not found in {shown}; read the file and copy the text exactly, whitespace included"
            )))
        }
        (1, _) | (_, true) => text.replace(&args.old_string, &args.new_string),
        (n, false) => {
            return Err(ToolError::RespondToModel(format!(
                "old_string appears {n} times in {shown}; include more surrounding text to make it unique, or set replace_all to true"
            )))
        }
    };
    // The same descriptor is rewritten: the name cannot be swapped between read and write.
    file.set_len(0)
        .and_then(|()| file.seek(std::io::SeekFrom::Start(0)).map(drop))
        .and_then(|()| file.write_all(updated.as_bytes()))
        .map_err(|e| io_error("write", shown, &e))?;
    let noun = if count == 1 {
        "occurrence"
    } else {
        "occurrences"
    };
    Ok(ToolOutput::text(format!(
        "replaced {count} {noun} in {shown}"
    )))
}

fn io_error(action: &str, shown: &str, error: &std::io::Error) -> ToolError {
    let reason = match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => error.to_string(),
    };
    ToolError::RespondToModel(format!("cannot {action} {shown}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path().join("ws"));
        ws.ensure().unwrap();
        (dir, ws)
    }

    fn write(
        ws: &Workspace,
        path: &str,
        content: &str,
        append: bool,
    ) -> Result<ToolOutput, ToolError> {
        write_file(
            ws,
            &WriteArgs {
                file_path: path.into(),
                content: content.into(),
                append,
            },
        )
    }

    fn read(
        ws: &Workspace,
        path: &str,
        offset: Option<i64>,
        limit: Option<i64>,
    ) -> Result<String, ToolError> {
        read_file(
            ws,
            &ReadArgs {
                file_path: path.into(),
                offset,
                limit,
            },
            false,
        )
        .map(|o| o.text)
    }

    fn edit(ws: &Workspace, old: &str, new: &str, all: bool) -> Result<ToolOutput, ToolError> {
        edit_file(
            ws,
            &EditArgs {
                file_path: "/mnt/okcomputer/f.txt".into(),
                old_string: old.into(),
                new_string: new.into(),
                replace_all: all,
            },
        )
    }

    #[test]
    fn write_append_read_with_numbers() {
        let (_d, ws) = workspace();
        write(&ws, "/mnt/okcomputer/sub/a.txt", "one\ntwo\n", false).unwrap();
        write(&ws, "/mnt/okcomputer/sub/a.txt", "three\n", true).unwrap();
        assert_eq!(
            read(&ws, "/mnt/okcomputer/sub/a.txt", None, None).unwrap(),
            "     1\tone\n     2\ttwo\n     3\tthree\n"
        );
        let window = read(&ws, "sub/a.txt", Some(2), Some(1)).unwrap();
        assert!(window.starts_with("     2\ttwo\n"));
        assert!(window.contains("use offset=3"));
        assert!(read(&ws, "sub/a.txt", Some(9), None)
            .unwrap_err()
            .to_string()
            .contains("past the end"));
    }

    #[test]
    fn binary_missing_and_outside_paths_are_model_errors() {
        let (_d, ws) = workspace();
        std::fs::write(ws.root().join("b.bin"), [0u8, 1, 2]).unwrap();
        assert!(read(&ws, "b.bin", None, None)
            .unwrap_err()
            .to_string()
            .contains("binary"));
        assert!(read(&ws, "nope.txt", None, None)
            .unwrap_err()
            .to_string()
            .contains("no such file"));
        assert!(read(&ws, "/etc/passwd", None, None)
            .unwrap_err()
            .to_string()
            .contains("outside"));
        assert!(write(&ws, "/tmp/x", "x", false).is_err());
    }

    #[test]
    fn images_are_attached_for_vision_and_described_otherwise() {
        let (_d, ws) = workspace();
        // A 1x1 PNG.
        let png: &[u8] = &[
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52,
            0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49,
            0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0,
            0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
        ];
        std::fs::write(ws.root().join("dot.png"), png).unwrap();
        let args = ReadArgs {
            file_path: "dot.png".into(),
            offset: None,
            limit: None,
        };
        let described = read_file(&ws, &args, false).unwrap();
        assert!(
            described
                .text
                .starts_with("dot.png is a PNG image, 1x1 pixels"),
            "{}",
            described.text
        );
        assert!(described.images.is_empty());
        let attached = read_file(&ws, &args, true).unwrap();
        assert_eq!(attached.images.len(), 1);
        assert!(attached.images[0].starts_with("data:image/png;base64,iVBOR"));
        std::fs::write(ws.root().join("fake.png"), "not an image").unwrap();
        let fake = ReadArgs {
            file_path: "fake.png".into(),
            offset: None,
            limit: None,
        };
        assert!(read_file(&ws, &fake, true).is_err());
    }

    #[test]
    fn edit_requires_a_unique_match_unless_replace_all() {
        let (_d, ws) = workspace();
        write(&ws, "f.txt", "a b a", false).unwrap();
        assert!(edit(&ws, "a", "c", false)
            .unwrap_err()
            .to_string()
            .contains("2 times"));
        assert!(edit(&ws, "zzz", "c", false)
            .unwrap_err()
            .to_string()
            .contains("not found"));
        edit(&ws, "b", "B", false).unwrap();
        edit(&ws, "a", "c", true).unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.root().join("f.txt")).unwrap(),
            "c B c"
        );
    }
}
