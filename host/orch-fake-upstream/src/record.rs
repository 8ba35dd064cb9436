//! The last generation request (any dialect), kept so tests can check what
//! the gateway sent.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

/// The API dialect of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Dialect {
    /// `openai`, `anthropic` or `gemini`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }
}

/// A generation request (`POST /v1/chat/completions`, `/v1/messages`,
/// `/v1/messages/count_tokens`, `/v1beta/models/{model}:generateContent`,
/// `:streamGenerateContent`, `:countTokens`) as received by the fake upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method (`POST`).
    pub method: String,
    /// Path and query as sent, e.g. `/v1/chat/completions` (a Gemini `key`
    /// query parameter is kept with its value).
    pub path: String,
    /// Headers by lower-case name; repeated headers are joined with `", "`.
    /// Includes the credentials (`authorization`, `x-api-key`,
    /// `x-goog-api-key`) as sent.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON; a body that is not JSON is kept as a JSON
    /// string of its (lossy UTF-8) text.
    pub body: serde_json::Value,
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Where the last request went and how it authenticated, without any
/// credential value (part of [`crate::StatsSnapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// `openai`, `anthropic` or `gemini`.
    pub dialect: String,
    /// HTTP method.
    pub method: String,
    /// Path and query; the value of a `key` query parameter is replaced by
    /// `REDACTED`.
    pub path: String,
    /// Names of the headers sent, lower-case, sorted, without duplicates.
    pub header_names: Vec<String>,
    /// Whether the query string carried a `key` parameter (Gemini's
    /// discouraged way of passing the API key).
    pub key_in_query: bool,
}

/// What is stored per request: moved-in parts, converted only when read.
#[derive(Debug)]
struct Captured {
    dialect: Dialect,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Holds the last captured request.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    last: Mutex<Option<Captured>>,
}

impl Recorder {
    /// Replaces the stored request. Costs a move and a short lock: the
    /// conversion to [`RecordedRequest`] happens in [`Recorder::last`].
    pub(crate) fn record(
        &self,
        dialect: Dialect,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) {
        let captured = Some(Captured {
            dialect,
            method,
            uri,
            headers,
            body,
        });
        let previous = std::mem::replace(
            &mut *self.last.lock().unwrap_or_else(PoisonError::into_inner),
            captured,
        );
        // The previous request is freed outside the lock.
        drop(previous);
    }

    pub(crate) fn last(&self) -> Option<RecordedRequest> {
        let guard = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(Captured::to_recorded)
    }

    /// A credential-free summary of the last request.
    pub(crate) fn summary(&self) -> Option<RequestSummary> {
        let guard = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(Captured::to_summary)
    }
}

/// Whether a query string has a `key` parameter.
pub(crate) fn query_has_key(query: Option<&str>) -> bool {
    query_param(query, "key").is_some()
}

/// The raw (not percent-decoded) value of query parameter `name`.
pub(crate) fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

impl Captured {
    fn to_summary(&self) -> RequestSummary {
        let mut header_names: Vec<String> = self
            .headers
            .keys()
            .map(|name| name.as_str().to_owned())
            .collect();
        header_names.sort();
        header_names.dedup();
        let query = self.uri.query();
        let mut path = self.uri.path().to_owned();
        if let Some(query) = query {
            path.push('?');
            let redacted: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("key", _)) => "key=REDACTED".to_owned(),
                    _ => pair.to_owned(),
                })
                .collect();
            path.push_str(&redacted.join("&"));
        }
        RequestSummary {
            dialect: self.dialect.as_str().to_owned(),
            method: self.method.to_string(),
            path,
            header_names,
            key_in_query: query_has_key(query),
        }
    }

    fn to_recorded(&self) -> RecordedRequest {
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let body = serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.body).into_owned())
        });
        RecordedRequest {
            method: self.method.to_string(),
            path: self
                .uri
                .path_and_query()
                .map_or_else(|| self.uri.path().to_owned(), ToString::to_string),
            headers,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn records_headers_and_body() {
        let recorder = Recorder::default();
        assert!(recorder.last().is_none());
        let mut headers = HeaderMap::new();
        headers.append("X-Tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        recorder.record(
            Dialect::OpenAi,
            Method::POST,
            Uri::from_static("/v1/chat/completions?x=1"),
            headers,
            Bytes::from_static(br#"{"model":"m"}"#),
        );
        let last = recorder.last().unwrap();
        assert_eq!(last.header("X-TAG"), Some("a, b"));
        assert_eq!(last.body["model"], "m");
        assert_eq!(last.path, "/v1/chat/completions?x=1");

        recorder.record(
            Dialect::OpenAi,
            Method::POST,
            Uri::from_static("/"),
            HeaderMap::new(),
            Bytes::from_static(b"oops"),
        );
        assert_eq!(recorder.last().unwrap().body, "oops");
    }

    #[test]
    fn summary_hides_credentials() {
        let recorder = Recorder::default();
        let mut headers = HeaderMap::new();
        headers.append("x-goog-api-key", HeaderValue::from_static("secret"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        recorder.record(
            Dialect::Gemini,
            Method::POST,
            Uri::from_static("/v1beta/models/m:streamGenerateContent?alt=sse&key=secret"),
            headers,
            Bytes::new(),
        );
        let summary = recorder.summary().unwrap();
        assert_eq!(summary.dialect, "gemini");
        assert_eq!(summary.header_names, ["accept", "x-goog-api-key"]);
        assert_eq!(
            summary.path,
            "/v1beta/models/m:streamGenerateContent?alt=sse&key=REDACTED"
        );
        assert!(summary.key_in_query);
        assert!(!serde_json::to_string(&summary).unwrap().contains("secret"));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("alt=sse&key=k"), "alt"), Some("sse"));
        assert_eq!(query_param(Some("keyx=1"), "key"), None);
        assert_eq!(query_param(Some("key"), "key"), Some(""));
        assert!(!query_has_key(None));
    }
}
