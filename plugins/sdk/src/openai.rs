//! Helpers for the canonical payload shape (OpenAI Chat Completions).
//!
//! * [`usage_from_openai`], [`chunk_kind`]: usage and chunk kinds of the
//!   canonical shape, for any plugin.
//! * `ChunkStream` and `parse_completion` (with the `adapter` feature): the
//!   stream decoder and the response handling of an adapter for an
//!   OpenAI-compatible API, whose native form *is* the canonical one.
//!
//! # A minimal OpenAI-compatible adapter
//!
//! Requests are forwarded with only `model` changed (the canonical payload
//! already carries `stream` and `stream_options` when the client streams);
//! responses and chunks get only their `model` changed back to the name the
//! client asked for. Errors use the SDK's generic classification
//! ([`classify_status`](crate::classify_status), the default
//! `classify_error`, and [`classify_details`](crate::classify_details) for
//! errors hidden in a 2xx body).
//!
//! ```no_run
//! # #[cfg(feature = "adapter")]
//! # mod example {
//! use orch_plugin_sdk::provider::{check_base_url, endpoint};
//! use orch_plugin_sdk::{
//!     Adapter, JsonEdit, ParsedResponse, PluginError, PluginInfo, Provider, RequestContext,
//!     UpstreamRequest, capability, classify_details, openai,
//! };
//!
//! /// An OpenAI-compatible provider.
//! pub struct Acme;
//!
//! impl Adapter for Acme {
//!     type Decoder = openai::ChunkStream;
//!
//!     fn info() -> PluginInfo {
//!         PluginInfo::adapter("acme", env!("CARGO_PKG_VERSION"), "openai")
//!             .with_capabilities(capability::FULL_CHAT)
//!             .with_description("Acme's OpenAI-compatible API")
//!     }
//!
//!     fn check_provider(provider: &Provider) -> Result<(), PluginError> {
//!         check_base_url(provider).map(|_| ())
//!     }
//!
//!     fn build_request(ctx: &RequestContext, _payload: &str) -> Result<UpstreamRequest, PluginError> {
//!         Ok(UpstreamRequest::post(endpoint(&ctx.provider.base_url, "chat/completions"))
//!             .header("content-type", "application/json")
//!             .bearer()
//!             .forward(vec![JsonEdit::set_string("model", &ctx.upstream_model)])
//!             .build())
//!     }
//!
//!     fn parse_response(
//!         ctx: &RequestContext,
//!         status: u16,
//!         headers: &[(String, String)],
//!         body: &[u8],
//!     ) -> Result<ParsedResponse, PluginError> {
//!         openai::parse_completion(ctx, status, body, |d| classify_details(status, headers, d))
//!     }
//! }
//!
//! orch_plugin_sdk::export_adapter!(Acme);
//! # }
//! # fn main() {}
//! ```
//!
//! `openai/` in the plugin workspace is the full adapter built on the same
//! items: provider options, Azure OpenAI, OpenAI's error codes and a health
//! probe.

use serde_json::Value;

use crate::{ChunkKind, Usage};

#[cfg(feature = "adapter")]
mod kind;
#[cfg(feature = "adapter")]
use crate::{
    ErrorClass, ErrorDetails, Frame, Headers, ParsedResponse, PluginError, RequestContext,
    StreamChunk, StreamDecoder, StreamItem, json::RawObject,
};

/// Reads an OpenAI `usage` object: `prompt_tokens`, `completion_tokens`,
/// `prompt_tokens_details.cached_tokens` (or DeepSeek's
/// `prompt_cache_hit_tokens`) and `completion_tokens_details.reasoning_tokens`.
///
/// Returns `None` unless `usage` is an object with at least one of
/// `prompt_tokens` and `completion_tokens`. Counts above `u32::MAX` saturate.
///
/// ```
/// let usage = serde_json::json!({
///     "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
///     "prompt_tokens_details": {"cached_tokens": 4},
/// });
/// let usage = orch_plugin_sdk::openai::usage_from_openai(&usage).unwrap();
/// assert_eq!((usage.input_tokens, usage.output_tokens), (10, 5));
/// assert_eq!(usage.cached_input_tokens, Some(4));
/// ```
pub fn usage_from_openai(usage: &Value) -> Option<Usage> {
    let usage = usage.as_object()?;
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).map(saturate);
    let input = count(usage.get("prompt_tokens"));
    let output = count(usage.get("completion_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    let detail = |details: &str, field: &str| count(usage.get(details).and_then(|d| d.get(field)));
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: detail("prompt_tokens_details", "cached_tokens")
            .or_else(|| count(usage.get("prompt_cache_hit_tokens"))),
        cache_write_input_tokens: None,
        reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
    })
}

