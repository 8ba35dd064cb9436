use orch_plugin_sdk::{
    Adapter, ChunkKind, Credential, ErrorClass, Frame, Framing, JsonEdit, Operation, PayloadForm,
    PluginError, PluginKind, Provider, RequestBody, RequestContext, StreamChunk, StreamDecoder,
    StreamItem, Usage, capability,
};
use serde_json::{Value, json};

use crate::{OpenAi, OpenAiDecoder};

fn provider(base_url: &str, options: Value) -> Provider {
    Provider {
        name: "test".to_owned(),
        base_url: base_url.to_owned(),
        options: options.to_string(),
    }
}

fn ctx(streaming: bool) -> RequestContext {
    ctx_with(streaming, json!({}))
}

fn ctx_with(streaming: bool, options: Value) -> RequestContext {
    RequestContext {
        request_id: "req-1".to_owned(),
        operation: Operation::Chat,
        requested_model: "my-alias".to_owned(),
        upstream_model: "gpt-4o-mini".to_owned(),
        streaming,
        form: PayloadForm::Canonical,
        ingress_dialect: "openai".to_owned(),
        received_at_ms: 1_700_000_000_000,
        provider: provider("https://api.openai.com/v1", options),
    }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn edits(body: &RequestBody) -> Vec<(String, Option<Value>)> {
    let RequestBody::Forward(edits) = body else {
        panic!("expected a forward body, got {body:?}")
    };
    edits
        .iter()
        .map(|JsonEdit { field, value }| {
            (
                field.clone(),
                value
                    .as_ref()
                    .map(|v| serde_json::from_str(v).expect("edit value is JSON")),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- info, config

#[test]
fn info() {
    let info = OpenAi::info();
    assert_eq!(info.id, "openai");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.kind, PluginKind::Adapter);
    assert_eq!(info.dialect, "openai");
    assert_eq!(info.capabilities, capability::FULL_CHAT);
    assert!(!info.description.is_empty());
}

#[test]
fn check_provider_accepts_good_configurations() {
    for url in [
        "https://api.openai.com/v1",
        "https://api.openai.com/v1/",
        "http://localhost:11434/v1",
        "http://127.0.0.1:8000",
        "HTTPS://OpenRouter.ai/api/v1",
        "http://[::1]:8000/v1",
    ] {
        assert_eq!(
            OpenAi::check_provider(&provider(url, json!({}))),
            Ok(()),
            "{url}"
        );
    }
    let options = json!({
        "organization": "org-1",
        "project": "proj_1",
        "headers": {"HTTP-Referer": "https://example.com", "X-Title": "gateway"},
        "stream_usage": false,
    });
    assert_eq!(
        OpenAi::check_provider(&provider("https://openrouter.ai/api/v1", options)),
        Ok(())
    );
    let empty = Provider {
        options: String::new(),
        ..provider("https://x.test", json!({}))
    };
    assert_eq!(OpenAi::check_provider(&empty), Ok(()));
}

#[test]
fn check_provider_rejects_bad_base_urls() {
    for url in [
        "api.openai.com/v1",
        "ftp://api.openai.com",
        "https://",
        "https:///v1",
        "https://user:pass@api.openai.com/v1",
        "https://api.openai.com/v1?x=1",
        "https://api.openai.com/v1#frag",
        "https://api openai.com",
        "",
    ] {
        let err = OpenAi::check_provider(&provider(url, json!({}))).expect_err(url);
        assert_eq!(err.class, ErrorClass::BadRequest, "{url}");
        assert!(err.message.contains("base_url"), "{url}: {}", err.message);
    }
}

#[test]
fn check_provider_rejects_bad_options_naming_the_key() {
    let cases = [
        (json!({"organisation": "x"}), "`organisation`"),
        (
            json!({"organization": 1}),
            "`organization` must be a string",
        ),
        (json!({"project": null}), "`project` must be a string"),
        (
            json!({"project": "a\nb"}),
            "`project` must not contain control characters",
        ),
        (json!({"headers": ["x"]}), "`headers` must be an object"),
        (
            json!({"headers": {"x-a": 1}}),
            "value of `x-a` must be a string",
        ),
        (
            json!({"headers": {"bad name": "v"}}),
            "`bad name` is not a valid header name",
        ),
        (
            json!({"headers": {"Authorization": "Bearer x"}}),
            "`Authorization` cannot be set here",
        ),
        (
            json!({"headers": {"x-a": "v\r\nx-b: injected"}}),
            "value of `x-a` must not contain control characters",
        ),
        (
            json!({"stream_usage": "yes"}),
            "`stream_usage` must be a boolean",
        ),
        (json!([1]), "must be a JSON object"),
    ];
    for (options, needle) in cases {
        let err = OpenAi::check_provider(&provider("https://api.openai.com/v1", options.clone()))
            .expect_err("invalid");
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(err.message.contains(needle), "{options}: {}", err.message);
        assert!(err.message.contains("provider `test`"), "{}", err.message);
    }
}

// -------------------------------------------------------------- build_request

#[test]
fn build_request_non_streaming() {
    let request = OpenAi::build_request(&ctx(false), r#"{"model":"my-alias","messages":[]}"#)
        .expect("request");
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://api.openai.com/v1/chat/completions");
    assert_eq!(
        request.headers,
        headers(&[
            ("content-type", "application/json"),
            ("accept", "application/json")
        ])
    );
    assert_eq!(request.credential, Credential::Bearer);
    assert_eq!(request.framing, Framing::Sse);
    assert_eq!(
        edits(&request.body),
        [("model".to_owned(), Some(json!("gpt-4o-mini")))]
    );
}

#[test]
fn build_request_joins_the_url_without_double_slash() {
    let mut ctx = ctx(false);
    ctx.provider.base_url = "http://localhost:11434/v1/".to_owned();
    let request = OpenAi::build_request(&ctx, "{}").expect("request");
    assert_eq!(request.url, "http://localhost:11434/v1/chat/completions");
}

#[test]
fn build_request_model_is_a_json_string() {
    let mut ctx = ctx(false);
    ctx.upstream_model = "weird \"model\"\\name".to_owned();
    let request = OpenAi::build_request(&ctx, "{}").expect("request");
    assert_eq!(
        edits(&request.body),
        [("model".to_owned(), Some(json!("weird \"model\"\\name")))]
    );
}

#[test]
fn build_request_streaming_asks_for_usage() {
    let request = OpenAi::build_request(&ctx(true), r#"{"model":"x","stream":true,"messages":[]}"#)
        .expect("request");
    assert_eq!(
        request.headers,
        headers(&[
            ("content-type", "application/json"),
            ("accept", "text/event-stream")
        ])
    );
    assert_eq!(
        edits(&request.body),
        [
            ("model".to_owned(), Some(json!("gpt-4o-mini"))),
            ("stream".to_owned(), Some(json!(true))),
            (
                "stream_options".to_owned(),
                Some(json!({"include_usage": true}))
            ),
        ]
    );
}

#[test]
fn build_request_streaming_keeps_the_clients_stream_options() {
    let payload = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true,
        "stream_options":{"include_usage":false,"continuous_usage_stats":true},"tools":[{"type":"function"}]}"#;
    let request = OpenAi::build_request(&ctx(true), payload).expect("request");
    let RequestBody::Forward(raw) = &request.body else {
        panic!("forward")
    };
    assert_eq!(raw[2].field, "stream_options");
    assert_eq!(
        raw[2].value.as_deref(),
        Some(r#"{"include_usage":true,"continuous_usage_stats":true}"#)
    );
}

#[test]
fn build_request_streaming_without_stream_usage() {
    let request = OpenAi::build_request(
        &ctx_with(true, json!({"stream_usage": false})),
        "not even json",
    )
    .expect("request");
    assert_eq!(
        edits(&request.body),
        [
            ("model".to_owned(), Some(json!("gpt-4o-mini"))),
            ("stream".to_owned(), Some(json!(true)))
        ]
    );
}

#[test]
fn build_request_rejects_bad_stream_options() {
    let err = OpenAi::build_request(&ctx(true), r#"{"stream_options":true}"#).expect_err("invalid");
    assert_eq!(
        (err.class, err.param.as_deref()),
        (ErrorClass::BadRequest, Some("stream_options"))
    );
    let err = OpenAi::build_request(&ctx(true), r#"{"messages":["#).expect_err("invalid");
    assert_eq!(err.class, ErrorClass::BadRequest);
    // null means "not set"
    let request = OpenAi::build_request(&ctx(true), r#"{"stream_options":null}"#).expect("request");
    assert_eq!(
        edits(&request.body)[2].1,
        Some(json!({"include_usage": true}))
    );
}

#[test]
fn build_request_sends_configured_headers() {
    let options = json!({
        "organization": "org-1",
        "project": "proj-1",
        "headers": {"HTTP-Referer": "https://example.com", "x-title": "gateway"},
    });
    let request = OpenAi::build_request(&ctx_with(false, options), "{}").expect("request");
    assert_eq!(
        request.headers,
        headers(&[
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("openai-organization", "org-1"),
            ("openai-project", "proj-1"),
            ("http-referer", "https://example.com"),
            ("x-title", "gateway"),
        ])
    );
}

#[test]
fn build_request_supports_only_chat() {
    for operation in [Operation::Embeddings, Operation::CountTokens] {
        let ctx = RequestContext {
            operation,
            ..ctx(false)
        };
        let err = OpenAi::build_request(&ctx, "{}").expect_err("unsupported");
        assert_eq!(err.class, ErrorClass::Unsupported);
        assert!(err.retryable);
    }
}

// ------------------------------------------------------------- parse_response

#[test]
fn parse_response_rewrites_model_and_keeps_everything_else_in_order() {
    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_1","x_vendor":{"z":1,"a":2}}"#;
    let parsed = OpenAi::parse_response(&ctx(false), 200, &[], body.as_bytes()).expect("parsed");
    assert_eq!(
        parsed.body,
        body.replace("gpt-4o-mini-2024-07-18", "my-alias")
    );
    assert_eq!(
        parsed.usage,
        Some(Usage {
            input_tokens: 9,
            output_tokens: 2,
            cached_input_tokens: Some(0),
            cache_write_input_tokens: None,
            reasoning_tokens: Some(0),
        })
    );
}

#[test]
fn parse_response_without_usage_or_model() {
    let parsed = OpenAi::parse_response(&ctx(false), 200, &[], br#"{"choices":[],"error":null}"#)
        .expect("parsed");
    assert_eq!(
        parsed.body,
        r#"{"choices":[],"error":null,"model":"my-alias"}"#
    );
    assert_eq!(parsed.usage, None);
}

#[test]
fn parse_response_returns_an_error_hidden_in_a_200() {
    let body = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
    let err = OpenAi::parse_response(&ctx(false), 200, &[], body).expect_err("error");
    assert_eq!(err.class, ErrorClass::Server); // no numeric code: the provider broke its protocol
    assert!(err.retryable);
    assert_eq!(err.message, "Rate limit reached");
    assert_eq!(err.status, Some(200));

    // OpenRouter puts the HTTP status in `code`.
    let body = br#"{"error":{"message":"Provider returned error","code":429}}"#;
    let err = OpenAi::parse_response(&ctx(false), 200, &[], body).expect_err("error");
    assert_eq!(err.class, ErrorClass::RateLimited);

    let body = br#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
    let err = OpenAi::parse_response(&ctx(false), 200, &[], body).expect_err("error");
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::ContextLength, false)
    );
}

#[test]
fn parse_response_rejects_non_json_and_non_objects() {
    for body in [&b"<html>"[..], b"", b"[1,2]", b"\"text\""] {
        let err = OpenAi::parse_response(&ctx(false), 200, &[], body).expect_err("invalid");
        assert_eq!((err.class, err.retryable), (ErrorClass::Server, true));
    }
}

// ------------------------------------------------------------- classify_error

fn classify(status: u16, body: &str) -> PluginError {
    OpenAi::classify_error(&ctx(false), status, &[], body.as_bytes())
}

#[test]
fn classify_error_openai_codes() {
    let err = classify(
        400,
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
    );
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::ContextLength, false)
    );
    assert_eq!(err.param.as_deref(), Some("messages"));
    assert_eq!(err.code.as_deref(), Some("context_length_exceeded"));

    let err = classify(
        429,
        r#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    );
    assert_eq!((err.class, err.retryable), (ErrorClass::RateLimited, true));
    assert!(
        err.message.contains("quota is exhausted"),
        "{}",
        err.message
    );
    assert!(err.message.contains("You exceeded your current quota."));

    let err = classify(
        400,
        r#"{"error":{"message":"filtered","type":null,"code":"content_filter"}}"#,
    );
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::ContentFilter, false)
    );
    let err = classify(
        400,
        r#"{"error":{"message":"no","type":"invalid_request_error","code":"content_policy_violation"}}"#,
    );
    assert_eq!(err.class, ErrorClass::ContentFilter);

    let err = classify(
        400,
        r#"{"error":{"message":"The model `x` does not exist","code":"model_not_found"}}"#,
    );
    assert_eq!((err.class, err.retryable), (ErrorClass::NotFound, true));
}

#[test]
fn classify_error_context_length_from_words() {
    // vLLM: no code, the message says it.
    let err = classify(
        400,
        r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}"#,
    );
    assert_eq!(err.class, ErrorClass::ContextLength);
    // Only for bad requests: a 500 mentioning it stays a server error.
    assert_eq!(
        classify(500, r#"{"error":{"message":"maximum context length bug"}}"#).class,
        ErrorClass::Server
    );
}

#[test]
fn classify_error_generic_statuses() {
    let err = OpenAi::classify_error(
        &ctx(false),
        429,
        &headers(&[("retry-after-ms", "1500"), ("retry-after", "2")]),
        br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
    );
    assert_eq!(
        (err.class, err.retryable, err.retry_after_ms),
        (ErrorClass::RateLimited, true, Some(1_500))
    );
    assert_eq!(err.status, Some(429));
    assert_eq!(classify(401, "").class, ErrorClass::Authentication);
    assert_eq!(classify(503, "").class, ErrorClass::Overloaded);
    assert_eq!(
        classify(502, "bad gateway").message,
        "upstream returned HTTP 502 Bad Gateway"
    );
}

// ---------------------------------------------------------------- the decoder

fn decoder() -> OpenAiDecoder {
    OpenAiDecoder::new(ctx(true), 200, Vec::new())
}

fn push(decoder: &mut OpenAiDecoder, data: &str) -> Result<Vec<StreamItem>, PluginError> {
    decoder.push(Frame::data(data))
}

fn chunk(kind: ChunkKind, data: &str) -> StreamItem {
    StreamItem::Chunk(StreamChunk::new(kind, data))
}

#[test]
fn decoder_role_chunk_is_meta() {
    let mut d = decoder();
    let items = push(
        &mut d,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}]}"#,
    )
    .expect("items");
    assert_eq!(
        items,
        [chunk(
            ChunkKind::Meta,
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"my-alias","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}]}"#
        )]
    );
}

#[test]
fn decoder_content_chunk_keeps_field_order() {
    let mut d = decoder();
    let items = push(
        &mut d,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#,
    )
    .expect("items");
    let [StreamItem::Chunk(chunk)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(chunk.kind, ChunkKind::Content);
    assert_eq!(chunk.event, None);
    assert_eq!(
        chunk.data,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"my-alias","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#
    );
}

#[test]
fn decoder_tool_call_chunk_is_content() {
    let mut d = decoder();
    let items = push(
        &mut d,
        r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
    )
    .expect("items");
    assert!(matches!(
        items.as_slice(),
        [StreamItem::Chunk(StreamChunk {
            kind: ChunkKind::Content,
            ..
        })]
    ));
}

#[test]
fn decoder_finish_reason_chunk_is_meta() {
    let mut d = decoder();
    let items = push(
        &mut d,
        r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    )
    .expect("items");
    assert!(matches!(
        items.as_slice(),
        [StreamItem::Chunk(StreamChunk {
            kind: ChunkKind::Meta,
            ..
        })]
    ));
}

#[test]
fn decoder_usage_chunk() {
    let mut d = decoder();
    let items = push(
        &mut d,
        r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"completion_tokens_details":{"reasoning_tokens":1}}}"#,
    )
    .expect("items");
    assert_eq!(
        items,
        [
            StreamItem::Usage(Usage {
                input_tokens: 10,
                output_tokens: 3,
                reasoning_tokens: Some(1),
                ..Usage::default()
            }),
            chunk(
                ChunkKind::Usage,
                r#"{"id":"c1","object":"chat.completion.chunk","model":"my-alias","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"completion_tokens_details":{"reasoning_tokens":1}}}"#
            ),
        ]
    );
    // `usage: null` on ordinary chunks (include_usage streams) is no report.
    let items = push(
        &mut d,
        r#"{"model":"m","choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}"#,
    )
    .expect("items");
    assert_eq!(items.len(), 1);
}

#[test]
fn decoder_done_then_finish() {
    let mut d = decoder();
    assert_eq!(push(&mut d, "[DONE]").expect("done"), [StreamItem::Done]);
    assert_eq!(push(&mut d, r#"{"late":true}"#).expect("ignored"), []);
    assert_eq!(d.finish().expect("clean end"), []);
}

#[test]
fn decoder_ignores_empty_frames() {
    let mut d = decoder();
    assert_eq!(push(&mut d, "").expect("nothing"), []);
    assert_eq!(push(&mut d, "  \n").expect("nothing"), []);
}

#[test]
fn decoder_error_event() {
    let mut d = decoder();
    let err = push(
        &mut d,
        r#"{"error":{"message":"Rate limit exceeded","type":"rate_limit_error","code":null}}"#,
    )
    .expect_err("error");
    assert_eq!((err.class, err.retryable), (ErrorClass::RateLimited, true));
    assert_eq!(err.code.as_deref(), Some("rate_limit_error"));
    assert_eq!(err.message, "Rate limit exceeded");

    let err = push(&mut d, r#"{"error":{"message":"The server is overloaded","type":"server_error","code":"overloaded"}}"#)
        .expect_err("error");
    assert_eq!(err.class, ErrorClass::Overloaded);

    let err = push(
        &mut d,
        r#"{"error":{"message":"boom","type":"invalid_request_error"}}"#,
    )
    .expect_err("error");
    assert_eq!(
        (err.class, err.retryable, err.status),
        (ErrorClass::Server, true, Some(200))
    );

    let err = d
        .push(Frame {
            event: Some("error".to_owned()),
            data: br#"{"message":"upstream died"}"#.to_vec(),
        })
        .expect_err("error");
    assert_eq!(
        (err.class, err.message.as_str()),
        (ErrorClass::Server, "upstream died")
    );

    let err = d
        .push(Frame {
            event: Some("error".to_owned()),
            data: b"{}".to_vec(),
        })
        .expect_err("error");
    assert_eq!(err.message, "upstream reported an error in the stream");
}

#[test]
fn decoder_truncated_stream() {
    let mut d = decoder();
    push(
        &mut d,
        r#"{"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
    )
    .expect("chunk");
    let err = d.finish().expect_err("truncated");
    assert_eq!((err.class, err.retryable), (ErrorClass::Server, true));
    assert_eq!(err.message, "upstream stream ended before [DONE]");
}

#[test]
fn decoder_rejects_garbage() {
    let mut d = decoder();
    for data in ["{not json", "[1]", "42"] {
        let err = push(&mut d, data).expect_err(data);
        assert_eq!(
            (err.class, err.retryable),
            (ErrorClass::Server, true),
            "{data}"
        );
    }
    let err = d
        .push(Frame::data(vec![0xff, 0xfe]))
        .expect_err("not utf-8");
    assert_eq!(err.class, ErrorClass::Server);
}

// ------------------------------------------------------------------ the probe

#[test]
fn probe_request_lists_models() {
    let probe = OpenAi::probe_request(&provider(
        "https://api.groq.com/openai/v1/",
        json!({"project": "p"}),
    ))
    .expect("probe");
    assert_eq!(probe.method, "GET");
    assert_eq!(probe.url, "https://api.groq.com/openai/v1/models");
    assert_eq!(probe.credential, Credential::Bearer);
    assert_eq!(probe.body, RequestBody::Empty);
    assert_eq!(
        probe.headers,
        headers(&[("accept", "application/json"), ("openai-project", "p")])
    );
}

#[test]
fn judge_probe() {
    let p = provider("https://api.openai.com/v1", json!({}));
    assert_eq!(
        OpenAi::judge_probe(
            &p,
            200,
            &[],
            br#"{"object":"list","data":[{"id":"gpt-4o"}]}"#
        ),
        Ok(())
    );
    assert_eq!(
        OpenAi::judge_probe(&p, 200, &[], br#"{"object":"list","data":[]}"#),
        Ok(())
    );
    let err = OpenAi::judge_probe(&p, 200, &[], b"<html>").expect_err("not a list");
    assert_eq!(err.class, ErrorClass::Server);
    let err = OpenAi::judge_probe(&p, 200, &[], br#"{"data":{}}"#).expect_err("not a list");
    assert_eq!(err.class, ErrorClass::Server);
    let err = OpenAi::judge_probe(
        &p,
        401,
        &[],
        br#"{"error":{"message":"Incorrect API key","code":"invalid_api_key"}}"#,
    )
    .expect_err("unauthorized");
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::Authentication, true)
    );
}

#[test]
fn parse_response_keeps_number_spelling_and_compacts_line_breaks() {
    let body = "{\n  \"id\": \"x\",\n  \"model\": \"m\",\n  \"choices\": [{\"logprobs\": {\"content\": [{\"logprob\": -1.2e-5}]}}],\n  \"big\": 12345678901234567890123\n}";
    let parsed = OpenAi::parse_response(&ctx(false), 200, &[], body.as_bytes()).expect("parsed");
    assert_eq!(
        parsed.body,
        r#"{"id":"x","model":"my-alias","choices":[{"logprobs": {"content": [{"logprob": -1.2e-5}]}}],"big":12345678901234567890123}"#
    );
}

#[test]
fn decoder_output_is_one_line() {
    let mut d = decoder();
    let items = push(&mut d, "{\"model\": \"m\",\n \"choices\": [\n{\"index\": 0, \"delta\": {\"content\": \"a\\nb\"}}]}")
        .expect("items");
    let [StreamItem::Chunk(chunk)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(
        chunk.data,
        r#"{"model":"my-alias","choices":[{"index":0,"delta":{"content":"a\nb"}}]}"#
    );
    assert_eq!(chunk.kind, ChunkKind::Content);
}

// ---------------------------------------------------------------- Azure OpenAI

const AZURE_BASE: &str = "https://my-resource.openai.azure.com";

fn azure_ctx(streaming: bool, azure: Value) -> RequestContext {
    RequestContext {
        provider: provider(AZURE_BASE, json!({"azure": azure})),
        ..ctx(streaming)
    }
}

#[test]
fn azure_request_goes_to_the_deployment_with_api_key() {
    let ctx = azure_ctx(
        false,
        json!({"deployment": "gpt4o-prod", "api_version": "2025-04-01-preview"}),
    );
    let request =
        OpenAi::build_request(&ctx, r#"{"model":"my-alias","messages":[]}"#).expect("request");
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://my-resource.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2025-04-01-preview"
    );
    assert_eq!(request.credential, Credential::Header("api-key".to_owned()));
    assert_eq!(
        request.headers,
        headers(&[
            ("content-type", "application/json"),
            ("accept", "application/json")
        ])
    );
    // The body is OpenAI's: `model` is harmless for Azure and kept consistent.
    assert_eq!(
        edits(&request.body),
        [("model".to_owned(), Some(json!("gpt-4o-mini")))]
    );
}

#[test]
fn azure_deployment_defaults_to_the_upstream_model() {
    let mut ctx = azure_ctx(true, json!({}));
    ctx.provider.base_url = format!("{AZURE_BASE}/");
    let request = OpenAi::build_request(&ctx, r#"{"messages":[],"stream":true}"#).expect("request");
    assert_eq!(
        request.url,
        "https://my-resource.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(crate::AZURE_DEFAULT_API_VERSION, "2024-10-21");
    assert_eq!(request.credential, Credential::Header("api-key".to_owned()));
    // Streaming works as for OpenAI (Azure supports stream_options since 2024-10-21).
    assert_eq!(
        edits(&request.body),
        [
            ("model".to_owned(), Some(json!("gpt-4o-mini"))),
            ("stream".to_owned(), Some(json!(true))),
            (
                "stream_options".to_owned(),
                Some(json!({"include_usage": true}))
            ),
        ]
    );
    // The upstream model must be usable as a deployment name.
    for model in ["gpt 4o", "a/b", "x?y", "", ".hidden"] {
        model.clone_into(&mut ctx.upstream_model);
        let err = OpenAi::build_request(&ctx, "{}").expect_err(model);
        assert_eq!(
            (err.class, err.param.as_deref()),
            (ErrorClass::BadRequest, Some("model")),
            "{model:?}"
        );
    }
}

#[test]
fn azure_check_provider() {
    for options in [
        json!({"azure": {}}),
        json!({"azure": {"deployment": "gpt-4o_2024.08", "api_version": "2024-10-21"}}),
        json!({"azure": {"api_version": "2025-04-01-preview"}, "headers": {"x-ms-client-request-id": "gw"}, "stream_usage": false}),
    ] {
        assert_eq!(
            OpenAi::check_provider(&provider(AZURE_BASE, options.clone())),
            Ok(()),
            "{options}"
        );
    }
    let cases = [
        (json!({"azure": true}), "option `azure` must be an object"),
        (
            json!({"azure": "2024-10-21"}),
            "option `azure` must be an object",
        ),
        (
            json!({"azure": {"deployment_name": "x"}}),
            "unknown key `deployment_name` in option `azure` (known keys: deployment, api_version)",
        ),
        (
            json!({"azure": {"deployment": "a/b"}}),
            "`azure.deployment` must be a deployment name",
        ),
        (
            json!({"azure": {"deployment": 1}}),
            "`azure.deployment` must be a deployment name",
        ),
        (
            json!({"azure": {"api_version": "2024-10-21&x=1"}}),
            "`azure.api_version` must be a version",
        ),
        (
            json!({"azure": {"api_version": ""}}),
            "`azure.api_version` must be a version",
        ),
        (
            json!({"azure": {}, "organization": "org-1"}),
            "do not apply to Azure OpenAI",
        ),
        (
            json!({"headers": {"api-key": "secret"}}),
            "`api-key` cannot be set here",
        ),
    ];
    for (options, needle) in cases {
        let err =
            OpenAi::check_provider(&provider(AZURE_BASE, options.clone())).expect_err("invalid");
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(err.message.contains(needle), "{options}: {}", err.message);
    }
    for base in [
        "https://my-resource.openai.azure.com/openai",
        "https://my-resource.openai.azure.com/openai/",
        "https://my-resource.openai.azure.com/openai/deployments/gpt-4o",
        "https://gateway.example.com/azure/openai",
    ] {
        let err = OpenAi::check_provider(&provider(base, json!({"azure": {}}))).expect_err(base);
        assert_eq!(err.param.as_deref(), Some("base_url"), "{base}");
        assert!(err.message.contains("without `/openai`"), "{}", err.message);
    }
    // A path before /openai-less endpoints is fine (e.g. an APIM gateway).
    assert_eq!(
        OpenAi::check_provider(&provider(
            "https://apim.example.com/aoai",
            json!({"azure": {}})
        )),
        Ok(())
    );
}

#[test]
fn azure_probe_lists_models_with_api_key() {
    let probe = OpenAi::probe_request(&provider(
        AZURE_BASE,
        json!({"azure": {"deployment": "d", "api_version": "2024-06-01"}, "headers": {"x-ms-useragent": "gw"}}),
    ))
    .expect("probe");
    assert_eq!(probe.method, "GET");
    assert_eq!(
        probe.url,
        "https://my-resource.openai.azure.com/openai/models?api-version=2024-06-01"
    );
    assert_eq!(probe.credential, Credential::Header("api-key".to_owned()));
    assert_eq!(probe.body, RequestBody::Empty);
    assert_eq!(
        probe.headers,
        headers(&[("accept", "application/json"), ("x-ms-useragent", "gw")])
    );
    let p = provider(AZURE_BASE, json!({"azure": {}}));
    assert_eq!(
        OpenAi::judge_probe(
            &p,
            200,
            &[],
            br#"{"data":[{"id":"gpt-4o-2024-08-06","object":"model","status":"succeeded"}],"object":"list"}"#
        ),
        Ok(())
    );
    let err = OpenAi::judge_probe(
        &p,
        401,
        &[],
        br#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#,
    )
    .expect_err("bad key");
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::Authentication, true)
    );
}

#[test]
fn azure_errors_and_answers() {
    let ctx = azure_ctx(false, json!({}));
    let err = OpenAi::classify_error(
        &ctx,
        400,
        &[],
        br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#,
    )
    ;
    assert_eq!(
        (err.class, err.retryable),
        (ErrorClass::ContentFilter, false)
    );
    let err = OpenAi::classify_error(
        &ctx,
        404,
        &[],
        br#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#,
    );
    assert_eq!(
        (err.class, err.retryable, err.code.as_deref()),
        (ErrorClass::NotFound, true, Some("DeploymentNotFound"))
    );
    let err = OpenAi::classify_error(
        &ctx,
        429,
        &headers(&[("retry-after-ms", "4500"), ("retry-after", "5")]),
        br#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current pricing tier. Please retry after 5 seconds."}}"#,
    );
    assert_eq!(
        (err.class, err.retry_after_ms),
        (ErrorClass::RateLimited, Some(4_500))
    );

    // Azure's extra fields pass through untouched.
    let body = r#"{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"finish_reason":"stop","index":0,"message":{"content":"Hi","role":"assistant"}}],"created":1,"id":"chatcmpl-A","model":"gpt-4o-2024-08-06","object":"chat.completion","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}],"usage":{"completion_tokens":1,"prompt_tokens":5,"total_tokens":6}}"#;
    let parsed = OpenAi::parse_response(&ctx, 200, &[], body.as_bytes()).expect("parsed");
    assert_eq!(parsed.body, body.replace("gpt-4o-2024-08-06", "my-alias"));
    // Its first stream chunk has no choices, only prompt filter results: meta.
    let mut d = OpenAiDecoder::new(azure_ctx(true, json!({})), 200, Vec::new());
    let items = push(
        &mut d,
        r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
    )
    .expect("items");
    assert!(matches!(
        items.as_slice(),
        [StreamItem::Chunk(StreamChunk {
            kind: ChunkKind::Meta,
            ..
        })]
    ));
}
