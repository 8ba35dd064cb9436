//! The host-side mirror of the WIT contract (`wit/plugin@0.1.0`).
//!
//! The plugin host converts between these types and the generated bindings,
//! so no other crate needs to know wasmtime. Field meanings are documented in
//! the WIT files; only host-specific remarks are repeated here.

use std::fmt;

/// The contract versions this gateway can load, newest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1.0"];

/// What a plugin does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    /// Talks to one kind of upstream provider.
    Adapter,
    /// Speaks one client wire dialect at the ingress.
    Dialect,
    /// Inspects or rewrites requests and responses.
    Transformer,
}

impl PluginKind {
    /// The kind's name as used in the WIT interface names and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Adapter => "adapter",
            PluginKind::Dialect => "dialect",
            PluginKind::Transformer => "transformer",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metadata a plugin reports about itself, validated at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Stable identifier, e.g. `openai`.
    pub id: String,
    /// Semantic version of the build.
    pub version: semver::Version,
    /// What it does.
    pub kind: PluginKind,
    /// The wire dialect it speaks (empty for transformers).
    pub dialect: String,
    /// Declared capabilities (see [`Capability`] for the ones the router uses).
    pub capabilities: Vec<String>,
    /// One line for operators.
    pub description: String,
}

impl PluginInfo {
    /// `id@version`, the label used in logs, headers and the request log.
    pub fn label(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// Whether the plugin declares a capability.
    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.iter().any(|c| c == cap.as_str())
    }
}

/// Capabilities the router checks before sending a request to an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Function / tool calling.
    Tools,
    /// Image inputs.
    Vision,
    /// `response_format: {"type": "json_object"}`.
    JsonMode,
    /// `response_format: {"type": "json_schema"}`.
    JsonSchema,
    /// Reasoning / thinking controls and content.
    Reasoning,
}

impl Capability {
    /// Every capability the router knows.
    pub const ALL: [Capability; 5] = [
        Capability::Tools,
        Capability::Vision,
        Capability::JsonMode,
        Capability::JsonSchema,
        Capability::Reasoning,
    ];

    /// The capability's name in `plugin-info.capabilities`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Tools => "tools",
            Capability::Vision => "vision",
            Capability::JsonMode => "json-mode",
            Capability::JsonSchema => "json-schema",
            Capability::Reasoning => "reasoning",
        }
    }
}

/// The operation a request performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Chat completion.
    Chat,
    /// Input token count.
    CountTokens,
    /// Embeddings.
    Embeddings,
}

/// The form a payload is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadForm {
    /// OpenAI Chat Completions shape.
    Canonical,
    /// The adapter's own dialect, passed through.
    Native,
}

/// A provider as plugins see it: no secrets.
#[derive(Clone, Debug)]
pub struct ProviderView {
    /// Configured name.
    pub name: String,
    /// Configured base URL.
    pub base_url: String,
    /// Non-secret options as a JSON object.
    pub options_json: String,
}

/// Everything an adapter may know about one attempt.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The gateway's request id.
    pub request_id: String,
    /// What the request does.
    pub operation: Operation,
    /// The model the client asked for.
    pub requested_model: String,
    /// The provider's model name for this attempt.
    pub upstream_model: String,
    /// Whether the client asked for a stream.
    pub streaming: bool,
    /// The form of the payload.
    pub form: PayloadForm,
    /// The dialect the client speaks.
    pub ingress_dialect: String,
    /// Unix milliseconds when the request arrived.
    pub received_at_ms: u64,
    /// The provider of this attempt.
    pub provider: ProviderView,
}

/// Token usage of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens including cached ones.
    pub input_tokens: u32,
    /// Output tokens including reasoning ones.
    pub output_tokens: u32,
    /// Input tokens served from cache.
    pub cached_input_tokens: Option<u32>,
    /// Input tokens written to cache.
    pub cache_write_input_tokens: Option<u32>,
    /// Output tokens spent reasoning.
    pub reasoning_tokens: Option<u32>,
}

/// The class of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Invalid request (400).
    BadRequest,
    /// Credentials rejected (401).
    Authentication,
    /// Permission denied (403).
    PermissionDenied,
    /// Not found (404).
    NotFound,
    /// Input exceeds the context window.
    ContextLength,
    /// Refused by a safety system.
    ContentFilter,
    /// Rate limited (429).
    RateLimited,
    /// Overloaded (503/529).
    Overloaded,
    /// Upstream failure (5xx or protocol breach).
    Server,
    /// No answer in time.
    Timeout,
    /// Feature not expressible by the target.
    Unsupported,
}

impl ErrorClass {
    /// A stable snake_case name, used in logs, metrics and the request log.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Authentication => "authentication",
            ErrorClass::PermissionDenied => "permission_denied",
            ErrorClass::NotFound => "not_found",
            ErrorClass::ContextLength => "context_length",
            ErrorClass::ContentFilter => "content_filter",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::Server => "server",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Unsupported => "unsupported",
        }
    }
}

