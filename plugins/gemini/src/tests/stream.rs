//! The stream decoder, canonical and native.

use orch_plugin_sdk::{
    ChunkKind, ErrorClass, Frame, PluginError, StreamChunk, StreamDecoder, StreamItem, Usage,
};
use serde_json::{Value, json};

use super::{ctx, native_ctx};
use crate::GeminiDecoder;

fn decoder() -> GeminiDecoder {
    GeminiDecoder::new(ctx(true), 200, Vec::new())
}

fn push(decoder: &mut GeminiDecoder, event: &Value) -> Result<Vec<StreamItem>, PluginError> {
    decoder.push(Frame::data(event.to_string()))
}

/// (kind, delta-or-chunk) of the chunk items.
fn chunks(items: &[StreamItem]) -> Vec<(ChunkKind, Value)> {
    items
        .iter()
        .filter_map(|item| match item {
            StreamItem::Chunk(StreamChunk { kind, data, event }) => {
                assert_eq!(*event, None);
                let chunk: Value = serde_json::from_str(data).expect("json");
                Some((*kind, chunk))
            }
            _ => None,
        })
        .collect()
}

fn deltas(items: &[StreamItem]) -> Vec<(ChunkKind, Value)> {
    chunks(items)
        .into_iter()
        .map(|(kind, chunk)| (kind, chunk["choices"][0].clone()))
        .collect()
}

#[test]
fn chunk_envelope_and_field_order() {
    let mut d = decoder();
    let items = push(
        &mut d,
        &json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}),
    )
    .expect("items");
    let [StreamItem::Chunk(role), StreamItem::Chunk(text)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(
        role.data,
        r#"{"id":"chatcmpl-req-1","object":"chat.completion.chunk","created":1700000000,"model":"my-alias","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#
    );
    assert_eq!(role.kind, ChunkKind::Meta);
    assert_eq!(
        text.data,
        r#"{"id":"chatcmpl-req-1","object":"chat.completion.chunk","created":1700000000,"model":"my-alias","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#
    );
    assert_eq!(text.kind, ChunkKind::Content);
}

#[test]
fn text_signature_and_usage_updates() {
    let mut d = decoder();
    let usage = json!({"promptTokenCount": 5, "totalTokenCount": 5});
    let items = push(&mut d, &json!({"candidates": [{"content": {"parts": [{"text": "A", "thoughtSignature": "s"}]}}], "usageMetadata": usage, "responseId": "r1"}))
        .expect("items");
    assert_eq!(
        deltas(&items)[1..],
        [
            (
                ChunkKind::Content,
                json!({"index": 0, "delta": {"content": "A"}, "finish_reason": null})
            ),
            (
                ChunkKind::Meta,
                json!({"index": 0, "delta": {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "s"}]}, "finish_reason": null})
            ),
        ]
    );
    assert_eq!(
        items.last(),
        Some(&StreamItem::Usage(Usage {
            input_tokens: 5,
            ..Usage::default()
        }))
    );
    assert_eq!(chunks(&items)[0].1["id"], "r1");
    // Same usage again: no new report; the id stays the first event's.
    let items = push(&mut d, &json!({"candidates": [{"content": {"parts": [{"text": "B"}]}}], "usageMetadata": usage, "responseId": "r2"}))
        .expect("items");
    assert!(!items.iter().any(|i| matches!(i, StreamItem::Usage(_))));
    assert_eq!(chunks(&items)[0].1["id"], "r1");
    let items = push(
        &mut d,
        &json!({"candidates": [{"finishReason": "MAX_TOKENS"}]}),
    )
    .expect("items");
    assert_eq!(
        deltas(&items),
        [(
            ChunkKind::Meta,
            json!({"index": 0, "delta": {}, "finish_reason": "length"})
        )]
    );
    let items = d.finish().expect("done");
    let [StreamItem::Chunk(usage), StreamItem::Done] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(usage.kind, ChunkKind::Usage);
    let usage: Value = serde_json::from_str(&usage.data).expect("json");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 5);
    // Finished: nothing more.
    assert_eq!(d.finish().expect("again"), []);
    assert_eq!(push(&mut d, &json!({"candidates": []})).expect("late"), []);
}

#[test]
fn without_usage_finish_is_just_done() {
    let mut d = decoder();
    push(
        &mut d,
        &json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]}),
    )
    .expect("items");
    assert_eq!(d.finish().expect("done"), [StreamItem::Done]);
}

