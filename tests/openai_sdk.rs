//! The official `openai` Python SDK (installed by `.ci/run` into `target/python-pptx`)
//! against `/v1`: models, completions, streaming with `include_usage`, the error envelope,
//! no automatic retry of a failed turn, and no second copy of a message sent again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Reply, TestApp};
use okcvm::auth::{users, Role};

#[tokio::test]
async fn the_openai_sdk_works_against_v1() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python-pptx/bin/python");
    let has_sdk = std::process::Command::new(python)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_sdk,
        "the openai SDK is needed (.ci/run installs it into target/python-pptx)"
    );
    let mut token = None;
    let app = TestApp::spawn_with(|config| {
        config.auth.mode = okcvm::config::AuthMode::Token;
        token = Some(users::add(&config.auth.users_file, "sdk", Role::User).unwrap());
        config.llm.max_retries = 0;
    });
    let token = token.unwrap();
    app.model.script(
        "SDK-FAIL",
        vec![Reply::Status(500, None), Reply::text("recovered")],
    );
    let output = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/openai_sdk.py"
        ))
        .arg(format!("{}/v1", app.url))
        .arg(&token)
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    // The SDK did not retry the failed turn (x-should-retry: false): one model call for it,
    // one for the message sent again.
    assert_eq!(app.model.requests_for("SDK-FAIL").len(), 2, "{said}");
    // The history has the message once, answered.
    let boot: serde_json::Value = app
        .http
        .get(format!("{}/api/session/boot", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let copies = boot["vm_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry.to_string().contains("SDK-FAIL once"))
        .count();
    assert_eq!(copies, 1, "{}", boot["vm_history"]);
}
