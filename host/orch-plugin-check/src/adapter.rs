//! Replaying the golden adapter cases (`<dialect>/adapter/*.json`) through an
//! [`AdapterInstance`], as the adapters' own tests replay them natively:
//! `build_request` against `expect_request`, `parse_response` or
//! `classify_error` against `expect_response` / `expect_error`, and the
//! stream decoder over the recorded SSE against `expect_chunks`,
//! `expect_usage`, `expect_error` and `expect_done`.

use std::sync::Arc;

use orch_core::canonical::apply_edits;
use orch_core::contract::{
    ChunkKind, ClassifiedError, Credential, Frame, Operation, PayloadForm, ProviderView,
    RequestBody, RequestContext, StreamItem, UpstreamRequest, Usage,
};
use orch_plugin_host::{AdapterInstance, CallError, LoadedPlugin};
use serde_json::{Map, Value, json};

use crate::cases::{Case, Kind, Source};
use crate::diff::{diff, sse_frames};
use crate::{CheckResult, call_error, class_name, fault};

/// Run the adapter checks: every case of the plugin's dialect, or the smoke
/// set for an `openai` adapter without golden cases.
pub(crate) async fn run(plugin: &Arc<LoadedPlugin>, source: &Source, out: &mut Vec<CheckResult>) {
    let dialect = plugin.info.dialect.as_str();
    let files = match source.cases(dialect, Kind::Adapter) {
        Ok(files) => files,
        Err(reason) => {
            out.push(CheckResult::fail(format!("adapter/{dialect}"), reason));
            return;
        }
    };
    if files.is_empty() {
        if dialect == "openai" {
            crate::smoke::run(plugin, out).await;
        } else {
            out.push(CheckResult::fail(
                format!("adapter/{dialect}"),
                format!(
                    "no adapter cases for dialect `{dialect}` in {} (cases exist for: {}); nothing could be verified",
                    source.describe(),
                    source.dialects(Kind::Adapter).join(", ")
                ),
            ));
        }
        return;
    }
    for file in files {
        let name = format!("adapter/{dialect}/{}", file.name);
        let outcome = match file.doc {
            Err(reason) => Err(reason),
            Ok(doc) => {
                let case = Case {
                    name: file.name,
                    doc,
                };
                replay(plugin, &case, dialect).await.map(|()| None)
            }
        };
        out.push(CheckResult::from_outcome(name, outcome));
    }
}

/// Replay one case on one fresh instance, as one attempt of the gateway.
async fn replay(plugin: &Arc<LoadedPlugin>, case: &Case, dialect: &str) -> Result<(), String> {
    let ctx = request_context(case, dialect)?;
    let mut instance = plugin
        .adapter(&ctx)
        .await
        .map_err(|f| fault("instantiate", &f))?;
    let payload = match ctx.form {
        PayloadForm::Canonical => case.opt("canonical_request"),
        PayloadForm::Native => case.opt("native_request"),
    };
    let mut checked = false;
    match (payload, case.opt("expect_request")) {
        (Some(payload), expect) => {
            let payload = payload.to_string();
            let request = instance
                .build_request(&payload)
                .await
                .map_err(|e| call_error("build_request", &e))?;
            if let Some(expect) = expect {
                compare_request(&request, &payload, expect)?;
                checked = true;
            }
        }
        (None, Some(_)) => {
            return Err(format!(
                "case file: `expect_request` without a {} payload",
                match ctx.form {
                    PayloadForm::Canonical => "`canonical_request`",
                    PayloadForm::Native => "`native_request`",
                }
            ));
        }
        (None, None) => {}
    }
    let status = match case.opt("upstream_status") {
        None => 200,
        Some(v) => v
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| format!("case file: `upstream_status` {v} is not a status"))?,
    };
    let headers = upstream_headers(case)?;
    if let Some(body) = case.opt("upstream_body") {
        let bytes = match body {
            Value::String(text) => text.clone().into_bytes(),
            // Gemini pretty-prints its non-streaming answers.
            other if dialect == "gemini" => serde_json::to_vec_pretty(other).unwrap_or_default(),
            other => other.to_string().into_bytes(),
        };
        answer(&mut instance, case, status, &headers, &bytes).await?;
        checked = true;
    }
    if let Some(stream) = case.opt("upstream_stream") {
        let text = stream
            .as_str()
            .ok_or("case file: `upstream_stream` is not SSE text")?;
        replay_stream(&mut instance, case, status, &headers, text).await?;
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(
            "case file: checks nothing (no `expect_request`, `upstream_body` or `upstream_stream`)"
                .into(),
        )
    }
}

