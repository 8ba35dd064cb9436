//! Retention: deleting old request-log rows, captured bodies and hourly usage
//! in small batches, so that no statement holds locks (or grows a
//! transaction log) for long, and a periodic task that does it.
//!
//! Usage rollups are not touched by log retention: statistics outlive the raw
//! rows they were summed from. Daily rollups are kept forever.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Database, Encode, QueryBuilder, Type};
use tokio::task::JoinHandle;

use crate::database_url::Dialect;
use crate::error::{ErrorChain, StoreError};
use crate::store::{Store, with_pool};

/// What to delete, and how gently; see [`spawn_retention`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Delete log rows and captured bodies of requests older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many log rows (and as many captured bodies), deleting
    /// the oldest beyond it.
    pub max_rows: Option<u64>,
    /// Delete hourly usage rollups older than this (daily ones are kept).
    pub hourly_max_age: Option<Duration>,
    /// Rows per `DELETE`. At least 1.
    pub batch: u32,
    /// Pause between two `DELETE`s, leaving the database to other work.
    pub pause: Duration,
    /// Time between two retention passes.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    /// Keeps everything; once limits are set, passes run every 10 minutes,
    /// deleting 1000 rows at a time with 50 ms pauses.
    fn default() -> Self {
        Self {
            max_age: None,
            max_rows: None,
            hourly_max_age: None,
            batch: 1000,
            pause: Duration::from_millis(50),
            interval: Duration::from_secs(600),
        }
    }
}

/// Spawns a task that applies `config` now and then every `config.interval`,
/// until the handle is aborted. Failures are logged and retried next pass;
/// they never end the task.
///
/// # Panics
///
/// Outside a Tokio runtime.
pub fn spawn_retention(store: Store, config: RetentionConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = config.interval.max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            retention_pass(&store, &config, unix_ms()).await;
        }
    })
}

