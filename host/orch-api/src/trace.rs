//! Request ids, W3C trace context and the spans of a request.
//!
//! One middleware ([`layer`], the router's outermost) gives every request
//! its id — the client's `x-request-id` when sane, else a new UUIDv7 — and a
//! `request` span (`INFO`) carrying it, so every log line of the request
//! names it;
//! it puts the id on every response, whatever produced it. A valid client
//! `traceparent` becomes the span's remote parent (an invalid one is
//! ignored); `tracestate` rides along. Handlers read the id and trace from
//! the [`RequestTrace`] extension.
//!
//! Each upstream attempt carries the host's own `traceparent`, set after the
//! adapter and the target's headers, so a plugin can neither forge nor drop
//! it: the request's trace id and the attempt span's id (a random span id
//! when no OpenTelemetry layer is installed).
//!
//! Spans carry names, models, token counts, statuses and error classes;
//! never prompt or completion content, credentials, or URLs (only the
//! upstream's host).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use orch_core::contract::Operation;
use orch_store::RequestLogRecord;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ApiError;
use crate::pipeline::ChatIngress;

/// The request id header, on requests and responses.
pub(crate) const REQUEST_ID: &str = "x-request-id";
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// Longest `tracestate` passed on (the W3C limit for propagating all of it).
const MAX_TRACESTATE: usize = 512;

/// A request's identity and trace, set by [`layer`] as a request extension.
#[derive(Clone, Debug)]
pub(crate) struct RequestTrace {
    /// The request id.
    pub(crate) id: Arc<str>,
    /// The trace upstream requests join when no OpenTelemetry layer is
    /// installed: the client's, else a random one.
    trace_id: [u8; 16],
    /// The client's trace flags (sampled), else none.
    flags: u8,
    /// The client's `tracestate`, passed on with a valid `traceparent`.
    tracestate: Option<HeaderValue>,
}

/// A valid W3C `traceparent` (version `00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// Parse `00-<32 hex>-<16 hex>-<2 hex>` (lower-case hex, ids not all
    /// zero); anything else is `None`.
    pub(crate) fn parse(value: &str) -> Option<TraceParent> {
        let mut parts = value.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let trace_id: [u8; 16] = lower_hex(trace)?;
        let parent_id: [u8; 8] = lower_hex(parent)?;
        let [flags]: [u8; 1] = lower_hex(flags)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            // Only the sampled flag is defined for version 00.
            flags: flags & 0x01,
        })
    }

    fn remote_context(&self, tracestate: Option<&HeaderValue>) -> opentelemetry::Context {
        let state = tracestate
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let sc = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.parent_id),
            TraceFlags::new(self.flags),
            true,
            state,
        );
        opentelemetry::Context::new().with_remote_span_context(sc)
    }
}

/// Exactly `N` bytes written as `2N` lower-case hex digits.
fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The client's `x-request-id` when it is sane (1–128 visible ASCII
/// characters), else a new UUIDv7.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The client's `tracestate` (all its header lines), when it is short and
/// printable.
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut joined = String::new();
    for v in headers.get_all(TRACESTATE) {
        let v = v.to_str().ok()?.trim();
        if v.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(v);
    }
    if joined.is_empty()
        || joined.len() > MAX_TRACESTATE
        || !joined.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return None;
    }
    HeaderValue::from_str(&joined).ok()
}

/// The middleware: the request's id, span and trace parent; the id on the
/// response.
pub(crate) async fn layer(mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let id: Arc<str> = request_id(headers).into();
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let tracestate = parent.and_then(|_| tracestate(headers));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        "http.request.method" = %req.method(),
        "http.route" = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str),
        "otel.kind" = "server",
    );
    if let Some(p) = &parent
        && !span.is_disabled()
    {
        // Fails only without an OpenTelemetry layer: nothing to join then.
        let _ = span.set_parent(p.remote_context(tracestate.as_ref()));
    }
    let trace = RequestTrace {
        id: id.clone(),
        trace_id: parent.map_or_else(
            || rand::random::<u128>().max(1).to_be_bytes(),
            |p| p.trace_id,
        ),
        flags: parent.map_or(0, |p| p.flags),
        tracestate,
    };
    req.extensions_mut().insert(trace);
    let mut resp = next.run(req).instrument(span.clone()).await;
    // For the exported span only: recording a field would make the log
    // formatter rewrite the span's fields.
    span.set_attribute(
        "http.response.status_code",
        i64::from(resp.status().as_u16()),
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

impl RequestTrace {
    /// Put this attempt's `traceparent` (and the client's `tracestate`) on
    /// an upstream request, replacing any a plugin or target set. `span` is
    /// the attempt's span: its ids when an OpenTelemetry layer records it,
    /// else the request's trace id and a random span id.
    pub(crate) fn stamp(&self, span: &Span, headers: &mut Vec<(String, String)>) {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        let (trace_id, span_id, flags) = if sc.is_valid() {
            (
                sc.trace_id().to_bytes(),
                sc.span_id().to_bytes(),
                sc.trace_flags().to_u8() & 0x01,
            )
        } else {
            (
                self.trace_id,
                rand::random::<u64>().max(1).to_be_bytes(),
                self.flags,
            )
        };
        headers.retain(|(k, _)| {
            !k.eq_ignore_ascii_case(TRACEPARENT) && !k.eq_ignore_ascii_case(TRACESTATE)
        });
        headers.push((
            TRACEPARENT.into(),
            format!(
                "00-{}-{}-{flags:02x}",
                hex::encode(trace_id),
                hex::encode(span_id)
            ),
        ));
        if let Some(state) = self.tracestate.as_ref().and_then(|v| v.to_str().ok()) {
            headers.push((TRACESTATE.into(), state.to_string()));
        }
    }
}

/// The `gen_ai.operation.name` of an operation.
fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Chat => "chat",
        Operation::CountTokens => "count_tokens",
        Operation::Embeddings => "embeddings",
    }
}

