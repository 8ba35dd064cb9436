//! Application state: the long-lived services and the live, swappable view
//! of the configuration every request reads once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use orch_core::catalog::Compiled;
use orch_core::clients::key_hash;
use orch_core::config::{Config, HealthConfig, ProviderConfig};
use orch_core::contract::ProviderView;
use orch_core::routing::Catalogue;
use orch_core::routing::ModelRoute;
use orch_core::routing::health::Health;
use orch_core::routing::keys::KeyPool;
use orch_core::routing::retry::RetryBudget;
use orch_core::secrets::Keyring;
use orch_plugin_host::PluginHost;
use orch_store::{LogWriter, Snapshot, Store};
use orch_upstream::UpstreamClient;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Long-lived services the gateway is built from.
pub struct Services {
    /// Loaded plugins.
    pub plugins: Arc<PluginHost>,
    /// The upstream HTTP client.
    pub upstream: UpstreamClient,
    /// The asynchronous request log.
    pub log: LogWriter,
    /// The database, for the catalogue and the admin API (`None`: the
    /// catalogue is the file's alone and the admin API has no data).
    pub store: Option<Store>,
    /// The master keys that seal provider keys at rest.
    pub keyring: Option<Arc<Keyring>>,
    /// Redis, shared with the other replicas (`None`: this replica alone).
    pub share: Option<orch_share::Share>,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    live: ArcSwap<Live>,
    services: Services,
    book: Mutex<HealthBook>,
    probes: crate::probes::ProbeBook,
    settings: Settings,
    file: crate::catalog::FileSide,
    /// The database revision the live catalogue was compiled from.
    revision: AtomicI64,
    /// Wakes the refresh task (another replica changed the catalogue).
    reload_now: tokio::sync::Notify,
    /// The transformer attachments.
    transformers: Arc<crate::transform::Transformers>,
    /// Shadow-mode comparisons.
    shadow: Arc<crate::shadow::ShadowBook>,
    /// Requests in flight and open streams.
    traffic: Arc<crate::traffic::Traffic>,
    /// What `/readyz` reports.
    readiness: crate::readiness::Readiness,
    /// The listener's limits.
    limits: crate::limits::ListenerLimits,
    /// Request metrics.
    metrics: Arc<crate::metrics::Metrics>,
}

/// What the configuration file decides besides the catalogue.
struct Settings {
    open: bool,
    health: HealthConfig,
    admin_token: Option<[u8; 32]>,
    client_keys: Vec<[u8; 32]>,
    request_timeout: Duration,
    max_body_bytes: usize,
    /// `GET /metrics` on the main listener.
    metrics_on_main: bool,
}

impl Settings {
    fn from_config(config: &Config) -> Settings {
        Settings {
            open: config.auth.allow_open || config.server.listen.ip().is_loopback(),
            health: config.health.clone(),
            admin_token: config
                .admin
                .token
                .as_ref()
                .map(|t| key_hash(t.expose_secret())),
            client_keys: config
                .auth
                .client_keys
                .iter()
                .map(|k| key_hash(k.expose_secret()))
                .collect(),
            request_timeout: config.server.request_timeout,
            max_body_bytes: config.server.max_body_bytes,
            metrics_on_main: config.metrics.enabled && config.metrics.listen.is_none(),
        }
    }
}

/// Health, key and budget state by stable identity, so a configuration
/// reload keeps what the gateway learned about targets that stay.
#[derive(Default)]
struct HealthBook {
    targets: HashMap<String, Arc<Health>>,
    keys: HashMap<String, Arc<KeyPool>>,
    budgets: HashMap<String, Arc<RetryBudget>>,
    /// Client key states by id and stored policy: counters and budgets
    /// survive reloads that leave the key's policy alone.
    clients: HashMap<(i64, String), Arc<Client>>,
}

/// A client key issued through the admin API, with its live limits.
pub(crate) struct Client {
    /// Row id (logged with each request).
    pub(crate) id: i64,
    /// Its name (transformers can be attached by name).
    pub(crate) name: String,
    /// Limits, budget and counters.
    pub(crate) state: orch_core::clients::ClientState,
    /// Log its requests' bodies.
    pub(crate) capture_bodies: bool,
}

