//! What plugin calls cost, measured in this process with the plugin host on
//! the built components: instantiation, `build_request`, `parse_response`,
//! one stream chunk, what translating one stream chunk between dialects
//! costs, and how far past its deadline a spinning plugin runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use orch_core::contract::{
    ChunkKind, EgressContext, Frame, Operation, PayloadForm, ProviderView, RequestContext,
    StreamItem,
};
use orch_plugin_host::{
    AdapterInstance, CallError, DialectInstance, Limits, LoadedPlugin, PluginFault, PluginHost,
};

use crate::load::Summary;

/// The call deadline the infinite-loop fixture runs under.
pub const LOOP_DEADLINE: Duration = Duration::from_millis(50);

/// Stream chunks pushed per decoder.
const CHUNKS_PER_STREAM: usize = 10;

/// Measured costs of the `openai` adapter's calls.
#[derive(Debug, Clone)]
pub struct PluginCosts {
    /// Measured iterations per call.
    pub iterations: usize,
    /// A fresh instance (store + instance).
    pub instantiate: Summary,
    /// `build_request` on the canonical request.
    pub build_request: Summary,
    /// `parse_response` on the response.
    pub parse_response: Summary,
    /// `push` of one chunk frame.
    pub stream_chunk: Summary,
    /// Size of the canonical request.
    pub request_bytes: usize,
    /// Size of the response.
    pub response_bytes: usize,
    /// Size of the chunk frame's data.
    pub chunk_bytes: usize,
}

/// How long past its deadline an endless plugin call runs.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineOvershoot {
    /// The configured deadline.
    pub deadline: Duration,
    /// Calls measured.
    pub runs: usize,
    /// Median overshoot (call start to the fault, minus the deadline).
    pub p50: Duration,
    /// Largest overshoot.
    pub max: Duration,
}

fn limits(call_timeout: Duration) -> Limits {
    Limits {
        call_timeout,
        memory_limit_bytes: 64 << 20,
        max_output_bytes: 16 << 20,
        max_instances: 64,
        ..Limits::default()
    }
}

/// Load these components and nothing else: copy them into `dir` (a fresh
/// folder, which must outlive the returned host) and load that.
async fn load_only(
    components: &[&Path],
    call_timeout: Duration,
    dir: &Path,
) -> Result<Arc<PluginHost>> {
    for component in components {
        let file = component
            .file_name()
            .with_context(|| format!("{} is not a file", component.display()))?;
        std::fs::copy(component, dir.join(file))
            .with_context(|| format!("cannot copy {}", component.display()))?;
    }
    let host = PluginHost::new(dir, limits(call_timeout)).map_err(anyhow::Error::msg)?;
    let report = host.reload().await;
    if let Some((path, why)) = report.rejected.first() {
        bail!("{} was refused: {why}", path.display());
    }
    Ok(host)
}

/// Load one component alone and return the adapter with this id.
async fn load_alone(
    component: &Path,
    adapter_id: &str,
    call_timeout: Duration,
    dir: &Path,
) -> Result<(Arc<PluginHost>, Arc<LoadedPlugin>)> {
    let host = load_only(&[component], call_timeout, dir).await?;
    let plugin = host
        .snapshot()
        .adapter(adapter_id)
        .cloned()
        .with_context(|| format!("{} holds no adapter {adapter_id:?}", component.display()))?;
    Ok((host, plugin))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The request context of one benchmark attempt.
fn context(streaming: bool) -> RequestContext {
    RequestContext {
        request_id: "bench-0000".into(),
        operation: Operation::Chat,
        requested_model: "bench".into(),
        upstream_model: "gpt-4o-mini".into(),
        streaming,
        form: PayloadForm::Canonical,
        ingress_dialect: "openai".into(),
        received_at_ms: now_ms(),
        provider: ProviderView {
            name: "bench".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
            options_json: "{}".into(),
        },
    }
}

/// The context of a streaming attempt on a provider of another dialect:
/// `form` says whether the client speaks the provider's dialect (native,
/// bytes passed through) or not (canonical, translated).
fn stream_context(
    upstream_model: &str,
    base_url: &str,
    form: PayloadForm,
    ingress_dialect: &str,
) -> RequestContext {
    RequestContext {
        upstream_model: upstream_model.into(),
        form,
        ingress_dialect: ingress_dialect.into(),
        provider: ProviderView {
            name: "bench".into(),
            base_url: base_url.into(),
            options_json: "{}".into(),
        },
        ..context(true)
    }
}

fn egress_context() -> EgressContext {
    EgressContext {
        request_id: "bench-0000".into(),
        requested_model: "bench".into(),
        received_at_ms: now_ms(),
    }
}

/// A canonical chat request of about 4 KB: a system prompt, a few turns and
/// a tool definition.
pub fn canonical_request() -> String {
    let sentence =
        "The quick brown fox jumps over the lazy dog while the orchestrator routes requests. ";
    let system = sentence.repeat(24);
    let turn = sentence.repeat(4);
    let body = serde_json::json!({
        "model": "bench",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": format!("First question. {turn}")},
            {"role": "assistant", "content": format!("First answer. {turn}")},
            {"role": "user", "content": format!("Second question. {turn}")},
            {"role": "assistant", "content": format!("Second answer. {turn}")},
            {"role": "user", "content": "What is the weather in Paris today?"}
        ],
        "temperature": 0.7,
        "max_tokens": 512,
        "tools": [{
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "City name"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["city"]
                }
            }
        }]
    });
    body.to_string()
}

