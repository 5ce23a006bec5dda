//! `mshtools-slides_generator` through the agent: HTML slides (`.ppt-slide` elements or
//! `<section>`s, inline or in a workspace file) become a .pptx with titles, nested bullets,
//! tables, workspace pictures and speaker notes; the reply carries the outline and the file.
//! The deck is opened with python-pptx (`PPTX_PYTHON`, else `target/python-pptx` made by
//! `.ci/run`, else `python3`) to prove it is a real PowerPoint file. A manifest in the seed's
//! `{"functions": [...]}` shape loads through `[spec] tools` and drives the same tool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mock_apis::PNG_1X1;
use common::{tool_messages, Reply, TestApp};
use serde_json::json;

const DECK: &str = r#"
<section><h1>Fruit market 2026</h1><p>Quarterly review</p></section>
<section><h2>Numbers</h2><ul><li>Apples up 10%</li><li>Pears &amp; plums flat</li></ul>
  <img src="pics/dot.png"><img src="https://example.com/remote.png"></section>
<section><h2>Next steps</h2><ol><li>Open a second stand</li></ol></section>
"#;

#[tokio::test]
async fn html_sections_become_a_real_powerpoint_deck() {
    let app = TestApp::spawn();
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_1X1)
        .unwrap();
    let pics = app.workspace_of("presenter").join("output/pics");
    std::fs::create_dir_all(&pics).unwrap();
    std::fs::write(pics.join("dot.png"), png).unwrap();
    app.model.script(
        "DECK",
        vec![
            Reply::tool(
                "mshtools-slides_generator",
                json!({"file_path": "/mnt/okcomputer/output/market.pptx", "content": DECK}),
            ),
            Reply::tool(
                "mshtools-slides_generator",
                json!({"file_path": "/mnt/okcomputer/output/empty.pptx", "content": "<h1>no sections</h1>"}),
            ),
            Reply::tool("mshtools-slides_generator", json!({})),
            Reply::text("deck ready"),
        ],
    );
    let (status, reply) = app.chat_json("presenter", "DECK please").await;
    assert_eq!(status, 200, "{reply}");
    let results = tool_messages(app.model.requests_for("DECK").last().unwrap());
    assert!(
        results[0].contains("Created /mnt/okcomputer/output/market.pptx")
            && results[0].contains("3 slides"),
        "{}",
        results[0]
    );
    assert!(
        results[0].contains("2. Numbers — 2 bullets, 0 tables, 1 pictures"),
        "{}",
        results[0]
    );
    assert!(
        results[0].contains("remote.png: only images saved in the workspace"),
        "{}",
        results[0]
    );
    assert!(results[1].contains("no slide found"), "{}", results[1]);
    assert!(results[2].contains("give file_path"), "{}", results[2]);

    let slides = reply["ppt_slides"].as_array().unwrap();
    assert_eq!(slides.len(), 3);
    assert_eq!(slides[1]["title"], "Numbers");
    assert_eq!(
        slides[1]["bullets"],
        json!(["Apples up 10%", "Pears & plums flat"])
    );
    let deck = &reply["artifacts"][0];
    assert_eq!(deck["name"], "market.pptx");
    let download = app
        .http
        .get(format!(
            "{}{}&client_id=presenter",
            app.url,
            deck["url"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let bytes = download.bytes().await.unwrap();
    assert_eq!(&bytes[..2], b"PK");

    let stdout = read_with_python_pptx(&app.workspace_of("presenter").join("output/market.pptx"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        lines[0],
        "Fruit market 2026 | Quarterly review [pictures=0]"
    );
    assert_eq!(
        lines[1],
        "Numbers | Apples up 10% / Pears & plums flat [pictures=1]"
    );
    assert_eq!(lines[2], "Next steps | Open a second stand [pictures=0]");
}

/// Each slide of the deck as python-pptx reads it: texts (with bullet levels), pictures,
/// tables and notes, one line per slide.
fn read_with_python_pptx(file: &std::path::Path) -> String {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python-pptx/bin/python");
    let python = std::env::var("PPTX_PYTHON").unwrap_or_else(|_| {
        if std::path::Path::new(venv).exists() {
            venv.into()
        } else {
            "python3".into()
        }
    });
    let script = r#"
import sys
from pptx import Presentation
deck = Presentation(sys.argv[1])
for slide in deck.slides:
    texts = []
    for shape in slide.shapes:
        if shape.has_text_frame:
            texts.append(" / ".join(
                ("  " * p.level) + "".join(r.text for r in p.runs) for p in shape.text_frame.paragraphs))
    pictures = sum(1 for shape in slide.shapes if shape.shape_type == 13)
    line = " | ".join(texts) + f" [pictures={pictures}]"
    for shape in slide.shapes:
        if shape.has_table:
            rows = [";".join(cell.text for cell in row.cells) for row in shape.table.rows]
            line += " [table=" + "/".join(rows) + "]"
    if slide.has_notes_slide:
        line += " [notes=" + slide.notes_slide.notes_text_frame.text.replace("\n", "/") + "]"
    print(line)
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python-pptx could not read the deck (.ci/run installs it): {stderr}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const TALK: &str = r#"<!doctype html><html><head><style>.ppt-slide{width:1280px}</style></head><body>
<div class="ppt-slide"><h1>Stand plan</h1>
  <ul><li>Fruit<ul><li>Apples &amp; pears</li></ul></li><li>Vegetables</li></ul>
  <img src="img/dot.png">
  <aside class="notes">Welcome everyone.</aside></div>
<div class="ppt-slide"><h2>Prices</h2>
  <table><tr><th>Item</th><th>Price</th></tr><tr><td>Apple</td><td>0.40</td></tr></table></div>
</body></html>"#;

#[tokio::test]
async fn a_seed_manifest_turns_an_html_file_into_a_deck_with_tables_pictures_and_notes() {
    // The manifest in the seed's shape: {"functions": [bare function objects]}.
    let builtin: serde_json::Value =
        serde_json::from_str(include_str!("../spec/tools.json")).unwrap();
    let functions: Vec<serde_json::Value> = builtin
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"].clone())
        .collect();
    let manifest_dir = tempfile::tempdir().unwrap();
    let manifest = manifest_dir.path().join("seed_tools.json");
    std::fs::write(&manifest, json!({ "functions": functions }).to_string()).unwrap();
    let app = TestApp::spawn_with(|c| c.spec.tools = Some(manifest.clone()));
    let (_, info) = app.get("/api/session/info", "talker").await;
    assert_eq!(info["tools"].as_array().unwrap().len(), 24, "{info}");

    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_1X1)
        .unwrap();
    let talk = app.workspace_of("talker").join("output/talk");
    std::fs::create_dir_all(talk.join("img")).unwrap();
    std::fs::write(talk.join("img/dot.png"), png).unwrap();
    std::fs::write(talk.join("deck.html"), TALK).unwrap();
    app.model.script(
        "TALK",
        vec![
            Reply::tool(
                "mshtools-slides_generator",
                json!({"file_path": "/mnt/okcomputer/output/talk/deck.html"}),
            ),
            Reply::tool(
                "mshtools-slides_generator",
                json!({"content": "<div class=\"ppt-slide\"><h1>Hello, World!</h1><p>hi</p></div>"}),
            ),
            Reply::text("done"),
        ],
    );
    let (status, reply) = app.chat_json("talker", "TALK please").await;
    assert_eq!(status, 200, "{reply}");
    let results = tool_messages(app.model.requests_for("TALK").last().unwrap());
    assert!(
        results[0].contains("Created /mnt/okcomputer/output/talk/deck.pptx")
            && results[0].contains("1. Stand plan — 3 bullets, 0 tables, 1 pictures, notes")
            && results[0].contains("2. Prices — 0 bullets, 1 tables, 0 pictures"),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("Created /mnt/okcomputer/output/hello-world.pptx"),
        "{}",
        results[1]
    );
    let stdout = read_with_python_pptx(&talk.join("deck.pptx"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "Stand plan | Fruit /   Apples & pears / Vegetables [pictures=1] [notes=Welcome everyone.]",
            "Prices [pictures=0] [table=Item;Price/Apple;0.40]",
        ],
        "{stdout}"
    );
}
