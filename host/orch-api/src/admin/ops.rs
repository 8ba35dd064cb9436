//! Every admin change, single or batched, goes through [`run`]: checked
//! against the whole catalogue as it would be afterwards, written with its
//! audit rows in one transaction, then served by this replica at once.

use axum::Json;
use axum::extract::State;
use orch_core::catalog::{ModelEntry, ModelSpec, ProviderEntry, ProviderSpec, compile};
use orch_core::clients::{self, ClientPolicy};
use orch_store::{
    AuditEntry, Change, ClientKeyRow, ManagedBy, ProviderKeyRow, Snapshot, StoreError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::views::{ClientKeySpec, corrupt};
use super::{db_error, store};
use crate::catalog::{
    audit_entry, key_row, model_row, model_spec, now_ms, provider_row, provider_spec,
};
use crate::error::ApiError;
use crate::state::AppState;

/// Who the audit log names for admin API changes.
const ADMIN_ACTOR: &str = "admin-api";

/// One change. A batch is a list of them, applied all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Operation {
    /// Create or replace a provider; its keys are replaced when `api_keys`
    /// is not empty and kept otherwise.
    PutProvider {
        /// The provider.
        provider: ProviderSpec,
    },
    /// Delete a provider no model uses.
    DeleteProvider {
        /// Its name.
        name: String,
    },
    /// Add a key to a provider.
    AddProviderKey {
        /// The provider's name.
        provider: String,
        /// `env:NAME`, or the literal key (stored encrypted).
        key: String,
        /// A label for operators.
        #[serde(default)]
        label: Option<String>,
    },
    /// Remove one of a provider's keys.
    DeleteProviderKey {
        /// The provider's name.
        provider: String,
        /// The key's id.
        id: i64,
    },
    /// Create or replace a model with its targets.
    PutModel {
        /// The model.
        model: ModelSpec,
    },
    /// Delete a model.
    DeleteModel {
        /// Its name.
        name: String,
    },
    /// Issue a client key (the key is in the result, shown only this once).
    CreateClientKey {
        /// The key's settings.
        client_key: ClientKeySpec,
    },
    /// Change a client key's settings.
    UpdateClientKey {
        /// The key's id.
        id: i64,
        /// The new settings.
        client_key: ClientKeySpec,
    },
    /// Revoke a client key.
    DeleteClientKey {
        /// The key's id.
        id: i64,
    },
}

/// What one operation did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OpResult {
    /// The operation.
    pub op: &'static str,
    /// What it touched: a provider or model name, or a client key's name.
    pub name: String,
    /// The row id it created or changed, when it has one.
    pub id: Option<i64>,
    /// A new client key in full: shown once, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A batch of operations.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    /// Applied in order, all or nothing.
    pub operations: Vec<Operation>,
}

/// What a batch did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResult {
    /// The catalogue revision after the batch.
    pub revision: i64,
    /// One per operation, in order.
    pub results: Vec<OpResult>,
}

/// Apply several changes at once: all or nothing.
#[utoipa::path(
    post, path = "/admin/v1/batch", tag = "batch",
    request_body = Batch,
    responses(
        (status = 200, description = "All applied", body = BatchResult),
        (status = 404, description = "Something named does not exist"),
        (status = 409, description = "Conflicts with the current state"),
        (status = 422, description = "The catalogue would not validate"),
    )
)]
pub(crate) async fn batch(
    State(state): State<AppState>,
    super::Body(batch): super::Body<Batch>,
) -> Result<Json<BatchResult>, ApiError> {
    if batch.operations.is_empty() {
        return Err(ApiError::bad_request(
            "`operations` is empty.",
            Some("operations"),
        ));
    }
    if batch.operations.len() > 1000 {
        return Err(ApiError::bad_request(
            "At most 1000 operations per batch.",
            Some("operations"),
        ));
    }
    let (results, revision) = run(&state, batch.operations).await?;
    Ok(Json(BatchResult { revision, results }))
}

/// The catalogue as it will be, so the whole of it is validated.
struct Draft<'s> {
    snap: &'s Snapshot,
    providers: Vec<(ProviderSpec, ManagedBy)>,
    models: Vec<(ModelSpec, ManagedBy)>,
    changes: Vec<Change>,
    audit: Vec<AuditEntry>,
    results: Vec<OpResult>,
    /// For each result, the index of the change whose id it reports.
    id_of: Vec<Option<usize>>,
    /// Keys of providers changed in this batch, by provider.
    keys: std::collections::HashMap<String, Vec<ProviderKeyRow>>,
}

