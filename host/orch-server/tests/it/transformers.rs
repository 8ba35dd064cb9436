//! Transformers in the request path: the bundled ones on every ingress
//! dialect, streaming and not (PII that straddles stream chunks included),
//! rejections in each dialect's error shape, and the fail-open and
//! fail-closed policies against a transformer that traps, spins, refuses
//! its configuration or is missing.

use base64::Engine as _;
use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Spec};

const ADMIN: &str = "admin-token-for-transformer-tests";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

const DIALECTS: [Dialect; 3] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini];

/// What the client got: the status, the reply text (every text delta
/// joined, for streams), the error body when there is one, and for streams
/// every text delta on its own.
#[derive(Debug)]
struct Reply {
    status: u16,
    text: String,
    deltas: Vec<String>,
    error: Option<Value>,
}

fn data_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .flat_map(|ev| ev.split("\r\n\r\n"))
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap_or(Value::String(d)))
        .collect()
}

/// The text deltas of one stream event, and its error if it is one.
fn deltas_of(dialect: Dialect, ev: &Value) -> (Vec<String>, Option<Value>) {
    let texts = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .into_iter()
            .collect()
    };
    match dialect {
        Dialect::OpenAi => {
            if ev.get("error").is_some() {
                return (vec![], Some(ev.clone()));
            }
            (texts(ev.pointer("/choices/0/delta/content")), None)
        }
        Dialect::Anthropic => match ev["type"].as_str() {
            Some("error") => (vec![], Some(ev.clone())),
            Some("content_block_delta") => (texts(ev.pointer("/delta/text")), None),
            _ => (vec![], None),
        },
        Dialect::Gemini => {
            if ev.get("error").is_some() {
                return (vec![], Some(ev.clone()));
            }
            let parts = ev
                .pointer("/candidates/0/content/parts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            (
                parts.iter().flat_map(|p| texts(p.get("text"))).collect(),
                None,
            )
        }
    }
}

