//! The catalogue as operators write it: providers, models and their targets,
//! in the one shape the configuration file, the admin API and the database
//! share, and the rules that turn it into what the router uses.
//!
//! The file and the admin API validate through the same [`compile`], so an
//! entry the API accepts is one the file would accept, and the other way round.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{Problem, ProviderConfig, http_header_name, is_valid_plugin_id};
use crate::contract::Capability;
use crate::routing::PluginRef;
use crate::routing::keys::KeyStrategy;
use crate::routing::retry::RetryPolicy;
use crate::routing::{ModelRoute, Overrides, Strategy, Target};

/// An upstream provider.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Unique name, used by targets and in logs.
    pub name: String,
    /// Id of the adapter plugin that speaks to it (e.g. `openai`).
    pub adapter: String,
    /// Base URL; every upstream request must stay on its origin.
    pub base_url: String,
    /// API keys: `env:NAME` references or (stored encrypted) literal keys.
    /// Write-only: never returned.
    #[serde(default, skip_serializing)]
    #[schema(write_only)]
    pub api_keys: Vec<String>,
    /// Adapter options (a table passed to the plugin).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// How requests spread over the keys.
    #[serde(default)]
    pub key_strategy: KeyStrategyName,
    /// Substrings that mark a successful body or stream event as a failure.
    #[serde(default)]
    pub error_matchers: Vec<String>,
    /// Active probe interval of healthy targets (`None`: the global one).
    #[serde(default)]
    pub probe_interval_s: Option<u64>,
    /// A disabled provider keeps its definition but serves nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSpec")
            .field("name", &self.name)
            .field("adapter", &self.adapter)
            .field("base_url", &self.base_url)
            .field(
                "api_keys",
                &format_args!("[{} hidden]", self.api_keys.len()),
            )
            .field("key_strategy", &self.key_strategy)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// [`KeyStrategy`] as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStrategyName {
    /// Each request takes the next ready key.
    #[default]
    RoundRobin,
    /// The ready key rate-limited longest ago.
    LeastRecentlyRateLimited,
}

impl KeyStrategyName {
    /// The name used in configuration and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStrategyName::RoundRobin => "round-robin",
            KeyStrategyName::LeastRecentlyRateLimited => "least-recently-rate-limited",
        }
    }

    /// Parse [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            KeyStrategyName::RoundRobin,
            KeyStrategyName::LeastRecentlyRateLimited,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A model clients can ask for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The name clients use.
    pub name: String,
    /// Other names: exact, or `prefix*` wildcards.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// How requests spread over the targets.
    #[serde(default)]
    pub strategy: StrategyName,
    /// For `sticky`: the header holding the session key.
    #[serde(default)]
    pub session_header: Option<String>,
    /// Attempts per request, failovers included (default: `[routing]`).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// A disabled model is not served (clients get "model not found").
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where it can be served, in order.
    pub targets: Vec<TargetSpec>,
}

/// [`Strategy`] as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    /// Weighted random.
    #[default]
    Weighted,
    /// Lowest priority first; the next level only as fallback.
    Priority,
    /// Power of two choices over recent latency.
    LeastLatency,
    /// A session keeps its target while it is healthy.
    Sticky,
}

