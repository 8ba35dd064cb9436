//! Misbehaving plugins fail one attempt, never the gateway: loops hit their
//! deadline, memory bombs their cap, traps and garbage give clean errors or
//! fail over, and memory comes back afterwards.

use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::Value;

use crate::harness::{Gateway, Spec, chat_body, rss_bytes, sse_data};

const FIXTURES: &[(&str, &str)] = &[
    ("fixture_loop.wasm", "fixture-loop"),
    ("fixture_oom.wasm", "fixture-oom"),
    ("fixture_trap.wasm", "fixture-trap"),
    ("fixture_garbage.wasm", "fixture-garbage"),
    ("fixture_oversized.wasm", "fixture-oversized"),
];

async fn gateway(fake: &FakeUpstream) -> Gateway {
    let mut spec =
        Spec::default()
            .plugin("openai.wasm")
            .provider("good", "openai", &fake.base_url());
    // These tests are about each fault itself: no quarantine between them.
    spec.quarantine_after_faults = Some(0);
    for (file, id) in FIXTURES {
        spec = spec.plugin(file).provider(id, id, &fake.base_url());
    }
    for (_, id) in FIXTURES {
        spec = spec
            .model(&format!("only-{id}"), &[(id, "fake-model", 1)])
            .model(
                &format!("then-good-{id}"),
                &[(id, "fake-model", 1_000_000), ("good", "fake-model", 1)],
            );
    }
    Gateway::start(spec).await
}

#[tokio::test]
async fn each_fault_gives_a_clean_error_or_fails_over() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake).await;
    for (_, id) in FIXTURES {
        let started = Instant::now();
        let resp = gw.chat(chat_body(&format!("only-{id}"), false)).await;
        let took = started.elapsed();
        assert_eq!(resp.status(), 502, "{id}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "plugin_failure", "{id}: {v}");
        assert!(
            took < Duration::from_secs(5),
            "{id} took {took:?}: the deadline did not hold"
        );
        eprintln!("{id}: clean error after {took:?}");

        for stream in [false, true] {
            let resp = gw.chat(chat_body(&format!("then-good-{id}"), stream)).await;
            assert_eq!(resp.status(), 200, "{id} should fail over");
            if stream {
                let events = sse_data(resp).await;
                assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{id}");
            }
        }
    }
    // The gateway still serves normally.
    let resp = gw.chat(chat_body("then-good-fixture-trap", false)).await;
    assert_eq!(resp.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_trap_in_the_middle_of_a_stream_ends_it_with_an_error() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = Gateway::start(
        Spec::default()
            .plugin("openai.wasm")
            .plugin("fixture_stream_trap.wasm")
            .provider("st", "fixture-stream-trap", &fake.base_url())
            .model("m", &[("st", "fake-model", 1)]),
    )
    .await;
    let events = sse_data(gw.chat(chat_body("m", true)).await).await;
    assert_ne!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(events.last().unwrap().contains("\"error\""), "{events:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_plugin_that_keeps_trapping_is_quarantined_until_its_fix_is_dropped_in() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .plugin("fixture_stream_trap.wasm")
        .provider("st", "fixture-stream-trap", &fake.base_url())
        .provider("good", "openai", &fake.base_url());
    spec.admin_token = Some("admin-token-for-quarantine".into());
    // Target health must not take the target out: this is about the plugin.
    spec.extra = "[health]\neject_after_failures = 1000000\nunhealthy_error_ratio = 1.0\n\
         [[models]]\nname = \"m\"\nstrategy = \"priority\"\ntargets = [\n  \
         { provider = \"st\", model = \"fake-model\", priority = 0 },\n  \
         { provider = \"good\", model = \"fake-model\", priority = 1 },\n]\n"
        .into();
    let gw = Gateway::start(spec).await;
    let plugin = |gw: &Gateway| {
        let gw_url = gw.url("/admin/v1/plugins");
        let http = gw.http.clone();
        async move {
            let all: Vec<Value> = http
                .get(gw_url)
                .bearer_auth("admin-token-for-quarantine")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            all.into_iter()
                .find(|p| p["id"] == "fixture-stream-trap" && p["active"] == true)
                .expect("the fixture is listed")
        }
    };
    // Every stream traps mid-way (after content: no failover, an in-stream
    // error) until the fifth fault quarantines the version.
    for i in 0..5 {
        let events = sse_data(gw.chat(chat_body("m", true)).await).await;
        assert!(
            events.last().unwrap().contains("\"error\""),
            "stream {i}: {events:?}"
        );
    }
    let p = plugin(&gw).await;
    assert_eq!(p["version"], "0.1.0", "{p}");
    assert_eq!(p["faults"]["trap"], 5, "{p}");
    assert_eq!(p["quarantines"], 1, "{p}");
    assert!(p["quarantined_ms"].as_u64().unwrap() > 20_000, "{p}");
    let calls = p["calls"].as_u64().unwrap();

    // Quarantined: the next target serves, the trapping version is not called.
    for _ in 0..5 {
        let resp = gw.chat(chat_body("m", true)).await;
        assert_eq!(resp.headers()["x-orchestrator-adapter"], "openai@0.1.0");
        let events = sse_data(resp).await;
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
    }
    assert_eq!(plugin(&gw).await["calls"], calls);

    // The fix (same id, 0.2.0) is dropped in: it serves at once.
    let fixed = orch_test_support::component("fixture_stream_trap_fixed.wasm");
    let staged = gw.plugins.path().join(".fixed.tmp");
    std::fs::copy(fixed, &staged).unwrap();
    std::fs::rename(
        &staged,
        gw.plugins.path().join("fixture_stream_trap_fixed.wasm"),
    )
    .unwrap();
    let started = Instant::now();
    loop {
        let resp = gw.chat(chat_body("m", true)).await;
        let adapter = resp.headers()["x-orchestrator-adapter"]
            .to_str()
            .unwrap()
            .to_owned();
        let events = sse_data(resp).await;
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
        if adapter == "fixture-stream-trap@0.2.0" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the fix was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = plugin(&gw).await;
    assert_eq!(p["version"], "0.2.0", "{p}");
    assert_eq!(p["quarantined_ms"], Value::Null, "{p}");
    gw.stop().await;
}

#[tokio::test]
async fn errors_a_plugin_classifies_are_counted_by_class() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("f", "openai", &fake.base_url())
        .model("limited", &[("f", "status-429", 1)]);
    spec.admin_token = Some("admin-token-for-error-classes".into());
    let gw = Gateway::start(spec).await;
    let resp = gw.chat(chat_body("limited", false)).await;
    assert_eq!(resp.status(), 429);
    let plugins: Vec<Value> = gw
        .admin(
            reqwest::Method::GET,
            "/admin/v1/plugins",
            "admin-token-for-error-classes",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let openai = plugins.iter().find(|p| p["id"] == "openai").unwrap();
    assert!(
        openai["errors"]["rate_limited"].as_u64().unwrap_or(0) >= 1,
        "{openai}"
    );
    assert!(openai["calls"].as_u64().unwrap() >= 2, "{openai}");
    assert!(openai["mean_call_us"].as_f64().unwrap() > 0.0, "{openai}");
    gw.stop().await;
}

/// Send `per_worker` faulting requests from each of 8 concurrent workers,
/// cycling through `models`; every answer must be a clean 502.
async fn faulting_load(gw: &Gateway, models: &[&'static str], per_worker: usize) -> usize {
    let mut handles = Vec::new();
    for worker in 0..8 {
        let http = gw.http.clone();
        let url = gw.url("/v1/chat/completions");
        let models = models.to_vec();
        handles.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..per_worker {
                let id = models[(worker + i) % models.len()];
                let r = http
                    .post(&url)
                    .json(&chat_body(&format!("only-{id}"), false))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
                let _ = r.bytes().await;
            }
            statuses
        }));
    }
    let mut total = 0;
    for h in handles {
        let statuses = h.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 502), "{statuses:?}");
        total += statuses.len();
    }
    total
}

