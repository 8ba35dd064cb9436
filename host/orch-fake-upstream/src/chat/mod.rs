//! `POST /v1/chat/completions`: validation, scenario resolution and reply.

pub(crate) mod reply;
pub(crate) mod request;
pub(crate) mod tool_args;

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

use crate::config::LiveConfig;
use crate::error::{ApiError, InjectedFault};
use crate::record::Dialect;
use crate::scenario::{Action, Plan, Scenario, StreamFault};
use crate::server::{ResponseBody, json_response, sse_response};
use crate::state::Shared;
use crate::stream::{SseBody, SseScript, StreamOptions};
use reply::{Reply, Turn};
use request::ChatRequest;

/// Handles one chat completion request whose body has been read.
///
/// `Err` means "reset the connection without a response".
pub(crate) async fn complete(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<ResponseBody>, InjectedFault> {
    shared.stats.chat_requests.inc();
    let (latency, outcome) = respond(shared, parts, body);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    outcome
}

/// Decides the response synchronously; returns it with the delay to apply
/// before sending its headers.
fn respond(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> (Duration, Result<Response<ResponseBody>, InjectedFault>) {
    let live = shared.live.load();
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let authorized = live.authorizes(authorization);
    let rate_limited = live.rate_limits(authorization);
    shared.recorder.record(
        Dialect::OpenAi,
        parts.method,
        parts.uri,
        parts.headers,
        body.clone(),
    );
    if !authorized {
        shared.stats.auth_failures.inc();
        return (
            live.latency,
            Ok(ApiError::invalid_api_key().into_response()),
        );
    }

    if rate_limited {
        shared.stats.injected_failures.inc();
        return (
            live.latency,
            Ok(ApiError::for_status(http::StatusCode::TOO_MANY_REQUESTS).into_response()),
        );
    }

    let request = match request::parse(&body) {
        Ok(request) => request,
        Err(error) => return (live.latency, Ok(error.into_response())),
    };
    let scenario = Scenario::from_model(&request.model);
    if scenario == Scenario::Normal && !live.serves(&request.model) {
        let error = ApiError::model_not_found(&request.model);
        return (live.latency, Ok(error.into_response()));
    }
    tracing::debug!(
        gen_ai.request.model = %request.model,
        stream = request.stream,
        ?scenario,
        "chat completion"
    );

    let plan = Plan::resolve(scenario, &live);
    if plan.injected {
        shared.stats.injected_failures.inc();
    }
    let response = match plan.action {
        Action::Fail(status) => Ok(ApiError::for_status(status).into_response()),
        Action::Reset => {
            shared.stats.connections_reset.inc();
            Err(InjectedFault::ConnectionReset)
        }
        Action::Reply { fault, error_event } => {
            Ok(reply(shared, &live, &request, fault, error_event))
        }
    };
    (plan.latency, response)
}

fn reply(
    shared: &Shared,
    live: &LiveConfig,
    request: &ChatRequest<'_>,
    fault: Option<StreamFault>,
    error_event: bool,
) -> Response<ResponseBody> {
    let reply = Reply::new(request, live.chunks, &shared.ids);
    if matches!(reply.turn, Turn::ToolCalls(_)) {
        shared.stats.tool_call_responses.inc();
    }
    if !request.stream {
        return match reply.to_json() {
            Ok(json) => json_response(StatusCode::OK, Bytes::from(json)),
            Err(err) => serialization_failed(&err),
        };
    }
    let options = StreamOptions {
        ttft: live.ttft,
        chunk_delay: live.chunk_delay,
        include_usage: request.include_usage,
        error_event,
    };
    match SseScript::render(&reply, options) {
        Ok(script) => {
            shared.stats.streams_started.inc();
            if error_event {
                shared.stats.stream_error_events.inc();
            }
            sse_response(SseBody::new(script, fault, shared.stats.clone()))
        }
        Err(err) => serialization_failed(&err),
    }
}

fn serialization_failed(err: &serde_json::Error) -> Response<ResponseBody> {
    tracing::error!(%err, "serialising a reply failed");
    ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}
