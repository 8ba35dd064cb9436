//! The Gemini API: replies, streams (SSE and JSON array), validation,
//! thought signatures, function calling, faults, token counting and models.

use std::time::Duration;

use futures_util::StreamExt as _;
use orch_fake_upstream::{FakeConfig, FakeUpstream, function_call_signature};
use serde_json::{Value, json};

use super::{client, json_of, read_until_error, spawn, spawn_with, wait_until};

fn url(upstream: &FakeUpstream, path: &str) -> String {
    format!("http://{}{path}", upstream.addr())
}

fn generate(model: &str) -> String {
    format!("/v1beta/models/{model}:generateContent")
}

fn stream_sse(model: &str) -> String {
    format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
}

fn user(text: &str) -> Value {
    json!({"role": "user", "parts": [{"text": text}]})
}

fn body(text: &str) -> Value {
    json!({"contents": [user(text)]})
}

async fn try_post(
    upstream: &FakeUpstream,
    path: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    client()
        .post(url(upstream, path))
        .header("x-goog-api-key", "AIza-test")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
}

async fn post(upstream: &FakeUpstream, path: &str, body: &Value) -> reqwest::Response {
    try_post(upstream, path, body).await.unwrap()
}

/// Posts `body` and returns the message of the expected 400.
async fn bad_request(upstream: &FakeUpstream, body: &Value) -> String {
    let response = post(upstream, &generate("m"), body).await;
    assert_eq!(response.status(), 400);
    let error = json_of(response).await;
    assert_eq!(error["error"]["code"], 400);
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    error["error"]["message"].as_str().unwrap().to_owned()
}

/// The responses of a complete SSE stream (events end with `\r\n\r\n`).
fn sse_responses(text: &str) -> Vec<Value> {
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
    text.split_terminator("\r\n\r\n")
        .map(|event| serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

async fn read_sse(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    sse_responses(&response.text().await.unwrap())
}

/// The parts of a response's first candidate.
fn parts(response: &Value) -> Vec<Value> {
    response["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .clone()
}

fn tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather of a city",
         "parameters": {"type": "OBJECT",
            "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}},
            "required": ["city", "days"]}},
        {"name": "get_time",
         "parametersJsonSchema": {"type": "object",
            "properties": {"zone": {"type": "string"}}, "required": ["zone"]}},
        {"name": "unused"}]}])
}

