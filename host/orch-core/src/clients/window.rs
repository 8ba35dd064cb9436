//! A sliding-window counter for one per-minute limit (requests or tokens).
//!
//! Two fixed 60-second windows are kept, the current and the previous one,
//! indexed by `window = now_ms / 60_000`. The count over the last 60
//! seconds is estimated by assuming the previous window's events were
//! spread evenly: `previous × (1 − elapsed / 60 s) + current`. The state is
//! three plain numbers (a window index and two counts), so it can live in a
//! shared store (`INCRBY` on a key per window) as well as here.

use std::sync::{Mutex, MutexGuard};

/// The span a limit is counted over.
const WINDOW_MS: i64 = 60_000;

/// [`WINDOW_MS`] for the scaled arithmetic.
const WINDOW: u128 = WINDOW_MS as u128;

/// Refused: the limit admits the request again after `after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Milliseconds until the estimate has dropped enough (at least 1).
    pub after_ms: u64,
}

/// A sliding-window counter of one limit over 60 seconds; thread-safe.
#[derive(Debug)]
pub struct RateWindow {
    counts: Mutex<Counts>,
}

#[derive(Debug)]
struct Counts {
    /// The index of the current window.
    window: i64,
    /// Counted in the current window.
    current: u64,
    /// Counted in the window before it.
    previous: u64,
}

impl Counts {
    /// Move to `window` if time has moved on; a clock that stepped back
    /// stays in the newer window.
    fn roll(&mut self, window: i64) {
        if window <= self.window {
            return;
        }
        self.previous = if self.window.checked_add(1) == Some(window) {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.window = window;
    }

    fn start_ms(&self) -> i64 {
        self.window.saturating_mul(WINDOW_MS)
    }

    /// The estimate over the last 60 s, times [`WINDOW_MS`] (exact integers).
    fn scaled_estimate(&self, now_ms: i64) -> u128 {
        let elapsed = now_ms.saturating_sub(self.start_ms()).clamp(0, WINDOW_MS);
        let remaining = (WINDOW_MS - elapsed) as u128;
        u128::from(self.previous) * remaining + u128::from(self.current) * WINDOW
    }

    /// Whether `need` (scaled) more fits under `limit` at `now_ms`.
    fn fits(&self, now_ms: i64, need: u128, limit: u64) -> bool {
        self.scaled_estimate(now_ms) + need <= u128::from(limit) * WINDOW
    }

    /// How long until `need` (scaled) fits, nothing more being counted
    /// meanwhile. `need` larger than the limit never fits: the hint is
    /// then one window.
    fn wait_ms(&self, now_ms: i64, need: u128, limit: u64) -> u64 {
        let cap = u128::from(limit) * WINDOW;
        let current = u128::from(self.current) * WINDOW;
        let start = self.start_ms();
        // When `slack` of the limit is free besides `count`, the fading
        // `count` must have dropped to `slack`: `count × (60 s − e) ≤ slack`.
        let fade = |slack: u128, count: u64| {
            WINDOW_MS - (slack / u128::from(count).max(1)).min(WINDOW) as i64
        };
        let ready_at = if let Some(slack) = cap.checked_sub(current + need) {
            // Later in this window, as the previous window fades.
            start.saturating_add(fade(slack, self.previous))
        } else if let Some(slack) = cap.checked_sub(need) {
            // In the next window, as this one fades.
            start
                .saturating_add(WINDOW_MS)
                .saturating_add(fade(slack, self.current))
        } else {
            return WINDOW_MS as u64;
        };
        ready_at.saturating_sub(now_ms).max(1).unsigned_abs()
    }
}

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow::new()
    }
}

impl RateWindow {
    /// A counter with nothing counted.
    pub fn new() -> RateWindow {
        RateWindow {
            counts: Mutex::new(Counts {
                window: i64::MIN,
                current: 0,
                previous: 0,
            }),
        }
    }

