//! The printed report: the measured figures as tables, and the targets from
//! the issue next to them, each marked met or not met.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{Api, Outcome, Summary};
use crate::plugin_costs::{ChunkCost, DeadlineOvershoot, PluginCosts, TranslationCosts};
use crate::procs::{
    FAULTY_FAIL_RATE, FAULTY_FAIL_STATUSES, Machine, Memory, ROUTED_CLEAN_MODEL,
    ROUTED_FAULTY_MODEL,
};

/// Added latency at c=1, p50.
pub const TARGET_ADDED_P50: Duration = Duration::from_micros(150);
/// Added latency at c=1, p99.
pub const TARGET_ADDED_P99: Duration = Duration::from_millis(1);
/// Through-gateway throughput at c=64, as a share of direct.
pub const TARGET_THROUGHPUT_SHARE: f64 = 0.30;
/// Paced-stream TTFB through the gateway, above direct.
pub const TARGET_PACED_TTFB: Duration = Duration::from_millis(1);
/// Gateway CPU time per request.
pub const TARGET_CPU_PER_REQUEST: Duration = Duration::from_micros(300);
/// Gateway resident memory after start-up, KiB.
pub const TARGET_IDLE_RSS_KIB: u64 = 60 * 1024;
/// Gateway peak resident memory, KiB.
pub const TARGET_PEAK_RSS_KIB: u64 = 150 * 1024;
/// Pass-through added latency (p50, c=1), as a multiple of the OpenAI
/// path's in the same mode.
pub const TARGET_PASS_THROUGH_FACTOR: f64 = 1.2;
/// Translated paths' added latency (p50, c=1), as a multiple of the
/// pass-through's in the same mode.
pub const TARGET_TRANSLATED_FACTOR: f64 = 2.0;
/// Translating one stream chunk, p50.
pub const TARGET_CHUNK_TRANSLATION: Duration = Duration::from_micros(20);
/// The router's decision for one request (health admissions and the plan),
/// p50.
pub const TARGET_ROUTER_DECISION: Duration = Duration::from_micros(5);
/// Added latency of one no-op transformer per request (p50, c=1).
pub const TARGET_TRANSFORMER_REQUEST: Duration = Duration::from_micros(30);
/// Added latency of one no-op transformer per stream chunk.
pub const TARGET_TRANSFORMER_CHUNK: Duration = Duration::from_micros(10);

/// A way through the gateway between a client dialect and a provider
/// dialect, measured besides the OpenAI path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// (a) An Anthropic client on an Anthropic-backed model: bytes forwarded.
    PassThrough,
    /// (b) An OpenAI client on an Anthropic-backed model.
    OpenAiToAnthropic,
    /// (c) An Anthropic client on a Gemini-backed model.
    AnthropicToGemini,
}

impl Route {
    /// Every route, in the order they run and print.
    pub const ALL: [Route; 3] = [
        Route::PassThrough,
        Route::OpenAiToAnthropic,
        Route::AnthropicToGemini,
    ];

    /// A short name.
    pub fn label(self) -> &'static str {
        match self {
            Route::PassThrough => "(a) pass-through",
            Route::OpenAiToAnthropic => "(b) OpenAI→Anthropic",
            Route::AnthropicToGemini => "(c) Anthropic→Gemini",
        }
    }

    /// The dialect the client speaks to the gateway.
    pub fn client(self) -> Api {
        match self {
            Route::PassThrough | Route::AnthropicToGemini => Api::Anthropic,
            Route::OpenAiToAnthropic => Api::OpenAi,
        }
    }

    /// The dialect of the provider behind the model (what direct calls use).
    pub fn upstream(self) -> Api {
        match self {
            Route::PassThrough | Route::OpenAiToAnthropic => Api::Anthropic,
            Route::AnthropicToGemini => Api::Gemini,
        }
    }
}

/// One route in one mode at c=1: the fake upstream called directly in the
/// provider's dialect, and the gateway called in the client's.
#[derive(Debug, Clone)]
pub struct RouteComparison {
    /// Which route.
    pub route: Route,
    /// Direct vs gateway.
    pub load: Comparison,
}

/// The per-chunk cost of each route's plugin calls.
pub fn chunk_costs(t: &TranslationCosts) -> [(Route, &'static str, Summary); 3] {
    [
        (
            Route::PassThrough,
            "anthropic decode, native",
            t.anthropic_native.cost,
        ),
        (
            Route::OpenAiToAnthropic,
            "anthropic decode, canonical",
            t.anthropic_decode.cost,
        ),
        (
            Route::AnthropicToGemini,
            "gemini decode + anthropic encode",
            t.gemini_to_anthropic,
        ),
    ]
}

/// The same load sent directly to the fake upstream and through the gateway.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Whether the requests stream.
    pub stream: bool,
    /// Requests in flight.
    pub concurrency: usize,
    /// Straight to the fake upstream.
    pub direct: Outcome,
    /// Through the gateway (its CPU time measured).
    pub gateway: Outcome,
}

impl Comparison {
    fn mode(&self) -> &'static str {
        if self.stream { "stream" } else { "non-stream" }
    }

    fn name(&self) -> String {
        format!("{} c={}", self.mode(), self.concurrency)
    }

    /// Gateway p50 − direct p50 and gateway p99 − direct p99, in nanoseconds.
    pub fn added(&self) -> Option<(i128, i128)> {
        let (d, g) = (self.direct.latency?, self.gateway.latency?);
        Some((diff(g.p50, d.p50), diff(g.p99, d.p99)))
    }

    /// Gateway TTFB p50 − direct TTFB p50, in nanoseconds.
    pub fn added_ttfb_p50(&self) -> Option<i128> {
        Some(diff(self.gateway.ttfb?.p50, self.direct.ttfb?.p50))
    }

    /// Gateway throughput as a share of direct.
    pub fn throughput_share(&self) -> Option<f64> {
        let direct = self.direct.throughput();
        (direct > 0.0).then(|| self.gateway.throughput() / direct)
    }
}

fn diff(a: Duration, b: Duration) -> i128 {
    i128::try_from(a.as_nanos()).unwrap_or(i128::MAX)
        - i128::try_from(b.as_nanos()).unwrap_or(i128::MAX)
}

/// The same non-streaming load through the gateway on two models with three
/// targets each: all healthy, then one failing [`FAULTY_FAIL_RATE`] of its
/// requests (failed over to the others).
#[derive(Debug, Clone)]
pub struct FailoverRun {
    /// Requests in flight.
    pub concurrency: usize,
    /// The no-fault run: model `routed-clean`.
    pub clean: Outcome,
    /// The run with one failing target: model `routed-faulty`.
    pub faulty: Outcome,
}

impl FailoverRun {
    fn name(&self) -> String {
        format!("non-stream c={}", self.concurrency)
    }

    /// Faulty p50 − clean p50 and faulty p99 − clean p99, in nanoseconds.
    pub fn added(&self) -> Option<(i128, i128)> {
        let (c, f) = (self.clean.latency?, self.faulty.latency?);
        Some((diff(f.p50, c.p50), diff(f.p99, c.p99)))
    }

    /// The faulty run's throughput as a share of the clean run's.
    pub fn throughput_share(&self) -> Option<f64> {
        let clean = self.clean.throughput();
        (clean > 0.0).then(|| self.faulty.throughput() / clean)
    }
}

/// The infinite-loop deadline measurement, or why it was not made.
#[derive(Debug, Clone)]
pub enum LoopDeadline {
    /// Measured on `fixture_loop.wasm`.
    Measured(DeadlineOvershoot),
    /// Not measured, and why.
    Skipped(String),
}

