//! What a client key may do: its models, rate limits, token budget, expiry.

use serde::{Deserialize, Serialize};

use super::calendar;

/// The limits and permissions of one client key, as stored and configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClientPolicy {
    /// The models the key may use; `None` allows every model. An entry is an
    /// exact model name, or a prefix followed by `*` (`gpt-4o*`); `*` alone
    /// matches every name.
    pub allowed_models: Option<Vec<String>>,
    /// Requests per minute; `None` is unlimited.
    pub rpm: Option<u32>,
    /// Tokens (prompt and completion) per minute; `None` is unlimited.
    pub tpm: Option<u32>,
    /// Tokens per budget period; `None` is unlimited.
    pub budget: Option<Budget>,
    /// When the key stops working (Unix milliseconds); `None` never.
    pub expires_at_ms: Option<i64>,
    /// A disabled key is refused without being deleted.
    pub enabled: bool,
}

impl Default for ClientPolicy {
    /// An enabled key without limits.
    fn default() -> Self {
        ClientPolicy {
            allowed_models: None,
            rpm: None,
            tpm: None,
            budget: None,
            expires_at_ms: None,
            enabled: true,
        }
    }
}

impl ClientPolicy {
    /// Whether the key may use the model `name` (the name the client asked
    /// for, before aliases are resolved).
    pub fn allows_model(&self, name: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|patterns| {
            patterns
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => pattern == name,
                })
        })
    }

    /// Whether the key has expired at `now_ms` (expiry is exclusive: the key
    /// stops working at `expires_at_ms`).
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A token budget: at most `tokens` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Tokens (prompt and completion) allowed per period.
    pub tokens: u64,
    /// How often the budget resets.
    pub period: BudgetPeriod,
}

/// The period after which a budget starts afresh. Periods are UTC calendar
/// periods, so every gateway instance agrees on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// From 00:00 UTC.
    Day,
    /// An ISO week, from Monday 00:00 UTC.
    Week,
    /// From 00:00 UTC on the first of the month.
    Month,
    /// Never resets.
    Total,
}

impl BudgetPeriod {
    /// The start (Unix milliseconds) of the period containing `now_ms`: the
    /// key under which spend is counted and stored. `Total` has one period,
    /// keyed 0. Instants before 1970 fall in their own calendar periods.
    pub fn period_start_ms(self, now_ms: i64) -> i64 {
        let day = calendar::day_of(now_ms);
        match self {
            BudgetPeriod::Day => calendar::day_start_ms(day),
            BudgetPeriod::Week => calendar::day_start_ms(day - calendar::days_since_monday(day)),
            BudgetPeriod::Month => {
                let (_, _, day_of_month) = calendar::civil_from_days(day);
                calendar::day_start_ms(day - i64::from(day_of_month - 1))
            }
            BudgetPeriod::Total => 0,
        }
    }

