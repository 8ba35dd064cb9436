//! Configuration: a TOML file plus `ORCH_`-prefixed environment variables,
//! deserialised into raw types that deny unknown keys, then validated into
//! [`Config`]. Secrets are written as `"env:NAME"` and resolved here; they are
//! held as [`SecretString`] from then on.
//!
//! Environment overrides use `__` between levels, e.g.
//! `ORCH_SERVER__LISTEN=0.0.0.0:8080` or `ORCH_DATABASE__URL=...`.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::catalog::{Compiled, ModelEntry, ModelSpec, ProviderEntry, ProviderSpec, compile};
use crate::routing::ModelRoute;
use crate::routing::health::HealthPolicy;
use crate::routing::keys::{KeyPolicy, KeyStrategy};
use crate::routing::retry::RetryPolicy;
use crate::secrets::{Keyring, MasterKey};

mod keys;
mod plugin_refs;

pub use plugin_refs::AvailablePlugins;

/// The top-level sections; only `ORCH_<SECTION>__<KEY>` variables are read
/// as configuration, so other `ORCH_*` variables (like `ORCH_CONFIG`) are not.
const SECTIONS: &[&str] = &[
    "server",
    "database",
    "redis",
    "secrets",
    "request_log",
    "plugins",
    "auth",
    "upstream",
    "logging",
    "metrics",
    "telemetry",
    "routing",
    "health",
    "admin",
];

/// Where `serve` looks for its configuration by default.
pub const DEFAULT_CONFIG_PATH: &str = "config/orchestrator.toml";

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing, unreadable or not TOML.
    #[error("{file}: {message}")]
    Parse {
        /// The configuration file.
        file: PathBuf,
        /// What went wrong, naming the key.
        message: String,
    },
    /// Keys are unknown, values of the wrong type or not acceptable.
    #[error("{file}: invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The configuration file.
        file: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// One problem in a configuration: the key and why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, e.g. `providers[0].base_url`.
    pub key: String,
    /// Why it is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// The listener.
    pub server: ServerConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Redis, shared by the replicas (`None`: this instance alone).
    pub redis: Option<RedisConfig>,
    /// Encryption of provider keys at rest.
    pub secrets: SecretsConfig,
    /// The asynchronous request log.
    pub request_log: RequestLogConfig,
    /// The plugin host.
    pub plugins: PluginsConfig,
    /// Client authentication.
    pub auth: AuthConfig,
    /// The upstream HTTP client.
    pub upstream: UpstreamConfig,
    /// Process logging.
    pub logging: LoggingConfig,
    /// Trace export (`[telemetry]`).
    pub telemetry: TelemetryConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Upstream providers.
    pub providers: Vec<ProviderConfig>,
    /// Models clients can ask for.
    pub models: Vec<ModelRoute>,
    /// The providers as written (for importing into the database).
    pub provider_specs: Vec<ProviderSpec>,
    /// The models as written (for importing into the database).
    pub model_specs: Vec<ModelSpec>,
    /// Retry defaults of every model (`[routing]`).
    pub routing: RetryPolicy,
    /// Health thresholds, key states and active probes.
    pub health: HealthConfig,
    /// The operator API.
    pub admin: AdminConfig,
    /// Transformer attachments, in order (`[[transformers]]`).
    pub transformers: Vec<crate::transform::Attachment>,
    /// Things that are allowed but worth a warning at start.
    pub warnings: Vec<String>,
}

/// The listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Deadline for a whole request, all attempts included (streams: until
    /// the first content chunk).
    pub request_timeout: Duration,
    /// Largest accepted request body on the inference routes.
    pub max_body_bytes: usize,
    /// Largest accepted request body on the admin API (`/admin/...`).
    pub admin_max_body_bytes: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a request body may stall between two chunks (408).
    pub body_idle_timeout: Duration,
    /// Requests in progress at most (responses until their body ends);
    /// beyond, 503 with `Retry-After`. Health and metrics are exempt.
    pub max_in_flight: u64,
    /// Request header fields at most (HTTP/1; beyond, 431).
    pub max_headers: usize,
    /// Request line and headers at most, in bytes (HTTP/1: 431 beyond;
    /// HTTP/2: the advertised header list size).
    pub max_header_bytes: usize,
    /// HTTP/2: concurrent streams per connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the flow-control window of each stream, in bytes.
    pub http2_stream_window_bytes: u32,
    /// HTTP/2: the flow-control window of each connection, in bytes.
    pub http2_connection_window_bytes: u32,
    /// HTTP/2: ping an idle connection this often (`None`: never).
    pub http2_keep_alive_interval: Option<Duration>,
    /// HTTP/2: close a connection whose ping is not answered within this.
    pub http2_keep_alive_timeout: Duration,
    /// On shutdown, how long new connections are still accepted (with
    /// `/readyz` already answering 503) before the listener closes.
    pub drain_delay: Duration,
    /// On shutdown, the whole budget from the signal until the process
    /// exits (drain delay included); the request-log flush comes after it,
    /// bounded to under a second.
    pub shutdown_grace: Duration,
}

/// The database.
#[derive(Debug)]
pub struct DatabaseConfig {
    /// `sqlite://…`, `postgres://…` or `mysql://…`; may hold a password.
    pub url: SecretString,
    /// How often each replica checks the catalogue's revision.
    pub refresh_interval: Duration,
}

/// Redis, through which several replicas share limits, health and
/// catalogue changes.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://…`; may hold a password.
    pub url: SecretString,
    /// Prepended to every key and channel, so several gateways can share
    /// one Redis.
    pub prefix: String,
    /// The longest a Redis command may take before Redis counts as down.
    pub timeout: Duration,
    /// How often limits are synchronised (and sooner when a pool runs dry).
    pub sync_interval: Duration,
    /// `/readyz` answers 503 while Redis is unreachable.
    pub required: bool,
}

/// Encryption of provider keys stored in the database.
#[derive(Debug, Default)]
pub struct SecretsConfig {
    /// The current master key and the previous ones still accepted for
    /// decryption; `None` without `[secrets] master_key`.
    pub keyring: Option<std::sync::Arc<Keyring>>,
}

