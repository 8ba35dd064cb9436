//! The Anthropic Messages API: replies, streams, validation, thinking
//! signatures, tools, faults, token counting and model listing.

use std::time::Duration;

use futures_util::StreamExt as _;
use orch_fake_upstream::{FakeConfig, FakeUpstream, thinking_signature};
use serde_json::{Value, json};

use super::{client, json_of, read_until_error, spawn, spawn_with, wait_until};

const VERSION: &str = "2023-06-01";

fn url(upstream: &FakeUpstream, path: &str) -> String {
    format!("http://{}{path}", upstream.addr())
}

/// A minimal valid Messages request.
fn body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}]})
}

fn stream_body(model: &str, text: &str) -> Value {
    let mut body = body(model, text);
    body["stream"] = json!(true);
    body
}

async fn try_post(
    upstream: &FakeUpstream,
    path: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    client()
        .post(url(upstream, path))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", VERSION)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
}

async fn post(upstream: &FakeUpstream, body: &Value) -> reqwest::Response {
    try_post(upstream, "/v1/messages", body).await.unwrap()
}

/// Posts `body` and returns the error object of the expected 400.
async fn bad_request(upstream: &FakeUpstream, body: &Value) -> String {
    let response = post(upstream, body).await;
    assert_eq!(response.status(), 400);
    let error = json_of(response).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["request_id"].as_str().unwrap().starts_with("req_"));
    error["error"]["message"].as_str().unwrap().to_owned()
}

/// The (event name, data) pairs of a complete Anthropic stream.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            (
                name.strip_prefix("event: ").unwrap().to_owned(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect()
}

async fn read_events(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("request-id"));
    events(&response.text().await.unwrap())
}

/// Rebuilds the content blocks of a stream from its deltas.
fn assemble(events: &[(String, Value)]) -> Vec<Value> {
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial_json = String::new();
    for (name, data) in events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(data["index"], blocks.len());
                blocks.push(data["content_block"].clone());
                partial_json.clear();
            }
            "content_block_delta" => {
                let block = blocks.last_mut().unwrap();
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = block["text"].as_str().unwrap().to_owned();
                        block["text"] = json!(text + delta["text"].as_str().unwrap());
                    }
                    "thinking_delta" => {
                        let text = block["thinking"].as_str().unwrap().to_owned();
                        block["thinking"] = json!(text + delta["thinking"].as_str().unwrap());
                    }
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => {
                        partial_json.push_str(delta["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let block = blocks.last_mut().unwrap();
                if block["type"] == "tool_use" {
                    block["input"] = serde_json::from_str(&partial_json).unwrap();
                }
            }
            _ => {}
        }
    }
    blocks
}

fn weather_tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Weather of a city",
         "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"]}},
        {"name": "get_time",
         "input_schema": {"type": "object",
            "properties": {"zone": {"type": "string"}}, "required": ["zone"]}},
        {"name": "unused", "input_schema": {"type": "object"}}
    ])
}

