//! Usage statistics: hourly and daily rollups of the request log, kept by the
//! log writer and read by [`Store::usage`].
//!
//! Each written batch is summed in memory per (bucket, model, provider, client
//! key) and added to `usage_hourly` and `usage_daily` in the batch's own
//! transaction. Statistics therefore never scan the raw log: a day by model
//! reads at most 24 rows per model, however many requests there were.

use std::collections::BTreeMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use crate::database_url::Dialect;
use crate::error::StoreError;
use crate::request_log::{Outcome, RequestLogRecord, clean_text, saturating_i64};
use crate::store::{Store, with_pool};

/// The `provider` of rollup rows (and of [`UsageRow::provider`]) for requests
/// that never reached a provider.
pub const NO_PROVIDER: &str = "";
/// The `client_key_id` of rollup rows (and of [`UsageRow::client_key_id`]) for
/// requests made without a client key. Key ids start at 1.
pub const NO_CLIENT_KEY: i64 = 0;

/// Longest duration one request adds to the latency and generation sums
/// (2^40 µs, about 12.7 days): a corrupt record cannot overflow a bucket's sum.
const MAX_ROLLUP_DURATION_US: i64 = 1 << 40;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The summed columns, in insert order after the four key columns.
const SUM_COLUMNS: [&str; 10] = [
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "latency_us_sum",
    "ttft_us_sum",
    "ttft_count",
    "gen_output_tokens",
    "gen_us_sum",
];
const KEY_COLUMNS: [&str; 4] = ["bucket_ms", "model", "provider", "client_key_id"];
/// Bind parameters per rollup row.
const COLUMNS_PER_ROW: usize = KEY_COLUMNS.len() + SUM_COLUMNS.len();

/// The width of a usage bucket, and so which rollup table serves a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// UTC hours, from `usage_hourly` (which retention may trim sooner).
    Hour,
    /// UTC days, from `usage_daily`.
    Day,
}

impl Bucket {
    /// The bucket length in milliseconds.
    pub fn width_ms(self) -> i64 {
        match self {
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
        }
    }

    /// The start of the bucket holding `ts_ms` (Unix ms, UTC). Timestamps
    /// within one bucket of `i64::MIN` map to `i64::MIN`.
    pub fn start_of(self, ts_ms: i64) -> i64 {
        ts_ms.saturating_sub(ts_ms.rem_euclid(self.width_ms()))
    }

    pub(crate) fn table(self) -> &'static str {
        match self {
            Self::Hour => "usage_hourly",
            Self::Day => "usage_daily",
        }
    }
}

/// What usage can be grouped by, besides the time bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// The model the client asked for.
    Model,
    /// The provider that served (or last failed) the request.
    Provider,
    /// The client key that made the request.
    ClientKey,
}

impl Dimension {
    fn column(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Provider => "provider",
            Self::ClientKey => "client_key_id",
        }
    }

    /// The select-list expression: MySQL keeps the key's text in binary
    /// collation, which sqlx will not decode as text.
    fn select_expr(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (Self::Model, Dialect::MySql) => "CONVERT(model USING utf8mb4) AS model",
            (Self::Provider, Dialect::MySql) => "CONVERT(provider USING utf8mb4) AS provider",
            _ => self.column(),
        }
    }
}

/// A usage statistics query; see [`Store::usage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageQuery {
    /// Only buckets starting at or after this time (Unix ms).
    pub since_ms: i64,
    /// Only buckets starting before this time (Unix ms).
    pub until_ms: i64,
    /// Hourly or daily buckets.
    pub bucket: Bucket,
    /// The dimensions each row is split by (duplicates are ignored); empty
    /// gives one total per bucket.
    pub group_by: Vec<Dimension>,
    /// Only this model.
    pub model: Option<String>,
    /// Only this provider ([`NO_PROVIDER`] for requests that reached none).
    pub provider: Option<String>,
    /// Only this client key ([`NO_CLIENT_KEY`] for requests without one).
    pub client_key_id: Option<i64>,
}

