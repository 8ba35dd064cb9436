//! Transformer `param-policy`: a parameter policy for requests. It caps and
//! defaults the output token limit, forces fields to fixed values and forbids
//! others.
//!
//! # Configuration
//!
//! ```toml
//! [[transformers]]
//! plugin = "param-policy"
//! config = { max_tokens = 4096, default_max_tokens = 1024, set = { store = false }, forbid = ["logit_bias", "n"], on_forbidden = "strip" }
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `max_tokens` | integer ≥ 1 | none | Lowers `max_tokens` and `max_completion_tokens` to this when the request asks for more. |
//! | `default_max_tokens` | integer ≥ 1, at most `max_tokens` | none | Sets `max_tokens` when the request has neither `max_tokens` nor `max_completion_tokens`. |
//! | `set` | object | `{}` | Top-level fields forced to these values (added or overwritten). Must not contain `model`, `messages` or `stream`. |
//! | `forbid` | array of field names | `[]` | Top-level fields clients may not use. Must not contain `model`, `messages`, `stream`, or a field of `set`. |
//! | `on_forbidden` | `"reject"` or `"strip"` | `"reject"` | `reject` refuses a request using a forbidden field with status 400, code `forbidden_parameter`; `strip` removes the field. |
//!
//! At least one of `max_tokens`, `default_max_tokens`, `set` and `forbid` is
//! needed. A field counts as used when it is present and not `null` (`null`
//! means "not set" in the OpenAI API).
//!
//! The steps run in this order: forbidden fields, `set`, the `max_tokens` cap,
//! the default; so the cap also applies to token limits forced by `set`. A
//! request the policy does not change passes as it is; otherwise only the
//! changed fields are rewritten (new ones are added at the end) and every other
//! field keeps its exact JSON text.

use orch_plugin_sdk::json::RawObject;
use orch_plugin_sdk::{
    ErrorClass, PassThroughFilter, PluginError, PluginInfo, Rejection, RequestAction,
    TransformContext, Transformer, config,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The plugin id.
const ID: &str = "param-policy";

/// The token limit fields the cap applies to.
const LIMIT_FIELDS: [&str; 2] = ["max_tokens", "max_completion_tokens"];

/// Fields `set` and `forbid` may not name: the gateway routes and streams by
/// them.
const PROTECTED_FIELDS: [&str; 3] = ["model", "messages", "stream"];

/// The `param-policy` transformer.
pub struct Plugin;

impl Transformer for Plugin {
    type Filter = PassThroughFilter;

    fn info() -> PluginInfo {
        PluginInfo::transformer(ID, env!("CARGO_PKG_VERSION")).with_description(
            "Parameter policy: caps and defaults max_tokens, forces or forbids fields.",
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
        let mut changed = false;

        for name in &config.forbid {
            if !request.has_non_null(name) {
                continue;
            }
            match config.on_forbidden {
                OnForbidden::Reject => {
                    return Ok(RequestAction::Reject(Rejection::new(
                        400,
                        "forbidden_parameter",
                        format!("The parameter `{name}` is not allowed by this gateway's policy."),
                    )));
                }
                OnForbidden::Strip => {
                    request.remove(name);
                    changed = true;
                }
            }
        }

        for (name, value) in &config.set {
            let current = request.value(name).and_then(Result::ok);
            if current.as_ref() != Some(value) {
                request.set(name, value);
                changed = true;
            }
        }

        if let Some(max) = config.max_tokens {
            for name in LIMIT_FIELDS {
                if above(&request, name, max)? {
                    request.set_raw(name, max.to_string());
                    changed = true;
                }
            }
        }

        if let Some(default) = config.default_max_tokens
            && !LIMIT_FIELDS.iter().any(|name| request.has_non_null(name))
        {
            request.set_raw("max_tokens", default.to_string());
            changed = true;
        }

        Ok(if changed {
            RequestAction::Replace(request.to_json())
        } else {
            RequestAction::Pass
        })
    }
}

orch_plugin_sdk::export_transformer!(Plugin);

/// Whether the request's token limit `name` is above `max`. A missing or
/// `null` field is not; anything but a number is refused.
fn above(request: &RawObject<'_>, name: &str, max: u64) -> Result<bool, PluginError> {
    match request.value(name) {
        None | Some(Ok(Value::Null)) => Ok(false),
        Some(Ok(Value::Number(n))) => Ok(match n.as_u64() {
            Some(n) => n > max,
            // Negative or fractional: only a larger value matters.
            None => n.as_f64().is_some_and(|n| n > max as f64),
        }),
        Some(_) => {
            Err(PluginError::bad_request(format!("`{name}` must be an integer")).with_param(name))
        }
    }
}

/// What to do with a request that uses a forbidden field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
enum OnForbidden {
    /// Refuse the request.
    #[default]
    Reject,
    /// Remove the field.
    Strip,
}

impl TryFrom<String> for OnForbidden {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "reject" => Ok(Self::Reject),
            "strip" => Ok(Self::Strip),
            _ => Err(format!(
                "unknown value `{value}`, expected `reject` or `strip`"
            )),
        }
    }
}

