//! The one error type that becomes an HTTP response. Every failure the
//! client can see goes through it, so status codes, stable codes and the
//! dialect's error shape are decided in one place; internals never leak.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use orch_core::contract::{ClassifiedError, ErrorClass};
use orch_plugin_host::PluginFault;
use orch_upstream::UpstreamError;

/// The wire dialect of the client a response goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions (the canonical form; no plugin needed).
    OpenAi,
    /// Anthropic Messages, translated by the `anthropic` dialect plugin.
    Anthropic,
    /// Gemini generateContent, translated by the `gemini` dialect plugin.
    Gemini,
}

impl Dialect {
    /// The dialect's name in contexts, plugin metadata and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
        }
    }

    /// The dialect of a request from where it goes, before any handler ran
    /// (for errors the listener's limits answer): `/v1/messages…` is
    /// Anthropic, `/v1beta/…` and `POST /v1/models/…:action` are Gemini,
    /// `GET /v1/models…` follows the SDK headers, everything else (the
    /// OpenAI routes, the admin API) is OpenAI-shaped.
    pub fn of_request(
        method: &axum::http::Method,
        path: &str,
        headers: &axum::http::HeaderMap,
    ) -> Dialect {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/v1/messages") {
            Dialect::Anthropic
        } else if under("/v1beta") {
            Dialect::Gemini
        } else if under("/v1/models") {
            if method == axum::http::Method::POST {
                Dialect::Gemini
            } else {
                crate::ingress::dialect_of_headers(headers)
            }
        } else {
            Dialect::OpenAi
        }
    }
}

