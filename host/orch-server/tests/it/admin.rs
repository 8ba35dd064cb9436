//! The admin API: every route behind the token, catalogue round trips that
//! change what is served, batches all or nothing, file-owned entries, the
//! audit log, client keys with their limits, and secrets at rest.

use std::sync::Arc;

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use reqwest::Method;
use serde_json::{Value, json};

use crate::databases;
use crate::harness::{Gateway, Spec, chat_body};

const ADMIN: &str = "admin-token-0123456789abcdef";
const CLIENT: &str = "sk-file-client-key-0123456789";
const MASTER: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const CANARY: &str = "sk-CANARY-do-not-store-in-clear-7f3a9c";

async fn gateway(fake: &FakeUpstream) -> Gateway {
    gateway_on(fake, None).await
}

async fn gateway_on(fake: &FakeUpstream, database_url: Option<String>) -> Gateway {
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.database_url = database_url;
    spec.admin_token = Some(ADMIN.into());
    spec.master_key = Some(MASTER.into());
    spec.client_keys = vec![CLIENT.into()];
    Gateway::start(spec).await
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("json body")
}

async fn chat_as(gw: &Gateway, key: &str, body: Value) -> reqwest::Response {
    gw.http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// Every operation of the OpenAPI document, with its path parameters filled.
async fn routes(gw: &Gateway) -> Vec<(Method, String)> {
    let doc = json_of(
        gw.admin(Method::GET, "/admin/v1/openapi.json", ADMIN, None)
            .await,
    )
    .await;
    let mut out = vec![(Method::GET, "/admin/v1/openapi.json".to_string())];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let filled = path
            .replace("{name}", "nope")
            .replace("{id}", "999999")
            .replace("{index}", "0")
            .replace("{request_id}", "nope");
        for method in item.as_object().expect("path item").keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            out.push((m, filled.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_admin_route_needs_the_admin_token() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake).await;
    let routes = routes(&gw).await;
    assert!(routes.len() >= 30, "{} routes", routes.len());
    for (method, path) in &routes {
        for (who, token) in [
            ("none", ""),
            ("wrong", "admin-token-wrong-000000"),
            ("client key", CLIENT),
        ] {
            let mut req = gw.http.request(method.clone(), gw.url(path));
            if !token.is_empty() {
                req = req.bearer_auth(token);
            }
            let r = req.json(&json!({})).send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {who}");
            let v = json_of(r).await;
            assert_eq!(v["error"]["code"], "invalid_api_key", "{method} {path}");
        }
        let r = gw
            .http
            .request(method.clone(), gw.url(path))
            .bearer_auth(ADMIN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(
            ![401, 403, 405].contains(&r.status().as_u16()) && r.status().as_u16() < 500
                || r.status() == 503,
            "{method} {path} with the admin token: {}",
            r.status()
        );
    }
    gw.stop().await;

    // Without a configured token the admin API is off.
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.client_keys = vec![CLIENT.into()];
    let gw = Gateway::start(spec).await;
    for (method, path) in &routes {
        let r = gw
            .http
            .request(method.clone(), gw.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path} with the API off");
    }
    gw.stop().await;
}

#[tokio::test]
async fn catalogue_changes_on_sqlite() {
    catalogue_changes_are_validated_served_and_audited(None).await;
}

#[tokio::test]
async fn catalogue_changes_on_postgres() {
    if let Some(db) = databases::fresh(databases::POSTGRES, "admin").await {
        catalogue_changes_are_validated_served_and_audited(Some(db.url(None))).await;
        db.drop_now().await;
    }
}

#[tokio::test]
async fn catalogue_changes_on_mariadb() {
    if let Some(db) = databases::fresh(databases::MYSQL, "admin").await {
        catalogue_changes_are_validated_served_and_audited(Some(db.url(None))).await;
        db.drop_now().await;
    }
}

async fn catalogue_changes_are_validated_served_and_audited(database_url: Option<String>) {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway_on(&fake, database_url).await;
    let base = fake.base_url();

    // A provider with a literal key (stored encrypted) and a model on it.
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/providers",
            ADMIN,
            Some(json!({"name": "api-prov", "adapter": "openai", "base_url": base, "api_keys": [CANARY]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v = json_of(r).await;
    assert_eq!(v["managed_by"], "api");
    assert_eq!(v["keys"][0]["source"], "encrypted");
    assert!(!v.to_string().contains(CANARY), "{v}");
    assert!(v.get("api_keys").is_none(), "keys are write-only: {v}");

    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/models",
            ADMIN,
            Some(json!({"name": "api-model", "targets": [{"provider": "api-prov", "model": "fake-model"}]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = chat_as(&gw, CLIENT, chat_body("api-model", false)).await;
    assert_eq!(r.status(), 200, "served at once by this replica");
    assert_eq!(
        fake.last_request()
            .unwrap()
            .headers
            .get("authorization")
            .map(String::as_str),
        Some(format!("Bearer {CANARY}").as_str()),
        "the decrypted key is sent upstream"
    );

    // Validation: every problem, keyed; nothing stored.
    let r = gw
        .admin(
            Method::PUT,
            "/admin/v1/models/bad",
            ADMIN,
            Some(json!({"name": "bad", "targets": [{"provider": "nobody", "model": "x", "headers": {"authorization": "x"}}]})),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v = json_of(r).await;
    let keys: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.iter().any(|k| k.ends_with("targets[0].provider")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains("headers.authorization")),
        "{keys:?}"
    );
    let r = gw
        .admin(Method::GET, "/admin/v1/models/bad", ADMIN, None)
        .await;
    assert_eq!(r.status(), 404);

    // Disable and enable change what is served.
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/models/api-model/disable",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        chat_as(&gw, CLIENT, chat_body("api-model", false))
            .await
            .status(),
        404
    );
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/models/api-model/enable",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        chat_as(&gw, CLIENT, chat_body("api-model", false))
            .await
            .status(),
        200
    );

    // A disabled provider takes its targets out of service.
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/providers/api-prov/disable",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = chat_as(&gw, CLIENT, chat_body("api-model", false)).await;
    assert_eq!(r.status(), 503);
    assert!(
        json_of(r).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/providers/api-prov/enable",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(
        json_of(r).await["keys"].as_array().unwrap().len(),
        1,
        "keys survive"
    );
    assert_eq!(
        chat_as(&gw, CLIENT, chat_body("api-model", false))
            .await
            .status(),
        200
    );

    // Targets by position.
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/models/api-model/targets",
            ADMIN,
            Some(json!({"provider": "f", "model": "fake-model", "weight": 2})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let targets = json_of(
        gw.admin(
            Method::GET,
            "/admin/v1/models/api-model/targets",
            ADMIN,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(targets.as_array().unwrap().len(), 2);
    assert_eq!(targets[1]["weight"], 2);
    let r = gw
        .admin(
            Method::DELETE,
            "/admin/v1/models/api-model/targets/1",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = gw
        .admin(
            Method::DELETE,
            "/admin/v1/models/api-model/targets/5",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 404);

    // A provider in use cannot go; file-owned entries are read-only.
    let r = gw
        .admin(Method::DELETE, "/admin/v1/providers/api-prov", ADMIN, None)
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(json_of(r).await["error"]["code"], "in_use");
    let r = gw
        .admin(Method::DELETE, "/admin/v1/models/m", ADMIN, None)
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(json_of(r).await["error"]["code"], "managed_by_file");
    let file_provider = json_of(
        gw.admin(Method::GET, "/admin/v1/providers/f", ADMIN, None)
            .await,
    )
    .await;
    assert_eq!(file_provider["managed_by"], "file");

    // Keys: add (duplicate refused), remove.
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/providers/api-prov/keys",
            ADMIN,
            Some(json!({"key": "env:SOME_UPSTREAM_KEY", "label": "second"})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v = json_of(r).await;
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    assert_eq!(v["keys"][1]["source"], "env");
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/providers/api-prov/keys",
            ADMIN,
            Some(json!({"key": CANARY})),
        )
        .await;
    assert_eq!(r.status(), 409);
    let id = v["keys"][1]["id"].as_i64().unwrap();
    let r = gw
        .admin(
            Method::DELETE,
            &format!("/admin/v1/providers/api-prov/keys/{id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);

    // Delete in order; the model is gone at once.
    assert_eq!(
        gw.admin(Method::DELETE, "/admin/v1/models/api-model", ADMIN, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        chat_as(&gw, CLIENT, chat_body("api-model", false))
            .await
            .status(),
        404
    );
    assert_eq!(
        gw.admin(Method::DELETE, "/admin/v1/providers/api-prov", ADMIN, None)
            .await
            .status(),
        204
    );

    // Every change is in the audit log, newest first, without secrets.
    let audit = json_of(
        gw.admin(Method::GET, "/admin/v1/audit?limit=1000", ADMIN, None)
            .await,
    )
    .await;
    let rows = audit["data"].as_array().unwrap();
    let actions: Vec<String> = rows
        .iter()
        .filter(|r| r["actor"] == "admin-api")
        .map(|r| {
            format!(
                "{} {} {}",
                r["action"].as_str().unwrap(),
                r["entity"].as_str().unwrap(),
                r["entity_name"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "create provider api-prov",
        "create model api-model",
        "update model api-model",
        "add_key provider api-prov",
        "delete_key provider api-prov",
        "delete model api-model",
        "delete provider api-prov",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r["actor"] == "config-file"),
        "the file's import is audited"
    );
    assert!(!audit.to_string().contains(CANARY));
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    gw.stop().await;
}

#[tokio::test]
async fn a_batch_applies_all_or_nothing() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake).await;
    let base = fake.base_url();
    let ops = json!({"operations": [
        {"op": "put_provider", "provider": {"name": "b1", "adapter": "openai", "base_url": base}},
        {"op": "put_model", "model": {"name": "bm", "targets": [{"provider": "b1", "model": "fake-model"}]}},
        {"op": "put_model", "model": {"name": "broken", "targets": [{"provider": "missing", "model": "x"}]}},
    ]});
    let r = gw
        .admin(Method::POST, "/admin/v1/batch", ADMIN, Some(ops))
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        gw.admin(Method::GET, "/admin/v1/providers/b1", ADMIN, None)
            .await
            .status(),
        404
    );

    let ops = json!({"operations": [
        {"op": "put_provider", "provider": {"name": "b1", "adapter": "openai", "base_url": base}},
        {"op": "put_model", "model": {"name": "bm", "targets": [{"provider": "b1", "model": "fake-model"}]}},
        {"op": "create_client_key", "client_key": {"name": "batch-key", "allowed_models": ["bm"]}},
    ]});
    let r = gw
        .admin(Method::POST, "/admin/v1/batch", ADMIN, Some(ops))
        .await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let key = results[2]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-orch-"));
    assert_eq!(
        chat_as(&gw, &key, chat_body("bm", false)).await.status(),
        200
    );
    assert_eq!(
        chat_as(&gw, &key, chat_body("m", false)).await.status(),
        403,
        "not an allowed model"
    );
    gw.stop().await;
}

#[tokio::test]
async fn client_keys_are_shown_once_and_enforced() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake).await;
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/client-keys",
            ADMIN,
            Some(json!({"name": "team-a", "allowed_models": ["m"], "rpm": 3, "metadata": {"team": "a"}})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created = json_of(r).await;
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    let listed = json_of(
        gw.admin(Method::GET, "/admin/v1/client-keys", ADMIN, None)
            .await,
    )
    .await;
    assert!(
        !listed.to_string().contains(&key),
        "the key is shown only once"
    );
    assert_eq!(listed[0]["metadata"]["team"], "a");

    // Requests per minute: 3 pass, the 4th waits.
    for _ in 0..3 {
        assert_eq!(
            chat_as(&gw, &key, chat_body("m", false)).await.status(),
            200
        );
    }
    let r = chat_as(&gw, &key, chat_body("m", false)).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(json_of(r).await["error"]["code"], "rate_limit_exceeded");

    // Disabled, then revoked: refused at once.
    let r = gw
        .admin(
            Method::POST,
            &format!("/admin/v1/client-keys/{id}/disable"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        chat_as(&gw, &key, chat_body("m", false)).await.status(),
        401
    );
    let r = gw
        .admin(
            Method::DELETE,
            &format!("/admin/v1/client-keys/{id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        chat_as(&gw, &key, chat_body("m", false)).await.status(),
        401
    );
    assert_eq!(
        chat_as(&gw, CLIENT, chat_body("m", false)).await.status(),
        200,
        "file keys still work"
    );

    // A key that captures bodies: both are kept with the log row.
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/client-keys",
            ADMIN,
            Some(json!({"name": "audited", "capture_bodies": true})),
        )
        .await;
    let capturing = json_of(r).await["key"].as_str().unwrap().to_string();
    let r = chat_as(&gw, &capturing, chat_body("m", false)).await;
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let reply = r.text().await.unwrap();
    let mut bodies = Value::Null;
    for _ in 0..100 {
        let r = gw
            .admin(
                Method::GET,
                &format!("/admin/v1/logs/{request_id}/bodies"),
                ADMIN,
                None,
            )
            .await;
        if r.status() == 200 {
            bodies = json_of(r).await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        bodies["request"]
            .as_str()
            .unwrap()
            .contains("\"model\":\"m\""),
        "{bodies}"
    );
    assert_eq!(bodies["response"].as_str().unwrap(), reply);

    // The request log names the key, filtered by the admin API too.
    let page = json_of(
        gw.admin(
            Method::GET,
            &format!("/admin/v1/logs?client_key_id={id}&limit=2"),
            ADMIN,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());
    let data = gw.stop().await;
    let logs = crate::harness::request_logs(&data).await;
    assert!(logs.iter().filter(|l| l.client_key_id == Some(id)).count() >= 4);
}

#[tokio::test]
async fn concurrent_requests_never_overspend_a_budget() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::openai(&fake.base_url(), "slow-400");
    spec.admin_token = Some(ADMIN.into());
    let gw = Gateway::start(spec).await;
    let body =
        json!({"model": "m", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let estimate = bytes.len().div_ceil(4) as u64 + 1000;
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/client-keys",
            ADMIN,
            Some(json!({"name": "budgeted", "budget": {"tokens": estimate * 10, "period": "day"}})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let key = json_of(r).await["key"].as_str().unwrap().to_string();
    let gw = Arc::new(gw);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let gw = gw.clone();
        let (key, bytes) = (key.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            gw.http
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => refused += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((ok, refused), (10, 90), "exactly the requests that fit");
}

#[tokio::test]
async fn secrets_never_rest_in_clear_and_a_wrong_master_key_stops_the_start() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake).await;
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/providers",
            ADMIN,
            Some(json!({"name": "canary", "adapter": "openai", "base_url": fake.base_url(), "api_keys": [CANARY]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = gw
        .admin(
            Method::POST,
            "/admin/v1/client-keys",
            ADMIN,
            Some(json!({"name": "k"})),
        )
        .await;
    let client_key = json_of(r).await["key"].as_str().unwrap().to_string();
    for path in [
        "/admin/v1/providers",
        "/admin/v1/client-keys",
        "/admin/v1/audit",
        "/admin/v1/health",
    ] {
        let text = gw
            .admin(Method::GET, path, ADMIN, None)
            .await
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains(CANARY) && !text.contains(&client_key),
            "{path}: {text}"
        );
    }
    let data = gw.stop().await;
    let mut read = 0;
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue; // a directory, or a SQLite side file gone since the listing
        };
        read += bytes.len();
        for secret in [CANARY, client_key.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret in clear",
                path.display()
            );
        }
    }

    assert!(read > 10_000, "the database files were read ({read} bytes)");

    // The same database with another master key: the start fails, clearly.
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.admin_token = Some(ADMIN.into());
    spec.master_key = Some("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".into());
    let (config, _plugins) = Gateway::configure(&spec, &data);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = orch_server::serve(config, listener, std::future::pending())
        .await
        .expect_err("a wrong master key must stop the start");
    let text = format!("{err:#}");
    assert!(text.contains("master key"), "{text}");
    assert!(!text.contains(CANARY));
}
