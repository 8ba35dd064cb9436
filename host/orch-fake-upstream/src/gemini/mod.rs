//! The Gemini API: `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent` (SSE with `?alt=sse`, a streamed JSON array
//! otherwise), `:countTokens`, `GET /v1beta/models` and
//! `GET /v1beta/models/{model}`; the same under `/v1/` (the stable version,
//! which the current google-genai SDKs default to). `GET /v1/models` and
//! `GET /v1/models/{model}` are Gemini's when the request carries a Gemini
//! key (`x-goog-api-key` or `?key=`), OpenAI's otherwise.
//!
//! The API key goes in `x-goog-api-key` (or, discouraged, `?key=`; such
//! requests are counted in [`crate::StatsSnapshot::gemini_key_in_query`]).
//! No key: 403 `PERMISSION_DENIED`; a key other than
//! [`crate::FakeConfig::expect_key`]: 400 `INVALID_ARGUMENT` with reason
//! `API_KEY_INVALID`. Errors have Google's shape (see [`error`]).

pub(crate) mod error;
mod models;
mod reply;
pub(crate) mod request;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::config::LiveConfig;
use crate::error::InjectedFault;
use crate::record::{Dialect, query_has_key, query_param};
use crate::scenario::{Action, Plan, Scenario, StreamFault};
use crate::server::{ResponseBody, json_response, read_body, sse_response, streamed_json_response};
use crate::state::Shared;
use crate::stream::{SseBody, StreamOptions};
use error::GeminiError;
use reply::{Body, Reply};
use request::{GenerateRequest, Mode};
use stream::Framing;

/// Paths of the Gemini beta API start with this (the stable API shares
/// `/v1/` with OpenAI and Anthropic).
pub(crate) const BETA_PREFIX: &str = "/v1beta/";

/// The API version of a Gemini path (`v1beta` or `v1`) and the rest after
/// `/{version}/`.
fn split_version(path: &str) -> Option<(&'static str, &str)> {
    if let Some(rest) = path.strip_prefix(BETA_PREFIX) {
        Some(("v1beta", rest))
    } else {
        path.strip_prefix("/v1/").map(|rest| ("v1", rest))
    }
}

/// Whether a `POST` path is a Gemini model method
/// (`/v1/models/{model}:{method}` or anything under `/v1beta/`).
pub(crate) fn is_gemini_post(path: &str) -> bool {
    path.starts_with(BETA_PREFIX)
        || path
            .strip_prefix("/v1/models/")
            .is_some_and(|rest| rest.contains(':'))
}

/// Whether a request carries a Gemini API key (header or query).
pub(crate) fn has_gemini_key(headers: &HeaderMap, query: Option<&str>) -> bool {
    headers.contains_key("x-goog-api-key") || query_has_key(query)
}

/// A Gemini endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeminiRoute {
    Generate,
    StreamGenerate,
    CountTokens,
    ListModels,
    GetModel,
    Unknown,
}

impl GeminiRoute {
    /// The endpoint of a Gemini path (under `/v1beta/` or `/v1/`).
    pub(crate) fn of(method: &Method, path: &str) -> Self {
        let Some((_, rest)) = split_version(path) else {
            return Self::Unknown;
        };
        if method == Method::GET && rest == "models" {
            return Self::ListModels;
        }
        let Some(rest) = rest.strip_prefix("models/") else {
            return Self::Unknown;
        };
        match (method, rest.rsplit_once(':')) {
            (&Method::POST, Some((_, "generateContent"))) => Self::Generate,
            (&Method::POST, Some((_, "streamGenerateContent"))) => Self::StreamGenerate,
            (&Method::POST, Some((_, "countTokens"))) => Self::CountTokens,
            (&Method::GET, None) => Self::GetModel,
            _ => Self::Unknown,
        }
    }

    /// The API method name, as Google's error messages spell it.
    fn method_name(self) -> &'static str {
        match self {
            Self::Generate => "generateContent",
            Self::StreamGenerate => "streamGenerateContent",
            Self::CountTokens => "countTokens",
            Self::ListModels | Self::GetModel | Self::Unknown => "get",
        }
    }
}

