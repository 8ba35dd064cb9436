//! The configuration catalogue: providers and their keys, models and their
//! routing targets, client API keys and their spend, the audit log, and the
//! revision counter.
//!
//! Every gateway replica loads a [`Snapshot`] into memory and polls
//! [`Store::revision`]; when the revision moves it loads a new snapshot. Each
//! [`Store::apply`] writes its changes, their audit records and the revision
//! bump in one transaction, so a snapshot never sees half a change.
//!
//! The queries are written once, generic over the driver; the few dialect
//! differences (starting transactions, getting an inserted id, the spend
//! upsert) live in the private `driver` module.

mod driver;
mod read;
mod rows;
mod write;

use self::read::Reader;
pub use self::rows::{
    Applied, AuditEntry, AuditQuery, AuditRow, Change, ClientKeyRow, KeySecret, ManagedBy,
    ModelRow, ProviderKeyRow, ProviderRow, Snapshot, TargetRow,
};
use self::write::Writer;
use crate::error::StoreError;
use crate::store::{Store, with_pool};

impl Store {
    /// The whole catalogue, read in one transaction (REPEATABLE READ on
    /// PostgreSQL, a consistent snapshot on MySQL), so its rows all belong to
    /// the revision it reports.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        with_pool!(&self.backend, pool => Reader::snapshot(pool).await)
    }

    /// The catalogue revision: a single-row read, cheap enough for every
    /// replica to poll each second.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        with_pool!(&self.backend, pool => Reader::revision(pool).await)
    }

    /// Applies `changes` in order and writes `audit`, in one transaction, and
    /// bumps the revision once when `changes` is not empty; times written are
    /// `now_ms`.
    ///
    /// Any failure rolls the whole batch back. Errors name the offending row:
    /// [`StoreError::NotFound`] for a missing row to update or delete, or a
    /// target's unknown provider; [`StoreError::Conflict`] for a duplicate
    /// client key hash or provider key fingerprint; [`StoreError::InUse`] for
    /// deleting a provider that a model still routes to.
    pub async fn apply(
        &self,
        changes: &[Change],
        audit: &[AuditEntry],
        now_ms: i64,
    ) -> Result<Applied, StoreError> {
        with_pool!(&self.backend, pool => Writer::apply(pool, changes, audit, now_ms).await)
    }

    /// Adds tokens to client keys' spend: each row is `(client_key_id,
    /// period_start_ms, tokens)`, added to the stored count of that key and
    /// period (created at `tokens` when missing), all in one transaction.
    /// Rows of keys that have been deleted meanwhile are skipped.
    pub async fn add_spend(&self, rows: &[(i64, i64, i64)]) -> Result<(), StoreError> {
        with_pool!(&self.backend, pool => Writer::add_spend(pool, rows).await)
    }

    /// Spend rows `(client_key_id, period_start_ms, tokens)` of the periods
    /// starting at or after `since_ms`, ordered by key then period.
    pub async fn spend_since(&self, since_ms: i64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        with_pool!(&self.backend, pool => Reader::spend_since(pool, since_ms).await)
    }

    /// Audit records matching `query`, newest (highest id) first. To page,
    /// pass the last returned id as the next query's `before_id`.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        with_pool!(&self.backend, pool => Reader::audit(pool, query).await)
    }
}
