//! The gateway benchmark behind `cargo xtask bench`: it starts fake upstreams
//! and the gateway, drives load at them directly and through the gateway (the
//! OpenAI path, and Anthropic and Gemini routes: pass-through and translated),
//! routes across three targets with and without one failing, reads the
//! gateway's CPU time and memory from `/proc`, times plugin calls,
//! stream-chunk translation and the router's decision in-process, and prints
//! the figures next to the targets from the issue.
//!
//! A library only so that its parts are unit-tested; the `orch-bench` binary
//! wires them together.

pub mod load;
pub mod plugin_costs;
pub mod procs;
pub mod report;
pub mod router_cost;
