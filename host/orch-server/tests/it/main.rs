//! Integration tests of the whole gateway, in process, over real HTTP on
//! loopback, with real plugin components and the fake upstream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test that calls them"
)]

mod admin;
mod api;
mod cli;
mod compile_cache;
mod databases;
mod db_outage;
mod dialects;
mod docker;
mod failover;
mod faults;
mod guide;
mod harness;
mod hot_reload;
mod listener;
mod metrics;
mod plugin_faults;
mod proxy;
mod redis_share;
mod replicas;
mod rollouts;
mod routing;
mod second_language;
mod shutdown;
mod telemetry;
mod transformers;