/// How the paced fake upstream streams.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Delay before the first chunk.
    pub ttft_ms: u64,
    /// Delay before each content chunk.
    pub chunk_delay_ms: u64,
    /// Content chunks.
    pub chunks: usize,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Warm-up before each measured window.
    pub warmup: Duration,
    /// Measured window per scenario.
    pub window: Duration,
    /// Direct vs gateway under load.
    pub load: Vec<Comparison>,
    /// The paced fake upstream's configuration.
    pub pacing: Pacing,
    /// Direct vs gateway on the paced stream.
    pub paced: Comparison,
    /// Direct vs gateway on the other dialects' routes at c=1.
    pub routes: Vec<RouteComparison>,
    /// Warm-up before each route's measured window.
    pub route_warmup: Duration,
    /// Measured window per route scenario.
    pub route_window: Duration,
    /// Routing across three targets, clean then with one failing, per
    /// concurrency (same warm-up and window as the load scenarios).
    pub failover: Vec<FailoverRun>,
    /// The OpenAI route at c=1 through 0, 1 and 3 no-op transformers, both
    /// modes (empty: not measured).
    pub chains: Vec<ChainRun>,
    /// Content chunks per stream of the fast fake upstream.
    pub stream_chunks: usize,
    /// The same load through a gateway per persistence backend, the first
    /// (no request log) being the baseline.
    pub persistence: Vec<PersistenceRun>,
    /// Requests in flight in the persistence runs.
    pub persistence_concurrency: usize,
    /// The gateway after start-up, before any request (its first start:
    /// it compiled every plugin).
    pub idle: Memory,
    /// A gateway after a start that found every plugin in the compile cache
    /// (the first persistence gateway), before any request.
    pub idle_warm: Option<Memory>,
    /// The gateway after all load.
    pub after_load: Memory,
    /// Plugin call costs.
    pub plugins: PluginCosts,
    /// Stream-chunk translation costs.
    pub translation: TranslationCosts,
    /// Infinite-loop deadline overshoot.
    pub loop_deadline: LoopDeadline,
    /// The router's decision per request, by strategy name.
    pub router: Vec<(String, Summary)>,
}

/// One run through a chain of no-op transformers at c=1.
#[derive(Debug, Clone)]
pub struct ChainRun {
    /// Transformers in the chain (0: the baseline model).
    pub transformers: usize,
    /// Streaming or not.
    pub stream: bool,
    /// The load's outcome.
    pub outcome: Outcome,
}

/// One persistence run: a gateway logging to one backend.
#[derive(Debug, Clone)]
pub struct PersistenceRun {
    /// What it logs to, and whether limits are shared.
    pub backend: String,
    /// The load's outcome (`None`: not run).
    pub outcome: Option<Outcome>,
    /// Why it was not run.
    pub note: Option<String>,
}

/// Throughput kept by a persistence backend, against the baseline.
const TARGET_PERSISTENCE_SHARE: f64 = 0.90;

/// One target from the issue and how the run did against it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// What is measured.
    pub what: String,
    /// The goal, e.g. `≤ 150 µs`.
    pub goal: String,
    /// The measured value.
    pub measured: String,
    /// Whether the goal is met (no data counts as not met).
    pub met: bool,
}

impl Report {
    /// Every scenario run, direct and through the gateway, with its name.
    /// Routes sharing a direct run name it once.
    fn outcomes(&self) -> Vec<(String, &Outcome)> {
        let paced = (
            format!("paced stream c={}", self.paced.concurrency),
            &self.paced,
        );
        let mut all: Vec<(String, &Outcome)> = self
            .load
            .iter()
            .map(|c| (c.name(), c))
            .chain(std::iter::once(paced))
            .flat_map(|(name, c)| {
                [
                    (format!("{name} direct"), &c.direct),
                    (format!("{name} gateway"), &c.gateway),
                ]
            })
            .collect();
        for r in &self.routes {
            let direct = format!("{} direct {}", r.route.upstream().name(), r.load.name());
            if !all.iter().any(|(name, _)| *name == direct) {
                all.push((direct, &r.load.direct));
            }
            all.push((
                format!("{} {} gateway", r.route.label(), r.load.name()),
                &r.load.gateway,
            ));
        }
        for c in &self.chains {
            let mode = if c.stream { "stream" } else { "non-stream" };
            all.push((
                format!("{} transformer(s) {mode} c=1 gateway", c.transformers),
                &c.outcome,
            ));
        }
        for f in &self.failover {
            all.push((
                format!("{ROUTED_CLEAN_MODEL} {} gateway", f.name()),
                &f.clean,
            ));
            all.push((
                format!("{ROUTED_FAULTY_MODEL} {} gateway", f.name()),
                &f.faulty,
            ));
        }
        all
    }

    /// Added p50 per transformer in one mode: the longest chain against
    /// the chain of none, divided by its length (signed nanoseconds).
    fn per_transformer(&self, stream: bool) -> Option<i128> {
        let runs = || self.chains.iter().filter(|r| r.stream == stream);
        let base = runs().find(|r| r.transformers == 0)?.outcome.latency?.p50;
        let longest = runs().max_by_key(|r| r.transformers)?;
        let n = i128::try_from(longest.transformers)
            .ok()
            .filter(|n| *n > 0)?;
        Some((nanos(longest.outcome.latency?.p50) - nanos(base)) / n)
    }

    /// Filter calls per stream: the content chunks, the role chunk and the
    /// finishing chunk.
    fn filter_calls(&self) -> usize {
        self.stream_chunks + 2
    }

    /// Estimated cost of one transformer per stream chunk: what a
    /// transformer adds to a stream beyond what it adds to a non-streaming
    /// request (the filter's start replaces the response hook), spread over
    /// the stream's filter calls.
    fn per_chunk(&self) -> Option<i128> {
        let extra = self.per_transformer(true)? - self.per_transformer(false)?;
        Some(extra / i128::try_from(self.filter_calls()).ok()?)
    }

    /// Scenarios with failed requests, with the first failure of each.
    pub fn errors(&self) -> Vec<String> {
        self.outcomes()
            .into_iter()
            .filter(|(_, o)| o.errors > 0)
            .map(|(name, o)| {
                format!(
                    "{name}: {} failed requests, first: {}",
                    o.errors,
                    o.first_error.as_deref().unwrap_or("?")
                )
            })
            .collect()
    }

    /// The load scenario with the highest gateway CPU time per request. The
    /// paced stream is left out: with its few long requests, the clock-tick
    /// resolution of `/proc` is too coarse for a per-request figure to judge.
    fn worst_cpu(&self) -> Option<(String, Duration)> {
        self.load
            .iter()
            .filter_map(|c| Some((c.name(), c.gateway.cpu_per_request()?)))
            .max_by_key(|(_, cpu)| *cpu)
    }

