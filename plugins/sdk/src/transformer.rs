//! Transformers (the WIT `transformer` interface): the [`Transformer`] trait,
//! its [`StreamFilter`], and the types they exchange with the host.

use crate::{PluginError, PluginInfo, Usage};

/// A transformer: inspects and rewrites canonical requests, responses and
/// stream chunks (redaction, prompt injection, model rewrites, policy). It
/// does no I/O. Export it with [`export_transformer!`](crate::export_transformer).
///
/// Every hook passes by default, so a transformer implements only what it
/// needs.
pub trait Transformer: 'static {
    /// Per-stream state for rewriting chunks; [`PassThroughFilter`] if the
    /// transformer leaves streams alone.
    type Filter: StreamFilter;

    /// The plugin's metadata.
    fn info() -> PluginInfo;

    /// Checks an attachment's configuration (JSON object text) when the
    /// gateway loads it. Accepts everything by default.
    fn check_config(config: &str) -> Result<(), PluginError> {
        let _ = config;
        Ok(())
    }

    /// Inspects or rewrites a canonical request (JSON text).
    fn on_request(ctx: &TransformContext, body: &str) -> Result<RequestAction, PluginError> {
        let _ = (ctx, body);
        Ok(RequestAction::Pass)
    }

    /// Inspects or rewrites a canonical, non-streaming response (JSON text).
    fn on_response(
        ctx: &TransformContext,
        body: &str,
        usage: Option<Usage>,
    ) -> Result<ResponseAction, PluginError> {
        let _ = (ctx, body, usage);
        Ok(ResponseAction::Pass)
    }
}

/// Per-stream state for rewriting chunks. A filter may hold chunks back (e.g.
/// while a match may straddle two chunks) and release them later.
pub trait StreamFilter: Sized + 'static {
    /// Starts filtering one stream.
    fn new(ctx: TransformContext) -> Self;

    /// Takes one canonical chunk (JSON text); returns the chunks to send now.
    fn on_chunk(&mut self, chunk: String) -> Result<Vec<String>, PluginError>;

    /// The stream ended; returns any chunks still held.
    fn on_end(&mut self, usage: Option<Usage>) -> Result<Vec<String>, PluginError>;
}

/// A [`StreamFilter`] that sends every chunk on unchanged.
#[derive(Debug, Default)]
pub struct PassThroughFilter;

impl StreamFilter for PassThroughFilter {
    fn new(_ctx: TransformContext) -> Self {
        Self
    }

    fn on_chunk(&mut self, chunk: String) -> Result<Vec<String>, PluginError> {
        Ok(vec![chunk])
    }

    fn on_end(&mut self, _usage: Option<Usage>) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }
}

/// What a transformer knows about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformContext {
    /// The gateway's request id.
    pub request_id: String,
    /// The dialect the client speaks.
    pub ingress_dialect: String,
    /// The model the client asked for (after earlier transformers).
    pub requested_model: String,
    /// Whether the client asked for a stream.
    pub streaming: bool,
    /// The id of the client key, when the client authenticated with one.
    pub client_key_id: Option<String>,
    /// This attachment's configuration as JSON object text (`{}` when none).
    pub config: String,
}

impl TransformContext {
    /// A context with this attachment configuration and placeholder values
    /// for everything else, for a transformer's unit tests: request id
    /// `test`, ingress dialect `openai`, requested model `test-model`, not
    /// streaming, no client key. Change a field with struct update syntax.
    ///
    /// ```
    /// use orch_plugin_sdk::TransformContext;
    ///
    /// let ctx = TransformContext::for_config(r#"{"text": "Be brief."}"#);
    /// assert_eq!(ctx.config, r#"{"text": "Be brief."}"#);
    /// assert_eq!(ctx.requested_model, "test-model");
    /// assert!(!ctx.streaming && ctx.client_key_id.is_none());
    ///
    /// let keyed = TransformContext {
    ///     client_key_id: Some("key_trial".to_owned()),
    ///     ..TransformContext::for_config("{}")
    /// };
    /// assert_eq!(keyed.request_id, "test");
    /// ```
    pub fn for_config(config: impl Into<String>) -> Self {
        Self {
            request_id: "test".to_owned(),
            ingress_dialect: "openai".to_owned(),
            requested_model: "test-model".to_owned(),
            streaming: false,
            client_key_id: None,
            config: config.into(),
        }
    }
}

/// A deliberate refusal, sent to the client in its own dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status, 400..=599.
    pub status: u16,
    /// Stable machine-readable code, e.g. `blocked_by_policy`.
    pub code: String,
    /// Message for the client.
    pub message: String,
}

impl Rejection {
    /// A refusal with this status, code and message.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAction {
    /// Leave it as it is.
    Pass,
    /// Replace the canonical request with this one (JSON text).
    Replace(String),
    /// Refuse it.
    Reject(Rejection),
}

/// What to do with a complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseAction {
    /// Leave it as it is.
    Pass,
    /// Replace the canonical response with this one (JSON text).
    Replace(String),
    /// Refuse it; the client gets an error instead.
    Reject(Rejection),
}
