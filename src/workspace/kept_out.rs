//! Files kept out of snapshots for their size, remembered in the repository's `info/exclude`
//! (after the `[workspace] ignore` patterns) so that git treats them as ignored: a restore or
//! a branch switch leaves them where they are instead of deleting them as untracked, and
//! `workspace_state.not_in_snapshots` names them. Each snapshot checks the list again: a file
//! that shrank below the limit (or is gone) leaves it and is snapshotted as usual.

use std::path::{Path, PathBuf};

/// Separates the configured patterns from the remembered files.
const MARKER: &str =
    "# larger than the snapshot limit: kept out of snapshots, left alone by restore";

/// The exclude file: the ignore patterns, then the marker and one anchored path per line.
pub fn render(ignore: &[String], kept_out: &[PathBuf]) -> String {
    let mut text = ignore.join("\n") + "\n";
    if !kept_out.is_empty() {
        text.push_str(MARKER);
        text.push('\n');
        for path in kept_out {
            if let Some(pattern) = pattern_of(path) {
                text.push_str(&pattern);
                text.push('\n');
            }
        }
    }
    text
}

/// The remembered files of an exclude file (relative paths).
pub fn parse(exclude: &str) -> Vec<PathBuf> {
    exclude
        .lines()
        .skip_while(|line| *line != MARKER)
        .skip(1)
        .filter_map(|line| line.strip_prefix('/'))
        .map(unescape)
        .map(PathBuf::from)
        .collect()
}

/// `/path` with gitignore's special characters escaped; `None` for a path a pattern cannot
/// name (a line break in it).
fn pattern_of(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    if text.contains(['\n', '\r']) {
        return None;
    }
    let mut pattern = String::from("/");
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '!' | '#' | ' ') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    Some(pattern)
}

fn unescape(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_out_files_round_trip_through_the_exclude_file() {
        let ignore = vec!["node_modules/".to_string(), "*.pyc".to_string()];
        let kept = vec![
            PathBuf::from("upload/big video.mp4"),
            PathBuf::from("data/[x]*?!#.bin"),
        ];
        let text = render(&ignore, &kept);
        assert!(text.starts_with("node_modules/\n*.pyc\n"));
        assert!(text.contains("/upload/big\\ video.mp4\n"), "{text}");
        assert_eq!(parse(&text), kept);
        assert_eq!(parse(&render(&ignore, &[])), Vec::<PathBuf>::new());
        assert_eq!(
            render(&ignore, &[PathBuf::from("a\nb")]),
            render(&ignore, &[]) + MARKER + "\n"
        );
    }
}
