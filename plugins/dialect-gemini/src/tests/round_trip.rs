//! What the encoders give a client comes back through the decoder as the
//! same canonical assistant message: ids, thinking blocks and signatures
//! survive the client's next turn, whether it got the answer whole or
//! streamed (google-genai's chat history keeps one model content per chunk).

use orch_plugin_sdk::{Dialect, StreamEncoder};
use serde_json::{Value, json};

use super::{ctx, decoded};
use crate::{Gemini, GeminiStreamEncoder};

/// The canonical assistant message a client's history decodes to, given the
/// model contents it recorded.
fn history_message(model_contents: Vec<Value>) -> Value {
    let mut contents = vec![json!({"role": "user", "parts": [{"text": "q"}]})];
    contents.extend(model_contents);
    contents.push(json!({"role": "user", "parts": [{"text": "next"}]}));
    let body = json!({"contents": contents}).to_string();
    decoded(&body)["messages"][1].clone()
}

fn canonical_message() -> Value {
    json!({
        "role": "assistant",
        "content": "Checking.",
        "reasoning_content": "I need both cities.",
        "thinking_blocks": [{"type": "thinking", "thinking": "I need both cities.", "signature": "Q2lnMQ=="}],
        "tool_calls": [
            {"id": "call_0_get_weather", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
             "extra_content": {"google": {"thought_signature": "RXFVQw=="}}},
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
        ]
    })
}

#[test]
fn a_whole_answer_comes_back_unchanged() {
    let completion = json!({"choices": [{"index": 0, "message": canonical_message(), "finish_reason": "tool_calls"}]});
    let encoded = Gemini::encode_response(&ctx(), &completion.to_string(), None).expect("encoded");
    let encoded: Value = serde_json::from_str(&encoded).expect("JSON");
    let content = encoded["candidates"][0]["content"].clone();
    assert_eq!(history_message(vec![content]), canonical_message());
}

#[test]
fn every_kind_of_thinking_block_comes_back_unchanged() {
    let message = json!({
        "role": "assistant",
        "content": null,
        "reasoning_content": "summaryplan",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "summary"},
            {"type": "thinking", "thinking": "", "signature": "U2ln"},
            {"type": "thinking", "thinking": "plan", "signature": "UGxhbg=="}
        ],
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    });
    let completion =
        json!({"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]});
    let encoded = Gemini::encode_response(&ctx(), &completion.to_string(), None).expect("encoded");
    let encoded: Value = serde_json::from_str(&encoded).expect("JSON");
    let content = encoded["candidates"][0]["content"].clone();
    assert_eq!(
        content["parts"][1],
        json!({"text": "", "thoughtSignature": "U2ln"})
    );
    assert_eq!(history_message(vec![content]), message);
}

#[test]
fn a_streamed_answer_comes_back_as_the_same_message() {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
    };
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning_content": "I need both"}), None),
        chunk(json!({"reasoning_content": " cities."}), None),
        chunk(
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "Q2lnMQ=="}]}),
            None,
        ),
        chunk(json!({"content": "Check"}), None),
        chunk(json!({"content": "ing."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_0_get_weather", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":"},
            "extra_content": {"google": {"thought_signature": "RXFVQw=="}}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "toolu_01A", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ];
    let mut encoder = GeminiStreamEncoder::new(ctx());
    let mut events = Vec::new();
    for chunk in &chunks {
        events.extend(encoder.push(chunk).expect("pushed"));
    }
    events.extend(encoder.finish(None).expect("finished"));
    // What a chat session records: each event's candidate content.
    let contents: Vec<Value> = events
        .iter()
        .map(|event| {
            let event: Value = serde_json::from_str(&event.data).expect("JSON");
            event["candidates"][0]["content"].clone()
        })
        .collect();
    assert_eq!(history_message(contents), canonical_message());
}

#[test]
fn ids_generated_for_id_less_calls_match_on_both_sides() {
    // An adapter gave no ids: the encoder generates them...
    let message = json!({"role": "assistant", "content": null, "tool_calls": [
        {"type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"type": "function", "function": {"name": "b", "arguments": "{}"}}
    ]});
    let completion =
        json!({"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]});
    let encoded: Value = serde_json::from_str(
        &Gemini::encode_response(&ctx(), &completion.to_string(), None).expect("encoded"),
    )
    .expect("JSON");
    let mut content = encoded["candidates"][0]["content"].clone();
    // ...and a client that drops them gets the same ones from the decoder.
    for part in content["parts"].as_array_mut().into_iter().flatten() {
        if let Some(call) = part["functionCall"].as_object_mut() {
            call.remove("id");
        }
    }
    let decoded = history_message(vec![content]);
    assert_eq!(decoded["tool_calls"][0]["id"], "call_0_a");
    assert_eq!(decoded["tool_calls"][1]["id"], "call_1_b");
}
