//! A provider's pool of API keys, each with its own state: ready, cooling
//! down after a 429, or disabled after the provider rejected it.
//!
//! A rate limit or a rejected key is the key's problem, not the provider's:
//! the target's health is left alone and the next key is tried. Providers
//! limit a key per model (OpenAI, Anthropic and Gemini all do), so a 429
//! cools the key for that upstream model only; a rejected key is out for
//! every model.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How a provider spreads requests over its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyStrategy {
    /// Each request takes the next ready key.
    #[default]
    RoundRobin,
    /// The ready key rate-limited longest ago (never limited first).
    LeastRecentlyRateLimited,
}

/// Timings of the key states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Cool-down after a 429 that named no `Retry-After`.
    pub default_cooldown: Duration,
    /// The longest cool-down, whatever the provider asked.
    pub max_cooldown: Duration,
    /// How long a rejected key (401/403) stays disabled before it is tried
    /// again.
    pub disable_for: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            default_cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(300),
            disable_for: Duration::from_secs(600),
        }
    }
}

/// A key's state as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Ready,
    /// Rate limited; usable again after the duration.
    CoolingDown(Duration),
    /// Rejected by the provider; tried again after the duration.
    Disabled(Duration),
}

impl KeyState {
    /// A stable name for APIs and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyState::Ready => "ready",
            KeyState::CoolingDown(_) => "cooling_down",
            KeyState::Disabled(_) => "disabled",
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// Cool-downs by upstream model.
    cooling: Vec<(String, Instant)>,
    disabled_until: Option<Instant>,
    last_limited: Option<Instant>,
    last_error: Option<String>,
    rate_limits: u64,
}

impl Slot {
    fn cooling_until(&self, model: &str) -> Option<Instant> {
        self.cooling
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, u)| *u)
    }

    fn ready(&self, now: Instant, model: &str) -> bool {
        self.cooling_until(model).is_none_or(|u| now >= u)
            && self.disabled_until.is_none_or(|u| now >= u)
    }

    /// The latest cool-down of any model (for reports).
    fn latest_cooling(&self, now: Instant) -> Option<Instant> {
        self.cooling
            .iter()
            .map(|(_, u)| *u)
            .filter(|u| *u > now)
            .max()
    }
}

/// The state of a pool of `n` keys (the keys themselves live elsewhere).
#[derive(Debug)]
pub struct KeyPool {
    strategy: KeyStrategy,
    policy: KeyPolicy,
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
}

/// One key of [`KeyPool::report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// Position in the pool.
    pub index: usize,
    /// Its state.
    pub state: KeyState,
    /// Rate limits seen.
    pub rate_limits: u64,
    /// The last rejection or rate limit, as the provider described it.
    pub last_error: Option<String>,
}

