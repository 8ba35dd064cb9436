//! What plugin calls cost, measured in this process with the plugin host on
//! the built components: instantiation, `build_request`, `parse_response`,
//! one stream chunk, and how far past its deadline a spinning plugin runs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use orch_core::contract::{Frame, Operation, PayloadForm, ProviderView, RequestContext};
use orch_plugin_host::{CallError, Limits, LoadedPlugin, PluginFault, PluginHost};

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
    }
}

/// Load one component alone: copy it into a fresh folder so nothing else
/// loads, and return the adapter with this id. The folder must outlive the
/// returned host.
async fn load_alone(
    component: &Path,
    adapter_id: &str,
    call_timeout: Duration,
    dir: &Path,
) -> Result<(Arc<PluginHost>, Arc<LoadedPlugin>)> {
    let file = component
        .file_name()
        .with_context(|| format!("{} is not a file", component.display()))?;
    std::fs::copy(component, dir.join(file))
        .with_context(|| format!("cannot copy {}", component.display()))?;
    let host = PluginHost::new(dir, limits(call_timeout)).map_err(anyhow::Error::msg)?;
    let report = host.reload().await;
    if let Some((path, why)) = report.rejected.first() {
        bail!("{} was refused: {why}", path.display());
    }
    let plugin = host
        .snapshot()
        .adapter(adapter_id)
        .cloned()
        .with_context(|| format!("{} holds no adapter {adapter_id:?}", component.display()))?;
    Ok((host, plugin))
}

/// The request context of one benchmark attempt.
fn context(streaming: bool) -> RequestContext {
    let received_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    RequestContext {
        request_id: "bench-0000".into(),
        operation: Operation::Chat,
        requested_model: "bench".into(),
        upstream_model: "gpt-4o-mini".into(),
        streaming,
        form: PayloadForm::Canonical,
        ingress_dialect: "openai".into(),
        received_at_ms,
        provider: ProviderView {
            name: "bench".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
            options_json: "{}".into(),
        },
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
    let iterations = iterations.max(10);
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (_host, plugin) = load_alone(
        &plugins_dir.join("openai.wasm"),
        "openai",
        Duration::from_secs(1),
        scratch.path(),
    )
    .await?;

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
}
