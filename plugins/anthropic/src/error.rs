//! Classification of Anthropic errors: `{"type":"error","error":{"type","message"}}`
//! in non-2xx answers, hidden in 2xx bodies, and as `error` stream events.

use orch_plugin_sdk::{ErrorClass, ErrorDetails, PluginError};

/// Classifies an upstream error answer by Anthropic's `error.type`, falling
/// back on the HTTP status (see [`classify_details`]).
pub fn classify(status: u16, headers: &[(String, String)], body: &[u8]) -> PluginError {
    classify_details(status, headers, &ErrorDetails::from_body(body))
}

/// [`orch_plugin_sdk::classify_details`] refined by Anthropic's error types:
///
/// | `error.type` | class |
/// |---|---|
/// | `invalid_request_error` | `bad-request`; `context-length` when the message says the prompt is too long; `rate-limited` when it says the credit balance is too low |
/// | `request_too_large` (413) | `bad-request` |
/// | `authentication_error` | `authentication` |
/// | `permission_error` | `permission-denied` |
/// | `billing_error` (402) | `rate-limited` (the key's credit is exhausted; another key may work) |
/// | `not_found_error` | `not-found` |
/// | `rate_limit_error` | `rate-limited` (`retry-after` honoured) |
/// | `overloaded_error` (529) | `overloaded` |
/// | `api_error` | `server` |
/// | `timeout_error` (504) | `timeout` |
///
/// Unknown types are classified by status. `retryable` is the class default.
pub fn classify_details(
    status: u16,
    headers: &[(String, String)],
    details: &ErrorDetails,
) -> PluginError {
    let error = orch_plugin_sdk::classify_details(status, headers, details);
    let class = match details.kind.as_deref() {
        Some("invalid_request_error") if mentions_context_length(&error.message) => {
            ErrorClass::ContextLength
        }
        // "Your credit balance is too low to access the Anthropic API": the
        // key's account is at fault, not the request.
        Some("invalid_request_error") if mentions_credit(&error.message) => ErrorClass::RateLimited,
        Some("invalid_request_error" | "request_too_large") => ErrorClass::BadRequest,
        Some("authentication_error") => ErrorClass::Authentication,
        Some("permission_error") => ErrorClass::PermissionDenied,
        Some("billing_error" | "rate_limit_error") => ErrorClass::RateLimited,
        Some("not_found_error") => ErrorClass::NotFound,
        Some("overloaded_error") => ErrorClass::Overloaded,
        Some("api_error") => ErrorClass::Server,
        Some("timeout_error") => ErrorClass::Timeout,
        _ if error.class == ErrorClass::BadRequest && mentions_context_length(&error.message) => {
            ErrorClass::ContextLength
        }
        _ => error.class,
    };
    error
        .with_class(class)
        .with_retryable(class.retryable_by_default())
}

/// Anthropic's messages for inputs longer than the context window, e.g.
/// `prompt is too long: 215000 tokens > 200000 maximum` or `input length and
/// max_tokens exceed context limit: 190000 + 20000 > 200000`.
fn mentions_context_length(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "prompt is too long",
        "exceed context limit",
        "context window",
        "context length",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Anthropic answers an exhausted prepaid balance with a 400.
fn mentions_credit(message: &str) -> bool {
    message.to_ascii_lowercase().contains("credit balance")
}

/// Classifies an `error` event inside a 200 stream (its data is the same
/// error object as an error answer's body).
pub fn stream_error(status: u16, data: &[u8]) -> PluginError {
    let mut details = ErrorDetails::from_body(data);
    if details
        .message
        .as_deref()
        .is_none_or(|m| m.trim().is_empty())
    {
        details.message = Some("upstream reported an error in the stream".to_owned());
    }
    classify_details(status, &[], &details)
}
