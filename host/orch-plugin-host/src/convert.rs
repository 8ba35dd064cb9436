//! Conversions between the generated bindings and the host's own types, with
//! the output checks the contract promises the rest of the gateway.

use orch_core::contract as c;

use crate::bindings::{adapter as a, types as t};
use crate::error::PluginFault;

pub(crate) fn context(ctx: &c::RequestContext) -> t::RequestContext {
    t::RequestContext {
        request_id: ctx.request_id.clone(),
        operation: match ctx.operation {
            c::Operation::Chat => t::Operation::Chat,
            c::Operation::CountTokens => t::Operation::CountTokens,
            c::Operation::Embeddings => t::Operation::Embeddings,
        },
        requested_model: ctx.requested_model.clone(),
        upstream_model: ctx.upstream_model.clone(),
        streaming: ctx.streaming,
        form: match ctx.form {
            c::PayloadForm::Canonical => t::PayloadForm::Canonical,
            c::PayloadForm::Native => t::PayloadForm::Native,
        },
        ingress_dialect: ctx.ingress_dialect.clone(),
        received_at_ms: ctx.received_at_ms,
        provider: provider(&ctx.provider),
    }
}

pub(crate) fn provider(p: &c::ProviderView) -> t::Provider {
    t::Provider {
        name: p.name.clone(),
        base_url: p.base_url.clone(),
        options: p.options_json.clone(),
    }
}

pub(crate) fn usage(u: t::Usage) -> c::Usage {
    c::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cached_input_tokens,
        cache_write_input_tokens: u.cache_write_input_tokens,
        reasoning_tokens: u.reasoning_tokens,
    }
}

pub(crate) fn class(k: t::ErrorClass) -> c::ErrorClass {
    match k {
        t::ErrorClass::BadRequest => c::ErrorClass::BadRequest,
        t::ErrorClass::Authentication => c::ErrorClass::Authentication,
        t::ErrorClass::PermissionDenied => c::ErrorClass::PermissionDenied,
        t::ErrorClass::NotFound => c::ErrorClass::NotFound,
        t::ErrorClass::ContextLength => c::ErrorClass::ContextLength,
        t::ErrorClass::ContentFilter => c::ErrorClass::ContentFilter,
        t::ErrorClass::RateLimited => c::ErrorClass::RateLimited,
        t::ErrorClass::Overloaded => c::ErrorClass::Overloaded,
        t::ErrorClass::Server => c::ErrorClass::Server,
        t::ErrorClass::Timeout => c::ErrorClass::Timeout,
        t::ErrorClass::Unsupported => c::ErrorClass::Unsupported,
    }
}

/// Messages and codes longer than this are cut: they end up in client error
/// bodies and logs.
const MAX_MESSAGE: usize = 2048;

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push('…');
    }
    s.retain(|ch| !ch.is_control() || ch == '\n');
    s
}

pub(crate) fn plugin_error(e: t::PluginError) -> c::ClassifiedError {
    c::ClassifiedError {
        class: class(e.class),
        retryable: e.retryable,
        status: e.status,
        code: e.code.map(|s| cut(s, 128)),
        param: e.param.map(|s| cut(s, 128)),
        message: cut(e.message, MAX_MESSAGE),
        retry_after_ms: e.retry_after_ms,
    }
}

pub(crate) fn frame(f: &c::Frame) -> a::Frame {
    a::Frame {
        event: f.event.clone(),
        data: f.data.clone(),
    }
}

/// Check that `text` is one JSON value of at most `limit` bytes.
pub(crate) fn json(text: String, what: &str, limit: usize) -> Result<String, PluginFault> {
    if text.len() > limit {
        return Err(PluginFault::OutputTooLarge {
            size: text.len(),
            limit,
        });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| PluginFault::InvalidOutput(format!("{what} is not JSON: {e}")))?;
    Ok(text)
}

/// Headers a plugin may not set: the host owns framing, routing and the
/// connection.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
];

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

