//! Inspection and editing of canonical (OpenAI Chat Completions) payloads.
//!
//! The host parses only what it must act on: the model, whether the client
//! wants a stream and usage, and which capabilities the request needs. The
//! rest of the body stays opaque bytes.

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

use crate::contract::{Capability, JsonEdit};

/// Why a canonical payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    /// The body is not a JSON object.
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but does not have the expected shape.
    #[error("the request body does not match the chat completions schema: {0}")]
    Malformed(String),
    /// A required parameter is missing.
    #[error("missing required parameter: '{0}'")]
    Missing(&'static str),
    /// A parameter has the wrong type or value.
    #[error("invalid value for '{param}': {reason}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// Why.
        reason: String,
    },
}

impl CanonicalError {
    /// The request parameter at fault, if any.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            CanonicalError::InvalidJson(_) | CanonicalError::Malformed(_) => None,
            CanonicalError::Missing(p) => Some(p),
            CanonicalError::Invalid { param, .. } => Some(param),
        }
    }
}

/// What the host needs to know about a chat request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatProfile {
    /// The requested model.
    pub model: String,
    /// Whether the client wants a stream.
    pub stream: bool,
    /// Whether the client asked for a usage chunk at the end of the stream.
    pub include_usage: bool,
    /// Capabilities the request needs from a target.
    pub needs: Vec<Capability>,
    /// The completion's token cap (`max_completion_tokens`, else
    /// `max_tokens`), for budget reservations.
    pub max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ChatHead {
    model: Option<serde_json::Value>,
    stream: Option<serde_json::Value>,
    stream_options: Option<StreamOptions>,
    messages: Option<Vec<Message>>,
    tools: Option<Vec<IgnoredAny>>,
    functions: Option<Vec<IgnoredAny>>,
    response_format: Option<ResponseFormat>,
    reasoning_effort: Option<IgnoredAny>,
    reasoning: Option<IgnoredAny>,
    max_tokens: Option<serde_json::Value>,
    max_completion_tokens: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Message {
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Parts(Vec<Part>),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl ChatProfile {
    /// Inspect a canonical chat request body.
    pub fn inspect(body: &[u8]) -> Result<ChatProfile, CanonicalError> {
        let head: ChatHead = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                CanonicalError::Malformed(e.to_string())
            } else {
                CanonicalError::InvalidJson(e.to_string())
            }
        })?;
        let model = match head.model {
            Some(serde_json::Value::String(m)) if !m.is_empty() => m,
            Some(serde_json::Value::String(_)) | None => {
                return Err(CanonicalError::Missing("model"));
            }
            Some(_) => {
                return Err(CanonicalError::Invalid {
                    param: "model",
                    reason: "expected a string".into(),
                });
            }
        };
        let stream = match head.stream {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => {
                return Err(CanonicalError::Invalid {
                    param: "stream",
                    reason: "expected a boolean".into(),
                });
            }
        };
        let messages = head.messages.ok_or(CanonicalError::Missing("messages"))?;
        if messages.is_empty() {
            return Err(CanonicalError::Invalid {
                param: "messages",
                reason: "expected a non-empty array".into(),
            });
        }
        let mut needs = Vec::new();
        if head.tools.is_some_and(|t| !t.is_empty())
            || head.functions.is_some_and(|f| !f.is_empty())
        {
            needs.push(Capability::Tools);
        }
        let has_image = messages.iter().any(|m| match &m.content {
            Some(Content::Parts(parts)) => parts
                .iter()
                .any(|p| matches!(p.kind.as_deref(), Some("image_url" | "input_image"))),
            _ => false,
        });
        if has_image {
            needs.push(Capability::Vision);
        }
        match head.response_format.as_ref().map(|f| f.kind.as_str()) {
            Some("json_schema") => needs.push(Capability::JsonSchema),
            Some("json_object") => needs.push(Capability::JsonMode),
            _ => {}
        }
        if head.reasoning_effort.is_some() || head.reasoning.is_some() {
            needs.push(Capability::Reasoning);
        }
        let max_tokens = head
            .max_completion_tokens
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .or_else(|| head.max_tokens.as_ref().and_then(serde_json::Value::as_u64));
        Ok(ChatProfile {
            model,
            stream,
            max_tokens,
            include_usage: stream
                && head
                    .stream_options
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false),
            needs,
        })
    }
}

