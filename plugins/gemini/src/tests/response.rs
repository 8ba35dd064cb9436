//! `parse_response`: canonical, native and count-tokens answers.

use orch_plugin_sdk::{
    Adapter, ErrorClass, Operation, ParsedResponse, PluginError, RequestContext, Usage,
};
use serde_json::{Value, json};

use super::{ctx, native_ctx};
use crate::Gemini;

fn parse(ctx: &RequestContext, body: &Value) -> Result<ParsedResponse, PluginError> {
    Gemini::parse_response(ctx, 200, &[], body.to_string().as_bytes())
}

fn message(body: &Value) -> Value {
    let parsed = parse(&ctx(false), body).expect("parsed");
    let completion: Value = serde_json::from_str(&parsed.body).expect("json");
    completion["choices"][0].clone()
}

#[test]
fn completion_envelope() {
    let parsed = parse(
        &ctx(false),
        &json!({"candidates": [{"content": {"parts": [{"text": "Hi"}, {"text": " there"}], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "toolUsePromptTokenCount": 5, "cachedContentTokenCount": 1, "totalTokenCount": 10}}),
    )
    .expect("parsed");
    // Field order is OpenAI's.
    assert_eq!(
        parsed.body,
        r#"{"id":"chatcmpl-req-1","object":"chat.completion","created":1700000000,"model":"my-alias","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":0}}}"#
    );
    assert_eq!(
        parsed.usage,
        Some(Usage {
            input_tokens: 8,
            output_tokens: 2,
            cached_input_tokens: Some(1),
            cache_write_input_tokens: None,
            reasoning_tokens: None,
        })
    );
}

#[test]
fn thinking_blocks_collect_thoughts_up_to_each_signature() {
    let choice = message(&json!({"candidates": [{"content": {"parts": [
        {"text": "first ", "thought": true},
        {"text": "second", "thought": true, "thoughtSignature": "sig1"},
        {"text": "third", "thought": true},
        {"text": "Answer", "thoughtSignature": "sig2"},
        {"text": "", "thoughtSignature": "sig3"},
        {"text": "trailing", "thought": true},
    ]}, "finishReason": "STOP"}]}));
    assert_eq!(
        choice["message"],
        json!({
            "role": "assistant",
            "content": "Answer",
            "reasoning_content": "first secondthirdtrailing",
            "thinking_blocks": [
                {"type": "thinking", "thinking": "first second", "signature": "sig1"},
                {"type": "thinking", "thinking": "third", "signature": "sig2"},
                {"type": "thinking", "thinking": "", "signature": "sig3"},
                {"type": "thinking", "thinking": "trailing"},
            ],
        })
    );
}

#[test]
fn finish_reasons() {
    for (reason, calls, expected) in [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("BLOCKLIST", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("SPII", false, "content_filter"),
        ("IMAGE_SAFETY", false, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ("OTHER", true, "tool_calls"),
        ("FINISH_REASON_UNSPECIFIED", false, "stop"),
    ] {
        let mut parts = vec![json!({"text": "x"})];
        if calls {
            parts.push(json!({"functionCall": {"name": "f", "args": {}}}));
        }
        let choice = message(
            &json!({"candidates": [{"content": {"parts": parts}, "finishReason": reason}]}),
        );
        assert_eq!(choice["finish_reason"], expected, "{reason} {calls}");
    }
    // No finish reason at all (should not happen): stop.
    let choice = message(&json!({"candidates": [{"content": {"parts": [{"text": "x"}]}}]}));
    assert_eq!(choice["finish_reason"], "stop");
}

#[test]
fn parts_without_a_canonical_form_are_skipped() {
    let choice = message(&json!({"candidates": [{"content": {"parts": [
        {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
        {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
        {"text": "done"},
        {"functionCall": {"id": "", "name": "f", "args": ["not", "an", "object"]}},
    ]}, "finishReason": "STOP"}]}));
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": "done", "tool_calls": [
            {"id": "call_0_f", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
    );
}

#[test]
fn arguments_keep_geminis_key_order() {
    let body = br#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"book",
        "args":{"to":"LHR","from":"CDG","passengers":[{"name":"A","age":3}]}}}]},"finishReason":"STOP"}]}"#;
    let parsed = Gemini::parse_response(&ctx(false), 200, &[], body).expect("parsed");
    assert!(
        parsed.body.contains(r#""arguments":"{\"to\":\"LHR\",\"from\":\"CDG\",\"passengers\":[{\"name\":\"A\",\"age\":3}]}""#),
        "{}",
        parsed.body
    );
}