/// A failure to report to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI-style error type, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// Stable machine-readable code, e.g. `model_not_found`.
    pub code: String,
    /// Message for the client; never contains secrets or internals.
    pub message: String,
    /// The request parameter at fault.
    pub param: Option<Box<str>>,
    /// Seconds the client should wait before retrying.
    pub retry_after_s: Option<u32>,
    /// The error class for the request log, when it came from upstream.
    pub class: Option<ErrorClass>,
    /// The dialect to render in.
    pub dialect: Dialect,
    /// Structured detail (e.g. every invalid field), rendered as
    /// `error.details` on OpenAI-shaped (and admin) responses.
    pub details: Option<Box<serde_json::Value>>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            code: code.to_string(),
            message: message.into(),
            param: None,
            retry_after_s: None,
            class: None,
            dialect: Dialect::OpenAi,
            details: None,
        }
    }

    /// An admin change that does not validate: every problem, keyed.
    pub fn invalid(problems: &[orch_core::config::Problem]) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "invalid_configuration",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        );
        e.details = Some(Box::new(serde_json::json!(
            problems
                .iter()
                .map(|p| serde_json::json!({"key": p.key, "reason": p.reason}))
                .collect::<Vec<_>>()
        )));
        e
    }

    /// A named thing that does not exist.
    pub fn not_found(entity: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            format!("There is no {entity} {:?}.", clip(name, 200)),
        )
    }

    /// A change that contradicts the current state (exists already, in use,
    /// owned by the configuration file).
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request_error", code, message)
    }

    /// The gateway failed on its side (details are logged, not returned).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }

    /// A malformed or invalid request.
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        );
        e.param = param.map(Into::into);
        e
    }

    /// Missing or wrong client credentials; `how` says where to send them.
    pub fn unauthorized(how: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            format!("Invalid or missing API key. Send it as {how}."),
        )
    }

    /// Authenticated, but not allowed (or the endpoint is off).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "forbidden",
            message,
        )
    }

    /// A model no route serves.
    pub fn model_not_found(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                clip(model, 200)
            ),
        );
        e.param = Some("model".into());
        e
    }

    /// An unknown route.
    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("Unrecognized request URL ({method} {}).", clip(path, 200)),
        )
    }

    /// A known path asked with a method it does not serve.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on {}.", clip(path, 200)),
        )
    }

    /// The body is larger than allowed.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("The request body exceeds the {} MiB limit.", limit >> 20),
        )
    }

    /// The request body stalled longer than the idle timeout between two
    /// chunks.
    pub fn body_timeout(after: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "The request body stalled for more than {} ms.",
                after.as_millis()
            ),
        )
    }

    /// The gateway already serves as many requests as it is allowed to.
    pub fn over_capacity() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "overloaded",
            "The gateway is serving its maximum number of requests; retry shortly.",
        );
        e.retry_after_s = Some(1);
        e
    }

    /// No target can take the request right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "no_target_available",
            message,
        )
    }

    /// Every key that could serve the request is rate limited or disabled.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            message,
        );
        e.class = Some(ErrorClass::RateLimited);
        e
    }

    /// One attempt ran out of its own time (the target's `timeout_ms` or
    /// `ttft_timeout_ms`).
    pub fn attempt_timeout() -> Self {
        let mut e = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "upstream_timeout",
            "The upstream provider did not answer in time.",
        );
        e.class = Some(ErrorClass::Timeout);
        e
    }

    /// The request's deadline passed.
    pub fn deadline() -> Self {
        let mut e = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "timeout",
            "The request did not complete within the gateway's deadline.",
        );
        e.class = Some(ErrorClass::Timeout);
        e
    }

    /// A plugin failed.
    pub fn plugin(fault: &PluginFault) -> Self {
        if let PluginFault::Capacity(_) = fault {
            return Self::unavailable("The gateway is at capacity; retry shortly.");
        }
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "plugin_failure",
            "The provider adapter failed while handling this request.",
        )
    }

    /// A transformer refused the request (or its response) on purpose.
    pub fn rejected(r: &orch_core::contract::Rejection) -> Self {
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
        let kind = match status.as_u16() {
            429 => "rate_limit_error",
            s if s >= 500 => "server_error",
            403 => "permission_error",
            _ => "invalid_request_error",
        };
        Self::new(status, kind, &r.code, r.message.clone())
    }

    /// A transformer failed (trapped, timed out, gave invalid output, or its
    /// configuration was refused) and its policy is fail-closed.
    pub fn transformer(plugin: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "transformer_failure",
            format!(
                "The gateway's `{}` transformer failed while handling this request.",
                clip(plugin, 64)
            ),
        )
    }

    /// The upstream could not be reached or broke the exchange.
    pub fn upstream(e: &UpstreamError) -> Self {
        let (status, code, message, class) = match e {
            UpstreamError::HeaderTimeout(_) | UpstreamError::IdleTimeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The upstream provider did not answer in time.",
                ErrorClass::Timeout,
            ),
            _ => (
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "The upstream provider could not be reached or broke the connection.",
                ErrorClass::Server,
            ),
        };
        let mut err = Self::new(status, "server_error", code, message);
        err.class = Some(class);
        err
    }

    /// An error an adapter classified (from the upstream, or its own
    /// refusal). Client errors keep the provider's message; errors that are
    /// the gateway's or provider's problem get a neutral one.
    pub fn classified(e: &ClassifiedError) -> Self {
        let code = e.code.clone();
        let (status, kind, default_code, message) = match e.class {
            ErrorClass::BadRequest => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                e.message.clone(),
            ),
            ErrorClass::ContextLength => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "context_length_exceeded",
                e.message.clone(),
            ),
            ErrorClass::ContentFilter => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "content_filter",
                e.message.clone(),
            ),
            ErrorClass::Unsupported => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported",
                e.message.clone(),
            ),
            ErrorClass::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                "The upstream provider is rate limiting requests; retry later.".to_string(),
            ),
            ErrorClass::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "overloaded",
                "The upstream provider is overloaded; retry later.".to_string(),
            ),
            ErrorClass::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
                "The upstream provider did not answer in time.".to_string(),
            ),
            ErrorClass::Authentication | ErrorClass::PermissionDenied => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_auth_failed",
                "The upstream provider rejected the gateway's credentials.".to_string(),
            ),
            ErrorClass::NotFound => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_not_found",
                "The upstream provider does not know the configured model.".to_string(),
            ),
            ErrorClass::Server => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_error",
                "The upstream provider failed to process the request.".to_string(),
            ),
        };
        let client_fault = status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS;
        let mut err = Self::new(
            status,
            kind,
            if client_fault {
                code.as_deref().unwrap_or(default_code)
            } else {
                default_code
            },
            message,
        );
        if client_fault {
            err.param = e.param.as_deref().map(Into::into);
        }
        err.retry_after_s = e.retry_after_ms.map(|ms| ms.div_ceil(1000).max(1));
        err.class = Some(e.class);
        err
    }

    /// Render in another dialect.
    pub fn in_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The class a client should read from this error: derived from the
    /// status the gateway answers with, not from the upstream's class (an
    /// upstream 401 is the gateway's problem and answers 502).
    pub fn render_class(&self) -> ErrorClass {
        match self.status.as_u16() {
            401 => ErrorClass::Authentication,
            403 => ErrorClass::PermissionDenied,
            404 => ErrorClass::NotFound,
            408 => ErrorClass::Timeout,
            429 => ErrorClass::RateLimited,
            503 => ErrorClass::Overloaded,
            504 => ErrorClass::Timeout,
            s if s >= 500 => ErrorClass::Server,
            _ => match self.class {
                Some(
                    c @ (ErrorClass::ContextLength
                    | ErrorClass::ContentFilter
                    | ErrorClass::Unsupported),
                ) => c,
                _ => ErrorClass::BadRequest,
            },
        }
    }

    /// The error as a dialect plugin's `encode-error` takes it.
    pub fn to_classified(&self) -> ClassifiedError {
        let mut e = ClassifiedError::new(
            self.render_class(),
            self.status.is_server_error() || self.status == StatusCode::TOO_MANY_REQUESTS,
            self.message.clone(),
        );
        e.status = Some(self.status.as_u16());
        e.code = Some(self.code.clone());
        e.param = self.param.as_deref().map(Into::into);
        e.retry_after_ms = self.retry_after_s.map(|s| s.saturating_mul(1000));
        e
    }

    /// The body in the error's dialect, as the host renders it when the
    /// dialect's plugin cannot (not loaded, or it failed).
    pub fn body(&self) -> serde_json::Value {
        match self.dialect {
            Dialect::OpenAi => {
                let mut body = serde_json::json!({
                    "error": {
                        "message": self.message,
                        "type": self.kind,
                        "param": self.param,
                        "code": self.code,
                    }
                });
                if let Some(d) = &self.details {
                    body["error"]["details"] = (**d).clone();
                }
                body
            }
            Dialect::Anthropic => serde_json::json!({
                "type": "error",
                "error": {
                    "type": if self.status == StatusCode::PAYLOAD_TOO_LARGE {
                        "request_too_large"
                    } else {
                        anthropic_type(self.render_class())
                    },
                    "message": self.message,
                },
            }),
            Dialect::Gemini => serde_json::json!({
                "error": {
                    "code": self.status.as_u16(),
                    "message": self.message,
                    "status": gemini_status(self.render_class()),
                }
            }),
        }
    }
}

