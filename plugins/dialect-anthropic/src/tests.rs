//! Plugin metadata and the replay of the golden conformance cases in
//! `plugins/conformance/anthropic/dialect/` (format: the conformance README).

use orch_conformance::{Case, assert_matches, cases};
use orch_plugin_sdk::{
    Dialect, EgressContext, ErrorClass, IngressRequest, Operation, PluginError, PluginKind,
    SseEvent, StreamEncoder, Usage,
};
use serde_json::{Value, json};

use crate::{AnthropicDialect, AnthropicEncoder};

#[test]
fn info() {
    let info = AnthropicDialect::info();
    assert_eq!(info.id, "dialect-anthropic");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.kind, PluginKind::Dialect);
    assert_eq!(info.dialect, "anthropic");
    assert!(info.capabilities.iter().any(|c| c == "count-tokens"));
    assert!(!info.description.is_empty());
}

#[test]
fn token_count_ignores_the_context() {
    let ctx = EgressContext {
        request_id: "r".to_owned(),
        requested_model: "m".to_owned(),
        received_at_ms: 0,
    };
    assert_eq!(
        AnthropicDialect::encode_token_count(&ctx, 42),
        r#"{"input_tokens":42}"#
    );
}

// ------------------------------------------------------------ case plumbing

fn operation(name: &str) -> Operation {
    match name {
        "chat" => Operation::Chat,
        "count-tokens" => Operation::CountTokens,
        "embeddings" => Operation::Embeddings,
        other => panic!("unknown operation {other}"),
    }
}

fn class(name: &str) -> ErrorClass {
    [
        ErrorClass::BadRequest,
        ErrorClass::Authentication,
        ErrorClass::PermissionDenied,
        ErrorClass::NotFound,
        ErrorClass::ContextLength,
        ErrorClass::ContentFilter,
        ErrorClass::RateLimited,
        ErrorClass::Overloaded,
        ErrorClass::Server,
        ErrorClass::Timeout,
        ErrorClass::Unsupported,
    ]
    .into_iter()
    .find(|class| class.as_str() == name)
    .unwrap_or_else(|| panic!("unknown error class {name}"))
}

fn count(value: &Value, key: &str) -> Option<u32> {
    value
        .get(key)
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).expect("u32"))
}

fn usage(value: &Value) -> Option<Usage> {
    if value.is_null() {
        return None;
    }
    Some(Usage {
        input_tokens: count(value, "input_tokens").unwrap_or(0),
        output_tokens: count(value, "output_tokens").unwrap_or(0),
        cached_input_tokens: count(value, "cached_input_tokens"),
        cache_write_input_tokens: count(value, "cache_write_input_tokens"),
        reasoning_tokens: count(value, "reasoning_tokens"),
    })
}

fn plugin_error(value: &Value) -> PluginError {
    let mut error = PluginError::new(
        class(value["class"].as_str().expect("class")),
        value["message"].as_str().unwrap_or_default(),
    );
    if let Some(status) = value.get("status").and_then(Value::as_u64) {
        error = error.with_status(u16::try_from(status).expect("status"));
    }
    if let Some(retryable) = value.get("retryable").and_then(Value::as_bool) {
        error = error.with_retryable(retryable);
    }
    error
}

fn context(case: &Case) -> EgressContext {
    let ctx = case.field("context");
    EgressContext {
        request_id: ctx["request_id"].as_str().expect("request_id").to_owned(),
        requested_model: ctx["requested_model"]
            .as_str()
            .expect("requested_model")
            .to_owned(),
        received_at_ms: ctx["received_at_ms"].as_u64().expect("received_at_ms"),
    }
}

