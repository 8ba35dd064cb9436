//! Glue for the `adapter-plugin` world.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::adapter::exports::llm_orchestrator::plugin::adapter as wit;
use crate::log::install_panic_hook;
use crate::{Adapter, StreamDecoder};

types_conversions!(crate::bindings::adapter::llm_orchestrator::plugin::types);

/// Implements the generated `Guest` trait for an [`Adapter`].
#[derive(Debug)]
pub struct AdapterGlue<A>(PhantomData<A>);

/// The exported `stream-decoder` resource: wraps a [`StreamDecoder`] in a
/// `RefCell`, since resource methods take `&self`.
#[derive(Debug)]
pub struct DecoderGlue<D>(RefCell<D>);

impl<A: Adapter> wit::Guest for AdapterGlue<A> {
    type StreamDecoder = DecoderGlue<A::Decoder>;

    fn info() -> wit_types::PluginInfo {
        install_panic_hook();
        A::info().into()
    }

    fn check_provider(provider: wit_types::Provider) -> Result<(), wit_types::PluginError> {
        install_panic_hook();
        A::check_provider(&provider.into()).map_err(Into::into)
    }

    fn build_request(
        ctx: wit_types::RequestContext,
        payload: String,
    ) -> Result<wit::UpstreamRequest, wit_types::PluginError> {
        install_panic_hook();
        A::build_request(&ctx.into(), &payload)
            .map(Into::into)
            .map_err(Into::into)
    }

    fn parse_response(
        ctx: wit_types::RequestContext,
        status: u16,
        headers: wit_types::Headers,
        body: Vec<u8>,
    ) -> Result<wit::ParsedResponse, wit_types::PluginError> {
        install_panic_hook();
        A::parse_response(&ctx.into(), status, &headers, &body)
            .map(Into::into)
            .map_err(Into::into)
    }

    fn classify_error(
        ctx: wit_types::RequestContext,
        status: u16,
        headers: wit_types::Headers,
        body: Vec<u8>,
    ) -> wit_types::PluginError {
        install_panic_hook();
        A::classify_error(&ctx.into(), status, &headers, &body).into()
    }

    fn probe_request(provider: wit_types::Provider) -> Option<wit::UpstreamRequest> {
        install_panic_hook();
        A::probe_request(&provider.into()).map(Into::into)
    }

    fn judge_probe(
        provider: wit_types::Provider,
        status: u16,
        headers: wit_types::Headers,
        body: Vec<u8>,
    ) -> Result<(), wit_types::PluginError> {
        install_panic_hook();
        A::judge_probe(&provider.into(), status, &headers, &body).map_err(Into::into)
    }
}

impl<D: StreamDecoder> wit::GuestStreamDecoder for DecoderGlue<D> {
    fn new(ctx: wit_types::RequestContext, status: u16, headers: wit_types::Headers) -> Self {
        install_panic_hook();
        Self(RefCell::new(D::new(ctx.into(), status, headers)))
    }

    fn push(&self, frame: wit::Frame) -> Result<Vec<wit::StreamItem>, wit_types::PluginError> {
        install_panic_hook();
        let mut decoder = self.0.try_borrow_mut().map_err(|_| reentered())?;
        decoder
            .push(frame.into())
            .map(convert_all)
            .map_err(Into::into)
    }

    fn finish(&self) -> Result<Vec<wit::StreamItem>, wit_types::PluginError> {
        install_panic_hook();
        let mut decoder = self.0.try_borrow_mut().map_err(|_| reentered())?;
        decoder.finish().map(convert_all).map_err(Into::into)
    }
}

impl From<crate::Credential> for wit::Credential {
    fn from(credential: crate::Credential) -> Self {
        match credential {
            crate::Credential::None => Self::None,
            crate::Credential::Bearer => Self::Bearer,
            crate::Credential::Header(name) => Self::Header(name),
            crate::Credential::Query(name) => Self::Query(name),
        }
    }
}

impl From<crate::JsonEdit> for wit::JsonEdit {
    fn from(edit: crate::JsonEdit) -> Self {
        Self {
            field: edit.field,
            value: edit.value,
        }
    }
}

impl From<crate::RequestBody> for wit::RequestBody {
    fn from(body: crate::RequestBody) -> Self {
        match body {
            crate::RequestBody::Empty => Self::Empty,
            crate::RequestBody::Forward(edits) => Self::Forward(convert_all(edits)),
            crate::RequestBody::Bytes(bytes) => Self::Bytes(bytes),
        }
    }
}

impl From<crate::Framing> for wit::Framing {
    fn from(framing: crate::Framing) -> Self {
        match framing {
            crate::Framing::Sse => Self::Sse,
            crate::Framing::Ndjson => Self::Ndjson,
            crate::Framing::Raw => Self::Raw,
        }
    }
}

impl From<crate::UpstreamRequest> for wit::UpstreamRequest {
    fn from(request: crate::UpstreamRequest) -> Self {
        Self {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body.into(),
            credential: request.credential.into(),
            framing: request.framing.into(),
        }
    }
}

impl From<crate::ParsedResponse> for wit::ParsedResponse {
    fn from(response: crate::ParsedResponse) -> Self {
        Self {
            body: response.body,
            usage: response.usage.map(Into::into),
        }
    }
}

impl From<wit::Frame> for crate::Frame {
    fn from(frame: wit::Frame) -> Self {
        Self {
            event: frame.event,
            data: frame.data,
        }
    }
}

impl From<crate::ChunkKind> for wit::ChunkKind {
    fn from(kind: crate::ChunkKind) -> Self {
        match kind {
            crate::ChunkKind::Content => Self::Content,
            crate::ChunkKind::Meta => Self::Meta,
            crate::ChunkKind::Usage => Self::Usage,
        }
    }
}

impl From<crate::StreamChunk> for wit::StreamChunk {
    fn from(chunk: crate::StreamChunk) -> Self {
        Self {
            kind: chunk.kind.into(),
            event: chunk.event,
            data: chunk.data,
        }
    }
}

impl From<crate::StreamItem> for wit::StreamItem {
    fn from(item: crate::StreamItem) -> Self {
        match item {
            crate::StreamItem::Chunk(chunk) => Self::Chunk(chunk.into()),
            crate::StreamItem::Usage(usage) => Self::Usage(usage.into()),
            crate::StreamItem::Done => Self::Done,
        }
    }
}
