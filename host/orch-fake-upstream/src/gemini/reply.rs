//! Synthesis of the deterministic Gemini reply and its
//! `GenerateContentResponse` documents.

use serde_json::{Value, json};

use super::request::GenerateRequest;
use crate::chat::reply::IdGenerator;
use crate::chat::tool_args::example_input;
use crate::prompt_cache::PromptCache;
use crate::signature::function_call_signature;
use crate::synth::{self, Intent};

/// The unknown field every `GenerateContentResponse` (streamed ones too)
/// carries, so tests can check that unknown response fields survive a
/// gateway.
pub(crate) const EXTENSION_FIELD: &str = "xFakeExtension";

/// A `functionCall` part of a reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionCall {
    /// Only when the conversation already uses ids.
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) args: Value,
    /// On the first call when thinking is on.
    pub(crate) signature: Option<String>,
}

impl FunctionCall {
    /// The part: `{"functionCall": {name, args, id?}, "thoughtSignature"?}`.
    pub(crate) fn part(&self) -> Value {
        let mut call = json!({"name": self.name, "args": self.args});
        if let Some(id) = &self.id {
            call["id"] = json!(id);
        }
        let mut part = json!({"functionCall": call});
        if let Some(signature) = &self.signature {
            part["thoughtSignature"] = json!(signature);
        }
        part
    }
}

/// What the reply says after its thought.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// Text, streamed in `pieces` chunks.
    Text {
        text: String,
        pieces: usize,
    },
    Calls(Vec<FunctionCall>),
}

/// Token counts of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// The whole prompt, cached part included.
    pub(crate) prompt: u64,
    pub(crate) candidates: u64,
    pub(crate) thoughts: u64,
    pub(crate) cached: u64,
}

impl Usage {
    /// `usageMetadata` with `candidates` output tokens so far (zero counts
    /// are omitted, as protobuf's JSON mapping does).
    pub(crate) fn metadata(&self, candidates: u64) -> Value {
        let mut usage = json!({
            "promptTokenCount": self.prompt,
            "totalTokenCount": self.prompt + candidates + self.thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt}],
        });
        if candidates > 0 {
            usage["candidatesTokenCount"] = json!(candidates);
        }
        if self.thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(self.thoughts);
        }
        if self.cached > 0 {
            usage["cachedContentTokenCount"] = json!(self.cached);
            usage["cacheTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": self.cached}]);
        }
        usage
    }
}

/// A complete model reply, rendered as JSON or as a stream.
#[derive(Debug)]
pub(crate) struct Reply<'r> {
    pub(crate) response_id: String,
    pub(crate) model: &'r str,
    /// The thought summary (`includeThoughts`).
    pub(crate) thought: Option<String>,
    pub(crate) body: Body,
    /// `STOP` or `MAX_TOKENS`.
    pub(crate) finish_reason: &'static str,
    pub(crate) usage: Usage,
}

impl<'r> Reply<'r> {
    /// The reply to `request` for `model`: a thought part (with
    /// `includeThoughts`), then text of `chunks` pieces (cut at
    /// `maxOutputTokens`) or function calls. Cached tokens are looked up in
    /// (and recorded into) `cache`.
    pub(crate) fn new(
        request: &GenerateRequest,
        model: &'r str,
        chunks: usize,
        ids: &IdGenerator,
        cache: &PromptCache,
    ) -> Self {
        let chunks = chunks.max(1);
        let thinking = synth::thinking(&request.thinking_subject);
        let thoughts = if request.thinking {
            synth::text_tokens(thinking.chars().count())
        } else {
            0
        };
        let (body, finish_reason, candidates) = match &request.intent {
            Intent::Text { text, exact } => {
                let (text, pieces) = synth::text_and_pieces(text, *exact, chunks);
                let available = request.max_output_tokens.map_or(usize::MAX, |max| {
                    usize::try_from(max.saturating_sub(thoughts))
                        .unwrap_or(usize::MAX)
                        .max(1)
                });
                if pieces > available {
                    let text = synth::truncated(&text, pieces, available);
                    (
                        Body::Text {
                            text,
                            pieces: available,
                        },
                        "MAX_TOKENS",
                        available,
                    )
                } else {
                    (Body::Text { text, pieces }, "STOP", pieces)
                }
            }
            Intent::CallTools(tools) => {
                let calls = tools
                    .iter()
                    .enumerate()
                    .map(|(k, tool)| {
                        let args = example_input(tool.schema.as_ref().unwrap_or(&Value::Null));
                        FunctionCall {
                            id: request.use_ids.then(|| ids.next("fc_")),
                            signature: (request.thinking && k == 0)
                                .then(|| function_call_signature(&tool.name, &args)),
                            name: tool.name.clone(),
                            args,
                        }
                    })
                    .collect();
                (Body::Calls(calls), "STOP", chunks)
            }
        };
        let prompt = synth::prompt_tokens(request.prompt_chars);
        let keys: Vec<u64> = request.prefixes.iter().map(|(key, _)| *key).collect();
        let cached = cache
            .longest_seen(&keys)
            .and_then(|hit| request.prefixes.get(hit))
            .map_or(0, |(_, chars)| synth::text_tokens(*chars).min(prompt));
        Self {
            response_id: ids.next(""),
            model,
            thought: request.include_thoughts.then_some(thinking),
            body,
            finish_reason,
            usage: Usage {
                prompt,
                candidates: u64::try_from(candidates).unwrap_or(u64::MAX),
                thoughts,
                cached,
            },
        }
    }

