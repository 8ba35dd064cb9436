//! `GET /v1beta/models` (paged) and `GET /v1beta/models/{model}` (and the
//! same under `/v1/`).

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::error::GeminiError;
use crate::models::DEFAULT_MODEL;
use crate::record::query_param;
use crate::server::{ResponseBody, json_response};
use crate::state::Shared;

/// Default and largest page sizes.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

fn model(id: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": id,
        "description": "A fake model of the fake upstream.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2.0,
        "thinking": true,
    })
}

/// `GET /v1beta/models?pageSize=&pageToken=`: `{"models", "nextPageToken"?}`
/// (the page token is the offset of the next page).
pub(crate) fn list(shared: &Shared, query: Option<&str>) -> Response<ResponseBody> {
    let live = shared.live.load();
    let size = match query_param(query, "pageSize").map(str::parse::<usize>) {
        None | Some(Ok(0)) => DEFAULT_PAGE_SIZE,
        Some(Ok(size)) => size.min(MAX_PAGE_SIZE),
        Some(Err(_)) => {
            return GeminiError::invalid_argument("Invalid value at 'page_size' (TYPE_INT32)")
                .into_response();
        }
    };
    let start = match query_param(query, "pageToken").filter(|token| !token.is_empty()) {
        None => 0,
        Some(token) => match token.parse::<usize>() {
            Ok(start) => start,
            Err(_) => return GeminiError::invalid_argument("Invalid page token.").into_response(),
        },
    };
    let ids: Vec<&str> = if live.config.models.is_empty() {
        vec![DEFAULT_MODEL]
    } else {
        live.config.models.iter().map(String::as_str).collect()
    };
    let end = start.saturating_add(size).min(ids.len());
    let page = ids.get(start.min(end)..end).unwrap_or_default();
    let mut body = json!({"models": page.iter().map(|id| model(id)).collect::<Vec<_>>()});
    if end < ids.len() {
        body["nextPageToken"] = json!(end.to_string());
    }
    json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

/// `GET /v1beta/models/{model}`: any model when no list is configured.
pub(crate) fn get(shared: &Shared, id: &str, version: &str) -> Response<ResponseBody> {
    let live = shared.live.load();
    if id.is_empty() || !live.serves(id) {
        return GeminiError::model_not_found(id, version, "get").into_response();
    }
    json_response(StatusCode::OK, Bytes::from(model(id).to_string()))
}