#[tokio::test]
async fn generate_content_has_the_gemini_shape() {
    let upstream = spawn().await;
    let response = post(
        &upstream,
        &generate("gemini-test"),
        &body("What is the capital of France?"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let reply = json_of(response).await;
    let candidate = &reply["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(
        candidate["content"]["parts"],
        json!([{"text": "Fake reply to: What is the capital of France?"}])
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    assert_eq!(reply["modelVersion"], "gemini-test");
    // An unknown field, for gateway pass-through tests.
    assert_eq!(reply["xFakeExtension"], json!({"ok": true}));
    assert!(
        reply["responseId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(
        reply["usageMetadata"],
        json!({"promptTokenCount": 8, "candidatesTokenCount": 8, "totalTokenCount": 16,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]})
    );
    let stats = upstream.stats();
    assert_eq!(stats.gemini_requests, 1);
    assert_eq!(stats.chat_requests + stats.anthropic_requests, 0);
}

#[tokio::test]
async fn sse_stream_ends_with_finish_reason_and_usage() {
    let upstream = spawn_with(FakeConfig {
        chunks: 4,
        ..FakeConfig::default()
    })
    .await;
    let responses = read_sse(post(&upstream, &stream_sse("m"), &body("Hello")).await).await;
    assert_eq!(responses.len(), 4);
    let text: String = responses
        .iter()
        .map(|response| parts(response)[0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Fake reply to: Hello");
    for (k, response) in responses.iter().enumerate() {
        assert_eq!(response["responseId"], responses[0]["responseId"]);
        assert_eq!(response["xFakeExtension"], json!({"ok": true}));
        assert_eq!(response["usageMetadata"]["promptTokenCount"], 2);
        assert_eq!(response["usageMetadata"]["candidatesTokenCount"], k + 1);
        let finish = response["candidates"][0].get("finishReason");
        assert_eq!(finish.is_some(), k == 3);
    }
    assert_eq!(responses[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(responses[3]["usageMetadata"]["totalTokenCount"], 6);
    let stats = upstream.stats();
    assert_eq!((stats.streams_started, stats.streams_completed), (1, 1));
}

#[tokio::test]
async fn without_alt_sse_the_stream_is_a_json_array() {
    let upstream = spawn().await;
    let response = post(
        &upstream,
        "/v1beta/models/m:streamGenerateContent",
        &body("Hello"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let array: Vec<Value> = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(array.len(), 8);
    assert_eq!(array[7]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn api_keys_are_checked_and_query_keys_recorded() {
    let upstream = spawn_with(FakeConfig {
        expect_key: Some("AIza-right".into()),
        ..FakeConfig::default()
    })
    .await;
    let request = serde_json::to_vec(&body("q")).unwrap();

    let response = client()
        .post(url(&upstream, &generate("m")))
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        json_of(response).await["error"]["status"],
        "PERMISSION_DENIED"
    );

    let response = client()
        .post(url(&upstream, &generate("m")))
        .header("x-goog-api-key", "AIza-wrong")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = json_of(response).await;
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(error["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert!(!error.to_string().contains("AIza-wrong"));

    let response = client()
        .post(url(&upstream, &generate("m")))
        .header("x-goog-api-key", "AIza-right")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stats = upstream.stats();
    assert_eq!(stats.gemini_key_in_query, 0);
    let summary = stats.last_request.unwrap();
    assert_eq!(summary.dialect, "gemini");
    assert!(
        summary
            .header_names
            .iter()
            .any(|name| name == "x-goog-api-key")
    );
    assert!(!summary.key_in_query);

    // The discouraged query key works, and is flagged.
    let response = client()
        .post(url(
            &upstream,
            "/v1beta/models/m:streamGenerateContent?alt=sse&key=AIza-right",
        ))
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    let stats = upstream.stats();
    assert_eq!(stats.gemini_key_in_query, 1);
    assert_eq!(stats.auth_failures, 2);
    let summary = stats.last_request.unwrap();
    assert!(summary.key_in_query);
    assert_eq!(
        summary.path,
        "/v1beta/models/m:streamGenerateContent?alt=sse&key=REDACTED"
    );
    assert!(
        !serde_json::to_string(&upstream.stats())
            .unwrap()
            .contains("AIza-right")
    );
}

#[tokio::test]
async fn validation_errors_use_google_messages() {
    let upstream = spawn().await;
    assert!(
        bad_request(&upstream, &json!({"contents": []}))
            .await
            .contains("contents is not specified")
    );
    assert_eq!(
        bad_request(
            &upstream,
            &json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})
        )
        .await,
        "Please use a valid role: user, model."
    );
    assert!(
        bad_request(
            &upstream,
            &json!({"contents": [{"role": "user", "parts": []}]})
        )
        .await
        .contains("contents.parts must not be empty")
    );
    assert!(
        bad_request(
            &upstream,
            &json!({"contents": [{"role": "user", "parts": [{"image_url": "x"}]}]})
        )
        .await
        .contains("required oneof field 'data' must have one initialized field")
    );
    assert!(
        bad_request(
            &upstream,
            &json!({"contents": [user("q")], "generationConfig": {"temperature": "warm"}})
        )
        .await
        .starts_with("Invalid value at 'generation_config.temperature' (TYPE_FLOAT)")
    );
    assert!(
        bad_request(
            &upstream,
            &json!({"contents": [user("q")], "generationConfig": {"topK": "many"}})
        )
        .await
        .contains("(TYPE_INT32)")
    );
    assert!(
        bad_request(
            &upstream,
            &json!({"contents": [{"role": "user", "parts": [
                {"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]})
        )
        .await
        .contains("Base64 decoding failed")
    );
    let response = client()
        .post(url(&upstream, &generate("m")))
        .header("x-goog-api-key", "k")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        json_of(response).await["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON payload received.")
    );
}

#[tokio::test]
async fn function_calls_then_responses() {
    let upstream = spawn().await;
    let mut first = body("Weather and time in Paris?");
    first["tools"] = tools();
    let reply = json_of(post(&upstream, &generate("m"), &first).await).await;
    let calls = parts(&reply);
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "example", "days": 1}}})
    );
    assert_eq!(
        calls[1],
        json!({"functionCall": {"name": "get_time", "args": {"zone": "example"}}})
    );
    assert_eq!(reply["candidates"][0]["finishReason"], "STOP");

    let second = json!({"tools": tools(), "contents": [
        first["contents"][0],
        {"role": "model", "parts": calls},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"result": "Sunny, 24C"}}},
            {"functionResponse": {"name": "get_time", "response": {"time": "10:00"}}}]}]});
    let reply = json_of(post(&upstream, &generate("m"), &second).await).await;
    assert_eq!(
        parts(&reply),
        [json!({"text": "Tool result received: Sunny, 24C; {\"time\":\"10:00\"}"})]
    );

    // Responses must answer the calls of the turn just before.
    let mut wrong_count = second.clone();
    wrong_count["contents"][2]["parts"]
        .as_array_mut()
        .unwrap()
        .pop();
    assert!(
        bad_request(&upstream, &wrong_count)
            .await
            .contains("number of function response parts is equal to the number of function call")
    );
    let mut wrong_name = second.clone();
    wrong_name["contents"][2]["parts"][1]["functionResponse"]["name"] = json!("get_date");
    assert!(
        bad_request(&upstream, &wrong_name)
            .await
            .contains("no function call named `get_date`")
    );
    let orphan = json!({"contents": [user("q"), {"role": "user", "parts": [
        {"functionResponse": {"name": "f", "response": {}}}]}]});
    assert!(
        bad_request(&upstream, &orphan)
            .await
            .contains("function response turn comes immediately after a function call turn")
    );

    // `toolConfig` narrows or disables calling.
    first["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
    let reply = json_of(post(&upstream, &generate("m"), &first).await).await;
    assert!(parts(&reply)[0]["text"].is_string());
    assert_eq!(upstream.stats().tool_call_responses, 1);
}

#[tokio::test]
async fn call_ids_appear_once_the_conversation_uses_them() {
    let upstream = spawn().await;
    let request = json!({"tools": tools(), "contents": [
        user("q"),
        {"role": "model", "parts": [
            {"functionCall": {"id": "call_0_get_time", "name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"id": "call_0_get_time", "name": "get_time",
                "response": {"result": "noon"}}}]},
        {"role": "model", "parts": [{"text": "It is noon."}]},
        user("And the weather?")]});
    let reply = json_of(post(&upstream, &generate("m"), &request).await).await;
    let calls = parts(&reply);
    let id = calls[0]["functionCall"]["id"].as_str().unwrap();
    assert!(id.starts_with("fc_"));
    assert_ne!(
        calls[0]["functionCall"]["id"],
        calls[1]["functionCall"]["id"]
    );

    let mut mismatched = request;
    mismatched["contents"][2]["parts"][0]["functionResponse"]["id"] = json!("call_9");
    assert!(
        bad_request(&upstream, &mismatched)
            .await
            .contains("and id `call_9`")
    );
}

fn thinking_request() -> Value {
    json!({"tools": tools(), "contents": [user("Weather in Paris?")],
        "generationConfig": {"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 1024}}})
}

#[tokio::test]
async fn thought_signatures_must_come_back() {
    let upstream = spawn().await;
    let first = thinking_request();
    let reply = json_of(post(&upstream, &generate("m"), &first).await).await;
    let model_parts = parts(&reply);
    assert_eq!(model_parts[0]["thought"], true);
    assert!(
        model_parts[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Thinking about")
    );
    let call = &model_parts[1]["functionCall"];
    assert_eq!(
        model_parts[1]["thoughtSignature"],
        function_call_signature(call["name"].as_str().unwrap(), &call["args"])
    );
    // Only the first of parallel calls is signed.
    assert!(model_parts[2].get("thoughtSignature").is_none());
    assert!(
        reply["usageMetadata"]["thoughtsTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(upstream.stats().thinking_responses, 1);

    let responses = json!({"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": "Sunny"}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}}]});
    let mut second = first.clone();
    second["contents"] = json!([first["contents"][0],
        {"role": "model", "parts": model_parts}, responses]);
    let response = post(&upstream, &generate("m"), &second).await;
    assert_eq!(response.status(), 200);
    let reply = json_of(response).await;
    assert_eq!(parts(&reply)[0]["thought"], true);
    assert_eq!(
        parts(&reply)[1]["text"],
        "Tool result received: Sunny; noon"
    );

    // Thought parts may be dropped; the signature may not.
    let mut without_thoughts = second.clone();
    without_thoughts["contents"][1]["parts"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert_eq!(
        post(&upstream, &generate("m"), &without_thoughts)
            .await
            .status(),
        200
    );
    let mut missing = without_thoughts.clone();
    missing["contents"][1]["parts"][0]
        .as_object_mut()
        .unwrap()
        .remove("thoughtSignature");
    let message = bad_request(&upstream, &missing).await;
    assert!(
        message.starts_with("Function call is missing a thought_signature in functionCall parts.")
    );
    assert!(message.contains("`default_api:get_weather` , position 2"));

    let mut corrupted = without_thoughts;
    corrupted["contents"][1]["parts"][0]["thoughtSignature"] = json!("c2lnOmZvcmdlZA==");
    assert_eq!(
        bad_request(&upstream, &corrupted).await,
        "Corrupted thought signature."
    );
    // Moving the signature to another call corrupts it too.
    let mut moved = second;
    let signature = moved["contents"][1]["parts"][1]["thoughtSignature"].take();
    moved["contents"][1]["parts"][1]
        .as_object_mut()
        .unwrap()
        .remove("thoughtSignature");
    moved["contents"][1]["parts"][2]["thoughtSignature"] = signature;
    assert!(bad_request(&upstream, &moved).await.contains("thought"));
    assert_eq!(upstream.stats().signature_rejections, 3);
}

#[tokio::test]
async fn streamed_thoughts_come_first() {
    let upstream = spawn().await;
    let mut request = thinking_request();
    request.as_object_mut().unwrap().remove("tools");
    let responses = read_sse(post(&upstream, &stream_sse("m"), &request).await).await;
    assert_eq!(parts(&responses[0])[0]["thought"], true);
    assert!(
        responses[1..]
            .iter()
            .all(|r| parts(r)[0].get("thought").is_none())
    );
    let last = responses.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(
        last["usageMetadata"]["thoughtsTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn images_are_counted_and_echo_round_trips() {
    let upstream = spawn().await;
    let request = json!({"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
        {"text": "Compare these"}]}]});
    let reply = json_of(post(&upstream, &generate("m"), &request).await).await;
    assert_eq!(
        parts(&reply)[0]["text"],
        "Fake reply to: Compare these [images: 2]"
    );

    let reply = json_of(post(&upstream, &generate("m"), &body("echo: Grüße \"x\"")).await).await;
    assert_eq!(parts(&reply)[0]["text"], "Grüße \"x\"");
    let responses = read_sse(post(&upstream, &stream_sse("m"), &body("echo: abc")).await).await;
    let text: String = responses
        .iter()
        .map(|r| parts(r)[0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "abc");
}

#[tokio::test]
async fn repeated_prompts_report_cached_tokens() {
    let upstream = spawn().await;
    let request = json!({"systemInstruction": {"parts": [{"text": "Be terse. ".repeat(40)}]},
        "contents": [user("Hello")]});
    let first = json_of(post(&upstream, &generate("m"), &request).await).await;
    assert!(
        first["usageMetadata"]
            .get("cachedContentTokenCount")
            .is_none()
    );
    let mut next_turn = request.clone();
    next_turn["contents"] = json!([user("Hello"),
        {"role": "model", "parts": [{"text": "Hi"}]}, user("More")]);
    let second = json_of(post(&upstream, &generate("m"), &next_turn).await).await;
    // The system instruction and the first turn were seen before.
    assert_eq!(second["usageMetadata"]["cachedContentTokenCount"], 102);
    assert_eq!(second["usageMetadata"]["promptTokenCount"], 103);
}

#[tokio::test]
async fn magic_statuses_use_the_google_shape() {
    let upstream = spawn().await;
    let response = post(&upstream, &generate("status-429"), &body("q")).await;
    assert_eq!(response.status(), 429);
    let error = json_of(response).await["error"].clone();
    assert_eq!(error["code"], 429);
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    let retry = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|detail| detail["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
        .unwrap();
    assert_eq!(retry["retryDelay"], "1s");

    let response = post(&upstream, &generate("status-503"), &body("q")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(json_of(response).await["error"]["status"], "UNAVAILABLE");

    let response = post(&upstream, &stream_sse("status-500"), &body("q")).await;
    assert_eq!(response.status(), 500);
    assert_eq!(json_of(response).await["error"]["status"], "INTERNAL");

    upstream.set_config(FakeConfig {
        models: vec!["gemini-a".into()],
        ..FakeConfig::default()
    });
    let response = post(&upstream, &generate("gemini-b"), &body("q")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_of(response).await["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn transport_faults_apply() {
    let upstream = spawn().await;
    assert!(
        try_post(&upstream, &generate("reset"), &body("q"))
            .await
            .is_err()
    );
    assert_eq!(upstream.stats().connections_reset, 1);

    let response = post(&upstream, &stream_sse("cut-after-2"), &body("q")).await;
    assert_eq!(response.status(), 200);
    let received = read_until_error(response).await;
    assert_eq!(sse_responses(&received).len(), 2);
    assert_eq!(upstream.stats().streams_cut, 1);

    let response = post(&upstream, &stream_sse("stall-after-1"), &body("q")).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: {"));
    let next = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(next.is_err(), "the stalled stream sent more: {next:?}");
    wait_until(|| upstream.stats().streams_stalled == 1).await;

    let responses = read_sse(post(&upstream, &stream_sse("error-event"), &body("q")).await).await;
    assert_eq!(responses.len(), 2);
    assert!(responses[0]["candidates"].is_array());
    assert_eq!(responses[1]["error"]["code"], 503);
    assert_eq!(responses[1]["error"]["status"], "UNAVAILABLE");
    assert_eq!(upstream.stats().stream_error_events, 1);

    let started = std::time::Instant::now();
    let response = post(&upstream, &generate("slow-150"), &body("q")).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn count_tokens_accepts_both_body_forms() {
    let upstream = spawn().await;
    let path = "/v1beta/models/m:countTokens";
    let contents = json!({"contents": [user("What is the capital of France?")]});
    let response = post(&upstream, path, &contents).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_of(response).await,
        json!({"totalTokens": 8, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]})
    );
    let wrapped = json!({"generateContentRequest": {"model": "models/m",
        "contents": contents["contents"],
        "systemInstruction": {"parts": [{"text": "Be brief."}]}}});
    assert_eq!(
        json_of(post(&upstream, path, &wrapped).await).await["totalTokens"],
        10
    );
    let unnamed = json!({"generateContentRequest": {"contents": contents["contents"]}});
    assert_eq!(post(&upstream, path, &unnamed).await.status(), 400);
    assert_eq!(upstream.stats().gemini_count_tokens_requests, 3);
    assert_eq!(upstream.stats().gemini_requests, 0);
}

#[tokio::test]
async fn models_are_listed_in_pages() {
    let upstream = spawn_with(FakeConfig {
        models: vec!["g-1".into(), "g-2".into(), "g-3".into()],
        ..FakeConfig::default()
    })
    .await;
    let get = |path: &str| {
        client()
            .get(url(&upstream, path))
            .header("x-goog-api-key", "k")
            .send()
    };
    let all = json_of(get("/v1beta/models").await.unwrap()).await;
    let names: Vec<&str> = all["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["models/g-1", "models/g-2", "models/g-3"]);
    assert!(all.get("nextPageToken").is_none());
    assert!(
        all["models"][0]["supportedGenerationMethods"]
            .as_array()
            .unwrap()
            .contains(&json!("generateContent"))
    );

    let page = json_of(get("/v1beta/models?pageSize=2").await.unwrap()).await;
    assert_eq!(page["models"].as_array().unwrap().len(), 2);
    let token = page["nextPageToken"].as_str().unwrap();
    let rest = json_of(
        get(&format!("/v1beta/models?pageSize=2&pageToken={token}"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest["models"][0]["name"], "models/g-3");
    assert!(rest.get("nextPageToken").is_none());

    let one = json_of(get("/v1beta/models/g-2").await.unwrap()).await;
    assert_eq!(one["name"], "models/g-2");
    assert_eq!(get("/v1beta/models/g-9").await.unwrap().status(), 404);
    let unauthenticated = client()
        .get(url(&upstream, "/v1beta/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 403);
    assert_eq!(upstream.stats().model_list_requests, 6);
}

#[tokio::test]
async fn the_stable_v1_paths_work_too() {
    let upstream = spawn().await;
    let reply = json_of(post(&upstream, "/v1/models/m:generateContent", &body("Hi")).await).await;
    assert_eq!(parts(&reply)[0]["text"], "Fake reply to: Hi");
    let responses = read_sse(
        post(
            &upstream,
            "/v1/models/m:streamGenerateContent?alt=sse",
            &body("Hi"),
        )
        .await,
    )
    .await;
    assert_eq!(responses.len(), 8);
    let count = json_of(post(&upstream, "/v1/models/m:countTokens", &body("Hi")).await).await;
    assert_eq!(count["totalTokens"], 1);

    // `GET /v1/models` is Gemini's with a Gemini key, OpenAI's without.
    let gemini = json_of(
        client()
            .get(url(&upstream, "/v1/models"))
            .header("x-goog-api-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(gemini["models"][0]["name"], "models/fake-model");
    let one = json_of(
        client()
            .get(url(&upstream, "/v1/models/fake-model?key=k"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(one["name"], "models/fake-model");
    let openai = json_of(
        client()
            .get(url(&upstream, "/v1/models"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(openai["object"], "list");

    upstream.set_config(FakeConfig {
        models: vec!["only".into()],
        ..FakeConfig::default()
    });
    let missing = post(&upstream, "/v1/models/m:generateContent", &body("Hi")).await;
    assert_eq!(missing.status(), 404);
    assert!(
        json_of(missing).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API version v1,")
    );
    let stats = upstream.stats();
    assert_eq!(stats.gemini_requests, 3);
    assert_eq!(stats.gemini_key_in_query, 1);
}

#[tokio::test]
async fn last_request_keeps_unknown_fields() {
    let upstream = spawn().await;
    let mut request = body("q");
    request["labels"] = json!({"team": "gateway"});
    request["x_passthrough"] = json!([1, {"a": null}]);
    assert_eq!(
        post(&upstream, &generate("m"), &request).await.status(),
        200
    );
    let last = upstream.last_request().unwrap();
    assert_eq!(last.path, "/v1beta/models/m:generateContent");
    assert_eq!(last.body, request);
    assert_eq!(last.header("x-goog-api-key"), Some("AIza-test"));
}
