//! Golden conformance cases for plugins, and the helpers that replay them.
//!
//! The cases live in this crate's folder as JSON files, one per case:
//! `<dialect>/adapter/*.json` for provider adapters and
//! `<dialect>/dialect/*.json` for ingress dialects (the format is in
//! `README.md`). Plugin crates run them natively in their tests (add this
//! crate as a dev-dependency); `llm-orchestrator plugin check` runs them
//! against a built component.
//!
//! [`mod@unit`] has small builders for adapters' own unit tests;
//! [`Case::request_context`], [`assert_error`], [`credential_json`] and
//! [`usage_json`] serve the adapter case replays.

#![allow(clippy::panic, reason = "test helpers report mismatches by panicking")]

use std::path::{Path, PathBuf};

use orch_plugin_sdk::{
    Credential, Operation, PayloadForm, PluginError, Provider, RequestContext, Usage,
};
use serde_json::{Value, json};

/// The string that matches any value in an expected document.
pub const ANY: &str = "<any>";

/// One case file.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file name without `.json`.
    pub name: String,
    /// The parsed file.
    pub doc: Value,
}

impl Case {
    /// A field of the case, or a panic naming the case.
    pub fn field(&self, key: &str) -> &Value {
        self.doc
            .get(key)
            .unwrap_or_else(|| panic!("case {}: missing field `{key}`", self.name))
    }

    /// A field of the case, if present and not null.
    pub fn opt(&self, key: &str) -> Option<&Value> {
        self.doc.get(key).filter(|v| !v.is_null())
    }

    /// The request context an adapter case describes in `context` (format
    /// in `README.md`). `dialect` is the adapter's own dialect: the client's
    /// when `context.form` is `native`. Panics naming the case when a
    /// required field is missing or a value is unknown.
    pub fn request_context(&self, dialect: &str) -> RequestContext {
        let context = self.field("context");
        let text = |key: &str| context.get(key).and_then(Value::as_str);
        let required = |key: &str| {
            text(key)
                .unwrap_or_else(|| panic!("case {}: missing `context.{key}`", self.name))
                .to_owned()
        };
        let form = match text("form") {
            None | Some("canonical") => PayloadForm::Canonical,
            Some("native") => PayloadForm::Native,
            Some(other) => panic!("case {}: unknown form {other}", self.name),
        };
        let provider = context
            .get("provider")
            .unwrap_or_else(|| panic!("case {}: missing `context.provider`", self.name));
        RequestContext {
            request_id: text("request_id")
                .map_or_else(|| format!("conformance-{}", self.name), str::to_owned),
            operation: match text("operation") {
                None | Some("chat") => Operation::Chat,
                Some("count-tokens") => Operation::CountTokens,
                Some("embeddings") => Operation::Embeddings,
                Some(other) => panic!("case {}: unknown operation {other}", self.name),
            },
            requested_model: required("requested_model"),
            upstream_model: required("upstream_model"),
            streaming: context
                .get("streaming")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            form,
            ingress_dialect: match form {
                PayloadForm::Native => dialect,
                PayloadForm::Canonical => "openai",
            }
            .to_owned(),
            received_at_ms: context
                .get("received_at_ms")
                .and_then(Value::as_u64)
                .unwrap_or(1_750_000_000_000),
            provider: Provider {
                name: "conformance".to_owned(),
                base_url: provider
                    .get("base_url")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("case {}: missing `provider.base_url`", self.name))
                    .to_owned(),
                options: provider
                    .get("options")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
            },
        }
    }
}

/// The folder holding the cases.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every case under `root()/<dir>`, sorted by name. Panics when the folder is
/// missing or empty, so a test never passes by finding nothing.
pub fn cases(dir: &str) -> Vec<Case> {
    let folder = root().join(dir);
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", folder.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let doc = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Case { name, doc });
        }
    }
    assert!(!out.is_empty(), "no cases in {}", folder.display());
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Structural match of `actual` against `expected`: objects must have exactly
/// the expected keys (a key absent from `expected` must be absent or null in
/// `actual`), arrays the same length, scalars equal; the string `"<any>"` in
/// `expected` matches any non-null value. Returns the first difference as
/// `path: reason`.
pub fn diff(actual: &Value, expected: &Value) -> Option<String> {
    diff_at("$", actual, expected)
}

