//! Replays every case in `plugins/conformance/gemini/adapter/` (format in
//! `plugins/conformance/README.md`) through the adapter.

use orch_conformance::{
    Case, assert_error, assert_matches, cases, credential_json, sse_frames, usage_json,
};
use orch_plugin_sdk::{
    Adapter, ChunkKind, Frame, PayloadForm, RequestBody, RequestContext, StreamDecoder, StreamItem,
    Usage,
};
use serde_json::{Value, json};

use crate::{Gemini, GeminiDecoder};

#[test]
fn conformance_cases() {
    let cases = cases("gemini/adapter");
    assert!(
        cases.len() >= 20,
        "expected the full case set, found {}",
        cases.len()
    );
    for case in &cases {
        run(case);
    }
}

fn run(case: &Case) {
    let ctx = case.request_context("gemini");
    if let Some(expect) = case.opt("expect_request") {
        check_request(case, &ctx, expect);
    }
    let status = case
        .opt("upstream_status")
        .and_then(Value::as_u64)
        .map_or(200, |s| u16::try_from(s).expect("status"));
    let headers: Vec<(String, String)> = case
        .opt("upstream_headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(n, v)| (n.clone(), v.as_str().expect("header value").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(body) = case.opt("upstream_body") {
        // Gemini pretty-prints non-streaming answers.
        let bytes = serde_json::to_vec_pretty(body).expect("body");
        let result = if (200..300).contains(&status) {
            Gemini::parse_response(&ctx, status, &headers, &bytes)
        } else {
            Err(Gemini::classify_error(&ctx, status, &headers, &bytes))
        };
        match result {
            Ok(parsed) => {
                let body: Value = serde_json::from_str(&parsed.body).expect("response is JSON");
                let expected = case.field("expect_response");
                assert_matches(&case.name, "response", &body, expected);
                check_usage(case, parsed.usage);
                assert!(
                    case.opt("expect_error").is_none(),
                    "case {}: no error",
                    case.name
                );
            }
            Err(err) => assert_error(case, &err),
        }
    }
    if let Some(stream) = case.opt("upstream_stream") {
        replay_stream(
            case,
            ctx,
            status,
            headers,
            stream.as_str().expect("SSE text"),
        );
    }
}

fn check_request(case: &Case, ctx: &RequestContext, expect: &Value) {
    let payload = match ctx.form {
        PayloadForm::Canonical => case.field("canonical_request"),
        PayloadForm::Native => case.field("native_request"),
    };
    let request = Gemini::build_request(ctx, &payload.to_string())
        .unwrap_or_else(|err| panic!("case {}: build_request failed: {err}", case.name));
    assert_eq!(
        request.method, expect["method"],
        "case {}: method",
        case.name
    );
    assert_eq!(request.url, expect["url"], "case {}: url", case.name);
    for (name, value) in expect["headers"].as_object().into_iter().flatten() {
        let actual = request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v);
        assert_eq!(
            actual.map(String::as_str),
            value.as_str(),
            "case {}: header {name}",
            case.name
        );
    }
    let credential = credential_json(&request.credential);
    assert_matches(&case.name, "credential", &credential, &expect["credential"]);
    let body = match &request.body {
        RequestBody::Empty => Value::Null,
        RequestBody::Bytes(bytes) => serde_json::from_slice(bytes).expect("body is JSON"),
        RequestBody::Forward(edits) => {
            let mut body = payload.clone();
            let object = body.as_object_mut().expect("payload object");
            for edit in edits {
                match &edit.value {
                    Some(v) => object.insert(
                        edit.field.clone(),
                        serde_json::from_str(v).expect("edit is JSON"),
                    ),
                    None => object.remove(&edit.field),
                };
            }
            body
        }
    };
    assert_matches(&case.name, "request body", &body, &expect["body"]);
}

fn replay_stream(
    case: &Case,
    ctx: RequestContext,
    status: u16,
    headers: Vec<(String, String)>,
    stream: &str,
) {
    let mut decoder = GeminiDecoder::new(ctx, status, headers);
    let mut items = Vec::new();
    let mut error = None;
    for frame in sse_frames(stream) {
        let frame = Frame {
            event: frame.event,
            data: frame.data.into_bytes(),
        };
        match decoder.push(frame) {
            Ok(mut more) => items.append(&mut more),
            Err(err) => {
                error = Some(err);
                break;
            }
        }
    }
    if error.is_none() {
        match decoder.finish() {
            Ok(mut more) => items.append(&mut more),
            Err(err) => error = Some(err),
        }
    }
    let chunks: Vec<Value> = items
        .iter()
        .filter_map(|item| match item {
            StreamItem::Chunk(chunk) => {
                let kind = match chunk.kind {
                    ChunkKind::Content => "content",
                    ChunkKind::Meta => "meta",
                    ChunkKind::Usage => "usage",
                };
                let data: Value = serde_json::from_str(&chunk.data).expect("chunk is JSON");
                Some(json!({"kind": kind, "data": data}))
            }
            _ => None,
        })
        .collect();
    if let Some(expected) = case.opt("expect_chunks") {
        assert_matches(&case.name, "chunks", &Value::Array(chunks), expected);
    }
    let done = items.iter().any(|item| matches!(item, StreamItem::Done));
    let expect_done = case
        .opt("expect_done")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    assert_eq!(done, expect_done, "case {}: done", case.name);
    let usage = items.iter().rev().find_map(|item| match item {
        StreamItem::Usage(usage) => Some(*usage),
        _ => None,
    });
    check_usage(case, usage);
    match error {
        Some(err) => assert_error(case, &err),
        None => assert!(
            case.opt("expect_error").is_none(),
            "case {}: expected an error",
            case.name
        ),
    }
}

fn check_usage(case: &Case, usage: Option<Usage>) {
    let Some(expected) = case.opt("expect_usage") else {
        return;
    };
    let actual = usage.as_ref().map_or(Value::Null, usage_json);
    assert_matches(&case.name, "usage", &actual, expected);
}
