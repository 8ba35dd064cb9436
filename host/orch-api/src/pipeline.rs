//! The request pipeline: authenticate, inspect, route, then attempts —
//! adapter builds the request, the host sends it, the adapter translates the
//! answer — failing over to the next target while the client has seen
//! nothing. Streams commit at their first content chunk; after that a failure
//! ends the stream with an explicit error.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use orch_core::canonical::{self, ChatProfile};
use orch_core::contract::{
    ClassifiedError, ErrorClass, Operation, PayloadForm, RequestBody, RequestContext, Usage,
};
use orch_core::routing::health::Admission;
use orch_core::routing::{self, Candidate, ModelRoute, Standing, Target};
use orch_plugin_host::{AdapterInstance, CallError, LoadedPlugin, Snapshot};
use orch_store::{LogWriter, Outcome, RequestLogRecord};
use orch_upstream::FrameReader;
use tracing::Instrument;

use crate::auth::authenticate;
use crate::catalog::now_ms;
use crate::egress::ClientStream;
use crate::error::{ApiError, Dialect};
use crate::state::{AppState, Live, Provider, target_id};

/// Header naming the adapter version that produced a response.
pub(crate) const ADAPTER_HEADER: &str = "x-orchestrator-adapter";

/// A chat (or token count) request as it enters the pipeline, in the
/// client's dialect.
pub(crate) struct ChatIngress {
    pub(crate) dialect: Dialect,
    pub(crate) operation: Operation,
    pub(crate) started: Instant,
    pub(crate) body: Bytes,
    /// The model named in the URL (Gemini).
    pub(crate) path_model: Option<String>,
    /// Whether the endpoint itself streams (Gemini).
    pub(crate) endpoint_streams: Option<bool>,
    /// The client key from the `key` query parameter (Gemini).
    pub(crate) query_key: Option<String>,
    /// The request's id and trace context (from the router's layer).
    pub(crate) trace: crate::trace::RequestTrace,
}

impl ChatIngress {
    /// The request id (from the router's layer).
    pub(crate) fn request_id(&self) -> &str {
        &self.trace.id
    }
}

pub(crate) fn unix_ms() -> u64 {
    u64::try_from(now_ms()).unwrap_or_default()
}

/// The request-log row of one request, written when the request ends — also
/// when it ends because the client went away (then as `cancelled`).
pub(crate) struct LogDraft {
    writer: LogWriter,
    started: Instant,
    rec: RequestLogRecord,
    written: bool,
    /// The client key's admission: settled with the tokens used when the
    /// request ends (released unused if it never reached a provider).
    admission: Option<orch_core::clients::Admission>,
    /// Request and response bodies, for client keys that capture them.
    capture: Option<orch_store::CapturedBodies>,
    /// The request's `chat` span: how the request ended is recorded on it.
    span: tracing::Span,
    metrics: Arc<crate::metrics::Metrics>,
    dialect: &'static str,
    /// The configured route the request resolved to (a bounded metrics label).
    route: Option<String>,
    /// Time spent waiting on upstreams, on retry backoff and (streams) on
    /// the client: the rest of the request's time is the gateway's own.
    waited: Duration,
}

/// Bodies are cut to this before they are queued (the writer cuts again to
/// its configured size).
const CAPTURE_BYTES: usize = 64 << 10;

fn captured(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(CAPTURE_BYTES)]).into_owned()
}

impl LogDraft {
    fn new(state: &AppState, ingress: &ChatIngress, ts_ms: u64) -> Self {
        LogDraft {
            writer: state.services().log.clone(),
            started: ingress.started,
            rec: RequestLogRecord {
                ts_ms: i64::try_from(ts_ms).unwrap_or(i64::MAX),
                request_id: ingress.request_id().to_owned(),
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
                client_key_id: None,
            },
            written: false,
            admission: None,
            capture: None,
            // The `chat` span, set by `chat`.
            span: tracing::Span::none(),
            metrics: state.metrics().clone(),
            dialect: ingress.dialect.as_str(),
            route: None,
            waited: Duration::ZERO,
        }
    }

    /// Await `f`, counting its time as waiting (not the gateway's own).
    async fn waiting<F: std::future::Future>(&mut self, f: F) -> F::Output {
        let t = Instant::now();
        let out = f.await;
        self.waited += t.elapsed();
        out
    }

    /// Keep the response body, when this request's bodies are captured.
    fn respond(&mut self, body: &str) {
        if let Some(c) = &mut self.capture {
            c.response = captured(body.as_bytes());
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
        let total = self.started.elapsed();
        self.rec.latency_us = micros(total);
        crate::trace::finish_chat(&self.span, &self.rec);
        self.metrics.finished(&crate::metrics::Finished {
            ingress: self.dialect,
            model: self.route.as_deref(),
            provider: self.rec.provider.as_deref(),
            status,
            error_class: self.rec.error_class.as_deref(),
            streamed: self.rec.streamed,
            total,
            waited: self.waited,
            ttft: self.rec.ttft_us.map(Duration::from_micros),
            input_tokens: self.rec.input_tokens,
            output_tokens: self.rec.output_tokens,
            cached_tokens: self.rec.cached_tokens,
        });
        if let Some(admission) = self.admission.take() {
            let used = u64::from(self.rec.input_tokens.unwrap_or(0))
                + u64::from(self.rec.output_tokens.unwrap_or(0));
            admission.finish(now_ms(), used);
        }
        tracing::debug!(
            request_id = %self.rec.request_id, status, outcome = ?self.rec.outcome,
            attempts = self.rec.attempts, latency_us = self.rec.latency_us,
            "gen_ai.request.model" = %self.rec.requested_model, "request finished"
        );
        self.writer
            .push_with_bodies(self.rec.clone(), self.capture.take());
    }

    fn fail(&mut self, err: &ApiError) {
        self.respond(&err.body().to_string());
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
    /// Another key or target may succeed; the fault says whose it was.
    Retry(Fault, ApiError),
    /// Report this to the client.
    Final(ApiError),
}

/// Whose fault a retryable failure was, which decides what is retried and
/// what health learns.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// The target failed (connect, 5xx, timeout, plugin fault, an error in a
    /// 200): it counts against the target's health; the next target is
    /// tried.
    Target,
    /// The key was rate limited, asking to wait this long: it cools down,
    /// the next key is tried; the target's health is untouched.
    RateLimited(Option<Duration>),
    /// The key was rejected (401/403): it is disabled, the next key is tried.
    KeyRejected,
    /// The target cannot serve this request (a feature it lacks): the next
    /// target is tried; health is untouched.
    Unsuited,
    /// The request itself was refused (400, 413, 422…): targets of the same
    /// adapter would refuse it too, so only other adapters are tried.
    Refused,
}

/// What an attempt produced.
enum Served {
    /// A response for the handler to return.
    Response(Response),
    /// The stream went out through an [`Early`] channel.
    Streamed,
}

/// Serve a chat request end to end.
///
/// OpenAI streams open early: the response head and the role chunk go to
/// the client as soon as the first upstream stream starts, so a paced stream
/// is not delayed until its first token; failover still happens before the
/// first content chunk, invisibly (the next attempt's role chunk is dropped),
/// and a request that fails after opening ends with an in-stream error. The
/// attempts then run in a task of their own feeding the response body.
pub(crate) async fn chat(state: &AppState, headers: &HeaderMap, ingress: ChatIngress) -> Response {
    let span = crate::trace::chat_span(&ingress);
    chat_in(state, headers, ingress, span.clone())
        .instrument(span)
        .await
}

/// [`chat`] inside the request's `chat` span.
async fn chat_in(
    state: &AppState,
    headers: &HeaderMap,
    ingress: ChatIngress,
    span: tracing::Span,
) -> Response {
    let received_at_ms = unix_ms();
    let mut log = LogDraft::new(state, &ingress, received_at_ms);
    log.span = span;
    let prepared = match prepare(state, headers, &ingress, received_at_ms, &mut log).await {
        Ok(Ok(p)) => p,
        Ok(Err(resp)) => return resp,
        Err(err) => {
            log.fail(&err);
            return render_error(state, err.in_dialect(ingress.dialect), ingress.request_id())
                .await;
        }
    };
    if prepared.request.stream && ingress.dialect == Dialect::OpenAi {
        return stream_early(state.clone(), ingress, prepared, received_at_ms, log).await;
    }
    match attempts(state, &ingress, &prepared, received_at_ms, &mut log, None).await {
        Ok(Served::Response(resp)) => resp,
        Ok(Served::Streamed) => ApiError::unavailable("The stream ended.").into_response(),
        Err(err) => {
            log.fail(&err);
            render_error(state, err.in_dialect(ingress.dialect), ingress.request_id()).await
        }
    }
}

/// The channel an early-opened stream is served through.
pub(crate) struct Early {
    /// Where the response head goes, with the body it will stream, until the
    /// stream opens.
    head: Option<(tokio::sync::oneshot::Sender<Response>, Body)>,
    tx: tokio::sync::mpsc::Sender<EarlyOut>,
    /// Bytes (the role chunk) already went to the client.
    sent: bool,
}

/// What the attempts task sends the response body.
enum EarlyOut {
    /// Bytes for the client.
    Bytes(Bytes),
    /// The committed stream: the body pulls the rest itself, with no
    /// channel hop per chunk.
    Rest(Box<Streaming>),
}

impl Early {
    fn opened(&self) -> bool {
        self.head.is_none()
    }

