//! Classification of Google API errors:
//! `{"error": {"code": 429, "message": "…", "status": "RESOURCE_EXHAUSTED", "details": […]}}`
//! (sometimes wrapped in a one-element array).
//!
//! | `error.status` | class |
//! |---|---|
//! | `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `ALREADY_EXISTS` | `bad-request`; `context-length` when the message is about the token limit; `permission-denied` for "location is not supported" / "not available in your country" (the provider's region, not the request, is at fault) |
//! | any, with an `ErrorInfo` reason `API_KEY_INVALID` | `authentication` (an invalid key comes as 400 `INVALID_ARGUMENT`) |
//! | `UNAUTHENTICATED` | `authentication` |
//! | `PERMISSION_DENIED` | `permission-denied` |
//! | `NOT_FOUND` | `not-found` |
//! | `RESOURCE_EXHAUSTED` | `rate-limited`, retry delay from the `RetryInfo` detail (`"retryDelay": "7s"`) or `retry-after` |
//! | `UNAVAILABLE` | `overloaded` |
//! | `INTERNAL`, `UNKNOWN`, `DATA_LOSS`, `ABORTED`, `CANCELLED` | `server` |
//! | `DEADLINE_EXCEEDED` | `timeout` |
//! | `UNIMPLEMENTED` | `unsupported` |
//! | none | by HTTP status ([`classify_details`]) |
//!
//! `code` is the `ErrorInfo` reason when there is one, else the status name.

use orch_plugin_sdk::{ErrorClass, ErrorDetails, PluginError, classify_details, retry_after_ms};
use serde_json::Value;

/// Classifies an error response body.
pub(crate) fn classify(status: u16, headers: &[(String, String)], body: &[u8]) -> PluginError {
    let value = serde_json::from_slice::<Value>(body).ok();
    classify_value(status, headers, value.as_ref())
}

/// Classifies a parsed error body (also an error event inside a stream, where
/// `status` is the stream's 2xx status).
pub(crate) fn classify_value(
    status: u16,
    headers: &[(String, String)],
    body: Option<&Value>,
) -> PluginError {
    let details = body.map(ErrorDetails::from_value).unwrap_or_default();
    let base = classify_details(status, headers, &details);
    let error = body.and_then(error_object);
    let reason = error.and_then(info_reason);
    let google_status = details.kind.as_deref();
    let message = base.message.to_ascii_lowercase();
    let class = match (reason, google_status) {
        (Some("API_KEY_INVALID"), _) => ErrorClass::Authentication,
        (
            _,
            Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" | "ALREADY_EXISTS"),
        ) => {
            if about_token_limit(&message) {
                ErrorClass::ContextLength
            } else if about_region(&message) {
                ErrorClass::PermissionDenied
            } else {
                ErrorClass::BadRequest
            }
        }
        (_, Some("UNAUTHENTICATED")) => ErrorClass::Authentication,
        (_, Some("PERMISSION_DENIED")) => ErrorClass::PermissionDenied,
        (_, Some("NOT_FOUND")) => ErrorClass::NotFound,
        (_, Some("RESOURCE_EXHAUSTED")) => ErrorClass::RateLimited,
        (_, Some("UNAVAILABLE")) => ErrorClass::Overloaded,
        (_, Some("INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "ABORTED" | "CANCELLED")) => {
            ErrorClass::Server
        }
        (_, Some("DEADLINE_EXCEEDED")) => ErrorClass::Timeout,
        (_, Some("UNIMPLEMENTED")) => ErrorClass::Unsupported,
        _ if base.class == ErrorClass::BadRequest && about_token_limit(&message) => {
            ErrorClass::ContextLength
        }
        _ => base.class,
    };
    let code = reason
        .or(google_status)
        .map(str::to_owned)
        .or(base.code.clone());
    let retry_after = error
        .and_then(retry_delay_ms)
        .or_else(|| retry_after_ms(headers));
    PluginError {
        class,
        retryable: class.retryable_by_default(),
        code,
        retry_after_ms: retry_after,
        ..base
    }
}

/// The `error` object of a body (plain or in a one-element array).
fn error_object(body: &Value) -> Option<&Value> {
    let body = match body {
        Value::Array(items) => items.first()?,
        other => other,
    };
    body.get("error").filter(|e| e.is_object())
}

/// The `reason` of an `ErrorInfo` detail.
fn info_reason(error: &Value) -> Option<&str> {
    details_of(error, "google.rpc.ErrorInfo")
        .find_map(|detail| detail.get("reason").and_then(Value::as_str))
}

/// The `retryDelay` of a `RetryInfo` detail, in milliseconds.
fn retry_delay_ms(error: &Value) -> Option<u32> {
    details_of(error, "google.rpc.RetryInfo")
        .find_map(|detail| detail.get("retryDelay").and_then(Value::as_str))
        .and_then(parse_duration_ms)
}

fn details_of<'a>(error: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    error
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |detail| {
            detail
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(kind))
        })
}

/// A protobuf JSON `Duration` (`"7s"`, `"0.5s"`, `"6.901429626s"`) in
/// milliseconds, rounded up; saturates at `u32::MAX`.
pub(crate) fn parse_duration_ms(duration: &str) -> Option<u32> {
    let seconds = duration.trim().strip_suffix('s')?;
    let valid = !seconds.is_empty()
        && seconds.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && seconds.bytes().any(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    let seconds: f64 = seconds.parse().ok()?;
    let millis = (seconds * 1000.0).ceil();
    // `as` saturates for floats.
    Some(millis as u32)
}

/// "The input token count (1200000) exceeds the maximum number of tokens
/// allowed (1048576)."
fn about_token_limit(message: &str) -> bool {
    [
        "exceeds the maximum number of tokens",
        "input token count",
        "too many tokens",
        "context length",
        "context window",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// "User location is not supported for the API use." / "Gemini API free
/// tier is not available in your country."
fn about_region(message: &str) -> bool {
    message.contains("location is not supported")
        || message.contains("not available in your country")
}
