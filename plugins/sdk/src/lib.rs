//! Guest SDK for LLM Orchestrator plugins.
//!
//! Plugins are WebAssembly components built for `wasm32-wasip2` against the WIT
//! contract in `wit/plugin@0.1.0`. This crate generates the bindings (the only
//! place in the plugin workspace that does) and hides them behind idiomatic
//! Rust: implement a trait, call one export macro.
//!
//! | plugin kind | cargo feature | trait | macro |
//! |---|---|---|---|
//! | provider adapter | `adapter` | [`Adapter`] + [`StreamDecoder`] | [`export_adapter!`] |
//! | ingress dialect | `dialect` | [`Dialect`] + [`StreamEncoder`] | [`export_dialect!`] |
//! | transformer | `transformer` | [`Transformer`] + [`StreamFilter`] | [`export_transformer!`] |
//!
//! A component exports exactly one world: enable the one feature you need.
//!
//! # A minimal adapter
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! orch-plugin-sdk = { path = "../sdk", features = ["adapter"] }
//! serde_json = "1"   # never with the `preserve_order` feature, see below
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use orch_plugin_sdk::{
//!     Adapter, JsonEdit, ParsedResponse, PluginError, PluginInfo, RequestContext, UnsupportedStream,
//!     UpstreamRequest, capability, json::RawObject,
//! };
//!
//! pub struct Echo;
//!
//! impl Adapter for Echo {
//!     type Decoder = UnsupportedStream; // this adapter never streams
//!
//!     fn info() -> PluginInfo {
//!         PluginInfo::adapter("echo", env!("CARGO_PKG_VERSION"), "openai")
//!             .with_capabilities([capability::TOOLS])
//!             .with_description("Example: forwards canonical requests to an OpenAI-style API")
//!     }
//!
//!     fn build_request(ctx: &RequestContext, _payload: &str) -> Result<UpstreamRequest, PluginError> {
//!         if ctx.streaming {
//!             return Err(PluginError::unsupported("echo does not stream"));
//!         }
//!         let url = format!("{}/chat/completions", ctx.provider.base_url.trim_end_matches('/'));
//!         Ok(UpstreamRequest::post(url)
//!             .header("content-type", "application/json")
//!             .bearer()
//!             .forward(vec![JsonEdit::set_string("model", &ctx.upstream_model)])
//!             .build())
//!     }
//!
//!     fn parse_response(
//!         ctx: &RequestContext,
//!         status: u16,
//!         _headers: &[(String, String)],
//!         body: &[u8],
//!     ) -> Result<ParsedResponse, PluginError> {
//!         let not_json = || PluginError::server("upstream body is not a JSON object").with_status(status);
//!         let text = std::str::from_utf8(body).map_err(|_| not_json())?;
//!         // Edit one field; keep every other byte as the upstream sent it.
//!         let mut object = RawObject::parse(text).map_err(|_| not_json())?;
//!         object.set_string("model", &ctx.requested_model);
//!         let usage = match object.value("usage") {
//!             Some(Ok(usage)) => orch_plugin_sdk::openai::usage_from_openai(&usage),
//!             _ => None,
//!         };
//!         Ok(ParsedResponse { body: object.to_json(), usage })
//!     }
//! }
//!
//! orch_plugin_sdk::export_adapter!(Echo);
//! # fn main() {}
//! ```
//!
//! (An adapter for an OpenAI-compatible API that also streams is just as short
//! with the SDK's OpenAI decoder: see the example in [`openai`].)
//!
//! `cargo build --release --target wasm32-wasip2` then produces the component
//! `target/wasm32-wasip2/release/<crate>.wasm`. `classify_error`,
//! `check_provider`, `probe_request` and `judge_probe` have sensible defaults
//! (see [`Adapter`]).
//!
//! # The sandbox
//!
//! The host links nothing but its `log` import: no filesystem, environment,
//! clock or randomness. Everything else traps when called. In practice:
//!
//! * **Do not use `std::collections::HashMap::new()` / `HashSet::new()`** (or
//!   anything built on `RandomState`): std seeds them from the system's random
//!   source, which traps. Use [`BTreeMap`](std::collections::BTreeMap), or
//!   `serde_json::Map` for JSON objects. For the same reason **never enable
//!   serde_json's `preserve_order` feature** (in any crate of the build: cargo
//!   unifies features): it makes `serde_json::Map` an `IndexMap` seeded by
//!   `RandomState`, so the first JSON object parsed traps. To edit a body while
//!   keeping its field order, use [`json::RawObject`].
//! * No clock: use [`RequestContext::received_at_ms`] for timestamps.
//! * Log through [`log`] (`log::info!(...)`), never `println!`/`eprintln!`
//!   (standard output and error are not linked).
//! * Panics: the export glue installs a panic hook that sends the panic
//!   message to the host log at error level, then the panic traps as usual and
//!   the host fails the request. Return a [`PluginError`] instead whenever the
//!   input is at fault. Build with `panic = "abort"`.
//!
//! # Helpers
//!
//! * [`classify_status`] / [`ErrorDetails`]: generic classification of
//!   upstream error responses (status table, common JSON error shapes,
//!   `retry-after`).
//! * [`retry_after_ms`], [`header`]: header access.
//! * [`json::RawObject`]: edit top-level fields of a JSON object, keeping
//!   field order and the exact text of everything else.
//! * [`openai`]: usage and chunk kinds of the canonical (OpenAI) shape and,
//!   with the `adapter` feature, the stream decoder (`openai::ChunkStream`)
//!   and response handling (`openai::parse_completion`) of an
//!   OpenAI-compatible API: with them an adapter for such an API is about 40
//!   lines (see the example in [`openai`]).
//! * [`provider`]: checking a provider's configuration (base URL, options
//!   with errors naming the known keys, extra headers) and joining endpoint
//!   URLs, with the same messages in every adapter.
//! * [`config`]: parsing a plugin's configuration (e.g. a transformer's
//!   attachment configuration) into a serde type, with errors naming the key
//!   at fault.
//! * [`TransformContext::for_config`]: a context for a transformer's unit
//!   tests.
//!
//! Native unit tests (`cargo test --target x86_64-unknown-linux-gnu`) work:
//! outside WebAssembly the log goes to standard error and the export macros
//! expand to nothing but a trait check.

mod adapter;
#[doc(hidden)]
pub mod bindings;
mod classify;
pub mod config;
mod dialect;
mod error;
#[doc(hidden)]
pub mod glue;
mod http;
pub mod json;
pub mod log;
pub mod openai;
pub mod provider;
mod transformer;
mod types;

pub use adapter::{
    Adapter, ChunkKind, Credential, Frame, Framing, JsonEdit, ParsedResponse, RequestBody,
    StreamChunk, StreamDecoder, StreamItem, UnsupportedStream, UpstreamRequest,
    UpstreamRequestBuilder,
};
pub use classify::{ErrorDetails, class_of_status, classify_details, classify_status};
pub use dialect::{
    DecodedRequest, Dialect, EgressContext, ErrorResponse, IngressRequest, ModelEntry,
    StreamEncoder,
};
pub use error::{ErrorClass, PluginError};
pub use http::{header, retry_after_ms};
pub use transformer::{
    PassThroughFilter, Rejection, RequestAction, ResponseAction, StreamFilter, TransformContext,
    Transformer,
};
pub use types::{
    Headers, Operation, PayloadForm, PluginInfo, PluginKind, Provider, RequestContext, SseEvent,
    Usage, capability,
};

/// Items the export macros expand to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    #[cfg(feature = "adapter")]
    pub use crate::glue::adapter;
    #[cfg(feature = "dialect")]
    pub use crate::glue::dialect;
    #[cfg(feature = "transformer")]
    pub use crate::glue::transformer;
}