/// A typical non-streaming OpenAI response, about 600 bytes.
pub fn openai_response() -> String {
    serde_json::json!({
        "id": "chatcmpl-9xYzAbCdEfGhIjKlMnOpQrStUvWx",
        "object": "chat.completion",
        "created": 1_735_689_600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! It is sunny in Paris today, around 21 degrees Celsius with a light breeze from the west. A perfect afternoon for a walk along the Seine.",
                "refusal": null
            },
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 1024,
            "completion_tokens": 34,
            "total_tokens": 1058,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1"
    })
    .to_string()
}

/// The data of one content chunk of an OpenAI stream, about 160 bytes.
pub fn openai_chunk() -> String {
    serde_json::json!({
        "id": "chatcmpl-42",
        "object": "chat.completion.chunk",
        "created": 1_735_689_600,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": " sunny"}, "finish_reason": null}]
    })
    .to_string()
}

/// An Anthropic stream as the Messages API sends it, as frames: the events
/// before the text (`message_start`, `content_block_start`, `ping`), the
/// text as `content_block_delta`s with these pieces, and the events after it.
pub fn anthropic_stream<'a>(pieces: impl IntoIterator<Item = &'a str>) -> AnthropicStream {
    let event = |name: &str, data: serde_json::Value| Frame {
        event: Some(name.to_owned()),
        data: data.to_string().into_bytes(),
    };
    let head = vec![
        event(
            "message_start",
            serde_json::json!({"type": "message_start", "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
                "content": [], "model": "claude-sonnet-4-5-20250929",
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 1024, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": 1,
                          "service_tier": "standard"}}}),
        ),
        event(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", serde_json::json!({"type": "ping"})),
    ];
    let deltas = pieces
        .into_iter()
        .map(|piece| {
            event(
                "content_block_delta",
                serde_json::json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}),
            )
        })
        .collect();
    let tail = vec![
        event(
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "message_delta",
            serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 34}}),
        ),
        event("message_stop", serde_json::json!({"type": "message_stop"})),
    ];
    AnthropicStream { head, deltas, tail }
}

/// A recorded Anthropic stream (see [`anthropic_stream`]).
#[derive(Debug, Clone)]
pub struct AnthropicStream {
    /// `message_start`, `content_block_start`, `ping`.
    pub head: Vec<Frame>,
    /// One `content_block_delta` per text piece.
    pub deltas: Vec<Frame>,
    /// `content_block_stop`, `message_delta`, `message_stop`.
    pub tail: Vec<Frame>,
}

/// One `GenerateContentResponse` of a `streamGenerateContent?alt=sse`
/// stream, as the Gemini API sends it: every response carries the usage so
/// far, the last one also `finishReason`.
pub fn gemini_chunk(text: &str, output_tokens: u32, finish: bool) -> Frame {
    let mut candidate = serde_json::json!({
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    });
    if finish {
        candidate["finishReason"] = serde_json::json!("STOP");
    }
    let data = serde_json::json!({
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": 1024,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": 1024 + output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1024}]
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "Ue5oaPTbKZyJ1PIP8ZuI8AM"
    });
    Frame {
        event: None,
        data: data.to_string().into_bytes(),
    }
}

