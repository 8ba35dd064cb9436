//! Transformer attachments: which transformer plugins run on which requests,
//! in which order, with which configuration, and what happens when one fails.
//!
//! Attachments are written as `[[transformers]]` tables. They run in the order
//! written: requests go through them first to last, responses and stream
//! chunks last to first (the first attachment sees the response last, like
//! the outermost layer of middleware).

use serde::Deserialize;

use crate::config::Problem;

/// What a failing transformer does to the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// The request fails with an error in the client's dialect.
    #[default]
    FailClosed,
    /// The transformer is skipped for this request (counted and logged).
    FailOpen,
}

impl FailurePolicy {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::FailClosed => "fail-closed",
            FailurePolicy::FailOpen => "fail-open",
        }
    }
}

/// A client key an attachment is limited to: its id, or its name (every key
/// with that name).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ClientRef {
    /// The key's id.
    Id(i64),
    /// The key's name.
    Name(String),
}

/// One `[[transformers]]` table as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    /// The transformer plugin's id.
    pub plugin: String,
    /// Only requests for these models (exact names, or a prefix followed by
    /// `*`); every model when absent.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Only requests authenticated with these client keys; every request
    /// when absent.
    #[serde(default)]
    pub client_keys: Option<Vec<ClientRef>>,
    /// What a failure of this transformer does.
    #[serde(default)]
    pub on_error: FailurePolicy,
    /// A disabled attachment is kept but never runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The configuration passed to the plugin.
    #[serde(default)]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
}

fn yes() -> bool {
    true
}

/// A validated attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Its position among the attachments, for logs (`transformers[2]`).
    pub index: usize,
    /// The transformer plugin's id.
    pub plugin: String,
    /// Model patterns; `None` matches every model.
    pub models: Option<Vec<String>>,
    /// Client keys; `None` matches every request.
    pub client_keys: Option<Vec<ClientRef>>,
    /// What a failure does.
    pub on_error: FailurePolicy,
    /// The plugin's configuration as JSON object text.
    pub config_json: String,
}

/// The client of a request, as attachments match it.
#[derive(Clone, Copy, Debug)]
pub struct ClientIdentity<'a> {
    /// The key's id.
    pub id: i64,
    /// The key's name.
    pub name: &'a str,
}

impl Attachment {
    /// Whether this attachment runs on a request for `model` from `client`.
    pub fn applies(&self, model: &str, client: Option<ClientIdentity<'_>>) -> bool {
        let model_ok = self.models.as_ref().is_none_or(|patterns| {
            patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => p == model,
            })
        });
        let client_ok = self.client_keys.as_ref().is_none_or(|refs| {
            client.is_some_and(|c| {
                refs.iter().any(|r| match r {
                    ClientRef::Id(id) => *id == c.id,
                    ClientRef::Name(name) => name == c.name,
                })
            })
        });
        model_ok && client_ok
    }
}

/// Validate the written attachments; disabled ones are dropped.
pub fn validate(specs: Vec<AttachmentSpec>, problems: &mut Vec<Problem>) -> Vec<Attachment> {
    let mut out = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let key = |field: &str| format!("transformers[{i}].{field}");
        if !crate::config::is_valid_plugin_id(&spec.plugin) {
            problems.push(Problem {
                key: key("plugin"),
                reason: format!(
                    "{:?} is not a plugin id (lower-case letters, digits and '-', at most 64)",
                    spec.plugin
                ),
            });
            continue;
        }
        if let Some(models) = &spec.models
            && (models.is_empty() || models.iter().any(String::is_empty))
        {
            problems.push(Problem {
                key: key("models"),
                reason:
                    "must list at least one model name or pattern (leave it out for every model)"
                        .into(),
            });
            continue;
        }
        if let Some(keys) = &spec.client_keys
            && keys.is_empty()
        {
            problems.push(Problem {
                key: key("client_keys"),
                reason:
                    "must list at least one client key id or name (leave it out for every client)"
                        .into(),
            });
            continue;
        }
        let config_json = match &spec.config {
            None => "{}".to_string(),
            Some(table) => match serde_json::to_string(table) {
                Ok(json) => json,
                Err(e) => {
                    problems.push(Problem {
                        key: key("config"),
                        reason: format!("cannot be passed to the plugin as JSON: {e}"),
                    });
                    continue;
                }
            },
        };
        if !spec.enabled {
            continue;
        }
        out.push(Attachment {
            index: i,
            plugin: spec.plugin,
            models: spec.models,
            client_keys: spec.client_keys,
            on_error: spec.on_error,
            config_json,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Attachment>, Vec<Problem>> {
        #[derive(Deserialize)]
        struct Wrapper {
            transformers: Vec<AttachmentSpec>,
        }
        use figment::Figment;
        use figment::providers::{Format, Toml};
        let w: Wrapper = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| {
                vec![Problem {
                    key: "toml".into(),
                    reason: e.to_string(),
                }]
            })?;
        let mut problems = Vec::new();
        let out = validate(w.transformers, &mut problems);
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn attachments_match_models_and_clients() {
        let a = parse(
            r#"
            [[transformers]]
            plugin = "pii-redact"

            [[transformers]]
            plugin = "system-prompt"
            models = ["gpt-4o*", "claude"]
            on_error = "fail-open"
            config = { text = "Be brief.", nested = { n = 1 } }

            [[transformers]]
            plugin = "param-policy"
            client_keys = [7, "team-a"]

            [[transformers]]
            plugin = "block-list"
            enabled = false
            "#,
        )
        .unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].config_json, "{}");
        assert_eq!(a[0].on_error, FailurePolicy::FailClosed);
        assert!(a[0].applies("anything", None));
        assert_eq!(a[1].on_error, FailurePolicy::FailOpen);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&a[1].config_json).unwrap(),
            serde_json::json!({"text": "Be brief.", "nested": {"n": 1}})
        );
        assert!(a[1].applies("gpt-4o-mini", None));
        assert!(a[1].applies("claude", None));
        assert!(!a[1].applies("claude-3", None));
        let team = ClientIdentity {
            id: 9,
            name: "team-a",
        };
        let seven = ClientIdentity { id: 7, name: "x" };
        let other = ClientIdentity { id: 8, name: "x" };
        assert!(a[2].applies("m", Some(team)));
        assert!(a[2].applies("m", Some(seven)));
        assert!(!a[2].applies("m", Some(other)));
        assert!(!a[2].applies("m", None));
        assert_eq!(a[2].index, 2);
    }

    #[test]
    fn mistakes_are_named() {
        let problems = parse(
            r#"
            [[transformers]]
            plugin = "Bad Id"

            [[transformers]]
            plugin = "ok"
            models = []

            [[transformers]]
            plugin = "ok"
            client_keys = []
            "#,
        )
        .unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "transformers[0].plugin",
                "transformers[1].models",
                "transformers[2].client_keys"
            ]
        );
        let unknown = parse("[[transformers]]\nplugin = \"x\"\nmodel = [\"a\"]\n").unwrap_err();
        assert!(unknown[0].reason.contains("found `model`"), "{unknown:?}");
        let policy = parse("[[transformers]]\nplugin = \"x\"\non_error = \"open\"\n").unwrap_err();
        assert!(policy[0].reason.contains("fail-closed"), "{policy:?}");
    }
}
