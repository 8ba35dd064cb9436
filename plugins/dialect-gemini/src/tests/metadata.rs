//! `info`, `encode_error`, `encode_models` and `encode_token_count`.

use orch_plugin_sdk::{Dialect, ErrorClass, ModelEntry, PluginError, PluginKind};
use serde_json::{Value, json};

use super::conformance::ALL_CLASSES;
use super::ctx;
use crate::Gemini;

#[test]
fn info() {
    let info = Gemini::info();
    assert_eq!(info.id, "dialect-gemini");
    assert_eq!(info.dialect, "gemini");
    assert_eq!(info.kind, PluginKind::Dialect);
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(info.capabilities.iter().any(|c| c == "count-tokens"));
    assert!(!info.description.is_empty());
}

fn error_json(error: &PluginError) -> (u16, Value) {
    let response = Gemini::encode_error(error);
    (
        response.status,
        serde_json::from_str(&response.body).expect("JSON"),
    )
}

#[test]
fn every_class_has_its_status_and_google_status_name() {
    let expected = [
        (ErrorClass::BadRequest, 400, "INVALID_ARGUMENT"),
        (ErrorClass::Authentication, 401, "UNAUTHENTICATED"),
        (ErrorClass::PermissionDenied, 403, "PERMISSION_DENIED"),
        (ErrorClass::NotFound, 404, "NOT_FOUND"),
        (ErrorClass::ContextLength, 400, "INVALID_ARGUMENT"),
        (ErrorClass::ContentFilter, 400, "INVALID_ARGUMENT"),
        (ErrorClass::RateLimited, 429, "RESOURCE_EXHAUSTED"),
        (ErrorClass::Overloaded, 503, "UNAVAILABLE"),
        (ErrorClass::Server, 500, "INTERNAL"),
        (ErrorClass::Timeout, 504, "DEADLINE_EXCEEDED"),
        (ErrorClass::Unsupported, 400, "INVALID_ARGUMENT"),
    ];
    assert_eq!(expected.len(), ALL_CLASSES.len());
    for (class, status, name) in expected {
        let (http, body) = error_json(&PluginError::new(class, "boom"));
        assert_eq!(http, status, "{class}");
        assert_eq!(
            body,
            json!({"error": {"code": status, "message": "boom", "status": name}}),
            "{class}"
        );
    }
}

#[test]
fn the_gateways_status_is_kept() {
    // An upstream 401 is the gateway's problem: the host answers 502.
    let error = PluginError::authentication("provider key refused").with_status(502);
    let (status, body) = error_json(&error);
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], 502);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    // Not an error status: the class decides.
    let (status, _) = error_json(&PluginError::not_found("no model").with_status(200));
    assert_eq!(status, 404);
}

#[test]
fn details_name_the_field_and_the_retry_delay() {
    let error = PluginError::bad_request("contents is not specified").with_param("contents");
    let (_, body) = error_json(&error);
    assert_eq!(
        body["error"]["details"],
        json!([{"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "contents", "description": "contents is not specified"}]}])
    );
    let error = PluginError::rate_limited("").with_retry_after_ms(Some(30_000));
    let (_, body) = error_json(&error);
    assert_eq!(body["error"]["message"], "Resource has been exhausted.");
    assert_eq!(
        body["error"]["details"],
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}])
    );
}

#[test]
fn decode_errors_render_as_google_errors() {
    let err = super::decode_error(r#"{"contents":[]}"#);
    let (status, body) = error_json(&err);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        body["error"]["details"][0]["fieldViolations"][0]["field"],
        "contents"
    );
}

#[test]
fn models_listing() {
    let models = [
        ModelEntry {
            id: "gemini-2.5-flash".to_owned(),
            owned_by: "google".to_owned(),
            created: 1,
        },
        ModelEntry {
            id: "models/fast".to_owned(),
            owned_by: "openai".to_owned(),
            created: 2,
        },
    ];
    let listing: Value = serde_json::from_str(&Gemini::encode_models(&models)).expect("JSON");
    let methods = json!(["generateContent", "countTokens", "streamGenerateContent"]);
    assert_eq!(
        listing,
        json!({"models": [
            {"name": "models/gemini-2.5-flash", "baseModelId": "gemini-2.5-flash", "version": "001",
             "displayName": "gemini-2.5-flash", "supportedGenerationMethods": methods},
            {"name": "models/fast", "baseModelId": "fast", "version": "001",
             "displayName": "fast", "supportedGenerationMethods": methods}
        ]})
    );
    assert_eq!(Gemini::encode_models(&[]), r#"{"models":[]}"#);
}

#[test]
fn token_count() {
    assert_eq!(
        Gemini::encode_token_count(&ctx(), 42),
        r#"{"totalTokens":42}"#
    );
}
