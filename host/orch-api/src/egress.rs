//! The client side of a stream, in the client's dialect: what is held back
//! before the commit point, how chunks become events, and how the stream
//! ends (normally, or with an explicit error after content was sent).
//!
//! Three encoders: OpenAI clients get canonical chunks as they are (the
//! canonical form is OpenAI's); clients speaking the provider's own dialect
//! get the native events as they are (pass-through); other clients get the
//! canonical chunks through their dialect plugin's stream encoder.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use orch_core::contract::{ChunkKind, ClassifiedError, SseEvent, StreamItem, Usage};
use orch_plugin_host::{CallError, DialectInstance};

use crate::error::{ApiError, Dialect};
use crate::sse::{OpenAiStream, put_event};

enum Encoder {
    OpenAi(OpenAiStream),
    Native {
        dialect: Dialect,
        buf: BytesMut,
    },
    Plugin {
        inst: Box<DialectInstance>,
        dialect: Dialect,
        buf: BytesMut,
    },
}

/// One client stream.
pub(crate) struct ClientStream {
    enc: Encoder,
    /// The first content chunk was produced (the commit point).
    pub(crate) committed: bool,
    /// The upstream ended the stream normally.
    pub(crate) done: bool,
    /// The last usage reported.
    pub(crate) usage: Option<Usage>,
    /// Content chunks seen: the output-token estimate of a stream that
    /// ends before its usage report.
    content_chunks: u32,
    /// When the first content chunk arrived.
    pub(crate) first_content_at: Option<Instant>,
    /// Drop meta chunks before the first content chunk (the client already
    /// has them from an attempt that failed over).
    skip_leading_meta: bool,
    /// The transformers' stream filters, applied before encoding.
    filters: Option<crate::transform::Filters>,
}

fn put_all(buf: &mut BytesMut, events: &[SseEvent]) {
    for e in events {
        put_event(buf, e.event.as_deref(), &e.data);
    }
}

impl ClientStream {
    fn with(enc: Encoder) -> Self {
        ClientStream {
            enc,
            committed: false,
            done: false,
            usage: None,
            content_chunks: 0,
            first_content_at: None,
            skip_leading_meta: false,
            filters: None,
        }
    }

    /// Rewrite canonical chunks with these filters before encoding.
    pub(crate) fn filter_with(&mut self, filters: crate::transform::Filters) {
        self.filters = Some(filters);
    }

    /// Canonical chunks to an OpenAI client; `reopened` when an earlier
    /// attempt already sent the leading meta (role) chunk.
    pub(crate) fn openai(
        model: &str,
        include_usage: bool,
        created_fallback: u64,
        reopened: bool,
    ) -> Self {
        let mut s = Self::with(Encoder::OpenAi(OpenAiStream::new(
            model,
            include_usage,
            created_fallback,
        )));
        s.skip_leading_meta = reopened;
        s
    }

    /// Native events to a client of the provider's own dialect.
    pub(crate) fn native(dialect: Dialect) -> Self {
        Self::with(Encoder::Native {
            dialect,
            buf: BytesMut::with_capacity(1024),
        })
    }

    /// Canonical chunks through a dialect plugin's encoder (already started).
    pub(crate) fn plugin(inst: DialectInstance, dialect: Dialect) -> Self {
        Self::with(Encoder::Plugin {
            inst: Box::new(inst),
            dialect,
            buf: BytesMut::with_capacity(1024),
        })
    }

    fn commit(&mut self, kind: ChunkKind) {
        if kind == ChunkKind::Content {
            self.content_chunks = self.content_chunks.saturating_add(1);
        }
        if kind == ChunkKind::Content && !self.committed {
            self.committed = true;
            self.first_content_at = Some(Instant::now());
        }
    }

