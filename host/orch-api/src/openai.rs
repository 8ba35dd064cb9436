//! The OpenAI-compatible ingress: `/v1/chat/completions` and `/v1/models`.
//! The canonical form is the OpenAI shape, so this dialect needs no plugin.

use std::time::Instant;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::auth::authenticate;
use crate::error::{ApiError, Dialect};
use crate::pipeline::{self, ChatIngress};
use crate::state::AppState;

/// The client's `x-request-id` when it is sane, else a new UUIDv7.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

pub(crate) fn with_request_id(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let id = request_id(&headers);
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let err = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(state.max_body_bytes())
            } else {
                ApiError::bad_request(format!("cannot read the request body: {rejection}"), None)
            };
            return with_request_id(err.into_response(), &id);
        }
    };
    let ingress = ChatIngress {
        dialect: Dialect::OpenAi,
        operation: orch_core::contract::Operation::Chat,
        request_id: id.clone(),
        started,
        body,
        path_model: None,
        endpoint_streams: None,
        query_key: None,
    };
    with_request_id(pipeline::chat(&state, &headers, ingress).await, &id)
}

/// `GET /v1/models`: the configured models, in Anthropic's or Gemini's shape
/// when the request carries their SDKs' headers (`anthropic-version`,
/// `x-goog-api-key` / `x-goog-api-client`).
pub(crate) async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let dialect = crate::ingress::dialect_of_headers(&headers);
    if dialect != Dialect::OpenAi {
        return crate::ingress::list_models_in(&state, &headers, dialect, None, None).await;
    }
    let id = request_id(&headers);
    let live = state.live();
    if let Err(e) = authenticate(&live, &headers, Dialect::OpenAi, None) {
        return with_request_id(e.into_response(), &id);
    }
    let data: Vec<_> = live
        .model_names
        .iter()
        .map(|name| {
            serde_json::json!({
                "id": name,
                "object": "model",
                "created": live.created_s,
                "owned_by": "llm-orchestrator",
            })
        })
        .collect();
    with_request_id(
        axum::Json(serde_json::json!({"object": "list", "data": data})).into_response(),
        &id,
    )
}

/// Unknown routes get an OpenAI-shaped 404.
pub(crate) async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::route_not_found(method.as_str(), uri.path()).into_response()
}
