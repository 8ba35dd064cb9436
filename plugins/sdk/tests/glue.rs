//! The export glue, exercised natively through the generated `Guest` traits:
//! every value must survive the conversion between SDK and generated types.

use orch_plugin_sdk::__private::bindings::{
    adapter::exports::llm_orchestrator::plugin::adapter as wit_adapter,
    adapter::llm_orchestrator::plugin::types as wit_types,
    dialect::exports::llm_orchestrator::plugin::dialect as wit_dialect,
    dialect::llm_orchestrator::plugin::types as wit_dialect_types,
    transformer::exports::llm_orchestrator::plugin::transformer as wit_transformer,
    transformer::llm_orchestrator::plugin::types as wit_transformer_types,
};
use orch_plugin_sdk::__private::{
    adapter::AdapterGlue, dialect::DialectGlue, transformer::TransformerGlue,
};
use orch_plugin_sdk::{
    Adapter, ChunkKind, Credential, DecodedRequest, Dialect, EgressContext, ErrorClass,
    ErrorResponse, Frame, Framing, Headers, IngressRequest, JsonEdit, ModelEntry, Operation,
    ParsedResponse, PayloadForm, PluginError, PluginInfo, Provider, Rejection, RequestAction,
    RequestBody, RequestContext, SseEvent, StreamChunk, StreamDecoder, StreamEncoder, StreamFilter,
    StreamItem, TransformContext, Transformer, UpstreamRequest, Usage,
};

fn usage() -> Usage {
    Usage {
        input_tokens: 1,
        output_tokens: 2,
        cached_input_tokens: Some(3),
        cache_write_input_tokens: Some(4),
        reasoning_tokens: Some(5),
    }
}

fn full_error() -> PluginError {
    PluginError::rate_limited("slow down")
        .with_status(429)
        .with_code("rate_limit_exceeded")
        .with_param("messages")
        .with_retry_after_ms(Some(1_000))
        .with_retryable(false)
}

// ------------------------------------------------------------------ adapter

struct MockAdapter;

impl Adapter for MockAdapter {
    type Decoder = MockDecoder;

    fn info() -> PluginInfo {
        PluginInfo::adapter("mock", "1.2.3", "openai")
            .with_capabilities(["tools", "custom"])
            .with_description("mock")
    }

    fn check_provider(provider: &Provider) -> Result<(), PluginError> {
        if provider.options == "{}" {
            Ok(())
        } else {
            Err(PluginError::bad_request(provider.options.clone()))
        }
    }

    fn build_request(ctx: &RequestContext, payload: &str) -> Result<UpstreamRequest, PluginError> {
        let body = match payload {
            "empty" => RequestBody::Empty,
            "bytes" => RequestBody::Bytes(vec![1, 2, 3]),
            "error" => return Err(full_error()),
            _ => RequestBody::Forward(vec![
                JsonEdit::set_string("model", &ctx.upstream_model),
                JsonEdit::remove("user"),
            ]),
        };
        let credential = match ctx.operation {
            Operation::Chat => Credential::Header("x-api-key".to_owned()),
            Operation::CountTokens => Credential::Query("key".to_owned()),
            Operation::Embeddings => Credential::None,
        };
        Ok(
            UpstreamRequest::post(format!("{}/{}", ctx.provider.base_url, ctx.request_id))
                .header("X-Form", format!("{:?}", ctx.form))
                .header("x-streaming", ctx.streaming.to_string())
                .header("x-dialect", ctx.ingress_dialect.clone())
                .header("x-received", ctx.received_at_ms.to_string())
                .header("x-requested", ctx.requested_model.clone())
                .body(body)
                .credential(credential)
                .framing(Framing::Ndjson)
                .build(),
        )
    }

