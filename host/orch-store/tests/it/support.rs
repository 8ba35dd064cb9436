//! Fresh databases on real servers, one per test and backend.

// Test setup: clippy's allowances for tests cover only `#[test]` functions, and a
// failed setup step must fail the test just the same.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support code; failing setup fails the test"
)]

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::time::Duration;

use orch_store::{Dialect, Outcome, RequestLogRecord, Store};
use sqlx::Connection;
use tempfile::TempDir;

/// Server URLs without a database name; override to point the tests elsewhere.
const POSTGRES_ENV: &str = "ORCH_TEST_POSTGRES_URL";
const MYSQL_ENV: &str = "ORCH_TEST_MYSQL_URL";
const POSTGRES_DEFAULTS: &[&str] = &[
    "postgres://postgres@127.0.0.1:5432",
    "postgres://root@127.0.0.1:5432",
];
const MYSQL_DEFAULTS: &[&str] = &["mysql://root@127.0.0.1:3306"];
/// Database the admin connection uses to create and drop test databases.
const ADMIN_DB: &str = "test";

/// What a test body gets: a migrated store on a fresh database and its URL.
#[derive(Clone, Debug)]
pub struct Target {
    pub store: Store,
    pub url: String,
}

impl Target {
    /// Runs a query returning one integer, over a connection of its own.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.store.dialect() {
            Dialect::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Dialect::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Dialect::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    /// Runs one statement over a connection of its own.
    pub async fn exec(&self, sql: &str) {
        use sqlx::Executor;
        match self.store.dialect() {
            Dialect::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                c.execute(sql).await.unwrap();
            }
            Dialect::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                c.execute(sql).await.unwrap();
            }
            Dialect::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                c.execute(sql).await.unwrap();
            }
        }
    }
}

/// Runs `test` once per backend, each time on a fresh database that is dropped
/// afterwards — also when the test panics. Unreachable servers are skipped
/// with a notice, or fail the test when `CI` is set.
pub async fn each_store<F, Fut>(test: F)
where
    F: Fn(Target) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
        let Some(db) = TestDb::create(dialect).await else {
            continue;
        };
        eprintln!(
            "-- running against {dialect} ({})",
            db.target.store.redacted_url()
        );
        let result = tokio::spawn(test(db.target.clone())).await;
        db.destroy().await;
        if let Err(error) = result {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("{dialect} test task failed: {error}"),
            }
        }
    }
}

/// Skips (returns `None`) or fails, depending on `CI`, when a server is down.
fn unreachable(what: &str, detail: &str) -> Option<TestDb> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is unreachable and CI is set, so this test cannot be skipped: {detail}");
    }
    eprintln!("notice: {what} is unreachable, skipping it ({detail})");
    None
}

struct TestDb {
    target: Target,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(TempDir),
    Server { server: String, name: String },
}

impl TestDb {
    async fn create(dialect: Dialect) -> Option<Self> {
        match dialect {
            Dialect::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/orch.db", dir.path().display());
                let store = Store::connect(&url).await.unwrap();
                Some(Self {
                    target: Target { store, url },
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            Dialect::Postgres | Dialect::MySql => {
                let (env, defaults) = match dialect {
                    Dialect::Postgres => (POSTGRES_ENV, POSTGRES_DEFAULTS),
                    _ => (MYSQL_ENV, MYSQL_DEFAULTS),
                };
                let candidates = match std::env::var(env) {
                    Ok(url) => vec![url],
                    Err(_) => defaults.iter().map(|s| (*s).to_owned()).collect(),
                };
                let mut failures = Vec::new();
                for server in candidates {
                    let name = format!("orch_test_{:016x}", RandomState::new().hash_one(0u8));
                    match admin_execute(dialect, &server, &format!("CREATE DATABASE {name}")).await
                    {
                        Ok(()) => {
                            let url = format!("{server}/{name}");
                            let store = Store::connect(&url).await.unwrap();
                            return Some(Self {
                                target: Target { store, url },
                                cleanup: Cleanup::Server { server, name },
                            });
                        }
                        Err(error) => failures.push(format!(
                            "{}/{ADMIN_DB}: {error}",
                            orch_store::redact_url(&server)
                        )),
                    }
                }
                unreachable(
                    &format!("{dialect} (set {env} to override)"),
                    &failures.join("; "),
                )
            }
        }
    }

    async fn destroy(self) {
        self.target.store.close().await;
        match self.cleanup {
            Cleanup::Sqlite(dir) => drop(dir),
            Cleanup::Server { server, name } => {
                let dialect = self.target.store.dialect();
                let sql = match dialect {
                    Dialect::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                if let Err(error) = admin_execute(dialect, &server, &sql).await {
                    eprintln!("warning: could not drop test database {name}: {error}");
                }
            }
        }
    }
}

/// Runs one statement on the server's admin database (test-generated DDL only).
async fn admin_execute(dialect: Dialect, server: &str, sql: &str) -> Result<(), String> {
    let url = format!("{server}/{ADMIN_DB}");
    let work = async {
        match dialect {
            Dialect::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
            _ => {
                let mut conn = sqlx::MySqlConnection::connect(&url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), work).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 10 s".to_owned()),
    }
}

/// A local port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A listener that completes TCP handshakes (the kernel does) but never
/// answers: a database that hangs. Keep it alive for the test's duration.
pub fn silent_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A record whose fields vary with `i`; `request_id` sorts in push order.
pub fn record(i: u32) -> RequestLogRecord {
    let outcome = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Cancelled,
        Outcome::Partial,
    ][i as usize % 4];
    let some = i.is_multiple_of(2);
    RequestLogRecord {
        ts_ms: 1_750_000_000_000 + i64::from(i),
        request_id: format!("req-{i:06}"),
        ingress_dialect: ["openai", "anthropic", "gemini"][i as usize % 3].to_owned(),
        requested_model: if i.is_multiple_of(5) {
            "модель-🚀".to_owned()
        } else {
            format!("gpt-{}", i % 7)
        },
        provider: some.then(|| "openai-main".to_owned()),
        upstream_model: some.then(|| format!("gpt-4o-{i}")),
        plugin: some.then(|| "openai@0.1.0".to_owned()),
        status: if outcome == Outcome::Error { 502 } else { 200 },
        error_class: (outcome == Outcome::Error).then(|| "upstream_5xx".to_owned()),
        attempts: i % 4,
        latency_us: 1_000 + u64::from(i) * 17,
        ttft_us: some.then_some(250 + u64::from(i)),
        input_tokens: some.then_some(i * 3),
        output_tokens: i.is_multiple_of(3).then_some(i * 5),
        cached_tokens: i.is_multiple_of(4).then_some(i),
        streamed: i % 3 == 1,
        outcome,
        client_key_id: i.is_multiple_of(3).then_some(i64::from(i % 11) + 1),
    }
}

/// Rows in the store, oldest request id first.
pub async fn stored_sorted(store: &Store) -> Vec<RequestLogRecord> {
    let mut rows = store.recent_request_logs(u32::MAX).await.unwrap();
    rows.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    rows
}
