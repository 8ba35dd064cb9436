//! Anthropic-shaped errors:
//! `{"type":"error","error":{"type","message"},"request_id"}`.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::server::{ResponseBody, json_response};

/// Anthropic's overloaded status.
pub(crate) const OVERLOADED: u16 = 529;

/// An error answered in Anthropic's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnthropicError {
    pub(crate) status: StatusCode,
    /// `error.type`, e.g. `invalid_request_error`.
    pub(crate) kind: &'static str,
    pub(crate) message: Cow<'static, str>,
    /// Whether a thinking signature was refused (counted in the stats).
    pub(crate) bad_signature: bool,
}

impl AnthropicError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            bad_signature: false,
        }
    }

    /// A 400 `invalid_request_error`.
    pub(crate) fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// A 400 for a thinking signature that is not the one the fake issued.
    pub(crate) fn bad_signature(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            bad_signature: true,
            ..Self::invalid_request(message)
        }
    }

    /// 401: no `x-api-key` header.
    pub(crate) fn missing_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        )
    }

    /// 401: a key other than the expected one (never echoed).
    pub(crate) fn invalid_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        )
    }

    /// 404 for a model that is not served.
    pub(crate) fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("model: {model}"),
        )
    }

    /// The error Anthropic would plausibly send with `status`.
    pub(crate) fn for_status(status: StatusCode) -> Self {
        let (kind, message): (_, &'static str) = match status.as_u16() {
            400 => ("invalid_request_error", "Invalid request."),
            401 => return Self::invalid_api_key(),
            402 => (
                "billing_error",
                "Your credit balance is too low to access the Anthropic API.",
            ),
            403 => (
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            404 => (
                "not_found_error",
                "The requested resource could not be found.",
            ),
            413 => (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            429 => (
                "rate_limit_error",
                "This request would exceed the rate limit for your organization. Please try \
                 again later.",
            ),
            504 => ("timeout_error", "Request timed out."),
            OVERLOADED => ("overloaded_error", "Overloaded"),
            500..=599 => ("api_error", "Internal server error"),
            _ => (
                "invalid_request_error",
                "The fake upstream was told to fail.",
            ),
        };
        Self::new(status, kind, message)
    }

    /// The inner `error` object (also the payload of an `error` stream event).
    pub(crate) fn object(&self) -> Value {
        json!({"type": self.kind, "message": self.message})
    }

    /// The whole error document.
    pub(crate) fn document(&self, request_id: &str) -> Value {
        json!({"type": "error", "error": self.object(), "request_id": request_id})
    }

    /// The HTTP response; 429 and 529 carry `retry-after: 1`.
    pub(crate) fn into_response(self, request_id: &str) -> Response<ResponseBody> {
        let body = serde_json::to_vec(&self.document(request_id)).unwrap_or_default();
        let mut response = json_response(self.status, Bytes::from(body));
        if matches!(self.status.as_u16(), 429 | OVERLOADED) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        with_request_id(response, request_id)
    }
}

/// Adds Anthropic's `request-id` header.
pub(crate) fn with_request_id(
    mut response: Response<ResponseBody>,
    request_id: &str,
) -> Response<ResponseBody> {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let error = AnthropicError::invalid_request("messages: Field required");
        assert_eq!(
            error.document("req_1"),
            json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "messages: Field required"}, "request_id": "req_1"})
        );
    }

    #[test]
    fn statuses_map_to_types() {
        let kind = |code| AnthropicError::for_status(StatusCode::from_u16(code).unwrap()).kind;
        assert_eq!(kind(529), "overloaded_error");
        assert_eq!(kind(500), "api_error");
        assert_eq!(kind(503), "api_error");
        assert_eq!(kind(429), "rate_limit_error");
        assert_eq!(kind(401), "authentication_error");
        assert_eq!(kind(418), "invalid_request_error");
        let response = AnthropicError::for_status(StatusCode::TOO_MANY_REQUESTS).into_response("r");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()["request-id"], "r");
    }
}
