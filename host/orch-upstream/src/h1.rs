//! Plain-HTTP/1.1 upstream connections driven by the task that uses them.
//!
//! A pooled client in the usual shape (reqwest over hyper-util) runs every
//! connection as a task of its own: a request is handed to it through a
//! channel, the response head comes back through another, and the body
//! crosses one chunk at a time, each hand-over a wake-up of another task,
//! often on the other worker thread. For a streamed answer that is one
//! cross-thread wake-up per upstream chunk. Here the request's own task polls
//! the hyper connection whenever it waits for the response or its body, so a
//! burst of chunks already in the socket buffer is decoded in one poll and
//! nothing crosses threads. An idle connection waits in the pool unpolled
//! and is checked for a close from the far end before it is reused.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as _, Frame};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Io = TokioIo<TcpStream>;

/// Idle connections kept per origin, like the pooled client's setting.
const MAX_IDLE_PER_ORIGIN: usize = 1024;

/// Where a connection goes: host and port of an `http://` origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub host: String,
    pub port: u16,
}

/// Why a plain-HTTP exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No connection could be made; nothing was sent.
    Connect(String),
    /// The connection failed after the request may have been sent.
    Transport(hyper::Error),
}

/// One HTTP/1.1 connection: the request sender and the connection state
/// machine that the using task polls.
struct Conn {
    tx: http1::SendRequest<Full<Bytes>>,
    conn: http1::Connection<Io, Full<Bytes>>,
    closed: bool,
}

impl Conn {
    /// Let the connection read and write what it can; `true` once it has
    /// ended (closed by either side or failed).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }

    /// Whether the connection can take another request now: it is driven
    /// once, without waiting, so that a close that has arrived is seen.
    fn reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        !self.drive(&mut cx) && !self.tx.is_closed() && self.tx.is_ready()
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections by origin.
pub(crate) struct Pool {
    idle: Mutex<Slots>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

struct Slots {
    by_origin: HashMap<Origin, Vec<Idle>>,
    swept: Instant,
}

impl Pool {
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Slots {
                by_origin: HashMap::new(),
                swept: Instant::now(),
            }),
            connect_timeout,
            idle_timeout,
        }
    }

    /// Send `req` (origin-form URI, `host` header set) and wait for the
    /// response head, driving the connection meanwhile. A request that a
    /// reused connection gave back unsent (it was closed while idle) is sent
    /// again on a new connection.
    pub async fn send(
        self: &Arc<Self>,
        origin: &Origin,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Body>, Failure> {
        let mut fresh_only = false;
        loop {
            let (mut conn, reused) = match (!fresh_only).then(|| self.checkout(origin)).flatten() {
                Some(conn) => (conn, true),
                None => (self.connect(origin).await?, false),
            };
            let mut sent = pin!(conn.tx.try_send_request(req));
            let outcome = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = sent.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                if conn.drive(cx) {
                    // A closed connection answers every pending request.
                    return sent.as_mut().poll(cx);
                }
                Poll::Pending
            })
            .await;
            match outcome {
                Ok(resp) => {
                    let resp = resp.map(|body| Body {
                        body,
                        conn: Some(conn),
                        pool: self.clone(),
                        origin: origin.clone(),
                    });
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused && e.error().is_canceled() => {
                        req = unsent;
                        fresh_only = true;
                    }
                    _ => return Err(Failure::Transport(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection to `origin` that is still
    /// open; stale and closed ones are dropped on the way.
    fn checkout(&self, origin: &Origin) -> Option<Conn> {
        loop {
            let mut idle = {
                let mut slots = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let list = slots.by_origin.get_mut(origin)?;
                let idle = list.pop()?;
                if idle.since.elapsed() > self.idle_timeout {
                    // The rest of the list is older still.
                    list.clear();
                    return None;
                }
                idle
            };
            if idle.conn.reusable() {
                return Some(idle.conn);
            }
        }
    }

    /// Put a connection whose exchange is complete back for reuse.
    fn checkin(&self, origin: Origin, conn: Conn) {
        let mut slots = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(slots.swept) > self.idle_timeout {
            let timeout = self.idle_timeout;
            slots.by_origin.retain(|_, list| {
                list.retain(|i| now.duration_since(i.since) <= timeout);
                !list.is_empty()
            });
            slots.swept = now;
        }
        let list = slots.by_origin.entry(origin).or_default();
        if list.len() < MAX_IDLE_PER_ORIGIN {
            list.push(Idle { conn, since: now });
        }
    }

    async fn connect(&self, origin: &Origin) -> Result<Conn, Failure> {
        let addr = (origin.host.as_str(), origin.port);
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Failure::Connect(format!(
                    "connect timed out after {} ms",
                    self.connect_timeout.as_millis()
                )));
            }
            Ok(Err(e)) => return Err(Failure::Connect(e.to_string())),
            Ok(Ok(tcp)) => tcp,
        };
        tcp.set_nodelay(true)
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| Failure::Connect(e.to_string()))?;
        Ok(Conn {
            tx,
            conn,
            closed: false,
        })
    }
}

/// A response body that drives its connection while it is read and gives
/// the connection back to the pool once the body has ended. Dropped before
/// its end, it closes the connection, which is how an abandoned upstream
/// request is cancelled.
pub(crate) struct Body {
    body: Incoming,
    conn: Option<Conn>,
    pool: Arc<Pool>,
    origin: Origin,
}

impl Body {
    fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.release();
        }
        polled
    }

    /// The body has ended: let the connection settle into its idle state
    /// and pool it if it can take another request.
    fn release(&mut self) {
        if let Some(mut conn) = self.conn.take()
            && conn.reusable()
        {
            self.pool.checkin(self.origin.clone(), conn);
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = this.poll_body(cx) {
            return Poll::Ready(frame);
        }
        match this.conn.as_mut() {
            // The connection reads what has arrived into the body channel
            // (or ends it); the body is asked again at once.
            Some(conn) => {
                conn.drive(cx);
                this.poll_body(cx)
            }
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
