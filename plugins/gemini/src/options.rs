//! Provider configuration: the base URL, the options, and the endpoint URLs
//! built from them.

use orch_plugin_sdk::{Headers, PluginError, Provider, UpstreamRequestBuilder};
use serde_json::{Map, Value};

/// The API version used when the `api_version` option is not set.
pub(crate) const DEFAULT_API_VERSION: &str = "v1beta";

/// Option keys a provider may set, for error messages.
const OPTION_KEYS: &str = "api_version, headers, safety_settings";

/// Headers the adapter sets itself or that carry secrets; the `headers`
/// option cannot set them.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "authorization",
    "content-length",
    "content-type",
    "host",
    "x-goog-api-key",
];

/// Validated provider options (see the crate documentation for the table).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The path segment before `/models`, e.g. `v1beta`.
    pub api_version: String,
    /// Extra static headers, in configuration order (names lower-cased).
    pub headers: Headers,
    /// `safetySettings` sent with every canonical request, as configured.
    pub safety_settings: Option<Value>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.to_owned(),
            headers: Vec::new(),
            safety_settings: None,
        }
    }
}

impl Options {
    /// Parses and validates a provider's options; unknown keys and wrong
    /// types are `bad-request` errors naming the key.
    pub fn parse(provider: &Provider) -> Result<Self, PluginError> {
        let invalid = |message: String| {
            PluginError::bad_request(format!("provider `{}`: {message}", provider.name))
        };
        let mut options = Self::default();
        for (key, value) in provider.options_object()? {
            match key.as_str() {
                "api_version" => {
                    let version = value.as_str().unwrap_or_default();
                    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(invalid(
                            "option `api_version` must be a version such as \"v1beta\" or \"v1\""
                                .to_owned(),
                        ));
                    }
                    version.clone_into(&mut options.api_version);
                }
                "headers" => {
                    let Value::Object(headers) = value else {
                        return Err(invalid(
                            "option `headers` must be an object of header names to string values"
                                .to_owned(),
                        ));
                    };
                    options.headers = parse_headers(headers).map_err(invalid)?;
                }
                "safety_settings" => {
                    let valid = value
                        .as_array()
                        .is_some_and(|settings| settings.iter().all(Value::is_object));
                    if !valid {
                        return Err(invalid(
                            "option `safety_settings` must be a list of Gemini SafetySetting objects"
                                .to_owned(),
                        ));
                    }
                    options.safety_settings = Some(value);
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown option `{key}` for the gemini adapter (known options: {OPTION_KEYS})"
                    )));
                }
            }
        }
        Ok(options)
    }

    /// Adds the configured headers to a request.
    pub(crate) fn apply(&self, request: UpstreamRequestBuilder) -> UpstreamRequestBuilder {
        request.headers(self.headers.iter().cloned())
    }

    /// `{base}/{api_version}/{path}` without a doubled slash.
    pub(crate) fn url(&self, base_url: &str, path: &str) -> String {
        format!(
            "{}/{}/{path}",
            base_url.trim_end_matches('/'),
            self.api_version
        )
    }

    /// The URL of a model method, e.g. `…/v1beta/models/gemini-2.5-flash:generateContent`.
    pub(crate) fn model_url(
        &self,
        base_url: &str,
        model: &str,
        method: &str,
    ) -> Result<String, PluginError> {
        Ok(self.url(base_url, &format!("{}:{method}", model_resource(model)?)))
    }
}

/// The resource name of a model: `models/<name>`, or the name itself when it
/// already names a collection (`models/…`, `tunedModels/…`).
pub(crate) fn model_resource(model: &str) -> Result<String, PluginError> {
    let safe = !model.is_empty()
        && !model.starts_with('/')
        && !model
            .split('/')
            .any(|segment| segment.is_empty() || segment == "..")
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/@".contains(&b));
    if !safe {
        return Err(PluginError::bad_request(format!(
            "`{model}` is not a valid Gemini model name"
        ))
        .with_param("model"));
    }
    if model.contains('/') {
        Ok(model.to_owned())
    } else {
        Ok(format!("models/{model}"))
    }
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
        if value.chars().any(|c| c.is_control() && c != '\t') {
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

/// Checks that `base_url` is an absolute http(s) URL without credentials,
/// query, fragment or API version (that is the `api_version` option).
pub(crate) fn check_base_url(provider: &Provider) -> Result<(), PluginError> {
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
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
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
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if matches!(last, "v1" | "v1beta" | "v1alpha") {
        return Err(invalid(
            "must not end with the API version (set the `api_version` option instead)",
        ));
    }
    Ok(())
}
