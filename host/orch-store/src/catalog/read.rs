//! Reading the catalogue: the snapshot, the revision, audit records and spend.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Pool, QueryBuilder, Row, Type};

use super::driver::Driver;
use super::rows::{
    AuditQuery, AuditRow, ClientKeyRow, KeySecret, ModelRow, ProviderKeyRow, ProviderRow, Snapshot,
    TargetRow,
};
use crate::error::StoreError;

const SELECT_PROVIDERS: &str = "SELECT id, name, adapter, base_url, options_json, key_strategy, \
     error_matchers_json, probe_interval_s, enabled, managed_by, created_ms, updated_ms \
     FROM providers";

const SELECT_PROVIDER_KEYS: &str = "SELECT k.id, p.name AS provider, k.position, k.label, \
     k.env_ref, k.sealed, k.key_id, k.masked, k.fingerprint, k.enabled, k.created_ms \
     FROM provider_keys k JOIN providers p ON p.id = k.provider_id";

const SELECT_MODELS: &str = "SELECT id, name, aliases_json, strategy, session_header, \
     max_attempts, enabled, managed_by, created_ms, updated_ms FROM models";

const SELECT_TARGETS: &str = "SELECT t.model_id, t.id, t.position, p.name AS provider, \
     t.upstream_model, t.weight, t.priority, t.overrides_json, t.headers_json, \
     t.capabilities_json, t.timeout_ms, t.ttft_timeout_ms, t.enabled \
     FROM targets t JOIN providers p ON p.id = t.provider_id ORDER BY t.model_id, t.position";

const SELECT_CLIENT_KEYS: &str = "SELECT id, name, prefix, hash, policy_json, expires_ms, \
     enabled, capture_bodies, metadata_json, created_ms, updated_ms FROM client_keys";

const SELECT_AUDIT: &str = "SELECT id, ts_ms, actor, action, entity, entity_name, detail_json \
     FROM audit_log WHERE ts_ms >= ";

const SELECT_SPEND: &str =
    "SELECT client_key_id, period_start_ms, tokens FROM client_key_spend WHERE period_start_ms >= ";

/// Catalogue queries over one connection (or transaction) of driver `DB`.
pub(super) struct Reader<'c, DB: Database> {
    conn: &'c mut DB::Connection,
}

