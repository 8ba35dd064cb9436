//! The host's HTTP client for upstream providers: pooled connections,
//! credentials injected after the plugin built the request, timeouts for
//! connect, response headers and every read, bounded bodies, and framing of
//! streaming bodies (SSE, NDJSON, raw) for the adapter's stream decoder.
//!
//! `https://` origins go through one pooled `reqwest` client (TLS, HTTP/2,
//! proxies from the environment). Plain `http://` origins, the usual way to
//! reach self-hosted inference servers on the same host or network, use
//! [`h1`]'s connections, which the request's own task drives; when a proxy
//! is configured in the environment they go through `reqwest` as well.

mod h1;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::{BodyDataStream, Full};
use orch_core::config::UpstreamConfig;
use orch_core::contract::{Credential, Frame, Framing, UpstreamRequest};
use secrecy::{ExposeSecret, SecretString};

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The request could not be sent; nothing reached the upstream.
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    /// No response headers within the header timeout.
    #[error("the upstream sent no response within {0} ms")]
    HeaderTimeout(u64),
    /// The upstream went silent while sending a body.
    #[error("the upstream went silent for {0} ms")]
    IdleTimeout(u64),
    /// The connection failed after the request was sent.
    #[error("the upstream connection failed: {0}")]
    Transport(String),
    /// The body or one stream event exceeded the size limit.
    #[error("the upstream response exceeds {0} bytes")]
    TooLarge(usize),
    /// The stream was not valid for its framing.
    #[error("the upstream stream is malformed: {0}")]
    Malformed(String),
    /// The plugin-built request cannot be sent.
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
}

impl UpstreamError {
    /// Whether the request certainly never reached the upstream.
    pub fn nothing_sent(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect(_) | UpstreamError::InvalidRequest(_)
        )
    }
}

/// The pooled upstream client.
#[derive(Clone)]
pub struct UpstreamClient {
    client: reqwest::Client,
    /// Connections to `http://` origins; `None` when the environment names
    /// a proxy for them.
    direct: Option<Arc<h1::Pool>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    max_body: usize,
}

/// Headers and status of an upstream response; the body is still unread.
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers, lower-case names, values that are not UTF-8 dropped.
    pub headers: Vec<(String, String)>,
    inner: Inner,
    idle_timeout: Duration,
    max_body: usize,
}

enum Inner {
    Pooled(reqwest::Response),
    Direct(Box<h1::Body>),
}