    fn parse_response(
        _ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ParsedResponse, PluginError> {
        Ok(ParsedResponse {
            body: format!(
                "{status} {} {}",
                headers.len(),
                String::from_utf8_lossy(body)
            ),
            usage: Some(usage()),
        })
    }

    fn probe_request(provider: &Provider) -> Option<UpstreamRequest> {
        Some(
            UpstreamRequest::get(format!("{}/models", provider.base_url))
                .bearer()
                .framing(Framing::Raw)
                .build(),
        )
    }
}

struct MockDecoder {
    status: u16,
    headers: Headers,
    pushes: usize,
}

impl StreamDecoder for MockDecoder {
    fn new(_ctx: RequestContext, status: u16, headers: Headers) -> Self {
        Self {
            status,
            headers,
            pushes: 0,
        }
    }

    fn push(&mut self, frame: Frame) -> Result<Vec<StreamItem>, PluginError> {
        self.pushes += 1;
        if frame.data == b"fail" {
            return Err(PluginError::overloaded("busy"));
        }
        Ok(vec![
            StreamItem::Chunk(
                StreamChunk::new(ChunkKind::Content, String::from_utf8_lossy(&frame.data))
                    .with_event(frame.event.unwrap_or_default()),
            ),
            StreamItem::Chunk(StreamChunk::new(ChunkKind::Meta, self.pushes.to_string())),
            StreamItem::Chunk(StreamChunk::new(ChunkKind::Usage, "{}")),
            StreamItem::Usage(usage()),
        ])
    }

