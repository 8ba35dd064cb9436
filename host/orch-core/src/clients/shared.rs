//! Limits shared by several replicas through a store (Redis), decided in
//! memory.
//!
//! A request never waits on the store. Each replica holds, per limit, an
//! [`Allotment`]: units (requests or tokens) it has *claimed* from the
//! store's global count for the current epoch (a minute window, a budget
//! period) and not used yet. Admission takes from that pool; a background
//! task tops it up before it runs dry, reports what was used without a
//! claim, and gives back what an idle replica or an old epoch left over.
//! Because every claim is atomic in the store and checked against the
//! limit there, the replicas together admit at most the limit plus a small
//! overdraft (at most `max(1, limit / (20 × replicas))` per replica and
//! epoch, taken only while a claim is on its way).
//!
//! When the store is unreachable each replica falls back to its share:
//! `max(1, limit / replicas)` of what was left, so that N replicas cut off
//! from each other never admit N times the limit. What they admit meanwhile
//! is reported when the store is back.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// What the replicas know about the store they share: whether it answers,
/// how many replicas share it, and how to wake the task that talks to it.
#[derive(Default)]
pub struct Sharing {
    up: AtomicBool,
    replicas: AtomicU32,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Every allotment in use, by the name its store counters carry.
    registry: Mutex<Vec<(String, Arc<Allotment>)>>,
}

impl std::fmt::Debug for Sharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharing")
            .field("up", &self.is_up())
            .field("replicas", &self.replicas())
            .finish_non_exhaustive()
    }
}

impl Sharing {
    /// A store not reached yet, shared by one replica.
    pub fn new() -> Sharing {
        Sharing::default()
    }

    /// Whether the last exchange with the store succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Record whether the store answers.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    /// Replicas seen recently (at least 1).
    pub fn replicas(&self) -> u64 {
        u64::from(self.replicas.load(Ordering::Acquire).max(1))
    }

    /// Record how many replicas share the store.
    pub fn set_replicas(&self, n: u32) {
        self.replicas.store(n.max(1), Ordering::Release);
    }

    /// This replica's share of `amount`: `max(1, amount / replicas)`.
    pub fn share_of(&self, amount: u64) -> u64 {
        (amount / self.replicas()).max(1)
    }

    /// Install what [`wake`](Self::wake) calls (once).
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(wake));
    }

    /// Ask the store task to run now (a pool ran dry).
    pub fn wake(&self) {
        if let Some(wake) = self.wake.get() {
            wake();
        }
    }

    fn registry(&self) -> MutexGuard<'_, Vec<(String, Arc<Allotment>)>> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Share `allotment`'s counts in the store under `name`. Several
    /// allotments may share a name (a key whose policy changed: the old
    /// one gives back what it holds, the new one claims).
    pub fn register(&self, name: String, allotment: &Arc<Allotment>) {
        self.registry().push((name, Arc::clone(allotment)));
    }

    /// The allotments in use, with their names.
    pub fn allotments(&self) -> Vec<(String, Arc<Allotment>)> {
        self.registry()
            .iter()
            .filter(|(_, a)| Arc::strong_count(a) > 1)
            .map(|(n, a)| (n.clone(), Arc::clone(a)))
            .collect()
    }

    /// Take out the allotments nothing uses any more, for a last exchange
    /// ([`Allotment::release`]).
    pub fn unused(&self) -> Vec<(String, Arc<Allotment>)> {
        let mut registry = self.registry();
        let (gone, kept) = std::mem::take(&mut *registry)
            .into_iter()
            .partition(|(_, a)| Arc::strong_count(a) == 1);
        *registry = kept;
        gone
    }
}

/// How an epoch's count is read: on its own (a budget period), or as a
/// sliding minute where the previous window fades out linearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The count of the epoch alone.
    Period,
    /// `previous × (1 − elapsed / 60 s) + current`, epochs being minute
    /// windows (`now_ms / 60_000`).
    SlidingMinute,
}

/// The store's global count of an epoch, as the last exchange left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Global {
    /// The epoch it counts.
    pub epoch: i64,
    /// Counted in that epoch (claims, reported use), all replicas.
    pub current: u64,
    /// Counted in the epoch before (sliding minutes only).
    pub previous: u64,
}

