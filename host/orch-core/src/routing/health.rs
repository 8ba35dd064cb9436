//! Passive health of one target (a provider and upstream model): three
//! states fed by the outcome of every attempt, with a half-open trial and
//! growing ejections, plus the latency average least-latency routing reads.
//!
//! ```text
//!            error ratio ≥ degraded           N consecutive failures, or
//!   Healthy ─────────────────────▶ Degraded ── error ratio ≥ unhealthy ──▶ Unhealthy
//!      ▲  ◀── ratio back under ───────┘                                      │
//!      │                                                 backoff elapsed     │
//!      │   M consecutive successes                                           ▼
//!      └──────────────────────────────────── HalfOpen (one trial in flight) ◀┘
//!                                               │ trial fails: Unhealthy, longer backoff
//! ```
//!
//! Every method takes `now`, so the machine is tested without sleeping.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Thresholds of the health state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// Outcomes older than this leave the sliding window.
    pub window: Duration,
    /// The window holds at most this many outcomes.
    pub window_size: usize,
    /// Ratios are judged only with at least this many outcomes.
    pub min_samples: usize,
    /// Error ratio from which a target is degraded (weight cut in proportion).
    pub degraded_ratio: f64,
    /// Error ratio over which a target is unhealthy (1.0: never by ratio).
    pub unhealthy_ratio: f64,
    /// Consecutive failures that make a target unhealthy.
    pub eject_after: u32,
    /// Consecutive successful trials that bring a target back.
    pub recover_after: u32,
    /// The first ejection's length; each further one doubles it.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
    /// A latency average above this degrades the target (`None`: never).
    pub degraded_latency: Option<Duration>,
    /// The latency average forgets half of an old sample's weight after this
    /// long without new samples, so a slow target is tried again some time.
    pub latency_half_life: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            window: Duration::from_secs(60),
            window_size: 100,
            min_samples: 10,
            degraded_ratio: 0.1,
            unhealthy_ratio: 0.5,
            eject_after: 5,
            recover_after: 2,
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(300),
            degraded_latency: None,
            latency_half_life: Duration::from_secs(30),
        }
    }
}

/// The three states (the half-open trial is part of unhealthy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Full weight.
    Healthy,
    /// Serving with a reduced weight.
    Degraded,
    /// Out of rotation until a trial succeeds.
    Unhealthy,
}

impl State {
    /// A stable name for APIs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Unhealthy => "unhealthy",
        }
    }
}

/// Whether a target may take a request now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// In rotation; the weight is multiplied by this factor (`0 < f ≤ 1`).
    Serve(f64),
    /// Unhealthy, but its backoff has elapsed and no trial is in flight:
    /// one request may try it (see [`Health::begin_trial`]).
    Trial,
    /// Unhealthy; no traffic before `until` (or while a trial runs).
    Ejected {
        /// When a trial becomes possible (now, if one is in flight).
        until: Instant,
    },
}

/// What [`Health::report`] shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The current state.
    pub state: State,
    /// Why it is in this state.
    pub reason: String,
    /// The last failure's description.
    pub last_error: Option<String>,
    /// Outcomes in the window.
    pub window_requests: usize,
    /// Failures in the window.
    pub window_errors: usize,
    /// Consecutive failures.
    pub consecutive_failures: u32,
    /// Ejections so far (the backoff grows with them).
    pub ejections: u32,
    /// The decayed latency average.
    pub latency: Option<Duration>,
    /// When an unhealthy target may be tried again.
    pub retry_in: Option<Duration>,
    /// A half-open trial is in flight.
    pub trial_in_flight: bool,
}

#[derive(Debug)]
enum Phase {
    Serving,
    Ejected { until: Instant, trial: bool },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    outcomes: VecDeque<(Instant, bool)>,
    errors: usize,
    consecutive_failures: u32,
    trial_successes: u32,
    ejections: u32,
    reason: String,
    last_error: Option<String>,
    latency_ns: Option<f64>,
    latency_at: Instant,
}

/// The health of one target. Cheap to consult: one uncontended lock.
#[derive(Debug)]
pub struct Health {
    policy: HealthPolicy,
    inner: Mutex<Inner>,
}

impl Health {
    /// A healthy target.
    pub fn new(policy: HealthPolicy, now: Instant) -> Health {
        Health {
            policy,
            inner: Mutex::new(Inner {
                phase: Phase::Serving,
                outcomes: VecDeque::new(),
                errors: 0,
                consecutive_failures: 0,
                trial_successes: 0,
                ejections: 0,
                reason: "no failures".into(),
                last_error: None,
                latency_ns: None,
                latency_at: now,
            }),
        }
    }