/// `n` text pieces of a few tokens each, as models stream them.
pub fn stream_pieces(n: usize) -> impl Iterator<Item = &'static str> {
    const PIECES: [&str; 5] = [" It is", " sunny", " in Paris", " today,", " around 21"];
    (0..n).map(|i| PIECES[i % PIECES.len()])
}

fn header(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_owned(), value.to_owned())]
}

fn elapsed_nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn summary(samples: &mut [u64], what: &str) -> Result<Summary> {
    Summary::of(samples).with_context(|| format!("no {what} samples"))
}

/// Measure the calls of the `openai` adapter found in `plugins_dir`, each
/// over `iterations` calls after a tenth as many unmeasured warm-up calls.
pub async fn measure(plugins_dir: &Path, iterations: usize) -> Result<PluginCosts> {
    Ok(
        measure_adapter(&plugins_dir.join("openai.wasm"), "openai", iterations)
            .await?
            .calls,
    )
}

/// What one adapter component costs: loading it, and its calls.
#[derive(Debug, Clone)]
pub struct AdapterCosts {
    /// The component file's size.
    pub component_bytes: u64,
    /// Compiling and validating it (what a gateway start or a hot reload
    /// spends on it, off the request path).
    pub load_time: Duration,
    /// Its calls, as [`measure`] measures the `openai` adapter's.
    pub calls: PluginCosts,
}

/// Load the adapter `adapter_id` from `component` alone and measure its
/// load and its calls on the `openai` adapter's inputs (the canonical
/// request, an OpenAI response and stream chunk), so adapters of an
/// OpenAI-compatible API compare one to one, e.g. `openai.wasm` with
/// `openai-js.wasm` (the same adapter in JavaScript).
pub async fn measure_adapter(
    component: &Path,
    adapter_id: &str,
    iterations: usize,
) -> Result<AdapterCosts> {
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (_host, plugin) = load_alone(
        component,
        adapter_id,
        Duration::from_secs(1),
        scratch.path(),
    )
    .await?;
    Ok(AdapterCosts {
        component_bytes: plugin.size,
        load_time: plugin.load_time,
        calls: measure_calls(&plugin, iterations).await?,
    })
}

/// Measure a loaded adapter's calls, each over `iterations` calls after a
/// tenth as many unmeasured warm-up calls.
async fn measure_calls(plugin: &Arc<LoadedPlugin>, iterations: usize) -> Result<PluginCosts> {
    let iterations = iterations.max(10);
    let request = canonical_request();
    let response = openai_response();
    let chunk = Frame {
        event: None,
        data: openai_chunk().into_bytes(),
    };
    let json = header("content-type", "application/json");
    let sse = header("content-type", "text/event-stream");
    let plain = context(false);
    let streaming = context(true);

    // Each attempt in the gateway gets a fresh instance, so each iteration
    // here does too: instantiate, build the request, parse the response.
    let warmup = iterations / 10;
    let mut instantiate = Vec::with_capacity(iterations);
    let mut build = Vec::with_capacity(iterations);
    let mut parse = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let measured = i >= warmup;
        let t = Instant::now();
        let mut instance = plugin.adapter(&plain).await.context("instantiate")?;
        let d_instantiate = elapsed_nanos(t);
        let t = Instant::now();
        instance
            .build_request(&request)
            .await
            .context("build_request")?;
        let d_build = elapsed_nanos(t);
        let t = Instant::now();
        instance
            .parse_response(200, &json, response.as_bytes())
            .await
            .context("parse_response")?;
        let d_parse = elapsed_nanos(t);
        if measured {
            instantiate.push(d_instantiate);
            build.push(d_build);
            parse.push(d_parse);
        }
    }

    // Streams: a fresh decoder per stream, CHUNKS_PER_STREAM content chunks
    // each (measured), then `[DONE]` and the end of the body (not measured).
    let done = Frame {
        event: None,
        data: b"[DONE]".to_vec(),
    };
    let streams = iterations.div_ceil(CHUNKS_PER_STREAM);
    let mut push = Vec::with_capacity(streams * CHUNKS_PER_STREAM);
    for s in 0..warmup.div_ceil(CHUNKS_PER_STREAM) + streams {
        let measured = s >= warmup.div_ceil(CHUNKS_PER_STREAM);
        let mut instance = plugin.adapter(&streaming).await.context("instantiate")?;
        instance
            .build_request(&request)
            .await
            .context("build_request")?;
        instance
            .start_stream(200, &sse)
            .await
            .context("start_stream")?;
        for _ in 0..CHUNKS_PER_STREAM {
            let t = Instant::now();
            let items = instance.push(&chunk).await.context("push")?;
            let d = elapsed_nanos(t);
            if items.is_empty() {
                bail!("the adapter turned a content chunk into nothing");
            }
            if measured {
                push.push(d);
            }
        }
        instance.push(&done).await.context("push [DONE]")?;
        instance.finish().await.context("finish")?;
    }

    Ok(PluginCosts {
        iterations,
        instantiate: summary(&mut instantiate, "instantiate")?,
        build_request: summary(&mut build, "build_request")?,
        parse_response: summary(&mut parse, "parse_response")?,
        stream_chunk: summary(&mut push, "stream chunk")?,
        request_bytes: request.len(),
        response_bytes: response.len(),
        chunk_bytes: chunk.data.len(),
    })
}