    /// Send the response head (status 200, SSE headers).
    fn open(&mut self, label: &str) {
        if let Some((head, body)) = self.head.take() {
            let _ = head.send(stream_response(body, label));
        }
    }

    /// Send bytes; `false` when the client is gone.
    async fn send(&mut self, bytes: Bytes) -> bool {
        if bytes.is_empty() {
            return true;
        }
        self.sent = true;
        self.tx.send(EarlyOut::Bytes(bytes)).await.is_ok()
    }

    /// Hand the committed stream to the body.
    async fn hand_over(&mut self, rest: Streaming) {
        let _ = self.tx.send(EarlyOut::Rest(Box::new(rest))).await;
    }

    /// The request failed: an error response if the stream has not opened,
    /// else the in-stream error event (and no `[DONE]`).
    async fn fail(&mut self, err: ApiError) {
        match self.head.take() {
            Some((head, _)) => {
                let _ = head.send(err.into_response());
            }
            None => {
                let mut buf = bytes::BytesMut::new();
                crate::sse::put_event(&mut buf, None, &err.body().to_string());
                let _ = self.tx.send(EarlyOut::Bytes(buf.freeze())).await;
            }
        }
    }
}

fn stream_response(body: Body, label: &str) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(label) {
        h.insert(ADAPTER_HEADER, v);
    }
    resp
}

/// Run the attempts of an OpenAI stream in a task that feeds the response
/// body; answer with the head as soon as the task opens the stream (or with
/// its error). A client that goes away cancels the task.
async fn stream_early(
    state: AppState,
    ingress: ChatIngress,
    prepared: Prepared,
    received_at_ms: u64,
    mut log: LogDraft,
) -> Response {
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = tokio::sync::mpsc::channel::<EarlyOut>(16);
    let closed = tx.clone();
    enum Source {
        Channel(tokio::sync::mpsc::Receiver<EarlyOut>),
        Direct(Box<Streaming>),
    }
    let body = Body::from_stream(futures_util::stream::unfold(
        Source::Channel(rx),
        |source| async move {
            let mut rest = match source {
                Source::Channel(mut rx) => match rx.recv().await? {
                    EarlyOut::Bytes(b) => {
                        return Some((Ok::<Bytes, Infallible>(b), Source::Channel(rx)));
                    }
                    EarlyOut::Rest(rest) => rest,
                },
                Source::Direct(rest) => rest,
            };
            let b = rest.next().await?;
            Some((Ok(b), Source::Direct(rest)))
        },
    ));
    let mut early = Early {
        head: Some((head_tx, body)),
        tx,
        sent: false,
    };
    tokio::spawn(Instrument::in_current_span(async move {
        let work = async {
            let out = attempts(
                &state,
                &ingress,
                &prepared,
                received_at_ms,
                &mut log,
                Some(&mut early),
            )
            .await;
            match out {
                Ok(_) => {}
                Err(err) => {
                    log.fail(&err);
                    early.fail(err).await;
                }
            }
        };
        tokio::select! {
            () = closed.closed() => {}
            () = work => {}
        }
    }));
    head_rx.await.unwrap_or_else(|_| {
        ApiError::unavailable("The stream could not be started.").into_response()
    })
}

