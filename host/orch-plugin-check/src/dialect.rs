//! Replaying the golden dialect cases (`<dialect>/dialect/*.json`) through a
//! [`DialectInstance`], as the dialect plugins' own tests replay them:
//! `decode_request` against `expect_decoded` / `expect_decode_error`,
//! `encode_response` against `expect_encoded`, a stream encoder against
//! `expect_events`, and `abort` against `expect_abort_events`. Each part
//! runs on a fresh instance.

use std::sync::Arc;

use orch_core::contract::{
    ClassifiedError, EgressContext, ErrorClass, IngressRequest, Operation, SseEvent, Usage,
};
use orch_plugin_host::{CallError, DialectInstance, LoadedPlugin};
use serde_json::{Value, json};

use crate::cases::{Case, Kind, Source};
use crate::diff::diff;
use crate::{CheckResult, call_error, class_name, fault};

/// Run every dialect case of the plugin's dialect.
pub(crate) async fn run(plugin: &Arc<LoadedPlugin>, source: &Source, out: &mut Vec<CheckResult>) {
    let dialect = plugin.info.dialect.as_str();
    let files = match source.cases(dialect, Kind::Dialect) {
        Ok(files) => files,
        Err(reason) => {
            out.push(CheckResult::fail(format!("dialect/{dialect}"), reason));
            return;
        }
    };
    if files.is_empty() {
        let native = if dialect == "openai" {
            "; OpenAI ingress is native to the gateway, a dialect plugin for it is never used"
        } else {
            ""
        };
        out.push(CheckResult::fail(
            format!("dialect/{dialect}"),
            format!(
                "no dialect cases for dialect `{dialect}` in {} (cases exist for: {}){native}; nothing could be verified",
                source.describe(),
                source.dialects(Kind::Dialect).join(", ")
            ),
        ));
        return;
    }
    for file in files {
        let name = format!("dialect/{dialect}/{}", file.name);
        let outcome = match file.doc {
            Err(reason) => Err(reason),
            Ok(doc) => {
                let case = Case {
                    name: file.name,
                    doc,
                };
                replay(plugin, &case).await.map(|()| None)
            }
        };
        out.push(CheckResult::from_outcome(name, outcome));
    }
}

async fn instance(plugin: &Arc<LoadedPlugin>, case: &Case) -> Result<DialectInstance, String> {
    plugin
        .dialect(&format!("conformance-{}", case.name))
        .await
        .map_err(|f| fault("instantiate", &f))
}

async fn replay(plugin: &Arc<LoadedPlugin>, case: &Case) -> Result<(), String> {
    let mut checked = false;
    if let Some(ingress) = case.opt("ingress") {
        decode(plugin, case, ingress).await?;
        checked = true;
    }
    if let Some(response) = case.opt("canonical_response") {
        encode(plugin, case, response).await?;
        checked = true;
    }
    if case.opt("canonical_chunks").is_some() {
        stream(plugin, case).await?;
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(
            "case file: checks nothing (no `ingress`, `canonical_response` or `canonical_chunks`)"
                .into(),
        )
    }
}

fn operation(name: Option<&str>) -> Result<Operation, String> {
    match name {
        None | Some("chat") => Ok(Operation::Chat),
        Some("count-tokens") => Ok(Operation::CountTokens),
        Some("embeddings") => Ok(Operation::Embeddings),
        Some(other) => Err(format!("case file: unknown operation `{other}`")),
    }
}

async fn decode(plugin: &Arc<LoadedPlugin>, case: &Case, ingress: &Value) -> Result<(), String> {
    let request = IngressRequest {
        operation: operation(ingress.get("operation").and_then(Value::as_str))?,
        path_model: ingress
            .get("path_model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        endpoint_streams: ingress.get("endpoint_streams").and_then(Value::as_bool),
        headers: ingress
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        // As serde_json writes it (keys sorted): cases must not depend on the
        // client body's key order.
        body: ingress
            .get("body")
            .map(Value::to_string)
            .unwrap_or_default()
            .into_bytes(),
    };
    let mut instance = instance(plugin, case).await?;
    let decoded = instance.decode_request(&request).await;
    match (
        case.opt("expect_decoded"),
        case.opt("expect_decode_error"),
        decoded,
    ) {
        (Some(expected), None, Ok(decoded)) => {
            let body: Value = serde_json::from_str(&decoded.body)
                .map_err(|e| format!("decode_request: the body is not JSON: {e}"))?;
            let actual = json!({
                "model": decoded.model,
                "streaming": decoded.streaming,
                "body": body,
            });
            match diff(&actual, expected) {
                Some(d) => Err(format!("decoded request differs at {d}")),
                None => Ok(()),
            }
        }
        (Some(_), None, Err(e)) => Err(call_error("decode_request", &e)),
        (None, Some(expected), Err(CallError::Plugin(e))) => {
            let actual = json!({"class": class_name(&e), "param": e.param});
            match diff(&actual, expected) {
                Some(d) => Err(format!("decode error differs at {d}")),
                None => Ok(()),
            }
        }
        (None, Some(_), Err(CallError::Fault(f))) => Err(fault("decode_request", &f)),
        (None, Some(_), Ok(_)) => {
            Err("decode_request succeeded, but the case expects a decode error".into())
        }
        _ => {
            Err("case file: needs exactly one of `expect_decoded` and `expect_decode_error`".into())
        }
    }
}

fn context(case: &Case) -> EgressContext {
    let ctx = case.opt("context").cloned().unwrap_or_else(|| json!({}));
    EgressContext {
        request_id: ctx
            .get("request_id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("conformance-{}", case.name), str::to_owned),
        requested_model: ctx
            .get("requested_model")
            .and_then(Value::as_str)
            .unwrap_or("conformance-model")
            .to_owned(),
        received_at_ms: ctx
            .get("received_at_ms")
            .and_then(Value::as_u64)
            .unwrap_or(1_750_000_000_000),
    }
}

fn count(value: &Value, key: &str) -> Result<Option<u32>, String> {
    match value.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("case file: usage `{key}` {v} is not a count")),
    }
}