/// Environment variables through which `reqwest` sends `http://` requests
/// to a proxy.
const HTTP_PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// Frames read after a stream's logical end before its connection is given
/// up, and how long they are awaited.
const DRAIN_FRAMES: usize = 16;
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// The `user-agent` sent when the plugin sets none.
const USER_AGENT: &str = concat!("llm-orchestrator/", env!("CARGO_PKG_VERSION"));

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Describe a reqwest error without its URL (which may carry a query-string
/// credential) and with its cause chain.
fn describe(e: reqwest::Error) -> String {
    describe_chain(&e.without_url())
}

impl UpstreamClient {
    /// Build the client from configuration.
    pub fn new(cfg: &UpstreamConfig) -> Result<UpstreamClient, UpstreamError> {
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| UpstreamError::InvalidRequest(describe(e)))?;
        let proxied = HTTP_PROXY_VARS
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        Ok(UpstreamClient {
            client,
            direct: (!proxied)
                .then(|| Arc::new(h1::Pool::new(cfg.connect_timeout, cfg.pool_idle_timeout))),
            header_timeout: cfg.header_timeout,
            idle_timeout: cfg.idle_timeout,
            max_body: cfg.max_response_bytes,
        })
    }

    /// The longest silence allowed between reads of a body.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Send a request with the credential injected, waiting at most the
    /// header timeout (or `deadline`, if sooner) for the response head.
    pub async fn send(
        &self,
        req: &UpstreamRequest,
        body: Bytes,
        secret: Option<&SecretString>,
        deadline: Option<Duration>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let method = match req.method.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            m => return Err(UpstreamError::InvalidRequest(format!("method {m}"))),
        };
        let mut url =
            url::Url::parse(&req.url).map_err(|e| UpstreamError::InvalidRequest(e.to_string()))?;
        let mut headers = http::HeaderMap::with_capacity(req.headers.len() + 2);
        for (k, v) in &req.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| UpstreamError::InvalidRequest(format!("header name {k}")))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| UpstreamError::InvalidRequest(format!("header value of {k}")))?;
            headers.append(name, value);
        }
        if let Some(secret) = secret {
            let key = secret.expose_secret();
            let sensitive = |v: String| {
                http::HeaderValue::from_str(&v)
                    .map(|mut h| {
                        h.set_sensitive(true);
                        h
                    })
                    .map_err(|_| {
                        UpstreamError::InvalidRequest(
                            "the API key is not a valid header value".into(),
                        )
                    })
            };
            match &req.credential {
                Credential::None => {}
                Credential::Bearer => {
                    headers.insert(
                        http::header::AUTHORIZATION,
                        sensitive(format!("Bearer {key}"))?,
                    );
                }
                Credential::Header(name) => {
                    let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        UpstreamError::InvalidRequest("credential header name".into())
                    })?;
                    headers.insert(name, sensitive(key.to_string())?);
                }
                Credential::Query(param) => {
                    url.query_pairs_mut().append_pair(param, key);
                }
            }
        }
        let wait = deadline.map_or(self.header_timeout, |d| d.min(self.header_timeout));
        if let (Some(pool), "http") = (&self.direct, url.scheme()) {
            return self
                .send_direct(pool, method, url, headers, body, wait)
                .await;
        }
        let request = self.client.request(method, url).headers(headers);
        let request = if body.is_empty() {
            request
        } else {
            request.body(body)
        };
        let inner = match tokio::time::timeout(wait, request.send()).await {
            Err(_) => return Err(UpstreamError::HeaderTimeout(millis(wait))),
            Ok(Err(e)) if e.is_connect() => return Err(UpstreamError::Connect(describe(e))),
            Ok(Err(e)) if e.is_builder() => return Err(UpstreamError::InvalidRequest(describe(e))),
            Ok(Err(e)) => return Err(UpstreamError::Transport(describe(e))),
            Ok(Ok(r)) => r,
        };
        let (status, headers) = (inner.status(), header_pairs(inner.headers()));
        Ok(self.response(status, headers, Inner::Pooled(inner)))
    }

    /// Send to a plain-HTTP origin on a connection this task drives.
    async fn send_direct(
        &self,
        pool: &Arc<h1::Pool>,
        method: http::Method,
        url: url::Url,
        mut headers: http::HeaderMap,
        body: Bytes,
        wait: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let host = url
            .host_str()
            .ok_or_else(|| UpstreamError::InvalidRequest("the URL names no host".into()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let host_value = http::HeaderValue::from_str(&authority)
            .map_err(|_| UpstreamError::InvalidRequest("the URL's host".into()))?;
        headers.insert(http::header::HOST, host_value);
        if !headers.contains_key(http::header::USER_AGENT) {
            headers.insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static(USER_AGENT),
            );
        }
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = target
            .parse()
            .map_err(|_| UpstreamError::InvalidRequest("the URL's path".into()))?;
        *request.headers_mut() = headers;
        // Host names in brackets are IPv6 literals; the socket wants them bare.
        let origin = h1::Origin {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        };
        let resp = match tokio::time::timeout(wait, pool.send(&origin, request)).await {
            Err(_) => return Err(UpstreamError::HeaderTimeout(millis(wait))),
            Ok(Err(h1::Failure::Connect(e))) => {
                return Err(UpstreamError::Connect(format!(
                    "{}:{}: {e}",
                    origin.host, origin.port
                )));
            }
            Ok(Err(h1::Failure::Transport(e))) => {
                return Err(UpstreamError::Transport(describe_chain(&e)));
            }
            Ok(Ok(resp)) => resp,
        };
        let (parts, body) = resp.into_parts();
        Ok(self.response(
            parts.status,
            header_pairs(&parts.headers),
            Inner::Direct(Box::new(body)),
        ))
    }

    fn response(
        &self,
        status: http::StatusCode,
        headers: Vec<(String, String)>,
        inner: Inner,
    ) -> UpstreamResponse {
        UpstreamResponse {
            status: status.as_u16(),
            headers,
            inner,
            idle_timeout: self.idle_timeout,
            max_body: self.max_body,
        }
    }
}

/// Response headers as lower-case names and values; values that are not
/// UTF-8 are dropped.
fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// An error with its cause chain.
fn describe_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// The body as a stream of data chunks, trailers skipped.
fn data_stream(inner: Inner) -> Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>> {
    match inner {
        Inner::Pooled(r) => Box::pin(
            r.bytes_stream()
                .map_err(|e| UpstreamError::Transport(describe(e))),
        ),
        Inner::Direct(b) => Box::pin(
            BodyDataStream::new(*b).map_err(|e| UpstreamError::Transport(describe_chain(&e))),
        ),
    }
}