#[test]
fn candidates_become_choices() {
    let parsed = parse(
        &ctx(false),
        &json!({"candidates": [
            {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
            {"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP", "index": 5},
        ]}),
    )
    .expect("parsed");
    let completion: Value = serde_json::from_str(&parsed.body).expect("json");
    assert_eq!(completion["choices"][0]["index"], 0);
    assert_eq!(completion["choices"][1]["index"], 5);
    assert_eq!(completion.get("usage"), None);
    assert_eq!(parsed.usage, None);
}

#[test]
fn errors_in_2xx_bodies() {
    let err = parse(
        &ctx(false),
        &json!({"promptFeedback": {"blockReason": "SAFETY"}}),
    )
    .expect_err("blocked");
    assert_eq!(
        (err.class, err.retryable, err.code.as_deref()),
        (ErrorClass::ContentFilter, false, Some("SAFETY"))
    );
    let err = parse(
        &ctx(false),
        &json!({"candidates": [], "usageMetadata": {"promptTokenCount": 1}}),
    )
    .expect_err("empty");
    assert_eq!((err.class, err.retryable), (ErrorClass::Server, true));
    let error = json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}});
    for body in [error.clone(), json!([error])] {
        let err = parse(&ctx(false), &body).expect_err("error");
        assert_eq!(
            (err.class, err.status),
            (ErrorClass::RateLimited, Some(200))
        );
        let err = parse(&native_ctx(false), &body).expect_err("error");
        assert_eq!(err.class, ErrorClass::RateLimited);
    }
    for body in [
        &b"<html>"[..],
        b"",
        b"\"text\"",
        b"[1]",
        b"{\"candidates\": 7}",
    ] {
        let err = Gemini::parse_response(&ctx(false), 200, &[], body).expect_err("garbage");
        assert_eq!((err.class, err.retryable), (ErrorClass::Server, true));
        let err = Gemini::parse_response(&native_ctx(false), 200, &[], body);
        if body != b"{\"candidates\": 7}" {
            assert_eq!(err.expect_err("garbage").class, ErrorClass::Server);
        }
    }
}

#[test]
fn native_keeps_the_body() {
    // Without modelVersion: the exact bytes.
    let body =
        "{\n  \"candidates\": [{\"content\": {\"parts\": [{\"text\": \"x\"}]}}],\n  \"x\": 1.50\n}";
    let parsed =
        Gemini::parse_response(&native_ctx(false), 200, &[], body.as_bytes()).expect("parsed");
    assert_eq!(parsed.body, body);
    assert_eq!(parsed.usage, None);
    // With it: only modelVersion changes (the body is compacted onto one line).
    let body = r#"{"candidates":[],"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":4,"thoughtsTokenCount":2,"candidatesTokenCount":1},"modelVersion":"gemini-2.5-flash","z":1.50}"#;
    let parsed =
        Gemini::parse_response(&native_ctx(false), 200, &[], body.as_bytes()).expect("parsed");
    assert_eq!(parsed.body, body.replace("gemini-2.5-flash", "my-alias"));
    assert_eq!(
        parsed.usage,
        Some(Usage {
            input_tokens: 4,
            output_tokens: 3,
            reasoning_tokens: Some(2),
            ..Usage::default()
        })
    );
}

#[test]
fn count_tokens_answers() {
    let count = RequestContext {
        operation: Operation::CountTokens,
        ..ctx(false)
    };
    let parsed = Gemini::parse_response(
        &count,
        200,
        &[],
        br#"{"totalTokens": 31, "cachedContentTokenCount": 8}"#,
    )
    .expect("parsed");
    assert_eq!(
        parsed.body,
        r#"{"object":"response.input_tokens","input_tokens":31}"#
    );
    assert_eq!(
        parsed.usage,
        Some(Usage {
            input_tokens: 31,
            cached_input_tokens: Some(8),
            ..Usage::default()
        })
    );
    // proto3 omits zero.
    let parsed = Gemini::parse_response(&count, 200, &[], b"{}").expect("parsed");
    assert_eq!(parsed.usage.map(|u| u.input_tokens), Some(0));

    let native = RequestContext {
        operation: Operation::CountTokens,
        ..native_ctx(false)
    };
    let body =
        br#"{"totalTokens": 31, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}]}"#;
    let parsed = Gemini::parse_response(&native, 200, &[], body).expect("parsed");
    assert_eq!(parsed.body.as_bytes(), body);
    assert_eq!(parsed.usage.map(|u| u.input_tokens), Some(31));

    let err = Gemini::parse_response(
        &count,
        200,
        &[],
        br#"{"error":{"code":404,"message":"no","status":"NOT_FOUND"}}"#,
    )
    .expect_err("error");
    assert_eq!(err.class, ErrorClass::NotFound);
    let err = Gemini::parse_response(&count, 200, &[], b"nope").expect_err("garbage");
    assert_eq!(err.class, ErrorClass::Server);
}