/// `usage` / `finish_usage`: missing token counts are 0, missing optional
/// counts absent.
fn usage(case: &Case, key: &str) -> Result<Option<Usage>, String> {
    let Some(value) = case.opt(key) else {
        return Ok(None);
    };
    Ok(Some(Usage {
        input_tokens: count(value, "input_tokens")?.unwrap_or(0),
        output_tokens: count(value, "output_tokens")?.unwrap_or(0),
        cached_input_tokens: count(value, "cached_input_tokens")?,
        cache_write_input_tokens: count(value, "cache_write_input_tokens")?,
        reasoning_tokens: count(value, "reasoning_tokens")?,
    }))
}

async fn encode(plugin: &Arc<LoadedPlugin>, case: &Case, response: &Value) -> Result<(), String> {
    let expected = case.field("expect_encoded")?;
    let usage = usage(case, "usage")?;
    let mut instance = instance(plugin, case).await?;
    let encoded = instance
        .encode_response(&context(case), &response.to_string(), usage)
        .await
        .map_err(|e| call_error("encode_response", &e))?;
    let actual = one_line_json("encode_response", &encoded)?;
    match diff(&actual, expected) {
        Some(d) => Err(format!("encoded response differs at {d}")),
        None => Ok(()),
    }
}

fn one_line_json(what: &str, text: &str) -> Result<Value, String> {
    if text.contains('\n') {
        return Err(format!(
            "{what}: the output spans several lines; it must be one line of JSON"
        ));
    }
    serde_json::from_str(text).map_err(|e| format!("{what}: the output is not JSON: {e}"))
}

fn events_json(what: &str, events: &[SseEvent]) -> Result<Value, String> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let data = one_line_json(&format!("{what}: event {i}"), &event.data)?;
            Ok(json!({"event": event.event, "data": data}))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Value::Array)
}

/// Push every chunk; without `abort_error`, `finish` and compare with
/// `expect_events`; with it, compare the pushes' events with `expect_events`
/// (when given), then `abort` and compare with `expect_abort_events`.
async fn stream(plugin: &Arc<LoadedPlugin>, case: &Case) -> Result<(), String> {
    let chunks = case
        .field("canonical_chunks")?
        .as_array()
        .ok_or("case file: `canonical_chunks` is not a list")?;
    let abort = case.opt("abort_error").map(abort_error).transpose()?;
    let finish_usage = usage(case, "finish_usage")?;
    let mut instance = instance(plugin, case).await?;
    instance
        .start_stream(&context(case))
        .await
        .map_err(|f| fault("stream encoder", &f))?;
    let mut events = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let more = instance
            .push(&chunk.to_string())
            .await
            .map_err(|e| call_error(&format!("push of chunk {i}"), &e))?;
        events.extend(more);
    }
    let Some(error) = abort else {
        let more = instance
            .finish(finish_usage)
            .await
            .map_err(|e| call_error("finish", &e))?;
        events.extend(more);
        let expected = case.field("expect_events")?;
        let actual = events_json("stream", &events)?;
        return match diff(&actual, expected) {
            Some(d) => Err(format!("stream events differ at {d}")),
            None => Ok(()),
        };
    };
    if let Some(expected) = case.opt("expect_events") {
        let actual = events_json("stream", &events)?;
        if let Some(d) = diff(&actual, expected) {
            return Err(format!("stream events before the abort differ at {d}"));
        }
    }
    let expected = case.field("expect_abort_events")?;
    let aborted = instance
        .abort(&error)
        .await
        .map_err(|f| fault("abort", &f))?;
    let actual = events_json("abort", &aborted)?;
    match diff(&actual, expected) {
        Some(d) => Err(format!("abort events differ at {d}")),
        None => Ok(()),
    }
}

const CLASSES: [ErrorClass; 11] = [
    ErrorClass::BadRequest,
    ErrorClass::Authentication,
    ErrorClass::PermissionDenied,
    ErrorClass::NotFound,
    ErrorClass::ContextLength,
    ErrorClass::ContentFilter,
    ErrorClass::RateLimited,
    ErrorClass::Overloaded,
    ErrorClass::Server,
    ErrorClass::Timeout,
    ErrorClass::Unsupported,
];

/// `abort_error`: `{ class, message, retryable, status }`, optionally
/// `code`, `param`, `retry_after_ms`.
fn abort_error(value: &Value) -> Result<ClassifiedError, String> {
    let name = value
        .get("class")
        .and_then(Value::as_str)
        .ok_or("case file: `abort_error.class` is missing")?;
    let class = CLASSES
        .into_iter()
        .find(|c| c.as_str().replace('_', "-") == name)
        .ok_or_else(|| format!("case file: unknown error class `{name}`"))?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let number = |key: &str| value.get(key).and_then(Value::as_u64);
    Ok(ClassifiedError {
        class,
        retryable: value
            .get("retryable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: number("status").and_then(|s| u16::try_from(s).ok()),
        code: text("code"),
        param: text("param"),
        message: text("message").unwrap_or_default(),
        retry_after_ms: number("retry_after_ms").and_then(|n| u32::try_from(n).ok()),
    })
}
