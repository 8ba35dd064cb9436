//! Client keys and what each may do: key material, the key's policy
//! (models, requests and tokens per minute, token budget, expiry), and the
//! in-memory admission of a request against it.
//!
//! Nothing here waits on a database or reads the clock: every decision
//! takes the time (Unix milliseconds) as an argument, and the counters are
//! plain numbers (a window index and counts, a period start and spend) that
//! a shared store can hold as well.

mod budget;
mod calendar;
mod key;
mod policy;
mod shared;
mod window;

use std::sync::Arc;

pub use budget::{BudgetExceeded, BudgetLedger, Reservation};
pub use key::{KEY_PREFIX, generate_key, key_hash, key_prefix, looks_like_key};
pub use policy::{Budget, BudgetPeriod, ClientPolicy};
pub use shared::{Allotment, Exchange, Global, Sharing, Short, Span};
pub use window::{RateWindow, Retry};

/// Completion tokens assumed when a request sets no `max_tokens`: enough
/// for most answers, so that a budget is not overrun by much.
pub const DEFAULT_MAX_TOKENS_ESTIMATE: u64 = 4096;

/// A conservative estimate of a request's tokens before it is sent: a
/// token per 4 bytes of body (prompts average about 4 bytes a token, and
/// the JSON around them only adds bytes) plus the completion limit, or
/// [`DEFAULT_MAX_TOKENS_ESTIMATE`] when the client set none.
pub fn estimate_tokens(body_len_bytes: usize, max_tokens: Option<u64>) -> u64 {
    let prompt = u64::try_from(body_len_bytes.div_ceil(4)).unwrap_or(u64::MAX);
    prompt.saturating_add(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS_ESTIMATE))
}

/// Which per-minute limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

impl RateLimit {
    /// The stable short name: `rpm` or `tpm`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimit::Requests => "rpm",
            RateLimit::Tokens => "tpm",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            RateLimit::Requests => "requests per minute",
            RateLimit::Tokens => "tokens per minute",
        }
    }
}

/// Why a client key's request was refused. The message is meant for the
/// client: it names the limit, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The key is disabled.
    #[error("this API key is disabled")]
    Disabled,
    /// The key has expired.
    #[error("this API key has expired")]
    Expired,
    /// The key may not use the requested model.
    #[error("this API key may not use the model `{model}`")]
    ModelNotAllowed {
        /// The model the client asked for.
        model: String,
    },
    /// A per-minute limit is reached.
    #[error(
        "rate limit reached ({}); try again in {} s",
        limit.describe(),
        retry_after_ms.div_ceil(1000)
    )]
    RateLimited {
        /// The limit reached.
        limit: RateLimit,
        /// When the request would be admitted.
        retry_after_ms: u64,
    },
    /// The token budget of the period is spent.
    #[error(
        "the token budget of this API key is exhausted{}",
        resets_at_ms.map(|at| format!("; it resets at {}", calendar::format_utc(at))).unwrap_or_default()
    )]
    BudgetExhausted {
        /// When the budget resets (Unix milliseconds); `None` never.
        resets_at_ms: Option<i64>,
    },
}

/// The live state of one client key: its policy and its counters.
#[derive(Debug)]
pub struct ClientState {
    policy: ClientPolicy,
    rpm: RateWindow,
    /// Shared with admissions, which add the tokens used when they finish.
    tpm: Arc<RateWindow>,
    budget: Option<BudgetLedger>,
    /// The limits as shared with other replicas, when a store is shared.
    shared: Option<SharedLimits>,
}

/// A client key's limits counted across replicas (see [`Sharing`]).
#[derive(Debug)]
struct SharedLimits {
    sharing: Arc<Sharing>,
    rpm: Option<Arc<Allotment>>,
    tpm: Option<Arc<Allotment>>,
    budget: Option<Arc<Allotment>>,
}

/// The minute window of `now_ms` (the epoch of per-minute limits).
fn minute_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(60_000)
}

