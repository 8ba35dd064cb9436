//! The request pipeline: authenticate, inspect, route, then attempts —
//! adapter builds the request, the host sends it, the adapter translates the
//! answer — failing over to the next target while the client has seen
//! nothing. Streams commit at their first content chunk; after that a failure
//! ends the stream with an explicit error.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use orch_core::canonical::{self, ChatProfile};
use orch_core::contract::{
    ClassifiedError, ErrorClass, Operation, PayloadForm, RequestBody, RequestContext, Usage,
};
use orch_core::routing::{self, ModelRoute, Target};
use orch_plugin_host::{AdapterInstance, CallError, LoadedPlugin, Snapshot};
use orch_store::{LogWriter, Outcome, RequestLogRecord};
use orch_upstream::FrameReader;

use crate::auth::authenticate;
use crate::error::{ApiError, Dialect};
use crate::sse::OpenAiStream;
use crate::state::{AppState, Live, Provider};

/// Header naming the adapter version that produced a response.
pub(crate) const ADAPTER_HEADER: &str = "x-orchestrator-adapter";

/// A chat request as it enters the pipeline.
pub(crate) struct ChatIngress {
    pub(crate) dialect: Dialect,
    pub(crate) request_id: String,
    pub(crate) started: Instant,
    pub(crate) body: Bytes,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The request-log row of one request, written when the request ends — also
/// when it ends because the client went away (then as `cancelled`).
pub(crate) struct LogDraft {
    writer: LogWriter,
    started: Instant,
    rec: RequestLogRecord,
    written: bool,
}

impl LogDraft {
    fn new(writer: LogWriter, ingress: &ChatIngress, ts_ms: u64) -> Self {
        LogDraft {
            writer,
            started: ingress.started,
            rec: RequestLogRecord {
                ts_ms: i64::try_from(ts_ms).unwrap_or(i64::MAX),
                request_id: ingress.request_id.clone(),
                ingress_dialect: ingress.dialect.as_str().to_string(),
                requested_model: String::new(),
                provider: None,
                upstream_model: None,
                plugin: None,
                status: 0,
                error_class: None,
                attempts: 0,
                latency_us: 0,
                ttft_us: None,
                input_tokens: None,
                output_tokens: None,
                cached_tokens: None,
                streamed: false,
                outcome: Outcome::Cancelled,
            },
            written: false,
        }
    }

    fn usage(&mut self, u: Option<Usage>) {
        if let Some(u) = u {
            self.rec.input_tokens = Some(u.input_tokens);
            self.rec.output_tokens = Some(u.output_tokens);
            self.rec.cached_tokens = u.cached_input_tokens;
        }
    }

    fn ttft(&mut self, at: Option<Instant>) {
        self.rec.ttft_us = at.map(|t| micros(t.duration_since(self.started)));
    }

    fn finish(&mut self, status: u16, outcome: Outcome, class: Option<&str>) {
        if self.written {
            return;
        }
        self.written = true;
        self.rec.status = status;
        self.rec.outcome = outcome;
        if let Some(c) = class {
            self.rec.error_class = Some(c.to_string());
        }
        self.rec.latency_us = micros(self.started.elapsed());
        tracing::debug!(
            request_id = %self.rec.request_id, status, outcome = ?self.rec.outcome,
            attempts = self.rec.attempts, latency_us = self.rec.latency_us,
            "gen_ai.request.model" = %self.rec.requested_model, "request finished"
        );
        self.writer.push(self.rec.clone());
    }