    /// The thresholds in use.
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the target may take a request now.
    pub fn admission(&self, now: Instant) -> Admission {
        let mut g = self.lock();
        match g.phase {
            Phase::Ejected { until, trial } => {
                if trial || now < until {
                    Admission::Ejected { until }
                } else {
                    Admission::Trial
                }
            }
            Phase::Serving => {
                g.expire(&self.policy, now);
                Admission::Serve(g.factor(&self.policy, now))
            }
        }
    }

    /// Claim the one half-open trial; `false` when the target is not due
    /// for one or another request holds it. Serving targets need no trial
    /// and answer `true`.
    pub fn begin_trial(&self, now: Instant) -> bool {
        let mut g = self.lock();
        match &mut g.phase {
            Phase::Serving => true,
            Phase::Ejected { until, trial } => {
                if *trial || now < *until {
                    false
                } else {
                    *trial = true;
                    true
                }
            }
        }
    }

    /// A trial ended without an outcome (the client went away, the request
    /// failed for its own reasons): let another request try.
    pub fn abandon_trial(&self) {
        if let Phase::Ejected { trial, .. } = &mut self.lock().phase {
            *trial = false;
        }
    }

    /// An attempt succeeded; `latency` is its time to the first byte of
    /// content (or of the whole answer when not streaming).
    pub fn success(&self, now: Instant, latency: Option<Duration>) {
        let mut g = self.lock();
        if let Some(l) = latency {
            g.observe_latency(&self.policy, now, l);
        }
        g.consecutive_failures = 0;
        match g.phase {
            Phase::Ejected { .. } => {
                g.trial_successes += 1;
                if g.trial_successes >= self.policy.recover_after {
                    g.phase = Phase::Serving;
                    g.outcomes.clear();
                    g.errors = 0;
                    g.trial_successes = 0;
                    g.reason = "recovered after successful trials".into();
                } else if let Phase::Ejected { trial, until } = &mut g.phase {
                    // The next trial may follow at once.
                    *trial = false;
                    *until = now;
                }
            }
            Phase::Serving => {
                g.push(&self.policy, now, true);
            }
        }
    }

    /// An attempt failed because of the target (not the client's request).
    pub fn failure(&self, now: Instant, error: &str) {
        let mut g = self.lock();
        g.last_error = Some(error.to_owned());
        g.consecutive_failures = g.consecutive_failures.saturating_add(1);
        match g.phase {
            // Only a failed trial extends an ejection; attempts that began
            // before it (or in panic mode) do not.
            Phase::Ejected { trial: true, .. } => {
                g.trial_successes = 0;
                g.eject(&self.policy, now, format!("trial failed: {error}"));
            }
            Phase::Ejected { trial: false, .. } => {}
            Phase::Serving => {
                g.push(&self.policy, now, false);
                if g.consecutive_failures >= self.policy.eject_after {
                    let why = format!("{} consecutive failures", g.consecutive_failures);
                    g.eject(&self.policy, now, why);
                } else if g.judged(&self.policy) && g.ratio() > self.policy.unhealthy_ratio {
                    let why = format!(
                        "error ratio {:.0}% over the last {} requests",
                        g.ratio() * 100.0,
                        g.outcomes.len()
                    );
                    g.eject(&self.policy, now, why);
                }
            }
        }
    }

    /// Out of rotation for an outside reason (an active probe failed).
    pub fn probe_failed(&self, now: Instant, error: &str) {
        let mut g = self.lock();
        g.last_error = Some(error.to_owned());
        g.trial_successes = 0;
        if let Phase::Ejected { until, .. } = g.phase
            && now < until
        {
            return;
        }
        g.eject(&self.policy, now, format!("probe failed: {error}"));
    }

    /// An active probe succeeded: counts as a successful trial when
    /// unhealthy, changes nothing otherwise.
    pub fn probe_succeeded(&self, now: Instant) {
        let ejected = matches!(self.lock().phase, Phase::Ejected { .. });
        if ejected {
            self.success(now, None);
        }
    }

    /// How long the target stays out of rotation, when it is ejected.
    pub fn ejected_for(&self, now: Instant) -> Option<Duration> {
        match self.lock().phase {
            Phase::Ejected { until, .. } if until > now => Some(until - now),
            _ => None,
        }
    }

    /// Another replica ejected this target for `span`: take it out of
    /// rotation as long, unless it is out for longer already. Recovery is
    /// judged here as after any ejection (trials once `span` has passed).
    pub fn eject_shared(&self, now: Instant, span: Duration, reason: &str) {
        let mut g = self.lock();
        let until = now + span;
        if let Phase::Ejected { until: current, .. } = g.phase
            && current >= until
        {
            return;
        }
        g.phase = Phase::Ejected {
            until,
            trial: false,
        };
        g.trial_successes = 0;
        g.reason = format!("ejected by another replica: {reason}");
    }

