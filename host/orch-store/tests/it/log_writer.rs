//! `LogWriter` and the request log against live databases: round trip,
//! batching, overflow, shutdown, filtered pages, captured bodies, retention.

// Helpers outside `#[test]` functions: a failed step must fail the test.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers; a failed step fails the test"
)]

use std::time::Duration;

use orch_store::request_log::MAX_TEXT_CHARS;
use orch_store::{
    Bucket, CapturedBodies, LogEntry, LogQuery, LogWriter, LogWriterConfig, LogWriterStats,
    LoggedRequest, Outcome, RequestLogRecord, RetentionConfig, StatusFilter, UsageQuery,
    spawn_retention,
};

use crate::support::{Target, each_store, record, stored_sorted};

/// Generous bound for flushing at shutdown; tests never wait this long.
const SHUTDOWN: Duration = Duration::from_secs(60);
/// Long enough that the interval never fires during a test: only a full batch
/// or shutdown makes such a writer write.
const NEVER: Duration = Duration::from_secs(3600);

fn config(capacity: usize, batch_size: usize, flush_interval: Duration) -> LogWriterConfig {
    LogWriterConfig {
        capacity,
        batch_size,
        flush_interval,
        ..LogWriterConfig::default()
    }
}

/// The row counters of `stats` (not `batches`, which depends on timing).
fn counts(stats: LogWriterStats) -> [u64; 4] {
    [
        stats.queued,
        stats.written,
        stats.dropped,
        stats.write_errors,
    ]
}

fn stats(queued: u64, written: u64, dropped: u64, write_errors: u64) -> [u64; 4] {
    [queued, written, dropped, write_errors]
}

/// Records at the edges of every field's range.
fn extreme_records() -> Vec<RequestLogRecord> {
    let full = RequestLogRecord {
        ts_ms: i64::MAX,
        request_id: "req-extreme-max".to_owned(),
        // What PostgreSQL's COPY text format must escape.
        ingress_dialect: "tab\there\nline\r\\N \\. \\t end".to_owned(),
        requested_model: "'; DROP TABLE request_log; -- \"quoted\" \\ back".to_owned(),
        provider: Some("prov ünïcödé 🚀".to_owned()),
        upstream_model: Some("x".repeat(MAX_TEXT_CHARS)),
        plugin: Some("openai@0.1.0".to_owned()),
        status: u16::MAX,
        error_class: Some("upstream_timeout".to_owned()),
        attempts: i32::MAX as u32,
        latency_us: i64::MAX as u64,
        ttft_us: Some(i64::MAX as u64),
        input_tokens: Some(u32::MAX),
        output_tokens: Some(u32::MAX),
        cached_tokens: Some(u32::MAX),
        streamed: true,
        outcome: Outcome::Partial,
        client_key_id: Some(i64::MAX),
    };
    let empty = RequestLogRecord {
        ts_ms: i64::MIN,
        request_id: "req-extreme-min".to_owned(),
        ingress_dialect: String::new(),
        requested_model: String::new(),
        provider: Some(String::new()),
        upstream_model: None,
        // Text that spells COPY's NULL marker is still text.
        plugin: Some("\\N".to_owned()),
        status: 0,
        error_class: None,
        attempts: 0,
        latency_us: 0,
        ttft_us: Some(0),
        input_tokens: Some(0),
        output_tokens: None,
        cached_tokens: None,
        streamed: false,
        outcome: Outcome::Cancelled,
        client_key_id: Some(i64::MIN),
    };
    vec![full, empty]
}

#[tokio::test]
async fn pushed_records_round_trip_exactly() {
    each_store(|target: Target| async move {
        let (writer, _task) = LogWriter::start(target.store.clone(), LogWriterConfig::default());
        let mut expected: Vec<_> = (0..40).map(record).collect();
        expected.extend(extreme_records());
        for rec in &expected {
            writer.push(rec.clone());
        }
        let final_stats = writer.shutdown(SHUTDOWN).await;
        assert_eq!(counts(final_stats), stats(0, 42, 0, 0));

        expected.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        assert_eq!(stored_sorted(&target.store).await, expected);
        assert_eq!(target.store.count_request_logs().await.unwrap(), 42);
    })
    .await;
}

