//! The benchmark's load generator against an in-process fake upstream, and
//! its plugin measurements on the built components.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orch_bench::load::{self, Api, Scenario};
use orch_bench::plugin_costs;
use orch_fake_upstream::{FakeConfig, FakeUpstream};

fn scenario(fake: &FakeUpstream, model: &str, stream: bool, concurrency: usize) -> Scenario {
    dialect_scenario(fake, Api::OpenAi, model, stream, concurrency)
}

fn dialect_scenario(
    fake: &FakeUpstream,
    api: Api,
    model: &str,
    stream: bool,
    concurrency: usize,
) -> Scenario {
    Scenario {
        addr: fake.addr(),
        api,
        model: model.to_owned(),
        stream,
        concurrency,
        warmup: Duration::from_millis(50),
        window: Duration::from_millis(300),
        bearer: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_streams_complete_without_errors() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    for stream in [false, true] {
        let outcome = load::run(&scenario(&fake, "fake-model", stream, 3), None)
            .await
            .unwrap();
        assert_eq!(outcome.errors, 0, "{:?}", outcome.first_error);
        assert!(outcome.completed > 0);
        assert!(outcome.throughput() > 0.0);
        let latency = outcome.latency.unwrap();
        let ttfb = outcome.ttfb.unwrap();
        assert!(latency.count > 0 && latency.p50 <= latency.p99);
        assert!(ttfb.p50 <= latency.p99);
        assert_eq!(outcome.cpu, None);
    }
    assert!(fake.stats().chat_requests > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_and_gemini_requests_and_streams_complete_without_errors() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    for api in [Api::Anthropic, Api::Gemini] {
        for stream in [false, true] {
            let outcome = load::run(&dialect_scenario(&fake, api, "fake-model", stream, 2), None)
                .await
                .unwrap();
            assert_eq!(
                outcome.errors, 0,
                "{api:?} {stream}: {:?}",
                outcome.first_error
            );
            assert!(outcome.completed > 0, "{api:?} {stream}");
            assert!(outcome.latency.unwrap().count > 0);
        }
    }
    let stats = fake.stats();
    assert!(stats.anthropic_requests > 0 && stats.gemini_requests > 0);
    assert_eq!(stats.chat_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_anthropic_and_gemini_streams_are_errors() {
    let fake = FakeUpstream::spawn(FakeConfig {
        cut_after: Some(2),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    for api in [Api::Anthropic, Api::Gemini] {
        let outcome = load::run(&dialect_scenario(&fake, api, "fake-model", true, 1), None)
            .await
            .unwrap();
        assert!(outcome.errors > 0, "{api:?}");
        assert_eq!(outcome.completed, 0, "{api:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_probe_is_read_at_both_ends_of_the_window() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let reads = AtomicU64::new(0);
    let probe = || {
        Ok(Duration::from_millis(
            10 * (reads.fetch_add(1, Ordering::SeqCst) + 1),
        ))
    };
    let outcome = load::run(&scenario(&fake, "fake-model", false, 2), Some(&probe))
        .await
        .unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    assert_eq!(outcome.cpu, Some(Duration::from_millis(10)));
    assert!(outcome.cpu_per_request().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_200_answers_are_errors() {
    let fake = FakeUpstream::spawn(FakeConfig {
        models: vec!["other-model".into()],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let outcome = load::run(&scenario(&fake, "fake-model", false, 2), None)
        .await
        .unwrap();
    assert!(outcome.errors > 0);
    assert_eq!(outcome.completed, 0);
    assert!(outcome.first_error.unwrap().starts_with("status 404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_streams_are_errors() {
    let fake = FakeUpstream::spawn(FakeConfig {
        cut_after: Some(2),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let outcome = load::run(&scenario(&fake, "fake-model", true, 2), None)
        .await
        .unwrap();
    assert!(outcome.errors > 0);
    assert_eq!(outcome.completed, 0);
    assert!(outcome.first_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_errors() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let outcome = load::run(
        &Scenario {
            addr,
            api: Api::OpenAi,
            model: "m".into(),
            stream: false,
            concurrency: 1,
            warmup: Duration::ZERO,
            window: Duration::from_millis(100),
            bearer: None,
        },
        None,
    )
    .await
    .unwrap();
    assert!(outcome.errors > 0);
    assert!(outcome.first_error.unwrap().starts_with("connect to"));
}

#[tokio::test]
async fn get_status_reports_the_status() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    assert_eq!(
        load::get_status(fake.addr(), "/v1/models").await.unwrap(),
        200
    );
    assert_eq!(
        load::get_status(fake.addr(), "/nowhere").await.unwrap(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_costs_are_measured_on_the_openai_adapter() {
    let openai = orch_test_support::component("openai.wasm");
    let costs = plugin_costs::measure(openai.parent().unwrap(), 20)
        .await
        .unwrap();
    assert_eq!(costs.iterations, 20);
    for s in [
        costs.instantiate,
        costs.build_request,
        costs.parse_response,
        costs.stream_chunk,
    ] {
        assert!(s.count >= 20);
        assert!(s.p50 <= s.p99);
    }
    assert_eq!(costs.request_bytes, plugin_costs::canonical_request().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translation_costs_are_measured_on_the_dialect_plugins() {
    // The bundled plugins' folder: fixture builds name the dialect
    // plugins differently (`dialect_anthropic.wasm`).
    let plugins = orch_test_support::plugins_dir();
    for file in plugin_costs::TRANSLATION_PLUGINS {
        assert!(
            plugins.join(file).is_file(),
            "{file} not found in {}; build the plugins with `cargo xtask plugins`",
            plugins.display()
        );
    }
    let costs = plugin_costs::measure_translation(&plugins, 20)
        .await
        .unwrap();
    assert!(costs.chunks >= 20);
    for c in [
        costs.anthropic_native,
        costs.anthropic_decode,
        costs.gemini_decode,
        costs.anthropic_encode,
        costs.gemini_encode,
    ] {
        assert_eq!(c.cost.count, costs.chunks);
        assert!(c.cost.p50 <= c.cost.p99);
        assert!(c.input_bytes > 50, "{c:?}");
    }
    assert!(costs.gemini_to_anthropic.p50 >= costs.gemini_decode.cost.p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_looping_fixture_ends_in_a_deadline_fault() {
    let fixture = orch_test_support::component("fixture_loop.wasm");
    let overshoot = plugin_costs::deadline_overshoot(&fixture, 1).await.unwrap();
    assert_eq!(overshoot.runs, 1);
    assert_eq!(overshoot.deadline, plugin_costs::LOOP_DEADLINE);
    assert_eq!(overshoot.p50, overshoot.max);
}

/// What the adapter written in JavaScript (`openai-js.wasm`, from
/// `plugins/js/openai-js`) costs next to its Rust counterpart
/// (`openai.wasm`), on the same inputs: the table of docs/plugins.md,
/// "Other languages: JavaScript". A measurement, not a check (it compiles
/// the 12 MB component and runs for a minute), so it is ignored; run it with
///
/// ```sh
/// cargo xtask plugins
/// cargo test --release -p orch-bench --test it -- --ignored --nocapture javascript_adapter_costs
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/plugins.md; takes about a minute"]
async fn javascript_adapter_costs() {
    let iterations = std::env::var("ORCH_COST_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let micros = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    println!(
        "| adapter | component | load (compile + validate) | fresh instance | build-request | parse-response | one stream chunk |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (file, id) in [("openai.wasm", "openai"), ("openai-js.wasm", "openai-js")] {
        let costs =
            plugin_costs::measure_adapter(&orch_test_support::component(file), id, iterations)
                .await
                .unwrap();
        let calls = &costs.calls;
        let p = |s: &load::Summary| format!("{} (p99 {})", micros(s.p50), micros(s.p99));
        println!(
            "| `{file}` | {:.2} MiB | {:.2} s | {} | {} | {} | {} |",
            costs.component_bytes as f64 / f64::from(1 << 20),
            costs.load_time.as_secs_f64(),
            p(&calls.instantiate),
            p(&calls.build_request),
            p(&calls.parse_response),
            p(&calls.stream_chunk),
        );
    }
}
