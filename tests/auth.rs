//! Many users on one server: every API route needs an identity, owners never see each
//! other's things (404, with ids taken from the other's answers), administrators alone change
//! the endpoints and see the sessions, and a proxy's header counts only from the proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{upload_form, TestApp};
use okcvm::auth::{users, Role};
use okcvm::config::AuthMode;
use reqwest::Method;
use serde_json::{json, Value};

struct Users {
    alice: String,
    bob: String,
}

/// A server in token mode with an administrator (alice) and a user (bob).
fn token_server(tune: impl FnOnce(&mut okcvm::config::Config)) -> (TestApp, Users) {
    let mut tokens = None;
    let app = TestApp::spawn_with(|config| {
        config.auth.mode = AuthMode::Token;
        let file = &config.auth.users_file;
        tokens = Some(Users {
            alice: users::add(file, "alice", Role::Admin).unwrap(),
            bob: users::add(file, "bob", Role::User).unwrap(),
        });
        tune(config);
    });
    (app, tokens.unwrap())
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, format!("{}{path}", app.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_api_route_in_the_openapi_document_needs_a_token() {
    let (app, users) = token_server(|_| {});
    let spec: Value = serde_json::from_str(okcvm::http::session::OPENAPI).unwrap();
    let mut checked = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        if !(path.starts_with("/api") || path.starts_with("/v1/") || path == "/metrics") {
            continue;
        }
        let concrete = path
            .replace("{id}", "some-id")
            .replace("{entry_id}", "some-entry");
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = (method != Method::GET).then(|| json!({}));
            for token in [None, Some("okcvm_not-a-token"), Some(users.bob.as_str())] {
                let wrong = token != Some(users.bob.as_str());
                let response = app
                    .http
                    .request(method.clone(), format!("{}{concrete}", app.url))
                    .header("authorization", format!("Bearer {}", token.unwrap_or("")))
                    .json(&body.clone().unwrap_or(Value::Null))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                if token.is_none() || wrong {
                    assert_eq!(status, 401, "{method} {path} with {token:?}");
                    assert!(response.headers().contains_key("www-authenticate"));
                } else {
                    assert_ne!(status, 401, "{method} {path} with bob's token");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} routes checked");
    // Percent-encoded paths reach the same handlers, so they meet the same gate.
    for disguised in [
        "/%61pi/config",
        "/%76%31/models",
        "/%6Detrics",
        "/api/%63onversations",
    ] {
        let (status, _) = call(&app, Method::GET, disguised, None, None).await;
        assert_eq!(status, 401, "{disguised}");
    }
    // Without any Authorization header too, and the console's pages stay reachable.
    let (status, _) = call(&app, Method::GET, "/api/conversations", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(common::raw_get_status(&app.url, "/ui/").await, 200);
    assert_eq!(common::raw_get_status(&app.url, "/healthz").await, 200);
}

#[tokio::test]
async fn one_owner_cannot_reach_anything_of_another() {
    let (app, users) = token_server(|_| {});
    let (alice, bob) = (Some(users.alice.as_str()), Some(users.bob.as_str()));
    let conv = "/api/conversations/trip";
    let (status, _) = call(
        &app,
        Method::PUT,
        conv,
        alice,
        Some(json!({"title": "Trip"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/chat?conversation_id=trip",
        alice,
        Some(json!({"message": "plan it", "stream": false})),
    )
    .await;
    assert_eq!(status, 200);
    let form = upload_form(&[("secret.txt", b"alice's secret".to_vec())]);
    let response = app
        .http
        .post(format!(
            "{}/api/session/files?conversation_id=trip",
            app.url
        ))
        .bearer_auth(&users.alice)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, snapshot) = call(
        &app,
        Method::POST,
        "/api/session/workspace/snapshots?conversation_id=trip",
        alice,
        Some(json!({"label": "mine"})),
    )
    .await;
    assert_eq!(status, 200, "{snapshot}");
    let snapshot_id = snapshot["latest_snapshot"].as_str().unwrap().to_string();
    let (_, info) = call(
        &app,
        Method::GET,
        "/api/session/info?conversation_id=trip",
        alice,
        None,
    )
    .await;
    let (_, boot) = call(
        &app,
        Method::GET,
        "/api/session/boot?conversation_id=trip",
        alice,
        None,
    )
    .await;
    let entry_id = boot["vm_history"][0]["id"].as_str().map(str::to_string);
    assert_eq!(info["history_length"], 2, "{info}");

    // Bob, with every id alice's answers gave away, and alice's client id too.
    let (_, list) = call(&app, Method::GET, "/api/conversations", bob, None).await;
    assert_eq!(list["conversations"], json!([]));
    let (status, _) = call(&app, Method::GET, conv, bob, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::DELETE, conv, bob, None).await;
    assert_eq!(status, 404);
    // A PUT of the same id makes bob's own record and leaves alice's alone.
    call(
        &app,
        Method::PUT,
        conv,
        bob,
        Some(json!({"title": "Bob's"})),
    )
    .await;
    let (_, mine) = call(&app, Method::GET, conv, alice, None).await;
    assert_eq!(mine["conversation"]["title"], "Trip");
    let q = "conversation_id=trip&client_id=default";
    let replay = app
        .http
        .get(format!("{}/api/chat/events?{q}&after=0", app.url))
        .bearer_auth(&users.bob)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !replay.contains("plan it"),
        "alice's turn replayed to bob: {replay}"
    );
    if let Some(entry_id) = entry_id {
        let path = format!("/api/session/history/{entry_id}?{q}");
        let (status, _) = call(&app, Method::GET, &path, bob, None).await;
        assert_eq!(status, 404, "alice's history entry");
    }
    let (_, files) = call(
        &app,
        Method::GET,
        &format!("/api/session/files?{q}"),
        bob,
        None,
    )
    .await;
    assert_eq!(files["files"], json!([]), "{files}");
    let path = format!("/api/session/workspace/file?path=uploads/secret.txt&{q}");
    let (status, _) = call(&app, Method::GET, &path, bob, None).await;
    assert_eq!(status, 404, "alice's upload");
    let (_, snapshots) = call(
        &app,
        Method::GET,
        &format!("/api/session/workspace/snapshots?{q}"),
        bob,
        None,
    )
    .await;
    assert!(!snapshots.to_string().contains(&snapshot_id), "{snapshots}");
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/api/session/workspace/restore?{q}"),
        bob,
        Some(json!({"snapshot_id": snapshot_id})),
    )
    .await;
    assert_eq!(status, 404, "restoring alice's snapshot");
    let (_, bob_info) = call(
        &app,
        Method::GET,
        &format!("/api/session/info?{q}"),
        bob,
        None,
    )
    .await;
    assert_eq!(bob_info["history_length"], 0);
    // Alice still has all of it.
    let (_, info) = call(
        &app,
        Method::GET,
        "/api/session/info?conversation_id=trip",
        alice,
        None,
    )
    .await;
    assert_eq!(info["history_length"], 2);
}

#[tokio::test]
async fn administrators_alone_change_endpoints_list_sessions_and_read_metrics() {
    std::env::set_var("OKCVM_TEST_METRICS_TOKEN", "metrics-secret-1");
    let (app, users) = token_server(|config| {
        config.auth.metrics_token_env = "OKCVM_TEST_METRICS_TOKEN".into();
    });
    let (alice, bob) = (Some(users.alice.as_str()), Some(users.bob.as_str()));
    let change = json!({"image": {"model": "m", "base_url": "http://127.0.0.1:9/v1"}});
    let (status, _) = call(&app, Method::POST, "/api/config", bob, Some(change.clone())).await;
    assert_eq!(status, 403);
    let (status, config) = call(&app, Method::GET, "/api/config", bob, None).await;
    assert_eq!(status, 200, "a user may read the endpoints");
    assert!(config["image"].is_null());
    let (status, _) = call(&app, Method::POST, "/api/config", alice, Some(change)).await;
    assert_eq!(status, 200);
    for path in ["/api/sessions", "/metrics"] {
        let (status, _) = call(&app, Method::GET, path, bob, None).await;
        assert_eq!(status, 403, "{path}");
        let response = app
            .http
            .get(format!("{}{path}", app.url))
            .bearer_auth(&users.alice)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .bearer_auth("metrics-secret-1")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/sessions",
        Some("metrics-secret-1"),
        None,
    )
    .await;
    assert_eq!(status, 401, "the metrics token opens /metrics only");
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/session/info?conversation_id=a&conversation_id=b",
        bob,
        None,
    )
    .await;
    assert_eq!(status, 400, "a query naming two conversations");
    let (_, me) = call(&app, Method::GET, "/api/me", bob, None).await;
    assert_eq!(
        me,
        json!({"user": "bob", "role": "user", "auth_mode": "token"})
    );
}

#[tokio::test]
async fn a_removed_user_is_refused_within_seconds() {
    let (app, users) = token_server(|_| {});
    let (status, _) = call(&app, Method::GET, "/api/me", Some(&users.bob), None).await;
    assert_eq!(status, 200);
    assert!(users::remove(&app.config.auth.users_file, "bob").unwrap());
    let deadline = std::time::Instant::now() + users::RELOAD_EVERY * 3;
    loop {
        let (status, _) = call(&app, Method::GET, "/api/me", Some(&users.bob), None).await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob's token still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, _) = call(&app, Method::GET, "/api/me", Some(&users.alice), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_proxy_header_counts_only_from_a_trusted_proxy() {
    let untrusted = TestApp::spawn_with(|config| {
        config.auth.mode = AuthMode::Proxy;
        config.auth.trusted_proxies = vec!["10.9.9.9".into()];
    });
    let response = untrusted
        .http
        .get(format!("{}/api/me", untrusted.url))
        .header("x-forwarded-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "a header from a peer that is not the proxy"
    );

    let trusted = TestApp::spawn_with(|config| {
        config.auth.mode = AuthMode::Proxy;
        config.auth.trusted_proxies = vec!["127.0.0.0/8".into()];
        config.auth.admins = vec!["root".into()];
    });
    let me = |user: Option<&'static str>| {
        let mut request = trusted.http.get(format!("{}/api/me", trusted.url));
        if let Some(user) = user {
            request = request.header("x-forwarded-user", user);
        }
        request.send()
    };
    let answer: Value = me(Some("alice")).await.unwrap().json().await.unwrap();
    assert_eq!(
        answer,
        json!({"user": "alice", "role": "user", "auth_mode": "proxy"})
    );
    let answer: Value = me(Some("root")).await.unwrap().json().await.unwrap();
    assert_eq!(answer["role"], "admin");
    assert_eq!(me(None).await.unwrap().status(), 401);
    // A client's own header that a proxy appended to is not believed.
    let twice = trusted
        .http
        .get(format!("{}/api/me", trusted.url))
        .header("x-forwarded-user", "root")
        .header("x-forwarded-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 401);
    assert_eq!(me(Some("../etc")).await.unwrap().status(), 401);
}
