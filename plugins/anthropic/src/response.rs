//! Parsing successful (2xx) non-streaming answers.
//!
//! * canonical chat: the Anthropic `message` becomes a `chat.completion`
//!   (text, tool calls, thinking blocks, finish reason and usage mapped as
//!   `docs/canonical.md` says);
//! * native chat: the body is kept byte for byte except `model`, which
//!   becomes the requested model;
//! * count-tokens (either form): the body `{"input_tokens": N}` is returned
//!   as it came, with usage `input_tokens = N`.
//!
//! An error object in a 2xx body is returned as a classified error.

use orch_plugin_sdk::{
    Operation, ParsedResponse, PayloadForm, PluginError, RequestContext, Usage, json::RawObject,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::classify;
use crate::request::JSON_TOOL_NAME;
use crate::usage::AnthropicUsage;

/// Parses a successful answer in the form and for the operation of `ctx`.
pub fn parse(
    ctx: &RequestContext,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<ParsedResponse, PluginError> {
    let malformed = || {
        PluginError::server("upstream returned a response body that is not a JSON object")
            .with_status(status)
    };
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let mut object = RawObject::parse(text).map_err(|_| malformed())?;
    if object.get("type") == Some(r#""error""#) || object.has_non_null("error") {
        return Err(classify(status, headers, body));
    }
    if ctx.operation == Operation::CountTokens {
        let input_tokens = match object.value("input_tokens") {
            Some(Ok(Value::Number(n))) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| {
            PluginError::server("upstream token count has no `input_tokens`").with_status(status)
        })?;
        return Ok(ParsedResponse {
            body: object.to_json(),
            usage: Some(Usage {
                input_tokens: u32::try_from(input_tokens).unwrap_or(u32::MAX),
                ..Usage::default()
            }),
        });
    }
    match ctx.form {
        PayloadForm::Native => {
            object.set_string("model", &ctx.requested_model);
            let usage = match object.value("usage") {
                Some(Ok(usage)) => AnthropicUsage::from_value(&usage).to_usage(),
                _ => None,
            };
            Ok(ParsedResponse {
                body: object.to_json(),
                usage,
            })
        }
        PayloadForm::Canonical => {
            let message: Message = serde_json::from_str(text).map_err(|err| {
                PluginError::server(format!("upstream returned a malformed message: {err}"))
                    .with_status(status)
            })?;
            let (completion, usage) = to_completion(ctx, &message).map_err(|err| {
                PluginError::server(format!("upstream returned a malformed message: {err}"))
                    .with_status(status)
            })?;
            Ok(ParsedResponse {
                body: completion.to_string(),
                usage,
            })
        }
    }
}

/// The fields of an Anthropic `message` this adapter reads.
#[derive(Debug, Deserialize)]
struct Message {
    id: Option<String>,
    content: Option<Vec<Box<RawValue>>>,
    stop_reason: Option<String>,
    usage: Option<Value>,
}

/// A content block's `type`.
#[derive(Debug, Deserialize)]
pub(crate) struct BlockType {
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

#[derive(Debug, Deserialize)]
struct TextBlock {
    text: String,
}

#[derive(Debug, Deserialize)]
struct ToolUseBlock {
    id: String,
    name: String,
    input: Box<RawValue>,
}

#[derive(Debug, Deserialize)]
struct ThinkingBlock {
    thinking: String,
    signature: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RedactedThinkingBlock {
    data: String,
}

/// The canonical `chat.completion` for an Anthropic message, and its usage.
///
/// * `text` blocks are concatenated into `content` (`null` when none);
/// * `tool_use` blocks become `tool_calls` (id verbatim, `arguments` the
///   compact JSON text of `input`), except the JSON-mode tool, whose input
///   becomes `content` (finish reason `stop`);
/// * `thinking` / `redacted_thinking` blocks become `thinking_blocks`, their
///   text `reasoning_content`;
/// * other blocks (server tools, ...) are skipped.
fn to_completion(
    ctx: &RequestContext,
    message: &Message,
) -> Result<(Value, Option<Usage>), serde_json::Error> {
    let mut text: Option<String> = None;
    let mut json_answer: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    for block in message.content.iter().flatten() {
        let raw = block.get();
        match serde_json::from_str::<BlockType>(raw)?.kind.as_str() {
            "text" => {
                let block: TextBlock = serde_json::from_str(raw)?;
                text.get_or_insert_default().push_str(&block.text);
            }
            "tool_use" => {
                let block: ToolUseBlock = serde_json::from_str(raw)?;
                let arguments = compact_json(block.input.get());
                if block.name == JSON_TOOL_NAME {
                    json_answer.get_or_insert_default().push_str(&arguments);
                } else {
                    tool_calls.push(json!({
                        "id": block.id,
                        "type": "function",
                        "function": {"name": block.name, "arguments": arguments},
                    }));
                }
            }
            "thinking" => {
                let block: ThinkingBlock = serde_json::from_str(raw)?;
                reasoning.get_or_insert_default().push_str(&block.thinking);
                thinking_blocks.push(json!({
                    "type": "thinking",
                    "thinking": block.thinking,
                    "signature": block.signature.unwrap_or_default(),
                }));
            }
            "redacted_thinking" => {
                let block: RedactedThinkingBlock = serde_json::from_str(raw)?;
                thinking_blocks.push(json!({"type": "redacted_thinking", "data": block.data}));
            }
            _ => {}
        }
    }
    let has_tool_calls = !tool_calls.is_empty();
    let mut reply = json!({
        "role": "assistant",
        // The JSON-mode answer must parse as JSON: text beside it is dropped.
        "content": json_answer.or(text),
    });
    if has_tool_calls {
        reply["tool_calls"] = Value::Array(tool_calls);
    }
    if let Some(reasoning) = reasoning {
        reply["reasoning_content"] = Value::String(reasoning);
    }
    if !thinking_blocks.is_empty() {
        reply["thinking_blocks"] = Value::Array(thinking_blocks);
    }
    let usage = message
        .usage
        .as_ref()
        .map(AnthropicUsage::from_value)
        .filter(|usage| usage.is_known());
    let mut completion = json!({
        "id": message.id.clone().unwrap_or_else(|| format!("msg_{}", ctx.request_id)),
        "object": "chat.completion",
        "created": ctx.received_at_ms / 1000,
        "model": ctx.requested_model,
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": null,
            "finish_reason": finish_reason(message.stop_reason.as_deref(), has_tool_calls),
        }],
    });
    if let Some(usage) = &usage {
        completion["usage"] = usage.to_canonical();
    }
    Ok((completion, usage.and_then(|u| u.to_usage())))
}

/// The canonical finish reason of an Anthropic `stop_reason`.
/// `has_tool_calls` is false when the only tool used was the JSON-mode one.
pub(crate) fn finish_reason(stop_reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        Some("tool_use") | None if has_tool_calls => "tool_calls",
        // end_turn, stop_sequence, pause_turn, a JSON-mode tool_use, unknown
        _ => "stop",
    }
}

/// Valid JSON text without the whitespace between tokens.
pub(crate) fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}
