//! The Anthropic shape of `GET /v1/models` and `GET /v1/models/{id}`, served
//! when the request carries an `anthropic-version` header.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Value, json};

use super::authenticate;
use super::error::{AnthropicError, with_request_id};
use crate::models::DEFAULT_MODEL;
use crate::record::query_param;
use crate::server::{ResponseBody, json_response};
use crate::state::Shared;

/// `created_at` of every listed model (fixed, so responses are stable).
const CREATED_AT: &str = "2025-01-01T00:00:00Z";

/// Default and largest page sizes.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

fn model(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT})
}

/// `GET /v1/models?limit=&after_id=&before_id=`:
/// `{"data", "has_more", "first_id", "last_id"}`.
pub(crate) fn list(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response<ResponseBody> {
    shared.stats.model_list_requests.inc();
    let request_id = shared.ids.next("req_");
    let live = shared.live.load();
    if let Err(error) = authenticate(&live, headers) {
        if error.status == StatusCode::UNAUTHORIZED {
            shared.stats.auth_failures.inc();
        }
        return error.into_response(&request_id);
    }
    let limit = match query_param(query, "limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
        Some(_) => {
            return AnthropicError::invalid_request(format!(
                "limit: Input should be an integer between 1 and {MAX_LIMIT}"
            ))
            .into_response(&request_id);
        }
    };
    let ids: Vec<&str> = if live.config.models.is_empty() {
        vec![DEFAULT_MODEL]
    } else {
        live.config.models.iter().map(String::as_str).collect()
    };
    let position = |id: Option<&str>| id.and_then(|id| ids.iter().position(|m| *m == id));
    let (start, end) = match (
        position(query_param(query, "after_id")),
        position(query_param(query, "before_id")),
    ) {
        (Some(after), _) => (after + 1, (after + 1 + limit).min(ids.len())),
        (None, Some(before)) => (before.saturating_sub(limit), before),
        (None, None) => (0, limit.min(ids.len())),
    };
    let page = ids.get(start..end).unwrap_or_default();
    let body = json!({
        "data": page.iter().map(|id| model(id)).collect::<Vec<_>>(),
        "has_more": end < ids.len(),
        "first_id": page.first(),
        "last_id": page.last(),
    });
    with_request_id(
        json_response(StatusCode::OK, Bytes::from(body.to_string())),
        &request_id,
    )
}

/// `GET /v1/models/{id}`: any id when no model list is configured.
pub(crate) fn retrieve(shared: &Shared, headers: &HeaderMap, id: &str) -> Response<ResponseBody> {
    shared.stats.model_list_requests.inc();
    let request_id = shared.ids.next("req_");
    let live = shared.live.load();
    if let Err(error) = authenticate(&live, headers) {
        if error.status == StatusCode::UNAUTHORIZED {
            shared.stats.auth_failures.inc();
        }
        return error.into_response(&request_id);
    }
    if id.is_empty() || !live.serves(id) {
        return AnthropicError::model_not_found(id).into_response(&request_id);
    }
    with_request_id(
        json_response(StatusCode::OK, Bytes::from(model(id).to_string())),
        &request_id,
    )
}
