//! Glue for the `dialect-plugin` world.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::dialect::exports::llm_orchestrator::plugin::dialect as wit;
use crate::log::install_panic_hook;
use crate::{Dialect, StreamEncoder};

types_conversions!(crate::bindings::dialect::llm_orchestrator::plugin::types);

/// Implements the generated `Guest` trait for a [`Dialect`].
#[derive(Debug)]
pub struct DialectGlue<D>(PhantomData<D>);

/// The exported `stream-encoder` resource: wraps a [`StreamEncoder`] in a
/// `RefCell`, since resource methods take `&self`.
#[derive(Debug)]
pub struct EncoderGlue<E>(RefCell<E>);

impl<D: Dialect> wit::Guest for DialectGlue<D> {
    type StreamEncoder = EncoderGlue<D::Encoder>;

    fn info() -> wit_types::PluginInfo {
        install_panic_hook();
        D::info().into()
    }

    fn decode_request(
        request: wit::IngressRequest,
    ) -> Result<wit::DecodedRequest, wit_types::PluginError> {
        install_panic_hook();
        D::decode_request(&request.into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn encode_response(
        ctx: wit::EgressContext,
        body: String,
        usage: Option<wit_types::Usage>,
    ) -> Result<String, wit_types::PluginError> {
        install_panic_hook();
        D::encode_response(&ctx.into(), &body, usage.map(Into::into)).map_err(Into::into)
    }

    fn encode_error(error: wit_types::PluginError) -> wit::ErrorResponse {
        install_panic_hook();
        D::encode_error(&error.into()).into()
    }

    fn encode_models(models: Vec<wit::ModelEntry>) -> String {
        install_panic_hook();
        let models: Vec<crate::ModelEntry> = convert_all(models);
        D::encode_models(&models)
    }

    fn encode_token_count(ctx: wit::EgressContext, input_tokens: u32) -> String {
        install_panic_hook();
        D::encode_token_count(&ctx.into(), input_tokens)
    }
}

impl<E: StreamEncoder> wit::GuestStreamEncoder for EncoderGlue<E> {
    fn new(ctx: wit::EgressContext) -> Self {
        install_panic_hook();
        Self(RefCell::new(E::new(ctx.into())))
    }

    fn push(&self, chunk: String) -> Result<Vec<wit_types::SseEvent>, wit_types::PluginError> {
        install_panic_hook();
        let mut encoder = self.0.try_borrow_mut().map_err(|_| reentered())?;
        encoder.push(&chunk).map(convert_all).map_err(Into::into)
    }

    fn finish(
        &self,
        usage: Option<wit_types::Usage>,
    ) -> Result<Vec<wit_types::SseEvent>, wit_types::PluginError> {
        install_panic_hook();
        let mut encoder = self.0.try_borrow_mut().map_err(|_| reentered())?;
        encoder
            .finish(usage.map(Into::into))
            .map(convert_all)
            .map_err(Into::into)
    }

    fn abort(&self, error: wit_types::PluginError) -> Vec<wit_types::SseEvent> {
        install_panic_hook();
        match self.0.try_borrow_mut() {
            Ok(mut encoder) => convert_all(encoder.abort(&error.into())),
            Err(_) => Vec::new(),
        }
    }
}

impl From<wit::IngressRequest> for crate::IngressRequest {
    fn from(request: wit::IngressRequest) -> Self {
        Self {
            operation: request.operation.into(),
            path_model: request.path_model,
            endpoint_streams: request.endpoint_streams,
            headers: request.headers,
            body: request.body,
        }
    }
}

impl From<crate::DecodedRequest> for wit::DecodedRequest {
    fn from(request: crate::DecodedRequest) -> Self {
        Self {
            model: request.model,
            streaming: request.streaming,
            body: request.body,
        }
    }
}

impl From<wit::EgressContext> for crate::EgressContext {
    fn from(ctx: wit::EgressContext) -> Self {
        Self {
            request_id: ctx.request_id,
            requested_model: ctx.requested_model,
            received_at_ms: ctx.received_at_ms,
        }
    }
}

impl From<wit::ModelEntry> for crate::ModelEntry {
    fn from(entry: wit::ModelEntry) -> Self {
        Self {
            id: entry.id,
            owned_by: entry.owned_by,
            created: entry.created,
        }
    }
}

impl From<crate::ErrorResponse> for wit::ErrorResponse {
    fn from(response: crate::ErrorResponse) -> Self {
        Self {
            status: response.status,
            body: response.body,
        }
    }
}