    /// When the period containing `now_ms` ends, i.e. when the budget resets;
    /// `None` for `Total`.
    pub fn next_start_ms(self, now_ms: i64) -> Option<i64> {
        let day = calendar::day_of(now_ms);
        let next_day = match self {
            BudgetPeriod::Day => day + 1,
            BudgetPeriod::Week => day - calendar::days_since_monday(day) + 7,
            BudgetPeriod::Month => {
                let (year, month, _) = calendar::civil_from_days(day);
                match month {
                    12 => calendar::days_from_civil(year + 1, 1, 1),
                    _ => calendar::days_from_civil(year, month + 1, 1),
                }
            }
            BudgetPeriod::Total => return None,
        };
        Some(calendar::day_start_ms(next_day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix milliseconds of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, hh: i64, mm: i64) -> i64 {
        calendar::days_from_civil(year, month, day) * 86_400_000 + (hh * 60 + mm) * 60_000
    }

    #[test]
    fn days_start_at_midnight() {
        let p = BudgetPeriod::Day;
        assert_eq!(
            p.period_start_ms(at(2024, 3, 5, 13, 7)),
            at(2024, 3, 5, 0, 0)
        );
        assert_eq!(
            p.period_start_ms(at(2024, 3, 5, 0, 0)),
            at(2024, 3, 5, 0, 0)
        );
        assert_eq!(
            p.period_start_ms(at(2024, 3, 5, 0, 0) - 1),
            at(2024, 3, 4, 0, 0)
        );
        assert_eq!(
            p.next_start_ms(at(2024, 3, 5, 23, 59)),
            Some(at(2024, 3, 6, 0, 0))
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        let p = BudgetPeriod::Week;
        // 2024-03-04 was a Monday, 2024-03-10 a Sunday.
        let monday = at(2024, 3, 4, 0, 0);
        assert_eq!(p.period_start_ms(monday), monday);
        assert_eq!(p.period_start_ms(at(2024, 3, 7, 12, 0)), monday);
        assert_eq!(p.period_start_ms(at(2024, 3, 10, 23, 59)), monday);
        assert_eq!(p.period_start_ms(monday - 1), at(2024, 2, 26, 0, 0));
        assert_eq!(
            p.next_start_ms(at(2024, 3, 10, 23, 59)),
            Some(at(2024, 3, 11, 0, 0))
        );
        // A week across a year end: 2024-12-30 was a Monday.
        assert_eq!(
            p.period_start_ms(at(2025, 1, 2, 8, 0)),
            at(2024, 12, 30, 0, 0)
        );
    }

    #[test]
    fn months_start_on_the_first_whatever_their_length() {
        let p = BudgetPeriod::Month;
        assert_eq!(
            p.period_start_ms(at(2024, 1, 31, 23, 59)),
            at(2024, 1, 1, 0, 0)
        );
        assert_eq!(
            p.next_start_ms(at(2024, 1, 31, 23, 59)),
            Some(at(2024, 2, 1, 0, 0))
        );
        // Leap year: February has 29 days.
        assert_eq!(
            p.period_start_ms(at(2024, 2, 29, 12, 0)),
            at(2024, 2, 1, 0, 0)
        );
        assert_eq!(
            p.next_start_ms(at(2024, 2, 29, 12, 0)),
            Some(at(2024, 3, 1, 0, 0))
        );
        assert_eq!(
            p.next_start_ms(at(2023, 2, 28, 12, 0)),
            Some(at(2023, 3, 1, 0, 0))
        );
        assert_eq!(
            p.next_start_ms(at(2024, 4, 30, 0, 0)),
            Some(at(2024, 5, 1, 0, 0))
        );
        assert_eq!(
            p.next_start_ms(at(2024, 12, 31, 23, 59)),
            Some(at(2025, 1, 1, 0, 0))
        );
        assert_eq!(
            p.period_start_ms(at(2025, 1, 1, 0, 0)),
            at(2025, 1, 1, 0, 0)
        );
    }

    #[test]
    fn total_never_resets() {
        let p = BudgetPeriod::Total;
        assert_eq!(p.period_start_ms(at(2024, 3, 5, 13, 7)), 0);
        assert_eq!(p.period_start_ms(at(2090, 1, 1, 0, 0)), 0);
        assert_eq!(p.next_start_ms(at(2024, 3, 5, 13, 7)), None);
    }

    #[test]
    fn instants_before_1970_are_guarded() {
        // -1 ms is 1969-12-31 23:59:59.999, a Wednesday.
        assert_eq!(BudgetPeriod::Day.period_start_ms(-1), -86_400_000);
        assert_eq!(
            BudgetPeriod::Week.period_start_ms(-1),
            at(1969, 12, 29, 0, 0)
        );
        assert_eq!(
            BudgetPeriod::Month.period_start_ms(-1),
            at(1969, 12, 1, 0, 0)
        );
        assert_eq!(BudgetPeriod::Month.next_start_ms(-1), Some(0));
        for p in [BudgetPeriod::Day, BudgetPeriod::Week, BudgetPeriod::Month] {
            for now in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
                let start = p.period_start_ms(now);
                assert!(start <= now, "{p:?} at {now}");
                assert!(p.next_start_ms(now).unwrap() >= start, "{p:?} at {now}");
            }
        }
    }

    #[test]
    fn allowed_models_match_exact_names_and_prefixes() {
        let all = ClientPolicy::default();
        assert!(all.allows_model("anything"));
        let some = ClientPolicy {
            allowed_models: Some(vec!["gpt-4o*".into(), "claude-sonnet-4".into()]),
            ..ClientPolicy::default()
        };
        assert!(some.allows_model("gpt-4o"));
        assert!(some.allows_model("gpt-4o-mini"));
        assert!(some.allows_model("claude-sonnet-4"));
        assert!(!some.allows_model("claude-sonnet-4-5"));
        assert!(!some.allows_model("gpt-4"));
        let none = ClientPolicy {
            allowed_models: Some(vec![]),
            ..ClientPolicy::default()
        };
        assert!(!none.allows_model("gpt-4o"));
        let star = ClientPolicy {
            allowed_models: Some(vec!["*".into()]),
            ..ClientPolicy::default()
        };
        assert!(star.allows_model("gpt-4o"));
    }

    #[test]
    fn expiry_is_exclusive() {
        let p = ClientPolicy {
            expires_at_ms: Some(1000),
            ..ClientPolicy::default()
        };
        assert!(!p.is_expired(999));
        assert!(p.is_expired(1000));
        assert!(!ClientPolicy::default().is_expired(i64::MAX));
    }

    #[test]
    fn policies_round_trip_through_json() {
        let json = r#"{
            "allowed_models": ["gpt-4o*"],
            "rpm": 60,
            "tpm": 100000,
            "budget": {"tokens": 1000000, "period": "month"},
            "expires_at_ms": 1800000000000,
            "enabled": false
        }"#;
        let p: ClientPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(
            p.budget,
            Some(Budget {
                tokens: 1_000_000,
                period: BudgetPeriod::Month
            })
        );
        assert!(!p.enabled);
        let back: ClientPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        for (period, name) in [
            (BudgetPeriod::Day, "\"day\""),
            (BudgetPeriod::Week, "\"week\""),
            (BudgetPeriod::Month, "\"month\""),
            (BudgetPeriod::Total, "\"total\""),
        ] {
            assert_eq!(serde_json::to_string(&period).unwrap(), name);
        }
    }

    #[test]
    fn missing_fields_default_and_unknown_fields_are_refused() {
        let p: ClientPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, ClientPolicy::default());
        assert!(p.enabled);
        assert!(serde_json::from_str::<ClientPolicy>(r#"{"rpn": 5}"#).is_err());
        assert!(
            serde_json::from_str::<Budget>(r#"{"tokens": 5, "period": "day", "x": 1}"#).is_err()
        );
        assert!(serde_json::from_str::<Budget>(r#"{"tokens": 5, "period": "Day"}"#).is_err());
        assert!(serde_json::from_str::<Budget>(r#"{"tokens": 5}"#).is_err());
    }
}
