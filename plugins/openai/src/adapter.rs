//! The OpenAI adapter proper. This file is self-contained (it names nothing
//! else in this crate) so that other crates (e.g. the `fixture-stream-trap`
//! test plugin) can include it with `#[path]` without linking this crate's
//! component exports.

use orch_plugin_sdk::{
    Adapter, Credential, ErrorClass, ErrorDetails, Headers, JsonEdit, Operation, ParsedResponse,
    PluginError, PluginInfo, Provider, RequestContext, UpstreamRequest, UpstreamRequestBuilder,
    capability, classify_details,
    json::RawObject,
    openai::{ChunkStream, parse_completion},
    provider::{BaseUrl, OptionsReader, check_base_url, endpoint, valid_header_value},
};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Option keys a provider may set, in the order error messages list them.
const OPTION_KEYS: &[&str] = &[
    "organization",
    "project",
    "headers",
    "stream_usage",
    "azure",
];

/// Keys of the `azure` option, for error messages.
const AZURE_KEYS: &str = "deployment, api_version";

/// The Azure OpenAI `api-version` used when the `azure` option names none
/// (the latest GA version of the data-plane inference API).
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// Extra headers the adapter sets itself or that carry secrets; they cannot be
/// configured through the `headers` option.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "api-key",
    "authorization",
    "content-length",
    "content-type",
    "host",
    "openai-organization",
    "openai-project",
];

/// The adapter for OpenAI's Chat Completions API and every OpenAI-compatible
/// API (vLLM, Ollama, DeepSeek, Groq, OpenRouter, ...), selected by the
/// provider's `base_url`, and for Azure OpenAI, selected by the `azure`
/// option.
///
/// Provider options (all optional):
///
/// | key | type | meaning |
/// |---|---|---|
/// | `organization` | string | sent as `openai-organization` (not with `azure`) |
/// | `project` | string | sent as `openai-project` (not with `azure`) |
/// | `headers` | object of string → string | extra static headers |
/// | `stream_usage` | bool, default `true` | ask the upstream for usage in streams (`stream_options.include_usage`) |
/// | `azure` | object | the provider is Azure OpenAI: `{"deployment": string, "api_version": string}`, both optional (`{}` is enough) |
///
/// # Azure OpenAI
///
/// With `azure` set, `base_url` is the resource endpoint
/// (`https://<resource>.openai.azure.com`, without `/openai`) and
///
/// * chat requests go to
///   `{base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}`;
/// * `deployment` defaults to the upstream model of the attempt (name
///   deployments after their models and one provider serves them all), and
///   `api_version` to [`AZURE_DEFAULT_API_VERSION`];
/// * the key goes in the `api-key` header instead of `authorization: Bearer`;
/// * the probe lists the models: `GET {base_url}/openai/models?api-version=…`.
///
/// Bodies, responses, streams and errors are OpenAI's (Azure's extra fields
/// such as `prompt_filter_results` pass through; its `content_filter` error
/// code is a `content-filter` error).
///
/// ```toml
/// [[providers]]
/// name = "azure-east"
/// adapter = "openai"
/// base_url = "https://my-resource.openai.azure.com"
/// options = { azure = { api_version = "2024-10-21" } }
/// ```
#[derive(Debug)]
pub struct OpenAi;

impl Adapter for OpenAi {
    type Decoder = ChunkStream;

    fn info() -> PluginInfo {
        PluginInfo::adapter("openai", env!("CARGO_PKG_VERSION"), "openai")
            .with_capabilities(capability::FULL_CHAT)
            .with_description("OpenAI Chat Completions and OpenAI-compatible APIs (vLLM, Ollama, DeepSeek, Groq, OpenRouter)")
    }

    fn check_provider(provider: &Provider) -> Result<(), PluginError> {
        let base_url = check_base_url(provider)?;
        let options = Options::parse(provider)?;
        if options.azure.is_some() {
            check_azure_base_url(provider, &base_url)?;
        }
        Ok(())
    }

