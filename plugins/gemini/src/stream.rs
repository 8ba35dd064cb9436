//! The stream decoder for `:streamGenerateContent?alt=sse`: one
//! `GenerateContentResponse` per SSE event. Gemini sends no terminal event;
//! a stream ended normally when some candidate reported a `finishReason` (or
//! the prompt was blocked, in native form) before the body ended.

use std::collections::BTreeMap;

use orch_plugin_sdk::{
    ChunkKind, Frame, Headers, PayloadForm, PluginError, RequestContext, StreamChunk,
    StreamDecoder, StreamItem, Usage, json::RawObject,
};
use serde_json::Value;

use crate::canonical::{Chunk, ChunkChoice, Delta, ThinkingBlock, to_json};
use crate::error::classify_value;
use crate::response::{PartWalker, Piece, blocked, finish_reason, response_id, usage_of};
use crate::wire::{GenerateContentResponse, from_object};

/// Decodes one Gemini stream into canonical chunks, or forwards it in native
/// form with only `modelVersion` changed.
#[derive(Debug)]
pub struct GeminiDecoder {
    request_id: String,
    requested_model: String,
    created: u64,
    form: PayloadForm,
    status: u16,
    /// The canonical chunk id, fixed by the first event.
    id: Option<String>,
    /// Per candidate index.
    candidates: BTreeMap<u32, CandidateState>,
    /// A finish reason (or a blocked prompt, in native form) was seen.
    finished: bool,
    /// The last usage reported.
    usage: Option<Usage>,
    /// An error ended the stream, or `finish` ran.
    closed: bool,
}

#[derive(Debug, Default)]
struct CandidateState {
    walker: PartWalker,
}

impl StreamDecoder for GeminiDecoder {
    fn new(ctx: RequestContext, status: u16, _headers: Headers) -> Self {
        Self {
            created: ctx.received_at_ms / 1000,
            request_id: ctx.request_id,
            requested_model: ctx.requested_model,
            form: ctx.form,
            status,
            id: None,
            candidates: BTreeMap::new(),
            finished: false,
            usage: None,
            closed: false,
        }
    }

    fn push(&mut self, frame: Frame) -> Result<Vec<StreamItem>, PluginError> {
        if self.closed {
            return Ok(Vec::new());
        }
        let result = self.decode(&frame);
        // An error ends the stream.
        self.closed = result.is_err();
        result
    }

    fn finish(&mut self) -> Result<Vec<StreamItem>, PluginError> {
        if self.closed {
            return Ok(Vec::new());
        }
        self.closed = true;
        if !self.finished {
            return Err(
                PluginError::server("upstream stream ended early (no finishReason)")
                    .with_status(self.status),
            );
        }
        let mut items = Vec::with_capacity(2);
        if self.form == PayloadForm::Canonical
            && let Some(usage) = self.usage
        {
            let chunk = self.chunk(Vec::new(), Some(usage));
            items.push(StreamItem::Chunk(StreamChunk::new(ChunkKind::Usage, chunk)));
        }
        items.push(StreamItem::Done);
        Ok(items)
    }
}

impl GeminiDecoder {
    fn decode(&mut self, frame: &Frame) -> Result<Vec<StreamItem>, PluginError> {
        let data = frame.text()?.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let event = self.parse(data)?;
        match self.form {
            PayloadForm::Native => self.push_native(data, &event),
            PayloadForm::Canonical => self.push_canonical(&event),
        }
    }

    /// Parses one event; an `error` object in it is returned classified.
    fn parse(&self, data: &str) -> Result<GenerateContentResponse, PluginError> {
        let not_json = || {
            PluginError::server("upstream sent a stream event that is not a Gemini response")
                .with_status(self.status)
        };
        let Some(event) = from_object::<GenerateContentResponse>(data.as_bytes()) else {
            // `[{"error": …}]`
            let value = serde_json::from_str::<Value>(data).ok();
            let wrapped_error = value
                .as_ref()
                .and_then(Value::as_array)
                .and_then(|items| items.first())
                .is_some_and(|first| first.get("error").is_some_and(Value::is_object));
            return Err(if wrapped_error {
                classify_value(self.status, &[], value.as_ref())
            } else {
                not_json()
            });
        };
        match &event.error {
            Some(error) if !error.is_null() => {
                let body =
                    Value::Object([("error".to_owned(), error.clone())].into_iter().collect());
                Err(classify_value(self.status, &[], Some(&body)))
            }
            _ => Ok(event),
        }
    }

