//! Generic classification of upstream error responses.

use serde_json::Value;

use crate::{ErrorClass, PluginError, retry_after_ms};

/// Longest upstream message kept in a [`PluginError`], in bytes.
const MAX_MESSAGE_LEN: usize = 1024;

/// Word prefixes of API keys that providers echo back in error messages
/// (usually masked, e.g. `sk-proj-****abcd`); such words are redacted.
const KEY_PREFIXES: &[&str] = &[
    "sk-", "sk_", "gsk_", "xai-", "AIza", "hf_", "ghp_", "pk-", "key-",
];

/// What an upstream error body says, read from the common JSON error shapes:
///
/// * OpenAI and compatible APIs: `{"error": {"message", "type", "code", "param"}}`
/// * Anthropic: `{"type": "error", "error": {"type", "message"}}`
/// * Gemini: `{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED"}}`
///   (also wrapped in a one-element array)
/// * simpler servers: `{"error": "message"}`, `{"message": "..."}`,
///   `{"detail": "..."}`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// The human-readable message.
    pub message: Option<String>,
    /// `error.code` when it is a string (OpenAI).
    pub code: Option<String>,
    /// `error.type` (OpenAI, Anthropic) or `error.status` (Gemini).
    pub kind: Option<String>,
    /// `error.param` (OpenAI).
    pub param: Option<String>,
    /// `error.code` when it is a number (Gemini, OpenRouter): an HTTP status.
    pub numeric_code: Option<u16>,
}

impl ErrorDetails {
    /// Reads the details from a response body; empty when it is not JSON.
    pub fn from_body(body: &[u8]) -> Self {
        serde_json::from_slice::<Value>(body)
            .map(|value| Self::from_value(&value))
            .unwrap_or_default()
    }

    /// Reads the details from a parsed body.
    pub fn from_value(value: &Value) -> Self {
        let value = match value {
            Value::Array(items) => match items.first() {
                Some(first) => first,
                None => return Self::default(),
            },
            other => other,
        };
        let Value::Object(top) = value else {
            return Self::default();
        };
        let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        match top.get("error") {
            Some(Value::Object(error)) => Self {
                message: string(error.get("message")),
                code: string(error.get("code")),
                kind: string(error.get("type")).or_else(|| string(error.get("status"))),
                param: string(error.get("param")),
                numeric_code: error
                    .get("code")
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok()),
            },
            Some(Value::String(message)) => Self {
                message: Some(message.clone()),
                ..Self::default()
            },
            _ => Self {
                message: string(top.get("message")).or_else(|| string(top.get("detail"))),
                code: string(top.get("code")),
                kind: string(top.get("type")).filter(|t| t != "error"),
                ..Self::default()
            },
        }
    }

    /// The most specific machine-readable code: `code`, else `kind`.
    pub fn code_or_kind(&self) -> Option<&str> {
        self.code.as_deref().or(self.kind.as_deref())
    }
}

/// Classifies an upstream error response by its HTTP status, with the message,
/// code and parameter taken from the body (see [`ErrorDetails`]).
///
/// | status | class | retryable |
/// |---|---|---|
/// | 400, 413, 422, other 4xx | `bad-request` | no |
/// | 401 | `authentication` | yes (another key may work) |
/// | 403 | `permission-denied` | yes |
/// | 404 | `not-found` | yes (another target may serve the model) |
/// | 408 | `timeout` | yes |
/// | 429 | `rate-limited` | yes |
/// | 503, 529 | `overloaded` | yes |
/// | 500, 502, 504, other 5xx | `server` | yes |
///
/// A 2xx or 3xx status (an error hidden in a successful body) is classified by
/// a numeric `error.code` in 400..=599 when the body has one, else as
/// `server`. `retry_after_ms` comes from the `retry-after-ms` / `retry-after`
/// headers. The message is the upstream's, truncated and with anything that
/// looks like an API key redacted, or a short generic one.
///
/// ```
/// use orch_plugin_sdk::{classify_status, ErrorClass};
///
/// let body = br#"{"error":{"message":"Slow down","type":"requests","code":"rate_limit_exceeded"}}"#;
/// let headers = vec![("retry-after".to_owned(), "2".to_owned())];
/// let err = classify_status(429, &headers, body);
/// assert_eq!(err.class, ErrorClass::RateLimited);
/// assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
/// assert_eq!(err.retry_after_ms, Some(2_000));
/// ```
pub fn classify_status(status: u16, headers: &[(String, String)], body: &[u8]) -> PluginError {
    classify_details(status, headers, &ErrorDetails::from_body(body))
}

