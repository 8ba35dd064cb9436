//! Retry rules: full-jitter exponential backoff, `Retry-After`, and the
//! budget that keeps retries from multiplying load during an outage.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;

/// Retry settings of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Upstream attempts per client request, at most.
    pub max_attempts: u32,
    /// Backoff base: retry `n` (from 0) waits a random time in
    /// `0..min(cap, base·2ⁿ)`.
    pub backoff_base: Duration,
    /// Backoff cap.
    pub backoff_cap: Duration,
    /// A `Retry-After` up to this is waited for when the retry goes to the
    /// same provider; a longer one sends the retry elsewhere at once.
    pub retry_after_cap: Duration,
    /// Retries may add at most this fraction of the client requests.
    pub budget_ratio: f64,
    /// Retries allowed per second whatever the ratio, so a quiet model
    /// still fails over.
    pub budget_min_per_sec: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            backoff_base: Duration::from_millis(25),
            backoff_cap: Duration::from_millis(1000),
            retry_after_cap: Duration::from_secs(2),
            budget_ratio: 0.2,
            budget_min_per_sec: 10.0,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `n` (0 = the first retry), full jitter.
    pub fn backoff<R: Rng>(&self, n: u32, rng: &mut R) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << n.min(20))
            .min(self.backoff_cap);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos() as u64))
    }
}

/// How long a response asks to wait: `retry-after-ms` (milliseconds, as
/// OpenAI and Azure send it), else `retry-after` in seconds or as an HTTP
/// date. Header names are matched case-insensitively.
pub fn retry_after(headers: &[(String, String)], now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = get("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(1e9)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// A token bucket of retries: every client request adds `ratio` tokens,
/// every retry takes one; a small floor per second is always allowed.
#[derive(Debug)]
pub struct RetryBudget {
    inner: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    floor: f64,
    floor_at: Instant,
}

/// Most tokens the ratio part of the budget saves up.
const MAX_TOKENS: f64 = 100.0;

impl RetryBudget {
    /// An empty budget.
    pub fn new(now: Instant) -> RetryBudget {
        RetryBudget {
            // The floor starts full (it is capped at one second's worth on
            // first use): a fresh gateway fails over at once.
            inner: Mutex::new(Bucket {
                tokens: 0.0,
                floor: f64::INFINITY,
                floor_at: now,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client request arrived.
    pub fn deposit(&self, policy: &RetryPolicy) {
        let mut b = self.lock();
        b.tokens = (b.tokens + policy.budget_ratio).min(MAX_TOKENS);
    }

    /// Take one retry; `false` when the budget is spent.
    pub fn withdraw(&self, policy: &RetryPolicy, now: Instant) -> bool {
        let mut b = self.lock();
        let elapsed = now.saturating_duration_since(b.floor_at).as_secs_f64();
        b.floor_at = now;
        let per_sec = policy.budget_min_per_sec.max(0.0);
        b.floor = (b.floor + elapsed * per_sec).min(per_sec);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else if b.floor >= 1.0 {
            b.floor -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("Retry-After", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(20));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&[], now), None);
    }

    #[test]
    fn backoff_is_jittered_under_a_growing_capped_ceiling() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in 0..10 {
            let ceiling = (p.backoff_base * (1 << n)).min(p.backoff_cap);
            let mut max = Duration::ZERO;
            for _ in 0..200 {
                let d = p.backoff(n, &mut rng);
                assert!(d <= ceiling, "retry {n}: {d:?} > {ceiling:?}");
                max = max.max(d);
            }
            assert!(max > ceiling / 2, "retry {n}: jitter spans the range");
        }
    }

    #[test]
    fn budget_holds_retries_to_the_ratio_plus_the_floor() {
        let p = RetryPolicy::default();
        let t = Instant::now();
        let budget = RetryBudget::new(t);
        let mut retries = 0;
        // The floor's first second: ten retries.
        // 1,000 failing requests within one second, each wanting 3 retries.
        for i in 0..1000u32 {
            budget.deposit(&p);
            let now = t + Duration::from_micros(u64::from(i) * 1000);
            for _ in 0..3 {
                if budget.withdraw(&p, now) {
                    retries += 1;
                }
            }
        }
        assert!(retries <= 200 + 10 + 10, "{retries} retries");
        assert!(retries >= 200, "{retries} retries");
    }

    #[test]
    fn a_quiet_model_can_still_retry() {
        let p = RetryPolicy::default();
        let t = Instant::now();
        let budget = RetryBudget::new(t);
        budget.deposit(&p);
        assert!(budget.withdraw(&p, t), "a fresh budget allows a retry");
        for _ in 0..9 {
            assert!(budget.withdraw(&p, t));
        }
        assert!(!budget.withdraw(&p, t), "the floor holds ten a second");
        assert!(budget.withdraw(&p, t + Duration::from_millis(100)));
    }
}
