//! Transformer `pii-redact`: PII redaction (e-mail addresses, phone numbers,
//! payment card numbers, API-key-like strings) in requests, and optionally in
//! responses and streams.
//!
//! Each match is replaced by `[REDACTED:<KIND>]`, `KIND` being `EMAIL`,
//! `PHONE`, `CARD` or `API_KEY`.
//!
//! # Configuration
//!
//! A JSON object; every key is optional:
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `kinds` | array of `"email"`, `"phone"`, `"card"`, `"api_key"` | all four | what to redact (at least one) |
//! | `replacement` | string | `"[REDACTED:{kind}]"` | the text replacing a match; `{kind}` becomes `EMAIL`, `PHONE`, `CARD` or `API_KEY` |
//! | `responses` | boolean | `false` | also redact non-streaming responses and streams |
//!
//! ```json
//! {"kinds": ["email", "card", "api_key"], "replacement": "<{kind}>", "responses": true}
//! ```
//!
//! Unknown keys, wrong types and unknown kinds are rejected by
//! `check_config` with a `bad-request` error naming the key, e.g.
//! ``pii-redact config: unknown key `kind` (known keys: kinds, replacement, responses)``.
//!
//! # What is redacted where
//!
//! * Requests: the `content` of every message of every role, when it is a
//!   string, and the `text` of its `{"type": "text"}` parts when it is an
//!   array (other parts are left alone). Nothing else of the request is
//!   touched; when nothing matches the request passes unchanged.
//! * Responses (with `responses`): `choices[].message.content`.
//! * Streams (with `responses`): `choices[].delta.content` (see below).
//!
//! # Detection rules
//!
//! All patterns are ASCII; text around them may be anything. A match must
//! not be glued to surrounding letters or digits.
//!
//! * **E-mail**: `local@domain`, the local part of ASCII letters, digits and
//!   `._%+-` (leading dots dropped, at most 64 bytes), the domain two or more
//!   labels of letters, digits and `-` ending in a top-level domain of two or
//!   more letters (`a@b.com.123` redacts `a@b.com`).
//! * **API key**: `sk-` followed by 16 or more of `[A-Za-z0-9_-]` (covers
//!   `sk-proj-` and `sk-ant-`); `AKIA` or `ASIA` followed by exactly 16 of
//!   `[A-Z0-9]`; `ghp_`, `gho_`, `ghs_`, `ghu_`, `ghr_` followed by 20 or
//!   more letters and digits; `github_pat_` followed by 22 or more of
//!   `[A-Za-z0-9_]`; `AIza` followed by 35 or more of `[A-Za-z0-9_-]`;
//!   `xoxb-`, `xoxa-`, `xoxp-`, `xoxr-`, `xoxs-` followed by 10 or more of
//!   `[A-Za-z0-9-]`. Generic long hex or base64 secrets are not detected.
//! * **Card**: 13 to 19 digits, ungrouped or in groups joined by single
//!   spaces or by single dashes (one kind per number), passing the Luhn
//!   check. A longer run of groups is searched for such a number starting
//!   at any group (`ref 99 4111 1111 1111 1111` redacts the card only).
//! * **Phone**: numbers are read as *sequences*: an optional `+`, then
//!   groups of digits (or a parenthesised group of 1 to 5 digits, `(415)`,
//!   `(0)`) joined by a single space, `-` or `.` (or nothing next to a
//!   parenthesised group). A sequence is judged as a whole, so digits glued
//!   to other groups by single spaces are not split off
//!   (`2024-05-01 415-555-0100` is not redacted). It is a phone number when
//!   it has 9 to 15 digits and, with a leading `+` (international form), at
//!   most 7 groups; without a `+` (national form):
//!   * 2 to 5 groups (so a plain run of digits, e.g. an ID, never matches),
//!     none longer than 8 digits, only the first one a single digit;
//!   * with a `.` separator, at least 3 groups (no decimals);
//!   * not an IPv4 address (4 dot-separated groups of at most 3 digits);
//!   * not thousands grouping (1 to 3 digits, then groups of exactly 3 joined
//!     by spaces or dots: `100 000 000`, `1.234.567.890`);
//!   * not a date: the first three groups are not `YYYY MM DD` or
//!     `DD MM YYYY` / `MM DD YYYY` with a year in 1900..=2099
//!     (`2024-05-01 10:30` is left alone).
//!
//!   A sequence that holds a Luhn-valid card is a card, not a phone number.
//!   Matched: `+1 415 555 0100`, `+44 (0)20 7946 0958`, `+14155550100`,
//!   `(415) 555-0100`, `415.555.0100`, `1-800-555-0100`, `01 23 45 67 89`,
//!   `030 12345678`. Not matched: `version 1.2.3`, `2024-05-01`,
//!   `order 12345`, `4155550100`, `192.168.100.200`, `978-3-16-148410-0`.
//!
//! Overlapping matches are merged into one replacement (with the kind of the
//! earliest, longest one), so no part of either stays visible.
//!
//! # Streams
//!
//! A match can straddle chunks. Per choice index the filter holds back the
//! raw tail of the text that might still become (or extend) a match: the
//! trailing run of e-mail/key characters (letters, digits, `._%+-@`) and the
//! trailing run of number characters (digits, spaces, `+-.()`) from its first
//! digit, `+` or `(`. For each chunk with `delta.content` it redacts held
//! text plus the new content, puts the part that is final into that chunk's
//! `delta.content`, and holds the rest:
//!
//! * a chunk whose rewritten content is empty is dropped when it carries
//!   nothing else (no role, finish reason, tool calls, logprobs, usage, ...),
//!   and sent with `"content": ""` otherwise; a chunk whose content is
//!   unchanged is sent byte for byte as it came;
//! * at most 256 bytes are held per choice; beyond that the oldest text is
//!   released (so only a match longer than that can escape detection);
//! * a chunk with a `finish_reason` releases everything held for its choice
//!   in its own `delta.content`;
//! * a chunk without choices (usage) first releases everything held, as a
//!   synthetic chunk sent before it; so does the end of the stream. The
//!   synthetic chunk copies `id`, `object`, `created` and `model` from the
//!   latest chunk and has one choice per held index with `delta.content` and
//!   `"finish_reason": null`;
//! * other chunks (role, tool calls without content) pass unchanged.
//!
//! The concatenated contents are exactly the redaction of the whole text
//! (unless the 256-byte bound was hit). Without `responses` every chunk
//! passes untouched without being parsed.
//!
//! Bodies that are not JSON objects are errors (the plugin fails closed),
//! except that streams pass untouched without `responses`.

