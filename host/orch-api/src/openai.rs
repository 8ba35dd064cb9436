//! The OpenAI-compatible ingress: `/v1/chat/completions` and `/v1/models`.
//! The canonical form is the OpenAI shape, so this dialect needs no plugin.

use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::auth::authenticate;
use crate::error::{ApiError, Dialect};
use crate::pipeline::{self, ChatIngress};
use crate::state::AppState;
use crate::trace::RequestTrace;

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let err = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(state.max_body_bytes())
            } else {
                ApiError::bad_request(format!("cannot read the request body: {rejection}"), None)
            };
            return err.into_response();
        }
    };
    let ingress = ChatIngress {
        dialect: Dialect::OpenAi,
        operation: orch_core::contract::Operation::Chat,
        started,
        body,
        path_model: None,
        endpoint_streams: None,
        query_key: None,
        trace,
    };
    pipeline::chat(&state, &headers, ingress).await
}

/// `GET /v1/models`: the configured models, in Anthropic's or Gemini's shape
/// when the request carries their SDKs' headers (`anthropic-version`,
/// `x-goog-api-key` / `x-goog-api-client`).
pub(crate) async fn list_models(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    headers: HeaderMap,
) -> Response {
    let dialect = crate::ingress::dialect_of_headers(&headers);
    if dialect != Dialect::OpenAi {
        return crate::ingress::list_models_in(&state, &trace.id, &headers, dialect, None, None)
            .await;
    }
    let live = state.live();
    if let Err(e) = authenticate(&live, &headers, Dialect::OpenAi, None) {
        return e.into_response();
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
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}
