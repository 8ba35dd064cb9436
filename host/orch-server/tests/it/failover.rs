//! Failover before the client has seen anything: a target that answers 500
//! and one that refuses connections, next to a healthy one.

use orch_fake_upstream::{FakeConfig, FakeUpstream};

use crate::harness::{Gateway, Spec, chat_body, sse_data};

#[tokio::test]
async fn broken_targets_are_invisible_to_clients() {
    let failing = FakeUpstream::spawn(FakeConfig {
        fail_rate: 1.0,
        fail_statuses: vec![500, 503],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let healthy = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    // A port nothing listens on: connection refused.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/v1")
    };
    let gw = Gateway::start(
        Spec::default()
            .plugin("openai.wasm")
            .provider("a-500", "openai", &failing.base_url())
            .provider("a-refused", "openai", &refused)
            .provider("b", "openai", &healthy.base_url())
            .model(
                "m",
                &[
                    ("a-500", "fake-model", 3),
                    ("a-refused", "fake-model", 3),
                    ("b", "fake-model", 1),
                ],
            ),
    )
    .await;
    let mut errors = 0;
    for i in 0..200 {
        let stream = i % 2 == 0;
        let resp = gw.chat(chat_body("m", stream)).await;
        if resp.status() != 200 {
            errors += 1;
            continue;
        }
        if stream {
            let events = sse_data(resp).await;
            if events.last().map(String::as_str) != Some("[DONE]") {
                errors += 1;
            }
        } else if resp.json::<serde_json::Value>().await.is_err() {
            errors += 1;
        }
    }
    assert_eq!(errors, 0, "client-visible errors");
    // Each broken target is ejected after five consecutive failures, so
    // the 200 requests cost few extra attempts.
    let refused_and_failing = failing.stats().chat_requests;
    assert!(
        (5..=10).contains(&refused_and_failing),
        "the failing target was tried until ejected: {refused_and_failing}"
    );
    assert_eq!(
        healthy.stats().chat_requests,
        200,
        "every request ended on the healthy target"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_that_fails_before_content_fails_over() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = Gateway::start(
        Spec::default()
            .plugin("openai.wasm")
            .provider("f", "openai", &fake.base_url())
            .model("m", &[("f", "error-event", 1000), ("f", "fake-model", 1)]),
    )
    .await;
    for _ in 0..20 {
        let events = sse_data(gw.chat(chat_body("m", true)).await).await;
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
        assert!(
            events.iter().all(|e| !e.contains("\"error\"")),
            "{events:?}"
        );
        let roles = events.iter().filter(|e| e.contains("\"role\"")).count();
        assert_eq!(roles, 1, "one role chunk across the attempts: {events:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_that_opened_and_then_runs_out_of_targets_ends_with_an_error() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = Gateway::start(Spec::openai(&fake.base_url(), "error-event")).await;
    let resp = gw.chat(chat_body("m", true)).await;
    assert_eq!(resp.status(), 200, "the stream opened with the role chunk");
    let events = sse_data(resp).await;
    assert_ne!(events.last().map(String::as_str), Some("[DONE]"));
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    gw.stop().await;
}

#[tokio::test]
async fn a_paced_stream_opens_before_its_first_token() {
    use futures_util::StreamExt;
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 3,
        chunk_delay_ms: 400,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(Spec::openai(&fake.base_url(), "fake-model")).await;
    let resp = gw.chat(chat_body("m", true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&first);
    assert!(first.contains("\"role\""), "{first}");
    assert!(
        !first.contains("\"content\":\"") || first.contains("\"content\":\"\""),
        "the role chunk came alone, ahead of the paced content: {first}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_cut_after_content_ends_with_an_error_not_done() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = Gateway::start(Spec::openai(&fake.base_url(), "cut-after-3")).await;
    let events = sse_data(gw.chat(chat_body("m", true)).await).await;
    assert_ne!(events.last().map(String::as_str), Some("[DONE]"));
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    let data = gw.stop().await;
    let logs = crate::harness::request_logs(&data).await;
    assert_eq!(logs[0].outcome, orch_store::Outcome::Partial);
}

/// Drop a stream after its first bytes; the upstream stream must be closed
/// within 1 s and the log row must record the cancellation with the usage
/// seen so far.
async fn disconnect_mid_stream(anthropic: bool) {
    use futures_util::StreamExt;
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 30,
        chunk_delay_ms: 100,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    if anthropic {
        spec = spec.plugin("dialect-anthropic.wasm");
    }
    let gw = Gateway::start(spec).await;
    let resp = if anthropic {
        gw.http
            .post(gw.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .json(&serde_json::json!({
                "model": "m", "max_tokens": 256, "stream": true,
                "messages": [{"role": "user", "content": "Say hello"}],
            }))
            .send()
            .await
            .unwrap()
    } else {
        gw.chat(chat_body("m", true)).await
    };
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    // Read until some content has arrived (the first chunks may be only the
    // stream's opening).
    let mut seen = String::new();
    let has_content = |s: &str| {
        s.contains("text_delta")
            || s.match_indices("\"content\":\"")
                .any(|(i, m)| !s[i + m.len()..].starts_with('"'))
    };
    while !has_content(&seen) {
        let chunk = body.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    let dropped = std::time::Instant::now();
    // The whole stream would take 3 s; the upstream must see its connection
    // closed within 1 s of the client going away.
    loop {
        let stats = fake.stats();
        if stats.streams_abandoned == 1 {
            break;
        }
        assert!(
            dropped.elapsed() < std::time::Duration::from_secs(1),
            "the upstream stream is still open 1 s after the client left: {stats:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let stats = fake.stats();
    assert_eq!(stats.streams_started, 1);
    assert_eq!(stats.streams_completed, 0, "{stats:?}");
    let data = gw.stop().await;
    let logs = crate::harness::request_logs(&data).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].outcome, orch_store::Outcome::Cancelled);
    assert!(logs[0].streamed);
    let out = logs[0].output_tokens.unwrap_or(0);
    assert!(
        (1..30).contains(&out),
        "partial usage: {out} output tokens of a 30-chunk stream"
    );
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    disconnect_mid_stream(false).await;
}

#[tokio::test]
async fn an_anthropic_client_that_disconnects_cancels_the_upstream_stream() {
    disconnect_mid_stream(true).await;
}
