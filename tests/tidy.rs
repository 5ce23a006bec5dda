//! The shape of the code, checked: every file under `src/` opens with its `//!` header and
//! stays within 600 lines; actix lives in `runtime/` and actix-web in `http/` (the composition
//! root `lib.rs` wires both); and each top-level module imports only from the layers below
//! it, in the order the README's code map gives. Test code (`#[cfg(test)]` to the end of a
//! file, and `tests.rs` files) may reach further.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The layers, lowest first; a module uses only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    &["protocol", "config", "blocking"],
    &["capped_body", "auth", "spec", "workspace", "permissions"],
    &["llm"],
    &["store"],
    &["endpoints"],
    &["tools"],
    &["agent"],
    &["metrics"],
    &["runtime"],
    &["client"],
    &["http"],
];
const MAX_LINES: usize = 600;

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// `src/<module>/…` or `src/<module>.rs` → `<module>`; `None` for `lib.rs` and `main.rs`.
fn module_of(path: &Path) -> Option<String> {
    let relative = path
        .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let module = first.trim_end_matches(".rs").to_string();
    (!matches!(module.as_str(), "lib" | "main")).then_some(module)
}

/// The file's code without its tests.
fn production_code(path: &Path, text: &str) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// The top-level modules `code` names through `crate::…` (also inside `crate::{…}`).
fn crate_imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

#[test]
fn every_source_file_has_a_header_and_stays_short() {
    let mut problems = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: no //! header saying what it owns",
                path.display()
            ));
        }
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!(
                "{}: {lines} lines (at most {MAX_LINES})",
                path.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn actix_stays_in_the_runtime_and_actix_web_in_http() {
    let mut problems = Vec::new();
    for path in sources() {
        let module = module_of(&path);
        let code = production_code(&path, &std::fs::read_to_string(&path).unwrap());
        let uses = |name: &str| {
            code.contains(&format!("{name}::")) || code.contains(&format!("use {name};"))
        };
        let composition_root = module.is_none();
        let actix_allowed = composition_root || module.as_deref() == Some("runtime");
        let web_allowed = composition_root || module.as_deref() == Some("http");
        if uses("actix") && !actix_allowed {
            problems.push(format!(
                "{}: imports actix outside runtime/",
                path.display()
            ));
        }
        for web in [
            "actix_web",
            "actix_web_lab",
            "actix_multipart",
            "actix_cors",
        ] {
            if uses(web) && !web_allowed {
                problems.push(format!("{}: imports {web} outside http/", path.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn modules_import_only_from_the_layers_below() {
    let mut problems = Vec::new();
    for path in sources() {
        let Some(module) = module_of(&path) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "{}: module {module} has no layer in tests/tidy.rs (and the README)",
                path.display()
            ));
            continue;
        };
        let code = production_code(&path, &std::fs::read_to_string(&path).unwrap());
        for imported in crate_imports(&code) {
            if imported == module {
                continue;
            }
            match layer_of(&imported) {
                Some(layer) if layer < own => {}
                Some(_) => problems.push(format!(
                    "{}: {module} imports {imported}, which is not below it",
                    path.display()
                )),
                // Items of the crate root (`crate::build_services`) belong to the top.
                None => problems.push(format!(
                    "{}: {module} imports crate::{imported} from the composition root",
                    path.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_plain_imports() {
    let code = "use crate::{agent::X, llm};\nlet y = crate::store::Store::open();";
    assert_eq!(crate_imports(code), ["agent", "llm", "store"]);
    assert_eq!(
        production_code(Path::new("src/a.rs"), "a\n#[cfg(test)]\nuse crate::http;"),
        "a\n"
    );
}

/// `status: 409`-style literals or `StatusCode` in `code`.
fn chooses_a_status(code: &str) -> bool {
    code.contains("StatusCode")
        || code.match_indices("status: ").any(|(at, found)| {
            let rest = &code[at + found.len()..];
            rest.len() >= 3 && rest.as_bytes()[..3].iter().all(u8::is_ascii_digit)
        })
}

#[test]
fn only_http_chooses_status_codes() {
    let mut problems = Vec::new();
    for path in sources() {
        if module_of(&path).as_deref() == Some("http") {
            continue;
        }
        let code = production_code(&path, &std::fs::read_to_string(&path).unwrap());
        if chooses_a_status(&code) {
            problems.push(format!(
                "{}: picks an HTTP status outside http/ (name the failure in a closed enum instead)",
                path.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(chooses_a_status("ChatEvent::Error { status: 409 }"));
    assert!(!chooses_a_status("Status { status: u16 }"));
}
