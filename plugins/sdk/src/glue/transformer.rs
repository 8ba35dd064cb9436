//! Glue for the `transformer-plugin` world.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::transformer::exports::llm_orchestrator::plugin::transformer as wit;
use crate::log::install_panic_hook;
use crate::{StreamFilter, Transformer};

types_conversions!(crate::bindings::transformer::llm_orchestrator::plugin::types);

/// Implements the generated `Guest` trait for a [`Transformer`].
#[derive(Debug)]
pub struct TransformerGlue<T>(PhantomData<T>);

/// The exported `stream-filter` resource: wraps a [`StreamFilter`] in a
/// `RefCell`, since resource methods take `&self`.
#[derive(Debug)]
pub struct FilterGlue<F>(RefCell<F>);

impl<T: Transformer> wit::Guest for TransformerGlue<T> {
    type StreamFilter = FilterGlue<T::Filter>;

    fn info() -> wit_types::PluginInfo {
        install_panic_hook();
        T::info().into()
    }

    fn check_config(config: String) -> Result<(), wit_types::PluginError> {
        install_panic_hook();
        T::check_config(&config).map_err(Into::into)
    }

    fn on_request(
        ctx: wit::TransformContext,
        body: String,
    ) -> Result<wit::RequestAction, wit_types::PluginError> {
        install_panic_hook();
        T::on_request(&ctx.into(), &body)
            .map(Into::into)
            .map_err(Into::into)
    }

    fn on_response(
        ctx: wit::TransformContext,
        body: String,
        usage: Option<wit_types::Usage>,
    ) -> Result<wit::ResponseAction, wit_types::PluginError> {
        install_panic_hook();
        T::on_response(&ctx.into(), &body, usage.map(Into::into))
            .map(Into::into)
            .map_err(Into::into)
    }
}

impl<F: StreamFilter> wit::GuestStreamFilter for FilterGlue<F> {
    fn new(ctx: wit::TransformContext) -> Self {
        install_panic_hook();
        Self(RefCell::new(F::new(ctx.into())))
    }

    fn on_chunk(&self, chunk: String) -> Result<Vec<String>, wit_types::PluginError> {
        install_panic_hook();
        let mut filter = self.0.try_borrow_mut().map_err(|_| reentered())?;
        filter.on_chunk(chunk).map_err(Into::into)
    }

    fn on_end(
        &self,
        usage: Option<wit_types::Usage>,
    ) -> Result<Vec<String>, wit_types::PluginError> {
        install_panic_hook();
        let mut filter = self.0.try_borrow_mut().map_err(|_| reentered())?;
        filter.on_end(usage.map(Into::into)).map_err(Into::into)
    }
}

impl From<wit::TransformContext> for crate::TransformContext {
    fn from(ctx: wit::TransformContext) -> Self {
        Self {
            request_id: ctx.request_id,
            ingress_dialect: ctx.ingress_dialect,
            requested_model: ctx.requested_model,
            streaming: ctx.streaming,
            client_key_id: ctx.client_key_id,
            config: ctx.config,
        }
    }
}

impl From<crate::Rejection> for wit::Rejection {
    fn from(rejection: crate::Rejection) -> Self {
        Self {
            status: rejection.status,
            code: rejection.code,
            message: rejection.message,
        }
    }
}

impl From<crate::RequestAction> for wit::RequestAction {
    fn from(action: crate::RequestAction) -> Self {
        match action {
            crate::RequestAction::Pass => Self::Pass,
            crate::RequestAction::Replace(body) => Self::Replace(body),
            crate::RequestAction::Reject(rejection) => Self::Reject(rejection.into()),
        }
    }
}

impl From<crate::ResponseAction> for wit::ResponseAction {
    fn from(action: crate::ResponseAction) -> Self {
        match action {
            crate::ResponseAction::Pass => Self::Pass,
            crate::ResponseAction::Replace(body) => Self::Replace(body),
            crate::ResponseAction::Reject(rejection) => Self::Reject(rejection.into()),
        }
    }
}