/// [`diff`] that panics with the case name and both documents on a mismatch.
pub fn assert_matches(case: &str, what: &str, actual: &Value, expected: &Value) {
    if let Some(d) = diff(actual, expected) {
        panic!(
            "case {case}: {what} differs at {d}\n actual: {}\nexpected: {}",
            serde_json::to_string_pretty(actual).unwrap_or_default(),
            serde_json::to_string_pretty(expected).unwrap_or_default(),
        );
    }
}

fn diff_at(path: &str, actual: &Value, expected: &Value) -> Option<String> {
    match (actual, expected) {
        (a, Value::String(s)) if s == ANY => {
            if a.is_null() {
                Some(format!("{path}: expected a value, got null"))
            } else {
                None
            }
        }
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => {
                        if let Some(d) = diff_at(&p, av, ev) {
                            return Some(d);
                        }
                    }
                    None if ev.is_null() => {}
                    None => return Some(format!("{p}: missing")),
                }
            }
            a.iter()
                .find(|(k, v)| !e.contains_key(*k) && !v.is_null())
                .map(|(k, v)| format!("{path}.{k}: unexpected field with value {v}"))
        }
        (Value::Array(a), Value::Array(e)) => {
            if a.len() != e.len() {
                return Some(format!(
                    "{path}: expected {} elements, got {}",
                    e.len(),
                    a.len()
                ));
            }
            a.iter()
                .zip(e)
                .enumerate()
                .find_map(|(i, (av, ev))| diff_at(&format!("{path}[{i}]"), av, ev))
        }
        (Value::Number(a), Value::Number(e)) => {
            if a.as_f64() == e.as_f64() {
                None
            } else {
                Some(format!("{path}: expected {e}, got {a}"))
            }
        }
        (a, e) if a == e => None,
        (a, e) => Some(format!("{path}: expected {e}, got {a}")),
    }
}

/// Checks an error against the case's `expect_error`, comparing only the
/// fields it names (`class`, `retryable`, `status`, `code`, `param`,
/// `message`, `retry_after_ms`). Panics when the case expects no error.
pub fn assert_error(case: &Case, err: &PluginError) {
    let Some(Value::Object(expected)) = case.opt("expect_error") else {
        panic!("case {}: unexpected error {err}", case.name);
    };
    let all = json!({
        "class": err.class.as_str(),
        "retryable": err.retryable,
        "status": err.status,
        "code": err.code,
        "param": err.param,
        "message": err.message,
        "retry_after_ms": err.retry_after_ms,
    });
    let actual: serde_json::Map<String, Value> = expected
        .keys()
        .map(|key| (key.clone(), all.get(key).cloned().unwrap_or(Value::Null)))
        .collect();
    assert_matches(
        &case.name,
        "error",
        &Value::Object(actual),
        &Value::Object(expected.clone()),
    );
}

/// A credential placement as adapter cases write it in
/// `expect_request.credential`: `"none"`, `"bearer"`, `{"header": name}` or
/// `{"query": name}`.
pub fn credential_json(credential: &Credential) -> Value {
    match credential {
        Credential::None => json!("none"),
        Credential::Bearer => json!("bearer"),
        Credential::Header(name) => json!({"header": name}),
        Credential::Query(name) => json!({"query": name}),
    }
}

/// A usage report as adapter cases write it in `expect_usage`.
pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_input_tokens": usage.cache_write_input_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    })
}

/// One server-sent event as the host frames it: the `event:` field and the
/// `data:` lines joined with `\n`. Comments and events without data are
/// skipped, as the host does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    /// The `event:` field.
    pub event: Option<String>,
    /// The data lines joined with `\n`.
    pub data: String,
}

/// Split raw SSE text (as recorded from a provider) into frames.
pub fn sse_frames(text: &str) -> Vec<SseFrame> {
    let mut out = Vec::new();
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(d) = data.take() {
                out.push(SseFrame {
                    event: event.take(),
                    data: d,
                });
            }
            event = None;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    if let Some(d) = data {
        out.push(SseFrame { event, data: d });
    }
    out
}

/// Builders and checks for adapters' unit tests, so that every adapter
/// states its tests the same way.
///
/// ```
/// use orch_conformance::unit::{headers, provider, request_context};
/// use orch_plugin_sdk::RequestContext;
/// use serde_json::json;
///
/// let ctx = RequestContext {
///     streaming: true,
///     ..request_context(provider("https://api.example.com", json!({})), "alias", "model-1")
/// };
/// assert_eq!(ctx.provider.name, "test");
/// assert_eq!(headers(&[("accept", "*/*")]), [("accept".to_owned(), "*/*".to_owned())]);
/// ```
pub mod unit {
    use orch_plugin_sdk::{
        Adapter, ErrorClass, Headers, Operation, PayloadForm, PluginInfo, PluginKind, Provider,
        RequestContext,
    };
    use serde_json::{Value, json};

