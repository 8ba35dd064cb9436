//! The load generator: concurrent workers, each on its own keep-alive
//! HTTP/1.1 connection, sending the same small chat request in a loop (in
//! the OpenAI, Anthropic or Gemini dialect), and the statistics of what they
//! measured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The API key sent to Anthropic and Gemini endpoints (the fake upstream
/// wants one, whatever its value; the benchmark's gateway is open).
pub const API_KEY: &str = "bench-key";

/// The `anthropic-version` every Anthropic request names.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Bytes of a failed response's body quoted in the error.
const ERROR_SNIPPET_BYTES: usize = 300;

/// The wire dialect a scenario's requests speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI Chat Completions: `POST /v1/chat/completions`.
    OpenAi,
    /// Anthropic Messages: `POST /v1/messages`.
    Anthropic,
    /// Gemini: `POST /v1beta/models/{model}:generateContent`, or
    /// `:streamGenerateContent?alt=sse`.
    Gemini,
}

impl Api {
    /// The dialect's name.
    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAi => "OpenAI",
            Api::Anthropic => "Anthropic",
            Api::Gemini => "Gemini",
        }
    }

    /// The path of a chat request for `model`.
    pub fn path(self, model: &str, stream: bool) -> String {
        match self {
            Api::OpenAi => "/v1/chat/completions".to_owned(),
            Api::Anthropic => "/v1/messages".to_owned(),
            Api::Gemini if stream => {
                format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
            }
            Api::Gemini => format!("/v1beta/models/{model}:generateContent"),
        }
    }

    /// Headers besides `host` and `content-type`: the key and version the
    /// dialect requires.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Api::OpenAi => &[],
            Api::Anthropic => &[
                ("x-api-key", API_KEY),
                ("anthropic-version", ANTHROPIC_VERSION),
            ],
            Api::Gemini => &[("x-goog-api-key", API_KEY)],
        }
    }

    /// The request body every worker sends.
    pub fn body(self, model: &str, stream: bool) -> Bytes {
        match self {
            Api::OpenAi => chat_body(model, stream),
            Api::Anthropic => anthropic_body(model, stream),
            Api::Gemini => gemini_body(),
        }
    }

    /// Bytes only a complete stream holds: OpenAI's `[DONE]` event,
    /// Anthropic's `message_stop` event, Gemini's last response (the only
    /// one with a `finishReason`; Gemini has no terminal event).
    pub fn end_mark(self) -> &'static [u8] {
        match self {
            Api::OpenAi => b"data: [DONE]",
            Api::Anthropic => b"event: message_stop",
            Api::Gemini => b"\"finishReason\"",
        }
    }
}

/// The same question as [`chat_body`] as an Anthropic Messages request.
pub fn anthropic_body(model: &str, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

/// The same question as [`chat_body`] as a Gemini request (the model and
/// whether to stream are in the path).
pub fn gemini_body() -> Bytes {
    let body = serde_json::json!({
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
    });
    Bytes::from(body.to_string())
}

/// One measured run: who is called, how, and for how long.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The server's address.
    pub addr: SocketAddr,
    /// The dialect of the requests.
    pub api: Api,
    /// The model named in the request.
    pub model: String,
    /// Whether to ask for a stream.
    pub stream: bool,
    /// Workers (= connections = requests in flight).
    pub concurrency: usize,
    /// Requests sent before measuring starts.
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// A client key sent as `Authorization: Bearer …`.
    pub bearer: Option<String>,
}

/// The chat request body every worker sends.
pub fn chat_body(model: &str, stream: bool) -> Bytes {
    let mut body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    });
    if stream {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(body.to_string())
}

/// The 50th and 99th percentiles of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Summary {
    /// Summarise samples in nanoseconds (sorted in place); `None` when empty.
    pub fn of(samples: &mut [u64]) -> Option<Summary> {
        samples.sort_unstable();
        Some(Summary {
            count: samples.len(),
            p50: Duration::from_nanos(percentile(samples, 50.0)?),
            p99: Duration::from_nanos(percentile(samples, 99.0)?),
        })
    }
}

