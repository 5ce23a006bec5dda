//! The `browser_*` tools through the agent, in a real headless Chromium (Debian `chromium`,
//! installed by `.ci/run`) against pages on loopback: visit, state, click, type and submit,
//! scroll, find, private contexts per session, and the addresses the browser refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mock_apis::MockApis;
use common::{tool_messages, Reply, TestApp};
use serde_json::json;

fn step(name: &str, args: serde_json::Value) -> Reply {
    Reply::tool(&format!("mshtools-browser_{name}"), args)
}

#[tokio::test]
async fn the_agent_browses_clicks_types_scrolls_and_finds() {
    let pages = MockApis::start();
    let app = TestApp::spawn_with(|c| {
        c.browser.allow_private_networks = true;
        c.llm.max_steps = 20;
    });
    let home = format!("{}/pages/home", pages.origin);
    app.model.script(
        "BROWSE",
        vec![
            step("visit", json!({"url": home, "citation_id": "7"})),
            step("click", json!({"element_index": 2})),
            step("find", json!({"keyword": "needle", "skip": 0})),
            step("scroll_down", json!({"scroll_amount": 5000})),
            step("scroll_up", json!({})),
            step("scroll_up", json!({"scroll_amount": 10000})),
            step("input", json!({"element_index": 3, "content": "kiwi\n"})),
            step("state", json!({})),
            step("click", json!({"element_index": 99})),
            Reply::text("browsed"),
        ],
    );
    let (status, body) = app.chat_json("surfer", "BROWSE the market").await;
    assert_eq!(status, 200, "{body}");
    let results = tool_messages(app.model.requests_for("BROWSE").last().unwrap());
    let visit = &results[0];
    assert!(visit.starts_with(&format!("Opened [7] {home}")), "{visit}");
    assert!(visit.contains("Title: Fruit market"), "{visit}");
    assert!(
        visit.contains("[1] a \"About us\" -> ") && visit.contains("/pages/about"),
        "{visit}"
    );
    assert!(visit.contains("[2] button \"Press me\""), "{visit}");
    assert!(
        visit.contains("[3] input[text] \"Search fruit\""),
        "{visit}"
    );
    assert!(
        visit.contains("Nothing pressed yet.") && !visit.contains("far below"),
        "{visit}"
    );
    assert!(results[1].contains("Pressed!"), "{}", results[1]);
    assert!(
        results[2].contains("occurs 2 times") && results[2].contains("here twice"),
        "{}",
        results[2]
    );
    let scrolled_to = |text: &str| -> u64 {
        let after = text.split("Scroll: ").nth(1).unwrap();
        after.split(' ').next().unwrap().parse().unwrap()
    };
    let bottom = scrolled_to(&results[3]);
    assert!(
        bottom > 2000 && results[3].contains("far below"),
        "{}",
        results[3]
    );
    assert!(results[3].contains("viewport 900 px"), "{}", results[3]);
    let up = scrolled_to(&results[4]);
    assert!(
        up < bottom && up > 0,
        "scrolled up by most of a screen: {}",
        results[4]
    );
    assert_eq!(scrolled_to(&results[5]), 0, "{}", results[5]);
    let results = &results[1..]; // the indices below follow the extra scroll
    assert!(
        results[5].contains("Typed and submitted into [3]"),
        "{}",
        results[5]
    );
    assert!(
        results[6].contains("You searched: kiwi") && results[6].contains("Title: Results"),
        "{}",
        results[6]
    );
    assert!(results[7].contains("no element [99]"), "{}", results[7]);
}

