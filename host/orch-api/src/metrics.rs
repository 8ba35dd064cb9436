//! Prometheus metrics: what every request did (recorded once, when its log
//! row is finished) and what the gateway holds (plugins, health, the log
//! queue, traffic), read at scrape time from the state that already keeps
//! it, so nothing is counted twice.
//!
//! Names follow Prometheus conventions (base units, `_total`, `_seconds`);
//! the OpenTelemetry GenAI metrics (`gen_ai.server.request.duration`,
//! `gen_ai.server.time_to_first_token`, `gen_ai.client.token.usage`) keep
//! their names with dots as underscores, and their attributes as labels.
//! Labels are bounded: configured model (route) names, provider names,
//! dialects, classes and plugin ids, never request ids or client input.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::state::AppState;

/// The OpenMetrics text content type (Prometheus scrapes it natively).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    ingress: &'static str,
    model: String,
    provider: String,
    status_class: &'static str,
    error_class: String,
}

/// The GenAI attributes of a request duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GenAiLabels {
    gen_ai_operation_name: &'static str,
    gen_ai_request_model: String,
    gen_ai_provider_name: String,
}

/// Token counts by type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    gen_ai_token_type: &'static str,
    gen_ai_request_model: String,
    gen_ai_provider_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngressLabels {
    ingress: &'static str,
    streamed: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Everything a finished request reports.
#[derive(Debug)]
pub(crate) struct Finished<'a> {
    pub(crate) ingress: &'static str,
    /// The route's configured name, when the request was routed.
    pub(crate) model: Option<&'a str>,
    pub(crate) provider: Option<&'a str>,
    pub(crate) status: u16,
    pub(crate) error_class: Option<&'a str>,
    pub(crate) streamed: bool,
    pub(crate) total: Duration,
    /// Time spent waiting on upstreams (and deliberate backoff).
    pub(crate) waited: Duration,
    pub(crate) ttft: Option<Duration>,
    pub(crate) input_tokens: Option<u32>,
    pub(crate) output_tokens: Option<u32>,
    pub(crate) cached_tokens: Option<u32>,
}

/// The request-side metric families of one gateway.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<GenAiLabels, Histogram>,
    ttft: Family<GenAiLabels, Histogram>,
    overhead: Family<IngressLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
    token_usage: Family<TokenLabels, Histogram>,
    attempts: Family<AttemptLabels, Counter>,
    failovers: Family<ModelLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    started: Instant,
}

fn duration_buckets() -> Histogram {
    // The GenAI semantic conventions' advice for operation durations.
    Histogram::new([
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ])
}

fn ttft_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

fn overhead_buckets() -> Histogram {
    Histogram::new([
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        1.0,
    ])
}

