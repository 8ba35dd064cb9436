//! Read-only views: request logs, captured bodies, usage, the audit log,
//! plugins and health. Stats read the rollup tables, never raw logs.

use std::time::UNIX_EPOCH;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use orch_store::{AuditQuery, Bucket, Dimension, LogCursor, LogQuery, StatusFilter, UsageQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{db_error, store};
use crate::catalog::now_ms;
use crate::error::ApiError;
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
const MAX_PAGE: u32 = 1000;

/// Filters of the request-log query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogParams {
    /// From this time (Unix ms; default: 24 hours ago).
    since_ms: Option<i64>,
    /// Before this time (Unix ms; default: now).
    until_ms: Option<i64>,
    /// The model the client asked for.
    model: Option<String>,
    /// The provider that served (or last failed) the request.
    provider: Option<String>,
    /// The client key's id.
    client_key_id: Option<i64>,
    /// An exact status (`429`) or a class (`5xx`).
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Rows per page (default 50, at most 1000).
    limit: Option<u32>,
}

/// A request-log row.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogRow {
    id: i64,
    ts_ms: i64,
    request_id: String,
    ingress_dialect: String,
    requested_model: String,
    provider: Option<String>,
    upstream_model: Option<String>,
    plugin: Option<String>,
    client_key_id: Option<i64>,
    status: u16,
    error_class: Option<String>,
    attempts: u32,
    latency_us: u64,
    ttft_us: Option<u64>,
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    cached_tokens: Option<u32>,
    streamed: bool,
    outcome: String,
}

/// A page of request logs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogPage {
    /// Newest first.
    data: Vec<LogRow>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn bad(message: &str, param: &str) -> ApiError {
    ApiError::bad_request(message, Some(param))
}

fn parse_status(s: &str) -> Result<StatusFilter, ApiError> {
    let err = || bad("`status` is a status (`429`) or a class (`5xx`).", "status");
    match s.strip_suffix("xx") {
        Some(class) => class
            .parse::<u8>()
            .ok()
            .filter(|c| (1..=5).contains(c))
            .map(StatusFilter::Class)
            .ok_or_else(err),
        None => s
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(StatusFilter::Exact)
            .ok_or_else(err),
    }
}

fn parse_cursor(s: &str) -> Result<LogCursor, ApiError> {
    s.split_once('_')
        .and_then(|(t, i)| {
            Some(LogCursor {
                ts_ms: t.parse().ok()?,
                id: i.parse().ok()?,
            })
        })
        .ok_or_else(|| bad("`cursor` is not one this API returned.", "cursor"))
}

/// Request logs, newest first, filtered, a page at a time.
#[utoipa::path(get, path = "/admin/v1/logs", tag = "observe", params(LogParams),
    responses((status = 200, body = LogPage), (status = 400, description = "Bad filter")))]
pub(crate) async fn logs(
    State(state): State<AppState>,
    super::QueryOf(p): super::QueryOf<LogParams>,
) -> Result<Json<LogPage>, ApiError> {
    let until = p.until_ms.unwrap_or_else(|| now_ms().saturating_add(1));
    let since = p.since_ms.unwrap_or(until.saturating_sub(DAY_MS));
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad("`limit` must be in 1..=1000.", "limit"));
    }
    let query = LogQuery {
        since_ms: Some(since),
        until_ms: Some(until),
        model: p.model,
        provider: p.provider,
        client_key_id: p.client_key_id,
        status: p.status.as_deref().map(parse_status).transpose()?,
        before: p.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
    };
    let rows = store(&state)?
        .query_request_logs(&query)
        .await
        .map_err(|e| db_error(&e))?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| {
            rows.last().map(|r| {
                let c = r.cursor();
                format!("{}_{}", c.ts_ms, c.id)
            })
        })
        .flatten();
    let data = rows
        .into_iter()
        .map(|r| {
            let rec = r.record;
            LogRow {
                id: r.id,
                ts_ms: rec.ts_ms,
                request_id: rec.request_id,
                ingress_dialect: rec.ingress_dialect,
                requested_model: rec.requested_model,
                provider: rec.provider,
                upstream_model: rec.upstream_model,
                plugin: rec.plugin,
                client_key_id: rec.client_key_id,
                status: rec.status,
                error_class: rec.error_class,
                attempts: rec.attempts,
                latency_us: rec.latency_us,
                ttft_us: rec.ttft_us,
                input_tokens: rec.input_tokens,
                output_tokens: rec.output_tokens,
                cached_tokens: rec.cached_tokens,
                streamed: rec.streamed,
                outcome: rec.outcome.as_str().into(),
            }
        })
        .collect();
    Ok(Json(LogPage { data, next_cursor }))
}

