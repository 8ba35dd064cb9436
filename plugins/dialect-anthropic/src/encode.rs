//! Canonical results → Anthropic bodies: the `message` response, model
//! listings, token counts, and the pieces the stream encoder shares (content
//! blocks, usage, ids, stop reasons).

use std::borrow::Cow;

use orch_plugin_sdk::{
    EgressContext, ModelEntry, PluginError, Usage, log, openai::usage_from_openai,
};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A content block of a response (or of a `content_block_start` event).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Thinking {
        thinking: Cow<'a, str>,
        signature: Cow<'a, str>,
    },
    RedactedThinking {
        data: Cow<'a, str>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: ToolInput<'a>,
        /// The canonical tool call's `extra_content` (a Gemini
        /// `thought_signature` that must come back with the call). Anthropic
        /// has no such field; the anthropic SDKs keep unknown block fields
        /// and send them back with the block, and `decode` reads it again.
        #[serde(skip_serializing_if = "Option::is_none")]
        extra_content: Option<&'a Value>,
    },
}

/// A canonical tool call's `extra_content`, when it is an object.
pub(crate) fn extra_content(call: &Value) -> Option<&Value> {
    call.get("extra_content").filter(|extra| extra.is_object())
}

/// A tool call's `input`: the canonical `arguments` text (when it is a JSON
/// object, kept verbatim so key order survives), or `{}`.
#[derive(Debug)]
pub(crate) enum ToolInput<'a> {
    Raw(&'a RawValue),
    Empty,
}

impl ToolInput<'_> {
    /// Parses canonical `arguments`. Text that is not a JSON object becomes
    /// `{}` (Anthropic's `input` is always an object), with a warning.
    fn from_arguments(arguments: &str) -> ToolInput<'_> {
        if arguments.trim().is_empty() {
            return ToolInput::Empty;
        }
        match serde_json::from_str::<&RawValue>(arguments) {
            Ok(raw) if raw.get().starts_with('{') => ToolInput::Raw(raw),
            _ => {
                log::warn!(
                    "tool call arguments are not a JSON object ({} bytes); sending input {{}}",
                    arguments.len()
                );
                ToolInput::Empty
            }
        }
    }
}

impl Serialize for ToolInput<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Raw(raw) => raw.serialize(serializer),
            Self::Empty => serializer.serialize_map(Some(0))?.end(),
        }
    }
}

/// Anthropic's `usage`. `input_tokens` excludes cache reads and writes, which
/// the canonical `prompt_tokens` includes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct AnthropicUsage {
    pub(crate) input_tokens: u32,
    pub(crate) cache_creation_input_tokens: u32,
    pub(crate) cache_read_input_tokens: u32,
    pub(crate) output_tokens: u32,
}

impl From<Usage> for AnthropicUsage {
    fn from(usage: Usage) -> Self {
        let cache_read = usage.cached_input_tokens.unwrap_or(0);
        let cache_creation = usage.cache_write_input_tokens.unwrap_or(0);
        Self {
            input_tokens: usage
                .input_tokens
                .saturating_sub(cache_read)
                .saturating_sub(cache_creation),
            cache_creation_input_tokens: cache_creation,
            cache_read_input_tokens: cache_read,
            output_tokens: usage.output_tokens,
        }
    }
}

/// Reads a canonical `usage` object, including the
/// `prompt_tokens_details.cache_creation_tokens` extension.
pub(crate) fn usage_from_canonical(usage: &Value) -> Option<Usage> {
    let mut parsed = usage_from_openai(usage)?;
    parsed.cache_write_input_tokens = usage
        .get("prompt_tokens_details")
        .and_then(|details| details.get("cache_creation_tokens"))
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    Some(parsed)
}

/// The message id: the canonical id, prefixed with `msg_` unless it already
/// starts so; `msg_<request id>` when there is none.
pub(crate) fn message_id(id: Option<&str>, ctx: &EgressContext) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) => format!("msg_{id}"),
        None => format!("msg_{}", ctx.request_id),
    }
}