/// What a canonical `chat.completion.chunk` means to the host:
///
/// * [`ChunkKind::Content`] when any choice's `delta` carries model output: a
///   non-empty `content`, `refusal`, `reasoning_content` or `reasoning`
///   string, non-empty `tool_calls`, or a non-null `function_call`;
/// * [`ChunkKind::Usage`] when `choices` is empty (or missing) and `usage` is
///   an object;
/// * [`ChunkKind::Meta`] otherwise (role announcements, finish reasons, ...).
///
/// ```
/// use orch_plugin_sdk::{openai::chunk_kind, ChunkKind};
/// use serde_json::json;
///
/// let role = json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
/// assert_eq!(chunk_kind(&role), ChunkKind::Meta);
/// let text = json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]});
/// assert_eq!(chunk_kind(&text), ChunkKind::Content);
/// let usage = json!({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
/// assert_eq!(chunk_kind(&usage), ChunkKind::Usage);
/// ```
pub fn chunk_kind(chunk: &Value) -> ChunkKind {
    let choices = chunk.get("choices").and_then(Value::as_array);
    let has_output = choices
        .into_iter()
        .flatten()
        .filter_map(|choice| choice.get("delta"))
        .any(delta_has_output);
    if has_output {
        return ChunkKind::Content;
    }
    let no_choices = choices.is_none_or(Vec::is_empty);
    if no_choices && chunk.get("usage").is_some_and(Value::is_object) {
        ChunkKind::Usage
    } else {
        ChunkKind::Meta
    }
}

