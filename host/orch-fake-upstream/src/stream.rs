//! Streamed responses: the OpenAI `chat.completion.chunk` SSE rendering and
//! the machinery every dialect's stream plays on.
//!
//! A reply is rendered up front into one buffer of events (one allocation,
//! built with a [`ScriptBuilder`]); [`SseBody`] then hands the events to
//! hyper one frame at a time, sleeping where the configuration asks for
//! pacing and injecting cuts and stalls. An "event" is whatever the dialect
//! streams as one unit (an SSE event, or one element of Gemini's streamed
//! JSON array); faults count them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde::Serialize;
use tokio::time::{Instant, Sleep};

use crate::chat::reply::{Reply, SYSTEM_FINGERPRINT, Turn, Usage, split_even};
use crate::error::{ApiError, ErrorObject, InjectedFault};
use crate::scenario::StreamFault;
use crate::stats::Stats;

/// Pause between the last event before a cut and the abort.
const CUT_FLUSH_DELAY: Duration = Duration::from_millis(5);

/// Timing and shape options of one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamOptions {
    /// Delay before the first (role) chunk.
    pub(crate) ttft: Duration,
    /// Delay before each content or tool-call chunk.
    pub(crate) chunk_delay: Duration,
    /// OpenAI: add `"usage": null` to every chunk and a final usage chunk
    /// (the other dialects always report usage).
    pub(crate) include_usage: bool,
    /// Send an error event after the first event and end there.
    pub(crate) error_event: bool,
}

/// One event's position in the script buffer and its delay.
#[derive(Debug, Clone, Copy)]
struct ScriptedEvent {
    end: usize,
    delay: Duration,
}

/// All events of a stream, rendered.
#[derive(Debug)]
pub(crate) struct SseScript {
    buf: Bytes,
    events: Vec<ScriptedEvent>,
    /// Whether the last event ends the stream normally (`data: [DONE]`,
    /// `message_stop`, the chunk with `finishReason`).
    completes: bool,
}

/// Builds an [`SseScript`] one event at a time.
#[derive(Debug, Default)]
pub(crate) struct ScriptBuilder {
    buf: Vec<u8>,
    events: Vec<ScriptedEvent>,
}

impl ScriptBuilder {
    pub(crate) fn with_capacity(bytes: usize, events: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            events: Vec::with_capacity(events),
        }
    }

    /// Appends the event `data: <json>\n\n`.
    pub(crate) fn data(
        &mut self,
        delay: Duration,
        data: &impl Serialize,
    ) -> serde_json::Result<()> {
        self.framed(delay, b"data: ", data, b"\n\n")
    }

    /// Appends the event `event: <name>\ndata: <json>\n\n`.
    pub(crate) fn named(
        &mut self,
        delay: Duration,
        name: &str,
        data: &impl Serialize,
    ) -> serde_json::Result<()> {
        self.buf.extend_from_slice(b"event: ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'\n');
        self.framed(delay, b"data: ", data, b"\n\n")
    }

    /// Appends one event made of `prefix`, `data` as JSON and `suffix`.
    pub(crate) fn framed(
        &mut self,
        delay: Duration,
        prefix: &[u8],
        data: &impl Serialize,
        suffix: &[u8],
    ) -> serde_json::Result<()> {
        self.buf.extend_from_slice(prefix);
        serde_json::to_writer(&mut self.buf, data)?;
        self.buf.extend_from_slice(suffix);
        self.events.push(ScriptedEvent {
            end: self.buf.len(),
            delay,
        });
        Ok(())
    }

    /// Appends one event of raw bytes.
    pub(crate) fn raw(&mut self, delay: Duration, event: &[u8]) {
        self.buf.extend_from_slice(event);
        self.events.push(ScriptedEvent {
            end: self.buf.len(),
            delay,
        });
    }

    /// Appends bytes to the last event (or, before any event, to the first).
    pub(crate) fn extend_last(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if let Some(last) = self.events.last_mut() {
            last.end = self.buf.len();
        }
    }

    /// Number of events so far.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The finished script; `completes` says whether it ends the stream
    /// normally.
    pub(crate) fn finish(self, completes: bool) -> SseScript {
        SseScript {
            buf: Bytes::from(self.buf),
            events: self.events,
            completes,
        }
    }
}

