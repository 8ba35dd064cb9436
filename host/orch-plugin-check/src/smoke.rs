//! The built-in smoke set for `openai`-dialect adapters, which have no golden
//! adapter cases yet: a canonical text request built (plain and streaming),
//! a recorded OpenAI `chat.completion` parsed, and a short recorded OpenAI
//! SSE stream decoded. Each check runs on its own fresh instance, so a fault
//! in one surface does not hide the others.

use std::sync::Arc;

use orch_core::contract::{
    ChunkKind, Frame, Operation, PayloadForm, ProviderView, RequestContext, StreamItem,
};
use orch_plugin_host::LoadedPlugin;
use serde_json::{Value, json};

use crate::adapter::{chunk_docs, credential_json, sent_body};
use crate::diff::{short, sse_frames};
use crate::{CheckResult, call_error, fault};

const BASE_URL: &str = "https://api.openai.com/v1";
const REQUESTED_MODEL: &str = "plugin-check";
const UPSTREAM_MODEL: &str = "gpt-4o-mini";

/// The text of the recorded answer.
const ANSWER: &str = "Hello! How can I help you today?";

/// A recorded non-streaming answer of the Chat Completions API.
const RESPONSE: &str = r#"{"id":"chatcmpl-BkQ3mZ7x9YtR2cV4pL8nE1aW6sD0f","object":"chat.completion","created":1750000001,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":9,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_34a54ae93c"}"#;

/// A recorded stream of the Chat Completions API with
/// `stream_options.include_usage`: a role chunk, four content chunks, a
/// finish chunk, a usage chunk and `[DONE]`.
const STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-BkQ4\",\"object\":\"chat.completion.chunk\",\"created\":1750000002,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BkQ4\",\"object\":\"chat.completion.chunk\",\"created\":1750000002,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BkQ4\",\"object\":\"chat.completion.chunk\",\"created\":1750000002,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BkQ4\",\"object\":\"chat.completion.chunk\",\"created\":1750000002,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" How can I\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BkQ4\",\"object\":\"chat.completion.chunk\",\"created\":1750000002,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" help?\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BkQ4\",\"object\":\"chat.completion.chunk\",\"created\":1750000002,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BkQ4\",\"object\":\"chat.completion.chunk\",\"created\":1750000002,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":6,\"total_tokens\":27,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

/// The text the recorded stream carries.
const STREAM_TEXT: &str = "Hello! How can I help?";

/// Run the smoke checks.
pub(crate) async fn run(plugin: &Arc<LoadedPlugin>, out: &mut Vec<CheckResult>) {
    out.push(CheckResult::from_outcome(
        "adapter/openai/smoke/request",
        request(plugin).await,
    ));
    out.push(CheckResult::from_outcome(
        "adapter/openai/smoke/response",
        response(plugin).await,
    ));
    out.push(CheckResult::from_outcome(
        "adapter/openai/smoke/stream",
        stream(plugin).await,
    ));
}

fn context(streaming: bool) -> RequestContext {
    RequestContext {
        request_id: format!(
            "plugin-check-smoke-{}",
            if streaming { "stream" } else { "plain" }
        ),
        operation: Operation::Chat,
        requested_model: REQUESTED_MODEL.to_owned(),
        upstream_model: UPSTREAM_MODEL.to_owned(),
        streaming,
        form: PayloadForm::Canonical,
        ingress_dialect: "openai".to_owned(),
        received_at_ms: 1_750_000_000_000,
        provider: ProviderView {
            name: "plugin-check".to_owned(),
            base_url: BASE_URL.to_owned(),
            options_json: "{}".to_owned(),
        },
    }
}

fn canonical_request(streaming: bool) -> Value {
    let mut request = json!({
        "model": REQUESTED_MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello in one short sentence."}
        ],
        "max_tokens": 64,
        "temperature": 0.2
    });
    if streaming && let Some(object) = request.as_object_mut() {
        object.insert("stream".to_owned(), json!(true));
    }
    request
}