/// One exchange the store task should make for an allotment: claim up to
/// `want` more for `epoch`, count `force` used without a claim, and adjust
/// older epochs' counts (claims left unused, use reported late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The epoch claimed for.
    pub epoch: i64,
    /// Units wanted (0: only report and read).
    pub want: u64,
    /// Units used without a claim, counted unconditionally.
    pub force: u64,
    /// `(epoch, delta)`: unused claims given back (negative), use of an
    /// older epoch reported late (positive).
    pub adjustments: Vec<(i64, i64)>,
    /// The limit the store checks claims against.
    pub limit: u64,
    /// How the epoch is counted.
    pub span: Span,
    /// The count to start from when the store has none for `epoch` (a
    /// budget's spend as the database knows it).
    pub seed: u64,
}

/// Refused: the limit has no room now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    /// When it may have room again (milliseconds, at least 1).
    pub retry_after_ms: u64,
}

/// One limit's claimed units on this replica.
#[derive(Debug)]
pub struct Allotment {
    limit: u64,
    span: Span,
    lot: Mutex<Lot>,
}

#[derive(Debug, Default)]
struct Lot {
    /// The epoch `pool`, `debt` and `local` belong to.
    epoch: i64,
    /// Claimed for `epoch`, not used.
    pool: u64,
    /// Used in `epoch` without a claim, not reported yet.
    debt: u64,
    /// Of `debt`, taken as overdraft while the store was up.
    overdraft: u64,
    /// Used in `epoch` while the store was down.
    down_used: u64,
    /// Counts of older epochs to correct: (epoch, delta).
    adjustments: Vec<(i64, i64)>,
    /// The store's count as last read.
    global: Option<Global>,
    /// The last claim was granted less than wanted: no room left in `epoch`.
    exhausted: bool,
    /// Units taken since the last exchange (sizes the next claim).
    demand: u64,
    /// The size of the last claim asked for.
    last_want: u64,
    /// When the allotment was last used (Unix milliseconds).
    last_use_ms: i64,
    /// An exchange is needed soon.
    dirty: bool,
    /// The count the store starts from for an epoch it has none of.
    seed: Option<(i64, u64)>,
    /// When the last exchange was made (Unix milliseconds; 0: never).
    last_exchange_ms: i64,
}

/// Unused claims beyond the reserve are given back after this long
/// without use.
const IDLE_MS: i64 = 2_000;

/// The reserve is given back after this long without use.
const KEEP_MS: i64 = 60_000;

/// A claim covers this long of the recent demand, so a busy limit is
/// exchanged a few times a second, not once per request.
const HORIZON_MS: u128 = 250;

fn lock(lot: &Mutex<Lot>) -> MutexGuard<'_, Lot> {
    lot.lock().unwrap_or_else(|p| p.into_inner())
}

/// The epoch of `now_ms` for `span` (`period_start` for budget periods).
fn window_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(60_000)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Lot {
    /// Queue a correction of `epoch`'s count.
    fn adjust(&mut self, epoch: i64, mut delta: i64) {
        if epoch == self.epoch && delta < 0 {
            // Net against use not reported yet for the same epoch.
            let net = self.debt.min(delta.unsigned_abs());
            self.debt -= net;
            delta += signed(net);
        }
        if delta != 0 && epoch != i64::MIN {
            self.adjustments.push((epoch, delta));
            self.dirty = true;
        }
    }

    /// Move to `epoch`, queueing what the old one left for refund.
    fn roll(&mut self, epoch: i64) {
        if epoch <= self.epoch {
            return;
        }
        // Unclaimed use stays with its epoch; the unused claims move on to
        // the new one (counted there at the next exchange), so a busy key
        // does not start each minute with an empty pool.
        let (pool, debt) = (self.pool, std::mem::take(&mut self.debt));
        self.adjust(self.epoch, signed(debt) - signed(pool));
        self.debt = pool;
        self.epoch = epoch;
        self.overdraft = 0;
        self.down_used = 0;
        self.exhausted = false;
    }
}

