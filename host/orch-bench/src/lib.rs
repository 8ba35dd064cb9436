//! The gateway benchmark behind `cargo xtask bench`: it starts fake upstreams
//! and the gateway, drives load at them directly and through the gateway,
//! reads the gateway's CPU time and memory from `/proc`, times plugin calls
//! in-process, and prints the figures next to the targets from the issue.
//!
//! A library only so that its parts are unit-tested; the `orch-bench` binary
//! wires them together.

pub mod load;
pub mod plugin_costs;
pub mod procs;
pub mod report;
