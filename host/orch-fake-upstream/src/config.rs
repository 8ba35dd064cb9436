//! Behaviour knobs of the fake upstream, changeable at run time.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::models;

/// How the fake upstream behaves for *normal* requests (magic model names
/// override it per request, see the crate docs).
///
/// Every field has a default, so a partial JSON object (as accepted by
/// `POST /_fake/config`) is a valid configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeConfig {
    /// Delay before the response headers of every generation and
    /// count-tokens response of any dialect (JSON, stream or error).
    pub latency_ms: u64,
    /// Streams: delay between the headers and the first chunk.
    pub ttft_ms: u64,
    /// Content chunks per stream; non-stream replies carry the same text.
    /// Values below 1 are treated as 1.
    pub chunks: usize,
    /// Streams: delay before every chunk after the first (role) chunk, up to the
    /// last content or tool-call chunk.
    pub chunk_delay_ms: u64,
    /// Fraction (`0.0..=1.0`) of normal generation and count-tokens requests
    /// (any dialect) that fail.
    pub fail_rate: f64,
    /// Statuses picked at random for failures (rendered in the request's
    /// dialect); `0` resets the connection without any response. Invalid
    /// HTTP statuses fail with 500.
    pub fail_statuses: Vec<u16>,
    /// Streams: abort the connection after this many events (the first one
    /// counts: OpenAI's role chunk, Anthropic's `message_start`, Gemini's
    /// first response); the client sees a truncated body.
    pub cut_after: Option<usize>,
    /// Streams: after this many events send nothing more but keep the
    /// connection open until the client goes away.
    pub stall_after: Option<usize>,
    /// When set, only this API key is accepted: OpenAI requests need
    /// `Authorization: Bearer <expect_key>` (401 otherwise), Anthropic
    /// requests `x-api-key: <expect_key>` (401 `authentication_error`),
    /// Gemini requests `x-goog-api-key: <expect_key>` or `?key=<expect_key>`
    /// (400 `API_KEY_INVALID`). Anthropic and Gemini requests always need
    /// *some* key in their header, like the real APIs.
    pub expect_key: Option<String>,
    /// OpenAI requests with one of these keys (`Authorization: Bearer
    /// <key>`) get 429 with `retry-after: 1`, as a rate-limited key would.
    pub rate_limited_keys: Vec<String>,
    /// Served models (listed by every dialect's model listing); when
    /// non-empty, other (non-magic) models get 404.
    pub models: Vec<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            ttft_ms: 0,
            chunks: 8,
            chunk_delay_ms: 0,
            fail_rate: 0.0,
            fail_statuses: vec![500],
            cut_after: None,
            stall_after: None,
            expect_key: None,
            rate_limited_keys: Vec::new(),
            models: Vec::new(),
        }
    }
}

/// What a fault injected by configuration does instead of a normal reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InjectedFailure {
    /// Answer with this error status.
    Status(StatusCode),
    /// Close the connection without a response.
    Reset,
}

/// A [`FakeConfig`] plus everything derived from it once, so requests only
/// read precomputed values.
#[derive(Debug)]
pub(crate) struct LiveConfig {
    pub(crate) config: FakeConfig,
    pub(crate) latency: Duration,
    pub(crate) ttft: Duration,
    pub(crate) chunk_delay: Duration,
    pub(crate) chunks: usize,
    fail_rate: f64,
    failures: Vec<InjectedFailure>,
    expected_authorization: Option<String>,
    /// The complete `GET /v1/models` body.
    pub(crate) models_body: Bytes,
}

