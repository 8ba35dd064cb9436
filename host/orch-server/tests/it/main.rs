//! Integration tests of the whole gateway, in process, over real HTTP on
//! loopback, with real plugin components and the fake upstream.

// The same allocator as the binary, so memory figures mean the same thing.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod api;
mod failover;
mod harness;
mod hot_reload;
mod plugin_faults;
