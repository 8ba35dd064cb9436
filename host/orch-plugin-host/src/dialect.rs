//! One ingress dialect instance serving one request: decoding the client's
//! request, encoding the answer (a response, a stream, an error, a listing).

use std::sync::Arc;

use orch_core::contract::{self as c, ClassifiedError};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::dialect as d;
use crate::convert;
use crate::error::{CallError, PluginFault};
use crate::host_state::HostState;
use crate::loader::LoadedPlugin;
use crate::runtime::{arm, guarded};

/// A dialect plugin instantiated for one request. Like an adapter instance it
/// pins its plugin version and refuses calls after a fault.
pub struct DialectInstance {
    plugin: Arc<LoadedPlugin>,
    store: Store<HostState>,
    guest: d::Guest,
    encoder: Option<ResourceAny>,
    poisoned: bool,
}

fn egress(ctx: &c::EgressContext) -> d::EgressContext {
    d::EgressContext {
        request_id: ctx.request_id.clone(),
        requested_model: ctx.requested_model.clone(),
        received_at_ms: ctx.received_at_ms,
    }
}

impl DialectInstance {
    pub(crate) async fn new(
        plugin: Arc<LoadedPlugin>,
        request_id: &str,
    ) -> Result<DialectInstance, PluginFault> {
        let (mut store, guest) = plugin.instantiate_dialect(request_id).await?;
        arm(&mut store);
        Ok(DialectInstance {
            plugin,
            store,
            guest,
            encoder: None,
            poisoned: false,
        })
    }

