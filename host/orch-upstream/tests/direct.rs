//! Plain-HTTP upstreams: connection reuse, a connection the server closed
//! while it sat idle, a burst of stream chunks taken in one poll, and a
//! dropped stream closing its connection. The servers are raw TCP so each
//! test controls exactly what goes over the wire.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test that calls them"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use orch_core::config::UpstreamConfig;
use orch_core::contract::{Credential, Framing, RequestBody, UpstreamRequest};
use orch_upstream::{UpstreamClient, UpstreamResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn client() -> UpstreamClient {
    UpstreamClient::new(&UpstreamConfig {
        connect_timeout: Duration::from_secs(2),
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        pool_idle_timeout: Duration::from_secs(60),
        max_response_bytes: 1 << 20,
    })
    .expect("client")
}

fn post(port: u16) -> UpstreamRequest {
    UpstreamRequest {
        method: "POST".into(),
        url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: RequestBody::Empty,
        credential: Credential::None,
        framing: Framing::Sse,
    }
}

/// A small JSON POST to `port` through `client`.
async fn send(client: &UpstreamClient, port: u16) -> UpstreamResponse {
    client
        .send(&post(port), Bytes::from_static(b"{}"), None, None)
        .await
        .expect("send")
}

/// Read one request (head and `content-length` body) from `sock`; `false`
/// when the peer closed the connection instead.
async fn read_request(sock: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("length"));
            let have = buf.len() - end - 4;
            let mut rest = vec![0u8; len.saturating_sub(have)];
            sock.read_exact(&mut rest).await.expect("body");
            return true;
        }
        match sock.read(&mut byte).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
}

const JSON_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

/// A complete SSE answer: two events, `[DONE]` and the body's end.
const SSE_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
    transfer-encoding: chunked\r\n\r\n\
    f\r\ndata: {\"n\":0}\n\n\r\nf\r\ndata: {\"n\":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";

/// A server answering every request with [`JSON_ANSWER`], counting the
/// connections it accepted; with `once`, it closes each connection after one
/// answer (without announcing it, as a server's idle timeout would).
async fn json_server(once: bool) -> (u16, Arc<AtomicUsize>) {
    answering_server(JSON_ANSWER, once).await
}

async fn answering_server(answer: &'static [u8], once: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.expect("accept");
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while read_request(&mut sock).await {
                    if sock.write_all(answer).await.is_err() || once {
                        break;
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (port, accepted) = json_server(false).await;
    let client = client();
    for _ in 0..5 {
        let resp = send(&client, port).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.read_body().await.expect("body"), &b"{\"ok\":true}"[..]);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_not_reused() {
    let (port, accepted) = json_server(true).await;
    let client = client();
    for _ in 0..3 {
        let resp = send(&client, port).await;
        assert_eq!(resp.read_body().await.expect("body"), &b"{\"ok\":true}"[..]);
        // Let the server's close arrive before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// Read a stream up to its `[DONE]` event, as the gateway does, then either
/// release the reader or drop it.
async fn read_to_done(client: &UpstreamClient, port: u16, release: bool) {
    let resp = send(client, port).await;
    let mut frames = resp.frames(Framing::Sse);
    let mut seen = Vec::new();
    while let Some(frame) = frames.next().await {
        let data = frame.expect("ok").data;
        let done = data == b"[DONE]";
        seen.push(data);
        if done {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "two events and [DONE]");
    if release {
        frames.release();
    }
}

#[tokio::test]
async fn a_released_stream_gives_its_connection_back() {
    let (port, accepted) = answering_server(SSE_ANSWER, false).await;
    let client = client();
    for _ in 0..3 {
        read_to_done(&client, port, true).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stream_dropped_before_its_end_takes_its_connection_along() {
    let (port, accepted) = answering_server(SSE_ANSWER, false).await;
    let client = client();
    for _ in 0..3 {
        read_to_done(&client, port, false).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// A server that answers with a chunked SSE stream: `events` events in one
/// write, then after `hold` a `[DONE]` event and the end of the body; it
/// reports when the client closes the connection.
async fn sse_server(events: usize, hold: Duration) -> (u16, tokio::sync::oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        assert!(read_request(&mut sock).await);
        let chunk = |data: &str| {
            let ev = format!("data: {data}\n\n");
            format!("{:x}\r\n{ev}\r\n", ev.len())
        };
        let mut burst = String::from(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        for i in 0..events {
            burst.push_str(&chunk(&format!("{{\"n\":{i}}}")));
        }
        sock.write_all(burst.as_bytes()).await.expect("write");
        let mut rest = [0u8; 64];
        // The client sends nothing more: a read ends only when it closes.
        let closed = tokio::select! {
            () = tokio::time::sleep(hold) => false,
            _ = sock.read(&mut rest) => true,
        };
        if !closed {
            let _ = sock.write_all(chunk("[DONE]").as_bytes()).await;
            let _ = sock.write_all(b"0\r\n\r\n").await;
            while matches!(sock.read(&mut rest).await, Ok(n) if n > 0) {}
        }
        let _ = closed_tx.send(());
    });
    (port, closed_rx)
}

#[tokio::test]
async fn a_burst_of_stream_chunks_is_ready_after_the_first() {
    let (port, _closed) = sse_server(8, Duration::from_millis(200)).await;
    let client = client();
    let resp = send(&client, port).await;
    let mut frames = resp.frames(Framing::Sse);
    // Give the whole burst time to sit in the socket buffer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let first = frames.next().await.expect("frame").expect("ok");
    assert_eq!(first.data, b"{\"n\":0}");
    for i in 1..8 {
        let frame = frames
            .next_ready()
            .unwrap_or_else(|| panic!("frame {i} of the burst was not ready"))
            .expect("not the end")
            .expect("ok");
        assert_eq!(frame.data, format!("{{\"n\":{i}}}").as_bytes());
    }
    assert!(frames.next_ready().is_none(), "the rest is not sent yet");
    let done = frames.next().await.expect("frame").expect("ok");
    assert_eq!(done.data, b"[DONE]");
    assert!(frames.next().await.is_none());
}

#[tokio::test]
async fn dropping_a_stream_closes_its_connection() {
    let (port, closed) = sse_server(2, Duration::from_secs(30)).await;
    let client = client();
    let resp = send(&client, port).await;
    let mut frames = resp.frames(Framing::Sse);
    frames.next().await.expect("frame").expect("ok");
    drop(frames);
    tokio::time::timeout(Duration::from_secs(2), closed)
        .await
        .expect("the server saw the connection close")
        .expect("signal");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = client()
        .send(&post(port), Bytes::from_static(b"{}"), None, None)
        .await
        .err()
        .expect("refused");
    assert!(err.nothing_sent(), "{err}");
}
