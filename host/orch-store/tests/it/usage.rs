//! Usage rollups against live databases: they equal sums computed here from
//! the records, and a batch is counted once or not at all.

// Helpers outside `#[test]` functions: a failed step must fail the test.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers; a failed step fails the test"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use orch_store::usage::{NO_CLIENT_KEY, NO_PROVIDER};
use orch_store::{
    Bucket, CapturedBodies, Dialect, Dimension, LogEntry, LogWriter, LogWriterConfig, Outcome,
    RequestLogRecord, UsageQuery, UsageRow,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::Connection;

use crate::support::{Target, each_store, record};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Midnight UTC, 2025-06-15.
const DAY0: i64 = 1_749_945_600_000;
const SHUTDOWN: Duration = Duration::from_secs(60);

/// Random records over three days, many close to hour and day boundaries;
/// models differing only in case must stay apart on every database.
fn random_records(count: u32, seed: u64) -> Vec<RequestLogRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let models = ["gpt-4o", "GPT-4o", "claude-3", "gemini-2 é"];
    let providers = [None, Some("openai"), Some("anthropic")];
    let keys = [None, Some(1), Some(2), Some(i64::MAX)];
    let statuses = [200, 200, 200, 400, 429, 500, 502];
    let outcomes = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Cancelled,
        Outcome::Partial,
    ];
    (0..count)
        .map(|i| {
            let ts_ms = if rng.random_bool(0.3) {
                // Within a second of an hour boundary (some are day boundaries).
                DAY0 + rng.random_range(1..72) * HOUR_MS + rng.random_range(-1000..1000)
            } else {
                DAY0 + rng.random_range(0..3 * DAY_MS)
            };
            let latency_us = rng.random_range(1_000..5_000_000);
            let mut rec = record(i);
            rec.ts_ms = ts_ms;
            rec.requested_model = (*models.choose(&mut rng).unwrap_or(&"m")).to_owned();
            rec.provider = providers
                .choose(&mut rng)
                .copied()
                .flatten()
                .map(str::to_owned);
            rec.client_key_id = keys.choose(&mut rng).copied().flatten();
            rec.status = *statuses.choose(&mut rng).unwrap_or(&200);
            rec.outcome = *outcomes.choose(&mut rng).unwrap_or(&Outcome::Ok);
            rec.latency_us = latency_us;
            rec.ttft_us = rng
                .random_bool(0.6)
                .then(|| rng.random_range(0..=latency_us));
            rec.input_tokens = rng.random_bool(0.8).then(|| rng.random_range(0..10_000));
            rec.output_tokens = rng.random_bool(0.7).then(|| rng.random_range(0..4_000));
            rec.cached_tokens = rng.random_bool(0.3).then(|| rng.random_range(0..1_000));
            rec
        })
        .collect()
}

/// The sums one rollup row should hold, computed independently of the crate.
#[derive(Default)]
struct Expected {
    requests: u64,
    errors: u64,
    input: u64,
    output: u64,
    cached: u64,
    latency_us: u64,
    ttft_us: u64,
    ttft_count: u64,
    gen_tokens: u64,
    gen_us: u64,
}

type GroupKey = (i64, Option<String>, Option<String>, Option<i64>);