#[tokio::test]
async fn recent_request_logs_are_newest_first_and_limited() {
    each_store(|target: Target| async move {
        let rows: Vec<_> = (0..10).map(record).collect();
        target.store.insert_request_logs(&rows).await.unwrap();
        let recent = target.store.recent_request_logs(3).await.unwrap();
        let ids: Vec<_> = recent.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["req-000009", "req-000008", "req-000007"]);
        assert!(
            target
                .store
                .recent_request_logs(0)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn long_text_is_cut_and_nul_removed() {
    each_store(|target: Target| async move {
        let mut rec = record(1);
        rec.request_id = "req\0-nul".to_owned();
        rec.requested_model = "m".repeat(MAX_TEXT_CHARS + 100);
        rec.error_class = Some("é".repeat(MAX_TEXT_CHARS * 2));
        let (writer, _task) = LogWriter::start(target.store.clone(), LogWriterConfig::default());
        writer.push(rec);
        assert_eq!(writer.shutdown(SHUTDOWN).await.written, 1);

        let stored = target.store.recent_request_logs(1).await.unwrap().remove(0);
        assert_eq!(stored.request_id, "req-nul");
        assert_eq!(stored.requested_model, "m".repeat(MAX_TEXT_CHARS));
        assert_eq!(stored.error_class, Some("é".repeat(MAX_TEXT_CHARS)));
    })
    .await;
}

#[tokio::test]
async fn many_batches_are_all_written() {
    each_store(|target: Target| async move {
        let (writer, _task) = LogWriter::start(target.store.clone(), config(10_000, 16, NEVER));
        for i in 0..1000 {
            writer.push(record(i));
        }
        let final_stats = writer.shutdown(SHUTDOWN).await;
        assert_eq!(counts(final_stats), stats(0, 1000, 0, 0));
        let stored = stored_sorted(&target.store).await;
        assert_eq!(stored, (0..1000).map(record).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test]
async fn full_batches_are_written_without_waiting_for_the_interval() {
    each_store(|target: Target| async move {
        // The interval never fires, so only "a batch's worth is queued" can
        // trigger these writes.
        let (writer, _task) = LogWriter::start(target.store.clone(), config(1000, 10, NEVER));
        for i in 0..30 {
            writer.push(record(i));
        }
        let written = async {
            while writer.stats().written < 30 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(SHUTDOWN, written)
            .await
            .expect("full batches were never written");
        assert_eq!(target.store.count_request_logs().await.unwrap(), 30);
        let last = writer.shutdown(SHUTDOWN).await;
        assert_eq!(counts(last), stats(0, 30, 0, 0));
        assert_eq!(last.batches, 3);
    })
    .await;
}

#[tokio::test]
async fn steady_traffic_is_written_in_one_batch_per_interval() {
    const INTERVAL: Duration = Duration::from_millis(50);
    each_store(|target: Target| async move {
        // A batch is never full: only the interval writes. Each tick must
        // write what was queued then, not keep chasing the records that
        // arrive while it writes (a stream of one-row transactions).
        let (writer, _task) =
            LogWriter::start(target.store.clone(), config(100_000, 100_000, INTERVAL));
        let started = std::time::Instant::now();
        let mut pushed = 0;
        while started.elapsed() < 12 * INTERVAL {
            writer.push(record(pushed));
            pushed += 1;
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let ticks = started.elapsed().as_millis() / INTERVAL.as_millis() + 1;
        let last = writer.shutdown(SHUTDOWN).await;
        assert_eq!(counts(last), stats(0, u64::from(pushed), 0, 0));
        // One batch per tick at most, plus the one at shutdown.
        let most = u64::try_from(ticks).unwrap() + 1;
        assert!(
            last.batches <= most,
            "{} batches for {ticks} ticks",
            last.batches
        );
    })
    .await;
}

#[tokio::test]
async fn batches_beyond_the_bind_parameter_limit_are_split() {
    each_store(|target: Target| async move {
        // 5000 rows × 17 columns exceeds every dialect's parameter limit.
        let (writer, _task) = LogWriter::start(target.store.clone(), config(5000, 5000, NEVER));
        for i in 0..5000 {
            writer.push(record(i));
        }
        assert_eq!(
            counts(writer.shutdown(SHUTDOWN).await),
            stats(0, 5000, 0, 0)
        );
        assert_eq!(target.store.count_request_logs().await.unwrap(), 5000);

        // Direct inserts split the same way, inside one transaction.
        let rows: Vec<_> = (5000..10_000).map(record).collect();
        target.store.insert_request_logs(&rows).await.unwrap();
        assert_eq!(target.store.count_request_logs().await.unwrap(), 10_000);
    })
    .await;
}

#[tokio::test]
async fn overflow_drops_the_oldest_records_and_counts_them() {
    each_store(|target: Target| async move {
        // The batch can never fill (it is larger than the queue) and the
        // interval never fires: nothing is written until shutdown.
        let (writer, _task) = LogWriter::start(target.store.clone(), config(16, 1024, NEVER));
        for i in 0..100 {
            writer.push(record(i));
        }
        assert_eq!(counts(writer.stats()), stats(16, 0, 84, 0));
        assert_eq!(target.store.count_request_logs().await.unwrap(), 0);

        assert_eq!(counts(writer.shutdown(SHUTDOWN).await), stats(0, 16, 84, 0));
        assert_eq!(
            stored_sorted(&target.store).await,
            (84..100).map(record).collect::<Vec<_>>()
        );
    })
    .await;
}

#[tokio::test]
async fn shutdown_flushes_what_is_queued() {
    each_store(|target: Target| async move {
        let (writer, task) = LogWriter::start(target.store.clone(), config(1000, 1000, NEVER));
        for i in 0..10 {
            writer.push(record(i));
        }
        assert_eq!(target.store.count_request_logs().await.unwrap(), 0);
        assert_eq!(counts(writer.shutdown(SHUTDOWN).await), stats(0, 10, 0, 0));
        task.await.unwrap();
        assert_eq!(
            stored_sorted(&target.store).await,
            (0..10).map(record).collect::<Vec<_>>()
        );
    })
    .await;
}

#[tokio::test]
async fn dropping_every_handle_flushes_and_ends_the_task() {
    each_store(|target: Target| async move {
        let (writer, task) = LogWriter::start(
            target.store.clone(),
            config(1000, 1000, Duration::from_millis(10)),
        );
        let clone = writer.clone();
        for i in 0..5 {
            clone.push(record(i));
        }
        drop(writer);
        drop(clone);
        task.await.unwrap();
        assert_eq!(target.store.count_request_logs().await.unwrap(), 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_push_through_clones() {
    each_store(|target: Target| async move {
        let (writer, _task) = LogWriter::start(target.store.clone(), config(10_000, 64, NEVER));
        let pushers: Vec<_> = (0..8u32)
            .map(|t| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in 0..250 {
                        writer.push(record(t * 1000 + i));
                        if i % 50 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for pusher in pushers {
            pusher.await.unwrap();
        }
        assert_eq!(
            counts(writer.shutdown(SHUTDOWN).await),
            stats(0, 2000, 0, 0)
        );
        let mut expected: Vec<_> = (0..8u32)
            .flat_map(|t| (0..250).map(move |i| record(t * 1000 + i)))
            .collect();
        expected.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        assert_eq!(stored_sorted(&target.store).await, expected);
    })
    .await;
}

/// Records with few distinct values, so every filter combination matches
/// some; many share a millisecond, so pages split ties.
fn query_records(count: u32) -> Vec<RequestLogRecord> {
    (0..count)
        .map(|i| {
            let mut rec = record(i);
            rec.ts_ms = BASE_MS + i64::from(i / 3) * 10;
            rec.requested_model = ["m-a", "m-b", "m-c"][(i % 3) as usize].to_owned();
            rec.provider =
                [None, Some("p1"), Some("p2"), Some("p1")][(i % 4) as usize].map(str::to_owned);
            rec.client_key_id = [None, Some(1), Some(2), Some(3), Some(1)][(i % 5) as usize];
            rec.status = [200, 200, 429, 500, 502, 404, 200][(i % 7) as usize];
            rec
        })
        .collect()
}

const BASE_MS: i64 = 1_750_000_000_000;

/// Whether `rec` matches `query` (ignoring its cursor and limit).
fn matches(query: &LogQuery, rec: &RequestLogRecord) -> bool {
    let status_ok = match query.status {
        None => true,
        Some(StatusFilter::Exact(s)) => rec.status == s,
        Some(StatusFilter::Class(c)) => rec.status / 100 == u16::from(c),
    };
    query.since_ms.is_none_or(|t| rec.ts_ms >= t)
        && query.until_ms.is_none_or(|t| rec.ts_ms < t)
        && query
            .model
            .as_ref()
            .is_none_or(|m| *m == rec.requested_model)
        && query
            .provider
            .as_ref()
            .is_none_or(|p| Some(p) == rec.provider.as_ref())
        && query
            .client_key_id
            .is_none_or(|k| Some(k) == rec.client_key_id)
        && status_ok
}

/// Every filter combination the admin API can send.
fn log_queries() -> Vec<LogQuery> {
    let mut queries = Vec::new();
    for range in [None, Some((BASE_MS + 200, BASE_MS + 1_500))] {
        for model in [None, Some("m-c")] {
            for provider in [None, Some("p1")] {
                for key in [None, Some(1)] {
                    for status in [
                        None,
                        Some(StatusFilter::Exact(200)),
                        Some(StatusFilter::Class(5)),
                    ] {
                        queries.push(LogQuery {
                            since_ms: range.map(|r| r.0),
                            until_ms: range.map(|r| r.1),
                            model: model.map(str::to_owned),
                            provider: provider.map(str::to_owned),
                            client_key_id: key,
                            status,
                            before: None,
                            limit: 7,
                        });
                    }
                }
            }
        }
    }
    queries
}

/// Follows cursors until a page comes back short; returns every row.
async fn all_pages(target: &Target, query: &LogQuery) -> Vec<LoggedRequest> {
    let mut rows: Vec<LoggedRequest> = Vec::new();
    let mut query = query.clone();
    loop {
        let page = target.store.query_request_logs(&query).await.unwrap();
        assert!(page.len() <= query.limit as usize);
        let last = page.last().map(LoggedRequest::cursor);
        let full = page.len() == query.limit as usize;
        rows.extend(page);
        match last {
            Some(cursor) if full => query.before = Some(cursor),
            _ => return rows,
        }
    }
}

#[tokio::test]
async fn every_filter_combination_pages_through_each_match_once() {
    each_store(|target: Target| async move {
        let records = query_records(700);
        for chunk in records.chunks(100) {
            target.store.insert_request_logs(chunk).await.unwrap();
        }
        for query in log_queries() {
            let rows = all_pages(&target, &query).await;
            // Newest first; within a millisecond, later writes first.
            let mut expected: Vec<(usize, &RequestLogRecord)> = records
                .iter()
                .enumerate()
                .filter(|(_, rec)| matches(&query, rec))
                .collect();
            expected.sort_by_key(|(i, rec)| std::cmp::Reverse((rec.ts_ms, *i)));
            assert!(!expected.is_empty(), "{query:?} matches nothing");
            let got: Vec<&RequestLogRecord> = rows.iter().map(|r| &r.record).collect();
            let want: Vec<&RequestLogRecord> = expected.iter().map(|(_, rec)| *rec).collect();
            assert_eq!(got, want, "{query:?}");
            assert!(
                rows.windows(2)
                    .all(|w| w[0].cursor().ts_ms > w[1].cursor().ts_ms || w[0].id > w[1].id),
                "{query:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn pages_are_stable_while_new_rows_arrive() {
    each_store(|target: Target| async move {
        let records = query_records(60);
        target.store.insert_request_logs(&records).await.unwrap();
        let query = LogQuery {
            limit: 25,
            ..LogQuery::default()
        };
        let first = target.store.query_request_logs(&query).await.unwrap();
        // Newer rows, and rows sharing the cursor's millisecond, arrive meanwhile.
        let mut late = query_records(3);
        for rec in &mut late {
            rec.ts_ms = first.last().unwrap().record.ts_ms;
            rec.request_id = format!("late-{}", rec.request_id);
        }
        late.push(RequestLogRecord {
            ts_ms: BASE_MS + 1_000_000,
            ..record(99)
        });
        target.store.insert_request_logs(&late).await.unwrap();

        let mut seen: Vec<String> = first.iter().map(|r| r.record.request_id.clone()).collect();
        let rest = all_pages(
            &target,
            &LogQuery {
                before: first.last().map(LoggedRequest::cursor),
                ..query
            },
        )
        .await;
        seen.extend(rest.into_iter().map(|r| r.record.request_id));
        let mut originals: Vec<String> = records.iter().map(|r| r.request_id.clone()).collect();
        seen.sort();
        originals.sort();
        assert_eq!(seen, originals);
        assert!(
            target
                .store
                .query_request_logs(&LogQuery {
                    limit: 0,
                    ..LogQuery::default()
                })
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn captured_bodies_are_cut_on_a_character_boundary() {
    each_store(|target: Target| async move {
        let config = LogWriterConfig {
            max_body_bytes: 9,
            ..LogWriterConfig::default()
        };
        let (writer, _task) = LogWriter::start(target.store.clone(), config);
        // "é" is 2 bytes: 9 bytes hold 4 of them; "🚀" is 4 bytes: 2 fit.
        writer.push_with_bodies(
            record(1),
            Some(CapturedBodies {
                request: "é".repeat(20),
                response: "🚀🚀🚀".to_owned(),
            }),
        );
        writer.push_with_bodies(
            record(2),
            Some(CapturedBodies {
                request: "a\0b".to_owned(),
                response: String::new(),
            }),
        );
        writer.push_with_bodies(record(3), None);
        writer.push(record(4));
        // The same request id again: the newer bodies win.
        writer.push_with_bodies(
            record(2),
            Some(CapturedBodies {
                request: "again".to_owned(),
                response: "ok".to_owned(),
            }),
        );
        assert_eq!(writer.shutdown(SHUTDOWN).await.written, 5);

        let store = &target.store;
        let first = store.request_bodies(&record(1).request_id).await.unwrap();
        assert_eq!(
            first,
            Some(CapturedBodies {
                request: "éééé".to_owned(),
                response: "🚀🚀".to_owned(),
            })
        );
        let second = store.request_bodies(&record(2).request_id).await.unwrap();
        assert_eq!(second.map(|b| b.request), Some("again".to_owned()));
        assert_eq!(
            store.request_bodies(&record(3).request_id).await.unwrap(),
            None
        );
        assert_eq!(store.request_bodies("unknown").await.unwrap(), None);
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM request_bodies").await,
            3
        );
        assert_eq!(
            target
                .scalar("SELECT COUNT(*) FROM request_bodies WHERE request_body = 'ab'")
                .await,
            1
        );
    })
    .await;
}

/// Log rows one second apart, each with captured bodies.
fn timed_entries(count: u32) -> Vec<LogEntry> {
    (0..count)
        .map(|i| LogEntry {
            record: RequestLogRecord {
                ts_ms: BASE_MS + i64::from(i) * 1000,
                ..record(i)
            },
            bodies: Some(CapturedBodies {
                request: format!("q{i}"),
                response: format!("a{i}"),
            }),
        })
        .collect()
}

async fn stored_ids(target: &Target) -> Vec<String> {
    let mut ids: Vec<String> = target
        .store
        .recent_request_logs(u32::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    ids.sort();
    ids
}

fn request_ids(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| record(i).request_id).collect()
}

#[tokio::test]
async fn retention_by_age_deletes_exactly_the_older_rows_in_batches() {
    each_store(|target: Target| async move {
        let store = &target.store;
        store.insert_log_entries(&timed_entries(250)).await.unwrap();
        let cutoff = BASE_MS + 100_000;
        assert_eq!(store.delete_logs_before(cutoff, 7).await.unwrap(), 100);
        assert_eq!(stored_ids(&target).await, request_ids(100..250));
        assert_eq!(store.delete_logs_before(cutoff, 7).await.unwrap(), 0);

        assert_eq!(store.delete_bodies_before(cutoff, 7).await.unwrap(), 100);
        assert_eq!(
            store.request_bodies(&record(99).request_id).await.unwrap(),
            None
        );
        let kept = store.request_bodies(&record(100).request_id).await.unwrap();
        assert_eq!(kept.map(|b| b.response), Some("a100".to_owned()));

        // The 250 seconds fall in one hour: a cutoff at its start keeps its
        // rollups, one just after deletes them all.
        let hour = Bucket::Hour.start_of(BASE_MS);
        assert_eq!(Bucket::Hour.start_of(BASE_MS + 250_000), hour);
        let hourly_rows = target.scalar("SELECT COUNT(*) FROM usage_hourly").await;
        assert!(hourly_rows > 3, "several batches: {hourly_rows}");
        assert_eq!(store.delete_hourly_usage_before(hour, 3).await.unwrap(), 0);
        let deleted = store.delete_hourly_usage_before(hour + 1, 3).await.unwrap();
        assert_eq!(i64::try_from(deleted).unwrap(), hourly_rows);
        assert_eq!(target.scalar("SELECT COUNT(*) FROM usage_hourly").await, 0);
        // Daily rollups and the usage they report stay.
        let day = UsageQuery {
            since_ms: Bucket::Day.start_of(BASE_MS),
            until_ms: BASE_MS + 86_400_000,
            bucket: Bucket::Day,
            group_by: Vec::new(),
            model: None,
            provider: None,
            client_key_id: None,
        };
        let usage = store.usage(&day).await.unwrap();
        assert_eq!(usage.iter().map(|r| r.requests).sum::<u64>(), 250);
    })
    .await;
}

#[tokio::test]
async fn retention_by_count_keeps_exactly_the_newest_rows() {
    each_store(|target: Target| async move {
        let store = &target.store;
        store.insert_log_entries(&timed_entries(250)).await.unwrap();
        assert_eq!(store.trim_logs_to(40, 7).await.unwrap(), 210);
        assert_eq!(stored_ids(&target).await, request_ids(210..250));
        assert_eq!(store.trim_logs_to(40, 7).await.unwrap(), 0);
        assert_eq!(store.trim_logs_to(1000, 7).await.unwrap(), 0);

        assert_eq!(store.trim_bodies_to(5, 2).await.unwrap(), 245);
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM request_bodies").await,
            5
        );
        assert!(
            store
                .request_bodies(&record(245).request_id)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store.request_bodies(&record(244).request_id).await.unwrap(),
            None
        );

        assert_eq!(store.trim_logs_to(0, 1000).await.unwrap(), 40);
        assert_eq!(store.count_request_logs().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn the_retention_task_applies_every_limit() {
    each_store(|target: Target| async move {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        // 30 rows one hour apart, the newest now; bodies for each.
        let entries: Vec<LogEntry> = (0..30u32)
            .map(|i| LogEntry {
                record: RequestLogRecord {
                    ts_ms: now - i64::from(29 - i) * 3_600_000,
                    ..record(i)
                },
                bodies: Some(CapturedBodies::default()),
            })
            .collect();
        target.store.insert_log_entries(&entries).await.unwrap();
        let hourly_age_ms = (5 * 3600 + 1800) * 1000;
        // The hours not older than the hourly limit (5 or 6, depending on the
        // minute); each holds the rollup row of one record.
        let young_hours = (0..30)
            .map(|i| Bucket::Hour.start_of(now - i * 3_600_000))
            .filter(|bucket| *bucket >= now - hourly_age_ms)
            .count() as i64;
        let config = RetentionConfig {
            // Rows 9..30 are younger than 20.5 hours; the count keeps 15 of them.
            max_age: Some(Duration::from_secs(20 * 3600 + 1800)),
            max_rows: Some(15),
            hourly_max_age: Some(Duration::from_secs(5 * 3600 + 1800)),
            batch: 4,
            pause: Duration::from_millis(1),
            interval: Duration::from_millis(50),
        };
        let daily_rows = target.scalar("SELECT COUNT(*) FROM usage_daily").await;
        let task = spawn_retention(target.store.clone(), config);
        let done = async {
            while target.store.count_request_logs().await.unwrap() > 15
                || target.scalar("SELECT COUNT(*) FROM request_bodies").await > 15
                || target.scalar("SELECT COUNT(*) FROM usage_hourly").await > young_hours
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(SHUTDOWN, done)
            .await
            .expect("retention never reached its limits");
        task.abort();
        assert_eq!(stored_ids(&target).await, request_ids(15..30));
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM request_bodies").await,
            15
        );
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM usage_hourly").await,
            young_hours
        );
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM usage_daily").await,
            daily_rows
        );
    })
    .await;
}
