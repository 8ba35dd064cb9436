//! Google-shaped errors: `{"error":{"code","message","status","details"}}`.

use std::borrow::Cow;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::server::{ResponseBody, json_response};

/// `details[].@type` prefix.
const TYPE_PREFIX: &str = "type.googleapis.com/google.rpc.";

/// An error answered in Google's shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GeminiError {
    pub(crate) status: StatusCode,
    /// The gRPC status name, e.g. `INVALID_ARGUMENT`.
    pub(crate) grpc: &'static str,
    pub(crate) message: Cow<'static, str>,
    pub(crate) details: Vec<Value>,
    /// Whether a thought signature was refused (counted in the stats).
    pub(crate) bad_signature: bool,
}

impl GeminiError {
    fn new(status: StatusCode, grpc: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            grpc,
            message: message.into(),
            details: Vec::new(),
            bad_signature: false,
        }
    }

    /// A 400 `INVALID_ARGUMENT`.
    pub(crate) fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// A 400 for a thought signature that is missing or not the one the
    /// fake issued.
    pub(crate) fn bad_signature(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            bad_signature: true,
            ..Self::invalid_argument(message)
        }
    }

    /// 400 `API_KEY_INVALID`: a key other than the expected one.
    pub(crate) fn invalid_api_key() -> Self {
        let message = "API key not valid. Please pass a valid API key.";
        Self {
            details: vec![
                json!({"@type": format!("{TYPE_PREFIX}ErrorInfo"), "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}}),
                json!({"@type": format!("{TYPE_PREFIX}LocalizedMessage"), "locale": "en-US",
                    "message": message}),
            ],
            ..Self::invalid_argument(message)
        }
    }

    /// 403 `PERMISSION_DENIED`: no key at all.
    pub(crate) fn missing_api_key() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        )
    }

    /// 404 for a model that is not served.
    pub(crate) fn model_not_found(model: &str, version: &str, method: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "models/{model} is not found for API version {version}, or is not supported for \
                 {method}. Call ListModels to see the list of available models and their \
                 supported methods."
            ),
        )
    }

    /// 404 for an unknown path or method.
    pub(crate) fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Method not found: {path}"),
        )
    }

    /// The error Google would plausibly send with `status`; 429 carries a
    /// `RetryInfo` of one second.
    pub(crate) fn for_status(status: StatusCode) -> Self {
        let (grpc, message): (_, &'static str) = match status.as_u16() {
            400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
            401 => (
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
            403 => ("PERMISSION_DENIED", "The caller does not have permission"),
            404 => ("NOT_FOUND", "Requested entity was not found."),
            409 => ("ABORTED", "The operation was aborted."),
            429 => (
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            499 => ("CANCELLED", "The operation was cancelled."),
            501 => ("UNIMPLEMENTED", "Operation is not implemented."),
            503 => (
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            ),
            504 => (
                "DEADLINE_EXCEEDED",
                "Deadline expired before operation could complete.",
            ),
            500..=599 => (
                "INTERNAL",
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting",
            ),
            _ => ("FAILED_PRECONDITION", "The fake upstream was told to fail."),
        };
        let mut error = Self::new(status, grpc, message);
        if status == StatusCode::TOO_MANY_REQUESTS {
            error.details = vec![
                json!({"@type": format!("{TYPE_PREFIX}QuotaFailure"), "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]}),
                json!({"@type": format!("{TYPE_PREFIX}RetryInfo"), "retryDelay": "1s"}),
            ];
        }
        error
    }

    /// The inner `error` object (also an in-stream error).
    pub(crate) fn object(&self) -> Value {
        let mut object = json!({"code": self.status.as_u16(), "message": self.message,
            "status": self.grpc});
        if !self.details.is_empty() {
            object["details"] = Value::Array(self.details.clone());
        }
        object
    }

    /// The HTTP response.
    pub(crate) fn into_response(self) -> Response<ResponseBody> {
        let body = json!({"error": self.object()}).to_string();
        json_response(self.status, Bytes::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let error = GeminiError::invalid_api_key();
        let object = error.object();
        assert_eq!(object["code"], 400);
        assert_eq!(object["status"], "INVALID_ARGUMENT");
        assert_eq!(object["details"][0]["reason"], "API_KEY_INVALID");
        let rate = GeminiError::for_status(StatusCode::TOO_MANY_REQUESTS).object();
        assert_eq!(rate["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(rate["details"][1]["retryDelay"], "1s");
        let plain = GeminiError::for_status(StatusCode::BAD_GATEWAY).object();
        assert_eq!(plain["status"], "INTERNAL");
        assert!(plain.get("details").is_none());
    }
}
