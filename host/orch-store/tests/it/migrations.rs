//! The embedded migrations: applied at connect, idempotent, schema as specified.

use orch_store::{Dialect, Store};

use crate::support::{Target, each_store};

/// Migrations per dialect: request log, catalogue, usage.
const MIGRATIONS: i64 = 3;

#[tokio::test]
async fn migrations_are_idempotent_on_fresh_db_and_reconnect() {
    each_store(|target: Target| async move {
        // `connect` already migrated the fresh database; running again is a no-op.
        target.store.migrate().await.unwrap();
        target.store.migrate().await.unwrap();
        target.store.ping().await.unwrap();
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
            MIGRATIONS
        );

        // A second process connecting to the migrated database.
        let again = Store::connect(&target.url).await.unwrap();
        again.ping().await.unwrap();
        assert_eq!(again.count_request_logs().await.unwrap(), 0);
        again.close().await;
        assert_eq!(
            target.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
            MIGRATIONS
        );
    })
    .await;
}

#[tokio::test]
async fn request_log_has_both_indexes() {
    each_store(|target: Target| async move {
        let sql = match target.store.dialect() {
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'request_log' \
                 AND name IN ('request_log_ts_ms_idx', 'request_log_model_ts_ms_idx')"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'request_log' \
                 AND indexname IN ('request_log_ts_ms_idx', 'request_log_model_ts_ms_idx')"
            }
            Dialect::MySql => {
                "SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND table_name = 'request_log' \
                 AND index_name IN ('request_log_ts_ms_idx', 'request_log_model_ts_ms_idx')"
            }
        };
        assert_eq!(target.scalar(sql).await, 2);

        // The composite index leads with requested_model, then ts_ms.
        let sql = match target.store.dialect() {
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM pragma_index_info('request_log_model_ts_ms_idx') \
                 WHERE (seqno = 0 AND name = 'requested_model') OR (seqno = 1 AND name = 'ts_ms')"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'request_log_model_ts_ms_idx' \
                 AND indexdef LIKE '%(requested_model, ts_ms)'"
            }
            Dialect::MySql => {
                "SELECT COUNT(*) FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND index_name = 'request_log_model_ts_ms_idx' \
                 AND ((seq_in_index = 1 AND column_name = 'requested_model') \
                   OR (seq_in_index = 2 AND column_name = 'ts_ms'))"
            }
        };
        let expected = if target.store.dialect() == Dialect::Postgres { 1 } else { 2 };
        assert_eq!(target.scalar(sql).await, expected);
    })
    .await;
}

#[tokio::test]
async fn schema_current_tells_whether_every_migration_ran() {
    each_store(|target: Target| async move {
        assert!(target.store.schema_current().await.unwrap());
        // A database one migration behind this binary (as if restored from
        // an older backup).
        let latest = target
            .scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .await;
        target
            .exec(&format!(
                "DELETE FROM _sqlx_migrations WHERE version = {latest}"
            ))
            .await;
        assert!(!target.store.schema_current().await.unwrap());
    })
    .await;
}