    /// The targets against the measured figures.
    pub fn targets(&self) -> Vec<TargetCheck> {
        let mut checks = Vec::new();
        for c in self.load.iter().filter(|c| c.concurrency == 1) {
            let added = c.added();
            checks.push(at_most(
                format!("added latency p50, {}", c.name()),
                added.map(|a| a.0),
                TARGET_ADDED_P50,
                signed_us,
            ));
            checks.push(at_most(
                format!("added latency p99, {}", c.name()),
                added.map(|a| a.1),
                TARGET_ADDED_P99,
                signed_us,
            ));
        }
        for c in self.load.iter().filter(|c| c.concurrency == 64) {
            let share = c.throughput_share();
            checks.push(TargetCheck {
                what: format!("gateway throughput, {}, share of direct", c.name()),
                goal: format!("≥ {:.0} %", TARGET_THROUGHPUT_SHARE * 100.0),
                measured: share
                    .map_or_else(|| "no data".to_owned(), |s| format!("{:.0} %", s * 100.0)),
                met: share.is_some_and(|s| s >= TARGET_THROUGHPUT_SHARE),
            });
        }
        checks.push(at_most(
            "paced-stream TTFB p50, gateway − direct".to_owned(),
            self.paced.added_ttfb_p50(),
            TARGET_PACED_TTFB,
            signed_ms,
        ));
        let worst = self.worst_cpu();
        checks.push(TargetCheck {
            what: format!(
                "gateway CPU per request (worst: {})",
                worst.as_ref().map_or("-", |w| w.0.as_str())
            ),
            goal: format!("≤ {}", ms(TARGET_CPU_PER_REQUEST)),
            measured: worst
                .as_ref()
                .map_or_else(|| "no data".to_owned(), |w| ms(w.1)),
            met: worst.is_some_and(|w| w.1 <= TARGET_CPU_PER_REQUEST),
        });
        checks.push(TargetCheck {
            what: "gateway idle RSS after start-up".to_owned(),
            goal: format!("≤ {}", mib(TARGET_IDLE_RSS_KIB)),
            measured: mib(self.idle.rss_kib),
            met: self.idle.rss_kib <= TARGET_IDLE_RSS_KIB,
        });
        checks.push(TargetCheck {
            what: "gateway peak RSS after all load".to_owned(),
            goal: format!("≤ {}", mib(TARGET_PEAK_RSS_KIB)),
            measured: mib(self.after_load.peak_kib),
            met: self.after_load.peak_kib <= TARGET_PEAK_RSS_KIB,
        });
        self.route_targets(&mut checks);
        self.routing_targets(&mut checks);
        for (r, share) in self.persistence_shares().into_iter().skip(1) {
            checks.push(TargetCheck {
                what: format!("throughput with {}, share of none", r.backend),
                goal: format!("≥ {:.0} %", TARGET_PERSISTENCE_SHARE * 100.0),
                measured: share
                    .map_or_else(|| "no data".to_owned(), |s| format!("{:.0} %", s * 100.0)),
                met: share.is_some_and(|s| s >= TARGET_PERSISTENCE_SHARE),
            });
        }
        checks.push(at_most(
            "one no-op transformer per request, added p50".to_owned(),
            self.per_transformer(false),
            TARGET_TRANSFORMER_REQUEST,
            signed_us,
        ));
        checks.push(at_most(
            "one no-op transformer per stream chunk".to_owned(),
            self.per_chunk(),
            TARGET_TRANSFORMER_CHUNK,
            tenth_us,
        ));
        checks
    }

    /// The router's targets: each strategy's decision cost, and no
    /// client-visible error while one target of three fails.
    fn routing_targets(&self, checks: &mut Vec<TargetCheck>) {
        if self.router.is_empty() {
            checks.push(at_most(
                "router decision p50".to_owned(),
                None,
                TARGET_ROUTER_DECISION,
                tenth_us,
            ));
        }
        for (strategy, cost) in &self.router {
            checks.push(at_most(
                format!("router decision p50 ({strategy})"),
                Some(nanos(cost.p50)),
                TARGET_ROUTER_DECISION,
                tenth_us,
            ));
        }
        let errors: Option<u64> = (!self.failover.is_empty())
            .then(|| self.failover.iter().map(|f| f.faulty.errors).sum());
        checks.push(TargetCheck {
            what: "failover routing errors".to_owned(),
            goal: "0".to_owned(),
            measured: errors.map_or_else(|| "no data".to_owned(), |e| e.to_string()),
            met: errors == Some(0),
        });
    }

    /// The added latency (p50) of a route in a mode.
    fn route_added_p50(&self, route: Route, stream: bool) -> Option<i128> {
        self.routes
            .iter()
            .find(|r| r.route == route && r.load.stream == stream)
            .and_then(|r| r.load.added())
            .map(|a| a.0)
    }

    /// The routes' targets: pass-through against the OpenAI path,
    /// translated routes against the pass-through, per-chunk translation.
    fn route_targets(&self, checks: &mut Vec<TargetCheck>) {
        for stream in [false, true] {
            let mode = if stream { "stream" } else { "non-stream" };
            let openai = self
                .load
                .iter()
                .find(|c| c.concurrency == 1 && c.stream == stream)
                .and_then(Comparison::added)
                .map(|a| a.0);
            let pass_through = self.route_added_p50(Route::PassThrough, stream);
            checks.push(relative(
                format!("{} added p50, {mode} c=1", Route::PassThrough.label()),
                pass_through,
                openai,
                TARGET_PASS_THROUGH_FACTOR,
            ));
            for route in [Route::OpenAiToAnthropic, Route::AnthropicToGemini] {
                checks.push(relative(
                    format!("{} added p50, {mode} c=1", route.label()),
                    self.route_added_p50(route, stream),
                    pass_through,
                    TARGET_TRANSLATED_FACTOR,
                ));
            }
        }
        for (route, _, cost) in chunk_costs(&self.translation) {
            if route == Route::PassThrough {
                continue;
            }
            checks.push(at_most(
                format!("{} translation per stream chunk, p50", route.label()),
                Some(nanos(cost.p50)),
                TARGET_CHUNK_TRANSLATION,
                tenth_us,
            ));
        }
    }

