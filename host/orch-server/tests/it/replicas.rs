//! Several replicas on one database: a change made through one is served by
//! the others after their next revision poll (`[database]
//! refresh_interval_ms`, 500 ms by default), without Redis.

use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use reqwest::Method;
use serde_json::json;

use crate::databases;
use crate::harness::{Gateway, Spec, chat_body};

const ADMIN: &str = "admin-token-0123456789abcdef";

async fn status(gw: &Gateway, key: Option<&str>, model: &str) -> u16 {
    let mut req = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body(model, false));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap().status().as_u16()
}

/// How long until every replica answers `want`; panics after 15 s.
async fn until_all(replicas: &[&Gateway], key: Option<&str>, model: &str, want: u16) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for gw in replicas {
            all &= status(gw, key, model).await == want;
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "replicas never answered {want} for {model}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn replicas_on_one_database_serve_each_others_changes() {
    let Some(db) = databases::fresh(databases::POSTGRES, "replicas").await else {
        return;
    };
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut gws = Vec::new();
    for _ in 0..3 {
        let mut spec = Spec::openai(&fake.base_url(), "fake-model");
        spec.database_url = Some(db.url(None));
        spec.admin_token = Some(ADMIN.into());
        spec.client_keys = vec!["sk-file-client-key-0123456789".into()];
        gws.push(Gateway::start(spec).await);
    }
    let (a, others) = (&gws[0], [&gws[1], &gws[2]]);

    // A model created through one replica.
    let r = a
        .admin(
            Method::POST,
            "/admin/v1/batch",
            ADMIN,
            Some(json!({"operations": [
                {"op": "put_provider", "provider": {"name": "shared", "adapter": "openai", "base_url": fake.base_url()}},
                {"op": "put_model", "model": {"name": "shared-model", "targets": [{"provider": "shared", "model": "fake-model"}]}},
                {"op": "create_client_key", "client_key": {"name": "everywhere"}},
            ]})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let key = v["results"][2]["key"].as_str().unwrap().to_string();
    let id = v["results"][2]["id"].as_i64().unwrap();
    assert_eq!(
        status(a, Some(&key), "shared-model").await,
        200,
        "served at once where it was made"
    );
    let took = until_all(&others, Some(&key), "shared-model", 200).await;
    eprintln!(
        "model and key served by the other replicas after {} ms",
        took.as_millis()
    );

    // A key revoked through another replica stops working everywhere.
    let r = gws[1]
        .admin(
            Method::DELETE,
            &format!("/admin/v1/client-keys/{id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let took = until_all(&[&gws[0], &gws[2]], Some(&key), "shared-model", 401).await;
    eprintln!(
        "revocation effective on the other replicas after {} ms",
        took.as_millis()
    );

    for gw in gws {
        gw.stop().await;
    }
    db.drop_now().await;
}
