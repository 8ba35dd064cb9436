//! Lock-free request counters and their serialisable snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// A point-in-time copy of the fake upstream's counters.
///
/// Control endpoints (`/_fake/*`) are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// `POST /v1/chat/completions` requests received (valid or not).
    pub chat_requests: u64,
    /// `GET /v1/models` and `GET /v1/models/{id}` requests received.
    pub model_list_requests: u64,
    /// Responses sent, by HTTP status (streams count as their 200).
    pub responses_by_status: BTreeMap<u16, u64>,
    /// Streaming responses started (headers sent).
    pub streams_started: u64,
    /// Streams that reached `data: [DONE]`.
    pub streams_completed: u64,
    /// Streams aborted on purpose (`cut_after`, `cut-after-<n>`).
    pub streams_cut: u64,
    /// Streams that stopped sending on purpose (`stall_after`, `stall-after-<n>`).
    pub streams_stalled: u64,
    /// Streams that ended with an error event (`error-event`).
    pub stream_error_events: u64,
    /// Connections closed without a response on purpose.
    pub connections_reset: u64,
    /// Requests rejected with 401 because of `expect_key`.
    pub auth_failures: u64,
    /// Failures injected by `fail_rate` (statuses and resets).
    pub injected_failures: u64,
    /// Replies that called tools.
    pub tool_call_responses: u64,
}

/// One monotonically increasing counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Highest HTTP status + 1 (`http::StatusCode` is always below 1000).
const STATUS_SLOTS: usize = 1000;

/// The live counters shared by all connections.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) connections_accepted: Counter,
    pub(crate) chat_requests: Counter,
    pub(crate) model_list_requests: Counter,
    pub(crate) streams_started: Counter,
    pub(crate) streams_completed: Counter,
    pub(crate) streams_cut: Counter,
    pub(crate) streams_stalled: Counter,
    pub(crate) stream_error_events: Counter,
    pub(crate) connections_reset: Counter,
    pub(crate) auth_failures: Counter,
    pub(crate) injected_failures: Counter,
    pub(crate) tool_call_responses: Counter,
    by_status: Box<[Counter]>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            connections_accepted: Counter::default(),
            chat_requests: Counter::default(),
            model_list_requests: Counter::default(),
            streams_started: Counter::default(),
            streams_completed: Counter::default(),
            streams_cut: Counter::default(),
            streams_stalled: Counter::default(),
            stream_error_events: Counter::default(),
            connections_reset: Counter::default(),
            auth_failures: Counter::default(),
            injected_failures: Counter::default(),
            tool_call_responses: Counter::default(),
            by_status: (0..STATUS_SLOTS).map(|_| Counter::default()).collect(),
        }
    }
}

impl Stats {
    /// Counts one response with `status`.
    pub(crate) fn count_response(&self, status: StatusCode) {
        if let Some(counter) = self.by_status.get(usize::from(status.as_u16())) {
            counter.inc();
        }
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let responses_by_status = (0u16..)
            .zip(self.by_status.iter())
            .map(|(status, counter)| (status, counter.get()))
            .filter(|&(_, count)| count > 0)
            .collect();
        StatsSnapshot {
            connections_accepted: self.connections_accepted.get(),
            chat_requests: self.chat_requests.get(),
            model_list_requests: self.model_list_requests.get(),
            responses_by_status,
            streams_started: self.streams_started.get(),
            streams_completed: self.streams_completed.get(),
            streams_cut: self.streams_cut.get(),
            streams_stalled: self.streams_stalled.get(),
            stream_error_events: self.stream_error_events.get(),
            connections_reset: self.connections_reset.get(),
            auth_failures: self.auth_failures.get(),
            injected_failures: self.injected_failures.get(),
            tool_call_responses: self.tool_call_responses.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lists_only_seen_statuses() {
        let stats = Stats::default();
        stats.count_response(StatusCode::OK);
        stats.count_response(StatusCode::OK);
        stats.count_response(StatusCode::TOO_MANY_REQUESTS);
        stats.chat_requests.inc();
        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot.responses_by_status,
            BTreeMap::from([(200, 2), (429, 1)])
        );
        assert_eq!(snapshot.chat_requests, 1);
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["responses_by_status"]["200"], 2);
    }
}