    fn fail(&mut self, err: &ApiError) {
        self.finish(
            err.status.as_u16(),
            Outcome::Error,
            err.class.map(ErrorClass::as_str),
        );
    }
}

impl Drop for LogDraft {
    fn drop(&mut self) {
        if !self.written {
            let status = if self.rec.streamed { 200 } else { 499 };
            self.finish(status, Outcome::Cancelled, None);
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Why an attempt did not produce a response.
enum Failed {
    /// Another target may succeed.
    Retry(ApiError),
    /// Report this to the client.
    Final(ApiError),
}

/// Serve a chat request end to end.
pub(crate) async fn chat(state: &AppState, headers: &HeaderMap, ingress: ChatIngress) -> Response {
    let received_at_ms = unix_ms();
    let mut log = LogDraft::new(state.services().log.clone(), &ingress, received_at_ms);
    match chat_inner(state, headers, &ingress, received_at_ms, &mut log).await {
        Ok(resp) => resp,
        Err(err) => {
            log.fail(&err);
            err.in_dialect(ingress.dialect).into_response()
        }
    }
}

async fn chat_inner(
    state: &AppState,
    headers: &HeaderMap,
    ingress: &ChatIngress,
    received_at_ms: u64,
    log: &mut LogDraft,
) -> Result<Response, ApiError> {
    let live = state.live();
    authenticate(&live, headers)?;
    let profile = ChatProfile::inspect(&ingress.body)
        .map_err(|e| ApiError::bad_request(e.to_string(), e.param()))?;
    log.rec.requested_model = crate::error::clip(&profile.model, 256);
    log.rec.streamed = profile.stream;
    let route = live
        .models
        .get(&profile.model)
        .ok_or_else(|| ApiError::model_not_found(&profile.model))?;
    let snapshot = state.services().plugins.snapshot();
    let plan = plan(route, &profile, &live, &snapshot)?;
    let deadline = ingress.started + live.request_timeout;
    let payload = std::str::from_utf8(&ingress.body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8", None))?;

    let mut last: Option<ApiError> = None;
    for index in plan.0 {
        let Some(target) = route.targets.get(index) else {
            continue;
        };
        let Some(provider) = live.providers.get(target.provider) else {
            continue;
        };
        let Some(plugin) = snapshot.adapter(&provider.adapter).cloned() else {
            continue;
        };
        if Instant::now() >= deadline {
            return Err(ApiError::deadline());
        }
        let ctx = RequestContext {
            request_id: ingress.request_id.clone(),
            operation: Operation::Chat,
            requested_model: profile.model.clone(),
            upstream_model: target.upstream_model.clone(),
            streaming: profile.stream,
            form: PayloadForm::Canonical,
            ingress_dialect: ingress.dialect.as_str().to_string(),
            received_at_ms,
            provider: provider.view.clone(),
        };
        log.rec.provider = Some(provider.name.clone());
        log.rec.upstream_model = Some(target.upstream_model.clone());
        log.rec.plugin = Some(plugin.label());
        let attempt = Attempt {
            state,
            provider,
            plugin: &plugin,
            ctx,
            payload,
            original: &ingress.body,
            profile: &profile,
            deadline,
        };
        match attempt.run(log).await {
            Ok(resp) => return Ok(resp),
            Err(Failed::Final(e)) => return Err(e),
            Err(Failed::Retry(e)) => {
                tracing::info!(
                    request_id = %ingress.request_id, provider = %provider.name,
                    plugin = %plugin.label(), code = %e.code, "attempt failed; trying the next target"
                );
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ApiError::unavailable("No target is available for this model.")))
}

/// Order the targets that can serve this request, or say why none can.
fn plan(
    route: &ModelRoute,
    profile: &ChatProfile,
    live: &Live,
    snapshot: &Snapshot,
) -> Result<routing::Plan, ApiError> {
    let adapter_of = |t: &Target| {
        live.providers
            .get(t.provider)
            .and_then(|p| snapshot.adapter(&p.adapter))
    };
    let plan = routing::plan(
        route,
        |t| adapter_of(t).is_some_and(|a| profile.needs.iter().all(|c| a.info.has(*c))),
        &mut rand::rng(),
    );
    if !plan.0.is_empty() {
        return Ok(plan);
    }
    let loaded: Vec<_> = route.targets.iter().filter_map(adapter_of).collect();
    if loaded.is_empty() {
        return Err(ApiError::unavailable(
            "No adapter plugin for this model's providers is loaded.",
        ));
    }
    let missing: Vec<&str> = profile
        .needs
        .iter()
        .filter(|c| !loaded.iter().any(|a| a.info.has(**c)))
        .map(|c| c.as_str())
        .collect();
    Err(ApiError::bad_request(
        format!(
            "No provider configured for model `{}` supports: {}.",
            crate::error::clip(&profile.model, 200),
            if missing.is_empty() {
                "this combination of features".to_string()
            } else {
                missing.join(", ")
            }
        ),
        None,
    ))
}

struct Attempt<'a> {
    state: &'a AppState,
    provider: &'a Provider,
    plugin: &'a Arc<LoadedPlugin>,
    ctx: RequestContext,
    payload: &'a str,
    original: &'a Bytes,
    profile: &'a ChatProfile,
    deadline: Instant,
}

impl Attempt<'_> {
    fn remaining(&self) -> Result<Duration, Failed> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Failed::Final(ApiError::deadline()))
        } else {
            Ok(left)
        }
    }