/// Fails the build with a clear message when a plugin uses an export macro
/// without enabling its feature (expands to nothing when it is enabled).
#[cfg(feature = "adapter")]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_adapter_feature {
    () => {};
}

#[cfg(not(feature = "adapter"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_adapter_feature {
    () => {
        ::core::compile_error!("export_adapter! needs the `adapter` feature of orch-plugin-sdk");
    };
}

#[cfg(feature = "dialect")]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_dialect_feature {
    () => {};
}

#[cfg(not(feature = "dialect"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_dialect_feature {
    () => {
        ::core::compile_error!("export_dialect! needs the `dialect` feature of orch-plugin-sdk");
    };
}

#[cfg(feature = "transformer")]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_transformer_feature {
    () => {};
}

#[cfg(not(feature = "transformer"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_transformer_feature {
    () => {
        ::core::compile_error!(
            "export_transformer! needs the `transformer` feature of orch-plugin-sdk"
        );
    };
}

/// Exports an [`Adapter`] as the component's `adapter` interface. Use it once,
/// in the plugin's `lib.rs`; needs the `adapter` feature.
///
/// Outside WebAssembly it only checks that the type implements [`Adapter`],
/// so native unit tests of the plugin crate build.
#[macro_export]
macro_rules! export_adapter {
    ($adapter:ty) => {
        const _: () = {
            const fn __orch_assert_adapter<A: $crate::Adapter>() {}
            __orch_assert_adapter::<$adapter>()
        };
        #[cfg(target_arch = "wasm32")]
        $crate::__require_adapter_feature!();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __OrchAdapterExport = $crate::__private::adapter::AdapterGlue<$adapter>;
            $crate::__private::bindings::adapter::export_adapter_world!(
                __OrchAdapterExport with_types_in $crate::__private::bindings::adapter
            );
        };
    };
}

/// Exports a [`Dialect`] as the component's `dialect` interface. Use it once,
/// in the plugin's `lib.rs`; needs the `dialect` feature.
///
/// Outside WebAssembly it only checks that the type implements [`Dialect`].
#[macro_export]
macro_rules! export_dialect {
    ($dialect:ty) => {
        const _: () = {
            const fn __orch_assert_dialect<D: $crate::Dialect>() {}
            __orch_assert_dialect::<$dialect>()
        };
        #[cfg(target_arch = "wasm32")]
        $crate::__require_dialect_feature!();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __OrchDialectExport = $crate::__private::dialect::DialectGlue<$dialect>;
            $crate::__private::bindings::dialect::export_dialect_world!(
                __OrchDialectExport with_types_in $crate::__private::bindings::dialect
            );
        };
    };
}

/// Exports a [`Transformer`] as the component's `transformer` interface. Use
/// it once, in the plugin's `lib.rs`; needs the `transformer` feature.
///
/// Outside WebAssembly it only checks that the type implements
/// [`Transformer`].
#[macro_export]
macro_rules! export_transformer {
    ($transformer:ty) => {
        const _: () = {
            const fn __orch_assert_transformer<T: $crate::Transformer>() {}
            __orch_assert_transformer::<$transformer>()
        };
        #[cfg(target_arch = "wasm32")]
        $crate::__require_transformer_feature!();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __OrchTransformerExport =
                $crate::__private::transformer::TransformerGlue<$transformer>;
            $crate::__private::bindings::transformer::export_transformer_world!(
                __OrchTransformerExport with_types_in $crate::__private::bindings::transformer
            );
        };
    };
}
