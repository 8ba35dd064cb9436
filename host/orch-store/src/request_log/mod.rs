//! The request log: one row per client request, written off the request path
//! by [`LogWriter`] and read back by the admin API.
//!
//! Every batch is written in one transaction together with its usage rollups
//! ([`crate::usage`]) and any captured bodies ([`bodies`]), so a retried batch
//! never counts twice and a failed one leaves no trace. [`query`] reads the
//! log back page by page; [`retention`] deletes old rows in small batches.

/// The columns a logged row sets, in the order every writer binds them (all
/// but `id`).
macro_rules! log_columns {
    () => {
        "ts_ms, request_id, ingress_dialect, requested_model, provider, upstream_model, \
         plugin, status, error_class, attempts, latency_us, ttft_us, input_tokens, \
         output_tokens, cached_tokens, streamed, outcome, client_key_id"
    };
}

pub mod bodies;
pub mod query;
pub mod retention;
mod rows;
mod writer;

use std::str::FromStr;

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use self::bodies::{CapturedBodies, bodies_statement, max_bodies_per_insert};
use self::rows::InsertRows;
pub use self::writer::{LogWriter, LogWriterConfig, LogWriterStats};
use crate::database_url::Dialect;
use crate::error::StoreError;
use crate::store::{Store, with_pool};
use crate::usage::{Rollups, max_rollups_per_upsert, upsert_statement};

/// Longest text value stored, in characters; longer values are cut when written.
///
/// Several text columns come straight from clients (`requested_model`,
/// `request_id`), and one oversized value must not make a whole batch fail on
/// MySQL's `VARCHAR(255)`. The cut applies to every dialect alike.
pub const MAX_TEXT_CHARS: usize = 255;

/// Bind parameters per row: every column except `id`.
const COLUMNS_PER_ROW: usize = 18;

const INSERT_PREFIX: &str = concat!("INSERT INTO request_log (", log_columns!(), ") ");

/// Selects `id` and every column [`decode_row`] reads.
const SELECT_PREFIX: &str = "SELECT id, ts_ms, request_id, ingress_dialect, requested_model, \
     provider, upstream_model, plugin, status, error_class, attempts, latency_us, ttft_us, \
     input_tokens, output_tokens, cached_tokens, streamed, outcome, client_key_id \
     FROM request_log ";

/// One handled client request.
///
/// Round trips exactly, except that text longer than [`MAX_TEXT_CHARS`] is cut,
/// NUL characters are removed (PostgreSQL rejects them), and `attempts`,
/// `latency_us` and `ttft_us` saturate at the signed column maximum
/// (`i32::MAX` / `i64::MAX`) when written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLogRecord {
    /// When the request arrived, Unix time in milliseconds.
    pub ts_ms: i64,
    /// The gateway's request id (also returned to the client).
    pub request_id: String,
    /// Dialect the client spoke: `openai`, `anthropic`, `gemini`.
    pub ingress_dialect: String,
    /// Model name as the client sent it.
    pub requested_model: String,
    /// Provider that served (or last failed) the request, if routing got that far.
    pub provider: Option<String>,
    /// Model name sent upstream.
    pub upstream_model: Option<String>,
    /// Adapter plugin that handled it, e.g. `openai@0.1.0`.
    pub plugin: Option<String>,
    /// HTTP status sent to the client.
    pub status: u16,
    /// Stable error class when the request failed, e.g. `upstream_timeout`.
    pub error_class: Option<String>,
    /// Upstream attempts made (1 without retries; 0 if none was made).
    pub attempts: u32,
    /// Time from arrival to the last byte sent, in microseconds.
    pub latency_us: u64,
    /// Time to the first streamed token, in microseconds.
    pub ttft_us: Option<u64>,
    /// Prompt tokens reported by the provider.
    pub input_tokens: Option<u32>,
    /// Completion tokens reported by the provider.
    pub output_tokens: Option<u32>,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: Option<u32>,
    /// Whether the response was streamed.
    pub streamed: bool,
    /// How the request ended.
    pub outcome: Outcome,
    /// The client key that authenticated the request (the catalogue's id), if
    /// any. Not a foreign key: logs outlive deleted keys.
    pub client_key_id: Option<i64>,
}

/// A record and, when body capture is on, the bodies of its request; what
/// [`LogWriter`] queues and [`Store::insert_log_entries`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The request-log row.
    pub record: RequestLogRecord,
    /// The captured request and response bodies, if captured.
    pub bodies: Option<CapturedBodies>,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Completed successfully.
    Ok,
    /// Failed; the client got an error response.
    Error,
    /// The client went away before the response finished.
    Cancelled,
    /// A stream broke after some content had been sent.
    Partial,
}

