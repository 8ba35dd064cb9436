//! Calls and faults of one plugin version, and its quarantine.
//!
//! A plugin version that faults repeatedly (traps, deadlines, memory,
//! invalid or oversized output: `[plugins] quarantine_after_faults`, 5 by
//! default, within [`QUARANTINE_WINDOW`]) is quarantined: the gateway stops
//! routing to it for `quarantine_s` (30 s by default), doubling with each
//! quarantine in a row up to [`QUARANTINE_MAX`]. When the time is up the plugin is on probation: one
//! more fault before a success quarantines it again at once (for twice as
//! long), a success ends the probation and forgets the count. A new file
//! is a new version with a clean record, so dropping in a fix ends it too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::PluginFault;

/// The window in which faults are counted.
pub const QUARANTINE_WINDOW: Duration = Duration::from_secs(60);
/// The longest quarantine.
pub const QUARANTINE_MAX: Duration = Duration::from_secs(600);

/// Fault kinds counted, in [`StatsView::faults`] order.
const KINDS: [&str; 6] = [
    "trap",
    "deadline",
    "memory_limit",
    "invalid_output",
    "output_too_large",
    "capacity",
];

#[derive(Default)]
struct Quarantine {
    recent: VecDeque<Instant>,
    until: Option<Instant>,
    /// Quarantines in a row (reset by a success on probation).
    strikes: u32,
    /// Quarantines in all.
    total: u32,
}

/// Counters of one plugin version.
#[derive(Default)]
pub struct PluginStats {
    calls: AtomicU64,
    call_nanos: AtomicU64,
    faults: [AtomicU64; KINDS.len()],
    /// Typed errors the plugin returned, by class (rare: a lock is fine).
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Set while a quarantine is running or its probation is not over, so
    /// successful calls skip the lock otherwise.
    watched: AtomicBool,
    quarantine: Mutex<Quarantine>,
}

