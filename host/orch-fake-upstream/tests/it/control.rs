//! The handle's API and the `/_fake/*` control endpoints.

use orch_fake_upstream::{FakeConfig, FakeUpstream, RecordedRequest, StatsSnapshot};
use serde_json::json;

use super::{chat_body, client, json_of, post_chat, spawn};

fn control_url(upstream: &FakeUpstream, path: &str) -> String {
    format!("http://{}/_fake/{path}", upstream.addr())
}

#[tokio::test]
async fn stats_count_requests_responses_and_streams() {
    let upstream = spawn().await;
    assert_eq!(upstream.stats(), StatsSnapshot::default());
    post_chat(&upstream, &chat_body("m", "q"))
        .await
        .bytes()
        .await
        .unwrap();
    post_chat(&upstream, &chat_body("status-500", "q"))
        .await
        .bytes()
        .await
        .unwrap();
    let mut stream = chat_body("m", "q");
    stream["stream"] = json!(true);
    post_chat(&upstream, &stream).await.text().await.unwrap();
    client()
        .get(format!("{}/models", upstream.base_url()))
        .send()
        .await
        .unwrap();

    let stats = upstream.stats();
    assert_eq!(stats.chat_requests, 3);
    assert_eq!(stats.model_list_requests, 1);
    assert_eq!(stats.responses_by_status.get(&200), Some(&3));
    assert_eq!(stats.responses_by_status.get(&500), Some(&1));
    assert_eq!((stats.streams_started, stats.streams_completed), (1, 1));
    assert!(stats.connections_accepted >= 1);

    let mut over_http: StatsSnapshot = serde_json::from_slice(
        &client()
            .get(control_url(&upstream, "stats"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    // The control request came on a connection of its own.
    over_http.connections_accepted -= 1;
    assert_eq!(over_http, stats);
}

#[tokio::test]
async fn last_request_records_headers_and_body() {
    let upstream = spawn().await;
    assert!(upstream.last_request().is_none());
    let body = chat_body("m", "remember me");
    client()
        .post(format!("{}/chat/completions", upstream.base_url()))
        .bearer_auth("sk-test")
        .header("X-Custom", "42")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();

    let last = upstream.last_request().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(last.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(last.headers["x-custom"], "42");
    assert_eq!(last.body, body);

    let over_http: Option<RecordedRequest> = serde_json::from_slice(
        &client()
            .get(control_url(&upstream, "last_request"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(over_http, Some(last));
}

#[tokio::test]
async fn config_can_be_replaced_over_http() {
    let upstream = spawn().await;
    let response = client()
        .post(control_url(&upstream, "config"))
        .body(r#"{"chunks": 3, "models": ["only"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let expected = FakeConfig {
        chunks: 3,
        models: vec!["only".into()],
        ..FakeConfig::default()
    };
    assert_eq!(upstream.config(), expected);
    let current = json_of(
        client()
            .get(control_url(&upstream, "config"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(current["chunks"], 3);
    assert_eq!(
        post_chat(&upstream, &chat_body("other", "q"))
            .await
            .status(),
        404
    );

    let rejected = client()
        .post(control_url(&upstream, "config"))
        .body(r#"{"chunkz": 3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 400);
    assert_eq!(upstream.config(), expected);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let upstream = spawn().await;
    let url = format!("{}/models", upstream.base_url());
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    upstream.shutdown().await;
    assert!(client().get(&url).send().await.is_err());
}
