//! Errors: the OpenAI-shaped error response and the injected transport faults.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::server::{ResponseBody, json_response};

/// Transport faults the fake upstream injects on purpose. Returning one from
/// the service (or from a response body) makes hyper drop the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InjectedFault {
    /// Close the connection without writing a response.
    #[error("connection reset injected by the fake upstream")]
    ConnectionReset,
    /// Abort a streaming body midway.
    #[error("stream cut injected by the fake upstream")]
    StreamCut,
}

/// An error answered in OpenAI's shape:
/// `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: Cow<'static, str>,
    pub(crate) kind: &'static str,
    pub(crate) param: Option<String>,
    pub(crate) code: Option<&'static str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorObject<'a>,
}

/// The inner error object (also the payload of a streamed error event).
#[derive(Serialize)]
pub(crate) struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub(crate) fn invalid_request(
        message: impl Into<Cow<'static, str>>,
        param: Option<String>,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code,
        }
    }

    /// A 400 for a required parameter that is absent.
    pub(crate) fn missing(param: impl Into<String>) -> Self {
        let param = param.into();
        Self::invalid_request(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    /// A 400 for a parameter whose value is not one of the supported ones.
    pub(crate) fn invalid_value(param: impl Into<String>, value: &str, supported: &str) -> Self {
        Self::invalid_request(
            format!("Invalid value: '{value}'. Supported values are: {supported}."),
            Some(param.into()),
            Some("invalid_value"),
        )
    }

    /// 401 for a missing or wrong API key (the key is never echoed).
    pub(crate) fn invalid_api_key() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "Incorrect API key provided.".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 404 for a model that is not served.
    pub(crate) fn model_not_found(model: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{model}` does not exist or you do not have access to it.")
                .into(),
            kind: "invalid_request_error",
            param: Some("model".to_owned()),
            code: Some("model_not_found"),
        }
    }

    /// 404 for an unknown route.
    pub(crate) fn unknown_url(method: &http::Method, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("Invalid URL ({method} {path})").into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// The error a real provider would plausibly send with `status`.
    pub(crate) fn for_status(status: StatusCode) -> Self {
        let (message, kind, code): (&'static str, _, _) = match status.as_u16() {
            400 => ("Bad request.", "invalid_request_error", None),
            401 => return Self::invalid_api_key(),
            403 => (
                "You are not allowed to access this resource.",
                "permission_error",
                Some("permission_denied"),
            ),
            404 => ("Not found.", "invalid_request_error", Some("not_found")),
            408 => ("Request timed out.", "timeout", None),
            413 => (
                "Request too large.",
                "invalid_request_error",
                Some("request_too_large"),
            ),
            429 => (
                "Rate limit reached for requests. Please try again in 1s.",
                "requests",
                Some("rate_limit_exceeded"),
            ),
            503 => (
                "The engine is currently overloaded, please try again later.",
                "server_error",
                Some("server_overloaded"),
            ),
            500..=599 => (
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
            _ => (
                "The fake upstream was told to fail.",
                "invalid_request_error",
                None,
            ),
        };
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
        }
    }

    /// The inner `error` object.
    pub(crate) fn object(&self) -> ErrorObject<'_> {
        ErrorObject {
            message: &self.message,
            kind: self.kind,
            param: self.param.as_deref(),
            code: self.code,
        }
    }

    /// The serialised `{"error":{...}}` document.
    pub(crate) fn to_json(&self) -> Bytes {
        let envelope = Envelope {
            error: self.object(),
        };
        // Serialising strings into memory cannot fail.
        Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
    }

    /// The complete HTTP response; 429 also carries `retry-after: 1`.
    pub(crate) fn into_response(self) -> http::Response<ResponseBody> {
        let mut response = json_response(self.status, self.to_json());
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape() {
        let json: serde_json::Value =
            serde_json::from_slice(&ApiError::missing("messages").to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "message": "Missing required parameter: 'messages'.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "missing_required_parameter",
            }})
        );
    }

    #[test]
    fn statuses_map_to_fitting_types() {
        let rate = ApiError::for_status(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            (rate.kind, rate.code),
            ("requests", Some("rate_limit_exceeded"))
        );
        assert_eq!(
            ApiError::for_status(StatusCode::BAD_GATEWAY).kind,
            "server_error"
        );
        assert_eq!(
            ApiError::for_status(StatusCode::UNAUTHORIZED).code,
            Some("invalid_api_key")
        );
        let response = rate.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