#[test]
fn several_candidates() {
    let mut d = decoder();
    let items = push(
        &mut d,
        &json!({"candidates": [
            {"content": {"parts": [{"text": "a"}]}, "index": 0},
            {"content": {"parts": [{"functionCall": {"name": "f", "args": {"k": 1}}}]}, "index": 1},
        ]}),
    )
    .expect("items");
    let indexes: Vec<_> = deltas(&items)
        .iter()
        .map(|(_, c)| c["index"].clone())
        .collect();
    assert_eq!(indexes, [json!(0), json!(0), json!(1), json!(1)]);
    let items = push(&mut d, &json!({"candidates": [
        {"content": {"parts": [{"functionCall": {"name": "g"}}]}, "finishReason": "STOP", "index": 1},
        {"finishReason": "STOP", "index": 0},
    ]}))
    .expect("items");
    assert_eq!(
        deltas(&items),
        [
            (
                ChunkKind::Content,
                json!({"index": 1, "delta": {"tool_calls": [{"index": 1, "id": "call_1_g", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}, "finish_reason": null})
            ),
            (
                ChunkKind::Meta,
                json!({"index": 1, "delta": {}, "finish_reason": "tool_calls"})
            ),
            (
                ChunkKind::Meta,
                json!({"index": 0, "delta": {}, "finish_reason": "stop"})
            ),
        ]
    );
}

#[test]
fn safety_stop_and_blocked_prompt() {
    let mut d = decoder();
    let items = push(
        &mut d,
        &json!({"candidates": [{"finishReason": "SAFETY", "safetyRatings": []}]}),
    )
    .expect("items");
    assert_eq!(deltas(&items)[1].1["finish_reason"], "content_filter");
    assert_eq!(d.finish().expect("done"), [StreamItem::Done]);

    let mut d = decoder();
    let err = push(&mut d, &json!({"promptFeedback": {"blockReason": "OTHER"}, "usageMetadata": {"promptTokenCount": 3}}))
        .expect_err("blocked");
    assert_eq!(
        (err.class, err.retryable, err.status),
        (ErrorClass::ContentFilter, false, Some(200))
    );
    // The error ended the stream.
    assert_eq!(d.finish().expect("closed"), []);
}

#[test]
fn errors_and_garbage() {
    for data in [
        r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#,
        r#"[{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}]"#,
    ] {
        let mut d = decoder();
        let err = d.push(Frame::data(data)).expect_err("error");
        assert_eq!(
            (err.class, err.retryable, err.status),
            (ErrorClass::Server, true, Some(200))
        );
        assert_eq!(err.message, "An internal error has occurred.");
    }
    let mut d = decoder();
    let err = d
        .push(Frame::data(
            r#"{"error":{"code":429,"message":"slow","status":"RESOURCE_EXHAUSTED"}}"#,
        ))
        .expect_err("error");
    assert_eq!(err.class, ErrorClass::RateLimited);
    for data in ["{not json", "[1]", "[]", "42", "[DONE]"] {
        let err = decoder().push(Frame::data(data)).expect_err(data);
        assert_eq!(
            (err.class, err.retryable),
            (ErrorClass::Server, true),
            "{data}"
        );
        assert_eq!(
            err.message,
            "upstream sent a stream event that is not a Gemini response"
        );
    }
    let mut d = decoder();
    let err = d.push(Frame::data(vec![0xff])).expect_err("utf-8");
    assert_eq!(err.class, ErrorClass::Server);
    // The error ended the stream.
    assert_eq!(d.push(Frame::data("{}")).expect("closed"), []);
    assert_eq!(d.finish().expect("closed"), []);
    let mut d = decoder();
    assert_eq!(d.push(Frame::data(" \r\n")).expect("empty"), []);
    let err = d.finish().expect_err("nothing came");
    assert_eq!(err.message, "upstream stream ended early (no finishReason)");
}

#[test]
fn native_stream() {
    let mut d = GeminiDecoder::new(native_ctx(true), 200, Vec::new());
    let event = "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}], \"role\": \"model\"}, \"index\": 0}],\n \"modelVersion\": \"gemini-2.5-flash\", \"x\": 1.0}";
    let items = d.push(Frame::data(event)).expect("items");
    assert_eq!(
        items,
        [StreamItem::Chunk(StreamChunk::new(
            ChunkKind::Meta,
            r#"{"candidates":[{"content": {"parts": [{"text": ""}], "role": "model"}, "index": 0}],"modelVersion":"my-alias","x":1.0}"#
        ))]
    );
    let items = d
        .push(Frame::data(r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f"}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":3}}"#))
        .expect("items");
    assert!(matches!(
        items[0],
        StreamItem::Chunk(StreamChunk {
            kind: ChunkKind::Content,
            ..
        })
    ));
    assert_eq!(
        items[1],
        StreamItem::Usage(Usage {
            input_tokens: 2,
            output_tokens: 3,
            ..Usage::default()
        })
    );
    assert_eq!(d.finish().expect("done"), [StreamItem::Done]);

    // A blocked prompt ends a native stream normally: the client reads promptFeedback.
    let mut d = GeminiDecoder::new(native_ctx(true), 200, Vec::new());
    let items = d
        .push(Frame::data(
            r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#,
        ))
        .expect("items");
    assert!(matches!(
        items[0],
        StreamItem::Chunk(StreamChunk {
            kind: ChunkKind::Meta,
            ..
        })
    ));
    assert_eq!(d.finish().expect("done"), [StreamItem::Done]);

    let mut d = GeminiDecoder::new(native_ctx(true), 200, Vec::new());
    d.push(Frame::data(
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#,
    ))
    .expect("items");
    assert_eq!(d.finish().expect_err("early").class, ErrorClass::Server);
    let err = GeminiDecoder::new(native_ctx(true), 200, Vec::new())
        .push(Frame::data(
            r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#,
        ))
        .expect_err("error");
    assert_eq!(err.class, ErrorClass::Overloaded);
}