fn token_buckets() -> Histogram {
    // 1, 4, 16 … 67108864, as the GenAI conventions advise.
    Histogram::new(exponential_buckets(1.0, 4.0, 14))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "orchestrator_requests",
            "Inference requests finished, by ingress dialect, model (route), provider, status class and error class",
            requests.clone(),
        );
        let duration = Family::new_with_constructor(duration_buckets as fn() -> Histogram);
        registry.register_with_unit(
            "gen_ai_server_request_duration",
            "Time from receiving a request to its last byte (gen_ai.server.request.duration)",
            Unit::Seconds,
            duration.clone(),
        );
        let ttft = Family::new_with_constructor(ttft_buckets as fn() -> Histogram);
        registry.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from receiving a streaming request to its first content (gen_ai.server.time_to_first_token)",
            Unit::Seconds,
            ttft.clone(),
        );
        let overhead = Family::new_with_constructor(overhead_buckets as fn() -> Histogram);
        registry.register_with_unit(
            "orchestrator_gateway_overhead",
            "The gateway's own time per request: total time minus time waiting on upstreams (and on retry backoff) and, for streams, on the client",
            Unit::Seconds,
            overhead.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "orchestrator_tokens",
            "Tokens reported by upstreams, by type (input, output, cached input)",
            tokens.clone(),
        );
        let token_usage = Family::new_with_constructor(token_buckets as fn() -> Histogram);
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens per request by type (gen_ai.client.token.usage)",
            token_usage.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "orchestrator_upstream_attempts",
            "Upstream attempts by provider and outcome (ok, or why the next key or target was tried)",
            attempts.clone(),
        );
        let failovers = Family::<ModelLabels, Counter>::default();
        registry.register(
            "orchestrator_failovers",
            "Attempts after the first one of a request (another key or target), by model",
            failovers.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "orchestrator_listener_rejections",
            "Requests answered by the listener's limits before any handler (body too large, too many in flight, body idle)",
            refused.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            ttft,
            overhead,
            tokens,
            token_usage,
            attempts,
            failovers,
            refused,
            started: Instant::now(),
        }
    }

    /// Record a finished inference request.
    pub(crate) fn finished(&self, r: &Finished<'_>) {
        let model = r.model.unwrap_or("unrouted").to_owned();
        let provider = r.provider.unwrap_or("none").to_owned();
        self.requests
            .get_or_create(&RequestLabels {
                ingress: r.ingress,
                model: model.clone(),
                provider: provider.clone(),
                status_class: status_class(r.status),
                error_class: r.error_class.unwrap_or("none").to_owned(),
            })
            .inc();
        let genai = GenAiLabels {
            gen_ai_operation_name: "chat",
            gen_ai_request_model: model,
            gen_ai_provider_name: provider,
        };
        self.duration
            .get_or_create(&genai)
            .observe(r.total.as_secs_f64());
        if let Some(t) = r.ttft {
            self.ttft.get_or_create(&genai).observe(t.as_secs_f64());
        }
        self.overhead
            .get_or_create(&IngressLabels {
                ingress: r.ingress,
                streamed: if r.streamed { "true" } else { "false" },
            })
            .observe(r.total.saturating_sub(r.waited).as_secs_f64());
        let GenAiLabels {
            gen_ai_request_model,
            gen_ai_provider_name,
            ..
        } = genai;
        for (kind, n) in [
            ("input", r.input_tokens),
            ("output", r.output_tokens),
            ("cached_input", r.cached_tokens),
        ] {
            let Some(n) = n else { continue };
            let labels = TokenLabels {
                gen_ai_token_type: kind,
                gen_ai_request_model: gen_ai_request_model.clone(),
                gen_ai_provider_name: gen_ai_provider_name.clone(),
            };
            self.tokens.get_or_create(&labels).inc_by(u64::from(n));
            if kind != "cached_input" {
                self.token_usage
                    .get_or_create(&labels)
                    .observe(f64::from(n));
            }
        }
    }

    /// Record one upstream attempt's outcome.
    pub(crate) fn attempt(&self, provider: &str, outcome: &'static str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                provider: provider.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Record an attempt after the first of a request.
    pub(crate) fn failover(&self, model: &str) {
        self.failovers
            .get_or_create(&ModelLabels {
                model: model.to_owned(),
            })
            .inc();
    }

    /// Record a request the listener's limits answered.
    pub(crate) fn listener_rejection(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    match render(&state) {
        Ok(text) => {
            let mut resp = text.into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            resp
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The whole exposition: the request families, then the state read now.
pub(crate) fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let metrics = state.metrics();
    let mut out = String::with_capacity(16 << 10);
    prometheus_client::encoding::text::encode_registry(&mut out, &metrics.registry)?;
    let mut now = Registry::default();
    now.register_collector(Box::new(StateNow::read(state)));
    prometheus_client::encoding::text::encode_registry(&mut out, &now)?;
    prometheus_client::encoding::text::encode_eof(&mut out)?;
    Ok(out)
}

type Labels = Vec<(&'static str, String)>;

/// One family read at scrape time.
#[derive(Debug)]
struct Sampled {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: Vec<(Labels, f64)>,
}

impl Sampled {
    fn new(name: &'static str, help: &'static str, kind: MetricType) -> Sampled {
        Sampled {
            name,
            help,
            unit: None,
            kind,
            samples: Vec::new(),
        }
    }

    /// A family of one unlabelled sample.
    fn single(name: &'static str, help: &'static str, kind: MetricType, value: f64) -> Sampled {
        let mut f = Sampled::new(name, help, kind);
        f.push(Vec::new(), value);
        f
    }

    fn seconds(mut self) -> Sampled {
        self.unit = Some(Unit::Seconds);
        self
    }

    fn push(&mut self, labels: Labels, value: f64) {
        self.samples.push((labels, value));
    }
}

/// What the gateway holds right now.
#[derive(Debug)]
struct StateNow(Vec<Sampled>);

fn label(v: impl std::fmt::Display) -> String {
    let mut s = String::new();
    let _ = write!(s, "{v}");
    s
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counters exposed as floats lose precision only past 2^53"
)]
fn float(n: u64) -> f64 {
    n as f64
}

impl StateNow {
    fn read(state: &AppState) -> StateNow {
        let mut families = Vec::new();
        families.extend(plugin_families(state));
        families.extend(health_families(state));
        families.extend(traffic_families(state));
        families.push(
            Sampled::single(
                "orchestrator_uptime",
                "Time since this gateway process started",
                MetricType::Gauge,
                state.metrics().started.elapsed().as_secs_f64(),
            )
            .seconds(),
        );
        let mut info = Sampled::new(
            "orchestrator_build_info",
            "The gateway's version and plugin contract (value 1)",
            MetricType::Gauge,
        );
        info.push(
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                (
                    "contracts",
                    orch_core::contract::SUPPORTED_CONTRACTS.join(","),
                ),
            ],
            1.0,
        );
        families.push(info);
        StateNow(families)
    }
}

fn plugin_families(state: &AppState) -> Vec<Sampled> {
    let plugins = &state.services().plugins;
    let snapshot = plugins.snapshot();
    let now = Instant::now();
    let mut calls = Sampled::new(
        "orchestrator_plugin_calls",
        "Guest calls by plugin id, version and kind",
        MetricType::Counter,
    );
    let mut time = Sampled::new(
        "orchestrator_plugin_call_duration",
        "Total wall time of guest calls (divide by orchestrator_plugin_calls_total for the mean)",
        MetricType::Counter,
    )
    .seconds();
    let mut faults = Sampled::new(
        "orchestrator_plugin_faults",
        "Plugin faults by kind: trap, deadline (timeout), memory_limit, invalid_output, output_too_large, capacity",
        MetricType::Counter,
    );
    let mut errors = Sampled::new(
        "orchestrator_plugin_typed_errors",
        "Typed errors plugins returned, by class",
        MetricType::Counter,
    );
    let mut quarantined = Sampled::new(
        "orchestrator_plugin_quarantined",
        "1 while a plugin version is quarantined",
        MetricType::Gauge,
    );
    let mut loaded = Sampled::new(
        "orchestrator_plugin_loaded",
        "Loaded plugin versions (1 each; active = 1 for the default version of its id)",
        MetricType::Gauge,
    );
    let active: Vec<_> = snapshot.active().cloned().collect();
    for (_, file) in snapshot.files() {
        let orch_plugin_host::FileState::Loaded(p) = file else {
            continue;
        };
        let id = || {
            vec![
                ("plugin", p.info.id.clone()),
                ("version", label(&p.info.version)),
            ]
        };
        let view = p.stats.view(now);
        let mut l = id();
        l.push(("kind", label(p.info.kind)));
        calls.push(l, float(view.calls));
        time.push(id(), view.call_time.as_secs_f64());
        for (kind, n) in view.faults {
            let mut l = id();
            l.push(("fault", kind.to_owned()));
            faults.push(l, float(n));
        }
        for (class, n) in view.errors {
            let mut l = id();
            l.push(("class", class.to_owned()));
            errors.push(l, float(n));
        }
        quarantined.push(id(), f64::from(u8::from(view.quarantined_for.is_some())));
        let mut l = id();
        l.push(("kind", label(p.info.kind)));
        let is_active = active.iter().any(|a| std::sync::Arc::ptr_eq(a, p));
        l.push(("active", label(is_active)));
        loaded.push(l, 1.0);
    }
    let events = plugins.events();
    let reloads = Sampled::single(
        "orchestrator_plugin_reloads",
        "Plugin folder scans that changed what is loaded",
        MetricType::Counter,
        float(events.reloads),
    );
    let mut loads = Sampled::new(
        "orchestrator_plugin_activations",
        "Plugin versions activated (at start and by hot reload)",
        MetricType::Counter,
    );
    for ((id, version), n) in events.loads {
        loads.push(vec![("plugin", id), ("version", version)], float(n));
    }
    let mut rejections = Sampled::new(
        "orchestrator_plugin_rejections",
        "Plugin files refused at load (not a component, wrong world or contract, trapped on load...), by file name",
        MetricType::Counter,
    );
    for (file, n) in events.rejections {
        rejections.push(vec![("file", file)], float(n));
    }
    vec![
        calls,
        time,
        faults,
        errors,
        quarantined,
        loaded,
        reloads,
        loads,
        rejections,
    ]
}

fn health_families(state: &AppState) -> Vec<Sampled> {
    use orch_core::routing::health::State as Health;
    let live = state.live();
    let now = Instant::now();
    let mut targets = Sampled::new(
        "orchestrator_target_state",
        "Health of each model target: 1 for its current state (healthy, degraded, unhealthy), 0 for the others",
        MetricType::Gauge,
    );
    for (route, rs) in live.catalogue.routes().iter().zip(&live.routes) {
        for (t, h) in route.targets.iter().zip(&rs.health) {
            let current = h.report(now).state;
            let provider = live
                .providers
                .get(t.provider)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            for s in [Health::Healthy, Health::Degraded, Health::Unhealthy] {
                targets.push(
                    vec![
                        ("model", route.name.clone()),
                        ("provider", provider.clone()),
                        ("upstream_model", t.upstream_model.clone()),
                        ("state", s.as_str().to_owned()),
                    ],
                    f64::from(u8::from(s == current)),
                );
            }
        }
    }
    let mut keys = Sampled::new(
        "orchestrator_provider_key_state",
        "State of each provider key, by its position in the pool (never the key): 1 for ready, cooling_down or disabled",
        MetricType::Gauge,
    );
    for p in &live.providers {
        for k in p.pool.report(now) {
            for s in ["ready", "cooling_down", "disabled"] {
                keys.push(
                    vec![
                        ("provider", p.name.clone()),
                        ("key", label(k.index)),
                        ("state", s.to_owned()),
                    ],
                    f64::from(u8::from(k.state.as_str() == s)),
                );
            }
        }
    }
    vec![targets, keys]
}

fn traffic_families(state: &AppState) -> Vec<Sampled> {
    let log = state.services().log.stats();
    let queue = Sampled::single(
        "orchestrator_request_log_queue_depth",
        "Request-log rows waiting to be written",
        MetricType::Gauge,
        float(log.queued),
    );
    let written = Sampled::single(
        "orchestrator_request_log_written",
        "Request-log rows written",
        MetricType::Counter,
        float(log.written),
    );
    let dropped = Sampled::single(
        "orchestrator_request_log_dropped",
        "Request-log rows dropped because the queue was full (oldest first)",
        MetricType::Counter,
        float(log.dropped),
    );
    let batches = Sampled::single(
        "orchestrator_request_log_batches",
        "Request-log batches written, one transaction each",
        MetricType::Counter,
        float(log.batches),
    );
    let errors = Sampled::single(
        "orchestrator_request_log_write_errors",
        "Request-log batch writes that failed",
        MetricType::Counter,
        float(log.write_errors),
    );
    let traffic = state.traffic();
    let in_flight = Sampled::single(
        "orchestrator_in_flight_requests",
        "Requests admitted and not finished (until their response body ends)",
        MetricType::Gauge,
        float(traffic.in_flight()),
    );
    let streams = Sampled::single(
        "orchestrator_open_streams",
        "Event-stream responses still sending",
        MetricType::Gauge,
        float(traffic.open_streams()),
    );
    vec![queue, written, dropped, batches, errors, in_flight, streams]
}

impl prometheus_client::collector::Collector for StateNow {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut metric = encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), f.kind)?;
            for (labels, value) in &f.samples {
                let sample = metric.encode_family(labels)?;
                match f.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
                    _ => ConstGauge::new(*value).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}
