//! Graceful shutdown of the real binary under streaming load: on SIGTERM
//! `/readyz` answers 503 at once, connections are still accepted for the
//! drain delay, the streams in flight finish with `[DONE]`, their request
//! log rows are written, and the process exits 0 within the grace period
//! plus a second. A second signal exits at once.

use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};

use crate::harness::{Process, chat_body, request_logs, sse_data};

/// The gateway binary serving model `m` on `fake` with SQLite, plus the
/// `[server]` keys in `server`.
async fn start(fake: &FakeUpstream, server: &str) -> Process {
    let dir = Process::folder();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\
         [database]\nurl = \"sqlite://{db}\"\n\
         [plugins]\ndir = \"{plugins}\"\n\
         [request_log]\nflush_interval_ms = 200\n\
         [[providers]]\nname = \"f\"\nadapter = \"openai\"\nbase_url = \"{base}\"\napi_keys = []\n\
         [[models]]\nname = \"m\"\ntargets = [{{ provider = \"f\", model = \"fake-model\" }}]\n",
        db = dir.path().join("gw.db").display(),
        plugins = dir.path().join("plugins").display(),
        base = fake.base_url(),
    );
    Process::serve(dir, &config, |c| {
        c.env("RUST_LOG", "info");
    })
    .await
}

async fn chat_stream(gw: &Process) -> reqwest::Response {
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

#[tokio::test]
async fn sigterm_drains_streams_flushes_the_log_and_exits_0_in_time() {
    const STREAMS: usize = 4;
    let grace = Duration::from_secs(6);
    let drain = Duration::from_secs(1);
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 8,
        chunk_delay_ms: 400,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut gw = start(
        &fake,
        &format!(
            "drain_delay_ms = {}\nshutdown_grace_ms = {}",
            drain.as_millis(),
            grace.as_millis()
        ),
    )
    .await;

    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(tokio::spawn(sse_data(chat_stream(&gw).await)));
    }
    gw.signal("TERM");
    let signalled = Instant::now();

    // Readiness is off at once.
    let ready = loop {
        let r = gw.http.get(gw.url("/readyz")).send().await.unwrap();
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap();
        if status == 503 || signalled.elapsed() > Duration::from_millis(500) {
            break (status, v);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("/readyz {} after {:?}", ready.0, signalled.elapsed());
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert_eq!(ready.1["status"], "shutting_down", "{}", ready.1);

    // During the drain delay new connections are still served, asked to
    // close afterwards.
    let fresh = reqwest::Client::new();
    let r = fresh
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    r.bytes().await.unwrap();

    // After it, the listener is closed while the streams still run.
    tokio::time::sleep((drain + Duration::from_millis(500)).saturating_sub(signalled.elapsed()))
        .await;
    assert!(
        tokio::net::TcpStream::connect(&gw.addr).await.is_err(),
        "the listener is closed after the drain delay"
    );

    for s in streams {
        let events = s.await.unwrap();
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
    }
    let status = tokio::time::timeout(grace + Duration::from_secs(1), gw.child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within grace + 1 s:\n{}", gw.stderr()))
        .unwrap();
    let took = signalled.elapsed();
    eprintln!("exited {status} {took:?} after SIGTERM");
    assert!(status.success(), "{status}\n{}", gw.stderr());
    assert!(took <= grace + Duration::from_secs(1), "{took:?}");

    let log = gw.stderr();
    for phase in [
        "signal received",
        "still accepting connections",
        "listener closed",
        "every connection finished",
        "request log flushed",
    ] {
        assert!(log.contains(phase), "phase {phase:?} not logged:\n{log}");
    }

    let rows = request_logs(&gw.dir).await;
    let streamed = rows
        .iter()
        .filter(|r| r.streamed && r.status == 200)
        .count();
    assert_eq!(streamed, STREAMS, "{rows:?}");
    assert_eq!(
        rows.len(),
        STREAMS + 1,
        "the streams and the request during the drain"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 60,
        chunk_delay_ms: 500,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut gw = start(&fake, "drain_delay_ms = 5000\nshutdown_grace_ms = 30000").await;
    let stream = chat_stream(&gw).await;
    gw.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    gw.signal("INT");
    let second = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(2), gw.child.wait())
        .await
        .unwrap_or_else(|_| panic!("still running after a second signal:\n{}", gw.stderr()))
        .unwrap();
    eprintln!(
        "exited {status} {:?} after the second signal",
        second.elapsed()
    );
    assert!(!status.success(), "{status}");
    // The stream was cut, not finished.
    let body = stream.text().await.unwrap_or_default();
    assert!(!body.contains("[DONE]"), "{body}");
}

#[tokio::test]
async fn streams_that_outlast_the_grace_period_are_cut_and_the_process_exits_in_time() {
    let grace = Duration::from_secs(2);
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 60,
        chunk_delay_ms: 500,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut gw = start(&fake, "drain_delay_ms = 500\nshutdown_grace_ms = 2000").await;
    let streams: Vec<_> = futures_util::future::join_all((0..3).map(|_| chat_stream(&gw))).await;
    gw.signal("TERM");
    let signalled = Instant::now();
    let status = tokio::time::timeout(grace + Duration::from_secs(1), gw.child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within grace + 1 s:\n{}", gw.stderr()))
        .unwrap();
    eprintln!("exited {status} {:?} after SIGTERM", signalled.elapsed());
    assert!(status.success(), "{status}\n{}", gw.stderr());
    let log = gw.stderr();
    assert!(log.contains("grace period over"), "{log}");
    for s in streams {
        let body = s.text().await.unwrap_or_default();
        assert!(!body.contains("[DONE]"), "{body}");
    }
    // The cut streams are in the request log, as cancelled.
    let rows = request_logs(&gw.dir).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.streamed && r.outcome == orch_store::Outcome::Cancelled),
        "{rows:?}"
    );
}
