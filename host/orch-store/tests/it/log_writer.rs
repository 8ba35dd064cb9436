//! `LogWriter` against live databases: round trip, batching, overflow, shutdown.

use std::time::Duration;

use orch_store::request_log::MAX_TEXT_CHARS;
use orch_store::{LogWriter, LogWriterConfig, LogWriterStats, Outcome, RequestLogRecord};

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

fn stats(queued: u64, written: u64, dropped: u64, write_errors: u64) -> LogWriterStats {
    LogWriterStats {
        queued,
        written,
        dropped,
        write_errors,
    }
}

/// Records at the edges of every field's range.
fn extreme_records() -> Vec<RequestLogRecord> {
    let full = RequestLogRecord {
        ts_ms: i64::MAX,
        request_id: "req-extreme-max".to_owned(),
        ingress_dialect: "anthropic".to_owned(),
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
    };
    let empty = RequestLogRecord {
        ts_ms: i64::MIN,
        request_id: "req-extreme-min".to_owned(),
        ingress_dialect: String::new(),
        requested_model: String::new(),
        provider: Some(String::new()),
        upstream_model: None,
        plugin: None,
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
        assert_eq!(final_stats, stats(0, 42, 0, 0));

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
        assert_eq!(final_stats, stats(0, 1000, 0, 0));
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
        assert_eq!(writer.shutdown(SHUTDOWN).await, stats(0, 30, 0, 0));
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
        assert_eq!(writer.shutdown(SHUTDOWN).await, stats(0, 5000, 0, 0));
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
        assert_eq!(writer.stats(), stats(16, 0, 84, 0));
        assert_eq!(target.store.count_request_logs().await.unwrap(), 0);

        assert_eq!(writer.shutdown(SHUTDOWN).await, stats(0, 16, 84, 0));
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
        assert_eq!(writer.shutdown(SHUTDOWN).await, stats(0, 10, 0, 0));
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
        assert_eq!(writer.shutdown(SHUTDOWN).await, stats(0, 2000, 0, 0));
        let mut expected: Vec<_> = (0..8u32)
            .flat_map(|t| (0..250).map(move |i| record(t * 1000 + i)))
            .collect();
        expected.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        assert_eq!(stored_sorted(&target.store).await, expected);
    })
    .await;
}