/// Build the request, plain and streaming: a URL on the provider's origin,
/// a JSON body with the upstream model and the messages, `stream: true`
/// exactly when streaming.
async fn request(plugin: &Arc<LoadedPlugin>) -> Result<Option<String>, String> {
    let mut summary = String::new();
    for streaming in [false, true] {
        let call = if streaming {
            "build_request (streaming)"
        } else {
            "build_request"
        };
        let ctx = context(streaming);
        let mut instance = plugin
            .adapter(&ctx)
            .await
            .map_err(|f| fault("instantiate", &f))?;
        let payload = canonical_request(streaming).to_string();
        let request = instance
            .build_request(&payload)
            .await
            .map_err(|e| call_error(call, &e))?;
        let url = url::Url::parse(&request.url)
            .map_err(|e| format!("{call}: url {:?} is not a URL: {e}", request.url))?;
        let base = url::Url::parse(BASE_URL).map_err(|e| e.to_string())?;
        if url.origin() != base.origin() {
            return Err(format!(
                "{call}: url {} is not on the provider's origin {}",
                request.url,
                base.origin().ascii_serialization()
            ));
        }
        if request.method != "POST" {
            return Err(format!(
                "{call}: a chat request must be a POST, got {}",
                request.method
            ));
        }
        let body = sent_body(&payload, &request.body)?;
        let Value::Object(body) = body else {
            return Err(format!(
                "{call}: the body must be a JSON object, got {}",
                short(&body)
            ));
        };
        if body.get("model").and_then(Value::as_str) != Some(UPSTREAM_MODEL) {
            return Err(format!(
                "{call}: the body's model must be the upstream model {UPSTREAM_MODEL:?}, got {}",
                body.get("model").map_or_else(|| "none".to_owned(), short)
            ));
        }
        let messages = body.get("messages").and_then(Value::as_array);
        if messages.is_none_or(|m| m.len() != 2) {
            return Err(format!(
                "{call}: the body must carry the two messages, got {}",
                body.get("messages")
                    .map_or_else(|| "none".to_owned(), short)
            ));
        }
        let streams = body.get("stream").and_then(Value::as_bool) == Some(true);
        if streams != streaming {
            return Err(format!(
                "{call}: the body must {}ask for a stream",
                if streaming { "" } else { "not " }
            ));
        }
        if !streaming {
            summary = format!(
                "{} {}, credential {}",
                request.method,
                request.url,
                credential_json(&request.credential)
            );
        }
    }
    Ok(Some(summary))
}

/// Parse the recorded answer: a JSON `chat.completion` whose first choice
/// carries the answer's text.
async fn response(plugin: &Arc<LoadedPlugin>) -> Result<Option<String>, String> {
    let mut instance = plugin
        .adapter(&context(false))
        .await
        .map_err(|f| fault("instantiate", &f))?;
    let headers = [("content-type".to_owned(), "application/json".to_owned())];
    let parsed = instance
        .parse_response(200, &headers, RESPONSE.as_bytes())
        .await
        .map_err(|e| call_error("parse_response", &e))?;
    let body: Value = serde_json::from_str(&parsed.body)
        .map_err(|e| format!("parse_response: the body is not JSON: {e}"))?;
    let choices = body.get("choices").and_then(Value::as_array);
    let Some(first) = choices.and_then(|c| c.first()) else {
        return Err(format!(
            "parse_response: not a chat.completion with choices: {}",
            short(&body)
        ));
    };
    let content = first.pointer("/message/content").and_then(Value::as_str);
    if content != Some(ANSWER) {
        return Err(format!(
            "parse_response: the first choice's message content must be {ANSWER:?}, got {}",
            first
                .pointer("/message/content")
                .map_or_else(|| "none".to_owned(), short)
        ));
    }
    Ok(Some(match parsed.usage {
        Some(u) => format!(
            "usage reported: {} in, {} out",
            u.input_tokens, u.output_tokens
        ),
        None => "no usage reported".to_owned(),
    }))
}

/// Decode the recorded stream: no error, at least one content chunk, the
/// stream's text in the content chunks, and a done.
async fn stream(plugin: &Arc<LoadedPlugin>) -> Result<Option<String>, String> {
    let mut instance = plugin
        .adapter(&context(true))
        .await
        .map_err(|f| fault("instantiate", &f))?;
    let headers = [("content-type".to_owned(), "text/event-stream".to_owned())];
    instance
        .start_stream(200, &headers)
        .await
        .map_err(|f| fault("stream decoder", &f))?;
    let mut items = Vec::new();
    for (i, frame) in sse_frames(STREAM).into_iter().enumerate() {
        let frame = Frame {
            event: frame.event,
            data: frame.data.into_bytes(),
        };
        let more = instance
            .push(&frame)
            .await
            .map_err(|e| call_error(&format!("push of frame {i}"), &e))?;
        items.extend(more);
    }
    let more = instance
        .finish()
        .await
        .map_err(|e| call_error("finish", &e))?;
    items.extend(more);
    let chunks = chunk_docs(&items)?;
    let content_chunks = items
        .iter()
        .filter(|item| matches!(item, StreamItem::Chunk(c) if c.kind == ChunkKind::Content))
        .count();
    if content_chunks == 0 {
        return Err("the decoder produced no content chunk".into());
    }
    let text: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/data/choices/0/delta/content"))
        .filter_map(Value::as_str)
        .collect();
    if text != STREAM_TEXT {
        return Err(format!(
            "the chunks carry the text {text:?}, expected {STREAM_TEXT:?}"
        ));
    }
    if !items.iter().any(|item| matches!(item, StreamItem::Done)) {
        return Err("the decoder never reported the end of the stream (done)".into());
    }
    let usage = items.iter().rev().find_map(|item| match item {
        StreamItem::Usage(u) => Some(format!(
            ", usage reported: {} in, {} out",
            u.input_tokens, u.output_tokens
        )),
        _ => None,
    });
    Ok(Some(format!(
        "{} chunks, {content_chunks} with content{}",
        chunks.len(),
        usage.unwrap_or_else(|| ", no usage reported".to_owned())
    )))
}
