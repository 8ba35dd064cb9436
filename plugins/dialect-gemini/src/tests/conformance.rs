//! Replays every case in `plugins/conformance/gemini/dialect/` (format in
//! `plugins/conformance/README.md`).
//!
//! Ingress bodies are sent as serde_json writes them (keys sorted), as the
//! host's `plugin check` does, so cases must not depend on the key order of
//! the client body; unit tests cover order preservation with raw text.
//!
//! A case with `abort_error` pushes its `canonical_chunks`, checks the events
//! of the pushes against `expect_events` (when given), then calls `abort`
//! and checks `expect_abort_events`; `finish` is not called.

use std::panic::AssertUnwindSafe;

use orch_conformance::{Case, assert_matches, cases};
use orch_plugin_sdk::{
    Dialect, EgressContext, ErrorClass, IngressRequest, Operation, PluginError, SseEvent,
    StreamEncoder, Usage,
};
use serde_json::{Value, json};

use crate::{Gemini, GeminiStreamEncoder};

#[test]
fn conformance_cases() {
    let cases = cases("gemini/dialect");
    let failed: Vec<&str> = cases
        .iter()
        .filter(|case| std::panic::catch_unwind(AssertUnwindSafe(|| run(case))).is_err())
        .map(|case| case.name.as_str())
        .collect();
    assert!(failed.is_empty(), "failed cases (see above): {failed:?}");
    assert!(cases.len() >= 20, "only {} cases", cases.len());
}

fn run(case: &Case) {
    let mut checked = false;
    if let Some(ingress) = case.opt("ingress") {
        decode(case, ingress);
        checked = true;
    }
    if let Some(response) = case.opt("canonical_response") {
        let usage = case.opt("usage").map(usage);
        let body = Gemini::encode_response(&context(case), &response.to_string(), usage)
            .unwrap_or_else(|err| panic!("case {}: encode_response failed: {err}", case.name));
        assert_matches(
            &case.name,
            "encoded response",
            &parse(&case.name, &body),
            case.field("expect_encoded"),
        );
        checked = true;
    }
    if let Some(chunks) = case.opt("canonical_chunks") {
        stream(case, chunks);
        checked = true;
    }
    assert!(checked, "case {} checks nothing", case.name);
}

fn decode(case: &Case, ingress: &Value) {
    let request = IngressRequest {
        operation: operation(ingress["operation"].as_str().unwrap_or("chat")),
        path_model: ingress["path_model"].as_str().map(str::to_owned),
        endpoint_streams: ingress["endpoint_streams"].as_bool(),
        headers: ingress["headers"]
            .as_object()
            .map(|headers| {
                headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        body: serde_json::to_vec(&ingress["body"]).expect("body"),
    };
    let result = Gemini::decode_request(&request);
    match (case.opt("expect_decoded"), case.opt("expect_decode_error")) {
        (Some(expected), None) => {
            let decoded =
                result.unwrap_or_else(|err| panic!("case {}: decode failed: {err:?}", case.name));
            assert_eq!(
                decoded.model, expected["model"],
                "case {}: model",
                case.name
            );
            assert_eq!(
                decoded.streaming, expected["streaming"],
                "case {}: streaming",
                case.name
            );
            assert_matches(
                &case.name,
                "decoded body",
                &parse(&case.name, &decoded.body),
                &expected["body"],
            );
        }
        (None, Some(expected)) => {
            let err = result.expect_err(&format!("case {}: decoding must fail", case.name));
            let actual = json!({"class": err.class.as_str(), "param": err.param});
            assert_matches(&case.name, "decode error", &actual, expected);
        }
        _ => panic!(
            "case {}: needs exactly one of expect_decoded and expect_decode_error",
            case.name
        ),
    }
}

fn stream(case: &Case, chunks: &Value) {
    let mut encoder = GeminiStreamEncoder::new(context(case));
    let mut events = Vec::new();
    for chunk in chunks.as_array().expect("canonical_chunks is an array") {
        let pushed = encoder
            .push(&chunk.to_string())
            .unwrap_or_else(|err| panic!("case {}: push failed: {err}", case.name));
        events.extend(pushed);
    }
    if let Some(error) = case.opt("abort_error") {
        if let Some(expected) = case.opt("expect_events") {
            assert_matches(&case.name, "events", &events_json(case, &events), expected);
        }
        let aborted = encoder.abort(&plugin_error(error));
        assert_matches(
            &case.name,
            "abort events",
            &events_json(case, &aborted),
            case.field("expect_abort_events"),
        );
        return;
    }
    let usage = case.opt("finish_usage").map(usage);
    let finished = encoder
        .finish(usage)
        .unwrap_or_else(|err| panic!("case {}: finish failed: {err}", case.name));
    events.extend(finished);
    assert_matches(
        &case.name,
        "events",
        &events_json(case, &events),
        case.field("expect_events"),
    );
}

fn events_json(case: &Case, events: &[SseEvent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|event| json!({"event": event.event, "data": parse(&case.name, &event.data)}))
            .collect(),
    )
}

fn parse(case: &str, text: &str) -> Value {
    assert!(!text.contains('\n'), "case {case}: output has a line break");
    serde_json::from_str(text).unwrap_or_else(|err| panic!("case {case}: not JSON ({err}): {text}"))
}

fn context(case: &Case) -> EgressContext {
    let ctx = case.opt("context").cloned().unwrap_or_else(|| json!({}));
    EgressContext {
        request_id: ctx["request_id"].as_str().unwrap_or("req-1").to_owned(),
        requested_model: ctx["requested_model"]
            .as_str()
            .unwrap_or("gemini-2.5-flash")
            .to_owned(),
        received_at_ms: ctx["received_at_ms"].as_u64().unwrap_or(0),
    }
}

fn operation(name: &str) -> Operation {
    match name {
        "chat" => Operation::Chat,
        "count-tokens" => Operation::CountTokens,
        "embeddings" => Operation::Embeddings,
        other => panic!("unknown operation {other}"),
    }
}

fn count(value: &Value) -> Option<u32> {
    value.as_u64().map(|n| u32::try_from(n).expect("u32"))
}

fn usage(value: &Value) -> Usage {
    Usage {
        input_tokens: count(&value["input_tokens"]).unwrap_or(0),
        output_tokens: count(&value["output_tokens"]).unwrap_or(0),
        cached_input_tokens: count(&value["cached_input_tokens"]),
        cache_write_input_tokens: count(&value["cache_write_input_tokens"]),
        reasoning_tokens: count(&value["reasoning_tokens"]),
    }
}

pub(super) fn error_class(name: &str) -> ErrorClass {
    ALL_CLASSES
        .into_iter()
        .find(|class| class.as_str() == name)
        .unwrap_or_else(|| panic!("unknown error class {name}"))
}

pub(super) const ALL_CLASSES: [ErrorClass; 11] = [
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
];

fn plugin_error(value: &Value) -> PluginError {
    let class = error_class(value["class"].as_str().expect("abort_error.class"));
    let mut error = PluginError::new(class, value["message"].as_str().unwrap_or_default());
    if let Some(retryable) = value["retryable"].as_bool() {
        error = error.with_retryable(retryable);
    }
    if let Some(status) = value["status"].as_u64() {
        error = error.with_status(u16::try_from(status).expect("status"));
    }
    if let Some(code) = value["code"].as_str() {
        error = error.with_code(code);
    }
    if let Some(param) = value["param"].as_str() {
        error = error.with_param(param);
    }
    error.with_retry_after_ms(count(&value["retry_after_ms"]))
}
