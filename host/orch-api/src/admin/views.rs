//! What the admin API reads and returns. Secrets never appear: provider
//! keys are masked, client keys are shown by prefix (in full only once, in
//! the answer that creates them).

use orch_core::catalog::{ModelSpec, ProviderSpec};
use orch_core::clients::{Budget, ClientPolicy};
use orch_store::{ClientKeyRow, KeySecret, ManagedBy, ModelRow, ProviderKeyRow, ProviderRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::{model_spec, provider_spec};
use crate::error::ApiError;

/// Who owns an entry: the configuration file or the admin API.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Owner {
    /// Defined in the configuration file; read-only here.
    File,
    /// Created through the admin API.
    Api,
}

impl From<ManagedBy> for Owner {
    fn from(m: ManagedBy) -> Self {
        match m {
            ManagedBy::File => Owner::File,
            ManagedBy::Api => Owner::Api,
        }
    }
}

/// A provider key as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// Row id (keys from the configuration file have none).
    pub id: Option<i64>,
    /// Operator's label.
    pub label: Option<String>,
    /// First and last characters, or the `env:NAME` reference.
    pub masked: String,
    /// `env` (a reference resolved on each replica), `encrypted` (stored
    /// sealed with the master key) or `file`.
    pub source: &'static str,
    /// Whether requests use it.
    pub enabled: bool,
}

impl From<&ProviderKeyRow> for KeyView {
    fn from(k: &ProviderKeyRow) -> Self {
        KeyView {
            id: Some(k.id),
            label: k.label.clone(),
            masked: k.masked.clone(),
            source: match k.secret {
                KeySecret::Env(_) => "env",
                KeySecret::Sealed { .. } => "encrypted",
            },
            enabled: k.enabled,
        }
    }
}

/// A provider with its keys (masked).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProviderView {
    /// The definition (keys are never returned here).
    #[serde(flatten)]
    pub spec: ProviderSpec,
    /// Who owns it.
    pub managed_by: Owner,
    /// Its keys, masked.
    pub keys: Vec<KeyView>,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub updated_ms: i64,
}

impl ProviderView {
    pub(crate) fn new(row: &ProviderRow, keys: Vec<KeyView>) -> Result<Self, ApiError> {
        Ok(ProviderView {
            spec: provider_spec(row).map_err(corrupt)?,
            managed_by: row.managed_by.into(),
            keys,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
        })
    }
}

/// A model with its targets.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModelView {
    /// The definition.
    #[serde(flatten)]
    pub spec: ModelSpec,
    /// Who owns it.
    pub managed_by: Owner,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub updated_ms: i64,
}

impl ModelView {
    pub(crate) fn new(row: &ModelRow) -> Result<Self, ApiError> {
        Ok(ModelView {
            spec: model_spec(row).map_err(corrupt)?,
            managed_by: row.managed_by.into(),
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
        })
    }
}

pub(crate) fn corrupt(reason: String) -> ApiError {
    tracing::error!("stored catalogue does not parse: {reason}");
    ApiError::internal("The stored catalogue does not parse; see the gateway log.")
}

/// A client key's settings, as the admin API takes them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientKeySpec {
    /// A name for operators (the key's owner, application, …).
    pub name: String,
    /// The models it may use (exact names or `prefix*`); absent: all.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens (prompt + completion) per minute.
    #[serde(default)]
    pub tpm: Option<u32>,
    /// Tokens per period.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// When it stops working (Unix ms).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// A disabled key is refused.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Store (truncated) request and response bodies in the log.
    #[serde(default)]
    pub capture_bodies: bool,
    /// Free-form labels.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl ClientKeySpec {
    /// Field checks the database cannot make.
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        let bad = |m: &str, p: &str| Err(ApiError::bad_request(m, Some(p)));
        if self.name.trim().is_empty() || self.name.chars().count() > 128 {
            return bad("`name` must be 1 to 128 characters.", "name");
        }
        if self.rpm == Some(0) {
            return bad("`rpm` must be > 0 (omit it for no limit).", "rpm");
        }
        if self.tpm == Some(0) {
            return bad("`tpm` must be > 0 (omit it for no limit).", "tpm");
        }
        if self.budget.is_some_and(|b| b.tokens == 0) {
            return bad("`budget.tokens` must be > 0.", "budget.tokens");
        }
        if let Some(models) = &self.allowed_models
            && models.iter().any(|m| m.is_empty())
        {
            return bad(
                "`allowed_models` entries must not be empty.",
                "allowed_models",
            );
        }
        if serde_json::to_vec(&self.metadata).map_or(usize::MAX, |v| v.len()) > 4096 {
            return bad("`metadata` must be at most 4 KiB of JSON.", "metadata");
        }
        Ok(())
    }
}

/// A client key as operators see it (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientKeyView {
    /// Row id.
    pub id: i64,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: ClientKeySpec,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub updated_ms: i64,
}

impl ClientKeyView {
    pub(crate) fn new(row: &ClientKeyRow) -> Result<Self, ApiError> {
        let policy: ClientPolicy =
            serde_json::from_str(&row.policy_json).map_err(|e| corrupt(e.to_string()))?;
        Ok(ClientKeyView {
            id: row.id,
            prefix: row.prefix.clone(),
            settings: ClientKeySpec {
                name: row.name.clone(),
                allowed_models: policy.allowed_models,
                rpm: policy.rpm,
                tpm: policy.tpm,
                budget: policy.budget,
                expires_at_ms: policy.expires_at_ms,
                enabled: row.enabled,
                capture_bodies: row.capture_bodies,
                metadata: serde_json::from_str(&row.metadata_json).unwrap_or_default(),
            },
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
        })
    }
}

/// A new client key: shown in full only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedClientKey {
    /// The key. Store it now: the gateway keeps only its hash.
    pub key: String,
    /// The stored view.
    #[serde(flatten)]
    pub view: ClientKeyView,
}
