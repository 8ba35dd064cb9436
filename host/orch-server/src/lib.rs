//! The gateway process: wiring of the library crates into a server with a
//! hardened accept loop and graceful shutdown. The binary is a thin CLI over
//! [`run`]; tests use [`serve`] on their own listener.

pub mod check;
pub mod healthcheck;
pub mod scaffold;
mod serve;
mod telemetry;

pub use serve::{run, serve, shutdown_signal};