fn expected_usage(records: &[RequestLogRecord], query: &UsageQuery) -> Vec<UsageRow> {
    let width = match query.bucket {
        Bucket::Hour => HOUR_MS,
        Bucket::Day => DAY_MS,
    };
    let by = |d| query.group_by.contains(&d);
    let mut groups: BTreeMap<GroupKey, Expected> = BTreeMap::new();
    for rec in records {
        let bucket = rec.ts_ms.div_euclid(width) * width;
        let provider = rec
            .provider
            .clone()
            .unwrap_or_else(|| NO_PROVIDER.to_owned());
        let key_id = rec.client_key_id.unwrap_or(NO_CLIENT_KEY);
        let selected = bucket >= query.since_ms
            && bucket < query.until_ms
            && query
                .model
                .as_ref()
                .is_none_or(|m| *m == rec.requested_model)
            && query.provider.as_ref().is_none_or(|p| *p == provider)
            && query.client_key_id.is_none_or(|k| k == key_id);
        if !selected {
            continue;
        }
        let key = (
            bucket,
            by(Dimension::Model).then(|| rec.requested_model.clone()),
            by(Dimension::Provider).then_some(provider),
            by(Dimension::ClientKey).then_some(key_id),
        );
        let e = groups.entry(key).or_default();
        let output = u64::from(rec.output_tokens.unwrap_or(0));
        e.requests += 1;
        e.errors += u64::from(rec.status >= 400 || rec.outcome == Outcome::Error);
        e.input += u64::from(rec.input_tokens.unwrap_or(0));
        e.output += output;
        e.cached += u64::from(rec.cached_tokens.unwrap_or(0));
        e.latency_us += rec.latency_us;
        if let Some(ttft) = rec.ttft_us {
            e.ttft_us += ttft;
            e.ttft_count += 1;
            if output > 0 {
                e.gen_tokens += output;
                e.gen_us += rec.latency_us - ttft;
            }
        }
    }
    groups
        .into_iter()
        .map(
            |((bucket_ms, model, provider, client_key_id), e)| UsageRow {
                bucket_ms,
                model,
                provider,
                client_key_id,
                requests: e.requests,
                errors: e.errors,
                input_tokens: e.input,
                output_tokens: e.output,
                cached_tokens: e.cached,
                mean_latency_ms: e.latency_us as f64 / e.requests as f64 / 1000.0,
                mean_ttft_ms: (e.ttft_count > 0)
                    .then(|| e.ttft_us as f64 / e.ttft_count as f64 / 1000.0),
                output_tokens_per_s: (e.gen_us > 0)
                    .then(|| e.gen_tokens as f64 * 1e6 / e.gen_us as f64),
                error_rate: e.errors as f64 / e.requests as f64,
            },
        )
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn close_opt(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// Compares rows ignoring their order (it follows each database's collation)
/// and allowing rounding in the derived means.
fn assert_usage_eq(mut actual: Vec<UsageRow>, mut expected: Vec<UsageRow>, what: &str) {
    let key = |r: &UsageRow| {
        (
            r.bucket_ms,
            r.model.clone(),
            r.provider.clone(),
            r.client_key_id,
        )
    };
    actual.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(actual.len(), expected.len(), "{what}: row count");
    for (a, e) in actual.iter().zip(&expected) {
        let exact = |r: &UsageRow| {
            (
                key(r),
                r.requests,
                r.errors,
                r.input_tokens,
                r.output_tokens,
                r.cached_tokens,
            )
        };
        assert_eq!(exact(a), exact(e), "{what}");
        assert!(
            close(a.mean_latency_ms, e.mean_latency_ms),
            "{what}: {a:?} vs {e:?}"
        );
        assert!(
            close_opt(a.mean_ttft_ms, e.mean_ttft_ms),
            "{what}: {a:?} vs {e:?}"
        );
        assert!(
            close_opt(a.output_tokens_per_s, e.output_tokens_per_s),
            "{what}: {a:?} vs {e:?}"
        );
        assert!(close(a.error_rate, e.error_rate), "{what}: {a:?} vs {e:?}");
    }
}

/// Every subset of the dimensions.
fn groupings() -> Vec<Vec<Dimension>> {
    let all = [Dimension::Model, Dimension::Provider, Dimension::ClientKey];
    (0..8u8)
        .map(|mask| {
            all.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, d)| *d)
                .collect()
        })
        .collect()
}

fn query(bucket: Bucket, group_by: Vec<Dimension>) -> UsageQuery {
    UsageQuery {
        since_ms: DAY0,
        until_ms: DAY0 + 3 * DAY_MS,
        bucket,
        group_by,
        model: None,
        provider: None,
        client_key_id: None,
    }
}

/// Runs one statement over a connection of its own (test-written DDL only).
async fn execute(target: &Target, sql: &str) {
    let result = match target.store.dialect() {
        Dialect::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&target.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
        Dialect::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&target.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
        Dialect::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(&target.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.map(drop)
        }
    };
    result.unwrap();
}

async fn rollup_rows(target: &Target) -> (i64, i64) {
    (
        target.scalar("SELECT COUNT(*) FROM usage_hourly").await,
        target.scalar("SELECT COUNT(*) FROM usage_daily").await,
    )
}

