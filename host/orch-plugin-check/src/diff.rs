//! Structural comparison of JSON documents and SSE framing, as the guest-side
//! helpers in `plugins/conformance` define them (`orch_conformance::diff` and
//! `orch_conformance::sse_frames`), so a case means the same here as in a
//! plugin's own tests.

use serde_json::Value;

/// The string that matches any non-null value in an expected document.
pub(crate) const ANY: &str = "<any>";

/// Longest rendering of a value inside a difference message.
const MAX_VALUE_TEXT: usize = 200;

/// Structural match of `actual` against `expected`: objects must have exactly
/// the expected keys (a key absent from `expected` must be absent or null in
/// `actual`), arrays the same length, scalars equal (numbers by value); the
/// string `"<any>"` in `expected` matches any non-null value. Returns the
/// first difference as `path: reason`.
pub(crate) fn diff(actual: &Value, expected: &Value) -> Option<String> {
    diff_at("$", actual, expected)
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
                .map(|(k, v)| format!("{path}.{k}: unexpected field with value {}", short(v)))
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
        (a, e) => Some(format!("{path}: expected {}, got {}", short(e), short(a))),
    }
}

/// A value as compact JSON, cut to a readable length.
pub(crate) fn short(value: &Value) -> String {
    cut(&value.to_string(), MAX_VALUE_TEXT)
}

/// `text` cut to at most `max` bytes (on a character boundary), with `…`
/// when something was cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One server-sent event: the `event:` field and the `data:` lines joined
/// with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseFrame {
    /// The `event:` field.
    pub(crate) event: Option<String>,
    /// The data lines joined with `\n`.
    pub(crate) data: String,
}

/// Split raw SSE text (as recorded from a provider) into frames: events are
/// separated by blank lines; comments and events without data are skipped,
/// as the host does.
pub(crate) fn sse_frames(text: &str) -> Vec<SseFrame> {
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
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
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
        assert_eq!(diff(&json!({"a": 1}), &json!({"a": 1, "c": null})), None);
        assert!(diff(&json!({"a": null}), &json!({"a": ANY})).is_some());
        assert!(diff(&json!({}), &json!({"a": ANY})).is_some());
        assert!(diff(&json!([1, 2]), &json!([1])).is_some());
        assert_eq!(diff(&json!(1.0), &json!(1)), None);
    }

    #[test]
    fn differences_name_the_path() {
        assert_eq!(
            diff(
                &json!({"a": [1, {"b": "x"}]}),
                &json!({"a": [1, {"b": "y"}]})
            )
            .as_deref(),
            Some(r#"$.a[1].b: expected "y", got "x""#)
        );
        assert_eq!(
            diff(&json!({"a": 1}), &json!({"a": 1, "b": 2})).as_deref(),
            Some("$.b: missing")
        );
        assert_eq!(
            diff(&json!({"a": 1, "z": true}), &json!({"a": 1})).as_deref(),
            Some("$.z: unexpected field with value true")
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(1000);
        let d = diff(&json!(long), &json!("y")).unwrap_or_default();
        assert!(d.len() < 300, "{d}");
        assert!(d.ends_with('…'), "{d}");
        assert_eq!(cut("héllo", 2), "h…");
    }

    #[test]
    fn frames_split_like_the_host() {
        let f = sse_frames(
            "event: a\ndata: {\"x\":1}\n\n: ping\n\ndata: l1\ndata: l2\n\nevent: lonely\n\ndata: [DONE]\n\n",
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].event.as_deref(), Some("a"));
        assert_eq!(f[1].data, "l1\nl2");
        assert_eq!(f[1].event, None);
        assert_eq!(f[2].data, "[DONE]");
        assert_eq!(f[2].event, None, "an event without data is dropped");
    }

    #[test]
    fn frames_accept_crlf_and_a_missing_final_blank_line() {
        let f = sse_frames("data: a\r\n\r\ndata:b");
        assert_eq!(
            f,
            [
                SseFrame {
                    event: None,
                    data: "a".into()
                },
                SseFrame {
                    event: None,
                    data: "b".into()
                }
            ]
        );
    }
}
