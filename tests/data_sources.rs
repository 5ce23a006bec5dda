//! `get_data_source_desc` and `get_data_source` through the agent, with a sources file that
//! points a World Bank-shaped API at loopback: descriptions, filled templates, encoded path
//! parameters, and clear answers for unknown sources, APIs and parameters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mock_apis::MockApis;
use common::{tool_messages, Reply, TestApp};
use serde_json::json;

#[tokio::test]
async fn data_sources_are_described_and_queried() {
    let apis = MockApis::start();
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources.json");
    let builtin: serde_json::Value =
        serde_json::from_str(include_str!("../spec/data_sources.json")).unwrap();
    let mut bank = builtin[0].clone();
    bank["base_url"] = json!(format!("{}/data/v2", apis.origin));
    std::fs::write(&sources, serde_json::to_string(&json!([bank])).unwrap()).unwrap();
    let app = TestApp::spawn_with(|c| c.data.sources_file = Some(sources.clone()));
    let fetch = |api: &str, params: serde_json::Value| {
        Reply::tool(
            "mshtools-get_data_source",
            json!({"data_source_name": "world_bank", "api_name": api, "params": params}),
        )
    };
    app.model.script(
        "DATA",
        vec![
            Reply::tool(
                "mshtools-get_data_source_desc",
                json!({"data_source_name": "world_bank"}),
            ),
            fetch(
                "indicator",
                json!({"country": "US;CN", "indicator": "NY.GDP.MKTP.CD", "date": "2023"}),
            ),
            fetch("indicator", json!({"country": "US"})),
            fetch(
                "indicator",
                json!({"country": "../../etc", "indicator": "FAIL"}),
            ),
            fetch("nope", json!({})),
            Reply::tool(
                "mshtools-get_data_source_desc",
                json!({"data_source_name": "yahoo"}),
            ),
            Reply::text("data fetched"),
        ],
    );
    let (status, body) = app.chat_json("analyst", "DATA please").await;
    assert_eq!(status, 200, "{body}");
    let results = tool_messages(app.model.requests_for("DATA").last().unwrap());
    assert!(
        results[0].contains("API indicator") && results[0].contains("country (required)"),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("27360935000000") && results[1].contains("\"value\": \"US;CN\""),
        "{}",
        results[1]
    );
    assert!(results[2].contains("needs indicator"), "{}", results[2]);
    assert!(
        results[3].contains("answered 400") && results[3].contains("Invalid indicator"),
        "{}",
        results[3]
    );
    assert!(
        results[4].contains("has no API \"nope\"") && results[4].contains("indicator, countries"),
        "{}",
        results[4]
    );
    assert!(
        results[5].contains("no data source \"yahoo\"") && results[5].contains("world_bank"),
        "{}",
        results[5]
    );
    let sent = apis.requests();
    assert_eq!(
        sent[0].path,
        "/data/v2/country/US;CN/indicator/NY.GDP.MKTP.CD"
    );
    assert_eq!(sent[0].body["date"], "2023");
    assert_eq!(sent[0].body["format"], "json");
    assert_eq!(
        sent.len(),
        2,
        "the traversal attempt stayed inside the API's path: {sent:?}"
    );
}
