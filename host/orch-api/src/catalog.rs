//! The catalogue between the database and the router.
//!
//! - At start the file's providers and models are imported as
//!   `managed_by = file` rows ([`import_file`]): the file owns them, the admin
//!   API reads but never edits them.
//! - Every replica serves from a snapshot of the database compiled in memory
//!   ([`compile_snapshot`]) and swapped atomically; a cheap revision poll
//!   ([`run_refresh`]) picks up changes made through any replica.
//! - A dead database leaves the last snapshot serving.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::catalog::{
    Compiled, KeyStrategyName, ModelEntry, ModelSpec, ProviderEntry, ProviderSpec, StrategyName,
    TargetSpec, compile,
};
use orch_core::config::{Config, Problem};
use orch_core::routing::retry::RetryPolicy;
use orch_core::secrets::{Keyring, Sealed};
use orch_store::{
    AuditEntry, Change, KeySecret, ManagedBy, ModelRow, ProviderKeyRow, ProviderRow, Snapshot,
    Store, StoreError, TargetRow,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::state::AppState;

/// Who the audit log names for changes that came from the configuration file.
const FILE_ACTOR: &str = "config-file";

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// What the file contributes to every compile: its providers' keys (never
/// stored in the database) and the retry defaults.
#[derive(Clone, Default)]
pub(crate) struct FileSide {
    pub(crate) keys: HashMap<String, Vec<SecretString>>,
    pub(crate) retry: RetryPolicy,
    /// The file's model names in file order: listings keep it (API models
    /// follow, by name).
    pub(crate) model_order: Vec<String>,
}

impl FileSide {
    pub(crate) fn from_config(config: &Config) -> FileSide {
        FileSide {
            keys: config
                .providers
                .iter()
                .map(|p| (p.name.clone(), p.api_keys.clone()))
                .collect(),
            retry: config.routing.clone(),
            model_order: config.model_specs.iter().map(|m| m.name.clone()).collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Rows and specs.

/// The options of a target stored in `targets.overrides_json`: its body
/// edits, and which adapter versions serve and shadow it.
#[derive(Serialize, Deserialize, Default)]
struct StoredOverrides {
    #[serde(default)]
    set: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    cap: std::collections::BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adapter_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shadow: Option<String>,
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("stored {what} is not valid: {e}"))
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The row for a provider spec (id and times are set by the store).
pub(crate) fn provider_row(spec: &ProviderSpec, managed_by: ManagedBy) -> ProviderRow {
    ProviderRow {
        id: 0,
        name: spec.name.clone(),
        adapter: spec.adapter.clone(),
        base_url: spec.base_url.clone(),
        options_json: json(&spec.options),
        key_strategy: spec.key_strategy.as_str().into(),
        error_matchers_json: json(&spec.error_matchers),
        probe_interval_s: spec.probe_interval_s.map(to_i64),
        enabled: spec.enabled,
        managed_by,
        created_ms: 0,
        updated_ms: 0,
    }
}

/// The spec a provider row holds (without keys).
pub(crate) fn provider_spec(row: &ProviderRow) -> Result<ProviderSpec, String> {
    Ok(ProviderSpec {
        name: row.name.clone(),
        adapter: row.adapter.clone(),
        base_url: row.base_url.clone(),
        api_keys: Vec::new(),
        options: parse(&row.options_json, "options")?,
        key_strategy: KeyStrategyName::parse(&row.key_strategy)
            .ok_or_else(|| format!("unknown key strategy {:?}", row.key_strategy))?,
        error_matchers: parse(&row.error_matchers_json, "error matchers")?,
        probe_interval_s: row.probe_interval_s.and_then(|s| u64::try_from(s).ok()),
        enabled: row.enabled,
    })
}

/// The row for a model spec and its targets.
pub(crate) fn model_row(spec: &ModelSpec, managed_by: ManagedBy) -> ModelRow {
    ModelRow {
        id: 0,
        name: spec.name.clone(),
        aliases_json: json(&spec.aliases),
        strategy: spec.strategy.as_str().into(),
        session_header: spec.session_header.clone(),
        max_attempts: spec.max_attempts.map(to_i32),
        enabled: spec.enabled,
        managed_by,
        created_ms: 0,
        updated_ms: 0,
        targets: spec
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| TargetRow {
                id: 0,
                position: i32::try_from(i).unwrap_or(i32::MAX),
                provider: t.provider.clone(),
                upstream_model: t.model.clone(),
                weight: to_i32(t.weight),
                priority: to_i32(t.priority),
                overrides_json: json(&StoredOverrides {
                    set: t.set.clone(),
                    remove: t.remove.clone(),
                    cap: t.cap.clone(),
                    adapter_version: t.adapter_version.clone(),
                    shadow: t.shadow.clone(),
                }),
                headers_json: json(&t.headers),
                capabilities_json: t.capabilities.as_ref().map(json),
                timeout_ms: t.timeout_ms.map(to_i64),
                ttft_timeout_ms: t.ttft_timeout_ms.map(to_i64),
                enabled: t.enabled,
            })
            .collect(),
    }
}

/// The spec a model row holds.
pub(crate) fn model_spec(row: &ModelRow) -> Result<ModelSpec, String> {
    let targets = row
        .targets
        .iter()
        .map(|t| {
            let o: StoredOverrides = parse(&t.overrides_json, "overrides")?;
            Ok(TargetSpec {
                provider: t.provider.clone(),
                model: t.upstream_model.clone(),
                weight: u32::try_from(t.weight).unwrap_or(0),
                priority: u32::try_from(t.priority).unwrap_or(0),
                set: o.set,
                remove: o.remove,
                cap: o.cap,
                headers: parse(&t.headers_json, "headers")?,
                capabilities: t
                    .capabilities_json
                    .as_deref()
                    .map(|c| parse(c, "capabilities"))
                    .transpose()?,
                timeout_ms: t.timeout_ms.and_then(|v| u64::try_from(v).ok()),
                ttft_timeout_ms: t.ttft_timeout_ms.and_then(|v| u64::try_from(v).ok()),
                enabled: t.enabled,
                adapter_version: o.adapter_version,
                shadow: o.shadow,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ModelSpec {
        name: row.name.clone(),
        aliases: parse(&row.aliases_json, "aliases")?,
        strategy: StrategyName::parse(&row.strategy)
            .ok_or_else(|| format!("unknown strategy {:?}", row.strategy))?,
        session_header: row.session_header.clone(),
        max_attempts: row.max_attempts.and_then(|v| u32::try_from(v).ok()),
        enabled: row.enabled,
        targets,
    })
}

/// What is compared to tell whether an import changes a stored row.
fn same_provider(a: &ProviderRow, b: &ProviderRow) -> bool {
    let strip = |r: &ProviderRow| ProviderRow {
        id: 0,
        created_ms: 0,
        updated_ms: 0,
        ..r.clone()
    };
    strip(a) == strip(b)
}

fn same_model(a: &ModelRow, b: &ModelRow) -> bool {
    let strip = |r: &ModelRow| ModelRow {
        id: 0,
        created_ms: 0,
        updated_ms: 0,
        targets: r
            .targets
            .iter()
            .map(|t| TargetRow { id: 0, ..t.clone() })
            .collect(),
        ..r.clone()
    };
    strip(a) == strip(b)
}

/// An audit row for a change `actor` made now.
pub(crate) fn audit_entry(
    actor: &str,
    action: &str,
    entity: &str,
    name: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        ts_ms: now_ms(),
        actor: actor.into(),
        action: action.into(),
        entity: entity.into(),
        entity_name: name.into(),
        detail_json: detail.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Import.

/// The changes that make the database's file-managed entries match the file.
///
/// File entries are upserted (taking over an API entry of the same name);
/// file-managed entries the file no longer has are deleted, except a
/// provider that API-managed models still use, which is handed over to the
/// API instead (so a removal from the file never breaks a route it does not own).
pub(crate) fn import_changes(config: &Config, snap: &Snapshot) -> (Vec<Change>, Vec<AuditEntry>) {
    let mut changes = Vec::new();
    let mut log = Vec::new();
    let providers: HashMap<&str, &ProviderRow> = snap
        .providers
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    for spec in &config.provider_specs {
        let row = provider_row(spec, ManagedBy::File);
        if providers
            .get(spec.name.as_str())
            .is_none_or(|old| !same_provider(old, &row))
        {
            changes.push(Change::UpsertProvider(row));
            log.push(audit_entry(
                FILE_ACTOR,
                "import",
                "provider",
                &spec.name,
                serde_json::json!({}),
            ));
        }
        // The file's keys stay in the file; keys stored for a provider the
        // file now owns are dropped.
        if snap.keys.iter().any(|k| k.provider == spec.name) {
            changes.push(Change::ReplaceProviderKeys {
                provider: spec.name.clone(),
                keys: Vec::new(),
            });
        }
    }
    let models: HashMap<&str, &ModelRow> =
        snap.models.iter().map(|m| (m.name.as_str(), m)).collect();
    for spec in &config.model_specs {
        let row = model_row(spec, ManagedBy::File);
        if models
            .get(spec.name.as_str())
            .is_none_or(|old| !same_model(old, &row))
        {
            changes.push(Change::UpsertModel(row));
            log.push(audit_entry(
                FILE_ACTOR,
                "import",
                "model",
                &spec.name,
                serde_json::json!({}),
            ));
        }
    }
    let in_file_model = |name: &str| config.model_specs.iter().any(|m| m.name == name);
    let kept_models: Vec<&ModelRow> = snap
        .models
        .iter()
        .filter(|m| m.managed_by == ManagedBy::Api || in_file_model(&m.name))
        .collect();
    for m in &snap.models {
        if m.managed_by == ManagedBy::File && !in_file_model(&m.name) {
            changes.push(Change::DeleteModel(m.name.clone()));
            log.push(audit_entry(
                FILE_ACTOR,
                "delete",
                "model",
                &m.name,
                serde_json::json!({"reason": "removed from the configuration file"}),
            ));
        }
    }
    for p in &snap.providers {
        if p.managed_by != ManagedBy::File || config.provider_specs.iter().any(|s| s.name == p.name)
        {
            continue;
        }
        let used = kept_models
            .iter()
            .filter(|m| !in_file_model(&m.name))
            .any(|m| m.targets.iter().any(|t| t.provider == p.name));
        if used {
            changes.push(Change::UpsertProvider(ProviderRow {
                managed_by: ManagedBy::Api,
                ..p.clone()
            }));
            log.push(audit_entry(FILE_ACTOR, "handover", "provider", &p.name, serde_json::json!({"reason": "removed from the configuration file but used by API-managed models"})));
        } else {
            changes.push(Change::DeleteProvider(p.name.clone()));
            log.push(audit_entry(
                FILE_ACTOR,
                "delete",
                "provider",
                &p.name,
                serde_json::json!({"reason": "removed from the configuration file"}),
            ));
        }
    }
    (changes, log)
}

/// Bring the database's file-managed entries in line with the file.
pub async fn import_file(store: &Store, config: &Config) -> Result<(), StoreError> {
    let snap = store.snapshot().await?;
    let (changes, log) = import_changes(config, &snap);
    if !changes.is_empty() {
        let applied = store.apply(&changes, &log, now_ms()).await?;
        tracing::info!(
            changes = changes.len(),
            revision = applied.revision,
            "configuration file imported into the database"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Compile.

/// The AAD that binds a sealed provider key to its provider.
pub(crate) fn key_aad(provider: &str) -> Vec<u8> {
    format!("provider-key:{provider}").into_bytes()
}

/// The secret of a stored key: its environment variable's value, or the
/// decrypted blob.
fn open_key(
    row: &ProviderKeyRow,
    keyring: Option<&Keyring>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, String> {
    match &row.secret {
        KeySecret::Env(reference) => {
            let name = reference.strip_prefix("env:").unwrap_or(reference);
            env(name)
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
                .ok_or_else(|| format!("environment variable {name} is not set"))
        }
        KeySecret::Sealed { key_id, blob } => {
            let keyring = keyring.ok_or_else(|| {
                "the key is encrypted but no master key is configured ([secrets] master_key)"
                    .to_string()
            })?;
            keyring
                .open(
                    &Sealed {
                        key_id: key_id.clone(),
                        blob: blob.clone(),
                    },
                    &key_aad(&row.provider),
                )
                .map_err(|e| e.to_string())
        }
    }
}

/// Check that every sealed key can be opened with the configured master
/// keys, so a wrong master key stops the start instead of failing requests.
pub fn check_sealed_keys(snap: &Snapshot, keyring: Option<&Keyring>) -> Result<(), String> {
    for row in &snap.keys {
        if let KeySecret::Sealed { .. } = row.secret {
            open_key(row, keyring, &|_| None).map_err(|e| {
                format!(
                    "provider {:?} key {} cannot be decrypted: {e}",
                    row.provider, row.masked
                )
            })?;
        }
    }
    Ok(())
}

/// The snapshot as the router serves it.
pub(crate) fn compile_snapshot(
    snap: &Snapshot,
    file: &FileSide,
    keyring: Option<&Keyring>,
) -> Result<Compiled, Vec<Problem>> {
    let mut problems = Vec::new();
    let env = |name: &str| std::env::var(name).ok();
    let mut specs = Vec::new();
    for row in &snap.providers {
        match provider_spec(row) {
            Ok(spec) => specs.push((row, spec)),
            Err(reason) => problems.push(Problem {
                key: format!("provider {:?}", row.name),
                reason,
            }),
        }
    }
    let entries: Vec<ProviderEntry<'_>> = specs
        .iter()
        .map(|(row, spec)| {
            let keys = if row.managed_by == ManagedBy::File {
                file.keys.get(&row.name).cloned().unwrap_or_default()
            } else {
                snap.keys
                    .iter()
                    .filter(|k| k.provider == row.name && k.enabled)
                    .filter_map(|k| match open_key(k, keyring, &env) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            tracing::error!(provider = %row.name, key = %k.masked, "key skipped: {e}");
                            None
                        }
                    })
                    .collect()
            };
            ProviderEntry {
                at: format!("provider {:?}", row.name),
                spec,
                keys,
            }
        })
        .collect();
    let mut rows: Vec<&ModelRow> = snap.models.iter().collect();
    rows.sort_by_key(|m| {
        file.model_order
            .iter()
            .position(|n| *n == m.name)
            .unwrap_or(usize::MAX)
    });
    let mut model_specs = Vec::new();
    for row in rows {
        match model_spec(row) {
            Ok(spec) => model_specs.push(spec),
            Err(reason) => problems.push(Problem {
                key: format!("model {:?}", row.name),
                reason,
            }),
        }
    }
    let models: Vec<ModelEntry<'_>> = model_specs
        .iter()
        .map(|spec| ModelEntry {
            at: format!("model {:?}", spec.name),
            spec,
        })
        .collect();
    match compile(&entries, &models, &file.retry) {
        Ok(c) if problems.is_empty() => Ok(c),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

// ---------------------------------------------------------------------------
// Refresh.

/// Load the database's catalogue into the live state now.
pub(crate) async fn reload(state: &AppState) -> Result<i64, String> {
    let Some(store) = state.services().store.as_ref() else {
        return Ok(0);
    };
    let snap = store
        .snapshot()
        .await
        .map_err(|e| orch_store::ErrorChain(&e).to_string())?;
    // Budgets of client keys start from what was spent this period (the
    // longest period, a month, began at most 31 days ago; `total` at 0).
    let spend = store
        .spend_since(0)
        .await
        .map_err(|e| orch_store::ErrorChain(&e).to_string())?;
    let compiled = compile_snapshot(
        &snap,
        state.file_side(),
        state.services().keyring.as_deref(),
    )
    .map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    state.apply_catalog(&compiled, &snap, &spend);
    Ok(snap.revision)
}

/// Poll the revision every `interval` and reload when it moved; write the
/// client keys' settled spend. A failing database is logged once per
/// outage; the last good catalogue keeps serving and unwritten spend waits.
pub async fn run_refresh(state: AppState, interval: Duration) {
    let Some(store) = state.services().store.clone() else {
        return;
    };
    let mut down = false;
    let mut pending: Vec<(i64, i64, i64)> = Vec::new();
    loop {
        // Another replica's change (told through Redis) cuts the wait short.
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = state.reload_requested() => {}
        }
        pending.extend(crate::state::unflushed_spend(&state.live()));
        if !pending.is_empty() && store.add_spend(&pending).await.is_ok() {
            pending.clear();
        }
        match store.revision().await {
            Ok(rev) if rev == state.catalog_revision() => {}
            Ok(_) => match reload(&state).await {
                Ok(rev) => tracing::info!(revision = rev, "catalogue reloaded from the database"),
                Err(e) => {
                    tracing::error!("catalogue not reloaded, the previous one keeps serving: {e}")
                }
            },
            Err(e) if !down => {
                tracing::warn!(
                    "database unreachable, serving the cached catalogue: {}",
                    orch_store::ErrorChain(&e).to_string()
                );
                down = true;
                continue;
            }
            Err(_) => continue,
        }
        if down {
            tracing::info!("database reachable again");
            down = false;
        }
    }
}

/// The stored key of a provider: a sealed literal or an `env:` reference.
pub(crate) fn key_row(
    provider: &str,
    position: usize,
    secret: &str,
    keyring: Option<&Keyring>,
) -> Result<ProviderKeyRow, String> {
    use sha2::Digest;
    let (stored, plain) = if let Some(name) = secret.strip_prefix("env:") {
        if name.is_empty() {
            return Err("`env:` needs a variable name".into());
        }
        (KeySecret::Env(secret.to_string()), None)
    } else {
        let keyring = keyring.ok_or_else(|| {
            "literal keys are stored encrypted and no master key is configured: set \
             [secrets] master_key = \"env:NAME\", or pass the key as \"env:NAME\""
                .to_string()
        })?;
        let sealed = keyring
            .seal(secret, &key_aad(provider))
            .map_err(|e| e.to_string())?;
        (
            KeySecret::Sealed {
                key_id: sealed.key_id,
                blob: sealed.blob,
            },
            Some(secret),
        )
    };
    let fingerprint = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    Ok(ProviderKeyRow {
        id: 0,
        provider: provider.to_string(),
        position: i32::try_from(position).unwrap_or(i32::MAX),
        label: None,
        masked: plain.map_or_else(|| secret.to_string(), crate::state::mask),
        secret: stored,
        fingerprint,
        enabled: true,
        created_ms: 0,
    })
}