mod config;
mod detect;
mod stream;

use orch_plugin_sdk::json::RawObject;
use orch_plugin_sdk::{
    PluginError, PluginInfo, RequestAction, ResponseAction, TransformContext, Transformer, Usage,
};
use serde_json::Value;

use crate::config::Config;
pub use crate::stream::PiiFilter;

/// The `pii-redact` transformer.
pub struct Plugin;

impl Transformer for Plugin {
    type Filter = PiiFilter;

    fn info() -> PluginInfo {
        PluginInfo::transformer("pii-redact", env!("CARGO_PKG_VERSION")).with_description(
            "Redacts e-mail addresses, phone numbers, payment card numbers and API keys \
             in requests, and optionally in responses and streams",
        )
    }

    fn check_config(config: &str) -> Result<(), PluginError> {
        Config::parse(config).map(|_| ())
    }

    fn on_request(ctx: &TransformContext, body: &str) -> Result<RequestAction, PluginError> {
        let config = Config::parse(&ctx.config)?;
        Ok(match redact_request(&config, body)? {
            Some(body) => RequestAction::Replace(body),
            None => RequestAction::Pass,
        })
    }

    fn on_response(
        ctx: &TransformContext,
        body: &str,
        _usage: Option<Usage>,
    ) -> Result<ResponseAction, PluginError> {
        let config = Config::parse(&ctx.config)?;
        if !config.responses {
            return Ok(ResponseAction::Pass);
        }
        Ok(match redact_response(&config, body)? {
            Some(body) => ResponseAction::Replace(body),
            None => ResponseAction::Pass,
        })
    }
}

