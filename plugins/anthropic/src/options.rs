//! Provider configuration: options, endpoints and the headers every request
//! carries (the base URL is checked by `orch_plugin_sdk::provider`).

use orch_plugin_sdk::provider::{self, OptionsReader, is_token, valid_header_value};
use orch_plugin_sdk::{Credential, Headers, PluginError, Provider, UpstreamRequestBuilder};
use serde_json::Value;

/// Option keys a provider may set, in the order error messages list them.
const OPTION_KEYS: &[&str] = &["anthropic_version", "beta", "headers", "default_max_tokens"];

/// The API version sent when the provider does not configure one.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// `max_tokens` when a canonical request does not set one.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The header carrying the credential.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Headers the adapter sets itself or that carry secrets; the `headers` option
/// cannot set them.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "anthropic-beta",
    "anthropic-version",
    "authorization",
    "content-length",
    "content-type",
    "host",
    API_KEY_HEADER,
];

/// Validated provider options (see the crate documentation for the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `anthropic-version` header.
    pub anthropic_version: String,
    /// `anthropic-beta` flags, in configuration order.
    pub beta: Vec<String>,
    /// Extra static headers (names lower-cased).
    pub headers: Headers,
    /// `max_tokens` when a canonical request sets none.
    pub default_max_tokens: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            anthropic_version: DEFAULT_VERSION.to_owned(),
            beta: Vec::new(),
            headers: Vec::new(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

impl Options {
    /// Parses and validates a provider's options; unknown keys and wrong types
    /// are `bad-request` errors naming the key.
    pub fn parse(provider: &Provider) -> Result<Self, PluginError> {
        let reader = OptionsReader::new(provider, "anthropic", OPTION_KEYS);
        let mut options = Self::default();
        for (key, value) in reader.entries()? {
            match key.as_str() {
                "anthropic_version" => {
                    let Value::String(version) = value else {
                        return Err(reader.invalid("option `anthropic_version` must be a string"));
                    };
                    if version.is_empty() || !valid_header_value(&version) {
                        return Err(reader.invalid(
                            "option `anthropic_version` must be a non-empty string without control characters",
                        ));
                    }
                    options.anthropic_version = version;
                }
                "beta" => options.beta = parse_beta(value).map_err(|m| reader.invalid(m))?,
                "headers" => options.headers = reader.extra_headers(value, RESERVED_HEADERS)?,
                "default_max_tokens" => {
                    options.default_max_tokens = value
                        .as_u64()
                        .filter(|n| *n >= 1)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            reader.invalid("option `default_max_tokens` must be a positive integer")
                        })?;
                }
                _ => return Err(reader.unknown(&key)),
            }
        }
        Ok(options)
    }

    /// Adds the version, beta and configured headers and the credential
    /// placement to a request.
    pub fn apply(&self, request: UpstreamRequestBuilder) -> UpstreamRequestBuilder {
        let mut request = request
            .header("anthropic-version", self.anthropic_version.clone())
            .credential(Credential::Header(API_KEY_HEADER.to_owned()));
        if !self.beta.is_empty() {
            request = request.header("anthropic-beta", self.beta.join(","));
        }
        request.headers(self.headers.iter().cloned())
    }
}

fn parse_beta(value: Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err("option `beta` must be a list of strings".to_owned());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(flag) if is_token(&flag) => Ok(flag),
            other => Err(format!(
                "option `beta`: {other} is not a beta name (letters, digits, `-`, `_`, `.`)"
            )),
        })
        .collect()
}

/// `{base_url}/v1/{path}`, without doubling a `/v1` the base URL already ends
/// with, nor a slash.
pub fn endpoint(base_url: &str, path: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.to_ascii_lowercase().ends_with("/v1") {
        provider::endpoint(base, path)
    } else {
        provider::endpoint(base, &format!("v1/{path}"))
    }
}