/// The configuration as requests use it; replaced as a whole.
pub(crate) struct Live {
    pub(crate) providers: Vec<Provider>,
    pub(crate) catalogue: Catalogue,
    /// Per route of the catalogue, in the same order.
    pub(crate) routes: Vec<RouteState>,
    pub(crate) health: HealthConfig,
    /// SHA-256 of the admin token, when the operator endpoints are on.
    pub(crate) admin_token: Option<[u8; 32]>,
    pub(crate) model_names: Vec<String>,
    pub(crate) client_keys: Vec<[u8; 32]>,
    /// Keys issued through the admin API, by SHA-256 of the key.
    pub(crate) clients: HashMap<[u8; 32], Arc<Client>>,
    /// Serve without a key when no key exists anywhere.
    pub(crate) open: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) created_s: u64,
}

/// The live state of one route: its targets' health and its retry budget.
pub(crate) struct RouteState {
    /// Per target, in the route's order.
    pub(crate) health: Vec<Arc<Health>>,
    pub(crate) budget: Arc<RetryBudget>,
}

/// A provider with its secrets and their states.
pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) adapter: String,
    pub(crate) view: ProviderView,
    pub(crate) keys: Vec<SecretString>,
    /// The state of each key in `keys`.
    pub(crate) pool: Arc<KeyPool>,
    /// The pool's identity (a digest of the name and keys), the same on
    /// every replica with the same keys.
    pub(crate) pool_id: String,
    pub(crate) error_matchers: Vec<String>,
    pub(crate) probe_interval: Option<Duration>,
}

impl Provider {
    /// Key `i`, if the provider has it.
    pub(crate) fn key(&self, i: Option<usize>) -> Option<&SecretString> {
        self.keys.get(i?)
    }

    /// The key shown to operators: its first and last characters.
    pub(crate) fn masked_key(&self, i: usize) -> String {
        self.keys
            .get(i)
            .map_or_else(String::new, |k| mask(k.expose_secret()))
    }

    /// Whether a successful body or event carries an error the provider
    /// hid in it.
    pub(crate) fn hides_error(&self, body: &[u8]) -> Option<&str> {
        self.error_matchers
            .iter()
            .find(|m| memchr_find(body, m.as_bytes()))
            .map(String::as_str)
    }

    /// Replace every occurrence of this provider's keys in `text`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for k in &self.keys {
            let k = k.expose_secret();
            if k.len() >= 6 && out.contains(k) {
                out = out.replace(k, "[redacted]");
            }
        }
        out
    }
}

/// `sk-a…wxyz`: enough to tell keys apart, never enough to use one.
pub(crate) fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "…".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

impl Live {
    fn build(
        settings: &Settings,
        providers: &[ProviderConfig],
        models: &[ModelRoute],
        book: &mut HealthBook,
    ) -> Live {
        let now = Instant::now();
        let hc = &settings.health;
        let providers: Vec<Provider> = providers
            .iter()
            .map(|p| {
                // Same provider, same keys in the same order: same states.
                let mut id = Sha256::new();
                id.update(p.name.as_bytes());
                for k in &p.api_keys {
                    id.update(Sha256::digest(k.expose_secret().as_bytes()));
                }
                id.update(format!("{:?}", p.key_strategy).as_bytes());
                let id = hex::encode(id.finalize());
                let pool = book
                    .keys
                    .entry(id.clone())
                    .or_insert_with(|| {
                        // A keyless provider gets one implicit key, so its
                        // rate limits cool down like a key's.
                        Arc::new(KeyPool::new(
                            p.api_keys.len().max(1),
                            p.key_strategy,
                            hc.keys.clone(),
                        ))
                    })
                    .clone();
                Provider {
                    name: p.name.clone(),
                    adapter: p.adapter.clone(),
                    view: ProviderView {
                        name: p.name.clone(),
                        base_url: p.base_url.as_str().trim_end_matches('/').to_string(),
                        options_json: p.options_json.clone(),
                    },
                    keys: p.api_keys.clone(),
                    pool,
                    pool_id: id,
                    error_matchers: p.error_matchers.clone(),
                    probe_interval: p.probe_interval,
                }
            })
            .collect();
        let routes = models
            .iter()
            .map(|m| RouteState {
                health: m
                    .targets
                    .iter()
                    .map(|t| {
                        let id = target_id(&providers[t.provider].name, &t.upstream_model);
                        book.targets
                            .entry(id)
                            .or_insert_with(|| Arc::new(Health::new(hc.policy.clone(), now)))
                            .clone()
                    })
                    .collect(),
                budget: book
                    .budgets
                    .entry(m.name.clone())
                    .or_insert_with(|| Arc::new(RetryBudget::new(now)))
                    .clone(),
            })
            .collect();
        Live {
            providers,
            routes,
            health: hc.clone(),
            admin_token: settings.admin_token,
            // Names and exact aliases: what a client can ask for by name.
            model_names: models
                .iter()
                .flat_map(|m| {
                    std::iter::once(&m.name).chain(m.aliases.iter().filter(|a| !a.ends_with('*')))
                })
                .cloned()
                .collect(),
            catalogue: Catalogue::new(models.to_vec()),
            client_keys: settings.client_keys.clone(),
            clients: HashMap::new(),
            open: settings.open,
            request_timeout: settings.request_timeout,
            max_body_bytes: settings.max_body_bytes,
            created_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        }
    }
}

