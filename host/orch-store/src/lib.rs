//! Persistence for the gateway: one [`Store`] over SQLite, PostgreSQL or
//! MySQL/MariaDB (picked by the URL's scheme), the embedded migrations from
//! `migrations/<dialect>/`, and per-table query helpers.
//!
//! - [`request_log`]: the request log and its non-blocking [`LogWriter`].
//!
//! Every value reaches SQL as a bind parameter; no statement is built by
//! formatting values into text.

mod database_url;
mod error;
pub mod request_log;
mod store;

pub use crate::database_url::{Dialect, redact_url};
pub use crate::error::StoreError;
pub use crate::request_log::{
    LogWriter, LogWriterConfig, LogWriterStats, Outcome, RequestLogRecord,
};
pub use crate::store::{Store, StoreOptions};
