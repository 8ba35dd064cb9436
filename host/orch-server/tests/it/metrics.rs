//! `GET /metrics` after a mixed workload: every family is there, and the
//! values match what was sent and what the fake upstream reported.

use std::collections::BTreeMap;
use std::time::Duration;

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Spec, chat_body};

const CANARY_KEY: &str = "sk-CANARY-metrics-7f3a";

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse OpenMetrics text: `name{a="x",b="y"} value` lines.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label");
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value: value.parse().expect("value"),
        });
    }
    out
}

/// The sum of a family's samples whose labels include `filter`.
fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(gw: &Gateway) -> (String, Vec<Sample>) {
    let r = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let samples = parse(&text);
    (text, samples)
}

/// Tokens the client saw in an OpenAI response or usage chunk.
fn openai_usage(v: &Value) -> (u64, u64) {
    let u = &v["usage"];
    (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn metrics_match_a_mixed_workload() {
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 4,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let base = fake.base_url();
    let spec = Spec::default()
        .plugin("openai.wasm")
        .plugin("dialect-anthropic.wasm")
        .provider("good", "openai", &base)
        .key(CANARY_KEY)
        .provider("bad", "openai", &base)
        .model("m", &[("good", "fake-model", 1)])
        // The bad target nearly always first: every request fails over
        // (equal weights left all four on the good one one run in sixteen).
        .model(
            "fo",
            &[("bad", "status-500", 1000), ("good", "fake-model", 1)],
        )
        .model("m5", &[("bad", "status-503", 1)]);
    let gw = Gateway::start(spec).await;

    let mut sent = 0u32;
    let (mut input, mut output) = (0u64, 0u64);
    // Non-streaming OpenAI.
    for _ in 0..5 {
        let r = gw.chat(chat_body("m", false)).await;
        assert_eq!(r.status(), 200);
        let (i, o) = openai_usage(&r.json::<Value>().await.unwrap());
        input += i;
        output += o;
        sent += 1;
    }
    // Streaming OpenAI with the usage chunk.
    for _ in 0..3 {
        let mut body = chat_body("m", true);
        body["stream_options"] = json!({"include_usage": true});
        let r = gw.chat(body).await;
        assert_eq!(r.status(), 200);
        let data = crate::harness::sse_data(r).await;
        let usage = data
            .iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .find(|v| v["usage"].is_object())
            .expect("usage chunk");
        let (i, o) = openai_usage(&usage);
        input += i;
        output += o;
        sent += 1;
    }
    // Anthropic Messages through the dialect plugin.
    for _ in 0..2 {
        let r = gw
            .http
            .post(gw.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .json(&json!({
                "model": "m", "max_tokens": 64,
                "messages": [{"role": "user", "content": "Say hello to the gateway tests"}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        input += v["usage"]["input_tokens"].as_u64().unwrap();
        output += v["usage"]["output_tokens"].as_u64().unwrap();
        sent += 1;
    }
    // Failover: the bad target answers 500, the good one serves.
    for _ in 0..4 {
        let r = gw.chat(chat_body("fo", false)).await;
        assert_eq!(r.status(), 200);
        let (i, o) = openai_usage(&r.json::<Value>().await.unwrap());
        input += i;
        output += o;
        sent += 1;
    }
    // An unknown model (404) and an upstream that only fails (5xx).
    let r = gw.chat(chat_body("no-such-model", false)).await;
    assert_eq!(r.status(), 404);
    sent += 1;
    let r = gw.chat(chat_body("m5", false)).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    sent += 1;

    // A file that is not a component: a rejection, counted by hot reload.
    std::fs::write(gw.plugins.path().join("junk.wasm"), b"not wasm").unwrap();
    let mut samples = Vec::new();
    let mut text = String::new();
    for _ in 0..100 {
        (text, samples) = scrape(&gw).await;
        let flushed = sum(&samples, "orchestrator_request_log_written_total", &[]);
        let rejected = sum(
            &samples,
            "orchestrator_plugin_rejections_total",
            &[("file", "junk.wasm")],
        );
        if flushed >= f64::from(sent) && rejected >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sent = f64::from(sent);
    // Requests: one count per request, by every label the issue names.
    assert_eq!(sum(&samples, "orchestrator_requests_total", &[]), sent);
    assert_eq!(
        sum(
            &samples,
            "orchestrator_requests_total",
            &[
                ("ingress", "anthropic"),
                ("model", "m"),
                ("provider", "good")
            ]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_requests_total",
            &[("status_class", "2xx")]
        ),
        sent - 2.0
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_requests_total",
            &[("model", "unrouted"), ("status_class", "4xx")]
        ),
        1.0,
        "an unknown model is not a label value"
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_requests_total",
            &[("model", "m5"), ("status_class", "5xx")]
        ),
        1.0
    );
    assert!(!text.contains("no-such-model"), "client input in a label");

    // Durations: one observation per request; TTFT per stream.
    assert_eq!(
        sum(
            &samples,
            "gen_ai_server_request_duration_seconds_count",
            &[]
        ),
        sent
    );
    assert_eq!(
        sum(
            &samples,
            "gen_ai_server_time_to_first_token_seconds_count",
            &[]
        ),
        3.0
    );
    assert_eq!(
        sum(&samples, "orchestrator_gateway_overhead_seconds_count", &[]),
        sent
    );
    let overhead = sum(&samples, "orchestrator_gateway_overhead_seconds_sum", &[]);
    let total = sum(&samples, "gen_ai_server_request_duration_seconds_sum", &[]);
    assert!(
        overhead > 0.0 && overhead <= total,
        "overhead {overhead} total {total}"
    );

    // Tokens: what the upstream reported, as the clients saw it.
    assert_eq!(
        sum(
            &samples,
            "orchestrator_tokens_total",
            &[("gen_ai_token_type", "input")]
        ),
        input as f64
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_tokens_total",
            &[("gen_ai_token_type", "output")]
        ),
        output as f64
    );
    assert_eq!(
        sum(
            &samples,
            "gen_ai_client_token_usage_sum",
            &[("gen_ai_token_type", "input")]
        ),
        input as f64
    );

    // Attempts and failovers: every failed attempt of the bad target was
    // followed by another attempt.
    let bad = sum(
        &samples,
        "orchestrator_upstream_attempts_total",
        &[("provider", "bad"), ("outcome", "target_error")],
    );
    assert!(bad >= 1.0, "the m5 request failed on the bad target");
    assert_eq!(
        sum(
            &samples,
            "orchestrator_upstream_attempts_total",
            &[("provider", "good"), ("outcome", "ok")]
        ),
        sent - 2.0
    );
    let failovers = sum(&samples, "orchestrator_failovers_total", &[]);
    let attempts = sum(&samples, "orchestrator_upstream_attempts_total", &[]);
    // Every request but the unknown model made attempts; the ones after the
    // first of each request are failovers.
    assert_eq!(failovers, attempts - (sent - 1.0));

    // Plugins: calls by id and version, loads, the rejected file.
    assert!(
        sum(
            &samples,
            "orchestrator_plugin_calls_total",
            &[("plugin", "openai")]
        ) > 0.0
    );
    assert!(
        sum(
            &samples,
            "orchestrator_plugin_calls_total",
            &[("plugin", "dialect-anthropic")]
        ) > 0.0
    );
    assert!(
        sum(
            &samples,
            "orchestrator_plugin_call_duration_seconds_total",
            &[("plugin", "openai")]
        ) > 0.0
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_plugin_loaded",
            &[("plugin", "openai"), ("active", "true")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_plugin_activations_total",
            &[("plugin", "openai")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_plugin_rejections_total",
            &[("file", "junk.wasm")]
        ),
        1.0
    );
    assert!(sum(&samples, "orchestrator_plugin_reloads_total", &[]) >= 1.0);
    assert_eq!(sum(&samples, "orchestrator_plugin_faults_total", &[]), 0.0);
    assert_eq!(sum(&samples, "orchestrator_plugin_quarantined", &[]), 0.0);

    // Health: one state per target, the good one healthy.
    assert_eq!(
        sum(
            &samples,
            "orchestrator_target_state",
            &[("model", "m"), ("state", "healthy")]
        ),
        1.0
    );
    assert_eq!(
        sum(&samples, "orchestrator_target_state", &[("model", "fo")]),
        2.0
    );
    assert_eq!(
        sum(
            &samples,
            "orchestrator_provider_key_state",
            &[("provider", "good"), ("key", "0"), ("state", "ready")]
        ),
        1.0
    );

    // The request log: everything written, nothing dropped or queued.
    assert_eq!(
        sum(&samples, "orchestrator_request_log_written_total", &[]),
        sent
    );
    assert_eq!(
        sum(&samples, "orchestrator_request_log_dropped_total", &[]),
        0.0
    );
    assert_eq!(
        sum(&samples, "orchestrator_request_log_queue_depth", &[]),
        0.0
    );

    // Traffic: nothing in flight but the scrape (which is not counted).
    assert_eq!(sum(&samples, "orchestrator_in_flight_requests", &[]), 0.0);
    assert_eq!(sum(&samples, "orchestrator_open_streams", &[]), 0.0);

    // Every family has its metadata; nothing secret or personal leaks.
    for family in [
        "orchestrator_requests",
        "gen_ai_server_request_duration_seconds",
        "gen_ai_server_time_to_first_token_seconds",
        "orchestrator_gateway_overhead_seconds",
        "orchestrator_tokens",
        "gen_ai_client_token_usage",
        "orchestrator_upstream_attempts",
        "orchestrator_failovers",
        "orchestrator_plugin_calls",
        "orchestrator_plugin_faults",
        "orchestrator_plugin_reloads",
        "orchestrator_plugin_rejections",
        "orchestrator_target_state",
        "orchestrator_provider_key_state",
        "orchestrator_request_log_queue_depth",
        "orchestrator_request_log_dropped",
        "orchestrator_build_info",
        "orchestrator_in_flight_requests",
        "orchestrator_open_streams",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family} family"
        );
    }
    assert!(!text.contains(CANARY_KEY), "a provider key in the metrics");
    assert!(!text.contains("Say hello"), "prompt text in the metrics");
    gw.stop().await;
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let gw = Gateway::start(spec).await;
    let r = gw.chat(chat_body("m", false)).await;
    assert_eq!(r.status(), 200);
    let main = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404, "metrics stay off the main port");
    let own = gw
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let samples = parse(&own.text().await.unwrap());
    assert_eq!(sum(&samples, "orchestrator_requests_total", &[]), 1.0);
    let live = gw
        .http
        .get(format!("http://127.0.0.1:{port}/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.extra = "[metrics]\nenabled = false\n".into();
    let gw = Gateway::start(spec).await;
    let r = gw.http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    gw.stop().await;
}
