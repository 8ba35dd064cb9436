//! Replicas sharing limits, health and catalogue changes through the
//! machine's Redis (each test under its own key prefix), and what happens
//! when Redis goes away under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use reqwest::Method;
use serde_json::{Value, json};

use crate::databases;
use crate::harness::{Gateway, Spec, chat_body};
use crate::proxy::Proxy;

const ADMIN: &str = "admin-token-0123456789abcdef";
const REDIS_PORT: u16 = 6379;
const FILE_KEY: &str = "sk-file-client-key-0123456789";

/// Whether the machine's Redis answers; under CI it must.
async fn redis_reachable() -> bool {
    match tokio::net::TcpStream::connect(("127.0.0.1", REDIS_PORT)).await {
        Ok(_) => true,
        Err(e) if orch_test_support::in_ci() => {
            panic!("redis on 127.0.0.1:{REDIS_PORT} is unreachable and CI is set: {e}")
        }
        Err(e) => {
            eprintln!("notice: redis is unreachable, skipping ({e})");
            false
        }
    }
}

/// A `[redis]` section under a prefix no other test uses; the catalogue is
/// polled only every minute, so what arrives sooner came through Redis.
fn redis_section(tag: &str, port: u16) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "[redis]\nurl = \"redis://127.0.0.1:{port}\"\nprefix = \"orch-test-{tag}-{}-{nanos}\"\n",
        std::process::id()
    )
}

async fn replicas(n: usize, spec: impl Fn() -> Spec) -> Vec<Gateway> {
    let mut gws = Vec::new();
    for _ in 0..n {
        gws.push(Gateway::start(spec()).await);
    }
    gws
}