/// Captured bodies of a request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Bodies {
    /// The request body as received (truncated).
    request: String,
    /// The response body as sent (truncated).
    response: String,
}

/// The bodies captured for a request (client keys with `capture_bodies`).
#[utoipa::path(get, path = "/admin/v1/logs/{request_id}/bodies", tag = "observe",
    params(("request_id" = String, Path, description = "The request's id")),
    responses((status = 200, body = Bodies), (status = 404, description = "Nothing captured")))]
pub(crate) async fn bodies(
    State(state): State<AppState>,
    super::PathOf(request_id): super::PathOf<String>,
) -> Result<Json<Bodies>, ApiError> {
    let found = store(&state)?
        .request_bodies(&request_id)
        .await
        .map_err(|e| db_error(&e))?
        .ok_or_else(|| ApiError::not_found("captured request", &request_id))?;
    Ok(Json(Bodies {
        request: found.request,
        response: found.response,
    }))
}

/// Usage query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageParams {
    /// From this time (Unix ms; default: 24 hours ago).
    since_ms: Option<i64>,
    /// Before this time (Unix ms; default: now).
    until_ms: Option<i64>,
    /// `hour` (default) or `day`.
    bucket: Option<String>,
    /// Comma-separated: `model`, `provider`, `client_key`.
    group_by: Option<String>,
    /// Only this model.
    model: Option<String>,
    /// Only this provider.
    provider: Option<String>,
    /// Only this client key.
    client_key_id: Option<i64>,
}

/// Usage in one bucket (and group).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageBucket {
    bucket_ms: i64,
    model: Option<String>,
    provider: Option<String>,
    client_key_id: Option<i64>,
    requests: u64,
    errors: u64,
    error_rate: f64,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    mean_latency_ms: f64,
    mean_ttft_ms: Option<f64>,
    output_tokens_per_s: Option<f64>,
}

/// Usage by time bucket, optionally by model, provider and client key
/// (from the hourly and daily rollups).
#[utoipa::path(get, path = "/admin/v1/usage", tag = "observe", params(UsageParams),
    responses((status = 200, body = [UsageBucket]), (status = 400, description = "Bad parameter")))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    super::QueryOf(p): super::QueryOf<UsageParams>,
) -> Result<Json<Vec<UsageBucket>>, ApiError> {
    let until = p.until_ms.unwrap_or_else(|| now_ms().saturating_add(1));
    let since = p.since_ms.unwrap_or(until.saturating_sub(DAY_MS));
    let bucket = match p.bucket.as_deref() {
        None | Some("hour") => Bucket::Hour,
        Some("day") => Bucket::Day,
        Some(_) => return Err(bad("`bucket` is `hour` or `day`.", "bucket")),
    };
    let mut group_by = Vec::new();
    for g in p
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|g| !g.is_empty())
    {
        group_by.push(match g.trim() {
            "model" => Dimension::Model,
            "provider" => Dimension::Provider,
            "client_key" => Dimension::ClientKey,
            _ => {
                return Err(bad(
                    "`group_by` lists `model`, `provider`, `client_key`.",
                    "group_by",
                ));
            }
        });
    }
    let rows = store(&state)?
        .usage(&UsageQuery {
            since_ms: since,
            until_ms: until,
            bucket,
            group_by,
            model: p.model,
            provider: p.provider,
            client_key_id: p.client_key_id,
        })
        .await
        .map_err(|e| db_error(&e))?;
    Ok(Json(
        rows.into_iter()
            .map(|r| UsageBucket {
                bucket_ms: r.bucket_ms,
                model: r.model,
                provider: r.provider,
                client_key_id: r.client_key_id,
                requests: r.requests,
                errors: r.errors,
                error_rate: r.error_rate,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cached_tokens: r.cached_tokens,
                mean_latency_ms: r.mean_latency_ms,
                mean_ttft_ms: r.mean_ttft_ms,
                output_tokens_per_s: r.output_tokens_per_s,
            })
            .collect(),
    ))
}

/// Audit query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// From this time (Unix ms; default: 30 days ago).
    since_ms: Option<i64>,
    /// Before this time (Unix ms; default: now).
    until_ms: Option<i64>,
    /// `provider`, `model` or `client_key`.
    entity: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// Rows per page (default 50, at most 1000).
    limit: Option<u32>,
}

/// One audited change.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditItem {
    id: i64,
    ts_ms: i64,
    /// `admin-api` or `config-file`.
    actor: String,
    action: String,
    entity: String,
    entity_name: String,
    /// What changed (never secrets).
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Newest first.
    data: Vec<AuditItem>,
    /// Pass as `cursor` for the next page.
    next_cursor: Option<i64>,
}