/// Usage of one bucket (and, when grouped, one model / provider / key).
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRow {
    /// Start of the bucket, Unix ms (UTC).
    pub bucket_ms: i64,
    /// The model, when grouped by [`Dimension::Model`].
    pub model: Option<String>,
    /// The provider, when grouped by [`Dimension::Provider`]; [`NO_PROVIDER`]
    /// for requests that reached none.
    pub provider: Option<String>,
    /// The client key, when grouped by [`Dimension::ClientKey`];
    /// [`NO_CLIENT_KEY`] for requests without one.
    pub client_key_id: Option<i64>,
    /// Requests handled.
    pub requests: u64,
    /// Requests answered with status 400 or above, or that ended in an error.
    pub errors: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
    /// Mean time from arrival to the last byte, in milliseconds.
    pub mean_latency_ms: f64,
    /// Mean time to the first token of the requests that had one, in ms.
    pub mean_ttft_ms: Option<f64>,
    /// Output tokens per second after the first token, over the requests with
    /// a first-token time and output tokens (none: no such request).
    pub output_tokens_per_s: Option<f64>,
    /// `errors / requests`.
    pub error_rate: f64,
}

/// One rollup row's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RollupKey {
    bucket_ms: i64,
    model: String,
    provider: String,
    client_key_id: i64,
}

/// One rollup row's sums, in [`SUM_COLUMNS`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RollupSums([i64; SUM_COLUMNS.len()]);

impl RollupSums {
    /// What one request adds.
    fn of(record: &RequestLogRecord) -> Self {
        let latency = saturating_i64(record.latency_us).min(MAX_ROLLUP_DURATION_US);
        let ttft = record
            .ttft_us
            .map(|t| saturating_i64(t).min(MAX_ROLLUP_DURATION_US));
        let output_tokens = record.output_tokens.map_or(0, i64::from);
        let generated = ttft.filter(|_| output_tokens > 0);
        let is_error = record.status >= 400 || record.outcome == Outcome::Error;
        Self([
            1,
            i64::from(is_error),
            record.input_tokens.map_or(0, i64::from),
            output_tokens,
            record.cached_tokens.map_or(0, i64::from),
            latency,
            ttft.unwrap_or(0),
            i64::from(ttft.is_some()),
            generated.map_or(0, |_| output_tokens),
            generated.map_or(0, |ttft| latency.saturating_sub(ttft).max(0)),
        ])
    }

    fn add(&mut self, other: &Self) {
        for (sum, value) in self.0.iter_mut().zip(other.0) {
            *sum = sum.saturating_add(value);
        }
    }
}

/// A batch's records summed per hourly and daily rollup key. Keys are sorted,
/// so concurrent writers lock rollup rows in the same order.
#[derive(Debug, Default)]
pub(crate) struct Rollups {
    hourly: Vec<(RollupKey, RollupSums)>,
    daily: Vec<(RollupKey, RollupSums)>,
}

impl Rollups {
    /// Sums `records`; text keys are cut exactly as the log's columns are.
    pub(crate) fn of<'a>(records: impl IntoIterator<Item = &'a RequestLogRecord>) -> Self {
        let mut hourly = BTreeMap::new();
        let mut daily = BTreeMap::new();
        for record in records {
            let sums = RollupSums::of(record);
            let key = RollupKey {
                bucket_ms: Bucket::Hour.start_of(record.ts_ms),
                model: clean_text(&record.requested_model),
                provider: record
                    .provider
                    .as_deref()
                    .map_or_else(|| NO_PROVIDER.to_owned(), clean_text),
                client_key_id: record.client_key_id.unwrap_or(NO_CLIENT_KEY),
            };
            let day_key = RollupKey {
                bucket_ms: Bucket::Day.start_of(record.ts_ms),
                ..key.clone()
            };
            hourly
                .entry(key)
                .or_insert_with(RollupSums::default)
                .add(&sums);
            daily
                .entry(day_key)
                .or_insert_with(RollupSums::default)
                .add(&sums);
        }
        Self {
            hourly: hourly.into_iter().collect(),
            daily: daily.into_iter().collect(),
        }
    }

    /// Each bucket width with its rows.
    pub(crate) fn tables(&self) -> [(Bucket, &[(RollupKey, RollupSums)]); 2] {
        [(Bucket::Hour, &self.hourly), (Bucket::Day, &self.daily)]
    }
}