async fn batch(gw: &Gateway, operations: Value) -> Value {
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/batch",
            ADMIN,
            Some(json!({ "operations": operations })),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Wait until `check` holds on the health view of `gw` (at most 20 s).
async fn until_view(gw: &Gateway, what: &str, check: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let view = gw.health_view(ADMIN).await;
        if check(&view) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never: {what}; last view {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn chat_as(gw: &Gateway, key: &str, model: &str, stream: bool) -> reqwest::Response {
    gw.http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model, stream))
        .send()
        .await
        .unwrap()
}

async fn chat_status(gw: &Gateway, key: &str, model: &str) -> u16 {
    chat_as(gw, key, model, false).await.status().as_u16()
}

/// Wait until every replica in `gws` answers the model listing for `key`
/// with `status` (200: the key is known; 401: revoked); how long it took.
async fn until_key(gws: &[&Gateway], key: &str, status: u16) -> Duration {
    let started = Instant::now();
    for gw in gws {
        while models_status(gw, key).await != status {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the key never answered {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

async fn models_status(gw: &Gateway, key: &str) -> u16 {
    gw.http
        .get(gw.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_requests_per_minute_limit_holds_across_three_replicas() {
    if !redis_reachable().await {
        return;
    }
    let Some(db) = databases::fresh(databases::POSTGRES, "rpm_shared").await else {
        return;
    };
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let redis = redis_section("rpm", REDIS_PORT);
    let gws = replicas(3, || {
        let mut spec = Spec::openai(&fake.base_url(), "fake-model");
        spec.database_url = Some(db.url(None));
        spec.admin_token = Some(ADMIN.into());
        // Not open: a key is known only once the replica loaded it.
        spec.client_keys = vec![FILE_KEY.into()];
        spec.extra = redis.clone();
        spec
    })
    .await;
    for gw in &gws {
        until_view(gw, "three replicas seen", |v| v["redis"]["replicas"] == 3).await;
    }
    let v = batch(
        &gws[0],
        json!([{"op": "create_client_key", "client_key": {"name": "limited", "rpm": 100}}]),
    )
    .await;
    let key = v["results"][0]["key"].as_str().unwrap().to_string();
    // Known everywhere (the model listing does not count against the limit).
    until_key(&gws.iter().collect::<Vec<_>>(), &key, 200).await;

    // 300 requests, 100 to each replica, 4 at a time on each.
    let gws = Arc::new(gws);
    let (ok, limited, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut tasks = Vec::new();
    for r in 0..3 {
        for _ in 0..4 {
            let (gws, key) = (gws.clone(), key.clone());
            let (ok, limited, other) = (ok.clone(), limited.clone(), other.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..25 {
                    match chat_status(&gws[r], &key, "m").await {
                        200 => &ok,
                        429 => &limited,
                        _ => &other,
                    }
                    .fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, limited, other) = (
        ok.load(Ordering::SeqCst),
        limited.load(Ordering::SeqCst),
        other.load(Ordering::SeqCst),
    );
    eprintln!("rpm 100 across 3 replicas: {ok} admitted, {limited} refused with 429");

    assert_eq!(other, 0);
    assert!(
        ok <= 105,
        "{ok} admitted by three replicas under a limit of 100"
    );
    assert!(ok >= 90, "only {ok} admitted under a limit of 100");

    let gws = Arc::try_unwrap(gws).ok().unwrap();
    for gw in gws {
        gw.stop().await;
    }
    db.drop_now().await;
}

#[tokio::test]
async fn edits_and_ejections_reach_every_replica_through_redis() {
    if !redis_reachable().await {
        return;
    }
    let Some(db) = databases::fresh(databases::POSTGRES, "share_events").await else {
        return;
    };
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let redis = redis_section("events", REDIS_PORT);
    // Model `m`: a working provider and one whose port refuses connections.
    let gws = replicas(3, || {
        let mut spec = Spec::default()
            .plugin("openai.wasm")
            .provider("good", "openai", &fake.base_url())
            .provider("dead", "openai", "http://127.0.0.1:9")
            .model("m", &[("good", "fake-model", 1), ("dead", "fake-model", 1)]);
        spec.database_url = Some(db.url(None));
        spec.admin_token = Some(ADMIN.into());
        spec.client_keys = vec![FILE_KEY.into()];
        spec.extra = redis.clone();
        spec.refresh_interval_ms = Some(60_000);
        spec
    })
    .await;
    for gw in &gws {
        until_view(gw, "three replicas seen", |v| v["redis"]["replicas"] == 3).await;
    }

    // A model made through one replica is served by the others long before
    // their next poll.
    let started = Instant::now();
    batch(
        &gws[0],
        json!([{"op": "put_model", "model": {"name": "added", "targets": [{"provider": "good", "model": "fake-model"}]}}]),
    )
    .await;
    for gw in &gws[1..] {
        loop {
            if chat_status(gw, FILE_KEY, "added").await == 200 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "edit not shared"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    eprintln!(
        "a model edit was served by the other replicas after {} ms",
        started.elapsed().as_millis()
    );

    // A client key revoked through one replica stops working on the others.
    let v = batch(
        &gws[0],
        json!([{"op": "create_client_key", "client_key": {"name": "short-lived"}}]),
    )
    .await;
    let key = v["results"][0]["key"].as_str().unwrap().to_string();
    let id = v["results"][0]["id"].as_i64().unwrap();
    until_key(&gws.iter().collect::<Vec<_>>(), &key, 200).await;
    let r = gws[1]
        .admin(
            Method::DELETE,
            &format!("/admin/v1/client-keys/{id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let took = until_key(&[&gws[0], &gws[2]], &key, 401).await;
    eprintln!(
        "a revoked key was refused by the other replicas after {} ms",
        took.as_millis()
    );

    // Replica 0 ejects the dead target; the others take it out of rotation
    // without sending it a request.
    let dead = |v: &Value| {
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["model"] == "m" && t["provider"] == "dead")
            .cloned()
            .unwrap()
    };
    let started = Instant::now();
    loop {
        assert_eq!(chat_status(&gws[0], FILE_KEY, "m").await, 200);
        if dead(&gws[0].health_view(ADMIN).await)["state"] == "unhealthy" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never ejected");
    }
    let ejected_at = Instant::now();
    for gw in &gws[1..] {
        until_view(gw, "ejection shared", |v| dead(v)["state"] == "unhealthy").await;
        eprintln!(
            "the ejection was seen by another replica {} ms after it happened",
            ejected_at.elapsed().as_millis()
        );
        for _ in 0..20 {
            assert_eq!(chat_status(gw, FILE_KEY, "m").await, 200);
        }
        let t = dead(&gw.health_view(ADMIN).await);
        assert_eq!(
            t["window"]["requests"], 0,
            "no traffic to the ejected target: {t}"
        );
        assert!(
            t["reason"].as_str().unwrap().contains("another replica"),
            "{t}"
        );
    }
    for gw in gws {
        gw.stop().await;
    }
    db.drop_now().await;
}

#[tokio::test]
async fn a_redis_outage_under_load_fails_no_request_and_sharing_resumes() {
    if !redis_reachable().await {
        return;
    }
    let Some(db) = databases::fresh(databases::POSTGRES, "redis_outage").await else {
        return;
    };
    let proxy = Proxy::start(REDIS_PORT).await;
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let redis = redis_section("outage", proxy.port);
    let gws = replicas(2, || {
        let mut spec = Spec::openai(&fake.base_url(), "fake-model");
        spec.database_url = Some(db.url(None));
        spec.admin_token = Some(ADMIN.into());
        spec.client_keys = vec![FILE_KEY.into()];
        spec.extra = redis.clone();
        spec.refresh_interval_ms = Some(60_000);
        spec
    })
    .await;
    for gw in &gws {
        until_view(gw, "two replicas seen", |v| v["redis"]["replicas"] == 2).await;
    }
    // A key whose limits go through Redis, wide enough never to refuse.
    let v = batch(
        &gws[0],
        json!([{"op": "create_client_key", "client_key": {
            "name": "busy", "rpm": 1_000_000, "tpm": 1_000_000_000,
            "budget": {"tokens": 1_000_000_000_000u64, "period": "day"}}}]),
    )
    .await;
    let key = v["results"][0]["key"].as_str().unwrap().to_string();
    until_key(&gws.iter().collect::<Vec<_>>(), &key, 200).await;

    let gws = Arc::new(gws);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for i in 0..4usize {
        let (gws, stop, ok, failed, key) = (
            gws.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            key.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let r = chat_as(&gws[i % 2], &key, "m", i % 4 < 2).await;
                let good = r.status() == 200 && r.bytes().await.is_ok();
                if good { &ok } else { &failed }.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut().await;
    let cut_at = ok.load(Ordering::SeqCst);
    for gw in gws.iter() {
        until_view(gw, "redis seen down", |v| v["redis"]["up"] == false).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = ok.load(Ordering::SeqCst) - cut_at;
    proxy.restore();
    for gw in gws.iter() {
        until_view(gw, "redis seen up again", |v| v["redis"]["up"] == true).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    eprintln!(
        "{} requests served, {during} during the 30 s Redis outage, {} failed",
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request failed");
    assert!(
        during > 100,
        "requests were served during the outage ({during})"
    );

    // Sharing resumed: an edit on one replica reaches the other through
    // Redis (the database poll is a minute away).
    let started = Instant::now();
    batch(
        &gws[1],
        json!([{"op": "put_model", "model": {"name": "after-outage", "targets": [{"provider": "f", "model": "fake-model"}]}}]),
    )
    .await;
    loop {
        if chat_status(&gws[0], &key, "after-outage").await == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "edit not shared after the outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let view = gws[0].health_view(ADMIN).await;
    assert!(view["redis"]["outages"].as_u64().unwrap() >= 1, "{view}");
    assert!(view["redis"]["exchanges"].as_u64().unwrap() > 0, "{view}");

    let gws = Arc::try_unwrap(gws).ok().unwrap();
    for gw in gws {
        gw.stop().await;
    }
    db.drop_now().await;
}