fn valid_header_value(value: &str) -> bool {
    value.len() <= 8192 && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Convert and check an upstream request: method, URL on the provider's
/// origin, header names and values, size.
pub(crate) fn upstream_request(
    r: a::UpstreamRequest,
    base_url: &str,
    limit: usize,
) -> Result<c::UpstreamRequest, PluginFault> {
    let bad = |m: String| Err(PluginFault::InvalidOutput(m));
    let method = match r.method.as_str() {
        "GET" | "POST" => r.method,
        other => {
            return bad(format!(
                "method {:?} is not GET or POST",
                cut(other.to_string(), 32)
            ));
        }
    };
    let url = match url::Url::parse(&r.url) {
        Ok(u) => u,
        Err(e) => return bad(format!("url is not a URL: {e}")),
    };
    let base = match url::Url::parse(base_url) {
        Ok(b) => b,
        Err(e) => return bad(format!("provider base URL is not a URL: {e}")),
    };
    if url.origin() != base.origin() {
        return bad(format!(
            "url origin {} differs from the provider's {}",
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("url carries credentials".into());
    }
    let mut size = r.url.len();
    for (name, value) in &r.headers {
        if !valid_header_name(name) {
            return bad(format!(
                "header name {:?} is not a lower-case token",
                cut(name.clone(), 64)
            ));
        }
        if !valid_header_value(value) {
            return bad(format!("header {name} has an invalid value"));
        }
        if FORBIDDEN_HEADERS.contains(&name.as_str()) {
            return bad(format!("header {name} is reserved to the host"));
        }
        size += name.len() + value.len();
    }
    let credential = match r.credential {
        a::Credential::None => c::Credential::None,
        a::Credential::Bearer => c::Credential::Bearer,
        a::Credential::Header(h) => {
            if !valid_header_name(&h) || FORBIDDEN_HEADERS.contains(&h.as_str()) {
                return bad(format!("credential header {:?} is not allowed", cut(h, 64)));
            }
            c::Credential::Header(h)
        }
        a::Credential::Query(q) => {
            if q.is_empty()
                || q.len() > 64
                || !q
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return bad("credential query parameter name is invalid".into());
            }
            c::Credential::Query(q)
        }
    };
    let body = match r.body {
        a::RequestBody::Empty => c::RequestBody::Empty,
        a::RequestBody::Bytes(b) => {
            size += b.len();
            c::RequestBody::Bytes(b)
        }
        a::RequestBody::Forward(edits) => c::RequestBody::Forward(
            edits
                .into_iter()
                .map(|e| {
                    size += e.field.len() + e.value.as_ref().map_or(0, String::len);
                    c::JsonEdit {
                        field: e.field,
                        value: e.value,
                    }
                })
                .collect(),
        ),
    };
    if size > limit {
        return Err(PluginFault::OutputTooLarge { size, limit });
    }
    Ok(c::UpstreamRequest {
        method,
        url: r.url,
        headers: r.headers,
        body,
        credential,
        framing: match r.framing {
            a::Framing::Sse => c::Framing::Sse,
            a::Framing::Ndjson => c::Framing::Ndjson,
            a::Framing::Raw => c::Framing::Raw,
        },
    })
}

pub(crate) fn stream_items(
    items: Vec<a::StreamItem>,
    limit: usize,
) -> Result<Vec<c::StreamItem>, PluginFault> {
    let mut total = 0usize;
    items
        .into_iter()
        .map(|item| {
            Ok(match item {
                a::StreamItem::Done => c::StreamItem::Done,
                a::StreamItem::Usage(u) => c::StreamItem::Usage(usage(u)),
                a::StreamItem::Chunk(ch) => {
                    total += ch.data.len();
                    if total > limit {
                        return Err(PluginFault::OutputTooLarge { size: total, limit });
                    }
                    let data = json(ch.data, "stream chunk", limit)?;
                    if let Some(ev) = &ch.event
                        && (ev.len() > 128 || ev.bytes().any(|b| b == b'\n' || b == b'\r'))
                    {
                        return Err(PluginFault::InvalidOutput(
                            "stream event name is invalid".into(),
                        ));
                    }
                    c::StreamItem::Chunk(c::StreamChunk {
                        kind: match ch.kind {
                            a::ChunkKind::Content => c::ChunkKind::Content,
                            a::ChunkKind::Meta => c::ChunkKind::Meta,
                            a::ChunkKind::Usage => c::ChunkKind::Usage,
                        },
                        event: ch.event,
                        data,
                    })
                }
            })
        })
        .collect()
}

pub(crate) fn plugin_info(i: t::PluginInfo) -> Result<c::PluginInfo, String> {
    if !orch_core::config::is_valid_plugin_id(&i.id) {
        return Err(format!(
            "plugin id {:?} is invalid (lower-case letters, digits and '-', at most 64)",
            cut(i.id, 80)
        ));
    }
    let version = semver::Version::parse(&i.version).map_err(|e| {
        format!(
            "plugin version {:?} is not semver: {e}",
            cut(i.version.clone(), 80)
        )
    })?;
    let kind = match i.kind {
        t::PluginKind::Adapter => c::PluginKind::Adapter,
        t::PluginKind::Dialect => c::PluginKind::Dialect,
        t::PluginKind::Transformer => c::PluginKind::Transformer,
    };
    if kind != c::PluginKind::Transformer
        && (i.dialect.is_empty() || !orch_core::config::is_valid_plugin_id(&i.dialect))
    {
        return Err(format!("{kind} plugins must name the dialect they speak"));
    }
    if i.capabilities.len() > 64 || i.capabilities.iter().any(|c| c.len() > 64) {
        return Err("too many or too long capabilities".into());
    }
    Ok(c::PluginInfo {
        id: i.id,
        version,
        kind,
        dialect: i.dialect,
        capabilities: i.capabilities,
        description: cut(i.description, 512),
    })
}

pub(crate) fn operation(op: c::Operation) -> t::Operation {
    match op {
        c::Operation::Chat => t::Operation::Chat,
        c::Operation::CountTokens => t::Operation::CountTokens,
        c::Operation::Embeddings => t::Operation::Embeddings,
    }
}

fn class_back(k: c::ErrorClass) -> t::ErrorClass {
    match k {
        c::ErrorClass::BadRequest => t::ErrorClass::BadRequest,
        c::ErrorClass::Authentication => t::ErrorClass::Authentication,
        c::ErrorClass::PermissionDenied => t::ErrorClass::PermissionDenied,
        c::ErrorClass::NotFound => t::ErrorClass::NotFound,
        c::ErrorClass::ContextLength => t::ErrorClass::ContextLength,
        c::ErrorClass::ContentFilter => t::ErrorClass::ContentFilter,
        c::ErrorClass::RateLimited => t::ErrorClass::RateLimited,
        c::ErrorClass::Overloaded => t::ErrorClass::Overloaded,
        c::ErrorClass::Server => t::ErrorClass::Server,
        c::ErrorClass::Timeout => t::ErrorClass::Timeout,
        c::ErrorClass::Unsupported => t::ErrorClass::Unsupported,
    }
}

pub(crate) fn plugin_error_back(e: &c::ClassifiedError) -> t::PluginError {
    t::PluginError {
        class: class_back(e.class),
        retryable: e.retryable,
        status: e.status,
        code: e.code.clone(),
        param: e.param.clone(),
        message: e.message.clone(),
        retry_after_ms: e.retry_after_ms,
    }
}

pub(crate) fn usage_back(u: &c::Usage) -> t::Usage {
    t::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cached_input_tokens,
        cache_write_input_tokens: u.cache_write_input_tokens,
        reasoning_tokens: u.reasoning_tokens,
    }
}

/// Check a dialect's SSE events: bounded in total, event names on one line.
/// Data need not be JSON (a dialect may send `[DONE]`-style markers) but it
/// must be text without NUL.
pub(crate) fn sse_events(
    events: Vec<t::SseEvent>,
    limit: usize,
) -> Result<Vec<c::SseEvent>, PluginFault> {
    let mut total = 0usize;
    events
        .into_iter()
        .map(|e| {
            total += e.data.len();
            if total > limit {
                return Err(PluginFault::OutputTooLarge { size: total, limit });
            }
            if let Some(ev) = &e.event
                && (ev.is_empty() || ev.len() > 128 || ev.bytes().any(|b| b < 0x20))
            {
                return Err(PluginFault::InvalidOutput(
                    "stream event name is invalid".into(),
                ));
            }
            if e.data.contains('\0') {
                return Err(PluginFault::InvalidOutput(
                    "stream event data has NUL".into(),
                ));
            }
            Ok(c::SseEvent {
                event: e.event,
                data: e.data,
            })
        })
        .collect()
}
