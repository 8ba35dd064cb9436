//! The last chat request, kept so tests can check what the gateway sent.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

/// A chat request as received by the fake upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method (`POST`).
    pub method: String,
    /// Path and query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers by lower-case name; repeated headers are joined with `", "`.
    /// Includes `authorization` as sent.
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

/// What is stored per request: moved-in parts, converted only when read.
#[derive(Debug)]
struct Captured {
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
    pub(crate) fn record(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) {
        let captured = Some(Captured {
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
}

impl Captured {
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
            Method::POST,
            Uri::from_static("/"),
            HeaderMap::new(),
            Bytes::from_static(b"oops"),
        );
        assert_eq!(recorder.last().unwrap().body, "oops");
    }
}
