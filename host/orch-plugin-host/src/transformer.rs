//! One transformer instance serving one request: its request and response
//! hooks, and at most one stream filter.

use std::sync::Arc;

use orch_core::contract as c;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::{transformer as t, types};
use crate::convert;
use crate::error::{CallError, PluginFault};
use crate::host_state::HostState;
use crate::loader::LoadedPlugin;
use crate::runtime::{arm, guarded};

/// A transformer plugin instantiated for one request. Like the other
/// instances it pins its plugin version and refuses calls after a fault.
pub struct TransformerInstance {
    plugin: Arc<LoadedPlugin>,
    store: Store<HostState>,
    guest: t::Guest,
    filter: Option<ResourceAny>,
    poisoned: bool,
}

fn context(ctx: &c::TransformContext) -> t::TransformContext {
    t::TransformContext {
        request_id: ctx.request_id.clone(),
        ingress_dialect: ctx.ingress_dialect.clone(),
        requested_model: ctx.requested_model.clone(),
        streaming: ctx.streaming,
        client_key_id: ctx.client_key_id.clone(),
        config: ctx.config.clone(),
    }
}

/// Check a refusal: a 4xx/5xx status, a short code, a bounded message.
fn rejection(r: t::Rejection) -> Result<c::Rejection, PluginFault> {
    if !(400..=599).contains(&r.status) {
        return Err(PluginFault::InvalidOutput(format!(
            "rejection status {} is not 4xx/5xx",
            r.status
        )));
    }
    let valid_code = !r.code.is_empty()
        && r.code.len() <= 128
        && r.code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid_code {
        return Err(PluginFault::InvalidOutput(
            "rejection code must be 1-128 characters of [A-Za-z0-9_.-]".into(),
        ));
    }
    let mut message = r.message;
    if message.len() > 4096 {
        let mut end = 4096;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Ok(c::Rejection {
        status: r.status,
        code: r.code,
        message,
    })
}

impl TransformerInstance {
    pub(crate) async fn new(
        plugin: Arc<LoadedPlugin>,
        request_id: &str,
    ) -> Result<TransformerInstance, PluginFault> {
        let (mut store, guest) = plugin.instantiate_transformer(request_id).await?;
        arm(&mut store);
        Ok(TransformerInstance {
            plugin,
            store,
            guest,
            filter: None,
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

    fn action(
        &mut self,
        out: t::RequestAction,
        what: &str,
    ) -> Result<c::TransformAction, PluginFault> {
        let limit = self.limit();
        let r = match out {
            t::RequestAction::Pass => Ok(c::TransformAction::Pass),
            t::RequestAction::Replace(body) => {
                convert::json(body, what, limit).map(c::TransformAction::Replace)
            }
            t::RequestAction::Reject(r) => rejection(r).map(c::TransformAction::Reject),
        };
        self.check(r)
    }

    /// Check an attachment's configuration (JSON object text).
    pub async fn check_config(&mut self, config: &str) -> Result<(), CallError> {
        let config = config.to_string();
        let out = guarded!(self, TRACE, "check-config", |store, guest| guest
            .call_check_config(store, &config));
        out.map_err(|e| self.plugin.typed_error(e))
    }

    /// Inspect or rewrite a canonical request.
    pub async fn on_request(
        &mut self,
        ctx: &c::TransformContext,
        body: &str,
    ) -> Result<c::TransformAction, CallError> {
        let (ctx, body) = (context(ctx), body.to_string());
        let out = guarded!(self, DEBUG, "on-request", |store, guest| guest
            .call_on_request(store, &ctx, &body));
        match out {
            Ok(action) => Ok(self.action(action, "transformed request")?),
            Err(e) => Err(self.plugin.typed_error(e)),
        }
    }

    /// Inspect or rewrite a canonical, non-streaming response.
    pub async fn on_response(
        &mut self,
        ctx: &c::TransformContext,
        body: &str,
        usage: Option<c::Usage>,
    ) -> Result<c::TransformAction, CallError> {
        let (ctx, body) = (context(ctx), body.to_string());
        let usage = usage.as_ref().map(convert::usage_back);
        let out = guarded!(self, DEBUG, "on-response", |store, guest| guest
            .call_on_response(store, &ctx, &body, usage));
        let action = match out {
            Ok(t::ResponseAction::Pass) => t::RequestAction::Pass,
            Ok(t::ResponseAction::Replace(b)) => t::RequestAction::Replace(b),
            Ok(t::ResponseAction::Reject(r)) => t::RequestAction::Reject(r),
            Err(e) => return Err(self.plugin.typed_error(e)),
        };
        Ok(self.action(action, "transformed response")?)
    }

    /// Start filtering a stream.
    pub async fn start_filter(&mut self, ctx: &c::TransformContext) -> Result<(), PluginFault> {
        let ctx = context(ctx);
        let filter = guarded!(self, DEBUG, "stream-filter.new", |store, guest| guest
            .stream_filter()
            .call_constructor(store, &ctx));
        self.filter = Some(filter);
        Ok(())
    }

    fn filter(&self) -> Result<ResourceAny, PluginFault> {
        self.filter
            .ok_or_else(|| PluginFault::InvalidOutput("no stream filter was started".into()))
    }

    /// Filter one canonical chunk: the chunks to send now.
    pub async fn on_chunk(&mut self, chunk: &str) -> Result<Vec<String>, CallError> {
        let (filter, chunk) = (self.filter()?, chunk.to_string());
        let out = guarded!(self, TRACE, "stream-filter.on-chunk", |store, guest| guest
            .stream_filter()
            .call_on_chunk(store, filter, &chunk));
        self.chunks(out)
    }

    /// The stream ended: the chunks still held.
    pub async fn on_end(&mut self, usage: Option<c::Usage>) -> Result<Vec<String>, CallError> {
        let filter = self.filter()?;
        let usage = usage.as_ref().map(convert::usage_back);
        let out = guarded!(self, DEBUG, "stream-filter.on-end", |store, guest| guest
            .stream_filter()
            .call_on_end(store, filter, usage));
        self.chunks(out)
    }

    fn chunks(
        &mut self,
        out: Result<Vec<String>, types::PluginError>,
    ) -> Result<Vec<String>, CallError> {
        let chunks = out.map_err(|e| self.plugin.typed_error(e))?;
        let limit = self.limit();
        let mut total = 0usize;
        let r = chunks
            .into_iter()
            .map(|chunk| {
                total += chunk.len();
                if total > limit {
                    return Err(PluginFault::OutputTooLarge { size: total, limit });
                }
                convert::json(chunk, "filtered chunk", limit)
            })
            .collect();
        Ok(self.check(r)?)
    }
}
