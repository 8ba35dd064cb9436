//! Integration tests: a real fake upstream on port 0, driven with reqwest.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly, like the tests that call them"
)]

mod anthropic;
mod binary;
mod chat;
mod control;
mod faults;
mod gemini;
mod stream;

use std::time::Duration;

use futures_util::StreamExt as _;
use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

/// A fake upstream with the default configuration.
async fn spawn() -> FakeUpstream {
    spawn_with(FakeConfig::default()).await
}

async fn spawn_with(config: FakeConfig) -> FakeUpstream {
    FakeUpstream::spawn(config).await.unwrap()
}

/// A client that ignores proxy settings of the environment.
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A minimal valid chat request.
fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

async fn post_chat(upstream: &FakeUpstream, body: &Value) -> reqwest::Response {
    try_post_chat(&client(), upstream, body).await.unwrap()
}

async fn try_post_chat(
    client: &reqwest::Client,
    upstream: &FakeUpstream,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{}/chat/completions", upstream.base_url()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
}

async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// The `data:` payloads of a complete SSE body, in order.
fn sse_events(body: &str) -> Vec<String> {
    body.split_terminator("\n\n")
        .map(|event| event.strip_prefix("data: ").unwrap().to_owned())
        .collect()
}

/// Reads a whole stream; returns its chunks (parsed) and whether `[DONE]` ended it.
async fn read_stream(response: reqwest::Response) -> (Vec<Value>, bool) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    let mut events = sse_events(&body);
    let done = events.last().is_some_and(|event| event == "[DONE]");
    if done {
        events.pop();
    }
    let chunks = events
        .iter()
        .map(|event| serde_json::from_str(event).unwrap())
        .collect();
    (chunks, done)
}

/// Reads a stream until the connection fails; returns the text received.
async fn read_until_error(response: reqwest::Response) -> String {
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    loop {
        match stream.next().await {
            Some(Ok(bytes)) => received.extend_from_slice(&bytes),
            Some(Err(_)) => return String::from_utf8(received).unwrap(),
            None => panic!(
                "the stream ended cleanly: {}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
}

/// Waits (polling) until `condition` holds; fails after 10 s.
async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}