    fn build_request(ctx: &RequestContext, payload: &str) -> Result<UpstreamRequest, PluginError> {
        if ctx.operation != Operation::Chat {
            return Err(PluginError::unsupported(format!(
                "the openai adapter does not support the {:?} operation",
                ctx.operation
            )));
        }
        let options = Options::parse(&ctx.provider)?;
        let mut edits = vec![JsonEdit::set_string("model", &ctx.upstream_model)];
        if ctx.streaming {
            edits.push(JsonEdit::set_raw("stream", "true"));
            if options.stream_usage {
                edits.push(stream_options_edit(payload)?);
            }
        }
        let accept = if ctx.streaming {
            "text/event-stream"
        } else {
            "application/json"
        };
        let url = match &options.azure {
            Some(azure) => azure.chat_url(&ctx.provider.base_url, &ctx.upstream_model)?,
            None => endpoint(&ctx.provider.base_url, "chat/completions"),
        };
        let request = UpstreamRequest::post(url)
            .header("content-type", "application/json")
            .header("accept", accept);
        Ok(options
            .apply(request)
            .credential(options.credential())
            .forward(edits)
            .build())
    }

    fn parse_response(
        ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ParsedResponse, PluginError> {
        parse_completion(ctx, status, body, |details| {
            classify(status, headers, details)
        })
    }

    fn classify_error(
        _ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> PluginError {
        classify(status, headers, &ErrorDetails::from_body(body))
    }

    fn probe_request(provider: &Provider) -> Option<UpstreamRequest> {
        let options = Options::parse(provider).unwrap_or_default();
        let url = match &options.azure {
            Some(azure) => azure.models_url(&provider.base_url),
            None => endpoint(&provider.base_url, "models"),
        };
        let request = UpstreamRequest::get(url).header("accept", "application/json");
        Some(
            options
                .apply(request)
                .credential(options.credential())
                .build(),
        )
    }

    fn judge_probe(
        _provider: &Provider,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), PluginError> {
        if !(200..300).contains(&status) {
            return Err(classify(status, headers, &ErrorDetails::from_body(body)));
        }
        let listing = serde_json::from_slice::<Value>(body).ok();
        if listing
            .as_ref()
            .and_then(|l| l.get("data"))
            .is_some_and(Value::is_array)
        {
            Ok(())
        } else {
            Err(
                PluginError::server("the models listing is not an OpenAI model list")
                    .with_status(status),
            )
        }
    }
}

/// Validated provider options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `openai-organization` header.
    pub organization: Option<String>,
    /// `openai-project` header.
    pub project: Option<String>,
    /// Extra static headers, in configuration order.
    pub headers: Headers,
    /// Ask the upstream for usage in streams.
    pub stream_usage: bool,
    /// Set when the provider is Azure OpenAI.
    pub azure: Option<Azure>,
}

/// The `azure` option: the provider is an Azure OpenAI resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Azure {
    /// The deployment to call; `None` means the upstream model of the
    /// attempt.
    pub deployment: Option<String>,
    /// The `api-version` query parameter.
    pub api_version: String,
}

impl Azure {
    /// Parses the `azure` option object.
    fn parse(value: Value) -> Result<Self, String> {
        let Value::Object(fields) = value else {
            return Err(
                "option `azure` must be an object such as {\"deployment\": \"gpt-4o\", \"api_version\": \"2024-10-21\"}"
                    .to_owned(),
            );
        };
        let mut azure = Self {
            deployment: None,
            api_version: AZURE_DEFAULT_API_VERSION.to_owned(),
        };
        for (key, value) in fields {
            let text = value.as_str().unwrap_or_default();
            match key.as_str() {
                "deployment" => {
                    if !valid_deployment(text) {
                        return Err(
                            "option `azure.deployment` must be a deployment name (letters, digits, `-`, `_`, `.`)"
                                .to_owned(),
                        );
                    }
                    azure.deployment = Some(text.to_owned());
                }
                "api_version" => {
                    let valid = !text.is_empty()
                        && text
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                    if !valid {
                        return Err(
                            "option `azure.api_version` must be a version such as \"2024-10-21\""
                                .to_owned(),
                        );
                    }
                    text.clone_into(&mut azure.api_version);
                }
                _ => {
                    return Err(format!(
                        "unknown key `{key}` in option `azure` (known keys: {AZURE_KEYS})"
                    ));
                }
            }
        }
        Ok(azure)
    }