fn ingress(case: &Case) -> IngressRequest {
    let ingress = case.field("ingress");
    let headers = ingress
        .get("headers")
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    IngressRequest {
        operation: operation(ingress["operation"].as_str().expect("operation")),
        path_model: ingress
            .get("path_model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        endpoint_streams: ingress.get("endpoint_streams").and_then(Value::as_bool),
        headers,
        body: ingress["body"].to_string().into_bytes(),
    }
}

/// Events as `{event, data}` documents; every data must be one line of JSON.
fn event_docs(case: &str, events: Vec<SseEvent>) -> Value {
    Value::Array(
        events
            .into_iter()
            .map(|event| {
                assert!(
                    !event.data.contains('\n'),
                    "case {case}: multi-line data {}",
                    event.data
                );
                let data: Value = serde_json::from_str(&event.data)
                    .unwrap_or_else(|e| panic!("case {case}: event data is not JSON: {e}"));
                json!({"event": event.event, "data": data})
            })
            .collect(),
    )
}

fn chunks(case: &Case) -> Vec<String> {
    case.field("canonical_chunks")
        .as_array()
        .expect("canonical_chunks is a list")
        .iter()
        .map(Value::to_string)
        .collect()
}

// -------------------------------------------------------------- the replay

#[test]
fn conformance_cases() {
    let all = cases("anthropic/dialect");
    let mut checks = 0;
    for case in &all {
        let name = case.name.as_str();
        if case.opt("ingress").is_some() {
            let decoded = AnthropicDialect::decode_request(&ingress(case));
            match (case.opt("expect_decoded"), case.opt("expect_decode_error")) {
                (Some(expected), None) => {
                    let decoded =
                        decoded.unwrap_or_else(|e| panic!("case {name}: decode failed: {e}"));
                    let body: Value = serde_json::from_str(&decoded.body).expect("canonical JSON");
                    let actual = json!({
                        "model": decoded.model,
                        "streaming": decoded.streaming,
                        "body": body,
                    });
                    assert_matches(name, "decoded request", &actual, expected);
                }
                (None, Some(expected)) => {
                    let error = decoded.expect_err(name);
                    let actual = json!({"class": error.class.as_str(), "param": error.param});
                    assert_matches(name, "decode error", &actual, expected);
                }
                _ => panic!("case {name}: needs expect_decoded or expect_decode_error"),
            }
            checks += 1;
        }
        if let Some(response) = case.opt("canonical_response") {
            let usage = case.opt("usage").and_then(usage);
            let encoded =
                AnthropicDialect::encode_response(&context(case), &response.to_string(), usage)
                    .unwrap_or_else(|e| panic!("case {name}: encode failed: {e}"));
            let encoded: Value = serde_json::from_str(&encoded).expect("encoded JSON");
            assert_matches(
                name,
                "encoded response",
                &encoded,
                case.field("expect_encoded"),
            );
            checks += 1;
        }
        if let Some(expected) = case.opt("expect_events") {
            let mut encoder = AnthropicEncoder::new(context(case));
            let mut events = Vec::new();
            for chunk in chunks(case) {
                events.extend(
                    encoder
                        .push(&chunk)
                        .unwrap_or_else(|e| panic!("case {name}: push failed: {e}")),
                );
            }
            let usage = case.opt("finish_usage").and_then(usage);
            events.extend(
                encoder
                    .finish(usage)
                    .unwrap_or_else(|e| panic!("case {name}: finish failed: {e}")),
            );
            assert_matches(name, "stream events", &event_docs(name, events), expected);
            checks += 1;
        }
        if let Some(error) = case.opt("abort_error") {
            let mut encoder = AnthropicEncoder::new(context(case));
            for chunk in chunks(case) {
                encoder
                    .push(&chunk)
                    .unwrap_or_else(|e| panic!("case {name}: push failed: {e}"));
            }
            let events = encoder.abort(&plugin_error(error));
            assert_matches(
                name,
                "abort events",
                &event_docs(name, events),
                case.field("expect_abort_events"),
            );
            checks += 1;
        }
    }
    assert!(checks >= all.len(), "some cases check nothing");
}