fn delta_has_output(delta: &Value) -> bool {
    let non_empty_string = |field: &str| {
        delta
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    ["content", "refusal", "reasoning_content", "reasoning"]
        .into_iter()
        .any(non_empty_string)
        || match delta.get("tool_calls") {
            Some(Value::Array(calls)) => !calls.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        }
        || delta.get("function_call").is_some_and(|f| !f.is_null())
}

/// Translates the body of a successful (2xx) non-streaming response of an
/// OpenAI-compatible API (a `chat.completion`): the body with only its
/// `model` set to `ctx.requested_model` (every other byte as the upstream
/// sent it) and the usage read from `usage` (see [`usage_from_openai`]).
/// Needs the `adapter` feature.
///
/// Errors:
///
/// * a body that is not a JSON object: `server`, with `status`;
/// * a body with a non-null `error` member (an error hidden in a 2xx
///   response): `classify` of its [`ErrorDetails`]. Pass the adapter's own
///   classification, or the generic one:
///   `|details| classify_details(status, headers, details)`.
///
/// ```
/// use orch_plugin_sdk::{ErrorClass, ErrorDetails, RequestContext, classify_details, openai::parse_completion};
/// # fn ctx() -> RequestContext {
/// #     RequestContext {
/// #         request_id: "r".to_owned(),
/// #         operation: orch_plugin_sdk::Operation::Chat,
/// #         requested_model: "my-alias".to_owned(),
/// #         upstream_model: "gpt-4o-mini".to_owned(),
/// #         streaming: false,
/// #         form: orch_plugin_sdk::PayloadForm::Canonical,
/// #         ingress_dialect: "openai".to_owned(),
/// #         received_at_ms: 0,
/// #         provider: orch_plugin_sdk::Provider {
/// #             name: "p".to_owned(),
/// #             base_url: "https://api.example.com/v1".to_owned(),
/// #             options: String::new(),
/// #         },
/// #     }
/// # }
///
/// let generic = |d: &ErrorDetails| classify_details(200, &[], d);
/// let body = br#"{"id":"c1","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
/// let parsed = parse_completion(&ctx(), 200, body, generic).unwrap();
/// assert_eq!(parsed.body, r#"{"id":"c1","model":"my-alias","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#);
/// assert_eq!(parsed.usage.map(|u| u.input_tokens), Some(3));
///
/// let hidden = br#"{"error":{"message":"busy","code":503}}"#;
/// let err = parse_completion(&ctx(), 200, hidden, generic).unwrap_err();
/// assert_eq!(err.class, ErrorClass::Overloaded);
/// ```
#[cfg(feature = "adapter")]
pub fn parse_completion(
    ctx: &RequestContext,
    status: u16,
    body: &[u8],
    classify: impl FnOnce(&ErrorDetails) -> PluginError,
) -> Result<ParsedResponse, PluginError> {
    let not_json = || {
        PluginError::server("upstream returned a response body that is not a JSON object")
            .with_status(status)
    };
    let text = std::str::from_utf8(body).map_err(|_| not_json())?;
    let mut object = RawObject::parse(text).map_err(|_| not_json())?;
    if object.has_non_null("error") {
        let value: Value = serde_json::from_str(text).map_err(|_| not_json())?;
        return Err(classify(&ErrorDetails::from_value(&value)));
    }
    object.set_string("model", &ctx.requested_model);
    let usage = usage_of(&object);
    Ok(ParsedResponse {
        body: object.to_json(),
        usage,
    })
}

/// Decodes the SSE stream of an OpenAI-compatible API: one
/// `chat.completion.chunk` per event, then `data: [DONE]`. Needs the
/// `adapter` feature.
///
/// * Each chunk is passed on with only its `model` set to the requested
///   model, its kind from [`chunk_kind`] (which reads only `choices` and
///   `usage`), preceded by a [`StreamItem::Usage`] when it has a `usage`
///   (see [`usage_from_openai`]).
/// * `[DONE]` gives [`StreamItem::Done`]; frames after it and empty frames
///   are ignored.
/// * An `error` event, or a chunk with a non-null `error` member, is a
///   retryable error (nothing says the request is at fault): `rate-limited`
///   or `overloaded` when its code says so, else `server`.
/// * An event that is not a JSON object, and the end of the body before
///   `[DONE]`, are `server` errors.
///
/// ```
/// use orch_plugin_sdk::{ChunkKind, Frame, RequestContext, StreamDecoder, StreamItem, openai::ChunkStream};
/// # fn ctx() -> RequestContext {
/// #     RequestContext {
/// #         request_id: "r".to_owned(),
/// #         operation: orch_plugin_sdk::Operation::Chat,
/// #         requested_model: "my-alias".to_owned(),
/// #         upstream_model: "gpt-4o-mini".to_owned(),
/// #         streaming: true,
/// #         form: orch_plugin_sdk::PayloadForm::Canonical,
/// #         ingress_dialect: "openai".to_owned(),
/// #         received_at_ms: 0,
/// #         provider: orch_plugin_sdk::Provider {
/// #             name: "p".to_owned(),
/// #             base_url: "https://api.example.com/v1".to_owned(),
/// #             options: String::new(),
/// #         },
/// #     }
/// # }
///
/// let mut stream = ChunkStream::new(ctx(), 200, Vec::new());
/// let items = stream.push(Frame::data(r#"{"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#)).unwrap();
/// let [StreamItem::Chunk(chunk)] = items.as_slice() else { panic!("{items:?}") };
/// assert_eq!((chunk.kind, chunk.data.as_str()), (ChunkKind::Content, r#"{"model":"my-alias","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#));
/// assert_eq!(stream.push(Frame::data("[DONE]")).unwrap(), [StreamItem::Done]);
/// assert_eq!(stream.finish().unwrap(), []);
/// ```
#[cfg(feature = "adapter")]
#[derive(Debug)]
pub struct ChunkStream {
    requested_model: String,
    status: u16,
    done: bool,
}

#[cfg(feature = "adapter")]
impl StreamDecoder for ChunkStream {
    fn new(ctx: RequestContext, status: u16, _headers: Headers) -> Self {
        Self {
            requested_model: ctx.requested_model,
            status,
            done: false,
        }
    }

    fn push(&mut self, frame: Frame) -> Result<Vec<StreamItem>, PluginError> {
        if self.done {
            return Ok(Vec::new());
        }
        let data = frame.text()?.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(vec![StreamItem::Done]);
        }
        let not_an_object = || {
            PluginError::server("upstream sent a stream event that is not a JSON object")
                .with_status(self.status)
        };
        let mut chunk = RawObject::parse(data).map_err(|_| not_an_object())?;
        if frame.event.as_deref() == Some("error") || chunk.has_non_null("error") {
            let event: Value = serde_json::from_str(data).map_err(|_| not_an_object())?;
            return Err(stream_error(self.status, &event));
        }
        chunk.set_string("model", &self.requested_model);
        let usage = usage_of(&chunk);
        let kind = kind::of_raw(&chunk);
        let mut items = Vec::with_capacity(2);
        if let Some(usage) = usage {
            items.push(StreamItem::Usage(usage));
        }
        items.push(StreamItem::Chunk(StreamChunk::new(kind, chunk.to_json())));
        Ok(items)
    }

    fn finish(&mut self) -> Result<Vec<StreamItem>, PluginError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(PluginError::server("upstream stream ended before [DONE]").with_status(self.status))
        }
    }
}