/// The request context a case describes in `context` (format in the
/// conformance README). `dialect` is the adapter's own dialect: the client's
/// when `context.form` is `native`.
pub(crate) fn request_context(case: &Case, dialect: &str) -> Result<RequestContext, String> {
    let context = case.field("context")?;
    let text = |key: &str| context.get(key).and_then(Value::as_str);
    let required = |key: &str| {
        text(key)
            .map(str::to_owned)
            .ok_or_else(|| format!("case file: missing `context.{key}`"))
    };
    let form = match text("form") {
        None | Some("canonical") => PayloadForm::Canonical,
        Some("native") => PayloadForm::Native,
        Some(other) => return Err(format!("case file: unknown form `{other}`")),
    };
    let operation = match text("operation") {
        None | Some("chat") => Operation::Chat,
        Some("count-tokens") => Operation::CountTokens,
        Some("embeddings") => Operation::Embeddings,
        Some(other) => return Err(format!("case file: unknown operation `{other}`")),
    };
    let provider = context
        .get("provider")
        .ok_or("case file: missing `context.provider`")?;
    let base_url = provider
        .get("base_url")
        .and_then(Value::as_str)
        .ok_or("case file: missing `context.provider.base_url`")?;
    Ok(RequestContext {
        request_id: text("request_id")
            .map_or_else(|| format!("conformance-{}", case.name), str::to_owned),
        operation,
        requested_model: required("requested_model")?,
        upstream_model: required("upstream_model")?,
        streaming: context
            .get("streaming")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        form,
        ingress_dialect: match form {
            PayloadForm::Native => dialect,
            PayloadForm::Canonical => "openai",
        }
        .to_owned(),
        received_at_ms: context
            .get("received_at_ms")
            .and_then(Value::as_u64)
            .unwrap_or(1_750_000_000_000),
        provider: ProviderView {
            name: "conformance".to_owned(),
            base_url: base_url.to_owned(),
            options_json: provider
                .get("options")
                .filter(|o| !o.is_null())
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string(),
        },
    })
}

fn upstream_headers(case: &Case) -> Result<Vec<(String, String)>, String> {
    let Some(headers) = case.opt("upstream_headers") else {
        return Ok(Vec::new());
    };
    let headers = headers
        .as_object()
        .ok_or("case file: `upstream_headers` is not an object")?;
    headers
        .iter()
        .map(|(name, value)| {
            value
                .as_str()
                .map(|v| (name.to_ascii_lowercase(), v.to_owned()))
                .ok_or_else(|| format!("case file: header `{name}` is not a string"))
        })
        .collect()
}

/// A credential placement as cases write it: `"none"`, `"bearer"`,
/// `{"header": name}` or `{"query": name}`.
pub(crate) fn credential_json(credential: &Credential) -> Value {
    match credential {
        Credential::None => json!("none"),
        Credential::Bearer => json!("bearer"),
        Credential::Header(name) => json!({"header": name}),
        Credential::Query(name) => json!({"query": name}),
    }
}

/// A usage report as cases write it.
pub(crate) fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_input_tokens": usage.cache_write_input_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    })
}

/// The body the host would send: a bytes body as JSON, a forwarded body as
/// the payload with the plugin's edits applied, null when empty.
pub(crate) fn sent_body(payload: &str, body: &RequestBody) -> Result<Value, String> {
    match body {
        RequestBody::Empty => Ok(Value::Null),
        RequestBody::Bytes(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("build_request: the request body is not JSON: {e}")),
        RequestBody::Forward(edits) => {
            let edited = apply_edits(payload.as_bytes(), edits)
                .map_err(|e| format!("build_request: the host cannot apply the edits: {e}"))?;
            serde_json::from_slice(&edited)
                .map_err(|e| format!("build_request: the edited body is not JSON: {e}"))
        }
    }
}

fn compare_request(request: &UpstreamRequest, payload: &str, expect: &Value) -> Result<(), String> {
    if Some(request.method.as_str()) != expect["method"].as_str() {
        return Err(format!(
            "request method: expected {}, got {}",
            expect["method"], request.method
        ));
    }
    if Some(request.url.as_str()) != expect["url"].as_str() {
        return Err(format!(
            "request url: expected {}, got {}",
            expect["url"], request.url
        ));
    }
    for (name, value) in expect["headers"].as_object().into_iter().flatten() {
        let actual = request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        if actual != value.as_str() {
            return Err(format!(
                "request header {name}: expected {value}, got {}",
                actual.map_or_else(|| "none".to_owned(), |v| format!("{v:?}"))
            ));
        }
    }
    let credential = credential_json(&request.credential);
    if let Some(d) = diff(&credential, &expect["credential"]) {
        return Err(format!("request credential differs at {d}"));
    }
    let body = sent_body(payload, &request.body)?;
    if let Some(d) = diff(&body, &expect["body"]) {
        return Err(format!("request body differs at {d}"));
    }
    Ok(())
}

