//! The listener's limits, enforced by one middleware in front of every
//! route: the in-flight cap (503 with `Retry-After`), request body sizes
//! (413 from `Content-Length` before the body is read, or as soon as a
//! chunked body grows past the limit) and the body idle timeout (408). Every
//! refusal is in the client's dialect ([`Dialect::of_request`]) and never
//! touches the pipeline. Header counts, header sizes, the header read
//! timeout and HTTP/2 limits are hyper's, set on the connection builder in
//! `orch-server`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::error::{ApiError, Dialect};
use crate::state::AppState;
use crate::traffic::InFlight;

/// Paths that are never refused or counted: probes and metrics must
/// answer while the gateway is saturated.
const EXEMPT: &[&str] = &["/livez", "/readyz", "/metrics"];

/// The limits the middleware enforces, from `[server]`.
#[derive(Debug, Clone)]
pub(crate) struct ListenerLimits {
    /// Largest request body on the inference routes.
    pub(crate) max_body_bytes: usize,
    /// Largest request body under `/admin`.
    pub(crate) admin_max_body_bytes: usize,
    /// Longest stall between two chunks of a request body.
    pub(crate) body_idle_timeout: Duration,
    /// Requests in flight at most.
    pub(crate) max_in_flight: u64,
}

impl ListenerLimits {
    pub(crate) fn from_config(server: &orch_core::config::ServerConfig) -> ListenerLimits {
        ListenerLimits {
            max_body_bytes: server.max_body_bytes,
            admin_max_body_bytes: server.admin_max_body_bytes,
            body_idle_timeout: server.body_idle_timeout,
            max_in_flight: server.max_in_flight,
        }
    }

    fn body_limit(&self, path: &str) -> usize {
        let admin = path
            .strip_prefix("/admin")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if admin {
            self.admin_max_body_bytes
        } else {
            self.max_body_bytes
        }
    }
}

/// The middleware: see the module docs.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let http1 = req.version() <= Version::HTTP_11;
    let path = req.uri().path();
    if EXEMPT.contains(&path) {
        let resp = next.run(req).await;
        return closing(&state, http1, resp);
    }
    let dialect = Dialect::of_request(req.method(), path, req.headers());
    let limits = state.limits();
    let max_body = limits.body_limit(path);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        state.metrics().listener_rejection("body_too_large");
        let resp = ApiError::too_large(max_body)
            .in_dialect(dialect)
            .into_response();
        return closing(&state, http1, resp);
    }
    let Some(mut admitted) = state.traffic().admit(limits.max_in_flight) else {
        state.metrics().listener_rejection("in_flight_cap");
        let resp = ApiError::over_capacity()
            .in_dialect(dialect)
            .into_response();
        return closing(&state, http1, resp);
    };
    let outcome = Arc::new(AtomicU8::new(BODY_OK));
    let idle = limits.body_idle_timeout;
    let req = req.map(|body| {
        if body.is_end_stream() {
            // No body (a GET): nothing to guard.
            return body;
        }
        Body::new(Guarded {
            inner: body,
            limit: max_body,
            read: 0,
            idle,
            timer: None,
            armed: false,
            outcome: Arc::clone(&outcome),
        })
    });
    let mut resp = next.run(req).await;
    let failed = match outcome.load(Ordering::Acquire) {
        BODY_TOO_LARGE => Some(("body_too_large", ApiError::too_large(max_body))),
        BODY_STALLED => Some(("body_idle_timeout", ApiError::body_timeout(idle))),
        _ => None,
    };
    if let Some((reason, err)) = failed {
        state.metrics().listener_rejection(reason);
        // Whatever the handler made of its body-read error, the client
        // learns the cause; headers set for the request stay.
        let mut replaced = err.in_dialect(dialect).into_response();
        if let Some(id) = resp.headers().get("x-request-id") {
            replaced.headers_mut().insert("x-request-id", id.clone());
        }
        resp = replaced;
    }
    let streams = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streams {
        admitted.mark_stream();
    }
    let resp = resp.map(|body| {
        Body::new(Counted {
            inner: body,
            admitted: Some(admitted),
        })
    });
    closing(&state, http1, resp)
}

/// While the gateway drains, HTTP/1 responses ask the client to reconnect
/// (through the load balancer, to another replica).
fn closing(state: &AppState, http1: bool, mut resp: Response) -> Response {
    if http1 && state.is_shutting_down() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

const BODY_OK: u8 = 0;
const BODY_TOO_LARGE: u8 = 1;
const BODY_STALLED: u8 = 2;

/// Why a request body stopped early (the handler sees it as a read error).
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the request body stalled for more than {0:?}")]
    Stalled(Duration),
}

/// A request body with a size limit and an idle timeout between chunks;
/// records which one tripped for the middleware.
struct Guarded {
    inner: Body,
    limit: usize,
    read: usize,
    idle: Duration,
    /// Made the first time the body has nothing ready (most bodies arrive
    /// with their headers and never need one).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The timer runs: the body was polled and had nothing.
    armed: bool,
    outcome: Arc<AtomicU8>,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                if let Some(data) = frame.data_ref() {
                    this.read = this.read.saturating_add(data.len());
                    if this.read > this.limit {
                        this.outcome.store(BODY_TOO_LARGE, Ordering::Release);
                        return Poll::Ready(Some(Err(axum::Error::new(BodyError::TooLarge(
                            this.limit,
                        )))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    this.armed = true;
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.outcome.store(BODY_STALLED, Ordering::Release);
                        Poll::Ready(Some(Err(axum::Error::new(BodyError::Stalled(this.idle)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's in-flight count until it ends
/// (or the client goes away and it is dropped).
struct Counted {
    inner: Body,
    admitted: Option<InFlight>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.admitted = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_routes_have_their_own_body_limit() {
        let l = ListenerLimits {
            max_body_bytes: 32 << 20,
            admin_max_body_bytes: 1 << 20,
            body_idle_timeout: Duration::from_secs(30),
            max_in_flight: 1,
        };
        assert_eq!(l.body_limit("/admin"), 1 << 20);
        assert_eq!(l.body_limit("/admin/providers"), 1 << 20);
        assert_eq!(l.body_limit("/administrator"), 32 << 20);
        assert_eq!(l.body_limit("/v1/chat/completions"), 32 << 20);
    }
}
