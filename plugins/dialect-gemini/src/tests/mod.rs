//! Unit tests (native) and the conformance replay.

mod conformance;
mod decode;
mod encode;
mod metadata;
mod round_trip;
mod stream;

use orch_plugin_sdk::{
    DecodedRequest, Dialect, EgressContext, IngressRequest, Operation, PluginError,
};
use serde_json::Value;

use crate::Gemini;

/// A chat request with `body` as raw text (key order kept).
fn ingress(body: &str) -> IngressRequest {
    IngressRequest {
        operation: Operation::Chat,
        path_model: Some("models/gemini-2.5-flash".to_owned()),
        endpoint_streams: None,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn decode(body: &str) -> Result<DecodedRequest, PluginError> {
    Gemini::decode_request(&ingress(body))
}

/// The canonical body of a request that must decode.
fn decoded(body: &str) -> Value {
    let decoded = decode(body).unwrap_or_else(|err| panic!("decode failed: {err:?}\n{body}"));
    serde_json::from_str(&decoded.body).expect("canonical JSON")
}

/// The raw canonical text of a request that must decode.
fn decoded_text(body: &str) -> String {
    decode(body).expect("decoded").body
}

/// The error of a request that must fail: `(class, param)`.
fn decode_error(body: &str) -> PluginError {
    decode(body).expect_err("decoding must fail")
}

fn ctx() -> EgressContext {
    EgressContext {
        request_id: "req-1".to_owned(),
        requested_model: "gemini-2.5-flash".to_owned(),
        received_at_ms: 1_700_000_000_000,
    }
}
