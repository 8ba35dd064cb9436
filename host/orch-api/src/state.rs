//! Application state: the long-lived services and the live, swappable view
//! of the configuration every request reads once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use orch_core::config::Config;
use orch_core::contract::ProviderView;
use orch_core::routing::ModelRoute;
use orch_plugin_host::PluginHost;
use orch_store::LogWriter;
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
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    live: ArcSwap<Live>,
    services: Services,
}

/// The configuration as requests use it; replaced as a whole.
pub(crate) struct Live {
    pub(crate) providers: Vec<Provider>,
    pub(crate) models: HashMap<String, ModelRoute>,
    pub(crate) model_names: Vec<String>,
    pub(crate) client_keys: Vec<[u8; 32]>,
    pub(crate) request_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) created_s: u64,
}

/// A provider with its secrets and key rotation.
pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) adapter: String,
    pub(crate) view: ProviderView,
    keys: Vec<SecretString>,
    next_key: AtomicUsize,
}

impl Provider {
    /// The next key in round-robin order, if the provider has keys.
    pub(crate) fn next_key(&self) -> Option<&SecretString> {
        if self.keys.is_empty() {
            return None;
        }
        let i = self.next_key.fetch_add(1, Ordering::Relaxed) % self.keys.len();
        self.keys.get(i)
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

pub(crate) fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Live {
    fn from_config(config: &Config) -> Live {
        let providers = config
            .providers
            .iter()
            .map(|p| Provider {
                name: p.name.clone(),
                adapter: p.adapter.clone(),
                view: ProviderView {
                    name: p.name.clone(),
                    base_url: p.base_url.as_str().trim_end_matches('/').to_string(),
                    options_json: p.options_json.clone(),
                },
                keys: p.api_keys.clone(),
                next_key: AtomicUsize::new(0),
            })
            .collect();
        Live {
            providers,
            model_names: config.models.iter().map(|m| m.name.clone()).collect(),
            models: config
                .models
                .iter()
                .map(|m| (m.name.clone(), m.clone()))
                .collect(),
            client_keys: config
                .auth
                .client_keys
                .iter()
                .map(|k| key_digest(k.expose_secret()))
                .collect(),
            request_timeout: config.server.request_timeout,
            max_body_bytes: config.server.max_body_bytes,
            created_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        }
    }
}

impl AppState {
    /// Build the state from a validated configuration and the services.
    pub fn new(config: &Config, services: Services) -> AppState {
        AppState(Arc::new(Inner {
            live: ArcSwap::from_pointee(Live::from_config(config)),
            services,
        }))
    }

    /// Replace the live configuration; requests in flight keep the old one.
    pub fn apply_config(&self, config: &Config) {
        self.0.live.store(Arc::new(Live::from_config(config)));
    }

    pub(crate) fn live(&self) -> Arc<Live> {
        self.0.live.load_full()
    }

    pub(crate) fn services(&self) -> &Services {
        &self.0.services
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.0.live.load().max_body_bytes
    }
}