/// Anthropic's `stop_reason` for a canonical `finish_reason`. A turn that
/// called tools stops with `tool_use` unless it ran out of tokens or was
/// filtered: agent loops run tools only on `tool_use`, and some providers
/// report `stop` for tool turns.
pub(crate) fn stop_reason(finish_reason: Option<&str>, used_tools: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls" | "function_call") => "tool_use",
        _ if used_tools => "tool_use",
        _ => "end_turn",
    }
}

/// The `choices` entry with index 0 (or the first one).
pub(crate) fn first_choice(object: &Value) -> Option<&Value> {
    let choices = object.get("choices")?.as_array()?;
    choices
        .iter()
        .find(|choice| choice.get("index").and_then(Value::as_u64) == Some(0))
        .or_else(|| choices.first())
}

pub(crate) fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

// ------------------------------------------------------------------ responses

#[derive(Serialize)]
struct MessageBody<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    usage: AnthropicUsage,
}

/// Encodes a canonical `chat.completion` as an Anthropic `message`.
pub(crate) fn encode_response(
    ctx: &EgressContext,
    body: &str,
    usage: Option<Usage>,
) -> Result<String, PluginError> {
    let response: Value = serde_json::from_str(body).map_err(|err| {
        PluginError::server(format!("the canonical response is not valid JSON: {err}"))
    })?;
    let choice = first_choice(&response)
        .ok_or_else(|| PluginError::server("the canonical response has no choices"))?;
    let message = choice
        .get("message")
        .filter(|message| message.is_object())
        .ok_or_else(|| PluginError::server("the canonical response has no message"))?;

    let mut content = thinking_blocks(message);
    if let Some(text) = message_text(message) {
        content.push(Block::Text { text });
    }
    let mut used_tools = false;
    for (index, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let function = call.get("function");
        let name = function.and_then(|f| str_field(f, "name")).unwrap_or("");
        let arguments = function
            .and_then(|f| str_field(f, "arguments"))
            .unwrap_or("");
        let id = match str_field(call, "id").filter(|id| !id.is_empty()) {
            Some(id) => Cow::Borrowed(id),
            // Generated like adapters do for providers without ids.
            None => Cow::Owned(format!("call_{index}_{name}")),
        };
        content.push(Block::ToolUse {
            id,
            name: Cow::Borrowed(name),
            input: ToolInput::from_arguments(arguments),
            extra_content: extra_content(call),
        });
        used_tools = true;
    }

    let usage = usage
        .or_else(|| response.get("usage").and_then(usage_from_canonical))
        .map(AnthropicUsage::from)
        .unwrap_or_default();
    let body = MessageBody {
        id: message_id(str_field(&response, "id"), ctx),
        kind: "message",
        role: "assistant",
        model: &ctx.requested_model,
        content,
        stop_reason: stop_reason(str_field(choice, "finish_reason"), used_tools),
        stop_sequence: None,
        usage,
    };
    serde_json::to_string(&body)
        .map_err(|err| PluginError::server(format!("cannot serialise the message: {err}")))
}

/// `message.thinking_blocks` → thinking and redacted-thinking blocks. Blocks
/// without a signature, and `reasoning_content` without `thinking_blocks`,
/// are left out: a client sends them back, and a thinking block that is not
/// signed is refused by Anthropic.
fn thinking_blocks(message: &Value) -> Vec<Block<'_>> {
    let blocks = message.get("thinking_blocks").and_then(Value::as_array);
    blocks
        .into_iter()
        .flatten()
        .filter_map(|block| match str_field(block, "type")? {
            "thinking" => {
                let signature = str_field(block, "signature").filter(|s| !s.is_empty())?;
                Some(Block::Thinking {
                    thinking: Cow::Borrowed(str_field(block, "thinking").unwrap_or("")),
                    signature: Cow::Borrowed(signature),
                })
            }
            "redacted_thinking" => Some(Block::RedactedThinking {
                data: Cow::Borrowed(str_field(block, "data")?),
            }),
            _ => None,
        })
        .collect()
}

