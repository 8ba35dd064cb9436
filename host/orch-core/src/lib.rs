//! Domain types and pure logic of the gateway: configuration and the
//! catalogue's specs, the host-side view of the plugin contract, canonical
//! request inspection, routing, client keys with their limits and budgets,
//! and the keyring that seals provider keys at rest.
//!
//! This crate has no async runtime, HTTP, database or WebAssembly dependency,
//! so everything in it is fast to compile and to test.

pub mod canonical;
pub mod catalog;
pub mod clients;
pub mod config;
pub mod contract;
pub mod routing;
pub mod secrets;
pub mod transform;