impl StrategyName {
    /// The name used in configuration and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyName::Weighted => "weighted",
            StrategyName::Priority => "priority",
            StrategyName::LeastLatency => "least-latency",
            StrategyName::Sticky => "sticky",
        }
    }

    /// Parse [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            StrategyName::Weighted,
            StrategyName::Priority,
            StrategyName::LeastLatency,
            StrategyName::Sticky,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One way to serve a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The provider's name.
    pub provider: String,
    /// The provider's model name (`*`: the name the client asked for).
    pub model: String,
    /// Relative weight; 0 keeps the target for fallback only.
    #[serde(default = "one")]
    pub weight: u32,
    /// Level for the priority strategy: lower goes first.
    #[serde(default)]
    pub priority: u32,
    /// Top-level body fields forced to a value.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub set: serde_json::Map<String, serde_json::Value>,
    /// Top-level body fields removed.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Caps on numeric body fields (e.g. `max_tokens`).
    #[serde(default)]
    pub cap: BTreeMap<String, u64>,
    /// Extra upstream headers (not credentials or framing).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Capabilities, replacing what the adapter declares.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Bound on one attempt, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Bound on the time to a stream's first content, in milliseconds.
    #[serde(default)]
    pub ttft_timeout_ms: Option<u64>,
    /// A disabled target is skipped.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Serve with this version of the provider's adapter (exact semver)
    /// rather than the newest loaded one. Two targets on one provider with
    /// different versions and weights split traffic between them (canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_version: Option<String>,
    /// Shadow the target's adapter with another version (`0.2.0`) or
    /// adapter (`openai@0.2.0`): each successful non-streaming answer is
    /// also built and parsed by the shadow, off the request path, and
    /// differences are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// A provider to compile: where it was written, its spec, its resolved keys.
pub struct ProviderEntry<'a> {
    /// How problems name it, e.g. `providers[2]` or `provider "openai"`.
    pub at: String,
    /// The definition.
    pub spec: &'a ProviderSpec,
    /// Its keys, resolved by the caller (environment or decrypted).
    pub keys: Vec<SecretString>,
}

/// A model to compile and where it was written.
pub struct ModelEntry<'a> {
    /// How problems name it, e.g. `models[0]` or `model "gpt-4o"`.
    pub at: String,
    /// The definition.
    pub spec: &'a ModelSpec,
}

/// What the router serves: enabled providers, and enabled models with their
/// enabled targets on enabled providers.
#[derive(Debug, Default)]
pub struct Compiled {
    /// Enabled providers; targets refer to them by index.
    pub providers: Vec<ProviderConfig>,
    /// Enabled models.
    pub models: Vec<ModelRoute>,
}