/// [`classify_status`] for a body the caller has already parsed.
pub fn classify_details(
    status: u16,
    headers: &[(String, String)],
    details: &ErrorDetails,
) -> PluginError {
    let effective = if status >= 400 {
        Some(status)
    } else {
        details
            .numeric_code
            .filter(|code| (400..=599).contains(code))
    };
    let class = effective.map_or(ErrorClass::Server, class_of_status);
    let message = match &details.message {
        Some(message) if !message.trim().is_empty() => safe_message(message),
        _ => generic_message(status),
    };
    let mut error = PluginError::new(class, message)
        .with_status(status)
        .with_retry_after_ms(retry_after_ms(headers));
    error.code = details.code_or_kind().map(str::to_owned);
    error.param = details.param.clone();
    error
}

/// The error class of an HTTP error status.
pub fn class_of_status(status: u16) -> ErrorClass {
    match status {
        401 => ErrorClass::Authentication,
        403 => ErrorClass::PermissionDenied,
        404 => ErrorClass::NotFound,
        408 => ErrorClass::Timeout,
        429 => ErrorClass::RateLimited,
        503 | 529 => ErrorClass::Overloaded,
        400..=499 => ErrorClass::BadRequest,
        _ => ErrorClass::Server,
    }
}

/// A short message that reveals nothing but the status.
fn generic_message(status: u16) -> String {
    let reason = match status {
        400 => " Bad Request",
        401 => " Unauthorized",
        403 => " Forbidden",
        404 => " Not Found",
        408 => " Request Timeout",
        413 => " Content Too Large",
        422 => " Unprocessable Content",
        429 => " Too Many Requests",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        504 => " Gateway Timeout",
        529 => " Overloaded",
        _ => "",
    };
    format!("upstream returned HTTP {status}{reason}")
}

