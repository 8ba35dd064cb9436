//! Hot reload under load: swap the OpenAI adapter for a new version while
//! clients stream, then replace it with every kind of broken file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};

use crate::harness::{Gateway, Spec, chat_body, sse_data};

/// Replace a file the way deployers must: write a temporary, then rename.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(".incoming.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Outcome {
    started: Duration,
    version: Option<String>,
    ok: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_under_streaming_load_then_survive_broken_files() {
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 10,
        chunk_delay_ms: 20,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let gw = Gateway::start(Spec::openai(&fake.base_url(), "fake-model")).await;
    let target = gw.plugins.path().join("openai.wasm");
    let next = std::fs::read(orch_test_support::component("openai_next.wasm")).unwrap();
    let t0 = Instant::now();
    let run_for = Duration::from_secs(10);
    let url = Arc::new(gw.url("/v1/chat/completions"));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let http = gw.http.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while t0.elapsed() < run_for {
                let started = t0.elapsed();
                let resp = http
                    .post(url.as_str())
                    .json(&chat_body("m", true))
                    .send()
                    .await;
                let outcome = match resp {
                    Ok(r) if r.status() == 200 => {
                        let version = r
                            .headers()
                            .get("x-orchestrator-adapter")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let events = sse_data(r).await;
                        Outcome {
                            started,
                            version,
                            ok: events.last().map(String::as_str) == Some("[DONE]"),
                        }
                    }
                    _ => Outcome {
                        started,
                        version: None,
                        ok: false,
                    },
                };
                out.push(outcome);
            }
            out
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    replace(&target, &next);
    let swapped_at = t0.elapsed();

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let broken: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", next[..next.len() / 2].to_vec()),
        ("not wasm", b"this is not a WebAssembly component".to_vec()),
        (
            "wrong world",
            std::fs::read(orch_test_support::component("fixture_wrong_world.wasm")).unwrap(),
        ),
        (
            "wrong contract version",
            std::fs::read(orch_test_support::component("fixture_wrong_version.wasm")).unwrap(),
        ),
        (
            "traps on load",
            std::fs::read(orch_test_support::component("fixture_info_trap.wasm")).unwrap(),
        ),
    ];
    for (_, bytes) in &broken {
        replace(&target, bytes);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.unwrap());
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    assert_eq!(failed, 0, "{failed} of {} requests failed", outcomes.len());
    let old = outcomes
        .iter()
        .filter(|o| o.version.as_deref() == Some("openai@0.1.0"))
        .count();
    let new = outcomes
        .iter()
        .filter(|o| o.version.as_deref() == Some("openai@0.2.0"))
        .count();
    assert_eq!(
        old + new,
        outcomes.len(),
        "every response names exactly one version"
    );
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    let first_new = outcomes
        .iter()
        .filter(|o| o.version.as_deref() == Some("openai@0.2.0"))
        .map(|o| o.started)
        .min()
        .unwrap();
    let last_old = outcomes
        .iter()
        .filter(|o| o.version.as_deref() == Some("openai@0.1.0"))
        .map(|o| o.started)
        .max()
        .unwrap();
    eprintln!(
        "{} streams; swap at {swapped_at:?}; first new-version request started at {first_new:?}; last old-version request started at {last_old:?}",
        outcomes.len()
    );
    assert!(
        last_old < swapped_at + Duration::from_secs(2),
        "requests started {:?} after the swap still used the old version",
        last_old - swapped_at
    );
    // After all the broken files, the new version still serves.
    let resp = gw.chat(chat_body("m", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-orchestrator-adapter"], "openai@0.2.0");
    gw.stop().await;
}