    /// A typed plugin error: retry when it says another target may do
    /// better (or the feature is unsupported here), else report it.
    fn classified(&self, e: ClassifiedError) -> Failed {
        let mut e = e;
        e.message = self.provider.scrub(&e.message);
        let retry = e.retryable || e.class == ErrorClass::Unsupported;
        let err = ApiError::classified(&e);
        if retry {
            Failed::Retry(err)
        } else {
            Failed::Final(err)
        }
    }

    fn call_error(&self, e: CallError) -> Failed {
        match e {
            CallError::Plugin(e) => self.classified(e),
            CallError::Fault(f) => self.fault(&f),
        }
    }

    fn fault(&self, f: &orch_plugin_host::PluginFault) -> Failed {
        tracing::warn!(
            request_id = %self.ctx.request_id, plugin = %self.plugin.label(),
            fault = f.kind(), "plugin fault: {f}"
        );
        Failed::Retry(ApiError::plugin(f))
    }

    async fn run(self, log: &mut LogDraft) -> Result<Response, Failed> {
        let mut inst = self
            .plugin
            .adapter(&self.ctx)
            .await
            .map_err(|f| self.fault(&f))?;
        let up = inst
            .build_request(self.payload)
            .await
            .map_err(|e| self.call_error(e))?;
        let body = match &up.body {
            RequestBody::Empty => Bytes::new(),
            RequestBody::Bytes(b) => Bytes::from(b.clone()),
            RequestBody::Forward(edits) => match canonical::apply_edits(self.original, edits) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    return Err(
                        self.fault(&orch_plugin_host::PluginFault::InvalidOutput(e.to_string()))
                    );
                }
            },
        };
        let remaining = self.remaining()?;
        log.rec.attempts += 1;
        let services = self.state.services();
        let resp = services
            .upstream
            .send(&up, body, self.provider.next_key(), Some(remaining))
            .await
            .map_err(|e| {
                let e = ApiError::upstream(&e);
                tracing::info!(request_id = %self.ctx.request_id, provider = %self.provider.name, "upstream send failed: {}", e.code);
                Failed::Retry(e)
            })?;
        let status = resp.status;
        if !(200..300).contains(&status) {
            let headers = resp.headers.clone();
            let remaining = self.remaining()?;
            let body = tokio::time::timeout(remaining, resp.read_body())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let classified = match inst.classify_error(status, &headers, &body).await {
                Ok(c) => c,
                Err(f) => {
                    self.fault(&f);
                    host_classification(status)
                }
            };
            return Err(self.classified(classified));
        }
        let headers = resp.headers.clone();
        if !self.profile.stream {
            let remaining = self.remaining()?;
            let body = match tokio::time::timeout(remaining, resp.read_body()).await {
                Err(_) => return Err(Failed::Final(ApiError::deadline())),
                Ok(Err(e)) => return Err(Failed::Retry(ApiError::upstream(&e))),
                Ok(Ok(b)) => b,
            };
            let parsed = inst
                .parse_response(status, &headers, &body)
                .await
                .map_err(|e| self.call_error(e))?;
            log.usage(parsed.usage);
            log.finish(200, Outcome::Ok, None);
            let mut out = Response::new(Body::from(parsed.body));
            out.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            self.label(&mut out);
            return Ok(out);
        }

        inst.start_stream(status, &headers)
            .await
            .map_err(|f| self.fault(&f))?;
        let mut frames = resp.frames(up.framing);
        let mut out = OpenAiStream::new(
            &self.ctx.requested_model,
            self.profile.include_usage,
            self.ctx.received_at_ms / 1000,
        );
        // Before the commit point: hold everything back, fail over on error.
        while !out.committed && !out.done {
            let remaining = self.remaining()?;
            let wait = remaining.min(services.upstream.idle_timeout());
            match frames.next_within(wait).await {
                None => {
                    let items = inst.finish().await.map_err(|e| self.call_error(e))?;
                    out.absorb(items);
                    if !out.done {
                        return Err(Failed::Retry(ApiError::upstream(
                            &orch_upstream::UpstreamError::Malformed("stream ended early".into()),
                        )));
                    }
                }
                Some(Err(e)) => {
                    self.remaining()?;
                    return Err(Failed::Retry(ApiError::upstream(&e)));
                }
                Some(Ok(frame)) => {
                    let items = inst.push(&frame).await.map_err(|e| self.call_error(e))?;
                    out.absorb(items);
                }
            }
        }
        log.ttft(out.first_content_at);
        let first = out.take();
        let label = self.plugin.label();
        let mut stream = Streaming {
            inst,
            frames,
            out,
            log: std::mem::replace(log, log.detached()),
            finished: false,
        };
        stream.log.rec.streamed = true;
        let body =
            futures_util::stream::unfold((Some(first), stream), |(first, mut st)| async move {
                if let Some(b) = first {
                    return Some((Ok::<Bytes, Infallible>(b), (None, st)));
                }
                st.next().await.map(|b| (Ok(b), (None, st)))
            });
        let mut resp = Response::new(Body::from_stream(body));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        if let Ok(v) = HeaderValue::from_str(&label) {
            h.insert(ADAPTER_HEADER, v);
        }
        Ok(resp)
    }

    fn label(&self, resp: &mut Response) {
        if let Ok(v) = HeaderValue::from_str(&self.plugin.label()) {
            resp.headers_mut().insert(ADAPTER_HEADER, v);
        }
    }
}

