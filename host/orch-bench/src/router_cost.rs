//! What the router's own decision costs, measured in this process: per
//! request, exactly what the gateway does before its first attempt (read
//! the clock, ask every target's health for its admission, and for
//! least-latency its latency average, then order the targets with
//! [`orch_core::routing::plan`]), on a model with three targets, one of
//! them degraded.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use orch_core::routing::health::{Admission, Health, HealthPolicy, State};
use orch_core::routing::{Candidate, ModelRoute, Standing, Strategy, Target, plan};

use crate::load::Summary;

/// Fewest measured decisions per strategy.
pub const MIN_ITERATIONS: usize = 50_000;

/// The session key of the sticky strategy's requests.
pub const SESSION: &str = "session-42";

/// The degraded target (of three): a fifth of its recorded attempts failed.
const DEGRADED_TARGET: usize = 2;

/// The strategies measured, in the order they run and print.
pub fn strategies() -> [Strategy; 3] {
    [
        Strategy::Weighted,
        Strategy::LeastLatency,
        Strategy::Sticky { header: None },
    ]
}

/// A model with three targets of weight 1 on three providers.
pub fn route(strategy: Strategy) -> ModelRoute {
    let mut route = ModelRoute::new(
        "bench-routed",
        (0..3)
            .map(|provider| Target::new(provider, "fake-model", 1))
            .collect(),
    );
    route.strategy = strategy;
    route
}

/// One health per target, with the default policy: every target has
/// latency samples (target `i` answers in `(i + 1) × 10` ms), and target
/// [`DEGRADED_TARGET`] failed every fifth of 20 attempts, so it is degraded
/// (its weight cut to 80 %) but serving.
pub fn healths(now: Instant) -> Vec<Health> {
    [10, 20, 30]
        .into_iter()
        .enumerate()
        .map(|(i, ms)| {
            let health = Health::new(HealthPolicy::default(), now);
            let latency = Duration::from_millis(ms);
            for n in 0..20 {
                if i == DEGRADED_TARGET && n % 5 == 0 {
                    health.failure(now, "status 500");
                } else {
                    health.success(now, Some(latency));
                }
            }
            health
        })
        .collect()
}

/// How a target stands for a request at `now`, as the gateway asks: its
/// admission, and its latency average only for least-latency.
fn candidate(health: &Health, now: Instant, least_latency: bool) -> Candidate {
    Candidate {
        standing: match health.admission(now) {
            Admission::Serve(f) => Standing::Serve(f),
            Admission::Trial => Standing::Trial,
            Admission::Ejected { until } => Standing::Ejected(until),
        },
        latency: if least_latency {
            health.latency(now)
        } else {
            None
        },
    }
}

/// Time `iterations` decisions (after a tenth as many unmeasured ones) of
/// `route` over `healths`, each with the thread's RNG as the gateway uses
/// it, and `session` as the request's session key.
fn time_decisions(
    route: &ModelRoute,
    healths: &[Health],
    session: Option<&str>,
    iterations: usize,
) -> Result<Summary> {
    let least_latency = route.strategy == Strategy::LeastLatency;
    let warmup = iterations / 10;
    let mut samples = Vec::with_capacity(iterations);
    for n in 0..warmup + iterations {
        let t = Instant::now();
        let now = Instant::now();
        let decision = plan(
            route,
            |i, _| {
                healths
                    .get(i)
                    .map(|health| candidate(health, now, least_latency))
            },
            session,
            &mut rand::rng(),
        );
        let d = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let decision = std::hint::black_box(decision);
        if decision.panic || decision.steps.len() != route.targets.len() {
            bail!(
                "the {} router planned {:?} for three serving targets",
                route.strategy.as_str(),
                decision
            );
        }
        if n >= warmup {
            samples.push(d);
        }
    }
    Summary::of(&mut samples).with_context(|| format!("no {} samples", route.strategy.as_str()))
}

/// Measure the router's decision for each of [`strategies`], over
/// `iterations` (at least [`MIN_ITERATIONS`]) decisions each; sticky
/// requests carry the session key [`SESSION`]. Returns each strategy's name
/// and its cost per decision.
pub fn measure(iterations: usize) -> Result<Vec<(String, Summary)>> {
    let iterations = iterations.max(MIN_ITERATIONS);
    let now = Instant::now();
    let healths = healths(now);
    let state = healths
        .get(DEGRADED_TARGET)
        .map(|h| h.state(now))
        .context("no degraded target")?;
    if state != State::Degraded {
        bail!(
            "target {DEGRADED_TARGET} should be degraded, is {}",
            state.as_str()
        );
    }
    let mut costs = Vec::new();
    for strategy in strategies() {
        let session = matches!(strategy, Strategy::Sticky { .. }).then_some(SESSION);
        let route = route(strategy);
        let cost = time_decisions(&route, &healths, session, iterations)?;
        costs.push((route.strategy.as_str().to_owned(), cost));
    }
    Ok(costs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_target_is_degraded_and_every_target_has_a_latency() {
        let now = Instant::now();
        let healths = healths(now);
        let states: Vec<State> = healths.iter().map(|h| h.state(now)).collect();
        assert_eq!(states, [State::Healthy, State::Healthy, State::Degraded]);
        match healths[DEGRADED_TARGET].admission(now) {
            Admission::Serve(f) => assert!((f - 0.8).abs() < 1e-9, "{f}"),
            other => panic!("{other:?}"),
        }
        for (i, h) in healths.iter().enumerate() {
            let ms = h.latency(now).unwrap() / 1e6;
            assert!((ms - 10.0 * (i as f64 + 1.0)).abs() < 1e-6, "{i}: {ms}");
        }
        let c = candidate(&healths[0], now, false);
        assert_eq!(c.standing, Standing::Serve(1.0));
        assert_eq!(c.latency, None);
        assert!(candidate(&healths[0], now, true).latency.is_some());
    }

    #[test]
    fn every_strategy_is_measured() {
        let costs = measure(10).unwrap();
        let names: Vec<&str> = costs.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["weighted", "least-latency", "sticky"]);
        for (name, cost) in &costs {
            assert_eq!(cost.count, MIN_ITERATIONS, "{name}");
            assert!(cost.p50 <= cost.p99, "{name}");
            assert!(cost.p50 > Duration::ZERO, "{name}");
        }
    }
}