/// The asynchronous request log.
#[derive(Debug, Clone)]
pub struct RequestLogConfig {
    /// Whether requests are logged at all.
    pub enabled: bool,
    /// Records queued at most; the oldest are dropped (and counted) beyond.
    pub capacity: usize,
    /// Rows per insert.
    pub batch_size: usize,
    /// Longest time a record waits in the queue.
    pub flush_interval: Duration,
    /// Log rows (and captured bodies) older than this are deleted.
    pub max_age: Option<Duration>,
    /// At most this many log rows are kept.
    pub max_rows: Option<u64>,
    /// Hourly usage rollups older than this are deleted (daily ones stay).
    pub hourly_usage_max_age: Option<Duration>,
    /// Captured bodies are cut to this many bytes.
    pub capture_max_bytes: usize,
}

/// The plugin host.
#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// The folder plugins are loaded from.
    pub dir: PathBuf,
    /// Where compiled plugins are kept between starts and reloads (`None`:
    /// every start compiles every plugin in memory).
    pub cache_dir: Option<PathBuf>,
    /// CPU deadline for one plugin call.
    pub call_timeout: Duration,
    /// Linear memory cap per plugin instance.
    pub memory_limit_bytes: usize,
    /// Largest output a plugin call may return.
    pub max_output_bytes: usize,
    /// Plugin instances alive at once (each in-flight attempt holds one).
    pub max_instances: u32,
    /// Watch the folder and reload on change.
    pub watch: bool,
    /// Quiet time before a burst of file events is handled.
    pub debounce: Duration,
    /// Full rescan interval, for file systems without change events.
    pub rescan_interval: Duration,
    /// Faults of one plugin version within a minute that quarantine it
    /// (0: never).
    pub quarantine_after_faults: u32,
    /// The first quarantine's length (doubling with each one in a row).
    pub quarantine: Duration,
}

/// Client authentication.
#[derive(Debug)]
pub struct AuthConfig {
    /// Keys clients may present, without limits (keys with limits are
    /// issued through the admin API). With no key anywhere the API is open
    /// on a loopback address or with `allow_open`, and closed otherwise.
    pub client_keys: Vec<SecretString>,
    /// Serve an open API on a non-loopback address when no key exists.
    pub allow_open: bool,
}

/// The upstream HTTP client.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Time allowed until response headers arrive.
    pub header_timeout: Duration,
    /// Longest silence allowed while reading a body or stream.
    pub idle_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Largest non-streaming response body read.
    pub max_response_bytes: usize,
}

/// Process log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Process logging.
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directives (overridden by `RUST_LOG`).
    pub filter: String,
}

/// The Prometheus endpoint (`[metrics]`).
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// Serve it on this address of its own instead of the main listener
    /// (`None`: on the main port, next to the API).
    pub listen: Option<SocketAddr>,
}

/// Trace export over OTLP (`[telemetry]`).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Where the OTLP/HTTP collector listens (`http://collector:4318`);
    /// spans are posted to `<endpoint>/v1/traces`. `None`: nothing is
    /// exported (the file's value, else `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<url::Url>,
    /// The exported `service.name` (the file's value, else
    /// `OTEL_SERVICE_NAME`, else `llm-orchestrator`).
    pub service_name: String,
    /// The share of new traces recorded, 0.0 to 1.0; a client's
    /// `traceparent` decides for its own trace (parent-based sampling).
    pub sample_ratio: f64,
}

/// An upstream provider.
#[derive(Debug)]
pub struct ProviderConfig {
    /// Unique name.
    pub name: String,
    /// The adapter plugin id.
    pub adapter: String,
    /// Base URL; every upstream request must stay on its origin.
    pub base_url: url::Url,
    /// API keys, tried in order.
    pub api_keys: Vec<SecretString>,
    /// Adapter options as a JSON object.
    pub options_json: String,
    /// How requests spread over the keys.
    pub key_strategy: KeyStrategy,
    /// Substrings that mark a successful (2xx) body or stream event as a
    /// failure (errors some providers hide in a 200).
    pub error_matchers: Vec<String>,
    /// Active probe interval of healthy targets (`None`: the global one).
    pub probe_interval: Option<Duration>,
}

/// The operator endpoints (`/health/providers`, later `/admin/v1/`).
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// The bearer token; without one the operator endpoints are off.
    pub token: Option<SecretString>,
}

/// Health of targets and keys, and the active probes.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Passive health thresholds.
    pub policy: HealthPolicy,
    /// Key cool-downs and disabling.
    pub keys: KeyPolicy,
    /// How often healthy targets are probed (`None`: never; unhealthy ones
    /// are probed when their ejection ends).
    pub probe_interval: Option<Duration>,
    /// Bound on one probe.
    pub probe_timeout: Duration,
    /// At most this many probes per provider per minute.
    pub probe_budget_per_min: u32,
}

// ---------------------------------------------------------------------------
// Raw, as written in the file.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    redis: Option<RawRedis>,
    #[serde(default)]
    secrets: RawSecrets,
    #[serde(default)]
    request_log: RawRequestLog,
    #[serde(default)]
    plugins: RawPlugins,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    logging: RawLogging,
    #[serde(default)]
    telemetry: RawTelemetry,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    providers: Vec<ProviderSpec>,
    #[serde(default)]
    models: Vec<ModelSpec>,
    #[serde(default)]
    routing: RawRouting,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    transformers: Vec<crate::transform::AttachmentSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAdmin {
    token: Option<SecretRef>,
}

/// Retry defaults of every model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRouting {
    max_attempts: u32,
    backoff_base_ms: u64,
    backoff_cap_ms: u64,
    retry_after_cap_ms: u64,
    retry_budget_ratio: f64,
    retry_budget_min_per_sec: f64,
}

