//! The attachment configuration (see the crate documentation).

use orch_plugin_sdk::PluginError;
use serde_json::Value;

use crate::detect::{Kind, KindSet, Match};

/// The configuration keys, in the order error messages list them.
const KEYS: [&str; 3] = ["kinds", "replacement", "responses"];

/// The default `replacement` template.
pub const DEFAULT_REPLACEMENT: &str = "[REDACTED:{kind}]";

/// A parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The kinds to redact.
    pub kinds: KindSet,
    /// Whether responses and streams are redacted too.
    pub responses: bool,
    /// The replacement text of each kind, by [`Kind::index`].
    replacements: [String; 4],
}

impl Default for Config {
    fn default() -> Self {
        Self::new(KindSet::ALL, DEFAULT_REPLACEMENT, false)
    }
}

impl Config {
    /// A configuration redacting `kinds` with the `template` (`{kind}` stands
    /// for the kind's upper-case label).
    pub fn new(kinds: KindSet, template: &str, responses: bool) -> Self {
        let replacements = Kind::ALL.map(|kind| template.replace("{kind}", kind.label()));
        let mut config = Self {
            kinds,
            responses,
            replacements: Default::default(),
        };
        for (kind, text) in Kind::ALL.into_iter().zip(replacements) {
            config.replacements[kind.index()] = text;
        }
        config
    }

    /// Parses configuration text: a JSON object (empty text counts as `{}`).
    /// Unknown keys, wrong types and unknown kinds are `bad-request` errors
    /// whose message names the key (and whose `param` is the key).
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(error("the configuration must be a JSON object")),
            Err(err) => {
                return Err(error(format!("the configuration is not valid JSON: {err}")));
            }
        };
        let mut kinds = KindSet::ALL;
        let mut template = DEFAULT_REPLACEMENT.to_owned();
        let mut responses = false;
        for (key, value) in object {
            match key.as_str() {
                "kinds" => kinds = parse_kinds(&value)?,
                "replacement" => {
                    let Value::String(text) = value else {
                        return Err(key_error("replacement", "must be a string"));
                    };
                    template = text;
                }
                "responses" => {
                    let Value::Bool(flag) = value else {
                        return Err(key_error("responses", "must be a boolean"));
                    };
                    responses = flag;
                }
                _ => {
                    return Err(error(format!(
                        "unknown key `{key}` (known keys: {})",
                        KEYS.join(", ")
                    ))
                    .with_param(key));
                }
            }
        }
        Ok(Self::new(kinds, &template, responses))
    }

    /// The replacement text for `kind`.
    pub fn replacement(&self, kind: Kind) -> &str {
        &self.replacements[kind.index()]
    }

    /// `text[from..to]` with each match replaced. `matches` are sorted and
    /// disjoint (as [`crate::detect::find`] returns them); a match that sticks
    /// out of the range is replaced as a whole but only its part inside the
    /// range is consumed.
    pub fn redact_range(&self, text: &str, from: usize, to: usize, matches: &[Match]) -> String {
        let mut out = String::with_capacity(to.saturating_sub(from));
        let mut pos = from;
        for m in matches {
            if m.end <= from || m.start >= to {
                continue;
            }
            let start = m.start.max(from);
            out.push_str(&text[pos..start]);
            out.push_str(self.replacement(m.kind));
            pos = m.end.min(to);
        }
        out.push_str(&text[pos..to]);
        out
    }

    /// `text` with every match replaced, or `None` when nothing matched.
    pub fn redact(&self, text: &str) -> Option<String> {
        if self.kinds.is_empty() {
            return None;
        }
        let matches = crate::detect::find(text, self.kinds);
        (!matches.is_empty()).then(|| self.redact_range(text, 0, text.len(), &matches))
    }
}

