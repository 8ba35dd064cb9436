//! Transformer `system-prompt`: injects a system prompt into every request.
//!
//! # Configuration
//!
//! ```toml
//! [[transformers]]
//! plugin = "system-prompt"
//! config = { text = "You are a helpful assistant.", mode = "prepend" }
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `text` | string, required, non-empty | | The system prompt. |
//! | `mode` | `"prepend"`, `"append"` or `"replace"` | `"prepend"` | How `text` joins the client's own system prompt. |
//!
//! * `prepend`: when the first message has the role `system` or `developer`,
//!   `text` goes before its content, separated by a blank line (`"\n\n"`);
//!   content given as parts gets a text part `{"type":"text","text":...}` in
//!   front instead. Otherwise a message `{"role":"system","content":text}` is
//!   inserted first.
//! * `append`: the same, but `text` goes after the existing content (a text
//!   part at the end for parts content).
//! * `replace`: every `system` and `developer` message is removed, wherever it
//!   is, and one `{"role":"system","content":text}` is inserted first. A
//!   request that already has exactly that as its only system message passes
//!   unchanged.
//!
//! Only `messages` is rewritten: every other field of the request, and every
//! message the transformer does not edit, keeps its exact JSON text.

use orch_plugin_sdk::json::RawObject;
use orch_plugin_sdk::{
    ErrorClass, PassThroughFilter, PluginError, PluginInfo, RequestAction, TransformContext,
    Transformer, config,
};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The plugin id.
const ID: &str = "system-prompt";

/// The `system-prompt` transformer.
pub struct Plugin;

impl Transformer for Plugin {
    type Filter = PassThroughFilter;

    fn info() -> PluginInfo {
        PluginInfo::transformer(ID, env!("CARGO_PKG_VERSION"))
            .with_description("Injects a system prompt: prepends, appends or replaces it.")
    }

    fn check_config(config: &str) -> Result<(), PluginError> {
        Config::parse(config).map(drop)
    }

    fn on_request(ctx: &TransformContext, body: &str) -> Result<RequestAction, PluginError> {
        let config = Config::of(ctx)?;
        let mut request = RawObject::parse(body).map_err(|err| {
            PluginError::bad_request(format!("the request is not a JSON object: {err}"))
        })?;
        let messages = match request.get("messages") {
            None | Some("null") => Vec::new(),
            Some(raw) => serde_json::from_str::<Vec<&RawValue>>(raw).map_err(|_| {
                PluginError::bad_request("`messages` must be an array").with_param("messages")
            })?,
        };
        let Some(edited) = edit(&config, &messages)? else {
            return Ok(RequestAction::Pass);
        };
        request.set_raw("messages", edited);
        Ok(RequestAction::Replace(request.to_json()))
    }
}

orch_plugin_sdk::export_transformer!(Plugin);

/// How the configured text joins the client's system prompt.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
enum Mode {
    /// Before the existing system content.
    #[default]
    Prepend,
    /// After the existing system content.
    Append,
    /// Instead of every system and developer message.
    Replace,
}

impl TryFrom<String> for Mode {
    type Error = String;

    fn try_from(mode: String) -> Result<Self, String> {
        match mode.as_str() {
            "prepend" => Ok(Self::Prepend),
            "append" => Ok(Self::Append),
            "replace" => Ok(Self::Replace),
            _ => Err(format!(
                "unknown mode `{mode}`, expected `prepend`, `append` or `replace`"
            )),
        }
    }
}

/// The attachment's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
struct Config {
    /// The system prompt.
    text: String,
    /// How it joins the client's own.
    #[serde(default)]
    mode: Mode,
}

impl Config {
    /// Parses and checks configuration text.
    fn parse(text: &str) -> Result<Self, PluginError> {
        let config: Self = config::parse(ID, text)?;
        if config.text.is_empty() {
            return Err(config::invalid(ID, "text", "must not be empty"));
        }
        Ok(config)
    }

    /// The configuration of a hook's attachment. It passed `check_config`
    /// when the gateway loaded it, so an error here is the gateway's fault.
    fn of(ctx: &TransformContext) -> Result<Self, PluginError> {
        Self::parse(&ctx.config).map_err(|err| err.with_class(ErrorClass::Server))
    }
}