impl Default for RawRouting {
    fn default() -> Self {
        let d = RetryPolicy::default();
        RawRouting {
            max_attempts: d.max_attempts,
            backoff_base_ms: millis(d.backoff_base),
            backoff_cap_ms: millis(d.backoff_cap),
            retry_after_cap_ms: millis(d.retry_after_cap),
            retry_budget_ratio: d.budget_ratio,
            retry_budget_min_per_sec: d.budget_min_per_sec,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHealth {
    window_s: u64,
    window_size: usize,
    min_samples: usize,
    degraded_error_ratio: f64,
    unhealthy_error_ratio: f64,
    eject_after_failures: u32,
    recover_after_successes: u32,
    base_ejection_ms: u64,
    max_ejection_ms: u64,
    degraded_latency_ms: Option<u64>,
    latency_half_life_s: u64,
    key_cooldown_ms: u64,
    max_key_cooldown_ms: u64,
    key_disable_s: u64,
    probe_interval_s: u64,
    probe_timeout_ms: u64,
    probe_budget_per_min: u32,
}

impl Default for RawHealth {
    fn default() -> Self {
        let h = HealthPolicy::default();
        let k = KeyPolicy::default();
        RawHealth {
            window_s: h.window.as_secs(),
            window_size: h.window_size,
            min_samples: h.min_samples,
            degraded_error_ratio: h.degraded_ratio,
            unhealthy_error_ratio: h.unhealthy_ratio,
            eject_after_failures: h.eject_after,
            recover_after_successes: h.recover_after,
            base_ejection_ms: millis(h.base_ejection),
            max_ejection_ms: millis(h.max_ejection),
            degraded_latency_ms: h.degraded_latency.map(millis),
            latency_half_life_s: h.latency_half_life.as_secs(),
            key_cooldown_ms: millis(k.default_cooldown),
            max_key_cooldown_ms: millis(k.max_cooldown),
            key_disable_s: k.disable_for.as_secs(),
            probe_interval_s: 60,
            probe_timeout_ms: 5_000,
            probe_budget_per_min: 12,
        }
    }
}

/// `n` days; 0 means "forever" (`None`).
fn days(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n.saturating_mul(86_400)))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: SocketAddr,
    request_timeout_ms: u64,
    max_body_mib: u64,
    admin_max_body_mib: u64,
    header_read_timeout_ms: u64,
    body_idle_timeout_ms: u64,
    max_in_flight: u64,
    max_headers: usize,
    max_header_kib: usize,
    http2_max_concurrent_streams: u32,
    http2_stream_window_kib: u32,
    http2_connection_window_kib: u32,
    http2_keep_alive_interval_ms: u64,
    http2_keep_alive_timeout_ms: u64,
    drain_delay_ms: u64,
    shutdown_grace_ms: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 600_000,
            max_body_mib: 32,
            admin_max_body_mib: 1,
            header_read_timeout_ms: 10_000,
            body_idle_timeout_ms: 30_000,
            max_in_flight: 4096,
            max_headers: 100,
            max_header_kib: 64,
            http2_max_concurrent_streams: 256,
            http2_stream_window_kib: 256,
            http2_connection_window_kib: 1024,
            http2_keep_alive_interval_ms: 20_000,
            http2_keep_alive_timeout_ms: 20_000,
            drain_delay_ms: 5_000,
            shutdown_grace_ms: 30_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    url: SecretRef,
    refresh_interval_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: SecretRef,
    #[serde(default = "default_redis_prefix")]
    prefix: String,
    #[serde(default = "default_redis_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_redis_sync_ms")]
    sync_interval_ms: u64,
    #[serde(default)]
    required: bool,
}

fn default_redis_prefix() -> String {
    "orch".into()
}

fn default_redis_timeout_ms() -> u64 {
    500
}

fn default_redis_sync_ms() -> u64 {
    50
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: SecretRef("sqlite://data/orchestrator.db".into()),
            refresh_interval_ms: 500,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSecrets {
    master_key: Option<SecretRef>,
    previous_keys: Vec<SecretRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRequestLog {
    enabled: bool,
    capacity: usize,
    batch_size: usize,
    flush_interval_ms: u64,
    retention_days: u64,
    max_rows: u64,
    hourly_usage_days: u64,
    capture_max_kib: usize,
}

impl Default for RawRequestLog {
    fn default() -> Self {
        RawRequestLog {
            enabled: true,
            capacity: 10_000,
            batch_size: 256,
            flush_interval_ms: 200,
            retention_days: 30,
            max_rows: 0,
            hourly_usage_days: 90,
            capture_max_kib: 16,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPlugins {
    dir: PathBuf,
    cache_dir: Option<PathBuf>,
    call_timeout_ms: u64,
    memory_limit_mib: u64,
    max_output_mib: u64,
    max_instances: u32,
    watch: bool,
    debounce_ms: u64,
    rescan_interval_s: u64,
    quarantine_after_faults: u32,
    quarantine_s: u64,
}

impl Default for RawPlugins {
    fn default() -> Self {
        RawPlugins {
            dir: PathBuf::from("target/plugins"),
            cache_dir: None,
            call_timeout_ms: 50,
            memory_limit_mib: 64,
            max_output_mib: 16,
            max_instances: 1000,
            watch: true,
            debounce_ms: 300,
            rescan_interval_s: 30,
            quarantine_after_faults: 5,
            quarantine_s: 30,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    client_keys: Vec<SecretRef>,
    allow_open: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    connect_timeout_ms: u64,
    header_timeout_ms: u64,
    idle_timeout_ms: u64,
    pool_idle_timeout_s: u64,
    max_response_mib: u64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout_ms: 5_000,
            header_timeout_ms: 120_000,
            idle_timeout_ms: 120_000,
            pool_idle_timeout_s: 90,
            max_response_mib: 32,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLogging {
    format: LogFormat,
    filter: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    enabled: bool,
    listen: Option<SocketAddr>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            listen: None,
        }
    }
}

impl Default for RawLogging {
    fn default() -> Self {
        RawLogging {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTelemetry {
    otlp_endpoint: Option<String>,
    service_name: Option<String>,
    sample_ratio: f64,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: 1.0,
        }
    }
}

/// The default `service.name` of exported spans.
pub const DEFAULT_SERVICE_NAME: &str = "llm-orchestrator";

/// `[telemetry]` validated; the standard `OTEL_EXPORTER_OTLP_ENDPOINT` and
/// `OTEL_SERVICE_NAME` fill in what the file leaves out. An empty
/// `otlp_endpoint` in the file turns export off even when the variable is set.
fn telemetry_config(
    raw: RawTelemetry,
    env: &dyn Fn(&str) -> Option<String>,
    problem: &mut dyn FnMut(String, String),
    warnings: &mut Vec<String>,
) -> TelemetryConfig {
    let valid = |e: &str| {
        url::Url::parse(e.trim())
            .map_err(|err| format!("not a URL: {err}"))
            .and_then(|u| {
                if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() {
                    Ok(u)
                } else {
                    Err("must be an http:// or https:// URL with a host".into())
                }
            })
    };
    let otlp_endpoint = match raw.otlp_endpoint {
        Some(e) if e.trim().is_empty() => None,
        Some(e) => valid(&e)
            .map_err(|reason| problem("telemetry.otlp_endpoint".into(), reason))
            .ok(),
        None => env("OTEL_EXPORTER_OTLP_ENDPOINT")
            .filter(|e| !e.trim().is_empty())
            .and_then(|e| {
                valid(&e)
                    .map_err(|reason| {
                        warnings.push(format!(
                            "OTEL_EXPORTER_OTLP_ENDPOINT is ignored ({reason}): no traces are exported"
                        ));
                    })
                    .ok()
            }),
    };
    let service_name = raw
        .service_name
        .or_else(|| env("OTEL_SERVICE_NAME"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into());
    if service_name.is_empty() || service_name.len() > 255 {
        problem(
            "telemetry.service_name".into(),
            "must be 1 to 255 characters".into(),
        );
    }
    if !(0.0..=1.0).contains(&raw.sample_ratio) {
        problem(
            "telemetry.sample_ratio".into(),
            "must be between 0.0 and 1.0".into(),
        );
    }
    TelemetryConfig {
        otlp_endpoint,
        service_name,
        sample_ratio: raw.sample_ratio,
    }
}

/// A secret as written in the file: `env:NAME` or (discouraged) the literal.
#[derive(Deserialize, Clone)]
#[serde(transparent)]
struct SecretRef(String);

enum Resolved {
    Value(SecretString),
    Literal(SecretString),
}

impl SecretRef {
    fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, String> {
        match self.0.strip_prefix("env:") {
            Some("") => Err("`env:` needs a variable name".into()),
            Some(name) => match env(name) {
                Some(v) if !v.is_empty() => Ok(Resolved::Value(v.into())),
                Some(_) => Err(format!("environment variable {name} is empty")),
                None => Err(format!("environment variable {name} is not set")),
            },
            None => Ok(Resolved::Literal(self.0.clone().into())),
        }
    }
}

fn has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some())
}

/// Whether `id` is a valid plugin id: `[a-z0-9-]{1,64}`, not starting with `-`.
pub fn is_valid_plugin_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The configuration file merged with the `ORCH_<SECTION>__<KEY>` variables.
fn file_and_env(path: &Path) -> Figment {
    Figment::new().merge(Toml::file_exact(path)).merge(
        Env::prefixed("ORCH_")
            .filter(|key| {
                key.as_str().split_once("__").is_some_and(|(section, _)| {
                    SECTIONS.contains(&section.to_ascii_lowercase().as_str())
                })
            })
            .split("__"),
    )
}

impl Config {
    /// Load from a file plus the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::from_figment(path, file_and_env(path), &|name| std::env::var(name).ok())
    }

    /// The listen address (`[server] listen`) a file plus the process
    /// environment give, without validating anything else or resolving any
    /// secret (for `healthcheck`). `None` when it cannot be read.
    pub fn listen_address(path: &Path) -> Option<SocketAddr> {
        file_and_env(path).extract_inner("server.listen").ok()
    }

    /// Load from TOML text with an explicit environment (for tests and tools).
    pub fn from_toml(
        path: &Path,
        toml: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Self::from_figment(path, Figment::new().merge(Toml::string(toml)), env)
    }

    fn from_figment(
        path: &Path,
        figment: Figment,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (raw, mut found) = keys::extract(path, &figment)?;
        if found.is_empty() {
            return validate(path, raw, env);
        }
        if !found.dropped_entries {
            // Values dropped for a wrong type fall back to their defaults,
            // so the rest still validates; a dropped entry (a missing
            // required key) would shift positions, so validation waits.
            if let Err(ConfigError::Invalid { problems: more, .. }) = validate(path, raw, env) {
                found.list.extend(more);
            }
        }
        Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: found.list,
        })
    }

    /// The provider with this name.
    pub fn provider(&self, name: &str) -> Option<(usize, &ProviderConfig)> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
    }
}

fn validate(
    path: &Path,
    raw: RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut problem = |key: String, reason: String| problems.push(Problem { key, reason });

    let mut secret = |key: String, r: &SecretRef, problem: &mut dyn FnMut(String, String)| match r
        .resolve(env)
    {
        Ok(Resolved::Value(s)) => Some(s),
        Ok(Resolved::Literal(s)) => {
            warnings.push(format!(
                "{key} holds a literal secret; prefer \"env:NAME\" so it stays out of files"
            ));
            Some(s)
        }
        Err(reason) => {
            problem(key, reason);
            None
        }
    };

    let s = &raw.server;
    if s.request_timeout_ms == 0 {
        problem("server.request_timeout_ms".into(), "must be > 0".into());
    }
    if s.max_body_mib == 0 || s.max_body_mib > 1024 {
        problem("server.max_body_mib".into(), "must be in 1..=1024".into());
    }
    let mut in_range = |key: &str, value: u64, lo: u64, hi: u64| {
        if !(lo..=hi).contains(&value) {
            problem(format!("server.{key}"), format!("must be in {lo}..={hi}"));
        }
    };
    in_range("admin_max_body_mib", s.admin_max_body_mib, 1, 1024);
    in_range(
        "header_read_timeout_ms",
        s.header_read_timeout_ms,
        100,
        600_000,
    );
    in_range(
        "body_idle_timeout_ms",
        s.body_idle_timeout_ms,
        100,
        3_600_000,
    );
    in_range("max_in_flight", s.max_in_flight, 1, 10_000_000);
    in_range("max_headers", s.max_headers as u64, 8, 10_000);
    // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
    in_range("max_header_kib", s.max_header_kib as u64, 8, 16_384);
    in_range(
        "http2_max_concurrent_streams",
        u64::from(s.http2_max_concurrent_streams),
        1,
        100_000,
    );
    // HTTP/2 windows: at least the protocol's initial 64 KiB, at most 2^31-1 bytes.
    in_range(
        "http2_stream_window_kib",
        u64::from(s.http2_stream_window_kib),
        64,
        2_097_151,
    );
    in_range(
        "http2_connection_window_kib",
        u64::from(s.http2_connection_window_kib),
        64,
        2_097_151,
    );
    in_range(
        "http2_keep_alive_interval_ms",
        s.http2_keep_alive_interval_ms,
        0,
        3_600_000,
    );
    in_range(
        "http2_keep_alive_timeout_ms",
        s.http2_keep_alive_timeout_ms,
        100,
        3_600_000,
    );
    in_range("shutdown_grace_ms", s.shutdown_grace_ms, 0, 3_600_000);
    if s.drain_delay_ms > s.shutdown_grace_ms {
        problem(
            "server.drain_delay_ms".into(),
            format!(
                "must not exceed server.shutdown_grace_ms ({}): the grace period counts from \
                 the signal and includes the drain delay",
                s.shutdown_grace_ms
            ),
        );
    }

    // A database URL is only a secret when it carries a password.
    let db_url = if raw.database.url.0.starts_with("env:") || has_password(&raw.database.url.0) {
        secret("database.url".into(), &raw.database.url, &mut problem)
    } else {
        Some(SecretString::from(raw.database.url.0.clone()))
    };
    if let Some(url) = &db_url {
        use secrecy::ExposeSecret;
        let u = url.expose_secret();
        if !(u.starts_with("sqlite:")
            || u.starts_with("postgres://")
            || u.starts_with("postgresql://")
            || u.starts_with("mysql://")
            || u.starts_with("mariadb://"))
        {
            problem(
                "database.url".into(),
                "must start with sqlite:, postgres://, postgresql://, mysql:// or mariadb://"
                    .into(),
            );
        }
    }

    let redis = raw.redis.as_ref().and_then(|r| {
        let url = secret("redis.url".into(), &r.url, &mut problem);
        if let Some(url) = &url {
            use secrecy::ExposeSecret;
            let u = url.expose_secret();
            if u.starts_with("rediss://") {
                problem(
                    "redis.url".into(),
                    "TLS to Redis (rediss://) is not supported yet; use redis:// on a trusted network"
                        .into(),
                );
            } else if !u.starts_with("redis://") {
                problem("redis.url".into(), "must start with redis://".into());
            }
        }
        if r.prefix.is_empty() || r.prefix.contains(char::is_whitespace) {
            problem(
                "redis.prefix".into(),
                "must be non-empty, without spaces".into(),
            );
        }
        if !(10..=60_000).contains(&r.timeout_ms) {
            problem("redis.timeout_ms".into(), "must be in 10..=60000".into());
        }
        if !(10..=10_000).contains(&r.sync_interval_ms) {
            problem(
                "redis.sync_interval_ms".into(),
                "must be in 10..=10000".into(),
            );
        }
        Some(RedisConfig {
            url: url?,
            prefix: r.prefix.clone(),
            timeout: Duration::from_millis(r.timeout_ms),
            sync_interval: Duration::from_millis(r.sync_interval_ms),
            required: r.required,
        })
    });

    let l = &raw.request_log;
    if l.capacity == 0 || l.batch_size == 0 || l.flush_interval_ms == 0 {
        problem(
            "request_log".into(),
            "capacity, batch_size and flush_interval_ms must be > 0".into(),
        );
    }

    let p = &raw.plugins;
    if p.call_timeout_ms == 0 || p.call_timeout_ms > 60_000 {
        problem(
            "plugins.call_timeout_ms".into(),
            "must be in 1..=60000".into(),
        );
    }
    if p.memory_limit_mib == 0 || p.memory_limit_mib > 4096 {
        problem(
            "plugins.memory_limit_mib".into(),
            "must be in 1..=4096".into(),
        );
    }
    if p.max_output_mib == 0 || p.max_output_mib > 1024 {
        problem(
            "plugins.max_output_mib".into(),
            "must be in 1..=1024".into(),
        );
    }
    if p.max_instances == 0 || p.max_instances > 100_000 {
        problem(
            "plugins.max_instances".into(),
            "must be in 1..=100000".into(),
        );
    }

    let client_keys: Vec<SecretString> = raw
        .auth
        .client_keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| secret(format!("auth.client_keys[{i}]"), k, &mut problem))
        .collect();
    let closed_when_keyless = raw.auth.client_keys.is_empty()
        && !raw.server.listen.ip().is_loopback()
        && !raw.auth.allow_open;

    let u = &raw.upstream;
    if u.connect_timeout_ms == 0 || u.header_timeout_ms == 0 || u.idle_timeout_ms == 0 {
        problem("upstream".into(), "timeouts must be > 0".into());
    }
    if u.max_response_mib == 0 || u.max_response_mib > 1024 {
        problem(
            "upstream.max_response_mib".into(),
            "must be in 1..=1024".into(),
        );
    }

    let provider_keys: Vec<Vec<SecretString>> = raw
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.api_keys
                .iter()
                .enumerate()
                .filter_map(|(j, k)| {
                    let at = format!("providers[{i}].api_keys[{j}]");
                    secret(at, &SecretRef(k.clone()), &mut problem)
                })
                .collect()
        })
        .collect();
    let admin_token = raw
        .admin
        .token
        .as_ref()
        .and_then(|t| secret("admin.token".into(), t, &mut problem));
    if let Some(t) = &admin_token {
        use secrecy::ExposeSecret;
        if t.expose_secret().len() < 16 {
            problem(
                "admin.token".into(),
                "must be at least 16 characters".into(),
            );
        }
    }
    if raw.database.refresh_interval_ms < 100 || raw.database.refresh_interval_ms > 3_600_000 {
        problem(
            "database.refresh_interval_ms".into(),
            "must be in 100..=3600000".into(),
        );
    }
    let mut master = |key: String, r: &SecretRef, problem: &mut dyn FnMut(String, String)| {
        use secrecy::ExposeSecret;
        let s = secret(key.clone(), r, problem)?;
        MasterKey::parse(s.expose_secret())
            .map_err(|e| problem(key, e.to_string()))
            .ok()
    };
    let current = raw
        .secrets
        .master_key
        .as_ref()
        .and_then(|r| master("secrets.master_key".into(), r, &mut problem));
    let previous: Vec<MasterKey> = raw
        .secrets
        .previous_keys
        .iter()
        .enumerate()
        .filter_map(|(i, r)| master(format!("secrets.previous_keys[{i}]"), r, &mut problem))
        .collect();
    if current.is_none()
        && !raw.secrets.previous_keys.is_empty()
        && raw.secrets.master_key.is_none()
    {
        problem(
            "secrets.previous_keys".into(),
            "needs secrets.master_key (the key new secrets are sealed with)".into(),
        );
    }
    let keyring = current.map(|c| std::sync::Arc::new(Keyring::new(c, previous)));
    let retry = retry_policy(&raw.routing, &mut problem);
    let health = health_config(&raw.health, &mut problem);
    let telemetry = telemetry_config(raw.telemetry, env, &mut problem, &mut warnings);