/// Parses `kinds`: a non-empty array of kind names.
fn parse_kinds(value: &Value) -> Result<KindSet, PluginError> {
    let not_array = || {
        key_error(
            "kinds",
            format!(
                "must be an array of strings (any of: {})",
                kind_names().join(", ")
            ),
        )
    };
    let Value::Array(items) = value else {
        return Err(not_array());
    };
    if items.is_empty() {
        return Err(key_error("kinds", "must list at least one kind"));
    }
    let mut kinds = KindSet::EMPTY;
    for item in items {
        let Value::String(name) = item else {
            return Err(not_array());
        };
        let Some(kind) = Kind::from_name(name) else {
            return Err(key_error(
                "kinds",
                format!(
                    "contains unknown kind `{name}` (known kinds: {})",
                    kind_names().join(", ")
                ),
            ));
        };
        kinds.insert(kind);
    }
    Ok(kinds)
}

/// The configuration names of all kinds.
fn kind_names() -> [&'static str; 4] {
    Kind::ALL.map(Kind::name)
}

/// A configuration error: ``pii-redact config: <message>``.
fn error(message: impl std::fmt::Display) -> PluginError {
    PluginError::bad_request(format!("pii-redact config: {message}"))
}

/// A configuration error about `key`: ``pii-redact config: `key` <why>``.
fn key_error(key: &str, why: impl std::fmt::Display) -> PluginError {
    error(format!("`{key}` {why}")).with_param(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        Config::parse(text).unwrap_err().message
    }

    #[test]
    fn defaults() {
        for text in ["", "  ", "{}"] {
            let config = Config::parse(text).unwrap();
            assert_eq!(config, Config::default());
            assert_eq!(config.kinds, KindSet::ALL);
            assert!(!config.responses);
            assert_eq!(config.replacement(Kind::ApiKey), "[REDACTED:API_KEY]");
        }
    }

    #[test]
    fn full() {
        let config = Config::parse(
            r#"{"kinds": ["email", "api_key", "email"], "replacement": "<{kind}:{kind}>", "responses": true}"#,
        )
        .unwrap();
        assert!(config.responses);
        assert!(config.kinds.contains(Kind::Email) && config.kinds.contains(Kind::ApiKey));
        assert!(!config.kinds.contains(Kind::Phone) && !config.kinds.contains(Kind::Card));
        assert_eq!(config.replacement(Kind::Email), "<EMAIL:EMAIL>");
        assert_eq!(
            config.redact("a@b.com +1 415 555 0100").as_deref(),
            Some("<EMAIL:EMAIL> +1 415 555 0100")
        );
        let plain = Config::parse(r#"{"replacement": "***"}"#).unwrap();
        assert_eq!(plain.replacement(Kind::Card), "***");
        assert_eq!(plain.redact("nothing here"), None);
    }

    #[test]
    fn errors() {
        let cases = [
            (
                r#"{"kind": ["email"]}"#,
                "pii-redact config: unknown key `kind` (known keys: kinds, replacement, responses)",
            ),
            (
                r#"{"kinds": "email"}"#,
                "pii-redact config: `kinds` must be an array of strings (any of: email, phone, card, api_key)",
            ),
            (
                r#"{"kinds": [1]}"#,
                "pii-redact config: `kinds` must be an array of strings (any of: email, phone, card, api_key)",
            ),
            (
                r#"{"kinds": []}"#,
                "pii-redact config: `kinds` must list at least one kind",
            ),
            (
                r#"{"kinds": ["email", "ssn"]}"#,
                "pii-redact config: `kinds` contains unknown kind `ssn` (known kinds: email, phone, card, api_key)",
            ),
            (
                r#"{"replacement": null}"#,
                "pii-redact config: `replacement` must be a string",
            ),
            (
                r#"{"responses": "yes"}"#,
                "pii-redact config: `responses` must be a boolean",
            ),
            (
                "[1]",
                "pii-redact config: the configuration must be a JSON object",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(text), expected, "{text}");
            assert_eq!(
                Config::parse(text).unwrap_err().class,
                orch_plugin_sdk::ErrorClass::BadRequest
            );
        }
        assert!(message("{").starts_with("pii-redact config: the configuration is not valid JSON"));
        assert_eq!(
            Config::parse(r#"{"responses": 1}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("responses")
        );
    }
}
