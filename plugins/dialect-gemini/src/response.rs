//! Encoding: a canonical `chat.completion` → a Gemini
//! `GenerateContentResponse`, and the pieces the stream encoder shares.

use orch_plugin_sdk::{EgressContext, PluginError, Usage, openai::usage_from_openai};

use crate::ids;
use crate::json::{Json, Object};

/// Encodes a canonical `chat.completion`.
pub(crate) fn encode(
    ctx: &EgressContext,
    body: &str,
    usage: Option<Usage>,
) -> Result<String, PluginError> {
    let body = Json::parse(body).map_err(|err| {
        PluginError::server(format!("the canonical response is not valid JSON: {err}"))
    })?;
    let Some(choices) = body.get("choices").and_then(Json::as_array) else {
        return Err(PluginError::server(
            "the canonical response has no choices array",
        ));
    };
    let candidates = choices
        .iter()
        .enumerate()
        .map(|(position, choice)| message_candidate(position, choice))
        .collect();
    let usage = usage.or_else(|| body.get("usage").and_then(usage_from_canonical));
    Ok(envelope(ctx, candidates, usage.as_ref()).to_string())
}

/// A `GenerateContentResponse` around `candidates`.
pub(crate) fn envelope(
    ctx: &EgressContext,
    candidates: Vec<Json>,
    usage: Option<&Usage>,
) -> Object {
    let mut response = Object::new();
    if !candidates.is_empty() {
        response.insert("candidates", candidates);
    }
    response
        .with_opt("usageMetadata", usage.map(usage_metadata))
        .with("modelVersion", ctx.requested_model.as_str())
        .with("responseId", ctx.request_id.as_str())
}

/// One candidate: `{"content": {"parts", "role": "model"}, "finishReason"?,
/// "index"}`. A candidate always has a part (`{"text": ""}` when there is
/// nothing else): google-genai's chat sessions drop a turn whose content
/// has no parts from the history they send next.
pub(crate) fn candidate(index: u64, mut parts: Vec<Json>, finish_reason: Option<&str>) -> Json {
    if parts.is_empty() {
        parts.push(text_part(""));
    }
    Object::new()
        .with(
            "content",
            Object::new().with("parts", parts).with("role", "model"),
        )
        .with_opt("finishReason", finish_reason)
        .with("index", index)
        .into()
}

/// A canonical choice with a whole `message` → a candidate.
fn message_candidate(position: usize, choice: &Json) -> Json {
    let empty = Json::Null;
    let message = choice.get("message").unwrap_or(&empty);
    let mut parts = message_thoughts(message);
    if let Some(text) = message_text(message).filter(|text| !text.is_empty()) {
        parts.push(text_part(&text));
    }
    let mut malformed = false;
    let calls = message
        .get("tool_calls")
        .and_then(Json::as_array)
        .unwrap_or_default();
    for (position, call) in calls.iter().enumerate() {
        let function = call.get("function");
        let name = function.and_then(|f| f.get_str("name")).unwrap_or_default();
        let arguments = function
            .and_then(|f| f.get_str("arguments"))
            .unwrap_or_default();
        let id = call.get_str("id").filter(|id| !id.is_empty());
        match function_call_part(position, id, name, arguments, call_signature(call)) {
            Some(part) => parts.push(part),
            None => malformed = true,
        }
    }
    let index = choice
        .get("index")
        .and_then(Json::as_u64)
        .unwrap_or(position as u64);
    candidate(
        index,
        parts,
        finish_reason(choice.get_str("finish_reason"), malformed),
    )
}

/// The thought parts of a message: one per thinking block (redacted blocks
/// have no Gemini form and are dropped), else one for `reasoning_content`.
/// A block with only a signature (Gemini's signature on a text part) becomes
/// `{"text": "", "thoughtSignature"}`, as Gemini streams it, so the decoder
/// reads it back as a block of its own.
fn message_thoughts(message: &Json) -> Vec<Json> {
    let blocks = message
        .get("thinking_blocks")
        .and_then(Json::as_array)
        .unwrap_or_default();
    if blocks.is_empty() {
        return message
            .get_str("reasoning_content")
            .or_else(|| message.get_str("reasoning"))
            .filter(|text| !text.is_empty())
            .map(|text| thought_part(text, None))
            .into_iter()
            .collect();
    }
    blocks
        .iter()
        .filter(|block| matches!(block.get_str("type"), None | Some("thinking")))
        .filter_map(|block| {
            let text = block.get_str("thinking").unwrap_or_default();
            let signature = block.get_str("signature").filter(|s| !s.is_empty());
            match (text, signature) {
                ("", None) => None,
                ("", Some(signature)) => Some(
                    Object::new()
                        .with("text", "")
                        .with("thoughtSignature", signature)
                        .into(),
                ),
                (text, signature) => Some(thought_part(text, signature)),
            }
        })
        .collect()
}

/// The text of a message: `content` (a string or text parts), else its
/// `refusal`.
fn message_text(message: &Json) -> Option<String> {
    match message.get("content") {
        Some(Json::String(text)) => Some(text.clone()),
        Some(Json::Array(parts)) => Some(
            parts
                .iter()
                .filter_map(|part| part.get_str("text"))
                .collect(),
        ),
        _ => message.get_str("refusal").map(str::to_owned),
    }
}

/// `extra_content.google.thought_signature` of a canonical tool call.
pub(crate) fn call_signature(call: &Json) -> Option<&str> {
    call.get("extra_content")
        .and_then(|extra| extra.get("google"))
        .and_then(|google| google.get_str("thought_signature"))
        .filter(|signature| !signature.is_empty())
}

