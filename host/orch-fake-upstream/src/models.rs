//! `GET /v1/models` and `GET /v1/models/{id}`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::error::ApiError;
use crate::server::{ResponseBody, json_response};
use crate::state::Shared;

/// The model listed when [`crate::FakeConfig::models`] is empty.
pub const DEFAULT_MODEL: &str = "fake-model";

/// `created` timestamp of every listed model (fixed, so responses are stable).
const CREATED: u64 = 1_700_000_000;

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl<'a> ModelObject<'a> {
    fn new(id: &'a str) -> Self {
        Self {
            id,
            object: "model",
            created: CREATED,
            owned_by: "fake",
        }
    }
}

/// The `GET /v1/models` body for `models` (computed once per configuration).
pub(crate) fn list_body(models: &[String]) -> Bytes {
    let data = if models.is_empty() {
        vec![ModelObject::new(DEFAULT_MODEL)]
    } else {
        models.iter().map(|model| ModelObject::new(model)).collect()
    };
    let list = ModelList {
        object: "list",
        data,
    };
    // Serialising strings and integers into memory cannot fail.
    Bytes::from(serde_json::to_vec(&list).unwrap_or_default())
}

/// `GET /v1/models`.
pub(crate) fn list(shared: &Shared, headers: &HeaderMap) -> Response<ResponseBody> {
    shared.stats.model_list_requests.inc();
    let live = shared.live.load();
    if !live.authorizes(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        shared.stats.auth_failures.inc();
        return ApiError::invalid_api_key().into_response();
    }
    json_response(StatusCode::OK, live.models_body.clone())
}

/// `GET /v1/models/{id}`: any id when no model list is configured.
pub(crate) fn retrieve(shared: &Shared, headers: &HeaderMap, id: &str) -> Response<ResponseBody> {
    shared.stats.model_list_requests.inc();
    let live = shared.live.load();
    if !live.authorizes(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        shared.stats.auth_failures.inc();
        return ApiError::invalid_api_key().into_response();
    }
    if id.is_empty() || !live.serves(id) {
        return ApiError::model_not_found(id).into_response();
    }
    match serde_json::to_vec(&ModelObject::new(id)) {
        Ok(json) => json_response(StatusCode::OK, Bytes::from(json)),
        Err(_) => ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_listed() {
        let body: serde_json::Value = serde_json::from_slice(&list_body(&[])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"object": "list", "data": [
                {"id": DEFAULT_MODEL, "object": "model", "created": CREATED, "owned_by": "fake"}
            ]})
        );
    }

    #[test]
    fn configured_models_are_listed() {
        let body: serde_json::Value =
            serde_json::from_slice(&list_body(&["a".into(), "b".into()])).unwrap();
        assert_eq!(body["data"][1]["id"], "b");
    }
}
