//! Transformer `model-rewrite`: rewrites the requested model by rule.
//!
//! # Configuration
//!
//! ```toml
//! [[transformers]]
//! plugin = "model-rewrite"
//! config = { rules = [
//!     { match = "gpt-4*", to = "gpt-4o-mini", clients = ["key_trial"] },
//!     { match = "gpt-4", to = "gpt-4o" },
//!     { match = "*-latest", to = "claude-sonnet-4-5" },
//! ] }
//! ```
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `rules` | array of rule objects, required, non-empty | Tried in order; the first that matches wins. |
//! | `rules[].match` | string, required, non-empty | A glob on the request's `model`: `*` matches any run of characters (including none), everything else matches itself, case-sensitively. |
//! | `rules[].to` | string, required, non-empty | The model to ask for instead. |
//! | `rules[].clients` | array of client key ids, optional, non-empty | Restricts the rule to requests made with one of these client keys; requests without a client key never match it. |
//!
//! Only the top-level `model` string is rewritten; every other field keeps its
//! exact JSON text. A request that matches no rule, has no `model` string, or
//! would be rewritten to the model it already asks for passes unchanged.

use orch_plugin_sdk::json::RawObject;
use orch_plugin_sdk::{
    ErrorClass, PassThroughFilter, PluginError, PluginInfo, RequestAction, TransformContext,
    Transformer, config, log,
};
use serde::Deserialize;
use serde_json::Value;

/// The plugin id.
const ID: &str = "model-rewrite";

/// The `model-rewrite` transformer.
pub struct Plugin;

impl Transformer for Plugin {
    type Filter = PassThroughFilter;

    fn info() -> PluginInfo {
        PluginInfo::transformer(ID, env!("CARGO_PKG_VERSION")).with_description(
            "Rewrites the requested model by glob rules, optionally per client key.",
        )
    }

    fn check_config(config: &str) -> Result<(), PluginError> {
        Config::parse(config).map(drop)
    }

    fn on_request(ctx: &TransformContext, body: &str) -> Result<RequestAction, PluginError> {
        let config = Config::of(ctx)?;
        let mut request = RawObject::parse(body).map_err(|err| {
            PluginError::bad_request(format!("the request is not a JSON object: {err}"))
        })?;
        let Some(Ok(Value::String(model))) = request.value("model") else {
            return Ok(RequestAction::Pass);
        };
        let client = ctx.client_key_id.as_deref();
        let Some(rule) = config
            .rules
            .iter()
            .find(|rule| rule.applies(&model, client))
        else {
            return Ok(RequestAction::Pass);
        };
        if rule.to == model {
            return Ok(RequestAction::Pass);
        }
        log::debug!(
            "model `{model}` rewritten to `{}` (rule `{}`)",
            rule.to,
            rule.pattern
        );
        request.set_string("model", &rule.to);
        Ok(RequestAction::Replace(request.to_json()))
    }
}

orch_plugin_sdk::export_transformer!(Plugin);

/// The attachment's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
struct Config {
    /// The rules, in order.
    rules: Vec<Rule>,
}

/// One rewrite rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a rule object with `match` and `to`")]
struct Rule {
    /// The glob the requested model must match.
    #[serde(rename = "match")]
    pattern: String,
    /// The model to ask for instead.
    to: String,
    /// The client key ids the rule is restricted to.
    #[serde(default)]
    clients: Option<Vec<String>>,
}

impl Config {
    /// Parses and checks configuration text.
    fn parse(text: &str) -> Result<Self, PluginError> {
        let config: Self = config::parse(ID, text)?;
        if config.rules.is_empty() {
            return Err(config::invalid(
                ID,
                "rules",
                "must contain at least one rule",
            ));
        }
        for (index, rule) in config.rules.iter().enumerate() {
            if rule.pattern.is_empty() {
                return Err(config::invalid(
                    ID,
                    format!("rules[{index}].match"),
                    "must not be empty",
                ));
            }
            if rule.to.is_empty() {
                return Err(config::invalid(
                    ID,
                    format!("rules[{index}].to"),
                    "must not be empty",
                ));
            }
            match rule.clients.as_deref() {
                Some([]) => {
                    return Err(config::invalid(
                        ID,
                        format!("rules[{index}].clients"),
                        "must not be empty (leave it out to apply the rule to every client)",
                    ));
                }
                Some(clients) => {
                    if let Some(at) = clients.iter().position(String::is_empty) {
                        return Err(config::invalid(
                            ID,
                            format!("rules[{index}].clients[{at}]"),
                            "must not be empty",
                        ));
                    }
                }
                None => {}
            }
        }
        Ok(config)
    }