    /// The decayed latency average, for least-latency routing (`None`
    /// before the first sample).
    pub fn latency(&self, now: Instant) -> Option<f64> {
        let g = self.lock();
        g.decayed_latency(&self.policy, now)
    }

    /// The current state with its reasons and window statistics.
    pub fn report(&self, now: Instant) -> Report {
        let mut g = self.lock();
        g.expire(&self.policy, now);
        let (state, retry_in, trial_in_flight) = match g.phase {
            Phase::Ejected { until, trial } => (
                State::Unhealthy,
                Some(until.saturating_duration_since(now)),
                trial,
            ),
            Phase::Serving if g.factor(&self.policy, now) < 1.0 => (State::Degraded, None, false),
            Phase::Serving => (State::Healthy, None, false),
        };
        let reason = match state {
            State::Degraded => g.degraded_reason(&self.policy, now),
            _ => g.reason.clone(),
        };
        Report {
            state,
            reason,
            last_error: g.last_error.clone(),
            window_requests: g.outcomes.len(),
            window_errors: g.errors,
            consecutive_failures: g.consecutive_failures,
            ejections: g.ejections,
            latency: g
                .decayed_latency(&self.policy, now)
                .map(|ns| Duration::from_nanos(ns as u64)),
            retry_in,
            trial_in_flight,
        }
    }

    /// The current state.
    pub fn state(&self, now: Instant) -> State {
        self.report(now).state
    }
}

impl Inner {
    fn push(&mut self, policy: &HealthPolicy, now: Instant, ok: bool) {
        self.outcomes.push_back((now, ok));
        if !ok {
            self.errors += 1;
        }
        while self.outcomes.len() > policy.window_size.max(1) {
            self.pop();
        }
        self.expire(policy, now);
    }

    fn pop(&mut self) {
        if let Some((_, ok)) = self.outcomes.pop_front()
            && !ok
        {
            self.errors -= 1;
        }
    }

    fn expire(&mut self, policy: &HealthPolicy, now: Instant) {
        while let Some(&(at, _)) = self.outcomes.front() {
            if now.saturating_duration_since(at) <= policy.window {
                break;
            }
            self.pop();
        }
    }

    fn judged(&self, policy: &HealthPolicy) -> bool {
        self.outcomes.len() >= policy.min_samples.max(1)
    }

    fn ratio(&self) -> f64 {
        if self.outcomes.is_empty() {
            0.0
        } else {
            self.errors as f64 / self.outcomes.len() as f64
        }
    }

    /// The weight factor of a serving target: cut in proportion to its error
    /// ratio (and halved when it is slow), never below 5%.
    fn factor(&self, policy: &HealthPolicy, now: Instant) -> f64 {
        let mut f = 1.0;
        if self.judged(policy) && self.ratio() >= policy.degraded_ratio {
            f *= 1.0 - self.ratio();
        }
        if let (Some(limit), Some(l)) = (policy.degraded_latency, self.decayed_latency(policy, now))
            && l > limit.as_nanos() as f64
        {
            f *= 0.5;
        }
        f.clamp(0.05, 1.0)
    }

    fn degraded_reason(&self, policy: &HealthPolicy, now: Instant) -> String {
        if self.judged(policy) && self.ratio() >= policy.degraded_ratio {
            format!(
                "error ratio {:.0}% over the last {} requests",
                self.ratio() * 100.0,
                self.outcomes.len()
            )
        } else {
            let l = self.decayed_latency(policy, now).unwrap_or_default();
            format!("latency average {:.0} ms", l / 1e6)
        }
    }

    fn eject(&mut self, policy: &HealthPolicy, now: Instant, reason: String) {
        let exp = self.ejections.min(16);
        let backoff = policy
            .base_ejection
            .saturating_mul(1 << exp)
            .min(policy.max_ejection);
        self.ejections = self.ejections.saturating_add(1);
        self.phase = Phase::Ejected {
            until: now + backoff,
            trial: false,
        };
        self.trial_successes = 0;
        self.reason = reason;
    }

    fn observe_latency(&mut self, policy: &HealthPolicy, now: Instant, sample: Duration) {
        const ALPHA: f64 = 0.3;
        let s = sample.as_nanos() as f64;
        self.latency_ns = Some(match self.decayed_latency(policy, now) {
            None => s,
            Some(avg) => avg + ALPHA * (s - avg),
        });
        self.latency_at = now;
    }