impl UpstreamResponse {
    /// Read the whole body, bounded in size and in silence between reads.
    pub async fn read_body(self) -> Result<Bytes, UpstreamError> {
        let mut buf = BytesMut::new();
        let mut chunks = data_stream(self.inner);
        loop {
            match tokio::time::timeout(self.idle_timeout, chunks.next()).await {
                Err(_) => return Err(UpstreamError::IdleTimeout(millis(self.idle_timeout))),
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => return Ok(buf.freeze()),
                Ok(Some(Ok(chunk))) => {
                    if buf.len() + chunk.len() > self.max_body {
                        return Err(UpstreamError::TooLarge(self.max_body));
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// Split the body into frames as it arrives.
    pub fn frames(self, framing: Framing) -> FrameReader {
        let idle = self.idle_timeout;
        let max = self.max_body;
        let since_event = Arc::new(AtomicUsize::new(0));
        let counter = since_event.clone();
        let bytes = data_stream(self.inner).map(move |r| {
            let chunk = r?;
            if counter.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > max {
                return Err(UpstreamError::TooLarge(max));
            }
            Ok::<Bytes, UpstreamError>(chunk)
        });
        let inner: Pin<Box<dyn Stream<Item = Result<Frame, UpstreamError>> + Send>> = match framing
        {
            Framing::Sse => Box::pin(bytes.eventsource().map(move |r| match r {
                Ok(ev) => {
                    since_event.store(0, Ordering::Relaxed);
                    Ok(Frame {
                        event: (!ev.event.is_empty() && ev.event != "message").then_some(ev.event),
                        data: ev.data.into_bytes(),
                    })
                }
                Err(eventsource_stream::EventStreamError::Transport(e)) => Err(e),
                Err(e) => Err(UpstreamError::Malformed(e.to_string())),
            })),
            Framing::Ndjson => Box::pin(lines(bytes, since_event)),
            Framing::Raw => Box::pin(bytes.map(move |r| {
                since_event.store(0, Ordering::Relaxed);
                r.map(|b| Frame {
                    event: None,
                    data: b.to_vec(),
                })
            })),
        };
        FrameReader {
            inner: Box::pin(inner.fuse()),
            idle,
        }
    }
}

/// Newline-delimited frames; blank lines are skipped.
fn lines(
    bytes: impl Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
    since_event: Arc<AtomicUsize>,
) -> impl Stream<Item = Result<Frame, UpstreamError>> + Send {
    struct State {
        bytes: Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>,
        buf: BytesMut,
        ready: std::collections::VecDeque<Frame>,
        ended: bool,
        since_event: Arc<AtomicUsize>,
    }
    fn frame(line: &[u8]) -> Option<Frame> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (!line.iter().all(u8::is_ascii_whitespace)).then(|| Frame {
            event: None,
            data: line.to_vec(),
        })
    }
    let state = State {
        bytes: Box::pin(bytes),
        buf: BytesMut::new(),
        ready: Default::default(),
        ended: false,
        since_event,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(f) = st.ready.pop_front() {
                return Some((Ok(f), st));
            }
            if st.ended {
                return None;
            }
            match st.bytes.next().await {
                Some(Err(e)) => {
                    st.ended = true;
                    return Some((Err(e), st));
                }
                Some(Ok(chunk)) => {
                    st.buf.extend_from_slice(&chunk);
                    while let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                        let line = st.buf.split_to(pos + 1);
                        st.ready.extend(frame(&line[..pos]));
                    }
                    st.since_event.store(st.buf.len(), Ordering::Relaxed);
                }
                None => {
                    st.ended = true;
                    let rest = st.buf.split();
                    st.ready.extend(frame(&rest));
                }
            }
        }
    })
}

/// Frames of one streaming response, each read bounded by the idle timeout.
pub struct FrameReader {
    inner: Pin<Box<dyn Stream<Item = Result<Frame, UpstreamError>> + Send>>,
    idle: Duration,
}

impl FrameReader {
    /// The next frame; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<Frame, UpstreamError>> {
        self.next_within(self.idle).await
    }

    /// The next frame if one has already arrived, without waiting: the outer
    /// `None` means nothing is ready yet; `Some(None)` is the end of the body.
    pub fn next_ready(&mut self) -> Option<Option<Result<Frame, UpstreamError>>> {
        futures_util::FutureExt::now_or_never(self.inner.next())
    }

    /// The stream reached its logical end (its last event arrived): let the
    /// rest of the body, usually only its terminator, be read so that the
    /// connection can serve another request. What has already arrived is
    /// read now; anything later is awaited in the background, briefly and
    /// bounded. Dropping a reader instead closes its connection, which is
    /// how an abandoned request is cancelled upstream.
    pub fn release(&mut self) {
        let mut inner: Pin<Box<dyn Stream<Item = Result<Frame, UpstreamError>> + Send>> =
            std::mem::replace(&mut self.inner, Box::pin(futures_util::stream::empty()));
        let mut left = DRAIN_FRAMES;
        while left > 0 {
            match futures_util::FutureExt::now_or_never(inner.next()) {
                Some(Some(Ok(_))) => left -= 1,
                Some(None | Some(Err(_))) => return,
                None => break,
            }
        }
        if left == 0 {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let drain = async {
                    while left > 0 && matches!(inner.next().await, Some(Ok(_))) {
                        left -= 1;
                    }
                };
                let _ = tokio::time::timeout(DRAIN_WAIT, drain).await;
            });
        }
    }

    /// The next frame, waiting at most `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Result<Frame, UpstreamError>> {
        match tokio::time::timeout(wait, self.inner.next()).await {
            Err(_) => Some(Err(UpstreamError::IdleTimeout(millis(wait)))),
            Ok(item) => item,
        }
    }
}