/// One pass over every limit in `config`; each step's failure is logged and
/// does not stop the others.
async fn retention_pass(store: &Store, config: &RetentionConfig, now_ms: i64) {
    let batch = config.batch;
    let pause = config.pause;
    let mut steps: Vec<(&'static str, Purge)> = Vec::new();
    if let Some(age) = config.max_age {
        let cutoff = now_ms.saturating_sub(duration_ms(age));
        steps.push(("request_log", Purge::LogsBefore(cutoff)));
        steps.push(("request_bodies", Purge::BodiesBefore(cutoff)));
    }
    if let Some(age) = config.hourly_max_age {
        let cutoff = now_ms.saturating_sub(duration_ms(age));
        steps.push(("usage_hourly", Purge::HourlyBefore(cutoff)));
    }
    for (table, purge) in steps {
        report(table, store.purge(purge, batch, pause).await);
    }
    if let Some(max_rows) = config.max_rows {
        report(
            "request_log",
            store.trim(Trim::Logs, max_rows, batch, pause).await,
        );
        report(
            "request_bodies",
            store.trim(Trim::Bodies, max_rows, batch, pause).await,
        );
    }
}

fn report(table: &'static str, result: Result<u64, StoreError>) {
    match result {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(table, deleted, "retention deleted old rows"),
        Err(error) => {
            tracing::warn!(table, error = %ErrorChain(&error), "retention failed; retrying next pass");
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// One kind of batched delete: the rows below a bound, oldest first.
#[derive(Clone, Copy, Debug)]
enum Purge {
    /// Log rows that arrived before a time (Unix ms).
    LogsBefore(i64),
    /// Log rows with an id up to this one.
    LogsUpTo(i64),
    /// Bodies of requests that arrived before a time.
    BodiesBefore(i64),
    /// Bodies with an id up to this one.
    BodiesUpTo(i64),
    /// Hourly rollups of hours starting before a time.
    HourlyBefore(i64),
}

impl Purge {
    /// Table, the column bounded, its comparison and the bound.
    fn parts(self) -> (&'static str, &'static str, &'static str, i64) {
        match self {
            Self::LogsBefore(ts) => ("request_log", "ts_ms", "<", ts),
            Self::LogsUpTo(id) => ("request_log", "id", "<=", id),
            Self::BodiesBefore(ts) => ("request_bodies", "ts_ms", "<", ts),
            Self::BodiesUpTo(id) => ("request_bodies", "id", "<=", id),
            Self::HourlyBefore(ts) => ("usage_hourly", "bucket_ms", "<", ts),
        }
    }

    /// The columns that identify a row of the table, for `IN (SELECT ...)`.
    fn row_key(self) -> &'static str {
        match self {
            Self::HourlyBefore(_) => "bucket_ms, model, provider, client_key_id",
            _ => "id",
        }
    }
}

/// Builds one batch's `DELETE` (table and column names are fixed strings).
///
/// MySQL cannot select from the table it deletes from, but takes
/// `ORDER BY ... LIMIT` on `DELETE` itself; SQLite (as built by sqlx) and
/// PostgreSQL do not, and take the subquery.
fn purge_statement<'args, DB>(dialect: Dialect, purge: Purge, limit: u32) -> QueryBuilder<'args, DB>
where
    DB: Database,
    DB::Arguments<'args>: Default,
    i64: Encode<'args, DB> + Type<DB>,
{
    let (table, column, op, bound) = purge.parts();
    let mut sql = QueryBuilder::new("DELETE FROM ");
    sql.push(table);
    match dialect {
        Dialect::MySql => {
            sql.push(format_args!(" WHERE {column} {op} "))
                .push_bind(bound)
                .push(format_args!(" ORDER BY {column} LIMIT "))
                .push_bind(i64::from(limit));
        }
        Dialect::Sqlite | Dialect::Postgres => {
            let key = purge.row_key();
            sql.push(format_args!(
                " WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {column} {op} "
            ))
            .push_bind(bound)
            .push(format_args!(" ORDER BY {column} LIMIT "))
            .push_bind(i64::from(limit))
            .push(")");
        }
    }
    sql
}

/// A table trimmed to its newest rows by [`Store::trim`].
#[derive(Clone, Copy, Debug)]
enum Trim {
    Logs,
    Bodies,
}

impl Trim {
    fn table(self) -> &'static str {
        match self {
            Self::Logs => "request_log",
            Self::Bodies => "request_bodies",
        }
    }

    fn up_to(self, id: i64) -> Purge {
        match self {
            Self::Logs => Purge::LogsUpTo(id),
            Self::Bodies => Purge::BodiesUpTo(id),
        }
    }
}

impl Store {
    /// Deletes log rows of requests that arrived before `ts_ms`, `batch` rows
    /// per statement (each its own transaction); returns how many.
    pub async fn delete_logs_before(&self, ts_ms: i64, batch: u32) -> Result<u64, StoreError> {
        self.purge(Purge::LogsBefore(ts_ms), batch, Duration::ZERO)
            .await
    }

    /// Deletes the oldest log rows (by id) until at most `max_rows` remain,
    /// `batch` rows per statement; returns how many.
    pub async fn trim_logs_to(&self, max_rows: u64, batch: u32) -> Result<u64, StoreError> {
        self.trim(Trim::Logs, max_rows, batch, Duration::ZERO).await
    }

    /// Deletes captured bodies of requests that arrived before `ts_ms`,
    /// `batch` rows per statement; returns how many.
    pub async fn delete_bodies_before(&self, ts_ms: i64, batch: u32) -> Result<u64, StoreError> {
        self.purge(Purge::BodiesBefore(ts_ms), batch, Duration::ZERO)
            .await
    }

    /// Deletes the oldest captured bodies until at most `max_rows` remain,
    /// `batch` rows per statement; returns how many.
    pub async fn trim_bodies_to(&self, max_rows: u64, batch: u32) -> Result<u64, StoreError> {
        self.trim(Trim::Bodies, max_rows, batch, Duration::ZERO)
            .await
    }

    /// Deletes hourly usage rollups of hours starting before `ts_ms`, `batch`
    /// rows per statement; returns how many. Daily rollups stay.
    pub async fn delete_hourly_usage_before(
        &self,
        ts_ms: i64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        self.purge(Purge::HourlyBefore(ts_ms), batch, Duration::ZERO)
            .await
    }

    /// Runs `purge` batch by batch, pausing between batches, until a batch
    /// comes back short.
    async fn purge(&self, purge: Purge, batch: u32, pause: Duration) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let dialect = self.dialect();
        let mut total = 0;
        loop {
            let deleted = with_pool!(&self.backend, pool => {
                purge_statement(dialect, purge, batch)
                    .build()
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            total += deleted;
            if deleted < u64::from(batch) {
                return Ok(total);
            }
            if pause.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Deletes the oldest rows of `trim`'s table beyond the newest `max_rows`.
    async fn trim(
        &self,
        trim: Trim,
        max_rows: u64,
        batch: u32,
        pause: Duration,
    ) -> Result<u64, StoreError> {
        match self.id_beyond(trim, max_rows).await? {
            Some(id) => self.purge(trim.up_to(id), batch, pause).await,
            None => Ok(0),
        }
    }

    /// The id of the newest row that is not among the newest `keep` rows, if
    /// the table holds more than `keep`. Walks `keep` entries of the primary key.
    async fn id_beyond(&self, trim: Trim, keep: u64) -> Result<Option<i64>, StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        with_pool!(&self.backend, pool => {
            let mut sql = QueryBuilder::new(format!(
                "SELECT id FROM {} ORDER BY id DESC LIMIT 1 OFFSET ",
                trim.table()
            ));
            sql.push_bind(keep);
            Ok(sql.build_query_scalar().fetch_optional(pool).await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_subqueries_or_limited_deletes() {
        let sql = purge_statement::<sqlx::Postgres>(Dialect::Postgres, Purge::LogsBefore(5), 100)
            .into_sql();
        assert_eq!(
            sql,
            "DELETE FROM request_log WHERE (id) IN (SELECT id FROM request_log \
             WHERE ts_ms < $1 ORDER BY ts_ms LIMIT $2)"
        );
        let sql = purge_statement::<sqlx::Sqlite>(Dialect::Sqlite, Purge::HourlyBefore(5), 100)
            .into_sql();
        assert!(sql.starts_with(
            "DELETE FROM usage_hourly WHERE (bucket_ms, model, provider, client_key_id) IN \
             (SELECT bucket_ms, model, provider, client_key_id FROM usage_hourly"
        ));
        let sql =
            purge_statement::<sqlx::MySql>(Dialect::MySql, Purge::BodiesUpTo(5), 100).into_sql();
        assert_eq!(
            sql,
            "DELETE FROM request_bodies WHERE id <= ? ORDER BY id LIMIT ?"
        );
    }
}
