//! The Anthropic and Gemini ingress: routes that read the client's request
//! in its own wire dialect and hand it to the pipeline. Translation is the
//! dialect plugins' job; these handlers only know where each dialect puts
//! the model, the stream flag and the key.

use std::time::Instant;

use axum::Extension;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use orch_core::contract::{ModelEntry, Operation};

use crate::auth::{authenticate, query_key};
use crate::error::{ApiError, Dialect};
use crate::pipeline::{self, ChatIngress, render_error};
use crate::state::AppState;
use crate::trace::RequestTrace;

/// Turn a body rejection into the dialect's error.
fn body_error(state: &AppState, rejection: &BytesRejection, dialect: Dialect) -> ApiError {
    let err = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(state.max_body_bytes())
    } else {
        ApiError::bad_request(format!("cannot read the request body: {rejection}"), None)
    };
    err.in_dialect(dialect)
}

struct Call {
    dialect: Dialect,
    operation: Operation,
    path_model: Option<String>,
    endpoint_streams: Option<bool>,
    query_key: Option<String>,
}

async fn run(
    state: AppState,
    trace: RequestTrace,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    call: Call,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let err = body_error(&state, &rejection, call.dialect);
            return render_error(&state, err, &trace.id).await;
        }
    };
    let ingress = ChatIngress {
        dialect: call.dialect,
        operation: call.operation,
        started,
        body,
        path_model: call.path_model,
        endpoint_streams: call.endpoint_streams,
        query_key: call.query_key,
        trace,
    };
    pipeline::chat(&state, &headers, ingress).await
}

/// `POST /v1/messages`.
pub(crate) async fn anthropic_messages(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = Call {
        dialect: Dialect::Anthropic,
        operation: Operation::Chat,
        path_model: None,
        endpoint_streams: None,
        query_key: None,
    };
    run(state, trace, headers, body, call).await
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn anthropic_count_tokens(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = Call {
        dialect: Dialect::Anthropic,
        operation: Operation::CountTokens,
        path_model: None,
        endpoint_streams: Some(false),
        query_key: None,
    };
    run(state, trace, headers, body, call).await
}

/// `POST /v1beta/models/{model}:{action}` for `generateContent`,
/// `streamGenerateContent` and `countTokens`.
pub(crate) async fn gemini_action(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    Path(rest): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let query_key = query_key(uri.query());
    let (model, action) = rest.rsplit_once(':').unwrap_or((rest.as_str(), ""));
    let (operation, streams) = match action {
        "generateContent" => (Operation::Chat, false),
        "streamGenerateContent" => (Operation::Chat, true),
        "countTokens" => (Operation::CountTokens, false),
        _ => {
            let err = ApiError::route_not_found("POST", uri.path()).in_dialect(Dialect::Gemini);
            return render_error(&state, err, &trace.id).await;
        }
    };
    let model = model.strip_prefix("models/").unwrap_or(model).to_string();
    let call = Call {
        dialect: Dialect::Gemini,
        operation,
        path_model: Some(model),
        endpoint_streams: Some(streams),
        query_key,
    };
    run(state, trace, headers, body, call).await
}

/// The configured models as dialect plugins list them.
fn model_entries(state: &AppState) -> Vec<ModelEntry> {
    let live = state.live();
    live.model_names
        .iter()
        .map(|name| ModelEntry {
            id: name.clone(),
            owned_by: live
                .catalogue
                .resolve(name)
                .and_then(|r| r.route.targets.first())
                .and_then(|t| live.providers.get(t.provider))
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "llm-orchestrator".into()),
            created: live.created_s,
        })
        .collect()
}

/// A model listing in a plugin dialect. `only` picks one model (Gemini's
/// `GET /v1beta/models/{model}`).
pub(crate) async fn list_models_in(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    dialect: Dialect,
    query: Option<&str>,
    only: Option<&str>,
) -> Response {
    let live = state.live();
    let key = query_key(query);
    if let Err(e) = authenticate(&live, headers, dialect, key.as_deref()) {
        return render_error(state, e, id).await;
    }
    let mut entries = model_entries(state);
    if let Some(name) = only {
        entries.retain(|m| m.id == name);
        if entries.is_empty() {
            let err = ApiError::model_not_found(name).in_dialect(dialect);
            return render_error(state, err, id).await;
        }
    }
    let snapshot = state.services().plugins.snapshot();
    let Some(plugin) = snapshot.dialect(dialect.as_str()).cloned() else {
        let err = ApiError::unavailable(format!(
            "The {} dialect plugin is not loaded.",
            dialect.as_str()
        ))
        .in_dialect(dialect);
        return err.into_response();
    };
    let listed = match plugin.dialect(id).await {
        Ok(mut inst) => inst.encode_models(&entries).await,
        Err(f) => Err(f),
    };
    let body = match listed {
        Ok(b) => b,
        Err(f) => {
            tracing::warn!(plugin = %plugin.label(), fault = f.kind(), "dialect plugin failed to list models: {f}");
            let err = ApiError::plugin(&f).in_dialect(dialect);
            return err.into_response();
        }
    };
    let body = match only {
        // One model: the listing's only entry.
        Some(_) => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let list = v.get("models").or_else(|| v.get("data"))?;
                list.get(0).cloned()
            })
            .map_or(body, |m| m.to_string()),
        None => body,
    };
    let mut resp = Response::new(axum::body::Body::from(body));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// `GET /v1beta/models`.
pub(crate) async fn gemini_models(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    list_models_in(
        &state,
        &trace.id,
        &headers,
        Dialect::Gemini,
        uri.query(),
        None,
    )
    .await
}

/// `GET /v1beta/models/{model}`.
pub(crate) async fn gemini_model(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    Path(rest): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let name = rest.strip_prefix("models/").unwrap_or(&rest).to_string();
    list_models_in(
        &state,
        &trace.id,
        &headers,
        Dialect::Gemini,
        uri.query(),
        Some(&name),
    )
    .await
}

/// Which dialect a request to a shared path (`/v1/models…`) speaks, from the
/// headers each official SDK sends.
pub(crate) fn dialect_of_headers(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else if headers.contains_key("x-goog-api-key") || headers.contains_key("x-goog-api-client") {
        Dialect::Gemini
    } else {
        Dialect::OpenAi
    }
}

/// `GET /v1/models/{model}`: one model in the dialect the headers name.
pub(crate) async fn retrieve_model(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestTrace>,
    Path(rest): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let dialect = dialect_of_headers(&headers);
    if dialect != Dialect::OpenAi {
        let name = rest.strip_prefix("models/").unwrap_or(&rest);
        return list_models_in(
            &state,
            &trace.id,
            &headers,
            dialect,
            uri.query(),
            Some(name),
        )
        .await;
    }
    let live = state.live();
    if let Err(e) = authenticate(&live, &headers, Dialect::OpenAi, None) {
        return e.into_response();
    }
    if live.catalogue.resolve(&rest).is_none() {
        return ApiError::model_not_found(&rest).into_response();
    }
    axum::Json(serde_json::json!({
        "id": rest,
        "object": "model",
        "created": live.created_s,
        "owned_by": "llm-orchestrator",
    }))
    .into_response()
}