/// Render an error for the client: by the dialect's plugin when it is loaded
/// and works, else by the host in the same shape.
pub(crate) async fn render_error(state: &AppState, err: ApiError, request_id: &str) -> Response {
    if err.dialect == Dialect::OpenAi {
        return err.into_response();
    }
    let snapshot = state.services().plugins.snapshot();
    let Some(plugin) = snapshot.dialect(err.dialect.as_str()).cloned() else {
        return err.into_response();
    };
    let rendered = match plugin.dialect(request_id).await {
        Ok(mut inst) => inst.encode_error(&err.to_classified()).await,
        Err(f) => Err(f),
    };
    match rendered {
        Ok(r) => {
            let status = axum::http::StatusCode::from_u16(r.status).unwrap_or(err.status);
            let mut resp = (status, r.body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(s) = err.retry_after_s
                && let Ok(v) = HeaderValue::from_str(&s.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(f) => {
            tracing::warn!(plugin = %plugin.label(), fault = f.kind(), "dialect plugin failed to render an error: {f}");
            err.into_response()
        }
    }
}

/// The model and stream flag read from a native (non-OpenAI) request without
/// translating it.
#[derive(serde::Deserialize)]
struct NativeHead {
    model: Option<serde_json::Value>,
    stream: Option<serde_json::Value>,
    /// Anthropic's completion cap.
    max_tokens: Option<serde_json::Value>,
    /// Gemini's `generationConfig` (for `maxOutputTokens`).
    #[serde(rename = "generationConfig")]
    generation_config: Option<serde_json::Value>,
}

impl NativeHead {
    /// The completion's token cap the client set, in either dialect.
    fn max_tokens(&self) -> Option<u64> {
        self.max_tokens
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .or_else(|| {
                self.generation_config
                    .as_ref()
                    .and_then(|g| g.get("maxOutputTokens"))
                    .and_then(serde_json::Value::as_u64)
            })
    }
}

/// A client key's refusal in the API's terms.
fn refused(refusal: &orch_core::clients::Refusal) -> ApiError {
    use orch_core::clients::Refusal;
    let message = refusal.to_string();
    match refusal {
        Refusal::Disabled | Refusal::Expired => {
            let mut e = ApiError::unauthorized("an enabled, unexpired key");
            e.message = message;
            e
        }
        Refusal::ModelNotAllowed { .. } => {
            let mut e = ApiError::forbidden(message);
            e.code = "model_not_allowed".into();
            e.param = Some("model".into());
            e
        }
        Refusal::RateLimited { retry_after_ms, .. } => {
            let mut e = ApiError::rate_limited(message);
            e.class = None;
            e.retry_after_s =
                Some(u32::try_from(retry_after_ms.div_ceil(1000)).unwrap_or(u32::MAX));
            e
        }
        Refusal::BudgetExhausted { resets_at_ms } => {
            let mut e = ApiError::rate_limited(message);
            e.class = None;
            e.code = "insufficient_quota".into();
            e.retry_after_s = resets_at_ms.map(|at| {
                let wait = at.saturating_sub(now_ms());
                u32::try_from((wait.max(0) + 999) / 1000).unwrap_or(u32::MAX)
            });
            e
        }
    }
}

/// What the pipeline knows about a request before routing.
struct Request {
    model: String,
    stream: bool,
    /// The completion's token cap, when the client set one.
    max_tokens: Option<u64>,
    include_usage: bool,
    /// The canonical body and what it needs, when some target needs it.
    canonical: Option<(Bytes, ChatProfile)>,
    /// The transformers of this request; with any, every target gets the
    /// canonical form (no pass-through).
    transforms: Option<crate::transform::Chain>,
}

impl Request {
    /// Read the request and run its request transformers. Non-OpenAI
    /// requests are decoded by their dialect plugin only when a target of
    /// the route speaks another dialect or a transformer applies;
    /// same-dialect targets otherwise get the client's bytes (pass-through).
    async fn read(
        state: &AppState,
        live: &Live,
        snapshot: &Arc<Snapshot>,
        headers: &HeaderMap,
        ingress: &ChatIngress,
        client: Option<&crate::state::Client>,
    ) -> Result<Request, ApiError> {
        let mut request = Self::decode(live, snapshot, headers, ingress, client, state).await?;
        let Some(chain) = request.transforms.as_mut() else {
            return Ok(request);
        };
        let Some((body, _)) = &request.canonical else {
            return Err(ApiError::unavailable(format!(
                "The {} dialect plugin is not loaded, so this request cannot be transformed.",
                ingress.dialect.as_str()
            )));
        };
        let Some(new) = chain.on_request(body).await? else {
            return Ok(request);
        };
        let mut profile = ChatProfile::inspect(new.as_bytes()).map_err(|e| {
            tracing::warn!(request_id = %ingress.request_id(), "transformers produced an invalid canonical request: {e}");
            ApiError::transformer("request")
        })?;
        if ingress.dialect != Dialect::OpenAi {
            // The stream flag is the endpoint's or the client's, as decoded.
            profile.stream = request.stream;
        }
        request.model = chain.model().to_string();
        profile.model.clone_from(&request.model);
        request.max_tokens = profile.max_tokens;
        if ingress.dialect == Dialect::OpenAi {
            request.include_usage = profile.include_usage;
        }
        request.canonical = Some((Bytes::from(new), profile));
        Ok(request)
    }

    /// The transformers that apply to a chat request for `model`.
    fn chain(
        state: &AppState,
        snapshot: &Arc<Snapshot>,
        ingress: &ChatIngress,
        client: Option<&crate::state::Client>,
        model: &str,
        stream: bool,
    ) -> Option<crate::transform::Chain> {
        if ingress.operation != Operation::Chat {
            return None;
        }
        let identity = client.map(|c| orch_core::transform::ClientIdentity {
            id: c.id,
            name: &c.name,
        });
        state.transformers().chain(
            snapshot,
            model,
            identity,
            orch_core::contract::TransformContext {
                request_id: ingress.request_id().to_owned(),
                ingress_dialect: ingress.dialect.as_str().to_string(),
                requested_model: model.to_string(),
                streaming: stream,
                client_key_id: client.map(|c| c.id.to_string()),
                config: String::new(),
            },
        )
    }

    async fn decode(
        live: &Live,
        snapshot: &Arc<Snapshot>,
        headers: &HeaderMap,
        ingress: &ChatIngress,
        client: Option<&crate::state::Client>,
        state: &AppState,
    ) -> Result<Request, ApiError> {
        if ingress.dialect == Dialect::OpenAi {
            let profile = ChatProfile::inspect(&ingress.body)
                .map_err(|e| ApiError::bad_request(e.to_string(), e.param()))?;
            let transforms = Self::chain(
                state,
                snapshot,
                ingress,
                client,
                &profile.model,
                profile.stream,
            );
            return Ok(Request {
                model: profile.model.clone(),
                stream: profile.stream,
                max_tokens: profile.max_tokens,
                include_usage: profile.include_usage,
                canonical: Some((ingress.body.clone(), profile)),
                transforms,
            });
        }
        let (model, stream, max_tokens) = match &ingress.path_model {
            // The body is left to the dialect plugin; its token cap is read
            // only for a client key's admission (`prepare`).
            Some(m) => (m.clone(), ingress.endpoint_streams.unwrap_or(false), None),
            None => {
                let head: NativeHead = serde_json::from_slice(&ingress.body).map_err(|e| {
                    ApiError::bad_request(format!("the request body is not valid JSON: {e}"), None)
                })?;
                let model = match head.model {
                    Some(serde_json::Value::String(ref m)) if !m.is_empty() => m.clone(),
                    _ => {
                        return Err(ApiError::bad_request(
                            "model: a model name (string) is required",
                            Some("model"),
                        ));
                    }
                };
                (
                    model,
                    matches!(head.stream, Some(serde_json::Value::Bool(true))),
                    head.max_tokens(),
                )
            }
        };
        let stream = stream && ingress.operation == Operation::Chat;
        let transforms = Self::chain(state, snapshot, ingress, client, &model, stream);
        // With transformers the model is resolved after them (a rule may
        // rewrite it), and every target gets the canonical form.
        let translating = transforms.is_some() || {
            let route = live
                .catalogue
                .resolve(&model)
                .ok_or_else(|| ApiError::model_not_found(&model))?
                .route;
            route.targets.iter().any(|t| {
                target_adapter(live, snapshot, t)
                    .is_some_and(|a| a.info.dialect != ingress.dialect.as_str())
            })
        };
        let mut request = Request {
            model,
            stream,
            max_tokens,
            include_usage: false,
            canonical: None,
            transforms,
        };
        if !translating && ingress.operation == Operation::Chat {
            return Ok(request);
        }
        let Some(plugin) = snapshot.dialect(ingress.dialect.as_str()).cloned() else {
            if translating {
                return Err(ApiError::unavailable(format!(
                    "The {} dialect plugin is not loaded, so this request cannot be translated.",
                    ingress.dialect.as_str()
                )));
            }
            return Ok(request);
        };
        let mut inst = plugin
            .dialect(ingress.request_id())
            .await
            .map_err(|f| dialect_fault(&plugin, &f))?;
        let decoded = inst
            .decode_request(&orch_core::contract::IngressRequest {
                operation: ingress.operation,
                path_model: ingress.path_model.clone(),
                endpoint_streams: ingress.endpoint_streams,
                headers: dialect_headers(headers, ingress.dialect),
                body: ingress.body.to_vec(),
            })
            .await
            .map_err(|e| match e {
                CallError::Plugin(c) => ApiError::classified(&c),
                CallError::Fault(f) => dialect_fault(&plugin, &f),
            })?;
        let mut profile = ChatProfile::inspect(decoded.body.as_bytes()).map_err(|e| {
            tracing::warn!(plugin = %plugin.label(), "dialect plugin produced an invalid canonical request: {e}");
            ApiError::plugin(&orch_plugin_host::PluginFault::InvalidOutput(e.to_string()))
        })?;
        profile.model.clone_from(&request.model);
        request.canonical = Some((Bytes::from(decoded.body), profile));
        Ok(request)
    }
}

/// The adapter that serves a target: the version it pins, else the newest
/// loaded version of its provider's adapter.
fn target_adapter<'a>(
    live: &Live,
    snapshot: &'a Snapshot,
    target: &Target,
) -> Option<&'a Arc<LoadedPlugin>> {
    let id = &live.providers.get(target.provider)?.adapter;
    match &target.adapter_version {
        Some(v) => snapshot.adapter_at(id, v),
        None => snapshot.adapter(id),
    }
}

fn dialect_fault(plugin: &LoadedPlugin, f: &orch_plugin_host::PluginFault) -> ApiError {
    tracing::warn!(plugin = %plugin.label(), fault = f.kind(), "dialect plugin fault: {f}");
    ApiError::plugin(f)
}

/// The client headers a dialect plugin may see: its own protocol headers,
/// never credentials.
fn dialect_headers(headers: &HeaderMap, dialect: Dialect) -> Vec<(String, String)> {
    let prefix = match dialect {
        Dialect::Anthropic => "anthropic-",
        Dialect::Gemini => "x-goog-api-client",
        Dialect::OpenAi => return Vec::new(),
    };
    headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with(prefix))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// A request read, authenticated and routed: ready for its attempts.
struct Prepared {
    live: Arc<Live>,
    snapshot: Arc<Snapshot>,
    request: Request,
    /// The route's position in the catalogue.
    route: usize,
    /// The part of the requested name a wildcard alias matched.
    wildcard: Option<String>,
    plan: routing::Plan,
    deadline: Instant,
}

/// Authenticate, read and route. `Ok(Err(response))` when the request is
/// already answered (a token count the gateway estimates).
async fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    ingress: &ChatIngress,
    received_at_ms: u64,
    log: &mut LogDraft,
) -> Result<Result<Prepared, Response>, ApiError> {
    let live = state.live();
    let client = authenticate(
        &live,
        headers,
        ingress.dialect,
        ingress.query_key.as_deref(),
    )?;
    let snapshot = state.services().plugins.snapshot();
    let request =
        Request::read(state, &live, &snapshot, headers, ingress, client.as_deref()).await?;
    log.rec.requested_model = crate::error::clip(&request.model, 256);
    log.span
        .record("gen_ai.request.model", log.rec.requested_model.as_str());
    log.rec.streamed = request.stream;
    if let Some(client) = client {
        log.rec.client_key_id = Some(client.id);
        if client.capture_bodies {
            log.capture = Some(orch_store::CapturedBodies {
                request: captured(&ingress.body),
                response: String::new(),
            });
        }
        let max_tokens = request.max_tokens.or_else(|| {
            ingress.path_model.as_ref()?;
            serde_json::from_slice::<NativeHead>(&ingress.body)
                .ok()?
                .max_tokens()
        });
        let estimate = orch_core::clients::estimate_tokens(ingress.body.len(), max_tokens);
        let now = i64::try_from(received_at_ms).unwrap_or(i64::MAX);
        log.admission = Some(
            client
                .state
                .admit(now, &request.model, estimate)
                .map_err(|refusal| refused(&refusal))?,
        );
    }
    let resolved = live
        .catalogue
        .resolve(&request.model)
        .ok_or_else(|| ApiError::model_not_found(&request.model))?;
    log.route = Some(resolved.route.name.clone());
    let session = match &resolved.route.strategy {
        routing::Strategy::Sticky { header } => session_key(header.as_deref(), headers, &request),
        _ => None,
    };
    let plan = match plan(
        resolved.route,
        &live.routes[resolved.index],
        &request,
        ingress,
        &live,
        &snapshot,
        session.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) if ingress.operation == Operation::CountTokens => {
            return count_locally(state, ingress, &request, received_at_ms, log, e)
                .await
                .map(Err);
        }
        Err(e) => return Err(e),
    };
    let deadline = ingress.started + live.request_timeout;
    let (route, wildcard) = (resolved.index, resolved.wildcard.map(str::to_owned));
    Ok(Ok(Prepared {
        live,
        snapshot,
        request,
        route,
        wildcard,
        plan,
        deadline,
    }))
}