    fn finish(&mut self) -> Result<Vec<StreamItem>, PluginError> {
        Ok(vec![
            StreamItem::Chunk(StreamChunk::new(
                ChunkKind::Meta,
                format!("{} {:?}", self.status, self.headers),
            )),
            StreamItem::Done,
        ])
    }
}

orch_plugin_sdk::export_adapter!(MockAdapter);

type AGlue = AdapterGlue<MockAdapter>;

fn wit_provider(options: &str) -> wit_types::Provider {
    wit_types::Provider {
        name: "p".to_owned(),
        base_url: "https://x.test".to_owned(),
        options: options.to_owned(),
    }
}

fn wit_ctx(operation: wit_types::Operation) -> wit_types::RequestContext {
    wit_types::RequestContext {
        request_id: "req-9".to_owned(),
        operation,
        requested_model: "alias".to_owned(),
        upstream_model: "real".to_owned(),
        streaming: true,
        form: wit_types::PayloadForm::Native,
        ingress_dialect: "anthropic".to_owned(),
        received_at_ms: 42,
        provider: wit_provider("{}"),
    }
}

fn assert_full_error(error: &wit_types::PluginError) {
    assert!(matches!(error.class, wit_types::ErrorClass::RateLimited));
    assert!(!error.retryable);
    assert_eq!(error.status, Some(429));
    assert_eq!(error.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(error.param.as_deref(), Some("messages"));
    assert_eq!(error.message, "slow down");
    assert_eq!(error.retry_after_ms, Some(1_000));
}

#[test]
fn adapter_info() {
    let info = <AGlue as wit_adapter::Guest>::info();
    assert_eq!(info.id, "mock");
    assert_eq!(info.version, "1.2.3");
    assert!(matches!(info.kind, wit_types::PluginKind::Adapter));
    assert_eq!(info.dialect, "openai");
    assert_eq!(info.capabilities, ["tools", "custom"]);
    assert_eq!(info.description, "mock");
}

#[test]
fn adapter_check_provider() {
    assert!(<AGlue as wit_adapter::Guest>::check_provider(wit_provider("{}")).is_ok());
    let err =
        <AGlue as wit_adapter::Guest>::check_provider(wit_provider("[]")).expect_err("rejected");
    assert!(matches!(err.class, wit_types::ErrorClass::BadRequest));
    assert!(!err.retryable);
    assert_eq!(err.message, "[]");
}

#[test]
fn adapter_build_request_converts_every_field() {
    let request = <AGlue as wit_adapter::Guest>::build_request(
        wit_ctx(wit_types::Operation::Chat),
        "{}".to_owned(),
    )
    .expect("request");
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://x.test/req-9");
    assert_eq!(
        request.headers,
        [
            ("x-form".to_owned(), "Native".to_owned()),
            ("x-streaming".to_owned(), "true".to_owned()),
            ("x-dialect".to_owned(), "anthropic".to_owned()),
            ("x-received".to_owned(), "42".to_owned()),
            ("x-requested".to_owned(), "alias".to_owned()),
        ]
    );
    let wit_adapter::RequestBody::Forward(edits) = request.body else {
        panic!("forward")
    };
    assert_eq!(edits.len(), 2);
    assert_eq!(
        (edits[0].field.as_str(), edits[0].value.as_deref()),
        ("model", Some("\"real\""))
    );
    assert_eq!(
        (edits[1].field.as_str(), edits[1].value.as_deref()),
        ("user", None)
    );
    assert!(
        matches!(request.credential, wit_adapter::Credential::Header(ref h) if h == "x-api-key")
    );
    assert!(matches!(request.framing, wit_adapter::Framing::Ndjson));

    let request = <AGlue as wit_adapter::Guest>::build_request(
        wit_ctx(wit_types::Operation::CountTokens),
        "bytes".to_owned(),
    )
    .expect("request");
    assert!(matches!(request.body, wit_adapter::RequestBody::Bytes(ref b) if b == &[1, 2, 3]));
    assert!(matches!(request.credential, wit_adapter::Credential::Query(ref q) if q == "key"));

    let request = <AGlue as wit_adapter::Guest>::build_request(
        wit_ctx(wit_types::Operation::Embeddings),
        "empty".to_owned(),
    )
    .expect("request");
    assert!(matches!(request.body, wit_adapter::RequestBody::Empty));
    assert!(matches!(request.credential, wit_adapter::Credential::None));

    let err = <AGlue as wit_adapter::Guest>::build_request(
        wit_ctx(wit_types::Operation::Chat),
        "error".to_owned(),
    )
    .expect_err("error");
    assert_full_error(&err);
}

#[test]
fn adapter_parse_response_and_defaults() {
    let headers = vec![("a".to_owned(), "b".to_owned())];
    let parsed = <AGlue as wit_adapter::Guest>::parse_response(
        wit_ctx(wit_types::Operation::Chat),
        201,
        headers.clone(),
        b"body".to_vec(),
    )
    .expect("parsed");
    assert_eq!(parsed.body, "201 1 body");
    let u = parsed.usage.expect("usage");
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.cache_write_input_tokens,
            u.reasoning_tokens
        ),
        (1, 2, Some(3), Some(4), Some(5))
    );

    // Default classify_error: classify_status.
    let retry = vec![("retry-after".to_owned(), "1".to_owned())];
    let err = <AGlue as wit_adapter::Guest>::classify_error(
        wit_ctx(wit_types::Operation::Chat),
        529,
        retry,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.to_vec(),
    );
    assert!(matches!(err.class, wit_types::ErrorClass::Overloaded));
    assert!(err.retryable);
    assert_eq!(err.code.as_deref(), Some("overloaded_error"));
    assert_eq!(err.retry_after_ms, Some(1_000));

    // probe_request override and default judge_probe.
    let probe = <AGlue as wit_adapter::Guest>::probe_request(wit_provider("{}")).expect("probe");
    assert_eq!(
        (probe.method.as_str(), probe.url.as_str()),
        ("GET", "https://x.test/models")
    );
    assert!(matches!(probe.credential, wit_adapter::Credential::Bearer));
    assert!(matches!(probe.framing, wit_adapter::Framing::Raw));
    assert!(
        <AGlue as wit_adapter::Guest>::judge_probe(wit_provider("{}"), 204, Vec::new(), Vec::new())
            .is_ok()
    );
    let err =
        <AGlue as wit_adapter::Guest>::judge_probe(wit_provider("{}"), 401, Vec::new(), Vec::new())
            .expect_err("unauthorized");
    assert!(matches!(err.class, wit_types::ErrorClass::Authentication));
}

