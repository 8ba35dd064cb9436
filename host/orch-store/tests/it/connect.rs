//! Connecting: URL handling, SQLite files, and databases that are down or hang.

use std::time::Duration;

use orch_store::{Dialect, LogWriter, LogWriterConfig, Store, StoreError, StoreOptions};

use crate::support::{closed_port, record, silent_listener};

/// A bound on waits that only matter if the code under test is broken.
const GIVE_UP: Duration = Duration::from_secs(60);

fn quick_options() -> StoreOptions {
    StoreOptions {
        acquire_timeout: Duration::from_millis(300),
        ..StoreOptions::default()
    }
}

/// The error and all its sources, as a log line would show them.
fn full_message(error: &StoreError) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    message
}

#[tokio::test]
async fn sqlite_creates_missing_directories_and_uses_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data/nested/x.db");
    let store = Store::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.dialect(), Dialect::Sqlite);
    assert!(file.is_file());
    // The migration wrote through the WAL, which exists while connections are open.
    assert!(tmp.path().join("data/nested/x.db-wal").is_file());
    store.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data_across_pool_connections() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store
        .insert_request_logs(&[record(1), record(2)])
        .await
        .unwrap();
    assert_eq!(store.count_request_logs().await.unwrap(), 2);
}

/// Runs `sqlite_relative_url_child` in a fresh working directory, since a
/// relative SQLite path resolves against the process's working directory.
#[test]
fn sqlite_relative_url_creates_its_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "connect::sqlite_relative_url_child",
            "--ignored",
            "--nocapture",
        ])
        .env("ORCH_STORE_RELATIVE_URL_CHILD", "1")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(cwd.path().join("data").is_dir());
    assert!(cwd.path().join("data/x.db").is_file());
}

#[tokio::test]
#[ignore = "helper: run by sqlite_relative_url_creates_its_directory in a temporary directory"]
async fn sqlite_relative_url_child() {
    if std::env::var_os("ORCH_STORE_RELATIVE_URL_CHILD").is_none() {
        // Run directly (e.g. --include-ignored), it would write into the crate directory.
        return;
    }
    let store = Store::connect("sqlite://data/x.db").await.unwrap();
    store.ping().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn unsupported_url_is_rejected_without_echoing_it() {
    let error = Store::connect("redis://:hunter2@localhost:6379")
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::UnsupportedScheme { .. }),
        "{error:?}"
    );
    assert!(!full_message(&error).contains("hunter2"));
}

#[tokio::test]
async fn connect_errors_never_show_the_password() {
    let port = closed_port();
    for url in [
        format!("postgres://postgres:sup3rs3cret@127.0.0.1:{port}/test"),
        format!("mysql://root:sup3rs3cret@127.0.0.1:{port}/test"),
        format!("postgres://127.0.0.1:{port}/test?user=postgres&password=sup3rs3cret"),
    ] {
        let error = Store::connect_with(&url, &quick_options())
            .await
            .unwrap_err();
        let message = full_message(&error);
        assert!(matches!(error, StoreError::Connect { .. }), "{error:?}");
        assert!(!message.contains("sup3rs3cret"), "{message}");
        assert!(!format!("{error:?}").contains("sup3rs3cret"), "{error:?}");
        assert!(message.contains("***"), "{message}");
    }
}

#[tokio::test]
async fn ping_fails_while_the_database_is_down() {
    let url = format!("postgres://postgres@127.0.0.1:{}/test", closed_port());
    let store = Store::connect_lazy(&url, &quick_options()).unwrap();
    assert!(matches!(store.ping().await, Err(StoreError::Query(_))));
}

/// A database that refuses connections: pushes return at once, every batch
/// fails twice and is dropped, nothing is lost silently.
#[tokio::test]
async fn a_down_database_never_blocks_push_and_counts_failures() {
    let port = closed_port();
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/test"),
        format!("mysql://root@127.0.0.1:{port}/test"),
    ] {
        let store = Store::connect_lazy(&url, &quick_options()).unwrap();
        let config = LogWriterConfig {
            capacity: 64,
            batch_size: 8,
            flush_interval: Duration::from_millis(5),
            ..LogWriterConfig::default()
        };
        let (writer, _task) = LogWriter::start(store, config);
        for i in 0..10_000 {
            writer.push(record(i));
        }
        let stats = writer.stats();
        assert!(stats.queued <= 64, "{stats:?}");
        assert!(stats.dropped >= 10_000 - 64 - 8, "{stats:?}");

        let failed_batch = async {
            while writer.stats().write_errors < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(GIVE_UP, failed_batch)
            .await
            .expect("no write error was counted");
        // Still accepted while the writer is failing.
        writer.push(record(10_000));

        let stats = writer.shutdown(Duration::from_secs(1)).await;
        assert_eq!(
            (stats.queued, stats.written, stats.dropped),
            (0, 0, 10_001),
            "{stats:?}"
        );
        assert!(stats.write_errors >= 2, "{stats:?}");
    }
}

/// A database that accepts the connection and never answers: shutdown still
/// ends at its deadline, counting what it could not write.
#[tokio::test]
async fn shutdown_is_bounded_when_the_database_hangs() {
    let (_listener, port) = silent_listener();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let options = StoreOptions {
        acquire_timeout: Duration::from_secs(600),
        ..StoreOptions::default()
    };
    let store = Store::connect_lazy(&url, &options).unwrap();
    let config = LogWriterConfig {
        batch_size: 1,
        write_timeout: Duration::from_secs(600),
        ..LogWriterConfig::default()
    };
    let (writer, task) = LogWriter::start(store, config);
    for i in 0..10 {
        writer.push(record(i));
    }
    let stats = tokio::time::timeout(GIVE_UP, writer.shutdown(Duration::from_millis(200)))
        .await
        .expect("shutdown ignored its timeout");
    assert_eq!(
        (stats.queued, stats.written, stats.dropped),
        (0, 0, 10),
        "{stats:?}"
    );
    task.await.unwrap();
}

/// A hanging write is abandoned after `write_timeout` and counted as an error.
#[tokio::test]
async fn hanging_writes_time_out_and_count_as_errors() {
    let (_listener, port) = silent_listener();
    let url = format!("mysql://root@127.0.0.1:{port}/test");
    let options = StoreOptions {
        acquire_timeout: Duration::from_secs(600),
        ..StoreOptions::default()
    };
    let store = Store::connect_lazy(&url, &options).unwrap();
    let config = LogWriterConfig {
        batch_size: 1,
        write_timeout: Duration::from_millis(50),
        ..LogWriterConfig::default()
    };
    let (writer, _task) = LogWriter::start(store, config);
    writer.push(record(0));
    let dropped = async {
        while writer.stats().dropped < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(GIVE_UP, dropped)
        .await
        .expect("the hanging batch was never dropped");
    let stats = writer.shutdown(Duration::from_millis(200)).await;
    assert_eq!(
        (stats.written, stats.dropped, stats.write_errors),
        (0, 1, 2),
        "{stats:?}"
    );
}
