//! Several versions of one adapter at once: a route pins a version or splits
//! traffic between versions by weight (canary), and a shadow version sees a
//! copy of each answer whose differences are recorded.

use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Spec, chat_body};

const ADMIN: &str = "admin-token-for-rollout-tests";

#[tokio::test]
async fn routes_pin_versions_and_a_canary_gets_its_share() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .plugin("openai_next.wasm")
        .provider("f", "openai", &fake.base_url())
        .model("newest", &[("f", "fake-model", 1)]);
    spec.extra = r#"
[[models]]
name = "pinned"
targets = [{ provider = "f", model = "fake-model", adapter_version = "0.1.0" }]

[[models]]
name = "canary"
targets = [
  { provider = "f", model = "fake-model", weight = 90, adapter_version = "0.1.0" },
  { provider = "f", model = "fake-model", weight = 10, adapter_version = "0.2.0" },
]
"#
    .into();
    let gw = Gateway::start(spec).await;
    let served_by = |resp: &reqwest::Response| {
        resp.headers()["x-orchestrator-adapter"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let resp = gw.chat(chat_body("newest", false)).await;
    assert_eq!(served_by(&resp), "openai@0.2.0");
    let resp = gw.chat(chat_body("pinned", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(served_by(&resp), "openai@0.1.0");

    // 2,000 requests, 16 at a time.
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (http, url) = (gw.http.clone(), gw.url("/v1/chat/completions"));
        workers.push(tokio::spawn(async move {
            let mut next = 0;
            for _ in 0..125 {
                let resp = http
                    .post(&url)
                    .json(&chat_body("canary", false))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                if resp.headers()["x-orchestrator-adapter"] == "openai@0.2.0" {
                    next += 1;
                }
            }
            next
        }));
    }
    let mut next = 0;
    for w in workers {
        next += w.await.unwrap();
    }
    let share = f64::from(next) / 2000.0;
    eprintln!(
        "canary: {next} of 2000 requests on 0.2.0 ({:.1} %)",
        share * 100.0
    );
    assert!(
        (share - 0.10).abs() <= 0.02,
        "the 10 % canary got {:.1} %",
        share * 100.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_shadow_version_records_differences_and_never_reaches_the_client() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .plugin("fixture_stream_trap.wasm")
        .plugin("fixture_stream_trap_fixed.wasm")
        .plugin("fixture_stream_trap_variant.wasm")
        .provider("st", "fixture-stream-trap", &fake.base_url());
    spec.admin_token = Some(ADMIN.into());
    // 0.1.0 serves; 0.2.0 answers the same; 0.3.0 adds a fingerprint.
    spec.extra = r#"
[[models]]
name = "same"
targets = [{ provider = "st", model = "fake-model", adapter_version = "0.1.0", shadow = "0.2.0" }]

[[models]]
name = "different"
targets = [{ provider = "st", model = "fake-model", adapter_version = "0.1.0", shadow = "fixture-stream-trap@0.3.0" }]
"#
    .into();
    let gw = Gateway::start(spec).await;
    for model in ["same", "different"] {
        for _ in 0..5 {
            let resp = gw.chat(chat_body(model, false)).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(
                resp.headers()["x-orchestrator-adapter"],
                "fixture-stream-trap@0.1.0"
            );
            let v: Value = resp.json().await.unwrap();
            assert_ne!(v["system_fingerprint"], "fp_variant", "{v}");
        }
    }
    // The comparisons run in the background.
    let started = Instant::now();
    let view = loop {
        let v: Value = gw
            .admin(reqwest::Method::GET, "/admin/v1/shadow", ADMIN, None)
            .await
            .json()
            .await
            .unwrap();
        let done: u64 = v["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["compared"].as_u64().unwrap() + p["failed"].as_u64().unwrap())
            .sum();
        if done == 10 {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pair = |shadow: &str| {
        view["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["shadow"] == shadow)
            .cloned()
            .unwrap_or_else(|| panic!("no pair with {shadow}: {view}"))
    };
    let same = pair("fixture-stream-trap@0.2.0");
    assert_eq!(
        (&same["compared"], &same["differed"], &same["failed"]),
        (&json!(5), &json!(0), &json!(0)),
        "{same}"
    );
    let different = pair("fixture-stream-trap@0.3.0");
    assert_eq!(different["primary"], "fixture-stream-trap@0.1.0");
    assert_eq!(
        (&different["compared"], &different["differed"]),
        (&json!(5), &json!(5)),
        "{different}"
    );
    let recent = view["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 5, "{view}");
    for d in recent {
        assert_eq!(d["part"], "response", "{d}");
        assert_eq!(d["path"], "$.system_fingerprint", "{d}");
        assert_eq!(d["shadow_value"], "string (10 chars)", "{d}");
    }
    gw.stop().await;
}
