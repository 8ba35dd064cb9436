//! What `/readyz` reports: the database (reachable, schema current), the
//! plugins, Redis when it is required, and whether the gateway is shutting
//! down. The database is checked by a background probe, so `/readyz` only
//! reads flags and never waits on anything.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use crate::state::AppState;

/// How often the background probe checks the database.
const DB_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long one database check may take before the database counts as down.
const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const DB_UP: u8 = 0;
const DB_UNREACHABLE: u8 = 1;
const DB_SCHEMA_BEHIND: u8 = 2;

/// The readiness flags the state owns.
#[derive(Debug)]
pub(crate) struct Readiness {
    shutting_down: AtomicBool,
    /// `DB_*`; up until a probe says otherwise (the store was just
    /// connected and migrated when the gateway started).
    database: AtomicU8,
    /// Redis must be up for the gateway to be ready.
    redis_required: bool,
}

/// One failing readiness check.
pub(crate) struct Failing {
    /// Which check: `shutdown`, `database`, `migrations`, `plugins`, `redis`.
    pub(crate) check: &'static str,
    /// Why, for operators (no secrets, no addresses).
    pub(crate) reason: &'static str,
}

impl Readiness {
    pub(crate) fn new(redis_required: bool) -> Readiness {
        Readiness {
            shutting_down: AtomicBool::new(false),
            database: AtomicU8::new(DB_UP),
            redis_required,
        }
    }

    /// Readiness turns off for good.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    fn set_database(&self, now: u8) {
        let before = self.database.swap(now, Ordering::AcqRel);
        if before != now {
            match now {
                DB_UP => tracing::info!("readiness: the database answers again"),
                DB_SCHEMA_BEHIND => tracing::warn!(
                    "readiness: the database schema lacks migrations this binary needs"
                ),
                _ => {}
            }
        }
    }
}

/// Every check that fails now, in a stable order.
pub(crate) fn failing(state: &AppState) -> Vec<Failing> {
    let r = state.readiness();
    let mut out = Vec::new();
    if r.is_shutting_down() {
        out.push(Failing {
            check: "shutdown",
            reason: "the gateway is shutting down",
        });
    }
    match r.database.load(Ordering::Acquire) {
        DB_UNREACHABLE => out.push(Failing {
            check: "database",
            reason: "the database did not answer the last check",
        }),
        DB_SCHEMA_BEHIND => out.push(Failing {
            check: "migrations",
            reason: "the database schema lacks migrations this binary needs",
        }),
        _ => {}
    }
    let adapters = state
        .services()
        .plugins
        .snapshot()
        .active()
        .filter(|p| p.info.kind == orch_core::contract::PluginKind::Adapter)
        .count();
    if adapters == 0 {
        out.push(Failing {
            check: "plugins",
            reason: "no adapter plugin is loaded from the plugins folder",
        });
    }
    if r.redis_required
        && let Some(share) = &state.services().share
        && !share.sharing().is_up()
    {
        out.push(Failing {
            check: "redis",
            reason: "Redis is required ([redis] required = true) and unreachable",
        });
    }
    out
}

/// Check the database every couple of seconds (a no-op without one) until
/// aborted; `/readyz` reads the result.
pub fn spawn(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let Some(store) = state.services().store.clone() else {
            return;
        };
        loop {
            tokio::time::sleep(DB_PROBE_INTERVAL).await;
            let now = match tokio::time::timeout(DB_PROBE_TIMEOUT, store.schema_current()).await {
                Ok(Ok(true)) => DB_UP,
                Ok(Ok(false)) => DB_SCHEMA_BEHIND,
                Ok(Err(e)) => {
                    if state.readiness().database.load(Ordering::Acquire) != DB_UNREACHABLE {
                        tracing::warn!(
                            error = %orch_store::ErrorChain(&e),
                            "readiness: the database check failed"
                        );
                    }
                    DB_UNREACHABLE
                }
                Err(_) => {
                    if state.readiness().database.load(Ordering::Acquire) != DB_UNREACHABLE {
                        tracing::warn!(
                            timeout_ms = crate::ops::ms(DB_PROBE_TIMEOUT),
                            "readiness: the database check timed out"
                        );
                    }
                    DB_UNREACHABLE
                }
            };
            state.readiness().set_database(now);
        }
    })
}
