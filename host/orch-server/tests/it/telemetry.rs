//! Request ids, W3C trace context to the upstream, and OTLP trace export.
//!
//! The export test runs the real binary: a process has one global
//! `tracing` subscriber, and this test binary starts many gateways.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Process, Spec, chat_body, request_logs};

const CLIENT_KEY: &str = "sk-client-key-for-telemetry";
const ADMIN: &str = "admin-token-for-telemetry";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

/// A parsed `traceparent`: (trace id, parent id, flags), hex.
fn traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00", "{v}");
    let hex = |s: &str, n: usize| {
        assert_eq!(s.len(), n, "{v}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{v}"
        );
        assert!(s.bytes().any(|b| b != b'0'), "all-zero id in {v}");
        s.to_string()
    };
    (hex(parts[1], 32), hex(parts[2], 16), parts[3].to_string())
}

/// Request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];
/// A request of the round trip: id, method, path, headers, body, the
/// status it gets, and whether it makes a request-log row.
type Case<'a> = (
    &'a str,
    reqwest::Method,
    &'a str,
    Headers<'a>,
    Option<Value>,
    u16,
    bool,
);

async fn dialect_gateway(fake: &FakeUpstream) -> Gateway {
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .plugin("dialect-anthropic.wasm")
        .plugin("dialect-gemini.wasm")
        .provider("fake", "openai", &fake.base_url())
        .model("m", &[("fake", "fake-model", 1)]);
    spec.client_keys = vec![CLIENT_KEY.to_string()];
    spec.admin_token = Some(ADMIN.to_string());
    Gateway::start(spec).await
}

