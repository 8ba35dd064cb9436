//! The listener against hostile and unlucky clients: oversized bodies (413
//! before the body is read), too many or too large headers (431), clients
//! that trickle their headers (closed at the header timeout while others
//! are served), stalled bodies (408), the in-flight cap (a fast 503) and
//! what `/readyz` reports. Errors come in the client's dialect. Raw sockets
//! are used where the test must control exactly what is sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Gateway, Spec, chat_body, sse_data};

/// A response read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.head, self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Read one response (head and a `content-length` body, or until the
/// connection closes) within `within`.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Raw {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return Raw { status, head, body };
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => panic!(
                    "connection closed before a whole response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("a response in time")
}

/// Send `head` (a request head without the final blank line; `Host` is
/// added) and read the response, sending nothing else.
async fn head_only(addr: SocketAddr, head: &str) -> Raw {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{head}\r\nHost: gw\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(&mut s, Duration::from_secs(5)).await
}

/// Where each dialect's requests go, and how its error body names the code.
const DIALECTS: &[(&str, &str)] = &[
    ("openai", "/v1/chat/completions"),
    ("anthropic", "/v1/messages"),
    ("gemini", "/v1beta/models/m:generateContent"),
];

/// Assert `r` is an error of `status` in `dialect`'s shape.
fn assert_dialect_error(r: &Raw, dialect: &str, status: u16) {
    assert_eq!(r.status, status, "{dialect}: {} {}", r.head, r.body);
    let v = r.json();
    match dialect {
        "openai" => {
            assert!(v["error"]["message"].is_string(), "{v}");
            assert!(v["error"]["type"].is_string(), "{v}");
            assert!(v["error"]["code"].is_string(), "{v}");
        }
        "anthropic" => {
            assert_eq!(v["type"], "error", "{v}");
            assert!(v["error"]["type"].is_string(), "{v}");
            assert!(v["error"]["message"].is_string(), "{v}");
        }
        "gemini" => {
            assert_eq!(v["error"]["code"], status, "{v}");
            assert!(v["error"]["status"].is_string(), "{v}");
            assert!(v["error"]["message"].is_string(), "{v}");
        }
        _ => unreachable!(),
    }
}

async fn gateway(fake: &FakeUpstream, server: &str) -> Gateway {
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.server = server.into();
    spec.admin_token = Some("admin-token-0123456789abcdef".into());
    Gateway::start(spec).await
}

#[tokio::test]
async fn oversized_bodies_get_413_in_the_clients_dialect_before_the_body_is_sent() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, "max_body_mib = 1").await;
    let over = (1 << 20) + 1;
    for (dialect, path) in DIALECTS {
        let r = head_only(
            gw.addr,
            &format!(
                "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {over}"
            ),
        )
        .await;
        assert_dialect_error(&r, dialect, 413);
        let v = r.json();
        match *dialect {
            "openai" => assert_eq!(v["error"]["code"], "request_too_large", "{v}"),
            "anthropic" => assert_eq!(v["error"]["type"], "request_too_large", "{v}"),
            _ => assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{v}"),
        }
    }

    // The admin API has its own, smaller limit (1 MiB by default).
    let r = head_only(
        gw.addr,
        &format!(
            "POST /admin/v1/client-keys HTTP/1.1\r\nAuthorization: Bearer admin-token-0123456789abcdef\r\n\
             Content-Type: application/json\r\nContent-Length: {over}"
        ),
    )
    .await;
    assert_dialect_error(&r, "openai", 413);
    // Just under it, the admin API reads the body (and finds it invalid).
    let r = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/client-keys",
            "admin-token-0123456789abcdef",
            Some(serde_json::json!({"name": "x".repeat(1000 * 1000)})),
        )
        .await;
    assert_ne!(r.status(), 413);

    // A chunked body that grows past the limit: 413 once it does.
    for (dialect, path) in &DIALECTS[..2] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let chunk = vec![b' '; 64 << 10];
        for _ in 0..16 {
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await
                .unwrap();
            s.write_all(&chunk).await.unwrap();
            s.write_all(b"\r\n").await.unwrap();
        }
        // The byte past 1 MiB; the body never ends.
        s.write_all(b"1\r\n \r\n").await.unwrap();
        let r = read_response(&mut s, Duration::from_secs(10)).await;
        assert_dialect_error(&r, dialect, 413);
    }
    gw.stop().await;
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, "max_headers = 50\nmax_header_kib = 16").await;

    let many: String = (0..60).map(|i| format!("\r\nX-Filler-{i}: v")).collect();
    let r = head_only(gw.addr, &format!("GET /v1/models HTTP/1.1{many}")).await;
    assert_eq!(r.status, 431, "{} {}", r.head, r.body);

    let huge = "a".repeat(20 << 10);
    let r = head_only(
        gw.addr,
        &format!("GET /v1/models HTTP/1.1\r\nX-Huge: {huge}"),
    )
    .await;
    assert_eq!(r.status, 431, "{} {}", r.head, r.body);

    // Within the limits the same requests are served.
    let few: String = (0..20).map(|i| format!("\r\nX-Filler-{i}: v")).collect();
    let r = head_only(gw.addr, &format!("GET /v1/models HTTP/1.1{few}")).await;
    assert_eq!(r.status, 200, "{} {}", r.head, r.body);
    gw.stop().await;
}

