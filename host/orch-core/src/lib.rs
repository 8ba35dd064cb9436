//! Domain types and pure logic of the gateway: configuration, the host-side
//! view of the plugin contract, canonical request inspection and routing.
//!
//! This crate has no async runtime, HTTP, database or WebAssembly dependency,
//! so everything in it is fast to compile and to test.

pub mod canonical;
pub mod config;
pub mod contract;
pub mod routing;