/// Nearest-rank percentile of sorted samples; `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// What a scenario measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Requests that completed inside the measured window.
    pub completed: u64,
    /// The measured window.
    pub window: Duration,
    /// Latency until the whole response was read, of requests started in
    /// the window.
    pub latency: Option<Summary>,
    /// Time to the first body byte, of the same requests.
    pub ttfb: Option<Summary>,
    /// Failed requests (any status but 200, an unreadable or incomplete
    /// body, a lost connection), warm-up included.
    pub errors: u64,
    /// The first failure, for the error report.
    pub first_error: Option<String>,
    /// CPU time the measured process used during the window, if asked.
    pub cpu: Option<Duration>,
}

impl Outcome {
    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.completed as f64 / secs
        } else {
            0.0
        }
    }

    /// CPU time per completed request, if CPU was measured.
    pub fn cpu_per_request(&self) -> Option<Duration> {
        let cpu = self.cpu?;
        let n = u32::try_from(self.completed).ok().filter(|&n| n > 0)?;
        Some(cpu / n)
    }
}

/// Run a scenario. `cpu_probe`, if given, is read when the measured window
/// opens and when it closes; the difference is the outcome's `cpu`.
pub async fn run(
    scenario: &Scenario,
    cpu_probe: Option<&dyn Fn() -> Result<Duration>>,
) -> Result<Outcome> {
    let start = Instant::now();
    let plan = Plan {
        measure_from: start + scenario.warmup,
        measure_until: start + scenario.warmup + scenario.window,
    };
    let call = Arc::new(Call {
        host: scenario.addr.to_string(),
        path: scenario.api.path(&scenario.model, scenario.stream),
        headers: scenario
            .api
            .headers()
            .iter()
            .map(|(n, v)| (*n, (*v).to_owned()))
            .chain(
                scenario
                    .bearer
                    .as_ref()
                    .map(|k| ("authorization", format!("Bearer {k}"))),
            )
            .collect(),
        body: scenario.api.body(&scenario.model, scenario.stream),
        end_mark: scenario.stream.then(|| scenario.api.end_mark()),
    });
    let workers: Vec<_> = (0..scenario.concurrency.max(1))
        .map(|_| tokio::spawn(worker(scenario.addr, call.clone(), plan)))
        .collect();

    let mut cpu = None;
    if let Some(probe) = cpu_probe {
        tokio::time::sleep_until(plan.measure_from).await;
        let before = probe()?;
        tokio::time::sleep_until(plan.measure_until).await;
        let after = probe()?;
        cpu = Some(after.saturating_sub(before));
    }

    let mut total = WorkerResult::default();
    for w in workers {
        let r = w.await.context("a load worker panicked")?;
        total.completed += r.completed;
        total.latency.extend(r.latency);
        total.ttfb.extend(r.ttfb);
        total.errors += r.errors;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
    }
    Ok(Outcome {
        completed: total.completed,
        window: scenario.window,
        latency: Summary::of(&mut total.latency),
        ttfb: Summary::of(&mut total.ttfb),
        errors: total.errors,
        first_error: total.first_error,
        cpu,
    })
}

/// The request every worker of a scenario sends, and how a complete
/// stream is recognised.
#[derive(Debug)]
struct Call {
    host: String,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// For streams: bytes the body must contain to be complete.
    end_mark: Option<&'static [u8]>,
}

/// When the measured window opens and closes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    measure_from: Instant,
    measure_until: Instant,
}