/// Every change made to the catalogue and client keys, newest first.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "observe", params(AuditParams),
    responses((status = 200, body = AuditPage)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    super::QueryOf(p): super::QueryOf<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let until = p.until_ms.unwrap_or_else(|| now_ms().saturating_add(1));
    let since = p.since_ms.unwrap_or(until.saturating_sub(30 * DAY_MS));
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad("`limit` must be in 1..=1000.", "limit"));
    }
    let rows = store(&state)?
        .audit(&AuditQuery {
            since_ms: since,
            until_ms: until,
            entity: p.entity,
            before_id: p.cursor,
            limit,
        })
        .await
        .map_err(|e| db_error(&e))?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPage {
        data: rows
            .into_iter()
            .map(|r| AuditItem {
                id: r.id,
                ts_ms: r.ts_ms,
                actor: r.actor,
                action: r.action,
                entity: r.entity,
                entity_name: r.entity_name,
                detail: serde_json::from_str(&r.detail_json).unwrap_or_default(),
            })
            .collect(),
        next_cursor,
    }))
}

/// A plugin file as the host sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PluginItem {
    /// The file.
    file: String,
    /// `loaded` or `rejected`.
    state: &'static str,
    /// Plugin id (loaded files).
    id: Option<String>,
    /// Semver version (loaded files).
    version: Option<String>,
    /// `adapter`, `dialect` or `transformer` (loaded files).
    kind: Option<String>,
    /// Hex SHA-256 of the file.
    sha256: String,
    /// When it was loaded (Unix ms).
    loaded_ms: Option<i64>,
    /// Compile and validation time.
    load_time_ms: Option<u64>,
    /// Why it was refused (rejected files).
    error: Option<String>,
    /// Whether it is the version requests use.
    active: bool,
    /// Guest calls made by this version (loaded files).
    calls: Option<u64>,
    /// Mean wall time of a call, µs.
    mean_call_us: Option<f64>,
    /// Faults by kind: trap, deadline, memory_limit, invalid_output,
    /// output_too_large, capacity.
    #[schema(value_type = Option<Object>)]
    faults: Option<serde_json::Map<String, serde_json::Value>>,
    /// Typed errors the plugin returned, by class (upstream errors it
    /// recognised, input it refused).
    #[schema(value_type = Option<Object>)]
    errors: Option<serde_json::Map<String, serde_json::Value>>,
    /// Milliseconds left in quarantine (`null`: not quarantined).
    quarantined_ms: Option<u64>,
    /// Quarantines of this version so far.
    quarantines: Option<u32>,
}

/// The counters of a loaded version, as the fields of its item.
fn stats_of(p: &orch_plugin_host::LoadedPlugin) -> PluginItem {
    let v = p.stats.view(std::time::Instant::now());
    #[allow(clippy::cast_precision_loss, reason = "a mean for display")]
    let mean = (v.calls > 0).then(|| v.call_time.as_secs_f64() * 1e6 / v.calls as f64);
    PluginItem {
        file: String::new(),
        state: "loaded",
        id: None,
        version: None,
        kind: None,
        sha256: String::new(),
        loaded_ms: None,
        load_time_ms: None,
        error: None,
        active: false,
        calls: Some(v.calls),
        mean_call_us: mean,
        faults: Some(
            v.faults
                .into_iter()
                .map(|(k, n)| (k.to_string(), serde_json::json!(n)))
                .collect(),
        ),
        errors: Some(
            v.errors
                .into_iter()
                .map(|(k, n)| (k.to_string(), serde_json::json!(n)))
                .collect(),
        ),
        quarantined_ms: v
            .quarantined_for
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        quarantines: Some(v.quarantines),
    }
}

/// Plugin files: loaded (id, version, kind, hash, load time, calls, faults,
/// quarantine) and rejected (why).
#[utoipa::path(get, path = "/admin/v1/plugins", tag = "observe",
    responses((status = 200, body = [PluginItem])))]
