//! A fake LLM provider speaking the OpenAI, Anthropic and Gemini APIs, for
//! tests, benchmarks and trying the gateway without provider keys.
//!
//! It validates requests as strictly as the real APIs (so translation bugs
//! surface as the 400 the real provider would give), answers
//! deterministically (text, tool calls, thinking with signatures, usage with
//! cached tokens) and injects faults on demand. The OpenAI route is also the
//! baseline of the gateway benchmark, so a request there costs one parse, one
//! render and no locks beyond a short swap of the recorded last request.
//!
//! # Routes
//!
//! | dialect   | route | notes |
//! |-----------|-------|-------|
//! | OpenAI    | `POST /v1/chat/completions` | JSON or SSE (`stream: true`); key: `Authorization: Bearer` (only checked with [`FakeConfig::expect_key`]) |
//! | OpenAI    | `GET /v1/models`, `GET /v1/models/{id}` | without an `anthropic-version` header |
//! | Anthropic | `POST /v1/messages` | JSON or SSE (`stream: true`); needs a key (`x-api-key`, or `Authorization: Bearer` as current SDKs send it) and an `anthropic-version` date |
//! | Anthropic | `POST /v1/messages/count_tokens` | `{"input_tokens": n}` |
//! | Anthropic | `GET /v1/models`, `GET /v1/models/{id}` | with an `anthropic-version` header: `{"data", "has_more", "first_id", "last_id"}` |
//! | Gemini    | `POST /v1beta/models/{model}:generateContent` | needs `x-goog-api-key` (or `?key=`, counted in [`StatsSnapshot::gemini_key_in_query`]) |
//! | Gemini    | `POST /v1beta/models/{model}:streamGenerateContent` | SSE with `?alt=sse` (`data: …\r\n\r\n`), a streamed JSON array otherwise |
//! | Gemini    | `POST /v1beta/models/{model}:countTokens` | `{contents}` or `{generateContentRequest}` → `{"totalTokens": n}` |
//! | Gemini    | `GET /v1beta/models`, `GET /v1beta/models/{model}` | paged with `pageSize` / `pageToken` |
//!
//! The Gemini routes are also served under `/v1/` (the stable API version,
//! the current google-genai SDKs' default): `POST /v1/models/{model}:…`
//! always, `GET /v1/models[/{model}]` when the request carries a Gemini key
//! (`x-goog-api-key` or `?key=`) and no `anthropic-version`.
//!
//! Errors use each dialect's shape: OpenAI `{"error":{"message","type",
//! "param","code"}}`, Anthropic `{"type":"error","error":{"type","message"},
//! "request_id"}` (every Anthropic response has a `request-id` header),
//! Google `{"error":{"code","message","status","details"}}`. Missing keys:
//! Anthropic 401 `authentication_error`, Gemini 403 `PERMISSION_DENIED`; a
//! key other than [`FakeConfig::expect_key`]: OpenAI 401 `invalid_api_key`,
//! Anthropic 401 `authentication_error`, Gemini 400 `INVALID_ARGUMENT` with
//! reason `API_KEY_INVALID`. Unknown request fields are accepted in every
//! dialect (the real Anthropic and Gemini APIs refuse them), so tests can
//! check that a gateway passes them through ([`FakeUpstream::last_request`]).
//! Likewise every successful response carries an unknown field whose value
//! is `{"ok": true}`: OpenAI `x_fake_extension` on a `chat.completion`,
//! Anthropic `x_fake_extension` on a `message` (and on the `message_start`
//! event's message and the `message_delta` event), Gemini `xFakeExtension`
//! on every `GenerateContentResponse`, streamed ones included.
//!
//! # Replies
//!
//! The same in every dialect:
//!
//! - Text: `Fake reply to: <first 40 characters of the last user text>`,
//!   plus ` [images: N]` when the request carried N > 0 images (OpenAI
//!   `image_url` parts, Anthropic `image` blocks with a `base64`, `url` or
//!   `file` source, Gemini `inlineData` / `fileData` parts with an `image/*`
//!   MIME type), padded with dots to at least [`FakeConfig::chunks`]
//!   characters; streams cut it into `chunks` pieces; it counts `chunks`
//!   output tokens.
//! - Echo: when the last user message's text contains `echo:`, the reply is
//!   exactly the text after the first `echo:` (leading whitespace trimmed),
//!   not padded, in at most `chunks` pieces. `echo64:<base64>` echoes the
//!   decoded text instead (a reply a request's own text does not show).
//! - Tools: when tools are sent (and not disabled by `tool_choice` /
//!   `toolConfig` mode `NONE`) and the conversation does not end with tool
//!   results, the reply calls the first two tools in parallel (one with
//!   OpenAI `parallel_tool_calls: false` or Anthropic
//!   `disable_parallel_tool_use`; the named one with a forced choice; the
//!   allowed ones with Gemini `allowedFunctionNames`), with arguments holding
//!   every required property of the schema (strings `"example"`, integers 1,
//!   numbers 1.5, booleans true, the first `enum` value). Ids: OpenAI
//!   `call_<20 hex>`, Anthropic `toolu_<20 hex>`; Gemini calls carry an `id`
//!   (`fc_<20 hex>`) only when the request's earlier turns used ids, like the
//!   real API which omits them.
//! - After tool results: `Tool result received: <quote>` (Anthropic and
//!   Gemini: one 40-character quote per result, joined with `; `; a Gemini
//!   `functionResponse` is quoted by its `result`, `output` or `content`
//!   string, else its JSON).
//! - Prompt tokens: the prompt's characters / 4, rounded up, at least 1.
//! - Length limits: an Anthropic `max_tokens` or Gemini `maxOutputTokens`
//!   below the text's token count cuts the text (`stop_reason: max_tokens`,
//!   `finishReason: MAX_TOKENS`).
//!
//! # Thinking and signatures
//!
//! - Anthropic: with `thinking: {type: enabled, budget_tokens >= 1024}`
//!   (budget below `max_tokens`), `{type: adaptive}` or
//!   `{type: between_tools}`, the reply starts with a `thinking` block whose
//!   signature is [`thinking_signature`] of its text (`Thinking about …`, or
//!   empty with `display: "omitted"`). In later requests every
//!   assistant `thinking` block must carry exactly that signature (400
//!   ``messages.N.content.M: Invalid `signature` in `thinking` block``), and
//!   with thinking enabled the last assistant message, when it used tools,
//!   must start with a thinking block (the real API's rule).
//! - Gemini: with `thinkingConfig` (`includeThoughts: true`, a
//!   `thinkingBudget` other than 0, or a `thinkingLevel`) the model thinks:
//!   `thoughtsTokenCount` is reported and the first `functionCall` part
//!   carries `thoughtSignature` = [`function_call_signature`] of the call;
//!   `includeThoughts: true` also returns a `{"text", "thought": true}`
//!   part first. In later requests a `functionCall`'s signature must be the
//!   one issued for it (400 `Corrupted thought signature.`), and with
//!   thinking on, the first call of every model turn of the current turn
//!   must carry one (400 `Function call is missing a thought_signature…`).
//!
//! Count-tokens endpoints do not check signatures.
//!
//! # Cached tokens
//!
//! Each fake upstream remembers prompt prefixes (per model): Anthropic
//! prefixes end at blocks with `cache_control` (first seen: reported as
//! `cache_creation_input_tokens`, then as `cache_read_input_tokens`);
//! Gemini prefixes end after each content (implicit caching: a request
//! repeating an earlier request's system instruction, tools and first
//! contents reports them as `cachedContentTokenCount`). There is no minimum
//! prefix length.
//!
//! # Scenarios
//!
//! Magic model names (the `model` field, or the Gemini path's model) select a
//! behaviour per request, whatever the configuration says (and are served
//! even when [`FakeConfig::models`] is restricted):
//!
//! | model             | behaviour                                                       |
//! |-------------------|-----------------------------------------------------------------|
//! | `status-<code>`   | that error status (400..=599) in the dialect's error shape; OpenAI and Anthropic 429 (and Anthropic 529 `overloaded_error`) add `retry-after: 1`, Gemini 429 (`RESOURCE_EXHAUSTED`) has a `RetryInfo` detail with `retryDelay: "1s"` |
//! | `reset`           | the connection is closed without a response                     |
//! | `cut-after-<n>`   | streams: the connection is aborted after `n` events              |
//! | `stall-after-<n>` | streams: nothing after `n` events, connection kept open          |
//! | `garble-after-<n>` | streams: after `n` events a line that is not JSON, then the end of the body |
//! | `error-event`     | streams: the first event, an in-stream error, then the end (OpenAI `{"error":{..}}` server error, Anthropic `event: error` with `overloaded_error`, Gemini `{"error":{"code":503,"status":"UNAVAILABLE",..}}`) |
//! | `slow-<ms>`       | that latency before the response headers                        |
//!
//! Other models get normal replies, subject to the configured faults
//! ([`FakeConfig::fail_rate`], [`FakeConfig::cut_after`], ...), in every
//! dialect and on the count-tokens endpoints too (which ignore stream
//! faults). Events are counted from the first one: OpenAI SSE events from
//! the role chunk (`[DONE]` is one too); Anthropic SSE events from
//! `message_start` (`ping` included); Gemini responses (SSE events or JSON
//! array elements).
//!
//! # Control endpoints
//!
//! `GET /_fake/stats` ([`StatsSnapshot`]: counters per dialect, and a
//! credential-free [`RequestSummary`] of the last request naming its
//! headers), `GET`/`POST /_fake/config` ([`FakeConfig`], partial JSON
//! allowed) and `GET /_fake/last_request` ([`RecordedRequest`] or `null`).