/// The attachment's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
struct Config {
    /// The cap on the token limits.
    #[serde(default)]
    max_tokens: Option<u64>,
    /// The token limit of requests that set none.
    #[serde(default)]
    default_max_tokens: Option<u64>,
    /// Fields forced to values.
    #[serde(default)]
    set: Map<String, Value>,
    /// Fields clients may not use.
    #[serde(default)]
    forbid: Vec<String>,
    /// What to do when they do.
    #[serde(default)]
    on_forbidden: OnForbidden,
}

impl Config {
    /// Parses and checks configuration text.
    fn parse(text: &str) -> Result<Self, PluginError> {
        let config: Self = config::parse(ID, text)?;
        config.check()?;
        Ok(config)
    }

    /// The checks serde cannot express.
    fn check(&self) -> Result<(), PluginError> {
        if self.max_tokens.is_none()
            && self.default_max_tokens.is_none()
            && self.set.is_empty()
            && self.forbid.is_empty()
        {
            return Err(config::invalid(
                ID,
                ".",
                "nothing to do: set at least one of `max_tokens`, `default_max_tokens`, `set` and `forbid`",
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(config::invalid(ID, "max_tokens", "must be at least 1"));
        }
        if let Some(default) = self.default_max_tokens {
            if default == 0 {
                return Err(config::invalid(
                    ID,
                    "default_max_tokens",
                    "must be at least 1",
                ));
            }
            if let Some(max) = self.max_tokens
                && default > max
            {
                return Err(config::invalid(
                    ID,
                    "default_max_tokens",
                    format!("must not be above `max_tokens` ({default} > {max})"),
                ));
            }
        }
        for name in self.set.keys() {
            check_field_name(&format!("set.{name}"), name, "forced")?;
        }
        for (index, name) in self.forbid.iter().enumerate() {
            let path = format!("forbid[{index}]");
            check_field_name(&path, name, "forbidden")?;
            if self.set.contains_key(name) {
                return Err(config::invalid(
                    ID,
                    path,
                    format!("`{name}` cannot be both forbidden and forced by `set`"),
                ));
            }
        }
        Ok(())
    }

    /// The configuration of a hook's attachment. It passed `check_config`
    /// when the gateway loaded it, so an error here is the gateway's fault.
    fn of(ctx: &TransformContext) -> Result<Self, PluginError> {
        Self::parse(&ctx.config).map_err(|err| err.with_class(ErrorClass::Server))
    }
}

/// Refuses empty and protected field names in `set` and `forbid`.
fn check_field_name(path: &str, name: &str, what: &str) -> Result<(), PluginError> {
    if name.is_empty() {
        return Err(config::invalid(
            ID,
            path,
            "the field name must not be empty",
        ));
    }
    if PROTECTED_FIELDS.contains(&name) {
        return Err(config::invalid(
            ID,
            path,
            format!(
                "`{name}` cannot be {what} (`model`, `messages` and `stream` are the gateway's)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(config: &Value) -> TransformContext {
        TransformContext::for_config(config.to_string())
    }

    fn run(config: &Value, body: &Value) -> RequestAction {
        Plugin::check_config(&config.to_string()).unwrap();
        Plugin::on_request(&ctx(config), &body.to_string()).unwrap()
    }

    /// The replaced request.
    fn replaced(config: &Value, body: &Value) -> Value {
        match run(config, body) {
            RequestAction::Replace(json) => serde_json::from_str(&json).unwrap(),
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
        assert_eq!(info.id, "param-policy");
        assert!(!info.description.is_empty());
    }

    #[test]
    fn caps_both_token_limits() {
        let config = json!({"max_tokens": 100});
        let got = replaced(
            &config,
            &json!({"max_tokens": 500, "max_completion_tokens": 101}),
        );
        assert_eq!(
            got,
            json!({"max_tokens": 100, "max_completion_tokens": 100})
        );
        let got = replaced(&config, &json!({"max_completion_tokens": 1e6}));
        assert_eq!(got, json!({"max_completion_tokens": 100}));
    }

    #[test]
    fn limits_within_the_cap_pass() {
        let config = json!({"max_tokens": 100});
        for body in [
            json!({"max_tokens": 100}),
            json!({"max_tokens": 5, "max_completion_tokens": 99}),
            json!({"max_tokens": null}),
            json!({"max_tokens": -1}),
            json!({"messages": []}),
        ] {
            assert_eq!(run(&config, &body), RequestAction::Pass, "{body}");
        }
    }

    #[test]
    fn a_non_numeric_limit_is_refused() {
        let err = Plugin::on_request(
            &ctx(&json!({"max_tokens": 100})),
            r#"{"max_tokens":"9999"}"#,
        )
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert_eq!(err.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn default_applies_only_without_any_limit() {
        let config = json!({"max_tokens": 100, "default_max_tokens": 50});
        assert_eq!(
            replaced(&config, &json!({"model": "m"})),
            json!({"model": "m", "max_tokens": 50})
        );
        assert_eq!(
            replaced(&config, &json!({"max_tokens": null})),
            json!({"max_tokens": 50})
        );
        assert_eq!(
            run(&config, &json!({"max_completion_tokens": 70})),
            RequestAction::Pass
        );
        assert_eq!(
            run(&config, &json!({"max_tokens": 10})),
            RequestAction::Pass
        );
        let config = json!({"default_max_tokens": 50});
        assert_eq!(
            run(&config, &json!({"max_tokens": 5000})),
            RequestAction::Pass
        );
    }

    #[test]
    fn set_forces_fields() {
        let config =
            json!({"set": {"store": false, "temperature": 0.2, "metadata": {"team": "a"}}});
        let got = replaced(&config, &json!({"model": "m", "store": true}));
        assert_eq!(
            got,
            json!({"model": "m", "store": false, "temperature": 0.2, "metadata": {"team": "a"}})
        );
        let same = json!({"store": false, "temperature": 0.2, "metadata": {"team": "a"}});
        assert_eq!(run(&config, &same), RequestAction::Pass);
    }

    #[test]
    fn the_cap_applies_to_forced_limits() {
        let config = json!({"max_tokens": 100, "set": {"max_completion_tokens": 500}});
        assert_eq!(
            replaced(&config, &json!({})),
            json!({"max_completion_tokens": 100})
        );
    }

    #[test]
    fn forbidden_fields_are_rejected_by_default() {
        let config = json!({"forbid": ["logit_bias", "n"]});
        let action = run(
            &config,
            &json!({"model": "m", "n": 3, "logit_bias": {"1": 2}}),
        );
        assert_eq!(
            action,
            RequestAction::Reject(Rejection::new(
                400,
                "forbidden_parameter",
                "The parameter `logit_bias` is not allowed by this gateway's policy."
            ))
        );
        let config = json!({"forbid": ["n"], "on_forbidden": "reject"});
        assert!(matches!(
            run(&config, &json!({"n": 1})),
            RequestAction::Reject(_)
        ));
        // Absent or null: allowed.
        assert_eq!(
            run(&config, &json!({"n": null, "model": "m"})),
            RequestAction::Pass
        );
    }

    #[test]
    fn forbidden_fields_can_be_stripped() {
        let config = json!({"forbid": ["logit_bias", "n"], "on_forbidden": "strip"});
        let got = replaced(
            &config,
            &json!({"model": "m", "n": 3, "logit_bias": {"1": 2}}),
        );
        assert_eq!(got, json!({"model": "m"}));
        assert_eq!(run(&config, &json!({"model": "m"})), RequestAction::Pass);
    }

    #[test]
    fn keeps_every_other_field_verbatim() {
        let config = json!({"max_tokens": 100, "set": {"store": false}, "forbid": ["n"], "on_forbidden": "strip"});
        let body = r#"{"model":"m","n":2,"x_custom":{"b":1.50,"a":[1, 2]},"max_tokens":500,"temperature":0.70}"#;
        let action = Plugin::on_request(&ctx(&config), body).unwrap();
        assert_eq!(
            action,
            RequestAction::Replace(
                r#"{"model":"m","x_custom":{"b":1.50,"a":[1, 2]},"max_tokens":100,"temperature":0.70,"store":false}"#
                    .into()
            )
        );
        let body = r#"{"model":"m", "store":false, "max_tokens":5}"#;
        assert_eq!(
            Plugin::on_request(&ctx(&config), body).unwrap(),
            RequestAction::Pass
        );
    }

    #[test]
    fn config_rejections_name_the_key() {
        for (config, expected) in [
            ("{}", "nothing to do"),
            (r#"{"max_tokens":100,"x":1}"#, "unknown field `x`"),
            (r#"{"max_tokens":"100"}"#, "`max_tokens`: invalid type"),
            (r#"{"max_tokens":1.5}"#, "`max_tokens`: invalid type"),
            (r#"{"max_tokens":-1}"#, "`max_tokens`: invalid value"),
            (r#"{"max_tokens":0}"#, "`max_tokens`: must be at least 1"),
            (
                r#"{"default_max_tokens":0}"#,
                "`default_max_tokens`: must be at least 1",
            ),
            (
                r#"{"max_tokens":10,"default_max_tokens":20}"#,
                "`default_max_tokens`: must not be above `max_tokens`",
            ),
            (r#"{"set":[1]}"#, "`set`: invalid type"),
            (
                r#"{"set":{"model":"x"}}"#,
                "`set.model`: `model` cannot be forced",
            ),
            (
                r#"{"set":{"messages":[]}}"#,
                "`set.messages`: `messages` cannot be forced",
            ),
            (
                r#"{"set":{"stream":false}}"#,
                "`set.stream`: `stream` cannot be forced",
            ),
            (r#"{"set":{"":1}}"#, "must not be empty"),
            (r#"{"forbid":"n"}"#, "`forbid`: invalid type"),
            (r#"{"forbid":[1]}"#, "`forbid[0]`: invalid type"),
            (
                r#"{"forbid":["n","stream"]}"#,
                "`forbid[1]`: `stream` cannot be forbidden",
            ),
            (
                r#"{"forbid":["n"],"set":{"n":1}}"#,
                "`forbid[0]`: `n` cannot be both forbidden and forced",
            ),
            (
                r#"{"forbid":["n"],"on_forbidden":"drop"}"#,
                "`on_forbidden`: unknown value `drop`",
            ),
            (
                r#"{"forbid":["n"],"on_forbidden":false}"#,
                "`on_forbidden`: invalid type",
            ),
            ("null", "must be a JSON object"),
            ("[100]", "must be a JSON object"),
        ] {
            let message = config_error(config);
            assert!(message.contains(expected), "{config}: {message}");
        }
        assert!(Plugin::check_config(r#"{"max_tokens":10,"default_max_tokens":10}"#).is_ok());
    }

    #[test]
    fn a_bad_config_at_request_time_is_a_server_error() {
        let err = Plugin::on_request(&ctx(&json!({})), "{}").unwrap_err();
        assert_eq!(err.class, ErrorClass::Server);
    }
}
