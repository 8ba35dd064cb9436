//! Canonical `chat.completion.chunk`s → Anthropic's server-sent events:
//!
//! ```text
//! message_start
//! (content_block_start, content_block_delta*, content_block_stop)*
//! message_delta          stop_reason + usage
//! message_stop
//! ```
//!
//! One block is open at a time, and a new one starts whenever the kind of
//! output changes (reasoning, text, each tool call). A thinking block ends
//! with its `signature_delta`; later reasoning opens a new one. The stop
//! reason and usage wait for `finish`, because the canonical usage chunk
//! follows the finish-reason chunk.

use std::borrow::Cow;
use std::collections::BTreeMap;

use orch_plugin_sdk::{EgressContext, PluginError, SseEvent, StreamEncoder, Usage};
use serde::Serialize;
use serde_json::Value;

use crate::encode::{
    AnthropicUsage, Block, ToolInput, extra_content, message_id, stop_reason, str_field,
    usage_from_canonical,
};
use crate::error::error_body;

/// Encodes one canonical stream as Anthropic Messages stream events.
#[derive(Debug)]
pub struct AnthropicEncoder {
    ctx: EgressContext,
    /// `message_start` was sent.
    started: bool,
    /// `message_stop` (or an `error` event) was sent; nothing follows.
    done: bool,
    /// The index the next content block gets.
    next_index: usize,
    /// The block currently open, if any.
    open: Option<Open>,
    /// Canonical tool-call index → content block index.
    tool_blocks: BTreeMap<u64, usize>,
    /// From the canonical finish reason, once it arrived.
    stop_reason: Option<&'static str>,
    /// Usage from a canonical usage chunk (`finish` may replace it).
    usage: Option<Usage>,
}

/// The open content block and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Thinking(usize),
    Tool { block: usize, call: u64 },
}

impl Open {
    fn index(self) -> usize {
        match self {
            Self::Text(index) | Self::Thinking(index) | Self::Tool { block: index, .. } => index,
        }
    }
}

/// One Anthropic stream event; the `type` is also the SSE event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopDelta,
        usage: DeltaUsage,
    },
    MessageStop,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: AnthropicUsage,
}

/// A `content_block_delta` payload; the `type` is `<variant>_delta`.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

/// `message_delta` usage: cumulative totals when known (current Anthropic
/// streams report input and cache counts here too), else `output_tokens: 0`.
#[derive(Serialize)]
struct DeltaUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u32>,
    output_tokens: u32,
}

impl From<Option<Usage>> for DeltaUsage {
    fn from(usage: Option<Usage>) -> Self {
        match usage.map(AnthropicUsage::from) {
            Some(usage) => Self {
                input_tokens: Some(usage.input_tokens),
                cache_creation_input_tokens: Some(usage.cache_creation_input_tokens),
                cache_read_input_tokens: Some(usage.cache_read_input_tokens),
                output_tokens: usage.output_tokens,
            },
            None => Self {
                input_tokens: None,
                cache_creation_input_tokens: None,
                cache_read_input_tokens: None,
                output_tokens: 0,
            },
        }
    }
}

/// The chunk's choice with index 0 (or without an index). Anthropic messages
/// have one choice; chunks of other choices (`n > 1`) are ignored.
fn choice_zero(chunk: &Value) -> Option<&Value> {
    chunk.get("choices")?.as_array()?.iter().find(|choice| {
        choice
            .get("index")
            .is_none_or(|index| index.as_u64() == Some(0))
    })
}

/// Appends one event as a named SSE event with one-line JSON data.
fn emit(out: &mut Vec<SseEvent>, event: &Event<'_>) -> Result<(), PluginError> {
    let data = serde_json::to_string(event)
        .map_err(|err| PluginError::server(format!("cannot serialise a stream event: {err}")))?;
    out.push(SseEvent::named(event.name(), data));
    Ok(())
}

impl StreamEncoder for AnthropicEncoder {
    fn new(ctx: EgressContext) -> Self {
        Self {
            ctx,
            started: false,
            done: false,
            next_index: 0,
            open: None,
            tool_blocks: BTreeMap::new(),
            stop_reason: None,
            usage: None,
        }
    }

