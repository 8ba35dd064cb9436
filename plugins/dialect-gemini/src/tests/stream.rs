//! The stream encoder.

use orch_plugin_sdk::{ErrorClass, PluginError, SseEvent, StreamEncoder, Usage};
use serde_json::{Value, json};

use super::ctx;
use crate::GeminiStreamEncoder;

fn encoder() -> GeminiStreamEncoder {
    GeminiStreamEncoder::new(ctx())
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
    .to_string()
}

fn data(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|event| {
            assert_eq!(event.event, None);
            serde_json::from_str(&event.data).expect("JSON")
        })
        .collect()
}

fn push(encoder: &mut GeminiStreamEncoder, chunk: &str) -> Vec<Value> {
    data(&encoder.push(chunk).expect("pushed"))
}

fn finish(encoder: &mut GeminiStreamEncoder, usage: Option<Usage>) -> Vec<Value> {
    data(&encoder.finish(usage).expect("finished"))
}

fn parts(event: &Value) -> &Value {
    &event["candidates"][0]["content"]["parts"]
}

#[test]
fn an_empty_stream_still_ends_with_a_final_event() {
    let mut encoder = encoder();
    let events = finish(&mut encoder, None);
    assert_eq!(
        events,
        [json!({
            "candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "modelVersion": "gemini-2.5-flash", "responseId": "req-1"
        })]
    );
    // Once finished, nothing more.
    assert!(finish(&mut encoder, None).is_empty());
    assert!(push(&mut encoder, &chunk(json!({"content": "late"}), None)).is_empty());
    assert!(encoder.abort(&PluginError::server("x")).len() == 1);
}

#[test]
fn invalid_chunks_are_server_errors() {
    let err = encoder().push("{oops").expect_err("invalid");
    assert_eq!(err.class, ErrorClass::Server);
    // Chunks without choices (or not objects at all) carry nothing.
    assert!(push(&mut encoder(), "[]").is_empty());
    assert!(push(&mut encoder(), r#"{"choices":[]}"#).is_empty());
}

#[test]
fn content_completes_a_pending_call() {
    let mut encoder = encoder();
    let call = json!({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "f", "arguments": "{}"}}]});
    assert!(push(&mut encoder, &chunk(call, None)).is_empty());
    let events = push(&mut encoder, &chunk(json!({"content": "done"}), None));
    assert_eq!(
        parts(&events[0]),
        &json!([{"functionCall": {"id": "c0", "name": "f", "args": {}}}, {"text": "done"}])
    );
}

#[test]
fn finish_flushes_calls_without_a_finish_chunk() {
    let mut encoder = encoder();
    let call = json!({"tool_calls": [{"index": 0, "function": {"name": "lookup", "arguments": "{\"q\":"}}]});
    push(&mut encoder, &chunk(call, None));
    let more = json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"x\"}"}}]});
    push(&mut encoder, &chunk(more, None));
    let events = finish(
        &mut encoder,
        Some(Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Usage::default()
        }),
    );
    assert_eq!(
        events[0]["candidates"][0],
        json!({"content": {"parts": [{"functionCall": {"id": "call_0_lookup", "name": "lookup", "args": {"q": "x"}}}], "role": "model"},
               "finishReason": "STOP", "index": 0})
    );
    assert_eq!(events[0]["usageMetadata"]["totalTokenCount"], 7);
}

#[test]
fn calls_without_index_continue_or_start_calls() {
    let mut encoder = encoder();
    push(
        &mut encoder,
        &chunk(
            json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]}),
            None,
        ),
    );
    push(
        &mut encoder,
        &chunk(
            json!({"tool_calls": [{"function": {"arguments": ":1}"}}]}),
            None,
        ),
    );
    let events = push(
        &mut encoder,
        &chunk(
            json!({"tool_calls": [{"id": "b", "function": {"name": "g"}}]}),
            None,
        ),
    );
    assert_eq!(
        parts(&events[0]),
        &json!([{"functionCall": {"id": "a", "name": "f", "args": {"x": 1}}}])
    );
    let events = finish(&mut encoder, None);
    assert_eq!(
        parts(&events[0]),
        &json!([{"functionCall": {"id": "b", "name": "g", "args": {}}}])
    );
}

