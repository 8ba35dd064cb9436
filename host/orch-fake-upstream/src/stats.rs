//! Lock-free request counters and their serialisable snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::record::RequestSummary;

/// A point-in-time copy of the fake upstream's counters.
///
/// Control endpoints (`/_fake/*`) are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsSnapshot {
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// `POST /v1/chat/completions` requests received (valid or not).
    pub chat_requests: u64,
    /// Anthropic `POST /v1/messages` requests received (valid or not).
    pub anthropic_requests: u64,
    /// Anthropic `POST /v1/messages/count_tokens` requests received.
    pub anthropic_count_tokens_requests: u64,
    /// Gemini `:generateContent` and `:streamGenerateContent` requests received.
    pub gemini_requests: u64,
    /// Gemini `:countTokens` requests received.
    pub gemini_count_tokens_requests: u64,
    /// Gemini requests (any endpoint) that carried the API key in the `key`
    /// query parameter instead of the `x-goog-api-key` header.
    pub gemini_key_in_query: u64,
    /// Model listings and lookups received, all dialects (`GET /v1/models`,
    /// `GET /v1/models/{id}`, `GET /v1beta/models`, `GET /v1beta/models/{model}`).
    pub model_list_requests: u64,
    /// Responses sent, by HTTP status (streams count as their 200).
    pub responses_by_status: BTreeMap<u16, u64>,
    /// Streaming responses started (headers sent).
    pub streams_started: u64,
    /// Streams that reached `data: [DONE]`.
    pub streams_completed: u64,
    /// Streams aborted on purpose (`cut_after`, `cut-after-<n>`).
    pub streams_cut: u64,
    /// Streams whose connection the client closed before their end
    /// (stalled ones included).
    pub streams_abandoned: u64,
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
    /// Replies that called tools (all dialects).
    pub tool_call_responses: u64,
    /// Replies that included thinking (Anthropic `thinking` blocks, Gemini
    /// thought parts or thought signatures).
    pub thinking_responses: u64,
    /// Requests rejected because a thinking signature was missing or wrong
    /// (Anthropic `thinking` blocks, Gemini `thoughtSignature`s).
    pub signature_rejections: u64,
    /// Where the last recorded generation request went and which headers
    /// it carried (names only) — see [`crate::FakeUpstream::last_request`]
    /// for the full request.
    pub last_request: Option<RequestSummary>,
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
    pub(crate) anthropic_requests: Counter,
    pub(crate) anthropic_count_tokens_requests: Counter,
    pub(crate) gemini_requests: Counter,
    pub(crate) gemini_count_tokens_requests: Counter,
    pub(crate) gemini_key_in_query: Counter,
    pub(crate) model_list_requests: Counter,
    pub(crate) streams_started: Counter,
    pub(crate) streams_completed: Counter,
    pub(crate) streams_abandoned: Counter,
    pub(crate) streams_cut: Counter,
    pub(crate) streams_stalled: Counter,
    pub(crate) stream_error_events: Counter,
    pub(crate) connections_reset: Counter,
    pub(crate) auth_failures: Counter,
    pub(crate) injected_failures: Counter,
    pub(crate) tool_call_responses: Counter,
    pub(crate) thinking_responses: Counter,
    pub(crate) signature_rejections: Counter,
    by_status: Box<[Counter]>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            connections_accepted: Counter::default(),
            chat_requests: Counter::default(),
            anthropic_requests: Counter::default(),
            anthropic_count_tokens_requests: Counter::default(),
            gemini_requests: Counter::default(),
            gemini_count_tokens_requests: Counter::default(),
            gemini_key_in_query: Counter::default(),
            model_list_requests: Counter::default(),
            streams_started: Counter::default(),
            streams_completed: Counter::default(),
            streams_abandoned: Counter::default(),
            streams_cut: Counter::default(),
            streams_stalled: Counter::default(),
            stream_error_events: Counter::default(),
            connections_reset: Counter::default(),
            auth_failures: Counter::default(),
            injected_failures: Counter::default(),
            tool_call_responses: Counter::default(),
            thinking_responses: Counter::default(),
            signature_rejections: Counter::default(),
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

    /// The counters (without [`StatsSnapshot::last_request`], which the
    /// recorder knows).
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let responses_by_status = (0u16..)
            .zip(self.by_status.iter())
            .map(|(status, counter)| (status, counter.get()))
            .filter(|&(_, count)| count > 0)
            .collect();
        StatsSnapshot {
            connections_accepted: self.connections_accepted.get(),
            chat_requests: self.chat_requests.get(),
            anthropic_requests: self.anthropic_requests.get(),
            anthropic_count_tokens_requests: self.anthropic_count_tokens_requests.get(),
            gemini_requests: self.gemini_requests.get(),
            gemini_count_tokens_requests: self.gemini_count_tokens_requests.get(),
            gemini_key_in_query: self.gemini_key_in_query.get(),
            model_list_requests: self.model_list_requests.get(),
            responses_by_status,
            streams_started: self.streams_started.get(),
            streams_completed: self.streams_completed.get(),
            streams_abandoned: self.streams_abandoned.get(),
            streams_cut: self.streams_cut.get(),
            streams_stalled: self.streams_stalled.get(),
            stream_error_events: self.stream_error_events.get(),
            connections_reset: self.connections_reset.get(),
            auth_failures: self.auth_failures.get(),
            injected_failures: self.injected_failures.get(),
            tool_call_responses: self.tool_call_responses.get(),
            thinking_responses: self.thinking_responses.get(),
            signature_rejections: self.signature_rejections.get(),
            last_request: None,
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
