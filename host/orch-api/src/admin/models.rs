//! `/admin/v1/models`: models clients can ask for, and their targets.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orch_core::catalog::{ModelSpec, TargetSpec};
use orch_store::Snapshot;

use super::ops::{Operation, run};
use super::providers::snapshot;
use super::views::ModelView;
use crate::error::ApiError;
use crate::state::AppState;

fn view(snap: &Snapshot, name: &str) -> Result<ModelView, ApiError> {
    let row = snap
        .models
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| ApiError::not_found("model", name))?;
    ModelView::new(row)
}

async fn put_and_view(state: &AppState, model: ModelSpec) -> Result<ModelView, ApiError> {
    let name = model.name.clone();
    run(state, vec![Operation::PutModel { model }]).await?;
    view(&snapshot(state).await?, &name)
}

/// List models.
#[utoipa::path(get, path = "/admin/v1/models", tag = "models",
    responses((status = 200, body = [ModelView])))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<ModelView>>, ApiError> {
    let snap = snapshot(&state).await?;
    snap.models
        .iter()
        .map(ModelView::new)
        .collect::<Result<_, _>>()
        .map(Json)
}

/// One model.
#[utoipa::path(get, path = "/admin/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, body = ModelView), (status = 404, description = "No such model")))]
pub(crate) async fn get(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<ModelView>, ApiError> {
    view(&snapshot(&state).await?, &name).map(Json)
}

/// Create a model.
#[utoipa::path(post, path = "/admin/v1/models", tag = "models",
    request_body = ModelSpec,
    responses((status = 201, body = ModelView), (status = 409, description = "Exists already"),
              (status = 422, description = "Invalid")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    super::Body(model): super::Body<ModelSpec>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    let snap = snapshot(&state).await?;
    if snap.models.iter().any(|m| m.name == model.name) {
        return Err(ApiError::conflict(
            "conflict",
            format!("The model {:?} exists already.", model.name),
        ));
    }
    let v = put_and_view(&state, model).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Create or replace a model with its targets.
#[utoipa::path(put, path = "/admin/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    request_body = ModelSpec,
    responses((status = 200, body = ModelView), (status = 409, description = "Owned by the configuration file"),
              (status = 422, description = "Invalid")))]
pub(crate) async fn put(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
    super::Body(model): super::Body<ModelSpec>,
) -> Result<Json<ModelView>, ApiError> {
    if model.name != name {
        return Err(ApiError::bad_request(
            "`name` must match the name in the path.",
            Some("name"),
        ));
    }
    put_and_view(&state, model).await.map(Json)
}

/// Delete a model.
#[utoipa::path(delete, path = "/admin/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such model"),
              (status = 409, description = "Owned by the configuration file")))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<StatusCode, ApiError> {
    run(&state, vec![Operation::DeleteModel { name }]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a model through a function of its current definition.
async fn edit(
    state: &AppState,
    name: &str,
    change: impl FnOnce(&mut ModelSpec) -> Result<(), ApiError>,
) -> Result<ModelView, ApiError> {
    let mut spec = view(&snapshot(state).await?, name)?.spec;
    change(&mut spec)?;
    put_and_view(state, spec).await
}

/// Serve a model again.
#[utoipa::path(post, path = "/admin/v1/models/{name}/enable", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, body = ModelView), (status = 404, description = "No such model")))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<ModelView>, ApiError> {
    edit(&state, &name, |m| {
        m.enabled = true;
        Ok(())
    })
    .await
    .map(Json)
}

/// Stop serving a model, keeping its definition.
#[utoipa::path(post, path = "/admin/v1/models/{name}/disable", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, body = ModelView), (status = 404, description = "No such model")))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<ModelView>, ApiError> {
    edit(&state, &name, |m| {
        m.enabled = false;
        Ok(())
    })
    .await
    .map(Json)
}

/// A model's targets, in order.
#[utoipa::path(get, path = "/admin/v1/models/{name}/targets", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses((status = 200, body = [TargetSpec]), (status = 404, description = "No such model")))]
pub(crate) async fn list_targets(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
) -> Result<Json<Vec<TargetSpec>>, ApiError> {
    Ok(Json(view(&snapshot(&state).await?, &name)?.spec.targets))
}

/// Append a target to a model.
#[utoipa::path(post, path = "/admin/v1/models/{name}/targets", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    request_body = TargetSpec,
    responses((status = 201, body = ModelView), (status = 404, description = "No such model"),
              (status = 422, description = "Invalid")))]
pub(crate) async fn add_target(
    State(state): State<AppState>,
    super::PathOf(name): super::PathOf<String>,
    super::Body(target): super::Body<TargetSpec>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    let v = edit(&state, &name, |m| {
        m.targets.push(target);
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

fn target_at(m: &mut ModelSpec, index: usize) -> Result<&mut TargetSpec, ApiError> {
    let name = m.name.clone();
    m.targets
        .get_mut(index)
        .ok_or_else(|| ApiError::not_found("target", &format!("{name}[{index}]")))
}

/// Replace a model's target by position (0-based).
#[utoipa::path(put, path = "/admin/v1/models/{name}/targets/{index}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("index" = usize, Path, description = "Position, from 0")),
    request_body = TargetSpec,
    responses((status = 200, body = ModelView), (status = 404, description = "No such model or target"),
              (status = 422, description = "Invalid")))]
pub(crate) async fn put_target(
    State(state): State<AppState>,
    super::PathOf((name, index)): super::PathOf<(String, usize)>,
    super::Body(target): super::Body<TargetSpec>,
) -> Result<Json<ModelView>, ApiError> {
    edit(&state, &name, |m| {
        *target_at(m, index)? = target;
        Ok(())
    })
    .await
    .map(Json)
}

/// Remove a model's target by position (0-based).
#[utoipa::path(delete, path = "/admin/v1/models/{name}/targets/{index}", tag = "models",
    params(("name" = String, Path, description = "Model name"), ("index" = usize, Path, description = "Position, from 0")),
    responses((status = 200, body = ModelView), (status = 404, description = "No such model or target"),
              (status = 422, description = "A model needs a target")))]
pub(crate) async fn delete_target(
    State(state): State<AppState>,
    super::PathOf((name, index)): super::PathOf<(String, usize)>,
) -> Result<Json<ModelView>, ApiError> {
    edit(&state, &name, |m| {
        target_at(m, index)?;
        m.targets.remove(index);
        Ok(())
    })
    .await
    .map(Json)
}
