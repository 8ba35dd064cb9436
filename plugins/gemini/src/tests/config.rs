//! `info`, `check_provider`, the probe.

use orch_plugin_sdk::{Adapter, Credential, ErrorClass, PluginKind, RequestBody};
use serde_json::json;

use super::{BASE, headers, provider};
use crate::Gemini;

#[test]
fn info() {
    let info = Gemini::info();
    assert_eq!(info.id, "gemini");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.kind, PluginKind::Adapter);
    assert_eq!(info.dialect, "gemini");
    assert_eq!(
        info.capabilities,
        [
            "tools",
            "vision",
            "json-mode",
            "json-schema",
            "reasoning",
            "usage-in-stream",
            "parallel-tool-calls",
            "count-tokens"
        ]
    );
    assert!(!info.description.is_empty());
}

#[test]
fn check_provider_accepts_good_configurations() {
    for url in [
        BASE,
        "https://generativelanguage.googleapis.com/",
        "http://127.0.0.1:9090",
        "http://localhost:9090/proxy/gemini",
        "http://[::1]:8080",
    ] {
        assert_eq!(
            Gemini::check_provider(&provider(url, json!({}))),
            Ok(()),
            "{url}"
        );
    }
    let options = json!({
        "api_version": "v1alpha",
        "headers": {"X-Goog-User-Project": "my-project"},
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    });
    assert_eq!(Gemini::check_provider(&provider(BASE, options)), Ok(()));
}

#[test]
fn check_provider_rejects_bad_base_urls() {
    for url in [
        "generativelanguage.googleapis.com",
        "ftp://example.com",
        "https://",
        "https://user:key@example.com",
        "https://example.com/?key=abc",
        "https://example.com/#x",
        "https://exa mple.com",
        "https://generativelanguage.googleapis.com/v1beta",
        "https://generativelanguage.googleapis.com/v1/",
    ] {
        let err = Gemini::check_provider(&provider(url, json!({}))).expect_err(url);
        assert_eq!(err.class, ErrorClass::BadRequest, "{url}");
        assert_eq!(err.param.as_deref(), Some("base_url"), "{url}");
    }
    let err = Gemini::check_provider(&provider(&format!("{BASE}/v1beta"), json!({})))
        .expect_err("version in the URL");
    assert!(err.message.contains("api_version"), "{}", err.message);
}

#[test]
fn check_provider_rejects_bad_options_naming_the_key() {
    let cases = [
        (json!({"apiVersion": "v1"}), "unknown option `apiVersion`"),
        (
            json!({"key": "AIza..."}),
            "known options: api_version, headers, safety_settings",
        ),
        (json!({"api_version": 1}), "`api_version` must be a version"),
        (
            json!({"api_version": "v1/../x"}),
            "`api_version` must be a version",
        ),
        (json!({"headers": "x"}), "`headers` must be an object"),
        (
            json!({"headers": {"x-goog-api-key": "k"}}),
            "`x-goog-api-key` cannot be set here",
        ),
        (
            json!({"headers": {"Authorization": "Bearer k"}}),
            "`Authorization` cannot be set here",
        ),
        (
            json!({"headers": {"x-a": "v\nx"}}),
            "must not contain control characters",
        ),
        (
            json!({"headers": {"x a": "v"}}),
            "is not a valid header name",
        ),
        (json!({"headers": {"x-a": true}}), "must be a string"),
        (
            json!({"safety_settings": {"category": "x"}}),
            "`safety_settings` must be a list",
        ),
        (
            json!({"safety_settings": ["BLOCK_NONE"]}),
            "`safety_settings` must be a list",
        ),
        (json!([1]), "must be a JSON object"),
    ];
    for (options, needle) in cases {
        let err = Gemini::check_provider(&provider(BASE, options.clone())).expect_err("invalid");
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(err.message.contains(needle), "{options}: {}", err.message);
    }
}

#[test]
fn probe_lists_one_model_with_the_key_in_a_header() {
    let probe = Gemini::probe_request(&provider(
        "http://127.0.0.1:9090/",
        json!({"api_version": "v1", "headers": {"x-goog-user-project": "p"}}),
    ))
    .expect("probe");
    assert_eq!(probe.method, "GET");
    assert_eq!(probe.url, "http://127.0.0.1:9090/v1/models?pageSize=1");
    assert_eq!(
        probe.credential,
        Credential::Header("x-goog-api-key".to_owned())
    );
    assert_eq!(probe.body, RequestBody::Empty);
    assert_eq!(
        probe.headers,
        headers(&[("accept", "application/json"), ("x-goog-user-project", "p")])
    );
    let probe = Gemini::probe_request(&provider(BASE, json!({}))).expect("probe");
    assert_eq!(probe.url, format!("{BASE}/v1beta/models?pageSize=1"));
}

#[test]
fn judge_probe() {
    let p = provider(BASE, json!({}));
    let listing =
        br#"{"models":[{"name":"models/gemini-2.5-flash","version":"001"}],"nextPageToken":"Ch1"}"#;
    assert_eq!(Gemini::judge_probe(&p, 200, &[], listing), Ok(()));
    assert_eq!(Gemini::judge_probe(&p, 200, &[], b"{}"), Ok(()));
    for body in [&b"<html>"[..], b"[]", br#"{"models":{}}"#] {
        let err = Gemini::judge_probe(&p, 200, &[], body).expect_err("not a listing");
        assert_eq!(err.class, ErrorClass::Server);
    }
    let err = Gemini::judge_probe(
        &p,
        400,
        &[],
        br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#,
    )
    .expect_err("bad key");
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::Authentication, true)
    );
}
