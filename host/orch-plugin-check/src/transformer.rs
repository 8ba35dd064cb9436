//! Built-in cases for transformers (there are no golden transformer files
//! yet), run through a [`TransformerInstance`], one fresh instance per hook
//! as in the gateway:
//!
//! * `transformer/check_config`: `check_config("{}")`; accepting and
//!   refusing both pass (the verdict is reported); only a fault fails;
//! * `transformer/on_request`: a canonical request with a system and a user
//!   message must pass, be replaced by a JSON object that still has `model`
//!   and `messages`, or be rejected with a 4xx/5xx status;
//! * `transformer/on_response`: a canonical `chat.completion` must pass, be
//!   replaced by a JSON object with `choices`, or be rejected;
//! * `transformer/stream`: a role chunk, three content chunks and a finish
//!   chunk through a stream filter, then `on_end`: every output must be a
//!   JSON object, and when every output is one of the input chunks
//!   unchanged, the concatenated content must equal the input's.
//!
//! With a configuration given (`--config`), `check_config` must accept it
//! and the hooks run with it. Without one, `{}` is tried; a plugin that
//! refuses it skips the hook checks: they need a configuration only its
//! operator knows.

use std::sync::Arc;

use orch_core::contract::{TransformAction, TransformContext, Usage};
use orch_plugin_host::{LoadedPlugin, TransformerInstance};
use serde_json::{Value, json};

use crate::diff::short;
use crate::{CheckResult, call_error, fault};

const MODEL: &str = "gpt-4o-mini";

/// Run the transformer checks.
pub(crate) async fn run(
    plugin: &Arc<LoadedPlugin>,
    given: Option<&str>,
    out: &mut Vec<CheckResult>,
) {
    let config = given.unwrap_or("{}");
    match check_config(plugin, config).await {
        Err(reason) => {
            out.push(CheckResult::fail("transformer/check_config", reason));
            return;
        }
        Ok(Some(refusal)) if given.is_some() => {
            out.push(CheckResult::fail(
                "transformer/check_config",
                format!("refuses the given configuration: {refusal}"),
            ));
            return;
        }
        Ok(Some(refusal)) => {
            out.push(CheckResult::pass(
                "transformer/check_config",
                Some(format!(
                    "refuses `{{}}` ({refusal}); the hook checks need a configuration and were skipped"
                )),
            ));
            return;
        }
        Ok(None) => out.push(CheckResult::pass(
            "transformer/check_config",
            Some(format!("accepts `{config}`")),
        )),
    }
    out.push(CheckResult::from_outcome(
        "transformer/on_request",
        on_request(plugin, config).await,
    ));
    out.push(CheckResult::from_outcome(
        "transformer/on_response",
        on_response(plugin, config).await,
    ));
    out.push(CheckResult::from_outcome(
        "transformer/stream",
        stream(plugin, config).await,
    ));
}

async fn instance(plugin: &Arc<LoadedPlugin>, hook: &str) -> Result<TransformerInstance, String> {
    plugin
        .transformer(&format!("plugin-check-{hook}"))
        .await
        .map_err(|f| fault("instantiate", &f))
}

fn context(hook: &str, streaming: bool, config: &str) -> TransformContext {
    TransformContext {
        request_id: format!("plugin-check-{hook}"),
        ingress_dialect: "openai".to_owned(),
        requested_model: MODEL.to_owned(),
        streaming,
        client_key_id: None,
        config: config.to_owned(),
    }
}

/// `Ok(None)` when `{}` is accepted, `Ok(Some(message))` when refused.
async fn check_config(plugin: &Arc<LoadedPlugin>, config: &str) -> Result<Option<String>, String> {
    let mut instance = instance(plugin, "check-config").await?;
    match instance.check_config(config).await {
        Ok(()) => Ok(None),
        Err(orch_plugin_host::CallError::Plugin(e)) => Ok(Some(e.message)),
        Err(e) => Err(call_error("check_config", &e)),
    }
}

