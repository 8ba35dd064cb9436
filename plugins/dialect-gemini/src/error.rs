//! Errors in Google's shape: `{"error": {"code", "message", "status",
//! "details"?}}`, the body of every Gemini API error and the data of an
//! in-stream error event.
//!
//! `code` is the HTTP status: the error's `status` (gateway policy, already
//! decided by the host) or, when it has none, the class's usual status.
//! `status` is the google.rpc code name of the class (docs/canonical.md).
//! google-genai raises `ClientError` for a 4xx `code` and `ServerError` for a
//! 5xx one, whatever `status` says. `details` carries a `google.rpc.BadRequest`
//! naming the field when the error has a `param`, and a `google.rpc.RetryInfo`
//! when it has a retry delay, as Google's own errors do.

use orch_plugin_sdk::{ErrorClass, ErrorResponse, PluginError};

use crate::json::{Json, Object};

/// Renders an error as the HTTP response a Gemini client expects.
pub(crate) fn encode(error: &PluginError) -> ErrorResponse {
    let status = http_status(error);
    ErrorResponse {
        status,
        body: error_body(error, status).to_string(),
    }
}

/// `{"error": {...}}` for `error`, answered with `status`.
pub(crate) fn error_body(error: &PluginError, status: u16) -> Object {
    let message = if error.message.trim().is_empty() {
        default_message(error.class)
    } else {
        error.message.as_str()
    };
    let mut details = Vec::new();
    if let Some(param) = &error.param {
        details.push(Json::from(
            Object::new()
                .with("@type", "type.googleapis.com/google.rpc.BadRequest")
                .with(
                    "fieldViolations",
                    vec![Json::from(
                        Object::new()
                            .with("field", param.as_str())
                            .with("description", message),
                    )],
                ),
        ));
    }
    if let Some(delay) = error.retry_after_ms {
        details.push(Json::from(
            Object::new()
                .with("@type", "type.googleapis.com/google.rpc.RetryInfo")
                .with("retryDelay", duration(delay)),
        ));
    }
    let mut body = Object::new()
        .with("code", status)
        .with("message", message)
        .with("status", status_name(error.class));
    if !details.is_empty() {
        body.insert("details", details);
    }
    Object::new().with("error", body)
}

/// The HTTP status to answer with: the error's own (an error status, i.e.
/// 400..=599), else the class's usual one.
pub(crate) fn http_status(error: &PluginError) -> u16 {
    error
        .status
        .filter(|status| (400..=599).contains(status))
        .unwrap_or(match error.class {
            ErrorClass::BadRequest
            | ErrorClass::Unsupported
            | ErrorClass::ContextLength
            | ErrorClass::ContentFilter => 400,
            ErrorClass::Authentication => 401,
            ErrorClass::PermissionDenied => 403,
            ErrorClass::NotFound => 404,
            ErrorClass::RateLimited => 429,
            ErrorClass::Overloaded => 503,
            ErrorClass::Server => 500,
            ErrorClass::Timeout => 504,
        })
}

/// The google.rpc code name of a class (docs/canonical.md).
pub(crate) fn status_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::BadRequest
        | ErrorClass::Unsupported
        | ErrorClass::ContextLength
        | ErrorClass::ContentFilter => "INVALID_ARGUMENT",
        ErrorClass::Authentication => "UNAUTHENTICATED",
        ErrorClass::PermissionDenied => "PERMISSION_DENIED",
        ErrorClass::NotFound => "NOT_FOUND",
        ErrorClass::RateLimited => "RESOURCE_EXHAUSTED",
        ErrorClass::Overloaded => "UNAVAILABLE",
        ErrorClass::Server => "INTERNAL",
        ErrorClass::Timeout => "DEADLINE_EXCEEDED",
    }
}

fn default_message(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::BadRequest => "The request is invalid.",
        ErrorClass::Unsupported => "The request uses a feature that cannot be served.",
        ErrorClass::ContextLength => "The input is too long for the model.",
        ErrorClass::ContentFilter => "The request or the response was blocked.",
        ErrorClass::Authentication => "The request is not authenticated.",
        ErrorClass::PermissionDenied => "The caller does not have permission.",
        ErrorClass::NotFound => "The model was not found.",
        ErrorClass::RateLimited => "Resource has been exhausted.",
        ErrorClass::Overloaded => "The model is overloaded. Please try again later.",
        ErrorClass::Server => "An internal error has occurred.",
        ErrorClass::Timeout => "The request timed out.",
    }
}

/// A protobuf JSON `Duration`: `"2s"`, `"1.500s"`.
fn duration(ms: u32) -> String {
    let (seconds, millis) = (ms / 1000, ms % 1000);
    if millis == 0 {
        format!("{seconds}s")
    } else {
        format!("{seconds}.{millis:03}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(2_000), "2s");
        assert_eq!(duration(1_500), "1.500s");
        assert_eq!(duration(7), "0.007s");
        assert_eq!(duration(0), "0s");
    }
}