impl Outcome {
    /// The stored form: `ok`, `error`, `cancelled` or `partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Partial => "partial",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Self::Ok),
            "error" => Ok(Self::Error),
            "cancelled" => Ok(Self::Cancelled),
            "partial" => Ok(Self::Partial),
            other => Err(StoreError::InvalidValue {
                column: "outcome",
                value: other.to_owned(),
            }),
        }
    }
}

/// Most rows one multi-row `INSERT` may carry in `dialect` without exceeding its
/// bind-parameter limit.
pub(crate) fn max_rows_per_insert(dialect: Dialect) -> usize {
    dialect.max_bind_params() / COLUMNS_PER_ROW
}

impl Store {
    /// Inserts `rows` and adds them to the usage rollups, in one transaction.
    ///
    /// Awaits the database: never call this on the request path — push to a
    /// [`LogWriter`] instead.
    pub async fn insert_request_logs(&self, rows: &[RequestLogRecord]) -> Result<(), StoreError> {
        let records: Vec<&RequestLogRecord> = rows.iter().collect();
        self.write_batch(&records, &[]).await
    }

    /// Inserts the entries' records and captured bodies and adds the records
    /// to the usage rollups, all in one transaction: if any statement fails,
    /// nothing is written, so the batch can be retried without counting twice.
    ///
    /// Bodies are stored as given (minus NUL characters); [`LogWriter`] is what
    /// cuts them to its configured size.
    pub async fn insert_log_entries(&self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let records: Vec<&RequestLogRecord> = entries.iter().map(|e| &e.record).collect();
        let bodies: Vec<(&RequestLogRecord, &CapturedBodies)> = entries
            .iter()
            .filter_map(|e| e.bodies.as_ref().map(|b| (&e.record, b)))
            .collect();
        self.write_batch(&records, &bodies).await
    }

