//! A fake OpenAI-compatible LLM provider for tests, benchmarks and trying the
//! gateway without provider keys.
//!
//! It serves `GET /v1/models` and `POST /v1/chat/completions` (JSON and SSE
//! streams, tool calls), validates requests like OpenAI does, and injects
//! faults on demand. It is also the baseline of the gateway benchmark, so a
//! request costs one parse, one render and no locks beyond a short swap of
//! the recorded last request.
//!
//! # Scenarios
//!
//! Magic model names select a behaviour per request, whatever the
//! configuration says (and are served even when [`FakeConfig::models`] is
//! restricted):
//!
//! | model             | behaviour                                                       |
//! |-------------------|-----------------------------------------------------------------|
//! | `status-<code>`   | that error status (400..=599), OpenAI error body; 429 adds `retry-after: 1` |
//! | `reset`           | the connection is closed without a response                     |
//! | `cut-after-<n>`   | streams: the connection is aborted after `n` SSE events          |
//! | `stall-after-<n>` | streams: nothing after `n` SSE events, connection kept open      |
//! | `error-event`     | streams: a role chunk, an `{"error":{..}}` event, then the end   |
//! | `slow-<ms>`       | that latency before the response headers                        |
//!
//! Other models get normal replies, subject to the configured faults
//! ([`FakeConfig::fail_rate`], [`FakeConfig::cut_after`], ...). SSE events are
//! counted from the first (role) chunk; `[DONE]` is one event too.
//!
//! # Control endpoints
//!
//! `GET /_fake/stats` ([`StatsSnapshot`]), `GET`/`POST /_fake/config`
//! ([`FakeConfig`], partial JSON allowed) and `GET /_fake/last_request`
//! ([`RecordedRequest`] or `null`).

mod chat;
mod config;
mod control;
mod error;
mod models;
mod record;
mod scenario;
mod server;
mod state;
mod stats;
mod stream;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::FakeConfig;
pub use models::DEFAULT_MODEL;
pub use record::RecordedRequest;
pub use stats::StatsSnapshot;

use state::Shared;

/// A running fake upstream. Dropping the handle stops the server too;
/// [`FakeUpstream::shutdown`] also waits for it.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<()>,
    server: JoinHandle<()>,
}

impl fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeUpstream {
    /// Binds `127.0.0.1:0` and serves in a background task.
    pub async fn spawn(config: FakeConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding 127.0.0.1:0")?;
        Self::serve(listener, config).await
    }

    /// Serves on `listener` in a background task (on the current runtime).
    pub async fn serve(listener: TcpListener, config: FakeConfig) -> anyhow::Result<Self> {
        let addr = listener
            .local_addr()
            .context("reading the listener's address")?;
        let shared = Arc::new(Shared::new(config));
        let (shutdown, shutdown_rx) = watch::channel(());
        let server = tokio::spawn(server::accept_loop(listener, shared.clone(), shutdown_rx));
        Ok(Self {
            addr,
            shared,
            shutdown,
            server,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1` (an unspecified
    /// listen address is reported as `127.0.0.1`).
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}/v1")
    }

    /// A copy of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The current configuration.
    pub fn config(&self) -> FakeConfig {
        self.shared.config()
    }

    /// Replaces the configuration; requests already running keep the old one.
    pub fn set_config(&self, config: FakeConfig) {
        self.shared.set_config(config);
    }

    /// The last `POST /v1/chat/completions` request (recorded before any
    /// validation or authentication).
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.recorder.last()
    }

    /// Stops accepting, gives open requests a short grace period, closes
    /// every connection and waits until the server task has ended.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(());
        if let Err(err) = self.server.await {
            tracing::warn!(%err, "the fake upstream's server task failed");
        }
    }
}
