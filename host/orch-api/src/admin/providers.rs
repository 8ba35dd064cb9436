//! `/admin/v1/providers`: upstream providers and their keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orch_core::catalog::ProviderSpec;
use orch_store::{ManagedBy, Snapshot};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ops::{Operation, run};
use super::views::{KeyView, ProviderView};
use super::{db_error, store};
use crate::error::ApiError;
use crate::state::AppState;

pub(super) async fn snapshot(state: &AppState) -> Result<Snapshot, ApiError> {
    store(state)?.snapshot().await.map_err(|e| db_error(&e))
}

/// The view of provider `name` in `snap`.
fn view(state: &AppState, snap: &Snapshot, name: &str) -> Result<ProviderView, ApiError> {
    let row = snap
        .providers
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found("provider", name))?;
    let keys = if row.managed_by == ManagedBy::File {
        // The file's keys live in the file; show the ones being served.
        let live = state.live();
        live.providers
            .iter()
            .find(|p| p.name == name)
            .map(|p| {
                (0..p.keys.len())
                    .map(|i| KeyView {
                        id: None,
                        label: None,
                        masked: p.masked_key(i),
                        source: "file",
                        enabled: true,
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        snap.keys
            .iter()
            .filter(|k| k.provider == name)
            .map(KeyView::from)
            .collect()
    };
    ProviderView::new(row, keys)
}

/// List providers.
#[utoipa::path(get, path = "/admin/v1/providers", tag = "providers",
    responses((status = 200, body = [ProviderView])))]
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<ProviderView>>, ApiError> {
    let snap = snapshot(&state).await?;
    snap.providers
        .iter()
        .map(|p| view(&state, &snap, &p.name))
        .collect::<Result<_, _>>()
        .map(Json)
}

/// One provider.
#[utoipa::path(get, path = "/admin/v1/providers/{name}", tag = "providers",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 200, body = ProviderView), (status = 404, description = "No such provider")))]
pub(crate) async fn get(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<ProviderView>, ApiError> {
    let snap = snapshot(&state).await?;
    view(&state, &snap, &name).map(Json)
}

async fn put_and_view(state: &AppState, provider: ProviderSpec) -> Result<ProviderView, ApiError> {
    let name = provider.name.clone();
    run(state, vec![Operation::PutProvider { provider }]).await?;
    let snap = snapshot(state).await?;
    view(state, &snap, &name)
}

/// Create a provider (`api_keys`: `env:NAME` references or literal keys,
/// which are stored encrypted).
#[utoipa::path(post, path = "/admin/v1/providers", tag = "providers",
    request_body = ProviderSpec,
    responses((status = 201, body = ProviderView), (status = 409, description = "Exists already"),
              (status = 422, description = "Invalid")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    super::Body(provider): super::Body<ProviderSpec>,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    let snap = snapshot(&state).await?;
    if snap.providers.iter().any(|p| p.name == provider.name) {
        return Err(ApiError::conflict(
            "conflict",
            format!("The provider {:?} exists already.", provider.name),
        ));
    }
    let v = put_and_view(&state, provider).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Create or replace a provider; keys are replaced when `api_keys` is given.
#[utoipa::path(put, path = "/admin/v1/providers/{name}", tag = "providers",
    params(("name" = String, Path, description = "Provider name")),
    request_body = ProviderSpec,
    responses((status = 200, body = ProviderView), (status = 409, description = "Owned by the configuration file"),
              (status = 422, description = "Invalid")))]
pub(crate) async fn put(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
    super::Body(provider): super::Body<ProviderSpec>,
) -> Result<Json<ProviderView>, ApiError> {
    if provider.name != name {
        return Err(ApiError::bad_request(
            "`name` must match the name in the path.",
            Some("name"),
        ));
    }
    put_and_view(&state, provider).await.map(Json)
}

/// Delete a provider no model uses.
#[utoipa::path(delete, path = "/admin/v1/providers/{name}", tag = "providers",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such provider"),
              (status = 409, description = "Used by a model, or owned by the configuration file")))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<StatusCode, ApiError> {
    run(&state, vec![Operation::DeleteProvider { name }]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    name: &str,
    enabled: bool,
) -> Result<ProviderView, ApiError> {
    let snap = snapshot(state).await?;
    let current = view(state, &snap, name)?;
    put_and_view(
        state,
        ProviderSpec {
            enabled,
            api_keys: Vec::new(),
            ..current.spec
        },
    )
    .await
}

/// Serve a provider again.
#[utoipa::path(post, path = "/admin/v1/providers/{name}/enable", tag = "providers",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 200, body = ProviderView), (status = 404, description = "No such provider")))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<ProviderView>, ApiError> {
    set_enabled(&state, &name, true).await.map(Json)
}

/// Stop serving a provider, keeping its definition.
#[utoipa::path(post, path = "/admin/v1/providers/{name}/disable", tag = "providers",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 200, body = ProviderView), (status = 404, description = "No such provider")))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<ProviderView>, ApiError> {
    set_enabled(&state, &name, false).await.map(Json)
}

/// A key to add.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// `env:NAME`, or the literal key (stored encrypted; never returned).
    pub key: String,
    /// A label for operators.
    #[serde(default)]
    pub label: Option<String>,
}

/// Add a key to a provider.
#[utoipa::path(post, path = "/admin/v1/providers/{name}/keys", tag = "providers",
    params(("name" = String, Path, description = "Provider name")),
    request_body = NewKey,
    responses((status = 201, body = ProviderView), (status = 404, description = "No such provider"),
              (status = 409, description = "The key exists already, or the provider is owned by the file")))]
pub(crate) async fn add_key(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
    super::Body(new): super::Body<NewKey>,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    run(
        &state,
        vec![Operation::AddProviderKey {
            provider: name.clone(),
            key: new.key,
            label: new.label,
        }],
    )
    .await?;
    let snap = snapshot(&state).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &snap, &name)?)))
}

/// Remove one of a provider's keys.
#[utoipa::path(delete, path = "/admin/v1/providers/{name}/keys/{id}", tag = "providers",
    params(("name" = String, Path, description = "Provider name"), ("id" = i64, Path, description = "Key id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such provider or key")))]
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    super::PathOf((name, id)): super::PathOf<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    run(
        &state,
        vec![Operation::DeleteProviderKey { provider: name, id }],
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a provider test found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProbeResult {
    /// Whether the provider answered its adapter's probe as healthy.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// Why not, when not.
    pub error: Option<String>,
}

/// Probe a provider now with its adapter's cheap request (a models listing).
#[utoipa::path(post, path = "/admin/v1/providers/{name}/test", tag = "providers",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 200, body = ProbeResult), (status = 404, description = "No such provider being served")))]
pub(crate) async fn test(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<ProbeResult>, ApiError> {
    let live = state.live();
    let index = live
        .providers
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found("served provider", &name))?;
    let started = std::time::Instant::now();
    let outcome = crate::probes::probe_now(&state, &live, index).await;
    Ok(Json(ProbeResult {
        ok: outcome.is_ok(),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: outcome.err(),
    }))
}