/// The span of one chat (or token count) request, from the ingress to the
/// request-log row; the attempts are its children. `DEBUG`, like the attempt
/// and plugin spans: log lines at the default level carry only the
/// `request` span, and these cost nothing unless debug logs or an exporter
/// want them.
pub(crate) fn chat_span(ingress: &ChatIngress) -> Span {
    tracing::debug_span!(
        "chat",
        "gen_ai.operation.name" = operation_name(ingress.operation),
        "gen_ai.request.model" = Empty,
        "gen_ai.provider.name" = Empty,
        "gen_ai.response.model" = Empty,
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
        "http.response.status_code" = Empty,
        "error.type" = Empty,
        request_id = %ingress.request_id(),
        ingress_dialect = ingress.dialect.as_str(),
    )
}

/// Record how a request ended on its `chat` span, from its request-log row.
pub(crate) fn finish_chat(span: &Span, rec: &RequestLogRecord) {
    if span.is_disabled() {
        return;
    }
    if let Some(p) = &rec.provider {
        span.record("gen_ai.provider.name", p.as_str());
    }
    if let Some(n) = rec.input_tokens {
        span.record("gen_ai.usage.input_tokens", n);
    }
    if let Some(n) = rec.output_tokens {
        span.record("gen_ai.usage.output_tokens", n);
    }
    span.record("http.response.status_code", rec.status);
    if let Some(class) = &rec.error_class {
        span.record("error.type", class.as_str());
    }
}

/// Record the model that answered — the top-level `model` (OpenAI,
/// Anthropic) or `modelVersion` (Gemini) of the provider's response body —
/// on the `chat` span. Reads the body only when the span is recorded.
pub(crate) fn response_model(span: &Span, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        model: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, rename = "modelVersion")]
        model_version: Option<std::borrow::Cow<'a, str>>,
    }
    if span.is_disabled() {
        return;
    }
    if let Ok(a) = serde_json::from_slice::<Answer<'_>>(body)
        && let Some(m) = a.model.or(a.model_version)
    {
        span.record(
            "gen_ai.response.model",
            crate::error::clip(&m, 256).as_str(),
        );
    }
}

/// The span of one upstream attempt (`DEBUG`): provider, upstream model,
/// attempt number, then the upstream's host and the outcome.
pub(crate) fn attempt_span(
    provider: &str,
    upstream_model: &str,
    plugin: &orch_plugin_host::LoadedPlugin,
    attempt: u32,
) -> Span {
    tracing::debug_span!(
        "upstream",
        "gen_ai.provider.name" = provider,
        "gen_ai.request.model" = upstream_model,
        "server.address" = Empty,
        attempt,
        plugin = %plugin.label(),
        outcome = Empty,
        "error.type" = Empty,
        "otel.kind" = "client",
    )
}

/// Record the upstream's host (never the URL: a query may hold a key) on
/// the attempt span, when `span` is a recorded one.
pub(crate) fn server_address(span: &Span, url: &str) {
    if span.field("server.address").is_none() {
        return;
    }
    if let Ok(uri) = url.parse::<axum::http::Uri>()
        && let Some(host) = uri.host()
    {
        span.record("server.address", host);
    }
}

/// Record how an attempt ended: `ok`, `retry` (the next key or target is
/// tried) or `error`.
pub(crate) fn attempt_outcome(span: &Span, outcome: &'static str, err: Option<&ApiError>) {
    if span.is_disabled() {
        return;
    }
    span.record("outcome", outcome);
    if let Some(e) = err {
        let class = e.class.map_or(e.code.as_str(), |c| c.as_str());
        span.record("error.type", class);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_validated() {
        let ok =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(ok.trace_id[0], 0x4b);
        assert_eq!(ok.parent_id[7], 0xb7);
        assert_eq!(ok.flags, 1);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("client-id-1"));
        assert_eq!(request_id(&h), "client-id-1");
        for bad in ["", "has space", &"x".repeat(129)] {
            h.insert(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = request_id(&h);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} → {id}");
        }
        h.insert(REQUEST_ID, HeaderValue::from_bytes(b"tab\there").unwrap());
        assert!(uuid::Uuid::parse_str(&request_id(&h)).is_ok());
    }

    #[test]
    fn the_host_stamps_its_own_traceparent() {
        let trace = RequestTrace {
            id: "r".into(),
            trace_id: [7; 16],
            flags: 1,
            tracestate: Some(HeaderValue::from_static("vendor=x")),
        };
        let mut headers = vec![
            ("TraceParent".to_string(), "00-forged".to_string()),
            ("tracestate".to_string(), "forged".to_string()),
            ("x-other".to_string(), "kept".to_string()),
        ];
        trace.stamp(&Span::none(), &mut headers);
        let tp: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(TRACEPARENT))
            .collect();
        assert_eq!(tp.len(), 1);
        let parsed = TraceParent::parse(&tp[0].1).unwrap();
        assert_eq!(parsed.trace_id, [7; 16]);
        assert_eq!(parsed.flags, 1);
        assert!(headers.contains(&("tracestate".into(), "vendor=x".into())));
        assert!(headers.contains(&("x-other".into(), "kept".into())));
        assert!(!headers.iter().any(|(_, v)| v.contains("forged")));
    }
}
