//! Liveness, readiness, and the health of providers, keys and targets.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use orch_core::routing::keys::KeyState;

use crate::state::AppState;

/// The process is alive; touches nothing external.
pub(crate) async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready to serve: not shutting down, the database answers and has the
/// schema this binary needs (as the background probe last saw it), an
/// adapter plugin is loaded, and Redis is up when it is required. Reads
/// flags only; never waits on anything. 503 lists every failing check.
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let failing = crate::readiness::failing(&state);
    if failing.is_empty() {
        return (StatusCode::OK, Json(serde_json::json!({"status": "ready"})));
    }
    let status = if state.is_shutting_down() {
        "shutting_down"
    } else {
        "not_ready"
    };
    let reasons: Vec<_> = failing
        .iter()
        .map(|f| serde_json::json!({"check": f.check, "reason": f.reason}))
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"status": status, "reasons": reasons})),
    )
}

/// A duration in whole milliseconds, for JSON views and events.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `GET /health/providers` (admin token): every provider with its keys
/// (masked) and every model target with its state, reason, last error and
/// window statistics.
pub(crate) async fn providers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let live = state.live();
    if let Err(e) = crate::auth::authenticate_admin(&live, &headers) {
        return e.into_response();
    }
    let now = Instant::now();
    let providers: Vec<_> = live
        .providers
        .iter()
        .map(|p| {
            let keys: Vec<_> = p
                .pool
                .report(now)
                .into_iter()
                .map(|k| {
                    let until = match &k.state {
                        KeyState::Ready => None,
                        KeyState::CoolingDown(d) | KeyState::Disabled(d) => Some(ms(*d)),
                    };
                    serde_json::json!({
                        "key": p.masked_key(k.index),
                        "state": k.state.as_str(),
                        "ready_in_ms": until,
                        "rate_limits": k.rate_limits,
                        "last_error": k.last_error,
                    })
                })
                .collect();
            serde_json::json!({
                "name": p.name,
                "adapter": p.adapter,
                "base_url": p.view.base_url,
                "keys": keys,
            })
        })
        .collect();
    let mut targets = Vec::new();
    for (route, rs) in live.catalogue.routes().iter().zip(&live.routes) {
        for (t, h) in route.targets.iter().zip(&rs.health) {
            let r = h.report(now);
            targets.push(serde_json::json!({
                "model": route.name,
                "provider": live.providers.get(t.provider).map(|p| p.name.as_str()),
                "upstream_model": t.upstream_model,
                "weight": t.weight,
                "priority": t.priority,
                "state": r.state.as_str(),
                "reason": r.reason,
                "last_error": r.last_error,
                "window": {"requests": r.window_requests, "errors": r.window_errors},
                "consecutive_failures": r.consecutive_failures,
                "ejections": r.ejections,
                "latency_ms": r.latency.map(|l| l.as_secs_f64() * 1000.0),
                "retry_in_ms": r.retry_in.map(ms),
                "trial_in_flight": r.trial_in_flight,
                "next_probe_in_ms": state.next_probe(t.provider, now).map(ms),
            }));
        }
    }
    let log = state.services().log.stats();
    let share = state
        .services()
        .share
        .as_ref()
        .map(orch_share::Share::status);
    Json(serde_json::json!({
        "providers": providers,
        "targets": targets,
        "request_log": {
            "queued": log.queued,
            "written": log.written,
            "dropped": log.dropped,
            "write_errors": log.write_errors,
            "batches": log.batches,
        },
        "redis": share,
    }))
    .into_response()
}