    /// Records usage; returns an item when it changed.
    fn record_usage(&mut self, event: &GenerateContentResponse) -> Option<StreamItem> {
        let usage = usage_of(event.usage_metadata.as_ref()?);
        if self.usage == Some(usage) {
            return None;
        }
        self.usage = Some(usage);
        Some(StreamItem::Usage(usage))
    }

    fn push_native(
        &mut self,
        data: &str,
        event: &GenerateContentResponse,
    ) -> Result<Vec<StreamItem>, PluginError> {
        let mut object = RawObject::parse(data).map_err(|_| {
            PluginError::server("upstream sent a stream event that is not a JSON object")
                .with_status(self.status)
        })?;
        if object.get("modelVersion").is_some() {
            object.set_string("modelVersion", &self.requested_model);
        }
        let candidates = event.candidates();
        if candidates.iter().any(|c| c.finish_reason.is_some()) || event.block_reason().is_some() {
            self.finished = true;
        }
        let has_output = candidates
            .iter()
            .any(|c| c.parts().iter().any(|p| p.has_output()));
        let kind = if has_output {
            ChunkKind::Content
        } else {
            ChunkKind::Meta
        };
        let mut items = Vec::with_capacity(2);
        items.push(StreamItem::Chunk(StreamChunk::new(kind, object.to_json())));
        items.extend(self.record_usage(event));
        Ok(items)
    }

    fn push_canonical(
        &mut self,
        event: &GenerateContentResponse,
    ) -> Result<Vec<StreamItem>, PluginError> {
        if self.id.is_none() {
            self.id = Some(response_id(&self.request_id, event.response_id.as_deref()));
        }
        let candidates = event.candidates();
        if candidates.is_empty()
            && let Some(reason) = event.block_reason()
        {
            return Err(blocked(reason, self.status));
        }
        let mut items = Vec::new();
        for (position, candidate) in candidates.iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            if !self.candidates.contains_key(&index) {
                let role = Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                items.push(self.delta(ChunkKind::Meta, index, role, None));
            }
            let state = self.candidates.entry(index).or_default();
            let pieces = state.walker.walk(candidate.parts());
            let called_tools = state.walker.calls() > 0;
            for piece in pieces {
                let (kind, delta) = match piece {
                    Piece::Text(text) => (
                        ChunkKind::Content,
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                    ),
                    Piece::Reasoning(text) => (
                        ChunkKind::Content,
                        Delta {
                            reasoning_content: Some(text),
                            ..Delta::default()
                        },
                    ),
                    Piece::Signature(signature) => (
                        ChunkKind::Meta,
                        Delta {
                            thinking_blocks: vec![ThinkingBlock::new(
                                String::new(),
                                Some(signature),
                            )],
                            ..Delta::default()
                        },
                    ),
                    Piece::Call(call) => (
                        ChunkKind::Content,
                        Delta {
                            tool_calls: vec![call],
                            ..Delta::default()
                        },
                    ),
                };
                items.push(self.delta(kind, index, delta, None));
            }
            if let Some(reason) = &candidate.finish_reason {
                self.finished = true;
                let reason = finish_reason(reason, called_tools);
                items.push(self.delta(ChunkKind::Meta, index, Delta::default(), Some(reason)));
            }
        }
        items.extend(self.record_usage(event));
        Ok(items)
    }

    /// A chunk item with one choice.
    fn delta(
        &self,
        kind: ChunkKind,
        index: u32,
        delta: Delta,
        finish_reason: Option<&'static str>,
    ) -> StreamItem {
        let choice = ChunkChoice {
            index,
            delta,
            finish_reason,
        };
        StreamItem::Chunk(StreamChunk::new(kind, self.chunk(vec![choice], None)))
    }

    /// A `chat.completion.chunk` as JSON text.
    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> String {
        to_json(&Chunk {
            id: self
                .id
                .clone()
                .unwrap_or_else(|| response_id(&self.request_id, None)),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.requested_model.clone(),
            choices,
            usage: usage.map(Into::into),
        })
    }
}
