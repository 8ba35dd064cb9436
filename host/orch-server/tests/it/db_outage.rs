//! A database outage under load: the gateway keeps serving its cached
//! catalogue, and logging resumes when the database returns. The outage is
//! made by a TCP proxy this test owns in front of the machine's PostgreSQL,
//! so other tests keep their database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use reqwest::Method;

use crate::databases;
use crate::harness::{Gateway, Spec, chat_body};
use crate::proxy::Proxy;

const ADMIN: &str = "admin-token-0123456789abcdef";

#[tokio::test]
async fn a_database_outage_fails_no_request_and_logging_resumes() {
    let Some(db) = databases::fresh(databases::POSTGRES, "outage").await else {
        return;
    };
    let proxy = Proxy::start(5432).await;
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.database_url = Some(db.url(Some(&format!("127.0.0.1:{}", proxy.port))));
    spec.admin_token = Some(ADMIN.into());
    let gw = Arc::new(Gateway::start(spec).await);

    // Load from four clients for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for i in 0..4 {
        let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let r = gw.chat(chat_body("m", i % 2 == 0)).await;
                let good = r.status() == 200 && r.bytes().await.is_ok();
                if good { &ok } else { &failed }.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut().await;
    let cut_at = ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = ok.load(Ordering::SeqCst) - cut_at;
    proxy.restore();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    eprintln!(
        "{} requests served, {during} of them during the 30 s outage, {} failed",
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request failed");
    assert!(
        during > 100,
        "requests were served during the outage ({during})"
    );

    // Logging resumed: requests made after the outage are in the database.
    let marker = Instant::now();
    let r = gw.chat(chat_body("m", false)).await;
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut found = false;
    while marker.elapsed() < Duration::from_secs(20) && !found {
        let page: serde_json::Value = gw
            .admin(Method::GET, "/admin/v1/logs?limit=5", ADMIN, None)
            .await
            .json()
            .await
            .unwrap_or_default();
        found = page["data"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["request_id"] == request_id));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(found, "a request after the outage was logged");
    // The writer saw the outage and says what it lost (here: as many rows
    // as failed twice to be written).
    let view = gw.health_view(ADMIN).await;
    let log = &view["request_log"];
    assert!(log["write_errors"].as_u64().unwrap() > 0, "{log}");
    assert!(
        log["dropped"].is_u64() && log["written"].as_u64().unwrap() > 0,
        "{log}"
    );
    match Arc::try_unwrap(gw) {
        Ok(gw) => drop(gw.stop().await),
        Err(_) => panic!("gateway still shared"),
    }
    db.drop_now().await;
}