impl Allotment {
    /// An allotment of `limit` counted as `span`, nothing claimed.
    pub fn new(limit: u64, span: Span) -> Allotment {
        Allotment {
            limit,
            span,
            lot: Mutex::new(Lot {
                epoch: i64::MIN,
                ..Lot::default()
            }),
        }
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The small amount a replica may use without a claim, and keeps
    /// claimed while its key is in use: `max(1, limit / (20 × replicas))`.
    fn reserve(&self, sharing: &Sharing) -> u64 {
        (self.limit / sharing.replicas().saturating_mul(20)).max(1)
    }

    /// The store's estimate for `epoch` at `now_ms`, from the last read.
    fn global_estimate(&self, lot: &Lot, epoch: i64, now_ms: i64) -> u64 {
        let Some(g) = lot.global else { return 0 };
        match self.span {
            Span::Period if g.epoch == epoch => g.current,
            Span::Period => 0,
            Span::SlidingMinute => {
                let elapsed = now_ms - epoch.saturating_mul(60_000);
                let fade = |count: u64| {
                    let remaining = u128::from((60_000 - elapsed.clamp(0, 60_000)).unsigned_abs());
                    (u128::from(count) * remaining / 60_000) as u64
                };
                if g.epoch == epoch {
                    g.current.saturating_add(fade(g.previous))
                } else if g.epoch + 1 == epoch {
                    fade(g.current)
                } else {
                    0
                }
            }
        }
    }

    /// Take `amount` for `epoch` at `now_ms`. Up: from the claimed pool,
    /// else as overdraft while a claim is on its way (never once the store
    /// said the epoch is full). Down: within this replica's share of what
    /// the store last said was left.
    pub fn take(
        &self,
        sharing: &Sharing,
        epoch: i64,
        now_ms: i64,
        amount: u64,
    ) -> Result<(), Short> {
        let mut lot = lock(&self.lot);
        lot.roll(epoch);
        lot.last_use_ms = now_ms;
        lot.demand = lot.demand.saturating_add(amount);
        if sharing.is_up() {
            if lot.pool >= amount {
                lot.pool -= amount;
                // Low: wake the store task once (not at every request).
                if lot.pool.saturating_mul(2) < lot.last_want && !lot.dirty {
                    lot.dirty = true;
                    drop(lot);
                    sharing.wake();
                }
                return Ok(());
            }
            // Overdraft: a little always (while the store has room), more
            // when even every replica doing the same would fit.
            let n = sharing.replicas();
            let cap = self.reserve(sharing);
            let global = self.global_estimate(&lot, epoch, now_ms);
            let fits_store = global.saturating_add(amount) <= self.limit;
            let fits_all = global.saturating_add(lot.debt.saturating_add(amount).saturating_mul(n))
                <= self.limit;
            // One take larger than the small overdraft (a budget's
            // estimate) may go as far as every replica's fair part.
            if !lot.exhausted
                && fits_store
                && (lot.overdraft.saturating_add(amount) <= cap || amount > cap && fits_all)
            {
                lot.overdraft += amount;
                lot.debt += amount;
                lot.dirty = true;
                drop(lot);
                sharing.wake();
                return Ok(());
            }
            lot.dirty = true;
            let retry = self.retry_after(&lot, now_ms, amount);
            drop(lot);
            sharing.wake();
            return Err(Short {
                retry_after_ms: retry,
            });
        }
        // Down: a share of what was left when the store was last read.
        let left = self
            .limit
            .saturating_sub(self.global_estimate(&lot, epoch, now_ms));
        let share = sharing.share_of(left);
        if lot.pool >= amount {
            lot.pool -= amount;
            return Ok(());
        }
        if lot.down_used.saturating_add(amount) <= share {
            lot.down_used += amount;
            lot.debt += amount;
            return Ok(());
        }
        Err(Short {
            retry_after_ms: self.retry_after(&lot, now_ms, amount),
        })
    }

    /// Count `amount` used in `epoch` without a claim (tokens, known only
    /// after the answer).
    pub fn add(&self, epoch: i64, amount: u64) {
        if amount == 0 {
            return;
        }
        let mut lot = lock(&self.lot);
        lot.roll(epoch);
        if epoch == lot.epoch {
            lot.debt = lot.debt.saturating_add(amount);
            lot.dirty = true;
        } else {
            lot.adjust(epoch, signed(amount));
        }
    }

    /// Whether the limit is not reached yet at `now_ms` (tokens per minute:
    /// admitted while the count is under the limit): the store's count plus
    /// what this replica used since it was read. Down, this replica's own
    /// use since then is held to its share of what was left.
    pub fn check(&self, sharing: &Sharing, epoch: i64, now_ms: i64) -> Result<(), Short> {
        let mut lot = lock(&self.lot);
        lot.roll(epoch);
        let global = self.global_estimate(&lot, epoch, now_ms);
        let fits = if sharing.is_up() {
            global.saturating_add(lot.debt) < self.limit
        } else {
            lot.debt < sharing.share_of(self.limit.saturating_sub(global))
        };
        if fits {
            Ok(())
        } else {
            Err(Short {
                retry_after_ms: self.retry_after(&lot, now_ms, 1),
            })
        }
    }

    /// Give back `amount` taken in `epoch` and not used (a request refused
    /// by a later check, a reservation settled below its estimate).
    pub fn give_back(&self, epoch: i64, amount: u64) {
        if amount == 0 {
            return;
        }
        let mut lot = lock(&self.lot);
        if epoch == lot.epoch {
            lot.pool = lot.pool.saturating_add(amount);
        } else {
            lot.adjust(epoch, -signed(amount));
        }
    }

    /// When `amount` may fit: a sliding minute's estimate falls as the
    /// previous window fades and the next begins; a period waits for the
    /// store task's next claim.
    fn retry_after(&self, lot: &Lot, now_ms: i64, amount: u64) -> u64 {
        match self.span {
            Span::Period => 1_000,
            Span::SlidingMinute => {
                let mut after = 1_000;
                // Step forward a second at a time (at most a minute) until
                // the estimate leaves room.
                for s in 1..=60 {
                    let at = now_ms + s * 1_000;
                    let e = window_of(at);
                    let est = self.global_estimate(lot, e, at);
                    if est.saturating_add(amount) <= self.limit {
                        after = (s * 1_000).unsigned_abs();
                        break;
                    }
                    after = 60_000;
                }
                after
            }
        }
    }

    /// The exchange the store task should make now, if any: top the pool
    /// up when it is low and the allotment is in use, report unclaimed use,
    /// give back what an old epoch or an idle spell left. `None` when
    /// nothing is due.
    pub fn due(&self, sharing: &Sharing, now_ms: i64) -> Option<Exchange> {
        let mut lot = lock(&self.lot);
        // A minute window moves with the clock; a budget period moves when
        // a request first falls in the next one.
        if self.span == Span::SlidingMinute {
            lot.roll(window_of(now_ms));
        }
        if self.span == Span::SlidingMinute && lot.last_use_ms == 0 {
            // A key just loaded: claim its reserve before the first request.
            lot.last_use_ms = now_ms;
        }
        let since_use = now_ms.saturating_sub(lot.last_use_ms);
        let reserve = self.reserve(sharing);
        // In hand: the reserve while the key was used in the last minute,
        // so a client coming back is not refused while a claim is out.
        let keep = if since_use > KEEP_MS { 0 } else { reserve };
        if since_use > IDLE_MS && lot.pool > keep {
            let extra = lot.pool - keep;
            lot.pool = keep;
            let e = lot.epoch;
            lot.adjust(e, -signed(extra));
        }
        let wanted = if since_use > IDLE_MS {
            keep
        } else {
            // The demand since the last exchange, over the horizon: at
            // least the reserve, at most a fair share of the limit.
            let elapsed = now_ms
                .saturating_sub(lot.last_exchange_ms)
                .clamp(1, IDLE_MS);
            let rate_wanted =
                u128::from(lot.demand) * HORIZON_MS / u128::from(elapsed.unsigned_abs());
            u64::try_from(rate_wanted)
                .unwrap_or(u64::MAX)
                .max(lot.demand)
                .max(reserve)
                .min(sharing.share_of(self.limit))
        };
        let want = if lot.epoch == i64::MIN || lot.pool.saturating_mul(2) >= wanted.max(1) {
            0
        } else {
            wanted.saturating_sub(lot.pool)
        };
        if want == 0 && lot.debt == 0 && lot.adjustments.is_empty() && !lot.dirty {
            return None;
        }
        lot.last_want = want.max(lot.last_want / 2);
        lot.demand = 0;
        lot.last_exchange_ms = now_ms;
        Some(self.exchange(&mut lot, want))
    }

    fn exchange(&self, lot: &mut Lot, want: u64) -> Exchange {
        lot.dirty = false;
        Exchange {
            epoch: lot.epoch,
            want,
            force: std::mem::take(&mut lot.debt),
            adjustments: std::mem::take(&mut lot.adjustments),
            limit: self.limit,
            span: self.span,
            seed: match lot.seed {
                Some((epoch, count)) if epoch == lot.epoch => count,
                _ => 0,
            },
        }
    }

    /// The last exchange of an allotment no longer used: give back its
    /// pool, report its use.
    pub fn release(&self) -> Option<Exchange> {
        let mut lot = lock(&self.lot);
        let (pool, epoch) = (std::mem::take(&mut lot.pool), lot.epoch);
        lot.adjust(epoch, -signed(pool));
        (lot.debt > 0 || !lot.adjustments.is_empty()).then(|| self.exchange(&mut lot, 0))
    }

    /// What the store should count for `epoch` if it has nothing yet (a
    /// budget's spend as the database knows it).
    pub fn seed(&self, epoch: i64, count: u64) {
        lock(&self.lot).seed = Some((epoch, count));
    }

    /// The store answered `exchange`: `granted` units were claimed and its
    /// count is now `global`.
    pub fn granted(&self, exchange: &Exchange, granted: u64, global: Global) {
        let mut lot = lock(&self.lot);
        lot.global = Some(global);
        if exchange.epoch == lot.epoch {
            lot.pool = lot.pool.saturating_add(granted);
            lot.exhausted = granted < exchange.want;
            lot.overdraft = 0;
        } else {
            // The epoch moved on while the claim was out: give it back.
            lot.adjust(exchange.epoch, -signed(granted));
        }
    }

    /// The store did not answer `exchange`: keep its reports for the next
    /// one (nothing was claimed).
    pub fn failed(&self, exchange: Exchange) {
        let mut lot = lock(&self.lot);
        if exchange.epoch == lot.epoch {
            lot.debt = lot.debt.saturating_add(exchange.force);
        } else {
            lot.adjust(exchange.epoch, signed(exchange.force));
        }
        lot.adjustments.extend(exchange.adjustments);
        lot.dirty = true;
    }

    /// Units claimed and unused, units used without a claim.
    pub fn pool(&self) -> (u64, u64) {
        let lot = lock(&self.lot);
        (lot.pool, lot.debt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 60_000_000; // the start of window 1000

    fn up(replicas: u32) -> Sharing {
        let s = Sharing::new();
        s.set_up(true);
        s.set_replicas(replicas);
        s
    }

    /// A store in memory: the claim rule of the Redis script.
    #[derive(Default)]
    struct Store {
        counts: std::collections::HashMap<i64, u64>,
    }

    impl Store {
        fn exchange(&mut self, x: &Exchange, now_ms: i64) -> (u64, Global) {
            for (e, n) in &x.adjustments {
                if let Some(c) = self.counts.get_mut(e) {
                    *c = c.saturating_add_signed(*n);
                }
            }
            let current = *self.counts.entry(x.epoch).or_insert(x.seed);
            let previous = match x.span {
                Span::Period => 0,
                Span::SlidingMinute => self.counts.get(&(x.epoch - 1)).copied().unwrap_or(0),
            };
            let elapsed = (now_ms - x.epoch * 60_000).clamp(0, 60_000) as u64;
            let est = x.force
                + match x.span {
                    Span::Period => current,
                    Span::SlidingMinute => current + previous * (60_000 - elapsed) / 60_000,
                };
            let free = x.limit.saturating_sub(est);
            let grant = x.want.min(free);
            let c = self.counts.get_mut(&x.epoch).unwrap();
            *c += grant + x.force;
            (
                grant,
                Global {
                    epoch: x.epoch,
                    current: *c,
                    previous,
                },
            )
        }
    }

    fn sync(a: &Allotment, s: &Sharing, store: &mut Store, now_ms: i64) {
        if let Some(x) = a.due(s, now_ms) {
            let (g, global) = store.exchange(&x, now_ms);
            a.granted(&x, g, global);
        }
    }

    #[test]
    fn three_replicas_admit_the_limit_together() {
        let s = up(3);
        let replicas: Vec<Allotment> = (0..3)
            .map(|_| Allotment::new(100, Span::SlidingMinute))
            .collect();
        let mut store = Store::default();
        let mut admitted = 0;
        // 600 requests over 30 s, round robin, a sync every 50 ms each.
        for i in 0..600i64 {
            let now = T0 + i * 50;
            let a = &replicas[(i % 3) as usize];
            if a.take(&s, window_of(now), now, 1).is_ok() {
                admitted += 1;
            }
            for r in &replicas {
                sync(r, &s, &mut store, now);
            }
        }
        assert!(admitted <= 103, "{admitted}");
        assert!(admitted >= 95, "{admitted}");
        assert!(store.counts[&1000] <= 103);
    }

    #[test]
    fn overdraft_is_bounded_while_a_claim_is_out() {
        let s = up(4);
        let a = Allotment::new(100, Span::SlidingMinute);
        // Nothing claimed yet: the reserve, max(1, 100 / 80), and no more.
        let ok = (0..50).filter(|_| a.take(&s, 1000, T0, 1).is_ok()).count();
        assert_eq!(ok, 1);
        let x = a.due(&s, T0).unwrap();
        assert_eq!(x.force, 1);
        assert!(x.want >= 1);
        // The store says 99 are counted and grants nothing: none more.
        a.granted(
            &x,
            0,
            Global {
                epoch: 1000,
                current: 99,
                previous: 0,
            },
        );
        let ok = (0..10).filter(|_| a.take(&s, 1000, T0, 1).is_ok()).count();
        assert_eq!(ok, 0, "the claim was refused: the window is full");

        // A budget's estimate larger than the reserve: as far as every
        // replica's fair part of what is left.
        let b = Allotment::new(1000, Span::Period);
        let ok = (0..5).filter(|_| b.take(&s, 0, T0, 100).is_ok()).count();
        assert_eq!(ok, 2, "(100 + 100) x 4 replicas fit in 1000, 300 x 4 not");
    }

    #[test]
    fn down_a_replica_keeps_to_its_share() {
        let s = Sharing::new();
        s.set_replicas(4);
        let a = Allotment::new(100, Span::SlidingMinute);
        let ok = (0..100).filter(|_| a.take(&s, 1000, T0, 1).is_ok()).count();
        assert_eq!(ok, 25);
        // Reported once the store is back.
        s.set_up(true);
        assert_eq!(a.due(&s, T0).unwrap().force, 25);
    }

    #[test]
    fn idle_and_old_claims_are_given_back() {
        let s = up(1);
        let a = Allotment::new(100, Span::SlidingMinute);
        let mut store = Store::default();
        // A key just loaded claims its reserve (100 / 20) before any request.
        sync(&a, &s, &mut store, T0);
        assert_eq!(a.pool(), (5, 0));
        for _ in 0..20 {
            a.take(&s, 1000, T0 + 10, 1).unwrap_or_default();
        }
        sync(&a, &s, &mut store, T0 + 20);
        let (pool, _) = a.pool();
        assert!(pool > 5, "demand grows the claim ({pool})");
        // Idle for more than 2 s: all but the reserve goes back.
        sync(&a, &s, &mut store, T0 + 3_000);
        assert_eq!(a.pool(), (5, 0));
        let used = 20;
        assert!(store.counts[&1000] <= used + 5 + 1, "{:?}", store.counts);
        // A minute later the reserve moves to the new window, then goes back.
        sync(&a, &s, &mut store, T0 + 60_001);
        assert_eq!(store.counts[&1001], 5);
        sync(&a, &s, &mut store, T0 + 130_000);
        assert_eq!(a.pool(), (0, 0));
        assert_eq!(store.counts.get(&1002).copied().unwrap_or(0), 0);
    }

    #[test]
    fn a_failed_exchange_keeps_its_reports() {
        let s = up(1);
        let a = Allotment::new(1000, Span::Period);
        a.add(0, 40);
        let x = a.due(&s, T0).unwrap();
        assert_eq!(x.force, 40);
        a.failed(x);
        assert_eq!(a.due(&s, T0).unwrap().force, 40);
    }

    #[test]
    fn tokens_are_checked_against_the_global_count() {
        let s = up(2);
        let a = Allotment::new(1000, Span::Period);
        let mut store = Store::default();
        store.counts.insert(0, 990);
        assert!(a.check(&s, 0, T0).is_ok());
        a.add(0, 5);
        let x = a.due(&s, T0).unwrap();
        let (g, global) = store.exchange(&x, T0);
        a.granted(&x, g, global);
        assert!(a.check(&s, 0, T0).is_ok(), "995 of 1000");
        a.add(0, 5);
        assert!(a.check(&s, 0, T0).is_err(), "995 + 5 unreported");
    }
}