/// Classifies an error event inside a 200 stream: always retryable (nothing
/// says the request is at fault), `rate-limited` or `overloaded` when the
/// code says so, else `server`.
#[cfg(feature = "adapter")]
fn stream_error(status: u16, event: &Value) -> PluginError {
    let mut details = ErrorDetails::from_value(event);
    if details.message.is_none() {
        details.message = Some("upstream reported an error in the stream".to_owned());
    }
    let error = crate::classify_details(status, &[], &details);
    let code = details
        .code_or_kind()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let class = match details.numeric_code {
        Some(429) => ErrorClass::RateLimited,
        Some(503 | 529) => ErrorClass::Overloaded,
        _ if code.contains("rate_limit") || code.contains("insufficient_quota") => {
            ErrorClass::RateLimited
        }
        _ if code.contains("overloaded") => ErrorClass::Overloaded,
        _ => ErrorClass::Server,
    };
    error.with_class(class).with_retryable(true)
}

/// The usage report of a response or chunk, if it has one.
#[cfg(feature = "adapter")]
fn usage_of(object: &RawObject<'_>) -> Option<Usage> {
    // Most chunks of a stream have no `usage` or a null one.
    let usage = object.get("usage").filter(|u| u.starts_with('{'))?;
    usage_from_openai(&serde_json::from_str(usage).ok()?)
}

fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn usage_full() {
        let usage = usage_from_openai(&json!({
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 80, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 20},
        }));
        assert_eq!(
            usage,
            Some(Usage {
                input_tokens: 100,
                output_tokens: 50,
                cached_input_tokens: Some(80),
                cache_write_input_tokens: None,
                reasoning_tokens: Some(20),
            })
        );
    }

    #[test]
    fn usage_partial_and_deepseek() {
        let usage = usage_from_openai(&json!({"prompt_tokens": 7, "prompt_cache_hit_tokens": 3}));
        assert_eq!(
            usage,
            Some(Usage {
                input_tokens: 7,
                cached_input_tokens: Some(3),
                ..Usage::default()
            })
        );
        let usage =
            usage_from_openai(&json!({"prompt_tokens": 1, "completion_tokens": 5_000_000_000_u64}));
        assert_eq!(usage.map(|u| u.output_tokens), Some(u32::MAX));
    }

    #[test]
    fn usage_absent() {
        assert_eq!(usage_from_openai(&Value::Null), None);
        assert_eq!(usage_from_openai(&json!({})), None);
        assert_eq!(usage_from_openai(&json!({"total_tokens": 3})), None);
        assert_eq!(usage_from_openai(&json!([1])), None);
    }

    #[test]
    fn chunk_kinds() {
        let cases = [
            (
                json!({"choices": [{"delta": {"role": "assistant"}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"content": ""}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"content": "x"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"refusal": "no"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"reasoning_content": "hm"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"reasoning": "hm"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"tool_calls": []}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"tool_calls": null}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"function_call": {"name": "f"}}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"function_call": null}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {}}, {"delta": {"content": "second"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [], "usage": {"prompt_tokens": 1}}),
                ChunkKind::Usage,
            ),
            (json!({"usage": {"prompt_tokens": 1}}), ChunkKind::Usage),
            (json!({"choices": [], "usage": null}), ChunkKind::Meta),
            (
                json!({"choices": [{"delta": {"content": "x"}}], "usage": {"prompt_tokens": 1}}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {}}], "usage": {"prompt_tokens": 1}}),
                ChunkKind::Meta,
            ),
            (json!("not an object"), ChunkKind::Meta),
        ];
        for (chunk, kind) in cases {
            assert_eq!(chunk_kind(&chunk), kind, "{chunk}");
        }
    }

    #[cfg(feature = "adapter")]
    mod adapter {
        use serde_json::json;

        use super::super::*;
        use crate::{Operation, PayloadForm, Provider};

        fn ctx() -> RequestContext {
            RequestContext {
                request_id: "r".to_owned(),
                operation: Operation::Chat,
                requested_model: "alias".to_owned(),
                upstream_model: "upstream".to_owned(),
                streaming: true,
                form: PayloadForm::Canonical,
                ingress_dialect: "openai".to_owned(),
                received_at_ms: 0,
                provider: Provider {
                    name: "p".to_owned(),
                    base_url: "https://api.example.com/v1".to_owned(),
                    options: String::new(),
                },
            }
        }

        fn stream() -> ChunkStream {
            ChunkStream::new(ctx(), 200, Vec::new())
        }

        fn never(_: &ErrorDetails) -> PluginError {
            PluginError::server("classify must not be called")
        }

        #[test]
        fn completion_sets_model_and_reads_usage() {
            let body = br#"{"id":"c","model":"upstream","x":1.50,"usage":{"prompt_tokens":2,"completion_tokens":3}}"#;
            let parsed = parse_completion(&ctx(), 200, body, never).expect("parsed");
            assert_eq!(
                parsed.body,
                r#"{"id":"c","model":"alias","x":1.50,"usage":{"prompt_tokens":2,"completion_tokens":3}}"#
            );
            assert_eq!(
                parsed.usage,
                Some(Usage {
                    input_tokens: 2,
                    output_tokens: 3,
                    ..Usage::default()
                })
            );
            let parsed = parse_completion(&ctx(), 200, br#"{"error":null}"#, never).expect("ok");
            assert_eq!(parsed.body, r#"{"error":null,"model":"alias"}"#);
            assert_eq!(parsed.usage, None);
        }

        #[test]
        fn completion_errors() {
            for body in [&b"[1]"[..], b"not json", b"\xff", b""] {
                let err = parse_completion(&ctx(), 201, body, never).expect_err("not an object");
                assert_eq!(err.class, ErrorClass::Server);
                assert_eq!(err.status, Some(201));
            }
            let body = br#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#;
            let mut seen = None;
            let err = parse_completion(&ctx(), 200, body, |details| {
                seen = Some(details.clone());
                PluginError::new(ErrorClass::RateLimited, "classified")
            })
            .expect_err("hidden error");
            assert_eq!(err.message, "classified");
            let seen = seen.expect("classify called");
            assert_eq!(seen.message.as_deref(), Some("slow down"));
            assert_eq!(seen.code.as_deref(), Some("rate_limit_exceeded"));
        }

        #[test]
        fn stream_chunks_usage_and_done() {
            let mut s = stream();
            assert_eq!(s.push(Frame::data("  \n")).expect("empty"), []);
            let items = s
                .push(Frame::data(
                    r#"{"model":"upstream","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
                ))
                .expect("usage chunk");
            assert_eq!(
                items,
                [
                    StreamItem::Usage(Usage {
                        input_tokens: 1,
                        output_tokens: 2,
                        ..Usage::default()
                    }),
                    StreamItem::Chunk(StreamChunk::new(
                        ChunkKind::Usage,
                        r#"{"model":"alias","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#
                    )),
                ]
            );
            assert_eq!(
                s.push(Frame::data(" [DONE] ")).expect("done"),
                [StreamItem::Done]
            );
            assert_eq!(s.push(Frame::data("garbage")).expect("ignored"), []);
            assert_eq!(s.finish().expect("finished"), []);
        }

        #[test]
        fn stream_errors() {
            let cases = [
                (
                    None,
                    json!({"error": {"message": "m", "code": 429}}),
                    ErrorClass::RateLimited,
                ),
                (
                    None,
                    json!({"error": {"message": "m", "code": 529}}),
                    ErrorClass::Overloaded,
                ),
                (
                    None,
                    json!({"error": {"type": "insufficient_quota"}}),
                    ErrorClass::RateLimited,
                ),
                (
                    None,
                    json!({"error": {"code": "model_overloaded"}}),
                    ErrorClass::Overloaded,
                ),
                (
                    None,
                    json!({"error": {"code": "bad_thing"}}),
                    ErrorClass::Server,
                ),
                (
                    Some("error"),
                    json!({"message": "boom"}),
                    ErrorClass::Server,
                ),
            ];
            for (event, data, class) in cases {
                let frame = Frame {
                    event: event.map(str::to_owned),
                    data: data.to_string().into_bytes(),
                };
                let err = stream().push(frame).expect_err("error event");
                assert_eq!(err.class, class, "{data}");
                assert!(err.retryable, "{data}");
                assert_eq!(err.status, Some(200));
            }
            let err = stream()
                .push(Frame::data(r#"{"error":{}}"#))
                .expect_err("no message");
            assert_eq!(err.message, "upstream reported an error in the stream");
            let err = stream()
                .push(Frame::data("[1]"))
                .expect_err("not an object");
            assert_eq!(err.class, ErrorClass::Server);
            let err = stream().finish().expect_err("no [DONE]");
            assert_eq!(err.message, "upstream stream ended before [DONE]");
            assert_eq!(err.status, Some(200));
        }
    }
}
