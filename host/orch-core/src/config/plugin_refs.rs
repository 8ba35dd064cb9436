//! Whether the plugins a configuration names are in a plugins folder
//! (`check-config --plugins`): the providers' adapters, the adapter versions
//! targets pin (`adapter_version`) or shadow with (`shadow`), and the
//! transformers attached (`[[transformers]] plugin`).

use std::collections::BTreeMap;

use super::{Config, Problem};
use crate::routing::PluginRef;

/// The plugins a folder provides: each id with every version loaded, by kind.
#[derive(Debug, Default, Clone)]
pub struct AvailablePlugins {
    /// Adapter plugins.
    pub adapters: BTreeMap<String, Vec<semver::Version>>,
    /// Transformer plugins.
    pub transformers: BTreeMap<String, Vec<semver::Version>>,
}

impl Config {
    /// Every reference to a plugin (or plugin version) that `available`
    /// does not provide, keyed like the other problems:
    /// `providers[0].adapter`, `models[1].targets[0].adapter_version`,
    /// `models[1].targets[0].shadow`, `transformers[2].plugin`.
    pub fn plugin_problems(&self, available: &AvailablePlugins) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (i, p) in self.provider_specs.iter().enumerate() {
            if !available.adapters.contains_key(&p.adapter) {
                problems.push(Problem {
                    key: format!("providers[{i}].adapter"),
                    reason: missing("adapter", &p.adapter, &available.adapters),
                });
            }
        }
        for (i, m) in self.model_specs.iter().enumerate() {
            for (j, t) in m.targets.iter().enumerate() {
                let Some(adapter) = self
                    .provider_specs
                    .iter()
                    .find(|p| p.name == t.provider)
                    .map(|p| p.adapter.as_str())
                else {
                    continue;
                };
                let key = |field: &str| format!("models[{i}].targets[{j}].{field}");
                // A pin of a missing adapter is reported on the provider.
                if let Some(version) = t
                    .adapter_version
                    .as_deref()
                    .and_then(|v| semver::Version::parse(v).ok())
                    && let Some(versions) = available.adapters.get(adapter)
                    && !versions.contains(&version)
                {
                    problems.push(Problem {
                        key: key("adapter_version"),
                        reason: missing_version(adapter, &version, versions),
                    });
                }
                if let Some(shadow) = t.shadow.as_deref().and_then(|s| PluginRef::parse(s).ok()) {
                    let id = shadow.id.as_deref().unwrap_or(adapter);
                    let reason = match available.adapters.get(id) {
                        None => Some(missing("adapter", id, &available.adapters)),
                        Some(versions) if !versions.contains(&shadow.version) => {
                            Some(missing_version(id, &shadow.version, versions))
                        }
                        Some(_) => None,
                    };
                    if let Some(reason) = reason {
                        problems.push(Problem {
                            key: key("shadow"),
                            reason,
                        });
                    }
                }
            }
        }
        for a in &self.transformers {
            if !available.transformers.contains_key(&a.plugin) {
                problems.push(Problem {
                    key: format!("transformers[{}].plugin", a.index),
                    reason: missing("transformer", &a.plugin, &available.transformers),
                });
            }
        }
        problems
    }
}

fn missing(kind: &str, id: &str, there: &BTreeMap<String, Vec<semver::Version>>) -> String {
    let near = there
        .keys()
        .map(|k| (strsim::jaro_winkler(id, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    let listed = if there.is_empty() {
        format!("there is no {kind} plugin there")
    } else {
        format!(
            "{kind}s there: {}",
            there
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("no {kind} plugin `{id}` in the plugins folder ({listed}){near}")
}

fn missing_version(id: &str, version: &semver::Version, there: &[semver::Version]) -> String {
    let mut versions: Vec<&semver::Version> = there.iter().collect();
    versions.sort();
    let listed = versions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "the plugins folder has no version {version} of adapter `{id}` (versions there: {listed})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(toml: &str) -> Config {
        Config::from_toml(Path::new("t.toml"), toml, &|_| None).unwrap()
    }

    fn available() -> AvailablePlugins {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        AvailablePlugins {
            adapters: BTreeMap::from([("openai".into(), vec![v("0.1.0"), v("0.2.0")])]),
            transformers: BTreeMap::from([("pii-redact".into(), vec![v("0.1.0")])]),
        }
    }

    #[test]
    fn every_missing_plugin_reference_is_keyed() {
        let c = config(
            r#"
            [[providers]]
            name = "a"
            adapter = "openai"
            base_url = "http://x"
            [[providers]]
            name = "b"
            adapter = "opneai"
            base_url = "http://x"
            [[models]]
            name = "m"
            targets = [
              { provider = "a", model = "x", adapter_version = "0.2.0", shadow = "0.1.0" },
              { provider = "a", model = "x", adapter_version = "9.0.0", shadow = "gemini@0.1.0" },
              { provider = "b", model = "x", adapter_version = "9.0.0" },
            ]
            [[transformers]]
            plugin = "pii-redact"
            [[transformers]]
            plugin = "pii-redcat"
            "#,
        );
        let found: Vec<String> = c
            .plugin_problems(&available())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("providers[1].adapter: no adapter plugin `opneai`"));
        assert!(found[0].ends_with("(adapters there: openai); did you mean `openai`?"));
        assert!(found[1].starts_with("models[0].targets[1].adapter_version: "));
        assert!(
            found[1]
                .contains("no version 9.0.0 of adapter `openai` (versions there: 0.1.0, 0.2.0)")
        );
        assert!(found[2].starts_with("models[0].targets[1].shadow: no adapter plugin `gemini`"));
        assert!(found[3].starts_with("transformers[1].plugin: no transformer plugin `pii-redcat`"));
        assert!(found[3].contains("did you mean `pii-redact`?"));
        assert!(c.plugin_problems(&AvailablePlugins::default()).len() >= 3);
    }
}