impl<'c, DB> Reader<'c, DB>
where
    DB: Driver,
    for<'a> DB::Arguments<'a>: Default,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i32: Decode<'a, DB> + Type<DB>,
    for<'a> bool: Decode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Vec<u8>: Decode<'a, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// Reads the whole catalogue in one snapshot transaction.
    pub(super) async fn snapshot(pool: &Pool<DB>) -> Result<Snapshot, StoreError> {
        let mut tx = pool.begin_with(DB::BEGIN_SNAPSHOT).await?;
        let snapshot = Reader { conn: &mut *tx }.read_everything().await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    /// The current catalogue revision.
    pub(super) async fn revision(pool: &Pool<DB>) -> Result<i64, StoreError> {
        let mut conn = pool.acquire().await?;
        Reader { conn: &mut *conn }.read_revision().await
    }

    async fn read_revision(&mut self) -> Result<i64, StoreError> {
        current_revision::<DB>(&mut *self.conn).await
    }

    /// Every row `sql` selects.
    async fn rows(&mut self, sql: &'static str) -> Result<Vec<DB::Row>, StoreError> {
        DB::fetch_all(&mut *self.conn, QueryBuilder::new(sql)).await
    }

    async fn read_everything(&mut self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            revision: self.read_revision().await?,
            providers: self.providers().await?,
            keys: self.provider_keys().await?,
            models: self.models().await?,
            client_keys: self.client_keys().await?,
        })
    }

    async fn providers(&mut self) -> Result<Vec<ProviderRow>, StoreError> {
        let rows = self.rows(SELECT_PROVIDERS).await?;
        let mut providers = rows
            .iter()
            .map(Self::provider)
            .collect::<Result<Vec<_>, _>>()?;
        providers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(providers)
    }

    async fn provider_keys(&mut self) -> Result<Vec<ProviderKeyRow>, StoreError> {
        let rows = self.rows(SELECT_PROVIDER_KEYS).await?;
        let mut keys = rows
            .iter()
            .map(Self::provider_key)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| (&a.provider, a.position).cmp(&(&b.provider, b.position)));
        Ok(keys)
    }

    async fn models(&mut self) -> Result<Vec<ModelRow>, StoreError> {
        let mut targets = self.targets_by_model().await?;
        let rows = self.rows(SELECT_MODELS).await?;
        let mut models = rows
            .iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                Self::model(row, targets.remove(&id).unwrap_or_default())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    /// Every target, grouped by model id, each group in position order.
    async fn targets_by_model(&mut self) -> Result<HashMap<i64, Vec<TargetRow>>, StoreError> {
        let rows = self.rows(SELECT_TARGETS).await?;
        let mut by_model: HashMap<i64, Vec<TargetRow>> = HashMap::new();
        for row in &rows {
            let model_id: i64 = row.try_get("model_id")?;
            by_model
                .entry(model_id)
                .or_default()
                .push(Self::target(row)?);
        }
        Ok(by_model)
    }

    async fn client_keys(&mut self) -> Result<Vec<ClientKeyRow>, StoreError> {
        let rows = self.rows(SELECT_CLIENT_KEYS).await?;
        let mut keys = rows
            .iter()
            .map(Self::client_key)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        Ok(keys)
    }

    /// The audit records `query` selects, newest (highest id) first.
    pub(super) async fn audit(
        pool: &Pool<DB>,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut select = QueryBuilder::new(SELECT_AUDIT);
        select
            .push_bind(query.since_ms)
            .push(" AND ts_ms < ")
            .push_bind(query.until_ms);
        if let Some(entity) = &query.entity {
            select.push(" AND entity = ").push_bind(entity.clone());
        }
        if let Some(before_id) = query.before_id {
            select.push(" AND id < ").push_bind(before_id);
        }
        select
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let mut conn = pool.acquire().await?;
        let rows = DB::fetch_all(&mut *conn, select).await?;
        rows.iter().map(Self::audit_row).collect()
    }

    /// Spend rows `(client_key_id, period_start_ms, tokens)` of periods
    /// starting at or after `since_ms`, by key then period.
    pub(super) async fn spend_since(
        pool: &Pool<DB>,
        since_ms: i64,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let mut select = QueryBuilder::new(SELECT_SPEND);
        select
            .push_bind(since_ms)
            .push(" ORDER BY client_key_id, period_start_ms");
        let mut conn = pool.acquire().await?;
        let rows = DB::fetch_all(&mut *conn, select).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("client_key_id")?,
                    row.try_get("period_start_ms")?,
                    row.try_get("tokens")?,
                ))
            })
            .collect()
    }

    fn provider(row: &DB::Row) -> Result<ProviderRow, StoreError> {
        Ok(ProviderRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            adapter: row.try_get("adapter")?,
            base_url: row.try_get("base_url")?,
            options_json: row.try_get("options_json")?,
            key_strategy: row.try_get("key_strategy")?,
            error_matchers_json: row.try_get("error_matchers_json")?,
            probe_interval_s: row.try_get("probe_interval_s")?,
            enabled: row.try_get("enabled")?,
            managed_by: row.try_get::<String, _>("managed_by")?.parse()?,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
        })
    }

    fn provider_key(row: &DB::Row) -> Result<ProviderKeyRow, StoreError> {
        Ok(ProviderKeyRow {
            id: row.try_get("id")?,
            provider: row.try_get("provider")?,
            position: row.try_get("position")?,
            label: row.try_get("label")?,
            secret: key_secret(
                row.try_get("env_ref")?,
                row.try_get("key_id")?,
                row.try_get("sealed")?,
            )?,
            masked: row.try_get("masked")?,
            fingerprint: row.try_get("fingerprint")?,
            enabled: row.try_get("enabled")?,
            created_ms: row.try_get("created_ms")?,
        })
    }

    fn model(row: &DB::Row, targets: Vec<TargetRow>) -> Result<ModelRow, StoreError> {
        Ok(ModelRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            aliases_json: row.try_get("aliases_json")?,
            strategy: row.try_get("strategy")?,
            session_header: row.try_get("session_header")?,
            max_attempts: row.try_get("max_attempts")?,
            enabled: row.try_get("enabled")?,
            managed_by: row.try_get::<String, _>("managed_by")?.parse()?,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
            targets,
        })
    }

    fn target(row: &DB::Row) -> Result<TargetRow, StoreError> {
        Ok(TargetRow {
            id: row.try_get("id")?,
            position: row.try_get("position")?,
            provider: row.try_get("provider")?,
            upstream_model: row.try_get("upstream_model")?,
            weight: row.try_get("weight")?,
            priority: row.try_get("priority")?,
            overrides_json: row.try_get("overrides_json")?,
            headers_json: row.try_get("headers_json")?,
            capabilities_json: row.try_get("capabilities_json")?,
            timeout_ms: row.try_get("timeout_ms")?,
            ttft_timeout_ms: row.try_get("ttft_timeout_ms")?,
            enabled: row.try_get("enabled")?,
        })
    }

    fn client_key(row: &DB::Row) -> Result<ClientKeyRow, StoreError> {
        Ok(ClientKeyRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            hash: row.try_get("hash")?,
            policy_json: row.try_get("policy_json")?,
            expires_ms: row.try_get("expires_ms")?,
            enabled: row.try_get("enabled")?,
            capture_bodies: row.try_get("capture_bodies")?,
            metadata_json: row.try_get("metadata_json")?,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
        })
    }

    fn audit_row(row: &DB::Row) -> Result<AuditRow, StoreError> {
        Ok(AuditRow {
            id: row.try_get("id")?,
            ts_ms: row.try_get("ts_ms")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            entity: row.try_get("entity")?,
            entity_name: row.try_get("entity_name")?,
            detail_json: row.try_get("detail_json")?,
        })
    }
}

