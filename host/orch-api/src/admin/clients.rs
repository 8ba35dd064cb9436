//! `/admin/v1/client-keys`: keys the gateway issues to its clients. A key
//! is shown in full once, when created; the database keeps its SHA-256.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ops::{Operation, run};
use super::providers::snapshot;
use super::views::{ClientKeySpec, ClientKeyView, CreatedClientKey};
use crate::error::ApiError;
use crate::state::AppState;

async fn view(state: &AppState, id: i64) -> Result<ClientKeyView, ApiError> {
    let snap = snapshot(state).await?;
    let row = snap
        .client_keys
        .iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::not_found("client key", &id.to_string()))?;
    ClientKeyView::new(row)
}

/// List client keys (by prefix; never the keys).
#[utoipa::path(get, path = "/admin/v1/client-keys", tag = "client-keys",
    responses((status = 200, body = [ClientKeyView])))]
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<ClientKeyView>>, ApiError> {
    let snap = snapshot(&state).await?;
    snap.client_keys
        .iter()
        .map(ClientKeyView::new)
        .collect::<Result<_, _>>()
        .map(Json)
}

/// One client key.
#[utoipa::path(get, path = "/admin/v1/client-keys/{id}", tag = "client-keys",
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = ClientKeyView), (status = 404, description = "No such key")))]
pub(crate) async fn get(
    State(state): State<AppState>,
    super::PathOf(id): super::PathOf<i64>,
) -> Result<Json<ClientKeyView>, ApiError> {
    view(&state, id).await.map(Json)
}

/// Issue a client key. The answer holds the key: it is not shown again.
#[utoipa::path(post, path = "/admin/v1/client-keys", tag = "client-keys",
    request_body = ClientKeySpec,
    responses((status = 201, body = CreatedClientKey), (status = 400, description = "Invalid")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    super::Body(spec): super::Body<ClientKeySpec>,
) -> Result<(StatusCode, Json<CreatedClientKey>), ApiError> {
    let (results, _) = run(
        &state,
        vec![Operation::CreateClientKey { client_key: spec }],
    )
    .await?;
    let created = results
        .into_iter()
        .next()
        .and_then(|r| Some((r.id?, r.key?)))
        .ok_or_else(|| ApiError::internal("The key was stored but its id is unknown."))?;
    let view = view(&state, created.0).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClientKey {
            key: created.1,
            view,
        }),
    ))
}

/// Change a client key's settings (the key itself never changes).
#[utoipa::path(put, path = "/admin/v1/client-keys/{id}", tag = "client-keys",
    params(("id" = i64, Path, description = "Key id")),
    request_body = ClientKeySpec,
    responses((status = 200, body = ClientKeyView), (status = 404, description = "No such key")))]
pub(crate) async fn put(
    State(state): State<AppState>,
    super::PathOf(id): super::PathOf<i64>,
    super::Body(spec): super::Body<ClientKeySpec>,
) -> Result<Json<ClientKeyView>, ApiError> {
    run(
        &state,
        vec![Operation::UpdateClientKey {
            id,
            client_key: spec,
        }],
    )
    .await?;
    view(&state, id).await.map(Json)
}

/// Revoke a client key.
#[utoipa::path(delete, path = "/admin/v1/client-keys/{id}", tag = "client-keys",
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such key")))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    super::PathOf(id): super::PathOf<i64>,
) -> Result<StatusCode, ApiError> {
    run(&state, vec![Operation::DeleteClientKey { id }]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(state: &AppState, id: i64, enabled: bool) -> Result<ClientKeyView, ApiError> {
    let current = view(state, id).await?;
    let client_key = ClientKeySpec {
        enabled,
        ..current.settings
    };
    run(state, vec![Operation::UpdateClientKey { id, client_key }]).await?;
    view(state, id).await
}

/// Accept a client key again.
#[utoipa::path(post, path = "/admin/v1/client-keys/{id}/enable", tag = "client-keys",
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = ClientKeyView), (status = 404, description = "No such key")))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    super::PathOf(id): super::PathOf<i64>,
) -> Result<Json<ClientKeyView>, ApiError> {
    set_enabled(&state, id, true).await.map(Json)
}

/// Refuse a client key without deleting it.
#[utoipa::path(post, path = "/admin/v1/client-keys/{id}/disable", tag = "client-keys",
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = ClientKeyView), (status = 404, description = "No such key")))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    super::PathOf(id): super::PathOf<i64>,
) -> Result<Json<ClientKeyView>, ApiError> {
    set_enabled(&state, id, false).await.map(Json)
}
