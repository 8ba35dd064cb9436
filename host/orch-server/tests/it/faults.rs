//! Fault injection against the fake upstream: failing targets, faults
//! before and after a stream's first content, hanging upstreams, total
//! outages, ejection and recovery, rate-limited keys, and the strategies
//! measured on real traffic.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::Value;

use crate::harness::{Gateway, Spec, chat_body, request_logs, sse_data};

/// A stream that ended cleanly: `[DONE]` last, no error, one role chunk.
fn clean(events: &[String]) -> bool {
    events.last().map(String::as_str) == Some("[DONE]")
        && events.iter().all(|e| !e.contains("\"error\""))
        && events.iter().filter(|e| e.contains("\"role\"")).count() == 1
}

/// Send `n` requests (every other one streaming), `concurrency` at a time;
/// returns the client-visible failures.
async fn load(gw: &Gateway, model: &str, n: usize, concurrency: usize) -> usize {
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            let stream = i % 2 == 0;
            let resp = gw.chat(chat_body(model, stream)).await;
            if resp.status() != 200 {
                return 1;
            }
            if stream {
                usize::from(!clean(&sse_data(resp).await))
            } else {
                usize::from(resp.json::<Value>().await.is_err())
            }
        })
        .buffer_unordered(concurrency)
        .fold(0, |acc, e| async move { acc + e })
        .await
}

#[tokio::test]
async fn a_target_failing_a_fifth_of_the_time_is_invisible() {
    let a = FakeUpstream::spawn(FakeConfig {
        fail_rate: 0.2,
        fail_statuses: vec![500, 503, 429, 0],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let b = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = Gateway::start(
        Spec::default()
            .plugin("openai.wasm")
            .provider("a", "openai", &a.base_url())
            .provider("b", "openai", &b.base_url())
            .model("m", &[("a", "fake-model", 1), ("b", "fake-model", 1)]),
    )
    .await;
    let n = 10_000;
    let errors = load(&gw, "m", n, 16).await;
    assert_eq!(errors, 0, "client-visible errors");
    let attempts = a.stats().chat_requests + b.stats().chat_requests;
    let per_request = attempts as f64 / n as f64;
    assert!(
        per_request <= 1.3,
        "{per_request} upstream attempts per request"
    );
    assert!(
        a.stats().chat_requests > 100,
        "the failing target kept serving"
    );
    gw.stop().await;
}

#[tokio::test]
async fn faults_before_the_first_content_fail_over_every_time() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    // Never eject, so every trial meets its fault, and let every request
    // retry (the budget is for outages; this is a test of the commit point).
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("f", "openai", &fake.base_url());
    spec.extra = "[health]\neject_after_failures = 1000000\nunhealthy_error_ratio = 1.0\n\
                  [routing]\nretry_budget_ratio = 1.0\nbackoff_base_ms = 1\nbackoff_cap_ms = 1\n"
        .into();
    for (name, fault) in [
        ("m-429", "status-429"),
        ("m-reset", "cut-after-0"),
        ("m-error", "error-event"),
    ] {
        spec.extra.push_str(&format!(
            "[[models]]\nname = {name:?}\nstrategy = \"priority\"\ntargets = [\
             {{ provider = \"f\", model = {fault:?}, priority = 0 }}, \
             {{ provider = \"f\", model = \"fake-model\", priority = 1 }}]\n"
        ));
    }
    let gw = Gateway::start(spec).await;
    for model in ["m-429", "m-reset", "m-error"] {
        for i in 0..1000 {
            let events = sse_data(gw.chat(chat_body(model, true)).await).await;
            assert!(clean(&events), "{model} trial {i}: {events:?}");
        }
    }
    let stats = fake.stats();
    assert!(stats.streams_cut >= 1000, "{stats:?}");
    gw.stop().await;
}

#[tokio::test]
async fn faults_after_the_first_content_end_with_an_error_and_partial_usage() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("f", "openai", &fake.base_url())
        .model("cut", &[("f", "cut-after-3", 1)])
        .model("stall", &[("f", "stall-after-3", 1)])
        .model("garbled", &[("f", "garble-after-3", 1)]);
    spec.idle_timeout_ms = Some(300);
    let gw = Gateway::start(spec).await;
    for model in ["cut", "stall", "garbled"] {
        for _ in 0..5 {
            let resp = gw.chat(chat_body(model, true)).await;
            assert_eq!(resp.status(), 200, "{model}");
            let events = sse_data(resp).await;
            assert_ne!(events.last().map(String::as_str), Some("[DONE]"), "{model}");
            let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
            assert!(last["error"]["message"].is_string(), "{model}: {last}");
            assert!(
                events.iter().any(|e| e.contains("\"content\":\"F")),
                "{model}: content was sent before the fault: {events:?}"
            );
        }
    }
    let data = gw.stop().await;
    let logs = request_logs(&data).await;
    assert_eq!(logs.len(), 15);
    for row in logs {
        assert_eq!(row.outcome, orch_store::Outcome::Partial, "{row:?}");
        assert!(
            row.output_tokens.unwrap_or(0) >= 2,
            "partial usage: {row:?}"
        );
    }
}