#[test]
fn malformed_calls_are_dropped_and_reported() {
    let mut encoder = encoder();
    let call = json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"q\": \"cut"}}]});
    push(&mut encoder, &chunk(call, None));
    assert!(push(&mut encoder, &chunk(json!({}), Some("tool_calls"))).is_empty());
    let events = finish(&mut encoder, None);
    assert_eq!(parts(&events[0]), &json!([{"text": ""}]));
    assert_eq!(
        events[0]["candidates"][0]["finishReason"],
        "MALFORMED_FUNCTION_CALL"
    );
}

#[test]
fn the_finish_chunks_content_goes_in_the_last_event() {
    let mut encoder = encoder();
    assert!(
        push(
            &mut encoder,
            &chunk(json!({"content": "tail"}), Some("length"))
        )
        .is_empty()
    );
    let usage_chunk = json!({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}});
    assert!(push(&mut encoder, &usage_chunk.to_string()).is_empty());
    let events = finish(&mut encoder, None);
    assert_eq!(
        events,
        [json!({
            "candidates": [{"content": {"parts": [{"text": "tail"}], "role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 5, "totalTokenCount": 7},
            "modelVersion": "gemini-2.5-flash", "responseId": "req-1"
        })]
    );
}

#[test]
fn thinking_blocks_without_reasoning_text() {
    let mut encoder = encoder();
    let delta = json!({"thinking_blocks": [
        {"type": "thinking", "thinking": "step", "signature": "s1"},
        {"type": "redacted_thinking", "data": "xx"}
    ]});
    let events = push(&mut encoder, &chunk(delta, None));
    assert_eq!(
        parts(&events[0]),
        &json!([{"text": "step", "thought": true, "thoughtSignature": "s1"}])
    );
    // Reasoning text and the same text in a block: sent once.
    let delta = json!({"reasoning_content": "more", "thinking_blocks": [{"type": "thinking", "thinking": "more"}]});
    let events = push(&mut encoder, &chunk(delta, None));
    assert_eq!(
        parts(&events[0]),
        &json!([{"text": "more", "thought": true}])
    );
}

#[test]
fn several_choices_become_several_candidates() {
    let mut encoder = encoder();
    let two = json!({"choices": [
        {"index": 0, "delta": {"content": "a"}},
        {"index": 1, "delta": {"content": "b"}, "finish_reason": "stop"}
    ]});
    let events = push(&mut encoder, &two.to_string());
    assert_eq!(events[0]["candidates"].as_array().map(Vec::len), Some(1));
    assert_eq!(events[0]["candidates"][0]["index"], 0);
    let events = finish(&mut encoder, None);
    let candidates = &events[0]["candidates"];
    assert_eq!(
        candidates[0],
        json!({"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0})
    );
    assert_eq!(
        candidates[1],
        json!({"content": {"parts": [{"text": "b"}], "role": "model"}, "finishReason": "STOP", "index": 1})
    );
}

#[test]
fn abort_renders_googles_error_shape() {
    let mut encoder = encoder();
    push(&mut encoder, &chunk(json!({"content": "partial"}), None));
    let events = encoder.abort(&PluginError::timeout("upstream timed out"));
    assert_eq!(
        data(&events),
        [
            json!({"error": {"code": 504, "message": "upstream timed out", "status": "DEADLINE_EXCEEDED"}})
        ]
    );
    // google-genai recognises an in-stream error by this prefix.
    assert!(events[0].data.starts_with(r#"{"error":"#));
    assert!(finish(&mut encoder, None).is_empty());
}
