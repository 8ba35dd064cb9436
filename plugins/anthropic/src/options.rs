//! Provider configuration: options, base URL, endpoints and the headers every
//! request carries.

use orch_plugin_sdk::{Credential, Headers, PluginError, Provider, UpstreamRequestBuilder};
use serde_json::{Map, Value};

/// Option keys a provider may set, for error messages.
const OPTION_KEYS: &str = "anthropic_version, beta, headers, default_max_tokens";

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
        let invalid = |message: String| {
            PluginError::bad_request(format!("provider `{}`: {message}", provider.name))
        };
        let mut options = Self::default();
        for (key, value) in provider.options_object()? {
            match key.as_str() {
                "anthropic_version" => {
                    let Value::String(version) = value else {
                        return Err(invalid(
                            "option `anthropic_version` must be a string".to_owned(),
                        ));
                    };
                    if version.is_empty() || !valid_header_value(&version) {
                        return Err(invalid(
                            "option `anthropic_version` must be a non-empty string without control characters"
                                .to_owned(),
                        ));
                    }
                    options.anthropic_version = version;
                }
                "beta" => options.beta = parse_beta(value).map_err(invalid)?,
                "headers" => {
                    let Value::Object(headers) = value else {
                        return Err(invalid(
                            "option `headers` must be an object of header names to string values"
                                .to_owned(),
                        ));
                    };
                    options.headers = parse_headers(headers).map_err(invalid)?;
                }
                "default_max_tokens" => {
                    options.default_max_tokens = value
                        .as_u64()
                        .filter(|n| *n >= 1)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            invalid(
                                "option `default_max_tokens` must be a positive integer".to_owned(),
                            )
                        })?;
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown option `{key}` for the anthropic adapter (known options: {OPTION_KEYS})"
                    )));
                }
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
            Value::String(flag) if !flag.is_empty() && flag.bytes().all(is_token_byte) => Ok(flag),
            other => Err(format!(
                "option `beta`: {other} is not a beta name (letters, digits, `-`, `_`, `.`)"
            )),
        })
        .collect()
}

fn parse_headers(headers: Map<String, Value>) -> Result<Headers, String> {
    let mut parsed = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if lower.is_empty() || !lower.bytes().all(is_token_byte) {
            return Err(format!(
                "option `headers`: `{name}` is not a valid header name"
            ));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "option `headers`: `{name}` cannot be set here (the gateway sets it)"
            ));
        }
        let Value::String(value) = value else {
            return Err(format!(
                "option `headers`: the value of `{name}` must be a string"
            ));
        };
        if !valid_header_value(&value) {
            return Err(format!(
                "option `headers`: the value of `{name}` must not contain control characters"
            ));
        }
        parsed.push((lower, value));
    }
    Ok(parsed)
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn valid_header_value(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// Checks that `base_url` is an absolute http(s) URL without credentials,
/// query or fragment.
pub fn check_base_url(provider: &Provider) -> Result<(), PluginError> {
    let url = provider.base_url.as_str();
    let invalid = |why: &str| {
        PluginError::bad_request(format!(
            "provider `{}`: base_url `{url}` {why}",
            provider.name
        ))
        .with_param("base_url")
    };
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return Err(invalid("must be an http:// or https:// URL"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain whitespace"));
    }
    if url.contains(['?', '#']) {
        return Err(invalid("must not contain a query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid("must not contain credentials"));
    }
    let host_ok = !authority.is_empty()
        && !authority.starts_with(':')
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]%".contains(&b));
    if !host_ok {
        return Err(invalid("has no valid host"));
    }
    Ok(())
}

/// `{base_url}/v1/{path}`, without doubling a `/v1` the base URL already ends
/// with, nor a slash.
pub fn endpoint(base_url: &str, path: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.to_ascii_lowercase().ends_with("/v1") {
        format!("{base}/{path}")
    } else {
        format!("{base}/v1/{path}")
    }
}