/// The session key of a sticky route: the configured header, else the
/// request's `prompt_cache_key`, `user` or `metadata.user_id`.
fn session_key(header: Option<&str>, headers: &HeaderMap, request: &Request) -> Option<String> {
    if let Some(name) = header {
        return headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        user_id: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Session {
        prompt_cache_key: Option<String>,
        user: Option<String>,
        metadata: Option<Metadata>,
    }
    let (body, _) = request.canonical.as_ref()?;
    let s: Session = serde_json::from_slice(body).ok()?;
    s.prompt_cache_key
        .or(s.user)
        .or(s.metadata.and_then(|m| m.user_id))
        .filter(|k| !k.is_empty())
}

/// Claims a target's half-open trial; gives it back unless the attempt
/// reported an outcome.
struct Trial<'a>(Option<&'a orch_core::routing::health::Health>);

impl Trial<'_> {
    fn settled(&mut self) {
        self.0 = None;
    }
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.0 {
            h.abandon_trial();
        }
    }
}

/// Try the planned targets in order until one serves the request: each
/// target's keys in turn (a rate-limited or rejected key gives way to the
/// next key), then the next target; never the same key twice, never more
/// than the route's attempts, retries only within the retry budget, and
/// with a jittered backoff before retrying the same provider.
async fn attempts(
    state: &AppState,
    ingress: &ChatIngress,
    prepared: &Prepared,
    received_at_ms: u64,
    log: &mut LogDraft,
    mut early: Option<&mut Early>,
) -> Result<Served, ApiError> {
    let Prepared {
        live,
        snapshot,
        request,
        route,
        wildcard,
        plan,
        deadline,
    } = prepared;
    let deadline = *deadline;
    let rs = &live.routes[*route];
    let route = &live.catalogue.routes()[*route];
    let policy = &route.retry;
    rs.budget.deposit(policy);
    // In panic mode every target is ejected: one attempt, no retries.
    let max_attempts = if plan.panic { 1 } else { policy.max_attempts };
    let mut sent = 0u32;
    // (provider, key, upstream model): a key that failed for a target is
    // not tried again for it in this request (a rejected key is disabled
    // for every model anyway).
    let mut tried_keys: Vec<(usize, usize, &str)> = Vec::new();
    let mut refused: Vec<&str> = Vec::new();
    let mut previous: Option<usize> = None;
    let mut waited = false;
    let mut last: Option<ApiError> = None;
    'targets: for (si, step) in plan.steps.iter().enumerate() {
        let last_step = si + 1 == plan.steps.len();
        let Some(target) = route.targets.get(step.target) else {
            continue;
        };
        let Some(provider) = live.providers.get(target.provider) else {
            continue;
        };
        if refused.contains(&provider.adapter.as_str()) {
            continue;
        }
        let Some(plugin) = target_adapter(live, snapshot, target).cloned() else {
            continue;
        };
        let health = &rs.health[step.target];
        let mut trial = Trial(None);
        if step.trial {
            if !health.begin_trial(Instant::now()) {
                continue;
            }
            trial.0 = Some(health);
        }
        loop {
            // A keyless provider has one implicit key: its rate limits
            // cool the target's model the same way.
            let model = target.upstream_model_for(&request.model, wildcard.as_deref());
            let picked = provider.pool.pick(Instant::now(), model, |k| {
                tried_keys.contains(&(target.provider, k, model))
            });
            let key = match picked {
                Some(k) => Some(k),
                None => {
                    last.get_or_insert_with(|| no_usable_key(provider, model));
                    continue 'targets;
                }
            };
            if sent >= max_attempts {
                break 'targets;
            }
            if sent > 0 {
                if !rs.budget.withdraw(policy, Instant::now()) {
                    tracing::info!(request_id = %ingress.request_id(), model = %route.name, "retry budget spent");
                    break 'targets;
                }
                // Retrying the same provider: a jittered backoff. (A
                // rate-limited key's own wait is its cool-down; the next key
                // need not wait.)
                if previous == Some(target.provider) {
                    let wait = policy.backoff(sent - 1, &mut rand::rng());
                    let left = deadline.saturating_duration_since(Instant::now());
                    log.waiting(tokio::time::sleep(wait.min(left))).await;
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::deadline());
            }
            sent += 1;
            if sent > 1 {
                state.metrics().failover(&route.name);
            }
            let upstream_model = model;
            let started = Instant::now();
            let attempt = Attempt::new(
                state,
                ingress,
                request,
                snapshot,
                provider,
                &plugin,
                target,
                key,
                upstream_model,
                received_at_ms,
                deadline,
            );
            let attempt = match attempt {
                Ok(a) => a,
                Err(e) => return Err(e),
            };
            log.rec.provider = Some(provider.name.clone());
            log.rec.upstream_model = Some(upstream_model.to_owned());
            log.rec.plugin = Some(plugin.label());
            let span = crate::trace::attempt_span(&provider.name, upstream_model, &plugin, sent);
            let outcome = attempt
                .run(log, early.as_deref_mut())
                .instrument(span.clone())
                .await;
            match &outcome {
                Ok(_) => crate::trace::attempt_outcome(&span, "ok", None),
                Err(Failed::Final(e)) => crate::trace::attempt_outcome(&span, "error", Some(e)),
                Err(Failed::Retry(_, e)) => crate::trace::attempt_outcome(&span, "retry", Some(e)),
            }
            state.metrics().attempt(
                &provider.name,
                match &outcome {
                    Ok(_) => "ok",
                    Err(Failed::Final(_)) => "error",
                    Err(Failed::Retry(Fault::Target, _)) => "target_error",
                    Err(Failed::Retry(Fault::RateLimited(_), _)) => "rate_limited",
                    Err(Failed::Retry(Fault::KeyRejected, _)) => "key_rejected",
                    Err(Failed::Retry(Fault::Unsuited, _)) => "unsuited",
                    Err(Failed::Retry(Fault::Refused, _)) => "refused",
                },
            );
            match outcome {
                Ok(served) => {
                    trial.settled();
                    health.success(Instant::now(), Some(started.elapsed()));
                    if let Some(k) = key {
                        provider.pool.worked(k);
                    }
                    return Ok(served);
                }
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Retry(fault, e)) => {
                    tracing::info!(
                        request_id = %ingress.request_id(), provider = %provider.name,
                        plugin = %plugin.label(), code = %e.code, ?fault, "attempt failed"
                    );
                    let now = Instant::now();
                    if let Some(k) = key {
                        tried_keys.push((target.provider, k, upstream_model));
                    }
                    previous = Some(target.provider);
                    let why = e.message.clone();
                    last = Some(e);
                    match fault {
                        Fault::RateLimited(after) => {
                            if let Some(k) = key {
                                crate::share::key_rate_limited(
                                    state,
                                    provider,
                                    k,
                                    upstream_model,
                                    now,
                                    after,
                                    &why,
                                );
                                // The last option asked for a short wait:
                                // wait once and retry the same key.
                                let other_key = provider
                                    .pool
                                    .pick(now, upstream_model, |j| {
                                        tried_keys.contains(&(target.provider, j, upstream_model))
                                    })
                                    .is_some();
                                if let Some(d) = after
                                    && last_step
                                    && !other_key
                                    && !waited
                                    && d <= policy.retry_after_cap
                                    && now + d < deadline
                                {
                                    waited = true;
                                    log.waiting(tokio::time::sleep(d)).await;
                                    tried_keys
                                        .retain(|&x| x != (target.provider, k, upstream_model));
                                }
                            }
                        }
                        Fault::KeyRejected if provider.keys.is_empty() => {
                            trial.settled();
                            let id = || target_id(&provider.name, upstream_model);
                            crate::share::target_failed(state, health, id, now, &why, false);
                            continue 'targets;
                        }
                        Fault::KeyRejected => {
                            if let Some(k) = key {
                                crate::share::key_rejected(state, provider, k, now, &why);
                            }
                        }
                        Fault::Target => {
                            trial.settled();
                            let id = || target_id(&provider.name, upstream_model);
                            crate::share::target_failed(state, health, id, now, &why, false);
                            continue 'targets;
                        }
                        Fault::Unsuited => continue 'targets,
                        Fault::Refused => {
                            refused.push(provider.adapter.as_str());
                            continue 'targets;
                        }
                    }
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| ApiError::unavailable("No target is available for this model.")))
}

