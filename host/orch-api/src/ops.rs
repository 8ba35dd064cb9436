//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::state::AppState;

/// The process is alive; touches nothing external.
pub(crate) async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready to serve: at least one adapter is loaded.
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let snapshot = state.services().plugins.snapshot();
    let adapters = snapshot
        .active()
        .filter(|p| p.info.kind == orch_core::contract::PluginKind::Adapter)
        .count();
    if adapters == 0 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({"status": "not_ready", "reason": "no adapter plugin is loaded"}),
            ),
        );
    }
    (
        StatusCode::OK,
        Json(serde_json::json!({"status": "ready", "adapters": adapters})),
    )
}
