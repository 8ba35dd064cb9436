//! The catalogue's row types, the changes [`crate::Store::apply`] accepts and
//! what reads return. JSON columns travel as `String`s holding JSON text: the
//! store neither parses nor validates them.

use std::str::FromStr;

use crate::error::StoreError;

/// Who owns a provider or model row, and so who may edit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManagedBy {
    /// Imported from the TOML config file at start; the admin API refuses to edit it.
    File,
    /// Created through the admin API.
    Api,
}

impl ManagedBy {
    /// The stored form: `file` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Api => "api",
        }
    }
}

impl std::fmt::Display for ManagedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ManagedBy {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "file" => Ok(Self::File),
            "api" => Ok(Self::Api),
            other => Err(StoreError::InvalidValue {
                column: "managed_by",
                value: other.to_owned(),
            }),
        }
    }
}

/// An upstream provider: where requests go and which adapter plugin speaks to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderRow {
    /// Database id; ignored when writing (providers are matched by name).
    pub id: i64,
    /// Unique name that models' targets refer to.
    pub name: String,
    /// Adapter plugin name, e.g. `openai`.
    pub adapter: String,
    /// Origin and path prefix of the provider's API.
    pub base_url: String,
    /// Adapter options, JSON text.
    pub options_json: String,
    /// How the provider's keys are taken in turn, e.g. `round_robin`.
    pub key_strategy: String,
    /// Rules classifying the provider's error responses, JSON text.
    pub error_matchers_json: String,
    /// Seconds between active health probes; `None` disables probing.
    pub probe_interval_s: Option<i64>,
    /// Whether routing may use it.
    pub enabled: bool,
    /// Who owns the row.
    pub managed_by: ManagedBy,
    /// When the row was created, Unix ms; set by the store.
    pub created_ms: i64,
    /// When the row last changed, Unix ms; set by the store.
    pub updated_ms: i64,
}

/// Where a provider key's secret is: named in the environment, or sealed in the row.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySecret {
    /// An `env:NAME` reference, resolved by the gateway at load; not secret itself.
    Env(String),
    /// The key encrypted with the master key `key_id`.
    Sealed {
        /// Id of the master key that sealed `blob`.
        key_id: String,
        /// The ciphertext.
        blob: Vec<u8>,
    },
}

/// Shows a sealed blob's length only, so key material never reaches a log line.
impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(reference) => f.debug_tuple("Env").field(reference).finish(),
            Self::Sealed { key_id, blob } => f
                .debug_struct("Sealed")
                .field("key_id", key_id)
                .field("blob", &format_args!("<{} bytes>", blob.len()))
                .finish(),
        }
    }
}

/// One upstream API key of a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderKeyRow {
    /// Database id; ignored when writing.
    pub id: i64,
    /// Name of the provider the key belongs to; ignored when writing (the
    /// change names the provider).
    pub provider: String,
    /// Order among the provider's keys.
    pub position: i32,
    /// Free-form label shown in the admin API.
    pub label: Option<String>,
    /// The secret, or where to find it.
    pub secret: KeySecret,
    /// Displayable form, e.g. `sk-a…wxyz`.
    pub masked: String,
    /// Hex SHA-256 of the secret (64 characters), computed by the caller;
    /// unique per provider.
    pub fingerprint: String,
    /// Whether the key may be used.
    pub enabled: bool,
    /// When the key was first stored, Unix ms; set by the store.
    pub created_ms: i64,
}

/// A model clients ask for, and the targets it routes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRow {
    /// Database id; ignored when writing (models are matched by name).
    pub id: i64,
    /// Unique name clients send.
    pub name: String,
    /// Other names for the model, JSON array text.
    pub aliases_json: String,
    /// Routing strategy, e.g. `weighted`.
    pub strategy: String,
    /// Request header whose value pins a session to one target.
    pub session_header: Option<String>,
    /// Most upstream attempts per request; `None` uses the gateway default.
    pub max_attempts: Option<i32>,
    /// Whether clients may use it.
    pub enabled: bool,
    /// Who owns the row.
    pub managed_by: ManagedBy,
    /// When the row was created, Unix ms; set by the store.
    pub created_ms: i64,
    /// When the row last changed, Unix ms; set by the store.
    pub updated_ms: i64,
    /// Routing targets in position order.
    pub targets: Vec<TargetRow>,
}

/// One place a model can be served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRow {
    /// Database id; ignored when writing.
    pub id: i64,
    /// Order among the model's targets.
    pub position: i32,
    /// Name of the provider that serves it.
    pub provider: String,
    /// Model name sent upstream.
    pub upstream_model: String,
    /// Relative share of traffic among targets of equal priority.
    pub weight: i32,
    /// Lower priorities are tried first.
    pub priority: i32,
    /// Top-level request fields to set, JSON object text.
    pub overrides_json: String,
    /// Extra upstream headers, JSON object text.
    pub headers_json: String,
    /// Declared capabilities, JSON text; `None` means unknown.
    pub capabilities_json: Option<String>,
    /// Whole-request timeout override, ms.
    pub timeout_ms: Option<i64>,
    /// Time-to-first-token timeout override, ms.
    pub ttft_timeout_ms: Option<i64>,
    /// Whether routing may use it.
    pub enabled: bool,
}