/// Apply `ops` for the admin API; returns what each did and the new revision.
pub(crate) async fn run(
    state: &AppState,
    ops: Vec<Operation>,
) -> Result<(Vec<OpResult>, i64), ApiError> {
    let store = store(state)?;
    let snap = store.snapshot().await.map_err(|e| db_error(&e))?;
    let mut draft = Draft::new(&snap)?;
    for op in ops {
        draft.apply(state, op)?;
    }
    draft.validate(state)?;
    let applied = store
        .apply(&draft.changes, &draft.audit, now_ms())
        .await
        .map_err(|e| store_error(&e))?;
    let mut results = draft.results;
    for (r, change) in results.iter_mut().zip(&draft.id_of) {
        if let Some(i) = change {
            r.id = applied.ids.get(*i).copied().or(r.id);
        }
    }
    if let Err(e) = crate::catalog::reload(state).await {
        tracing::error!("admin change stored but not served yet: {e}");
    }
    crate::share::catalog_changed(state, applied.revision);
    Ok((results, applied.revision))
}

fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::NotFound { entity, name } => ApiError::not_found(entity, name),
        StoreError::Conflict { entity, name } => {
            ApiError::conflict("conflict", format!("The {entity} {name:?} exists already."))
        }
        StoreError::InUse { entity, name, by } => {
            ApiError::conflict("in_use", format!("The {entity} {name:?} is used by {by}."))
        }
        other => db_error(other),
    }
}

/// A file-managed entry cannot be changed through the API.
fn owned_by_api(entity: &str, name: &str, managed: ManagedBy) -> Result<(), ApiError> {
    match managed {
        ManagedBy::Api => Ok(()),
        ManagedBy::File => Err(ApiError::conflict(
            "managed_by_file",
            format!(
                "The {entity} {name:?} is defined in the configuration file; change it there \
                 (the file is imported at every start)."
            ),
        )),
    }
}

fn audit(action: &str, entity: &str, name: &str, detail: serde_json::Value) -> AuditEntry {
    audit_entry(ADMIN_ACTOR, action, entity, name, detail)
}

impl<'s> Draft<'s> {
    fn new(snap: &'s Snapshot) -> Result<Self, ApiError> {
        Ok(Draft {
            snap,
            providers: snap
                .providers
                .iter()
                .map(|r| provider_spec(r).map(|s| (s, r.managed_by)))
                .collect::<Result<_, _>>()
                .map_err(corrupt)?,
            models: snap
                .models
                .iter()
                .map(|r| model_spec(r).map(|s| (s, r.managed_by)))
                .collect::<Result<_, _>>()
                .map_err(corrupt)?,
            changes: Vec::new(),
            audit: Vec::new(),
            results: Vec::new(),
            id_of: Vec::new(),
            keys: std::collections::HashMap::new(),
        })
    }

    fn push(&mut self, change: Change, result: OpResult, log: AuditEntry) {
        self.id_of.push(Some(self.changes.len()));
        self.changes.push(change);
        self.results.push(result);
        self.audit.push(log);
    }