#[tokio::test]
async fn text_reply_has_the_anthropic_shape() {
    let upstream = spawn().await;
    let response = post(
        &upstream,
        &body("claude-test", "What is the capital of France?"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(
        response.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let reply = json_of(response).await;
    assert!(reply["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(reply["type"], "message");
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["model"], "claude-test");
    assert_eq!(
        reply["content"],
        json!([{"type": "text", "text": "Fake reply to: What is the capital of France?"}])
    );
    assert_eq!(reply["stop_reason"], "end_turn");
    assert!(reply["stop_sequence"].is_null());
    // An unknown field, for gateway pass-through tests.
    assert_eq!(reply["x_fake_extension"], json!({"ok": true}));
    assert_eq!(
        reply["usage"],
        json!({
            "input_tokens": 8,
            "output_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard",
        })
    );
    let stats = upstream.stats();
    assert_eq!(stats.anthropic_requests, 1);
    assert_eq!(stats.chat_requests, 0);
}

#[tokio::test]
async fn stream_has_the_event_sequence() {
    let upstream = spawn_with(FakeConfig {
        chunks: 4,
        ..FakeConfig::default()
    })
    .await;
    let events = read_events(post(&upstream, &stream_body("m", "Hello")).await).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    let message = &events[0].1["message"];
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["content"], json!([]));
    assert!(message["stop_reason"].is_null());
    assert_eq!(message["usage"]["input_tokens"], 2);
    assert_eq!(message["x_fake_extension"], json!({"ok": true}));
    assert_eq!(
        assemble(&events),
        [json!({"type": "text", "text": "Fake reply to: Hello"})]
    );
    let delta = &events[8].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 4);
    assert_eq!(delta["usage"]["input_tokens"], 2);
    assert_eq!(delta["x_fake_extension"], json!({"ok": true}));
    let stats = upstream.stats();
    assert_eq!((stats.streams_started, stats.streams_completed), (1, 1));
}

#[tokio::test]
async fn headers_are_required() {
    let upstream = spawn_with(FakeConfig {
        expect_key: Some("sk-ant-right".into()),
        ..FakeConfig::default()
    })
    .await;
    let send = |key: Option<&'static str>, version: Option<&'static str>| {
        let mut request = client()
            .post(url(&upstream, "/v1/messages"))
            .body(serde_json::to_vec(&body("m", "q")).unwrap());
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(version) = version {
            request = request.header("anthropic-version", version);
        }
        request.send()
    };
    for key in [None, Some("sk-ant-wrong")] {
        let response = send(key, Some(VERSION)).await.unwrap();
        assert_eq!(response.status(), 401);
        let error = json_of(response).await;
        assert_eq!(error["error"]["type"], "authentication_error");
        assert!(!error.to_string().contains("sk-ant-wrong"));
    }
    // Current SDKs send the key as a bearer token.
    let bearer = |key: &str| {
        client()
            .post(url(&upstream, "/v1/messages"))
            .bearer_auth(key)
            .header("anthropic-version", "2026-10-21")
            .body(serde_json::to_vec(&body("m", "q")).unwrap())
            .send()
    };
    assert_eq!(bearer("sk-ant-wrong").await.unwrap().status(), 401);
    assert_eq!(bearer("sk-ant-right").await.unwrap().status(), 200);
    let summary = upstream.stats().last_request.unwrap();
    assert!(
        summary
            .header_names
            .iter()
            .any(|name| name == "authorization")
    );
    assert!(!summary.header_names.iter().any(|name| name == "x-api-key"));

    let response = send(Some("sk-ant-right"), None).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        json_of(response).await["error"]["message"],
        "anthropic-version: header is required"
    );
    assert_eq!(
        send(Some("sk-ant-right"), Some("latest"))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        send(Some("sk-ant-right"), Some(VERSION))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(upstream.stats().auth_failures, 3);
}

#[tokio::test]
async fn validation_errors_use_the_real_messages() {
    let upstream = spawn().await;
    let mut no_max = body("m", "q");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(
        bad_request(&upstream, &no_max).await,
        "max_tokens: Field required"
    );

    let mut empty = body("m", "q");
    empty["messages"] = json!([]);
    assert_eq!(
        bad_request(&upstream, &empty).await,
        "messages: at least one message is required"
    );

    let mut assistant_first = body("m", "q");
    assistant_first["messages"] = json!([{"role": "assistant", "content": "hi"}]);
    assert_eq!(
        bad_request(&upstream, &assistant_first).await,
        "messages: first message must use the \"user\" role"
    );

    let mut twice = body("m", "q");
    twice["messages"] = json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]);
    assert!(
        bad_request(&upstream, &twice)
            .await
            .contains("roles must alternate")
    );

    let mut system_role = body("m", "q");
    system_role["messages"] = json!([{"role": "system", "content": "be brief"},
        {"role": "user", "content": "q"}]);
    assert!(
        bad_request(&upstream, &system_role)
            .await
            .contains("top-level `system` parameter")
    );

    let mut hot = body("m", "q");
    hot["temperature"] = json!(1.2);
    assert_eq!(
        bad_request(&upstream, &hot).await,
        "temperature: Input should be less than or equal to 1"
    );

    let mut odd_block = body("m", "q");
    odd_block["messages"][0]["content"] = json!([{"type": "image_url", "image_url": {"url": "x"}}]);
    assert!(
        bad_request(&upstream, &odd_block)
            .await
            .starts_with("messages.0.content.0: Input tag 'image_url' found using 'type'")
    );

    let mut empty_text = body("m", "q");
    empty_text["messages"][0]["content"] = json!([{"type": "text", "text": ""}]);
    assert_eq!(
        bad_request(&upstream, &empty_text).await,
        "messages: text content blocks must be non-empty"
    );

    let mut no_schema = body("m", "q");
    no_schema["tools"] = json!([{"name": "f"}]);
    assert_eq!(
        bad_request(&upstream, &no_schema).await,
        "tools.0.custom.input_schema: Field required"
    );

    let mut bad_id = body("m", "q");
    bad_id["messages"] = json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call:1", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call:1", "content": "r"}]}]);
    assert_eq!(
        bad_request(&upstream, &bad_id).await,
        "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
    );

    let mut unpaired = body("m", "q");
    unpaired["messages"] = json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "r"}]}]);
    assert!(bad_request(&upstream, &unpaired).await.starts_with(
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_2."
    ));

    let mut results_late = unpaired.clone();
    results_late["messages"][2]["content"] = json!([
        {"type": "text", "text": "here you go"},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]);
    assert!(
        bad_request(&upstream, &results_late)
            .await
            .starts_with("messages.2: Did not find 1 `tool_result` block(s) at the beginning")
    );

    let mut no_result = unpaired;
    no_result["messages"][2]["content"] = json!("never mind");
    assert!(bad_request(&upstream, &no_result).await.starts_with(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: \
         toolu_1."
    ));

    let response = client()
        .post(url(&upstream, "/v1/messages"))
        .header("x-api-key", "k")
        .header("anthropic-version", VERSION)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        json_of(response).await["error"]["type"],
        "invalid_request_error"
    );
}