/// Check every entry and build the served catalogue. Every problem is
/// reported (key path and reason), not just the first; disabled entries are
/// checked too, so enabling one later cannot fail.
pub fn compile(
    providers: &[ProviderEntry<'_>],
    models: &[ModelEntry<'_>],
    retry: &RetryPolicy,
) -> Result<Compiled, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |key: String, reason: String| problems.push(Problem { key, reason });
    let mut out = Compiled::default();
    let mut names = HashSet::new();
    for entry in providers {
        let key = |f: &str| format!("{}.{f}", entry.at);
        let spec = entry.spec;
        if spec.name.is_empty() {
            problem(key("name"), "must not be empty".into());
        } else if !names.insert(spec.name.as_str()) {
            problem(
                key("name"),
                format!("duplicate provider name {:?}", spec.name),
            );
        }
        if let Some(p) = provider(entry, &key, &mut problem)
            && spec.enabled
        {
            out.providers.push(p);
        }
    }

    let mut model_names = HashSet::new();
    for entry in models {
        let key = |f: &str| format!("{}.{f}", entry.at);
        let spec = entry.spec;
        if spec.name.is_empty() {
            problem(key("name"), "must not be empty".into());
        } else if !model_names.insert(spec.name.clone()) {
            problem(key("name"), format!("duplicate model name {:?}", spec.name));
        }
        for (j, alias) in spec.aliases.iter().enumerate() {
            if let Some(reason) = alias_problem(alias, &mut model_names) {
                problem(key(&format!("aliases[{j}]")), reason);
            }
        }
        let strategy = strategy(spec, &key, &mut problem);
        let mut retry = retry.clone();
        if let Some(n) = spec.max_attempts {
            if n == 0 || n > 20 {
                problem(key("max_attempts"), "must be in 1..=20".into());
            }
            retry.max_attempts = n.clamp(1, 20);
        }
        if spec.targets.is_empty() {
            problem(key("targets"), "needs at least one target".into());
        } else if spec.targets.iter().all(|t| t.weight == 0) {
            problem(
                key("targets"),
                "at least one target needs a weight > 0".into(),
            );
        }
        let mut targets = Vec::new();
        for (j, spec_t) in spec.targets.iter().enumerate() {
            let tkey = |f: &str| format!("{}.targets[{j}].{f}", entry.at);
            if spec_t.model.is_empty() {
                problem(tkey("model"), "must not be empty".into());
            }
            let built = target(spec_t, &tkey, &mut problem);
            match out.providers.iter().position(|p| p.name == spec_t.provider) {
                Some(provider) if spec_t.enabled => targets.push(Target { provider, ..built }),
                Some(_) => {}
                // Disabled, or invalid and reported already.
                None if names.contains(spec_t.provider.as_str()) => {}
                None => problem(
                    tkey("provider"),
                    format!("no provider named {:?}", spec_t.provider),
                ),
            }
        }
        if spec.enabled {
            out.models.push(ModelRoute {
                name: spec.name.clone(),
                aliases: spec.aliases.clone(),
                strategy,
                retry,
                targets,
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn provider(
    entry: &ProviderEntry<'_>,
    key: &dyn Fn(&str) -> String,
    problem: &mut dyn FnMut(String, String),
) -> Option<ProviderConfig> {
    let spec = entry.spec;
    if !is_valid_plugin_id(&spec.adapter) {
        problem(
            key("adapter"),
            format!(
                "{:?} is not a plugin id (lower-case letters, digits and '-')",
                spec.adapter
            ),
        );
    }
    for (j, m) in spec.error_matchers.iter().enumerate() {
        if m.trim().is_empty() {
            problem(
                key(&format!("error_matchers[{j}]")),
                "must not be blank".into(),
            );
        }
    }
    if spec.probe_interval_s == Some(0) {
        problem(key("probe_interval_s"), "must be > 0".into());
    }
    let base_url = base_url(&spec.base_url, key, problem)?;
    Some(ProviderConfig {
        name: spec.name.clone(),
        adapter: spec.adapter.clone(),
        base_url,
        api_keys: entry.keys.clone(),
        options_json: serde_json::Value::Object(spec.options.clone()).to_string(),
        key_strategy: match spec.key_strategy {
            KeyStrategyName::RoundRobin => KeyStrategy::RoundRobin,
            KeyStrategyName::LeastRecentlyRateLimited => KeyStrategy::LeastRecentlyRateLimited,
        },
        error_matchers: spec.error_matchers.clone(),
        probe_interval: spec.probe_interval_s.map(Duration::from_secs),
    })
}

fn base_url(
    raw: &str,
    key: &dyn Fn(&str) -> String,
    problem: &mut dyn FnMut(String, String),
) -> Option<url::Url> {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if u.query().is_some()
                || u.fragment().is_some()
                || !u.username().is_empty()
                || u.password().is_some()
            {
                problem(
                    key("base_url"),
                    "must not contain credentials, a query or a fragment".into(),
                );
            }
            Some(u)
        }
        Ok(_) => {
            problem(
                key("base_url"),
                "must be an http:// or https:// URL with a host".into(),
            );
            None
        }
        Err(e) => {
            problem(key("base_url"), format!("not a URL: {e}"));
            None
        }
    }
}

/// Why `alias` cannot be used, if it cannot; records it as taken otherwise.
fn alias_problem(alias: &str, taken: &mut HashSet<String>) -> Option<String> {
    let wildcard = alias.strip_suffix('*');
    if alias.is_empty() || wildcard == Some("") {
        Some("must be a name or a non-empty `prefix*`".into())
    } else if wildcard.is_some_and(|w| w.contains('*'))
        || (wildcard.is_none() && alias.contains('*'))
    {
        Some("`*` may only end an alias".into())
    } else if !taken.insert(alias.to_string()) {
        Some(format!("{alias:?} already names a model or alias"))
    } else {
        None
    }
}

fn strategy(
    spec: &ModelSpec,
    key: &dyn Fn(&str) -> String,
    problem: &mut dyn FnMut(String, String),
) -> Strategy {
    if spec.session_header.is_some() && spec.strategy != StrategyName::Sticky {
        problem(
            key("session_header"),
            "only applies to strategy = \"sticky\"".into(),
        );
    }
    if let Some(h) = &spec.session_header
        && http_header_name(h).is_none()
    {
        problem(key("session_header"), format!("{h:?} is not a header name"));
    }
    match spec.strategy {
        StrategyName::Weighted => Strategy::Weighted,
        StrategyName::Priority => Strategy::Priority,
        StrategyName::LeastLatency => Strategy::LeastLatency,
        StrategyName::Sticky => Strategy::Sticky {
            header: spec.session_header.as_deref().and_then(http_header_name),
        },
    }
}

/// Headers a target may not set: the host owns framing, credentials and the
/// trace context.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "traceparent",
    "tracestate",
];

fn target(
    spec: &TargetSpec,
    key: &dyn Fn(&str) -> String,
    problem: &mut dyn FnMut(String, String),
) -> Target {
    let mut capabilities = None;
    if let Some(list) = &spec.capabilities {
        let mut caps = Vec::new();
        for (k, c) in list.iter().enumerate() {
            match Capability::ALL.iter().find(|x| x.as_str() == c) {
                Some(x) => caps.push(*x),
                None => problem(
                    key(&format!("capabilities[{k}]")),
                    format!(
                        "unknown capability {c:?} (known: {})",
                        Capability::ALL.map(Capability::as_str).join(", ")
                    ),
                ),
            }
        }
        capabilities = Some(caps);
    }
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        match http_header_name(name) {
            Some(n) if RESERVED_HEADERS.contains(&n.as_str()) => problem(
                key(&format!("headers.{name}")),
                "is set by the gateway (credentials, framing, trace context)".into(),
            ),
            Some(n)
                if value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) =>
            {
                headers.push((n, value.clone()));
            }
            Some(_) => problem(
                key(&format!("headers.{name}")),
                "the value must be visible ASCII".into(),
            ),
            None => problem(key(&format!("headers.{name}")), "not a header name".into()),
        }
    }
    for f in ["model", "stream", "messages"] {
        if spec.set.contains_key(f) || spec.remove.iter().any(|r| r == f) {
            problem(
                key(f),
                format!("`{f}` cannot be overridden (the gateway sets it)"),
            );
        }
    }
    let positive = |v: Option<u64>, f: &str, problem: &mut dyn FnMut(String, String)| {
        if v == Some(0) {
            problem(key(f), "must be > 0".into());
        }
        v.filter(|&ms| ms > 0).map(Duration::from_millis)
    };
    let timeout = positive(spec.timeout_ms, "timeout_ms", problem);
    let ttft_timeout = positive(spec.ttft_timeout_ms, "ttft_timeout_ms", problem);
    let adapter_version = spec.adapter_version.as_deref().and_then(|v| {
        semver::Version::parse(v)
            .map_err(|e| {
                problem(
                    key("adapter_version"),
                    format!("{v:?} is not a version: {e}"),
                )
            })
            .ok()
    });
    let shadow = spec.shadow.as_deref().and_then(|s| {
        PluginRef::parse(s)
            .map_err(|e| problem(key("shadow"), e))
            .ok()
    });
    Target {
        provider: 0,
        upstream_model: spec.model.clone(),
        weight: spec.weight,
        priority: spec.priority,
        overrides: Overrides {
            set: spec
                .set
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            remove: spec.remove.clone(),
            cap: spec.cap.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        },
        headers,
        capabilities,
        timeout,
        ttft_timeout,
        adapter_version,
        shadow,
    }
}
