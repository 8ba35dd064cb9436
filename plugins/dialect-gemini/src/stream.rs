//! Encoding a canonical stream as Gemini's `streamGenerateContent?alt=sse`:
//! one unnamed `data:` event per canonical chunk that carries output, each a
//! whole `GenerateContentResponse` holding that chunk's parts.
//!
//! * Reasoning text becomes `{"text", "thought": true}` parts, a thinking
//!   block's signature (a chunk of its own in the canonical stream) a
//!   `{"text": "", "thought": true, "thoughtSignature"}` part; the decoder
//!   joins them back into one block.
//! * A tool call is emitted as one whole `functionCall` part once it is
//!   complete: when another call or other content starts, at the finish
//!   chunk, or at `finish`. Its argument pieces are buffered until then.
//! * The finish chunk's parts are held back, and `finish` emits them in the
//!   last event together with `finishReason` and `usageMetadata` (the
//!   canonical usage chunk comes after the finish chunk).
//! * `abort` emits Google's error object as a data event; google-genai raises
//!   it as a `ClientError` / `ServerError`.

use std::collections::BTreeMap;

use orch_plugin_sdk::{EgressContext, PluginError, SseEvent, StreamEncoder, Usage};

use crate::error;
use crate::json::Json;
use crate::response::{
    call_signature, candidate, envelope, finish_reason, function_call_part, text_part,
    thought_part, usage_from_canonical,
};

/// Encodes one canonical stream into Gemini SSE events.
#[derive(Debug)]
pub struct GeminiStreamEncoder {
    ctx: EgressContext,
    /// Per canonical choice index (Gemini candidate index).
    choices: BTreeMap<u64, Choice>,
    /// The usage of the last canonical usage chunk.
    usage: Option<Usage>,
    /// `finish` or `abort` was called.
    done: bool,
}

/// The state of one choice.
#[derive(Debug, Default)]
struct Choice {
    /// Tool calls not yet emitted, by canonical tool-call index.
    pending: BTreeMap<u64, PendingCall>,
    /// The canonical finish reason, once the finish chunk arrived.
    finish: Option<String>,
    /// Parts that arrived with or after the finish chunk, for the last event.
    held: Vec<Json>,
    /// A call was dropped because its arguments were not a JSON object.
    malformed: bool,
}

/// A tool call whose argument pieces are still arriving.
#[derive(Debug, Default)]
struct PendingCall {
    id: Option<String>,
    name: String,
    arguments: String,
    signature: Option<String>,
}

impl StreamEncoder for GeminiStreamEncoder {
    fn new(ctx: EgressContext) -> Self {
        Self {
            ctx,
            choices: BTreeMap::new(),
            usage: None,
            done: false,
        }
    }

    fn push(&mut self, chunk: &str) -> Result<Vec<SseEvent>, PluginError> {
        if self.done {
            return Ok(Vec::new());
        }
        let chunk = Json::parse(chunk).map_err(|err| {
            PluginError::server(format!("a canonical stream chunk is not valid JSON: {err}"))
        })?;
        if let Some(usage) = chunk.get("usage").and_then(usage_from_canonical) {
            self.usage = Some(usage);
        }
        let choices = chunk
            .get("choices")
            .and_then(Json::as_array)
            .unwrap_or_default();
        let mut candidates = Vec::new();
        for (position, choice) in choices.iter().enumerate() {
            let index = choice
                .get("index")
                .and_then(Json::as_u64)
                .unwrap_or(position as u64);
            let state = self.choices.entry(index).or_default();
            let parts = state.push(choice);
            if state.finish.is_some() {
                state.held.extend(parts);
            } else if !parts.is_empty() {
                candidates.push(candidate(index, parts, None));
            }
        }
        Ok(if candidates.is_empty() {
            Vec::new()
        } else {
            vec![self.event(candidates, None)]
        })
    }

    fn finish(&mut self, usage: Option<Usage>) -> Result<Vec<SseEvent>, PluginError> {
        if self.done {
            return Ok(Vec::new());
        }
        self.done = true;
        let usage = usage.or(self.usage);
        if self.choices.is_empty() {
            self.choices.insert(0, Choice::default());
        }
        let mut candidates = Vec::with_capacity(self.choices.len());
        for (index, state) in &mut self.choices {
            let mut parts = std::mem::take(&mut state.held);
            state.flush(&mut parts);
            let reason = finish_reason(
                Some(state.finish.as_deref().unwrap_or("stop")),
                state.malformed,
            );
            candidates.push(candidate(*index, parts, reason));
        }
        Ok(vec![self.event(candidates, usage.as_ref())])
    }

