//! Non-streaming chat completions: replies, tools, validation, models.

use orch_fake_upstream::FakeConfig;
use serde_json::{Value, json};

use super::{chat_body, client, json_of, post_chat, spawn, spawn_with};

#[tokio::test]
async fn text_reply_has_the_openai_shape() {
    let upstream = spawn().await;
    let response = post_chat(
        &upstream,
        &chat_body("gpt-test", "What is the capital of France?"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = json_of(response).await;

    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 0);
    assert_eq!(body["model"], "gpt-test");
    assert!(body["system_fingerprint"].is_string());
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Fake reply to: What is the capital of France?"
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({
            "prompt_tokens": 8, // 30 chars / 4, rounded up
            "completion_tokens": 8,
            "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        })
    );
    assert_eq!(body["x_fake_extension"], json!({"ok": true}));
}

#[tokio::test]
async fn ids_are_unique() {
    let upstream = spawn().await;
    let first = json_of(post_chat(&upstream, &chat_body("m", "a")).await).await;
    let second = json_of(post_chat(&upstream, &chat_body("m", "a")).await).await;
    assert_ne!(first["id"], second["id"]);
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                               "unit": {"type": "string"}},
                "required": ["city", "days"]}}},
        {"type": "function", "function": {
            "name": "get_time",
            "parameters": {"type": "object",
                "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}},
        {"type": "function", "function": {"name": "unused"}}
    ])
}

#[tokio::test]
async fn tools_are_called_in_parallel() {
    let upstream = spawn().await;
    let mut body = chat_body("m", "Weather and time in Paris?");
    body["tools"] = weather_tools();
    let reply = json_of(post_chat(&upstream, &body).await).await;

    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "example", "days": 1}));
    assert_eq!(calls[1]["function"]["name"], "get_time");
    assert_eq!(upstream.stats().tool_call_responses, 1);
}

#[tokio::test]
async fn tool_choice_and_parallel_flag_narrow_the_calls() {
    let upstream = spawn().await;
    let mut body = chat_body("m", "q");
    body["tools"] = weather_tools();
    body["parallel_tool_calls"] = json!(false);
    let reply = json_of(post_chat(&upstream, &body).await).await;
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    body["tool_choice"] = json!("none");
    let reply = json_of(post_chat(&upstream, &body).await).await;
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn tool_results_are_acknowledged() {
    let upstream = spawn().await;
    let body = json!({
        "model": "m",
        "tools": weather_tools(),
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_abc",
             "content": "Sunny, 24 degrees, light wind from the south-west all day"}
        ]
    });
    let reply = json_of(post_chat(&upstream, &body).await).await;
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        choice["message"]["content"],
        "Tool result received: Sunny, 24 degrees, light wind from the s"
    );
}

/// Posts `body` and returns the error object of the expected 400.
async fn bad_request(body: Value) -> Value {
    let upstream = spawn().await;
    let response = post_chat(&upstream, &body).await;
    assert_eq!(response.status(), 400);
    let error = json_of(response).await["error"].clone();
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"].is_string());
    error
}

#[tokio::test]
async fn bad_image_url_is_rejected() {
    let error = bad_request(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}
        ]}]}),
    )
    .await;
    assert_eq!(error["param"], "messages[0].content[1].image_url.url");
}

#[tokio::test]
async fn valid_images_are_accepted() {
    let upstream = spawn().await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
    ]}]});
    assert_eq!(post_chat(&upstream, &body).await.status(), 200);
}

#[tokio::test]
async fn images_are_mentioned_and_echo_round_trips() {
    let upstream = spawn().await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    ]}]});
    let reply = json_of(post_chat(&upstream, &body).await).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Fake reply to: Compare [images: 2]"
    );

    let reply =
        json_of(post_chat(&upstream, &chat_body("m", "say echo: Hi \"there\"")).await).await;
    assert_eq!(reply["choices"][0]["message"]["content"], "Hi \"there\"");
    assert_eq!(reply["usage"]["completion_tokens"], 8);
    let reply = json_of(post_chat(&upstream, &chat_body("m", "echo: ok")).await).await;
    assert_eq!(reply["choices"][0]["message"]["content"], "ok");
    assert_eq!(reply["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn unmatched_tool_call_id_is_rejected() {
    let error = bad_request(json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "r"}
    ]}))
    .await;
    assert_eq!(error["param"], "messages[2].tool_call_id");
}

#[tokio::test]
async fn other_validation_errors() {
    let error = bad_request(json!({"messages": [{"role": "user", "content": "q"}]})).await;
    assert_eq!(error["param"], "model");
    let error = bad_request(json!({"model": "m", "messages": []})).await;
    assert_eq!(error["code"], "empty_array");
    let error =
        bad_request(json!({"model": "m", "messages": [{"role": "robot", "content": "q"}]})).await;
    assert_eq!(error["param"], "messages[0].role");
    let error = bad_request(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "hologram"}]}]}),
    )
    .await;
    assert_eq!(error["param"], "messages[0].content[0].type");
    let error = bad_request(
        json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
        "tools": [{"type": "function", "function": {"description": "no name"}}]}),
    )
    .await;
    assert_eq!(error["param"], "tools[0].function.name");
    let error = bad_request(json!({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]}))
    .await;
    assert_eq!(error["param"], "messages[0].tool_calls[0].id");
    let error = bad_request(json!(["not", "an", "object"])).await;
    assert_eq!(error["message"], "The request body must be a JSON object.");
}

#[tokio::test]
async fn body_that_is_not_json_is_rejected() {
    let upstream = spawn().await;
    let response = client()
        .post(format!("{}/chat/completions", upstream.base_url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = json_of(response).await;
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn models_are_listed_and_enforced() {
    let upstream = spawn().await;
    let list = json_of(
        client()
            .get(format!("{}/models", upstream.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], "fake-model");
    assert_eq!(list["data"][0]["object"], "model");
    assert_eq!(list["data"][0]["owned_by"], "fake");

    let upstream = spawn_with(FakeConfig {
        models: vec!["alpha".into(), "beta".into()],
        ..FakeConfig::default()
    })
    .await;
    let list = json_of(
        client()
            .get(format!("{}/models", upstream.base_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ids: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!("alpha"), json!("beta")]);

    assert_eq!(
        post_chat(&upstream, &chat_body("beta", "q")).await.status(),
        200
    );
    let response = post_chat(&upstream, &chat_body("gamma", "q")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_of(response).await["error"]["code"], "model_not_found");
    // Magic names are served whatever the list says.
    assert_eq!(
        post_chat(&upstream, &chat_body("slow-1", "q"))
            .await
            .status(),
        200
    );

    let one = client()
        .get(format!("{}/models/alpha", upstream.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(one).await["id"], "alpha");
    let missing = client()
        .get(format!("{}/models/gamma", upstream.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn unknown_routes_get_an_openai_404() {
    let upstream = spawn().await;
    let response = client()
        .get(format!("{}/embeddings", upstream.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        json_of(response).await["error"]["type"],
        "invalid_request_error"
    );
}
