//! What this replica tells the others through Redis, and what it does with
//! what they tell it: catalogue changes, ejected targets, cooled and
//! rejected provider keys. Publishing never waits; without Redis every
//! function here does nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orch_core::routing::health::Health;
use orch_share::Event;

use crate::ops::ms;
use crate::state::{AppState, Provider};

/// Start listening to the other replicas (when Redis is configured).
pub fn spawn(state: &AppState) {
    let Some(share) = state.services().share.clone() else {
        return;
    };
    let handler = state.clone();
    share.spawn(move |event| on_event(&handler, event));
}

/// Apply what another replica published.
fn on_event(state: &AppState, event: Event) {
    let now = Instant::now();
    match event {
        Event::Catalog { revision } => {
            if revision != state.catalog_revision() {
                state.reload_soon();
            }
        }
        Event::TargetEjected {
            target,
            for_ms,
            reason,
        } => {
            if let Some(health) = state.target_health(&target) {
                health.eject_shared(now, Duration::from_millis(for_ms), &reason);
            }
        }
        Event::KeyCooled {
            pool,
            index,
            model,
            for_ms,
        } => {
            let live = state.live();
            let span = Duration::from_millis(for_ms);
            if let Some(p) = live.providers.iter().find(|p| p.pool_id == pool)
                && index < p.pool.len()
                // Never shorten a longer cool-down learnt here.
                && p.pool.cooling_for(index, &model, now).is_none_or(|d| d < span)
            {
                p.pool.rate_limited(
                    index,
                    &model,
                    now,
                    Some(span),
                    "rate limited (reported by another replica)",
                );
            }
        }
        Event::KeyRejected {
            pool,
            index,
            reason,
        } => {
            let live = state.live();
            if let Some(p) = live.providers.iter().find(|p| p.pool_id == pool)
                && index < p.pool.len()
            {
                p.pool.rejected(
                    index,
                    now,
                    &format!("{reason} (reported by another replica)"),
                );
            }
        }
    }
}

fn publish(state: &AppState, event: Event) {
    if let Some(share) = &state.services().share {
        share.publish(event);
    }
}

/// The catalogue moved to `revision` on this replica.
pub(crate) fn catalog_changed(state: &AppState, revision: i64) {
    publish(state, Event::Catalog { revision });
}

/// A target failed: record it, and tell the others when that ejected it.
pub(crate) fn target_failed(
    state: &AppState,
    health: &Arc<Health>,
    target: impl FnOnce() -> String,
    now: Instant,
    why: &str,
    probe: bool,
) {
    let before = health.ejected_for(now);
    if probe {
        health.probe_failed(now, why);
    } else {
        health.failure(now, why);
    }
    if let Some(span) = health.ejected_for(now)
        && before.is_none_or(|b| span > b)
    {
        publish(
            state,
            Event::TargetEjected {
                target: target(),
                for_ms: ms(span),
                reason: why.to_owned(),
            },
        );
    }
}

/// A provider key was rate limited: cool it here and on the others.
pub(crate) fn key_rate_limited(
    state: &AppState,
    provider: &Provider,
    index: usize,
    model: &str,
    now: Instant,
    retry_after: Option<Duration>,
    why: &str,
) {
    provider
        .pool
        .rate_limited(index, model, now, retry_after, why);
    if let Some(span) = provider.pool.cooling_for(index, model, now) {
        publish(
            state,
            Event::KeyCooled {
                pool: provider.pool_id.clone(),
                index,
                model: model.to_owned(),
                for_ms: ms(span),
            },
        );
    }
}

/// A provider key was rejected: disable it here and on the others.
pub(crate) fn key_rejected(
    state: &AppState,
    provider: &Provider,
    index: usize,
    now: Instant,
    why: &str,
) {
    provider.pool.rejected(index, now, why);
    publish(
        state,
        Event::KeyRejected {
            pool: provider.pool_id.clone(),
            index,
            reason: why.to_owned(),
        },
    );
}
