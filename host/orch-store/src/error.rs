//! The persistence layer's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in `orch-store`.
///
/// Messages never contain a connection URL's password: URLs are shown only in
/// their redacted form (see [`crate::redact_url`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL's scheme names no supported database.
    #[error(
        "unsupported database URL scheme `{scheme}` (expected sqlite:, postgres:, postgresql:, mysql: or mariadb:)"
    )]
    UnsupportedScheme {
        /// The scheme as written, or `<none>` when the URL has none.
        scheme: String,
    },

    /// The URL has a supported scheme but could not be parsed into connect options.
    #[error("invalid database URL `{url}`")]
    InvalidUrl {
        /// The URL with its password replaced by `***`.
        url: String,
        /// What the driver reported.
        #[source]
        source: sqlx::Error,
    },

    /// The parent directory of a SQLite database file could not be created.
    #[error("cannot create directory `{}` for the SQLite database", path.display())]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// What the filesystem reported.
        #[source]
        source: std::io::Error,
    },

    /// The first connection to the database failed.
    #[error("cannot connect to database `{url}`")]
    Connect {
        /// The URL with its password replaced by `***`.
        url: String,
        /// What the driver reported.
        #[source]
        source: sqlx::Error,
    },

    /// Applying the embedded migrations failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A statement failed (including failing to get a connection from the pool).
    #[error("database query failed")]
    Query(#[from] sqlx::Error),

    /// A statement did not finish within its time limit.
    #[error("database write did not finish within {0:?}")]
    Timeout(Duration),

    /// A stored value cannot be represented by the Rust type it maps to.
    #[error("column `{column}` holds an invalid value `{value}`")]
    InvalidValue {
        /// The column that was read.
        column: &'static str,
        /// The offending value, rendered as text.
        value: String,
    },

    /// A catalogue change names a row that does not exist.
    #[error("{entity} `{name}` does not exist")]
    NotFound {
        /// Kind of row, e.g. `provider`.
        entity: &'static str,
        /// Its name (for client keys, the id).
        name: String,
    },

    /// A catalogue change would store a second row with the same unique key.
    #[error("{entity} `{name}` already exists")]
    Conflict {
        /// Kind of row, e.g. `client key`.
        entity: &'static str,
        /// The row's name (for provider keys, the masked key).
        name: String,
    },

    /// A catalogue row cannot be deleted while another row refers to it.
    #[error("{entity} `{name}` is still used by `{by}`")]
    InUse {
        /// Kind of row, e.g. `provider`.
        entity: &'static str,
        /// Its name.
        name: String,
        /// Name of one row that refers to it (for a provider: a model routing to it).
        by: String,
    },
}

/// Displays an error followed by each of its sources, `outer: inner: innermost`,
/// for log lines (the `Display` of [`StoreError`] alone hides the driver's reason).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
