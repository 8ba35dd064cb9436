//! Decoding Anthropic's server-sent events.
//!
//! The upstream sends `message_start`, then per content block
//! `content_block_start`, `content_block_delta`s and `content_block_stop`,
//! then `message_delta` (stop reason, cumulative usage) and `message_stop`;
//! `ping`s anywhere, an `error` event when it fails mid-stream.
//!
//! **Canonical form** (`chat.completion.chunk`s, no event names):
//!
//! | upstream | chunk | kind |
//! |---|---|---|
//! | `message_start` | `delta: {role: "assistant", content: ""}` | meta |
//! | `text_delta` | `delta.content` | content |
//! | `tool_use` block start | `delta.tool_calls: [{index, id, type, function: {name, arguments: ""}}]`, `index` = the call's ordinal among the message's tool calls | content |
//! | `input_json_delta` | `delta.tool_calls: [{index, function: {arguments}}]` | content |
//! | `thinking_delta` | `delta.reasoning_content` | content |
//! | `signature_delta` | `delta.thinking_blocks: [{type: "thinking", thinking: "", signature}]` | content |
//! | `redacted_thinking` block start | `delta.thinking_blocks: [{type: "redacted_thinking", data}]` | content |
//! | `message_delta` with `stop_reason` | `delta: {}`, `finish_reason` | meta |
//! | `message_stop` | a `choices: []` chunk with `usage`, then done | usage |
//!
//! Input JSON of the JSON-mode tool ([`JSON_TOOL_NAME`]) streams as
//! `delta.content`. Usage is reported (as [`StreamItem::Usage`]) after
//! `message_start` and `message_delta`.
//!
//! **Native form**: every event is passed on with its name, only
//! `message.model` of `message_start` rewritten. `content_block_delta` and
//! every `content_block_start` but an empty text block's are `content`, the
//! rest `meta`; `message_stop` also ends the stream.

use std::collections::BTreeMap;

use orch_plugin_sdk::{
    ChunkKind, Frame, Headers, PayloadForm, PluginError, RequestContext, StreamChunk,
    StreamDecoder, StreamItem, json::RawObject,
};
use serde_json::{Value, json};

use crate::error::stream_error;
use crate::request::JSON_TOOL_NAME;
use crate::response::finish_reason;
use crate::usage::AnthropicUsage;

/// What a content block (by its upstream `index`) turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// A tool call with this canonical `index`.
    Tool(u32),
    /// The JSON-mode tool; `true` once some of its input was sent.
    Json(bool),
    /// Text, thinking or anything else.
    Other,
}

/// Decodes one Anthropic stream (see the module documentation).
#[derive(Debug)]
pub struct AnthropicDecoder {
    form: PayloadForm,
    requested_model: String,
    created: u64,
    status: u16,
    id: String,
    blocks: BTreeMap<u64, Block>,
    tool_calls: u32,
    finished: bool,
    usage: AnthropicUsage,
    done: bool,
}

impl StreamDecoder for AnthropicDecoder {
    fn new(ctx: RequestContext, status: u16, _headers: Headers) -> Self {
        Self {
            form: ctx.form,
            created: ctx.received_at_ms / 1000,
            id: format!("msg_{}", ctx.request_id),
            requested_model: ctx.requested_model,
            status,
            blocks: BTreeMap::new(),
            tool_calls: 0,
            finished: false,
            usage: AnthropicUsage::default(),
            done: false,
        }
    }

    fn push(&mut self, frame: Frame) -> Result<Vec<StreamItem>, PluginError> {
        if self.done {
            return Ok(Vec::new());
        }
        let data = frame.text()?.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let malformed = || {
            PluginError::server("upstream sent a stream event that is not a JSON object")
                .with_status(self.status)
        };
        let object = RawObject::parse(data).map_err(|_| malformed())?;
        let kind = match object.value("type") {
            Some(Ok(Value::String(kind))) => kind,
            _ => frame.event.clone().unwrap_or_default(),
        };
        if kind == "error" || frame.event.as_deref() == Some("error") {
            return Err(stream_error(self.status, data.as_bytes()));
        }
        match self.form {
            PayloadForm::Native => self.native(frame.event.clone(), &kind, object),
            PayloadForm::Canonical => {
                let event: Value = serde_json::from_str(data).map_err(|_| malformed())?;
                Ok(self.canonical(&kind, &event))
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<StreamItem>, PluginError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(
                PluginError::server("upstream stream ended early (no message_stop)")
                    .with_status(self.status),
            )
        }
    }
}

impl AnthropicDecoder {
    /// Merges a `usage` object into the totals and reports them.
    fn report_usage(&mut self, usage: Option<&Value>, items: &mut Vec<StreamItem>) {
        if let Some(usage) = usage.filter(|u| u.is_object()) {
            self.usage.merge(&AnthropicUsage::from_value(usage));
            if let Some(usage) = self.usage.to_usage() {
                items.push(StreamItem::Usage(usage));
            }
        }
    }

    // ------------------------------------------------------------ native

