//! Browsers: a page of another origin gets no CORS grant and cannot change anything (CSRF),
//! the console's own origin can, and an origin the operator lists gets a grant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use serde_json::json;

const LISTED: &str = "https://app.example.com";
const FOREIGN: &str = "https://evil.example";

#[tokio::test]
async fn only_the_consoles_origin_and_listed_ones_may_act_from_a_browser() {
    let app = TestApp::spawn_with(|c| c.server.cors_origins = vec![LISTED.into()]);
    let own = app.url.clone();
    let chat = |origin: &str| {
        app.http
            .post(format!("{}/api/chat?client_id=web", app.url))
            .header("origin", origin)
            .json(&json!({"message": "from a page", "stream": false}))
            .send()
    };
    let refused = chat(FOREIGN).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("cross-site request refused"));
    let null_origin = chat("null").await.unwrap();
    assert_eq!(
        null_origin.status(),
        403,
        "a sandboxed page has the origin null"
    );
    assert_eq!(chat(&own).await.unwrap().status(), 200);
    let listed = chat(LISTED).await.unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        LISTED,
        "a listed origin gets its grant"
    );

    // A foreign page reading: the server answers (it cannot tell), but with no grant the
    // browser keeps the answer from the page.
    let read = app
        .http
        .get(format!("{}/api/conversations", app.url))
        .header("origin", FOREIGN)
        .send()
        .await
        .unwrap();
    assert!(!read.headers().contains_key("access-control-allow-origin"));
    assert!(!read
        .headers()
        .contains_key("access-control-allow-credentials"));

    // Preflights: a grant for the listed origin, none for another.
    let preflight = |origin: &str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/conversations", app.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let granted = preflight(LISTED).await.unwrap();
    assert_eq!(granted.headers()["access-control-allow-origin"], LISTED);
    let denied = preflight(FOREIGN).await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));

    // A form posted from another site (no CORS preflight for multipart) is refused too.
    let upload = app
        .http
        .post(format!("{}/api/session/files?client_id=web", app.url))
        .header("origin", FOREIGN)
        .multipart(common::upload_form(&[("x.txt", b"x".to_vec())]))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 403);
    let (_, files) = app.get("/api/session/files", "web").await;
    assert_eq!(files["files"], json!([]));
}

#[tokio::test]
async fn without_authentication_the_server_answers_only_to_its_own_names() {
    let app = TestApp::spawn();
    let port = app.url.rsplit(':').next().unwrap().to_string();
    let with_host = |host: String| {
        app.http
            .get(format!("{}/api/conversations", app.url))
            .header("host", host)
            .send()
    };
    // A page of a site whose name was pointed at 127.0.0.1 (DNS rebinding).
    let rebound = with_host(format!("evil.example:{port}")).await.unwrap();
    assert_eq!(rebound.status(), 403);
    assert_eq!(
        with_host(format!("localhost:{port}"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        with_host(format!("127.0.0.1:{port}"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        with_host(format!("[::1]:{port}")).await.unwrap().status(),
        200
    );
}