/// A classified error reported by a plugin (an upstream error it recognised
/// or input it refuses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifiedError {
    /// What went wrong.
    pub class: ErrorClass,
    /// Whether another key or provider may succeed.
    pub retryable: bool,
    /// Upstream HTTP status, when there was one.
    pub status: Option<u16>,
    /// Provider error code.
    pub code: Option<String>,
    /// The parameter at fault.
    pub param: Option<String>,
    /// Human-readable message, safe for clients once the host scrubbed secrets.
    pub message: String,
    /// How long the upstream asked to wait.
    pub retry_after_ms: Option<u32>,
}

impl ClassifiedError {
    /// A plain error of a class with a message and no upstream details.
    pub fn new(class: ErrorClass, retryable: bool, message: impl Into<String>) -> Self {
        ClassifiedError {
            class,
            retryable,
            status: None,
            code: None,
            param: None,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// Where the host puts the provider credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// No credential.
    None,
    /// `authorization: Bearer <key>`.
    Bearer,
    /// A header carrying the key.
    Header(String),
    /// A query parameter carrying the key.
    Query(String),
}

/// One top-level edit of a JSON object body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonEdit {
    /// The field.
    pub field: String,
    /// New JSON value, or `None` to remove the field.
    pub value: Option<String>,
}

/// The body of an upstream request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// No body.
    Empty,
    /// The payload given to the plugin with top-level edits applied.
    Forward(Vec<JsonEdit>),
    /// Exact bytes.
    Bytes(Vec<u8>),
}

/// How to split a streaming response into frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events.
    Sse,
    /// Newline-delimited JSON.
    Ndjson,
    /// Network chunks as they arrive.
    Raw,
}

/// An HTTP request a plugin built for the host to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: RequestBody,
    /// Credential placement.
    pub credential: Credential,
    /// Stream framing.
    pub framing: Framing,
}

/// A translated non-streaming response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedResponse {
    /// The response payload as JSON text.
    pub body: String,
    /// Usage, when reported.
    pub usage: Option<Usage>,
}

/// One frame of an upstream stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// SSE event name.
    pub event: Option<String>,
    /// Frame data.
    pub data: Vec<u8>,
}

/// What a stream chunk means to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// Model output: commits the stream.
    Content,
    /// No model output.
    Meta,
    /// Usage only; forwarded at most once, at the end, when asked for.
    Usage,
}

/// A chunk for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamChunk {
    /// What it means.
    pub kind: ChunkKind,
    /// SSE event name (native form).
    pub event: Option<String>,
    /// JSON payload.
    pub data: String,
}

/// One output of a stream decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// A chunk to send.
    Chunk(StreamChunk),
    /// A usage report.
    Usage(Usage),
    /// Normal end of stream.
    Done,
}

/// A client request handed to an ingress dialect plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRequest {
    /// What the endpoint does.
    pub operation: Operation,
    /// The model named in the URL path, for dialects that put it there.
    pub path_model: Option<String>,
    /// `Some(true)` when the endpoint itself streams.
    pub endpoint_streams: Option<bool>,
    /// Dialect-relevant client headers; never credentials.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
}

/// A client request decoded into the canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedRequest {
    /// The model the client asked for.
    pub model: String,
    /// Whether the client wants a stream.
    pub streaming: bool,
    /// The canonical request as JSON text.
    pub body: String,
}

/// What a dialect encoder knows about the request it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressContext {
    /// The gateway's request id.
    pub request_id: String,
    /// The model name the client asked for.
    pub requested_model: String,
    /// When the gateway received the request, in Unix milliseconds.
    pub received_at_ms: u64,
}

/// A configured model, for listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    /// The name clients use.
    pub id: String,
    /// Who serves it, for display.
    pub owned_by: String,
    /// When it was configured, in Unix seconds.
    pub created: u64,
}

/// An error response rendered by a dialect plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// One server-sent event for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` field.
    pub data: String,
}

/// What a transformer knows about the request it transforms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformContext {
    /// The gateway's request id.
    pub request_id: String,
    /// The dialect the client speaks (`openai`, `anthropic`, `gemini`).
    pub ingress_dialect: String,
    /// The model the client asked for, after earlier transformers.
    pub requested_model: String,
    /// Whether the client asked for a stream.
    pub streaming: bool,
    /// The id of the client key, when the client authenticated with one.
    pub client_key_id: Option<String>,
    /// The attachment's configuration as a JSON object (`{}` when none).
    pub config: String,
}

/// A transformer's deliberate refusal, sent to the client in its dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status, 400..=599.
    pub status: u16,
    /// Stable machine-readable code, e.g. `blocked_by_policy`.
    pub code: String,
    /// Message for the client.
    pub message: String,
}

/// What a transformer does with a request or a complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransformAction {
    /// Leave it as it is.
    Pass,
    /// Replace it with this canonical JSON text.
    Replace(String),
    /// Refuse it.
    Reject(Rejection),
}
