//! A fork bomb in one session leaves another session's turns fast: the bomb stays inside its
//! session's control group. Alone in its test binary, so no other test's load is measured.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::limited::{shell, spawn};
use common::Reply;

#[tokio::test]
async fn a_fork_bomb_does_not_slow_another_session() {
    let app = spawn();
    app.model.script(
        "BOMB",
        vec![
            shell(
                "timeout 4 bash -c 'b() { b | b & }; b' 2>/dev/null; echo over",
                8_000,
            ),
            Reply::text("done"),
        ],
    );
    let bomb = {
        let app = &app;
        async move { app.chat_json("bomber", "BOMB").await }
    };
    let echoes = {
        let app = &app;
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut slowest = Duration::ZERO;
            for i in 0..20 {
                let started = Instant::now();
                let (status, _) = app.chat_json("bystander", &format!("hello {i}")).await;
                assert_eq!(status, 200);
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            slowest
        }
    };
    let ((status, body), slowest) = tokio::join!(bomb, echoes);
    assert_eq!(status, 200, "{body}");
    // Unlimited, the bomb made other sessions' echo turns take 6-14 s.
    assert!(
        slowest < Duration::from_millis(100),
        "another session's echo turn took {slowest:?} during a fork bomb"
    );
}
