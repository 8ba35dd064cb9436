//! Wiring for `serve`: logging, database, plugins, the upstream client, the
//! listener with its own accept loop (so header timeouts are enforced), and
//! graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use orch_core::config::{Config, ServerConfig};
use orch_plugin_host::{Limits, PluginHost, Watcher};
use secrecy::ExposeSecret;

/// The request-log flush on shutdown may take this long at most: it comes
/// after the grace period, and with the trace flush after it the process
/// still exits within grace + 1 s.
const LOG_FLUSH_BOUND: Duration = Duration::from_millis(400);

/// After the grace period, connections still open are closed; their
/// requests get this long to record themselves (cancelled) in the log queue.
const CUT_BOUND: Duration = Duration::from_millis(100);

/// HTTP/2: bytes queued for sending per stream at most, so a slow reader
/// cannot make the gateway buffer a stream's output.
const HTTP2_SEND_BUFFER: usize = 64 * 1024;

/// Spans still queued for the trace collector get this long on shutdown
/// (after the request-log flush).
const TRACE_FLUSH_BOUND: Duration = Duration::from_millis(300);

/// Run the gateway until SIGINT/SIGTERM, then shut down gracefully; a
/// second signal exits at once with status 130.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let telemetry = crate::telemetry::init(&config);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let first = signals().context("cannot install the signal handlers")?;
    let served = serve(config, listener, first).await;
    telemetry.shutdown(TRACE_FLUSH_BOUND).await;
    served
}

/// Signal handling: the returned future completes on the first SIGINT or
/// SIGTERM; the second one ends the process at once (status 130). The
/// handlers are installed before this returns.
fn signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut signals = Signals::install()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let name = signals.next().await;
        tracing::info!(signal = name, "shutdown: signal received");
        let _ = tx.send(());
        let name = signals.next().await;
        tracing::warn!(signal = name, "shutdown: second signal; exiting now");
        eprintln!("llm-orchestrator: second {name}; exiting without draining");
        std::process::exit(130);
    });
    Ok(async move {
        let _ = rx.await;
    })
}