    fn decayed_latency(&self, policy: &HealthPolicy, now: Instant) -> Option<f64> {
        let avg = self.latency_ns?;
        let age = now.saturating_duration_since(self.latency_at).as_secs_f64();
        let half = policy.latency_half_life.as_secs_f64().max(1e-3);
        Some(avg * 0.5f64.powf(age / half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> (Health, Instant) {
        let now = Instant::now();
        (Health::new(HealthPolicy::default(), now), now)
    }

    #[test]
    fn five_consecutive_failures_eject() {
        let (h, t) = health();
        for i in 0..4 {
            h.failure(t, "500");
            assert_eq!(h.state(t), State::Healthy, "after {} failures", i + 1);
        }
        h.failure(t, "500");
        assert_eq!(h.state(t), State::Unhealthy);
        assert!(matches!(h.admission(t), Admission::Ejected { .. }));
    }

    #[test]
    fn an_ejection_shared_by_another_replica_holds_as_long() {
        let (h, t) = health();
        assert_eq!(h.ejected_for(t), None);
        h.eject_shared(t, Duration::from_secs(10), "5 consecutive failures");
        assert_eq!(h.ejected_for(t), Some(Duration::from_secs(10)));
        assert_eq!(h.state(t), State::Unhealthy);
        assert!(h.report(t).reason.contains("another replica"));
        // A shorter one does not cut it short.
        h.eject_shared(t, Duration::from_secs(1), "x");
        assert_eq!(h.ejected_for(t), Some(Duration::from_secs(10)));
        let later = t + Duration::from_secs(10);
        assert_eq!(h.admission(later), Admission::Trial);
    }

    #[test]
    fn one_trial_at_a_time_and_recovery_after_successes() {
        let (h, t) = health();
        for _ in 0..5 {
            h.failure(t, "500");
        }
        let later = t + Duration::from_secs(5);
        assert_eq!(h.admission(later), Admission::Trial);
        assert!(h.begin_trial(later));
        assert!(
            !h.begin_trial(later),
            "a second trial while one is in flight"
        );
        assert!(matches!(h.admission(later), Admission::Ejected { .. }));
        h.success(later, None);
        assert_eq!(
            h.state(later),
            State::Unhealthy,
            "one success is not enough"
        );
        assert!(h.begin_trial(later));
        h.success(later, None);
        assert_eq!(h.state(later), State::Healthy);
        assert_eq!(h.admission(later), Admission::Serve(1.0));
    }

    #[test]
    fn failed_trials_back_off_longer_each_time() {
        let (h, t) = health();
        for _ in 0..5 {
            h.failure(t, "500");
        }
        let first = h.report(t).retry_in.unwrap();
        let t2 = t + first;
        assert!(h.begin_trial(t2));
        h.failure(t2, "500");
        let second = h.report(t2).retry_in.unwrap();
        assert_eq!(second, first * 2);
        let t3 = t2 + second;
        assert!(h.begin_trial(t3));
        h.abandon_trial();
        assert!(h.begin_trial(t3), "an abandoned trial frees the slot");
    }

    #[test]
    fn error_ratio_degrades_then_ejects() {
        let (h, t) = health();
        for i in 0..20 {
            if i % 5 == 0 {
                h.failure(t, "500");
            } else {
                h.success(t, None);
            }
        }
        assert_eq!(h.state(t), State::Degraded);
        match h.admission(t) {
            Admission::Serve(f) => assert!((f - 0.8).abs() < 1e-9, "{f}"),
            other => panic!("{other:?}"),
        }
        // Four failures in a row at most: only the ratio can eject.
        for i in 0..40 {
            if i % 5 == 4 {
                h.success(t, None);
            } else {
                h.failure(t, "500");
            }
        }
        assert_eq!(h.state(t), State::Unhealthy);
        assert!(h.report(t).reason.contains("error ratio"));
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let (h, t) = health();
        for i in 0..20 {
            if i % 4 == 0 {
                h.failure(t, "500");
            } else {
                h.success(t, None);
            }
        }
        assert_eq!(h.state(t), State::Degraded);
        let later = t + Duration::from_secs(61);
        assert_eq!(h.state(later), State::Healthy);
        assert_eq!(h.report(later).window_requests, 0);
    }

    #[test]
    fn latency_average_decays() {
        let (h, t) = health();
        h.success(t, Some(Duration::from_millis(100)));
        h.success(t, Some(Duration::from_millis(200)));
        let avg = h.latency(t).unwrap();
        assert!((avg - 130e6).abs() < 1.0, "{avg}");
        let later = h.latency(t + Duration::from_secs(30)).unwrap();
        assert!((later - 65e6).abs() < 1.0, "{later}");
    }

    #[test]
    fn probes_eject_and_recover() {
        let (h, t) = health();
        h.probe_failed(t, "connection refused");
        assert_eq!(h.state(t), State::Unhealthy);
        h.probe_succeeded(t);
        h.probe_succeeded(t);
        assert_eq!(h.state(t), State::Healthy);
        h.probe_succeeded(t);
        assert_eq!(h.state(t), State::Healthy);
    }
}
