//! Routing with health and key pools, over real HTTP against fake
//! upstreams: rejected keys, ejection, capability filtering, aliases and
//! target overrides, and the operator's health view.

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Spec, chat_body};

const ADMIN: &str = "admin-token-for-the-tests";

fn admin() -> String {
    format!("[admin]\ntoken = {ADMIN:?}\n")
}

async fn health(gw: &Gateway) -> Value {
    gw.health_view(ADMIN).await
}

#[tokio::test]
async fn a_rejected_key_is_disabled_and_the_next_key_serves() {
    let fake = FakeUpstream::spawn(FakeConfig {
        expect_key: Some("sk-good-key-000000".into()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut spec = Spec::openai(&fake.base_url(), "fake-model")
        .key("sk-CANARY-rejected-111")
        .key("sk-good-key-000000");
    spec.extra = admin();
    let gw = Gateway::start(spec).await;
    for _ in 0..20 {
        let r = gw.chat(chat_body("m", false)).await;
        assert_eq!(r.status(), 200);
    }
    // The bad key was tried once, then left alone.
    assert_eq!(fake.stats().chat_requests, 21);
    let h = health(&gw).await;
    let keys = &h["providers"][0]["keys"];
    assert_eq!(keys[0]["state"], "disabled", "{h}");
    assert_eq!(keys[1]["state"], "ready", "{h}");
    assert_eq!(
        h["targets"][0]["state"], "healthy",
        "a bad key is not a bad target"
    );
    let text = h.to_string();
    assert!(!text.contains("CANARY"), "keys are masked: {text}");
    assert!(!text.contains("good-key"), "keys are masked: {text}");
    gw.stop().await;
}

#[tokio::test]
async fn failing_targets_are_ejected_and_the_last_target_is_kept() {
    let failing = FakeUpstream::spawn(FakeConfig {
        fail_rate: 1.0,
        fail_statuses: vec![500],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let healthy = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("a", "openai", &failing.base_url())
        .provider("b", "openai", &healthy.base_url())
        .model("m", &[("a", "fake-model", 10), ("b", "fake-model", 1)])
        .model("only-a", &[("a", "other-model", 1)]);
    spec.extra = admin();
    let gw = Gateway::start(spec).await;
    for _ in 0..100 {
        assert_eq!(gw.chat(chat_body("m", false)).await.status(), 200);
    }
    // Five consecutive failures eject; the ejection lasts longer than this test.
    assert_eq!(failing.stats().chat_requests, 5);
    assert_eq!(healthy.stats().chat_requests, 100);
    let h = health(&gw).await;
    let a = h["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["model"] == "m" && t["provider"] == "a")
        .unwrap();
    assert_eq!(a["state"], "unhealthy", "{h}");
    assert!(a["reason"].as_str().unwrap().contains("consecutive"), "{a}");
    assert!(a["retry_in_ms"].as_u64().unwrap() > 0);

    // A model whose only target is failing still sends to it (panic mode
    // once ejected), one attempt per request, and reports the upstream error.
    let before = failing.stats().chat_requests;
    for _ in 0..10 {
        let r = gw.chat(chat_body("only-a", false)).await;
        assert_eq!(r.status(), 502);
    }
    assert_eq!(failing.stats().chat_requests - before, 10);
    gw.stop().await;
}

#[tokio::test]
async fn tools_requests_only_reach_targets_with_tools() {
    let plain = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let tools = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("plain", "openai", &plain.base_url())
        .provider("tools", "openai", &tools.base_url());
    spec.extra = r#"
[[models]]
name = "m"
targets = [
  { provider = "plain", model = "fake-model", weight = 100, capabilities = ["vision"] },
  { provider = "tools", model = "fake-model", weight = 1 },
]
"#
    .into();
    let gw = Gateway::start(spec).await;
    let mut body = chat_body("m", false);
    body["tools"] = json!([{
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}
    }]);
    for _ in 0..30 {
        assert_eq!(gw.chat(body.clone()).await.status(), 200);
    }
    assert_eq!(plain.stats().chat_requests, 0);
    assert_eq!(tools.stats().chat_requests, 30);
    gw.stop().await;
}

#[tokio::test]
async fn aliases_wildcards_overrides_and_headers_reach_the_upstream() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("f", "openai", &fake.base_url());
    spec.extra = r#"
[[models]]
name = "house"
aliases = ["house-latest", "vendor/*"]
targets = [{ provider = "f", model = "*", set = { temperature = 0.1 }, remove = ["logit_bias"], cap = { max_tokens = 50 }, headers = { x-team = "search" } }]
"#
    .into();
    let gw = Gateway::start(spec).await;
    let mut body = chat_body("vendor/fake-model-x", false);
    body["temperature"] = json!(1.7);
    body["max_tokens"] = json!(4000);
    body["logit_bias"] = json!({"50256": -100});
    let r = gw.chat(body).await;
    assert_eq!(r.status(), 200);
    let last = fake.last_request().expect("a request reached the fake");
    let sent = &last.body;
    assert_eq!(
        sent["model"], "fake-model-x",
        "the wildcard part goes upstream"
    );
    assert_eq!(sent["temperature"], 0.1);
    assert_eq!(sent["max_tokens"], 50);
    assert!(sent.get("logit_bias").is_none());
    assert_eq!(last.header("x-team"), Some("search"));

    // An exact alias uses the requested name for `*`.
    let r = gw.chat(chat_body("house-latest", false)).await;
    assert_eq!(r.status(), 200);
    let sent = fake.last_request().unwrap().body;
    assert_eq!(sent["model"], "house-latest");
    let models: Value = gw
        .http
        .get(gw.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["house", "house-latest"]);
    gw.stop().await;
}

#[tokio::test]
async fn the_health_view_needs_the_admin_token() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = Gateway::start(Spec::openai(&fake.base_url(), "fake-model")).await;
    let r = gw
        .http
        .get(gw.url("/health/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "off without a configured token");
    gw.stop().await;

    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.extra = admin();
    let gw = Gateway::start(spec).await;
    let r = gw
        .http
        .get(gw.url("/health/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = gw
        .http
        .get(gw.url("/health/providers"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(health(&gw).await["targets"][0]["state"], "healthy");
    gw.stop().await;
}

#[tokio::test]
async fn a_provider_whose_keys_are_all_rejected_says_so() {
    let fake = FakeUpstream::spawn(FakeConfig {
        expect_key: Some("sk-the-only-good-key".into()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let gw =
        Gateway::start(Spec::openai(&fake.base_url(), "fake-model").key("sk-revoked-000000")).await;
    let r = gw.chat(chat_body("m", false)).await;
    assert_eq!(r.status(), 502, "the provider rejected the gateway's key");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_auth_failed");
    let r = gw.chat(chat_body("m", false)).await;
    assert_eq!(r.status(), 503, "no usable key left");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("rejected"),
        "{v}"
    );
    assert_eq!(
        fake.stats().chat_requests,
        1,
        "the disabled key is not sent again"
    );
    gw.stop().await;
}