/// The top-level fields of a JSON object, in order, values kept as raw text.
struct TopLevel<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for TopLevel<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = TopLevel<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push((k, v));
                }
                Ok(TopLevel(fields))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Apply top-level field edits to a JSON object body, keeping the order and
/// the exact text of every untouched field. Edited fields keep their position;
/// new fields are appended.
pub fn apply_edits(body: &[u8], edits: &[JsonEdit]) -> Result<Vec<u8>, CanonicalError> {
    if edits.is_empty() {
        return Ok(body.to_vec());
    }
    let text = std::str::from_utf8(body).map_err(|e| CanonicalError::InvalidJson(e.to_string()))?;
    let TopLevel(fields) =
        serde_json::from_str(text).map_err(|e| CanonicalError::InvalidJson(e.to_string()))?;
    let mut values: Vec<(String, Option<String>)> = fields
        .into_iter()
        .map(|(k, v)| (k, Some(v.get().to_owned())))
        .collect();
    for edit in edits {
        if let Some(value) = &edit.value {
            serde_json::from_str::<IgnoredAny>(value).map_err(|e| CanonicalError::Invalid {
                param: "edit",
                reason: format!("value for '{}' is not JSON: {e}", edit.field),
            })?;
        }
        let mut found = false;
        for (k, v) in values.iter_mut().filter(|(k, _)| *k == edit.field) {
            let _ = k;
            *v = if found { None } else { edit.value.clone() };
            found = true;
        }
        if !found && let Some(value) = &edit.value {
            values.push((edit.field.clone(), Some(value.clone())));
        }
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    out.push(b'{');
    let mut first = true;
    for (k, v) in values {
        let Some(v) = v else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut out, &k)
            .map_err(|e| CanonicalError::InvalidJson(e.to_string()))?;
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(field: &str, value: Option<&str>) -> JsonEdit {
        JsonEdit {
            field: field.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn inspects_a_plain_request() {
        let p =
            ChatProfile::inspect(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap();
        assert_eq!(p.model, "m");
        assert!(!p.stream && !p.include_usage && p.needs.is_empty());
    }

    #[test]
    fn detects_needed_capabilities() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],
            "tools":[{"type":"function","function":{"name":"f"}}],
            "response_format":{"type":"json_schema","json_schema":{}},"reasoning_effort":"low"}"#;
        let p = ChatProfile::inspect(body).unwrap();
        assert!(p.stream && p.include_usage);
        assert_eq!(
            p.needs,
            vec![
                Capability::Tools,
                Capability::Vision,
                Capability::JsonSchema,
                Capability::Reasoning
            ]
        );
    }

    #[test]
    fn refuses_bad_requests_with_the_parameter_at_fault() {
        assert!(matches!(
            ChatProfile::inspect(b"not json"),
            Err(CanonicalError::InvalidJson(_))
        ));
        assert_eq!(
            ChatProfile::inspect(br#"{"messages":[{}]}"#),
            Err(CanonicalError::Missing("model"))
        );
        assert_eq!(
            ChatProfile::inspect(br#"{"model":"m"}"#),
            Err(CanonicalError::Missing("messages"))
        );
        assert_eq!(
            ChatProfile::inspect(br#"{"model":"m","messages":[]}"#)
                .unwrap_err()
                .param(),
            Some("messages")
        );
        assert_eq!(
            ChatProfile::inspect(br#"{"model":"m","stream":"yes","messages":[{}]}"#)
                .unwrap_err()
                .param(),
            Some("stream")
        );
        assert_eq!(
            ChatProfile::inspect(br#"{"model":5,"messages":[{}]}"#)
                .unwrap_err()
                .param(),
            Some("model")
        );
    }

    #[test]
    fn edits_keep_order_and_untouched_text() {
        let body = br#"{"model":"a","messages":[ {"x" : 1} ],"zz":{"k":[1, 2]}}"#;
        let out = apply_edits(
            body,
            &[
                edit("model", Some(r#""b""#)),
                edit("stream_options", Some(r#"{"include_usage":true}"#)),
            ],
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"b","messages":[ {"x" : 1} ],"zz":{"k":[1, 2]},"stream_options":{"include_usage":true}}"#
        );
        let out = apply_edits(body, &[edit("zz", None)]).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"a","messages":[ {"x" : 1} ]}"#
        );
    }

    #[test]
    fn edits_refuse_invalid_values_and_bodies() {
        assert!(apply_edits(br#"{"a":1}"#, &[edit("a", Some("{nope"))]).is_err());
        assert!(apply_edits(b"[1,2]", &[edit("a", Some("1"))]).is_err());
        assert_eq!(apply_edits(b"[1,2]", &[]).unwrap(), b"[1,2]");
    }

    #[test]
    fn duplicate_fields_collapse_to_the_edited_value() {
        let out = apply_edits(br#"{"m":1,"x":0,"m":2}"#, &[edit("m", Some("3"))]).unwrap();
        assert_eq!(std::str::from_utf8(&out).unwrap(), r#"{"m":3,"x":0}"#);
    }
}

/// A rough input-token estimate of a canonical request for when no provider
/// can count: about four characters of text per token plus a few tokens of
/// framing per message. Used only where the answer is marked as an estimate.
pub fn estimate_input_tokens(body: &[u8]) -> u32 {
    fn chars(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.chars().count(),
            serde_json::Value::Array(a) => a.iter().map(chars).sum(),
            serde_json::Value::Object(o) => o.iter().map(|(k, v)| k.len().min(8) + chars(v)).sum(),
            _ => 1,
        }
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    let messages = v.get("messages").and_then(|m| m.as_array());
    let framing = messages.map_or(0, |m| m.len() * 4);
    let text = messages.map_or(0, |m| m.iter().map(chars).sum::<usize>())
        + v.get("tools").map_or(0, chars);
    u32::try_from(text.div_ceil(4) + framing).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod estimate_tests {
    #[test]
    fn estimates_grow_with_text() {
        let short = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let long =
            br#"{"messages":[{"role":"user","content":"hello there, how are you doing today?"}]}"#;
        let a = super::estimate_input_tokens(short);
        let b = super::estimate_input_tokens(long);
        assert!(a >= 4 && b > a, "{a} {b}");
        assert_eq!(super::estimate_input_tokens(b"nope"), 0);
    }
}

/// What a canonical `chat.completion.chunk` (JSON text) means to the host,
/// for chunks that come from a transformer rather than an adapter:
/// [`ChunkKind::Content`] when a choice's `delta` carries model output (a
/// non-empty `content`, `refusal`, `reasoning_content` or `reasoning`,
/// `tool_calls` or a `function_call`), [`ChunkKind::Usage`] when there are
/// no choices but a `usage` object, [`ChunkKind::Meta`] otherwise. `None`
/// when the text is not a JSON object.
pub fn chunk_kind(chunk: &str) -> Option<crate::contract::ChunkKind> {
    use crate::contract::ChunkKind;
    use serde_json::Value;
    let v: serde_json::Map<String, Value> = serde_json::from_str(chunk).ok()?;
    let choices = v.get("choices").and_then(Value::as_array);
    let output = |d: &Value| {
        let text = |f: &str| {
            d.get(f)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        ["content", "refusal", "reasoning_content", "reasoning"]
            .into_iter()
            .any(text)
            || d.get("tool_calls")
                .is_some_and(|t| !t.is_null() && t.as_array().is_none_or(|a| !a.is_empty()))
            || d.get("function_call").is_some_and(|f| !f.is_null())
    };
    if choices
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("delta"))
        .any(output)
    {
        return Some(ChunkKind::Content);
    }
    if choices.is_none_or(Vec::is_empty) && v.get("usage").is_some_and(Value::is_object) {
        return Some(ChunkKind::Usage);
    }
    Some(ChunkKind::Meta)
}

#[cfg(test)]
mod chunk_kind_tests {
    use super::chunk_kind;
    use crate::contract::ChunkKind;

    #[test]
    fn kinds() {
        let k = |s: &str| chunk_kind(s);
        assert_eq!(
            k(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#),
            Some(ChunkKind::Content)
        );
        assert_eq!(
            k(r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#),
            Some(ChunkKind::Content)
        );
        assert_eq!(
            k(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            Some(ChunkKind::Meta)
        );
        assert_eq!(
            k(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#),
            Some(ChunkKind::Meta)
        );
        assert_eq!(
            k(r#"{"choices":[],"usage":{"prompt_tokens":1}}"#),
            Some(ChunkKind::Usage)
        );
        assert_eq!(k("[1]"), None);
    }
}