#[tokio::test]
async fn tools_are_called_then_results_acknowledged() {
    let upstream = spawn().await;
    let mut first = body("m", "Weather and time in Paris?");
    first["tools"] = weather_tools();
    let reply = json_of(post(&upstream, &first).await).await;
    assert_eq!(reply["stop_reason"], "tool_use");
    let content = reply["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "tool_use");
    assert!(content[0]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_ne!(content[0]["id"], content[1]["id"]);
    assert_eq!(content[0]["name"], "get_weather");
    assert_eq!(content[0]["input"], json!({"city": "example", "days": 1}));
    assert_eq!(content[1]["name"], "get_time");
    assert_eq!(content[1]["input"], json!({"zone": "example"}));

    let mut single = first.clone();
    single["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
    let reply_single = json_of(post(&upstream, &single).await).await;
    assert_eq!(reply_single["content"].as_array().unwrap().len(), 1);

    let mut second = first.clone();
    second["messages"] = json!([
        first["messages"][0],
        {"role": "assistant", "content": content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": content[0]["id"],
             "content": "Sunny, 24 degrees"},
            {"type": "tool_result", "tool_use_id": content[1]["id"],
             "content": [{"type": "text", "text": "10:00 CET"}]}]}
    ]);
    let reply = json_of(post(&upstream, &second).await).await;
    assert_eq!(reply["stop_reason"], "end_turn");
    assert_eq!(
        reply["content"][0]["text"],
        "Tool result received: Sunny, 24 degrees; 10:00 CET"
    );
    assert_eq!(upstream.stats().tool_call_responses, 2);
}

#[tokio::test]
async fn streamed_tool_uses_reassemble() {
    let upstream = spawn().await;
    let mut request = stream_body("m", "Weather?");
    request["tools"] = weather_tools();
    let events = read_events(post(&upstream, &request).await).await;
    let blocks = assemble(&events);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["type"], "tool_use");
    assert_eq!(blocks[0]["name"], "get_weather");
    assert_eq!(blocks[0]["input"], json!({"city": "example", "days": 1}));
    assert_eq!(blocks[1]["input"], json!({"zone": "example"}));
    let json_deltas = events
        .iter()
        .filter(|(_, data)| data["delta"]["type"] == "input_json_delta")
        .count();
    assert!(json_deltas >= 6);
    let (_, delta) = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

fn thinking_request(tools: bool) -> Value {
    let mut request = body("m", "Weather in Paris?");
    request["max_tokens"] = json!(4096);
    request["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    if tools {
        request["tools"] = weather_tools();
    }
    request
}

#[tokio::test]
async fn thinking_signatures_must_come_back_unchanged() {
    let upstream = spawn().await;
    let first = thinking_request(true);
    let reply = json_of(post(&upstream, &first).await).await;
    let content = reply["content"].as_array().unwrap().clone();
    assert_eq!(content[0]["type"], "thinking");
    let thinking = content[0]["thinking"].as_str().unwrap();
    assert!(!thinking.is_empty());
    assert_eq!(content[0]["signature"], thinking_signature(thinking));
    assert_eq!(content[1]["type"], "tool_use");
    assert_eq!(upstream.stats().thinking_responses, 1);

    let results = json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": content[1]["id"], "content": "Sunny"},
        {"type": "tool_result", "tool_use_id": content[2]["id"], "content": "noon"}]});
    let mut second = first.clone();
    second["messages"] = json!([first["messages"][0],
        {"role": "assistant", "content": content}, results]);
    let response = post(&upstream, &second).await;
    assert_eq!(response.status(), 200);
    let reply = json_of(response).await;
    assert_eq!(reply["content"][0]["type"], "thinking");
    assert_eq!(
        reply["content"][1]["text"],
        "Tool result received: Sunny; noon"
    );

    // A changed signature is refused.
    let mut tampered = second.clone();
    tampered["messages"][1]["content"][0]["signature"] = json!("c2lnOmZvcmdlZA==");
    assert_eq!(
        bad_request(&upstream, &tampered).await,
        "messages.1.content.0: Invalid `signature` in `thinking` block"
    );
    // So is a changed thinking text.
    let mut rewritten = second.clone();
    rewritten["messages"][1]["content"][0]["thinking"] = json!("Something else.");
    assert!(
        bad_request(&upstream, &rewritten)
            .await
            .contains("Invalid `signature`")
    );
    assert_eq!(upstream.stats().signature_rejections, 2);

    // With thinking on, the tool-using turn must start with its thinking.
    let mut dropped = second;
    let without_thinking: Vec<Value> = content[1..].to_vec();
    dropped["messages"][1]["content"] = json!(without_thinking);
    assert!(bad_request(&upstream, &dropped).await.starts_with(
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
         `tool_use`."
    ));
    // Without thinking the same history is fine.
    dropped.as_object_mut().unwrap().remove("thinking");
    assert_eq!(post(&upstream, &dropped).await.status(), 200);
}