#[derive(Debug, Default)]
struct WorkerResult {
    completed: u64,
    latency: Vec<u64>,
    ttfb: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl WorkerResult {
    fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// One worker: one connection (re-opened after a failure), one request at a
/// time until the window closes.
async fn worker(addr: SocketAddr, call: Arc<Call>, plan: Plan) -> WorkerResult {
    let mut result = WorkerResult::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let started = Instant::now();
        if started >= plan.measure_until {
            break;
        }
        let sender = match &mut conn {
            Some(sender) => sender,
            None => match connect(addr).await {
                Ok(sender) => conn.insert(sender),
                Err(e) => {
                    result.fail(format!("connect to {addr}: {e}"));
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        match exchange(sender, &call, started).await {
            Ok(sample) => {
                let ended = Instant::now();
                if started >= plan.measure_from {
                    result.latency.push(nanos(sample.latency));
                    result.ttfb.push(nanos(sample.ttfb));
                }
                if ended >= plan.measure_from && ended < plan.measure_until {
                    result.completed += 1;
                }
            }
            Err(e) => {
                result.fail(e);
                conn = None;
            }
        }
    }
    result
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn connect<B>(addr: SocketAddr) -> Result<SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

struct Sample {
    latency: Duration,
    ttfb: Duration,
}

/// Send one request and read the whole response.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    call: &Call,
    started: Instant,
) -> Result<Sample, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(call.path.as_str())
        .header(HOST, call.host.as_str())
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in &call.headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(call.body.clone()))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let mut incoming = response.into_body();
    let mut ttfb = None;
    let mut received = 0usize;
    let mut end = call.end_mark.map(MarkScanner::new);
    let mut snippet = Vec::new();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| format!("reading the body after {received} bytes: {e}"))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        ttfb.get_or_insert_with(|| started.elapsed());
        received += data.len();
        if let Some(end) = &mut end {
            end.feed(data);
        }
        if status != StatusCode::OK && snippet.len() < ERROR_SNIPPET_BYTES {
            let room = ERROR_SNIPPET_BYTES - snippet.len();
            snippet.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let latency = started.elapsed();
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&snippet)
        ));
    }
    if let Some(end) = end.filter(|end| !end.seen()) {
        return Err(format!(
            "stream ended after {received} bytes without `{}`",
            String::from_utf8_lossy(end.mark)
        ));
    }
    if received == 0 {
        return Err("empty response body".to_owned());
    }
    Ok(Sample {
        latency,
        ttfb: ttfb.unwrap_or(latency),
    })
}

/// Finds a marker (e.g. `data: [DONE]`) in a body that arrives in pieces,
/// including when the marker is split across pieces.
#[derive(Debug)]
struct MarkScanner {
    mark: &'static [u8],
    /// The last `mark.len() - 1` bytes seen.
    tail: Vec<u8>,
    seen: bool,
}