/// Most rollup rows one upsert may carry in `dialect`.
pub(crate) fn max_rollups_per_upsert(dialect: Dialect) -> usize {
    dialect.max_bind_params() / COLUMNS_PER_ROW
}

/// Builds the multi-row upsert that adds `rows` to `bucket`'s table: new keys
/// are inserted, existing ones get the sums added.
pub(crate) fn upsert_statement<'args, DB>(
    dialect: Dialect,
    bucket: Bucket,
    rows: &[(RollupKey, RollupSums)],
) -> QueryBuilder<'args, DB>
where
    DB: Database,
    DB::Arguments<'args>: Default,
    i64: Encode<'args, DB> + Type<DB>,
    String: Encode<'args, DB> + Type<DB>,
{
    let table = bucket.table();
    let columns = [KEY_COLUMNS.as_slice(), SUM_COLUMNS.as_slice()].concat();
    let mut query = QueryBuilder::new(format!("INSERT INTO {table} ({}) ", columns.join(", ")));
    query.push_values(rows, |mut row, (key, sums)| {
        row.push_bind(key.bucket_ms)
            .push_bind(key.model.clone())
            .push_bind(key.provider.clone())
            .push_bind(key.client_key_id);
        for value in sums.0 {
            row.push_bind(value);
        }
    });
    let additions: Vec<String> = SUM_COLUMNS
        .iter()
        .map(|c| match dialect {
            Dialect::MySql => format!("{c} = {c} + VALUES({c})"),
            Dialect::Sqlite | Dialect::Postgres => format!("{c} = {table}.{c} + excluded.{c}"),
        })
        .collect();
    match dialect {
        Dialect::MySql => query.push(" ON DUPLICATE KEY UPDATE "),
        Dialect::Sqlite | Dialect::Postgres => query.push(format!(
            " ON CONFLICT ({}) DO UPDATE SET ",
            KEY_COLUMNS.join(", ")
        )),
    };
    query.push(additions.join(", "));
    query
}

impl Store {
    /// Usage per bucket (and per grouped dimension) for buckets starting in
    /// `[since_ms, until_ms)`, ordered by bucket then by the grouped columns.
    ///
    /// Reads only the rollup tables, never the raw log, so its cost depends on
    /// the number of buckets and distinct keys, not on the number of requests.
    /// Rows deleted from the log by retention still count here.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let dialect = self.dialect();
        let mut dimensions = query.group_by.clone();
        dimensions.sort_unstable();
        dimensions.dedup();
        with_pool!(&self.backend, pool => {
            let rows = usage_statement(dialect, query, &dimensions)
                .build()
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| decode_usage(row, &dimensions)).collect()
        })
    }
}

/// Builds the grouped `SELECT` over the rollup table; every column name comes
/// from the enums above, every value is bound.
fn usage_statement<'args, DB>(
    dialect: Dialect,
    query: &UsageQuery,
    dimensions: &[Dimension],
) -> QueryBuilder<'args, DB>
where
    DB: Database,
    DB::Arguments<'args>: Default,
    i64: Encode<'args, DB> + Type<DB>,
    String: Encode<'args, DB> + Type<DB>,
{
    let integer = match dialect {
        Dialect::MySql => "SIGNED",
        Dialect::Sqlite | Dialect::Postgres => "BIGINT",
    };
    let mut select = vec!["bucket_ms".to_owned()];
    select.extend(dimensions.iter().map(|d| d.select_expr(dialect).to_owned()));
    // PostgreSQL and MySQL sum BIGINTs into NUMERIC/DECIMAL: cast back.
    select.extend(
        SUM_COLUMNS
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS {integer}) AS {c}")),
    );
    let mut grouped = vec!["bucket_ms"];
    grouped.extend(dimensions.iter().map(|d| d.column()));
    let grouped = grouped
        .iter()
        .map(|c| format!("{}.{c}", query.bucket.table()))
        .collect::<Vec<_>>()
        .join(", ");

    let mut sql = QueryBuilder::new(format!(
        "SELECT {} FROM {} WHERE bucket_ms >= ",
        select.join(", "),
        query.bucket.table()
    ));
    sql.push_bind(query.since_ms)
        .push(" AND bucket_ms < ")
        .push_bind(query.until_ms);
    if let Some(model) = &query.model {
        sql.push(" AND model = ").push_bind(clean_text(model));
    }
    if let Some(provider) = &query.provider {
        sql.push(" AND provider = ").push_bind(clean_text(provider));
    }
    if let Some(key) = query.client_key_id {
        sql.push(" AND client_key_id = ").push_bind(key);
    }
    sql.push(format!(" GROUP BY {grouped} ORDER BY {grouped}"));
    sql
}