/// Redacts `messages[].content` of a canonical request; the new body, or
/// `None` when nothing matched.
fn redact_request(config: &Config, body: &str) -> Result<Option<String>, PluginError> {
    let not_json = || PluginError::bad_request("pii-redact: the request is not a JSON object");
    let mut object = RawObject::parse(body).map_err(|_| not_json())?;
    let Some(messages) = object.value("messages") else {
        return Ok(None);
    };
    let Value::Array(mut messages) = messages.map_err(|_| not_json())? else {
        return Ok(None);
    };
    let mut changed = false;
    for message in &mut messages {
        if let Some(content) = message.get_mut("content") {
            changed |= redact_content(config, content);
        }
    }
    Ok(changed.then(|| {
        object.set("messages", &Value::Array(messages));
        object.to_json()
    }))
}

/// Redacts a message `content`: a string, or an array of parts whose
/// `{"type": "text"}` parts have their `text` redacted. Whether it changed.
fn redact_content(config: &Config, content: &mut Value) -> bool {
    match content {
        Value::String(text) => redact_string(config, text),
        Value::Array(parts) => {
            let mut changed = false;
            for part in parts {
                if part.get("type").and_then(Value::as_str) != Some("text") {
                    continue;
                }
                if let Some(Value::String(text)) = part.get_mut("text") {
                    changed |= redact_string(config, text);
                }
            }
            changed
        }
        _ => false,
    }
}

/// Redacts `text` in place; whether it changed.
fn redact_string(config: &Config, text: &mut String) -> bool {
    match config.redact(text) {
        Some(redacted) => {
            *text = redacted;
            true
        }
        None => false,
    }
}

/// Redacts `choices[].message.content` of a canonical response; the new
/// body, or `None` when nothing matched.
fn redact_response(config: &Config, body: &str) -> Result<Option<String>, PluginError> {
    let not_json = || PluginError::server("pii-redact: the response is not a JSON object");
    let mut object = RawObject::parse(body).map_err(|_| not_json())?;
    let Some(choices) = object.value("choices") else {
        return Ok(None);
    };
    let Value::Array(mut choices) = choices.map_err(|_| not_json())? else {
        return Ok(None);
    };
    let mut changed = false;
    for choice in &mut choices {
        if let Some(Value::String(text)) = choice
            .get_mut("message")
            .and_then(|message| message.get_mut("content"))
        {
            changed |= redact_string(config, text);
        }
    }
    Ok(changed.then(|| {
        object.set("choices", &Value::Array(choices));
        object.to_json()
    }))
}

orch_plugin_sdk::export_transformer!(Plugin);

#[cfg(test)]
mod tests {
    use orch_plugin_sdk::StreamFilter;
    use serde_json::json;

    use super::*;

    fn replaced_request(action: RequestAction) -> Value {
        match action {
            RequestAction::Replace(body) => serde_json::from_str(&body).unwrap(),
            other => panic!("expected Replace, got {other:?}"),
        }
    }

    #[test]
    fn info() {
        let info = Plugin::info();
        assert_eq!(info.id, "pii-redact");
        assert!(!info.description.is_empty());
    }