#[test]
fn adapter_stream_decoder() {
    use wit_adapter::GuestStreamDecoder;

    let decoder = <<AGlue as wit_adapter::Guest>::StreamDecoder as GuestStreamDecoder>::new(
        wit_ctx(wit_types::Operation::Chat),
        200,
        vec![("k".to_owned(), "v".to_owned())],
    );
    let items = decoder
        .push(wit_adapter::Frame {
            event: Some("delta".to_owned()),
            data: b"{\"x\":1}".to_vec(),
        })
        .expect("items");
    assert_eq!(items.len(), 4);
    let wit_adapter::StreamItem::Chunk(first) = &items[0] else {
        panic!("chunk")
    };
    assert!(matches!(first.kind, wit_adapter::ChunkKind::Content));
    assert_eq!(
        (first.event.as_deref(), first.data.as_str()),
        (Some("delta"), "{\"x\":1}")
    );
    let wit_adapter::StreamItem::Chunk(second) = &items[1] else {
        panic!("chunk")
    };
    assert!(matches!(second.kind, wit_adapter::ChunkKind::Meta));
    assert_eq!((second.event.as_deref(), second.data.as_str()), (None, "1"));
    assert!(
        matches!(&items[2], wit_adapter::StreamItem::Chunk(c) if matches!(c.kind, wit_adapter::ChunkKind::Usage))
    );
    assert!(
        matches!(&items[3], wit_adapter::StreamItem::Usage(u) if u.reasoning_tokens == Some(5))
    );

    // State persists across calls through the RefCell.
    let items = decoder
        .push(wit_adapter::Frame {
            event: None,
            data: b"y".to_vec(),
        })
        .expect("items");
    assert!(matches!(&items[1], wit_adapter::StreamItem::Chunk(c) if c.data == "2"));

    let err = decoder
        .push(wit_adapter::Frame {
            event: None,
            data: b"fail".to_vec(),
        })
        .expect_err("error");
    assert!(matches!(err.class, wit_types::ErrorClass::Overloaded));

    let items = decoder.finish().expect("finish");
    assert!(
        matches!(&items[0], wit_adapter::StreamItem::Chunk(c) if c.data == r#"200 [("k", "v")]"#)
    );
    assert!(matches!(items[1], wit_adapter::StreamItem::Done));
}

// ------------------------------------------------------------------ dialect

struct MockDialect;

impl Dialect for MockDialect {
    type Encoder = MockEncoder;

    fn info() -> PluginInfo {
        PluginInfo::dialect("mock-dialect", "0.1.0", "mock")
    }

    fn decode_request(request: &IngressRequest) -> Result<DecodedRequest, PluginError> {
        if request.body.is_empty() {
            return Err(full_error());
        }
        Ok(DecodedRequest {
            model: request.path_model.clone().unwrap_or_default(),
            streaming: request.endpoint_streams.unwrap_or(false),
            body: format!(
                "{:?} {} {}",
                request.operation,
                request.headers.len(),
                String::from_utf8_lossy(&request.body)
            ),
        })
    }

    fn encode_response(
        ctx: &EgressContext,
        body: &str,
        usage: Option<Usage>,
    ) -> Result<String, PluginError> {
        Ok(format!(
            "{} {} {} {body} {:?}",
            ctx.request_id,
            ctx.requested_model,
            ctx.received_at_ms,
            usage.map(|u| u.input_tokens)
        ))
    }

    fn encode_error(error: &PluginError) -> ErrorResponse {
        ErrorResponse {
            status: error.status.unwrap_or(500),
            body: format!("{} {}", error.class, error.message),
        }
    }

    fn encode_models(models: &[ModelEntry]) -> String {
        models
            .iter()
            .map(|m| format!("{}:{}:{}", m.id, m.owned_by, m.created))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn encode_token_count(ctx: &EgressContext, input_tokens: u32) -> String {
        format!("{} {input_tokens}", ctx.request_id)
    }
}

struct MockEncoder {
    model: String,
    chunks: usize,
}

impl StreamEncoder for MockEncoder {
    fn new(ctx: EgressContext) -> Self {
        Self {
            model: ctx.requested_model,
            chunks: 0,
        }
    }

    fn push(&mut self, chunk: &str) -> Result<Vec<SseEvent>, PluginError> {
        self.chunks += 1;
        if chunk == "bad" {
            return Err(PluginError::bad_request("bad chunk"));
        }
        Ok(vec![
            SseEvent::named("delta", chunk),
            SseEvent::data(self.chunks.to_string()),
        ])
    }

    fn finish(&mut self, usage: Option<Usage>) -> Result<Vec<SseEvent>, PluginError> {
        Ok(vec![SseEvent::named(
            "stop",
            format!("{} {:?}", self.model, usage.map(|u| u.output_tokens)),
        )])
    }

    fn abort(&mut self, error: &PluginError) -> Vec<SseEvent> {
        vec![SseEvent::named(
            "error",
            format!("{} {:?}", error.class, error.retry_after_ms),
        )]
    }
}

orch_plugin_sdk::export_dialect!(MockDialect);

type DGlue = DialectGlue<MockDialect>;

fn egress() -> wit_dialect::EgressContext {
    wit_dialect::EgressContext {
        request_id: "r1".to_owned(),
        requested_model: "m".to_owned(),
        received_at_ms: 7,
    }
}

fn wit_dialect_usage() -> wit_dialect_types::Usage {
    wit_dialect_types::Usage {
        input_tokens: 11,
        output_tokens: 12,
        cached_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_tokens: None,
    }
}

#[test]
fn dialect_functions() {
    use wit_dialect::Guest;

    let info = DGlue::info();
    assert!(matches!(info.kind, wit_dialect_types::PluginKind::Dialect));
    assert_eq!(
        (info.id.as_str(), info.dialect.as_str()),
        ("mock-dialect", "mock")
    );

    let decoded = DGlue::decode_request(wit_dialect::IngressRequest {
        operation: wit_dialect_types::Operation::CountTokens,
        path_model: Some("gemini-pro".to_owned()),
        endpoint_streams: Some(true),
        headers: vec![("anthropic-version".to_owned(), "2023-06-01".to_owned())],
        body: b"{}".to_vec(),
    })
    .expect("decoded");
    assert_eq!(
        (
            decoded.model.as_str(),
            decoded.streaming,
            decoded.body.as_str()
        ),
        ("gemini-pro", true, "CountTokens 1 {}")
    );

    let err = DGlue::decode_request(wit_dialect::IngressRequest {
        operation: wit_dialect_types::Operation::Chat,
        path_model: None,
        endpoint_streams: None,
        headers: Vec::new(),
        body: Vec::new(),
    })
    .expect_err("error");
    assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(err.retry_after_ms, Some(1_000));

    let encoded = DGlue::encode_response(egress(), "{}".to_owned(), Some(wit_dialect_usage()))
        .expect("encoded");
    assert_eq!(encoded, "r1 m 7 {} Some(11)");

    let response = DGlue::encode_error(wit_dialect_types::PluginError {
        class: wit_dialect_types::ErrorClass::ContextLength,
        retryable: false,
        status: Some(400),
        code: None,
        param: None,
        message: "too long".to_owned(),
        retry_after_ms: None,
    });
    assert_eq!(
        (response.status, response.body.as_str()),
        (400, "context-length too long")
    );

    let models = DGlue::encode_models(vec![
        wit_dialect::ModelEntry {
            id: "a".to_owned(),
            owned_by: "p1".to_owned(),
            created: 1,
        },
        wit_dialect::ModelEntry {
            id: "b".to_owned(),
            owned_by: "p2".to_owned(),
            created: 2,
        },
    ]);
    assert_eq!(models, "a:p1:1,b:p2:2");
    assert_eq!(DGlue::encode_token_count(egress(), 99), "r1 99");
}

#[test]
fn dialect_stream_encoder() {
    use wit_dialect::GuestStreamEncoder;

    let encoder =
        <<DGlue as wit_dialect::Guest>::StreamEncoder as GuestStreamEncoder>::new(egress());
    let events = encoder.push("{\"a\":1}".to_owned()).expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].event.as_deref(), events[0].data.as_str()),
        (Some("delta"), "{\"a\":1}")
    );
    assert_eq!(
        (events[1].event.as_deref(), events[1].data.as_str()),
        (None, "1")
    );
    let events = encoder.push("x".to_owned()).expect("events");
    assert_eq!(events[1].data, "2");
    let err = encoder.push("bad".to_owned()).expect_err("error");
    assert!(matches!(
        err.class,
        wit_dialect_types::ErrorClass::BadRequest
    ));
    let events = encoder.finish(Some(wit_dialect_usage())).expect("events");
    assert_eq!(events[0].data, "m Some(12)");
    let events = encoder.abort(wit_dialect_types::PluginError {
        class: wit_dialect_types::ErrorClass::Timeout,
        retryable: true,
        status: None,
        code: None,
        param: None,
        message: String::new(),
        retry_after_ms: Some(5),
    });
    assert_eq!(
        (events[0].event.as_deref(), events[0].data.as_str()),
        (Some("error"), "timeout Some(5)")
    );
}

