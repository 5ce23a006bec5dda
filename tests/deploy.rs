//! `mshtools-deploy_website` through the agent: publish, serve, redeploy at the same address,
//! refuse what cannot be published, and remove the sites with their conversation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{raw_get_status, tool_messages, Reply, TestApp};
use serde_json::json;

fn write(path: &str, content: &str) -> Reply {
    Reply::tool(
        "mshtools-write_file",
        json!({"file_path": path, "content": content, "append": false}),
    )
}

fn deploy(dir: &str) -> Reply {
    Reply::tool(
        "mshtools-deploy_website",
        json!({"type": "static", "local_dir": dir}),
    )
}

#[tokio::test]
async fn a_site_is_published_served_redeployed_and_removed_with_its_conversation() {
    let app = TestApp::spawn();
    app.model.script(
        "PUBLISH",
        vec![
            write(
                "/mnt/okcomputer/site/index.html",
                "<html><head><title>Fruit  stand</title></head><body><h1>v1</h1></body></html>",
            ),
            write("/mnt/okcomputer/site/css/site.css", "h1 { color: green }"),
            deploy("/mnt/okcomputer/site/"),
            Reply::text("published"),
        ],
    );
    let (status, reply) = app
        .chat_json("pub&conversation_id=site", "PUBLISH the site")
        .await;
    assert_eq!(status, 200, "{reply}");
    let preview = &reply["web_preview"];
    let url = preview["url"].as_str().unwrap().to_string();
    let id = preview["deployment_id"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{}/deploy/{id}/", app.url));
    assert_eq!(preview["title"], "Fruit stand");
    assert_eq!(reply["artifacts"][0]["type"], "website");
    assert_eq!(reply["artifacts"][0]["url"], url.as_str());
    let result = &tool_messages(app.model.requests_for("PUBLISH").last().unwrap())[2];
    assert!(
        result.contains(&url) && result.contains("2 files"),
        "{result}"
    );

    let page = app.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html");
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("sandbox allow-scripts") && !policy.contains("same-origin"));
    assert!(page.text().await.unwrap().contains("<h1>v1</h1>"));
    let css = app
        .http
        .get(format!("{url}css/site.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css");
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = no_redirect
        .get(format!("{}/deploy/{id}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], format!("/deploy/{id}/"));
    for (path, expected) in [
        (format!("/deploy/{id}/missing.html"), 404),
        (format!("/deploy/{id}/../../okcvm.toml"), 400),
        (format!("/deploy/{id}/%2e%2e/%2e%2e/okcvm.toml"), 400),
        (format!("/deploy/{id}/css/..%2f..%2findex.html"), 400),
        (format!("/deploy/{id}/%2fetc%2fpasswd"), 400),
        ("/deploy/000000000000000000000000/".to_string(), 404),
        ("/deploy/..%2f..%2fstore/".to_string(), 404),
    ] {
        assert_eq!(raw_get_status(&app.url, &path).await, expected, "{path}");
    }

    // Editing the site changes nothing until it is deployed again, at the same address.
    app.model.script(
        "REDEPLOY",
        vec![
            write("/mnt/okcomputer/site/index.html", "<h1>v2</h1>"),
            deploy("/mnt/okcomputer/site"),
            Reply::text("updated"),
        ],
    );
    app.model.script(
        "EDITONLY",
        vec![
            write("/mnt/okcomputer/site/index.html", "<h1>draft</h1>"),
            Reply::text("edited"),
        ],
    );
    let (_, reply) = app
        .chat_json("pub&conversation_id=site", "REDEPLOY it")
        .await;
    assert_eq!(reply["web_preview"]["deployment_id"], id.as_str());
    assert!(app
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("v2"));
    let (_, reply) = app
        .chat_json("pub&conversation_id=site", "EDITONLY please")
        .await;
    assert!(reply["web_preview"].is_null(), "no deployment in this turn");
    assert!(app
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("v2"));

    // Deleting the conversation removes its site.
    let (status, deleted) = app.delete("/api/conversations/site", "pub").await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["workspace"]["deployments_removed"], 1);
    let gone = app.http.get(&url).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn what_cannot_be_published_is_explained_to_the_model() {
    let app = TestApp::spawn_with(|c| c.deploy.max_files = 3);
    app.model.script(
        "BADSITES",
        vec![
            write("/mnt/okcomputer/empty/readme.txt", "no index here"),
            deploy("/mnt/okcomputer/empty"),
            deploy("/mnt/okcomputer/../../etc"),
            Reply::tool(
                "mshtools-deploy_website",
                json!({"type": "nextjs", "local_dir": "/mnt/okcomputer/empty"}),
            ),
            deploy("/mnt/okcomputer/nowhere"),
            Reply::tool(
                "mshtools-shell",
                json!({"command": "mkdir -p big && cd big && echo '<h1>x</h1>' > index.html && touch a b c && ln -s /etc/passwd secret"}),
            ),
            deploy("/mnt/okcomputer/big"),
            Reply::text("could not publish"),
        ],
    );
    let (status, reply) = app.chat_json("bad", "BADSITES now").await;
    assert_eq!(status, 200, "{reply}");
    let results = tool_messages(app.model.requests_for("BADSITES").last().unwrap());
    assert!(results[1].contains("no index.html"), "{}", results[1]);
    assert!(results[2].contains("outside"), "{}", results[2]);
    assert!(
        results[3].contains("\"nextjs\" is not supported"),
        "{}",
        results[3]
    );
    assert!(results[4].contains("not a folder"), "{}", results[4]);
    assert!(results[6].contains("more than 3 files"), "{}", results[6]);
    assert!(reply["web_preview"].is_null());
}

#[tokio::test]
async fn symlinks_are_not_published() {
    let app = TestApp::spawn();
    app.model.script(
        "LINKS",
        vec![
            Reply::tool(
                "mshtools-shell",
                json!({"command": "mkdir -p s && echo '<h1>ok</h1>' > s/index.html && ln -s /etc/passwd s/passwd.txt && ln -s index.html s/alias.html"}),
            ),
            deploy("/mnt/okcomputer/s"),
            Reply::text("done"),
        ],
    );
    let (_, reply) = app.chat_json("links", "LINKS please").await;
    let url = reply["web_preview"]["url"].as_str().unwrap();
    assert_eq!(app.http.get(url).send().await.unwrap().status(), 200);
    for name in ["passwd.txt", "alias.html"] {
        let response = app.http.get(format!("{url}{name}")).send().await.unwrap();
        assert_eq!(
            response.status(),
            404,
            "{name} is a symlink and stays unpublished"
        );
    }
}