    /// The whole report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_header(&mut out);
        self.render_load(&mut out);
        self.render_routes(&mut out);
        self.render_failover(&mut out);
        self.render_paced(&mut out);
        self.render_process(&mut out);
        self.render_plugins(&mut out);
        self.render_translation(&mut out);
        self.render_router(&mut out);
        self.render_persistence(&mut out);
        self.render_chains(&mut out);
        self.render_targets(&mut out);
        out
    }

    fn render_header(&self, out: &mut String) {
        let cpu = self.machine.cpu_model.as_deref().unwrap_or("unknown CPU");
        let _ = writeln!(out, "LLM Orchestrator benchmark");
        let _ = writeln!(out, "==========================");
        let _ = writeln!(out, "machine  nproc = {} ({cpu})", self.machine.nproc);
        let _ = writeln!(
            out,
            "         the load generator, the fake upstreams and the gateway share these {} cores:",
            self.machine.nproc
        );
        let _ = writeln!(
            out,
            "         every figure includes their contention for the CPU"
        );
        let _ = writeln!(
            out,
            "method   per scenario: {} warm-up, then a {} measured window; one keep-alive HTTP/1.1",
            secs(self.warmup),
            secs(self.window)
        );
        let _ = writeln!(
            out,
            "         connection per worker; latency = until the whole response was read (streams:"
        );
        let _ = writeln!(
            out,
            "         through the dialect's last event); ttfb = first body byte; req/s = completions"
        );
        let _ = writeln!(out, "         in the window");
        let _ = writeln!(out);
    }

    fn render_load(&self, out: &mut String) {
        let _ = writeln!(out, "1. Throughput and latency (µs)");
        let _ = writeln!(
            out,
            "{:<11}{:>5}  {:<8}{:>9}{:>10}{:>10}{:>10}{:>10}{:>9}{:>8}",
            "mode",
            "conc",
            "path",
            "req/s",
            "p50",
            "p99",
            "ttfb p50",
            "ttfb p99",
            "CPU/req",
            "errors"
        );
        for c in &self.load {
            for (path, o) in [("direct", &c.direct), ("gateway", &c.gateway)] {
                let (ttfb50, ttfb99) = if c.stream {
                    (p50_us(o.ttfb), p99_us(o.ttfb))
                } else {
                    ("-".to_owned(), "-".to_owned())
                };
                let cpu = o
                    .cpu_per_request()
                    .map_or_else(|| "-".to_owned(), |d| format!("{:.0}", micros(d)));
                let _ = writeln!(
                    out,
                    "{:<11}{:>5}  {:<8}{:>9.0}{:>10}{:>10}{:>10}{:>10}{:>9}{:>8}",
                    c.mode(),
                    c.concurrency,
                    path,
                    o.throughput(),
                    p50_us(o.latency),
                    p99_us(o.latency),
                    ttfb50,
                    ttfb99,
                    cpu,
                    o.errors
                );
            }
            let (a50, a99) = c.added().map_or_else(
                || ("-".to_owned(), "-".to_owned()),
                |(a, b)| (signed_bare_us(a), signed_bare_us(b)),
            );
            let share = c
                .throughput_share()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0}%", s * 100.0));
            let (ttfb50, ttfb99) = match (c.stream, c.gateway.ttfb, c.direct.ttfb) {
                (true, Some(g), Some(d)) => (
                    signed_bare_us(diff(g.p50, d.p50)),
                    signed_bare_us(diff(g.p99, d.p99)),
                ),
                _ => ("-".to_owned(), "-".to_owned()),
            };
            let _ = writeln!(
                out,
                "{:<11}{:>5}  {:<8}{:>9}{:>10}{:>10}{:>10}{:>10}",
                "", "", "added", share, a50, a99, ttfb50, ttfb99
            );
        }
        let _ = writeln!(
            out,
            "(added = gateway − direct; on that row, req/s is the gateway's share of direct throughput;"
        );
        let _ = writeln!(out, " CPU/req = the gateway's CPU time per request)");
        let _ = writeln!(out);
    }

    fn render_routes(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "2. Other dialects at c=1: added latency per request (µs); {} warm-up, {} window each",
            secs(self.route_warmup),
            secs(self.route_window)
        );
        for route in Route::ALL {
            let what = match route {
                Route::PassThrough => "Anthropic client → Anthropic-backed model, bytes forwarded",
                Route::OpenAiToAnthropic => "OpenAI client → Anthropic-backed model, translated",
                Route::AnthropicToGemini => "Anthropic client → Gemini-backed model, translated",
            };
            let _ = writeln!(out, "   {:<22}{what}", route.label());
        }
        let _ = writeln!(
            out,
            "   direct = the fake upstream called in the provider's dialect; (a) and (b) share their direct runs"
        );
        let _ = writeln!(
            out,
            "{:<22}{:<11}{:<8}{:>9}{:>9}{:>9}{:>10}{:>10}{:>9}{:>8}",
            "route",
            "mode",
            "path",
            "req/s",
            "p50",
            "p99",
            "ttfb p50",
            "ttfb p99",
            "CPU/req",
            "errors"
        );
        for r in &self.routes {
            let c = &r.load;
            for (path, o) in [("direct", &c.direct), ("gateway", &c.gateway)] {
                let (ttfb50, ttfb99) = if c.stream {
                    (p50_us(o.ttfb), p99_us(o.ttfb))
                } else {
                    ("-".to_owned(), "-".to_owned())
                };
                let cpu = o
                    .cpu_per_request()
                    .map_or_else(|| "-".to_owned(), |d| format!("{:.0}", micros(d)));
                let _ = writeln!(
                    out,
                    "{:<22}{:<11}{:<8}{:>9.0}{:>9}{:>9}{:>10}{:>10}{:>9}{:>8}",
                    r.route.label(),
                    c.mode(),
                    path,
                    o.throughput(),
                    p50_us(o.latency),
                    p99_us(o.latency),
                    ttfb50,
                    ttfb99,
                    cpu,
                    o.errors
                );
            }
            let (a50, a99) = c.added().map_or_else(
                || ("-".to_owned(), "-".to_owned()),
                |(a, b)| (signed_bare_us(a), signed_bare_us(b)),
            );
            let share = c
                .throughput_share()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0}%", s * 100.0));
            let (ttfb50, ttfb99) = match (c.stream, c.gateway.ttfb, c.direct.ttfb) {
                (true, Some(g), Some(d)) => (
                    signed_bare_us(diff(g.p50, d.p50)),
                    signed_bare_us(diff(g.p99, d.p99)),
                ),
                _ => ("-".to_owned(), "-".to_owned()),
            };
            let _ = writeln!(
                out,
                "{:<22}{:<11}{:<8}{:>9}{:>9}{:>9}{:>10}{:>10}",
                "", "", "added", share, a50, a99, ttfb50, ttfb99
            );
        }
        let _ = writeln!(
            out,
            "added p50 by mode (µs)        non-stream    stream   (OpenAI path from section 1)"
        );
        let openai = |stream: bool| {
            self.load
                .iter()
                .find(|c| c.concurrency == 1 && c.stream == stream)
                .and_then(Comparison::added)
                .map(|a| a.0)
        };
        let show = |v: Option<i128>| v.map_or_else(|| "-".to_owned(), signed_bare_us);
        let _ = writeln!(
            out,
            "{:<30}{:>10}{:>10}",
            "OpenAI path",
            show(openai(false)),
            show(openai(true))
        );
        for route in Route::ALL {
            let _ = writeln!(
                out,
                "{:<30}{:>10}{:>10}",
                route.label(),
                show(self.route_added_p50(route, false)),
                show(self.route_added_p50(route, true))
            );
        }
        let _ = writeln!(out);
    }

    fn render_failover(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "3. Routing across 3 targets, one failing {:.0}%: non-stream, through the gateway (µs); {} warm-up, {} window each",
            FAULTY_FAIL_RATE * 100.0,
            secs(self.warmup),
            secs(self.window)
        );
        let _ = writeln!(
            out,
            "   clean  = model {ROUTED_CLEAN_MODEL}: providers fake, fake-b, fake-c (all the fast fake), weight 1 each"
        );
        let _ = writeln!(
            out,
            "   faulty = model {ROUTED_FAULTY_MODEL}: providers fake, fake-b, and faulty (a fake failing {:.0}% with {FAULTY_FAIL_STATUSES})",
            FAULTY_FAIL_RATE * 100.0
        );
        let _ = writeln!(
            out,
            "{:>5}  {:<16}{:>9}{:>10}{:>10}{:>9}{:>8}",
            "conc", "run", "req/s", "p50", "p99", "CPU/req", "errors"
        );
        for f in &self.failover {
            for (run, o) in [("clean", &f.clean), ("faulty", &f.faulty)] {
                let cpu = o
                    .cpu_per_request()
                    .map_or_else(|| "-".to_owned(), |d| format!("{:.0}", micros(d)));
                let _ = writeln!(
                    out,
                    "{:>5}  {:<16}{:>9.0}{:>10}{:>10}{:>9}{:>8}",
                    f.concurrency,
                    run,
                    o.throughput(),
                    p50_us(o.latency),
                    p99_us(o.latency),
                    cpu,
                    o.errors
                );
            }
            let (a50, a99) = f.added().map_or_else(
                || ("-".to_owned(), "-".to_owned()),
                |(a, b)| (signed_bare_us(a), signed_bare_us(b)),
            );
            let share = f
                .throughput_share()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0}%", s * 100.0));
            let _ = writeln!(
                out,
                "{:>5}  {:<16}{:>9}{:>10}{:>10}",
                "", "faulty − clean", share, a50, a99
            );
        }
        if self.failover.is_empty() {
            let _ = writeln!(out, "(not measured)");
        }
        let _ = writeln!(
            out,
            "(on the faulty − clean row, req/s is the faulty run's share of the clean run's throughput;"
        );
        let _ = writeln!(
            out,
            " errors = failures the client saw; attempts failed over to another target are not counted)"
        );
        let _ = writeln!(out);
    }

    fn render_router(&self, out: &mut String) {
        let iterations = self.router.first().map_or(0, |(_, s)| s.count);
        let _ = writeln!(
            out,
            "8. Router decision: in-process, 3 targets (one degraded), {iterations} decisions per strategy (µs)"
        );
        let _ = writeln!(out, "{:<30}{:>10}{:>10}", "strategy", "p50", "p99");
        for (strategy, s) in &self.router {
            let _ = writeln!(
                out,
                "{:<30}{:>10.1}{:>10.1}",
                strategy,
                micros(s.p50),
                micros(s.p99)
            );
        }
        if self.router.is_empty() {
            let _ = writeln!(out, "(not measured)");
        }
        let _ = writeln!(
            out,
            "(per request, as the gateway decides: every target's health admission (least-latency: and its"
        );
        let _ = writeln!(
            out,
            " latency average), then the plan with the thread's RNG; sticky requests carry a session key)"
        );
        let _ = writeln!(out);
    }

    fn render_translation(&self, out: &mut String) {
        let t = &self.translation;
        let _ = writeln!(
            out,
            "7. Stream-chunk translation: in-process, recorded chunks, fresh instances per stream, {} chunks per call (µs)",
            t.chunks
        );
        let _ = writeln!(
            out,
            "{:<46}{:>10}{:>10}{:>10}",
            "call (one chunk)", "input", "p50", "p99"
        );
        let rows: [(&str, ChunkCost); 5] = [
            (
                "anthropic.wasm decode, native (pass-through)",
                t.anthropic_native,
            ),
            ("anthropic.wasm decode, canonical", t.anthropic_decode),
            ("gemini.wasm decode, canonical", t.gemini_decode),
            ("dialect-anthropic.wasm encode", t.anthropic_encode),
            ("dialect-gemini.wasm encode", t.gemini_encode),
        ];
        for (call, c) in rows {
            let _ = writeln!(
                out,
                "{:<46}{:>10}{:>10.1}{:>10.1}",
                call,
                bytes(c.input_bytes),
                micros(c.cost.p50),
                micros(c.cost.p99)
            );
        }
        let _ = writeln!(out, "plugin calls per chunk, by route");
        for (route, calls, cost) in chunk_costs(t) {
            let _ = writeln!(
                out,
                "{:<22}{:<34}{:>10.1}{:>10.1}",
                route.label(),
                calls,
                micros(cost.p50),
                micros(cost.p99)
            );
        }
        let _ = writeln!(
            out,
            "(content_block_delta and Gemini responses of a few tokens; decoders get the upstream frame, encoders"
        );
        let _ = writeln!(
            out,
            " the canonical chunk the other dialect's decoder made of it; (c) sums both calls per chunk; (b)'s"
        );
        let _ = writeln!(
            out,
            " canonical chunks reach OpenAI clients through the host's SSE framing, no plugin call)"
        );
        let _ = writeln!(out);
    }

    fn render_paced(&self, out: &mut String) {
        let p = &self.pacing;
        let _ = writeln!(
            out,
            "4. Paced stream: time to first byte (fake: ttft {} ms, {} chunks {} ms apart; c={})",
            p.ttft_ms, p.chunks, p.chunk_delay_ms, self.paced.concurrency
        );
        let _ = writeln!(
            out,
            "{:<12}{:>9}{:>12}{:>12}{:>12}{:>12}{:>8}",
            "path", "streams", "ttfb p50", "ttfb p99", "total p50", "CPU/req", "errors"
        );
        for (path, o) in [
            ("direct", &self.paced.direct),
            ("gateway", &self.paced.gateway),
        ] {
            let _ = writeln!(
                out,
                "{:<12}{:>9}{:>12}{:>12}{:>12}{:>12}{:>8}",
                path,
                o.ttfb.map_or(0, |s| s.count),
                o.ttfb.map_or_else(|| "-".to_owned(), |s| ms(s.p50)),
                o.ttfb.map_or_else(|| "-".to_owned(), |s| ms(s.p99)),
                o.latency.map_or_else(|| "-".to_owned(), |s| ms(s.p50)),
                o.cpu_per_request().map_or_else(|| "-".to_owned(), ms),
                o.errors
            );
        }
        let _ = writeln!(
            out,
            "{:<12}{:>9}{:>12}",
            "difference",
            "",
            self.paced
                .added_ttfb_p50()
                .map_or_else(|| "-".to_owned(), signed_ms)
        );
        let _ = writeln!(out);
    }

    fn render_process(&self, out: &mut String) {
        let _ = writeln!(out, "5. Gateway process");
        let _ = writeln!(
            out,
            "{:<44}{:>12}",
            "idle RSS after start-up (VmRSS)",
            mib(self.idle.rss_kib)
        );
        if let Some(warm) = self.idle_warm {
            let _ = writeln!(
                out,
                "{:<44}{:>12}",
                "idle RSS, restart with warm compile cache",
                mib(warm.rss_kib)
            );
        }
        let _ = writeln!(
            out,
            "{:<44}{:>12}",
            "RSS after all load (VmRSS)",
            mib(self.after_load.rss_kib)
        );
        let _ = writeln!(
            out,
            "{:<44}{:>12}",
            "peak RSS after all load (VmHWM)",
            mib(self.after_load.peak_kib)
        );
        match self.worst_cpu() {
            Some((name, cpu)) => {
                let _ = writeln!(
                    out,
                    "{:<44}{:>12}",
                    format!("CPU per request, worst load ({name})"),
                    ms(cpu)
                );
            }
            None => {
                let _ = writeln!(out, "{:<44}{:>12}", "CPU per request", "no data");
            }
        }
        let _ = writeln!(
            out,
            "(CPU = utime + stime of all its threads over a measured window / requests completed in it)"
        );
        let _ = writeln!(out);
    }

    fn render_plugins(&self, out: &mut String) {
        let p = &self.plugins;
        let _ = writeln!(
            out,
            "6. Plugin calls: openai.wasm in-process, {} iterations each, fresh instance per attempt (µs)",
            p.iterations
        );
        let _ = writeln!(
            out,
            "{:<30}{:>10}{:>10}{:>10}",
            "call", "input", "p50", "p99"
        );
        let rows = [
            (
                "instantiate (fresh instance)",
                "-".to_owned(),
                p.instantiate,
            ),
            ("build_request", bytes(p.request_bytes), p.build_request),
            ("parse_response", bytes(p.response_bytes), p.parse_response),
            ("stream chunk (push)", bytes(p.chunk_bytes), p.stream_chunk),
        ];
        for (call, input, s) in rows {
            let _ = writeln!(
                out,
                "{:<30}{:>10}{:>10.1}{:>10.1}",
                call,
                input,
                micros(s.p50),
                micros(s.p99)
            );
        }
        match &self.loop_deadline {
            LoopDeadline::Measured(d) => {
                let _ = writeln!(
                    out,
                    "infinite-loop deadline overshoot (fixture_loop.wasm, {} ms deadline, {} calls): p50 {}, max {}",
                    d.deadline.as_millis(),
                    d.runs,
                    ms(d.p50),
                    ms(d.max)
                );
            }
            LoopDeadline::Skipped(why) => {
                let _ = writeln!(
                    out,
                    "infinite-loop deadline overshoot: not measured ({why})"
                );
            }
        }
        let _ = writeln!(out);
    }

    /// Throughput of each persistence run as a share of the baseline's.
    fn persistence_shares(&self) -> Vec<(&PersistenceRun, Option<f64>)> {
        let base = self
            .persistence
            .first()
            .and_then(|r| r.outcome.as_ref())
            .map(Outcome::throughput)
            .filter(|t| *t > 0.0);
        self.persistence
            .iter()
            .map(|r| {
                let share = r
                    .outcome
                    .as_ref()
                    .zip(base)
                    .map(|(o, b)| o.throughput() / b);
                (r, share)
            })
            .collect()
    }

    fn render_persistence(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "9. Persistence: non-stream c={}, OpenAI API, a gateway per backend, backends in turn, median of 3 rounds (µs); {} warm-up, {} window each",
            self.persistence_concurrency,
            secs(self.warmup),
            secs(self.window)
        );
        let _ = writeln!(
            out,
            "{:<30}{:>9}{:>9}{:>10}{:>10}{:>9}{:>8}",
            "backend", "req/s", "share", "p50", "p99", "CPU/req", "errors"
        );
        for (r, share) in self.persistence_shares() {
            match &r.outcome {
                Some(o) => {
                    let cpu = o
                        .cpu_per_request()
                        .map_or_else(|| "-".to_owned(), |d| format!("{:.0}", micros(d)));
                    let share =
                        share.map_or_else(|| "-".to_owned(), |s| format!("{:.0}%", s * 100.0));
                    let _ = writeln!(
                        out,
                        "{:<30}{:>9.0}{:>9}{:>10}{:>10}{:>9}{:>8}",
                        r.backend,
                        o.throughput(),
                        share,
                        p50_us(o.latency),
                        p99_us(o.latency),
                        cpu,
                        o.errors
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{:<30}not run: {}",
                        r.backend,
                        r.note.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        if self.persistence.is_empty() {
            let _ = writeln!(out, "(not measured)");
        }
        let _ = writeln!(
            out,
            "(share = req/s against the first row; logging is batched off the request path, limits are"
        );
        let _ = writeln!(
            out,
            " decided in memory from allotments the gateway claims from Redis in the background)"
        );
        let _ = writeln!(out);
    }

    fn render_chains(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "10. Transformer chains: OpenAI API c=1, no-op transformers on every hook (µs); {} warm-up, {} window each",
            secs(self.route_warmup),
            secs(self.route_window)
        );
        if self.chains.is_empty() {
            let _ = writeln!(
                out,
                "(not measured: no --fixtures with the no-op transformer)"
            );
            let _ = writeln!(out);
            return;
        }
        let _ = writeln!(
            out,
            "{:<14}{:<12}{:>9}{:>9}{:>12}{:>9}",
            "transformers", "mode", "p50", "p99", "added p50", "CPU/req"
        );
        for c in &self.chains {
            let base = self
                .chains
                .iter()
                .find(|r| r.stream == c.stream && r.transformers == 0)
                .and_then(|r| r.outcome.latency);
            let added = match (c.outcome.latency, base) {
                (Some(l), Some(b)) => signed_bare_us(nanos(l.p50) - nanos(b.p50)),
                _ => "-".to_owned(),
            };
            let cpu = c
                .outcome
                .cpu_per_request()
                .map_or_else(|| "-".to_owned(), |d| format!("{:.0}", micros(d)));
            let _ = writeln!(
                out,
                "{:<14}{:<12}{:>9}{:>9}{:>12}{:>9}",
                c.transformers,
                if c.stream { "stream" } else { "non-stream" },
                p50_us(c.outcome.latency),
                p99_us(c.outcome.latency),
                added,
                cpu
            );
        }
        let show = |v: Option<i128>| v.map_or_else(|| "-".to_owned(), signed_us);
        let _ = writeln!(
            out,
            "(per transformer: {} non-stream, {} stream; per chunk ≈ {}: the stream's extra over {} filter calls)",
            show(self.per_transformer(false)),
            show(self.per_transformer(true)),
            self.per_chunk().map_or_else(|| "-".to_owned(), tenth_us),
            self.filter_calls()
        );
        let _ = writeln!(out);
    }

    fn render_targets(&self, out: &mut String) {
        let _ = writeln!(out, "11. Targets");
        let _ = writeln!(
            out,
            "{:<52}{:>12}{:>12}  result",
            "target", "goal", "measured"
        );
        for t in self.targets() {
            let _ = writeln!(
                out,
                "{:<52}{:>12}{:>12}  {}",
                t.what,
                t.goal,
                t.measured,
                if t.met { "met" } else { "NOT met" }
            );
        }
        let _ = writeln!(
            out,
            "((a)'s goal: {TARGET_PASS_THROUGH_FACTOR} × the OpenAI path's added p50 in the same mode; (b) and (c): \
             {TARGET_TRANSLATED_FACTOR} × (a)'s)"
        );
    }
}

/// At most `factor` times `reference` (both signed nanoseconds); for a
/// negative reference, the limit is `reference + (factor - 1) × |reference|`.
fn relative(
    what: String,
    measured_nanos: Option<i128>,
    reference_nanos: Option<i128>,
    factor: f64,
) -> TargetCheck {
    let limit =
        reference_nanos.map(|r| r + ((factor - 1.0) * r.unsigned_abs() as f64).round() as i128);
    TargetCheck {
        what,
        goal: limit.map_or_else(|| "no data".to_owned(), |l| format!("≤ {}", signed_us(l))),
        measured: measured_nanos.map_or_else(|| "no data".to_owned(), signed_us),
        met: matches!((measured_nanos, limit), (Some(m), Some(l)) if m <= l),
    }
}

fn nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

fn at_most(
    what: String,
    measured_nanos: Option<i128>,
    goal: Duration,
    show: fn(i128) -> String,
) -> TargetCheck {
    let goal_nanos = i128::try_from(goal.as_nanos()).unwrap_or(i128::MAX);
    TargetCheck {
        what,
        goal: format!("≤ {}", goal_text(goal)),
        measured: measured_nanos.map_or_else(|| "no data".to_owned(), show),
        met: measured_nanos.is_some_and(|m| m <= goal_nanos),
    }
}

/// A goal duration in its natural unit: `150 µs`, `1 ms`.
fn goal_text(d: Duration) -> String {
    if d >= Duration::from_millis(1) && d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} µs", d.as_micros())
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn p50_us(s: Option<Summary>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{:.0}", micros(s.p50)))
}

fn p99_us(s: Option<Summary>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{:.0}", micros(s.p99)))
}

fn tenth_us(nanos: i128) -> String {
    format!("{:.1} µs", nanos as f64 / 1e3)
}

fn signed_bare_us(nanos: i128) -> String {
    format!("{:+.0}", nanos as f64 / 1e3)
}

fn signed_us(nanos: i128) -> String {
    format!("{:+.0} µs", nanos as f64 / 1e3)
}

fn signed_ms(nanos: i128) -> String {
    format!("{:+.2} ms", nanos as f64 / 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn bytes(n: usize) -> String {
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p50_us: u64, p99_us: u64) -> Option<Summary> {
        Some(Summary {
            count: 100,
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p99_us),
        })
    }

    fn outcome(completed: u64, p50_us: u64, p99_us: u64, cpu_ms: Option<u64>) -> Outcome {
        Outcome {
            completed,
            window: Duration::from_secs(1),
            latency: summary(p50_us, p99_us),
            ttfb: summary(p50_us / 2, p99_us / 2),
            errors: 0,
            first_error: None,
            cpu: cpu_ms.map(Duration::from_millis),
        }
    }

    fn comparison(
        stream: bool,
        concurrency: usize,
        direct: Outcome,
        gateway: Outcome,
    ) -> Comparison {
        Comparison {
            stream,
            concurrency,
            direct,
            gateway,
        }
    }

    fn chunk(p50_us: u64) -> ChunkCost {
        ChunkCost {
            cost: summary(p50_us, 2 * p50_us).unwrap(),
            input_bytes: 100,
        }
    }

    /// Direct 100 µs; gateway + the given added µs, per route, non-stream
    /// then stream.
    fn routes(added: [(Route, u64, u64); 3]) -> Vec<RouteComparison> {
        let mut routes = Vec::new();
        for (route, plain, streamed) in added {
            for (stream, extra) in [(false, plain), (true, streamed)] {
                routes.push(RouteComparison {
                    route,
                    load: comparison(
                        stream,
                        1,
                        outcome(5_000, 100, 300, None),
                        outcome(4_000, 100 + extra, 300 + 2 * extra, Some(500)),
                    ),
                });
            }
        }
        routes
    }

    fn report() -> Report {
        let costs = Summary {
            count: 10,
            p50: Duration::from_micros(20),
            p99: Duration::from_micros(40),
        };
        Report {
            machine: Machine {
                nproc: 2,
                cpu_model: Some("Test CPU".into()),
            },
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(1),
            load: vec![
                comparison(
                    false,
                    1,
                    outcome(10_000, 100, 300, None),
                    outcome(5_000, 200, 900, Some(1_000)),
                ),
                comparison(
                    true,
                    1,
                    outcome(8_000, 120, 400, None),
                    outcome(4_000, 400, 2_000, Some(1_200)),
                ),
                comparison(
                    false,
                    64,
                    outcome(40_000, 1_000, 3_000, None),
                    outcome(20_000, 3_000, 9_000, Some(4_000)),
                ),
                comparison(
                    true,
                    64,
                    outcome(30_000, 1_500, 4_000, None),
                    outcome(6_000, 9_000, 20_000, Some(3_000)),
                ),
            ],
            pacing: Pacing {
                ttft_ms: 20,
                chunk_delay_ms: 10,
                chunks: 10,
            },
            paced: comparison(
                true,
                4,
                outcome(30, 120_000, 125_000, None),
                outcome(30, 120_400, 126_000, Some(3)),
            ),
            // OpenAI added p50: 100 µs non-stream, 280 µs stream.
            routes: routes([
                (Route::PassThrough, 110, 350),
                (Route::OpenAiToAnthropic, 200, 800),
                (Route::AnthropicToGemini, 230, 600),
            ]),
            route_warmup: Duration::from_millis(500),
            route_window: Duration::from_secs(2),
            failover: vec![
                FailoverRun {
                    concurrency: 1,
                    clean: outcome(5_000, 200, 600, Some(1_000)),
                    faulty: outcome(4_500, 230, 1_600, Some(1_000)),
                },
                FailoverRun {
                    concurrency: 64,
                    clean: outcome(20_000, 3_000, 9_000, Some(4_000)),
                    faulty: outcome(15_000, 3_500, 12_000, Some(3_600)),
                },
            ],
            persistence: vec![
                PersistenceRun {
                    backend: "no request log".into(),
                    outcome: Some(outcome(10_000, 1_000, 3_000, Some(1_000))),
                    note: None,
                },
                PersistenceRun {
                    backend: "log → PostgreSQL".into(),
                    outcome: Some(outcome(9_500, 1_100, 3_300, Some(1_100))),
                    note: None,
                },
                PersistenceRun {
                    backend: "log → MariaDB".into(),
                    outcome: None,
                    note: Some("no server".into()),
                },
            ],
            chains: [(0, false, 100), (1, false, 121), (3, false, 160)]
                .into_iter()
                .chain([(0, true, 280), (1, true, 330), (3, true, 700)])
                .map(|(transformers, stream, p50)| ChainRun {
                    transformers,
                    stream,
                    outcome: outcome(2_000, p50, p50 * 2, Some(400)),
                })
                .collect(),
            stream_chunks: 8,
            persistence_concurrency: 16,
            idle: Memory {
                rss_kib: 40 * 1024,
                peak_kib: 41 * 1024,
            },
            idle_warm: Some(Memory {
                rss_kib: 30 * 1024,
                peak_kib: 31 * 1024,
            }),
            after_load: Memory {
                rss_kib: 90 * 1024,
                peak_kib: 160 * 1024,
            },
            plugins: PluginCosts {
                iterations: 10,
                instantiate: costs,
                build_request: costs,
                parse_response: costs,
                stream_chunk: costs,
                request_bytes: 4000,
                response_bytes: 600,
                chunk_bytes: 150,
            },
            translation: TranslationCosts {
                chunks: 10,
                anthropic_native: chunk(3),
                anthropic_decode: chunk(8),
                gemini_decode: chunk(12),
                anthropic_encode: chunk(9),
                gemini_encode: chunk(10),
                gemini_to_anthropic: summary(21, 30).unwrap(),
            },
            loop_deadline: LoopDeadline::Skipped("no --fixtures".into()),
            router: vec![
                ("weighted".into(), nanos_summary(800, 2_100)),
                ("least-latency".into(), nanos_summary(1_140, 3_000)),
                ("sticky".into(), nanos_summary(5_200, 9_000)),
            ],
        }
    }

    fn nanos_summary(p50: u64, p99: u64) -> Summary {
        Summary {
            count: 50_000,
            p50: Duration::from_nanos(p50),
            p99: Duration::from_nanos(p99),
        }
    }

    #[test]
    fn targets_are_judged_against_the_measurements() {
        let checks = report().targets();
        let met: Vec<(&str, bool)> = checks.iter().map(|c| (c.what.as_str(), c.met)).collect();
        assert_eq!(
            met,
            [
                ("added latency p50, non-stream c=1", true),
                ("added latency p99, non-stream c=1", true),
                ("added latency p50, stream c=1", false),
                ("added latency p99, stream c=1", false),
                ("gateway throughput, non-stream c=64, share of direct", true),
                ("gateway throughput, stream c=64, share of direct", false),
                ("paced-stream TTFB p50, gateway − direct", true),
                ("gateway CPU per request (worst: stream c=64)", false),
                ("gateway idle RSS after start-up", true),
                ("gateway peak RSS after all load", false),
                ("(a) pass-through added p50, non-stream c=1", true),
                ("(b) OpenAI→Anthropic added p50, non-stream c=1", true),
                ("(c) Anthropic→Gemini added p50, non-stream c=1", false),
                ("(a) pass-through added p50, stream c=1", false),
                ("(b) OpenAI→Anthropic added p50, stream c=1", false),
                ("(c) Anthropic→Gemini added p50, stream c=1", true),
                (
                    "(b) OpenAI→Anthropic translation per stream chunk, p50",
                    true
                ),
                (
                    "(c) Anthropic→Gemini translation per stream chunk, p50",
                    false
                ),
                ("router decision p50 (weighted)", true),
                ("router decision p50 (least-latency)", true),
                ("router decision p50 (sticky)", false),
                ("failover routing errors", true),
                ("throughput with log → PostgreSQL, share of none", true),
                ("throughput with log → MariaDB, share of none", false),
                ("one no-op transformer per request, added p50", true),
                ("one no-op transformer per stream chunk", false),
            ]
        );
        // (160 − 100) / 3 = 20 µs per request; streams (700 − 280) / 3 =
        // 140 µs, so (140 − 20) / (8 + 2) = 12 µs per chunk.
        let chain = &checks[checks.len() - 2..];
        assert_eq!(chain[0].measured, "+20 µs");
        assert_eq!(chain[0].goal, "≤ 30 µs");
        assert_eq!(chain[1].goal, "≤ 10 µs");
        assert_eq!(chain[1].measured, "12.0 µs");
        // 1.2 × 100 µs; 2 × 110 µs; 1.2 × 280 µs.
        assert_eq!(checks[10].goal, "≤ +120 µs");
        assert_eq!(checks[10].measured, "+110 µs");
        assert_eq!(checks[11].goal, "≤ +220 µs");
        assert_eq!(checks[13].goal, "≤ +336 µs");
        assert_eq!(checks[16].goal, "≤ 20 µs");
        assert_eq!(checks[17].measured, "21.0 µs");
        assert_eq!(checks[0].measured, "+100 µs");
        assert_eq!(checks[0].goal, "≤ 150 µs");
        assert_eq!(checks[7].measured, "0.500 ms");
        assert_eq!(checks[7].goal, "≤ 0.300 ms");
        assert_eq!(checks[1].goal, "≤ 1 ms");
        assert_eq!(checks[6].goal, "≤ 1 ms");
    }

    #[test]
    fn router_and_failover_checks() {
        let mut r = report();
        let checks = r.targets();
        let router: Vec<(&str, &str, &str)> = checks[18..21]
            .iter()
            .map(|c| (c.what.as_str(), c.goal.as_str(), c.measured.as_str()))
            .collect();
        assert_eq!(
            router,
            [
                ("router decision p50 (weighted)", "≤ 5 µs", "0.8 µs"),
                ("router decision p50 (least-latency)", "≤ 5 µs", "1.1 µs"),
                ("router decision p50 (sticky)", "≤ 5 µs", "5.2 µs"),
            ]
        );
        assert_eq!(
            (checks[21].goal.as_str(), checks[21].measured.as_str()),
            ("0", "0")
        );
        // A failed request in the clean run is an error of the run, not of
        // failover; one in a faulty run fails both.
        r.failover[0].clean.errors = 1;
        r.failover[0].clean.first_error = Some("status 500".into());
        assert!(r.targets()[21].met);
        r.failover[1].faulty.errors = 2;
        r.failover[1].faulty.first_error = Some("status 503".into());
        let check = &r.targets()[21];
        assert_eq!(check.measured, "2");
        assert!(!check.met);
        assert_eq!(
            r.errors(),
            [
                "routed-clean non-stream c=1 gateway: 1 failed requests, first: status 500",
                "routed-faulty non-stream c=64 gateway: 2 failed requests, first: status 503",
            ]
        );
        // Not measured: not met.
        r.failover.clear();
        r.router.clear();
        r.chains.clear();
        let checks = r.targets();
        let last: Vec<(&str, &str, bool)> = checks[18..]
            .iter()
            .map(|c| (c.what.as_str(), c.measured.as_str(), c.met))
            .collect();
        assert_eq!(
            last,
            [
                ("router decision p50", "no data", false),
                ("failover routing errors", "no data", false),
                (
                    "throughput with log → PostgreSQL, share of none",
                    "95 %",
                    true
                ),
                (
                    "throughput with log → MariaDB, share of none",
                    "no data",
                    false
                ),
                (
                    "one no-op transformer per request, added p50",
                    "no data",
                    false
                ),
                ("one no-op transformer per stream chunk", "no data", false),
            ]
        );
        assert!(r.render().contains("(not measured)"));
    }

    #[test]
    fn failover_compares_faulty_with_clean() {
        let r = report();
        let f = &r.failover[0];
        assert_eq!(f.added(), Some((30_000, 1_000_000)));
        assert!((f.throughput_share().unwrap() - 0.9).abs() < 1e-9);
        let text = r.render();
        let section = text
            .split("3. Routing across 3 targets")
            .nth(1)
            .and_then(|rest| rest.split("4. Paced stream").next())
            .unwrap();
        assert!(section.contains("90%"), "{section}");
        assert!(section.contains("+30"), "{section}");
        assert!(section.contains("+1000"), "{section}");
        assert!(section.contains("75%"), "{section}");
        let router = text
            .split("8. Router decision")
            .nth(1)
            .and_then(|rest| rest.split("9. Persistence").next())
            .unwrap();
        assert!(router.contains("50000 decisions"), "{router}");
        assert!(router.contains("least-latency"), "{router}");
        assert!(router.contains("1.1"), "{router}");
        assert!(router.contains("9.0"), "{router}");
    }

    #[test]
    fn missing_data_is_not_met() {
        let mut r = report();
        r.load[0].gateway.latency = None;
        let checks = r.targets();
        assert_eq!(checks[0].measured, "no data");
        assert!(!checks[0].met);
    }

    #[test]
    fn relative_goals_scale_the_reference() {
        let us = |n: i128| Some(n * 1_000);
        let c = relative("x".into(), us(199), us(100), 2.0);
        assert!(c.met);
        assert_eq!(c.goal, "≤ +200 µs");
        assert!(!relative("x".into(), us(201), us(100), 2.0).met);
        // A negative reference (the gateway was faster, within noise) keeps
        // the limit at or above it.
        let c = relative("x".into(), us(-5), us(-10), 2.0);
        assert_eq!(c.goal, "≤ +0 µs");
        assert!(c.met);
        let c = relative("x".into(), us(5), None, 2.0);
        assert_eq!(c.goal, "no data");
        assert!(!c.met);
        assert!(!relative("x".into(), None, us(100), 2.0).met);
    }

    #[test]
    fn missing_routes_are_not_met() {
        let mut r = report();
        r.routes.clear();
        let checks = r.targets();
        for c in &checks[10..16] {
            assert_eq!(c.measured, "no data", "{}", c.what);
            assert!(!c.met, "{}", c.what);
        }
    }

    #[test]
    fn routes_speak_the_right_dialects() {
        assert_eq!(Route::PassThrough.client(), Api::Anthropic);
        assert_eq!(Route::PassThrough.upstream(), Api::Anthropic);
        assert_eq!(Route::OpenAiToAnthropic.client(), Api::OpenAi);
        assert_eq!(Route::OpenAiToAnthropic.upstream(), Api::Anthropic);
        assert_eq!(Route::AnthropicToGemini.client(), Api::Anthropic);
        assert_eq!(Route::AnthropicToGemini.upstream(), Api::Gemini);
    }

    #[test]
    fn errors_name_the_scenario() {
        let mut r = report();
        assert!(r.errors().is_empty());
        r.load[1].gateway.errors = 3;
        r.load[1].gateway.first_error = Some("status 502".into());
        assert_eq!(
            r.errors(),
            ["stream c=1 gateway: 3 failed requests, first: status 502"]
        );
        // (a) and (b) share their direct run: its failures are reported once.
        let mut r = report();
        for route in &mut r.routes[..4] {
            if !route.load.stream {
                route.load.direct.errors = 1;
                route.load.direct.first_error = Some("reset".into());
            }
        }
        r.routes[5].load.gateway.errors = 2;
        r.routes[5].load.gateway.first_error = Some("status 400".into());
        assert_eq!(
            r.errors(),
            [
                "Anthropic direct non-stream c=1: 1 failed requests, first: reset",
                "(c) Anthropic→Gemini stream c=1 gateway: 2 failed requests, first: status 400",
            ]
        );
    }

    #[test]
    fn the_rendered_report_has_every_section() {
        let text = report().render();
        for needle in [
            "nproc = 2",
            "1. Throughput and latency",
            "2. Other dialects at c=1",
            "(b) OpenAI→Anthropic",
            "3. Routing across 3 targets, one failing 20%",
            "routed-faulty",
            "faulty − clean",
            "4. Paced stream",
            "5. Gateway process",
            "6. Plugin calls",
            "7. Stream-chunk translation",
            "gemini decode + anthropic encode",
            "8. Router decision",
            "least-latency",
            "9. Persistence",
            "log → PostgreSQL",
            "not run: no server",
            "10. Transformer chains",
            "per transformer: +20 µs non-stream",
            "11. Targets",
            "NOT met",
            "not measured (no --fixtures)",
            "+0.20 ms",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
