//! Writing the catalogue: batches of changes with their audit records, and spend.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Pool, QueryBuilder, Row, Type};

use super::driver::Driver;
use super::read::current_revision;
use super::rows::{
    Applied, AuditEntry, Change, ClientKeyRow, KeySecret, ModelRow, ProviderKeyRow, ProviderRow,
    TargetRow,
};
use crate::error::StoreError;

/// Bind parameters per audit row: every column except `id`.
const AUDIT_COLUMNS: usize = 6;

/// A table whose rows are found by their unique name.
#[derive(Clone, Copy)]
enum Named {
    Provider,
    Model,
}

impl Named {
    fn select_id(self) -> &'static str {
        match self {
            Self::Provider => "SELECT id FROM providers WHERE name = ",
            Self::Model => "SELECT id FROM models WHERE name = ",
        }
    }

    fn entity(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Model => "model",
        }
    }
}

/// Catalogue writes inside one transaction of driver `DB`, stamped `now_ms`.
pub(super) struct Writer<'c, DB: Database> {
    conn: &'c mut DB::Connection,
    now_ms: i64,
}

impl<'c, DB> Writer<'c, DB>
where
    DB: Driver,
    for<'a> DB::Arguments<'a>: Default,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i32: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Vec<u8>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<i32>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<Vec<u8>>: Encode<'a, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Applies `changes` in order and writes `audit`, all in one transaction;
    /// bumps the revision first when there is any change.
    ///
    /// Bumping first locks the revision row (on SQLite, `BEGIN IMMEDIATE`
    /// takes the database's write lock), so concurrent batches run one after
    /// the other and the look-ups by name below never race another writer.
    pub(super) async fn apply(
        pool: &Pool<DB>,
        changes: &[Change],
        audit: &[AuditEntry],
        now_ms: i64,
    ) -> Result<Applied, StoreError> {
        let mut tx = pool.begin_with(DB::BEGIN_WRITE).await?;
        let mut writer = Writer {
            conn: &mut *tx,
            now_ms,
        };
        if !changes.is_empty() {
            writer.bump_revision().await?;
        }
        let mut ids = Vec::with_capacity(changes.len());
        for change in changes {
            ids.push(writer.apply_change(change).await?);
        }
        writer.insert_audit(audit).await?;
        let revision = writer.revision().await?;
        tx.commit().await?;
        Ok(Applied { revision, ids })
    }

    /// Adds `(client_key_id, period_start_ms, tokens)` rows to the stored spend
    /// in one transaction. Rows of keys that no longer exist are skipped.
    ///
    /// Rows are written in key order, so concurrent writers take their row
    /// locks in the same order rather than deadlocking on each other.
    pub(super) async fn add_spend(
        pool: &Pool<DB>,
        rows: &[(i64, i64, i64)],
    ) -> Result<(), StoreError> {
        let mut rows = rows.to_vec();
        rows.sort_unstable();
        let mut tx = pool.begin_with(DB::BEGIN_WRITE).await?;
        for (client_key_id, period_start_ms, tokens) in rows {
            let mut upsert = QueryBuilder::new(
                "INSERT INTO client_key_spend (client_key_id, period_start_ms, tokens) SELECT id, ",
            );
            upsert
                .push_bind(period_start_ms)
                .push(", ")
                .push_bind(tokens)
                .push(" FROM client_keys WHERE id = ")
                .push_bind(client_key_id)
                .push(DB::ADD_TO_EXISTING_SPEND)
                .push_bind(tokens);
            DB::execute(&mut tx, upsert).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn bump_revision(&mut self) -> Result<(), StoreError> {
        let mut update =
            QueryBuilder::new("UPDATE config_revision SET revision = revision + 1, updated_ms = ");
        update.push_bind(self.now_ms).push(" WHERE id = 1");
        DB::execute(&mut *self.conn, update).await?;
        Ok(())
    }

    async fn revision(&mut self) -> Result<i64, StoreError> {
        current_revision::<DB>(&mut *self.conn).await
    }

    /// Applies one change; returns the id of the row it is about.
    async fn apply_change(&mut self, change: &Change) -> Result<i64, StoreError> {
        match change {
            Change::UpsertProvider(provider) => self.upsert_provider(provider).await,
            Change::DeleteProvider(name) => self.delete_provider(name).await,
            Change::ReplaceProviderKeys { provider, keys } => {
                self.replace_provider_keys(provider, keys).await
            }
            Change::UpsertModel(model) => self.upsert_model(model).await,
            Change::DeleteModel(name) => self.delete_model(name).await,
            Change::CreateClientKey(key) => self.create_client_key(key).await,
            Change::UpdateClientKey(key) => self.update_client_key(key).await,
            Change::DeleteClientKey(id) => self.delete_client_key(*id).await,
        }
    }

    async fn find(&mut self, table: Named, name: &str) -> Result<Option<i64>, StoreError> {
        let mut select = QueryBuilder::new(table.select_id());
        select.push_bind(name.to_owned());
        self.first_column(select).await
    }

    /// Like [`Self::find`], but a missing row is [`StoreError::NotFound`].
    async fn require(&mut self, table: Named, name: &str) -> Result<i64, StoreError> {
        self.find(table, name)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                entity: table.entity(),
                name: name.to_owned(),
            })
    }

    async fn upsert_provider(&mut self, provider: &ProviderRow) -> Result<i64, StoreError> {
        match self.find(Named::Provider, &provider.name).await? {
            Some(id) => {
                self.update_provider(id, provider).await?;
                Ok(id)
            }
            None => self.insert_provider(provider).await,
        }
    }

    async fn insert_provider(&mut self, provider: &ProviderRow) -> Result<i64, StoreError> {
        let mut insert = QueryBuilder::new(
            "INSERT INTO providers (name, adapter, base_url, options_json, key_strategy, \
             error_matchers_json, probe_interval_s, enabled, managed_by, created_ms, updated_ms) ",
        );
        insert.push_values([provider], |mut row, provider| {
            row.push_bind(&provider.name)
                .push_bind(&provider.adapter)
                .push_bind(&provider.base_url)
                .push_bind(&provider.options_json)
                .push_bind(&provider.key_strategy)
                .push_bind(&provider.error_matchers_json)
                .push_bind(provider.probe_interval_s)
                .push_bind(provider.enabled)
                .push_bind(provider.managed_by.as_str().to_owned())
                .push_bind(self.now_ms)
                .push_bind(self.now_ms);
        });
        DB::insert_returning_id(&mut *self.conn, insert).await
    }

    async fn update_provider(&mut self, id: i64, provider: &ProviderRow) -> Result<(), StoreError> {
        let mut update = QueryBuilder::new("UPDATE providers SET adapter = ");
        update
            .push_bind(&provider.adapter)
            .push(", base_url = ")
            .push_bind(&provider.base_url)
            .push(", options_json = ")
            .push_bind(&provider.options_json)
            .push(", key_strategy = ")
            .push_bind(&provider.key_strategy)
            .push(", error_matchers_json = ")
            .push_bind(&provider.error_matchers_json)
            .push(", probe_interval_s = ")
            .push_bind(provider.probe_interval_s)
            .push(", enabled = ")
            .push_bind(provider.enabled)
            .push(", managed_by = ")
            .push_bind(provider.managed_by.as_str().to_owned())
            .push(", updated_ms = ")
            .push_bind(self.now_ms)
            .push(" WHERE id = ")
            .push_bind(id);
        DB::execute(&mut *self.conn, update).await?;
        Ok(())
    }

    /// Deletes the provider and its keys, unless a target still routes to it.
    async fn delete_provider(&mut self, name: &str) -> Result<i64, StoreError> {
        let id = self.require(Named::Provider, name).await?;
        if let Some(model) = self.model_routing_to(id).await? {
            return Err(StoreError::InUse {
                entity: Named::Provider.entity(),
                name: name.to_owned(),
                by: model,
            });
        }
        self.run_with_id("DELETE FROM providers WHERE id = ", id)
            .await?;
        Ok(id)
    }

    /// The name of one model with a target on provider `provider_id`, if any.
    async fn model_routing_to(&mut self, provider_id: i64) -> Result<Option<String>, StoreError> {
        let mut select = QueryBuilder::new(
            "SELECT m.name FROM targets t JOIN models m ON m.id = t.model_id WHERE t.provider_id = ",
        );
        select.push_bind(provider_id).push(" ORDER BY m.id LIMIT 1");
        self.first_column(select).await
    }

    /// The first column of the first row `select` returns, if any.
    async fn first_column<T>(
        &mut self,
        select: QueryBuilder<'_, DB>,
    ) -> Result<Option<T>, StoreError>
    where
        T: for<'a> Decode<'a, DB> + Type<DB>,
    {
        let rows = DB::fetch_all(&mut *self.conn, select).await?;
        Ok(rows.first().map(|row| row.try_get(0)).transpose()?)
    }

    async fn replace_provider_keys(
        &mut self,
        provider: &str,
        keys: &[ProviderKeyRow],
    ) -> Result<i64, StoreError> {
        let provider_id = self.require(Named::Provider, provider).await?;
        let created = self.key_creation_times(provider_id).await?;
        self.run_with_id(
            "DELETE FROM provider_keys WHERE provider_id = ",
            provider_id,
        )
        .await?;
        for key in in_position_order(keys, |key| key.position) {
            let created_ms = created
                .get(&key.fingerprint)
                .copied()
                .unwrap_or(self.now_ms);
            self.insert_provider_key(provider_id, key, created_ms)
                .await?;
        }
        Ok(provider_id)
    }

    /// `created_ms` of the provider's stored keys, by fingerprint.
    async fn key_creation_times(
        &mut self,
        provider_id: i64,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let mut select = QueryBuilder::new(
            "SELECT fingerprint, created_ms FROM provider_keys WHERE provider_id = ",
        );
        select.push_bind(provider_id);
        let rows = DB::fetch_all(&mut *self.conn, select).await?;
        let times = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(times)
    }

    async fn insert_provider_key(
        &mut self,
        provider_id: i64,
        key: &ProviderKeyRow,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        let mut insert = QueryBuilder::new(
            "INSERT INTO provider_keys (provider_id, position, label, env_ref, sealed, key_id, \
             masked, fingerprint, enabled, created_ms) ",
        );
        insert.push_values([key], |mut row, key| {
            let (env_ref, sealed, key_id) = secret_columns(&key.secret);
            row.push_bind(provider_id)
                .push_bind(key.position)
                .push_bind(&key.label)
                .push_bind(env_ref)
                .push_bind(sealed)
                .push_bind(key_id)
                .push_bind(&key.masked)
                .push_bind(&key.fingerprint)
                .push_bind(key.enabled)
                .push_bind(created_ms);
        });
        DB::execute(&mut *self.conn, insert)
            .await
            .map_err(conflict("provider key", &key.masked))?;
        Ok(())
    }

    async fn upsert_model(&mut self, model: &ModelRow) -> Result<i64, StoreError> {
        let id = match self.find(Named::Model, &model.name).await? {
            Some(id) => {
                self.update_model(id, model).await?;
                self.run_with_id("DELETE FROM targets WHERE model_id = ", id)
                    .await?;
                id
            }
            None => self.insert_model(model).await?,
        };
        for target in in_position_order(&model.targets, |target| target.position) {
            let provider_id = self.require(Named::Provider, &target.provider).await?;
            self.insert_target(id, provider_id, target).await?;
        }
        Ok(id)
    }

    async fn insert_model(&mut self, model: &ModelRow) -> Result<i64, StoreError> {
        let mut insert = QueryBuilder::new(
            "INSERT INTO models (name, aliases_json, strategy, session_header, max_attempts, \
             enabled, managed_by, created_ms, updated_ms) ",
        );
        insert.push_values([model], |mut row, model| {
            row.push_bind(&model.name)
                .push_bind(&model.aliases_json)
                .push_bind(&model.strategy)
                .push_bind(&model.session_header)
                .push_bind(model.max_attempts)
                .push_bind(model.enabled)
                .push_bind(model.managed_by.as_str().to_owned())
                .push_bind(self.now_ms)
                .push_bind(self.now_ms);
        });
        DB::insert_returning_id(&mut *self.conn, insert).await
    }

    async fn update_model(&mut self, id: i64, model: &ModelRow) -> Result<(), StoreError> {
        let mut update = QueryBuilder::new("UPDATE models SET aliases_json = ");
        update
            .push_bind(&model.aliases_json)
            .push(", strategy = ")
            .push_bind(&model.strategy)
            .push(", session_header = ")
            .push_bind(&model.session_header)
            .push(", max_attempts = ")
            .push_bind(model.max_attempts)
            .push(", enabled = ")
            .push_bind(model.enabled)
            .push(", managed_by = ")
            .push_bind(model.managed_by.as_str().to_owned())
            .push(", updated_ms = ")
            .push_bind(self.now_ms)
            .push(" WHERE id = ")
            .push_bind(id);
        DB::execute(&mut *self.conn, update).await?;
        Ok(())
    }

    async fn insert_target(
        &mut self,
        model_id: i64,
        provider_id: i64,
        target: &TargetRow,
    ) -> Result<(), StoreError> {
        let mut insert = QueryBuilder::new(
            "INSERT INTO targets (model_id, position, provider_id, upstream_model, weight, \
             priority, overrides_json, headers_json, capabilities_json, timeout_ms, \
             ttft_timeout_ms, enabled) ",
        );
        insert.push_values([target], |mut row, target| {
            row.push_bind(model_id)
                .push_bind(target.position)
                .push_bind(provider_id)
                .push_bind(&target.upstream_model)
                .push_bind(target.weight)
                .push_bind(target.priority)
                .push_bind(&target.overrides_json)
                .push_bind(&target.headers_json)
                .push_bind(&target.capabilities_json)
                .push_bind(target.timeout_ms)
                .push_bind(target.ttft_timeout_ms)
                .push_bind(target.enabled);
        });
        DB::execute(&mut *self.conn, insert).await?;
        Ok(())
    }

    /// Deletes the model; its targets go with it (`ON DELETE CASCADE`).
    async fn delete_model(&mut self, name: &str) -> Result<i64, StoreError> {
        let id = self.require(Named::Model, name).await?;
        self.run_with_id("DELETE FROM models WHERE id = ", id)
            .await?;
        Ok(id)
    }

    async fn create_client_key(&mut self, key: &ClientKeyRow) -> Result<i64, StoreError> {
        let mut insert = QueryBuilder::new(
            "INSERT INTO client_keys (name, prefix, hash, policy_json, expires_ms, enabled, \
             capture_bodies, metadata_json, created_ms, updated_ms) ",
        );
        insert.push_values([key], |mut row, key| {
            row.push_bind(&key.name)
                .push_bind(&key.prefix)
                .push_bind(&key.hash)
                .push_bind(&key.policy_json)
                .push_bind(key.expires_ms)
                .push_bind(key.enabled)
                .push_bind(key.capture_bodies)
                .push_bind(&key.metadata_json)
                .push_bind(self.now_ms)
                .push_bind(self.now_ms);
        });
        DB::insert_returning_id(&mut *self.conn, insert)
            .await
            .map_err(conflict("client key", &key.name))
    }

    async fn update_client_key(&mut self, key: &ClientKeyRow) -> Result<i64, StoreError> {
        let mut update = QueryBuilder::new("UPDATE client_keys SET name = ");
        update
            .push_bind(&key.name)
            .push(", policy_json = ")
            .push_bind(&key.policy_json)
            .push(", expires_ms = ")
            .push_bind(key.expires_ms)
            .push(", enabled = ")
            .push_bind(key.enabled)
            .push(", capture_bodies = ")
            .push_bind(key.capture_bodies)
            .push(", metadata_json = ")
            .push_bind(&key.metadata_json)
            .push(", updated_ms = ")
            .push_bind(self.now_ms)
            .push(" WHERE id = ")
            .push_bind(key.id);
        let matched = DB::execute(&mut *self.conn, update).await?;
        found_client_key(matched, key.id)
    }

    /// Deletes the client key; its spend goes with it (`ON DELETE CASCADE`).
    async fn delete_client_key(&mut self, id: i64) -> Result<i64, StoreError> {
        let deleted = self
            .run_with_id("DELETE FROM client_keys WHERE id = ", id)
            .await?;
        found_client_key(deleted, id)
    }

    /// Runs `statement`, which ends in `... = `, with `id` bound at its end;
    /// returns how many rows it matched.
    async fn run_with_id(&mut self, statement: &'static str, id: i64) -> Result<u64, StoreError> {
        let mut query = QueryBuilder::new(statement);
        query.push_bind(id);
        DB::execute(&mut *self.conn, query).await
    }

    async fn insert_audit(&mut self, audit: &[AuditEntry]) -> Result<(), StoreError> {
        let max_rows = DB::DIALECT.max_bind_params() / AUDIT_COLUMNS;
        for chunk in audit.chunks(max_rows) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO audit_log (ts_ms, actor, action, entity, entity_name, detail_json) ",
            );
            insert.push_values(chunk, |mut row, entry| {
                row.push_bind(entry.ts_ms)
                    .push_bind(&entry.actor)
                    .push_bind(&entry.action)
                    .push_bind(&entry.entity)
                    .push_bind(&entry.entity_name)
                    .push_bind(&entry.detail_json);
            });
            DB::execute(&mut *self.conn, insert).await?;
        }
        Ok(())
    }
}