impl KeyPool {
    /// A pool of `n` ready keys.
    pub fn new(n: usize, strategy: KeyStrategy, policy: KeyPolicy) -> KeyPool {
        KeyPool {
            strategy,
            policy,
            slots: (0..n).map(|_| Mutex::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Keys in the pool.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the pool has no keys (the provider needs none).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, i: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key for the next attempt at `model`, skipping keys in `tried`
    /// and keys that are cooling down (for that model) or disabled; `None`
    /// when no key is usable.
    pub fn pick(&self, now: Instant, model: &str, tried: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let order = (0..n).map(|k| (start + k) % n);
        match self.strategy {
            KeyStrategy::RoundRobin => order
                .filter(|&i| !tried(i))
                .find(|&i| self.slot(i).ready(now, model)),
            KeyStrategy::LeastRecentlyRateLimited => order
                .filter(|&i| !tried(i))
                .filter_map(|i| {
                    let s = self.slot(i);
                    s.ready(now, model).then_some((s.last_limited, i))
                })
                .min_by_key(|(at, _)| *at)
                .map(|(_, i)| i),
        }
    }

    /// Key `i` was rate limited on `model`: cool it down for that model for
    /// `retry_after` (capped) or the default.
    pub fn rate_limited(
        &self,
        i: usize,
        model: &str,
        now: Instant,
        retry_after: Option<Duration>,
        why: &str,
    ) {
        let wait = retry_after
            .unwrap_or(self.policy.default_cooldown)
            .min(self.policy.max_cooldown);
        let mut s = self.slot(i);
        s.cooling.retain(|(m, u)| m != model && *u > now);
        s.cooling.push((model.to_owned(), now + wait));
        s.last_limited = Some(now);
        s.rate_limits += 1;
        s.last_error = Some(why.to_owned());
    }

    /// How long key `i` stays cooled down for `model`, if it is.
    pub fn cooling_for(&self, i: usize, model: &str, now: Instant) -> Option<Duration> {
        let until = self.slot(i).cooling_until(model)?;
        (until > now).then(|| until - now)
    }

    /// Key `i` was rejected (401/403): disable it for a while.
    pub fn rejected(&self, i: usize, now: Instant, why: &str) {
        let mut s = self.slot(i);
        s.disabled_until = Some(now + self.policy.disable_for);
        s.last_error = Some(why.to_owned());
    }

    /// Key `i` worked: a disabled key is back.
    pub fn worked(&self, i: usize) {
        let mut s = self.slot(i);
        if s.disabled_until.is_some() {
            s.disabled_until = None;
        }
    }

    /// The soonest time any key becomes usable for `model` (`None` when
    /// one is now).
    pub fn next_ready(&self, now: Instant, model: &str) -> Option<Instant> {
        let mut soonest: Option<Instant> = None;
        for i in 0..self.slots.len() {
            let s = self.slot(i);
            if s.ready(now, model) {
                return None;
            }
            let at = s.cooling_until(model).max(s.disabled_until);
            soonest = match (soonest, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        soonest
    }

    /// Whether every key is disabled (rejected by the provider), as
    /// opposed to some merely cooling down.
    pub fn all_disabled(&self, now: Instant) -> bool {
        !self.slots.is_empty()
            && (0..self.slots.len()).all(|i| self.slot(i).disabled_until.is_some_and(|u| now < u))
    }

    /// Every key's state.
    pub fn report(&self, now: Instant) -> Vec<KeyReport> {
        (0..self.slots.len())
            .map(|i| {
                let s = self.slot(i);
                let left = |u: Option<Instant>| {
                    u.map(|u| u.saturating_duration_since(now))
                        .filter(|d| !d.is_zero())
                };
                let state = match (left(s.disabled_until), left(s.latest_cooling(now))) {
                    (Some(d), _) => KeyState::Disabled(d),
                    (None, Some(c)) => KeyState::CoolingDown(c),
                    (None, None) => KeyState::Ready,
                };
                KeyReport {
                    index: i,
                    state,
                    rate_limits: s.rate_limits,
                    last_error: s.last_error.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_tried_and_cooling_keys() {
        let pool = KeyPool::new(3, KeyStrategy::RoundRobin, KeyPolicy::default());
        let t = Instant::now();
        let picks: Vec<_> = (0..6)
            .map(|_| pool.pick(t, "m", |_| false).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        pool.rate_limited(1, "m", t, Some(Duration::from_secs(2)), "429");
        for _ in 0..6 {
            let k = pool.pick(t, "m", |i| i == 0).unwrap();
            assert_eq!(k, 2);
        }
        assert_eq!(pool.pick(t, "m", |i| i != 1), None);
        assert_eq!(
            pool.pick(t, "other", |i| i != 1),
            Some(1),
            "only that model cools"
        );
        assert_eq!(
            pool.pick(t + Duration::from_secs(2), "m", |i| i != 1),
            Some(1),
            "the cool-down ends"
        );
    }

    #[test]
    fn rejected_keys_stay_out_until_they_work_again() {
        let pool = KeyPool::new(2, KeyStrategy::RoundRobin, KeyPolicy::default());
        let t = Instant::now();
        pool.rejected(0, t, "401 invalid key");
        for _ in 0..4 {
            assert_eq!(pool.pick(t, "m", |_| false), Some(1));
        }
        assert!(matches!(pool.report(t)[0].state, KeyState::Disabled(_)));
        assert_eq!(pool.report(t)[1].state, KeyState::Ready);
        let later = t + Duration::from_secs(600);
        assert!(pool.pick(later, "m", |i| i == 1).is_some());
        pool.worked(0);
        assert_eq!(pool.report(t)[0].state, KeyState::Ready);
        assert!(!pool.all_disabled(t));
        pool.rejected(0, t, "401");
        pool.rejected(1, t, "401");
        assert!(pool.all_disabled(t));
        assert!(!pool.all_disabled(later));
    }

    #[test]
    fn least_recently_rate_limited_prefers_unlimited_keys() {
        let pool = KeyPool::new(
            3,
            KeyStrategy::LeastRecentlyRateLimited,
            KeyPolicy::default(),
        );
        let t = Instant::now();
        pool.rate_limited(0, "m", t, Some(Duration::from_millis(1)), "429");
        pool.rate_limited(
            1,
            "m",
            t + Duration::from_millis(1),
            Some(Duration::from_millis(1)),
            "429",
        );
        let later = t + Duration::from_secs(1);
        for _ in 0..5 {
            assert_eq!(pool.pick(later, "m", |_| false), Some(2));
        }
        assert_eq!(pool.pick(later, "m", |i| i == 2), Some(0));
    }

    #[test]
    fn cool_downs_are_capped_and_defaulted() {
        let policy = KeyPolicy::default();
        let pool = KeyPool::new(1, KeyStrategy::RoundRobin, policy.clone());
        let t = Instant::now();
        pool.rate_limited(0, "m", t, Some(Duration::from_secs(86_400)), "429");
        assert_eq!(pool.next_ready(t, "m"), Some(t + policy.max_cooldown));
        pool.rate_limited(0, "m", t, None, "429");
        assert_eq!(pool.next_ready(t, "m"), Some(t + policy.default_cooldown));
    }
}