/// The shutdown signals, installed once.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Serve on a bound listener until `shutdown` completes, then drain.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }

    let store = orch_store::Store::connect(config.database.url.expose_secret())
        .await
        .context("cannot open the database")?;
    orch_api::import_file(&store, &config)
        .await
        .context("cannot import the configuration file's providers and models")?;
    let snapshot = store
        .snapshot()
        .await
        .context("cannot read the catalogue")?;
    orch_api::check_sealed_keys(&snapshot, config.secrets.keyring.as_deref()).map_err(|e| {
        anyhow::anyhow!("{e}; the master key ([secrets] master_key) is wrong or missing")
    })?;
    let (log, log_task) = orch_store::LogWriter::start(
        store.clone(),
        orch_store::LogWriterConfig {
            capacity: config.request_log.capacity,
            batch_size: config.request_log.batch_size,
            flush_interval: config.request_log.flush_interval,
            max_body_bytes: config.request_log.capture_max_bytes,
            ..orch_store::LogWriterConfig::default()
        },
    );
    if !config.request_log.enabled {
        log.disable();
    }
    let retention = orch_store::spawn_retention(
        store.clone(),
        orch_store::RetentionConfig {
            max_age: config.request_log.max_age,
            max_rows: config.request_log.max_rows,
            hourly_max_age: config.request_log.hourly_usage_max_age,
            ..orch_store::RetentionConfig::default()
        },
    );

    let limits = Limits::from_config(&config.plugins);
    let plugins = match &config.plugins.cache_dir {
        Some(cache) => PluginHost::with_compile_cache(&config.plugins.dir, limits, cache),
        None => PluginHost::new(&config.plugins.dir, limits),
    }
    .map_err(anyhow::Error::msg)?;
    let report = plugins.reload().await;
    let snapshot = plugins.snapshot();
    let from_cache = snapshot
        .active()
        .filter(|p| p.compiled == orch_plugin_host::CacheOutcome::Hit)
        .count();
    tracing::info!(
        dir = %config.plugins.dir.display(),
        from_cache,
        active = snapshot.active().count(),
        rejected = report.rejected.len(),
        "plugins loaded"
    );
    for p in &config.providers {
        if snapshot.adapter(&p.adapter).is_none() {
            tracing::warn!(provider = %p.name, adapter = %p.adapter, "no adapter plugin with this id is loaded yet");
        }
    }
    let _watcher = if config.plugins.watch {
        Some(
            Watcher::start(
                plugins.clone(),
                config.plugins.debounce,
                config.plugins.rescan_interval,
            )
            .map_err(anyhow::Error::msg)?,
        )
    } else {
        None
    };

    let upstream = orch_upstream::UpstreamClient::new(&config.upstream)?;
    let share = config
        .redis
        .as_ref()
        .map(orch_share::Share::new)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let state = orch_api::AppState::new(
        &config,
        orch_api::Services {
            plugins: plugins.clone(),
            upstream,
            log: log.clone(),
            store: Some(store.clone()),
            keyring: config.secrets.keyring.clone(),
            share,
        },
    );
    state
        .load_catalog()
        .await
        .map_err(|e| anyhow::anyhow!("the database's catalogue does not load: {e}"))?;
    orch_api::spawn_sharing(&state);
    orch_api::spawn_transformer_checks(&state);
    let probes = tokio::spawn(orch_api::run_probes(state.clone()));
    let refresh = tokio::spawn(orch_api::run_refresh(
        state.clone(),
        config.database.refresh_interval,
    ));
    let app = orch_api::router(state.clone());
    let readiness = orch_api::spawn_readiness(&state);
    let metrics = match config.metrics.listen.filter(|_| config.metrics.enabled) {
        Some(addr) => {
            let metrics_listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ([metrics] listen)"))?;
            let acceptor = Acceptor {
                app: orch_api::metrics_router(state.clone()),
                builder: Arc::new(connection_builder(&config.server)),
                graceful: hyper_util::server::graceful::GracefulShutdown::new(),
                force_close: tokio::sync::watch::channel(false).0,
                header_timeout: config.server.header_read_timeout,
            };
            tracing::info!(address = %addr, "metrics on http://{addr}/metrics");
            Some(tokio::spawn(async move {
                acceptor.run(&metrics_listener).await;
            }))
        }
        None => None,
    };

    let local = listener.local_addr()?;
    tracing::info!(address = %local, "llm-orchestrator listening on http://{local}");
    println!("llm-orchestrator listening on http://{local}");

    let accept = Acceptor {
        app,
        builder: Arc::new(connection_builder(&config.server)),
        graceful: hyper_util::server::graceful::GracefulShutdown::new(),
        force_close: tokio::sync::watch::channel(false).0,
        header_timeout: config.server.header_read_timeout,
    };
    tokio::pin!(shutdown);
    tokio::select! {
        () = accept.run(&listener) => {}
        () = &mut shutdown => {}
    }

    // Shutdown: readiness off at once; keep accepting for the drain delay
    // (load balancers notice the 503 and stop sending); close the
    // listener; give connections what is left of the grace period (counted
    // from the signal), then close the rest; flush the request log, bounded.
    let signalled = tokio::time::Instant::now();
    let server = &config.server;
    let deadline = signalled + server.shutdown_grace;
    state.begin_shutdown();
    tracing::info!(
        drain_delay_ms = millis(server.drain_delay),
        grace_ms = millis(server.shutdown_grace),
        in_flight = state.traffic().in_flight(),
        "shutdown: /readyz answers 503; still accepting connections for the drain delay"
    );
    let drain_end = (signalled + server.drain_delay).min(deadline);
    let _ = tokio::time::timeout_at(drain_end, accept.run(&listener)).await;
    drop(listener);
    let Acceptor {
        graceful,
        force_close,
        ..
    } = accept;
    probes.abort();
    refresh.abort();
    retention.abort();
    readiness.abort();
    tracing::info!(
        in_flight = state.traffic().in_flight(),
        open_streams = state.traffic().open_streams(),
        left_ms = millis(deadline.saturating_duration_since(tokio::time::Instant::now())),
        "shutdown: listener closed; waiting for in-flight requests and streams"
    );
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_ok()
    {
        tracing::info!("shutdown: every connection finished");
    } else {
        tracing::warn!(
            in_flight = state.traffic().in_flight(),
            open_streams = state.traffic().open_streams(),
            "shutdown: grace period over; closing the remaining connections"
        );
        // Dropping the connections drops their requests, which queue their
        // log rows (cancelled) before the flush.
        force_close.send_replace(true);
        let _ = tokio::time::timeout(CUT_BOUND, async {
            while state.traffic().in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
    let flushed = tokio::time::timeout(LOG_FLUSH_BOUND, async {
        let stats = log.shutdown(LOG_FLUSH_BOUND).await;
        let _ = log_task.await;
        stats
    })
    .await;
    match flushed {
        Ok(stats) => tracing::info!(
            written = stats.written,
            dropped = stats.dropped,
            "shutdown: request log flushed; exiting"
        ),
        Err(_) => tracing::warn!("shutdown: the request log did not flush in time; exiting"),
    }
    if let Some(task) = metrics {
        task.abort();
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The connection builder with the listener's limits: HTTP/1 header count,
/// header bytes and header read timeout (hyper answers 431 or closes the
/// connection itself), HTTP/2 streams, windows, header list size, send
/// buffer and keep-alive pings.
fn connection_builder(server: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_headers(server.max_headers)
        // Also bounds what hyper buffers of a response for a slow reader.
        .max_buf_size(server.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut http2 = builder.http2();
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(server.http2_max_concurrent_streams)
        .initial_stream_window_size(server.http2_stream_window_bytes)
        .initial_connection_window_size(server.http2_connection_window_bytes)
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
        .max_send_buf_size(HTTP2_SEND_BUFFER)
        .keep_alive_interval(server.http2_keep_alive_interval)
        .keep_alive_timeout(server.http2_keep_alive_timeout);
    builder
}

/// What each accepted connection is served with.
struct Acceptor {
    app: axum::Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// Every connection is watched, to be shut down gracefully.
    graceful: hyper_util::server::graceful::GracefulShutdown,
    /// Set when the grace period is over: connections close at once.
    force_close: tokio::sync::watch::Sender<bool>,
    header_timeout: Duration,
}

impl Acceptor {
    /// Accept connections until dropped (never returns on its own).
    async fn run(&self, listener: &tokio::net::TcpListener) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(self.app.clone());
            let builder = Arc::clone(&self.builder);
            let watcher = self.graceful.watcher();
            let mut force_close = self.force_close.subscribe();
            let deadline = tokio::time::Instant::now() + self.header_timeout;
            tokio::spawn(async move {
                if !first_bytes(&stream, deadline).await {
                    return;
                }
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                tokio::select! {
                    _ = watcher.watch(conn) => {}
                    _ = force_close.wait_for(|closing| *closing) => {}
                }
            });
        }
    }
}

/// Wait until the client has sent enough to tell HTTP/1 from HTTP/2 (the
/// protocol detection has no timeout of its own; hyper's header timeout
/// starts after it): `false` when the header timeout passes first or the
/// client closes. An HTTP/1 request decides at its first byte.
async fn first_bytes(stream: &tokio::net::TcpStream, deadline: tokio::time::Instant) -> bool {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return false,
        };
        if n == 0 {
            return false;
        }
        if n >= H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
            return true;
        }
        // Part of the HTTP/2 preface: peek again once more has arrived.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(20)))
            .await
            .is_err()
        {
            return false;
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
