//! Tests of the gemini adapter: unit tests per area, and the replay of the
//! golden conformance cases in `plugins/conformance/gemini/adapter/`.

use orch_plugin_sdk::{
    Adapter, Operation, PayloadForm, PluginError, Provider, RequestBody, RequestContext,
    UpstreamRequest,
};
use serde_json::{Value, json};

use crate::Gemini;

mod config;
mod conformance;
mod errors;
mod request;
mod response;
mod schema;
mod stream;

const BASE: &str = "https://generativelanguage.googleapis.com";

fn provider(base_url: &str, options: Value) -> Provider {
    Provider {
        name: "test".to_owned(),
        base_url: base_url.to_owned(),
        options: options.to_string(),
    }
}

fn ctx(streaming: bool) -> RequestContext {
    RequestContext {
        request_id: "req-1".to_owned(),
        operation: Operation::Chat,
        requested_model: "my-alias".to_owned(),
        upstream_model: "gemini-2.5-flash".to_owned(),
        streaming,
        form: PayloadForm::Canonical,
        ingress_dialect: "openai".to_owned(),
        received_at_ms: 1_700_000_000_000,
        provider: provider(BASE, json!({})),
    }
}

fn native_ctx(streaming: bool) -> RequestContext {
    RequestContext {
        form: PayloadForm::Native,
        ingress_dialect: "gemini".to_owned(),
        ..ctx(streaming)
    }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Builds a canonical request and returns the JSON body.
fn build(payload: &Value) -> Value {
    body_of(&build_request(&ctx(false), payload).expect("request"))
}

fn build_request(ctx: &RequestContext, payload: &Value) -> Result<UpstreamRequest, PluginError> {
    Gemini::build_request(ctx, &payload.to_string())
}

fn build_err(payload: &Value) -> PluginError {
    build_request(&ctx(false), payload).expect_err("refused")
}

fn body_of(request: &UpstreamRequest) -> Value {
    let RequestBody::Bytes(bytes) = &request.body else {
        panic!("expected a bytes body, got {:?}", request.body)
    };
    serde_json::from_slice(bytes).expect("body is JSON")
}

fn body_text(request: &UpstreamRequest) -> String {
    let RequestBody::Bytes(bytes) = &request.body else {
        panic!("expected a bytes body, got {:?}", request.body)
    };
    String::from_utf8(bytes.clone()).expect("utf-8")
}

/// A user message payload with extra top-level fields.
fn chat(extra: Value) -> Value {
    let mut payload = json!({"model": "my-alias", "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(payload), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        payload.extend(extra);
    }
    payload
}
