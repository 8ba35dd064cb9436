//! One adapter instance serving one attempt: a fresh store, the request's
//! context, and at most one stream decoder.

use std::sync::Arc;

use orch_core::contract::{self as c, ClassifiedError};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::{adapter, types};
use crate::convert;
use crate::error::{CallError, PluginFault};
use crate::host_state::HostState;
use crate::loader::LoadedPlugin;
use crate::runtime::{arm, guarded};

/// An adapter plugin instantiated for one attempt. Holding it pins the plugin
/// version it was created from, so a hot reload never changes it mid-request.
/// After any fault the instance refuses further calls.
pub struct AdapterInstance {
    plugin: Arc<LoadedPlugin>,
    store: Store<HostState>,
    guest: adapter::Guest,
    ctx: types::RequestContext,
    base_url: String,
    decoder: Option<ResourceAny>,
    poisoned: bool,
}

impl AdapterInstance {
    pub(crate) async fn new(
        plugin: Arc<LoadedPlugin>,
        ctx: &c::RequestContext,
    ) -> Result<AdapterInstance, PluginFault> {
        let (mut store, guest) = plugin.instantiate_adapter(&ctx.request_id).await?;
        arm(&mut store);
        Ok(AdapterInstance {
            base_url: ctx.provider.base_url.clone(),
            ctx: convert::context(ctx),
            plugin,
            store,
            guest,
            decoder: None,
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

    /// Build the upstream request for a payload.
    pub async fn build_request(&mut self, payload: &str) -> Result<c::UpstreamRequest, CallError> {
        let payload = payload.to_string();
        let out = guarded!(self, DEBUG, "build-request", |store, guest, ctx| guest
            .call_build_request(store, ctx, &payload));
        match out {
            Ok(req) => Ok(self.check(|limit, base| convert::upstream_request(req, base, limit))?),
            Err(e) => Err(self.plugin.typed_error(e)),
        }
    }

    /// Translate a successful non-streaming response.
    pub async fn parse_response(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<c::ParsedResponse, CallError> {
        let headers = headers.to_vec();
        let out = guarded!(self, DEBUG, "parse-response", |store, guest, ctx| guest
            .call_parse_response(store, ctx, status, &headers, body));
        match out {
            Ok(p) => {
                let body = self.check(|limit, _| convert::json(p.body, "response body", limit))?;
                Ok(c::ParsedResponse {
                    body,
                    usage: p.usage.map(convert::usage),
                })
            }
            Err(e) => Err(self.plugin.typed_error(e)),
        }
    }

    /// Classify a non-2xx upstream response. Only faults are errors.
    pub async fn classify_error(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ClassifiedError, PluginFault> {
        let headers = headers.to_vec();
        let out = guarded!(self, DEBUG, "classify-error", |store, guest, ctx| guest
            .call_classify_error(store, ctx, status, &headers, body));
        let classified = convert::plugin_error(out);
        self.plugin.stats.error(classified.class.as_str());
        Ok(classified)
    }

    /// Start decoding a stream.
    pub async fn start_stream(
        &mut self,
        status: u16,
        headers: &[(String, String)],
    ) -> Result<(), PluginFault> {
        let headers = headers.to_vec();
        let dec = guarded!(self, DEBUG, "stream-decoder.new", |store, guest, ctx| guest
            .stream_decoder()
            .call_constructor(store, ctx, status, &headers));
        self.decoder = Some(dec);
        Ok(())
    }

    fn decoder(&self) -> Result<ResourceAny, PluginFault> {
        self.decoder
            .ok_or_else(|| PluginFault::InvalidOutput("no stream decoder was started".into()))
    }

    /// Decode one frame.
    pub async fn push(&mut self, frame: &c::Frame) -> Result<Vec<c::StreamItem>, CallError> {
        let dec = self.decoder()?;
        let frame = convert::frame(frame);
        let out = guarded!(self, TRACE, "stream-decoder.push", |store, guest| guest
            .stream_decoder()
            .call_push(store, dec, &frame));
        self.stream_result(out)
    }

    /// The upstream body ended.
    pub async fn finish(&mut self) -> Result<Vec<c::StreamItem>, CallError> {
        let dec = self.decoder()?;
        let out = guarded!(self, DEBUG, "stream-decoder.finish", |store, guest| guest
            .stream_decoder()
            .call_finish(store, dec));
        self.stream_result(out)
    }

    fn stream_result(
        &mut self,
        out: Result<Vec<adapter::StreamItem>, types::PluginError>,
    ) -> Result<Vec<c::StreamItem>, CallError> {
        match out {
            Ok(items) => Ok(self.check(|limit, _| convert::stream_items(items, limit))?),
            Err(e) => Err(self.plugin.typed_error(e)),
        }
    }

    /// Run an output check; a failed check poisons the instance.
    fn check<T>(
        &mut self,
        f: impl FnOnce(usize, &str) -> Result<T, PluginFault>,
    ) -> Result<T, PluginFault> {
        let limit = self.limit();
        let r = f(limit, &self.base_url);
        if let Err(fault) = &r {
            self.poisoned = true;
            self.plugin.faulted(fault);
        }
        r
    }

    /// The provider's cheap health probe, if it has one.
    pub async fn probe_request(&mut self) -> Result<Option<c::UpstreamRequest>, PluginFault> {
        let provider = self.ctx.provider.clone();
        let out = guarded!(self, TRACE, "probe-request", |store, guest| guest
            .call_probe_request(store, &provider));
        match out {
            None => Ok(None),
            Some(req) => self
                .check(|limit, base| convert::upstream_request(req, base, limit))
                .map(Some),
        }
    }

    /// Judge a probe's answer.
    pub async fn judge_probe(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Result<(), ClassifiedError>, PluginFault> {
        let provider = self.ctx.provider.clone();
        let headers = headers.to_vec();
        let out = guarded!(self, TRACE, "judge-probe", |store, guest| guest
            .call_judge_probe(store, &provider, status, &headers, body));
        Ok(out.map_err(convert::plugin_error))
    }

    /// Check a provider configuration with the adapter.
    pub async fn check_provider(&mut self) -> Result<Result<(), ClassifiedError>, PluginFault> {
        let provider = self.ctx.provider.clone();
        let out = guarded!(self, TRACE, "check-provider", |store, guest| guest
            .call_check_provider(store, &provider));
        Ok(out.map_err(convert::plugin_error))
    }
}