    fn provider(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|(p, _)| p.name == name)
    }

    fn model(&self, name: &str) -> Option<usize> {
        self.models.iter().position(|(m, _)| m.name == name)
    }

    /// The provider's keys as they stand in this batch.
    fn keys_of(&self, provider: &str) -> Vec<ProviderKeyRow> {
        self.keys.get(provider).cloned().unwrap_or_else(|| {
            self.snap
                .keys
                .iter()
                .filter(|k| k.provider == provider)
                .cloned()
                .collect()
        })
    }

    fn apply(&mut self, state: &AppState, op: Operation) -> Result<(), ApiError> {
        let keyring = state.services().keyring.as_deref();
        match op {
            Operation::PutProvider { provider } => {
                let name = provider.name.clone();
                let existed = self.provider(&name);
                if let Some(i) = existed {
                    owned_by_api("provider", &name, self.providers[i].1)?;
                }
                let detail = serde_json::json!({
                    "provider": &provider,
                    "keys_replaced": !provider.api_keys.is_empty(),
                });
                let mut key_rows = Vec::new();
                for (i, k) in provider.api_keys.iter().enumerate() {
                    let row = key_row(&name, i, k, keyring).map_err(|reason| {
                        ApiError::bad_request(reason, Some(&format!("api_keys[{i}]")))
                    })?;
                    key_rows.push(row);
                }
                let action = if existed.is_some() {
                    "update"
                } else {
                    "create"
                };
                self.push(
                    Change::UpsertProvider(provider_row(&provider, ManagedBy::Api)),
                    OpResult {
                        op: "put_provider",
                        name: name.clone(),
                        id: None,
                        key: None,
                    },
                    audit(action, "provider", &name, detail),
                );
                if !key_rows.is_empty() {
                    self.keys.insert(name.clone(), key_rows.clone());
                    self.changes.push(Change::ReplaceProviderKeys {
                        provider: name.clone(),
                        keys: key_rows,
                    });
                }
                let spec = ProviderSpec {
                    api_keys: Vec::new(),
                    ..provider
                };
                match existed {
                    Some(i) => self.providers[i] = (spec, ManagedBy::Api),
                    None => self.providers.push((spec, ManagedBy::Api)),
                }
            }
            Operation::DeleteProvider { name } => {
                let i = self
                    .provider(&name)
                    .ok_or_else(|| ApiError::not_found("provider", &name))?;
                owned_by_api("provider", &name, self.providers[i].1)?;
                if let Some((m, _)) = self
                    .models
                    .iter()
                    .find(|(m, _)| m.targets.iter().any(|t| t.provider == name))
                {
                    return Err(ApiError::conflict(
                        "in_use",
                        format!("The provider {name:?} is used by model {:?}.", m.name),
                    ));
                }
                self.providers.remove(i);
                self.push(
                    Change::DeleteProvider(name.clone()),
                    OpResult {
                        op: "delete_provider",
                        name: name.clone(),
                        id: None,
                        key: None,
                    },
                    audit("delete", "provider", &name, serde_json::json!({})),
                );
            }
            Operation::AddProviderKey {
                provider,
                key,
                label,
            } => {
                let i = self
                    .provider(&provider)
                    .ok_or_else(|| ApiError::not_found("provider", &provider))?;
                owned_by_api("provider", &provider, self.providers[i].1)?;
                let mut keys = self.keys_of(&provider);
                let mut row = key_row(&provider, keys.len(), &key, keyring)
                    .map_err(|reason| ApiError::bad_request(reason, Some("key")))?;
                row.label = label;
                if keys.iter().any(|k| k.fingerprint == row.fingerprint) {
                    return Err(ApiError::conflict(
                        "conflict",
                        format!("The provider {provider:?} has this key already."),
                    ));
                }
                let detail = serde_json::json!({"masked": row.masked, "label": row.label});
                keys.push(row);
                self.keys.insert(provider.clone(), keys.clone());
                self.push(
                    Change::ReplaceProviderKeys {
                        provider: provider.clone(),
                        keys,
                    },
                    OpResult {
                        op: "add_provider_key",
                        name: provider.clone(),
                        id: None,
                        key: None,
                    },
                    audit("add_key", "provider", &provider, detail),
                );
            }
            Operation::DeleteProviderKey { provider, id } => {
                let i = self
                    .provider(&provider)
                    .ok_or_else(|| ApiError::not_found("provider", &provider))?;
                owned_by_api("provider", &provider, self.providers[i].1)?;
                let mut keys = self.keys_of(&provider);
                let before = keys.len();
                keys.retain(|k| k.id != id);
                if keys.len() == before {
                    return Err(ApiError::not_found("key", &id.to_string()));
                }
                for (pos, k) in keys.iter_mut().enumerate() {
                    k.position = i32::try_from(pos).unwrap_or(i32::MAX);
                }
                self.keys.insert(provider.clone(), keys.clone());
                self.push(
                    Change::ReplaceProviderKeys {
                        provider: provider.clone(),
                        keys,
                    },
                    OpResult {
                        op: "delete_provider_key",
                        name: provider.clone(),
                        id: Some(id),
                        key: None,
                    },
                    audit(
                        "delete_key",
                        "provider",
                        &provider,
                        serde_json::json!({"id": id}),
                    ),
                );
                // The id reported is the deleted key's, not the change's.
                if let Some(last) = self.id_of.last_mut() {
                    *last = None;
                }
            }
            Operation::PutModel { model } => {
                let name = model.name.clone();
                let existed = self.model(&name);
                if let Some(i) = existed {
                    owned_by_api("model", &name, self.models[i].1)?;
                }
                let action = if existed.is_some() {
                    "update"
                } else {
                    "create"
                };
                self.push(
                    Change::UpsertModel(model_row(&model, ManagedBy::Api)),
                    OpResult {
                        op: "put_model",
                        name: name.clone(),
                        id: None,
                        key: None,
                    },
                    audit(
                        action,
                        "model",
                        &name,
                        serde_json::json!({ "model": &model }),
                    ),
                );
                match existed {
                    Some(i) => self.models[i] = (model, ManagedBy::Api),
                    None => self.models.push((model, ManagedBy::Api)),
                }
            }
            Operation::DeleteModel { name } => {
                let i = self
                    .model(&name)
                    .ok_or_else(|| ApiError::not_found("model", &name))?;
                owned_by_api("model", &name, self.models[i].1)?;
                self.models.remove(i);
                self.push(
                    Change::DeleteModel(name.clone()),
                    OpResult {
                        op: "delete_model",
                        name: name.clone(),
                        id: None,
                        key: None,
                    },
                    audit("delete", "model", &name, serde_json::json!({})),
                );
            }
            Operation::CreateClientKey { client_key } => {
                client_key.check()?;
                let key = clients::generate_key();
                let row = client_row(0, &client_key, &key);
                let name = client_key.name.clone();
                self.push(
                    Change::CreateClientKey(row),
                    OpResult {
                        op: "create_client_key",
                        name: name.clone(),
                        id: None,
                        key: Some(key.clone()),
                    },
                    audit(
                        "create",
                        "client_key",
                        &name,
                        serde_json::json!({"prefix": clients::key_prefix(&key), "settings": &client_key}),
                    ),
                );
            }
            Operation::UpdateClientKey { id, client_key } => {
                client_key.check()?;
                let old = self
                    .snap
                    .client_keys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or_else(|| ApiError::not_found("client key", &id.to_string()))?;
                let mut row = client_row(id, &client_key, "");
                row.hash = old.hash.clone();
                row.prefix = old.prefix.clone();
                row.created_ms = old.created_ms;
                let name = client_key.name.clone();
                self.push(
                    Change::UpdateClientKey(row),
                    OpResult {
                        op: "update_client_key",
                        name: name.clone(),
                        id: Some(id),
                        key: None,
                    },
                    audit(
                        "update",
                        "client_key",
                        &name,
                        serde_json::json!({"id": id, "settings": &client_key}),
                    ),
                );
            }
            Operation::DeleteClientKey { id } => {
                let old = self
                    .snap
                    .client_keys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or_else(|| ApiError::not_found("client key", &id.to_string()))?;
                let name = old.name.clone();
                self.push(
                    Change::DeleteClientKey(id),
                    OpResult {
                        op: "delete_client_key",
                        name: name.clone(),
                        id: Some(id),
                        key: None,
                    },
                    audit(
                        "delete",
                        "client_key",
                        &name,
                        serde_json::json!({"id": id, "prefix": old.prefix}),
                    ),
                );
            }
        }
        Ok(())
    }

    /// The catalogue after the batch must compile, by the file's rules.
    fn validate(&self, state: &AppState) -> Result<(), ApiError> {
        let providers: Vec<ProviderEntry<'_>> = self
            .providers
            .iter()
            .map(|(spec, _)| ProviderEntry {
                at: format!("provider {:?}", spec.name),
                spec,
                keys: Vec::new(),
            })
            .collect();
        let models: Vec<ModelEntry<'_>> = self
            .models
            .iter()
            .map(|(spec, _)| ModelEntry {
                at: format!("model {:?}", spec.name),
                spec,
            })
            .collect();
        compile(&providers, &models, &state.file_side().retry)
            .map(drop)
            .map_err(|problems| ApiError::invalid(&problems))
    }
}

/// The row for a client key's settings (`key`: the new key, or "" when
/// the row keeps its stored hash).
fn client_row(id: i64, spec: &ClientKeySpec, key: &str) -> ClientKeyRow {
    let policy = ClientPolicy {
        allowed_models: spec.allowed_models.clone(),
        rpm: spec.rpm,
        tpm: spec.tpm,
        budget: spec.budget,
        expires_at_ms: spec.expires_at_ms,
        enabled: spec.enabled,
    };
    ClientKeyRow {
        id,
        name: spec.name.clone(),
        prefix: clients::key_prefix(key),
        hash: hex::encode(clients::key_hash(key)),
        policy_json: serde_json::to_string(&policy).unwrap_or_else(|_| "{}".into()),
        expires_ms: spec.expires_at_ms,
        enabled: spec.enabled,
        capture_bodies: spec.capture_bodies,
        metadata_json: serde_json::Value::Object(spec.metadata.clone()).to_string(),
        created_ms: 0,
        updated_ms: 0,
    }
}
