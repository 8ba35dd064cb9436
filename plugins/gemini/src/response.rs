//! Gemini `GenerateContentResponse` → canonical `chat.completion`, plus the
//! pieces the stream decoder shares: the walk over a candidate's parts,
//! finish reasons and usage.

use orch_plugin_sdk::{PluginError, RequestContext, Usage, log};

use crate::canonical::{
    ChatCompletion, Choice, ExtraContent, FunctionCall, Message, ThinkingBlock, ToolCall,
};
use crate::wire::{GenerateContentResponse, ResponsePart, UsageMetadata};

/// What one part of a candidate means, in order of appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Answer text.
    Text(String),
    /// Thought (summary) text: `reasoning_content`.
    Reasoning(String),
    /// A thought signature that closes the reasoning so far (it came on a
    /// thought or text part).
    Signature(String),
    /// A whole function call.
    Call(ToolCall),
}

/// Walks the parts of one candidate, numbering its function calls (the
/// numbering continues across the events of a stream).
#[derive(Debug, Default)]
pub(crate) struct PartWalker {
    calls: u32,
}

impl PartWalker {
    /// How many function calls the candidate made so far.
    pub(crate) fn calls(&self) -> u32 {
        self.calls
    }

    /// The pieces of `parts`, in order. Parts the canonical form cannot
    /// carry (inline data, code execution) are logged and skipped.
    pub(crate) fn walk(&mut self, parts: &[ResponsePart]) -> Vec<Piece> {
        let mut pieces = Vec::with_capacity(parts.len());
        for part in parts {
            let signature = part
                .thought_signature
                .as_ref()
                .filter(|s| !s.is_empty())
                .cloned();
            if let Some(call) = &part.function_call {
                pieces.push(Piece::Call(self.tool_call(call, signature)));
                continue;
            }
            let text = part.text.as_deref().unwrap_or_default();
            if part.text.is_none() && part.has_output() {
                log::warn!("gemini: skipped a response part the canonical form cannot carry");
            }
            if !text.is_empty() {
                pieces.push(if part.thought == Some(true) {
                    Piece::Reasoning(text.to_owned())
                } else {
                    Piece::Text(text.to_owned())
                });
            }
            if let Some(signature) = signature {
                pieces.push(Piece::Signature(signature));
            }
        }
        pieces
    }

    fn tool_call(
        &mut self,
        call: &crate::wire::ResponseFunctionCall,
        signature: Option<String>,
    ) -> ToolCall {
        let index = self.calls;
        self.calls += 1;
        let id = call
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{index}_{}", call.name));
        let arguments = call
            .args
            .as_ref()
            .filter(|args| args.is_object())
            .map_or_else(|| "{}".to_owned(), crate::ordered::Json::to_text);
        ToolCall {
            index: Some(index),
            id,
            kind: "function",
            function: FunctionCall {
                name: call.name.clone(),
                arguments,
            },
            extra_content: signature.map(ExtraContent::thought_signature),
        }
    }
}

/// The canonical finish reason of a Gemini one.
pub(crate) fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        // STOP, and the ends without a canonical name (OTHER, LANGUAGE,
        // MALFORMED_FUNCTION_CALL, …).
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// Token usage from `usageMetadata`: tool-use prompt tokens count as input,
/// thoughts as output.
pub(crate) fn usage_of(metadata: &UsageMetadata) -> Usage {
    let count = |n: Option<u64>| n.map(saturate);
    let add =
        |a: Option<u64>, b: Option<u64>| saturate(a.unwrap_or(0).saturating_add(b.unwrap_or(0)));
    Usage {
        input_tokens: add(
            metadata.prompt_token_count,
            metadata.tool_use_prompt_token_count,
        ),
        output_tokens: add(
            metadata.candidates_token_count,
            metadata.thoughts_token_count,
        ),
        cached_input_tokens: count(metadata.cached_content_token_count),
        cache_write_input_tokens: None,
        reasoning_tokens: count(metadata.thoughts_token_count),
    }
}

pub(crate) fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The canonical `id` of a response: Gemini's `responseId`, else one made
/// from the gateway's request id.
pub(crate) fn response_id(ctx_request_id: &str, response_id: Option<&str>) -> String {
    match response_id.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("chatcmpl-{ctx_request_id}"),
    }
}

/// The error for a prompt Gemini blocked (no candidates).
pub(crate) fn blocked(reason: &str, status: u16) -> PluginError {
    PluginError::content_filter(format!("Gemini blocked the prompt (blockReason {reason})"))
        .with_status(status)
        .with_code(reason)
}

/// Translates a parsed, error-free response into a `chat.completion`.
pub(crate) fn to_completion(
    ctx: &RequestContext,
    response: &GenerateContentResponse,
    status: u16,
) -> Result<ChatCompletion, PluginError> {
    let candidates = response.candidates();
    if candidates.is_empty() {
        return Err(match response.block_reason() {
            Some(reason) => blocked(reason, status),
            None => PluginError::server("Gemini answered without candidates").with_status(status),
        });
    }
    let choices = candidates
        .iter()
        .enumerate()
        .map(|(position, candidate)| {
            let mut walker = PartWalker::default();
            let message = message_of(walker.walk(candidate.parts()));
            let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
            Choice {
                index: candidate
                    .index
                    .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX)),
                finish_reason: finish_reason(reason, !message.tool_calls.is_empty()),
                message,
            }
        })
        .collect();
    Ok(ChatCompletion {
        id: response_id(&ctx.request_id, response.response_id.as_deref()),
        object: "chat.completion",
        created: ctx.received_at_ms / 1000,
        model: ctx.requested_model.clone(),
        choices,
        usage: response
            .usage_metadata
            .as_ref()
            .map(|metadata| usage_of(metadata).into()),
    })
}

/// Assembles a message from pieces. Reasoning text accumulates into a
/// thinking block that the next signature closes (the same rule a client
/// applies to a stream's `reasoning_content` and `thinking_blocks` deltas).
fn message_of(pieces: Vec<Piece>) -> Message {
    let mut content: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut pending = String::new();
    let mut blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => content.get_or_insert_with(String::new).push_str(&text),
            Piece::Reasoning(text) => {
                reasoning.get_or_insert_with(String::new).push_str(&text);
                pending.push_str(&text);
            }
            Piece::Signature(signature) => {
                blocks.push(ThinkingBlock::new(
                    std::mem::take(&mut pending),
                    Some(signature),
                ));
            }
            Piece::Call(call) => tool_calls.push(ToolCall {
                index: None,
                ..call
            }),
        }
    }
    if !pending.is_empty() {
        blocks.push(ThinkingBlock::new(pending, None));
    }
    Message {
        role: "assistant",
        content,
        reasoning_content: reasoning,
        thinking_blocks: blocks,
        tool_calls,
    }
}