    /// The counts, moved on to the window of `now_ms`.
    fn at(&self, now_ms: i64) -> MutexGuard<'_, Counts> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.roll(now_ms.div_euclid(WINDOW_MS));
        counts
    }

    /// Count `amount` if the estimate plus `amount` stays within `limit`
    /// (for requests per minute, `amount` is 1); otherwise count nothing and
    /// say when it would fit.
    pub fn try_acquire(&self, now_ms: i64, amount: u64, limit: u64) -> Result<(), Retry> {
        let mut counts = self.at(now_ms);
        let need = u128::from(amount) * WINDOW;
        if counts.fits(now_ms, need, limit) {
            counts.current = counts.current.saturating_add(amount);
            Ok(())
        } else {
            Err(Retry {
                after_ms: counts.wait_ms(now_ms, need, limit),
            })
        }
    }

    /// Count `amount` without checking a limit: tokens are known only after
    /// the response, when the request can no longer be refused.
    pub fn add(&self, now_ms: i64, amount: u64) {
        let mut counts = self.at(now_ms);
        counts.current = counts.current.saturating_add(amount);
    }

    /// Admit while the estimate is below `limit`, counting nothing (for
    /// tokens per minute, whose amount is added later with [`add`](Self::add)).
    pub fn check(&self, now_ms: i64, limit: u64) -> Result<(), Retry> {
        let counts = self.at(now_ms);
        // Strictly below: one scaled unit more must still fit.
        if counts.fits(now_ms, 1, limit) {
            Ok(())
        } else {
            Err(Retry {
                after_ms: counts.wait_ms(now_ms, 1, limit),
            })
        }
    }

    /// Take back `amount` counted by [`try_acquire`](Self::try_acquire) for a
    /// request refused afterwards by another limit. Nothing is taken back
    /// once the window has moved on.
    pub(super) fn give_back(&self, now_ms: i64, amount: u64) {
        let mut counts = self.at(now_ms);
        if counts.window == now_ms.div_euclid(WINDOW_MS) {
            counts.current = counts.current.saturating_sub(amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    /// An instant well inside window 1000.
    const T0: i64 = 60_000_000;

    #[test]
    fn a_fresh_window_admits_up_to_the_limit() {
        let w = RateWindow::new();
        for _ in 0..10 {
            assert_eq!(w.try_acquire(T0, 1, 10), Ok(()));
        }
        let retry = w.try_acquire(T0, 1, 10).unwrap_err();
        // Nothing in the previous window: only the next window helps, and
        // there the ten fade until one fits (after 6 s of it).
        assert_eq!(retry.after_ms, 60_000 + 6_000);
        assert_eq!(
            w.try_acquire(T0 + retry.after_ms as i64 - 1, 1, 10),
            Err(Retry { after_ms: 1 })
        );
        assert_eq!(w.try_acquire(T0 + retry.after_ms as i64, 1, 10), Ok(()));
    }

    #[test]
    fn the_previous_window_fades_linearly() {
        let w = RateWindow::new();
        for _ in 0..100 {
            w.try_acquire(T0, 1, 100).unwrap();
        }
        let next = T0 + WINDOW_MS;
        assert!(w.try_acquire(next, 1, 100).is_err(), "100 × (1 − 0) = 100");
        // 1% into the next window the estimate is 99.
        let retry = w.try_acquire(next + 599, 1, 100).unwrap_err();
        assert_eq!(retry.after_ms, 1);
        assert_eq!(w.try_acquire(next + 600, 1, 100), Ok(()));
        // Half way through, 50 of the previous window remain: 49 more fit.
        let half = next + 30_000;
        for _ in 0..49 {
            w.try_acquire(half, 1, 100).unwrap();
        }
        assert!(w.try_acquire(half, 1, 100).is_err());
    }

    #[test]
    fn an_idle_window_clears_the_count() {
        let w = RateWindow::new();
        for _ in 0..5 {
            w.try_acquire(T0, 1, 5).unwrap();
        }
        let later = T0 + 2 * WINDOW_MS;
        for _ in 0..5 {
            assert_eq!(w.try_acquire(later, 1, 5), Ok(()));
        }
    }

    #[test]
    fn a_clock_stepping_back_does_not_reset_counts() {
        let w = RateWindow::new();
        for _ in 0..5 {
            w.try_acquire(T0, 1, 5).unwrap();
        }
        assert!(w.try_acquire(T0 - 2 * WINDOW_MS, 1, 5).is_err());
    }

    #[test]
    fn retry_hints_are_exact_within_a_window() {
        let w = RateWindow::new();
        for _ in 0..60 {
            w.try_acquire(T0 + 10_000, 1, 60).unwrap();
        }
        // Half way through the next window 30 of the 60 remain: 30 fit.
        let half = T0 + WINDOW_MS + 30_000;
        for _ in 0..30 {
            w.try_acquire(half, 1, 60).unwrap();
        }
        // 60 × (1 − e/60 s) + 30 + 1 ≤ 60 once e ≥ 31 s.
        let retry = w.try_acquire(half, 1, 60).unwrap_err();
        assert_eq!(retry.after_ms, 1_000);
        assert!(w.try_acquire(half + 999, 1, 60).is_err());
        assert_eq!(w.try_acquire(half + 1_000, 1, 60), Ok(()));
    }

    #[test]
    fn an_amount_over_the_limit_never_fits() {
        let w = RateWindow::new();
        assert_eq!(w.try_acquire(T0, 11, 10), Err(Retry { after_ms: 60_000 }));
        assert_eq!(w.try_acquire(T0, 1, 0), Err(Retry { after_ms: 60_000 }));
        assert_eq!(w.try_acquire(T0, 10, 10), Ok(()));
    }

    #[test]
    fn at_most_the_limit_passes_in_any_minute_under_constant_overload() {
        let limit = 100;
        let w = RateWindow::new();
        let step = 100;
        let steps = 5 * 60_000 / step;
        let mut admitted = Vec::new();
        for i in 0..steps {
            let now = T0 + i * step;
            // Three requests every 100 ms: 1,800 a minute against 100.
            for _ in 0..3 {
                match w.try_acquire(now, 1, limit) {
                    Ok(()) => admitted.push(now),
                    Err(retry) => {
                        assert!(
                            (1..=2 * 60_000).contains(&retry.after_ms),
                            "{retry:?} at {now}"
                        );
                    }
                }
            }
        }
        for i in 0..steps {
            let from = T0 + i * step;
            let in_span = admitted
                .iter()
                .filter(|&&t| (from..from + 60_000).contains(&t))
                .count();
            assert!(
                in_span <= 105,
                "{in_span} admitted in the minute from {from}"
            );
        }
        assert!(admitted.len() >= 95 * 5, "{} admitted", admitted.len());
    }

    #[test]
    fn a_burst_at_a_window_edge_is_not_doubled() {
        // A fixed window would admit 100 at 59.999 s and 100 more at 60 s.
        let w = RateWindow::new();
        let edge = T0 + WINDOW_MS - 1;
        let mut admitted = 0;
        for now in edge..edge + 3_000 {
            while w.try_acquire(now, 1, 100).is_ok() {
                admitted += 1;
            }
        }
        // 100, then one per 600 ms as the burst fades: 4 in the next 2.999 s.
        assert_eq!(admitted, 104);
    }

    #[test]
    fn check_admits_below_the_limit_and_add_counts() {
        let w = RateWindow::new();
        assert_eq!(w.check(T0, 1000), Ok(()));
        w.add(T0, 999);
        assert_eq!(w.check(T0, 1000), Ok(()), "999 < 1000");
        w.add(T0, 1);
        let retry = w.check(T0, 1000).unwrap_err();
        // The 1,000 must fade below 1,000: 1 ms into the next window.
        assert_eq!(retry.after_ms, 60_001);
        assert!(w.check(T0 + retry.after_ms as i64 - 1, 1000).is_err());
        assert_eq!(w.check(T0 + retry.after_ms as i64, 1000), Ok(()));
        w.add(T0 + WINDOW_MS, 50_000);
        assert!(
            w.check(T0 + WINDOW_MS, 1000).is_err(),
            "add ignores the limit"
        );
    }

    #[test]
    fn giving_back_uncounts_in_the_same_window_only() {
        let w = RateWindow::new();
        w.try_acquire(T0, 1, 1).unwrap();
        w.give_back(T0, 1);
        assert_eq!(w.try_acquire(T0, 1, 1), Ok(()));
        w.give_back(T0 + WINDOW_MS, 1);
        assert!(w.try_acquire(T0 + WINDOW_MS, 1, 1).is_err());
    }

    #[test]
    fn concurrent_acquires_admit_exactly_the_limit() {
        let w = Arc::new(RateWindow::new());
        let barrier = Arc::new(Barrier::new(50));
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let (w, barrier) = (Arc::clone(&w), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    w.try_acquire(T0, 1, 20).is_ok()
                })
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&ok| ok)
            .count();
        assert_eq!(admitted, 20);
    }
}