// -------------------------------------------------------------- transformer

struct MockTransformer;

impl Transformer for MockTransformer {
    type Filter = MockFilter;

    fn info() -> PluginInfo {
        PluginInfo::transformer("mock-transformer", "0.0.1")
    }

    fn check_config(config: &str) -> Result<(), PluginError> {
        if config == "{}" {
            Ok(())
        } else {
            Err(PluginError::bad_request("bad config"))
        }
    }

    fn on_request(ctx: &TransformContext, body: &str) -> Result<RequestAction, PluginError> {
        Ok(match body {
            "pass" => RequestAction::Pass,
            "reject" => RequestAction::Reject(Rejection::new(
                403,
                "blocked_by_policy",
                ctx.request_id.clone(),
            )),
            _ => RequestAction::Replace(format!(
                "{} {} {} {} {:?} {}",
                ctx.request_id,
                ctx.ingress_dialect,
                ctx.requested_model,
                ctx.streaming,
                ctx.client_key_id,
                ctx.config
            )),
        })
    }
}

struct MockFilter {
    held: Vec<String>,
}

impl StreamFilter for MockFilter {
    fn new(_ctx: TransformContext) -> Self {
        Self { held: Vec::new() }
    }

    fn on_chunk(&mut self, chunk: String) -> Result<Vec<String>, PluginError> {
        self.held.push(chunk);
        if self.held.len() == 2 {
            Ok(std::mem::take(&mut self.held))
        } else {
            Ok(Vec::new())
        }
    }