/// The cost of one stream-chunk call, and the size of its input.
#[derive(Debug, Clone, Copy)]
pub struct ChunkCost {
    /// Per call.
    pub cost: Summary,
    /// The frame's data (decoders) or the canonical chunk (encoders).
    pub input_bytes: usize,
}

/// What translating one stream chunk costs: each plugin call on the way,
/// measured on realistic recorded chunks, and the sum per chunk of the
/// calls one translated path makes.
#[derive(Debug, Clone)]
pub struct TranslationCosts {
    /// Measured chunks per call.
    pub chunks: usize,
    /// `anthropic.wasm` decoder, native form: one `content_block_delta`
    /// passed through (path (a); the only plugin call per chunk there).
    pub anthropic_native: ChunkCost,
    /// `anthropic.wasm` decoder, canonical form: one `content_block_delta`
    /// into a canonical chunk (path (b); the OpenAI client gets canonical
    /// chunks without another plugin call).
    pub anthropic_decode: ChunkCost,
    /// `gemini.wasm` decoder, canonical form: one Gemini response into a
    /// canonical chunk.
    pub gemini_decode: ChunkCost,
    /// `dialect-anthropic.wasm` encoder: one canonical chunk (from the
    /// Gemini decoder) into Anthropic events.
    pub anthropic_encode: ChunkCost,
    /// `dialect-gemini.wasm` encoder: one canonical chunk (from the
    /// Anthropic decoder) into a Gemini event.
    pub gemini_encode: ChunkCost,
    /// Path (c): the Gemini decoder's push plus the Anthropic encoder's
    /// pushes of what it produced, summed per chunk.
    pub gemini_to_anthropic: Summary,
}

/// The plugin files [`measure_translation`] needs in the plugins folder.
pub const TRANSLATION_PLUGINS: [&str; 4] = [
    "anthropic.wasm",
    "gemini.wasm",
    "dialect-anthropic.wasm",
    "dialect-gemini.wasm",
];

/// The frames of one recorded upstream stream: `head` and `tail` are pushed
/// unmeasured, each frame of `body` is one measured chunk.
struct Recording {
    head: Vec<Frame>,
    body: Vec<Frame>,
    tail: Vec<Frame>,
}

impl Recording {
    fn anthropic() -> Recording {
        let s = anthropic_stream(stream_pieces(CHUNKS_PER_STREAM));
        Recording {
            head: s.head,
            body: s.deltas,
            tail: s.tail,
        }
    }

    /// The first response (which also opens the canonical stream) and the
    /// last (with `finishReason`) are not measured.
    fn gemini() -> Recording {
        let mut pieces = stream_pieces(CHUNKS_PER_STREAM + 2);
        let mut tokens = 0;
        let mut next = |finish: bool| {
            tokens += 2;
            gemini_chunk(pieces.next().unwrap_or("."), tokens, finish)
        };
        let head = vec![next(false)];
        let body = (0..CHUNKS_PER_STREAM).map(|_| next(false)).collect();
        let tail = vec![next(true)];
        Recording { head, body, tail }
    }
}

/// Per-chunk samples of one decoder (and encoder) chain.
#[derive(Debug, Default)]
struct ChainSamples {
    decode: Vec<u64>,
    encode: Vec<u64>,
    total: Vec<u64>,
    /// The first measured canonical chunk handed to the encoder.
    encoder_input_bytes: usize,
}