/// Why a provider has no key for `model` right now: all rejected (503),
/// or rate limited until the soonest cool-down ends (429 with that wait).
fn no_usable_key(provider: &Provider, model: &str) -> ApiError {
    let now = Instant::now();
    if provider.pool.all_disabled(now) {
        return ApiError::unavailable(
            "Every API key of the provider was rejected by it; the gateway's credentials need attention.",
        );
    }
    let mut e =
        ApiError::rate_limited("Every API key of the provider is rate limited; retry later.");
    e.retry_after_s = provider.pool.next_ready(now, model).map(|at| {
        at.saturating_duration_since(now)
            .as_secs_f64()
            .ceil()
            .max(1.0) as u32
    });
    e
}

/// A token count no target can answer: the gateway estimates it from the
/// canonical request (about four characters per token) and says so in the
/// `x-orchestrator-token-count` header (`estimate`).
async fn count_locally(
    state: &AppState,
    ingress: &ChatIngress,
    request: &Request,
    received_at_ms: u64,
    log: &mut LogDraft,
    why: ApiError,
) -> Result<Response, ApiError> {
    let Some((body, _)) = &request.canonical else {
        return Err(why);
    };
    let tokens = canonical::estimate_input_tokens(body);
    let snapshot = state.services().plugins.snapshot();
    let plugin = snapshot
        .dialect(ingress.dialect.as_str())
        .cloned()
        .ok_or(why)?;
    let mut inst = plugin
        .dialect(ingress.request_id())
        .await
        .map_err(|f| dialect_fault(&plugin, &f))?;
    let ectx = orch_core::contract::EgressContext {
        request_id: ingress.request_id().to_owned(),
        requested_model: request.model.clone(),
        received_at_ms,
    };
    let out = inst
        .encode_token_count(&ectx, tokens)
        .await
        .map_err(|f| dialect_fault(&plugin, &f))?;
    log.finish(200, Outcome::Ok, None);
    let mut resp = json_response(out);
    resp.headers_mut().insert(
        "x-orchestrator-token-count",
        HeaderValue::from_static("estimate"),
    );
    Ok(resp)
}

