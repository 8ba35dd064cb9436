//! `encode_response`.

use orch_plugin_sdk::{Dialect, ErrorClass, Usage};
use serde_json::{Value, json};

use super::ctx;
use crate::Gemini;

fn encode(body: Value, usage: Option<Usage>) -> Value {
    let text = Gemini::encode_response(&ctx(), &body.to_string(), usage).expect("encoded");
    serde_json::from_str(&text).expect("JSON")
}

fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]
    })
}

fn parts(response: &Value) -> &Value {
    &response["candidates"][0]["content"]["parts"]
}

#[test]
fn rejects_bodies_that_are_not_completions() {
    for body in ["not json", "[]", "{}", r#"{"choices":{}}"#] {
        let err = Gemini::encode_response(&ctx(), body, None).expect_err(body);
        assert_eq!(err.class, ErrorClass::Server, "{body}");
    }
}

#[test]
fn no_choices_no_candidates() {
    let response = encode(json!({"choices": []}), None);
    assert_eq!(
        response,
        json!({"modelVersion": "gemini-2.5-flash", "responseId": "req-1"})
    );
}

#[test]
fn usage_argument_wins_over_the_bodys() {
    let mut body = completion(json!({"role": "assistant", "content": "x"}), "stop");
    body["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3});
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 20,
        ..Usage::default()
    };
    let response = encode(body.clone(), Some(usage));
    assert_eq!(response["usageMetadata"]["promptTokenCount"], 10);
    let response = encode(body, None);
    assert_eq!(response["usageMetadata"]["promptTokenCount"], 1);
}

#[test]
fn malformed_tool_call_is_dropped_and_reported() {
    let message = json!({"role": "assistant", "content": "Let me see.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "ok", "arguments": "{\"a\":1}"}},
        {"id": "c2", "type": "function", "function": {"name": "cut", "arguments": "{\"q\": \"trunc"}}
    ]});
    let response = encode(completion(message.clone(), "tool_calls"), None);
    assert_eq!(
        parts(&response),
        &json!([{"text": "Let me see."}, {"functionCall": {"id": "c1", "name": "ok", "args": {"a": 1}}}])
    );
    assert_eq!(
        response["candidates"][0]["finishReason"],
        "MALFORMED_FUNCTION_CALL"
    );
    let response = encode(completion(message, "length"), None);
    assert_eq!(response["candidates"][0]["finishReason"], "MAX_TOKENS");
}

#[test]
fn reasoning_without_blocks_and_redacted_blocks() {
    let message = json!({"role": "assistant", "content": "4", "reasoning_content": "2+2"});
    assert_eq!(
        parts(&encode(completion(message, "stop"), None)),
        &json!([{"text": "2+2", "thought": true}, {"text": "4"}])
    );
    let message = json!({"role": "assistant", "content": "4", "reasoning_content": "ignored when blocks exist",
    "thinking_blocks": [
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "thinking", "thinking": "2+2", "signature": "sig"},
        {"type": "thinking", "thinking": "", "signature": ""}
    ]});
    assert_eq!(
        parts(&encode(completion(message, "stop"), None)),
        &json!([{"text": "2+2", "thought": true, "thoughtSignature": "sig"}, {"text": "4"}])
    );
}

#[test]
fn content_as_parts_and_refusals() {
    let message = json!({"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
    assert_eq!(
        parts(&encode(completion(message, "stop"), None)),
        &json!([{"text": "ab"}])
    );
    let message =
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
    assert_eq!(
        parts(&encode(completion(message, "stop"), None)),
        &json!([{"text": "I can't help with that."}])
    );
    let message = json!({"role": "assistant", "content": null});
    assert_eq!(
        parts(&encode(completion(message, "stop"), None)),
        &json!([{"text": ""}])
    );
}

#[test]
fn candidate_index_defaults_to_position() {
    let body = json!({"choices": [
        {"message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"},
        {"message": {"role": "assistant", "content": "b"}}
    ]});
    let response = encode(body, None);
    assert_eq!(response["candidates"][1]["index"], 1);
    assert!(response["candidates"][1].get("finishReason").is_none());
}

#[test]
fn arguments_keep_the_models_key_order() {
    let message = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"z\":1,\"a\":{\"y\":1,\"b\":2}}"}}
    ]});
    let text =
        Gemini::encode_response(&ctx(), &completion(message, "tool_calls").to_string(), None)
            .expect("encoded");
    assert!(
        text.contains(r#""args":{"z":1,"a":{"y":1,"b":2}}"#),
        "{text}"
    );
}