    /// The configuration of a hook's attachment. It passed `check_config`
    /// when the gateway loaded it, so an error here is the gateway's fault.
    fn of(ctx: &TransformContext) -> Result<Self, PluginError> {
        Self::parse(&ctx.config).map_err(|err| err.with_class(ErrorClass::Server))
    }
}

impl Rule {
    /// Whether the rule rewrites `model` for a request made with `client`.
    fn applies(&self, model: &str, client: Option<&str>) -> bool {
        let client_ok = match &self.clients {
            None => true,
            Some(clients) => client.is_some_and(|id| clients.iter().any(|c| c == id)),
        };
        client_ok && glob_matches(&self.pattern, model)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters
/// (including none) and everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some(mut last) = pieces.next() else {
        return rest.is_empty(); // no `*`: exact match
    };
    // The pieces between stars match leftmost-first; the final piece must end
    // the text.
    for piece in pieces {
        match rest.find(last) {
            Some(at) => rest = &rest[at + last.len()..],
            None => return false,
        }
        last = piece;
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(config: &Value, client: Option<&str>) -> TransformContext {
        TransformContext {
            client_key_id: client.map(str::to_owned),
            ..TransformContext::for_config(config.to_string())
        }
    }

    fn rewrite(config: &Value, client: Option<&str>, model: &str) -> Option<String> {
        Plugin::check_config(&config.to_string()).unwrap();
        let body = json!({"model": model, "messages": []}).to_string();
        match Plugin::on_request(&ctx(config, client), &body).unwrap() {
            RequestAction::Pass => None,
            RequestAction::Replace(json) => {
                let value: Value = serde_json::from_str(&json).unwrap();
                Some(value["model"].as_str().unwrap().to_owned())
            }
            RequestAction::Reject(rejection) => panic!("unexpected {rejection:?}"),
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
        assert_eq!(info.id, "model-rewrite");
        assert!(!info.description.is_empty());
    }

    #[test]
    fn globs() {
        for (pattern, text) in [
            ("gpt-4", "gpt-4"),
            ("*", ""),
            ("*", "anything"),
            ("gpt-*", "gpt-"),
            ("gpt-*", "gpt-4o"),
            ("*-mini", "gpt-4o-mini"),
            ("gpt-*-mini", "gpt-4o-mini"),
            ("gpt-*-mini", "gpt--mini"),
            ("a*b*c", "abc"),
            ("a*b*c", "aXbYbZc"),
            ("**", "x"),
            ("a*a", "aa"),
            ("*é*", "café-1"),
        ] {
            assert!(glob_matches(pattern, text), "{pattern} should match {text}");
        }
        for (pattern, text) in [
            ("gpt-4", "gpt-4o"),
            ("gpt-4", "GPT-4"),
            ("gpt-4o", "gpt-4"),
            ("gpt-*", "gpt"),
            ("*-mini", "gpt-4o-mini-2024"),
            ("a*b*c", "acb"),
            ("a*a", "a"),
            ("x*", ""),
        ] {
            assert!(
                !glob_matches(pattern, text),
                "{pattern} should not match {text}"
            );
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let config = json!({"rules": [
            {"match": "gpt-4o*", "to": "first"},
            {"match": "gpt-*", "to": "second"},
            {"match": "*", "to": "third"}
        ]});
        assert_eq!(
            rewrite(&config, None, "gpt-4o-mini").as_deref(),
            Some("first")
        );
        assert_eq!(rewrite(&config, None, "gpt-3.5").as_deref(), Some("second"));
        assert_eq!(rewrite(&config, None, "claude").as_deref(), Some("third"));
    }

    #[test]
    fn no_match_or_same_model_passes() {
        let config =
            json!({"rules": [{"match": "gpt-4", "to": "gpt-4o"}, {"match": "x*", "to": "xyz"}]});
        assert_eq!(rewrite(&config, None, "claude"), None);
        assert_eq!(rewrite(&config, None, "xyz"), None);
    }

    #[test]
    fn clients_restrict_a_rule() {
        let config = json!({"rules": [
            {"match": "gpt-4*", "to": "cheap", "clients": ["trial", "intern"]},
            {"match": "gpt-4*", "to": "default"}
        ]});
        assert_eq!(
            rewrite(&config, Some("intern"), "gpt-4o").as_deref(),
            Some("cheap")
        );
        assert_eq!(
            rewrite(&config, Some("prod"), "gpt-4o").as_deref(),
            Some("default")
        );
        assert_eq!(rewrite(&config, None, "gpt-4o").as_deref(), Some("default"));
    }

    #[test]
    fn keeps_every_other_field_verbatim() {
        let config = json!({"rules": [{"match": "gpt-4", "to": "gpt-4o"}]});
        let body = r#"{"x_first":{"b":1.50},"model":"gpt-4","messages":[{"role":"user","content":"Hi"}],"temperature":0.70}"#;
        let action = Plugin::on_request(&ctx(&config, None), body).unwrap();
        assert_eq!(
            action,
            RequestAction::Replace(
                r#"{"x_first":{"b":1.50},"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"temperature":0.70}"#
                    .into()
            )
        );
    }

    #[test]
    fn requests_without_a_model_string_pass() {
        let config = json!({"rules": [{"match": "*", "to": "x"}]});
        for body in [r#"{"messages":[]}"#, r#"{"model":null}"#, r#"{"model":4}"#] {
            assert_eq!(
                Plugin::on_request(&ctx(&config, None), body).unwrap(),
                RequestAction::Pass
            );
        }
        assert!(Plugin::on_request(&ctx(&config, None), "[]").is_err());
    }

    #[test]
    fn config_rejections_name_the_key() {
        let message = config_error("{}");
        assert!(message.contains("missing field `rules`"), "{message}");
        let message = config_error(r#"{"rules":[]}"#);
        assert!(
            message.contains("`rules`: must contain at least one rule"),
            "{message}"
        );
        let message = config_error(r#"{"rules":[{"match":"a","to":"b"}],"x":1}"#);
        assert!(message.contains("unknown field `x`"), "{message}");
        let message = config_error(r#"{"rules":[{"match":"a","to":"b","model":"c"}]}"#);
        assert!(
            message.contains("`rules[0].model`: unknown field `model`"),
            "{message}"
        );
        let message = config_error(r#"{"rules":[{"match":"a"}]}"#);
        assert!(
            message.contains("`rules[0]`: missing field `to`"),
            "{message}"
        );
        let message = config_error(r#"{"rules":[{"match":"a","to":"b"},{"match":1,"to":"b"}]}"#);
        assert!(
            message.contains("`rules[1].match`: invalid type"),
            "{message}"
        );
        let message = config_error(r#"[[{"match":"a","to":"b"}]]"#);
        assert!(message.contains("must be a JSON object"), "{message}");
        let message = config_error(r#"{"rules":{"match":"a","to":"b"}}"#);
        assert!(message.contains("`rules`: invalid type"), "{message}");
        let message = config_error(r#"{"rules":[{"match":"","to":"b"}]}"#);
        assert!(
            message.contains("`rules[0].match`: must not be empty"),
            "{message}"
        );
        let message = config_error(r#"{"rules":[{"match":"a","to":""}]}"#);
        assert!(
            message.contains("`rules[0].to`: must not be empty"),
            "{message}"
        );
        let message = config_error(r#"{"rules":[{"match":"a","to":"b","clients":[]}]}"#);
        assert!(
            message.contains("`rules[0].clients`: must not be empty"),
            "{message}"
        );
        let message = config_error(r#"{"rules":[{"match":"a","to":"b","clients":["k",""]}]}"#);
        assert!(
            message.contains("`rules[0].clients[1]`: must not be empty"),
            "{message}"
        );
        let message = config_error(r#"{"rules":[{"match":"a","to":"b","clients":"k"}]}"#);
        assert!(
            message.contains("`rules[0].clients`: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn a_bad_config_at_request_time_is_a_server_error() {
        let err = Plugin::on_request(&ctx(&json!({"rules": []}), None), "{}").unwrap_err();
        assert_eq!(err.class, ErrorClass::Server);
    }
}