/// A snapshot of [`PluginStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsView {
    /// Guest calls made (instantiations not included).
    pub calls: u64,
    /// Their total wall time.
    pub call_time: Duration,
    /// Faults by kind (`trap`, `deadline`, `memory_limit`,
    /// `invalid_output`, `output_too_large`, `capacity`).
    pub faults: Vec<(&'static str, u64)>,
    /// Typed errors the plugin returned, by class (`rate_limited`,
    /// `bad_request`, ...): upstream errors it recognised, input it refused.
    pub errors: Vec<(&'static str, u64)>,
    /// Time left in quarantine, when quarantined.
    pub quarantined_for: Option<Duration>,
    /// Quarantines so far.
    pub quarantines: u32,
}

impl PluginStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Quarantine> {
        self.quarantine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A guest call that returned (with or without a fault).
    pub(crate) fn call(&self, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.call_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A typed error of this class.
    pub(crate) fn error(&self, class: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry(class).or_default() += 1;
    }

    /// A call or its output check succeeded: ends a probation.
    pub(crate) fn success(&self, now: Instant) {
        if !self.watched.load(Ordering::Relaxed) {
            return;
        }
        let mut q = self.lock();
        if q.until.is_some_and(|u| now >= u) {
            q.until = None;
            q.strikes = 0;
            q.recent.clear();
            self.watched.store(false, Ordering::Relaxed);
        }
    }

    /// A fault of this plugin. Returns the quarantine it started, if any:
    /// after `after` faults in the window (0: never), for `base` doubled
    /// per quarantine in a row.
    pub(crate) fn fault(
        &self,
        fault: &PluginFault,
        now: Instant,
        after: u32,
        base: Duration,
    ) -> Option<Duration> {
        let i = KINDS.iter().position(|k| *k == fault.kind())?;
        self.faults[i].fetch_add(1, Ordering::Relaxed);
        if after == 0 || matches!(fault, PluginFault::Capacity(_)) {
            // The gateway's limit, not the plugin's fault.
            return None;
        }
        let mut q = self.lock();
        if q.until.is_some_and(|u| now < u) {
            return None;
        }
        let on_probation = q.until.is_some();
        q.recent.push_back(now);
        while q
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > QUARANTINE_WINDOW)
        {
            q.recent.pop_front();
        }
        if !on_probation && q.recent.len() < after as usize {
            return None;
        }
        let length = base
            .saturating_mul(1 << q.strikes.min(10))
            .min(QUARANTINE_MAX);
        q.until = Some(now + length);
        q.strikes += 1;
        q.total += 1;
        q.recent.clear();
        self.watched.store(true, Ordering::Relaxed);
        Some(length)
    }

    /// Time left in quarantine at `now`.
    pub fn quarantined(&self, now: Instant) -> Option<Duration> {
        if !self.watched.load(Ordering::Relaxed) {
            return None;
        }
        self.lock()
            .until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// The counters at `now`.
    pub fn view(&self, now: Instant) -> StatsView {
        let q = self.lock();
        StatsView {
            calls: self.calls.load(Ordering::Relaxed),
            call_time: Duration::from_nanos(self.call_nanos.load(Ordering::Relaxed)),
            faults: KINDS
                .iter()
                .zip(&self.faults)
                .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                .collect(),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, n)| (*k, *n))
                .collect(),
            quarantined_for: q
                .until
                .and_then(|u| u.checked_duration_since(now))
                .filter(|d| !d.is_zero()),
            quarantines: q.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUARANTINE_FAULTS: usize = 5;
    const QUARANTINE_BASE: Duration = Duration::from_secs(30);

    fn trap() -> PluginFault {
        PluginFault::Trap("boom".into())
    }

    impl PluginStats {
        fn hit(&self, fault: &PluginFault, now: Instant) -> Option<Duration> {
            self.fault(fault, now, QUARANTINE_FAULTS as u32, QUARANTINE_BASE)
        }
    }

    #[test]
    fn repeated_faults_quarantine_with_backoff_and_a_success_forgives() {
        let s = PluginStats::default();
        let t0 = Instant::now();
        for i in 0..QUARANTINE_FAULTS - 1 {
            assert_eq!(s.hit(&trap(), t0 + Duration::from_secs(i as u64)), None);
        }
        assert_eq!(s.quarantined(t0), None);
        let at = t0 + Duration::from_secs(10);
        assert_eq!(s.hit(&trap(), at), Some(QUARANTINE_BASE));
        assert_eq!(s.quarantined(at), Some(QUARANTINE_BASE));
        // Faults while quarantined (calls already in flight) change nothing.
        assert_eq!(s.hit(&trap(), at + Duration::from_secs(1)), None);
        // On probation one fault is enough, for twice as long.
        let later = at + QUARANTINE_BASE;
        assert_eq!(s.quarantined(later), None);
        assert_eq!(s.hit(&trap(), later), Some(QUARANTINE_BASE * 2));
        // A success after that quarantine forgives.
        let after = later + QUARANTINE_BASE * 2;
        s.success(after);
        for i in 0..QUARANTINE_FAULTS - 1 {
            assert_eq!(s.hit(&trap(), after + Duration::from_secs(i as u64)), None);
        }
        let v = s.view(after);
        assert_eq!(v.quarantines, 2);
        assert_eq!(v.faults[0], ("trap", 2 + 2 * QUARANTINE_FAULTS as u64 - 1));
    }

    #[test]
    fn faults_spread_over_more_than_the_window_do_not_quarantine() {
        let s = PluginStats::default();
        let t0 = Instant::now();
        for i in 0..20u64 {
            let spacing = QUARANTINE_WINDOW / 4 + Duration::from_secs(1);
            let at = t0 + spacing * u32::try_from(i).unwrap();
            assert_eq!(s.hit(&trap(), at), None, "fault {i}");
        }
        assert_eq!(
            s.hit(&PluginFault::Capacity("full".into()), t0),
            None,
            "capacity is the gateway's limit"
        );
        assert_eq!(s.view(t0).faults[5], ("capacity", 1));
    }

    #[test]
    fn zero_faults_means_never() {
        let s = PluginStats::default();
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(s.fault(&trap(), now, 0, QUARANTINE_BASE), None);
        }
        assert_eq!(s.quarantined(now), None);
    }

    #[test]
    fn the_longest_quarantine_is_capped() {
        let s = PluginStats::default();
        let mut now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..12 {
            for _ in 0..QUARANTINE_FAULTS {
                if let Some(d) = s.hit(&trap(), now) {
                    last = d;
                }
            }
            now += last;
        }
        assert_eq!(last, QUARANTINE_MAX);
    }
}