/// The `(env_ref, sealed, key_id)` columns of a key's secret.
fn secret_columns(secret: &KeySecret) -> (Option<String>, Option<Vec<u8>>, Option<String>) {
    match secret {
        KeySecret::Env(reference) => (Some(reference.clone()), None, None),
        KeySecret::Sealed { key_id, blob } => (None, Some(blob.clone()), Some(key_id.clone())),
    }
}

/// `items` sorted by position, keeping the given order among equal positions.
fn in_position_order<T>(items: &[T], position: impl Fn(&T) -> i32) -> Vec<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by_key(|item| position(item));
    sorted
}

/// `Ok(id)` when a statement on client key `id` matched a row, else
/// [`StoreError::NotFound`].
fn found_client_key(rows_affected: u64, id: i64) -> Result<i64, StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound {
            entity: "client key",
            name: id.to_string(),
        });
    }
    Ok(id)
}

/// Maps a unique-key violation to [`StoreError::Conflict`] naming the row;
/// other errors pass through.
fn conflict(entity: &'static str, name: &str) -> impl FnOnce(StoreError) -> StoreError {
    let name = name.to_owned();
    move |error| match error {
        StoreError::Query(sqlx::Error::Database(database)) if database.is_unique_violation() => {
            StoreError::Conflict { entity, name }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_order_is_stable() {
        let items = [(2, "c"), (0, "a"), (2, "d"), (1, "b")];
        let sorted: Vec<_> = in_position_order(&items, |item| item.0)
            .into_iter()
            .map(|item| item.1)
            .collect();
        assert_eq!(sorted, ["a", "b", "c", "d"]);
    }

    #[test]
    fn missing_client_key_is_not_found() {
        assert_eq!(found_client_key(1, 7).ok(), Some(7));
        assert!(matches!(
            found_client_key(0, 7),
            Err(StoreError::NotFound { entity: "client key", name }) if name == "7"
        ));
    }

    #[test]
    fn non_unique_errors_are_not_conflicts() {
        let error = conflict("client key", "ci")(sqlx::Error::RowNotFound.into());
        assert!(matches!(error, StoreError::Query(sqlx::Error::RowNotFound)));
    }
}