/// The upstream message with key-like words redacted, cut to
/// [`MAX_MESSAGE_LEN`] bytes on a character boundary.
pub(crate) fn safe_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_LEN));
    for piece in message.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '*');
        if looks_like_key(core) {
            let start = word.find(core).unwrap_or(0);
            out.push_str(&word[..start]);
            out.push_str("[redacted]");
            out.push_str(&piece[start + core.len()..]);
        } else {
            out.push_str(piece);
        }
    }
    if out.len() > MAX_MESSAGE_LEN {
        let mut cut = MAX_MESSAGE_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn looks_like_key(word: &str) -> bool {
    word.contains("****") || (word.len() >= 12 && KEY_PREFIXES.iter().any(|p| word.starts_with(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> PluginError {
        classify_status(status, &[], body.as_bytes())
    }

    #[test]
    fn status_table() {
        let table = [
            (400, ErrorClass::BadRequest, false),
            (401, ErrorClass::Authentication, true),
            (403, ErrorClass::PermissionDenied, true),
            (404, ErrorClass::NotFound, true),
            (408, ErrorClass::Timeout, true),
            (409, ErrorClass::BadRequest, false),
            (413, ErrorClass::BadRequest, false),
            (422, ErrorClass::BadRequest, false),
            (429, ErrorClass::RateLimited, true),
            (500, ErrorClass::Server, true),
            (502, ErrorClass::Server, true),
            (503, ErrorClass::Overloaded, true),
            (504, ErrorClass::Server, true),
            (529, ErrorClass::Overloaded, true),
            (599, ErrorClass::Server, true),
        ];
        for (status, class, retryable) in table {
            let err = classify(status, "");
            assert_eq!(
                (err.class, err.retryable),
                (class, retryable),
                "status {status}"
            );
            assert_eq!(err.status, Some(status));
        }
    }

    #[test]
    fn openai_shape() {
        let err = classify(
            400,
            r#"{"error":{"message":"bad messages","type":"invalid_request_error","param":"messages","code":null}}"#,
        );
        assert_eq!(err.message, "bad messages");
        assert_eq!(err.code.as_deref(), Some("invalid_request_error"));
        assert_eq!(err.param.as_deref(), Some("messages"));

        let err = classify(
            400,
            r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(err.code.as_deref(), Some("context_length_exceeded"));
    }

    #[test]
    fn anthropic_shape() {
        let err = classify(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(err.class, ErrorClass::Overloaded);
        assert_eq!(err.code.as_deref(), Some("overloaded_error"));
        assert_eq!(err.message, "Overloaded");
    }

    #[test]
    fn gemini_shape_plain_and_in_an_array() {
        let body = r#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        for body in [body.to_owned(), format!("[{body}]")] {
            let err = classify(429, &body);
            assert_eq!(err.class, ErrorClass::RateLimited);
            assert_eq!(err.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
            assert_eq!(err.message, "Resource exhausted");
        }
    }

    #[test]
    fn simple_shapes() {
        assert_eq!(
            classify(404, r#"{"error":"model 'x' not found"}"#).message,
            "model 'x' not found"
        );
        assert_eq!(
            classify(422, r#"{"detail":"field required"}"#).message,
            "field required"
        );
        assert_eq!(
            classify(500, r#"{"message":"boom","type":"error"}"#).code,
            None
        );
    }

    #[test]
    fn fallback_message_does_not_echo_the_body() {
        let err = classify(502, "<html>secret proxy page</html>");
        assert_eq!(err.message, "upstream returned HTTP 502 Bad Gateway");
        assert_eq!(err.code, None);
        assert_eq!(classify(418, "").message, "upstream returned HTTP 418");
        assert_eq!(
            classify(500, r#"{"error":{"message":"  "}}"#).message,
            "upstream returned HTTP 500 Internal Server Error"
        );
    }

    #[test]
    fn errors_hidden_in_2xx_use_the_numeric_code() {
        let err = classify(
            200,
            r#"{"error":{"code":429,"message":"rate limited upstream"}}"#,
        );
        assert_eq!(err.class, ErrorClass::RateLimited);
        assert_eq!(err.status, Some(200));
        let err = classify(200, r#"{"error":{"message":"oops"}}"#);
        assert_eq!((err.class, err.retryable), (ErrorClass::Server, true));
    }

    #[test]
    fn retry_after_is_attached() {
        let headers = vec![("retry-after".to_owned(), "3".to_owned())];
        assert_eq!(
            classify_status(429, &headers, b"").retry_after_ms,
            Some(3_000)
        );
        assert_eq!(
            classify_status(503, &headers, b"").retry_after_ms,
            Some(3_000)
        );
    }

    #[test]
    fn keys_are_redacted() {
        let err = classify(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-proj-abc********************xyz1. You can find your API key at https://platform.openai.com.","code":"invalid_api_key"}}"#,
        );
        assert_eq!(
            err.message,
            "Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com."
        );
        assert_eq!(
            safe_message("key 'gsk_0123456789abcdef' bad"),
            "key '[redacted]' bad"
        );
        assert_eq!(
            safe_message("model gpt-4o-mini is fine"),
            "model gpt-4o-mini is fine"
        );
        assert_eq!(safe_message("task-12 sk-1"), "task-12 sk-1");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let cut = safe_message(&long);
        assert!(cut.len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        let long = "word ".repeat(1000);
        assert!(safe_message(&long).len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
    }
}