    let entries: Vec<ProviderEntry<'_>> = raw
        .providers
        .iter()
        .zip(provider_keys)
        .enumerate()
        .map(|(i, (spec, keys))| ProviderEntry {
            at: format!("providers[{i}]"),
            spec,
            keys,
        })
        .collect();
    let models: Vec<ModelEntry<'_>> = raw
        .models
        .iter()
        .enumerate()
        .map(|(i, spec)| ModelEntry {
            at: format!("models[{i}]"),
            spec,
        })
        .collect();
    let compiled = match compile(&entries, &models, &retry) {
        Ok(c) => c,
        Err(found) => {
            for p in found {
                problem(p.key, p.reason);
            }
            Compiled::default()
        }
    };
    if closed_when_keyless {
        warnings.push(format!(
            "auth.client_keys is empty and server.listen ({}) is not a loopback address: \
             inference requests are refused until a client key is created through the admin \
             API (set auth.allow_open = true to serve an open API on purpose)",
            raw.server.listen
        ));
    } else if raw.auth.client_keys.is_empty() {
        warnings.push(
            "auth.client_keys is empty: until a client key is created through the admin API, \
             the API accepts requests without a key"
                .into(),
        );
    }
    let transformers = crate::transform::validate(raw.transformers, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems,
        });
    }
    let Some(db_url) = db_url else {
        return Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: vec![Problem {
                key: "database.url".into(),
                reason: "missing".into(),
            }],
        });
    };
    let mib = |m: u64| usize::try_from(m.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    Ok(Config {
        source: path.to_path_buf(),
        server: ServerConfig {
            listen: raw.server.listen,
            request_timeout: Duration::from_millis(raw.server.request_timeout_ms),
            max_body_bytes: mib(raw.server.max_body_mib),
            admin_max_body_bytes: mib(raw.server.admin_max_body_mib),
            header_read_timeout: Duration::from_millis(raw.server.header_read_timeout_ms),
            body_idle_timeout: Duration::from_millis(raw.server.body_idle_timeout_ms),
            max_in_flight: raw.server.max_in_flight,
            max_headers: raw.server.max_headers,
            max_header_bytes: raw.server.max_header_kib.saturating_mul(1024),
            http2_max_concurrent_streams: raw.server.http2_max_concurrent_streams,
            http2_stream_window_bytes: raw.server.http2_stream_window_kib.saturating_mul(1024),
            http2_connection_window_bytes: raw
                .server
                .http2_connection_window_kib
                .saturating_mul(1024),
            http2_keep_alive_interval: (raw.server.http2_keep_alive_interval_ms > 0)
                .then(|| Duration::from_millis(raw.server.http2_keep_alive_interval_ms)),
            http2_keep_alive_timeout: Duration::from_millis(raw.server.http2_keep_alive_timeout_ms),
            drain_delay: Duration::from_millis(raw.server.drain_delay_ms),
            shutdown_grace: Duration::from_millis(raw.server.shutdown_grace_ms),
        },
        database: DatabaseConfig {
            url: db_url,
            refresh_interval: Duration::from_millis(raw.database.refresh_interval_ms),
        },
        redis,
        secrets: SecretsConfig { keyring },
        request_log: RequestLogConfig {
            enabled: raw.request_log.enabled,
            capacity: raw.request_log.capacity,
            batch_size: raw.request_log.batch_size,
            flush_interval: Duration::from_millis(raw.request_log.flush_interval_ms),
            max_age: days(raw.request_log.retention_days),
            max_rows: (raw.request_log.max_rows > 0).then_some(raw.request_log.max_rows),
            hourly_usage_max_age: days(raw.request_log.hourly_usage_days),
            capture_max_bytes: raw.request_log.capture_max_kib.saturating_mul(1024),
        },
        plugins: PluginsConfig {
            dir: raw.plugins.dir,
            cache_dir: raw.plugins.cache_dir.filter(|d| !d.as_os_str().is_empty()),
            call_timeout: Duration::from_millis(raw.plugins.call_timeout_ms),
            memory_limit_bytes: mib(raw.plugins.memory_limit_mib),
            max_output_bytes: mib(raw.plugins.max_output_mib),
            max_instances: raw.plugins.max_instances,
            watch: raw.plugins.watch,
            debounce: Duration::from_millis(raw.plugins.debounce_ms),
            rescan_interval: Duration::from_secs(raw.plugins.rescan_interval_s.max(1)),
            quarantine_after_faults: raw.plugins.quarantine_after_faults,
            quarantine: Duration::from_secs(raw.plugins.quarantine_s.max(1)),
        },
        auth: AuthConfig {
            client_keys,
            allow_open: raw.auth.allow_open,
        },
        upstream: UpstreamConfig {
            connect_timeout: Duration::from_millis(raw.upstream.connect_timeout_ms),
            header_timeout: Duration::from_millis(raw.upstream.header_timeout_ms),
            idle_timeout: Duration::from_millis(raw.upstream.idle_timeout_ms),
            pool_idle_timeout: Duration::from_secs(raw.upstream.pool_idle_timeout_s),
            max_response_bytes: mib(raw.upstream.max_response_mib),
        },
        logging: LoggingConfig {
            format: raw.logging.format,
            filter: raw.logging.filter,
        },
        telemetry,
        metrics: MetricsConfig {
            enabled: raw.metrics.enabled,
            listen: raw.metrics.listen,
        },
        providers: compiled.providers,
        models: compiled.models,
        provider_specs: raw.providers.clone(),
        model_specs: raw.models.clone(),
        routing: retry,
        health,
        admin: AdminConfig { token: admin_token },
        transformers,
        warnings,
    })
}

