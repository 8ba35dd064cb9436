//! Streaming chat completions.

use std::collections::BTreeMap;

use orch_fake_upstream::FakeConfig;
use serde_json::{Value, json};

use super::{chat_body, post_chat, read_stream, spawn, spawn_with};

fn stream_body(model: &str, text: &str) -> Value {
    let mut body = chat_body(model, text);
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn text_stream_has_role_content_finish_and_done() {
    let upstream = spawn_with(FakeConfig {
        chunks: 5,
        ..FakeConfig::default()
    })
    .await;
    let (chunks, done) = read_stream(post_chat(&upstream, &stream_body("m", "Hello")).await).await;
    assert!(done);
    // role + 5 content + finish
    assert_eq!(chunks.len(), 7);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "m");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert!(chunk["created"].is_u64());
        assert!(chunk["system_fingerprint"].is_string());
        assert!(chunk.get("usage").is_none());
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks[1..6]
        .iter()
        .map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Fake reply to: Hello");
    let last = &chunks[6]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "stop");

    let stats = upstream.stats();
    assert_eq!((stats.streams_started, stats.streams_completed), (1, 1));
}

#[tokio::test]
async fn usage_chunk_only_when_asked() {
    let upstream = spawn().await;
    let mut body = stream_body("m", "Hello");
    body["stream_options"] = json!({"include_usage": true});
    let (chunks, done) = read_stream(post_chat(&upstream, &body).await).await;
    assert!(done);
    let (usage, rest) = chunks.split_last().unwrap();
    for chunk in rest {
        assert!(chunk["usage"].is_null() && chunk.get("usage").is_some());
    }
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 8);
    assert_eq!(usage["usage"]["prompt_tokens"], 2);
    assert_eq!(usage["usage"]["total_tokens"], 10);

    body["stream_options"] = json!({"include_usage": false});
    let (chunks, _) = read_stream(post_chat(&upstream, &body).await).await;
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
}

#[tokio::test]
async fn streamed_tool_calls_reassemble() {
    let upstream = spawn().await;
    let mut body = stream_body("m", "Weather in Paris and Rome?");
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                           "metric": {"type": "boolean"}},
            "required": ["city", "days", "metric"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
    ]);
    let (chunks, done) = read_stream(post_chat(&upstream, &body).await).await;
    assert!(done);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    #[derive(Default)]
    struct Call {
        id: String,
        name: String,
        arguments: String,
        pieces: usize,
    }
    let mut calls = BTreeMap::<u64, Call>::new();
    for chunk in &chunks[1..] {
        let Some(deltas) = chunk["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        assert_eq!(deltas.len(), 1);
        let delta = &deltas[0];
        let index = delta["index"].as_u64().unwrap();
        let call = calls.entry(index).or_default();
        if let Some(id) = delta["id"].as_str() {
            // The first delta of a call: id, type, name and empty arguments.
            assert!(call.id.is_empty());
            assert_eq!(delta["type"], "function");
            assert_eq!(delta["function"]["arguments"], "");
            call.id = id.to_owned();
            call.name = delta["function"]["name"].as_str().unwrap().to_owned();
        } else {
            let keys: Vec<_> = delta.as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys, ["function", "index"]);
            let function = delta["function"].as_object().unwrap();
            assert_eq!(function.len(), 1);
            call.arguments
                .push_str(function["arguments"].as_str().unwrap());
            call.pieces += 1;
        }
    }
    assert_eq!(calls.len(), 2);
    let weather = &calls[&0];
    assert!(weather.id.starts_with("call_"));
    assert_eq!(weather.name, "get_weather");
    assert!(weather.pieces >= 3);
    let arguments: Value = serde_json::from_str(&weather.arguments).unwrap();
    assert_eq!(
        arguments,
        json!({"city": "example", "days": 1, "metric": true})
    );
    let time = &calls[&1];
    assert_eq!(time.name, "get_time");
    assert!(time.pieces >= 3);
    assert_eq!(
        serde_json::from_str::<Value>(&time.arguments).unwrap(),
        json!({"zone": "example"})
    );

    let finish = &chunks.last().unwrap()["choices"][0];
    assert_eq!(finish["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn error_event_ends_the_stream() {
    let upstream = spawn().await;
    let (chunks, done) =
        read_stream(post_chat(&upstream, &stream_body("error-event", "q")).await).await;
    assert!(!done);
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["error"]["type"], "server_error");
    assert!(chunks[1]["error"]["message"].is_string());
    assert_eq!(upstream.stats().stream_error_events, 1);
}

#[tokio::test]
async fn paced_streams_still_deliver_everything() {
    let upstream = spawn_with(FakeConfig {
        latency_ms: 5,
        ttft_ms: 5,
        chunk_delay_ms: 2,
        chunks: 3,
        ..FakeConfig::default()
    })
    .await;
    let (chunks, done) = read_stream(post_chat(&upstream, &stream_body("m", "q")).await).await;
    assert!(done);
    assert_eq!(chunks.len(), 5);
}