/// The model of a `/{version}/models/{model}[:method]` path.
fn model_of(path: &str) -> &str {
    split_version(path)
        .and_then(|(_, rest)| rest.strip_prefix("models/"))
        .map(|rest| rest.rsplit_once(':').map_or(rest, |(model, _)| model))
        .unwrap_or_default()
}

/// The API version of a Gemini path, for error messages.
fn version_of(path: &str) -> &'static str {
    split_version(path).map_or("v1beta", |(version, _)| version)
}

/// Checks the API key (`x-goog-api-key`, else `?key=`).
fn authenticate(
    live: &LiveConfig,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), GeminiError> {
    let key = headers
        .get("x-goog-api-key")
        .map(|value| value.as_bytes())
        .or_else(|| query_param(query, "key").map(str::as_bytes))
        .filter(|key| !key.is_empty());
    match key {
        None => Err(GeminiError::missing_api_key()),
        Some(key) if !live.accepts_key(key) => Err(GeminiError::invalid_api_key()),
        Some(_) => Ok(()),
    }
}

/// Serves a Gemini endpoint. `Err` resets the connection.
pub(crate) async fn handle(
    shared: &Shared,
    route: GeminiRoute,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, InjectedFault> {
    if query_has_key(request.uri().query()) {
        shared.stats.gemini_key_in_query.inc();
    }
    match route {
        GeminiRoute::ListModels | GeminiRoute::GetModel => {
            shared.stats.model_list_requests.inc();
            let live = shared.live.load();
            if let Err(error) = authenticate(&live, request.headers(), request.uri().query()) {
                shared.stats.auth_failures.inc();
                return Ok(error.into_response());
            }
            Ok(if route == GeminiRoute::ListModels {
                models::list(shared, request.uri().query())
            } else {
                models::get(
                    shared,
                    model_of(request.uri().path()),
                    version_of(request.uri().path()),
                )
            })
        }
        GeminiRoute::Unknown => Ok(GeminiError::not_found(request.uri().path()).into_response()),
        GeminiRoute::Generate | GeminiRoute::StreamGenerate | GeminiRoute::CountTokens => {
            if route == GeminiRoute::CountTokens {
                shared.stats.gemini_count_tokens_requests.inc();
            } else {
                shared.stats.gemini_requests.inc();
            }
            let (parts, body) = request.into_parts();
            let body = match read_body(body).await {
                Ok(body) => body,
                Err(error) => {
                    return Ok(GeminiError {
                        status: error.status,
                        message: error.message,
                        ..GeminiError::invalid_argument("")
                    }
                    .into_response());
                }
            };
            let (latency, outcome) = respond(shared, parts, body, route);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            outcome
        }
    }
}

/// Decides the response synchronously; returns it with the delay to apply
/// before its headers.
fn respond(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
    route: GeminiRoute,
) -> (Duration, Result<Response<ResponseBody>, InjectedFault>) {
    let live = shared.live.load();
    let model = model_of(parts.uri.path()).to_owned();
    let version = version_of(parts.uri.path());
    let sse = query_param(parts.uri.query(), "alt") == Some("sse");
    let authenticated = authenticate(&live, &parts.headers, parts.uri.query());
    shared.recorder.record(
        Dialect::Gemini,
        parts.method,
        parts.uri,
        parts.headers,
        body.clone(),
    );
    let refuse = |error: GeminiError| (live.latency, Ok(error.into_response()));
    if let Err(error) = authenticated {
        shared.stats.auth_failures.inc();
        return refuse(error);
    }
    let mode = if route == GeminiRoute::CountTokens {
        Mode::CountTokens
    } else {
        Mode::Generate
    };
    let request = match request::parse(&body, mode, &model) {
        Ok(request) => request,
        Err(error) => {
            if error.bad_signature {
                shared.stats.signature_rejections.inc();
            }
            return refuse(error);
        }
    };
    let scenario = Scenario::from_model(&model);
    if scenario == Scenario::Normal && !live.serves(&model) {
        return refuse(GeminiError::model_not_found(
            &model,
            version,
            route.method_name(),
        ));
    }
    tracing::debug!(gen_ai.request.model = %model, ?route, ?scenario, "gemini request");

    let plan = Plan::resolve(scenario, &live);
    if plan.injected {
        shared.stats.injected_failures.inc();
    }
    let response = match plan.action {
        Action::Fail(status) => Ok(GeminiError::for_status(status).into_response()),
        Action::Reset => {
            shared.stats.connections_reset.inc();
            Err(InjectedFault::ConnectionReset)
        }
        Action::Reply { fault, error_event } => Ok(match route {
            GeminiRoute::CountTokens => count(&request),
            GeminiRoute::StreamGenerate => {
                let framing = if sse {
                    Framing::Sse
                } else {
                    Framing::JsonArray
                };
                reply(
                    shared,
                    &live,
                    &request,
                    &model,
                    Some((fault, error_event, framing)),
                )
            }
            _ => reply(shared, &live, &request, &model, None),
        }),
    };
    (plan.latency, response)
}

fn count(request: &GenerateRequest) -> Response<ResponseBody> {
    let tokens = crate::synth::prompt_tokens(request.prompt_chars);
    let body = json!({"totalTokens": tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]});
    json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

/// A reply; `stream` is `Some((fault, error_event, framing))` for
/// `:streamGenerateContent`.
fn reply(
    shared: &Shared,
    live: &LiveConfig,
    request: &GenerateRequest,
    model: &str,
    stream: Option<(Option<StreamFault>, bool, Framing)>,
) -> Response<ResponseBody> {
    let reply = Reply::new(
        request,
        model,
        live.chunks,
        &shared.ids,
        &shared.prompt_cache,
    );
    if matches!(reply.body, Body::Calls(_)) {
        shared.stats.tool_call_responses.inc();
    }
    if reply.thought_at_all() {
        shared.stats.thinking_responses.inc();
    }
    let Some((fault, error_event, framing)) = stream else {
        return match reply.to_json() {
            Ok(json) => json_response(StatusCode::OK, Bytes::from(json)),
            Err(err) => serialization_failed(&err),
        };
    };
    let options = StreamOptions {
        ttft: live.ttft,
        chunk_delay: live.chunk_delay,
        include_usage: true,
        error_event,
    };
    match stream::render(&reply, options, framing) {
        Ok(script) => {
            shared.stats.streams_started.inc();
            if error_event {
                shared.stats.stream_error_events.inc();
            }
            let body = SseBody::new(script, fault, shared.stats.clone());
            match framing {
                Framing::Sse => sse_response(body),
                Framing::JsonArray => streamed_json_response(body),
            }
        }
        Err(err) => serialization_failed(&err),
    }
}

fn serialization_failed(err: &serde_json::Error) -> Response<ResponseBody> {
    tracing::error!(%err, "serialising a Gemini reply failed");
    GeminiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let post = |path| GeminiRoute::of(&Method::POST, path);
        assert_eq!(
            post("/v1beta/models/g:generateContent"),
            GeminiRoute::Generate
        );
        assert_eq!(
            post("/v1beta/models/g:streamGenerateContent"),
            GeminiRoute::StreamGenerate
        );
        assert_eq!(
            post("/v1beta/models/g:countTokens"),
            GeminiRoute::CountTokens
        );
        assert_eq!(post("/v1beta/models/g:embedContent"), GeminiRoute::Unknown);
        assert_eq!(
            GeminiRoute::of(&Method::GET, "/v1beta/models"),
            GeminiRoute::ListModels
        );
        assert_eq!(
            GeminiRoute::of(&Method::GET, "/v1beta/models/g"),
            GeminiRoute::GetModel
        );
        assert_eq!(
            model_of("/v1beta/models/gemini-2.5-flash:generateContent"),
            "gemini-2.5-flash"
        );
        assert_eq!(model_of("/v1beta/models/g"), "g");
        assert_eq!(post("/v1/models/g:generateContent"), GeminiRoute::Generate);
        assert_eq!(model_of("/v1/models/g:countTokens"), "g");
        assert_eq!(version_of("/v1/models/g:countTokens"), "v1");
        assert!(is_gemini_post("/v1/models/g:generateContent"));
        assert!(!is_gemini_post("/v1/models/g"));
        assert!(!is_gemini_post("/v1/messages"));
    }
}