/// A lower-cased header name, if `name` is one.
pub(crate) fn http_header_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then(|| name.to_ascii_lowercase())
}

fn retry_policy(r: &RawRouting, problem: &mut dyn FnMut(String, String)) -> RetryPolicy {
    if r.max_attempts == 0 || r.max_attempts > 20 {
        problem("routing.max_attempts".into(), "must be in 1..=20".into());
    }
    if r.backoff_cap_ms < r.backoff_base_ms {
        problem(
            "routing.backoff_cap_ms".into(),
            "must be ≥ routing.backoff_base_ms".into(),
        );
    }
    if !(0.0..=10.0).contains(&r.retry_budget_ratio) {
        problem(
            "routing.retry_budget_ratio".into(),
            "must be in 0..=10".into(),
        );
    }
    if !(0.0..=10_000.0).contains(&r.retry_budget_min_per_sec) {
        problem(
            "routing.retry_budget_min_per_sec".into(),
            "must be in 0..=10000".into(),
        );
    }
    RetryPolicy {
        max_attempts: r.max_attempts.clamp(1, 20),
        backoff_base: Duration::from_millis(r.backoff_base_ms),
        backoff_cap: Duration::from_millis(r.backoff_cap_ms),
        retry_after_cap: Duration::from_millis(r.retry_after_cap_ms),
        budget_ratio: r.retry_budget_ratio,
        budget_min_per_sec: r.retry_budget_min_per_sec,
    }
}