/// Send a request with an `x-request-id`, read its whole body; the status
/// and the response's `x-request-id`.
async fn send(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
    id: Option<&str>,
) -> (u16, Option<String>) {
    let mut req = gw.http.request(method, gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let got = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let _ = resp.bytes().await.unwrap();
    (status, got)
}

#[tokio::test]
async fn request_ids_come_back_on_every_route_and_in_the_log() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = dialect_gateway(&fake).await;
    let bearer = format!("Bearer {CLIENT_KEY}");
    let openai: &[(&str, &str)] = &[("authorization", &bearer)];
    let anthropic: &[(&str, &str)] = &[("x-api-key", CLIENT_KEY)];
    let gemini: &[(&str, &str)] = &[("x-goog-api-key", CLIENT_KEY)];
    let admin = format!("Bearer {ADMIN}");
    let admin: &[(&str, &str)] = &[("authorization", &admin)];
    let messages = |stream: bool| {
        json!({"model": "m", "max_tokens": 20, "stream": stream,
               "messages": [{"role": "user", "content": "hello"}]})
    };
    let contents = json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]});
    use reqwest::Method as M;
    let cases: Vec<Case<'_>> = vec![
        (
            "oa-ok",
            M::POST,
            "/v1/chat/completions",
            openai,
            Some(chat_body("m", false)),
            200,
            true,
        ),
        (
            "oa-stream",
            M::POST,
            "/v1/chat/completions",
            openai,
            Some(chat_body("m", true)),
            200,
            true,
        ),
        (
            "oa-404",
            M::POST,
            "/v1/chat/completions",
            openai,
            Some(chat_body("nope", false)),
            404,
            true,
        ),
        (
            "oa-401",
            M::POST,
            "/v1/chat/completions",
            &[],
            Some(chat_body("m", false)),
            401,
            true,
        ),
        (
            "an-ok",
            M::POST,
            "/v1/messages",
            anthropic,
            Some(messages(false)),
            200,
            true,
        ),
        (
            "an-stream",
            M::POST,
            "/v1/messages",
            anthropic,
            Some(messages(true)),
            200,
            true,
        ),
        (
            "an-401",
            M::POST,
            "/v1/messages",
            &[],
            Some(messages(false)),
            401,
            true,
        ),
        (
            "ge-ok",
            M::POST,
            "/v1beta/models/m:generateContent",
            gemini,
            Some(contents.clone()),
            200,
            true,
        ),
        (
            "ge-stream",
            M::POST,
            "/v1beta/models/m:streamGenerateContent?alt=sse",
            gemini,
            Some(contents.clone()),
            200,
            true,
        ),
        (
            "ge-400",
            M::POST,
            "/v1beta/models/m:generateContent",
            gemini,
            Some(json!({"contents": []})),
            400,
            true,
        ),
        (
            "ge-bad-action",
            M::POST,
            "/v1beta/models/m:fly",
            gemini,
            Some(contents),
            404,
            false,
        ),
        ("models", M::GET, "/v1/models", openai, None, 200, false),
        (
            "ge-models",
            M::GET,
            "/v1beta/models",
            gemini,
            None,
            200,
            false,
        ),
        ("livez", M::GET, "/livez", &[], None, 200, false),
        (
            "health",
            M::GET,
            "/health/providers",
            admin,
            None,
            200,
            false,
        ),
        (
            "admin-401",
            M::GET,
            "/admin/v1/client-keys",
            &[],
            None,
            401,
            false,
        ),
        (
            "fallback-404",
            M::GET,
            "/no/such/route",
            &[],
            None,
            404,
            false,
        ),
        (
            "method-405",
            M::GET,
            "/v1/chat/completions",
            openai,
            None,
            405,
            false,
        ),
    ];
    let mut chat_ids = Vec::new();
    for (id, method, path, headers, body, status, chat) in cases {
        let (got_status, got_id) = send(&gw, method, path, headers, body, Some(id)).await;
        assert_eq!(got_status, status, "{id}: {path}");
        assert_eq!(got_id.as_deref(), Some(id), "{id}: {path}");
        if chat {
            chat_ids.push(id);
        }
    }

    // Insane ids are replaced; a missing one is generated. Both are UUIDs
    // (v7) and name the request's log row.
    let long = "x".repeat(129);
    let mut generated = Vec::new();
    for bad in [
        Some(long.as_str()),
        Some("tab\tinside"),
        Some("has space"),
        None,
    ] {
        let (status, got) = send(
            &gw,
            M::POST,
            "/v1/chat/completions",
            openai,
            Some(chat_body("m", false)),
            bad,
        )
        .await;
        assert_eq!(status, 200);
        let got = got.expect("a generated id");
        let uuid = uuid::Uuid::parse_str(&got).unwrap_or_else(|_| panic!("{got} is a UUID"));
        assert_eq!(uuid.get_version_num(), 7, "{got}");
        generated.push(got);
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 4, "fresh ids: {generated:?}");

    let data = gw.stop().await;
    let logged: Vec<String> = request_logs(&data)
        .await
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    for id in chat_ids
        .iter()
        .copied()
        .chain(generated.iter().map(String::as_str))
    {
        assert!(
            logged.iter().any(|l| l == id),
            "{id} in the log: {logged:?}"
        );
    }
}

