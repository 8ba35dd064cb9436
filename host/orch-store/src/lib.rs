//! Persistence for the gateway: one [`Store`] over SQLite, PostgreSQL or
//! MySQL/MariaDB (picked by the URL's scheme), the embedded migrations from
//! `migrations/<dialect>/`, and per-table query helpers.
//!
//! - [`request_log`]: the request log and its non-blocking [`LogWriter`],
//!   filtered queries, captured bodies and retention.
//! - [`catalog`]: providers, models, client keys, spend and the audit log,
//!   applied in audited batches and read as one consistent [`Snapshot`].
//! - [`usage`]: hourly and daily usage rollups kept by the writer.
//!
//! Every value reaches SQL as a bind parameter; no statement is built by
//! formatting values into text.

pub mod catalog;
mod database_url;
mod error;
pub mod request_log;
mod store;
pub mod usage;

pub use crate::catalog::{
    Applied, AuditEntry, AuditQuery, AuditRow, Change, ClientKeyRow, KeySecret, ManagedBy,
    ModelRow, ProviderKeyRow, ProviderRow, Snapshot, TargetRow,
};
pub use crate::database_url::{Dialect, redact_url};
pub use crate::error::{ErrorChain, StoreError};
pub use crate::request_log::bodies::CapturedBodies;
pub use crate::request_log::query::{LogCursor, LogQuery, LoggedRequest, StatusFilter};
pub use crate::request_log::retention::{RetentionConfig, spawn_retention};
pub use crate::request_log::{
    LogEntry, LogWriter, LogWriterConfig, LogWriterStats, Outcome, RequestLogRecord,
};
pub use crate::store::{Store, StoreOptions};
pub use crate::usage::{Bucket, Dimension, UsageQuery, UsageRow};