    /// The deployment for a request: the configured one, else the model.
    fn deployment<'a>(&'a self, upstream_model: &'a str) -> Result<&'a str, PluginError> {
        let deployment = self.deployment.as_deref().unwrap_or(upstream_model);
        if valid_deployment(deployment) {
            Ok(deployment)
        } else {
            Err(PluginError::bad_request(format!(
                "`{deployment}` is not a valid Azure OpenAI deployment name"
            ))
            .with_param("model"))
        }
    }

    /// `{base}/openai/deployments/{deployment}/chat/completions?api-version=…`.
    fn chat_url(&self, base_url: &str, upstream_model: &str) -> Result<String, PluginError> {
        let deployment = self.deployment(upstream_model)?;
        Ok(endpoint(
            base_url,
            &format!(
                "openai/deployments/{deployment}/chat/completions?api-version={}",
                self.api_version
            ),
        ))
    }

    /// `{base}/openai/models?api-version=…` (the data-plane model listing).
    fn models_url(&self, base_url: &str) -> String {
        endpoint(
            base_url,
            &format!("openai/models?api-version={}", self.api_version),
        )
    }
}

/// Azure deployment names: letters, digits, `-`, `_`, `.` (1–64).
fn valid_deployment(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.')
}

impl Default for Options {
    fn default() -> Self {
        Self {
            organization: None,
            project: None,
            headers: Vec::new(),
            stream_usage: true,
            azure: None,
        }
    }
}

impl Options {
    /// Parses and validates a provider's options; unknown keys and wrong types
    /// are `bad-request` errors naming the key.
    pub fn parse(provider: &Provider) -> Result<Self, PluginError> {
        let reader = OptionsReader::new(provider, "openai", OPTION_KEYS);
        let mut options = Self::default();
        for (key, value) in reader.entries()? {
            match key.as_str() {
                "organization" | "project" => {
                    let Value::String(text) = value else {
                        return Err(reader.invalid(format_args!("option `{key}` must be a string")));
                    };
                    if !valid_header_value(&text) {
                        return Err(reader.invalid(format_args!(
                            "option `{key}` must not contain control characters"
                        )));
                    }
                    if key == "organization" {
                        options.organization = Some(text);
                    } else {
                        options.project = Some(text);
                    }
                }
                "headers" => options.headers = reader.extra_headers(value, RESERVED_HEADERS)?,
                "stream_usage" => {
                    let Value::Bool(flag) = value else {
                        return Err(reader.invalid("option `stream_usage` must be a boolean"));
                    };
                    options.stream_usage = flag;
                }
                "azure" => {
                    options.azure = Some(Azure::parse(value).map_err(|m| reader.invalid(m))?);
                }
                _ => return Err(reader.unknown(&key)),
            }
        }
        if options.azure.is_some() && (options.organization.is_some() || options.project.is_some())
        {
            return Err(reader.invalid(
                "options `organization` and `project` do not apply to Azure OpenAI (`azure`)",
            ));
        }
        Ok(options)
    }

    /// Where the credential goes: `api-key` for Azure, else bearer.
    fn credential(&self) -> Credential {
        if self.azure.is_some() {
            Credential::Header("api-key".to_owned())
        } else {
            Credential::Bearer
        }
    }

