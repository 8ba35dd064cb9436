//! The bundled adapter written in JavaScript (`openai-js`, from
//! `plugins/js/openai-js`, componentized with componentize-js) serves
//! through the gateway under the production limits, and clients cannot tell
//! it from the Rust `openai` adapter: the same requests give the same
//! content, usage, model names, error statuses and error classes.

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{Gateway, Spec, chat_body, request_logs, sse_data};

/// The two adapters compared: (name prefix, plugin id).
const ADAPTERS: [(&str, &str); 2] = [("rust", "openai"), ("js", "openai-js")];

/// Scenarios: (suffix, the fake upstream's model). Each (adapter, scenario)
/// pair gets a provider and a model of its own, so a key resting after a
/// 429 or a target ejected after errors never leaks into another case.
const SCENARIOS: [(&str, &str); 7] = [
    ("ok", "fake-model"),
    ("400", "status-400"),
    ("401", "status-401"),
    ("429", "status-429"),
    ("503", "status-503"),
    ("error-event", "error-event"),
    ("cut", "cut-after-3"),
];

/// The provider key, to check the host injected it for the JS adapter.
const KEY: &str = "sk-upstream-key-js-0001";

/// One gateway with both adapters: the JavaScript component takes seconds
/// to compile, so every case shares it.
async fn gateway(fake: &FakeUpstream) -> Gateway {
    let mut spec = Spec::default()
        .plugin("openai.wasm")
        .plugin("openai-js.wasm");
    for (prefix, adapter) in ADAPTERS {
        for (suffix, upstream) in SCENARIOS {
            let name = format!("{prefix}-{suffix}");
            spec = spec
                .provider(&name, adapter, &fake.base_url())
                .key(KEY)
                .model(&name, &[(&name, upstream, 1)]);
        }
    }
    Gateway::start(spec).await
}

/// What a client can compare between two non-streaming answers: the status,
/// and the body without what differs per request (ids, timestamps) or per
/// model name (the body's `model` is checked separately).
fn comparable(status: u16, mut body: Value) -> (u16, Value) {
    if let Some(object) = body.as_object_mut() {
        for field in ["id", "created", "model"] {
            object.remove(field);
        }
    }
    (status, body)
}

async fn completion(gw: &Gateway, model: &str) -> (u16, Option<String>, Value) {
    let resp = gw.chat(chat_body(model, false)).await;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, resp.json().await.unwrap())
}

/// A stream as a client reads it: the concatenated content, the finish
/// reason, the usage chunk's `usage`, the models named by the chunks, the
/// last event (`[DONE]` or an error) and the status.
#[derive(Debug, PartialEq)]
struct Streamed {
    status: u16,
    content: String,
    finish_reason: Option<String>,
    usage: Option<Value>,
    models: Vec<String>,
    last: Value,
}