fn health_config(h: &RawHealth, problem: &mut dyn FnMut(String, String)) -> HealthConfig {
    let mut check = |ok: bool, key: &str, reason: &str| {
        if !ok {
            problem(format!("health.{key}"), reason.into());
        }
    };
    check(h.window_s > 0, "window_s", "must be > 0");
    check(h.window_size > 0, "window_size", "must be > 0");
    check(
        h.min_samples > 0 && h.min_samples <= h.window_size,
        "min_samples",
        "must be in 1..=window_size",
    );
    check(
        (0.0..=1.0).contains(&h.degraded_error_ratio),
        "degraded_error_ratio",
        "must be in 0..=1",
    );
    check(
        h.unhealthy_error_ratio > 0.0
            && h.unhealthy_error_ratio <= 1.0
            && h.unhealthy_error_ratio >= h.degraded_error_ratio,
        "unhealthy_error_ratio",
        "must be in 0..=1 and ≥ degraded_error_ratio",
    );
    check(
        h.eject_after_failures > 0,
        "eject_after_failures",
        "must be > 0",
    );
    check(
        h.recover_after_successes > 0,
        "recover_after_successes",
        "must be > 0",
    );
    check(
        h.base_ejection_ms > 0 && h.max_ejection_ms >= h.base_ejection_ms,
        "max_ejection_ms",
        "base_ejection_ms must be > 0 and ≤ max_ejection_ms",
    );
    check(
        h.latency_half_life_s > 0,
        "latency_half_life_s",
        "must be > 0",
    );
    check(h.probe_timeout_ms > 0, "probe_timeout_ms", "must be > 0");
    HealthConfig {
        policy: HealthPolicy {
            window: Duration::from_secs(h.window_s),
            window_size: h.window_size,
            min_samples: h.min_samples,
            degraded_ratio: h.degraded_error_ratio,
            unhealthy_ratio: h.unhealthy_error_ratio,
            eject_after: h.eject_after_failures,
            recover_after: h.recover_after_successes,
            base_ejection: Duration::from_millis(h.base_ejection_ms),
            max_ejection: Duration::from_millis(h.max_ejection_ms),
            degraded_latency: h.degraded_latency_ms.map(Duration::from_millis),
            latency_half_life: Duration::from_secs(h.latency_half_life_s),
        },
        keys: KeyPolicy {
            default_cooldown: Duration::from_millis(h.key_cooldown_ms),
            max_cooldown: Duration::from_millis(h.max_key_cooldown_ms),
            disable_for: Duration::from_secs(h.key_disable_s),
        },
        probe_interval: (h.probe_interval_s > 0).then(|| Duration::from_secs(h.probe_interval_s)),
        probe_timeout: Duration::from_millis(h.probe_timeout_ms),
        probe_budget_per_min: h.probe_budget_per_min,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("test.toml"), toml, &|n| {
            (n == "KEY").then(|| "sk-secret".to_string())
        })
    }

    fn problems(toml: &str) -> Vec<String> {
        match load(toml) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
            Ok(_) => vec![],
        }
    }

    const GOOD: &str = r#"
        [server]
        listen = "127.0.0.1:9000"
        [[providers]]
        name = "openai"
        adapter = "openai"
        base_url = "https://api.openai.com/v1"
        api_keys = ["env:KEY"]
        options = { organization = "org" }
        [[models]]
        name = "gpt"
        targets = [{ provider = "openai", model = "gpt-4o-mini", weight = 2 }]
    "#;

    #[test]
    fn loads_a_good_file_with_defaults() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.providers[0].api_keys[0].expose_secret(), "sk-secret");
        assert_eq!(c.providers[0].options_json, r#"{"organization":"org"}"#);
        assert_eq!(c.models[0].targets[0].weight, 2);
        assert_eq!(c.plugins.call_timeout, Duration::from_millis(50));
        assert_eq!(c.plugins.memory_limit_bytes, 64 << 20);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("client_keys is empty"))
        );
    }

    #[test]
    fn redis_is_optional_and_checked() {
        assert!(load(GOOD).unwrap().redis.is_none());
        let c = load(&format!(
            "{GOOD}\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n"
        ))
        .unwrap();
        let r = c.redis.unwrap();
        assert_eq!(r.prefix, "orch");
        assert_eq!(r.timeout, Duration::from_millis(500));
        assert_eq!(r.sync_interval, Duration::from_millis(50));
        let errs = problems(&format!(
            "{GOOD}\n[redis]\nurl = \"env:MISSING\"\nprefix = \"\"\ntimeout_ms = 1\n"
        ));
        let text = errs.join("\n");
        for key in ["redis.url", "redis.prefix"] {
            assert!(text.contains(key), "{key} in {text}");
        }
        let errs = problems(&format!("{GOOD}\n[redis]\nurl = \"rediss://x\"\n"));
        assert!(errs.join("\n").contains("not supported"), "{errs:?}");
        let errs = problems(&format!(
            "{GOOD}\n[redis]\nurl = \"http://x\"\ntimeout_ms = 1\n"
        ));
        let text = errs.join("\n");
        for key in ["redis.url", "redis.timeout_ms"] {
            assert!(text.contains(key), "{key} in {text}");
        }
    }

    #[test]
    fn listener_limits_have_defaults_and_are_checked() {
        let c = load(GOOD).unwrap();
        let s = &c.server;
        assert_eq!(s.max_body_bytes, 32 << 20);
        assert_eq!(s.admin_max_body_bytes, 1 << 20);
        assert_eq!(s.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.body_idle_timeout, Duration::from_secs(30));
        assert_eq!(s.max_in_flight, 4096);
        assert_eq!(s.max_header_bytes, 64 << 10);
        assert_eq!(s.drain_delay, Duration::from_secs(5));
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.http2_keep_alive_interval, Some(Duration::from_secs(20)));
        let errs = problems(
            "[server]\nmax_in_flight = 0\nmax_header_kib = 4\nhttp2_stream_window_kib = 1\n\
             drain_delay_ms = 9000\nshutdown_grace_ms = 1000\nbody_idle_timeout_ms = 0\n",
        );
        let text = errs.join("\n");
        for key in [
            "server.max_in_flight",
            "server.max_header_kib",
            "server.http2_stream_window_kib",
            "server.drain_delay_ms",
            "server.body_idle_timeout_ms",
        ] {
            assert!(text.contains(key), "{key} in {text}");
        }
        let c = load(&format!(
            "{GOOD}\n[redis]\nurl = \"redis://127.0.0.1:6379\"\nrequired = true\n"
        ))
        .unwrap();
        assert!(c.redis.unwrap().required);
    }

    #[test]
    fn unknown_keys_name_the_key() {
        let errs = problems("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 1\n");
        assert!(errs[0].contains("listne"), "{errs:?}");
        let errs =
            problems("[[providers]]\nname=\"a\"\nadapter=\"a\"\nbase_url=\"http://x\"\nkey=1\n");
        assert!(errs[0].contains("key"), "{errs:?}");
    }

    #[test]
    fn bad_values_are_all_reported_with_their_keys() {
        let errs = problems(
            r#"
            [[providers]]
            name = "p"
            adapter = "Bad_Id"
            base_url = "ftp://x"
            api_keys = ["env:MISSING"]
            [[models]]
            name = "m"
            targets = [{ provider = "nope", model = "x" }]
        "#,
        );
        let joined = errs.join("\n");
        assert!(joined.contains("providers[0].adapter"), "{joined}");
        assert!(joined.contains("providers[0].base_url"), "{joined}");
        assert!(
            joined.contains("providers[0].api_keys[0]: environment variable MISSING is not set"),
            "{joined}"
        );
        assert!(joined.contains("models[0].targets[0].provider"), "{joined}");
    }

    #[test]
    fn an_open_api_on_a_public_address_needs_consent() {
        let closed = load("[server]\nlisten = \"0.0.0.0:8080\"\n").unwrap();
        assert!(!closed.auth.allow_open);
        assert!(
            closed
                .warnings
                .iter()
                .any(|w| w.contains("refused until a client key")),
            "{:?}",
            closed.warnings
        );
        let open =
            load("[server]\nlisten = \"0.0.0.0:8080\"\n[auth]\nallow_open = true\n").unwrap();
        assert!(open.auth.allow_open);
    }

    #[test]
    fn literal_secrets_work_but_warn() {
        let c = load("[auth]\nclient_keys = [\"sk-literal\"]\n").unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("auth.client_keys[0] holds a literal secret"))
        );
    }

    #[test]
    fn telemetry_reads_the_file_then_the_standard_variables() {
        let off = load(GOOD).unwrap().telemetry;
        assert!(off.otlp_endpoint.is_none());
        assert_eq!(off.service_name, "llm-orchestrator");
        assert!((off.sample_ratio - 1.0).abs() < f64::EPSILON);

        let otel = |n: &str| match n {
            "KEY" => Some("sk-secret".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://env-collector:4318".to_string()),
            "OTEL_SERVICE_NAME" => Some("gw-env".to_string()),
            _ => None,
        };
        let from_env = Config::from_toml(Path::new("t.toml"), GOOD, &otel).unwrap();
        let t = from_env.telemetry;
        assert_eq!(
            t.otlp_endpoint.unwrap().as_str(),
            "http://env-collector:4318/"
        );
        assert_eq!(t.service_name, "gw-env");

        let file = format!(
            "{GOOD}\n[telemetry]\notlp_endpoint = \"https://file:4318\"\n\
             service_name = \"gw\"\nsample_ratio = 0.25\n"
        );
        let t = Config::from_toml(Path::new("t.toml"), &file, &otel)
            .unwrap()
            .telemetry;
        assert_eq!(t.otlp_endpoint.unwrap().host_str(), Some("file"));
        assert_eq!(t.service_name, "gw");
        assert!((t.sample_ratio - 0.25).abs() < f64::EPSILON);
        // An empty endpoint in the file turns export off despite the variable.
        let file = format!("{GOOD}\n[telemetry]\notlp_endpoint = \"\"\n");
        let t = Config::from_toml(Path::new("t.toml"), &file, &otel)
            .unwrap()
            .telemetry;
        assert!(t.otlp_endpoint.is_none());
        // A bad variable (it may be meant for another program) only warns.
        let c = Config::from_toml(Path::new("t.toml"), GOOD, &|n| match n {
            "KEY" => Some("sk-secret".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("collector".to_string()),
            _ => None,
        })
        .unwrap();
        assert!(c.telemetry.otlp_endpoint.is_none());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("OTEL_EXPORTER_OTLP_ENDPOINT"))
        );

        let errs = problems(&format!(
            "{GOOD}\n[telemetry]\notlp_endpoint = \"grpc://x:4317\"\n\
             service_name = \"\"\nsample_ratio = 1.5\n"
        ))
        .join("\n");
        for key in [
            "telemetry.otlp_endpoint",
            "telemetry.service_name",
            "telemetry.sample_ratio",
        ] {
            assert!(errs.contains(key), "{key} in {errs}");
        }
        let errs = problems(&format!("{GOOD}\n[telemetry]\nendpoint = \"x\"\n")).join("\n");
        assert!(errs.contains("endpoint"), "{errs}");
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let c = load(GOOD).unwrap();
        assert!(!format!("{c:?}").contains("sk-secret"));
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn environment_overrides_only_known_sections() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server]\nlisten = \"127.0.0.1:1\"\n")?;
            jail.set_env("ORCH_SERVER__LISTEN", "127.0.0.1:2");
            jail.set_env("ORCH_CONFIG", "elsewhere.toml");
            jail.set_env("ORCH_TEST_PLUGINS", "/x");
            let c = Config::load(Path::new("c.toml")).map_err(|e| e.to_string())?;
            assert_eq!(c.server.listen.port(), 2);
            Ok(())
        });
    }

    #[test]
    fn plugin_ids() {
        assert!(is_valid_plugin_id("openai"));
        assert!(is_valid_plugin_id("my-adapter-2"));
        assert!(!is_valid_plugin_id(""));
        assert!(!is_valid_plugin_id("-x"));
        assert!(!is_valid_plugin_id("Open_AI"));
    }
}

#[cfg(test)]
mod shipped_files {
    use super::Config;
    use std::path::Path;

    /// The configuration files in `config/` load as they are shipped (with
    /// every `env:` secret set), so the examples never rot.
    #[test]
    fn the_shipped_configuration_files_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        for file in ["orchestrator.toml", "example.toml"] {
            let path = root.join(file);
            let text = std::fs::read_to_string(&path).expect("read");
            let config = Config::from_toml(&path, &text, &|_| Some("sk-test-value".into()));
            assert!(config.is_ok(), "{file}: {:?}", config.err());
        }
    }
}
