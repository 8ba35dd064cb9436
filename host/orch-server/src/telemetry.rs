//! Logs and traces: the process's one `tracing` subscriber. Log lines go
//! to stderr, JSON or human-readable (`[logging]`), each with the fields of
//! the spans it is in (so a request's lines carry its `request_id`). With
//! `[telemetry] otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) the
//! spans are also exported over OTLP/HTTP (protobuf), in batches from a
//! thread of their own, sampled parent-based with `sample_ratio`.
//!
//! A process has one global subscriber, so this is installed only by
//! [`crate::run`] (the binary); in-process tests that start several
//! gateways log nothing, and the export test runs the binary.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use orch_core::config::{Config, LogFormat, TelemetryConfig};
use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

/// A layer of the process's subscriber.
type BoxedLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// The trace exporter, when one runs: flushed by [`Telemetry::shutdown`].
#[must_use = "flush the exporter on shutdown"]
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Install the subscriber: log lines filtered by `RUST_LOG`, else
/// `[logging] filter` (at the default `INFO` they carry the `request` span;
/// the `chat`, `upstream` and `plugin` spans are `DEBUG`, so formatting
/// them costs nothing unless asked for). The exporter gets the gateway's
/// spans down to `DEBUG` (per-chunk plugin calls are `TRACE`: left out) and
/// events from `INFO`. A second call in one process keeps the first
/// subscriber and exports nothing.
pub(crate) fn init(config: &Config) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.logging.filter));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: BoxedLayer = match config.logging.format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Pretty => fmt.with_filter(filter).boxed(),
    };
    let mut layers = vec![fmt];
    let mut failed = None;
    let provider = config
        .telemetry
        .otlp_endpoint
        .as_ref()
        .and_then(
            |endpoint| match provider(&config.telemetry, endpoint.as_str()) {
                Ok(p) => Some(p),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            },
        );
    if let Some(p) = &provider {
        let tracer = p.tracer("llm-orchestrator");
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter_fn(exported))
                .boxed(),
        );
    }
    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    if let Some(e) = failed {
        tracing::warn!("traces are not exported: {e}");
    }
    match (&provider, &config.telemetry.otlp_endpoint) {
        (Some(_), Some(endpoint)) if installed => tracing::info!(
            collector = endpoint.host_str().unwrap_or_default(),
            service_name = %config.telemetry.service_name,
            sample_ratio = config.telemetry.sample_ratio,
            "exporting traces over OTLP/HTTP"
        ),
        _ => {}
    }
    Telemetry {
        provider: provider.filter(|_| installed),
    }
}

/// What goes to the exporter: the gateway's own spans down to `DEBUG`;
/// events (span events) from `INFO`.
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    if meta.is_span() {
        meta.target().starts_with("orch_") && *meta.level() <= Level::DEBUG
    } else {
        *meta.level() <= Level::INFO
    }
}

/// The tracer provider: batches to `<endpoint>/v1/traces`.
fn provider(
    config: &TelemetryConfig,
    endpoint: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build())
}

impl Telemetry {
    /// Export the spans still queued and stop the exporter, waiting at most
    /// `bound`.
    pub(crate) async fn shutdown(self, bound: Duration) {
        let Some(provider) = self.provider else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(bound)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("trace export did not finish on shutdown: {e}"),
            Err(e) => tracing::warn!("trace export did not finish on shutdown: {e}"),
        }
    }
}