impl SseScript {
    /// Renders `reply` as a stream.
    pub(crate) fn render(reply: &Reply<'_>, options: StreamOptions) -> serde_json::Result<Self> {
        let mut writer = ScriptWriter {
            reply,
            usage: options.include_usage.then_some(None),
            out: ScriptBuilder::with_capacity(512 + 256 * reply.chunks, reply.chunks + 8),
        };
        let role_content = match reply.turn {
            Turn::Text(_) => Some(""),
            Turn::ToolCalls(_) => None,
        };
        writer.chunk(
            options.ttft,
            Delta {
                role: Some("assistant"),
                content: Some(role_content),
                tool_calls: None,
            },
            None,
        )?;

        if options.error_event {
            let error = ApiError::for_status(http::StatusCode::INTERNAL_SERVER_ERROR);
            writer.event(
                options.chunk_delay,
                &ErrorEvent {
                    error: error.object(),
                },
            )?;
            return Ok(writer.out.finish(false));
        }

        match &reply.turn {
            Turn::Text(text) => {
                for piece in split_even(text, reply.chunks) {
                    writer.chunk(options.chunk_delay, Delta::content(piece), None)?;
                }
            }
            Turn::ToolCalls(calls) => {
                for (index, call) in calls.iter().enumerate() {
                    let start = ToolCallDelta {
                        index,
                        id: Some(&call.id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(call.function.name),
                            arguments: "",
                        },
                    };
                    writer.chunk(options.chunk_delay, Delta::tool_call(start), None)?;
                    let arguments = &call.function.arguments;
                    let pieces = reply.chunks.min(arguments.chars().count()).max(3);
                    for piece in split_even(arguments, pieces) {
                        let delta = ToolCallDelta {
                            index,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: piece,
                            },
                        };
                        writer.chunk(options.chunk_delay, Delta::tool_call(delta), None)?;
                    }
                }
            }
        }

        writer.chunk(
            Duration::ZERO,
            Delta::default(),
            Some(reply.finish_reason()),
        )?;
        if options.include_usage {
            writer.usage_chunk()?;
        }
        writer.out.raw(Duration::ZERO, b"data: [DONE]\n\n");
        Ok(writer.out.finish(true))
    }

    /// Number of events.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The whole rendered stream.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

struct ScriptWriter<'a> {
    reply: &'a Reply<'a>,
    /// `Some(None)` writes `"usage": null` into every chunk.
    usage: Option<Option<&'a Usage>>,
    out: ScriptBuilder,
}

impl ScriptWriter<'_> {
    fn chunk(
        &mut self,
        delay: Duration,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) -> serde_json::Result<()> {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        let chunk = envelope(self.reply, std::slice::from_ref(&choice), self.usage);
        self.event(delay, &chunk)
    }

    fn usage_chunk(&mut self) -> serde_json::Result<()> {
        let reply = self.reply;
        let chunk = envelope(reply, &[], Some(Some(&reply.usage)));
        self.event(Duration::ZERO, &chunk)
    }

    fn event(&mut self, delay: Duration, data: &impl Serialize) -> serde_json::Result<()> {
        self.out.data(delay, data)
    }
}