    fn native(
        &mut self,
        event: Option<String>,
        kind: &str,
        mut object: RawObject<'_>,
    ) -> Result<Vec<StreamItem>, PluginError> {
        let mut items = Vec::with_capacity(3);
        let chunk_kind = match kind {
            "message_start" => {
                if let Some(message) = object.get("message").map(str::to_owned) {
                    let mut message = RawObject::parse(&message).map_err(|_| {
                        PluginError::server("upstream `message_start` has no message object")
                            .with_status(self.status)
                    })?;
                    message.set_string("model", &self.requested_model);
                    let usage = message.value("usage").and_then(Result::ok);
                    self.report_usage(usage.as_ref(), &mut items);
                    object.set_raw("message", message.to_json());
                }
                ChunkKind::Meta
            }
            "content_block_start" => {
                let block = object.value("content_block").and_then(Result::ok);
                let empty_text = block.as_ref().is_some_and(|b| {
                    b.get("type").and_then(Value::as_str) == Some("text")
                        && b.get("text")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                });
                if empty_text {
                    ChunkKind::Meta
                } else {
                    ChunkKind::Content
                }
            }
            "content_block_delta" => ChunkKind::Content,
            "message_delta" => {
                let usage = object.value("usage").and_then(Result::ok);
                self.report_usage(usage.as_ref(), &mut items);
                ChunkKind::Meta
            }
            _ => ChunkKind::Meta,
        };
        let name = event.unwrap_or_else(|| kind.to_owned());
        items.push(StreamItem::Chunk(
            StreamChunk::new(chunk_kind, object.to_json()).with_event(name),
        ));
        if kind == "message_stop" {
            self.done = true;
            items.push(StreamItem::Done);
        }
        Ok(items)
    }

    // --------------------------------------------------------- canonical

    /// A `chat.completion.chunk` with one choice.
    fn chunk(&self, kind: ChunkKind, delta: Value, finish_reason: Option<&str>) -> StreamItem {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.requested_model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        StreamItem::Chunk(StreamChunk::new(kind, chunk.to_string()))
    }

    fn content(&self, delta: Value) -> StreamItem {
        self.chunk(ChunkKind::Content, delta, None)
    }

    fn canonical(&mut self, kind: &str, event: &Value) -> Vec<StreamItem> {
        let mut items = Vec::with_capacity(2);
        let str_at = |value: &Value, key: &str| -> String {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                let message = event.get("message");
                if let Some(id) = message.and_then(|m| m.get("id")).and_then(Value::as_str) {
                    id.clone_into(&mut self.id);
                }
                self.report_usage(message.and_then(|m| m.get("usage")), &mut items);
                items.push(self.chunk(
                    ChunkKind::Meta,
                    json!({"role": "assistant", "content": ""}),
                    None,
                ));
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                let state = match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") if str_at(block, "name") == JSON_TOOL_NAME => {
                        Block::Json(false)
                    }
                    Some("tool_use") => {
                        let ordinal = self.tool_calls;
                        self.tool_calls += 1;
                        items.push(self.content(json!({"tool_calls": [{
                            "index": ordinal,
                            "id": str_at(block, "id"),
                            "type": "function",
                            "function": {"name": str_at(block, "name"), "arguments": ""},
                        }]})));
                        Block::Tool(ordinal)
                    }
                    Some("text") => {
                        let text = str_at(block, "text");
                        if !text.is_empty() {
                            items.push(self.content(json!({"content": text})));
                        }
                        Block::Other
                    }
                    Some("thinking") => {
                        let thinking = str_at(block, "thinking");
                        if !thinking.is_empty() {
                            items.push(self.content(json!({"reasoning_content": thinking})));
                        }
                        Block::Other
                    }
                    Some("redacted_thinking") => {
                        items.push(self.content(json!({"thinking_blocks": [
                            {"type": "redacted_thinking", "data": str_at(block, "data")},
                        ]})));
                        Block::Other
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, state);
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let block = self.blocks.get(&index).copied().unwrap_or(Block::Other);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = str_at(delta, "text");
                        if !text.is_empty() {
                            items.push(self.content(json!({"content": text})));
                        }
                    }
                    Some("input_json_delta") => {
                        let piece = str_at(delta, "partial_json");
                        match block {
                            _ if piece.is_empty() => {}
                            Block::Tool(ordinal) => {
                                items.push(self.content(json!({"tool_calls": [
                                    {"index": ordinal, "function": {"arguments": piece}},
                                ]})));
                            }
                            Block::Json(_) => {
                                self.blocks.insert(index, Block::Json(true));
                                items.push(self.content(json!({"content": piece})));
                            }
                            Block::Other => {}
                        }
                    }
                    Some("thinking_delta") => {
                        let thinking = str_at(delta, "thinking");
                        if !thinking.is_empty() {
                            items.push(self.content(json!({"reasoning_content": thinking})));
                        }
                    }
                    Some("signature_delta") => {
                        items.push(self.content(json!({"thinking_blocks": [
                            {"type": "thinking", "thinking": "", "signature": str_at(delta, "signature")},
                        ]})));
                    }
                    _ => {}
                }
            }
            // A JSON-mode answer with an empty input is still an answer.
            "content_block_stop" if self.blocks.get(&index) == Some(&Block::Json(false)) => {
                self.blocks.insert(index, Block::Json(true));
                items.push(self.content(json!({"content": "{}"})));
            }
            "message_delta" => {
                self.report_usage(event.get("usage"), &mut items);
                let stop_reason = event
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if let Some(stop_reason) = stop_reason {
                    items.push(self.finish_chunk(Some(stop_reason)));
                }
            }
            "message_stop" => {
                if !self.finished {
                    items.push(self.finish_chunk(None));
                }
                if self.usage.is_known() {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.requested_model,
                        "choices": [],
                        "usage": self.usage.to_canonical(),
                    });
                    items.push(StreamItem::Chunk(StreamChunk::new(
                        ChunkKind::Usage,
                        chunk.to_string(),
                    )));
                }
                self.done = true;
                items.push(StreamItem::Done);
            }
            // content_block_stop, ping and events this adapter does not know
            _ => {}
        }
        items
    }

    fn finish_chunk(&mut self, stop_reason: Option<&str>) -> StreamItem {
        self.finished = true;
        let reason = finish_reason(stop_reason, self.tool_calls > 0);
        self.chunk(ChunkKind::Meta, json!({}), Some(reason))
    }
}
