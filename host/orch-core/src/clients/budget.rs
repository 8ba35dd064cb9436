//! A key's token budget for the current period, decided in memory.
//!
//! A request reserves its estimated tokens before it is sent and settles
//! the actual count when the usage is known, so concurrent requests cannot
//! together overrun the budget by more than their estimates were wrong.
//! The database is never read or written on the request path: the ledger
//! is seeded once with [`BudgetLedger::load`], and a background task
//! persists what [`BudgetLedger::take_unflushed`] hands it.

use std::sync::{Arc, Mutex, MutexGuard};

use super::calendar;
use super::policy::Budget;

/// Refused: the reservation would overrun the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "token budget exceeded: {spent} spent and {reserved} in flight of {limit}{}",
    resets_at_ms.map(|at| format!(", resets at {}", calendar::format_utc(at))).unwrap_or_default()
)]
pub struct BudgetExceeded {
    /// Tokens per period.
    pub limit: u64,
    /// Tokens spent this period.
    pub spent: u64,
    /// Tokens reserved by requests in flight.
    pub reserved: u64,
    /// When the period ends (Unix milliseconds); `None` for a total budget.
    pub resets_at_ms: Option<i64>,
}

/// The spend of one key's budget; thread-safe.
#[derive(Debug)]
pub struct BudgetLedger {
    budget: Budget,
    state: Arc<Mutex<Ledger>>,
}

#[derive(Debug)]
struct Ledger {
    /// The period counted in `spent` (see [`BudgetPeriod::period_start_ms`](super::BudgetPeriod::period_start_ms)).
    period_start_ms: i64,
    /// Tokens settled in that period.
    spent: u64,
    /// Estimates of reservations not yet settled or dropped, whatever their
    /// period.
    reserved: u64,
    /// Tokens settled since the last [`BudgetLedger::take_unflushed`], by
    /// period start, in order.
    unflushed: Vec<(i64, u64)>,
}

fn lock(state: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// Start the period beginning at `start` if it is newer than the one
    /// counted (a clock stepping back does not bring an old period back).
    fn roll(&mut self, start: i64) {
        if start > self.period_start_ms {
            self.period_start_ms = start;
            self.spent = 0;
        }
    }

    fn record_unflushed(&mut self, period_start_ms: i64, tokens: u64) {
        if tokens == 0 {
            return;
        }
        match self
            .unflushed
            .iter_mut()
            .find(|(start, _)| *start == period_start_ms)
        {
            Some((_, sum)) => *sum = sum.saturating_add(tokens),
            None => {
                self.unflushed.push((period_start_ms, tokens));
                self.unflushed.sort_unstable_by_key(|(start, _)| *start);
            }
        }
    }
}

impl BudgetLedger {
    /// A ledger of `budget` with nothing spent.
    pub fn new(budget: Budget) -> BudgetLedger {
        BudgetLedger {
            budget,
            state: Arc::new(Mutex::new(Ledger {
                period_start_ms: i64::MIN,
                spent: 0,
                reserved: 0,
                unflushed: Vec::new(),
            })),
        }
    }

    /// The budget this ledger enforces.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Seed the spend of the period starting at `period_start_ms` from the
    /// database, before the ledger serves requests. A period older than the
    /// one the ledger already counts is ignored.
    pub fn load(&self, period_start_ms: i64, spent: u64) {
        let mut ledger = lock(&self.state);
        if period_start_ms >= ledger.period_start_ms {
            ledger.period_start_ms = period_start_ms;
            ledger.spent = spent;
        }
    }