impl ClientState {
    /// Fresh counters for `policy` (nothing spent: see
    /// [`BudgetLedger::load`] to seed the budget).
    pub fn new(policy: ClientPolicy) -> ClientState {
        ClientState {
            budget: policy.budget.map(BudgetLedger::new),
            policy,
            rpm: RateWindow::new(),
            tpm: Arc::new(RateWindow::new()),
            shared: None,
        }
    }

    /// Counters for `policy` shared with the other replicas through
    /// `sharing`, under names derived from the key's `id`.
    pub fn shared(policy: ClientPolicy, id: i64, sharing: &Arc<Sharing>) -> ClientState {
        let make = |what: String, limit: u64, span: Span| {
            let allotment = Arc::new(Allotment::new(limit, span));
            sharing.register(format!("{id}:{what}"), &allotment);
            allotment
        };
        let shared = SharedLimits {
            sharing: Arc::clone(sharing),
            rpm: policy
                .rpm
                .map(|l| make("rpm".into(), u64::from(l), Span::SlidingMinute)),
            tpm: policy
                .tpm
                .map(|l| make("tpm".into(), u64::from(l), Span::SlidingMinute)),
            budget: policy.budget.map(|b| {
                let period = serde_json::to_value(b.period)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                make(format!("budget-{period}"), b.tokens, Span::Period)
            }),
        };
        ClientState {
            shared: Some(shared),
            ..ClientState::new(policy)
        }
    }

    /// Seed the budget with what the database says was spent in the period
    /// starting at `period_start_ms` (see [`BudgetLedger::load`]).
    pub fn load_spend(&self, period_start_ms: i64, spent: u64) {
        if let Some(ledger) = &self.budget {
            ledger.load(period_start_ms, spent);
        }
        if let Some(allotment) = self.shared.as_ref().and_then(|s| s.budget.as_ref()) {
            allotment.seed(period_start_ms, spent);
        }
    }

    /// The key's policy.
    pub fn policy(&self) -> &ClientPolicy {
        &self.policy
    }

    /// The budget ledger, when the key has a budget (for seeding and
    /// flushing it).
    pub fn budget(&self) -> Option<&BudgetLedger> {
        self.budget.as_ref()
    }

    /// Admit a request for `model` expected to use `estimate_tokens`
    /// (see [`estimate_tokens`]). Checked in order: enabled, expiry,
    /// model, requests per minute, tokens per minute, budget. An admitted
    /// request counts against the requests per minute and reserves its
    /// estimate; a refused one counts against nothing.
    pub fn admit(
        &self,
        now_ms: i64,
        model: &str,
        estimate_tokens: u64,
    ) -> Result<Admission, Refusal> {
        if !self.policy.enabled {
            return Err(Refusal::Disabled);
        }
        if self.policy.is_expired(now_ms) {
            return Err(Refusal::Expired);
        }
        if !self.policy.allows_model(model) {
            return Err(Refusal::ModelNotAllowed {
                model: model.to_owned(),
            });
        }
        if let Some(shared) = &self.shared {
            return self.admit_shared(shared, now_ms, estimate_tokens);
        }
        if let Some(rpm) = self.policy.rpm {
            self.rpm
                .try_acquire(now_ms, 1, u64::from(rpm))
                .map_err(|retry| rate_limited(RateLimit::Requests, retry))?;
        }
        self.admit_tokens(now_ms, estimate_tokens).inspect_err(|_| {
            if self.policy.rpm.is_some() {
                self.rpm.give_back(now_ms, 1);
            }
        })
    }

    /// The token checks of [`admit`](Self::admit), after the request was
    /// counted.
    fn admit_tokens(&self, now_ms: i64, estimate_tokens: u64) -> Result<Admission, Refusal> {
        if let Some(tpm) = self.policy.tpm {
            self.tpm
                .check(now_ms, u64::from(tpm))
                .map_err(|retry| rate_limited(RateLimit::Tokens, retry))?;
        }
        let reservation = self
            .budget
            .as_ref()
            .map(|ledger| ledger.reserve(now_ms, estimate_tokens))
            .transpose()
            .map_err(|exceeded| Refusal::BudgetExhausted {
                resets_at_ms: exceeded.resets_at_ms,
            })?;
        Ok(Admission {
            tpm: Tally::Local(Arc::clone(&self.tpm)),
            reservation,
            spend: None,
        })
    }