fn json_response(body: String) -> Response {
    let mut out = Response::new(Body::from(body));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}

/// Order the targets that can serve this request, or say why none can.
/// A same-dialect target takes the request as it is; a translating target
/// must have every capability the canonical request needs (its configured
/// capabilities, else the adapter's declared ones).
fn plan(
    route: &ModelRoute,
    rs: &crate::state::RouteState,
    request: &Request,
    ingress: &ChatIngress,
    live: &Live,
    snapshot: &Snapshot,
    session: Option<&str>,
) -> Result<routing::Plan, ApiError> {
    let loaded_adapter = |t: &Target| target_adapter(live, snapshot, t);
    // A quarantined adapter is skipped like a missing one.
    let adapter_of = |t: &Target| loaded_adapter(t).filter(|a| a.quarantined().is_none());
    let counting = ingress.operation == Operation::CountTokens;
    let has =
        |t: &Target, a: &LoadedPlugin, c: orch_core::contract::Capability| match &t.capabilities {
            Some(list) => list.contains(&c),
            None => a.info.has(c),
        };
    let serves = |t: &Target, a: &Arc<LoadedPlugin>| {
        if counting && !a.info.capabilities.iter().any(|c| c == "count-tokens") {
            return false;
        }
        if request.transforms.is_none()
            && ingress.dialect != Dialect::OpenAi
            && a.info.dialect == ingress.dialect.as_str()
        {
            return true;
        }
        request
            .canonical
            .as_ref()
            .is_some_and(|(_, p)| p.needs.iter().all(|c| has(t, a, *c)))
    };
    let now = Instant::now();
    let least_latency = route.strategy == routing::Strategy::LeastLatency;
    let plan = routing::plan(
        route,
        |i, t| {
            if !adapter_of(t).is_some_and(|a| serves(t, a)) {
                return None;
            }
            let h = &rs.health[i];
            Some(Candidate {
                standing: match h.admission(now) {
                    Admission::Serve(f) => Standing::Serve(f),
                    Admission::Trial => Standing::Trial,
                    Admission::Ejected { until } => Standing::Ejected(until),
                },
                latency: if least_latency { h.latency(now) } else { None },
            })
        },
        session,
        &mut rand::rng(),
    );
    if !plan.steps.is_empty() {
        return Ok(plan);
    }
    if route.targets.is_empty() {
        return Err(ApiError::unavailable(format!(
            "Every target of model `{}` is disabled, or on a disabled provider.",
            crate::error::clip(&request.model, 200)
        )));
    }
    let loaded: Vec<_> = route
        .targets
        .iter()
        .filter_map(|t| adapter_of(t).map(|a| (t, a)))
        .collect();
    if loaded.is_empty() {
        if let Some(wait) = route
            .targets
            .iter()
            .filter_map(|t| loaded_adapter(t)?.quarantined())
            .min()
        {
            let mut e = ApiError::unavailable(
                "The adapter plugin for this model is quarantined after repeated faults; retry later.",
            );
            e.retry_after_s = Some(u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX));
            return Err(e);
        }
        return Err(ApiError::unavailable(
            "No adapter plugin for this model's providers is loaded.",
        ));
    }
    if counting {
        return Err(ApiError::bad_request(
            "No provider configured for this model can count tokens.",
            None,
        ));
    }
    let needs = request
        .canonical
        .as_ref()
        .map(|(_, p)| p.needs.clone())
        .unwrap_or_default();
    let missing: Vec<&str> = needs
        .iter()
        .filter(|c| !loaded.iter().any(|(t, a)| has(t, a, **c)))
        .map(|c| c.as_str())
        .collect();
    Err(ApiError::bad_request(
        format!(
            "No provider configured for model `{}` supports: {}.",
            crate::error::clip(&request.model, 200),
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
    target: &'a Target,
    /// The provider key this attempt uses.
    key: Option<usize>,
    ctx: RequestContext,
    /// The body the adapter gets, UTF-8, with the target's overrides.
    payload: Bytes,
    request: &'a Request,
    /// The client's dialect.
    dialect: Dialect,
    /// The target speaks the client's dialect: bytes pass through.
    native: bool,
    snapshot: &'a Snapshot,
    /// The request's deadline.
    deadline: Instant,
    /// This attempt's own bound until the response (or, streaming, the
    /// first content): the target's timeout and TTFT timeout.
    attempt_deadline: Instant,
    /// The request's trace, for the upstream's `traceparent`.
    trace: crate::trace::RequestTrace,
}

impl<'a> Attempt<'a> {
    #[allow(
        clippy::too_many_arguments,
        reason = "one attempt joins the request, the route's target and its provider"
    )]
    fn new(
        state: &'a AppState,
        ingress: &ChatIngress,
        request: &'a Request,
        snapshot: &'a Snapshot,
        provider: &'a Provider,
        plugin: &'a Arc<LoadedPlugin>,
        target: &'a Target,
        key: Option<usize>,
        upstream_model: &str,
        received_at_ms: u64,
        deadline: Instant,
    ) -> Result<Attempt<'a>, ApiError> {
        let native = request.transforms.is_none()
            && ingress.dialect != Dialect::OpenAi
            && plugin.info.dialect == ingress.dialect.as_str();
        let mut payload = if native {
            ingress.body.clone()
        } else {
            match &request.canonical {
                Some((body, _)) => body.clone(),
                None => {
                    return Err(ApiError::unavailable(
                        "The request could not be translated.",
                    ));
                }
            }
        };
        if !target.overrides.is_empty() {
            let mut v: serde_json::Value = serde_json::from_slice(&payload).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"), None)
            })?;
            target.overrides.apply(&mut v);
            payload = Bytes::from(v.to_string());
        }
        if std::str::from_utf8(&payload).is_err() {
            return Err(ApiError::bad_request("the request body is not UTF-8", None));
        }
        let now = Instant::now();
        let mut attempt_deadline = deadline;
        if let Some(t) = target.timeout {
            attempt_deadline = attempt_deadline.min(now + t);
        }
        if request.stream
            && let Some(t) = target.ttft_timeout
        {
            attempt_deadline = attempt_deadline.min(now + t);
        }
        let ctx = RequestContext {
            request_id: ingress.request_id().to_owned(),
            operation: ingress.operation,
            requested_model: request.model.clone(),
            upstream_model: upstream_model.to_owned(),
            streaming: request.stream,
            form: if native {
                PayloadForm::Native
            } else {
                PayloadForm::Canonical
            },
            ingress_dialect: ingress.dialect.as_str().to_string(),
            received_at_ms,
            provider: provider.view.clone(),
        };
        Ok(Attempt {
            state,
            provider,
            plugin,
            target,
            key,
            ctx,
            payload,
            request,
            dialect: ingress.dialect,
            native,
            snapshot,
            deadline,
            attempt_deadline,
            trace: ingress.trace.clone(),
        })
    }

    /// Time left for this attempt: the request's deadline ends the request,
    /// the attempt's own bound only this attempt.
    fn remaining(&self) -> Result<Duration, Failed> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(Failed::Final(ApiError::deadline()));
        }
        if now >= self.attempt_deadline {
            return Err(Failed::Retry(Fault::Target, ApiError::attempt_timeout()));
        }
        Ok(self.attempt_deadline.min(self.deadline) - now)
    }

    /// A typed error, from the adapter or the upstream: what it means for
    /// the key, the target and the other targets.
    fn classified(&self, e: ClassifiedError) -> Failed {
        let mut e = e;
        e.message = self.provider.scrub(&e.message);
        let err = ApiError::classified(&e);
        let fault = match e.class {
            ErrorClass::Unsupported => Fault::Unsuited,
            ErrorClass::RateLimited => Fault::RateLimited(
                e.retry_after_ms
                    .map(|ms| Duration::from_millis(u64::from(ms))),
            ),
            ErrorClass::Authentication | ErrorClass::PermissionDenied => Fault::KeyRejected,
            _ if e.retryable => Fault::Target,
            _ => Fault::Refused,
        };
        Failed::Retry(fault, err)
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
        Failed::Retry(Fault::Target, ApiError::plugin(f))
    }

    /// The upstream could not be reached or broke the exchange.
    fn transport(&self, e: &orch_upstream::UpstreamError) -> Failed {
        Failed::Retry(Fault::Target, ApiError::upstream(e))
    }

    /// A 2xx body or event matched one of the provider's error matchers.
    fn hidden_error(&self, data: &[u8]) -> Result<(), Failed> {
        match self.provider.hides_error(data) {
            None => Ok(()),
            Some(m) => {
                tracing::info!(
                    request_id = %self.ctx.request_id, provider = %self.provider.name,
                    matcher = %m, "an error hidden in a successful response"
                );
                let mut e = ClassifiedError::new(
                    ErrorClass::Server,
                    true,
                    "The upstream provider answered with an error.",
                );
                e.code = Some("upstream_error_in_body".into());
                Err(self.classified(e))
            }
        }
    }

    async fn run(
        self,
        log: &mut LogDraft,
        mut early: Option<&mut Early>,
    ) -> Result<Served, Failed> {
        let mut inst = self
            .plugin
            .adapter(&self.ctx)
            .await
            .map_err(|f| self.fault(&f))?;
        let payload = std::str::from_utf8(&self.payload).unwrap_or_default();
        let mut up = inst
            .build_request(payload)
            .await
            .map_err(|e| self.call_error(e))?;
        // The request as the adapter built it, for a shadow to compare with.
        let built = self.target.shadow.is_some().then(|| up.clone());
        for (name, value) in &self.target.headers {
            up.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            up.headers.push((name.clone(), value.clone()));
        }
        // Last, so neither the adapter nor a target header can forge it.
        let span = tracing::Span::current();
        self.trace.stamp(&span, &mut up.headers);
        crate::trace::server_address(&span, &up.url);
        let body = match &up.body {
            RequestBody::Empty => Bytes::new(),
            RequestBody::Bytes(b) => Bytes::from(b.clone()),
            RequestBody::Forward(edits) => match canonical::apply_edits(&self.payload, edits) {
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
        let resp = log
            .waiting(services.upstream.send(
                &up,
                body,
                self.provider.key(self.key),
                Some(remaining),
            ))
            .await
            .map_err(|e| {
                tracing::info!(request_id = %self.ctx.request_id, provider = %self.provider.name, "upstream send failed: {e}");
                // The attempt's own time ran out, or the request's.
                match self.remaining() {
                    Err(f) => f,
                    Ok(_) => self.transport(&e),
                }
            })?;
        let status = resp.status;
        if !(200..300).contains(&status) {
            let headers = resp.headers.clone();
            let remaining = self.remaining()?;
            let body = log
                .waiting(tokio::time::timeout(remaining, resp.read_body()))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let mut classified = match inst.classify_error(status, &headers, &body).await {
                Ok(c) => c,
                Err(f) => {
                    self.fault(&f);
                    host_classification(status)
                }
            };
            if classified.retry_after_ms.is_none()
                && let Some(d) = routing::retry::retry_after(&headers, SystemTime::now())
            {
                classified.retry_after_ms = Some(u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
            }
            return Err(self.classified(classified));
        }
        let headers = resp.headers.clone();
        if !self.request.stream {
            let remaining = self.remaining()?;
            let body = match log
                .waiting(tokio::time::timeout(remaining, resp.read_body()))
                .await
            {
                Err(_) => {
                    return Err(self
                        .remaining()
                        .err()
                        .unwrap_or(Failed::Final(ApiError::deadline())));
                }
                Ok(Err(e)) => return Err(self.transport(&e)),
                Ok(Ok(b)) => b,
            };
            self.hidden_error(&body)?;
            crate::trace::response_model(&log.span, &body);
            let parsed = inst
                .parse_response(status, &headers, &body)
                .await
                .map_err(|e| self.call_error(e))?;
            if let Some(request) = built {
                self.shadow(request, status, headers, body, &parsed);
            }
            let body = match &self.request.transforms {
                Some(chain) => chain
                    .on_response(parsed.body, parsed.usage)
                    .await
                    .map_err(Failed::Final)?,
                None => parsed.body,
            };
            let body = self.encode(body, parsed.usage).await?;
            log.usage(parsed.usage);
            log.respond(&body);
            log.finish(200, Outcome::Ok, None);
            let mut out = json_response(body);
            self.label(&mut out);
            return Ok(Served::Response(out));
        }

        inst.start_stream(status, &headers)
            .await
            .map_err(|f| self.fault(&f))?;
        let mut frames = resp.frames(up.framing);
        // An earlier attempt already sent the role chunk: drop this one's.
        let reopened = early.as_ref().is_some_and(|e| e.sent);
        let mut out = self.client_stream(reopened).await?;
        let label = self.plugin.label();
        let opener = match early.as_deref_mut() {
            Some(e) if !e.opened() => {
                e.open(&label);
                true
            }
            _ => false,
        };
        // Before the commit point: fail over on error; hold everything back
        // unless this attempt opened the stream early.
        while !out.committed && !out.done {
            let remaining = self.remaining()?;
            let wait = remaining.min(services.upstream.idle_timeout());
            match log.waiting(frames.next_within(wait)).await {
                None => {
                    let items = inst.finish().await.map_err(|e| self.call_error(e))?;
                    out.absorb(items).await.map_err(Failed::Final)?;
                    if !out.done {
                        return Err(self.transport(&orch_upstream::UpstreamError::Malformed(
                            "stream ended early".into(),
                        )));
                    }
                }
                Some(Err(e)) => {
                    self.remaining()?;
                    return Err(self.transport(&e));
                }
                Some(Ok(frame)) => {
                    self.hidden_error(&frame.data)?;
                    let items = inst.push(&frame).await.map_err(|e| self.call_error(e))?;
                    out.absorb(items).await.map_err(Failed::Final)?;
                }
            }
            if opener
                && !out.committed
                && out.has_output()
                && let Some(e) = early.as_deref_mut()
                && !e.send(out.take()).await
            {
                return Ok(Served::Streamed);
            }
        }
        log.ttft(out.first_content_at);
        let first = out.take();
        let mut stream = Streaming {
            inst,
            frames,
            out,
            log: std::mem::replace(log, log.detached()),
            finished: false,
            // The attempt's span: the rest of the stream is part of it.
            span: tracing::Span::current(),
            // From here the stream waits on the client until it asks for more.
            yielded: Some(Instant::now()),
        };
        stream.log.rec.streamed = true;
        if let Some(e) = early {
            if e.send(first).await {
                e.hand_over(stream).await;
            }
            return Ok(Served::Streamed);
        }
        let body =
            futures_util::stream::unfold((Some(first), stream), |(first, mut st)| async move {
                if let Some(b) = first {
                    return Some((Ok::<Bytes, Infallible>(b), (None, st)));
                }
                st.next().await.map(|b| (Ok(b), (None, st)))
            });
        Ok(Served::Response(stream_response(
            Body::from_stream(body),
            &label,
        )))
    }

    /// Hand what this attempt did to the target's shadow version, if it is
    /// loaded (and is not the version that served).
    fn shadow(
        &self,
        request: orch_core::contract::UpstreamRequest,
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
        parsed: &orch_core::contract::ParsedResponse,
    ) {
        let Some(shadow) = &self.target.shadow else {
            return;
        };
        let id = shadow.id.as_deref().unwrap_or(&self.provider.adapter);
        let Some(plugin) = self.snapshot.adapter_at(id, &shadow.version) else {
            return;
        };
        if plugin.sha256 == self.plugin.sha256 {
            return;
        }
        crate::shadow::spawn(
            self.state.shadow_book().clone(),
            plugin.clone(),
            crate::shadow::Primary {
                plugin: self.plugin.clone(),
                ctx: self.ctx.clone(),
                payload: self.payload.clone(),
                request,
                status,
                headers,
                body,
                response: parsed.body.clone(),
                usage: parsed.usage,
            },
        );
    }

    /// The client's body for a translated or passed-through response.
    async fn encode(&self, body: String, usage: Option<Usage>) -> Result<String, Failed> {
        if self.native || self.dialect == Dialect::OpenAi {
            return Ok(body);
        }
        let mut inst = self.dialect_instance().await?;
        let ectx = self.egress_context();
        let out = if self.ctx.operation == Operation::CountTokens {
            inst.encode_token_count(&ectx, usage.map_or(0, |u| u.input_tokens))
                .await
                .map_err(CallError::Fault)
        } else {
            inst.encode_response(&ectx, &body, usage).await
        };
        out.map_err(|e| Failed::Final(call_api_error(&e)))
    }

    async fn dialect_instance(&self) -> Result<orch_plugin_host::DialectInstance, Failed> {
        let plugin = self
            .snapshot
            .dialect(self.dialect.as_str())
            .cloned()
            .ok_or_else(|| {
                Failed::Final(ApiError::unavailable(format!(
                    "The {} dialect plugin is not loaded.",
                    self.dialect.as_str()
                )))
            })?;
        plugin
            .dialect(&self.ctx.request_id)
            .await
            .map_err(|f| Failed::Final(dialect_fault(&plugin, &f)))
    }

    fn egress_context(&self) -> orch_core::contract::EgressContext {
        orch_core::contract::EgressContext {
            request_id: self.ctx.request_id.clone(),
            requested_model: self.ctx.requested_model.clone(),
            received_at_ms: self.ctx.received_at_ms,
        }
    }

    /// The client stream in the client's dialect. `reopened`: the client
    /// already has a role chunk from an earlier attempt.
    async fn client_stream(&self, reopened: bool) -> Result<ClientStream, Failed> {
        let mut out = self.encoder(reopened).await?;
        if let Some(chain) = &self.request.transforms {
            out.filter_with(chain.filters().await.map_err(Failed::Final)?);
        }
        Ok(out)
    }

    async fn encoder(&self, reopened: bool) -> Result<ClientStream, Failed> {
        if self.dialect == Dialect::OpenAi {
            return Ok(ClientStream::openai(
                &self.ctx.requested_model,
                self.request.include_usage,
                self.ctx.received_at_ms / 1000,
                reopened,
            ));
        }
        if self.native {
            return Ok(ClientStream::native(self.dialect));
        }
        let mut inst = self.dialect_instance().await?;
        inst.start_stream(&self.egress_context())
            .await
            .map_err(|f| Failed::Final(dialect_fault(inst.plugin(), &f)))?;
        Ok(ClientStream::plugin(inst, self.dialect))
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
            admission: None,
            capture: None,
            span: self.span.clone(),
            metrics: self.metrics.clone(),
            dialect: self.dialect,
            route: self.route.clone(),
            waited: self.waited,
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
    out: ClientStream,
    log: LogDraft,
    finished: bool,
    /// When the last bytes went to the client: until the next call, the
    /// stream waits on the client.
    yielded: Option<Instant>,
    /// The attempt's span, entered while the stream is read.
    span: tracing::Span,
}

impl Streaming {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(t) = self.yielded.take() {
            self.log.waited += t.elapsed();
        }
        let span = self.span.clone();
        let out = self.produce().instrument(span).await;
        if out.is_some() {
            self.yielded = Some(Instant::now());
        }
        out
    }

    async fn produce(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        loop {
            if self.out.done {
                // The upstream connection goes back to its pool once the
                // body's end is read.
                self.frames.release();
                let tail = self.out.tail().await;
                let tail = match tail {
                    Ok(t) => t,
                    Err(e) => return Some(self.fail(e).await),
                };
                self.finished = true;
                let usage = self.out.usage;
                self.log.usage(usage);
                self.log.finish(200, Outcome::Ok, None);
                return Some(tail);
            }
            match self.log.waiting(self.frames.next()).await {
                None => match self.inst.finish().await {
                    Ok(items) => {
                        if let Err(e) = self.out.absorb(items).await {
                            return Some(self.fail(e).await);
                        }
                        if !self.out.done {
                            return Some(
                                self.fail(ApiError::upstream(
                                    &orch_upstream::UpstreamError::Malformed(
                                        "stream ended early".into(),
                                    ),
                                ))
                                .await,
                            );
                        }
                    }
                    Err(e) => return Some(self.fail(call_api_error(&e)).await),
                },
                Some(Err(e)) => return Some(self.fail(ApiError::upstream(&e)).await),
                Some(Ok(frame)) => {
                    if let Err(e) = self.push(&frame).await {
                        return Some(self.fail(e).await);
                    }
                    // Frames that already arrived go out in the same write:
                    // a burst costs one write, a paced stream is not delayed.
                    while !self.out.done {
                        match self.frames.next_ready() {
                            None | Some(None) => break,
                            Some(Some(Err(e))) => {
                                return Some(self.fail(ApiError::upstream(&e)).await);
                            }
                            Some(Some(Ok(frame))) => {
                                if let Err(e) = self.push(&frame).await {
                                    return Some(self.fail(e).await);
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
        self.out.absorb(items).await
    }

    async fn fail(&mut self, err: ApiError) -> Bytes {
        self.finished = true;
        tracing::info!(request_id = %self.log.rec.request_id, code = %err.code, "stream failed after the commit point");
        let usage = self.out.partial_usage();
        self.log.usage(Some(usage));
        self.log.finish(
            200,
            Outcome::Partial,
            err.class.map(ErrorClass::as_str).or(Some("stream_error")),
        );
        self.out.error_tail(&err).await
    }
}

impl Drop for Streaming {
    /// The client went away mid-stream: the row records the cancellation
    /// with the usage seen so far (output counted by content chunks when the
    /// upstream has not reported it yet).
    fn drop(&mut self) {
        if !self.finished {
            self.log.usage(Some(self.out.partial_usage()));
        }
    }
}

fn call_api_error(e: &CallError) -> ApiError {
    match e {
        CallError::Plugin(c) => ApiError::classified(c),
        CallError::Fault(f) => ApiError::plugin(f),
    }
}
