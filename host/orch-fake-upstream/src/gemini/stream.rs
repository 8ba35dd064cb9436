//! Gemini streams: a sequence of `GenerateContentResponse`s, as SSE
//! (`?alt=sse`: `data: <json>\r\n\r\n` per response) or, without `alt=sse`,
//! as one JSON array sent element by element.
//!
//! Every response carries the cumulative `usageMetadata`; the last one also
//! carries `finishReason`. Faults count responses (array elements).

use std::time::Duration;

use serde_json::{Value, json};

use super::error::GeminiError;
use super::reply::{Body, FunctionCall, Reply};
use crate::chat::reply::split_even;
use crate::stream::{ScriptBuilder, SseScript, StreamOptions};

/// How a stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `?alt=sse`: server-sent events.
    Sse,
    /// A JSON array, one element per response.
    JsonArray,
}

/// Renders `reply` as a stream.
pub(crate) fn render(
    reply: &Reply<'_>,
    options: StreamOptions,
    framing: Framing,
) -> serde_json::Result<SseScript> {
    let mut out = Writer {
        out: ScriptBuilder::with_capacity(4096, 16),
        framing,
        first_delay: Some(options.ttft),
        delay: options.chunk_delay,
    };
    let mut responses: Vec<(Vec<Value>, bool, u64)> = Vec::new();
    if let Some(thought) = reply.thought_part() {
        responses.push((vec![thought], false, 0));
    }
    match &reply.body {
        Body::Text { text, pieces } => {
            let pieces_total = *pieces;
            for (k, piece) in split_even(text, pieces_total).enumerate() {
                let last = k + 1 == pieces_total;
                let so_far = u64::try_from(k + 1).unwrap_or(u64::MAX);
                responses.push((vec![json!({"text": piece})], last, so_far));
            }
        }
        Body::Calls(calls) => {
            let parts = calls.iter().map(FunctionCall::part).collect();
            responses.push((parts, true, reply.usage.candidates));
        }
    }

    for (parts, finish, candidates) in responses {
        out.push(&reply.response(parts, finish, candidates))?;
        if options.error_event {
            // The first response, then an in-stream error, then the end.
            let error = GeminiError::for_status(http::StatusCode::SERVICE_UNAVAILABLE);
            out.push(&json!({"error": error.object()}))?;
            return Ok(out.finish(false));
        }
    }
    Ok(out.finish(true))
}

struct Writer {
    out: ScriptBuilder,
    framing: Framing,
    /// The delay of the first response (time to first token), once.
    first_delay: Option<Duration>,
    delay: Duration,
}

impl Writer {
    fn push(&mut self, response: &Value) -> serde_json::Result<()> {
        let delay = self.first_delay.take().unwrap_or(self.delay);
        match self.framing {
            Framing::Sse => self.out.framed(delay, b"data: ", response, b"\r\n\r\n"),
            Framing::JsonArray if self.out.len() == 0 => {
                self.out.framed(delay, b"[", response, b"")
            }
            Framing::JsonArray => self.out.framed(delay, b",\r\n", response, b""),
        }
    }

    fn finish(mut self, completes: bool) -> SseScript {
        if self.framing == Framing::JsonArray {
            self.out.extend_last(b"]");
        }
        self.out.finish(completes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chat::reply::IdGenerator;
    use crate::gemini::reply::EXTENSION_FIELD;
    use crate::gemini::request::{Mode, parse};
    use crate::prompt_cache::PromptCache;

    const OPTIONS: StreamOptions = StreamOptions {
        ttft: Duration::ZERO,
        chunk_delay: Duration::ZERO,
        include_usage: true,
        error_event: false,
    };

    fn rendered(body: &Value, options: StreamOptions, framing: Framing) -> String {
        let bytes = serde_json::to_vec(body).unwrap();
        let request = parse(&bytes, Mode::Generate, "gem").unwrap();
        let reply = Reply::new(
            &request,
            "gem",
            3,
            &IdGenerator::default(),
            &PromptCache::default(),
        );
        String::from_utf8(render(&reply, options, framing).unwrap().bytes().to_vec()).unwrap()
    }

    fn hello() -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]})
    }

    #[test]
    fn sse_text_stream() {
        let text = rendered(&hello(), OPTIONS, Framing::Sse);
        let events: Vec<Value> = text
            .split_terminator("\r\n\r\n")
            .map(|event| serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        assert_eq!(events.len(), 3);
        let joined: String = events
            .iter()
            .map(|e| {
                e["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(joined, "Fake reply to: Hello");
        assert!(events[0]["candidates"][0].get("finishReason").is_none());
        assert!(
            events
                .iter()
                .all(|event| event[EXTENSION_FIELD] == json!({"ok": true}))
        );
        assert_eq!(events[0]["usageMetadata"]["candidatesTokenCount"], 1);
        assert_eq!(events[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(events[2]["usageMetadata"]["candidatesTokenCount"], 3);
    }

    #[test]
    fn json_array_stream() {
        let text = rendered(&hello(), OPTIONS, Framing::JsonArray);
        let array: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(array.len(), 3);
    }

    #[test]
    fn error_event_after_the_first_response() {
        let options = StreamOptions {
            error_event: true,
            ..OPTIONS
        };
        let array: Vec<Value> =
            serde_json::from_str(&rendered(&hello(), options, Framing::JsonArray)).unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array[1]["error"]["status"], "UNAVAILABLE");
    }
}
