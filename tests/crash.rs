//! `kill -9` of the server binary during 20 concurrent streaming turns loses no finished turn,
//! and the store opens again with interrupted turns marked as such.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::server_process::{free_port, start};
use common::{parse_sse, types, MockModel, Reply};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_turns_loses_no_finished_turn() {
    let model = MockModel::start();
    model.script(
        "CRASH",
        vec![Reply::delayed(60, Reply::text("partial reply then done"))],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("okcvm.toml");
    std::fs::write(
        &config,
        format!(
            "[llm]\nbase_url = \"{}\"\nmodel = \"mock\"\nstream = true\nmax_retries = 0\n[sandbox]\nallow_unsandboxed = true\n",
            model.url
        ),
    )
    .unwrap();
    let port = free_port();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (mut server, _) = start(env!("CARGO_BIN_EXE_okcvm"), &config, port, &http).await;

    let deadline = Instant::now() + Duration::from_millis(1200);
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let http = http.clone();
            let url = server.url.clone();
            tokio::spawn(async move {
                let mut finished = Vec::new();
                for n in 0.. {
                    let message = format!("CRASH c{i} turn {n}");
                    let response = http
                        .post(format!("{url}/api/chat?client_id=c{i}"))
                        .header("accept", "text/event-stream")
                        .json(&json!({"message": message}))
                        .send()
                        .await;
                    let Ok(response) = response else { break };
                    let Ok(body) = response.text().await else {
                        break;
                    };
                    if parse_sse(&body).iter().any(|f| f.data["type"] == "final") {
                        finished.push(message);
                    }
                    if Instant::now() > deadline + Duration::from_secs(5) {
                        break;
                    }
                }
                finished
            })
        })
        .collect();
    tokio::time::sleep_until(deadline.into()).await;
    // SIGKILL: no shutdown code runs.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut finished = Vec::new();
    for client in clients {
        finished.push(client.await.unwrap());
    }
    assert!(
        finished.iter().map(Vec::len).sum::<usize>() >= 20,
        "too few turns finished before the kill"
    );

    let (server, _) = start(env!("CARGO_BIN_EXE_okcvm"), &config, port, &http).await;
    for (i, turns) in finished.iter().enumerate() {
        let info: serde_json::Value = http
            .get(format!("{}/api/session/info?client_id=c{i}", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored = info["history_length"].as_u64().unwrap() as usize;
        assert!(
            stored >= turns.len() * 2,
            "client {i}: {stored} entries for {} finished turns",
            turns.len()
        );
        let check = format!("after the crash c{i}");
        let response = http
            .post(format!("{}/api/chat?client_id=c{i}", server.url))
            .json(&json!({"message": check, "stream": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let request = &model.requests_for(&check)[0];
        let sent: Vec<&str> = common::strings(&request["messages"], "content");
        for turn in turns {
            assert!(sent.contains(&turn.as_str()), "client {i} lost {turn}");
        }
    }
    // Every session's last stream ends properly, interrupted or not.
    for i in 0..20 {
        let replay = http
            .get(format!(
                "{}/api/chat/events?after=0&client_id=c{i}",
                server.url
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let kinds = types(&parse_sse(&replay));
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("stop"),
            "client {i}: {kinds:?}"
        );
    }
}