impl MarkScanner {
    fn new(mark: &'static [u8]) -> Self {
        MarkScanner {
            mark,
            tail: Vec::new(),
            seen: mark.is_empty(),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.seen {
            return;
        }
        let keep = self.mark.len() - 1;
        let mut joint = std::mem::take(&mut self.tail);
        joint.extend_from_slice(&data[..data.len().min(keep)]);
        if contains(&joint, self.mark) || contains(data, self.mark) {
            self.seen = true;
            return;
        }
        if data.len() >= keep {
            joint.clear();
            joint.extend_from_slice(&data[data.len() - keep..]);
        } else {
            let excess = joint.len().saturating_sub(keep);
            joint.drain(..excess);
        }
        self.tail = joint;
    }

    fn seen(&self) -> bool {
        self.seen
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `GET path` on a fresh connection; the status code.
pub async fn get_status(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut sender = connect::<Empty<Bytes>>(addr).await?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50));
        assert_eq!(percentile(&samples, 99.0), Some(99));
        assert_eq!(percentile(&samples, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summaries_sort_their_samples() {
        let mut samples = vec![5_000, 1_000, 3_000, 2_000, 4_000];
        let s = Summary::of(&mut samples).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, Duration::from_micros(3));
        assert_eq!(s.p99, Duration::from_micros(5));
        assert_eq!(Summary::of(&mut []), None);
    }

    const DONE: &[u8] = b"data: [DONE]";

    #[test]
    fn done_is_found_whole_or_split() {
        let mut whole = MarkScanner::new(DONE);
        whole.feed(b"data: {\"x\":1}\n\ndata: [DONE]\n\n");
        assert!(whole.seen());

        let text = b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n";
        for cut in 0..text.len() {
            let mut split = MarkScanner::new(DONE);
            split.feed(&text[..cut]);
            split.feed(&text[cut..]);
            assert!(split.seen(), "cut at {cut}");
        }

        let mut bytewise = MarkScanner::new(DONE);
        for b in text {
            bytewise.feed(std::slice::from_ref(b));
        }
        assert!(bytewise.seen());

        let mut none = MarkScanner::new(DONE);
        none.feed(b"data: [DON");
        none.feed(b"E-ish]\n\n");
        assert!(!none.seen());
    }

    #[test]
    fn every_dialect_end_mark_is_found_in_its_stream_end() {
        let ends: [(Api, &[u8]); 3] = [
            (Api::OpenAi, b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"),
            (
                Api::Anthropic,
                b"event: message_delta\ndata: {}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ),
            (
                Api::Gemini,
                b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\".\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n",
            ),
        ];
        for (api, text) in ends {
            for cut in 0..text.len() {
                let mut split = MarkScanner::new(api.end_mark());
                split.feed(&text[..cut]);
                split.feed(&text[cut..]);
                assert!(split.seen(), "{api:?} cut at {cut}");
            }
        }
        let mut unfinished = MarkScanner::new(Api::Gemini.end_mark());
        unfinished.feed(b"data: {\"candidates\":[{\"index\":0}]}\r\n\r\n");
        assert!(!unfinished.seen());
        let mut empty = MarkScanner::new(b"");
        empty.feed(b"");
        assert!(empty.seen());
    }

    #[test]
    fn chat_bodies_ask_for_usage_only_when_streaming() {
        let plain: serde_json::Value = serde_json::from_slice(&chat_body("m", false)).unwrap();
        assert_eq!(plain["model"], "m");
        assert_eq!(plain["stream"], false);
        assert!(plain.get("stream_options").is_none());
        let streaming: serde_json::Value = serde_json::from_slice(&chat_body("m", true)).unwrap();
        assert_eq!(streaming["stream_options"]["include_usage"], true);
    }

    #[test]
    fn anthropic_bodies_are_messages_requests() {
        for stream in [false, true] {
            let body: serde_json::Value =
                serde_json::from_slice(&anthropic_body("claude", stream)).unwrap();
            assert_eq!(body["model"], "claude");
            assert_eq!(body["stream"], stream);
            assert!(body["max_tokens"].as_u64().unwrap() > 0);
            assert_eq!(body["messages"][0]["role"], "user");
            assert_eq!(body["messages"][0]["content"], "Say hello");
        }
    }

    #[test]
    fn gemini_bodies_carry_contents_only() {
        let body: serde_json::Value = serde_json::from_slice(&gemini_body()).unwrap();
        assert_eq!(body["contents"][0]["role"], "user");
        assert_eq!(body["contents"][0]["parts"][0]["text"], "Say hello");
        assert!(body.get("model").is_none());
    }

    #[test]
    fn each_dialect_has_its_path_and_headers() {
        assert_eq!(Api::OpenAi.path("m", true), "/v1/chat/completions");
        assert_eq!(Api::Anthropic.path("m", false), "/v1/messages");
        assert_eq!(
            Api::Gemini.path("m", false),
            "/v1beta/models/m:generateContent"
        );
        assert_eq!(
            Api::Gemini.path("m", true),
            "/v1beta/models/m:streamGenerateContent?alt=sse"
        );
        assert!(Api::OpenAi.headers().is_empty());
        assert_eq!(
            Api::Anthropic.headers(),
            [("x-api-key", API_KEY), ("anthropic-version", "2023-06-01")]
        );
        assert_eq!(Api::Gemini.headers(), [("x-goog-api-key", API_KEY)]);
        let openai: serde_json::Value =
            serde_json::from_slice(&Api::OpenAi.body("m", true)).unwrap();
        assert_eq!(openai["stream_options"]["include_usage"], true);
        let anthropic: serde_json::Value =
            serde_json::from_slice(&Api::Anthropic.body("m", true)).unwrap();
        assert_eq!(anthropic["stream"], true);
    }

    #[test]
    fn throughput_and_cpu_per_request() {
        let outcome = Outcome {
            completed: 500,
            window: Duration::from_secs(2),
            latency: None,
            ttfb: None,
            errors: 0,
            first_error: None,
            cpu: Some(Duration::from_millis(100)),
        };
        assert!((outcome.throughput() - 250.0).abs() < 1e-9);
        assert_eq!(outcome.cpu_per_request(), Some(Duration::from_micros(200)));
    }
}
