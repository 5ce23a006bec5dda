//! The OpenAPI document is the truth: schemathesis (from PyPI, installed by `.ci/run` into
//! `target/python-pptx`) generates requests from `/openapi.json`, valid and invalid, and runs
//! every check against the real server: status codes and response bodies (SSE frames too)
//! match the document, input it forbids is refused, input it allows is taken, undeclared
//! methods get 405.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_to_its_openapi_document() {
    let schemathesis = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/python-pptx/bin/schemathesis"
    );
    assert!(
        std::path::Path::new(schemathesis).exists(),
        "schemathesis is needed for this test (.ci/run installs it into target/python-pptx)"
    );
    let app = TestApp::spawn_with(|c| c.browser.enabled = false);
    let url = format!("{}/openapi.json", app.url);
    let run = tokio::process::Command::new(schemathesis)
        .args([
            "run",
            &url,
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "20261202",
            "--workers",
            "1",
            "--no-color",
            // /mcp speaks the Model Context Protocol; tests/mcp.rs checks it with rmcp's client.
            "--exclude-path",
            "/mcp",
        ])
        .current_dir(app.dir.path())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found the API and /openapi.json disagreeing:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