/// A chunk of `reply` with these choices and usage.
fn envelope<'c>(
    reply: &'c Reply<'c>,
    choices: &'c [ChunkChoice<'c>],
    usage: Option<Option<&'c Usage>>,
) -> Chunk<'c> {
    Chunk {
        id: &reply.id,
        object: "chat.completion.chunk",
        created: reply.created,
        model: reply.model,
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices,
        usage,
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `Some(None)` is an explicit `"content": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

impl<'a> Delta<'a> {
    fn content(text: &'a str) -> Self {
        Self {
            content: Some(Some(text)),
            ..Self::default()
        }
    }

    fn tool_call(call: ToolCallDelta<'a>) -> Self {
        Self {
            tool_calls: Some([call]),
            ..Self::default()
        }
    }
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    error: ErrorObject<'a>,
}

/// The response body of a stream: plays an [`SseScript`].
#[derive(Debug)]
pub(crate) struct SseBody {
    script: SseScript,
    /// Index of the next event.
    next: usize,
    /// Start of the next event in the script buffer.
    start: usize,
    fault: Option<StreamFault>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether `sleep` is armed for the next event.
    armed: bool,
    /// Whether a stall fault has struck.
    stalled: bool,
    stats: Arc<Stats>,
}

impl SseBody {
    /// A body playing `script`, interrupted by `fault` if it strikes before
    /// the script ends.
    pub(crate) fn new(script: SseScript, fault: Option<StreamFault>, stats: Arc<Stats>) -> Self {
        let fault = fault.filter(|fault| fault.after() < script.len());
        Self {
            script,
            next: 0,
            start: 0,
            fault,
            sleep: None,
            armed: false,
            stalled: false,
            stats,
        }
    }

    /// Waits out `delay` before the next event.
    fn poll_delay(&mut self, delay: Duration, cx: &mut Context<'_>) -> Poll<()> {
        if delay.is_zero() {
            return Poll::Ready(());
        }
        if !self.armed {
            let deadline = Instant::now() + delay;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        if let Some(sleep) = &mut self.sleep {
            ready!(sleep.as_mut().poll(cx));
        }
        self.armed = false;
        Poll::Ready(())
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = InjectedFault;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InjectedFault>>> {
        let this = self.get_mut();
        match this.fault {
            Some(StreamFault::Cut(after)) if after == this.next => {
                // hyper drops unflushed output when a body fails: pause first
                // so the events sent so far reach the client.
                ready!(this.poll_delay(CUT_FLUSH_DELAY, cx));
                this.fault = None;
                this.next = this.script.len();
                this.stats.streams_cut.inc();
                return Poll::Ready(Some(Err(InjectedFault::StreamCut)));
            }
            Some(StreamFault::Garble(after)) if after == this.next => {
                this.fault = None;
                this.next = this.script.len();
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                    b"data: {\"choices\": [{\"delta\": \n\n",
                )))));
            }
            Some(StreamFault::Stall(after)) if after == this.next => {
                // Never woken: hyper drops the body when the client goes away.
                if !this.stalled {
                    this.stalled = true;
                    this.stats.streams_stalled.inc();
                }
                return Poll::Pending;
            }
            _ => {}
        }
        let Some(event) = this.script.events.get(this.next).copied() else {
            return Poll::Ready(None);
        };
        ready!(this.poll_delay(event.delay, cx));
        let data = this.script.buf.slice(this.start..event.end);
        this.start = event.end;
        this.next += 1;
        if this.next == this.script.len() && this.script.completes {
            this.stats.streams_completed.inc();
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.script.len()
    }
}

impl Drop for SseBody {
    /// hyper drops the body when the client closes the connection.
    fn drop(&mut self) {
        if self.next < self.script.len() {
            self.stats.streams_abandoned.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::reply::IdGenerator;
    use crate::chat::request;

    fn events(body: &str, options: StreamOptions, chunks: usize) -> Vec<String> {
        let request = request::parse(body.as_bytes()).unwrap();
        let reply = Reply::new(&request, chunks, &IdGenerator::default());
        let script = SseScript::render(&reply, options).unwrap();
        let text = std::str::from_utf8(&script.buf).unwrap().to_owned();
        assert!(text.ends_with("\n\n"));
        text.split_terminator("\n\n")
            .map(|event| event.strip_prefix("data: ").unwrap().to_owned())
            .collect()
    }

    const OPTIONS: StreamOptions = StreamOptions {
        ttft: Duration::ZERO,
        chunk_delay: Duration::ZERO,
        include_usage: false,
        error_event: false,
    };

    #[test]
    fn text_stream() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#;
        let events = events(body, OPTIONS, 4);
        assert_eq!(events.len(), 1 + 4 + 1 + 1);
        let first: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(
            first["choices"][0]["delta"],
            serde_json::json!({"role":"assistant","content":""})
        );
        assert_eq!(first["object"], "chat.completion.chunk");
        assert!(first.get("usage").is_none());
        let text: String = events[1..5]
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(e).unwrap();
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(text, "Fake reply to: Hi");
        let last: serde_json::Value = serde_json::from_str(&events[5]).unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[6], "[DONE]");
    }

    #[test]
    fn usage_chunk_when_asked() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"Hi"}],
            "stream":true,"stream_options":{"include_usage":true}}"#;
        let options = StreamOptions {
            include_usage: true,
            ..OPTIONS
        };
        let events = events(body, options, 2);
        let first: serde_json::Value = serde_json::from_str(&events[0]).unwrap();
        assert!(first["usage"].is_null() && first.get("usage").is_some());
        let usage: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 2);
    }

    #[test]
    fn error_event_stream() {
        let body = r#"{"model":"error-event","messages":[{"role":"user","content":"Hi"}]}"#;
        let options = StreamOptions {
            error_event: true,
            ..OPTIONS
        };
        let events = events(body, options, 8);
        assert_eq!(events.len(), 2);
        let error: serde_json::Value = serde_json::from_str(&events[1]).unwrap();
        assert_eq!(error["error"]["type"], "server_error");
    }
}
