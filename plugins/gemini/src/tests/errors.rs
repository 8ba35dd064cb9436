//! `classify_error`.

use orch_plugin_sdk::{Adapter, ErrorClass, PluginError};
use serde_json::json;

use super::{ctx, headers};
use crate::Gemini;
use crate::error::parse_duration_ms;

fn classify(status: u16, body: &str) -> PluginError {
    Gemini::classify_error(&ctx(false), status, &[], body.as_bytes())
}

fn google(code: u16, status: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message, "status": status}}).to_string()
}

#[test]
fn status_names() {
    let table = [
        (
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            ErrorClass::BadRequest,
            false,
        ),
        (
            400,
            "FAILED_PRECONDITION",
            "Precondition check failed.",
            ErrorClass::BadRequest,
            false,
        ),
        (
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            ErrorClass::Authentication,
            true,
        ),
        (
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers.",
            ErrorClass::PermissionDenied,
            true,
        ),
        (
            404,
            "NOT_FOUND",
            "models/gemini-9 is not found for API version v1beta.",
            ErrorClass::NotFound,
            true,
        ),
        (
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted.",
            ErrorClass::RateLimited,
            true,
        ),
        (
            503,
            "UNAVAILABLE",
            "The model is overloaded.",
            ErrorClass::Overloaded,
            true,
        ),
        (
            500,
            "INTERNAL",
            "An internal error has occurred.",
            ErrorClass::Server,
            true,
        ),
        (500, "UNKNOWN", "Unknown error.", ErrorClass::Server, true),
        (
            504,
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.",
            ErrorClass::Timeout,
            true,
        ),
        (
            501,
            "UNIMPLEMENTED",
            "Operation is not implemented.",
            ErrorClass::Unsupported,
            true,
        ),
        (
            499,
            "CANCELLED",
            "The operation was cancelled.",
            ErrorClass::Server,
            true,
        ),
    ];
    for (status, name, message, class, retryable) in table {
        let err = classify(status, &google(status, name, message));
        assert_eq!((err.class, err.retryable), (class, retryable), "{name}");
        assert_eq!(err.status, Some(status));
        assert_eq!(err.code.as_deref(), Some(name));
        assert_eq!(err.message, message);
    }
}

#[test]
fn special_messages() {
    let err = classify(
        400,
        &google(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        ),
    );
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::ContextLength, false)
    );
    let err = classify(
        400,
        &google(
            400,
            "FAILED_PRECONDITION",
            "User location is not supported for the API use.",
        ),
    );
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::PermissionDenied, true)
    );
    let err = classify(
        400,
        &google(
            400,
            "FAILED_PRECONDITION",
            "Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.",
        ),
    );
    assert_eq!(err.class, ErrorClass::PermissionDenied);
    // An invalid key comes as 400 INVALID_ARGUMENT.
    let body = json!({"error": {"code": 400, "message": "API key expired. Please renew the API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
    let err = classify(400, &body.to_string());
    assert_eq!(
        (err.class, err.retryable, err.code.as_deref()),
        (ErrorClass::Authentication, true, Some("API_KEY_INVALID"))
    );
    // Other reasons are kept as the code; the status decides the class.
    let body = json!({"error": {"code": 403, "message": "Requests from referer <empty> are blocked.", "status": "PERMISSION_DENIED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_HTTP_REFERRER_BLOCKED"}]}});
    let err = classify(403, &body.to_string());
    assert_eq!(
        (err.class, err.code.as_deref()),
        (
            ErrorClass::PermissionDenied,
            Some("API_KEY_HTTP_REFERRER_BLOCKED")
        )
    );
}

#[test]
fn retry_delays() {
    let body = |delay: &str| {
        json!({"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
        .to_string()
    };
    assert_eq!(classify(429, &body("7s")).retry_after_ms, Some(7_000));
    assert_eq!(classify(429, &body("0.5s")).retry_after_ms, Some(500));
    // The detail wins over the header; the header is the fallback.
    let h = headers(&[("retry-after", "30")]);
    let err = Gemini::classify_error(&ctx(false), 429, &h, body("2s").as_bytes());
    assert_eq!(err.retry_after_ms, Some(2_000));
    let err = Gemini::classify_error(&ctx(false), 429, &h, body("soon").as_bytes());
    assert_eq!(err.retry_after_ms, Some(30_000));
    assert_eq!(
        classify(429, &google(429, "RESOURCE_EXHAUSTED", "x")).retry_after_ms,
        None
    );

    assert_eq!(parse_duration_ms("6.901429626s"), Some(6_902));
    assert_eq!(parse_duration_ms("0s"), Some(0));
    assert_eq!(parse_duration_ms(" 12s "), Some(12_000));
    assert_eq!(parse_duration_ms("99999999999s"), Some(u32::MAX));
    for bad in ["", "s", "7", "-1s", "1e3s", "7ms", "abc"] {
        assert_eq!(parse_duration_ms(bad), None, "{bad}");
    }
}

#[test]
fn other_shapes() {
    // Array-wrapped, as some Google endpoints answer.
    let err = classify(
        429,
        &format!("[{}]", google(429, "RESOURCE_EXHAUSTED", "slow down")),
    );
    assert_eq!(
        (err.class, err.message.as_str()),
        (ErrorClass::RateLimited, "slow down")
    );
    // No Google status: by HTTP status; the body is never echoed.
    let err = classify(502, "<html>Bad Gateway</html>");
    assert_eq!((err.class, err.code), (ErrorClass::Server, None));
    assert_eq!(err.message, "upstream returned HTTP 502 Bad Gateway");
    let err = classify(404, "");
    assert_eq!(err.class, ErrorClass::NotFound);
    let err = classify(
        413,
        r#"{"error":{"message":"request too large: too many tokens"}}"#,
    );
    assert_eq!(err.class, ErrorClass::ContextLength);
    // Keys in messages are redacted.
    let err = classify(
        400,
        &google(
            400,
            "INVALID_ARGUMENT",
            "API key AIzaSyD-abcdefghijklmnop is invalid",
        ),
    );
    assert_eq!(err.message, "API key [redacted] is invalid");
}