/// The message text: `content` (a string or text parts), else a `refusal`.
fn message_text(message: &Value) -> Option<Cow<'_, str>> {
    let text = match message.get("content") {
        Some(Value::String(text)) => Cow::Borrowed(text.as_str()),
        Some(Value::Array(parts)) => Cow::Owned(
            parts
                .iter()
                .filter(|part| matches!(str_field(part, "type"), Some("text" | "refusal")))
                .filter_map(|part| str_field(part, "text").or_else(|| str_field(part, "refusal")))
                .collect(),
        ),
        _ => Cow::Borrowed(""),
    };
    if !text.is_empty() {
        return Some(text);
    }
    str_field(message, "refusal")
        .filter(|refusal| !refusal.is_empty())
        .map(Cow::Borrowed)
}

// ------------------------------------------------------------- models, counts

#[derive(Serialize)]
struct ModelList<'a> {
    data: Vec<ModelInfo<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ModelInfo<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: String,
}

/// A model listing in the shape of `GET /v1/models` (one page, no more).
pub(crate) fn encode_models(models: &[ModelEntry]) -> String {
    let list = ModelList {
        data: models
            .iter()
            .map(|model| ModelInfo {
                kind: "model",
                id: &model.id,
                display_name: &model.id,
                created_at: rfc3339(model.created),
            })
            .collect(),
        has_more: false,
        first_id: models.first().map(|model| model.id.as_str()),
        last_id: models.last().map(|model| model.id.as_str()),
    };
    serde_json::to_string(&list).unwrap_or_else(|_| {
        let mut empty = Map::new();
        empty.insert("data".to_owned(), Value::Array(Vec::new()));
        empty.insert("has_more".to_owned(), Value::Bool(false));
        Value::Object(empty).to_string()
    })
}

