//! Request-log volume benchmark: writes `rows` (default 1,000,000) log rows
//! through the real insert + rollup path, then times the admin queries that
//! must stay fast at that size.
//!
//! ```text
//! cargo run --release -p orch-store --example log_volume -- <database url> [rows]
//! ```
//!
//! Use an empty database: the rows are added to whatever is there (`rows` 0
//! only times the queries, e.g. again after `ANALYZE`). The data
//! spans ten days ending at `END_MS`: 20 models (each served by one provider,
//! a tenth failing over to another), 50 client keys using three models each
//! plus unauthenticated traffic, and a few percent of 4xx/5xx answers.

use std::time::{Duration, Instant};

use anyhow::Context;
use orch_store::{
    Bucket, Dimension, LogQuery, Outcome, RequestLogRecord, StatusFilter, Store, UsageQuery,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Midnight UTC ending the data: 2025-06-25.
const END_MS: i64 = 1_750_809_600_000;
const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 10;
/// Rows per insert call: one transaction with its rollups.
const BATCH: usize = 10_000;
/// Runs of each timed query; the median is reported.
const RUNS: usize = 7;
const MODELS: i64 = 20;
const KEYS: i64 = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: log_volume <database url> [rows]")?;
    let rows: u64 = match args.next() {
        Some(rows) => rows.parse().context("rows must be a number")?,
        None => 1_000_000,
    };
    let store = Store::connect(&url).await?;
    println!("database: {} ({})", store.redacted_url(), store.dialect());

    if rows > 0 {
        insert(&store, rows).await?;
    }
    time_queries(&store).await
}

/// Writes `rows` generated records in batches, reporting the rate.
async fn insert(store: &Store, rows: u64) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(42);
    let started = Instant::now();
    let span = DAYS * DAY_MS;
    let start_ms = END_MS - span;
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..rows {
        let at = start_ms + (i128::from(i) * i128::from(span) / i128::from(rows)) as i64;
        batch.push(generate(&mut rng, i, at));
        if batch.len() == BATCH || i + 1 == rows {
            store.insert_request_logs(&batch).await?;
            batch.clear();
        }
    }
    let elapsed = started.elapsed();
    println!(
        "inserted {rows} rows in {:.1} s ({:.0} rows/s, batches of {BATCH})",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// One plausible request arriving around `at_ms` (up to 2 s out of order).
fn generate(rng: &mut StdRng, i: u64, at_ms: i64) -> RequestLogRecord {
    let key = (rng.random_range(0..10) > 0).then(|| rng.random_range(1..=KEYS));
    let model = match key {
        Some(key) => (key * 7 + rng.random_range(0..3)) % MODELS,
        None => rng.random_range(0..MODELS),
    };
    let failover = rng.random_range(0..10) == 0;
    let provider = format!("provider-{}", (model + i64::from(failover)) % 8);
    let status = match rng.random_range(0..100) {
        0..92 => 200,
        92..95 => 429,
        95..97 => 500,
        97..99 => 502,
        _ => 400,
    };
    let streamed = rng.random_bool(0.6);
    let latency_us = rng.random_range(200_000..8_000_000);
    let ok = status == 200;
    RequestLogRecord {
        ts_ms: at_ms - rng.random_range(0..2_000),
        request_id: format!("req-{i:012}"),
        ingress_dialect: "openai".to_owned(),
        requested_model: format!("model-{model:02}"),
        provider: Some(provider),
        upstream_model: Some(format!("upstream-model-{model:02}")),
        plugin: Some("openai@0.1.0".to_owned()),
        status,
        error_class: (!ok).then(|| "upstream_5xx".to_owned()),
        attempts: 1 + u32::from(failover),
        latency_us,
        ttft_us: (ok && streamed).then_some(latency_us / 5),
        input_tokens: ok.then(|| rng.random_range(10..8_000)),
        output_tokens: ok.then(|| rng.random_range(1..2_000)),
        cached_tokens: ok.then(|| rng.random_range(0..500)),
        streamed,
        outcome: if ok { Outcome::Ok } else { Outcome::Error },
        client_key_id: key,
    }
}

/// Times each admin query over the last day and prints the median.
async fn time_queries(store: &Store) -> anyhow::Result<()> {
    let since_ms = END_MS - DAY_MS;
    let usage = |group_by: Vec<Dimension>| UsageQuery {
        since_ms,
        until_ms: END_MS,
        bucket: Bucket::Hour,
        group_by,
        model: None,
        provider: None,
        client_key_id: None,
    };
    let logs = |edit: fn(&mut LogQuery)| {
        let mut query = LogQuery {
            since_ms: Some(since_ms),
            until_ms: Some(END_MS),
            limit: 50,
            ..LogQuery::default()
        };
        edit(&mut query);
        query
    };

    for (name, query) in [
        (
            "usage, 1 day hourly, by model",
            usage(vec![Dimension::Model]),
        ),
        (
            "usage, 1 day hourly, by provider",
            usage(vec![Dimension::Provider]),
        ),
        (
            "usage, 1 day hourly, by client key",
            usage(vec![Dimension::ClientKey]),
        ),
        (
            "usage, 10 days daily, by model+provider+key",
            UsageQuery {
                since_ms: END_MS - DAYS * DAY_MS,
                bucket: Bucket::Day,
                group_by: vec![Dimension::Model, Dimension::Provider, Dimension::ClientKey],
                ..usage(Vec::new())
            },
        ),
    ] {
        let (median, rows) = median_of(|| async { Ok(store.usage(&query).await?.len()) }).await?;
        report(name, median, rows);
    }

    let log_queries: [(&str, LogQuery); 6] = [
        ("logs, 1 day, first page", logs(|_| {})),
        (
            "logs, 1 day, model",
            logs(|q| q.model = Some("model-07".to_owned())),
        ),
        (
            "logs, 1 day, provider",
            logs(|q| q.provider = Some("provider-3".to_owned())),
        ),
        (
            "logs, 1 day, client key",
            logs(|q| q.client_key_id = Some(17)),
        ),
        (
            "logs, 1 day, status 502",
            logs(|q| q.status = Some(StatusFilter::Exact(502))),
        ),
        (
            "logs, 1 day, status 5xx",
            logs(|q| q.status = Some(StatusFilter::Class(5))),
        ),
    ];
    for (name, query) in log_queries {
        let (median, rows) =
            median_of(|| async { Ok(store.query_request_logs(&query).await?.len()) }).await?;
        report(name, median, rows);
        // The tenth page: following cursors costs the same as the first page.
        let mut page = query.clone();
        for _ in 0..9 {
            let last = store
                .query_request_logs(&page)
                .await?
                .last()
                .map(|r| r.cursor());
            page.before = last;
        }
        let (median, rows) =
            median_of(|| async { Ok(store.query_request_logs(&page).await?.len()) }).await?;
        report(&format!("{name}, page 10"), median, rows);
    }
    Ok(())
}

/// Runs `query` [`RUNS`] times; the median time and the row count.
async fn median_of<F, Fut>(query: F) -> anyhow::Result<(Duration, usize)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let mut times = Vec::with_capacity(RUNS);
    let mut rows = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        rows = query().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], rows))
}

fn report(name: &str, median: Duration, rows: usize) {
    println!(
        "{name:<48} {:>8.2} ms  ({rows} rows)",
        median.as_secs_f64() * 1000.0
    );
}