mod anthropic;
mod chat;
mod config;
mod control;
mod encoding;
mod error;
mod gemini;
mod models;
mod prompt_cache;
mod record;
mod scenario;
mod server;
mod signature;
mod state;
mod stats;
mod stream;
mod synth;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::FakeConfig;
pub use models::DEFAULT_MODEL;
pub use record::{RecordedRequest, RequestSummary};
pub use signature::{function_call_signature, thinking_signature};
pub use stats::StatsSnapshot;

use state::Shared;

/// A running fake upstream. Dropping the handle stops the server too;
/// [`FakeUpstream::shutdown`] also waits for it.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<()>,
    server: JoinHandle<()>,
}

impl fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeUpstream {
    /// Binds `127.0.0.1:0` and serves in a background task.
    pub async fn spawn(config: FakeConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding 127.0.0.1:0")?;
        Self::serve(listener, config).await
    }

    /// Serves on `listener` in a background task (on the current runtime).
    pub async fn serve(listener: TcpListener, config: FakeConfig) -> anyhow::Result<Self> {
        let addr = listener
            .local_addr()
            .context("reading the listener's address")?;
        let shared = Arc::new(Shared::new(config));
        let (shutdown, shutdown_rx) = watch::channel(());
        let server = tokio::spawn(server::accept_loop(listener, shared.clone(), shutdown_rx));
        Ok(Self {
            addr,
            shared,
            shutdown,
            server,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI (and Anthropic) base URL, e.g. `http://127.0.0.1:PORT/v1`
    /// (an unspecified listen address is reported as `127.0.0.1`). Gemini
    /// paths start at `http://{addr}/v1beta`.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}/v1")
    }

    /// A copy of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.snapshot()
    }

    /// The current configuration.
    pub fn config(&self) -> FakeConfig {
        self.shared.config()
    }

    /// Replaces the configuration; requests already running keep the old one.
    pub fn set_config(&self, config: FakeConfig) {
        self.shared.set_config(config);
    }

    /// The last generation or count-tokens request of any dialect (recorded
    /// before any validation or authentication).
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.recorder.last()
    }

    /// Stops accepting, gives open requests a short grace period, closes
    /// every connection and waits until the server task has ended.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(());
        if let Err(err) = self.server.await {
            tracing::warn!(%err, "the fake upstream's server task failed");
        }
    }
}
