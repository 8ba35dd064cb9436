//! Synthesis of the deterministic Anthropic reply and its `message` body.

use serde::Serialize;
use serde_json::{Value, json};

use super::request::{Breakpoint, MessagesRequest};
use crate::chat::reply::IdGenerator;
use crate::chat::tool_args::example_input;
use crate::prompt_cache::PromptCache;
use crate::signature::thinking_signature;
use crate::synth::{self, Intent};

/// The unknown field every Anthropic `message` (and the `message_start`
/// and `message_delta` stream events) carries, so tests can check that
/// unknown response fields survive a gateway.
pub(crate) const EXTENSION_FIELD: &str = "x_fake_extension";

/// The value of [`EXTENSION_FIELD`].
pub(crate) fn extension() -> Value {
    json!({"ok": true})
}

/// A thinking block of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Thinking {
    pub(crate) text: String,
    pub(crate) signature: String,
}

/// A `tool_use` block of a reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolUse {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) input: Value,
}

/// What the reply says after its thinking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// Text, streamed in `pieces` deltas.
    Text {
        text: String,
        pieces: usize,
    },
    ToolUses(Vec<ToolUse>),
}

/// Anthropic's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    /// Input tokens after the last cache breakpoint (not cached, not written).
    pub(crate) input_tokens: u64,
    pub(crate) cache_creation_input_tokens: u64,
    pub(crate) cache_read_input_tokens: u64,
    pub(crate) cache_creation: CacheCreation,
    pub(crate) output_tokens: u64,
    pub(crate) service_tier: &'static str,
}

/// Cache writes by time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct CacheCreation {
    pub(crate) ephemeral_5m_input_tokens: u64,
    pub(crate) ephemeral_1h_input_tokens: u64,
}

/// A complete assistant reply, rendered as JSON or as a stream.
#[derive(Debug)]
pub(crate) struct Reply<'r> {
    pub(crate) id: String,
    pub(crate) model: &'r str,
    pub(crate) thinking: Option<Thinking>,
    pub(crate) body: Body,
    /// `end_turn`, `tool_use` or `max_tokens`.
    pub(crate) stop_reason: &'static str,
    pub(crate) usage: Usage,
    /// Stream granularity of tool inputs.
    pub(crate) chunks: usize,
}

impl<'r> Reply<'r> {
    /// The reply to `request`: a thinking block when thinking is enabled,
    /// then text of `chunks` pieces (cut at `max_tokens`) or tool uses.
    /// Cache usage is looked up in (and recorded into) `cache`.
    pub(crate) fn new(
        request: &'r MessagesRequest,
        chunks: usize,
        ids: &IdGenerator,
        cache: &PromptCache,
    ) -> Self {
        let chunks = chunks.max(1);
        let thought = synth::thinking(&request.thinking_subject);
        let thinking_tokens = if request.thinking {
            synth::text_tokens(thought.chars().count())
        } else {
            0
        };
        let thinking = request.thinking.then(|| {
            // `display: "omitted"` hides the text but keeps a valid signature.
            let text = if request.thinking_omitted {
                String::new()
            } else {
                thought
            };
            Thinking {
                signature: thinking_signature(&text),
                text,
            }
        });
        let (body, stop_reason, body_tokens) = match &request.intent {
            Intent::Text { text, exact } => {
                let (text, pieces) = synth::text_and_pieces(text, *exact, chunks);
                let available = usize::try_from(request.max_tokens.saturating_sub(thinking_tokens))
                    .unwrap_or(usize::MAX)
                    .max(1);
                if pieces > available {
                    let text = synth::truncated(&text, pieces, available);
                    (
                        Body::Text {
                            text,
                            pieces: available,
                        },
                        "max_tokens",
                        available,
                    )
                } else {
                    (Body::Text { text, pieces }, "end_turn", pieces)
                }
            }
            Intent::CallTools(tools) => {
                let uses = tools
                    .iter()
                    .map(|tool| ToolUse {
                        id: ids.next("toolu_"),
                        name: tool.name.clone(),
                        input: example_input(tool.schema.as_ref().unwrap_or(&Value::Null)),
                    })
                    .collect();
                (Body::ToolUses(uses), "tool_use", chunks)
            }
        };
        let output_tokens = u64::try_from(body_tokens).unwrap_or(u64::MAX) + thinking_tokens;
        Self {
            id: ids.next("msg_"),
            model: &request.model,
            thinking,
            body,
            stop_reason,
            usage: usage(request, output_tokens, cache),
            chunks,
        }
    }

    /// The content blocks, in order.
    pub(crate) fn content(&self) -> Vec<Value> {
        let mut blocks = Vec::with_capacity(3);
        if let Some(thinking) = &self.thinking {
            blocks.push(json!({"type": "thinking", "thinking": thinking.text,
                "signature": thinking.signature}));
        }
        match &self.body {
            Body::Text { text, .. } => blocks.push(json!({"type": "text", "text": text})),
            Body::ToolUses(uses) => blocks.extend(uses.iter().map(|tool| {
                json!({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input})
            })),
        }
        blocks
    }