async fn stream(gw: &Gateway, model: &str) -> Streamed {
    let mut body = chat_body(model, true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = gw.chat(body).await;
    let status = resp.status().as_u16();
    let mut streamed = Streamed {
        status,
        content: String::new(),
        finish_reason: None,
        usage: None,
        models: Vec::new(),
        last: Value::Null,
    };
    for event in sse_data(resp).await {
        if event == "[DONE]" {
            streamed.last = json!("[DONE]");
            continue;
        }
        let chunk: Value = serde_json::from_str(&event).unwrap();
        if let Some(model) = chunk["model"].as_str()
            && !streamed.models.iter().any(|m| m == model)
        {
            streamed.models.push(model.to_owned());
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            if let Some(text) = choice["delta"]["content"].as_str() {
                streamed.content.push_str(text);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                streamed.finish_reason = Some(reason.to_owned());
            }
        }
        if chunk["usage"].is_object() {
            streamed.usage = Some(chunk["usage"].clone());
        }
        streamed.last = match chunk.get("error") {
            Some(error) => json!({"error": error}),
            None => Value::Null,
        };
    }
    streamed
}

#[tokio::test]
async fn the_javascript_adapter_answers_like_the_rust_one() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake).await;

    // Non-streaming: the same completion, under the requested model name.
    let resp = gw.chat(chat_body("js-ok", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["x-orchestrator-adapter"]
            .to_str()
            .unwrap()
            .starts_with("openai-js@"),
        "{:?}",
        resp.headers()
    );
    let js: Value = resp.json().await.unwrap();
    assert_eq!(
        js["model"], "js-ok",
        "the response names the requested model"
    );
    assert_eq!(
        js["choices"][0]["message"]["content"],
        "Fake reply to: Say hello to the gateway tests"
    );
    assert!(js["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{js}");
    assert!(
        js["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{js}"
    );
    assert_eq!(js["x_fake_extension"]["ok"], true, "unknown fields survive");
    let seen = fake.last_request().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["model"], "fake-model", "the upstream model");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str()),
        "the host injects the key where the JS adapter says"
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let (status, _, rust) = completion(&gw, "rust-ok").await;
    assert_eq!(status, 200);
    assert_eq!(rust["model"], "rust-ok");
    assert_eq!(comparable(200, js), comparable(200, rust));

    // Streaming: the same content, finish reason and usage; every chunk
    // names the requested model.
    let js = stream(&gw, "js-ok").await;
    let seen = fake.last_request().unwrap();
    assert_eq!(seen.body["stream"], true);
    assert_eq!(
        seen.body["stream_options"],
        json!({"include_usage": true}),
        "the JS adapter asks for the usage chunk"
    );
    assert_eq!(js.status, 200);
    assert_eq!(js.content, "Fake reply to: Say hello to the gateway tests");
    assert_eq!(js.finish_reason.as_deref(), Some("stop"));
    assert_eq!(js.models, ["js-ok"]);
    assert_eq!(js.last, "[DONE]");
    let usage = js.usage.clone().expect("a usage chunk");
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
    let rust = stream(&gw, "rust-ok").await;
    assert_eq!(rust.models, ["rust-ok"]);
    assert_eq!(
        Streamed {
            models: Vec::new(),
            ..js
        },
        Streamed {
            models: Vec::new(),
            ..rust
        }
    );

    // Many at once: each attempt and each open stream holds its own JS
    // instance from the pool.
    let answers = futures_util::future::join_all((0..32).map(|i| {
        let gw = &gw;
        async move {
            if i % 2 == 0 {
                stream(gw, "js-ok").await.last
            } else {
                json!(completion(gw, "js-ok").await.0)
            }
        }
    }))
    .await;
    for (i, answer) in answers.iter().enumerate() {
        let expected = if i % 2 == 0 {
            json!("[DONE]")
        } else {
            json!(200)
        };
        assert_eq!(answer, &expected, "concurrent request {i}");
    }

    // Upstream errors: the same status, error object and retry-after.
    for (suffix, status) in [("400", 400), ("401", 401), ("429", 429), ("503", 503)] {
        let js = completion(&gw, &format!("js-{suffix}")).await;
        let rust = completion(&gw, &format!("rust-{suffix}")).await;
        assert_eq!(js, rust, "upstream status {status}");
        assert!(js.2["error"]["message"].is_string(), "{}", js.2);
        if status == 429 {
            assert_eq!(js.0, 429, "{js:?}");
            assert!(js.1.is_some(), "429 carries retry-after: {js:?}");
        }
        if status == 400 {
            assert_eq!(js.0, 400, "a bad request is the client's: {js:?}");
        }
    }

    // Errors inside a stream, before and after content.
    for suffix in ["error-event", "cut"] {
        let js = stream(&gw, &format!("js-{suffix}")).await;
        let rust = stream(&gw, &format!("rust-{suffix}")).await;
        assert!(js.last["error"]["message"].is_string(), "{suffix}: {js:?}");
        assert_eq!(
            Streamed {
                models: Vec::new(),
                ..js
            },
            Streamed {
                models: Vec::new(),
                ..rust
            },
            "{suffix}"
        );
    }

    let data = gw.stop().await;
    let logs = request_logs(&data).await;
    let js_ok = logs
        .iter()
        .find(|row| row.requested_model == "js-ok")
        .expect("a log row for js-ok");
    assert!(
        js_ok.plugin.as_deref().unwrap().starts_with("openai-js@"),
        "{:?}",
        js_ok.plugin
    );
    assert!(js_ok.input_tokens.unwrap() > 0 && js_ok.output_tokens.unwrap() > 0);
    // The request log records the same kinds of rows (outcome, class,
    // tokens) for both.
    for (suffix, _) in SCENARIOS {
        let rows = |prefix: &str| {
            let model = format!("{prefix}-{suffix}");
            let mut rows: Vec<_> = logs
                .iter()
                .filter(|row| row.requested_model == model)
                .map(|row| {
                    (
                        row.streamed,
                        row.status,
                        row.error_class.clone(),
                        row.attempts,
                        (row.input_tokens, row.output_tokens, row.cached_tokens),
                        format!("{:?}", row.outcome),
                    )
                })
                .collect();
            rows.sort();
            rows.dedup();
            rows
        };
        let js = rows("js");
        assert!(!js.is_empty(), "no log rows for js-{suffix}");
        assert_eq!(js, rows("rust"), "log rows of {suffix}");
    }
    let class = |model: &str| {
        logs.iter()
            .find(|row| row.requested_model == model)
            .and_then(|row| row.error_class.clone())
    };
    assert_eq!(class("js-429").as_deref(), Some("rate_limited"));
    assert_eq!(class("js-400").as_deref(), Some("bad_request"));
}