/// Reads one row of [`usage_statement`] and derives the means and rates.
fn decode_usage<'r, R>(row: &'r R, dimensions: &[Dimension]) -> Result<UsageRow, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let grouped = |d: Dimension| dimensions.contains(&d);
    let mut sums = [0_i64; SUM_COLUMNS.len()];
    for (sum, column) in sums.iter_mut().zip(SUM_COLUMNS) {
        *sum = row.try_get(column)?;
    }
    let count = |i: usize| {
        u64::try_from(sums[i]).map_err(|_| StoreError::InvalidValue {
            column: SUM_COLUMNS[i],
            value: sums[i].to_string(),
        })
    };
    let [
        requests,
        errors,
        _,
        _,
        _,
        latency,
        ttft,
        ttft_count,
        gen_tokens,
        gen_us,
    ] = sums;
    let ratio = |num: i64, den: i64| (den > 0).then(|| num as f64 / den as f64);
    Ok(UsageRow {
        bucket_ms: row.try_get("bucket_ms")?,
        model: grouped(Dimension::Model)
            .then(|| row.try_get("model"))
            .transpose()?,
        provider: grouped(Dimension::Provider)
            .then(|| row.try_get("provider"))
            .transpose()?,
        client_key_id: grouped(Dimension::ClientKey)
            .then(|| row.try_get("client_key_id"))
            .transpose()?,
        requests: count(0)?,
        errors: count(1)?,
        input_tokens: count(2)?,
        output_tokens: count(3)?,
        cached_tokens: count(4)?,
        mean_latency_ms: ratio(latency, requests).unwrap_or(0.0) / 1000.0,
        mean_ttft_ms: ratio(ttft, ttft_count).map(|us| us / 1000.0),
        output_tokens_per_s: ratio(gen_tokens, gen_us).map(|per_us| per_us * 1e6),
        error_rate: ratio(errors, requests).unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ts_ms: i64) -> RequestLogRecord {
        RequestLogRecord {
            ts_ms,
            request_id: "r".into(),
            ingress_dialect: "openai".into(),
            requested_model: "m".into(),
            provider: None,
            upstream_model: None,
            plugin: None,
            status: 200,
            error_class: None,
            attempts: 1,
            latency_us: 3_000,
            ttft_us: None,
            input_tokens: None,
            output_tokens: None,
            cached_tokens: None,
            streamed: false,
            outcome: Outcome::Ok,
            client_key_id: None,
        }
    }

    #[test]
    fn buckets_start_at_utc_hours_and_days() {
        let ts = 1_750_000_123_456;
        assert_eq!(Bucket::Hour.start_of(ts), 1_749_999_600_000);
        assert_eq!(Bucket::Day.start_of(ts), 1_749_945_600_000);
        assert_eq!(Bucket::Hour.start_of(1_749_999_600_000), 1_749_999_600_000);
        assert_eq!(Bucket::Hour.start_of(-1), -HOUR_MS);
        assert_eq!(Bucket::Day.start_of(i64::MIN + 5), i64::MIN);
        assert_eq!(Bucket::Day.start_of(i64::MAX) % DAY_MS, 0);
    }

    #[test]
    fn one_request_adds_its_counts() {
        let mut rec = record(0);
        rec.status = 200;
        rec.outcome = Outcome::Error;
        rec.latency_us = 10_000;
        rec.ttft_us = Some(4_000);
        rec.input_tokens = Some(7);
        rec.output_tokens = Some(30);
        rec.cached_tokens = Some(2);
        assert_eq!(
            RollupSums::of(&rec).0,
            [1, 1, 7, 30, 2, 10_000, 4_000, 1, 30, 6_000]
        );

        // No output tokens: the ttft counts, the generation rate does not.
        rec.output_tokens = Some(0);
        rec.outcome = Outcome::Ok;
        rec.status = 429;
        assert_eq!(
            RollupSums::of(&rec).0,
            [1, 1, 7, 0, 2, 10_000, 4_000, 1, 0, 0]
        );
    }

    #[test]
    fn absurd_durations_are_capped() {
        let mut rec = record(0);
        rec.latency_us = u64::MAX;
        rec.ttft_us = Some(u64::MAX);
        rec.output_tokens = Some(1);
        let sums = RollupSums::of(&rec).0;
        assert_eq!(sums[5], MAX_ROLLUP_DURATION_US);
        assert_eq!(sums[6], MAX_ROLLUP_DURATION_US);
        assert_eq!(sums[9], 0);
    }

    #[test]
    fn rollups_merge_equal_keys_and_split_buckets() {
        let mut a = record(HOUR_MS - 1);
        a.provider = Some("p".into());
        let b = record(HOUR_MS);
        let mut c = record(HOUR_MS + 5);
        c.client_key_id = Some(NO_CLIENT_KEY);
        let rollups = Rollups::of([&a, &b, &c]);
        let hourly: Vec<_> = rollups
            .hourly
            .iter()
            .map(|(k, s)| (k.bucket_ms, k.provider.as_str(), k.client_key_id, s.0[0]))
            .collect();
        assert_eq!(hourly, [(0, "p", 0, 1), (HOUR_MS, "", 0, 2)]);
        let daily: Vec<_> = rollups
            .daily
            .iter()
            .map(|(k, s)| (k.bucket_ms, k.provider.as_str(), s.0[0]))
            .collect();
        assert_eq!(daily, [(0, "", 2), (0, "p", 1)]);
    }

    #[test]
    fn upserts_add_to_existing_rows_in_each_dialect() {
        let rollups = Rollups::of([&record(0)]);
        let rows = &rollups.hourly;
        let pg = upsert_statement::<sqlx::Postgres>(Dialect::Postgres, Bucket::Hour, rows);
        assert!(pg.sql().contains(
            "ON CONFLICT (bucket_ms, model, provider, client_key_id) DO UPDATE SET \
             requests = usage_hourly.requests + excluded.requests"
        ));
        assert!(pg.sql().contains(&format!("${COLUMNS_PER_ROW})")));
        let my = upsert_statement::<sqlx::MySql>(Dialect::MySql, Bucket::Day, rows);
        assert!(my.sql().starts_with("INSERT INTO usage_daily"));
        assert!(
            my.sql()
                .ends_with("gen_us_sum = gen_us_sum + VALUES(gen_us_sum)")
        );
    }

    #[test]
    fn usage_statement_groups_by_fixed_columns_only() {
        let query = UsageQuery {
            since_ms: 0,
            until_ms: DAY_MS,
            bucket: Bucket::Hour,
            group_by: vec![Dimension::ClientKey, Dimension::Model],
            model: Some("x'; DROP TABLE usage_hourly; --".into()),
            provider: None,
            client_key_id: Some(3),
        };
        let dims = [Dimension::Model, Dimension::ClientKey];
        let sql = usage_statement::<sqlx::MySql>(Dialect::MySql, &query, &dims).into_sql();
        assert!(
            sql.contains("CONVERT(model USING utf8mb4) AS model"),
            "{sql}"
        );
        assert!(sql.contains("CAST(SUM(requests) AS SIGNED)"), "{sql}");
        assert!(
            sql.ends_with(
                "GROUP BY usage_hourly.bucket_ms, usage_hourly.model, usage_hourly.client_key_id \
                 ORDER BY usage_hourly.bucket_ms, usage_hourly.model, usage_hourly.client_key_id"
            ),
            "{sql}"
        );
        assert!(!sql.contains("DROP"), "{sql}");
    }
}
