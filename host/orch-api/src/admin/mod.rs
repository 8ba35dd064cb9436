//! The admin API under `/admin/v1/`: the catalogue (providers and their keys,
//! models and their targets), client keys, batches, request logs, usage,
//! the audit log, plugins and health, with an OpenAPI document generated
//! from the handlers (`/admin/v1/openapi.json`).
//!
//! Every route sits behind the admin token (`[admin] token`); without one
//! configured the admin API is off. Every change goes through
//! [`ops::run`]: validated against the whole catalogue by the same rules as
//! the configuration file, written with its audit rows in one transaction,
//! and served by this replica at once (the others within their poll).

mod clients;
mod models;
mod ops;
mod providers;
mod reads;
mod views;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// The document's fixed part; paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "LLM Orchestrator admin API",
        description = "Manage providers, models, client keys; read logs, usage, audit, plugins and health. \
                       Every route needs `Authorization: Bearer <admin token>`.",
    ),
    modifiers(&BearerAuth),
    security(("admin_token" = [])),
    tags(
        (name = "providers", description = "Upstream providers and their keys"),
        (name = "models", description = "Models clients can ask for, and their targets"),
        (name = "client-keys", description = "Keys the gateway issues to its clients"),
        (name = "batch", description = "Several changes applied atomically"),
        (name = "observe", description = "Request logs, usage, audit log, plugins, health"),
    )
)]
struct AdminDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The admin routes and the OpenAPI document describing them.
fn parts() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(AdminDoc::openapi())
        .routes(routes!(providers::list, providers::create))
        .routes(routes!(providers::get, providers::put, providers::delete))
        .routes(routes!(providers::enable))
        .routes(routes!(providers::disable))
        .routes(routes!(providers::add_key))
        .routes(routes!(providers::delete_key))
        .routes(routes!(providers::test))
        .routes(routes!(models::list, models::create))
        .routes(routes!(models::get, models::put, models::delete))
        .routes(routes!(models::enable))
        .routes(routes!(models::disable))
        .routes(routes!(models::list_targets, models::add_target))
        .routes(routes!(models::put_target, models::delete_target))
        .routes(routes!(clients::list, clients::create))
        .routes(routes!(clients::get, clients::put, clients::delete))
        .routes(routes!(clients::enable))
        .routes(routes!(clients::disable))
        .routes(routes!(ops::batch))
        .routes(routes!(reads::logs))
        .routes(routes!(reads::bodies))
        .routes(routes!(reads::usage))
        .routes(routes!(reads::audit))
        .routes(routes!(reads::plugins))
        .routes(routes!(reads::transformers))
        .routes(routes!(reads::shadow))
        .routes(routes!(reads::health))
        .split_for_parts()
}

/// The OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// `/admin/v1/...`, every route behind the admin token.
pub(crate) fn router(state: &AppState) -> axum::Router<AppState> {
    let (routes, doc) = parts();
    let doc = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()));
    routes
        .route(
            "/admin/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.as_str().to_owned(),
                    )
                }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
}

/// Only the admin token passes.
async fn guard(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    match crate::auth::authenticate_admin(&state.live(), &headers) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s (JSON, with the reason).
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Body<T>(pub T);

/// `axum::extract::Path` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct PathOf<T>(pub T);

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct QueryOf<T>(pub T);

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        let mut e = ApiError::bad_request(r.body_text(), None);
        e.status = r.status();
        e
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(r.body_text(), None)
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(r.body_text(), None)
    }
}

/// The database behind the admin API.
fn store(state: &AppState) -> Result<&orch_store::Store, ApiError> {
    state
        .services()
        .store
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("The admin API needs a database."))
}

/// A database failure as the client sees it (the cause is logged).
fn db_error(e: &orch_store::StoreError) -> ApiError {
    tracing::error!("admin API: {}", orch_store::ErrorChain(e));
    let mut err = ApiError::unavailable("The database is unavailable; try again.");
    err.code = "database_unavailable".into();
    err
}