    /// Reserve `estimate` tokens of the period containing `now_ms` if
    /// spent + reserved + estimate stays within the budget.
    pub fn reserve(&self, now_ms: i64, estimate: u64) -> Result<Reservation, BudgetExceeded> {
        let period = self.budget.period;
        let mut ledger = lock(&self.state);
        ledger.roll(period.period_start_ms(now_ms));
        let total = ledger
            .spent
            .saturating_add(ledger.reserved)
            .saturating_add(estimate);
        if total > self.budget.tokens {
            return Err(BudgetExceeded {
                limit: self.budget.tokens,
                spent: ledger.spent,
                reserved: ledger.reserved,
                resets_at_ms: period.next_start_ms(now_ms),
            });
        }
        ledger.reserved = ledger.reserved.saturating_add(estimate);
        Ok(Reservation {
            ledger: Arc::clone(&self.state),
            period_start_ms: ledger.period_start_ms,
            estimate,
            open: true,
        })
    }

    /// Spend settled since the last call, as `(period_start_ms, tokens)` in
    /// period order, for a background task to add to the database.
    pub fn take_unflushed(&self) -> Vec<(i64, u64)> {
        std::mem::take(&mut lock(&self.state).unflushed)
    }
}

/// Tokens reserved for one request in flight. [`settle`](Self::settle) it
/// with the actual usage; dropping it unsettled releases the reservation
/// (the request failed before using anything).
#[derive(Debug)]
#[must_use = "dropping a reservation releases it at once"]
pub struct Reservation {
    ledger: Arc<Mutex<Ledger>>,
    /// The period the tokens are charged to: the one the request started in.
    period_start_ms: i64,
    estimate: u64,
    /// Still counted in `reserved`.
    open: bool,
}

impl Reservation {
    /// The tokens reserved.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }

    /// The request used `actual` tokens: release the estimate and spend
    /// `actual` in the period the request started in (it may exceed the
    /// estimate, and so the budget).
    pub fn settle(mut self, actual: u64) {
        let mut ledger = lock(&self.ledger);
        ledger.reserved = ledger.reserved.saturating_sub(self.estimate);
        if ledger.period_start_ms == self.period_start_ms {
            ledger.spent = ledger.spent.saturating_add(actual);
        }
        ledger.record_unflushed(self.period_start_ms, actual);
        self.open = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            let mut ledger = lock(&self.ledger);
            ledger.reserved = ledger.reserved.saturating_sub(self.estimate);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;
    use crate::clients::BudgetPeriod;

    const DAY: i64 = 86_400_000;
    /// 2024-03-05 12:00 UTC.
    const NOON: i64 = 1_709_640_000_000;
    /// 2024-03-05 00:00 UTC.
    const TODAY: i64 = NOON - DAY / 2;

    fn daily(tokens: u64) -> BudgetLedger {
        BudgetLedger::new(Budget {
            tokens,
            period: BudgetPeriod::Day,
        })
    }

    fn state(ledger: &BudgetLedger) -> (i64, u64, u64) {
        let l = lock(&ledger.state);
        (l.period_start_ms, l.spent, l.reserved)
    }

    #[test]
    fn reservations_count_until_settled_or_dropped() {
        let ledger = daily(1000);
        let a = ledger.reserve(NOON, 400).unwrap();
        let b = ledger.reserve(NOON, 400).unwrap();
        let refused = ledger.reserve(NOON, 201).unwrap_err();
        assert_eq!(
            refused,
            BudgetExceeded {
                limit: 1000,
                spent: 0,
                reserved: 800,
                resets_at_ms: Some(TODAY + DAY),
            }
        );
        assert_eq!(
            refused.to_string(),
            "token budget exceeded: 0 spent and 800 in flight of 1000, resets at 2024-03-06T00:00:00Z"
        );
        a.settle(150);
        assert_eq!(state(&ledger), (TODAY, 150, 400));
        drop(b);
        assert_eq!(state(&ledger), (TODAY, 150, 0));
        let c = ledger.reserve(NOON, 850).unwrap();
        assert_eq!(c.estimate(), 850);
        assert!(ledger.reserve(NOON, 1).is_err(), "exactly full");
        c.settle(900);
        assert_eq!(
            state(&ledger),
            (TODAY, 1050, 0),
            "usage may overrun the estimate"
        );
        assert!(ledger.reserve(NOON, 0).is_err());
    }

    #[test]
    fn a_new_period_starts_afresh() {
        let ledger = daily(100);
        ledger.reserve(NOON, 100).unwrap().settle(100);
        assert!(
            ledger.reserve(NOON + DAY / 2 - 1, 1).is_err(),
            "23:59:59.999"
        );
        assert!(ledger.reserve(NOON + DAY / 2, 100).is_ok(), "midnight");
        assert_eq!(state(&ledger), (TODAY + DAY, 0, 0));
        assert!(
            ledger.reserve(NOON, 100).is_ok(),
            "a clock stepping back does not bring yesterday back"
        );
    }

    #[test]
    fn a_request_across_midnight_is_charged_to_the_day_it_started() {
        let ledger = daily(100);
        let late = ledger.reserve(TODAY + DAY - 1, 60).unwrap();
        let next_day = ledger.reserve(TODAY + DAY, 40).unwrap();
        late.settle(70);
        assert_eq!(
            state(&ledger),
            (TODAY + DAY, 0, 40),
            "not charged to the new day"
        );
        next_day.settle(30);
        assert_eq!(
            ledger.take_unflushed(),
            vec![(TODAY, 70), (TODAY + DAY, 30)]
        );
    }

    #[test]
    fn total_budgets_never_reset() {
        let ledger = BudgetLedger::new(Budget {
            tokens: 10,
            period: BudgetPeriod::Total,
        });
        ledger.reserve(NOON, 10).unwrap().settle(10);
        let refused = ledger.reserve(NOON + 400 * DAY, 1).unwrap_err();
        assert_eq!(refused.resets_at_ms, None);
        assert_eq!(
            refused.to_string(),
            "token budget exceeded: 10 spent and 0 in flight of 10"
        );
    }

    #[test]
    fn unflushed_spend_is_handed_out_once() {
        let ledger = daily(1000);
        assert_eq!(ledger.take_unflushed(), vec![]);
        ledger.reserve(NOON, 100).unwrap().settle(10);
        ledger.reserve(NOON, 100).unwrap().settle(20);
        ledger.reserve(NOON, 100).unwrap().settle(0);
        drop(ledger.reserve(NOON, 100).unwrap());
        assert_eq!(ledger.take_unflushed(), vec![(TODAY, 30)]);
        assert_eq!(ledger.take_unflushed(), vec![]);
        ledger.reserve(NOON, 100).unwrap().settle(5);
        assert_eq!(ledger.take_unflushed(), vec![(TODAY, 5)]);
        assert_eq!(state(&ledger), (TODAY, 35, 0), "flushing keeps the spend");
    }

    #[test]
    fn loading_seeds_the_current_period_only() {
        let ledger = daily(100);
        ledger.load(TODAY, 90);
        assert!(ledger.reserve(NOON, 11).is_err());
        assert!(ledger.reserve(NOON, 10).is_ok());
        let stale = daily(100);
        stale.load(TODAY - DAY, 100);
        assert!(
            stale.reserve(NOON, 100).is_ok(),
            "yesterday's spend is gone"
        );
        stale.load(TODAY - DAY, 100);
        assert_eq!(state(&stale), (TODAY, 0, 0), "an older period is ignored");
        assert_eq!(
            stale.take_unflushed(),
            vec![],
            "loaded spend is not re-flushed"
        );
    }

    #[test]
    fn concurrent_reservations_admit_exactly_what_fits() {
        let ledger = Arc::new(daily(1000));
        let barrier = Arc::new(Barrier::new(100));
        let threads: Vec<_> = (0..100)
            .map(|_| {
                let (ledger, barrier) = (Arc::clone(&ledger), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    ledger.reserve(NOON, 100).ok()
                })
            })
            .collect();
        let held: Vec<Reservation> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(held.len(), 10);
        assert_eq!(state(&ledger), (TODAY, 0, 1000));
        drop(held);
        assert_eq!(state(&ledger), (TODAY, 0, 0));
    }
}
