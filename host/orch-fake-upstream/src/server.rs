//! The HTTP server: accept loop, per-connection hyper service, routing and
//! the response body type.
//!
//! The service is plain hyper (no router framework) so that an injected reset
//! can be an `Err` from the service, which makes hyper close the connection
//! without writing a response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::control::{self, ControlRoute};
use crate::error::{ApiError, InjectedFault};
use crate::gemini::{self, GeminiRoute};
use crate::state::Shared;
use crate::stream::SseBody;
use crate::{anthropic, chat, models};

/// Largest accepted request body (data-URL images can be big).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How long in-flight requests may run on after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

type Builder = auto::Builder<TokioExecutor>;

/// Accepts connections until `shutdown` changes or its sender is dropped,
/// then lets connections finish for [`SHUTDOWN_GRACE`] and drops the rest.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    shared.stats.connections_accepted.inc();
                    connections.spawn(serve_connection(
                        builder.clone(),
                        stream,
                        shared.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(err) => {
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::debug!(open = connections.len(), "dropping connections still open");
    }
    connections.shutdown().await;
}

async fn serve_connection(
    builder: Arc<Builder>,
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "setting TCP_NODELAY failed");
    }
    let service = service_fn(move |request| dispatch(shared.clone(), request));
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        // Client disconnects and injected faults end up here; both are normal.
        tracing::debug!(%err, "connection closed with an error");
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    AnthropicMessages,
    AnthropicCountTokens,
    /// OpenAI or (with an `anthropic-version` header) Anthropic shape.
    ListModels,
    /// OpenAI or (with an `anthropic-version` header) Anthropic shape.
    RetrieveModel,
    /// Anything under `/v1beta/`, `POST /v1/models/{model}:{method}`, and
    /// (decided by the dispatcher) model listings carrying a Gemini key.
    Gemini(GeminiRoute),
    Control(ControlRoute),
    Unknown,
}

const MODELS_PREFIX: &str = "/v1/models/";

impl Route {
    fn of(method: &Method, path: &str) -> Self {
        match (method, path) {
            (&Method::POST, "/v1/chat/completions") => Self::Chat,
            (&Method::POST, "/v1/messages") => Self::AnthropicMessages,
            (&Method::POST, "/v1/messages/count_tokens") => Self::AnthropicCountTokens,
            (&Method::GET, "/v1/models") => Self::ListModels,
            (&Method::GET, path) if path.starts_with(MODELS_PREFIX) => Self::RetrieveModel,
            (&Method::GET, "/_fake/stats") => Self::Control(ControlRoute::Stats),
            (&Method::GET, "/_fake/config") => Self::Control(ControlRoute::GetConfig),
            (&Method::POST, "/_fake/config") => Self::Control(ControlRoute::SetConfig),
            (&Method::GET, "/_fake/last_request") => Self::Control(ControlRoute::LastRequest),
            (&Method::POST, path) if gemini::is_gemini_post(path) => {
                Self::Gemini(GeminiRoute::of(&Method::POST, path))
            }
            (method, path) if path.starts_with(gemini::BETA_PREFIX) => {
                Self::Gemini(GeminiRoute::of(method, path))
            }
            _ => Self::Unknown,
        }
    }
}

/// The hyper service. `Err` resets the connection.
async fn dispatch(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, InjectedFault> {
    let mut route = Route::of(request.method(), request.uri().path());
    if matches!(route, Route::ListModels | Route::RetrieveModel)
        && !is_anthropic(request.headers())
        && gemini::has_gemini_key(request.headers(), request.uri().query())
    {
        route = Route::Gemini(GeminiRoute::of(request.method(), request.uri().path()));
    }
    let result = match route {
        Route::Chat => {
            let (parts, body) = request.into_parts();
            match read_body(body).await {
                Ok(body) => chat::complete(&shared, parts, body).await,
                Err(error) => Ok(error.into_response()),
            }
        }
        Route::AnthropicMessages | Route::AnthropicCountTokens => {
            let (parts, body) = request.into_parts();
            match read_body(body).await {
                Ok(body) if route == Route::AnthropicMessages => {
                    anthropic::messages(&shared, parts, body).await
                }
                Ok(body) => anthropic::count_tokens(&shared, parts, body).await,
                Err(error) => Ok(anthropic::error::AnthropicError {
                    status: error.status,
                    message: error.message,
                    ..anthropic::error::AnthropicError::invalid_request("")
                }
                .into_response(&shared.ids.next("req_"))),
            }
        }
        Route::ListModels if is_anthropic(request.headers()) => Ok(anthropic::models::list(
            &shared,
            request.headers(),
            request.uri().query(),
        )),
        Route::ListModels => Ok(models::list(&shared, request.headers())),
        Route::RetrieveModel => {
            let id = request.uri().path().trim_start_matches(MODELS_PREFIX);
            if is_anthropic(request.headers()) {
                Ok(anthropic::models::retrieve(&shared, request.headers(), id))
            } else {
                Ok(models::retrieve(&shared, request.headers(), id))
            }
        }
        Route::Gemini(route) => gemini::handle(&shared, route, request).await,
        Route::Control(route) => {
            return Ok(control::handle(&shared, route, request.into_body()).await);
        }
        Route::Unknown => {
            Ok(ApiError::unknown_url(request.method(), request.uri().path()).into_response())
        }
    };
    if let Ok(response) = &result {
        shared.stats.count_response(response.status());
    }
    result
}

/// Whether a request speaks Anthropic (it names an API version).
fn is_anthropic(headers: &http::HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

/// Reads a whole request body, up to [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError {
            message: format!("Request body exceeds {MAX_BODY_BYTES} bytes.").into(),
            ..ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }),
        Err(err) => Err(ApiError::invalid_request(
            format!("Could not read the request body: {err}"),
            None,
            None,
        )),
    }
}

/// Every response body: a complete buffer or an SSE stream.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// The whole body; `None` once sent.
    Full(Option<Bytes>),
    /// A server-sent-event stream.
    Sse(SseBody),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = InjectedFault;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InjectedFault>>> {
        match self.get_mut() {
            Self::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            Self::Sse(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(data) => data.is_none(),
            Self::Sse(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Self::Sse(body) => body.size_hint(),
        }
    }
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 200 `application/json` response streamed like an SSE body (Gemini's
/// streamed JSON array).
pub(crate) fn streamed_json_response(body: SseBody) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Sse(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// A 200 `text/event-stream` response.
pub(crate) fn sse_response(body: SseBody) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Sse(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::of(&Method::POST, "/v1/chat/completions"),
            Route::Chat
        );
        assert_eq!(
            Route::of(&Method::GET, "/v1/chat/completions"),
            Route::Unknown
        );
        assert_eq!(Route::of(&Method::GET, "/v1/models"), Route::ListModels);
        assert_eq!(
            Route::of(&Method::POST, "/v1/messages"),
            Route::AnthropicMessages
        );
        assert_eq!(
            Route::of(&Method::POST, "/v1/messages/count_tokens"),
            Route::AnthropicCountTokens
        );
        assert_eq!(
            Route::of(&Method::GET, "/v1/models/x"),
            Route::RetrieveModel
        );
        assert_eq!(
            Route::of(&Method::POST, "/v1beta/models/g:generateContent"),
            Route::Gemini(GeminiRoute::Generate)
        );
        assert_eq!(
            Route::of(&Method::POST, "/v1/models/g:streamGenerateContent"),
            Route::Gemini(GeminiRoute::StreamGenerate)
        );
        assert_eq!(
            Route::of(&Method::POST, "/_fake/config"),
            Route::Control(ControlRoute::SetConfig)
        );
    }
}
