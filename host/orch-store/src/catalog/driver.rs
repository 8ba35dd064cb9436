//! The few things the catalogue's queries do differently per database.

use std::future::Future;

use sqlx::mysql::{MySql, MySqlConnection, MySqlRow};
use sqlx::postgres::{PgConnection, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteRow};
use sqlx::{Database, QueryBuilder};

use crate::database_url::Dialect;
use crate::error::StoreError;

/// A database driver the catalogue runs on: `sqlx::Database` plus the
/// statements that differ between dialects, and running built queries.
pub(crate) trait Driver: Database {
    /// The dialect this driver speaks.
    const DIALECT: Dialect;

    /// Starts a transaction whose reads all see one snapshot of the database.
    const BEGIN_SNAPSHOT: &'static str;

    /// Starts a transaction that writes the catalogue.
    const BEGIN_WRITE: &'static str;

    /// Follows `INSERT INTO client_key_spend ... SELECT ...`: when the row
    /// exists, adds the token count bound right after this clause to it.
    const ADD_TO_EXISTING_SPEND: &'static str;

    /// Runs `statement`; returns how many rows it matched.
    fn execute(
        conn: &mut Self::Connection,
        statement: QueryBuilder<'_, Self>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Runs `query`; returns every row.
    fn fetch_all(
        conn: &mut Self::Connection,
        query: QueryBuilder<'_, Self>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send;

    /// Runs `insert`, an `INSERT` of one row into a table with an `id`
    /// identity column, and returns the id of the row it created.
    fn insert_returning_id(
        conn: &mut Self::Connection,
        insert: QueryBuilder<'_, Self>,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
}

// The statements run here, not in the generic code: `build()` ties the query
// to the builder's argument lifetime, which only concrete argument types (being
// covariant in it) let end before the builder is dropped.

/// `ON CONFLICT` form of [`Driver::ADD_TO_EXISTING_SPEND`], shared by SQLite and PostgreSQL.
const ON_CONFLICT_ADD_SPEND: &str = " ON CONFLICT (client_key_id, period_start_ms) \
     DO UPDATE SET tokens = client_key_spend.tokens + ";

impl Driver for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
    /// A deferred transaction: under WAL its first read fixes the snapshot.
    const BEGIN_SNAPSHOT: &'static str = "BEGIN";
    /// Takes the write lock at once: a deferred transaction that reads first
    /// would fail with `SQLITE_BUSY` instead of waiting when it later writes.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const ADD_TO_EXISTING_SPEND: &'static str = ON_CONFLICT_ADD_SPEND;

    async fn execute(
        conn: &mut SqliteConnection,
        mut statement: QueryBuilder<'_, Sqlite>,
    ) -> Result<u64, StoreError> {
        Ok(statement.build().execute(conn).await?.rows_affected())
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        mut query: QueryBuilder<'_, Sqlite>,
    ) -> Result<Vec<SqliteRow>, StoreError> {
        Ok(query.build().fetch_all(conn).await?)
    }

    async fn insert_returning_id(
        conn: &mut SqliteConnection,
        mut insert: QueryBuilder<'_, Sqlite>,
    ) -> Result<i64, StoreError> {
        Ok(insert.build().execute(conn).await?.last_insert_rowid())
    }
}

impl Driver for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;
    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const ADD_TO_EXISTING_SPEND: &'static str = ON_CONFLICT_ADD_SPEND;

    async fn execute(
        conn: &mut PgConnection,
        mut statement: QueryBuilder<'_, Postgres>,
    ) -> Result<u64, StoreError> {
        Ok(statement.build().execute(conn).await?.rows_affected())
    }

    async fn fetch_all(
        conn: &mut PgConnection,
        mut query: QueryBuilder<'_, Postgres>,
    ) -> Result<Vec<PgRow>, StoreError> {
        Ok(query.build().fetch_all(conn).await?)
    }

    async fn insert_returning_id(
        conn: &mut PgConnection,
        mut insert: QueryBuilder<'_, Postgres>,
    ) -> Result<i64, StoreError> {
        insert.push(" RETURNING id");
        Ok(insert.build_query_scalar().fetch_one(conn).await?)
    }
}

impl Driver for MySql {
    const DIALECT: Dialect = Dialect::MySql;
    const BEGIN_SNAPSHOT: &'static str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const ADD_TO_EXISTING_SPEND: &'static str = " ON DUPLICATE KEY UPDATE tokens = tokens + ";

    /// Matched rows, not changed ones: sqlx connects with `CLIENT_FOUND_ROWS`.
    async fn execute(
        conn: &mut MySqlConnection,
        mut statement: QueryBuilder<'_, MySql>,
    ) -> Result<u64, StoreError> {
        Ok(statement.build().execute(conn).await?.rows_affected())
    }

    async fn fetch_all(
        conn: &mut MySqlConnection,
        mut query: QueryBuilder<'_, MySql>,
    ) -> Result<Vec<MySqlRow>, StoreError> {
        Ok(query.build().fetch_all(conn).await?)
    }

    async fn insert_returning_id(
        conn: &mut MySqlConnection,
        mut insert: QueryBuilder<'_, MySql>,
    ) -> Result<i64, StoreError> {
        let id = insert.build().execute(conn).await?.last_insert_id();
        i64::try_from(id).map_err(|_| StoreError::InvalidValue {
            column: "id",
            value: id.to_string(),
        })
    }
}
