//! The plugin host: the only crate that knows wasmtime.
//!
//! It compiles and validates plugin components off the request path, keeps the
//! loaded set in an atomically swapped [`Snapshot`], watches the plugins folder
//! for changes, and runs plugin calls in fresh, bounded instances: a CPU
//! deadline per call (epoch interruption, yielding to tokio between ticks so a
//! spinning plugin never blocks a worker thread), a memory cap per instance,
//! and bounded, validated output. A trap, timeout, memory exhaustion or invalid
//! output fails that one call with a [`PluginFault`]; the instance is dropped.

mod adapter;
mod bindings;
mod cache;
mod convert;
mod dialect;
mod error;
mod host_state;
mod loader;
mod memory;
mod registry;
mod runtime;
mod stats;
mod transformer;
mod watcher;

pub use adapter::AdapterInstance;
pub use cache::CacheOutcome;
pub use dialect::DialectInstance;
pub use error::{CallError, PluginFault};
pub use loader::LoadedPlugin;
pub use registry::{FileState, PluginHost, ReloadEvents, ReloadReport, Snapshot};
pub use runtime::Limits;
pub use stats::{PluginStats, StatsView};
pub use transformer::TransformerInstance;
pub use watcher::Watcher;
