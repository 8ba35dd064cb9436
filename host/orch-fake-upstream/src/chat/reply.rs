//! Synthesis of the deterministic assistant reply and its `chat.completion` body.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::request::{ChatRequest, Intent};
use super::tool_args::example_arguments;
use crate::synth::{self, padded};

/// `system_fingerprint` of every response.
pub(crate) const SYSTEM_FINGERPRINT: &str = "fp_fake";

/// Unique ids: a random per-process prefix plus a counter.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    prefix: u32,
    next: AtomicU64,
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self {
            prefix: rand::random(),
            next: AtomicU64::new(0),
        }
    }
}

impl IdGenerator {
    /// A new id such as `chatcmpl-1a2b3c4d000000000007`.
    pub(crate) fn next(&self, kind: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{kind}{:08x}{n:012x}", self.prefix)
    }
}

/// Token accounting of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
    completion_tokens_details: CompletionTokensDetails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

impl Usage {
    fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptTokensDetails { cached_tokens: 0 },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: 0,
            },
        }
    }
}

/// One tool call of the reply (also its wire shape in a `chat.completion`).
#[derive(Debug, Serialize)]
pub(crate) struct ToolCall<'r> {
    pub(crate) id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    pub(crate) function: FunctionCall<'r>,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Serialize)]
pub(crate) struct FunctionCall<'r> {
    pub(crate) name: &'r str,
    pub(crate) arguments: String,
}

/// What the assistant says.
#[derive(Debug)]
pub(crate) enum Turn<'r> {
    /// Text of at least `chunks` characters.
    Text(String),
    ToolCalls(Vec<ToolCall<'r>>),
}

/// A complete assistant reply, rendered as JSON or as a stream.
#[derive(Debug)]
pub(crate) struct Reply<'r> {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: &'r str,
    pub(crate) turn: Turn<'r>,
    pub(crate) usage: Usage,
    /// Content chunks a stream splits the text into.
    pub(crate) chunks: usize,
}

impl<'r> Reply<'r> {
    /// The reply to `request`; `chunks` (at least 1) is the stream
    /// granularity and the completion token count (an echo is cut into at
    /// most one piece per character).
    pub(crate) fn new(request: &'r ChatRequest<'_>, chunks: usize, ids: &IdGenerator) -> Self {
        let mut chunks = chunks.max(1);
        let turn = match &request.intent {
            Intent::Answer { .. } if request.echo.is_some() => {
                let echo = request.echo.as_deref().unwrap_or_default();
                let (text, pieces) = synth::text_and_pieces(echo, true, chunks);
                chunks = pieces;
                Turn::Text(text)
            }
            Intent::Answer { quote } => {
                Turn::Text(padded(synth::answer(quote, request.images), chunks))
            }
            Intent::AcknowledgeToolResult { quote } => {
                Turn::Text(padded(format!("Tool result received: {quote}"), chunks))
            }
            Intent::CallTools(tools) => Turn::ToolCalls(
                tools
                    .iter()
                    .map(|tool| ToolCall {
                        id: ids.next("call_"),
                        kind: "function",
                        function: FunctionCall {
                            name: &tool.name,
                            arguments: example_arguments(tool.parameters),
                        },
                    })
                    .collect(),
            ),
        };
        Self {
            id: ids.next("chatcmpl-"),
            created: unix_now(),
            model: &request.model,
            turn,
            usage: Usage::new(
                request.prompt_tokens,
                u64::try_from(chunks).unwrap_or(u64::MAX),
            ),
            chunks,
        }
    }

    /// `stop` for text, `tool_calls` for tool calls.
    pub(crate) fn finish_reason(&self) -> &'static str {
        match self.turn {
            Turn::Text(_) => "stop",
            Turn::ToolCalls(_) => "tool_calls",
        }
    }

    /// The `chat.completion` JSON document.
    pub(crate) fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let (content, tool_calls) = match &self.turn {
            Turn::Text(text) => (Some(text.as_str()), None),
            Turn::ToolCalls(calls) => (None, Some(calls.as_slice())),
        };
        let completion = Completion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: self.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: [Choice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content,
                    refusal: None,
                    tool_calls,
                },
                logprobs: None,
                finish_reason: self.finish_reason(),
            }],
            usage: &self.usage,
            x_fake_extension: Extension { ok: true },
        };
        serde_json::to_vec(&completion)
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: [Choice<'a>; 1],
    usage: &'a Usage,
    /// An unknown field, so tests can check unknown fields survive a gateway.
    x_fake_extension: Extension,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a [ToolCall<'a>]>,
}

#[derive(Serialize)]
struct Extension {
    ok: bool,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Splits `text` into exactly `pieces` (at least 1) consecutive pieces whose
/// character counts differ by at most one; pieces are empty only when the
/// text has fewer characters than `pieces`.
pub(crate) fn split_even(text: &str, pieces: usize) -> impl Iterator<Item = &str> {
    let pieces = pieces.max(1);
    let chars = text.chars().count();
    let (base, extra) = (chars / pieces, chars % pieces);
    let mut rest = text;
    (0..pieces).map(move |i| {
        let take = base + usize::from(i < extra);
        let end = rest
            .char_indices()
            .nth(take)
            .map_or(rest.len(), |(at, _)| at);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        piece
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::request;

    #[test]
    fn split_even_is_exact() {
        let pieces: Vec<_> = split_even("abcdefg", 3).collect();
        assert_eq!(pieces, ["abc", "de", "fg"]);
        let pieces: Vec<_> = split_even("ñü", 3).collect();
        assert_eq!(pieces, ["ñ", "ü", ""]);
        assert_eq!(split_even("abc", 0).collect::<Vec<_>>(), ["abc"]);
    }

    #[test]
    fn text_reply_shape() {
        let request =
            request::parse(br#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#)
                .unwrap();
        let ids = IdGenerator::default();
        let reply = Reply::new(&request, 30, &ids);
        let json: serde_json::Value = serde_json::from_slice(&reply.to_json().unwrap()).unwrap();
        let content = json["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(content.starts_with("Fake reply to: Hi"));
        assert_eq!(content.chars().count(), 30);
        assert_eq!(json["object"], "chat.completion");
        assert_eq!(json["model"], "m");
        assert_eq!(json["choices"][0]["finish_reason"], "stop");
        assert_eq!(json["usage"]["completion_tokens"], 30);
        assert_eq!(json["usage"]["total_tokens"], 31);
        assert_eq!(json["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(json["x_fake_extension"]["ok"], true);
        assert!(json.get("tool_calls").is_none());
    }

    #[test]
    fn tool_reply_shape() {
        let request = request::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"Hi"}],
                "tools":[{"type":"function","function":{"name":"get_weather","parameters":
                {"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}"#,
        )
        .unwrap();
        let ids = IdGenerator::default();
        let reply = Reply::new(&request, 8, &ids);
        let json: serde_json::Value = serde_json::from_slice(&reply.to_json().unwrap()).unwrap();
        let message = &json["choices"][0]["message"];
        assert!(message["content"].is_null());
        let call = &message["tool_calls"][0];
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], r#"{"city":"example"}"#);
        assert_eq!(json["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn ids_are_unique() {
        let ids = IdGenerator::default();
        assert_ne!(ids.next("x"), ids.next("x"));
    }
}