    /// Whether the reply thought (tokens, summary or signatures).
    pub(crate) fn thought_at_all(&self) -> bool {
        self.usage.thoughts > 0
    }

    /// The thought-summary part.
    pub(crate) fn thought_part(&self) -> Option<Value> {
        self.thought
            .as_ref()
            .map(|thought| json!({"text": thought, "thought": true}))
    }

    /// One `GenerateContentResponse` carrying `parts`, with `finish` (the
    /// last one) and the usage so far.
    pub(crate) fn response(&self, parts: Vec<Value>, finish: bool, candidates: u64) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if finish {
            candidate["finishReason"] = json!(self.finish_reason);
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": self.usage.metadata(candidates),
            "modelVersion": self.model,
            "responseId": self.response_id,
            EXTENSION_FIELD: {"ok": true},
        })
    }

    /// The whole non-streaming response.
    pub(crate) fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut parts: Vec<Value> = self.thought_part().into_iter().collect();
        match &self.body {
            Body::Text { text, .. } => parts.push(json!({"text": text})),
            Body::Calls(calls) => parts.extend(calls.iter().map(FunctionCall::part)),
        }
        serde_json::to_vec(&self.response(parts, true, self.usage.candidates))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::gemini::request::{Mode, parse};

    fn reply_json(body: &Value, cache: &PromptCache) -> Value {
        let bytes = serde_json::to_vec(body).unwrap();
        let request = parse(&bytes, Mode::Generate, "gem").unwrap();
        let reply = Reply::new(&request, "gem", 8, &IdGenerator::default(), cache);
        serde_json::from_slice(&reply.to_json().unwrap()).unwrap()
    }

    #[test]
    fn text_reply_shape() {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]});
        let json = reply_json(&body, &PromptCache::default());
        let candidate = &json["candidates"][0];
        assert_eq!(candidate["content"]["role"], "model");
        assert_eq!(
            candidate["content"]["parts"][0]["text"],
            "Fake reply to: Hello"
        );
        assert_eq!(candidate["finishReason"], "STOP");
        assert_eq!(json["modelVersion"], "gem");
        assert_eq!(json[EXTENSION_FIELD], json!({"ok": true}));
        assert_eq!(
            json["usageMetadata"],
            json!({"promptTokenCount": 2, "candidatesTokenCount": 8, "totalTokenCount": 10,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2}]})
        );
    }

    #[test]
    fn thinking_calls_are_signed() {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "Weather?"}]}],
            "tools": [{"functionDeclarations": [
                {"name": "get_weather", "parameters": {"type": "OBJECT",
                    "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
                {"name": "get_time"}]}],
            "generationConfig": {"thinkingConfig": {"includeThoughts": true}}});
        let json = reply_json(&body, &PromptCache::default());
        let parts = json["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap();
        assert_eq!(parts[0]["thought"], true);
        assert_eq!(parts[1]["functionCall"]["args"], json!({"city": "example"}));
        assert!(parts[1]["functionCall"].get("id").is_none());
        assert_eq!(
            parts[1]["thoughtSignature"],
            function_call_signature("get_weather", &json!({"city": "example"}))
        );
        assert!(parts[2].get("thoughtSignature").is_none());
        assert!(
            json["usageMetadata"]["thoughtsTokenCount"]
                .as_u64()
                .unwrap()
                > 0
        );
    }

    #[test]
    fn repeated_prefixes_are_cached() {
        let cache = PromptCache::default();
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "x".repeat(40)}]}]});
        let first = reply_json(&body, &cache);
        assert!(
            first["usageMetadata"]
                .get("cachedContentTokenCount")
                .is_none()
        );
        let second = reply_json(&body, &cache);
        assert_eq!(second["usageMetadata"]["cachedContentTokenCount"], 10);
    }

    #[test]
    fn max_output_tokens_cut_the_text() {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
            "generationConfig": {"maxOutputTokens": 2}});
        let json = reply_json(&body, &PromptCache::default());
        assert_eq!(json["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(json["usageMetadata"]["candidatesTokenCount"], 2);
    }
}
