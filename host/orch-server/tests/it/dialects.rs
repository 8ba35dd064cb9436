//! The Anthropic and Gemini ingress as the host sees it: keys where each
//! dialect puts them, errors in each dialect's shape (from the dialect
//! plugin, or from the host when the plugin is missing), the request log.
//! Translation itself is covered by the plugins' conformance cases and the
//! end-to-end SDK tests.

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Spec, request_logs};

const CLIENT_KEY: &str = "sk-client-key-for-dialects";

async fn gateway(fake: &FakeUpstream, with_dialects: bool) -> Gateway {
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("fake", "openai", &fake.base_url())
        .model("m", &[("fake", "fake-model", 1)]);
    if with_dialects {
        spec = spec
            .plugin("dialect-anthropic.wasm")
            .plugin("dialect-gemini.wasm");
    }
    spec.client_keys = vec![CLIENT_KEY.to_string()];
    Gateway::start(spec).await
}

/// POST `body` to `path` with one header; the status and the JSON answer.
async fn post(gw: &Gateway, path: &str, header: (&str, &str), body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url(path))
        .header(header.0, header.1)
        .body(body.to_string())
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A header that carries no key.
const NO_KEY: (&str, &str) = ("accept", "application/json");

fn messages_body() -> Value {
    json!({"model": "m", "max_tokens": 50,
           "messages": [{"role": "user", "content": "echo: over the bridge"}]})
}

#[tokio::test]
async fn each_dialect_takes_the_key_where_its_sdk_sends_it() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, true).await;

    let (status, v) = post(
        &gw,
        "/v1/messages",
        ("x-api-key", CLIENT_KEY),
        messages_body(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "over the bridge");

    let (status, v) = post(
        &gw,
        "/v1/messages",
        ("x-api-key", "sk-wrong"),
        messages_body(),
    )
    .await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");

    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "echo: hi"}]}]});
    let path = format!("/v1beta/models/m:generateContent?key={CLIENT_KEY}");
    let (status, v) = post(&gw, &path, NO_KEY, gemini.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "hi");

    let (status, v) = post(&gw, "/v1beta/models/m:generateContent", NO_KEY, gemini).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED", "{v}");

    let data = gw.stop().await;
    let logs = request_logs(&data).await;
    let dialects: Vec<&str> = logs.iter().map(|r| r.ingress_dialect.as_str()).collect();
    assert!(
        dialects.contains(&"anthropic") && dialects.contains(&"gemini"),
        "{dialects:?}"
    );
}

#[tokio::test]
async fn invalid_requests_get_the_dialects_own_errors() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, true).await;

    let (status, v) = post(
        &gw,
        "/v1beta/models/m:generateContent",
        ("x-goog-api-key", CLIENT_KEY),
        json!({"contents": []}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{v}");
    assert_eq!(v["error"]["code"], 400);

    let (status, v) = post(
        &gw,
        "/v1/messages",
        ("x-api-key", CLIENT_KEY),
        json!({"model": "nope", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");

    let not_an_object = Value::String("{not json".into());
    let (status, v) = post(
        &gw,
        "/v1/messages",
        ("x-api-key", CLIENT_KEY),
        not_an_object,
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");

    let (status, v) = post(
        &gw,
        "/v1beta/models/m:explode",
        ("x-goog-api-key", CLIENT_KEY),
        json!({}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["status"], "NOT_FOUND", "{v}");
    gw.stop().await;
}

/// Send `method` to `path` with no body; the status, the `allow` header
/// and the JSON answer.
async fn call(gw: &Gateway, method: reqwest::Method, path: &str) -> (u16, String, Value) {
    let resp = reqwest::Client::new()
        .request(method, gw.url(path))
        .header("x-api-key", CLIENT_KEY)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, allow, resp.json().await.unwrap())
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_paths_dialect() {
    use reqwest::Method;
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, true).await;

    let (status, _, v) = call(&gw, Method::POST, "/v1/messages/batches/nope").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");

    let (status, _, v) = call(&gw, Method::GET, "/v1beta/files").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["status"], "NOT_FOUND", "{v}");

    let (status, _, v) = call(&gw, Method::GET, "/v1/nope").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "unknown_url", "{v}");

    let (status, allow, v) = call(&gw, Method::GET, "/v1/messages").await;
    assert_eq!(status, 405, "{v}");
    assert_eq!(allow, "POST");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");

    let (status, allow, v) = call(&gw, Method::DELETE, "/v1beta/models").await;
    assert_eq!(status, 405, "{v}");
    assert!(allow.contains("GET"), "{allow}");
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{v}");

    let (status, allow, v) = call(&gw, Method::GET, "/v1/chat/completions").await;
    assert_eq!(status, 405, "{v}");
    assert_eq!(allow, "POST");
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn without_its_dialect_plugin_a_client_still_gets_its_own_error_shape() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, false).await;
    let (status, v) = post(
        &gw,
        "/v1/messages",
        ("x-api-key", CLIENT_KEY),
        messages_body(),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic dialect plugin is not loaded"),
        "{v}"
    );
    let listing = reqwest::Client::new()
        .get(gw.url("/v1beta/models"))
        .header("x-goog-api-key", CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 503);
    let v: Value = listing.json().await.unwrap();
    assert_eq!(v["error"]["status"], "UNAVAILABLE", "{v}");
    gw.stop().await;
}
