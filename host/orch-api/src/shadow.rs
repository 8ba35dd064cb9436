//! Shadow mode: a target's answers are also built and parsed by another
//! adapter version, off the request path, and the differences are recorded.
//!
//! After a successful non-streaming attempt, the shadow version gets the same
//! payload (`build-request`) and the same upstream answer
//! (`parse-response`); nothing is sent upstream twice and the client only
//! ever sees the primary's answer. The upstream requests are compared after
//! normalisation (method, URL, headers by name, credential placement, the
//! body as JSON with forwarded edits applied) and so are the canonical
//! responses and usage. A difference is recorded with its JSON path; values
//! are kept for the request's method, URL and headers but never for bodies
//! (prompts and completions stay out of the record).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use orch_core::contract::{RequestBody, RequestContext, UpstreamRequest, Usage};
use orch_plugin_host::LoadedPlugin;
use serde_json::{Value, json};

/// Differences kept for the operator view.
const RECENT: usize = 100;

/// Counters of one primary → shadow pair.
#[derive(Clone, Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PairStats {
    /// The primary version (`id@version`).
    pub(crate) primary: String,
    /// The shadow version.
    pub(crate) shadow: String,
    /// Requests compared.
    pub(crate) compared: u64,
    /// Of those, with a difference.
    pub(crate) differed: u64,
    /// Shadow runs that failed (a fault, or an error where the primary
    /// succeeded).
    pub(crate) failed: u64,
}

/// One recorded difference.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ShadowDiff {
    /// When, Unix ms.
    pub(crate) at_ms: u64,
    /// The request.
    pub(crate) request_id: String,
    /// The primary version.
    pub(crate) primary: String,
    /// The shadow version.
    pub(crate) shadow: String,
    /// `request`, `response`, `usage` or `error`.
    pub(crate) part: &'static str,
    /// Where they differ (`$.body.temperature`), or what failed.
    pub(crate) path: String,
    /// The primary's value there (for bodies: its JSON type only).
    pub(crate) primary_value: String,
    /// The shadow's value there.
    pub(crate) shadow_value: String,
}

/// The shadow comparisons of this gateway.
#[derive(Default)]
pub(crate) struct ShadowBook {
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    pairs: BTreeMap<(String, String), PairStats>,
    recent: VecDeque<ShadowDiff>,
}

impl ShadowBook {
    fn record(&self, primary: &str, shadow: &str, outcome: Outcome) {
        let mut book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let pair = book
            .pairs
            .entry((primary.to_string(), shadow.to_string()))
            .or_insert_with(|| PairStats {
                primary: primary.to_string(),
                shadow: shadow.to_string(),
                ..PairStats::default()
            });
        match &outcome {
            Outcome::Same => pair.compared += 1,
            Outcome::Differs(_) => {
                pair.compared += 1;
                pair.differed += 1;
            }
            Outcome::Failed(_) => pair.failed += 1,
        }
        if let Outcome::Differs(d) | Outcome::Failed(d) = outcome {
            if book.recent.len() == RECENT {
                book.recent.pop_front();
            }
            book.recent.push_back(d);
        }
    }

    /// The counters per pair and the recent differences, newest first.
    pub(crate) fn view(&self) -> (Vec<PairStats>, Vec<ShadowDiff>) {
        let book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (
            book.pairs.values().cloned().collect(),
            book.recent.iter().rev().cloned().collect(),
        )
    }
}

enum Outcome {
    Same,
    Differs(ShadowDiff),
    Failed(ShadowDiff),
}

/// What the primary attempt did, for the shadow to repeat.
pub(crate) struct Primary {
    pub(crate) plugin: Arc<LoadedPlugin>,
    pub(crate) ctx: RequestContext,
    pub(crate) payload: Bytes,
    /// The upstream request as the primary adapter built it.
    pub(crate) request: UpstreamRequest,
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    /// The primary's canonical response and usage.
    pub(crate) response: String,
    pub(crate) usage: Option<Usage>,
}

/// Run `shadow` on what `primary` did, in the background.
pub(crate) fn spawn(book: Arc<ShadowBook>, shadow: Arc<LoadedPlugin>, primary: Primary) {
    tokio::spawn(async move {
        let outcome = compare(&shadow, &primary).await;
        let (p, s) = (primary.plugin.label(), shadow.label());
        if let Outcome::Differs(d) | Outcome::Failed(d) = &outcome {
            tracing::info!(
                request_id = %d.request_id, primary = %p, shadow = %s, part = d.part,
                path = %d.path, "shadow adapter differs from the primary"
            );
        }
        book.record(&p, &s, outcome);
    });
}

