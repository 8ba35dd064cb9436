//! Per-request scenarios: magic model names and configured faults, resolved
//! into what one generation request (any dialect) should get.

use std::time::Duration;

use http::StatusCode;

use crate::config::{InjectedFailure, LiveConfig};

/// A scenario selected by a magic model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// Not a magic name: configuration decides.
    Normal,
    /// `status-<code>` (400..=599): fail with that status.
    Status(StatusCode),
    /// `reset`: close the connection without a response.
    Reset,
    /// `cut-after-<n>`: abort the stream after `n` events.
    CutAfter(usize),
    /// `stall-after-<n>`: stop the stream after `n` events, keep it open.
    StallAfter(usize),
    /// `garble-after-<n>`: after `n` events, a line that is not JSON, then
    /// the end of the body.
    GarbleAfter(usize),
    /// `error-event`: the first event, then an in-stream error, then the end.
    ErrorEvent,
    /// `slow-<ms>`: this latency before the headers.
    Slow(Duration),
}

impl Scenario {
    /// The scenario a model name asks for.
    pub(crate) fn from_model(model: &str) -> Self {
        let number = |prefix: &str| model.strip_prefix(prefix)?.parse::<u64>().ok();
        let count = |prefix: &str| model.strip_prefix(prefix)?.parse::<usize>().ok();
        match model {
            "reset" => return Self::Reset,
            "error-event" => return Self::ErrorEvent,
            _ => {}
        }
        if let Some(status) = number("status-")
            .and_then(|code| u16::try_from(code).ok())
            .filter(|code| (400..=599).contains(code))
            .and_then(|code| StatusCode::from_u16(code).ok())
        {
            Self::Status(status)
        } else if let Some(n) = count("cut-after-") {
            Self::CutAfter(n)
        } else if let Some(n) = count("stall-after-") {
            Self::StallAfter(n)
        } else if let Some(n) = count("garble-after-") {
            Self::GarbleAfter(n)
        } else if let Some(ms) = number("slow-") {
            Self::Slow(Duration::from_millis(ms))
        } else {
            Self::Normal
        }
    }
}

/// A deliberate interruption of a stream after some events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// Abort the connection after this many events.
    Cut(usize),
    /// Send nothing after this many events, keep the connection open.
    Stall(usize),
    /// Send a malformed line after this many events, then end the body.
    Garble(usize),
}

impl StreamFault {
    /// How many events go out before the fault.
    pub(crate) fn after(self) -> usize {
        match self {
            Self::Cut(n) | Self::Stall(n) | Self::Garble(n) => n,
        }
    }
}

/// What a valid generation request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// An error response with this status.
    Fail(StatusCode),
    /// No response; the connection is closed.
    Reset,
    /// A normal reply; streams may be interrupted.
    Reply {
        fault: Option<StreamFault>,
        error_event: bool,
    },
}

/// The resolved plan for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Delay before the response headers.
    pub(crate) latency: Duration,
    pub(crate) action: Action,
    /// Whether the action is a failure injected by `fail_rate`.
    pub(crate) injected: bool,
}

impl Plan {
    /// Resolves `scenario` against the live configuration (configured faults
    /// only apply to [`Scenario::Normal`]).
    pub(crate) fn resolve(scenario: Scenario, live: &LiveConfig) -> Self {
        let reply = |fault| Action::Reply {
            fault,
            error_event: false,
        };
        let mut injected = false;
        let action = match scenario {
            Scenario::Normal => match live.roll_failure() {
                Some(failure) => {
                    injected = true;
                    match failure {
                        InjectedFailure::Status(status) => Action::Fail(status),
                        InjectedFailure::Reset => Action::Reset,
                    }
                }
                None => reply(configured_fault(live)),
            },
            Scenario::Status(status) => Action::Fail(status),
            Scenario::Reset => Action::Reset,
            Scenario::CutAfter(n) => reply(Some(StreamFault::Cut(n))),
            Scenario::StallAfter(n) => reply(Some(StreamFault::Stall(n))),
            Scenario::GarbleAfter(n) => reply(Some(StreamFault::Garble(n))),
            Scenario::ErrorEvent => Action::Reply {
                fault: None,
                error_event: true,
            },
            Scenario::Slow(_) => reply(None),
        };
        let latency = match scenario {
            Scenario::Slow(latency) => latency,
            _ => live.latency,
        };
        Self {
            latency,
            action,
            injected,
        }
    }
}

/// The configured stream fault that strikes first (a cut wins a tie).
fn configured_fault(live: &LiveConfig) -> Option<StreamFault> {
    let cut = live.config.cut_after.map(StreamFault::Cut);
    let stall = live.config.stall_after.map(StreamFault::Stall);
    match (cut, stall) {
        (Some(cut), Some(stall)) if stall.after() < cut.after() => Some(stall),
        (Some(cut), _) => Some(cut),
        (None, stall) => stall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FakeConfig;

    #[test]
    fn magic_names() {
        assert_eq!(Scenario::from_model("gpt-4o"), Scenario::Normal);
        assert_eq!(
            Scenario::from_model("status-429"),
            Scenario::Status(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(Scenario::from_model("status-200"), Scenario::Normal);
        assert_eq!(Scenario::from_model("status-x"), Scenario::Normal);
        assert_eq!(Scenario::from_model("reset"), Scenario::Reset);
        assert_eq!(Scenario::from_model("cut-after-3"), Scenario::CutAfter(3));
        assert_eq!(
            Scenario::from_model("stall-after-0"),
            Scenario::StallAfter(0)
        );
        assert_eq!(Scenario::from_model("error-event"), Scenario::ErrorEvent);
        assert_eq!(
            Scenario::from_model("slow-250"),
            Scenario::Slow(Duration::from_millis(250))
        );
    }

    #[test]
    fn configured_faults_apply_to_normal_requests_only() {
        let live = LiveConfig::new(FakeConfig {
            latency_ms: 5,
            fail_rate: 1.0,
            fail_statuses: vec![503],
            ..FakeConfig::default()
        });
        let normal = Plan::resolve(Scenario::Normal, &live);
        assert_eq!(normal.action, Action::Fail(StatusCode::SERVICE_UNAVAILABLE));
        assert!(normal.injected);
        assert_eq!(normal.latency, Duration::from_millis(5));

        let slow = Plan::resolve(Scenario::Slow(Duration::from_millis(9)), &live);
        assert_eq!(
            slow.action,
            Action::Reply {
                fault: None,
                error_event: false
            }
        );
        assert_eq!(slow.latency, Duration::from_millis(9));
    }

    #[test]
    fn earliest_stream_fault_wins() {
        let live = LiveConfig::new(FakeConfig {
            cut_after: Some(4),
            stall_after: Some(2),
            ..FakeConfig::default()
        });
        assert_eq!(configured_fault(&live), Some(StreamFault::Stall(2)));
    }
}