#[tokio::test]
async fn memory_returns_to_baseline_after_a_thousand_faults() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake).await;
    // Every kind of fault; oversized outputs (20 MiB copies) less often, to
    // keep the test quick.
    let faulty = [
        "fixture-oom",
        "fixture-trap",
        "fixture-garbage",
        "fixture-oom",
        "fixture-trap",
        "fixture-garbage",
        "fixture-oom",
        "fixture-trap",
        "fixture-garbage",
        "fixture-oversized",
    ];
    // A warm-up round as large as the measured one lets instance slots
    // (which slot a request gets depends on timing), allocator caches and
    // connection pools reach their working size; repeating it must not grow
    // memory.
    faulting_load(&gw, &faulty, 125).await;
    let baseline = rss_bytes();
    let loops = {
        let http = gw.http.clone();
        let url = gw.url("/v1/chat/completions");
        tokio::spawn(async move {
            // A few infinite loops in parallel: they must not block anything.
            for _ in 0..4 {
                let r = http
                    .post(&url)
                    .json(&chat_body("only-fixture-loop", false))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 502);
            }
        })
    };
    let total = faulting_load(&gw, &faulty, 125).await;
    loops.await.unwrap();
    assert_eq!(total, 1000);
    let after = rss_bytes();
    let grown = after.saturating_sub(baseline);
    eprintln!(
        "rss baseline {} MiB, after 1000 faults {} MiB",
        baseline >> 20,
        after >> 20
    );
    assert!(
        grown < 16 << 20,
        "resident memory grew by {} MiB",
        grown >> 20
    );
    let resp = gw.chat(chat_body("then-good-fixture-oom", false)).await;
    assert_eq!(resp.status(), 200);
    gw.stop().await;
}