#[tokio::test]
async fn rollups_equal_sums_of_the_written_records() {
    each_store(|target: Target| async move {
        let records = random_records(1500, 7);
        // Small batches: most rollup rows are added to by several batches.
        let config = LogWriterConfig {
            batch_size: 97,
            ..LogWriterConfig::default()
        };
        let (writer, _task) = LogWriter::start(target.store.clone(), config);
        for rec in &records {
            writer.push(rec.clone());
        }
        assert_eq!(writer.shutdown(SHUTDOWN).await.written, 1500);

        for bucket in [Bucket::Hour, Bucket::Day] {
            for group_by in groupings() {
                let q = query(bucket, group_by);
                let actual = target.store.usage(&q).await.unwrap();
                assert_usage_eq(actual, expected_usage(&records, &q), &format!("{q:?}"));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn usage_filters_and_time_ranges_select_their_buckets() {
    each_store(|target: Target| async move {
        let records = random_records(600, 11);
        target.store.insert_request_logs(&records).await.unwrap();
        let filters: [(Option<&str>, Option<&str>, Option<i64>); 7] = [
            (Some("GPT-4o"), None, None),
            (Some("gemini-2 é"), None, None),
            (None, Some("openai"), None),
            (None, Some(NO_PROVIDER), None),
            (None, None, Some(NO_CLIENT_KEY)),
            (None, None, Some(i64::MAX)),
            (Some("gpt-4o"), Some("anthropic"), Some(2)),
        ];
        for (model, provider, client_key_id) in filters {
            for group_by in groupings() {
                let q = UsageQuery {
                    // Hours 5 to 40: cuts through the first and second day.
                    since_ms: DAY0 + 5 * HOUR_MS,
                    until_ms: DAY0 + 40 * HOUR_MS,
                    model: model.map(str::to_owned),
                    provider: provider.map(str::to_owned),
                    client_key_id,
                    ..query(Bucket::Hour, group_by)
                };
                let actual = target.store.usage(&q).await.unwrap();
                assert_usage_eq(actual, expected_usage(&records, &q), &format!("{q:?}"));
            }
        }
        let daily = UsageQuery {
            since_ms: DAY0 + DAY_MS,
            until_ms: DAY0 + 2 * DAY_MS,
            ..query(Bucket::Day, vec![Dimension::Provider])
        };
        let rows = target.store.usage(&daily).await.unwrap();
        assert!(rows.iter().all(|r| r.bucket_ms == DAY0 + DAY_MS));
        assert_usage_eq(rows, expected_usage(&records, &daily), "one day");
        let empty = UsageQuery {
            until_ms: DAY0,
            ..query(Bucket::Hour, Vec::new())
        };
        assert!(target.store.usage(&empty).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_failed_batch_leaves_nothing_and_its_retry_counts_once() {
    each_store(|target: Target| async move {
        let records = random_records(300, 3);
        let entries: Vec<LogEntry> = records
            .iter()
            .map(|rec| LogEntry {
                record: rec.clone(),
                bodies: Some(CapturedBodies {
                    request: "{}".to_owned(),
                    response: "{}".to_owned(),
                }),
            })
            .collect();
        // Bodies are written last: with their table gone, the log rows and both
        // rollups have been written inside the transaction when it fails.
        execute(
            &target,
            "ALTER TABLE request_bodies RENAME TO request_bodies_away",
        )
        .await;
        assert!(target.store.insert_log_entries(&entries).await.is_err());
        assert_eq!(target.store.count_request_logs().await.unwrap(), 0);
        assert_eq!(rollup_rows(&target).await, (0, 0));

        execute(
            &target,
            "ALTER TABLE request_bodies_away RENAME TO request_bodies",
        )
        .await;
        target.store.insert_log_entries(&entries).await.unwrap();
        assert_eq!(target.store.count_request_logs().await.unwrap(), 300);
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM request_bodies").await,
            300
        );
        for bucket in [Bucket::Hour, Bucket::Day] {
            let q = query(bucket, vec![Dimension::Model, Dimension::ClientKey]);
            let actual = target.store.usage(&q).await.unwrap();
            assert_usage_eq(actual, expected_usage(&records, &q), "after the retry");
        }
    })
    .await;
}

#[tokio::test]
async fn a_batch_the_writer_drops_adds_nothing_to_the_rollups() {
    each_store(|target: Target| async move {
        execute(
            &target,
            "ALTER TABLE request_bodies RENAME TO request_bodies_away",
        )
        .await;
        let (writer, _task) = LogWriter::start(target.store.clone(), LogWriterConfig::default());
        for rec in random_records(50, 5) {
            let bodies = CapturedBodies {
                request: "q".to_owned(),
                response: "a".to_owned(),
            };
            writer.push_with_bodies(rec, Some(bodies));
        }
        let stats = writer.shutdown(SHUTDOWN).await;
        assert_eq!(
            (stats.written, stats.dropped, stats.write_errors),
            (0, 50, 2)
        );
        assert_eq!(target.store.count_request_logs().await.unwrap(), 0);
        assert_eq!(rollup_rows(&target).await, (0, 0));
    })
    .await;
}