/// A non-streaming answer: 2xx to `parse_response`, anything else to
/// `classify_error`.
async fn answer(
    instance: &mut AdapterInstance,
    case: &Case,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), String> {
    if !(200..300).contains(&status) {
        let error = instance
            .classify_error(status, headers, body)
            .await
            .map_err(|f| fault("classify_error", &f))?;
        return compare_error(case, "classify_error", &error);
    }
    match instance.parse_response(status, headers, body).await {
        Ok(parsed) => {
            if case.opt("expect_error").is_some() {
                return Err("parse_response succeeded, but the case expects an error".into());
            }
            let actual: Value = serde_json::from_str(&parsed.body)
                .map_err(|e| format!("parse_response: the body is not JSON: {e}"))?;
            let expected = case.field("expect_response")?;
            if let Some(d) = diff(&actual, expected) {
                return Err(format!("response differs at {d}"));
            }
            compare_usage(case, parsed.usage)
        }
        Err(CallError::Plugin(error)) => compare_error(case, "parse_response", &error),
        Err(CallError::Fault(f)) => Err(fault("parse_response", &f)),
    }
}

async fn replay_stream(
    instance: &mut AdapterInstance,
    case: &Case,
    status: u16,
    headers: &[(String, String)],
    text: &str,
) -> Result<(), String> {
    instance
        .start_stream(status, headers)
        .await
        .map_err(|f| fault("stream decoder", &f))?;
    let mut items = Vec::new();
    let mut error = None;
    for (i, frame) in sse_frames(text).into_iter().enumerate() {
        let frame = Frame {
            event: frame.event,
            data: frame.data.into_bytes(),
        };
        match instance.push(&frame).await {
            Ok(more) => items.extend(more),
            Err(CallError::Plugin(e)) => {
                error = Some(e);
                break;
            }
            Err(CallError::Fault(f)) => return Err(fault(&format!("push of frame {i}"), &f)),
        }
    }
    if error.is_none() {
        match instance.finish().await {
            Ok(more) => items.extend(more),
            Err(CallError::Plugin(e)) => error = Some(e),
            Err(CallError::Fault(f)) => return Err(fault("finish", &f)),
        }
    }
    let chunks = chunk_docs(&items)?;
    if let Some(expected) = case.opt("expect_chunks")
        && let Some(d) = diff(&Value::Array(chunks), expected)
    {
        return Err(format!("chunks differ at {d}"));
    }
    let done = items.iter().any(|item| matches!(item, StreamItem::Done));
    let expect_done = case
        .opt("expect_done")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if done != expect_done {
        return Err(if expect_done {
            "the decoder never reported the end of the stream (done)".into()
        } else {
            "the decoder reported a normal end (done), but the case expects none".into()
        });
    }
    let usage = items.iter().rev().find_map(|item| match item {
        StreamItem::Usage(usage) => Some(*usage),
        _ => None,
    });
    compare_usage(case, usage)?;
    match error {
        Some(e) => compare_error(case, "the stream decoder", &e),
        None if case.opt("expect_error").is_some() => {
            Err("the case expects a stream error, the decoder reported none".into())
        }
        None => Ok(()),
    }
}

/// Chunks as cases write them: `{kind, event, data}`; each data must be one
/// line of JSON.
pub(crate) fn chunk_docs(items: &[StreamItem]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for item in items {
        let StreamItem::Chunk(chunk) = item else {
            continue;
        };
        if chunk.data.contains('\n') {
            return Err(format!(
                "chunk {} spans several lines; chunk data must be one line of JSON",
                out.len()
            ));
        }
        let data: Value = serde_json::from_str(&chunk.data)
            .map_err(|e| format!("chunk {} is not JSON: {e}", out.len()))?;
        let kind = match chunk.kind {
            ChunkKind::Content => "content",
            ChunkKind::Meta => "meta",
            ChunkKind::Usage => "usage",
        };
        out.push(json!({"kind": kind, "event": chunk.event, "data": data}));
    }
    Ok(out)
}

fn compare_usage(case: &Case, usage: Option<Usage>) -> Result<(), String> {
    let Some(expected) = case.opt("expect_usage") else {
        return Ok(());
    };
    let actual = usage.as_ref().map_or(Value::Null, usage_json);
    match diff(&actual, expected) {
        Some(d) => Err(format!("usage differs at {d}")),
        None => Ok(()),
    }
}

/// Compare an error with `expect_error`, only the fields it names.
fn compare_error(case: &Case, call: &str, error: &ClassifiedError) -> Result<(), String> {
    let Some(Value::Object(expected)) = case.opt("expect_error") else {
        return Err(format!(
            "{call} returned an unexpected error: {}",
            crate::error_text(error)
        ));
    };
    let all = json!({
        "class": class_name(error),
        "retryable": error.retryable,
        "status": error.status,
        "code": error.code,
        "param": error.param,
        "message": error.message,
        "retry_after_ms": error.retry_after_ms,
    });
    let actual: Map<String, Value> = expected
        .keys()
        .map(|key| (key.clone(), all.get(key).cloned().unwrap_or(Value::Null)))
        .collect();
    match diff(&Value::Object(actual), &Value::Object(expected.clone())) {
        Some(d) => Err(format!("error differs at {d}")),
        None => Ok(()),
    }
}