pub(crate) async fn plugins(State(state): State<AppState>) -> Json<Vec<PluginItem>> {
    use orch_plugin_host::FileState;
    let snap = state.services().plugins.snapshot();
    let active: std::collections::HashSet<String> =
        snap.active().map(|p| p.sha256.clone()).collect();
    let items = snap
        .files()
        .map(|(path, file)| match file {
            FileState::Loaded(p) => PluginItem {
                file: path.display().to_string(),
                state: "loaded",
                id: Some(p.info.id.clone()),
                version: Some(p.info.version.to_string()),
                kind: Some(format!("{:?}", p.info.kind).to_lowercase()),
                sha256: p.sha256.clone(),
                loaded_ms: p
                    .loaded_at
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .and_then(|d| i64::try_from(d.as_millis()).ok()),
                load_time_ms: u64::try_from(p.load_time.as_millis()).ok(),
                error: None,
                active: active.contains(&p.sha256),
                ..stats_of(p)
            },
            FileState::Rejected { sha256, reason, .. } => PluginItem {
                file: path.display().to_string(),
                state: "rejected",
                id: None,
                version: None,
                kind: None,
                sha256: sha256.clone(),
                loaded_ms: None,
                load_time_ms: None,
                error: Some(reason.clone()),
                active: false,
                calls: None,
                mean_call_us: None,
                faults: None,
                errors: None,
                quarantined_ms: None,
                quarantines: None,
            },
        })
        .collect();
    Json(items)
}

/// Providers (keys masked, with their states) and targets (health state,
/// counts, latency, ejections), as this replica sees them.
#[utoipa::path(get, path = "/admin/v1/health", tag = "observe",
    responses((status = 200, description = "Providers and targets", body = Object)))]
pub(crate) async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    crate::ops::providers(State(state), headers)
        .await
        .into_response()
}

/// A transformer attachment with its counters.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TransformerItem {
    /// Its position among `[[transformers]]` (its order in the chain).
    index: usize,
    /// The transformer plugin's id.
    plugin: String,
    /// The model patterns it is limited to (`null`: every model).
    models: Option<Vec<String>>,
    /// The client keys it is limited to, by id or name (`null`: every request).
    #[schema(value_type = Option<Vec<Object>>)]
    client_keys: Option<Vec<serde_json::Value>>,
    /// `fail-closed` or `fail-open`.
    on_error: &'static str,
    /// The loaded version of its plugin (`null`: not loaded).
    version: Option<String>,
    /// The plugin's verdict on the configuration, once checked (`null`:
    /// not checked yet for the loaded version).
    config_error: Option<String>,
    /// Whether the configuration was checked and accepted by the loaded version.
    config_ok: Option<bool>,
    /// Hook calls.
    calls: u64,
    /// Bodies or chunks replaced.
    replaced: u64,
    /// Requests or responses refused on purpose.
    rejected: u64,
    /// Failures that failed the request (fail-closed).
    failed: u64,
    /// Failures skipped (fail-open).
    skipped: u64,
}

/// Transformer attachments in chain order, with their counters.
#[utoipa::path(get, path = "/admin/v1/transformers", tag = "observe",
    responses((status = 200, body = [TransformerItem])))]
pub(crate) async fn transformers(State(state): State<AppState>) -> Json<Vec<TransformerItem>> {
    use std::sync::atomic::Ordering::Relaxed;
    let snap = state.services().plugins.snapshot();
    let all = state.transformers();
    let items = all
        .views()
        .map(|(n, a, s)| {
            let plugin = snap.transformer(&a.plugin);
            let verdict = plugin.and_then(|p| all.verdict(n, &p.sha256));
            TransformerItem {
                index: a.index,
                plugin: a.plugin.clone(),
                models: a.models.clone(),
                client_keys: a.client_keys.as_ref().map(|refs| {
                    refs.iter()
                        .map(|r| match r {
                            orch_core::transform::ClientRef::Id(id) => serde_json::json!(id),
                            orch_core::transform::ClientRef::Name(n) => serde_json::json!(n),
                        })
                        .collect()
                }),
                on_error: a.on_error.as_str(),
                version: plugin.map(|p| p.info.version.to_string()),
                config_ok: verdict.as_ref().map(Result::is_ok),
                config_error: verdict.and_then(Result::err),
                calls: s.calls.load(Relaxed),
                replaced: s.replaced.load(Relaxed),
                rejected: s.rejected.load(Relaxed),
                failed: s.failed.load(Relaxed),
                skipped: s.skipped.load(Relaxed),
            }
        })
        .collect();
    Json(items)
}

/// Shadow-mode comparisons: counters per primary → shadow pair, and the
/// recent differences (newest first; bodies described, never shown).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShadowView {
    /// Per pair of versions.
    pairs: Vec<crate::shadow::PairStats>,
    /// The last differences and failures.
    recent: Vec<crate::shadow::ShadowDiff>,
}

/// Shadow-mode comparisons of adapter versions (targets with `shadow`).
#[utoipa::path(get, path = "/admin/v1/shadow", tag = "observe",
    responses((status = 200, body = ShadowView)))]
pub(crate) async fn shadow(State(state): State<AppState>) -> Json<ShadowView> {
    let (pairs, recent) = state.shadow_book().view();
    Json(ShadowView { pairs, recent })
}