#[tokio::test]
async fn streamed_thinking_has_thinking_and_signature_deltas() {
    let upstream = spawn().await;
    let mut request = thinking_request(false);
    request["stream"] = json!(true);
    let events = read_events(post(&upstream, &request).await).await;
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|(_, data)| data["delta"]["type"].as_str())
        .collect();
    assert!(kinds.contains(&"thinking_delta"));
    assert!(kinds.contains(&"signature_delta"));
    let blocks = assemble(&events);
    assert_eq!(blocks[0]["type"], "thinking");
    let thinking = blocks[0]["thinking"].as_str().unwrap();
    assert_eq!(blocks[0]["signature"], thinking_signature(thinking));
    assert!(
        blocks[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("Fake reply to: Weather in Paris?")
    );
    // Thinking tokens are output tokens.
    let (_, delta) = &events[events.len() - 2];
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 8);
}

#[tokio::test]
async fn adaptive_thinking_may_omit_the_text() {
    let upstream = spawn().await;
    let mut request = body("m", "Hi");
    request["thinking"] = json!({"type": "adaptive", "display": "omitted"});
    let reply = json_of(post(&upstream, &request).await).await;
    let thinking = &reply["content"][0];
    assert_eq!(thinking["type"], "thinking");
    assert_eq!(thinking["thinking"], "");
    assert_eq!(thinking["signature"], thinking_signature(""));
    // Thinking tokens are counted all the same.
    assert!(reply["usage"]["output_tokens"].as_u64().unwrap() > 8);

    let mut next = request.clone();
    next["messages"] = json!([request["messages"][0],
        {"role": "assistant", "content": reply["content"]},
        {"role": "user", "content": "And then?"}]);
    assert_eq!(post(&upstream, &next).await.status(), 200);
}