impl LiveConfig {
    pub(crate) fn new(config: FakeConfig) -> Self {
        let fail_rate = if config.fail_rate.is_nan() {
            0.0
        } else {
            config.fail_rate.clamp(0.0, 1.0)
        };
        let mut failures: Vec<InjectedFailure> = config
            .fail_statuses
            .iter()
            .map(|&code| match code {
                0 => InjectedFailure::Reset,
                code => InjectedFailure::Status(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                ),
            })
            .collect();
        if failures.is_empty() {
            failures.push(InjectedFailure::Status(StatusCode::INTERNAL_SERVER_ERROR));
        }
        Self {
            latency: Duration::from_millis(config.latency_ms),
            ttft: Duration::from_millis(config.ttft_ms),
            chunk_delay: Duration::from_millis(config.chunk_delay_ms),
            chunks: config.chunks.max(1),
            fail_rate,
            failures,
            expected_authorization: config
                .expect_key
                .as_ref()
                .map(|key| format!("Bearer {key}")),
            models_body: models::list_body(&config.models),
            config,
        }
    }

    /// Whether a request carrying this `Authorization` header value may pass.
    pub(crate) fn authorizes(&self, authorization: Option<&[u8]>) -> bool {
        match &self.expected_authorization {
            None => true,
            Some(expected) => authorization == Some(expected.as_bytes()),
        }
    }

    /// Whether this `Authorization` header value names a rate-limited key.
    pub(crate) fn rate_limits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(key) = authorization.and_then(|a| a.strip_prefix(b"Bearer ")) else {
            return false;
        };
        self.config
            .rate_limited_keys
            .iter()
            .any(|k| k.as_bytes() == key)
    }

    /// Whether an API key sent in a dialect's own header (`x-api-key`,
    /// `x-goog-api-key`, Gemini's `key` query parameter) is accepted: any
    /// key without [`FakeConfig::expect_key`], that one otherwise.
    pub(crate) fn accepts_key(&self, key: &[u8]) -> bool {
        self.config
            .expect_key
            .as_ref()
            .is_none_or(|expected| expected.as_bytes() == key)
    }

    /// Whether `model` is served (any model is when the list is empty).
    pub(crate) fn serves(&self, model: &str) -> bool {
        self.config.models.is_empty() || self.config.models.iter().any(|m| m == model)
    }

    /// Rolls the dice for a configured failure.
    pub(crate) fn roll_failure(&self) -> Option<InjectedFailure> {
        if self.fail_rate <= 0.0 || rand::random::<f64>() >= self.fail_rate {
            return None;
        }
        let pick = rand::random_range(0..self.failures.len());
        self.failures.get(pick).copied()
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self::new(FakeConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_keeps_defaults() {
        let cfg: FakeConfig = serde_json::from_str(r#"{"chunks":3}"#).unwrap();
        assert_eq!(cfg.chunks, 3);
        assert_eq!(cfg.fail_statuses, vec![500]);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<FakeConfig>(r#"{"chunk":3}"#).is_err());
    }

    #[test]
    fn failures_are_normalised() {
        let live = LiveConfig::new(FakeConfig {
            fail_rate: 7.0,
            fail_statuses: vec![0, 42, 503],
            ..FakeConfig::default()
        });
        assert_eq!(
            live.failures,
            vec![
                InjectedFailure::Reset,
                InjectedFailure::Status(StatusCode::INTERNAL_SERVER_ERROR),
                InjectedFailure::Status(StatusCode::SERVICE_UNAVAILABLE),
            ]
        );
        assert!(live.roll_failure().is_some());
        assert!(LiveConfig::default().roll_failure().is_none());
    }

    #[test]
    fn authorization_is_exact() {
        let live = LiveConfig::new(FakeConfig {
            expect_key: Some("sk-1".into()),
            ..FakeConfig::default()
        });
        assert!(live.authorizes(Some(b"Bearer sk-1")));
        assert!(!live.authorizes(Some(b"Bearer sk-2")));
        assert!(!live.authorizes(None));
        assert!(live.accepts_key(b"sk-1"));
        assert!(!live.accepts_key(b"sk-2"));
        assert!(LiveConfig::default().accepts_key(b"anything"));
    }
}