    #[test]
    fn check_config() {
        assert!(Plugin::check_config("{}").is_ok());
        assert!(Plugin::check_config(r#"{"kinds": ["phone"], "responses": true}"#).is_ok());
        let err = Plugin::check_config(r#"{"kinds": ["pin"]}"#).unwrap_err();
        assert!(err.message.contains("`kinds`"), "{}", err.message);
        assert_eq!(err.param.as_deref(), Some("kinds"));
    }

    #[test]
    fn request_string_and_parts() {
        // Top-level fields in a non-sorted order, to check it is kept.
        let body = json!({
            "messages": [
                {"role": "system", "content": "Be nice."},
                {"role": "user", "content": "I am jane@example.com, call +1 415 555 0100"},
                {"role": "user", "content": [
                    {"type": "text", "text": "card 4111-1111-1111-1111"},
                    {"type": "image_url", "image_url": {"url": "https://x.example/a@b.com"}},
                    {"type": "text", "text": "nothing"},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t", "content": "key sk-abcdefghijklmnop1234"},
            ],
        });
        let body = format!(
            r#"{{"model":"gpt-4o","messages":{},"temperature":0.5}}"#,
            body["messages"]
        );
        let action = Plugin::on_request(&TransformContext::for_config("{}"), &body).unwrap();
        let value = replaced_request(action);
        let messages = &value["messages"];
        assert_eq!(messages[0]["content"], "Be nice.");
        assert_eq!(
            messages[1]["content"],
            "I am [REDACTED:EMAIL], call [REDACTED:PHONE]"
        );
        assert_eq!(messages[2]["content"][0]["text"], "card [REDACTED:CARD]");
        assert_eq!(
            messages[2]["content"][1]["image_url"]["url"],
            "https://x.example/a@b.com"
        );
        assert_eq!(messages[2]["content"][2]["text"], "nothing");
        assert_eq!(messages[4]["content"], "key [REDACTED:API_KEY]");
        assert_eq!(value["temperature"], 0.5);
        assert_eq!(value["model"], "gpt-4o");
        let RequestAction::Replace(text) =
            Plugin::on_request(&TransformContext::for_config("{}"), &body).unwrap()
        else {
            panic!("expected Replace");
        };
        assert!(
            text.starts_with(r#"{"model":"gpt-4o","messages":"#),
            "{text}"
        );
    }

    #[test]
    fn request_unchanged_passes() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"version 1.2.3 on 2024-05-01, order 12345"}]}"#;
        assert_eq!(
            Plugin::on_request(&TransformContext::for_config("{}"), body).unwrap(),
            RequestAction::Pass
        );
        let body = r#"{"model":"m","messages":[{"role":"user","content":"mail a@b.com"}]}"#;
        // Not configured kind: pass.
        let only_cards = TransformContext::for_config(r#"{"kinds": ["card"]}"#);
        assert_eq!(
            Plugin::on_request(&only_cards, body).unwrap(),
            RequestAction::Pass
        );
        assert_eq!(
            Plugin::on_request(&TransformContext::for_config("{}"), r#"{"model":"m"}"#).unwrap(),
            RequestAction::Pass
        );
        assert!(Plugin::on_request(&TransformContext::for_config("{}"), "not json").is_err());
        assert!(Plugin::on_request(&TransformContext::for_config(r#"{"bad": 1}"#), body).is_err());
    }

    #[test]
    fn custom_replacement() {
        let body = r#"{"messages":[{"role":"user","content":"a@b.com and 4111111111111111"}]}"#;
        let action = Plugin::on_request(
            &TransformContext::for_config(r#"{"replacement": "<{kind}>"}"#),
            body,
        )
        .unwrap();
        assert_eq!(
            action,
            RequestAction::Replace(
                r#"{"messages":[{"content":"<EMAIL> and <CARD>","role":"user"}]}"#.to_owned()
            )
        );
    }

    #[test]
    fn response_redaction() {
        let choices = json!([
                {"index": 0, "message": {"role": "assistant", "content": "Reach me at jane@example.com"}, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": null}, "finish_reason": "tool_calls"},
        ]);
        let body = format!(
            r#"{{"id":"r","object":"chat.completion","model":"m","choices":{choices},"usage":{{"prompt_tokens":1,"completion_tokens":2}}}}"#
        );
        // Off by default.
        assert_eq!(
            Plugin::on_response(&TransformContext::for_config("{}"), &body, None).unwrap(),
            ResponseAction::Pass
        );
        let on = TransformContext::for_config(r#"{"responses": true}"#);
        let ResponseAction::Replace(text) = Plugin::on_response(&on, &body, None).unwrap() else {
            panic!("expected Replace");
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["choices"][0]["message"]["content"],
            "Reach me at [REDACTED:EMAIL]"
        );
        assert_eq!(value["choices"][1]["message"]["content"], Value::Null);
        assert_eq!(value["usage"]["completion_tokens"], 2);
        assert!(text.starts_with(r#"{"id":"r","object":"chat.completion","model":"m","choices":"#));
        let clean = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}]}"#;
        assert_eq!(
            Plugin::on_response(&on, clean, None).unwrap(),
            ResponseAction::Pass
        );
        assert!(Plugin::on_response(&on, "[]", None).is_err());
    }

    #[test]
    fn stream_through_trait() {
        let mut filter = <Plugin as Transformer>::Filter::new(TransformContext::for_config(
            r#"{"responses": true}"#,
        ));
        let chunk = json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "x@y.com"}}]});
        assert!(filter.on_chunk(chunk.to_string()).unwrap().is_empty());
        let out = filter.on_end(None).unwrap();
        assert_eq!(
            out,
            [
                r#"{"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"[REDACTED:EMAIL]"},"finish_reason":null,"index":0}]}"#
            ]
        );
    }
}
