//! `info`, `check_provider`, the probe.

use orch_conformance::unit::{
    assert_adapter_info, assert_base_urls_accepted, assert_base_urls_refused,
    assert_options_refused,
};
use orch_plugin_sdk::{Adapter, Credential, ErrorClass, RequestBody, capability};
use serde_json::json;

use super::{BASE, headers, provider};
use crate::Gemini;

#[test]
fn info() {
    let capabilities = [&capability::FULL_CHAT[..], &[capability::COUNT_TOKENS]].concat();
    let version = env!("CARGO_PKG_VERSION");
    assert_adapter_info(&Gemini::info(), "gemini", version, "gemini", &capabilities);
}

#[test]
fn check_provider_accepts_good_configurations() {
    assert_base_urls_accepted::<Gemini>(&[
        BASE,
        "https://generativelanguage.googleapis.com/",
        "http://127.0.0.1:9090",
        "http://localhost:9090/proxy/gemini",
        "http://[::1]:8080",
    ]);
    let options = json!({
        "api_version": "v1alpha",
        "headers": {"X-Goog-User-Project": "my-project"},
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    });
    assert_eq!(Gemini::check_provider(&provider(BASE, options)), Ok(()));
}

#[test]
fn check_provider_rejects_bad_base_urls() {
    assert_base_urls_refused::<Gemini>(&[
        "generativelanguage.googleapis.com",
        "ftp://example.com",
        "https://",
        "https://user:key@example.com",
        "https://example.com/?key=abc",
        "https://example.com/#x",
        "https://exa mple.com",
        "https://generativelanguage.googleapis.com/v1beta",
        "https://generativelanguage.googleapis.com/v1/",
        "https://generativelanguage.googleapis.com/V1Alpha",
    ]);
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
    assert_options_refused::<Gemini>(BASE, &cases);
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