    /// The `message` JSON document.
    pub(crate) fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content(),
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage,
            EXTENSION_FIELD: extension(),
        }))
    }
}

/// Token usage: the prompt split into cache reads, cache writes and the
/// rest, by the request's `cache_control` breakpoints.
///
/// The longest breakpoint prefix seen before (same model, same content) is
/// read from the cache; the rest up to the last breakpoint is written.
fn usage(request: &MessagesRequest, output_tokens: u64, cache: &PromptCache) -> Usage {
    let total = synth::prompt_tokens(request.prompt_chars);
    let tokens = |breakpoint: &Breakpoint| synth::text_tokens(breakpoint.chars).min(total);
    let keys: Vec<u64> = request.breakpoints.iter().map(|b| b.key).collect();
    let hit = cache.longest_seen(&keys);
    let read = hit
        .and_then(|i| request.breakpoints.get(i))
        .map_or(0, tokens);
    let written = request
        .breakpoints
        .last()
        .map_or(0, |last| tokens(last).saturating_sub(read));
    let one_hour = request.breakpoints.last().is_some_and(|last| last.one_hour);
    Usage {
        input_tokens: total - read - written,
        cache_creation_input_tokens: written,
        cache_read_input_tokens: read,
        cache_creation: CacheCreation {
            ephemeral_5m_input_tokens: if one_hour { 0 } else { written },
            ephemeral_1h_input_tokens: if one_hour { written } else { 0 },
        },
        output_tokens,
        service_tier: "standard",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::anthropic::request::{Mode, parse};

    fn reply_json(body: &Value, chunks: usize, cache: &PromptCache) -> Value {
        let bytes = serde_json::to_vec(body).unwrap();
        let request = parse(&bytes, Mode::Messages).unwrap();
        let reply = Reply::new(&request, chunks, &IdGenerator::default(), cache);
        serde_json::from_slice(&reply.to_json().unwrap()).unwrap()
    }

    #[test]
    fn text_reply_shape() {
        let body = json!({"model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hello"}]});
        let json = reply_json(&body, 30, &PromptCache::default());
        assert!(json["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(json["type"], "message");
        assert_eq!(json["role"], "assistant");
        assert_eq!(json["stop_reason"], "end_turn");
        let text = json["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("Fake reply to: Hello"));
        assert_eq!(text.chars().count(), 30);
        assert_eq!(json["usage"]["input_tokens"], 2);
        assert_eq!(json["usage"]["output_tokens"], 30);
        assert_eq!(json["usage"]["cache_read_input_tokens"], 0);
        assert_eq!(json[EXTENSION_FIELD], json!({"ok": true}));
    }

    #[test]
    fn max_tokens_cuts_the_text() {
        let body = json!({"model": "m", "max_tokens": 3,
            "messages": [{"role": "user", "content": "Hello"}]});
        let json = reply_json(&body, 8, &PromptCache::default());
        assert_eq!(json["stop_reason"], "max_tokens");
        assert_eq!(json["usage"]["output_tokens"], 3);
        assert_eq!(json["content"][0]["text"], "Fake repl"); // 3 of 8 pieces
    }

    #[test]
    fn thinking_then_tool_uses() {
        let body = json!({"model": "m", "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "messages": [{"role": "user", "content": "Weather?"}]});
        let json = reply_json(&body, 8, &PromptCache::default());
        let content = json["content"].as_array().unwrap();
        assert_eq!(content[0]["type"], "thinking");
        let thinking = content[0]["thinking"].as_str().unwrap();
        assert_eq!(content[0]["signature"], thinking_signature(thinking));
        assert_eq!(content[1]["type"], "tool_use");
        assert!(content[1]["id"].as_str().unwrap().starts_with("toolu_"));
        assert_eq!(content[1]["input"], json!({"city": "example"}));
        assert_eq!(json["stop_reason"], "tool_use");
    }

    #[test]
    fn cache_is_written_then_read() {
        let cache = PromptCache::default();
        let body = json!({"model": "m", "max_tokens": 100,
            "system": [{"type": "text", "text": "x".repeat(400),
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Hello"}]});
        let first = reply_json(&body, 8, &cache);
        assert_eq!(first["usage"]["cache_creation_input_tokens"], 100);
        assert_eq!(
            first["usage"]["cache_creation"]["ephemeral_5m_input_tokens"],
            100
        );
        assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
        assert_eq!(first["usage"]["input_tokens"], 2);
        let second = reply_json(&body, 8, &cache);
        assert_eq!(second["usage"]["cache_creation_input_tokens"], 0);
        assert_eq!(second["usage"]["cache_read_input_tokens"], 100);
        assert_eq!(second["usage"]["input_tokens"], 2);
    }
}