    fn push(&mut self, chunk: &str) -> Result<Vec<SseEvent>, PluginError> {
        if self.done || chunk.trim() == "[DONE]" {
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_str(chunk)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| PluginError::server("a canonical stream chunk is not a JSON object"))?;
        if let Some(usage) = chunk.get("usage").and_then(usage_from_canonical) {
            self.usage = Some(usage);
        }
        let mut out = Vec::new();
        self.start(str_field(&chunk, "id"), &mut out)?;
        if let Some(choice) = choice_zero(&chunk) {
            if let Some(delta) = choice.get("delta") {
                self.delta(delta, &mut out)?;
            }
            if let Some(reason) = str_field(choice, "finish_reason") {
                self.stop_reason = Some(stop_reason(Some(reason), !self.tool_blocks.is_empty()));
                self.close(&mut out)?;
            }
        }
        Ok(out)
    }

    fn finish(&mut self, usage: Option<Usage>) -> Result<Vec<SseEvent>, PluginError> {
        if self.done {
            return Ok(Vec::new());
        }
        if usage.is_some() {
            self.usage = usage;
        }
        let mut out = Vec::new();
        self.start(None, &mut out)?;
        self.close(&mut out)?;
        let stop_reason = self
            .stop_reason
            .unwrap_or_else(|| stop_reason(None, !self.tool_blocks.is_empty()));
        emit(
            &mut out,
            &Event::MessageDelta {
                delta: StopDelta {
                    stop_reason,
                    stop_sequence: None,
                },
                usage: self.usage.into(),
            },
        )?;
        emit(&mut out, &Event::MessageStop)?;
        self.done = true;
        Ok(out)
    }

    fn abort(&mut self, error: &PluginError) -> Vec<SseEvent> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        vec![SseEvent::named("error", error_body(error, error.status))]
    }
}