#[tokio::test]
async fn clients_that_trickle_their_headers_are_closed_at_the_header_timeout() {
    const TRICKLERS: usize = 200;
    const SILENT: usize = 20;
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = Arc::new(gateway(&fake, "header_read_timeout_ms = 2000").await);
    let timeout = Duration::from_secs(2);

    // Each trickler sends one byte of a request head every 1.5 s; each
    // silent client sends nothing. All must be closed by the gateway.
    let mut clients = Vec::new();
    for i in 0..TRICKLERS + SILENT {
        let addr = gw.addr;
        clients.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let started = Instant::now();
            let (mut rd, mut wr) = stream.into_split();
            let trickle = async move {
                if i >= TRICKLERS {
                    return std::future::pending::<()>().await;
                }
                for b in b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Slow: 1\r\n"
                    .iter()
                    .cycle()
                {
                    if wr.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                std::future::pending::<()>().await
            };
            let closed = async move {
                let mut buf = [0u8; 1024];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            let held = async {
                tokio::select! {
                    () = trickle => unreachable!(),
                    () = closed => {}
                }
            };
            // Still open after 10 s: reported as held that long.
            let _ = tokio::time::timeout(Duration::from_secs(10), held).await;
            started.elapsed()
        }));
    }

    // A well-behaved client keeps being served meanwhile.
    let good = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                let t = Instant::now();
                let r = gw.chat(chat_body("m", false)).await;
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                latencies.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            latencies
        })
    };

    let mut slowest = Duration::ZERO;
    for c in clients {
        slowest = slowest.max(c.await.unwrap());
    }
    let mut latencies = good.await.unwrap();
    latencies.sort();
    eprintln!(
        "{TRICKLERS} trickling and {SILENT} silent clients closed, the last after {slowest:?}; \
         the well-behaved client made {} requests, latency p50 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    assert!(
        slowest <= timeout + Duration::from_secs(1),
        "a slow client was held for {slowest:?}"
    );
    let gw = Arc::into_inner(gw).unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn a_stalled_body_gets_408_in_the_clients_dialect() {
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let gw = gateway(&fake, "body_idle_timeout_ms = 500").await;
    for (dialect, path) in DIALECTS {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"model\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let r = read_response(&mut s, Duration::from_secs(5)).await;
        assert_dialect_error(&r, dialect, 408);
        let v = r.json();
        match *dialect {
            "openai" => assert_eq!(v["error"]["code"], "request_timeout", "{v}"),
            "anthropic" => assert_eq!(v["error"]["type"], "timeout_error", "{v}"),
            _ => assert_eq!(v["error"]["status"], "DEADLINE_EXCEEDED", "{v}"),
        }
    }
    // A body that keeps coming, however slowly, is read.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let body = serde_json::to_string(&chat_body("m", false)).unwrap();
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for part in body.as_bytes().chunks(body.len() / 4 + 1) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(part).await.unwrap();
    }
    let r = read_response(&mut s, Duration::from_secs(5)).await;
    assert_eq!(r.status, 200, "{} {}", r.head, r.body);
    gw.stop().await;
}