/// `{"text": text}`.
pub(crate) fn text_part(text: &str) -> Json {
    Object::new().with("text", text).into()
}

/// `{"text": text, "thought": true, "thoughtSignature"?}`.
pub(crate) fn thought_part(text: &str, signature: Option<&str>) -> Json {
    Object::new()
        .with("text", text)
        .with("thought", true)
        .with_opt("thoughtSignature", signature)
        .into()
}

/// `{"functionCall": {"id", "name", "args"}, "thoughtSignature"?}` for the
/// canonical call at `position` of its response; the id is generated when the
/// call has none. `None` when the call is malformed (no name, or arguments
/// that are not a JSON object).
pub(crate) fn function_call_part(
    position: usize,
    id: Option<&str>,
    name: &str,
    arguments: &str,
    signature: Option<&str>,
) -> Option<Json> {
    if name.is_empty() {
        return None;
    }
    let args = if arguments.trim().is_empty() {
        Object::new()
    } else {
        match Json::parse(arguments) {
            Ok(Json::Object(args)) => args,
            _ => return None,
        }
    };
    let id = id.map_or_else(|| ids::call_id(position, name), str::to_owned);
    Some(
        Object::new()
            .with(
                "functionCall",
                Object::new()
                    .with("id", id)
                    .with("name", name)
                    .with("args", args),
            )
            .with_opt("thoughtSignature", signature)
            .into(),
    )
}

/// The Gemini finish reason of a canonical one. A dropped malformed call
/// turns a normal stop into `MALFORMED_FUNCTION_CALL`, as Gemini reports it.
pub(crate) fn finish_reason(reason: Option<&str>, malformed: bool) -> Option<&'static str> {
    match reason {
        Some("length") => Some("MAX_TOKENS"),
        Some("content_filter") => Some("SAFETY"),
        _ if malformed => Some("MALFORMED_FUNCTION_CALL"),
        Some("stop" | "tool_calls" | "function_call") => Some("STOP"),
        Some(_) => Some("OTHER"),
        None => None,
    }
}

/// `usageMetadata`: Gemini counts thoughts apart from the candidates, and
/// cached tokens as a part of the prompt (like the canonical form).
pub(crate) fn usage_metadata(usage: &Usage) -> Object {
    let reasoning = usage.reasoning_tokens.unwrap_or(0);
    Object::new()
        .with("promptTokenCount", usage.input_tokens)
        .with(
            "candidatesTokenCount",
            usage.output_tokens.saturating_sub(reasoning),
        )
        .with(
            "totalTokenCount",
            u64::from(usage.input_tokens) + u64::from(usage.output_tokens),
        )
        .with_opt(
            "cachedContentTokenCount",
            usage.cached_input_tokens.filter(|cached| *cached > 0),
        )
        .with_opt("thoughtsTokenCount", (reasoning > 0).then_some(reasoning))
}

/// The usage of a canonical response or chunk.
pub(crate) fn usage_from_canonical(usage: &Json) -> Option<Usage> {
    let usage: serde_json::Value = serde_json::from_str(&usage.to_string()).ok()?;
    usage_from_openai(&usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        let cases = [
            (Some("stop"), false, Some("STOP")),
            (Some("tool_calls"), false, Some("STOP")),
            (Some("length"), false, Some("MAX_TOKENS")),
            (Some("content_filter"), false, Some("SAFETY")),
            (Some("weird"), false, Some("OTHER")),
            (None, false, None),
            (Some("stop"), true, Some("MALFORMED_FUNCTION_CALL")),
            (None, true, Some("MALFORMED_FUNCTION_CALL")),
            (Some("length"), true, Some("MAX_TOKENS")),
        ];
        for (reason, malformed, expected) in cases {
            assert_eq!(finish_reason(reason, malformed), expected, "{reason:?}");
        }
    }

    #[test]
    fn usage_metadata_splits_thoughts() {
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 50,
            cached_input_tokens: Some(80),
            cache_write_input_tokens: Some(5),
            reasoning_tokens: Some(30),
        };
        assert_eq!(
            usage_metadata(&usage).to_string(),
            r#"{"promptTokenCount":100,"candidatesTokenCount":20,"totalTokenCount":150,"cachedContentTokenCount":80,"thoughtsTokenCount":30}"#
        );
        let max = Usage {
            input_tokens: u32::MAX,
            output_tokens: u32::MAX,
            cached_input_tokens: Some(0),
            reasoning_tokens: Some(0),
            ..Usage::default()
        };
        assert_eq!(
            usage_metadata(&max).to_string(),
            format!(
                r#"{{"promptTokenCount":{m},"candidatesTokenCount":{m},"totalTokenCount":{t}}}"#,
                m = u32::MAX,
                t = u64::from(u32::MAX) * 2
            )
        );
    }

    #[test]
    fn function_calls_and_malformed_arguments() {
        let part = function_call_part(1, None, "f", "", Some("c2ln")).expect("part");
        assert_eq!(
            part.to_string(),
            r#"{"functionCall":{"id":"call_1_f","name":"f","args":{}},"thoughtSignature":"c2ln"}"#
        );
        let part = function_call_part(0, Some("x"), "f", r#"{"b":1,"a":2}"#, None).expect("part");
        assert_eq!(
            part.to_string(),
            r#"{"functionCall":{"id":"x","name":"f","args":{"b":1,"a":2}}}"#
        );
        assert!(function_call_part(0, None, "f", r#"{"a":"#, None).is_none());
        assert!(function_call_part(0, None, "f", "[1]", None).is_none());
        assert!(function_call_part(0, None, "", "{}", None).is_none());
    }
}