    /// Adds the configured headers to a request.
    fn apply(&self, mut request: UpstreamRequestBuilder) -> UpstreamRequestBuilder {
        if let Some(organization) = &self.organization {
            request = request.header("openai-organization", organization.clone());
        }
        if let Some(project) = &self.project {
            request = request.header("openai-project", project.clone());
        }
        request.headers(self.headers.iter().cloned())
    }
}

/// An Azure `base_url` is the resource endpoint: the adapter adds `/openai/…`.
fn check_azure_base_url(provider: &Provider, base_url: &BaseUrl<'_>) -> Result<(), PluginError> {
    let path = base_url.path().trim_end_matches('/').to_ascii_lowercase();
    if path == "openai" || path.starts_with("openai/") || path.ends_with("/openai") {
        return Err(PluginError::bad_request(format!(
            "provider `{}`: with `azure`, base_url `{}` must be the resource endpoint without `/openai` (e.g. https://my-resource.openai.azure.com)",
            provider.name, provider.base_url
        ))
        .with_param("base_url"));
    }
    Ok(())
}

/// The `stream_options` edit asking for usage in the stream: the client's
/// `stream_options` (if any) with `include_usage: true`. Only that field is
/// read from the payload; serde skips the rest without building it.
fn stream_options_edit(payload: &str) -> Result<JsonEdit, PluginError> {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(default, borrow)]
        stream_options: Option<&'a RawValue>,
    }
    let peek: Peek<'_> = serde_json::from_str(payload).map_err(|err| {
        PluginError::bad_request(format!(
            "the request body is not a valid JSON object: {err}"
        ))
    })?;
    let not_an_object = || {
        PluginError::bad_request("`stream_options` must be an object").with_param("stream_options")
    };
    let mut options = match peek.stream_options.map(RawValue::get) {
        None | Some("null") => RawObject::parse("{}").map_err(|_| not_an_object())?,
        Some(raw) => RawObject::parse(raw).map_err(|_| not_an_object())?,
    };
    options.set_raw("include_usage", "true");
    Ok(JsonEdit::set_raw("stream_options", options.to_json()))
}

/// [`classify_details`] plus OpenAI's error codes.
pub fn classify(status: u16, headers: &[(String, String)], details: &ErrorDetails) -> PluginError {
    let error = classify_details(status, headers, details);
    let is =
        |code: &str| details.code.as_deref() == Some(code) || details.kind.as_deref() == Some(code);
    let starts = |prefix: &str| {
        details
            .code
            .as_deref()
            .is_some_and(|c| c.starts_with(prefix))
            || details
                .kind
                .as_deref()
                .is_some_and(|k| k.starts_with(prefix))
    };
    if is("context_length_exceeded")
        || (error.class == ErrorClass::BadRequest && mentions_context_length(&error.message))
    {
        error
            .with_class(ErrorClass::ContextLength)
            .with_retryable(false)
    } else if is("insufficient_quota") {
        // Another key may still have quota.
        let message = format!("the key's quota is exhausted: {}", error.message);
        PluginError {
            message,
            ..error
                .with_class(ErrorClass::RateLimited)
                .with_retryable(true)
        }
    } else if starts("content_filter") || is("content_policy_violation") {
        error
            .with_class(ErrorClass::ContentFilter)
            .with_retryable(false)
    } else if is("model_not_found") {
        error.with_class(ErrorClass::NotFound).with_retryable(true)
    } else {
        error
    }
}

/// OpenAI-compatible servers without error codes (vLLM, Ollama) say it in
/// words.
fn mentions_context_length(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "maximum context length",
        "context length exceeded",
        "context_length_exceeded",
        "context window",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// The stream decoder: the SDK's OpenAI chunk stream (one
/// `chat.completion.chunk` per event, then `data: [DONE]`).
pub type OpenAiDecoder = ChunkStream;
