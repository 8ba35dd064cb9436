//! Anthropic SSE streams: `message_start`, content blocks with their
//! deltas, `ping`, `message_delta`, `message_stop`.
//!
//! Every event is `event: <type>\ndata: <json>\n\n`. Faults count these
//! events from `message_start` on.

use std::time::Duration;

use serde_json::{Value, json};

use super::error::AnthropicError;
use super::reply::{Body, EXTENSION_FIELD, Reply, extension};
use crate::chat::reply::split_even;
use crate::stream::{ScriptBuilder, SseScript, StreamOptions};

/// Thinking deltas per thinking block.
const THINKING_PIECES: usize = 2;

/// Renders `reply` as an Anthropic event stream.
pub(crate) fn render(reply: &Reply<'_>, options: StreamOptions) -> serde_json::Result<SseScript> {
    let mut out = ScriptBuilder::with_capacity(1024 + 256 * reply.chunks, reply.chunks + 12);
    let mut start_usage = json!(reply.usage);
    start_usage["output_tokens"] = json!(1);
    out.named(
        options.ttft,
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": reply.id, "type": "message", "role": "assistant", "content": [],
            "model": reply.model, "stop_reason": null, "stop_sequence": null,
            "usage": start_usage, EXTENSION_FIELD: extension()}}),
    )?;

    if options.error_event {
        let error = AnthropicError::for_status(overloaded());
        out.named(
            options.chunk_delay,
            "error",
            &json!({"type": "error", "error": error.object()}),
        )?;
        return Ok(out.finish(false));
    }

    let mut blocks = Blocks {
        out: &mut out,
        index: 0,
        delay: options.chunk_delay,
    };
    if let Some(thinking) = &reply.thinking {
        blocks.start(json!({"type": "thinking", "thinking": "", "signature": ""}))?;
        if !thinking.text.is_empty() {
            for piece in split_even(&thinking.text, THINKING_PIECES) {
                blocks.delta(json!({"type": "thinking_delta", "thinking": piece}))?;
            }
        }
        blocks.delta(json!({"type": "signature_delta", "signature": thinking.signature}))?;
        blocks.stop()?;
    }
    match &reply.body {
        Body::Text { text, pieces } => {
            blocks.start(json!({"type": "text", "text": ""}))?;
            for piece in split_even(text, *pieces) {
                blocks.delta(json!({"type": "text_delta", "text": piece}))?;
            }
            blocks.stop()?;
        }
        Body::ToolUses(uses) => {
            for tool in uses {
                blocks.start(
                    json!({"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}),
                )?;
                let input = tool.input.to_string();
                let pieces = reply.chunks.min(input.chars().count()).max(3);
                for piece in split_even(&input, pieces) {
                    blocks.delta(json!({"type": "input_json_delta", "partial_json": piece}))?;
                }
                blocks.stop()?;
            }
        }
    }

    let usage = &reply.usage;
    out.named(
        Duration::ZERO,
        "message_delta",
        &json!({"type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": null},
            "usage": {
                "input_tokens": usage.input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "output_tokens": usage.output_tokens},
            EXTENSION_FIELD: extension()}),
    )?;
    out.named(
        Duration::ZERO,
        "message_stop",
        &json!({"type": "message_stop"}),
    )?;
    Ok(out.finish(true))
}

fn overloaded() -> http::StatusCode {
    http::StatusCode::from_u16(super::error::OVERLOADED)
        .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE)
}

/// Writes content blocks with consecutive indexes; a `ping` follows the
/// first block start, as in Anthropic's streams.
struct Blocks<'o> {
    out: &'o mut ScriptBuilder,
    index: usize,
    delay: Duration,
}

impl Blocks<'_> {
    fn start(&mut self, block: Value) -> serde_json::Result<()> {
        self.out.named(
            Duration::ZERO,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.index, "content_block": block}),
        )?;
        if self.index == 0 {
            self.out
                .named(Duration::ZERO, "ping", &json!({"type": "ping"}))?;
        }
        Ok(())
    }

    fn delta(&mut self, delta: Value) -> serde_json::Result<()> {
        self.out.named(
            self.delay,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        )
    }

    fn stop(&mut self) -> serde_json::Result<()> {
        self.out.named(
            Duration::ZERO,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": self.index}),
        )?;
        self.index += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::anthropic::request::{Mode, parse};
    use crate::chat::reply::IdGenerator;
    use crate::prompt_cache::PromptCache;

    const OPTIONS: StreamOptions = StreamOptions {
        ttft: Duration::ZERO,
        chunk_delay: Duration::ZERO,
        include_usage: false,
        error_event: false,
    };

    /// (event name, data) pairs.
    fn events(body: &Value, chunks: usize, options: StreamOptions) -> Vec<(String, Value)> {
        let bytes = serde_json::to_vec(body).unwrap();
        let request = parse(&bytes, Mode::Messages).unwrap();
        let reply = Reply::new(
            &request,
            chunks,
            &IdGenerator::default(),
            &PromptCache::default(),
        );
        let script = render(&reply, options).unwrap();
        let text = String::from_utf8(script.bytes().to_vec()).unwrap();
        text.split_terminator("\n\n")
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn text_stream_order() {
        let body = json!({"model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hi"}]});
        let events = events(&body, 3, OPTIONS);
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &events {
            assert_eq!(data["type"], name.as_str());
        }
        let text: String = events[3..6]
            .iter()
            .map(|(_, data)| data["delta"]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "Fake reply to: Hi");
        assert_eq!(events[7].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(events[7].1["usage"]["output_tokens"], 3);
        assert_eq!(events[0].1["message"][EXTENSION_FIELD], json!({"ok": true}));
        assert_eq!(events[7].1[EXTENSION_FIELD], json!({"ok": true}));
    }

    #[test]
    fn error_event() {
        let body = json!({"model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hi"}]});
        let options = StreamOptions {
            error_event: true,
            ..OPTIONS
        };
        let events = events(&body, 3, options);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].0, "error");
        assert_eq!(events[1].1["error"]["type"], "overloaded_error");
    }
}