    /// Take the decoder's items: encode chunks, remember usage and the end.
    /// Fails only when a dialect plugin's encoder fails.
    pub(crate) async fn absorb(&mut self, items: Vec<StreamItem>) -> Result<(), ApiError> {
        let items = match &mut self.filters {
            Some(f) => f.apply(items, self.usage).await?,
            None => items,
        };
        if let Encoder::OpenAi(_) = &self.enc {
            let mut items = items;
            for item in &items {
                match item {
                    StreamItem::Usage(u) => self.usage = Some(*u),
                    StreamItem::Done => self.done = true,
                    StreamItem::Chunk(_) => {}
                }
            }
            if self.skip_leading_meta {
                let mut committed = self.committed;
                items.retain(|item| match item {
                    StreamItem::Chunk(c) if c.kind == ChunkKind::Content => {
                        committed = true;
                        true
                    }
                    StreamItem::Chunk(c) => committed || c.kind != ChunkKind::Meta,
                    _ => true,
                });
            }
            for item in &items {
                if let StreamItem::Chunk(c) = item {
                    self.commit(c.kind);
                }
            }
            if let Encoder::OpenAi(s) = &mut self.enc {
                s.absorb(&items);
            }
            return Ok(());
        }
        for item in items {
            match item {
                StreamItem::Usage(u) => self.usage = Some(u),
                StreamItem::Done => self.done = true,
                StreamItem::Chunk(c) => {
                    self.commit(c.kind);
                    match &mut self.enc {
                        Encoder::OpenAi(_) => {}
                        Encoder::Native { buf, .. } => {
                            put_event(buf, c.event.as_deref(), &c.data);
                        }
                        Encoder::Plugin { inst, buf, .. } => {
                            // Usage reaches the encoder typed, in `finish`.
                            if c.kind != ChunkKind::Usage {
                                let events =
                                    inst.push(&c.data).await.map_err(|e| encoder_error(&e))?;
                                put_all(buf, &events);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The usage of a stream that broke off: what the upstream reported so
    /// far, with at least one output token per content chunk sent.
    pub(crate) fn partial_usage(&self) -> Usage {
        let mut u = self.usage.unwrap_or_default();
        u.output_tokens = u.output_tokens.max(self.content_chunks);
        u
    }

    /// Whether encoded bytes are waiting.
    pub(crate) fn has_output(&self) -> bool {
        match &self.enc {
            Encoder::OpenAi(s) => s.has_output(),
            Encoder::Native { buf, .. } | Encoder::Plugin { buf, .. } => !buf.is_empty(),
        }
    }

    /// The encoded bytes so far.
    pub(crate) fn take(&mut self) -> Bytes {
        match &mut self.enc {
            Encoder::OpenAi(s) => s.take(),
            Encoder::Native { buf, .. } | Encoder::Plugin { buf, .. } => buf.split().freeze(),
        }
    }

    /// The normal end: what is buffered plus the dialect's closing events.
    pub(crate) async fn tail(&mut self) -> Result<Bytes, ApiError> {
        let usage = self.usage;
        match &mut self.enc {
            Encoder::OpenAi(s) => Ok(s.tail(usage)),
            Encoder::Native { buf, .. } => Ok(buf.split().freeze()),
            Encoder::Plugin { inst, buf, .. } => {
                let events = inst.finish(usage).await.map_err(|e| encoder_error(&e))?;
                put_all(buf, &events);
                Ok(buf.split().freeze())
            }
        }
    }

    /// The end after a failure once content was sent: the dialect's explicit
    /// in-stream error, so no client mistakes it for a clean finish.
    pub(crate) async fn error_tail(&mut self, err: &ApiError) -> Bytes {
        match &mut self.enc {
            Encoder::OpenAi(s) => s.error_tail(err),
            Encoder::Native { dialect, buf } => {
                host_error_event(buf, *dialect, err);
                buf.split().freeze()
            }
            Encoder::Plugin { inst, dialect, buf } => {
                let classified: ClassifiedError = err.to_classified();
                match inst.abort(&classified).await {
                    Ok(events) if !events.is_empty() => put_all(buf, &events),
                    _ => host_error_event(buf, *dialect, err),
                }
                buf.split().freeze()
            }
        }
    }
}

/// The dialect's in-stream error event as the host renders it.
fn host_error_event(buf: &mut BytesMut, dialect: Dialect, err: &ApiError) {
    let body = err.clone().in_dialect(dialect).body().to_string();
    let event = match dialect {
        Dialect::Anthropic => Some("error"),
        Dialect::OpenAi | Dialect::Gemini => None,
    };
    put_event(buf, event, &body);
}

fn encoder_error(e: &CallError) -> ApiError {
    match e {
        CallError::Plugin(c) => ApiError::classified(c),
        CallError::Fault(f) => ApiError::plugin(f),
    }
}