#[tokio::test]
async fn past_the_in_flight_cap_requests_get_a_fast_503_until_streams_end() {
    const CAP: usize = 3;
    let fake = FakeUpstream::spawn(FakeConfig {
        chunks: 8,
        chunk_delay_ms: 400,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let gw = gateway(&fake, &format!("max_in_flight = {CAP}")).await;

    // CAP streams: their heads come back at once, their bodies take ~3 s,
    // and they count until their bodies end.
    let mut streams = Vec::new();
    for _ in 0..CAP {
        let r = gw.chat(chat_body("m", true)).await;
        assert_eq!(r.status(), 200);
        streams.push(tokio::spawn(sse_data(r)));
    }

    for (dialect, path) in DIALECTS {
        let body = serde_json::json!({
            "model": "m",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        })
        .to_string();
        let t = Instant::now();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let r = read_response(&mut s, Duration::from_secs(5)).await;
        let took = t.elapsed();
        eprintln!("{dialect}: 503 after {took:?}");
        assert_dialect_error(&r, dialect, 503);
        assert_eq!(r.header("retry-after").as_deref(), Some("1"), "{}", r.head);
        assert!(
            took < Duration::from_secs(1),
            "the refusal waited for something: {took:?}"
        );
    }
    let r = head_only(gw.addr, "POST /v1/messages HTTP/1.1\r\nContent-Length: 2").await;
    assert_eq!(r.json()["error"]["type"], "overloaded_error", "{}", r.body);
    // Probes are exempt.
    for path in ["/livez", "/readyz"] {
        let r = gw.http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }

    for s in streams {
        let events = s.await.unwrap();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    // Their bodies ended: there is room again.
    let r = gw.chat(chat_body("m", false)).await;
    assert_eq!(r.status(), 200);
    gw.stop().await;
}

/// Start a gateway that may never become ready; waits for `/livez`.
async fn start_unready(spec: &Spec) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let data = tempfile::TempDir::new().unwrap();
    let (config, plugins) = Gateway::configure(spec, &data);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (_data, _plugins) = (data, plugins);
        orch_server::serve(config, listener, async move {
            let _ = rx.await;
        })
        .await
    });
    for _ in 0..500 {
        if let Ok(r) = reqwest::get(format!("http://{addr}/livez")).await
            && r.status() == 200
        {
            return (addr, tx);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the gateway did not come up");
}

async fn readyz(addr: SocketAddr) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn checks(v: &serde_json::Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["check"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn readyz_names_every_failing_check() {
    // No plugins, and a required Redis that is not there.
    let mut spec = Spec::default()
        .provider("f", "openai", "http://127.0.0.1:9")
        .model("m", &[("f", "x", 1)]);
    spec.extra =
        "[redis]\nurl = \"redis://127.0.0.1:1\"\nrequired = true\ntimeout_ms = 100\n".into();
    let (addr, stop) = start_unready(&spec).await;
    let (status, v) = readyz(addr).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["status"], "not_ready", "{v}");
    let names = checks(&v);
    assert!(names.contains(&"plugins".to_string()), "{v}");
    assert!(names.contains(&"redis".to_string()), "{v}");
    assert!(!names.contains(&"database".to_string()), "{v}");
    assert!(!v.to_string().contains("127.0.0.1"), "no addresses: {v}");
    let _ = stop.send(());
}

#[tokio::test]
async fn readyz_follows_the_database() {
    let Some(db) = crate::databases::fresh(crate::databases::POSTGRES, "readyz").await else {
        return;
    };
    let proxy = crate::proxy::Proxy::start(5432).await;
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let mut spec = Spec::openai(&fake.base_url(), "fake-model");
    spec.database_url = Some(db.url(Some(&format!("127.0.0.1:{}", proxy.port))));
    let gw = Gateway::start(spec).await;
    let (status, v) = readyz(gw.addr).await;
    assert_eq!(status, 200, "{v}");

    proxy.cut().await;
    // The probe runs every 2 s with a 1 s timeout.
    let wait = |want: u16| {
        let addr = gw.addr;
        async move {
            let until = Instant::now() + Duration::from_secs(8);
            loop {
                let (status, v) = readyz(addr).await;
                if status == want || Instant::now() > until {
                    return (status, v);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let t = Instant::now();
    let (status, v) = wait(503).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(checks(&v), vec!["database".to_string()], "{v}");
    eprintln!("readyz turned 503 {:?} after the cut", t.elapsed());
    // Requests are still served from the cached catalogue meanwhile, and
    // /readyz itself answers at once.
    let t = Instant::now();
    let _ = readyz(gw.addr).await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let r = gw.chat(chat_body("m", false)).await;
    assert_eq!(r.status(), 200);

    proxy.restore();
    let (status, v) = wait(200).await;
    assert_eq!(status, 200, "{v}");
    gw.stop().await;
    db.drop_now().await;
}