/// Ask `model` to answer `text` in `dialect`, with a generous token cap.
async fn ask(gw: &Gateway, dialect: Dialect, model: &str, stream: bool, text: &str) -> Reply {
    let http = reqwest::Client::new();
    let req = match dialect {
        Dialect::OpenAi => http.post(gw.url("/v1/chat/completions")).json(&json!({
            "model": model, "stream": stream, "max_tokens": 1000,
            "messages": [{"role": "user", "content": text}],
        })),
        Dialect::Anthropic => http
            .post(gw.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .json(&json!({
                "model": model, "stream": stream, "max_tokens": 1000,
                "messages": [{"role": "user", "content": text}],
            })),
        Dialect::Gemini => {
            let path = if stream {
                format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("/v1beta/models/{model}:generateContent")
            };
            http.post(gw.url(&path)).json(&json!({
                "contents": [{"role": "user", "parts": [{"text": text}]}],
                "generationConfig": {"maxOutputTokens": 1000},
            }))
        }
    };
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    if status != 200 {
        let error = serde_json::from_str(&body).unwrap_or(Value::String(body));
        return Reply {
            status,
            text: String::new(),
            deltas: vec![],
            error: Some(error),
        };
    }
    if !stream {
        let v: Value = serde_json::from_str(&body).expect("JSON answer");
        let text = match dialect {
            Dialect::OpenAi => v.pointer("/choices/0/message/content"),
            Dialect::Anthropic => v.pointer("/content/0/text"),
            Dialect::Gemini => v.pointer("/candidates/0/content/parts/0/text"),
        }
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text in {v}"))
        .to_string();
        return Reply {
            status,
            text,
            deltas: vec![],
            error: None,
        };
    }
    let mut deltas = Vec::new();
    let mut error = None;
    for ev in data_events(&body) {
        let (d, e) = deltas_of(dialect, &ev);
        deltas.extend(d);
        error = error.or(e);
    }
    Reply {
        status,
        text: deltas.concat(),
        deltas,
        error,
    }
}

/// The error code or type the client sees, in its dialect's shape.
fn error_code(dialect: Dialect, error: &Value) -> String {
    let p = match dialect {
        Dialect::OpenAi => "/error/code",
        Dialect::Anthropic => "/error/type",
        Dialect::Gemini => "/error/status",
    };
    error
        .pointer(p)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{dialect:?} error without {p}: {error}"))
        .to_string()
}

fn error_message(error: &Value) -> String {
    error
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn gateway_spec(fake: &FakeUpstream, models: &[&str]) -> Spec {
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .plugin("dialect-anthropic.wasm")
        .plugin("dialect-gemini.wasm")
        .provider("fake", "openai", &fake.base_url());
    for m in models {
        spec = spec.model(m, &[("fake", "fake-model", 1)]);
    }
    spec.admin_token = Some(ADMIN.into());
    spec
}

async fn attachments(gw: &Gateway) -> Vec<Value> {
    let resp = gw
        .admin(reqwest::Method::GET, "/admin/v1/transformers", ADMIN, None)
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn bundled_transformers_work_on_every_dialect_streaming_or_not() {
    // Echo replies come in up to 64 pieces of one or two characters, so
    // every address and number in them straddles chunk boundaries.
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 64,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut spec = gateway_spec(&fake, &["m"])
        .plugin("model-rewrite.wasm")
        .plugin("param-policy.wasm")
        .plugin("block-list.wasm")
        .plugin("system-prompt.wasm")
        .plugin("pii-redact.wasm");
    spec.extra = r#"
[[transformers]]
plugin = "model-rewrite"
config = { rules = [{ match = "legacy-*", to = "m" }] }

[[transformers]]
plugin = "param-policy"
config = { max_tokens = 64 }

[[transformers]]
plugin = "block-list"
config = { keywords = ["forbidden-topic"], message = "That topic is not allowed here." }

[[transformers]]
plugin = "system-prompt"
config = { text = "Answer briefly." }

[[transformers]]
plugin = "pii-redact"
config = { responses = true }
"#
    .into();
    let gw = Gateway::start(spec).await;
    let secret = "reach me at +1 415 555 0100 or jane.doe@corp.example, card 4111 1111 1111 1111";
    let redacted = "reach me at [REDACTED:PHONE] or [REDACTED:EMAIL], card [REDACTED:CARD]";

    for dialect in DIALECTS {
        for stream in [false, true] {
            let case = format!("{dialect:?} stream={stream}");

            // The request: the model is rewritten, the token cap clamped, a
            // system prompt added and the address redacted before the
            // upstream sees it.
            let r = ask(
                &gw,
                dialect,
                "legacy-7",
                stream,
                "echo: mail jane.doe@example.com now",
            )
            .await;
            assert_eq!(r.status, 200, "{case}: {r:?}");
            assert_eq!(r.text, "mail [REDACTED:EMAIL] now", "{case}");
            let sent = fake.last_request().expect("upstream request").body;
            assert_eq!(sent["model"], "fake-model", "{case}");
            assert_eq!(sent["messages"][0]["role"], "system", "{case}: {sent}");
            assert_eq!(sent["messages"][0]["content"], "Answer briefly.", "{case}");
            let last = sent["messages"].as_array().unwrap().last().unwrap().clone();
            let last = last["content"].to_string();
            assert!(last.contains("mail [REDACTED:EMAIL] now"), "{case}: {last}");
            assert!(!sent.to_string().contains("jane.doe"), "{case}: {sent}");
            let cap = sent
                .get("max_completion_tokens")
                .or_else(|| sent.get("max_tokens"))
                .and_then(Value::as_u64);
            assert_eq!(cap, Some(64), "{case}: {sent}");

            // The response: what the upstream says is redacted too, also
            // when a match is cut across stream chunks.
            let r = ask(
                &gw,
                dialect,
                "m",
                stream,
                &format!("echo64:{}", b64(secret)),
            )
            .await;
            assert_eq!(r.status, 200, "{case}: {r:?}");
            assert_eq!(r.text, redacted, "{case}");
            if stream {
                assert!(r.deltas.len() > 5, "{case}: {:?}", r.deltas);
                for d in &r.deltas {
                    for raw in ["jane", "4111", "415", "corp.example"] {
                        assert!(!d.contains(raw), "{case}: delta {d:?} leaks {raw}");
                    }
                }
            }

            // A blocked request gets the configured refusal in the client's
            // own error shape, without echoing what matched.
            let r = ask(
                &gw,
                dialect,
                "m",
                stream,
                "tell me about forbidden-topic please",
            )
            .await;
            assert_eq!(r.status, 400, "{case}: {r:?}");
            let error = r.error.expect("error body");
            let expected = match dialect {
                Dialect::OpenAi => "blocked_by_policy",
                Dialect::Anthropic => "invalid_request_error",
                Dialect::Gemini => "INVALID_ARGUMENT",
            };
            assert_eq!(error_code(dialect, &error), expected, "{case}: {error}");
            assert_eq!(
                error_message(&error),
                "That topic is not allowed here.",
                "{case}"
            );
        }
    }

    let view = attachments(&gw).await;
    assert_eq!(view.len(), 5);
    let plugins: Vec<&str> = view.iter().map(|a| a["plugin"].as_str().unwrap()).collect();
    assert_eq!(
        plugins,
        [
            "model-rewrite",
            "param-policy",
            "block-list",
            "system-prompt",
            "pii-redact"
        ]
    );
    for a in &view {
        assert_eq!(a["config_ok"], true, "{a}");
        assert_eq!(a["failed"], 0, "{a}");
    }
    assert_eq!(view[2]["rejected"], 6, "{}", view[2]);
    gw.stop().await;
}

#[tokio::test]
async fn param_policy_refuses_forbidden_fields_and_rules_follow_their_models() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = gateway_spec(&fake, &["m", "other"])
        .plugin("param-policy.wasm")
        .plugin("system-prompt.wasm");
    spec.extra = r#"
[[transformers]]
plugin = "param-policy"
config = { forbid = ["logit_bias"], set = { temperature = 0.25 } }

[[transformers]]
plugin = "system-prompt"
models = ["oth*"]
config = { text = "Only for the other model.", mode = "replace" }
"#
    .into();
    let gw = Gateway::start(spec).await;
    let resp = gw
        .chat(json!({"model": "m", "logit_bias": {"50256": -100},
                     "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden_parameter", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("logit_bias"),
        "{v}"
    );

    let resp = gw
        .chat(json!({"model": "m", "temperature": 1.5,
                     "messages": [{"role": "system", "content": "Original."},
                                  {"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let sent = fake.last_request().unwrap().body;
    assert_eq!(sent["temperature"], 0.25, "{sent}");
    assert_eq!(sent["messages"][0]["content"], "Original.", "{sent}");

    let resp = gw
        .chat(json!({"model": "other",
                     "messages": [{"role": "system", "content": "Original."},
                                  {"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let sent = fake.last_request().unwrap().body;
    assert_eq!(
        sent["messages"][0]["content"], "Only for the other model.",
        "{sent}"
    );
    assert_eq!(sent["messages"].as_array().unwrap().len(), 2, "{sent}");
    gw.stop().await;
}

#[tokio::test]
async fn failure_policies_decide_between_an_error_and_skipping() {
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 1,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let mut spec = gateway_spec(&fake, &["closed", "open", "refused", "missing"])
        .plugin("fixture_transform_trap.wasm");
    // Counted exactly per call: no quarantine of the trapping version.
    spec.quarantine_after_faults = Some(0);
    spec.extra = r#"
[[transformers]]
plugin = "fixture-transform-trap"
models = ["closed"]

[[transformers]]
plugin = "fixture-transform-trap"
models = ["open"]
on_error = "fail-open"

[[transformers]]
plugin = "fixture-transform-trap"
models = ["refused"]
config = { refuse = true }

[[transformers]]
plugin = "not-loaded"
models = ["missing"]

[[transformers]]
plugin = "not-loaded"
models = ["open"]
on_error = "fail-open"
"#
    .into();
    let gw = Gateway::start(spec).await;

    // The refused configuration shows before any request needs it.
    let started = std::time::Instant::now();
    loop {
        let view = attachments(&gw).await;
        if view[2]["config_ok"] == false {
            assert_eq!(view[0]["config_ok"], true, "{}", view[0]);
            assert_eq!(view[0]["calls"], 0, "{}", view[0]);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "configurations not checked at start: {view:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    for dialect in DIALECTS {
        let case = format!("{dialect:?}");
        // A trap and a spin fail a fail-closed request with the gateway's
        // error in the client's shape; the same plugin fail-open is skipped.
        for trigger in ["boom", "spin"] {
            let r = ask(&gw, dialect, "closed", false, &format!("echo: {trigger}")).await;
            assert_eq!(r.status, 500, "{case} {trigger}: {r:?}");
            let error = r.error.unwrap();
            assert!(
                error_message(&error).contains("fixture-transform-trap"),
                "{case}: {error}"
            );
            let r = ask(&gw, dialect, "open", false, &format!("echo: {trigger}")).await;
            assert_eq!(r.status, 200, "{case} {trigger}: {r:?}");
            assert_eq!(r.text, trigger, "{case}");
        }
        // A refused configuration and a missing plugin fail closed.
        for model in ["refused", "missing"] {
            let r = ask(&gw, dialect, model, false, "echo: fine").await;
            assert_eq!(r.status, 500, "{case} {model}: {r:?}");
            let expected = match dialect {
                Dialect::OpenAi => "transformer_failure",
                Dialect::Anthropic => "api_error",
                Dialect::Gemini => "INTERNAL",
            };
            assert_eq!(error_code(dialect, &r.error.unwrap()), expected, "{case}");
        }
        // A stream filter that traps: fail-closed ends the stream with an
        // error, fail-open passes the chunk on.
        // (The request itself does not say it: the fake decodes its reply.)
        let kaboom = format!("echo64:{}", b64("kaboom"));
        let r = ask(&gw, dialect, "closed", true, &kaboom).await;
        assert!(
            r.status == 500 || r.error.is_some(),
            "{case}: a trapped filter must fail the stream: {r:?}"
        );
        assert!(!r.text.contains("kaboom"), "{case}: {r:?}");
        let r = ask(&gw, dialect, "open", true, &kaboom).await;
        assert_eq!(r.status, 200, "{case}: {r:?}");
        assert!(r.error.is_none(), "{case}: {r:?}");
        assert_eq!(r.text, "kaboom", "{case}");
    }

    let view = attachments(&gw).await;
    assert_eq!(view[0]["failed"], 9, "{}", view[0]);
    assert_eq!(view[1]["skipped"], 9, "{}", view[1]);
    assert_eq!(view[1]["failed"], 0, "{}", view[1]);
    assert_eq!(view[2]["config_ok"], false, "{}", view[2]);
    assert!(
        view[2]["config_error"]
            .as_str()
            .unwrap()
            .contains("refused on purpose"),
        "{}",
        view[2]
    );
    assert_eq!(view[3]["version"], Value::Null, "{}", view[3]);
    assert_eq!(view[3]["failed"], 3, "{}", view[3]);
    // Per dialect: two requests and their responses, a stream and its filter.
    assert_eq!(view[4]["skipped"], 18, "{}", view[4]);
    gw.stop().await;
}
