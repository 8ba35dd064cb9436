//! Wiring for `serve`: logging, database, plugins, the upstream client, the
//! listener with its own accept loop (so header timeouts are enforced), and
//! graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use orch_core::config::{Config, LogFormat};
use orch_plugin_host::{Limits, PluginHost, Watcher};
use secrecy::ExposeSecret;
use tracing_subscriber::EnvFilter;

/// Slow or stuck clients get this long to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.logging.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Run the gateway until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    serve(config, listener, shutdown_signal()).await
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

    let plugins = PluginHost::new(&config.plugins.dir, Limits::from_config(&config.plugins))
        .map_err(anyhow::Error::msg)?;
    let report = plugins.reload().await;
    let snapshot = plugins.snapshot();
    tracing::info!(
        dir = %config.plugins.dir.display(),
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
    let app = orch_api::router(state);

    let local = listener.local_addr()?;
    tracing::info!(address = %local, "llm-orchestrator listening on http://{local}");
    println!("llm-orchestrator listening on http://{local}");

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    probes.abort();
    refresh.abort();
    retention.abort();
    tracing::info!(
        grace_ms = config.server.shutdown_grace.as_millis() as u64,
        "shutting down; draining in-flight requests"
    );
    if tokio::time::timeout(config.server.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
    log.shutdown(Duration::from_secs(5)).await;
    let _ = log_task.await;
    Ok(())
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