    /// The plugin version serving this instance.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    fn limit(&self) -> usize {
        self.plugin.runtime.limits.max_output_bytes
    }

    /// Run an output check; a failed check poisons the instance.
    fn check<T>(&mut self, r: Result<T, PluginFault>) -> Result<T, PluginFault> {
        if let Err(fault) = &r {
            self.poisoned = true;
            self.plugin.faulted(fault);
        }
        r
    }

    /// Decode a client request into the canonical form.
    pub async fn decode_request(
        &mut self,
        request: &c::IngressRequest,
    ) -> Result<c::DecodedRequest, CallError> {
        let req = d::IngressRequest {
            operation: convert::operation(request.operation),
            path_model: request.path_model.clone(),
            endpoint_streams: request.endpoint_streams,
            headers: request.headers.clone(),
            body: request.body.clone(),
        };
        let out = guarded!(self, DEBUG, "decode-request", |store, guest| guest
            .call_decode_request(store, &req));
        match out {
            Ok(dec) => {
                let limit = self.limit();
                let body = convert::json(dec.body, "decoded request", limit);
                let body = self.check(body)?;
                if dec.model.len() > 1024 {
                    return Err(self.check(Err(PluginFault::InvalidOutput(
                        "model name too long".into(),
                    )))?);
                }
                Ok(c::DecodedRequest {
                    model: dec.model,
                    streaming: dec.streaming,
                    body,
                })
            }
            Err(e) => Err(self.plugin.typed_error(e)),
        }
    }

    /// Encode a canonical `chat.completion`.
    pub async fn encode_response(
        &mut self,
        ctx: &c::EgressContext,
        body: &str,
        usage: Option<c::Usage>,
    ) -> Result<String, CallError> {
        let ctx = egress(ctx);
        let usage = usage.as_ref().map(convert::usage_back);
        let body = body.to_string();
        let out = guarded!(self, DEBUG, "encode-response", |store, guest| guest
            .call_encode_response(store, &ctx, &body, usage));
        match out {
            Ok(text) => {
                let limit = self.limit();
                let r = convert::json(text, "encoded response", limit);
                Ok(self.check(r)?)
            }
            Err(e) => Err(self.plugin.typed_error(e)),
        }
    }

    /// Render an error in the dialect's shape.
    pub async fn encode_error(
        &mut self,
        error: &ClassifiedError,
    ) -> Result<c::ErrorResponse, PluginFault> {
        let e = convert::plugin_error_back(error);
        let out = guarded!(self, DEBUG, "encode-error", |store, guest| guest
            .call_encode_error(store, &e));
        let limit = self.limit().min(64 << 10);
        let body = convert::json(out.body, "error body", limit);
        let body = self.check(body)?;
        if !(400..=599).contains(&out.status) {
            return Err(self.check(Err(PluginFault::InvalidOutput(format!(
                "error status {} is not 4xx/5xx",
                out.status
            ))))?);
        }
        Ok(c::ErrorResponse {
            status: out.status,
            body,
        })
    }

    /// Render a model listing.
    pub async fn encode_models(&mut self, models: &[c::ModelEntry]) -> Result<String, PluginFault> {
        let models: Vec<d::ModelEntry> = models
            .iter()
            .map(|m| d::ModelEntry {
                id: m.id.clone(),
                owned_by: m.owned_by.clone(),
                created: m.created,
            })
            .collect();
        let out = guarded!(self, DEBUG, "encode-models", |store, guest| guest
            .call_encode_models(store, &models));
        let limit = self.limit();
        let r = convert::json(out, "model listing", limit);
        self.check(r)
    }

    /// Render a token count.
    pub async fn encode_token_count(
        &mut self,
        ctx: &c::EgressContext,
        input_tokens: u32,
    ) -> Result<String, PluginFault> {
        let ctx = egress(ctx);
        let out = guarded!(self, DEBUG, "encode-token-count", |store, guest| guest
            .call_encode_token_count(store, &ctx, input_tokens));
        let r = convert::json(out, "token count", 64 << 10);
        self.check(r)
    }

    /// Start encoding a stream.
    pub async fn start_stream(&mut self, ctx: &c::EgressContext) -> Result<(), PluginFault> {
        let ctx = egress(ctx);
        let enc = guarded!(self, DEBUG, "stream-encoder.new", |store, guest| guest
            .stream_encoder()
            .call_constructor(store, &ctx));
        self.encoder = Some(enc);
        Ok(())
    }

    fn encoder(&self) -> Result<ResourceAny, PluginFault> {
        self.encoder
            .ok_or_else(|| PluginFault::InvalidOutput("no stream encoder was started".into()))
    }

    fn events(
        &mut self,
        out: Result<Vec<crate::bindings::types::SseEvent>, crate::bindings::types::PluginError>,
    ) -> Result<Vec<c::SseEvent>, CallError> {
        match out {
            Ok(events) => {
                let limit = self.limit();
                let r = convert::sse_events(events, limit);
                Ok(self.check(r)?)
            }
            Err(e) => Err(self.plugin.typed_error(e)),
        }
    }

    /// Encode one canonical chunk.
    pub async fn push(&mut self, chunk: &str) -> Result<Vec<c::SseEvent>, CallError> {
        let enc = self.encoder()?;
        let chunk = chunk.to_string();
        let out = guarded!(self, TRACE, "stream-encoder.push", |store, guest| guest
            .stream_encoder()
            .call_push(store, enc, &chunk));
        self.events(out)
    }

    /// The stream ended normally.
    pub async fn finish(&mut self, usage: Option<c::Usage>) -> Result<Vec<c::SseEvent>, CallError> {
        let enc = self.encoder()?;
        let usage = usage.as_ref().map(convert::usage_back);
        let out = guarded!(self, DEBUG, "stream-encoder.finish", |store, guest| guest
            .stream_encoder()
            .call_finish(store, enc, usage));
        self.events(out)
    }

    /// The stream failed after content was sent.
    pub async fn abort(
        &mut self,
        error: &ClassifiedError,
    ) -> Result<Vec<c::SseEvent>, PluginFault> {
        let enc = self.encoder()?;
        let e = convert::plugin_error_back(error);
        let out = guarded!(self, DEBUG, "stream-encoder.abort", |store, guest| guest
            .stream_encoder()
            .call_abort(store, enc, &e));
        let limit = self.limit();
        let r = convert::sse_events(out, limit);
        self.check(r)
    }
}
