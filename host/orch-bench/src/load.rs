//! The load generator: concurrent workers, each on its own keep-alive
//! HTTP/1.1 connection, sending the same small chat request in a loop, and
//! the statistics of what they measured.

use std::net::SocketAddr;
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

/// The path every chat request goes to, on the fake and on the gateway.
const CHAT_PATH: &str = "/v1/chat/completions";

/// The last event of a complete OpenAI stream.
const DONE_MARK: &[u8] = b"data: [DONE]";

/// Bytes of a failed response's body quoted in the error.
const ERROR_SNIPPET_BYTES: usize = 300;

/// One measured run: who is called, how, and for how long.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The server's address.
    pub addr: SocketAddr,
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
    let body = chat_body(&scenario.model, scenario.stream);
    let workers: Vec<_> = (0..scenario.concurrency.max(1))
        .map(|_| tokio::spawn(worker(scenario.addr, body.clone(), scenario.stream, plan)))
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
async fn worker(addr: SocketAddr, body: Bytes, stream: bool, plan: Plan) -> WorkerResult {
    let host = addr.to_string();
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
        match exchange(sender, &host, &body, stream, started).await {
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
    host: &str,
    body: &Bytes,
    stream: bool,
    started: Instant,
) -> Result<Sample, String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(CHAT_PATH)
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let mut incoming = response.into_body();
    let mut ttfb = None;
    let mut received = 0usize;
    let mut done = DoneScanner::default();
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
        if stream {
            done.feed(data);
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
    if stream && !done.seen() {
        return Err(format!(
            "stream ended after {received} bytes without `data: [DONE]`"
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

/// Finds `data: [DONE]` in a body that arrives in pieces, including when the
/// marker is split across two pieces.
#[derive(Debug, Default)]
struct DoneScanner {
    /// The last `DONE_MARK.len() - 1` bytes seen.
    tail: Vec<u8>,
    seen: bool,
}

impl DoneScanner {
    fn feed(&mut self, data: &[u8]) {
        if self.seen {
            return;
        }
        let keep = DONE_MARK.len() - 1;
        let mut joint = std::mem::take(&mut self.tail);
        joint.extend_from_slice(&data[..data.len().min(keep)]);
        if contains(&joint, DONE_MARK) || contains(data, DONE_MARK) {
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

    #[test]
    fn done_is_found_whole_or_split() {
        let mut whole = DoneScanner::default();
        whole.feed(b"data: {\"x\":1}\n\ndata: [DONE]\n\n");
        assert!(whole.seen());

        let text = b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n";
        for cut in 0..text.len() {
            let mut split = DoneScanner::default();
            split.feed(&text[..cut]);
            split.feed(&text[cut..]);
            assert!(split.seen(), "cut at {cut}");
        }

        let mut bytewise = DoneScanner::default();
        for b in text {
            bytewise.feed(std::slice::from_ref(b));
        }
        assert!(bytewise.seen());

        let mut none = DoneScanner::default();
        none.feed(b"data: [DON");
        none.feed(b"E-ish]\n\n");
        assert!(!none.seen());
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