    /// Writes log rows ([`rows`]), then rollups, then bodies, in one
    /// transaction; the last two in multi-row statements that fit the
    /// dialect's bind-parameter limit.
    async fn write_batch(
        &self,
        records: &[&RequestLogRecord],
        bodies: &[(&RequestLogRecord, &CapturedBodies)],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let dialect = self.dialect();
        let rollups = Rollups::of(records.iter().copied());
        with_pool!(&self.backend, pool => {
            let mut tx = pool.begin().await?;
            tx.insert_rows(records).await?;
            for (bucket, rows) in rollups.tables() {
                for chunk in rows.chunks(max_rollups_per_upsert(dialect)) {
                    upsert_statement(dialect, bucket, chunk).build().execute(&mut *tx).await?;
                }
            }
            for chunk in bodies.chunks(max_bodies_per_insert(dialect)) {
                bodies_statement(chunk).build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Number of rows in the request log.
    pub async fn count_request_logs(&self) -> Result<u64, StoreError> {
        let count: i64 = with_pool!(&self.backend, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM request_log")
                .fetch_one(pool)
                .await?
        });
        u64::try_from(count).map_err(|_| StoreError::InvalidValue {
            column: "COUNT(*)",
            value: count.to_string(),
        })
    }

    /// The `limit` most recently written rows, newest first.
    pub async fn recent_request_logs(
        &self,
        limit: u32,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        with_pool!(&self.backend, pool => {
            let mut query = QueryBuilder::new(SELECT_PREFIX);
            query.push("ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(decode_row).collect()
        })
    }
}

/// Builds `INSERT INTO request_log (...) VALUES (...), (...)` with every value bound.
fn insert_statement<'args, DB>(rows: &[&RequestLogRecord]) -> QueryBuilder<'args, DB>
where
    DB: Database,
    DB::Arguments<'args>: Default,
    i64: Encode<'args, DB> + Type<DB>,
    i32: Encode<'args, DB> + Type<DB>,
    bool: Encode<'args, DB> + Type<DB>,
    String: Encode<'args, DB> + Type<DB>,
    Option<i64>: Encode<'args, DB>,
    Option<String>: Encode<'args, DB>,
{
    let mut query = QueryBuilder::new(INSERT_PREFIX);
    query.push_values(rows, |mut row, rec| {
        row.push_bind(rec.ts_ms)
            .push_bind(clean_text(&rec.request_id))
            .push_bind(clean_text(&rec.ingress_dialect))
            .push_bind(clean_text(&rec.requested_model))
            .push_bind(rec.provider.as_deref().map(clean_text))
            .push_bind(rec.upstream_model.as_deref().map(clean_text))
            .push_bind(rec.plugin.as_deref().map(clean_text))
            .push_bind(i32::from(rec.status))
            .push_bind(rec.error_class.as_deref().map(clean_text))
            .push_bind(i32::try_from(rec.attempts).unwrap_or(i32::MAX))
            .push_bind(saturating_i64(rec.latency_us))
            .push_bind(rec.ttft_us.map(saturating_i64))
            .push_bind(rec.input_tokens.map(i64::from))
            .push_bind(rec.output_tokens.map(i64::from))
            .push_bind(rec.cached_tokens.map(i64::from))
            .push_bind(rec.streamed)
            .push_bind(rec.outcome.as_str().to_owned())
            .push_bind(rec.client_key_id);
    });
    query
}

pub(crate) fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Drops NUL characters and cuts to [`MAX_TEXT_CHARS`] characters.
pub(crate) fn clean_text(value: &str) -> String {
    clean_chars(value).collect()
}

/// The characters [`clean_text`] keeps.
fn clean_chars(value: &str) -> impl Iterator<Item = char> + '_ {
    value.chars().filter(|&c| c != '\0').take(MAX_TEXT_CHARS)
}

/// Reads one row selected with [`SELECT_PREFIX`]'s column list (all but `id`).
fn decode_row<'r, R>(row: &'r R) -> Result<RequestLogRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    fn convert<T: TryFrom<S>, S: Copy + ToString>(
        column: &'static str,
        value: S,
    ) -> Result<T, StoreError> {
        T::try_from(value).map_err(|_| StoreError::InvalidValue {
            column,
            value: value.to_string(),
        })
    }
    fn convert_opt<T: TryFrom<S>, S: Copy + ToString>(
        column: &'static str,
        value: Option<S>,
    ) -> Result<Option<T>, StoreError> {
        value.map(|v| convert(column, v)).transpose()
    }

    Ok(RequestLogRecord {
        ts_ms: row.try_get("ts_ms")?,
        request_id: row.try_get("request_id")?,
        ingress_dialect: row.try_get("ingress_dialect")?,
        requested_model: row.try_get("requested_model")?,
        provider: row.try_get("provider")?,
        upstream_model: row.try_get("upstream_model")?,
        plugin: row.try_get("plugin")?,
        status: convert("status", row.try_get::<i32, _>("status")?)?,
        error_class: row.try_get("error_class")?,
        attempts: convert("attempts", row.try_get::<i32, _>("attempts")?)?,
        latency_us: convert("latency_us", row.try_get::<i64, _>("latency_us")?)?,
        ttft_us: convert_opt("ttft_us", row.try_get::<Option<i64>, _>("ttft_us")?)?,
        input_tokens: convert_opt(
            "input_tokens",
            row.try_get::<Option<i64>, _>("input_tokens")?,
        )?,
        output_tokens: convert_opt(
            "output_tokens",
            row.try_get::<Option<i64>, _>("output_tokens")?,
        )?,
        cached_tokens: convert_opt(
            "cached_tokens",
            row.try_get::<Option<i64>, _>("cached_tokens")?,
        )?,
        streamed: row.try_get("streamed")?,
        outcome: row.try_get::<String, _>("outcome")?.parse()?,
        client_key_id: row.try_get("client_key_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips_through_text() {
        for outcome in [
            Outcome::Ok,
            Outcome::Error,
            Outcome::Cancelled,
            Outcome::Partial,
        ] {
            assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), outcome);
            assert_eq!(outcome.to_string(), outcome.as_str());
        }
        assert!(matches!(
            "OK".parse::<Outcome>(),
            Err(StoreError::InvalidValue {
                column: "outcome",
                ..
            })
        ));
    }

    #[test]
    fn clean_text_cuts_by_characters_and_drops_nul() {
        assert_eq!(clean_text("gpt-4o"), "gpt-4o");
        assert_eq!(clean_text("a\0b"), "ab");
        let long = "é".repeat(MAX_TEXT_CHARS + 10);
        let cut = clean_text(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
        assert!(long.starts_with(&cut));
    }

    #[test]
    fn rows_per_insert_respect_bind_limits() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            let rows = max_rows_per_insert(dialect);
            assert!(rows * COLUMNS_PER_ROW <= dialect.max_bind_params());
            assert!((rows + 1) * COLUMNS_PER_ROW > dialect.max_bind_params());
        }
    }

    #[test]
    fn insert_statement_binds_every_column() {
        let rec = RequestLogRecord {
            ts_ms: 1,
            request_id: "r".into(),
            ingress_dialect: "openai".into(),
            requested_model: "m".into(),
            provider: None,
            upstream_model: None,
            plugin: None,
            status: 200,
            error_class: None,
            attempts: 1,
            latency_us: 1,
            ttft_us: None,
            input_tokens: None,
            output_tokens: None,
            cached_tokens: None,
            streamed: false,
            outcome: Outcome::Ok,
            client_key_id: Some(7),
        };
        let query = insert_statement::<sqlx::Postgres>(&[&rec, &rec]);
        let sql = query.sql();
        assert!(sql.contains(&format!("${}", 2 * COLUMNS_PER_ROW)), "{sql}");
        assert!(
            !sql.contains(&format!("${}", 2 * COLUMNS_PER_ROW + 1)),
            "{sql}"
        );
    }
}