/// The new `messages` JSON text, or `None` when nothing changes.
fn edit(config: &Config, messages: &[&RawValue]) -> Result<Option<String>, PluginError> {
    let text = config.text.as_str();
    let mut out: Vec<String> = Vec::with_capacity(messages.len() + 1);
    match config.mode {
        Mode::Prepend | Mode::Append => {
            let first = messages
                .first()
                .and_then(|message| RawObject::parse(message.get()).ok())
                .filter(is_system_like);
            match first {
                Some(mut first) => {
                    let content = join_content(first.get("content"), text, config.mode)?;
                    first.set_raw("content", content);
                    out.push(first.to_json());
                    out.extend(messages[1..].iter().map(|m| m.get().to_owned()));
                }
                None => {
                    out.push(system_message(text));
                    out.extend(messages.iter().map(|m| m.get().to_owned()));
                }
            }
        }
        Mode::Replace => {
            let wanted = serde_json::json!({"role": "system", "content": text});
            let mut removed = Vec::new();
            out.push(system_message(text));
            for (index, message) in messages.iter().enumerate() {
                match RawObject::parse(message.get()) {
                    Ok(object) if is_system_like(&object) => removed.push(index),
                    _ => out.push(message.get().to_owned()),
                }
            }
            let unchanged = removed == [0]
                && serde_json::from_str::<Value>(messages[0].get()).is_ok_and(|m| m == wanted);
            if unchanged {
                return Ok(None);
            }
        }
    }
    Ok(Some(format!("[{}]", out.join(","))))
}

/// Whether a message has the role `system` or `developer`.
fn is_system_like(message: &RawObject<'_>) -> bool {
    matches!(
        message.value("role"),
        Some(Ok(Value::String(role))) if role == "system" || role == "developer"
    )
}