impl AppState {
    /// Build the state from a validated configuration and the services.
    /// Serves the file's catalogue until [`AppState::apply_catalog`]
    /// replaces it with the database's.
    pub fn new(config: &Config, services: Services) -> AppState {
        let settings = Settings::from_config(config);
        let mut book = HealthBook::default();
        let live = Live::build(&settings, &config.providers, &config.models, &mut book);
        AppState(Arc::new(Inner {
            live: ArcSwap::from_pointee(live),
            services,
            book: Mutex::new(book),
            probes: crate::probes::ProbeBook::default(),
            settings,
            file: crate::catalog::FileSide::from_config(config),
            revision: AtomicI64::new(-1),
            reload_now: tokio::sync::Notify::new(),
            transformers: Arc::new(crate::transform::Transformers::new(
                config.transformers.clone(),
            )),
            shadow: Arc::default(),
            traffic: Arc::default(),
            readiness: crate::readiness::Readiness::new(
                config.redis.as_ref().is_some_and(|r| r.required),
            ),
            limits: crate::limits::ListenerLimits::from_config(&config.server),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }))
    }

    /// Request metrics.
    pub(crate) fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.0.metrics
    }

    /// Requests in flight and open streams, for metrics.
    pub fn traffic(&self) -> &Arc<crate::traffic::Traffic> {
        &self.0.traffic
    }

    /// Turn readiness off for good (`/readyz` answers 503): the gateway is
    /// shutting down. HTTP/1 responses carry `Connection: close` from now on.
    pub fn begin_shutdown(&self) {
        self.0.readiness.begin_shutdown();
    }

    /// Whether [`AppState::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.0.readiness.is_shutting_down()
    }

    pub(crate) fn readiness(&self) -> &crate::readiness::Readiness {
        &self.0.readiness
    }

    pub(crate) fn limits(&self) -> &crate::limits::ListenerLimits {
        &self.0.limits
    }

    /// Shadow-mode comparisons.
    pub(crate) fn shadow_book(&self) -> &Arc<crate::shadow::ShadowBook> {
        &self.0.shadow
    }

    /// The transformer attachments.
    pub(crate) fn transformers(&self) -> &Arc<crate::transform::Transformers> {
        &self.0.transformers
    }

    /// Serve a compiled database snapshot; requests in flight keep the old
    /// catalogue. Targets and keys that stay keep their health.
    pub(crate) fn apply_catalog(
        &self,
        compiled: &Compiled,
        snap: &Snapshot,
        spend: &[(i64, i64, i64)],
    ) {
        let mut book = self.0.book.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = Live::build(
            &self.0.settings,
            &compiled.providers,
            &compiled.models,
            &mut book,
        );
        let sharing = self.0.services.share.as_ref().map(|s| s.sharing());
        live.clients = clients(snap, spend, sharing, &mut book);
        // Forget what no route or provider uses any more.
        book.targets.retain(|_, h| Arc::strong_count(h) > 1);
        book.keys.retain(|_, k| Arc::strong_count(k) > 1);
        book.budgets.retain(|_, b| Arc::strong_count(b) > 1);
        book.clients.retain(|_, c| Arc::strong_count(c) > 1);
        self.0.live.store(Arc::new(live));
        self.0.revision.store(snap.revision, Ordering::Release);
    }

    /// Load the database's catalogue now (at start, and after an admin
    /// change on this replica); `Err` says why the current one stays.
    pub async fn load_catalog(&self) -> Result<i64, String> {
        crate::catalog::reload(self).await
    }

    /// The database revision being served (-1: the file's catalogue).
    pub(crate) fn catalog_revision(&self) -> i64 {
        self.0.revision.load(Ordering::Acquire)
    }

    pub(crate) fn file_side(&self) -> &crate::catalog::FileSide {
        &self.0.file
    }

    pub(crate) fn live(&self) -> Arc<Live> {
        self.0.live.load_full()
    }

    pub(crate) fn probes(&self) -> &crate::probes::ProbeBook {
        &self.0.probes
    }

    /// When the provider's next healthy-tier probe is due.
    pub(crate) fn next_probe(&self, provider: usize, now: Instant) -> Option<Duration> {
        let live = self.live();
        let name = &live.providers.get(provider)?.name;
        self.0.probes.next(name, now)
    }

    /// Reload the catalogue now rather than at the next poll.
    pub(crate) fn reload_soon(&self) {
        self.0.reload_now.notify_one();
    }

    pub(crate) async fn reload_requested(&self) {
        self.0.reload_now.notified().await;
    }

    /// The health of a target by its id, if some route uses it.
    pub(crate) fn target_health(&self, id: &str) -> Option<Arc<Health>> {
        let book = self.0.book.lock().unwrap_or_else(|p| p.into_inner());
        book.targets.get(id).cloned()
    }

    pub(crate) fn services(&self) -> &Services {
        &self.0.services
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.0.live.load().max_body_bytes
    }

    /// Whether `GET /metrics` is served on the main listener.
    pub(crate) fn metrics_on_main(&self) -> bool {
        self.0.settings.metrics_on_main
    }
}