async fn compare(shadow: &Arc<LoadedPlugin>, primary: &Primary) -> Outcome {
    let diff = |part: &'static str, path: String, a: String, b: String| ShadowDiff {
        at_ms: crate::pipeline::unix_ms(),
        request_id: primary.ctx.request_id.clone(),
        primary: primary.plugin.label(),
        shadow: shadow.label(),
        part,
        path,
        primary_value: a,
        shadow_value: b,
    };
    let failed = |what: String| Outcome::Failed(diff("error", what, "ok".into(), "failed".into()));
    let mut inst = match shadow.adapter(&primary.ctx).await {
        Ok(i) => i,
        Err(f) => return failed(format!("instantiate: {f}")),
    };
    let payload = std::str::from_utf8(&primary.payload).unwrap_or_default();
    let request = match inst.build_request(payload).await {
        Ok(r) => r,
        Err(e) => return failed(format!("build_request: {e}")),
    };
    let (a, b) = (
        normalise(&primary.request, &primary.payload),
        normalise(&request, &primary.payload),
    );
    if let Some((path, x, y)) = first_difference("$", &a, &b) {
        let in_body = path.starts_with("$.body");
        let show = |v: &Value| if in_body { kind(v) } else { clip(v) };
        return Outcome::Differs(diff("request", path, show(&x), show(&y)));
    }
    let parsed = match inst
        .parse_response(primary.status, &primary.headers, &primary.body)
        .await
    {
        Ok(p) => p,
        Err(e) => return failed(format!("parse_response: {e}")),
    };
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
    let (a, b) = (parse(&primary.response), parse(&parsed.body));
    if let Some((path, x, y)) = first_difference("$", &a, &b) {
        return Outcome::Differs(diff("response", path, kind(&x), kind(&y)));
    }
    if primary.usage != parsed.usage {
        return Outcome::Differs(diff(
            "usage",
            "$.usage".into(),
            format!("{:?}", primary.usage),
            format!("{:?}", parsed.usage),
        ));
    }
    Outcome::Same
}

/// An upstream request as JSON, comparable across adapters.
fn normalise(r: &UpstreamRequest, payload: &[u8]) -> Value {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    headers.sort();
    let body = match &r.body {
        RequestBody::Empty => Value::Null,
        RequestBody::Bytes(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned())),
        RequestBody::Forward(edits) => orch_core::canonical::apply_edits(payload, edits)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null),
    };
    json!({
        "method": r.method,
        "url": r.url,
        "headers": headers,
        "credential": format!("{:?}", r.credential),
        "framing": format!("{:?}", r.framing),
        "body": body,
    })
}

/// The first place two JSON documents differ: its path and both values
/// (`null` where one side has nothing).
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<(String, Value, Value)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                first_difference(&format!("{path}.{k}"), va, vb)
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&format!("{path}[{i}]"), va, vb)),
        _ if a == b => None,
        _ => Some((path.to_string(), a.clone(), b.clone())),
    }
}

/// A value's JSON type (and length), never its content.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "boolean".into(),
        Value::Number(_) => "number".into(),
        Value::String(s) => format!("string ({} chars)", s.chars().count()),
        Value::Array(a) => format!("array ({} items)", a.len()),
        Value::Object(o) => format!("object ({} keys)", o.len()),
    }
}

fn clip(v: &Value) -> String {
    crate::error::clip(&v.to_string(), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_has_a_path() {
        let a = json!({"a": 1, "b": {"c": [1, 2, {"d": "x"}]}});
        let b = json!({"a": 1, "b": {"c": [1, 2, {"d": "y"}]}});
        let (path, x, y) = first_difference("$", &a, &b).unwrap();
        assert_eq!(path, "$.b.c[2].d");
        assert_eq!((x, y), (json!("x"), json!("y")));
        assert_eq!(first_difference("$", &a, &a.clone()), None);
        let missing = first_difference("$", &json!({"a": 1}), &json!({"a": 1, "z": 0})).unwrap();
        assert_eq!(missing.0, "$.z");
        let shorter = first_difference("$", &json!([1]), &json!([1, 2])).unwrap();
        assert_eq!(shorter.0, "$");
        // Absent and null are the same.
        assert_eq!(first_difference("$", &json!({"a": null}), &json!({})), None);
    }

    #[test]
    fn bodies_are_described_not_shown() {
        assert_eq!(kind(&json!("secret prompt")), "string (13 chars)");
        assert_eq!(kind(&json!([1, 2])), "array (2 items)");
    }
}
