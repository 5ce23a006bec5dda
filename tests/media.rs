//! The media tools through the agent, against a media API on loopback: images (base64 and
//! URL answers), speech and its voices, sound effects; endpoint errors and a missing endpoint
//! reach the model as clear results, and the files land in the workspace as artifacts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mock_apis::{MockApis, AUDIO};
use common::{tool_messages, Reply, TestApp};
use serde_json::json;

fn endpoint(media: &MockApis, model: &str) -> serde_json::Value {
    json!({"base_url": media.url, "model": model, "api_key": "sk-media-secret"})
}

#[tokio::test]
async fn media_tools_write_files_and_list_them_as_artifacts() {
    let app = TestApp::spawn();
    let media = MockApis::start();
    let (status, _) = app
        .post_json(
            "/api/config",
            "admin",
            json!({
                "image": endpoint(&media, "image-model"),
                "speech": endpoint(&media, "tts-model"),
                "sound_effects": endpoint(&media, "sfx-model"),
            }),
        )
        .await;
    assert_eq!(status, 200);
    app.model.script(
        "MEDIA",
        vec![
            Reply::tool(
                "mshtools-generate_image",
                json!({"description": "a red fox", "output_file": "/mnt/okcomputer/output/fox.png"}),
            ),
            Reply::tool(
                "mshtools-generate_image",
                json!({"description": "URL please", "output_file": "/mnt/okcomputer/output/art/linked.png"}),
            ),
            Reply::tool(
                "mshtools-generate_image",
                json!({"description": "FAIL this one", "output_file": "/mnt/okcomputer/output/no.png"}),
            ),
            Reply::tool("mshtools-get_available_voices", json!({})),
            Reply::tool(
                "mshtools-generate_speech",
                json!({"text": "Hello there", "voice_id": "af_bella", "output_path": "/mnt/okcomputer/output/hello.wav"}),
            ),
            Reply::tool(
                "mshtools-generate_sound_effects",
                json!({"description": "rain on a tin roof", "duration": 3, "output_path": "/mnt/okcomputer/output/rain.mp3"}),
            ),
            Reply::tool(
                "mshtools-generate_image",
                json!({"description": "escape", "output_file": "/mnt/okcomputer/../../x.png"}),
            ),
            Reply::text("media made"),
        ],
    );
    let (status, reply) = app.chat_json("artist", "MEDIA make things").await;
    assert_eq!(status, 200, "{reply}");
    let results = tool_messages(app.model.requests_for("MEDIA").last().unwrap());
    assert!(
        results[0].contains("1x1 image") && results[0].contains("/mnt/okcomputer/output/fox.png"),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("/mnt/okcomputer/output/art/linked.png"),
        "{}",
        results[1]
    );
    assert!(
        results[2].contains("400") && results[2].contains("content policy"),
        "{}",
        results[2]
    );
    assert!(results[3].contains("af_bella, am_adam"), "{}", results[3]);
    assert!(
        results[4].contains("wav") && results[4].contains("af_bella"),
        "{}",
        results[4]
    );
    assert!(results[5].contains("3 s sound effect"), "{}", results[5]);
    assert!(results[6].contains("outside"), "{}", results[6]);

    let workspace = app.workspace_of("artist");
    let png = std::fs::read(workspace.join("output/fox.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(workspace.join("output/art/linked.png").is_file());
    assert!(!workspace.join("output/no.png").exists());
    assert_eq!(
        std::fs::read(workspace.join("output/hello.wav")).unwrap(),
        AUDIO
    );
    assert_eq!(
        std::fs::read(workspace.join("output/rain.mp3")).unwrap(),
        AUDIO
    );

    let artifacts = reply["artifacts"].as_array().unwrap();
    let names: Vec<&str> = common::strings(&reply["artifacts"], "name");
    assert_eq!(names, ["fox.png", "linked.png", "hello.wav", "rain.mp3"]);
    assert_eq!(artifacts[0]["type"], "image");
    assert_eq!(artifacts[2]["type"], "audio");
    let url = artifacts[0]["url"].as_str().unwrap();
    let download = app
        .http
        .get(format!("{}{url}&client_id=artist", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().to_vec(), png);

    let requests = media.requests();
    let speech = requests
        .iter()
        .find(|r| r.path == "/v1/audio/speech")
        .unwrap();
    assert_eq!(speech.body["response_format"], "wav");
    assert_eq!(speech.body["model"], "tts-model");
    assert_eq!(speech.body["voice"], "af_bella");
    assert_eq!(speech.bearer.as_deref(), Some("sk-media-secret"));
    let sound = requests
        .iter()
        .find(|r| r.path == "/v1/sound-generation")
        .unwrap();
    assert_eq!(sound.body["duration_seconds"], 3.0);
    assert!(!serde_json::to_string(&reply)
        .unwrap()
        .contains("sk-media-secret"));
}

#[tokio::test]
async fn without_an_endpoint_the_tools_say_which_setting_they_need() {
    let app = TestApp::spawn();
    app.model.script(
        "NOMEDIA",
        vec![
            Reply::tool(
                "mshtools-generate_image",
                json!({"description": "a fox", "output_file": "/mnt/okcomputer/output/fox.png"}),
            ),
            Reply::tool("mshtools-get_available_voices", json!({})),
            Reply::tool(
                "mshtools-generate_sound_effects",
                json!({"description": "rain", "duration": 99, "output_path": "/mnt/okcomputer/output/r.mp3"}),
            ),
            Reply::text("nothing made"),
        ],
    );
    let (status, reply) = app.chat_json("plain", "NOMEDIA now").await;
    assert_eq!(status, 200, "{reply}");
    let results = tool_messages(app.model.requests_for("NOMEDIA").last().unwrap());
    assert!(
        results[0].contains("image generation needs an endpoint")
            && results[0].contains("Settings (image)"),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("speech generation needs an endpoint"),
        "{}",
        results[1]
    );
    assert!(
        results[2].contains("between 0.5 and 30 seconds"),
        "{}",
        results[2]
    );
    assert!(reply["artifacts"].as_array().unwrap().is_empty());
}

/// An endpoint that answers every request with a chunked body that never ends.
fn endless_api() -> String {
    let origin = common::raw_http_server(|mut stream| {
        use std::io::Write;
        common::read_request_head(&mut stream);
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        while stream.write_all(chunk.as_bytes()).is_ok() {}
    });
    format!("{origin}/v1")
}

#[tokio::test]
async fn an_endless_voice_list_is_cut_off_not_buffered() {
    let app = TestApp::spawn();
    let endless = endless_api();
    let (status, _) = app
        .post_json(
            "/api/config",
            "admin",
            json!({"speech": {"base_url": endless, "model": "tts"}}),
        )
        .await;
    assert_eq!(status, 200);
    app.model.script(
        "VOICES",
        vec![
            Reply::tool("mshtools-get_available_voices", json!({})),
            Reply::text("listed"),
        ],
    );
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.chat_json("listener", "VOICES please"),
    )
    .await
    .expect("the voice list was read without end");
    assert_eq!(answered.0, 200, "{}", answered.1);
    let result = tool_messages(&app.model.requests_for("VOICES")[1])
        .pop()
        .unwrap();
    assert!(
        result.contains("alloy"),
        "the standard voices are offered: {result}"
    );
}
