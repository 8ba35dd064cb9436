//! Errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`,
//! with the error types of the table in `docs/canonical.md`.

use orch_plugin_sdk::{ErrorClass, ErrorResponse, PluginError};
use serde::Serialize;

/// Anthropic's status for `overloaded_error`.
const OVERLOADED: u16 = 529;

/// Renders an error for the client. The status is the one the host chose
/// (`error.status`), except that `overloaded` is always Anthropic's 529;
/// without a status the class decides.
pub(crate) fn encode_error(error: &PluginError) -> ErrorResponse {
    let status = status(error);
    ErrorResponse {
        status,
        body: error_body(error, Some(status)),
    }
}

/// The HTTP status for an error.
pub(crate) fn status(error: &PluginError) -> u16 {
    if error.class == ErrorClass::Overloaded {
        return OVERLOADED;
    }
    match error.status {
        Some(status) if (400..=599).contains(&status) => status,
        _ => default_status(error.class),
    }
}

fn default_status(class: ErrorClass) -> u16 {
    match class {
        ErrorClass::BadRequest
        | ErrorClass::Unsupported
        | ErrorClass::ContextLength
        | ErrorClass::ContentFilter => 400,
        ErrorClass::Authentication => 401,
        ErrorClass::PermissionDenied => 403,
        ErrorClass::NotFound => 404,
        ErrorClass::RateLimited => 429,
        ErrorClass::Overloaded => OVERLOADED,
        ErrorClass::Server => 500,
        ErrorClass::Timeout => 504,
    }
}

/// Anthropic's `error.type` for a class (`request_too_large` for a 413).
pub(crate) fn error_type(class: ErrorClass, status: Option<u16>) -> &'static str {
    match class {
        ErrorClass::BadRequest if status == Some(413) => "request_too_large",
        ErrorClass::BadRequest
        | ErrorClass::Unsupported
        | ErrorClass::ContextLength
        | ErrorClass::ContentFilter => "invalid_request_error",
        ErrorClass::Authentication => "authentication_error",
        ErrorClass::PermissionDenied => "permission_error",
        ErrorClass::NotFound => "not_found_error",
        ErrorClass::RateLimited => "rate_limit_error",
        ErrorClass::Overloaded => "overloaded_error",
        ErrorClass::Server => "api_error",
        ErrorClass::Timeout => "timeout_error",
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// The error body (one line of JSON), also the `data` of an in-stream `error`
/// event.
pub(crate) fn error_body(error: &PluginError, status: Option<u16>) -> String {
    let body = Body {
        kind: "error",
        error: Detail {
            kind: error_type(error.class, status),
            message: &error.message,
        },
    };
    // Serialising two strings cannot fail; keep a valid body regardless.
    serde_json::to_string(&body).unwrap_or_else(|_| {
        r#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn render(error: &PluginError) -> (u16, Value) {
        let response = encode_error(error);
        let body = serde_json::from_str(&response.body).expect("JSON body");
        (response.status, body)
    }

    #[test]
    fn every_class_without_a_status() {
        let cases = [
            (ErrorClass::BadRequest, 400, "invalid_request_error"),
            (ErrorClass::Unsupported, 400, "invalid_request_error"),
            (ErrorClass::ContextLength, 400, "invalid_request_error"),
            (ErrorClass::ContentFilter, 400, "invalid_request_error"),
            (ErrorClass::Authentication, 401, "authentication_error"),
            (ErrorClass::PermissionDenied, 403, "permission_error"),
            (ErrorClass::NotFound, 404, "not_found_error"),
            (ErrorClass::RateLimited, 429, "rate_limit_error"),
            (ErrorClass::Overloaded, 529, "overloaded_error"),
            (ErrorClass::Server, 500, "api_error"),
            (ErrorClass::Timeout, 504, "timeout_error"),
        ];
        for (class, status, kind) in cases {
            let (got_status, body) = render(&PluginError::new(class, "what \"happened\""));
            assert_eq!(got_status, status, "{class}");
            assert_eq!(
                body,
                json!({"type": "error", "error": {"type": kind, "message": "what \"happened\""}}),
                "{class}"
            );
        }
    }

    #[test]
    fn the_hosts_status_is_kept_except_for_overloaded() {
        // An upstream 401 is the gateway's problem: the host answers 502.
        let (status, body) =
            render(&PluginError::authentication("provider key refused").with_status(502));
        assert_eq!(status, 502);
        assert_eq!(body["error"]["type"], "authentication_error");
        let (status, body) = render(&PluginError::overloaded("busy").with_status(503));
        assert_eq!(status, 529);
        assert_eq!(body["error"]["type"], "overloaded_error");
        let (status, _) = render(&PluginError::rate_limited("slow down").with_status(429));
        assert_eq!(status, 429);
        // Nonsense statuses fall back to the class.
        let (status, _) = render(&PluginError::server("boom").with_status(200));
        assert_eq!(status, 500);
    }

    #[test]
    fn request_too_large() {
        let (status, body) = render(&PluginError::bad_request("too big").with_status(413));
        assert_eq!(status, 413);
        assert_eq!(body["error"]["type"], "request_too_large");
    }

    #[test]
    fn body_is_one_line() {
        let response = encode_error(&PluginError::server("line 1\nline 2"));
        assert!(!response.body.contains('\n'));
        assert!(
            response
                .body
                .starts_with(r#"{"type":"error","error":{"type":"api_error""#)
        );
    }
}