    /// [`admit`](Self::admit)'s limits when they are shared: the same
    /// checks, against allotments claimed from the shared store.
    fn admit_shared(
        &self,
        shared: &SharedLimits,
        now_ms: i64,
        estimate_tokens: u64,
    ) -> Result<Admission, Refusal> {
        let sharing = &shared.sharing;
        let minute = minute_of(now_ms);
        if let Some(rpm) = &shared.rpm {
            rpm.take(sharing, minute, now_ms, 1).map_err(|s| {
                rate_limited(
                    RateLimit::Requests,
                    Retry {
                        after_ms: s.retry_after_ms,
                    },
                )
            })?;
        }
        let undo = || {
            if let Some(rpm) = &shared.rpm {
                rpm.give_back(minute, 1);
            }
        };
        if let Some(tpm) = &shared.tpm
            && let Err(s) = tpm.check(sharing, minute, now_ms)
        {
            undo();
            return Err(rate_limited(
                RateLimit::Tokens,
                Retry {
                    after_ms: s.retry_after_ms,
                },
            ));
        }
        let exhausted = |resets_at_ms| {
            undo();
            Refusal::BudgetExhausted { resets_at_ms }
        };
        // The ledger keeps the spend for the database; the allotment
        // decides across replicas.
        let reservation = self
            .budget
            .as_ref()
            .map(|ledger| ledger.reserve(now_ms, estimate_tokens))
            .transpose()
            .map_err(|e| exhausted(e.resets_at_ms))?;
        let spend = match (&shared.budget, &self.budget) {
            (Some(allotment), Some(ledger)) => {
                let period = ledger.budget().period;
                let epoch = period.period_start_ms(now_ms);
                allotment
                    .take(sharing, epoch, now_ms, estimate_tokens)
                    .map_err(|_| exhausted(period.next_start_ms(now_ms)))?;
                Some(SharedSpend {
                    allotment: Arc::clone(allotment),
                    epoch,
                    estimate: estimate_tokens,
                    open: true,
                })
            }
            _ => None,
        };
        Ok(Admission {
            tpm: Tally::Shared(shared.tpm.clone()),
            reservation,
            spend,
        })
    }
}

/// Where an admission's tokens are counted against the tokens per minute.
#[derive(Debug)]
enum Tally {
    Local(Arc<RateWindow>),
    Shared(Option<Arc<Allotment>>),
}

/// An estimate taken from a shared budget allotment, settled with the
/// actual use (the rest given back) or given back whole when dropped.
#[derive(Debug)]
struct SharedSpend {
    allotment: Arc<Allotment>,
    epoch: i64,
    estimate: u64,
    open: bool,
}

impl SharedSpend {
    fn settle(mut self, actual: u64) {
        self.open = false;
        if actual <= self.estimate {
            self.allotment.give_back(self.epoch, self.estimate - actual);
        } else {
            self.allotment.add(self.epoch, actual - self.estimate);
        }
    }
}

impl Drop for SharedSpend {
    fn drop(&mut self) {
        if self.open {
            self.allotment.give_back(self.epoch, self.estimate);
        }
    }
}

fn rate_limited(limit: RateLimit, retry: Retry) -> Refusal {
    Refusal::RateLimited {
        limit,
        retry_after_ms: retry.after_ms,
    }
}

/// An admitted request. [`finish`](Self::finish) it with the tokens used;
/// dropping it unfinished releases its budget reservation and counts no
/// tokens (the request failed before any usage).
#[derive(Debug)]
#[must_use = "dropping an admission releases its reservation at once"]
pub struct Admission {
    tpm: Tally,
    reservation: Option<Reservation>,
    spend: Option<SharedSpend>,
}

