//! The Anthropic Messages API: `POST /v1/messages` (JSON and SSE),
//! `POST /v1/messages/count_tokens` and the Anthropic shape of
//! `GET /v1/models`.
//!
//! Requests need an API key in `x-api-key` (or, as the current official
//! SDKs send it, `Authorization: Bearer <key>`; 401 `authentication_error`
//! without one, or with a key other than [`crate::FakeConfig::expect_key`])
//! and an `anthropic-version` date header (`2023-06-01`, ...; 400 without
//! one). [`crate::StatsSnapshot::last_request`] names the headers used.
//! Every response carries a `request-id` header (`req_…`), and errors have
//! Anthropic's shape (see [`error`]).

pub(crate) mod error;
pub(crate) mod models;
pub(crate) mod reply;
pub(crate) mod request;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::config::LiveConfig;
use crate::error::InjectedFault;
use crate::record::Dialect;
use crate::scenario::{Action, Plan, Scenario, StreamFault};
use crate::server::{ResponseBody, json_response, sse_response};
use crate::state::Shared;
use crate::stream::{SseBody, StreamOptions};
use error::{AnthropicError, with_request_id};
use reply::{Body, Reply};
use request::{MessagesRequest, Mode};

/// `POST /v1/messages`. `Err` resets the connection.
pub(crate) async fn messages(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<ResponseBody>, InjectedFault> {
    shared.stats.anthropic_requests.inc();
    let (latency, outcome) = respond(shared, parts, body, Mode::Messages);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    outcome
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": n}`. Magic model
/// names and configured failures apply as to a non-streaming request.
pub(crate) async fn count_tokens(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<ResponseBody>, InjectedFault> {
    shared.stats.anthropic_count_tokens_requests.inc();
    let (latency, outcome) = respond(shared, parts, body, Mode::CountTokens);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    outcome
}

/// Checks the API key (`x-api-key`, or `Authorization: Bearer` as current
/// SDKs send it) and the `anthropic-version` header (a `YYYY-MM-DD` date).
pub(crate) fn authenticate(live: &LiveConfig, headers: &HeaderMap) -> Result<(), AnthropicError> {
    let key = headers
        .get("x-api-key")
        .map(HeaderValue::as_bytes)
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        });
    match key {
        None => return Err(AnthropicError::missing_api_key()),
        Some(key) if !live.accepts_key(key) => return Err(AnthropicError::invalid_api_key()),
        Some(_) => {}
    }
    match headers.get("anthropic-version").map(HeaderValue::as_bytes) {
        None => Err(AnthropicError::invalid_request(
            "anthropic-version: header is required",
        )),
        Some(version) if is_date(version) => Ok(()),
        Some(version) => Err(AnthropicError::invalid_request(format!(
            "anthropic-version: invalid version `{}`; expected a date such as 2023-06-01",
            String::from_utf8_lossy(version)
        ))),
    }
}

/// `YYYY-MM-DD`.
fn is_date(text: &[u8]) -> bool {
    text.len() == 10
        && text.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// Decides the response synchronously; returns it with the delay to apply
/// before its headers.
fn respond(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
    mode: Mode,
) -> (Duration, Result<Response<ResponseBody>, InjectedFault>) {
    let live = shared.live.load();
    let request_id = shared.ids.next("req_");
    let authenticated = authenticate(&live, &parts.headers);
    shared.recorder.record(
        Dialect::Anthropic,
        parts.method,
        parts.uri,
        parts.headers,
        body.clone(),
    );
    let refuse = |error: AnthropicError| (live.latency, Ok(error.into_response(&request_id)));
    if let Err(error) = authenticated {
        if error.status == StatusCode::UNAUTHORIZED {
            shared.stats.auth_failures.inc();
        }
        return refuse(error);
    }
    let request = match request::parse(&body, mode) {
        Ok(request) => request,
        Err(error) => {
            if error.bad_signature {
                shared.stats.signature_rejections.inc();
            }
            return refuse(error);
        }
    };
    let scenario = Scenario::from_model(&request.model);
    if scenario == Scenario::Normal && !live.serves(&request.model) {
        return refuse(AnthropicError::model_not_found(&request.model));
    }
    tracing::debug!(
        gen_ai.request.model = %request.model,
        stream = request.stream,
        ?scenario,
        ?mode,
        "anthropic request"
    );

    let plan = Plan::resolve(scenario, &live);
    if plan.injected {
        shared.stats.injected_failures.inc();
    }
    let response = match plan.action {
        Action::Fail(status) => Ok(AnthropicError::for_status(status).into_response(&request_id)),
        Action::Reset => {
            shared.stats.connections_reset.inc();
            Err(InjectedFault::ConnectionReset)
        }
        Action::Reply { fault, error_event } => Ok(match mode {
            Mode::Messages => reply(shared, &live, &request, fault, error_event, &request_id),
            Mode::CountTokens => count(&request, &request_id),
        }),
    };
    (plan.latency, response)
}

fn count(request: &MessagesRequest, request_id: &str) -> Response<ResponseBody> {
    let tokens = crate::synth::prompt_tokens(request.prompt_chars);
    let body = json!({"input_tokens": tokens}).to_string();
    with_request_id(json_response(StatusCode::OK, Bytes::from(body)), request_id)
}

fn reply(
    shared: &Shared,
    live: &LiveConfig,
    request: &MessagesRequest,
    fault: Option<StreamFault>,
    error_event: bool,
    request_id: &str,
) -> Response<ResponseBody> {
    let reply = Reply::new(request, live.chunks, &shared.ids, &shared.prompt_cache);
    if matches!(reply.body, Body::ToolUses(_)) {
        shared.stats.tool_call_responses.inc();
    }
    if reply.thinking.is_some() {
        shared.stats.thinking_responses.inc();
    }
    if !request.stream {
        return match reply.to_json() {
            Ok(json) => {
                with_request_id(json_response(StatusCode::OK, Bytes::from(json)), request_id)
            }
            Err(err) => serialization_failed(&err, request_id),
        };
    }
    let options = StreamOptions {
        ttft: live.ttft,
        chunk_delay: live.chunk_delay,
        include_usage: true,
        error_event,
    };
    match stream::render(&reply, options) {
        Ok(script) => {
            shared.stats.streams_started.inc();
            if error_event {
                shared.stats.stream_error_events.inc();
            }
            with_request_id(
                sse_response(SseBody::new(script, fault, shared.stats.clone())),
                request_id,
            )
        }
        Err(err) => serialization_failed(&err, request_id),
    }
}

fn serialization_failed(err: &serde_json::Error, request_id: &str) -> Response<ResponseBody> {
    tracing::error!(%err, "serialising an Anthropic reply failed");
    AnthropicError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response(request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FakeConfig;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn keys_and_versions() {
        let live = LiveConfig::new(FakeConfig {
            expect_key: Some("k".into()),
            ..FakeConfig::default()
        });
        let check = |pairs| authenticate(&live, &headers(pairs)).map_err(|e| e.status.as_u16());
        assert_eq!(
            check(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]),
            Ok(())
        );
        assert_eq!(
            check(&[
                ("authorization", "Bearer k"),
                ("anthropic-version", "2026-10-21")
            ]),
            Ok(())
        );
        assert_eq!(check(&[("anthropic-version", "2023-06-01")]), Err(401));
        assert_eq!(
            check(&[("x-api-key", "j"), ("anthropic-version", "2023-06-01")]),
            Err(401)
        );
        assert_eq!(check(&[("x-api-key", "k")]), Err(400));
        assert_eq!(
            check(&[("x-api-key", "k"), ("anthropic-version", "latest")]),
            Err(400)
        );
    }
}
