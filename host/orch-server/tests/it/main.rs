//! Integration tests of the whole gateway, in process, over real HTTP on
//! loopback, with real plugin components and the fake upstream.

mod api;
mod failover;
mod harness;
mod hot_reload;
mod plugin_faults;
