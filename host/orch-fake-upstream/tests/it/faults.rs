//! Injected faults: auth, statuses, resets, cut and stalled streams, fail rate.

use std::time::Duration;

use futures_util::StreamExt as _;
use orch_fake_upstream::FakeConfig;
use serde_json::json;

use super::{
    chat_body, client, json_of, post_chat, read_until_error, spawn, spawn_with, sse_events,
    try_post_chat, wait_until,
};

fn stream_body(model: &str) -> serde_json::Value {
    let mut body = chat_body(model, "q");
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn expect_key_rejects_other_keys() {
    let upstream = spawn_with(FakeConfig {
        expect_key: Some("sk-right".into()),
        ..FakeConfig::default()
    })
    .await;
    let url = format!("{}/chat/completions", upstream.base_url());
    let body = serde_json::to_vec(&chat_body("m", "q")).unwrap();
    for key in [Some("sk-wrong"), None] {
        let mut request = client().post(&url).body(body.clone());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let error = json_of(response).await;
        assert_eq!(error["error"]["code"], "invalid_api_key");
        assert!(!error.to_string().contains("sk-wrong"));
    }
    let response = client()
        .post(&url)
        .bearer_auth("sk-right")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let models = client()
        .get(format!("{}/models", upstream.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    assert_eq!(upstream.stats().auth_failures, 3);
}

#[tokio::test]
async fn magic_status_429_sets_retry_after() {
    let upstream = spawn().await;
    let response = post_chat(&upstream, &chat_body("status-429", "q")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let error = json_of(response).await;
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    assert_eq!(error["error"]["type"], "requests");

    let response = post_chat(&upstream, &chat_body("status-503", "q")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(json_of(response).await["error"]["type"], "server_error");
}

#[tokio::test]
async fn reset_closes_the_connection_without_a_response() {
    let upstream = spawn().await;
    let error = try_post_chat(&client(), &upstream, &chat_body("reset", "q"))
        .await
        .expect_err("a reset must not produce a response");
    assert!(!error.is_timeout() && !error.is_status());
    assert_eq!(upstream.stats().connections_reset, 1);
    assert!(upstream.stats().responses_by_status.is_empty());

    // The server keeps serving other connections.
    assert_eq!(
        post_chat(&upstream, &chat_body("m", "q")).await.status(),
        200
    );
}

#[tokio::test]
async fn cut_after_truncates_the_stream() {
    let upstream = spawn().await;
    let response = post_chat(&upstream, &stream_body("cut-after-3")).await;
    assert_eq!(response.status(), 200);
    let received = read_until_error(response).await;
    assert!(!received.contains("[DONE]"));
    assert_eq!(sse_events(&received).len(), 3);
    assert_eq!(upstream.stats().streams_cut, 1);

    // Cutting before any event leaves headers only.
    let response = post_chat(&upstream, &stream_body("cut-after-0")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(read_until_error(response).await, "");

    // The configured variant behaves the same.
    upstream.set_config(FakeConfig {
        cut_after: Some(1),
        ..FakeConfig::default()
    });
    let received = read_until_error(post_chat(&upstream, &stream_body("m")).await).await;
    assert_eq!(sse_events(&received).len(), 1);
    assert_eq!(upstream.stats().streams_cut, 3);
}

#[tokio::test]
async fn stall_after_sends_nothing_more() {
    let upstream = spawn().await;
    let response = post_chat(&upstream, &stream_body("stall-after-2")).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    while sse_events(std::str::from_utf8(&received).unwrap()).len() < 2 {
        received.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    let next = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(next.is_err(), "the stalled stream sent more: {next:?}");
    assert_eq!(sse_events(std::str::from_utf8(&received).unwrap()).len(), 2);
    wait_until(|| upstream.stats().streams_stalled == 1).await;
}

#[tokio::test]
async fn fail_rate_one_fails_every_request_until_reconfigured() {
    let upstream = spawn_with(FakeConfig {
        fail_rate: 1.0,
        fail_statuses: vec![502, 503],
        ..FakeConfig::default()
    })
    .await;
    for _ in 0..6 {
        let status = post_chat(&upstream, &chat_body("m", "q")).await.status();
        assert!(status == 502 || status == 503, "unexpected {status}");
    }
    assert_eq!(upstream.stats().injected_failures, 6);

    upstream.set_config(FakeConfig {
        fail_rate: 1.0,
        fail_statuses: vec![0],
        ..FakeConfig::default()
    });
    assert!(
        try_post_chat(&client(), &upstream, &chat_body("m", "q"))
            .await
            .is_err()
    );

    upstream.set_config(FakeConfig::default());
    assert_eq!(upstream.config(), FakeConfig::default());
    assert_eq!(
        post_chat(&upstream, &chat_body("m", "q")).await.status(),
        200
    );
    let stats = upstream.stats();
    assert_eq!(stats.injected_failures, 7);
    assert_eq!(stats.connections_reset, 1);
}