/// `{"role":"system","content":text}` as JSON text.
fn system_message(text: &str) -> String {
    format!(r#"{{"role":"system","content":{}}}"#, json_string(text))
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The content (JSON text) of a system message with `text` joined to it.
fn join_content(content: Option<&str>, text: &str, mode: Mode) -> Result<String, PluginError> {
    let not_content = || {
        PluginError::bad_request(
            "`messages[0].content` must be a string or an array of content parts",
        )
        .with_param("messages")
    };
    let raw = content.unwrap_or("null").trim_start();
    if raw.starts_with('"') {
        let existing: String = serde_json::from_str(raw).map_err(|_| not_content())?;
        let joined = match mode {
            _ if existing.is_empty() => text.to_owned(),
            Mode::Append => format!("{existing}\n\n{text}"),
            Mode::Prepend | Mode::Replace => format!("{text}\n\n{existing}"),
        };
        Ok(json_string(&joined))
    } else if raw.starts_with('[') {
        let mut parts: Vec<String> = serde_json::from_str::<Vec<&RawValue>>(raw)
            .map_err(|_| not_content())?
            .into_iter()
            .map(|part| part.get().to_owned())
            .collect();
        let part = format!(r#"{{"type":"text","text":{}}}"#, json_string(text));
        match mode {
            Mode::Append => parts.push(part),
            Mode::Prepend | Mode::Replace => parts.insert(0, part),
        }
        Ok(format!("[{}]", parts.join(",")))
    } else if raw == "null" {
        Ok(json_string(text))
    } else {
        Err(not_content())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(config: Value) -> TransformContext {
        TransformContext::for_config(config.to_string())
    }

    fn run(config: Value, body: &str) -> RequestAction {
        Plugin::check_config(&config.to_string()).unwrap();
        Plugin::on_request(&ctx(config), body).unwrap()
    }

    /// The replaced request's `messages`.
    fn messages(config: Value, body: Value) -> Value {
        match run(config, &body.to_string()) {
            RequestAction::Replace(json) => {
                serde_json::from_str::<Value>(&json).unwrap()["messages"].clone()
            }
            other => panic!("expected a replacement, got {other:?}"),
        }
    }

    fn config_error(config: &str) -> String {
        let err = Plugin::check_config(config).unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
        err.message
    }

    #[test]
    fn info() {
        let info = Plugin::info();
        assert_eq!(info.id, "system-prompt");
        assert!(!info.description.is_empty());
    }

    #[test]
    fn prepend_inserts_a_system_message_when_there_is_none() {
        let got = messages(
            json!({"text": "Be brief."}),
            json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}),
        );
        assert_eq!(
            got,
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        );
    }

    #[test]
    fn prepend_prefixes_the_first_system_message() {
        let got = messages(
            json!({"text": "Be brief.", "mode": "prepend"}),
            json!({"messages": [{"role": "system", "content": "Speak French."}, {"role": "user", "content": "Hi"}]}),
        );
        assert_eq!(
            got[0],
            json!({"role": "system", "content": "Be brief.\n\nSpeak French."})
        );
        assert_eq!(got[1], json!({"role": "user", "content": "Hi"}));
        assert_eq!(got.as_array().unwrap().len(), 2);
    }

    #[test]
    fn prepend_keeps_a_developer_role() {
        let got = messages(
            json!({"text": "Be brief."}),
            json!({"messages": [{"role": "developer", "content": "Speak French."}]}),
        );
        assert_eq!(
            got,
            json!([{"role": "developer", "content": "Be brief.\n\nSpeak French."}])
        );
    }

    #[test]
    fn prepend_inserts_a_text_part_first() {
        let got = messages(
            json!({"text": "Be brief."}),
            json!({"messages": [{"role": "system", "content": [{"type": "text", "text": "Speak French."}]}]}),
        );
        assert_eq!(
            got[0]["content"],
            json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Speak French."}])
        );
    }

    #[test]
    fn a_later_system_message_does_not_count() {
        let got = messages(
            json!({"text": "Be brief."}),
            json!({"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "X"}]}),
        );
        assert_eq!(got[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(got[2], json!({"role": "system", "content": "X"}));
    }

    #[test]
    fn empty_or_null_system_content_becomes_the_text() {
        for content in [json!(""), json!(null)] {
            for mode in ["prepend", "append"] {
                let got = messages(
                    json!({"text": "Be brief.", "mode": mode}),
                    json!({"messages": [{"role": "system", "content": content}]}),
                );
                assert_eq!(got, json!([{"role": "system", "content": "Be brief."}]));
            }
        }
    }

    #[test]
    fn append_suffixes_the_first_system_message() {
        let got = messages(
            json!({"text": "Be brief.", "mode": "append"}),
            json!({"messages": [{"role": "system", "content": "Speak French."}, {"role": "user", "content": "Hi"}]}),
        );
        assert_eq!(
            got[0],
            json!({"role": "system", "content": "Speak French.\n\nBe brief."})
        );
    }

    #[test]
    fn append_adds_a_text_part_last() {
        let got = messages(
            json!({"text": "Be brief.", "mode": "append"}),
            json!({"messages": [{"role": "developer", "content": [{"type": "text", "text": "A"}]}]}),
        );
        assert_eq!(
            got[0]["content"],
            json!([{"type": "text", "text": "A"}, {"type": "text", "text": "Be brief."}])
        );
    }

    #[test]
    fn append_inserts_a_system_message_when_there_is_none() {
        let got = messages(
            json!({"text": "Be brief.", "mode": "append"}),
            json!({"messages": [{"role": "user", "content": "Hi"}]}),
        );
        assert_eq!(got[0], json!({"role": "system", "content": "Be brief."}));
    }

    #[test]
    fn replace_removes_every_system_and_developer_message() {
        let got = messages(
            json!({"text": "Be brief.", "mode": "replace"}),
            json!({"messages": [
                {"role": "system", "content": "A"},
                {"role": "user", "content": "Hi"},
                {"role": "developer", "content": "B"},
                {"role": "assistant", "content": "Hello"}
            ]}),
        );
        assert_eq!(
            got,
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}
            ])
        );
    }

    #[test]
    fn replace_inserts_when_there_is_no_system_message() {
        let got = messages(
            json!({"text": "Be brief.", "mode": "replace"}),
            json!({"messages": [{"role": "user", "content": "Hi"}]}),
        );
        assert_eq!(got[0], json!({"role": "system", "content": "Be brief."}));
    }

    #[test]
    fn replace_passes_when_the_prompt_is_already_there() {
        let config = json!({"text": "Be brief.", "mode": "replace"});
        let body = r#"{"messages": [{"content": "Be brief.", "role": "system"}, {"role": "user", "content": "Hi"}]}"#;
        assert_eq!(run(config.clone(), body), RequestAction::Pass);
        // Same text but an extra field, or a developer role: a change.
        let body = json!({"messages": [{"role": "system", "content": "Be brief.", "name": "x"}]});
        assert_eq!(
            messages(config.clone(), body),
            json!([{"role": "system", "content": "Be brief."}])
        );
        let body = json!({"messages": [{"role": "developer", "content": "Be brief."}]});
        assert_eq!(
            messages(config, body),
            json!([{"role": "system", "content": "Be brief."}])
        );
    }

    #[test]
    fn keeps_unknown_fields_and_untouched_messages_verbatim() {
        let body = r#"{"model":"m","x_custom":{"b":1.50,"a":[1, 2]},"messages":[{"role":"system","content":"A","name":"ops"},{"role":"user","content":"Hi","x":1e3}],"temperature":0.70}"#;
        let RequestAction::Replace(json) = run(json!({"text": "T"}), body) else {
            panic!("expected a replacement");
        };
        assert_eq!(
            json,
            r#"{"model":"m","x_custom":{"b":1.50,"a":[1, 2]},"messages":[{"role":"system","content":"T\n\nA","name":"ops"},{"role":"user","content":"Hi","x":1e3}],"temperature":0.70}"#
        );
    }

    #[test]
    fn missing_messages_get_the_system_message() {
        let got = messages(json!({"text": "T"}), json!({"model": "m"}));
        assert_eq!(got, json!([{"role": "system", "content": "T"}]));
    }

    #[test]
    fn refuses_malformed_requests() {
        let ctx = ctx(json!({"text": "T"}));
        let err = Plugin::on_request(&ctx, "[1]").unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
        let err = Plugin::on_request(&ctx, r#"{"messages":"hi"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages"));
        let err = Plugin::on_request(&ctx, r#"{"messages":[{"role":"system","content":5}]}"#)
            .unwrap_err();
        assert!(
            err.message.contains("messages[0].content"),
            "{}",
            err.message
        );
    }

    #[test]
    fn responses_pass() {
        let action = Plugin::on_response(&ctx(json!({"text": "T"})), "{}", None).unwrap();
        assert_eq!(action, orch_plugin_sdk::ResponseAction::Pass);
    }

    #[test]
    fn config_rejections_name_the_key() {
        let message = config_error(r#"{"text":"T","tone":"x"}"#);
        assert!(message.contains("unknown field `tone`"), "{message}");
        let message = config_error("{}");
        assert!(message.contains("missing field `text`"), "{message}");
        let message = config_error(r#"{"text":1}"#);
        assert!(message.contains("`text`: invalid type"), "{message}");
        let message = config_error(r#"{"text":""}"#);
        assert!(message.contains("`text`: must not be empty"), "{message}");
        let message = config_error(r#"{"text":"T","mode":"shout"}"#);
        assert!(
            message.contains("`mode`: unknown mode `shout`"),
            "{message}"
        );
        let message = config_error(r#"{"text":"T","mode":true}"#);
        assert!(message.contains("`mode`: invalid type"), "{message}");
        for config in ["[]", r#"["T"]"#, "null", "\"T\""] {
            let message = config_error(config);
            assert!(message.contains("must be a JSON object"), "{message}");
        }
        config_error(r#"{"text":"T"} x"#);
        assert!(Plugin::check_config(r#"{"text":"T","mode":"replace"}"#).is_ok());
    }

    #[test]
    fn a_bad_config_at_request_time_is_a_server_error() {
        let err = Plugin::on_request(&ctx(json!({})), r#"{"messages":[]}"#).unwrap_err();
        assert_eq!(err.class, ErrorClass::Server);
        assert!(!err.retryable);
    }
}
