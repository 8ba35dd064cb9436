//! Export glue: implements the generated `Guest` traits for the SDK's traits
//! and converts between generated and SDK types. Used by the `export_*!`
//! macros; not part of the public API.

/// Conversions between the SDK types and one world's generated `types`
/// interface (every world generates its own copy of it).
#[cfg(any(feature = "adapter", feature = "dialect", feature = "transformer"))]
macro_rules! types_conversions {
    ($($types:ident)::+) => {
        use $($types)::+ as wit_types;

        impl From<crate::PluginKind> for wit_types::PluginKind {
            fn from(kind: crate::PluginKind) -> Self {
                match kind {
                    crate::PluginKind::Adapter => Self::Adapter,
                    crate::PluginKind::Dialect => Self::Dialect,
                    crate::PluginKind::Transformer => Self::Transformer,
                }
            }
        }

        impl From<crate::PluginInfo> for wit_types::PluginInfo {
            fn from(info: crate::PluginInfo) -> Self {
                Self {
                    id: info.id,
                    version: info.version,
                    kind: info.kind.into(),
                    dialect: info.dialect,
                    capabilities: info.capabilities,
                    description: info.description,
                }
            }
        }

        impl From<wit_types::Operation> for crate::Operation {
            fn from(operation: wit_types::Operation) -> Self {
                match operation {
                    wit_types::Operation::Chat => Self::Chat,
                    wit_types::Operation::CountTokens => Self::CountTokens,
                    wit_types::Operation::Embeddings => Self::Embeddings,
                }
            }
        }

        impl From<crate::Operation> for wit_types::Operation {
            fn from(operation: crate::Operation) -> Self {
                match operation {
                    crate::Operation::Chat => Self::Chat,
                    crate::Operation::CountTokens => Self::CountTokens,
                    crate::Operation::Embeddings => Self::Embeddings,
                }
            }
        }

        impl From<wit_types::PayloadForm> for crate::PayloadForm {
            fn from(form: wit_types::PayloadForm) -> Self {
                match form {
                    wit_types::PayloadForm::Canonical => Self::Canonical,
                    wit_types::PayloadForm::Native => Self::Native,
                }
            }
        }

        impl From<wit_types::Provider> for crate::Provider {
            fn from(provider: wit_types::Provider) -> Self {
                Self { name: provider.name, base_url: provider.base_url, options: provider.options }
            }
        }

        impl From<wit_types::RequestContext> for crate::RequestContext {
            fn from(ctx: wit_types::RequestContext) -> Self {
                Self {
                    request_id: ctx.request_id,
                    operation: ctx.operation.into(),
                    requested_model: ctx.requested_model,
                    upstream_model: ctx.upstream_model,
                    streaming: ctx.streaming,
                    form: ctx.form.into(),
                    ingress_dialect: ctx.ingress_dialect,
                    received_at_ms: ctx.received_at_ms,
                    provider: ctx.provider.into(),
                }
            }
        }

        impl From<wit_types::Usage> for crate::Usage {
            fn from(usage: wit_types::Usage) -> Self {
                Self {
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    cached_input_tokens: usage.cached_input_tokens,
                    cache_write_input_tokens: usage.cache_write_input_tokens,
                    reasoning_tokens: usage.reasoning_tokens,
                }
            }
        }

        impl From<crate::Usage> for wit_types::Usage {
            fn from(usage: crate::Usage) -> Self {
                Self {
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    cached_input_tokens: usage.cached_input_tokens,
                    cache_write_input_tokens: usage.cache_write_input_tokens,
                    reasoning_tokens: usage.reasoning_tokens,
                }
            }
        }

        impl From<wit_types::ErrorClass> for crate::ErrorClass {
            fn from(class: wit_types::ErrorClass) -> Self {
                match class {
                    wit_types::ErrorClass::BadRequest => Self::BadRequest,
                    wit_types::ErrorClass::Authentication => Self::Authentication,
                    wit_types::ErrorClass::PermissionDenied => Self::PermissionDenied,
                    wit_types::ErrorClass::NotFound => Self::NotFound,
                    wit_types::ErrorClass::ContextLength => Self::ContextLength,
                    wit_types::ErrorClass::ContentFilter => Self::ContentFilter,
                    wit_types::ErrorClass::RateLimited => Self::RateLimited,
                    wit_types::ErrorClass::Overloaded => Self::Overloaded,
                    wit_types::ErrorClass::Server => Self::Server,
                    wit_types::ErrorClass::Timeout => Self::Timeout,
                    wit_types::ErrorClass::Unsupported => Self::Unsupported,
                }
            }
        }

        impl From<crate::ErrorClass> for wit_types::ErrorClass {
            fn from(class: crate::ErrorClass) -> Self {
                match class {
                    crate::ErrorClass::BadRequest => Self::BadRequest,
                    crate::ErrorClass::Authentication => Self::Authentication,
                    crate::ErrorClass::PermissionDenied => Self::PermissionDenied,
                    crate::ErrorClass::NotFound => Self::NotFound,
                    crate::ErrorClass::ContextLength => Self::ContextLength,
                    crate::ErrorClass::ContentFilter => Self::ContentFilter,
                    crate::ErrorClass::RateLimited => Self::RateLimited,
                    crate::ErrorClass::Overloaded => Self::Overloaded,
                    crate::ErrorClass::Server => Self::Server,
                    crate::ErrorClass::Timeout => Self::Timeout,
                    crate::ErrorClass::Unsupported => Self::Unsupported,
                }
            }
        }

        impl From<wit_types::PluginError> for crate::PluginError {
            fn from(error: wit_types::PluginError) -> Self {
                Self {
                    class: error.class.into(),
                    retryable: error.retryable,
                    status: error.status,
                    code: error.code,
                    param: error.param,
                    message: error.message,
                    retry_after_ms: error.retry_after_ms,
                }
            }
        }

        impl From<crate::PluginError> for wit_types::PluginError {
            fn from(error: crate::PluginError) -> Self {
                Self {
                    class: error.class.into(),
                    retryable: error.retryable,
                    status: error.status,
                    code: error.code,
                    param: error.param,
                    message: error.message,
                    retry_after_ms: error.retry_after_ms,
                }
            }
        }

        impl From<crate::SseEvent> for wit_types::SseEvent {
            fn from(event: crate::SseEvent) -> Self {
                Self { event: event.event, data: event.data }
            }
        }

        /// Converts a list element by element.
        #[allow(dead_code, reason = "not every world converts lists")]
        fn convert_all<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
            items.into_iter().map(U::from).collect()
        }

        /// The error a resource method returns when it is re-entered while a
        /// call on it is running (impossible with a well-behaved host).
        #[allow(dead_code, reason = "not every world has a fallible resource method")]
        fn reentered() -> wit_types::PluginError {
            crate::PluginError::server("plugin resource called while already in use").into()
        }
    };
}

#[cfg(feature = "adapter")]
pub mod adapter;
#[cfg(feature = "dialect")]
pub mod dialect;
#[cfg(feature = "transformer")]
pub mod transformer;
