//! The HTTP face of the gateway: the axum router, thin handlers, the one
//! [`ApiError`] that renders every failure in the client's dialect, and the
//! request pipeline (route → adapter → upstream → adapter → client) with
//! failover before the commit point.

mod admin;
mod auth;
mod catalog;
mod egress;
mod error;
mod ingress;
mod limits;
mod metrics;
mod openai;
mod ops;
mod pipeline;
mod probes;
mod readiness;
mod shadow;
mod share;
mod sse;
mod state;
mod trace;
mod traffic;
mod transform;

pub use admin::openapi;
pub use catalog::{check_sealed_keys, import_file, run_refresh};
pub use error::{ApiError, Dialect};
pub use probes::run as run_probes;
pub use readiness::spawn as spawn_readiness;
pub use share::spawn as spawn_sharing;
pub use state::{AppState, Services};
pub use traffic::Traffic;

/// Check the transformer attachments' configurations now and after every
/// plugin reload (a background task that follows the plugin snapshot).
pub fn spawn_transformer_checks(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut seen = None;
        loop {
            let snapshot = state.services().plugins.snapshot();
            if seen != Some(snapshot.generation) {
                seen = Some(snapshot.generation);
                state.transformers().precheck(&snapshot).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
}

fn metrics_routes(state: &AppState) -> axum::Router<AppState> {
    let routes = axum::Router::new();
    if state.metrics_on_main() {
        routes.route("/metrics", axum::routing::get(metrics::scrape))
    } else {
        routes
    }
}

/// The router of a metrics listener of its own (`[metrics] listen`):
/// `GET /metrics`, `/livez` and `/readyz`.
pub fn metrics_router(state: AppState) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/metrics", get(metrics::scrape))
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .with_state(state)
}

/// The gateway's router with its state.
pub fn router(state: AppState) -> axum::Router {
    use axum::routing::{get, post};
    let max_body = state.max_body_bytes();
    axum::Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::list_models))
        .route("/v1/messages", post(ingress::anthropic_messages))
        .route(
            "/v1/messages/count_tokens",
            post(ingress::anthropic_count_tokens),
        )
        .route(
            "/v1/models/{*rest}",
            get(ingress::retrieve_model).post(ingress::gemini_action),
        )
        .route("/v1beta/models", get(ingress::gemini_models))
        .route(
            "/v1beta/models/{*rest}",
            get(ingress::gemini_model).post(ingress::gemini_action),
        )
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz))
        .route("/health/providers", get(ops::providers))
        .merge(metrics_routes(&state))
        .merge(admin::router(&state))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::route_not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        // Outermost: every response, whatever produced it, carries the
        // request id, and every log line of the request names it.
        .layer(axum::middleware::from_fn(trace::layer))
        .with_state(state)
}