/// The body of `POST /v1/messages/count_tokens`.
pub(crate) fn encode_token_count(input_tokens: u32) -> String {
    format!(r#"{{"input_tokens":{input_tokens}}}"#)
}

/// Unix seconds as an RFC 3339 UTC timestamp, e.g. `2024-10-22T00:00:00Z`.
pub(crate) fn rfc3339(unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> EgressContext {
        EgressContext {
            request_id: "req_1".to_owned(),
            requested_model: "claude-alias".to_owned(),
            received_at_ms: 1_730_000_000_000,
        }
    }

    fn encode(response: Value, usage: Option<Usage>) -> Value {
        let text = encode_response(&ctx(), &response.to_string(), usage).expect("encodes");
        serde_json::from_str(&text).expect("JSON")
    }

    fn completion(message: Value, finish_reason: &str) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        })
    }

    #[test]
    fn finish_reasons() {
        for (finish, tools, expected) in [
            ("stop", false, "end_turn"),
            ("length", false, "max_tokens"),
            ("tool_calls", true, "tool_use"),
            ("stop", true, "tool_use"),
            ("length", true, "max_tokens"),
            ("content_filter", false, "refusal"),
            ("something_new", false, "end_turn"),
        ] {
            let mut message = json!({"role": "assistant", "content": "x"});
            if tools {
                message["tool_calls"] = json!([{"id": "call_1", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}}]);
            }
            let body = encode(completion(message, finish), None);
            assert_eq!(body["stop_reason"], expected, "{finish} {tools}");
            assert_eq!(body["stop_sequence"], Value::Null);
        }
    }

    #[test]
    fn ids_models_and_usage() {
        let mut response = completion(json!({"role": "assistant", "content": "x"}), "stop");
        let body = encode(response.clone(), None);
        assert_eq!(body["id"], "msg_chatcmpl-1");
        assert_eq!(body["model"], "claude-alias");
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 0, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 0, "output_tokens": 0})
        );
        response["id"] = json!("msg_01XYZ");
        response["usage"] = json!({"prompt_tokens": 100, "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_creation_tokens": 30}});
        let body = encode(response.clone(), None);
        assert_eq!(body["id"], "msg_01XYZ");
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 10, "cache_creation_input_tokens": 30,
                   "cache_read_input_tokens": 60, "output_tokens": 7})
        );
        // The host's usage wins over the body's.
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 2,
            ..Usage::default()
        };
        assert_eq!(
            encode(response.clone(), Some(usage))["usage"]["input_tokens"],
            5
        );
        response.as_object_mut().map(|r| r.remove("id"));
        assert_eq!(encode(response, None)["id"], "msg_req_1");
    }

    #[test]
    fn tool_inputs_keep_order_and_survive_bad_arguments() {
        let message = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "a", "arguments": "{\"z\":1,\"a\":2}"}},
            {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{\"unterminated"}},
            {"id": "call_3", "type": "function", "function": {"name": "c", "arguments": "[1]"}},
            {"id": "", "type": "function", "function": {"name": "d", "arguments": ""}},
        ]});
        let text = encode_response(&ctx(), &completion(message, "tool_calls").to_string(), None)
            .expect("encodes");
        assert!(text.contains(r#""input":{"z":1,"a":2}"#), "{text}");
        let body: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(body["content"][1]["input"], json!({}));
        assert_eq!(body["content"][2]["input"], json!({}));
        assert_eq!(body["content"][3]["id"], "call_3_d");
        assert_eq!(body["content"][3]["input"], json!({}));
    }

    #[test]
    fn unsigned_reasoning_is_left_out() {
        let message = json!({"role": "assistant", "content": "4", "reasoning_content": "2+2"});
        let body = encode(completion(message, "stop"), None);
        assert_eq!(body["content"], json!([{"type": "text", "text": "4"}]));
        let message = json!({"role": "assistant", "content": "4", "reasoning_content": "2+2",
            "thinking_blocks": [{"type": "thinking", "thinking": "2+2", "signature": ""}]});
        let body = encode(completion(message, "stop"), None);
        assert_eq!(body["content"], json!([{"type": "text", "text": "4"}]));
    }

    #[test]
    fn text_parts_refusals_and_empty_content() {
        let message = json!({"role": "assistant", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
        assert_eq!(
            encode(completion(message, "stop"), None)["content"],
            json!([{"type": "text", "text": "ab"}])
        );
        let message =
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
        let body = encode(completion(message, "content_filter"), None);
        assert_eq!(
            body["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
        assert_eq!(body["stop_reason"], "refusal");
        let message = json!({"role": "assistant", "content": ""});
        assert_eq!(
            encode(completion(message, "stop"), None)["content"],
            json!([])
        );
    }

    #[test]
    fn broken_canonical_responses_are_server_errors() {
        for body in [
            "not json",
            r#"{"choices": []}"#,
            r#"{"choices": [{"index": 0}]}"#,
            r#"{"id": "x"}"#,
        ] {
            let err = encode_response(&ctx(), body, None).expect_err(body);
            assert_eq!(err.class, orch_plugin_sdk::ErrorClass::Server, "{body}");
        }
    }

    #[test]
    fn dates() {
        for (seconds, expected) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_729_555_200, "2024-10-22T00:00:00Z"),
            (1_740_000_000, "2025-02-19T21:20:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(rfc3339(seconds), expected, "{seconds}");
        }
        assert!(rfc3339(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn models_and_counts() {
        let models = [
            ModelEntry {
                id: "claude-sonnet-4-5".to_owned(),
                owned_by: "anthropic".to_owned(),
                created: 1_759_104_000,
            },
            ModelEntry {
                id: "gpt-4o".to_owned(),
                owned_by: "openai".to_owned(),
                created: 0,
            },
        ];
        let list: Value = serde_json::from_str(&encode_models(&models)).expect("json");
        assert_eq!(
            list,
            json!({
                "data": [
                    {"type": "model", "id": "claude-sonnet-4-5", "display_name": "claude-sonnet-4-5",
                     "created_at": "2025-09-29T00:00:00Z"},
                    {"type": "model", "id": "gpt-4o", "display_name": "gpt-4o",
                     "created_at": "1970-01-01T00:00:00Z"},
                ],
                "has_more": false,
                "first_id": "claude-sonnet-4-5",
                "last_id": "gpt-4o",
            })
        );
        assert_eq!(
            encode_models(&[]),
            r#"{"data":[],"has_more":false,"first_id":null,"last_id":null}"#
        );
        assert_eq!(encode_token_count(1234), r#"{"input_tokens":1234}"#);
    }
}