/// A stream being translated as the gateway does it: an adapter instance
/// decoding upstream frames, and optionally a dialect instance encoding the
/// decoded chunks for the client.
struct Chain {
    decoder: AdapterInstance,
    encoder: Option<DialectInstance>,
    usage: Option<orch_core::contract::Usage>,
}

impl Chain {
    async fn start(
        adapter: &Arc<LoadedPlugin>,
        ctx: &RequestContext,
        dialect: Option<&Arc<LoadedPlugin>>,
    ) -> Result<Chain> {
        let mut decoder = adapter.adapter(ctx).await.context("instantiate")?;
        decoder
            .start_stream(200, &header("content-type", "text/event-stream"))
            .await
            .context("start_stream")?;
        let encoder = match dialect {
            None => None,
            Some(dialect) => {
                let mut encoder = dialect
                    .dialect(&ctx.request_id)
                    .await
                    .context("instantiate the dialect")?;
                encoder
                    .start_stream(&egress_context())
                    .await
                    .context("start the encoder")?;
                Some(encoder)
            }
        };
        Ok(Chain {
            decoder,
            encoder,
            usage: None,
        })
    }

    async fn decode(&mut self, frame: &Frame) -> Result<Vec<StreamItem>> {
        self.decoder.push(frame).await.context("decoder push")
    }

    /// Encode decoded items as the gateway does: every chunk but usage
    /// chunks (usage reaches the encoder in `finish`). The number of events.
    async fn encode(&mut self, items: &[StreamItem]) -> Result<usize> {
        let mut events = 0;
        for item in items {
            match item {
                StreamItem::Usage(u) => self.usage = Some(*u),
                StreamItem::Chunk(c) if c.kind != ChunkKind::Usage => {
                    if let Some(encoder) = &mut self.encoder {
                        events += encoder.push(&c.data).await.context("encoder push")?.len();
                    }
                }
                StreamItem::Chunk(_) | StreamItem::Done => {}
            }
        }
        Ok(events)
    }