/// The current catalogue revision, read over `conn` (the table holds exactly one row).
pub(super) async fn current_revision<DB>(conn: &mut DB::Connection) -> Result<i64, StoreError>
where
    DB: Driver,
    for<'a> DB::Arguments<'a>: Default,
    for<'a> i64: Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let select = QueryBuilder::new("SELECT revision FROM config_revision WHERE id = 1");
    let rows = DB::fetch_all(conn, select).await?;
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    Ok(row.try_get(0)?)
}

/// Rebuilds a key's secret from its three columns, exactly one of `env_ref`
/// and `sealed` being set (the schema's CHECK constraints ensure it).
fn key_secret(
    env_ref: Option<String>,
    key_id: Option<String>,
    sealed: Option<Vec<u8>>,
) -> Result<KeySecret, StoreError> {
    match (env_ref, key_id, sealed) {
        (Some(reference), None, None) => Ok(KeySecret::Env(reference)),
        (None, Some(key_id), Some(blob)) => Ok(KeySecret::Sealed { key_id, blob }),
        (env_ref, key_id, sealed) => Err(StoreError::InvalidValue {
            column: "provider_keys.env_ref/key_id/sealed",
            value: format!(
                "env_ref {}, key_id {}, sealed {}",
                presence(env_ref.is_some()),
                presence(key_id.is_some()),
                presence(sealed.is_some())
            ),
        }),
    }
}

fn presence(set: bool) -> &'static str {
    if set { "set" } else { "NULL" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_secret_needs_exactly_one_source() {
        assert_eq!(
            key_secret(Some("env:K".into()), None, None).ok(),
            Some(KeySecret::Env("env:K".into()))
        );
        assert_eq!(
            key_secret(None, Some("m1".into()), Some(vec![1, 2])).ok(),
            Some(KeySecret::Sealed {
                key_id: "m1".into(),
                blob: vec![1, 2]
            })
        );
        for (env_ref, key_id, sealed) in [
            (None, None, None),
            (Some("env:K".to_owned()), None, Some(vec![1])),
            (None, None, Some(vec![1])),
            (None, Some("m1".to_owned()), None),
        ] {
            let error = key_secret(env_ref, key_id, sealed).err();
            assert!(
                matches!(error, Some(StoreError::InvalidValue { .. })),
                "{error:?}"
            );
        }
    }
}