fn anthropic_type(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Authentication => "authentication_error",
        ErrorClass::PermissionDenied => "permission_error",
        ErrorClass::NotFound => "not_found_error",
        ErrorClass::RateLimited => "rate_limit_error",
        ErrorClass::Overloaded => "overloaded_error",
        ErrorClass::Server => "api_error",
        ErrorClass::Timeout => "timeout_error",
        _ => "invalid_request_error",
    }
}

fn gemini_status(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Authentication => "UNAUTHENTICATED",
        ErrorClass::PermissionDenied => "PERMISSION_DENIED",
        ErrorClass::NotFound => "NOT_FOUND",
        ErrorClass::RateLimited => "RESOURCE_EXHAUSTED",
        ErrorClass::Overloaded => "UNAVAILABLE",
        ErrorClass::Server => "INTERNAL",
        ErrorClass::Timeout => "DEADLINE_EXCEEDED",
        _ => "INVALID_ARGUMENT",
    }
}

/// An unknown route: 404 in the dialect its path belongs to.
pub(crate) async fn route_not_found(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    routing_error(ApiError::route_not_found, &method, &uri, &headers)
}

/// A known route asked with another method: 405 in its dialect (the router
/// adds the `Allow` header).
pub(crate) async fn method_not_allowed(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    routing_error(ApiError::method_not_allowed, &method, &uri, &headers)
}

/// An error about the request's method and path, in the path's dialect.
fn routing_error(
    error: fn(&str, &str) -> ApiError,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    error(method.as_str(), uri.path())
        .in_dialect(Dialect::of_request(method, uri.path(), headers))
        .into_response()
}

/// Cut user-provided text that goes into messages.
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).filter(|c| !c.is_control()).collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
