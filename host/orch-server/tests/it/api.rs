//! The OpenAI-compatible surface: routing, errors in the OpenAI shape,
//! streaming with usage, pass-through of unknown fields, the request log.

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Spec, chat_body, request_logs, sse_data};

async fn gateway(fake: &FakeUpstream, keys: &[&str]) -> Gateway {
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("fake", "openai", &fake.base_url())
        .key("sk-upstream-key-123456")
        .model("fake-gpt", &[("fake", "fake-model", 1)])
        .model("always-429", &[("fake", "status-429", 1)])
        .model("always-400", &[("fake", "status-400", 1)]);
    spec.client_keys = keys.iter().map(|k| k.to_string()).collect();
    Gateway::start(spec).await
}

#[tokio::test]
async fn non_streaming_round_trip_keeps_unknown_fields_and_logs() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, &[]).await;
    let mut body = chat_body("fake-gpt", false);
    body["x_client_extension"] = json!({"keep": "me"});
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-request-id").is_some());
    assert!(
        resp.headers()["x-orchestrator-adapter"]
            .to_str()
            .unwrap()
            .starts_with("openai@")
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["model"], "fake-gpt",
        "the response reports the requested model"
    );
    assert_eq!(
        v["x_fake_extension"]["ok"], true,
        "unknown response fields survive"
    );
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let seen = fake.last_request().unwrap();
    assert_eq!(
        seen.body["model"], "fake-model",
        "upstream gets its own model name"
    );
    assert_eq!(
        seen.body["x_client_extension"]["keep"], "me",
        "unknown request fields survive"
    );
    assert_eq!(
        seen.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-upstream-key-123456"),
        "the host injects the provider key"
    );
    let data = gw.stop().await;
    let logs = request_logs(&data).await;
    assert_eq!(logs.len(), 1);
    let row = &logs[0];
    assert_eq!(row.requested_model, "fake-gpt");
    assert_eq!(row.provider.as_deref(), Some("fake"));
    assert_eq!(row.upstream_model.as_deref(), Some("fake-model"));
    assert!(row.plugin.as_deref().unwrap().starts_with("openai@"));
    assert_eq!(row.status, 200);
    assert_eq!(row.attempts, 1);
    assert!(row.input_tokens.unwrap() > 0 && row.output_tokens.unwrap() > 0);
}

#[tokio::test]
async fn streaming_sends_exactly_one_usage_chunk_when_asked() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, &[]).await;
    for include_usage in [true, false] {
        let mut body = chat_body("fake-gpt", true);
        body["stream_options"] = json!({"include_usage": include_usage});
        let resp = gw.chat(body).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let events = sse_data(resp).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let usage_chunks: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
        if include_usage {
            assert_eq!(usage_chunks.len(), 1, "exactly one usage chunk");
            assert!(
                std::ptr::eq(usage_chunks[0], chunks.last().unwrap()),
                "usage comes last"
            );
            assert_eq!(usage_chunks[0]["choices"], json!([]));
        } else {
            assert!(usage_chunks.is_empty(), "no usage chunk unless asked");
        }
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(text.starts_with("Fake reply"), "{text}");
        assert!(chunks.iter().all(|c| c["model"] == "fake-gpt"));
        // The gateway always asks upstream for usage, for its own accounting.
        assert_eq!(
            fake.last_request().unwrap().body["stream_options"]["include_usage"],
            true
        );
    }
    let data = gw.stop().await;
    let logs = request_logs(&data).await;
    assert_eq!(logs.len(), 2);
    assert!(
        logs.iter()
            .all(|r| r.streamed && r.output_tokens.is_some() && r.ttft_us.is_some())
    );
}

#[tokio::test]
async fn errors_use_the_openai_shape() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, &["sk-client-1"]).await;
    let post = |body: Value, key: Option<&str>| {
        let mut r = gw.http.post(gw.url("/v1/chat/completions")).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let check = |v: &Value, code: &str| {
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(v["error"]["type"].is_string(), "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
    };

    let r = post(chat_body("fake-gpt", false), None).await.unwrap();
    assert_eq!(r.status(), 401);
    check(&r.json().await.unwrap(), "invalid_api_key");
    let r = post(chat_body("fake-gpt", false), Some("sk-wrong"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = post(chat_body("no-such-model", false), Some("sk-client-1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    check(&v, "model_not_found");
    assert_eq!(v["error"]["param"], "model");

    let r = post(chat_body("always-429", false), Some("sk-client-1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    check(&r.json().await.unwrap(), "rate_limit_exceeded");

    let r = post(chat_body("always-400", false), Some("sk-client-1"))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "client errors from upstream are not retried and keep their status"
    );

    let r = post(json!({"model": "fake-gpt"}), Some("sk-client-1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "messages");

    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-client-1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let huge = "x".repeat(33 << 20);
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-client-1")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    check(&r.json().await.unwrap(), "request_too_large");

    let r = gw.http.get(gw.url("/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    check(&r.json().await.unwrap(), "unknown_url");

    let r = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth("sk-client-1")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fake-gpt", "always-429", "always-400"]);
    gw.stop().await;
}