#[tokio::test]
async fn images_are_counted_and_echo_round_trips() {
    let upstream = spawn().await;
    let mut request = body("m", "");
    request["messages"][0]["content"] = json!([
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
            "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Compare these"}]);
    let reply = json_of(post(&upstream, &request).await).await;
    assert_eq!(
        reply["content"][0]["text"],
        "Fake reply to: Compare these [images: 2]"
    );

    request["messages"][0]["content"][0]["source"]["data"] = json!("not base64!");
    assert!(
        bad_request(&upstream, &request)
            .await
            .contains("image.source.base64.data")
    );

    let echo = json_of(post(&upstream, &body("m", "Please echo: Grüße, \"world\"!")).await).await;
    assert_eq!(echo["content"][0]["text"], "Grüße, \"world\"!");
    let events = read_events(post(&upstream, &stream_body("m", "echo: round trip")).await).await;
    assert_eq!(
        assemble(&events),
        [json!({"type": "text", "text": "round trip"})]
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_reply() {
    let upstream = spawn().await;
    let mut request = body("m", "Hello");
    request["max_tokens"] = json!(2);
    let reply = json_of(post(&upstream, &request).await).await;
    assert_eq!(reply["stop_reason"], "max_tokens");
    assert_eq!(reply["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn cache_control_writes_then_reads_the_prefix() {
    let upstream = spawn().await;
    let mut request = body("m", "Hello");
    request["system"] = json!([{"type": "text", "text": "You are terse. ".repeat(20),
        "cache_control": {"type": "ephemeral"}}]);
    let first = json_of(post(&upstream, &request).await).await;
    assert_eq!(first["usage"]["cache_creation_input_tokens"], 75);
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(first["usage"]["input_tokens"], 2);
    request["messages"][0]["content"] = json!("Another question");
    let second = json_of(post(&upstream, &request).await).await;
    assert_eq!(second["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(second["usage"]["cache_read_input_tokens"], 75);
    assert_eq!(second["usage"]["input_tokens"], 4);
}

#[tokio::test]
async fn magic_statuses_use_the_anthropic_shape() {
    let upstream = spawn().await;
    let response = post(&upstream, &body("status-529", "q")).await;
    assert_eq!(response.status(), 529);
    assert_eq!(response.headers()["retry-after"], "1");
    let error = json_of(response).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "overloaded_error");

    let response = post(&upstream, &body("status-429", "q")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(json_of(response).await["error"]["type"], "rate_limit_error");

    let response = post(&upstream, &body("status-500", "q")).await;
    assert_eq!(response.status(), 500);
    assert_eq!(json_of(response).await["error"]["type"], "api_error");

    upstream.set_config(FakeConfig {
        fail_rate: 1.0,
        fail_statuses: vec![503],
        ..FakeConfig::default()
    });
    let response = post(&upstream, &body("m", "q")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(json_of(response).await["error"]["type"], "api_error");
    assert_eq!(upstream.stats().injected_failures, 1);
}

#[tokio::test]
async fn transport_faults_apply() {
    let upstream = spawn().await;
    assert!(
        try_post(&upstream, "/v1/messages", &body("reset", "q"))
            .await
            .is_err()
    );
    assert_eq!(upstream.stats().connections_reset, 1);

    let response = post(&upstream, &stream_body("cut-after-3", "q")).await;
    assert_eq!(response.status(), 200);
    let received = read_until_error(response).await;
    let names: Vec<String> = events(&received)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["message_start", "content_block_start", "ping"]);
    assert_eq!(upstream.stats().streams_cut, 1);

    let response = post(&upstream, &stream_body("stall-after-1", "q")).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"event: message_start\n"));
    let next = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(next.is_err(), "the stalled stream sent more: {next:?}");
    wait_until(|| upstream.stats().streams_stalled == 1).await;

    let started = std::time::Instant::now();
    assert_eq!(post(&upstream, &body("slow-150", "q")).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn error_event_is_an_overloaded_error() {
    let upstream = spawn().await;
    let events = read_events(post(&upstream, &stream_body("error-event", "q")).await).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].0, "message_start");
    assert_eq!(events[1].0, "error");
    assert_eq!(
        events[1].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert_eq!(upstream.stats().stream_error_events, 1);
}

#[tokio::test]
async fn count_tokens_counts_the_prompt() {
    let upstream = spawn().await;
    let request = json!({"model": "m", "system": "Be brief.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let response = try_post(&upstream, "/v1/messages/count_tokens", &request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await, json!({"input_tokens": 10}));

    let mut invalid = request.clone();
    invalid["messages"] = json!([]);
    let response = try_post(&upstream, "/v1/messages/count_tokens", &invalid)
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let mut failing = request;
    failing["model"] = json!("status-500");
    let response = try_post(&upstream, "/v1/messages/count_tokens", &failing)
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(upstream.stats().anthropic_count_tokens_requests, 3);
}

#[tokio::test]
async fn models_are_listed_in_the_anthropic_shape() {
    let upstream = spawn_with(FakeConfig {
        models: vec!["claude-a".into(), "claude-b".into(), "claude-c".into()],
        ..FakeConfig::default()
    })
    .await;
    let get = |path: &str| {
        client()
            .get(url(&upstream, path))
            .header("x-api-key", "k")
            .header("anthropic-version", VERSION)
            .send()
    };
    let list = json_of(get("/v1/models").await.unwrap()).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert_eq!(list["data"][0]["type"], "model");
    assert_eq!(list["data"][0]["id"], "claude-a");
    assert_eq!(list["data"][0]["display_name"], "claude-a");
    assert!(list["data"][0]["created_at"].is_string());
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], "claude-a");
    assert_eq!(list["last_id"], "claude-c");

    let page = json_of(get("/v1/models?limit=1&after_id=claude-a").await.unwrap()).await;
    assert_eq!(page["data"][0]["id"], "claude-b");
    assert_eq!(page["has_more"], true);

    let one = json_of(get("/v1/models/claude-b").await.unwrap()).await;
    assert_eq!(one["id"], "claude-b");
    let missing = get("/v1/models/claude-z").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(json_of(missing).await["error"]["type"], "not_found_error");

    // Without `anthropic-version` the listing keeps the OpenAI shape.
    let openai = json_of(
        client()
            .get(url(&upstream, "/v1/models"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(openai["object"], "list");

    let response = post(&upstream, &body("claude-z", "q")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        json_of(response).await["error"],
        json!({"type": "not_found_error", "message": "model: claude-z"})
    );
}

#[tokio::test]
async fn last_request_keeps_unknown_fields_and_stats_name_the_headers() {
    let upstream = spawn().await;
    let mut request = body("m", "q");
    request["x_passthrough"] = json!({"keep": [1, 2]});
    let response = client()
        .post(url(&upstream, "/v1/messages"))
        .header("x-api-key", "sk-ant-secret")
        .header("anthropic-version", VERSION)
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .body(serde_json::to_vec(&request).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let last = upstream.last_request().unwrap();
    assert_eq!(last.path, "/v1/messages");
    assert_eq!(last.body, request);
    assert_eq!(last.header("x-api-key"), Some("sk-ant-secret"));

    let summary = upstream.stats().last_request.unwrap();
    assert_eq!(summary.dialect, "anthropic");
    assert_eq!(summary.path, "/v1/messages");
    assert!(summary.header_names.iter().any(|name| name == "x-api-key"));
    assert!(
        summary
            .header_names
            .iter()
            .any(|name| name == "anthropic-beta")
    );
    assert!(
        !summary
            .header_names
            .iter()
            .any(|name| name == "authorization")
    );
    assert!(!summary.key_in_query);
    let over_http = client()
        .get(url(&upstream, "/_fake/stats"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!over_http.contains("sk-ant-secret"));
}
