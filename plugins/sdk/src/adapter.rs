//! Provider adapters (the WIT `adapter` interface): the [`Adapter`] trait, its
//! [`StreamDecoder`], and the request/response types they exchange with the
//! host.

use serde_json::Value;

use crate::{Headers, PluginError, PluginInfo, Provider, RequestContext, Usage, classify_status};

/// A provider adapter: translates between the gateway and one kind of upstream
/// API, without doing any I/O. Export it with [`export_adapter!`](crate::export_adapter).
///
/// The host builds a fresh instance for every attempt, so an adapter has no
/// state across requests; the methods are associated functions. Per-stream
/// state lives in the [`Adapter::Decoder`].
pub trait Adapter: 'static {
    /// Decodes one upstream stream. Use [`UnsupportedStream`] if the adapter
    /// never streams.
    type Decoder: StreamDecoder;

    /// The plugin's metadata.
    fn info() -> PluginInfo;

    /// Checks a provider's configuration (base URL and options) when the
    /// gateway loads it; an error rejects the configuration with its message.
    /// Accepts everything by default.
    fn check_provider(provider: &Provider) -> Result<(), PluginError> {
        let _ = provider;
        Ok(())
    }

    /// Builds the upstream request for `payload` (JSON text in the form
    /// `ctx.form` names). Must be pure: the host may call it again for another
    /// attempt. Errors of class `unsupported` make the host try another target.
    fn build_request(ctx: &RequestContext, payload: &str) -> Result<UpstreamRequest, PluginError>;

    /// Translates a successful (2xx) non-streaming response body. An error
    /// hidden in a 2xx body must be returned as an error.
    fn parse_response(
        ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ParsedResponse, PluginError>;

    /// Classifies a non-2xx upstream response. Defaults to
    /// [`classify_status`].
    fn classify_error(
        ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> PluginError {
        let _ = ctx;
        classify_status(status, headers, body)
    }

    /// A cheap, unbilled request that shows whether the provider and key work
    /// (e.g. a models listing). `None` (the default) if there is none.
    fn probe_request(provider: &Provider) -> Option<UpstreamRequest> {
        let _ = provider;
        None
    }

    /// Judges the answer to the probe request. By default any 2xx is healthy
    /// and anything else is classified with [`classify_status`].
    fn judge_probe(
        provider: &Provider,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), PluginError> {
        let _ = provider;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(classify_status(status, headers, body))
        }
    }
}

/// Decodes one upstream stream into [`StreamItem`]s. Created when the upstream
/// answered a streaming request with a 2xx status; dropped when the attempt
/// ends.
pub trait StreamDecoder: Sized + 'static {
    /// Starts decoding a stream with this response status and headers.
    fn new(ctx: RequestContext, status: u16, headers: Headers) -> Self;

    /// Decodes one frame (as split by the host according to the request's
    /// [`Framing`]) into zero or more items. An error ends the stream; errors
    /// reported inside a 200 stream must be returned here, classified.
    fn push(&mut self, frame: Frame) -> Result<Vec<StreamItem>, PluginError>;

    /// The upstream body ended. Returns the remaining items, or an error if the
    /// stream was cut short (no [`StreamItem::Done`] seen).
    fn finish(&mut self) -> Result<Vec<StreamItem>, PluginError>;
}

/// A [`StreamDecoder`] for adapters that never stream: every frame is an
/// `unsupported` error.
#[derive(Debug, Default)]
pub struct UnsupportedStream;

impl StreamDecoder for UnsupportedStream {
    fn new(_ctx: RequestContext, _status: u16, _headers: Headers) -> Self {
        Self
    }

    fn push(&mut self, _frame: Frame) -> Result<Vec<StreamItem>, PluginError> {
        Err(PluginError::unsupported("this adapter does not stream"))
    }

    fn finish(&mut self) -> Result<Vec<StreamItem>, PluginError> {
        Err(PluginError::unsupported("this adapter does not stream"))
    }
}

/// Where the host puts the provider credential. The plugin never sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Send no credential.
    None,
    /// `authorization: Bearer <key>`.
    Bearer,
    /// A header whose whole value is the key, e.g. `x-api-key`.
    Header(String),
    /// A URL query parameter, e.g. `key`. Discouraged: URLs end up in logs.
    Query(String),
}

/// One edit of a top-level field of a JSON object body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonEdit {
    /// The top-level field name.
    pub field: String,
    /// The new value as JSON text, or `None` to remove the field.
    pub value: Option<String>,
}

impl JsonEdit {
    /// Sets `field` to `json`, which must be valid JSON text.
    pub fn set_raw(field: impl Into<String>, json: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: Some(json.into()),
        }
    }

    /// Sets `field` to a JSON value.
    pub fn set(field: impl Into<String>, value: &Value) -> Self {
        Self::set_raw(field, value.to_string())
    }

    /// Sets `field` to a JSON string.
    pub fn set_string(field: impl Into<String>, value: &str) -> Self {
        Self::set(field, &Value::String(value.to_owned()))
    }

    /// Removes `field`.
    pub fn remove(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: None,
        }
    }
}

/// The body of the upstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (e.g. for `GET`).
    Empty,
    /// The payload given to `build_request`, with these top-level edits
    /// applied by the host in order: the fast path for pass-through, the
    /// plugin need not parse or re-serialise the body.
    Forward(Vec<JsonEdit>),
    /// These exact bytes.
    Bytes(Vec<u8>),
}