/// The client keys of a snapshot, keeping the state of keys whose policy
/// did not change; a new state's budget starts from the stored spend.
fn clients(
    snap: &Snapshot,
    spend: &[(i64, i64, i64)],
    sharing: Option<&Arc<orch_core::clients::Sharing>>,
    book: &mut HealthBook,
) -> HashMap<[u8; 32], Arc<Client>> {
    use orch_core::clients::{ClientPolicy, ClientState};
    let mut out = HashMap::new();
    for row in &snap.client_keys {
        let Some(digest) = hex::decode(&row.hash)
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
        else {
            tracing::error!(
                client_key = row.id,
                "stored client key hash is not SHA-256 hex; key refused"
            );
            continue;
        };
        let client = book
            .clients
            .entry((
                row.id,
                format!("{}|{}|{}", row.policy_json, row.enabled, row.capture_bodies),
            ))
            .or_insert_with(|| {
                let mut policy: ClientPolicy = match serde_json::from_str(&row.policy_json) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(
                            client_key = row.id,
                            "stored client key policy does not parse ({e}); key disabled"
                        );
                        ClientPolicy {
                            enabled: false,
                            ..ClientPolicy::default()
                        }
                    }
                };
                policy.enabled &= row.enabled;
                let state = match sharing {
                    Some(sharing) => ClientState::shared(policy, row.id, sharing),
                    None => ClientState::new(policy),
                };
                for (_, start, tokens) in spend.iter().filter(|(id, _, _)| *id == row.id) {
                    state.load_spend(*start, u64::try_from(*tokens).unwrap_or(0));
                }
                Arc::new(Client {
                    id: row.id,
                    name: row.name.clone(),
                    state,
                    capture_bodies: row.capture_bodies,
                })
            })
            .clone();
        out.insert(digest, client);
    }
    out
}

/// Spend settled since the last call, for every client key with a budget:
/// `(key id, period start, tokens)`.
pub(crate) fn unflushed_spend(live: &Live) -> Vec<(i64, i64, i64)> {
    live.clients
        .values()
        .filter_map(|c| Some((c.id, c.state.budget()?)))
        .flat_map(|(id, ledger)| {
            ledger
                .take_unflushed()
                .into_iter()
                .map(move |(start, tokens)| (id, start, i64::try_from(tokens).unwrap_or(i64::MAX)))
        })
        .collect()
}

/// The identity of a target's health: provider and upstream model.
pub(crate) fn target_id(provider: &str, upstream_model: &str) -> String {
    format!("{provider}/{upstream_model}")
}