impl Admission {
    /// The request used `actual_total_tokens` (prompt and completion):
    /// settle the budget and count them against the tokens per minute.
    pub fn finish(self, now_ms: i64, actual_total_tokens: u64) {
        if let Some(reservation) = self.reservation {
            reservation.settle(actual_total_tokens);
        }
        if let Some(spend) = self.spend {
            spend.settle(actual_total_tokens);
        }
        match self.tpm {
            Tally::Local(window) => window.add(now_ms, actual_total_tokens),
            Tally::Shared(Some(allotment)) => {
                allotment.add(minute_of(now_ms), actual_total_tokens);
            }
            Tally::Shared(None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-05 12:00 UTC.
    const NOON: i64 = 1_709_640_000_000;

    fn limited() -> ClientPolicy {
        ClientPolicy {
            allowed_models: Some(vec!["gpt-4o*".into()]),
            rpm: Some(2),
            tpm: Some(1000),
            budget: Some(Budget {
                tokens: 5000,
                period: BudgetPeriod::Day,
            }),
            expires_at_ms: None,
            enabled: true,
        }
    }

    #[test]
    fn refusals_come_in_order() {
        let mut policy = ClientPolicy {
            allowed_models: Some(vec![]),
            rpm: Some(0),
            tpm: Some(0),
            budget: Some(Budget {
                tokens: 0,
                period: BudgetPeriod::Day,
            }),
            expires_at_ms: Some(NOON),
            enabled: false,
        };
        let refusal =
            |p: &ClientPolicy| ClientState::new(p.clone()).admit(NOON, "m", 1).unwrap_err();
        assert_eq!(refusal(&policy), Refusal::Disabled);
        policy.enabled = true;
        assert_eq!(refusal(&policy), Refusal::Expired);
        policy.expires_at_ms = None;
        assert_eq!(
            refusal(&policy),
            Refusal::ModelNotAllowed { model: "m".into() }
        );
        policy.allowed_models = None;
        assert!(matches!(
            refusal(&policy),
            Refusal::RateLimited {
                limit: RateLimit::Requests,
                ..
            }
        ));
        policy.rpm = None;
        assert!(matches!(
            refusal(&policy),
            Refusal::RateLimited {
                limit: RateLimit::Tokens,
                ..
            }
        ));
        policy.tpm = None;
        assert_eq!(
            refusal(&policy),
            Refusal::BudgetExhausted {
                resets_at_ms: Some(NOON + 43_200_000)
            }
        );
        policy.budget = None;
        assert!(ClientState::new(policy).admit(NOON, "m", 1).is_ok());
    }

    #[test]
    fn admissions_spend_the_budget_and_the_tokens_per_minute() {
        let client = ClientState::new(limited());
        let admission = client.admit(NOON, "gpt-4o-mini", 3000).unwrap();
        assert_eq!(
            client.admit(NOON, "gpt-4o", 2001).unwrap_err(),
            Refusal::BudgetExhausted {
                resets_at_ms: Some(NOON + 43_200_000)
            },
            "3,000 are reserved"
        );
        admission.finish(NOON, 1000);
        let ledger = client.budget().unwrap();
        assert_eq!(ledger.take_unflushed(), vec![(NOON - 43_200_000, 1000)]);
        let refusal = client.admit(NOON, "gpt-4o", 10).unwrap_err();
        // NOON starts a minute: the 1,000 tokens fade below the limit 1 ms
        // into the next one.
        assert_eq!(
            refusal,
            Refusal::RateLimited {
                limit: RateLimit::Tokens,
                retry_after_ms: 60_001
            }
        );
        assert!(client.admit(NOON + 60_000, "gpt-4o", 10).is_err());
        assert!(client.admit(NOON + 60_001, "gpt-4o", 10).is_ok());
    }

    #[test]
    fn a_refused_request_counts_against_nothing() {
        let client = ClientState::new(limited());
        // Refused by the budget: neither a request nor a reservation counts.
        for _ in 0..5 {
            assert!(matches!(
                client.admit(NOON, "gpt-4o", 6000),
                Err(Refusal::BudgetExhausted { .. })
            ));
        }
        let first = client.admit(NOON, "gpt-4o", 2500).unwrap();
        let second = client.admit(NOON, "gpt-4o", 2500).unwrap();
        assert!(matches!(
            client.admit(NOON, "gpt-4o", 1),
            Err(Refusal::RateLimited {
                limit: RateLimit::Requests,
                ..
            })
        ));
        // Dropped unfinished: the reservations are released, no tokens counted.
        drop((first, second));
        let next_minute = NOON + 120_000;
        let admission = client.admit(next_minute, "gpt-4o", 5000).unwrap();
        admission.finish(next_minute, 0);
        assert_eq!(client.budget().unwrap().take_unflushed(), vec![]);
    }

    #[test]
    fn keys_without_limits_admit_everything() {
        let client = ClientState::new(ClientPolicy::default());
        assert!(client.budget().is_none());
        for _ in 0..1000 {
            client
                .admit(NOON, "any", u64::MAX)
                .unwrap()
                .finish(NOON, u64::MAX);
        }
    }

    #[test]
    fn admissions_can_outlive_the_borrow_of_the_state() {
        fn is_send_static<T: Send + 'static>(_: &T) {}
        let client = Arc::new(ClientState::new(limited()));
        let admission = client.admit(NOON - 1, "gpt-4o", 10).unwrap();
        is_send_static(&admission);
        drop(client);
        admission.finish(NOON, 5);
    }

    #[test]
    fn shared_limits_fall_back_to_a_share_and_settle_budgets() {
        let sharing = Arc::new(Sharing::new());
        sharing.set_replicas(2);
        let client = ClientState::shared(limited(), 7, &sharing);
        let names: Vec<String> = sharing.allotments().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["7:rpm", "7:tpm", "7:budget-day"]);
        // Redis down, two replicas: one request a minute of the two, and
        // half the budget.
        let first = client.admit(NOON, "gpt-4o", 2000).unwrap();
        assert!(matches!(
            client.admit(NOON, "gpt-4o", 10),
            Err(Refusal::RateLimited {
                limit: RateLimit::Requests,
                ..
            })
        ));
        first.finish(NOON, 1500);
        assert!(matches!(
            client.admit(NOON + 60_000, "gpt-4o", 1001),
            Err(Refusal::RateLimited { .. } | Refusal::BudgetExhausted { .. })
        ));
        // The spend still reaches the database's ledger.
        assert_eq!(
            client.budget().unwrap().take_unflushed(),
            vec![(NOON - 43_200_000, 1500)]
        );
    }

    #[test]
    fn refusal_messages_are_for_the_client() {
        assert_eq!(Refusal::Disabled.to_string(), "this API key is disabled");
        assert_eq!(Refusal::Expired.to_string(), "this API key has expired");
        assert_eq!(
            Refusal::ModelNotAllowed {
                model: "gpt-4o".into()
            }
            .to_string(),
            "this API key may not use the model `gpt-4o`"
        );
        assert_eq!(
            Refusal::RateLimited {
                limit: RateLimit::Requests,
                retry_after_ms: 1001
            }
            .to_string(),
            "rate limit reached (requests per minute); try again in 2 s"
        );
        assert_eq!(
            Refusal::RateLimited {
                limit: RateLimit::Tokens,
                retry_after_ms: 1
            }
            .to_string(),
            "rate limit reached (tokens per minute); try again in 1 s"
        );
        assert_eq!(
            Refusal::BudgetExhausted {
                resets_at_ms: Some(NOON + 43_200_000)
            }
            .to_string(),
            "the token budget of this API key is exhausted; it resets at 2024-03-06T00:00:00Z"
        );
        assert_eq!(
            Refusal::BudgetExhausted { resets_at_ms: None }.to_string(),
            "the token budget of this API key is exhausted"
        );
        assert_eq!(RateLimit::Requests.as_str(), "rpm");
        assert_eq!(RateLimit::Tokens.as_str(), "tpm");
    }

    #[test]
    fn estimates_cover_the_prompt_and_the_completion() {
        assert_eq!(estimate_tokens(0, None), DEFAULT_MAX_TOKENS_ESTIMATE);
        assert_eq!(estimate_tokens(4, Some(10)), 11);
        assert_eq!(estimate_tokens(5, Some(10)), 12, "rounded up");
        assert_eq!(estimate_tokens(4000, None), 1000 + 4096);
        assert_eq!(estimate_tokens(usize::MAX, Some(u64::MAX)), u64::MAX);
    }
}