impl LogDraft {
    /// A draft that writes nothing: what stays behind when the real one
    /// moves into a streaming body.
    fn detached(&self) -> LogDraft {
        LogDraft {
            writer: self.writer.clone(),
            started: self.started,
            rec: self.rec.clone(),
            written: true,
        }
    }
}

/// A fallback when the adapter cannot classify an error.
fn host_classification(status: u16) -> ClassifiedError {
    let (class, retryable) = match status {
        400 | 413 | 422 => (ErrorClass::BadRequest, false),
        401 => (ErrorClass::Authentication, true),
        403 => (ErrorClass::PermissionDenied, true),
        404 => (ErrorClass::NotFound, true),
        408 => (ErrorClass::Timeout, true),
        429 => (ErrorClass::RateLimited, true),
        503 | 529 => (ErrorClass::Overloaded, true),
        s if s >= 500 => (ErrorClass::Server, true),
        _ => (ErrorClass::BadRequest, false),
    };
    let mut e = ClassifiedError::new(
        class,
        retryable,
        format!("upstream answered with status {status}"),
    );
    e.status = Some(status);
    e
}

/// A committed stream: the client has seen content, so failures end it with
/// an explicit error event.
struct Streaming {
    inst: AdapterInstance,
    frames: FrameReader,
    out: OpenAiStream,
    log: LogDraft,
    finished: bool,
}

impl Streaming {
    async fn next(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        loop {
            if self.out.done {
                self.finished = true;
                let usage = self.out.usage;
                self.log.usage(usage);
                self.log.finish(200, Outcome::Ok, None);
                return Some(self.out.tail());
            }
            match self.frames.next().await {
                None => match self.inst.finish().await {
                    Ok(items) => {
                        self.out.absorb(items);
                        if !self.out.done {
                            return Some(self.fail(ApiError::upstream(
                                &orch_upstream::UpstreamError::Malformed(
                                    "stream ended early".into(),
                                ),
                            )));
                        }
                    }
                    Err(e) => return Some(self.fail(call_api_error(&e))),
                },
                Some(Err(e)) => return Some(self.fail(ApiError::upstream(&e))),
                Some(Ok(frame)) => {
                    if let Err(e) = self.push(&frame).await {
                        return Some(self.fail(e));
                    }
                    // Frames that already arrived go out in the same write:
                    // a burst costs one write, a paced stream is not delayed.
                    while !self.out.done {
                        match self.frames.next_ready() {
                            None | Some(None) => break,
                            Some(Some(Err(e))) => return Some(self.fail(ApiError::upstream(&e))),
                            Some(Some(Ok(frame))) => {
                                if let Err(e) = self.push(&frame).await {
                                    return Some(self.fail(e));
                                }
                            }
                        }
                    }
                    if self.out.has_output() && !self.out.done {
                        return Some(self.out.take());
                    }
                }
            }
        }
    }

    async fn push(&mut self, frame: &orch_core::contract::Frame) -> Result<(), ApiError> {
        let items = self
            .inst
            .push(frame)
            .await
            .map_err(|e| call_api_error(&e))?;
        self.out.absorb(items);
        Ok(())
    }

    fn fail(&mut self, err: ApiError) -> Bytes {
        self.finished = true;
        tracing::info!(request_id = %self.log.rec.request_id, code = %err.code, "stream failed after the commit point");
        let usage = self.out.usage;
        self.log.usage(usage);
        self.log.finish(
            200,
            Outcome::Partial,
            err.class.map(ErrorClass::as_str).or(Some("stream_error")),
        );
        self.out.error_tail(&err)
    }
}

fn call_api_error(e: &CallError) -> ApiError {
    match e {
        CallError::Plugin(c) => ApiError::classified(c),
        CallError::Fault(f) => ApiError::plugin(f),
    }
}
