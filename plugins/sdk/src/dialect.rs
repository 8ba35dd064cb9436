//! Ingress dialects (the WIT `dialect` interface): the [`Dialect`] trait, its
//! [`StreamEncoder`], and the types they exchange with the host.

use crate::{Headers, Operation, PluginError, PluginInfo, SseEvent, Usage};

/// An ingress dialect: decodes client requests in one wire dialect into the
/// canonical form and encodes canonical results back. The host owns the HTTP
/// routes; the plugin owns the translation. Export it with
/// [`export_dialect!`](crate::export_dialect).
pub trait Dialect: 'static {
    /// Encodes one canonical stream into the dialect's events.
    type Encoder: StreamEncoder;

    /// The plugin's metadata.
    fn info() -> PluginInfo;

    /// Decodes a client request. Errors are reported to the client through
    /// [`Dialect::encode_error`].
    fn decode_request(request: &IngressRequest) -> Result<DecodedRequest, PluginError>;

    /// Encodes a canonical `chat.completion` response (JSON text).
    fn encode_response(
        ctx: &EgressContext,
        body: &str,
        usage: Option<Usage>,
    ) -> Result<String, PluginError>;

    /// Encodes an error in the dialect's shape and status.
    fn encode_error(error: &PluginError) -> ErrorResponse;

    /// Encodes a model listing (JSON text).
    fn encode_models(models: &[ModelEntry]) -> String;

    /// Encodes the result of a token count (JSON text).
    fn encode_token_count(ctx: &EgressContext, input_tokens: u32) -> String;
}

/// Encodes one canonical stream into the dialect's server-sent events.
pub trait StreamEncoder: Sized + 'static {
    /// Starts encoding a stream.
    fn new(ctx: EgressContext) -> Self;

    /// Encodes one canonical `chat.completion.chunk` (JSON text).
    fn push(&mut self, chunk: &str) -> Result<Vec<SseEvent>, PluginError>;

    /// The stream ended normally; emit the closing events.
    fn finish(&mut self, usage: Option<Usage>) -> Result<Vec<SseEvent>, PluginError>;

    /// The stream failed after content was sent; emit the dialect's in-stream
    /// error so the client never mistakes it for a clean end.
    fn abort(&mut self, error: &PluginError) -> Vec<SseEvent>;
}

/// A client request as the host received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRequest {
    /// What the endpoint does.
    pub operation: Operation,
    /// The model named in the URL path, for dialects that put it there.
    pub path_model: Option<String>,
    /// `Some(true)` when the endpoint itself streams (e.g. Gemini's
    /// `:streamGenerateContent`), `None` when the body decides.
    pub endpoint_streams: Option<bool>,
    /// Dialect-relevant client headers; credentials are never included.
    pub headers: Headers,
    /// The request body.
    pub body: Vec<u8>,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRequest {
    /// The model the client asked for.
    pub model: String,
    /// Whether the client wants a stream.
    pub streaming: bool,
    /// The canonical request (OpenAI Chat Completions shape) as JSON text.
    pub body: String,
}

/// What an encoder needs to know about the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressContext {
    /// The gateway's request id.
    pub request_id: String,
    /// The model name the client asked for.
    pub requested_model: String,
    /// When the gateway received the request, in Unix milliseconds.
    pub received_at_ms: u64,
}

/// A configured model, for model listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// The name clients use.
    pub id: String,
    /// Who serves it (the first provider), for display.
    pub owned_by: String,
    /// When it was configured, in Unix seconds.
    pub created: u64,
}

/// An error response body for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body in the dialect's error shape.
    pub body: String,
}