/// A verdict for the report, or why the action is not acceptable.
fn action(
    hook: &str,
    action: TransformAction,
    required: &[&str],
) -> Result<Option<String>, String> {
    match action {
        TransformAction::Pass => Ok(Some("passes".to_owned())),
        TransformAction::Reject(r) => Ok(Some(format!(
            "rejects with {} {}: {}",
            r.status, r.code, r.message
        ))),
        TransformAction::Replace(text) => {
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{hook}: the replacement is not JSON: {e}"))?;
            let Value::Object(object) = &value else {
                return Err(format!(
                    "{hook}: the replacement must be a JSON object, got {}",
                    short(&value)
                ));
            };
            if let Some(missing) = required.iter().find(|k| !object.contains_key(**k)) {
                return Err(format!(
                    "{hook}: the replacement has no `{missing}`: {}",
                    short(&value)
                ));
            }
            Ok(Some("replaces it".to_owned()))
        }
    }
}

async fn on_request(plugin: &Arc<LoadedPlugin>, config: &str) -> Result<Option<String>, String> {
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "max_tokens": 64,
        "temperature": 0.3
    });
    let mut instance = instance(plugin, "on-request").await?;
    let out = instance
        .on_request(&context("on-request", false, config), &body.to_string())
        .await
        .map_err(|e| call_error("on_request", &e))?;
    action("on_request", out, &["model", "messages"])
}

async fn on_response(plugin: &Arc<LoadedPlugin>, config: &str) -> Result<Option<String>, String> {
    let body = json!({
        "id": "chatcmpl-plugin-check",
        "object": "chat.completion",
        "created": 1_750_000_001,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32}
    });
    let usage = Usage {
        input_tokens: 24,
        output_tokens: 8,
        ..Usage::default()
    };
    let mut instance = instance(plugin, "on-response").await?;
    let out = instance
        .on_response(
            &context("on-response", false, config),
            &body.to_string(),
            Some(usage),
        )
        .await
        .map_err(|e| call_error("on_response", &e))?;
    action("on_response", out, &["choices"])
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-plugin-check",
        "object": "chat.completion.chunk",
        "created": 1_750_000_002,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

/// The concatenated `choices[*].delta.content` of chunks.
fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c.get("choices").and_then(Value::as_array))
        .flatten()
        .filter_map(|choice| choice.pointer("/delta/content").and_then(Value::as_str))
        .collect()
}

async fn stream(plugin: &Arc<LoadedPlugin>, config: &str) -> Result<Option<String>, String> {
    let inputs = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "The capital"}), None),
        chunk(json!({"content": " of France"}), None),
        chunk(json!({"content": " is Paris."}), None),
        chunk(json!({}), Some("stop")),
    ];
    let mut instance = instance(plugin, "stream").await?;
    instance
        .start_filter(&context("stream", true, config))
        .await
        .map_err(|f| fault("stream filter", &f))?;
    let mut outputs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let more = instance
            .on_chunk(&input.to_string())
            .await
            .map_err(|e| call_error(&format!("on_chunk of chunk {i}"), &e))?;
        outputs.extend(more);
    }
    let usage = Usage {
        input_tokens: 24,
        output_tokens: 8,
        ..Usage::default()
    };
    let more = instance
        .on_end(Some(usage))
        .await
        .map_err(|e| call_error("on_end", &e))?;
    outputs.extend(more);
    let mut values = Vec::with_capacity(outputs.len());
    for (i, text) in outputs.iter().enumerate() {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("stream: output chunk {i} is not JSON: {e}"))?;
        if !value.is_object() {
            return Err(format!(
                "stream: output chunk {i} must be a JSON object, got {}",
                short(&value)
            ));
        }
        values.push(value);
    }
    let unchanged = values.iter().all(|v| inputs.contains(v));
    let (input_text, output_text) = (content(&inputs), content(&values));
    if unchanged && output_text != input_text {
        return Err(format!(
            "stream: the filter forwards chunks unchanged but the content is {output_text:?}, expected {input_text:?} (a chunk was dropped or repeated)"
        ));
    }
    Ok(Some(format!(
        "{} chunks in, {} out, {}",
        inputs.len(),
        values.len(),
        if unchanged {
            "passed through unchanged".to_owned()
        } else {
            format!("rewritten, content {output_text:?}")
        }
    )))
}