#[tokio::test]
async fn the_upstream_joins_the_clients_trace_with_a_span_of_its_own() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = dialect_gateway(&fake).await;
    let bearer = format!("Bearer {CLIENT_KEY}");
    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01");
    let upstream_tp = || {
        let last = fake.last_request().expect("a request upstream");
        (
            last.header("traceparent").expect("traceparent").to_string(),
            last.header("tracestate").map(str::to_string),
        )
    };

    for stream in [false, true] {
        let (status, _) = send(
            &gw,
            reqwest::Method::POST,
            "/v1/chat/completions",
            &[
                ("authorization", &bearer),
                ("traceparent", &client_tp),
                ("tracestate", "vendor=opaque"),
            ],
            Some(chat_body("m", stream)),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (tp, ts) = upstream_tp();
        let (trace, span, flags) = traceparent(&tp);
        assert_eq!(trace, CLIENT_TRACE, "the client's trace");
        assert_ne!(span, CLIENT_PARENT, "a span of the gateway's own");
        assert_eq!(flags, "01", "the client's sampled flag");
        assert_eq!(ts.as_deref(), Some("vendor=opaque"));
    }

    // Through a dialect too.
    let (status, _) = send(
        &gw,
        reqwest::Method::POST,
        "/v1/messages",
        &[("x-api-key", CLIENT_KEY), ("traceparent", &client_tp)],
        Some(json!({"model": "m", "max_tokens": 20,
                    "messages": [{"role": "user", "content": "hello"}]})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(traceparent(&upstream_tp().0).0, CLIENT_TRACE);

    // Without one, or with an invalid one (upper-case hex, and then its
    // tracestate is dropped too): a fresh trace each time.
    let mut fresh = Vec::new();
    let invalid = format!("00-{}-{CLIENT_PARENT}-01", CLIENT_TRACE.to_uppercase());
    for given in [None, Some(invalid.as_str())] {
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(tp) = given {
            headers.push(("traceparent", tp));
            headers.push(("tracestate", "vendor=opaque"));
        }
        let (status, _) = send(
            &gw,
            reqwest::Method::POST,
            "/v1/chat/completions",
            &headers,
            Some(chat_body("m", false)),
            None,
        )
        .await;
        assert_eq!(status, 200, "an invalid traceparent is ignored");
        let (tp, ts) = upstream_tp();
        let (trace, _, _) = traceparent(&tp);
        assert_ne!(trace, CLIENT_TRACE.to_lowercase());
        assert_eq!(ts, None);
        fresh.push(trace);
    }
    assert_ne!(fresh[0], fresh[1]);
    gw.stop().await;
}

#[tokio::test]
async fn each_failover_attempt_has_its_own_span_in_the_same_trace() {
    let failing = FakeUpstream::spawn(FakeConfig {
        fail_rate: 1.0,
        fail_statuses: vec![500],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let healthy = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .provider("first", "openai", &failing.base_url())
        .provider("second", "openai", &healthy.base_url());
    spec.extra = "[[models]]\nname = \"m\"\nstrategy = \"priority\"\ntargets = [\
                  { provider = \"first\", model = \"fake-model\", priority = 0 }, \
                  { provider = \"second\", model = \"fake-model\", priority = 1 }]\n"
        .into();
    let gw = Gateway::start(spec).await;
    let client_tp = format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-00");
    let (status, _) = send(
        &gw,
        reqwest::Method::POST,
        "/v1/chat/completions",
        &[("traceparent", &client_tp)],
        Some(chat_body("m", false)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let seen = |f: &FakeUpstream| {
        let last = f.last_request().expect("an attempt");
        traceparent(last.header("traceparent").expect("traceparent"))
    };
    let (t1, s1, f1) = seen(&failing);
    let (t2, s2, f2) = seen(&healthy);
    assert_eq!((t1.as_str(), t2.as_str()), (CLIENT_TRACE, CLIENT_TRACE));
    assert_ne!(s1, s2, "one span per attempt");
    assert!(s1 != CLIENT_PARENT && s2 != CLIENT_PARENT);
    assert_eq!((f1.as_str(), f2.as_str()), ("00", "00"));
    gw.stop().await;
}

/// A string attribute's value, or an integer's as text.
fn attribute(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        V::StringValue(s) => Some(s.clone()),
        V::IntValue(i) => Some(i.to_string()),
        V::BoolValue(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test]
async fn spans_go_to_the_otlp_collector_without_content_or_keys() {
    use prost::Message;

    // The collector: keeps every body posted to /v1/traces.
    let posts: Arc<Mutex<Vec<bytes::Bytes>>> = Arc::default();
    let sink = posts.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: bytes::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, collector).await });

    const PROVIDER_KEY: &str = "sk-provider-key-never-exported";
    const PROMPT: &str = "the confidential prompt words";
    let fake = FakeUpstream::spawn(FakeConfig {
        expect_key: Some(PROVIDER_KEY.into()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let dir = Process::folder();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndrain_delay_ms = 0\nshutdown_grace_ms = 2000\n\
         [database]\nurl = \"sqlite://{db}\"\n\
         [plugins]\ndir = \"{plugins}\"\nwatch = false\n\
         [auth]\nclient_keys = [\"{CLIENT_KEY}\"]\n\
         [logging]\nformat = \"json\"\nfilter = \"info,orch_api=debug\"\n\
         [telemetry]\notlp_endpoint = \"http://{collector_addr}\"\nservice_name = \"gw-under-test\"\n\
         [[providers]]\nname = \"fake\"\nadapter = \"openai\"\nbase_url = \"{base}\"\n\
         api_keys = [\"{PROVIDER_KEY}\"]\n\
         [[models]]\nname = \"m\"\ntargets = [{{ provider = \"fake\", model = \"fake-model\" }}]\n",
        db = dir.path().join("gw.db").display(),
        plugins = dir.path().join("plugins").display(),
        base = fake.base_url(),
    );
    let mut gw = Process::serve(dir, &config, |c| {
        c.env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    })
    .await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .header("x-request-id", "otlp-request-1")
        .header(
            "traceparent",
            format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"),
        )
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "otlp-request-1");
    let _ = resp.bytes().await.unwrap();
    let upstream_tp = fake
        .last_request()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    let (_, upstream_span, _) = traceparent(&upstream_tp);

    // Shut down: the spans still queued are flushed before the exit.
    gw.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(60), gw.child.wait())
        .await
        .expect("the gateway exits")
        .unwrap();
    assert!(status.success(), "{status}");

    let posts = posts.lock().unwrap().clone();
    assert!(!posts.is_empty(), "the collector got spans");
    let trace_bytes = hex::decode(CLIENT_TRACE).unwrap();
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for body in &posts {
        let raw = body.as_ref();
        let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(PROMPT.as_bytes()), "no prompt text in spans");
        assert!(
            !contains(PROVIDER_KEY.as_bytes()),
            "no provider key in spans"
        );
        assert!(!contains(CLIENT_KEY.as_bytes()), "no client key in spans");
        let req =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                raw,
            )
            .expect("an OTLP protobuf body");
        for rs in req.resource_spans {
            if let Some(r) = &rs.resource {
                for kv in &r.attributes {
                    if kv.key == "service.name" {
                        services.push(format!("{:?}", kv.value));
                    }
                }
            }
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    assert!(
        services.iter().any(|s| s.contains("gw-under-test")),
        "{services:?}"
    );
    let ours: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_bytes).collect();
    let named = |name: &str| {
        ours.iter()
            .copied()
            .find(|s| s.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "a `{name}` span in {:?}",
                    ours.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
    };
    let request = named("request");
    assert_eq!(request.parent_span_id, hex::decode(CLIENT_PARENT).unwrap());
    assert_eq!(
        attribute(request, "request_id").as_deref(),
        Some("otlp-request-1")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    let chat = named("chat");
    assert_eq!(chat.parent_span_id, request.span_id);
    assert_eq!(
        attribute(chat, "gen_ai.request.model").as_deref(),
        Some("m")
    );
    assert_eq!(
        attribute(chat, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        attribute(chat, "gen_ai.provider.name").as_deref(),
        Some("fake")
    );
    assert_eq!(
        attribute(chat, "request_id").as_deref(),
        Some("otlp-request-1")
    );
    assert_eq!(
        attribute(chat, "ingress_dialect").as_deref(),
        Some("openai")
    );
    assert!(attribute(chat, "gen_ai.usage.input_tokens").is_some());
    assert!(attribute(chat, "gen_ai.usage.output_tokens").is_some());
    assert_eq!(
        attribute(chat, "gen_ai.response.model").as_deref(),
        Some("fake-model")
    );
    let upstream = named("upstream");
    assert_eq!(upstream.parent_span_id, chat.span_id);
    assert_eq!(
        hex::encode(&upstream.span_id),
        upstream_span,
        "the upstream saw the attempt span's id"
    );
    assert_eq!(
        attribute(upstream, "gen_ai.request.model").as_deref(),
        Some("fake-model")
    );
    assert_eq!(
        attribute(upstream, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(attribute(upstream, "outcome").as_deref(), Some("ok"));
    assert_eq!(attribute(upstream, "attempt").as_deref(), Some("1"));
    let hooks: Vec<String> = ours
        .iter()
        .filter(|s| s.name == "plugin")
        .filter_map(|s| attribute(s, "plugin.hook"))
        .collect();
    assert!(
        hooks.iter().any(|h| h == "build-request") && hooks.iter().any(|h| h == "parse-response"),
        "{hooks:?}"
    );

    // JSON log lines carry the request span's fields.
    let log = gw.stderr();
    let tagged = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["spans"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["name"] == "request" && s["request_id"] == "otlp-request-1")
            })
        })
        .count();
    assert!(tagged > 0, "a JSON log line names the request:\n{log}");
    assert!(!log.contains(PROMPT) && !log.contains(PROVIDER_KEY));
}
