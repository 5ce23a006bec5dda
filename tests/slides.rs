//! `mshtools-slides_generator` through the agent: HTML sections become a .pptx with titles,
//! bullets and workspace pictures; the reply carries the outline and the file. The deck is
//! opened with python-pptx (`PPTX_PYTHON`, else `target/python-pptx` made by `.ci/run`, else
//! `python3`) to prove it is a real PowerPoint file.

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
            Reply::tool(
                "mshtools-slides_generator",
                json!({"file_path": "/mnt/okcomputer/output/deck.key", "content": DECK}),
            ),
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
        results[0].contains("2. Numbers — 2 bullets, 1 pictures"),
        "{}",
        results[0]
    );
    assert!(
        results[0].contains("remote.png: only images saved in the workspace"),
        "{}",
        results[0]
    );
    assert!(results[1].contains("no <section> found"), "{}", results[1]);
    assert!(results[2].contains("must end in .pptx"), "{}", results[2]);

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

    let file = app.workspace_of("presenter").join("output/market.pptx");
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
    texts = [shape.text_frame.text for shape in slide.shapes if shape.has_text_frame]
    pictures = sum(1 for shape in slide.shapes if shape.shape_type == 13)
    print(" | ".join(texts).replace("\n", " / ") + f" [pictures={pictures}]")
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python-pptx could not read the deck (.ci/run installs it): {stderr}"
    );
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