    fn on_end(&mut self, usage: Option<Usage>) -> Result<Vec<String>, PluginError> {
        let mut rest = std::mem::take(&mut self.held);
        rest.push(format!("{:?}", usage.map(|u| u.input_tokens)));
        Ok(rest)
    }
}

orch_plugin_sdk::export_transformer!(MockTransformer);

type TGlue = TransformerGlue<MockTransformer>;

fn transform_ctx() -> wit_transformer::TransformContext {
    wit_transformer::TransformContext {
        request_id: "r2".to_owned(),
        ingress_dialect: "gemini".to_owned(),
        requested_model: "m".to_owned(),
        streaming: false,
        client_key_id: Some("key-1".to_owned()),
        config: "{}".to_owned(),
    }
}

#[test]
fn transformer_functions() {
    use wit_transformer::Guest;

    let info = TGlue::info();
    assert!(matches!(
        info.kind,
        wit_transformer_types::PluginKind::Transformer
    ));
    assert_eq!(
        (info.id.as_str(), info.dialect.as_str()),
        ("mock-transformer", "")
    );
    assert!(TGlue::check_config("{}".to_owned()).is_ok());
    assert!(TGlue::check_config("[]".to_owned()).is_err());

    assert!(matches!(
        TGlue::on_request(transform_ctx(), "pass".to_owned()),
        Ok(wit_transformer::RequestAction::Pass)
    ));
    let Ok(wit_transformer::RequestAction::Reject(rejection)) =
        TGlue::on_request(transform_ctx(), "reject".to_owned())
    else {
        panic!("reject")
    };
    assert_eq!(
        (
            rejection.status,
            rejection.code.as_str(),
            rejection.message.as_str()
        ),
        (403, "blocked_by_policy", "r2")
    );
    let Ok(wit_transformer::RequestAction::Replace(body)) =
        TGlue::on_request(transform_ctx(), "x".to_owned())
    else {
        panic!("replace")
    };
    assert_eq!(body, "r2 gemini m false Some(\"key-1\") {}");

    // Default on_response passes.
    assert!(matches!(
        TGlue::on_response(transform_ctx(), "{}".to_owned(), None),
        Ok(wit_transformer::ResponseAction::Pass)
    ));
}

