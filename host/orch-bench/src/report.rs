//! The printed report: the measured figures as tables, and the targets from
//! the issue next to them, each marked met or not met.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{Outcome, Summary};
use crate::plugin_costs::{DeadlineOvershoot, PluginCosts};
use crate::procs::{Machine, Memory};

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
    /// The gateway after start-up, before any request.
    pub idle: Memory,
    /// The gateway after all load.
    pub after_load: Memory,
    /// Plugin call costs.
    pub plugins: PluginCosts,
    /// Infinite-loop deadline overshoot.
    pub loop_deadline: LoopDeadline,
}

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
    fn outcomes(&self) -> impl Iterator<Item = (String, &Outcome)> {
        let paced = (
            format!("paced stream c={}", self.paced.concurrency),
            &self.paced,
        );
        self.load
            .iter()
            .map(|c| (c.name(), c))
            .chain(std::iter::once(paced))
            .flat_map(|(name, c)| {
                [
                    (format!("{name} direct"), &c.direct),
                    (format!("{name} gateway"), &c.gateway),
                ]
            })
    }

    /// Scenarios with failed requests, with the first failure of each.
    pub fn errors(&self) -> Vec<String> {
        self.outcomes()
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
        checks
    }

    /// The whole report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_header(&mut out);
        self.render_load(&mut out);
        self.render_paced(&mut out);
        self.render_process(&mut out);
        self.render_plugins(&mut out);
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
            "         the load generator, both fake upstreams and the gateway share these {} cores:",
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
            "         through `data: [DONE]`); ttfb = first body byte; req/s = completions in the window"
        );
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

    fn render_paced(&self, out: &mut String) {
        let p = &self.pacing;
        let _ = writeln!(
            out,
            "2. Paced stream: time to first byte (fake: ttft {} ms, {} chunks {} ms apart; c={})",
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
        let _ = writeln!(out, "3. Gateway process");
        let _ = writeln!(
            out,
            "{:<44}{:>12}",
            "idle RSS after start-up (VmRSS)",
            mib(self.idle.rss_kib)
        );
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
            "4. Plugin calls: openai.wasm in-process, {} iterations each, fresh instance per attempt (µs)",
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

    fn render_targets(&self, out: &mut String) {
        let _ = writeln!(out, "5. Targets");
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
    }
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
            idle: Memory {
                rss_kib: 40 * 1024,
                peak_kib: 41 * 1024,
            },
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
            loop_deadline: LoopDeadline::Skipped("no --fixtures".into()),
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
            ]
        );
        assert_eq!(checks[0].measured, "+100 µs");
        assert_eq!(checks[0].goal, "≤ 150 µs");
        assert_eq!(checks[7].measured, "0.500 ms");
        assert_eq!(checks[7].goal, "≤ 0.300 ms");
        assert_eq!(checks[1].goal, "≤ 1 ms");
        assert_eq!(checks[6].goal, "≤ 1 ms");
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
    fn errors_name_the_scenario() {
        let mut r = report();
        assert!(r.errors().is_empty());
        r.load[1].gateway.errors = 3;
        r.load[1].gateway.first_error = Some("status 502".into());
        assert_eq!(
            r.errors(),
            ["stream c=1 gateway: 3 failed requests, first: status 502"]
        );
    }

    #[test]
    fn the_rendered_report_has_every_section() {
        let text = report().render();
        for needle in [
            "nproc = 2",
            "1. Throughput and latency",
            "2. Paced stream",
            "3. Gateway process",
            "4. Plugin calls",
            "5. Targets",
            "NOT met",
            "not measured (no --fixtures)",
            "+0.20 ms",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