impl AnthropicEncoder {
    /// Sends `message_start` once, before anything else.
    fn start(&mut self, id: Option<&str>, out: &mut Vec<SseEvent>) -> Result<(), PluginError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let usage = self
            .usage
            .map(|usage| AnthropicUsage {
                output_tokens: 0,
                ..usage.into()
            })
            .unwrap_or_default();
        let message = StartMessage {
            id: message_id(id, &self.ctx),
            kind: "message",
            role: "assistant",
            model: &self.ctx.requested_model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage,
        };
        emit(out, &Event::MessageStart { message })
    }

    /// Encodes one canonical delta: reasoning, then text, then tool calls.
    fn delta(&mut self, delta: &Value, out: &mut Vec<SseEvent>) -> Result<(), PluginError> {
        let reasoning = str_field(delta, "reasoning_content")
            .or_else(|| str_field(delta, "reasoning"))
            .filter(|text| !text.is_empty());
        if let Some(text) = reasoning {
            self.thinking(text, out)?;
        }
        for block in delta
            .get("thinking_blocks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match str_field(block, "type") {
                Some("thinking") => {
                    // The text normally arrives as `reasoning_content`; take it
                    // from the block only when the delta has none.
                    if reasoning.is_none()
                        && let Some(text) = str_field(block, "thinking").filter(|t| !t.is_empty())
                    {
                        self.thinking(text, out)?;
                    }
                    if let Some(signature) = str_field(block, "signature").filter(|s| !s.is_empty())
                    {
                        self.signature(signature, out)?;
                    }
                }
                Some("redacted_thinking") => {
                    if let Some(data) = str_field(block, "data") {
                        self.close(out)?;
                        let block = Block::RedactedThinking {
                            data: Cow::Borrowed(data),
                        };
                        let index = self.open_block(block, out)?;
                        emit(out, &Event::ContentBlockStop { index })?;
                    }
                }
                _ => {}
            }
        }
        for key in ["content", "refusal"] {
            if let Some(text) = str_field(delta, key).filter(|text| !text.is_empty()) {
                self.text(text, out)?;
            }
        }
        for (position, call) in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            self.tool_call(position, call, out)?;
        }
        Ok(())
    }

    fn thinking(&mut self, text: &str, out: &mut Vec<SseEvent>) -> Result<(), PluginError> {
        let index = match self.open {
            Some(Open::Thinking(index)) => index,
            _ => self.open_thinking(out)?,
        };
        let delta = Delta::Thinking { thinking: text };
        emit(out, &Event::ContentBlockDelta { index, delta })
    }

    /// A signature completes the open thinking block (or an empty one).
    fn signature(&mut self, signature: &str, out: &mut Vec<SseEvent>) -> Result<(), PluginError> {
        let index = match self.open {
            Some(Open::Thinking(index)) => index,
            _ => self.open_thinking(out)?,
        };
        let delta = Delta::Signature { signature };
        emit(out, &Event::ContentBlockDelta { index, delta })?;
        self.close(out)
    }

    fn open_thinking(&mut self, out: &mut Vec<SseEvent>) -> Result<usize, PluginError> {
        self.close(out)?;
        let block = Block::Thinking {
            thinking: Cow::Borrowed(""),
            signature: Cow::Borrowed(""),
        };
        let index = self.open_block(block, out)?;
        self.open = Some(Open::Thinking(index));
        Ok(index)
    }

    fn text(&mut self, text: &str, out: &mut Vec<SseEvent>) -> Result<(), PluginError> {
        let index = match self.open {
            Some(Open::Text(index)) => index,
            _ => {
                self.close(out)?;
                let block = Block::Text {
                    text: Cow::Borrowed(""),
                };
                let index = self.open_block(block, out)?;
                self.open = Some(Open::Text(index));
                index
            }
        };
        emit(
            out,
            &Event::ContentBlockDelta {
                index,
                delta: Delta::Text { text },
            },
        )
    }

    /// A tool-call delta: the first one of a call (by canonical `index`)
    /// opens a `tool_use` block; `arguments` pieces become `input_json_delta`s.
    fn tool_call(
        &mut self,
        position: usize,
        call: &Value,
        out: &mut Vec<SseEvent>,
    ) -> Result<(), PluginError> {
        let call_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let function = call.get("function");
        let arguments = function
            .and_then(|f| str_field(f, "arguments"))
            .unwrap_or("");
        let index = match self.tool_blocks.get(&call_index) {
            Some(&block)
                if self.open
                    == Some(Open::Tool {
                        block,
                        call: call_index,
                    }) =>
            {
                block
            }
            Some(_) if arguments.is_empty() => return Ok(()),
            Some(_) => {
                return Err(PluginError::server(format!(
                    "the arguments of tool call {call_index} continued after another content block \
                     started; Anthropic streams cannot interleave content blocks"
                )));
            }
            None => {
                self.close(out)?;
                let name = function.and_then(|f| str_field(f, "name")).unwrap_or("");
                let id = match str_field(call, "id").filter(|id| !id.is_empty()) {
                    Some(id) => Cow::Borrowed(id),
                    None => Cow::Owned(format!("call_{call_index}_{name}")),
                };
                let block = Block::ToolUse {
                    id,
                    name: Cow::Borrowed(name),
                    input: ToolInput::Empty,
                    extra_content: extra_content(call),
                };
                let block = self.open_block(block, out)?;
                self.open = Some(Open::Tool {
                    block,
                    call: call_index,
                });
                self.tool_blocks.insert(call_index, block);
                block
            }
        };
        if arguments.is_empty() {
            return Ok(());
        }
        emit(
            out,
            &Event::ContentBlockDelta {
                index,
                delta: Delta::InputJson {
                    partial_json: arguments,
                },
            },
        )
    }

    /// Sends `content_block_start` for the next index (the caller records
    /// what is open).
    fn open_block(
        &mut self,
        block: Block<'_>,
        out: &mut Vec<SseEvent>,
    ) -> Result<usize, PluginError> {
        let index = self.next_index;
        self.next_index += 1;
        emit(
            out,
            &Event::ContentBlockStart {
                index,
                content_block: block,
            },
        )?;
        Ok(index)
    }

    /// Closes the open block, if any.
    fn close(&mut self, out: &mut Vec<SseEvent>) -> Result<(), PluginError> {
        match self.open.take() {
            Some(open) => emit(
                out,
                &Event::ContentBlockStop {
                    index: open.index(),
                },
            ),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use orch_plugin_sdk::ErrorClass;
    use serde_json::json;

    use super::*;

    fn encoder() -> AnthropicEncoder {
        AnthropicEncoder::new(EgressContext {
            request_id: "req_9".to_owned(),
            requested_model: "claude-alias".to_owned(),
            received_at_ms: 0,
        })
    }

    fn chunk(delta: Value) -> String {
        json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1, "model": "up",
               "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
    }

    fn finish_chunk(reason: &str) -> String {
        json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1, "model": "up",
               "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
        .to_string()
    }

    /// `(event name, data)` pairs; checks every name matches the data's type
    /// and every data is one line.
    fn events(list: Vec<SseEvent>) -> Vec<(String, Value)> {
        list.into_iter()
            .map(|event| {
                assert!(!event.data.contains('\n'), "{}", event.data);
                let data: Value = serde_json::from_str(&event.data).expect("JSON data");
                let name = event.event.expect("named event");
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    fn names(list: &[(String, Value)]) -> Vec<&str> {
        list.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn text_stream() {
        let mut enc = encoder();
        let mut all = Vec::new();
        for piece in [
            chunk(json!({"role": "assistant", "content": ""})),
            chunk(json!({"content": "Hel"})),
            chunk(json!({"content": "lo"})),
            finish_chunk("stop"),
        ] {
            all.extend(enc.push(&piece).expect("push"));
        }
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 3,
            cached_input_tokens: Some(2),
            ..Usage::default()
        };
        all.extend(enc.finish(Some(usage)).expect("finish"));
        let list = events(all);
        assert_eq!(
            names(&list),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            list[0].1,
            json!({"type": "message_start", "message": {
                "id": "msg_chatcmpl-7", "type": "message", "role": "assistant", "model": "claude-alias",
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": 0}}})
        );
        assert_eq!(
            list[5].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 2, "output_tokens": 3}})
        );
        // Nothing after the end.
        assert!(
            enc.push(&chunk(json!({"content": "late"})))
                .expect("push")
                .is_empty()
        );
        assert!(enc.finish(None).expect("finish").is_empty());
        assert!(enc.abort(&PluginError::server("late")).is_empty());
    }

    #[test]
    fn finish_without_any_chunk_or_finish_reason() {
        let mut enc = encoder();
        let list = events(enc.finish(None).expect("finish"));
        assert_eq!(
            names(&list),
            ["message_start", "message_delta", "message_stop"]
        );
        assert_eq!(list[0].1["message"]["id"], "msg_req_9");
        assert_eq!(
            list[1].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": 0}})
        );
    }

    #[test]
    fn tool_calls_without_finish_chunk_stop_with_tool_use() {
        let mut enc = encoder();
        let mut all = enc
            .push(&chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\":1}"}}]}),
            ))
            .expect("push");
        all.extend(enc.finish(None).expect("finish"));
        let list = events(all);
        assert_eq!(
            names(&list),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            list[1].1["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
        );
        assert_eq!(
            list[2].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"a\":1}"})
        );
        assert_eq!(list[4].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn kinds_switch_blocks_and_signatures_close_thinking() {
        let mut enc = encoder();
        let mut all = Vec::new();
        for piece in [
            chunk(json!({"reasoning_content": "a"})),
            chunk(
                json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig1"}]}),
            ),
            chunk(json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]})),
            chunk(
                json!({"reasoning_content": "b", "thinking_blocks": [{"type": "thinking", "thinking": "b"}]}),
            ),
            chunk(json!({"content": "x"})),
            chunk(json!({"reasoning_content": "c"})),
        ] {
            all.extend(enc.push(&piece).expect("push"));
        }
        all.extend(enc.finish(None).expect("finish"));
        let list = events(all);
        let summary: Vec<String> = list
            .iter()
            .map(|(name, data)| match name.as_str() {
                "content_block_start" => {
                    format!("start {} {}", data["index"], data["content_block"]["type"])
                }
                "content_block_delta" => {
                    format!("delta {} {}", data["index"], data["delta"]["type"])
                }
                "content_block_stop" => format!("stop {}", data["index"]),
                other => other.to_owned(),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "message_start",
                "start 0 \"thinking\"",
                "delta 0 \"thinking_delta\"",
                "delta 0 \"signature_delta\"",
                "stop 0",
                "start 1 \"redacted_thinking\"",
                "stop 1",
                "start 2 \"thinking\"",
                "delta 2 \"thinking_delta\"",
                "stop 2",
                "start 3 \"text\"",
                "delta 3 \"text_delta\"",
                "stop 3",
                "start 4 \"thinking\"",
                "delta 4 \"thinking_delta\"",
                "stop 4",
                "message_delta",
                "message_stop",
            ]
        );
        // The reasoning text was not doubled by the thinking block's copy.
        assert_eq!(list[8].1["delta"]["thinking"], "b");
        assert_eq!(
            list[1].1["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(
            list[5].1["content_block"],
            json!({"type": "redacted_thinking", "data": "opaque"})
        );
    }

    #[test]
    fn interleaved_tool_arguments_are_refused() {
        let mut enc = encoder();
        let call = |index: u64, id: Option<&str>, args: &str| {
            let mut call = json!({"index": index, "function": {"arguments": args}});
            if let Some(id) = id {
                call["id"] = json!(id);
                call["function"]["name"] = json!("f");
            }
            chunk(json!({"tool_calls": [call]}))
        };
        enc.push(&call(0, Some("a"), "")).expect("push");
        enc.push(&call(1, Some("b"), "{")).expect("push");
        // A repeated id without arguments for a finished call is harmless.
        assert!(enc.push(&call(0, None, "")).expect("push").is_empty());
        let err = enc.push(&call(0, None, "{}")).expect_err("interleaved");
        assert_eq!(err.class, ErrorClass::Server);
    }

    #[test]
    fn missing_tool_call_ids_are_generated() {
        let mut enc = encoder();
        let list = events(
            enc.push(&chunk(json!({"tool_calls": [
                {"function": {"name": "a", "arguments": "{}"}},
                {"function": {"name": "b", "arguments": "{}"}}]})))
                .expect("push"),
        );
        let ids: Vec<&Value> = list
            .iter()
            .filter(|(name, _)| name == "content_block_start")
            .map(|(_, data)| &data["content_block"]["id"])
            .collect();
        assert_eq!(ids, [&json!("call_0_a"), &json!("call_1_b")]);
    }

    #[test]
    fn abort_sends_an_error_event_only() {
        let mut enc = encoder();
        enc.push(&chunk(json!({"content": "partial"})))
            .expect("push");
        let list = events(enc.abort(&PluginError::overloaded("Overloaded")));
        assert_eq!(
            list,
            [(
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            )]
        );
        assert!(enc.finish(None).expect("finish").is_empty());
    }

    #[test]
    fn usage_chunks_and_bad_chunks() {
        let mut enc = encoder();
        let usage_chunk = json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}});
        let list = events(enc.push(&usage_chunk.to_string()).expect("push"));
        // Usage known at the start goes into message_start.
        assert_eq!(list[0].1["message"]["usage"]["input_tokens"], 30);
        assert_eq!(list[0].1["message"]["usage"]["output_tokens"], 0);
        let list = events(enc.finish(None).expect("finish"));
        assert_eq!(list[0].1["usage"]["output_tokens"], 4);
        assert_eq!(list[0].1["usage"]["input_tokens"], 30);

        let mut enc = encoder();
        assert!(enc.push("[DONE]").expect("ignored").is_empty());
        for bad in ["nope", "[1]"] {
            assert_eq!(enc.push(bad).expect_err(bad).class, ErrorClass::Server);
        }
    }

    #[test]
    fn other_choices_are_ignored() {
        let mut enc = encoder();
        let two = json!({"choices": [
            {"index": 1, "delta": {"content": "second"}},
            {"index": 0, "delta": {"content": "first"}}]});
        let list = events(enc.push(&two.to_string()).expect("push"));
        assert_eq!(list[2].1["delta"]["text"], "first");
        assert_eq!(list.len(), 3);
        let only_second = json!({"choices": [{"index": 1, "delta": {"content": "more"}}]});
        assert!(enc.push(&only_second.to_string()).expect("push").is_empty());
    }
}
