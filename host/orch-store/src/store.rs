//! [`Store`]: one connection pool for whichever database the URL names, plus the
//! embedded migrations for that dialect.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::database_url::{Dialect, redact_url};
use crate::error::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/mysql");

/// Pool size when [`StoreOptions::max_connections`] is `None`: SQLite serialises
/// writers anyway, so a few connections (readers run in parallel under WAL) suffice.
const SQLITE_DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// Pool size for PostgreSQL and MySQL when [`StoreOptions::max_connections`] is `None`.
const SERVER_DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// Tuning for [`Store::connect_with`] and [`Store::connect_lazy`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Largest pool size; `None` picks 4 for SQLite and 8 for the servers.
    pub max_connections: Option<u32>,
    /// How long getting a connection may take, including connecting (and
    /// retrying a refused connection) when the pool has none idle.
    pub acquire_timeout: Duration,
    /// How long a SQLite statement waits for another connection's write lock.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// A handle to the gateway's database: SQLite, PostgreSQL or MySQL/MariaDB.
///
/// Cheap to clone (the pools are reference-counted). Query helpers live next to
/// the table they serve, e.g. [`crate::request_log`].
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) backend: Backend,
    /// The URL with its password replaced by `***`.
    url: String,
}

/// The pool for the dialect in use.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Evaluates `$body` with `$pool` bound to the concrete pool of `$backend`.
///
/// The body is expanded once per dialect, so it type-checks against each
/// driver separately; this is how one query helper serves all three databases.
macro_rules! with_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
            $crate::store::Backend::MySql($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Store {
    /// Connects with default [`StoreOptions`] and applies pending migrations.
    ///
    /// `url` is `sqlite://path/to/file.db` (the file and its parent directory
    /// are created if missing), `postgres://...` or `mysql://...` (MariaDB too).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Connects (failing if the database is unreachable within
    /// `options.acquire_timeout`) and applies pending migrations.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let redacted = redact_url(url);
        let connect_error = |source| StoreError::Connect {
            url: redacted.clone(),
            source,
        };
        let backend = match PoolPlan::new(url, options)? {
            PoolPlan::Sqlite(pool, connect) => {
                Backend::Sqlite(pool.connect_with(connect).await.map_err(connect_error)?)
            }
            PoolPlan::Postgres(pool, connect) => {
                Backend::Postgres(pool.connect_with(connect).await.map_err(connect_error)?)
            }
            PoolPlan::MySql(pool, connect) => {
                Backend::MySql(pool.connect_with(connect).await.map_err(connect_error)?)
            }
        };
        let store = Self {
            backend,
            url: redacted,
        };
        store.migrate().await?;
        tracing::info!(db.url = %store.url, db.system = %store.dialect(), "database ready");
        Ok(store)
    }

    /// Builds the pool without connecting or migrating; connections are opened
    /// on first use. For a database that may not be up yet: the caller runs
    /// [`Store::migrate`] once it is. (The SQLite parent directory is still
    /// created here.)
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime: the pool spawns its maintenance task here.
    pub fn connect_lazy(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let backend = match PoolPlan::new(url, options)? {
            PoolPlan::Sqlite(pool, connect) => Backend::Sqlite(pool.connect_lazy_with(connect)),
            PoolPlan::Postgres(pool, connect) => Backend::Postgres(pool.connect_lazy_with(connect)),
            PoolPlan::MySql(pool, connect) => Backend::MySql(pool.connect_lazy_with(connect)),
        };
        Ok(Self {
            backend,
            url: redact_url(url),
        })
    }

    /// Applies the embedded migrations that have not run yet; a no-op when the
    /// schema is current. Safe to run concurrently from several processes on
    /// PostgreSQL and MySQL (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
            Backend::MySql(pool) => MYSQL_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Round-trips a trivial statement, proving a connection can be had and used.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(&self.backend, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Whether every migration embedded in this binary has been applied;
    /// one cheap query, so it also proves the database answers (readiness).
    pub async fn schema_current(&self) -> Result<bool, StoreError> {
        let migrator = match &self.backend {
            Backend::Sqlite(_) => &SQLITE_MIGRATIONS,
            Backend::Postgres(_) => &POSTGRES_MIGRATIONS,
            Backend::MySql(_) => &MYSQL_MIGRATIONS,
        };
        let latest = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .max();
        let applied: Option<i64> = with_pool!(&self.backend, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
        });
        Ok(applied >= latest)
    }

    /// Which database this store talks to.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
            Backend::MySql(_) => Dialect::MySql,
        }
    }

    /// The connection URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// Closes every connection and makes further queries fail; waits for
    /// connections in use to be returned. Affects all clones.
    pub async fn close(&self) {
        with_pool!(&self.backend, pool => pool.close().await);
    }
}

/// Pool and connect options for one dialect, ready to connect eagerly or lazily.
enum PoolPlan {
    Sqlite(SqlitePoolOptions, SqliteConnectOptions),
    Postgres(PgPoolOptions, PgConnectOptions),
    MySql(MySqlPoolOptions, MySqlConnectOptions),
}

impl PoolPlan {
    fn new(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let invalid = |source| StoreError::InvalidUrl {
            url: redact_url(url),
            source,
        };
        let dialect = Dialect::from_url(url)?;
        let max_connections = options.max_connections.unwrap_or(match dialect {
            Dialect::Sqlite => SQLITE_DEFAULT_MAX_CONNECTIONS,
            Dialect::Postgres | Dialect::MySql => SERVER_DEFAULT_MAX_CONNECTIONS,
        });
        Ok(match dialect {
            Dialect::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(invalid)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(options.sqlite_busy_timeout)
                    .foreign_keys(true);
                let mut pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(options.acquire_timeout);
                if is_sqlite_in_memory(url) {
                    // An in-memory database lives only as long as one of its
                    // connections: never let the pool retire the last one.
                    pool = pool.idle_timeout(None).max_lifetime(None);
                } else {
                    create_parent_dir(connect.get_filename())?;
                }
                Self::Sqlite(pool, connect)
            }
            Dialect::Postgres => Self::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(options.acquire_timeout),
                PgConnectOptions::from_str(url).map_err(invalid)?,
            ),
            Dialect::MySql => Self::MySql(
                MySqlPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(options.acquire_timeout),
                MySqlConnectOptions::from_str(url).map_err(invalid)?,
            ),
        })
    }
}

fn is_sqlite_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Creates the directory that will hold the SQLite file (`data/` for
/// `sqlite://data/x.db`); SQLite creates the file but not its directory.
fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_url_names_a_relative_directory() {
        let connect = SqliteConnectOptions::from_str("sqlite://data/x.db").unwrap();
        assert_eq!(connect.get_filename(), Path::new("data/x.db"));
        assert_eq!(connect.get_filename().parent(), Some(Path::new("data")));
    }

    #[tokio::test]
    async fn sqlite_parent_dir_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/data/nested/x.db", tmp.path().display());
        let _store = Store::connect_lazy(&url, &StoreOptions::default()).unwrap();
        assert!(tmp.path().join("data/nested").is_dir());
    }

    #[test]
    fn bare_file_name_needs_no_directory() {
        create_parent_dir(Path::new("x.db")).unwrap();
    }

    #[test]
    fn in_memory_urls_are_recognised() {
        assert!(is_sqlite_in_memory("sqlite::memory:"));
        assert!(is_sqlite_in_memory("sqlite://?mode=memory"));
        assert!(!is_sqlite_in_memory("sqlite://data/x.db"));
    }
}