    async fn unmeasured(&mut self, frames: &[Frame]) -> Result<()> {
        for frame in frames {
            let items = self.decode(frame).await?;
            self.encode(&items).await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<()> {
        let items = self.decoder.finish().await.context("decoder finish")?;
        self.encode(&items).await?;
        if let Some(mut encoder) = self.encoder.take() {
            encoder.finish(self.usage).await.context("encoder finish")?;
        }
        Ok(())
    }
}

/// Translate `streams` recorded streams after `warmup` unmeasured ones,
/// timing the decoder's and the encoder's calls for each measured frame.
async fn measure_chain(
    adapter: &Arc<LoadedPlugin>,
    ctx: &RequestContext,
    dialect: Option<&Arc<LoadedPlugin>>,
    recording: &Recording,
    warmup: usize,
    streams: usize,
) -> Result<ChainSamples> {
    let mut samples = ChainSamples::default();
    for s in 0..warmup + streams {
        let measured = s >= warmup;
        let mut chain = Chain::start(adapter, ctx, dialect).await?;
        chain.unmeasured(&recording.head).await?;
        for frame in &recording.body {
            let t = Instant::now();
            let items = chain.decode(frame).await?;
            let d_decode = elapsed_nanos(t);
            let t = Instant::now();
            let events = chain.encode(&items).await?;
            let d_encode = elapsed_nanos(t);
            let content = items.iter().find_map(|item| match item {
                StreamItem::Chunk(c) if c.kind == ChunkKind::Content => Some(c),
                _ => None,
            });
            let Some(content) = content else {
                bail!("the decoder turned a content frame into no content chunk");
            };
            if dialect.is_some() && events == 0 {
                bail!("the encoder turned a content chunk into no event");
            }
            if measured {
                if samples.encoder_input_bytes == 0 {
                    samples.encoder_input_bytes = content.data.len();
                }
                samples.decode.push(d_decode);
                samples.encode.push(d_encode);
                samples.total.push(d_decode + d_encode);
            }
        }
        chain.unmeasured(&recording.tail).await?;
        chain.finish().await?;
    }
    Ok(samples)
}

/// Measure what translating one stream chunk costs with the Anthropic and
/// Gemini adapters and dialect plugins found in `plugins_dir` (see
/// [`TRANSLATION_PLUGINS`]), over about `iterations` chunks per call after a
/// tenth as many unmeasured ones. Each stream gets fresh instances, as in
/// the gateway.
pub async fn measure_translation(
    plugins_dir: &Path,
    iterations: usize,
) -> Result<TranslationCosts> {
    let iterations = iterations.max(10);
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let files = TRANSLATION_PLUGINS.map(|f| plugins_dir.join(f));
    let components: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let host = load_only(&components, Duration::from_secs(1), scratch.path()).await?;
    let snapshot = host.snapshot();
    let adapter = |id: &str| {
        snapshot
            .adapter(id)
            .cloned()
            .with_context(|| format!("no adapter {id:?} in {}", plugins_dir.display()))
    };
    let dialect = |name: &str| {
        snapshot
            .dialect(name)
            .cloned()
            .with_context(|| format!("no {name} dialect plugin in {}", plugins_dir.display()))
    };
    let (anthropic, gemini) = (adapter("anthropic")?, adapter("gemini")?);
    let (to_anthropic, to_gemini) = (dialect("anthropic")?, dialect("gemini")?);

    let streams = iterations.div_ceil(CHUNKS_PER_STREAM);
    let warmup = (iterations / 10).div_ceil(CHUNKS_PER_STREAM);
    let anthropic_frames = Recording::anthropic();
    let gemini_frames = Recording::gemini();
    let claude = "claude-sonnet-4-5";
    let anthropic_origin = "http://127.0.0.1:1";

    // (a) An Anthropic client on an Anthropic provider: native form.
    let native_ctx = stream_context(claude, anthropic_origin, PayloadForm::Native, "anthropic");
    let mut native = measure_chain(
        &anthropic,
        &native_ctx,
        None,
        &anthropic_frames,
        warmup,
        streams,
    )
    .await
    .context("anthropic.wasm, native stream")?;
    // (b) An OpenAI client on an Anthropic provider: canonical chunks go to
    // the client as they are.
    let openai_ctx = stream_context(claude, anthropic_origin, PayloadForm::Canonical, "openai");
    let mut to_openai = measure_chain(
        &anthropic,
        &openai_ctx,
        None,
        &anthropic_frames,
        warmup,
        streams,
    )
    .await
    .context("anthropic.wasm, canonical stream")?;
    // A Gemini client on an Anthropic provider, for the Gemini encoder.
    let gemini_client_ctx =
        stream_context(claude, anthropic_origin, PayloadForm::Canonical, "gemini");
    let mut to_gemini_client = measure_chain(
        &anthropic,
        &gemini_client_ctx,
        Some(&to_gemini),
        &anthropic_frames,
        warmup,
        streams,
    )
    .await
    .context("anthropic.wasm to dialect-gemini.wasm")?;
    // (c) An Anthropic client on a Gemini provider.
    let gemini_ctx = stream_context(
        "gemini-2.5-flash",
        anthropic_origin,
        PayloadForm::Canonical,
        "anthropic",
    );
    let mut from_gemini = measure_chain(
        &gemini,
        &gemini_ctx,
        Some(&to_anthropic),
        &gemini_frames,
        warmup,
        streams,
    )
    .await
    .context("gemini.wasm to dialect-anthropic.wasm")?;

    let frame_bytes = |r: &Recording| r.body.first().map_or(0, |f| f.data.len());
    let cost = |samples: &mut Vec<u64>, input_bytes: usize, what: &str| {
        Ok::<_, anyhow::Error>(ChunkCost {
            cost: summary(samples, what)?,
            input_bytes,
        })
    };
    Ok(TranslationCosts {
        chunks: native.decode.len(),
        anthropic_native: cost(
            &mut native.decode,
            frame_bytes(&anthropic_frames),
            "native decode",
        )?,
        anthropic_decode: cost(
            &mut to_openai.decode,
            frame_bytes(&anthropic_frames),
            "anthropic decode",
        )?,
        gemini_decode: cost(
            &mut from_gemini.decode,
            frame_bytes(&gemini_frames),
            "gemini decode",
        )?,
        anthropic_encode: cost(
            &mut from_gemini.encode,
            from_gemini.encoder_input_bytes,
            "anthropic encode",
        )?,
        gemini_encode: cost(
            &mut to_gemini_client.encode,
            to_gemini_client.encoder_input_bytes,
            "gemini encode",
        )?,
        gemini_to_anthropic: summary(&mut from_gemini.total, "gemini to anthropic")?,
    })
}

/// Call the endless `build_request` of `fixture_loop.wasm` `runs` times
/// under a [`LOOP_DEADLINE`] deadline and measure how late the fault comes.
pub async fn deadline_overshoot(fixture: &Path, runs: usize) -> Result<DeadlineOvershoot> {
    let runs = runs.max(1);
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (_host, plugin) =
        load_alone(fixture, "fixture-loop", LOOP_DEADLINE, scratch.path()).await?;
    let ctx = context(false);
    let mut overshoot = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut instance = plugin.adapter(&ctx).await.context("instantiate")?;
        let t = Instant::now();
        let result = instance.build_request("{}").await;
        let took = t.elapsed();
        match result {
            Err(CallError::Fault(PluginFault::Deadline(_))) => {
                overshoot.push(
                    u64::try_from(took.saturating_sub(LOOP_DEADLINE).as_nanos())
                        .unwrap_or(u64::MAX),
                );
            }
            Ok(_) => bail!("the looping fixture returned a request"),
            Err(other) => {
                bail!("the looping fixture failed with {other} instead of a deadline fault")
            }
        }
    }
    let summary = summary(&mut overshoot, "deadline")?;
    let max = overshoot.last().copied().unwrap_or_default();
    Ok(DeadlineOvershoot {
        deadline: LOOP_DEADLINE,
        runs,
        p50: summary.p50,
        max: Duration::from_nanos(max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_payloads_have_the_advertised_sizes() {
        let request = canonical_request();
        assert!(
            (3_500..=4_600).contains(&request.len()),
            "{}",
            request.len()
        );
        let response = openai_response();
        assert!((550..=700).contains(&response.len()), "{}", response.len());
        let chunk = openai_chunk();
        assert!((140..=180).contains(&chunk.len()), "{}", chunk.len());
        for text in [request, response, chunk] {
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
    }

    fn json(frame: &Frame) -> serde_json::Value {
        serde_json::from_slice(&frame.data).unwrap()
    }

    #[test]
    fn recorded_anthropic_streams_are_well_formed() {
        let stream = anthropic_stream(stream_pieces(3));
        let names: Vec<&str> = stream
            .head
            .iter()
            .chain(&stream.deltas)
            .chain(&stream.tail)
            .map(|f| f.event.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        for frame in stream.head.iter().chain(&stream.deltas).chain(&stream.tail) {
            assert_eq!(json(frame)["type"], frame.event.as_deref().unwrap());
        }
        let delta = json(&stream.deltas[1]);
        assert_eq!(delta["delta"]["type"], "text_delta");
        assert_eq!(delta["delta"]["text"], " sunny");
        assert!(
            (80..=120).contains(&stream.deltas[0].data.len()),
            "{}",
            stream.deltas[0].data.len()
        );
    }

    #[test]
    fn recorded_gemini_chunks_carry_usage_and_finish_only_last() {
        let chunk = gemini_chunk(" sunny", 4, false);
        assert_eq!(chunk.event, None);
        let value = json(&chunk);
        assert_eq!(
            value["candidates"][0]["content"]["parts"][0]["text"],
            " sunny"
        );
        assert!(value["candidates"][0].get("finishReason").is_none());
        assert_eq!(value["usageMetadata"]["totalTokenCount"], 1028);
        assert!(
            (250..=350).contains(&chunk.data.len()),
            "{}",
            chunk.data.len()
        );
        let last = json(&gemini_chunk(".", 10, true));
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    }

    #[test]
    fn recordings_measure_the_chunks_between_head_and_tail() {
        let anthropic = Recording::anthropic();
        assert_eq!(anthropic.body.len(), CHUNKS_PER_STREAM);
        assert_eq!(anthropic.head.len(), 3);
        let gemini = Recording::gemini();
        assert_eq!(gemini.body.len(), CHUNKS_PER_STREAM);
        let finishes = |frames: &[Frame]| {
            frames
                .iter()
                .filter(|f| json(f)["candidates"][0].get("finishReason").is_some())
                .count()
        };
        assert_eq!(finishes(&gemini.head) + finishes(&gemini.body), 0);
        assert_eq!(finishes(&gemini.tail), 1);
        let pieces: Vec<&str> = stream_pieces(7).collect();
        assert_eq!(pieces.len(), 7);
        assert_eq!(pieces[0], pieces[5]);
    }
}