    fn abort(&mut self, error: &PluginError) -> Vec<SseEvent> {
        self.done = true;
        let body = error::error_body(error, error::http_status(error));
        vec![SseEvent::data(body.to_string())]
    }
}

impl GeminiStreamEncoder {
    fn event(&self, candidates: Vec<Json>, usage: Option<&Usage>) -> SseEvent {
        SseEvent::data(envelope(&self.ctx, candidates, usage).to_string())
    }
}

impl Choice {
    /// The parts one canonical choice delta completes.
    fn push(&mut self, choice: &Json) -> Vec<Json> {
        let mut parts = Vec::new();
        if let Some(delta) = choice.get("delta") {
            let thoughts = delta_thoughts(delta);
            let text = delta
                .get_str("content")
                .or_else(|| delta.get_str("refusal"))
                .filter(|text| !text.is_empty());
            if !thoughts.is_empty() || text.is_some() {
                // Other content after a call: the call is complete.
                self.flush(&mut parts);
            }
            parts.extend(thoughts);
            if let Some(text) = text {
                parts.push(text_part(text));
            }
            let calls = delta
                .get("tool_calls")
                .and_then(Json::as_array)
                .unwrap_or_default();
            for call in calls {
                self.call_delta(call, &mut parts);
            }
        }
        if let Some(reason) = choice.get_str("finish_reason") {
            self.flush(&mut parts);
            self.finish = Some(reason.to_owned());
        }
        parts
    }

    /// Adds a tool-call delta; a new call completes the pending ones.
    fn call_delta(&mut self, delta: &Json, parts: &mut Vec<Json>) {
        let function = delta.get("function");
        let name = function.and_then(|f| f.get_str("name"));
        let id = delta.get_str("id").filter(|id| !id.is_empty());
        let index = delta
            .get("index")
            .and_then(Json::as_u64)
            .unwrap_or_else(|| {
                // No index: a delta with an id or name starts a call, others
                // continue the last one.
                let last = self.pending.keys().next_back().copied();
                match last {
                    Some(last) if id.is_none() && name.is_none() => last,
                    Some(last) => last + 1,
                    None => 0,
                }
            });
        if !self.pending.contains_key(&index) {
            self.flush(parts);
        }
        let call = self.pending.entry(index).or_default();
        if let Some(id) = id {
            call.id = Some(id.to_owned());
        }
        if let Some(name) = name {
            call.name.push_str(name);
        }
        if let Some(arguments) = function.and_then(|f| f.get_str("arguments")) {
            call.arguments.push_str(arguments);
        }
        if let Some(signature) = call_signature(delta) {
            call.signature = Some(signature.to_owned());
        }
    }

    /// Emits the pending calls as whole `functionCall` parts.
    fn flush(&mut self, parts: &mut Vec<Json>) {
        for (index, call) in std::mem::take(&mut self.pending) {
            let position = usize::try_from(index).unwrap_or(usize::MAX);
            match function_call_part(
                position,
                call.id.as_deref(),
                &call.name,
                &call.arguments,
                call.signature.as_deref(),
            ) {
                Some(part) => parts.push(part),
                None => self.malformed = true,
            }
        }
    }
}

/// The thought parts of a delta: its reasoning text, then a signature-only
/// part per signed thinking block. Without reasoning text, the blocks' own
/// text is used instead (never both: adapters may send the same text twice).
fn delta_thoughts(delta: &Json) -> Vec<Json> {
    let reasoning = delta
        .get_str("reasoning_content")
        .or_else(|| delta.get_str("reasoning"))
        .filter(|text| !text.is_empty());
    let mut parts: Vec<Json> = reasoning
        .map(|text| thought_part(text, None))
        .into_iter()
        .collect();
    let blocks = delta
        .get("thinking_blocks")
        .and_then(Json::as_array)
        .unwrap_or_default();
    for block in blocks {
        if !matches!(block.get_str("type"), None | Some("thinking")) {
            continue; // redacted thinking has no Gemini form
        }
        let text = if reasoning.is_some() {
            ""
        } else {
            block.get_str("thinking").unwrap_or_default()
        };
        let signature = block.get_str("signature").filter(|s| !s.is_empty());
        if !text.is_empty() || signature.is_some() {
            parts.push(thought_part(text, signature));
        }
    }
    parts
}
