//! Server-sent-events encoding for the client side, and the OpenAI egress
//! stream state: which chunks are held back, the single usage chunk at the
//! end, `[DONE]`, and the in-stream error after the commit point.

use bytes::{BufMut, Bytes, BytesMut};
use orch_core::contract::{ChunkKind, StreamItem, Usage};

use crate::error::ApiError;

/// Append one SSE event. Multi-line data is split into several `data:` lines.
pub(crate) fn put_event(buf: &mut BytesMut, event: Option<&str>, data: &str) {
    if let Some(ev) = event {
        buf.put_slice(b"event: ");
        buf.put_slice(ev.as_bytes());
        buf.put_u8(b'\n');
    }
    for line in data.split('\n') {
        buf.put_slice(b"data: ");
        buf.put_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
}

#[derive(serde::Deserialize)]
struct ChunkHead {
    id: Option<String>,
    created: Option<u64>,
}

/// The OpenAI-dialect encoding of one client stream: canonical chunks as
/// they are, the single usage chunk at the end, `[DONE]`.
pub(crate) struct OpenAiStream {
    buf: BytesMut,
    include_usage: bool,
    usage_chunk: Option<String>,
    head: Option<(String, u64)>,
    model: String,
    created_fallback: u64,
}

impl OpenAiStream {
    pub(crate) fn new(model: &str, include_usage: bool, created_fallback: u64) -> Self {
        OpenAiStream {
            buf: BytesMut::with_capacity(1024),
            include_usage,
            usage_chunk: None,
            head: None,
            model: model.to_string(),
            created_fallback,
        }
    }

    /// Encode the decoder's chunks; usage chunks are kept for the end.
    pub(crate) fn absorb(&mut self, items: &[StreamItem]) {
        for item in items {
            if let StreamItem::Chunk(c) = item {
                if self.head.is_none()
                    && let Ok(h) = serde_json::from_str::<ChunkHead>(&c.data)
                    && let Some(id) = h.id
                {
                    self.head = Some((id, h.created.unwrap_or(self.created_fallback)));
                }
                match c.kind {
                    ChunkKind::Usage => self.usage_chunk = Some(c.data.clone()),
                    ChunkKind::Content | ChunkKind::Meta => {
                        put_event(&mut self.buf, c.event.as_deref(), &c.data);
                    }
                }
            }
        }
    }

    /// Whether encoded bytes are waiting.
    pub(crate) fn has_output(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The encoded bytes so far.
    pub(crate) fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// The normal end: what is buffered, exactly one usage chunk when the
    /// client asked for one, then `[DONE]`.
    pub(crate) fn tail(&mut self, usage: Option<Usage>) -> Bytes {
        if self.include_usage {
            let chunk = match self.usage_chunk.take() {
                Some(c) => c,
                None => self.synthesized_usage_chunk(usage),
            };
            put_event(&mut self.buf, None, &chunk);
        }
        self.buf.put_slice(b"data: [DONE]\n\n");
        self.take()
    }

    /// The end after a failure once content was sent: an explicit error
    /// event and no `[DONE]`, so no client mistakes it for a clean finish.
    pub(crate) fn error_tail(&mut self, err: &ApiError) -> Bytes {
        put_event(&mut self.buf, None, &err.body().to_string());
        self.take()
    }

    fn synthesized_usage_chunk(&self, usage: Option<Usage>) -> String {
        let u = usage.unwrap_or_default();
        let (id, created) = self
            .head
            .clone()
            .unwrap_or_else(|| ("chatcmpl-gateway".to_string(), self.created_fallback));
        serde_json::json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.model,
            "choices": [],
            "usage": usage_json(&u),
        })
        .to_string()
    }
}

/// Usage in the OpenAI shape.
pub(crate) fn usage_json(u: &Usage) -> serde_json::Value {
    serde_json::json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens.saturating_add(u.output_tokens),
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens.unwrap_or(0)},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::contract::StreamChunk;

    fn chunk(kind: ChunkKind, data: &str) -> StreamItem {
        StreamItem::Chunk(StreamChunk {
            kind,
            event: None,
            data: data.into(),
        })
    }

    #[test]
    fn holds_usage_chunk_to_the_end_and_emits_one() {
        let mut s = OpenAiStream::new("m", true, 5);
        s.absorb(&[chunk(
            ChunkKind::Meta,
            r#"{"id":"c1","created":9,"choices":[]}"#,
        )]);
        s.absorb(&[
            chunk(ChunkKind::Content, r#"{"id":"c1","x":1}"#),
            chunk(ChunkKind::Usage, r#"{"id":"c1","usage":{"a":1}}"#),
            chunk(ChunkKind::Usage, r#"{"id":"c1","usage":{"a":2}}"#),
            StreamItem::Done,
        ]);
        let out = String::from_utf8(s.tail(None).to_vec()).unwrap();
        assert_eq!(
            out,
            "data: {\"id\":\"c1\",\"created\":9,\"choices\":[]}\n\ndata: {\"id\":\"c1\",\"x\":1}\n\ndata: {\"id\":\"c1\",\"usage\":{\"a\":2}}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn synthesizes_usage_when_only_typed_usage_came() {
        let mut s = OpenAiStream::new("m", true, 5);
        s.absorb(&[chunk(ChunkKind::Content, r#"{"id":"c2","created":7}"#)]);
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Usage::default()
        };
        let out = String::from_utf8(s.tail(Some(usage)).to_vec()).unwrap();
        assert!(
            out.contains(r#""usage":{"completion_tokens":4"#)
                || out.contains(r#""prompt_tokens":3"#),
            "{out}"
        );
        assert!(out.contains(r#""id":"c2""#) && out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn no_usage_chunk_unless_asked() {
        let mut s = OpenAiStream::new("m", false, 5);
        s.absorb(&[
            chunk(ChunkKind::Content, "{}"),
            chunk(ChunkKind::Usage, r#"{"u":1}"#),
        ]);
        let out = String::from_utf8(s.tail(None).to_vec()).unwrap();
        assert_eq!(out, "data: {}\n\ndata: [DONE]\n\n");
    }

    #[test]
    fn multi_line_data_is_split() {
        let mut b = BytesMut::new();
        put_event(&mut b, Some("e"), "a\nb");
        assert_eq!(&b[..], b"event: e\ndata: a\ndata: b\n\n");
    }
}