/// A client API key. Only its hash is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientKeyRow {
    /// Database id: assigned by the store on create (ignored there), names
    /// the key to change on update.
    pub id: i64,
    /// Human-readable name; not unique.
    pub name: String,
    /// The key's first characters, to recognise it in listings.
    pub prefix: String,
    /// Hex SHA-256 of the key (64 characters); unique. Fixed at create.
    pub hash: String,
    /// Allowed models, rate limits and budget, JSON text.
    pub policy_json: String,
    /// When the key stops working, Unix ms.
    pub expires_ms: Option<i64>,
    /// Whether the key is accepted.
    pub enabled: bool,
    /// Whether request and response bodies of this key are logged.
    pub capture_bodies: bool,
    /// Caller-defined metadata, JSON text.
    pub metadata_json: String,
    /// When the key was created, Unix ms; set by the store.
    pub created_ms: i64,
    /// When the key last changed, Unix ms; set by the store.
    pub updated_ms: i64,
}

/// An audit record to write with a batch of changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened, Unix ms.
    pub ts_ms: i64,
    /// Who did it, e.g. an admin token's name or `config-file`.
    pub actor: String,
    /// What was done, e.g. `create`, `update`, `delete`.
    pub action: String,
    /// Kind of row touched, e.g. `provider`.
    pub entity: String,
    /// Name of the row touched.
    pub entity_name: String,
    /// Details (e.g. changed fields), JSON text.
    pub detail_json: String,
}

/// A stored audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Database id; increases with every record written.
    pub id: i64,
    /// When it happened, Unix ms.
    pub ts_ms: i64,
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// Kind of row touched.
    pub entity: String,
    /// Name of the row touched.
    pub entity_name: String,
    /// Details, JSON text.
    pub detail_json: String,
}

/// Which audit records [`crate::Store::audit`] returns: those with
/// `since_ms <= ts_ms < until_ms`, optionally of one entity kind and older
/// than a cursor, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// Earliest `ts_ms` included.
    pub since_ms: i64,
    /// First `ts_ms` excluded.
    pub until_ms: i64,
    /// Only records about this kind of row, e.g. `model`.
    pub entity: Option<String>,
    /// Only records with a smaller id: pass the last id of the previous page.
    pub before_id: Option<i64>,
    /// Most records returned.
    pub limit: u32,
}

/// The whole catalogue as of one revision, read in one transaction.
///
/// Providers, models and client keys are ordered by name (client keys of the
/// same name by id), provider keys by provider name then position, targets by
/// position. Names compare by their UTF-8 bytes, identically on every database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The revision these rows belong to.
    pub revision: i64,
    /// Every provider.
    pub providers: Vec<ProviderRow>,
    /// Every provider key.
    pub keys: Vec<ProviderKeyRow>,
    /// Every model with its targets.
    pub models: Vec<ModelRow>,
    /// Every client key.
    pub client_keys: Vec<ClientKeyRow>,
}

/// One edit of the catalogue; a batch is applied by [`crate::Store::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Creates or updates the provider with this name. `id`, `created_ms` and
    /// `updated_ms` are ignored; its keys are left alone.
    UpsertProvider(ProviderRow),
    /// Deletes the provider with this name and its keys; refused while a
    /// target uses it.
    DeleteProvider(String),
    /// Replaces all keys of the named provider. A key whose fingerprint was
    /// already stored keeps its `created_ms`; the others get the batch's time.
    ReplaceProviderKeys {
        /// The provider's name.
        provider: String,
        /// The new keys; each key's `provider` field is ignored.
        keys: Vec<ProviderKeyRow>,
    },
    /// Creates or updates the model with this name and replaces all its
    /// targets, whose providers are looked up by name. `id`, `created_ms` and
    /// `updated_ms` are ignored.
    UpsertModel(ModelRow),
    /// Deletes the model with this name and its targets.
    DeleteModel(String),
    /// Stores a new client key; `id`, `created_ms` and `updated_ms` are ignored.
    CreateClientKey(ClientKeyRow),
    /// Updates the client key with this `id`; its `hash`, `prefix` and
    /// `created_ms` do not change.
    UpdateClientKey(ClientKeyRow),
    /// Deletes the client key with this id and its spend.
    DeleteClientKey(i64),
}

/// What [`crate::Store::apply`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The catalogue revision after the batch.
    pub revision: i64,
    /// Per change, in order: the id of the row it created, updated or deleted
    /// (for [`Change::ReplaceProviderKeys`], the provider's id).
    pub ids: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_by_round_trips_through_text() {
        for managed_by in [ManagedBy::File, ManagedBy::Api] {
            assert_eq!(
                managed_by.as_str().parse::<ManagedBy>().ok(),
                Some(managed_by)
            );
            assert_eq!(managed_by.to_string(), managed_by.as_str());
        }
        assert!(matches!(
            "File".parse::<ManagedBy>(),
            Err(StoreError::InvalidValue {
                column: "managed_by",
                ..
            })
        ));
    }

    #[test]
    fn sealed_secret_debug_shows_length_not_bytes() {
        let secret = KeySecret::Sealed {
            key_id: "k1".to_owned(),
            blob: vec![0xAB; 40],
        };
        let shown = format!("{secret:?}");
        assert_eq!(shown, r#"Sealed { key_id: "k1", blob: <40 bytes> }"#);
        assert_eq!(
            format!("{:?}", KeySecret::Env("env:OPENAI_KEY".to_owned())),
            r#"Env("env:OPENAI_KEY")"#
        );
    }
}
