//! Tests of the gemini adapter: unit tests per area, and the replay of the
//! golden conformance cases in `plugins/conformance/gemini/adapter/`.

use orch_conformance::unit::{headers, provider, request_context};
use orch_plugin_sdk::{
    Adapter, PayloadForm, PluginError, RequestBody, RequestContext, UpstreamRequest,
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

fn ctx(streaming: bool) -> RequestContext {
    RequestContext {
        streaming,
        ..request_context(provider(BASE, json!({})), "my-alias", "gemini-2.5-flash")
    }
}

fn native_ctx(streaming: bool) -> RequestContext {
    RequestContext {
        form: PayloadForm::Native,
        ingress_dialect: "gemini".to_owned(),
        ..ctx(streaming)
    }
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