#[tokio::test]
async fn a_hanging_upstream_is_bounded_by_the_deadline_and_the_attempts() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("f", "openai", &fake.base_url());
    spec.request_timeout_ms = Some(500);
    spec.extra = "[[models]]\nname = \"m\"\nmax_attempts = 2\ntargets = [\
        { provider = \"f\", model = \"slow-5000\", timeout_ms = 150 }, \
        { provider = \"f\", model = \"slow-5001\" }, \
        { provider = \"f\", model = \"slow-5002\" }]\n"
        .into();
    let gw = Gateway::start(spec).await;
    let mut elapsed = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let r = gw.chat(chat_body("m", false)).await;
        elapsed.push(start.elapsed());
        assert_eq!(r.status(), 504);
    }
    elapsed.sort();
    assert!(
        elapsed[2] <= Duration::from_millis(550),
        "answers within the deadline + 50 ms: {elapsed:?}"
    );
    // Two attempts per request at most (the first times out by its own
    // timeout, the second by the deadline).
    assert!(fake.stats().chat_requests <= 10, "{:?}", fake.stats());
    gw.stop().await;
}

#[tokio::test]
async fn a_total_outage_fails_fast_without_multiplying_attempts() {
    let down = |_: ()| FakeConfig {
        fail_rate: 1.0,
        fail_statuses: vec![500, 503],
        ..FakeConfig::default()
    };
    let a = FakeUpstream::spawn(down(())).await.unwrap();
    let b = FakeUpstream::spawn(down(())).await.unwrap();
    let gw = Gateway::start(
        Spec::default()
            .plugin("openai.wasm")
            .provider("a", "openai", &a.base_url())
            .provider("b", "openai", &b.base_url())
            .model("m", &[("a", "fake-model", 1), ("b", "fake-model", 1)]),
    )
    .await;
    let n = 500;
    let mut late = Vec::new();
    for i in 0..n {
        let start = Instant::now();
        let r = gw.chat(chat_body("m", i % 2 == 0)).await;
        assert!(r.status().is_server_error(), "{}", r.status());
        let _ = r.bytes().await;
        if i >= 50 {
            late.push(start.elapsed());
        }
    }
    let attempts = a.stats().chat_requests + b.stats().chat_requests;
    assert!(
        attempts as f64 <= 1.2 * n as f64,
        "{attempts} upstream attempts for {n} requests"
    );
    late.sort();
    assert!(
        late[late.len() / 2] <= Duration::from_millis(50),
        "errors come back fast once every target is out: median {:?}",
        late[late.len() / 2]
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_ejected_target_gets_one_trial_at_a_time_then_traffic_again() {
    let a = FakeUpstream::spawn(FakeConfig {
        fail_rate: 1.0,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let b = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("a", "openai", &a.base_url())
        .provider("b", "openai", &b.base_url())
        .model("m", &[("a", "fake-model", 1), ("b", "fake-model", 1)]);
    spec.extra = "[health]\nbase_ejection_ms = 400\nprobe_interval_s = 0\n".into();
    let gw = Gateway::start(spec).await;
    while a.stats().chat_requests < 5 {
        assert_eq!(gw.chat(chat_body("m", false)).await.status(), 200);
    }
    assert_eq!(a.stats().chat_requests, 5, "ejected after five failures");
    for _ in 0..20 {
        assert_eq!(gw.chat(chat_body("m", false)).await.status(), 200);
    }
    assert_eq!(a.stats().chat_requests, 5, "no traffic while ejected");

    // Healthy again, but slow: a burst during the half-open trial sends one
    // request to it and the rest elsewhere.
    a.set_config(FakeConfig {
        latency_ms: 300,
        ..FakeConfig::default()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let burst =
        futures_util::future::join_all((0..10).map(|_| gw.chat(chat_body("m", false)))).await;
    assert!(burst.iter().all(|r| r.status() == 200));
    assert_eq!(a.stats().chat_requests, 6, "one trial in flight at a time");
    a.set_config(FakeConfig::default());
    for _ in 0..60 {
        assert_eq!(gw.chat(chat_body("m", false)).await.status(), 200);
    }
    assert!(
        a.stats().chat_requests >= 6 + 15,
        "traffic returned after recovery: {}",
        a.stats().chat_requests
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_rate_limited_key_cools_down_alone() {
    let fake = FakeUpstream::spawn(FakeConfig {
        rate_limited_keys: vec!["sk-limited-0000000".into()],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut spec = Spec::openai(&fake.base_url(), "fake-model")
        .key("sk-limited-0000000")
        .key("sk-free-11111111111");
    spec.extra = "[admin]\ntoken = \"admin-token-for-the-tests\"\n".into();
    let gw = Gateway::start(spec).await;
    for _ in 0..20 {
        assert_eq!(gw.chat(chat_body("m", false)).await.status(), 200);
    }
    assert_eq!(
        fake.stats().chat_requests,
        21,
        "the limited key was tried once"
    );
    let h = gw.health_view("admin-token-for-the-tests").await;
    let keys = &h["providers"][0]["keys"];
    assert_eq!(keys[0]["state"], "cooling_down", "{h}");
    assert!(
        keys[0]["ready_in_ms"].as_u64().unwrap() <= 1000,
        "Retry-After honoured: {h}"
    );
    assert_eq!(keys[1]["state"], "ready", "{h}");
    assert_eq!(h["targets"][0]["state"], "healthy", "{h}");
    gw.stop().await;
}

#[tokio::test]
async fn least_latency_prefers_the_faster_target() {
    let slow = FakeUpstream::spawn(FakeConfig {
        latency_ms: 30,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let fast = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("slow", "openai", &slow.base_url())
        .provider("fast", "openai", &fast.base_url());
    spec.extra = "[[models]]\nname = \"m\"\nstrategy = \"least-latency\"\ntargets = [\
        { provider = \"slow\", model = \"fake-model\" }, { provider = \"fast\", model = \"fake-model\" }]\n"
        .into();
    let gw = Gateway::start(spec).await;
    for _ in 0..200 {
        assert_eq!(gw.chat(chat_body("m", false)).await.status(), 200);
    }
    let share = fast.stats().chat_requests as f64 / 200.0;
    assert!(share >= 0.8, "fast target share {share}");
    gw.stop().await;
}

#[tokio::test]
async fn sticky_sessions_stay_on_one_target() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("f", "openai", &fake.base_url());
    spec.extra = "[[models]]\nname = \"m\"\nstrategy = \"sticky\"\ntargets = [\
        { provider = \"f\", model = \"fake-a\" }, { provider = \"f\", model = \"fake-b\" }, \
        { provider = \"f\", model = \"fake-c\" }]\n"
        .into();
    let gw = Gateway::start(spec).await;
    let mut kept = 0;
    let mut turns = 0;
    let mut used = std::collections::BTreeSet::new();
    for s in 0..30 {
        let mut first = None;
        for _ in 0..10 {
            let mut body = chat_body("m", false);
            body["prompt_cache_key"] = Value::from(format!("conversation-{s}"));
            assert_eq!(gw.chat(body).await.status(), 200);
            let model = fake.last_request().unwrap().body["model"].clone();
            used.insert(model.to_string());
            turns += 1;
            if *first.get_or_insert_with(|| model.clone()) == model {
                kept += 1;
            }
        }
    }
    let share = f64::from(kept) / f64::from(turns);
    assert!(
        share >= 0.99,
        "{share} of turns stayed on the session's target"
    );
    assert!(used.len() >= 2, "sessions spread over targets: {used:?}");
    gw.stop().await;
}

#[tokio::test]
async fn an_error_hidden_in_a_200_fails_over() {
    let a = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let b = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default().plugin("openai.wasm");
    // Every answer of a carries the matched text: bodies, and each event of
    // its streams (streams are matched event by event).
    spec.extra = format!(
        "[[providers]]\nname = \"a\"\nadapter = \"openai\"\nbase_url = {:?}\n\
         error_matchers = [\"fp_fake\"]\n\
         [[providers]]\nname = \"b\"\nadapter = \"openai\"\nbase_url = {:?}\n\
         [[models]]\nname = \"m\"\nstrategy = \"priority\"\ntargets = [\
         {{ provider = \"a\", model = \"fake-model\", priority = 0 }}, \
         {{ provider = \"b\", model = \"fake-model\", priority = 1 }}]\n",
        a.base_url(),
        b.base_url()
    );
    let gw = Gateway::start(spec).await;
    for stream in [false, true, false, true] {
        let resp = gw.chat(chat_body("m", stream)).await;
        assert_eq!(resp.status(), 200);
        if stream {
            assert!(clean(&sse_data(resp).await));
        } else {
            resp.bytes().await.unwrap();
        }
    }
    assert_eq!(
        a.stats().chat_requests,
        4,
        "a answered each time, with a hidden error"
    );
    assert_eq!(b.stats().chat_requests, 4, "b served every request");
    gw.stop().await;
}

#[tokio::test]
async fn active_probes_bring_a_recovered_target_back_without_traffic() {
    let a = FakeUpstream::spawn(FakeConfig {
        fail_rate: 1.0,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let b = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("a", "openai", &a.base_url())
        .provider("b", "openai", &b.base_url())
        .model("m", &[("a", "fake-model", 1), ("b", "fake-model", 1)]);
    spec.extra = "[health]\nbase_ejection_ms = 200\nrecover_after_successes = 1\n\
                  [admin]\ntoken = \"admin-token-for-the-tests\"\n"
        .into();
    let gw = Gateway::start(spec).await;
    while a.stats().chat_requests < 5 {
        assert_eq!(gw.chat(chat_body("m", false)).await.status(), 200);
    }
    let state = |h: &Value| {
        h["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["provider"] == "a")
            .unwrap()["state"]
            .clone()
    };
    let health = || gw.health_view("admin-token-for-the-tests");
    assert_eq!(state(&health().await), "unhealthy");
    // The probe (a models listing) succeeds once the ejection ends.
    let mut healthy = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if state(&health().await) == "healthy" {
            healthy = true;
            break;
        }
    }
    assert!(healthy, "probes recovered the target: {}", health().await);
    assert_eq!(a.stats().chat_requests, 5, "without client traffic");
    gw.stop().await;
}