    /// A provider called `test` with this base URL and these options.
    pub fn provider(base_url: &str, options: Value) -> Provider {
        Provider {
            name: "test".to_owned(),
            base_url: base_url.to_owned(),
            options: options.to_string(),
        }
    }

    /// A chat request to `provider`: request id `req-1`, canonical form from an
    /// `openai` client, not streaming, received at `1_700_000_000_000` ms. Change
    /// fields with struct update syntax.
    pub fn request_context(
        provider: Provider,
        requested_model: &str,
        upstream_model: &str,
    ) -> RequestContext {
        RequestContext {
            request_id: "req-1".to_owned(),
            operation: Operation::Chat,
            requested_model: requested_model.to_owned(),
            upstream_model: upstream_model.to_owned(),
            streaming: false,
            form: PayloadForm::Canonical,
            ingress_dialect: "openai".to_owned(),
            received_at_ms: 1_700_000_000_000,
            provider,
        }
    }

    /// A header list from `(name, value)` pairs.
    pub fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// Checks an adapter's `info()`: kind adapter, `id`, `version` (pass
    /// `env!("CARGO_PKG_VERSION")`), `dialect`, exactly `capabilities` in this
    /// order, and a description.
    pub fn assert_adapter_info(
        info: &PluginInfo,
        id: &str,
        version: &str,
        dialect: &str,
        capabilities: &[&str],
    ) {
        assert_eq!(info.id, id);
        assert_eq!(info.version, version);
        assert_eq!(info.kind, PluginKind::Adapter);
        assert_eq!(info.dialect, dialect);
        assert_eq!(info.capabilities, capabilities);
        assert!(!info.description.is_empty(), "{id}: empty description");
    }

    /// Checks that `A::check_provider` accepts each base URL (with no
    /// options).
    pub fn assert_base_urls_accepted<A: Adapter>(urls: &[&str]) {
        for url in urls {
            assert_eq!(
                A::check_provider(&provider(url, json!({}))),
                Ok(()),
                "{url}"
            );
        }
    }

    /// Checks that `A::check_provider` refuses each base URL (with no
    /// options): a `bad-request` with param `base_url`.
    pub fn assert_base_urls_refused<A: Adapter>(urls: &[&str]) {
        for url in urls {
            let Err(err) = A::check_provider(&provider(url, json!({}))) else {
                panic!("{url}: accepted");
            };
            assert_eq!(err.class, ErrorClass::BadRequest, "{url}");
            assert_eq!(err.param.as_deref(), Some("base_url"), "{url}");
        }
    }

    /// Checks that `A::check_provider` refuses a provider at `base_url` with
    /// each of these options: a `bad-request` naming the provider whose
    /// message contains the given text.
    pub fn assert_options_refused<A: Adapter>(base_url: &str, cases: &[(Value, &str)]) {
        for (options, needle) in cases {
            let Err(err) = A::check_provider(&provider(base_url, options.clone())) else {
                panic!("{options}: accepted");
            };
            assert_eq!(err.class, ErrorClass::BadRequest, "{options}");
            assert!(err.message.contains(needle), "{options}: {}", err.message);
            assert!(
                err.message.contains("provider `test`"),
                "{options}: {}",
                err.message
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_and_extra_fields() {
        assert_eq!(
            diff(&json!({"a": 1, "b": "x"}), &json!({"a": 1, "b": ANY})),
            None
        );
        assert!(diff(&json!({"a": 1, "c": 2}), &json!({"a": 1})).is_some());
        assert_eq!(diff(&json!({"a": 1, "c": null}), &json!({"a": 1})), None);
        assert!(diff(&json!({"a": null}), &json!({"a": ANY})).is_some());
        assert!(diff(&json!([1, 2]), &json!([1])).is_some());
        assert_eq!(diff(&json!(1.0), &json!(1)), None);
    }

    #[test]
    fn frames_split_like_the_host() {
        let f = sse_frames(
            "event: a\ndata: {\"x\":1}\n\n: ping\n\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n",
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].event.as_deref(), Some("a"));
        assert_eq!(f[1].data, "l1\nl2");
        assert_eq!(f[2].data, "[DONE]");
    }
}
