//! Golden conformance cases for plugins, and the helpers that replay them.
//!
//! The cases live in this crate's folder as JSON files, one per case:
//! `<dialect>/adapter/*.json` for provider adapters and
//! `<dialect>/dialect/*.json` for ingress dialects (the format is in
//! `README.md`). Plugin crates run them natively in their tests (add this
//! crate as a dev-dependency); `llm-orchestrator plugin check` runs them
//! against a built component.

#![allow(clippy::panic, reason = "test helpers report mismatches by panicking")]

use std::path::{Path, PathBuf};

use serde_json::Value;

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
