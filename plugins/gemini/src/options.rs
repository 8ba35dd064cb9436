//! Provider configuration: the base URL, the options, and the endpoint URLs
//! built from them.

use orch_plugin_sdk::provider::{self, OptionsReader};
use orch_plugin_sdk::{Headers, PluginError, Provider, UpstreamRequestBuilder};
use serde_json::Value;

/// The API version used when the `api_version` option is not set.
pub(crate) const DEFAULT_API_VERSION: &str = "v1beta";

/// Option keys a provider may set, in the order error messages list them.
const OPTION_KEYS: &[&str] = &["api_version", "headers", "safety_settings"];

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
        let reader = OptionsReader::new(provider, "gemini", OPTION_KEYS);
        let mut options = Self::default();
        for (key, value) in reader.entries()? {
            match key.as_str() {
                "api_version" => {
                    let version = value.as_str().unwrap_or_default();
                    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(reader.invalid(
                            "option `api_version` must be a version such as \"v1beta\" or \"v1\"",
                        ));
                    }
                    version.clone_into(&mut options.api_version);
                }
                "headers" => options.headers = reader.extra_headers(value, RESERVED_HEADERS)?,
                "safety_settings" => {
                    let valid = value
                        .as_array()
                        .is_some_and(|settings| settings.iter().all(Value::is_object));
                    if !valid {
                        return Err(reader.invalid(
                            "option `safety_settings` must be a list of Gemini SafetySetting objects",
                        ));
                    }
                    options.safety_settings = Some(value);
                }
                _ => return Err(reader.unknown(&key)),
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
        provider::endpoint(base_url, &format!("{}/{path}", self.api_version))
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

/// Checks that `base_url` is an absolute http(s) URL without credentials,
/// query, fragment or API version (that is the `api_version` option).
pub(crate) fn check_base_url(provider: &Provider) -> Result<(), PluginError> {
    let base_url = provider::check_base_url(provider)?;
    let last = base_url.last_segment().to_ascii_lowercase();
    if matches!(last.as_str(), "v1" | "v1beta" | "v1alpha") {
        return Err(base_url
            .invalid("must not end with the API version (set the `api_version` option instead)"));
    }
    Ok(())
}