#[tokio::test]
async fn each_session_browses_in_its_own_context_and_private_addresses_are_refused() {
    let pages = MockApis::start();
    let app = TestApp::spawn_with(|c| c.browser.allow_private_networks = true);
    let origin = pages.origin.clone();
    app.model.script(
        "SETCOOKIE",
        vec![
            step(
                "visit",
                json!({"url": format!("{origin}/pages/setcookie?v=alice")}),
            ),
            step(
                "visit",
                json!({"url": format!("{origin}/pages/showcookie")}),
            ),
            Reply::text("set"),
        ],
    );
    app.model.script(
        "SHOWCOOKIE",
        vec![
            step(
                "visit",
                json!({"url": format!("{origin}/pages/showcookie")}),
            ),
            Reply::text("shown"),
        ],
    );
    app.chat_json("alice", "SETCOOKIE").await;
    app.chat_json("bob", "SHOWCOOKIE").await;
    let alice = tool_messages(app.model.requests_for("SETCOOKIE").last().unwrap());
    let bob = tool_messages(app.model.requests_for("SHOWCOOKIE").last().unwrap());
    assert!(alice[1].contains("cookie=[who=alice]"), "{}", alice[1]);
    assert!(
        bob[0].contains("cookie=[]"),
        "another session sees no cookie: {}",
        bob[0]
    );

    let strict = TestApp::spawn();
    strict.model.script(
        "LOCAL",
        vec![
            step("visit", json!({"url": format!("{origin}/pages/home")})),
            step(
                "visit",
                json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            ),
            step("visit", json!({"url": "file:///etc/passwd"})),
            step("visit", json!({"url": "not a url"})),
            Reply::text("refused"),
        ],
    );
    strict.chat_json("careful", "LOCAL pages").await;
    let refused = tool_messages(strict.model.requests_for("LOCAL").last().unwrap());
    assert!(
        refused[0].contains("private network address"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("private network address"),
        "{}",
        refused[1]
    );
    assert!(refused[2].contains("only http and https"), "{}", refused[2]);
    assert!(refused[3].contains("not a valid address"), "{}", refused[3]);

    // An allowed host cannot redirect, link or script the browser to a private address.
    let other = MockApis::start();
    let allowed = origin.trim_start_matches("http://").to_string();
    let guarded = TestApp::spawn_with(|c| c.browser.allowed_hosts = vec![allowed.clone()]);
    let secret = format!("{}/pages/about", other.origin);
    guarded.model.script(
        "HOP",
        vec![
            step("visit", json!({"url": format!("{origin}/pages/home")})),
            step(
                "visit",
                json!({"url": format!("{origin}/pages/redirect?to={secret}")}),
            ),
            Reply::text("hopped"),
        ],
    );
    guarded.chat_json("hopper", "HOP around").await;
    let hops = tool_messages(guarded.model.requests_for("HOP").last().unwrap());
    assert!(
        hops[0].contains("Title: Fruit market"),
        "the allowed host opens: {}",
        hops[0]
    );
    assert!(
        !hops[1].contains("We sell fruit"),
        "the redirect to a private address is blocked: {}",
        hops[1]
    );
    assert!(!hops[1].contains("Title: About"), "{}", hops[1]);
}

/// A service worker's requests are not seen by a tab's DevTools interception, and WebSockets
/// and workers may not be either: the filtering proxy refuses them all, so a page on an
/// allowed host cannot reach another loopback port.
#[tokio::test]
async fn websockets_workers_and_service_workers_cannot_reach_private_addresses() {
    let pages = MockApis::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let allowed = pages.origin.trim_start_matches("http://").to_string();
    let app = TestApp::spawn_with(|c| c.browser.allowed_hosts = vec![allowed.clone()]);
    app.model.script(
        "REACH",
        vec![
            step(
                "visit",
                json!({"url": format!("{}/pages/reach?to={target}", pages.origin)}),
            ),
            Reply::text("tried"),
        ],
    );
    let (status, body) = app.chat_json("reacher", "REACH inside").await;
    assert_eq!(status, 200, "{body}");
    let visit = &tool_messages(app.model.requests_for("REACH").last().unwrap())[0];
    assert!(
        visit.contains("Title: Reach"),
        "the allowed page opens: {visit}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a WebSocket, worker or service worker reached a loopback port"
    );
}

#[tokio::test]
async fn at_the_tab_cap_the_least_recently_used_idle_tab_makes_room() {
    let pages = MockApis::start();
    let app = TestApp::spawn_with(|c| {
        c.browser.allow_private_networks = true;
        c.limits.browser_tabs = 1;
    });
    let home = format!("{}/pages/home", pages.origin);
    let about = format!("{}/pages/about", pages.origin);
    app.model.script(
        "TABONE",
        vec![step("visit", json!({"url": home})), Reply::text("one")],
    );
    app.model.script(
        "TABTWO",
        vec![step("visit", json!({"url": about})), Reply::text("two")],
    );
    app.model.script(
        "TABBACK",
        vec![step("state", json!({})), Reply::text("back")],
    );
    assert_eq!(app.chat_json("tab-a", "TABONE go").await.0, 200);
    assert_eq!(app.chat_json("tab-b", "TABTWO go").await.0, 200);
    let second = tool_messages(&app.model.requests_for("TABTWO")[1])
        .pop()
        .unwrap();
    assert!(second.contains("/pages/about"), "{second}");
    // The first session's tab was closed for the second's; it gets a fresh, blank one.
    assert_eq!(app.chat_json("tab-a", "TABBACK go").await.0, 200);
    let back = tool_messages(&app.model.requests_for("TABBACK")[1])
        .pop()
        .unwrap();
    assert!(
        back.contains("about:blank") && !back.contains("Fruit market"),
        "{back}"
    );
}