#[test]
fn transformer_stream_filter() {
    use wit_transformer::GuestStreamFilter;

    let filter = <<TGlue as wit_transformer::Guest>::StreamFilter as GuestStreamFilter>::new(
        transform_ctx(),
    );
    assert_eq!(
        filter.on_chunk("a".to_owned()).expect("held"),
        Vec::<String>::new()
    );
    assert_eq!(
        filter.on_chunk("b".to_owned()).expect("released"),
        ["a", "b"]
    );
    assert_eq!(
        filter.on_chunk("c".to_owned()).expect("held"),
        Vec::<String>::new()
    );
    let usage = wit_transformer_types::Usage {
        input_tokens: 8,
        output_tokens: 0,
        cached_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_tokens: None,
    };
    assert_eq!(filter.on_end(Some(usage)).expect("rest"), ["c", "Some(8)"]);
}

#[test]
fn pass_through_filter_and_unsupported_stream() {
    use orch_plugin_sdk::{PassThroughFilter, UnsupportedStream};

    let ctx = TransformContext {
        request_id: String::new(),
        ingress_dialect: String::new(),
        requested_model: String::new(),
        streaming: true,
        client_key_id: None,
        config: "{}".to_owned(),
    };
    let mut filter = PassThroughFilter::new(ctx);
    assert_eq!(filter.on_chunk("x".to_owned()).expect("x"), ["x"]);
    assert_eq!(filter.on_end(None).expect("end"), Vec::<String>::new());

    let ctx = RequestContext {
        request_id: String::new(),
        operation: Operation::Chat,
        requested_model: String::new(),
        upstream_model: String::new(),
        streaming: true,
        form: PayloadForm::Canonical,
        ingress_dialect: String::new(),
        received_at_ms: 0,
        provider: Provider {
            name: String::new(),
            base_url: String::new(),
            options: String::new(),
        },
    };
    let mut decoder = UnsupportedStream::new(ctx, 200, Vec::new());
    assert_eq!(
        decoder
            .push(Frame::data("x"))
            .expect_err("unsupported")
            .class,
        ErrorClass::Unsupported
    );
    assert_eq!(
        decoder.finish().expect_err("unsupported").class,
        ErrorClass::Unsupported
    );
}