/// How the host splits a streaming response body into [`Frame`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Server-sent events: one frame per event.
    Sse,
    /// Newline-delimited JSON: one frame per non-empty line.
    Ndjson,
    /// No framing: frames are network chunks as they arrive.
    Raw,
}

/// An HTTP request for the host to send. Build one with
/// [`UpstreamRequest::post`] / [`UpstreamRequest::get`]:
///
/// ```
/// use orch_plugin_sdk::{Credential, JsonEdit, RequestBody, UpstreamRequest};
///
/// let request = UpstreamRequest::post("https://api.example.com/v1/chat")
///     .header("content-type", "application/json")
///     .bearer()
///     .forward(vec![JsonEdit::set_string("model", "m-1")])
///     .build();
/// assert_eq!(request.method, "POST");
/// assert_eq!(request.credential, Credential::Bearer);
/// assert!(matches!(request.body, RequestBody::Forward(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Absolute URL on the provider's configured origin.
    pub url: String,
    /// Headers to send. The host refuses hop-by-hop headers, `host` and
    /// `content-length`, and adds the credential itself.
    pub headers: Headers,
    /// The body.
    pub body: RequestBody,
    /// Where the credential goes.
    pub credential: Credential,
    /// How to frame the response body when the request streams.
    pub framing: Framing,
}

impl UpstreamRequest {
    /// Starts a request with any method. Defaults: no headers, empty body, no
    /// credential, SSE framing.
    pub fn builder(method: impl Into<String>, url: impl Into<String>) -> UpstreamRequestBuilder {
        UpstreamRequestBuilder {
            request: Self {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: RequestBody::Empty,
                credential: Credential::None,
                framing: Framing::Sse,
            },
        }
    }

    /// Starts a `POST` request.
    pub fn post(url: impl Into<String>) -> UpstreamRequestBuilder {
        Self::builder("POST", url)
    }

    /// Starts a `GET` request.
    pub fn get(url: impl Into<String>) -> UpstreamRequestBuilder {
        Self::builder("GET", url)
    }
}

/// Builder for [`UpstreamRequest`].
#[derive(Debug, Clone)]
#[must_use]
pub struct UpstreamRequestBuilder {
    request: UpstreamRequest,
}

impl UpstreamRequestBuilder {
    /// Appends a header; the name is lower-cased.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let mut name = name.into();
        name.make_ascii_lowercase();
        self.request.headers.push((name, value.into()));
        self
    }

    /// Appends several headers; names are lower-cased.
    pub fn headers<I, N, V>(self, headers: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        headers.into_iter().fold(self, |b, (n, v)| b.header(n, v))
    }

    /// Sets the body.
    pub fn body(mut self, body: RequestBody) -> Self {
        self.request.body = body;
        self
    }

    /// Forwards the payload with these top-level edits.
    pub fn forward(self, edits: Vec<JsonEdit>) -> Self {
        self.body(RequestBody::Forward(edits))
    }

    /// Sends these exact bytes.
    pub fn bytes(self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body(RequestBody::Bytes(bytes.into()))
    }

    /// Sets where the credential goes.
    pub fn credential(mut self, credential: Credential) -> Self {
        self.request.credential = credential;
        self
    }

    /// `authorization: Bearer <key>`.
    pub fn bearer(self) -> Self {
        self.credential(Credential::Bearer)
    }

    /// Sets how a streaming response is framed.
    pub fn framing(mut self, framing: Framing) -> Self {
        self.request.framing = framing;
        self
    }

    /// The finished request.
    pub fn build(self) -> UpstreamRequest {
        self.request
    }
}

/// A successful non-streaming response, translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    /// The payload in the form the context asks for: a canonical
    /// `chat.completion`, or the native body with only `model` changed.
    pub body: String,
    /// Token usage, when the upstream reported it.
    pub usage: Option<Usage>,
}

/// One frame of an upstream stream, as split by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The SSE `event:` field, if any.
    pub event: Option<String>,
    /// The SSE `data:` field (lines joined with `\n`), the NDJSON line, or the
    /// raw bytes.
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame with this data and no event name.
    pub fn data(data: impl Into<Vec<u8>>) -> Self {
        Self {
            event: None,
            data: data.into(),
        }
    }

    /// The data as UTF-8 text; a `server` error if it is not.
    pub fn text(&self) -> Result<&str, PluginError> {
        std::str::from_utf8(&self.data)
            .map_err(|_| PluginError::server("upstream stream frame is not valid UTF-8"))
    }
}

/// What a chunk means to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// Carries model output. The first content chunk is the commit point:
    /// after it the host can no longer fail over.
    Content,
    /// Carries no model output (role announcement, ping, finish reason).
    Meta,
    /// Exists only to report usage (OpenAI's final `choices: []` chunk).
    Usage,
}

/// A chunk for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChunk {
    /// What it means.
    pub kind: ChunkKind,
    /// The SSE event name to send (native form only; `None` in canonical form).
    pub event: Option<String>,
    /// A canonical `chat.completion.chunk`, or the native event payload with
    /// only the model name changed.
    pub data: String,
}

impl StreamChunk {
    /// A chunk without an event name.
    pub fn new(kind: ChunkKind, data: impl Into<String>) -> Self {
        Self {
            kind,
            event: None,
            data: data.into(),
        }
    }

    /// Sets the SSE event name.
    #[must_use]
    pub fn with_event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }
}

/// One output of a [`StreamDecoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A chunk to send.
    Chunk(StreamChunk),
    /// A usage report (replaces earlier ones).
    Usage(Usage),
    /// The upstream signalled the normal end of the stream.
    Done,
}
