//! Helpers for the canonical payload shape (OpenAI Chat Completions).

use serde_json::Value;

use crate::{ChunkKind, Usage};

/// Reads an OpenAI `usage` object: `prompt_tokens`, `completion_tokens`,
/// `prompt_tokens_details.cached_tokens` (or DeepSeek's
/// `prompt_cache_hit_tokens`) and `completion_tokens_details.reasoning_tokens`.
///
/// Returns `None` unless `usage` is an object with at least one of
/// `prompt_tokens` and `completion_tokens`. Counts above `u32::MAX` saturate.
///
/// ```
/// let usage = serde_json::json!({
///     "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
///     "prompt_tokens_details": {"cached_tokens": 4},
/// });
/// let usage = orch_plugin_sdk::openai::usage_from_openai(&usage).unwrap();
/// assert_eq!((usage.input_tokens, usage.output_tokens), (10, 5));
/// assert_eq!(usage.cached_input_tokens, Some(4));
/// ```
pub fn usage_from_openai(usage: &Value) -> Option<Usage> {
    let usage = usage.as_object()?;
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).map(saturate);
    let input = count(usage.get("prompt_tokens"));
    let output = count(usage.get("completion_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    let detail = |details: &str, field: &str| count(usage.get(details).and_then(|d| d.get(field)));
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: detail("prompt_tokens_details", "cached_tokens")
            .or_else(|| count(usage.get("prompt_cache_hit_tokens"))),
        cache_write_input_tokens: None,
        reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
    })
}

/// What a canonical `chat.completion.chunk` means to the host:
///
/// * [`ChunkKind::Content`] when any choice's `delta` carries model output: a
///   non-empty `content`, `refusal`, `reasoning_content` or `reasoning`
///   string, non-empty `tool_calls`, or a non-null `function_call`;
/// * [`ChunkKind::Usage`] when `choices` is empty (or missing) and `usage` is
///   an object;
/// * [`ChunkKind::Meta`] otherwise (role announcements, finish reasons, ...).
///
/// ```
/// use orch_plugin_sdk::{openai::chunk_kind, ChunkKind};
/// use serde_json::json;
///
/// let role = json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
/// assert_eq!(chunk_kind(&role), ChunkKind::Meta);
/// let text = json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]});
/// assert_eq!(chunk_kind(&text), ChunkKind::Content);
/// let usage = json!({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}});
/// assert_eq!(chunk_kind(&usage), ChunkKind::Usage);
/// ```
pub fn chunk_kind(chunk: &Value) -> ChunkKind {
    let choices = chunk.get("choices").and_then(Value::as_array);
    let has_output = choices
        .into_iter()
        .flatten()
        .filter_map(|choice| choice.get("delta"))
        .any(delta_has_output);
    if has_output {
        return ChunkKind::Content;
    }
    let no_choices = choices.is_none_or(Vec::is_empty);
    if no_choices && chunk.get("usage").is_some_and(Value::is_object) {
        ChunkKind::Usage
    } else {
        ChunkKind::Meta
    }
}

fn delta_has_output(delta: &Value) -> bool {
    let non_empty_string = |field: &str| {
        delta
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    ["content", "refusal", "reasoning_content", "reasoning"]
        .into_iter()
        .any(non_empty_string)
        || match delta.get("tool_calls") {
            Some(Value::Array(calls)) => !calls.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        }
        || delta.get("function_call").is_some_and(|f| !f.is_null())
}

fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn usage_full() {
        let usage = usage_from_openai(&json!({
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 80, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 20},
        }));
        assert_eq!(
            usage,
            Some(Usage {
                input_tokens: 100,
                output_tokens: 50,
                cached_input_tokens: Some(80),
                cache_write_input_tokens: None,
                reasoning_tokens: Some(20),
            })
        );
    }

    #[test]
    fn usage_partial_and_deepseek() {
        let usage = usage_from_openai(&json!({"prompt_tokens": 7, "prompt_cache_hit_tokens": 3}));
        assert_eq!(
            usage,
            Some(Usage {
                input_tokens: 7,
                cached_input_tokens: Some(3),
                ..Usage::default()
            })
        );
        let usage =
            usage_from_openai(&json!({"prompt_tokens": 1, "completion_tokens": 5_000_000_000_u64}));
        assert_eq!(usage.map(|u| u.output_tokens), Some(u32::MAX));
    }

    #[test]
    fn usage_absent() {
        assert_eq!(usage_from_openai(&Value::Null), None);
        assert_eq!(usage_from_openai(&json!({})), None);
        assert_eq!(usage_from_openai(&json!({"total_tokens": 3})), None);
        assert_eq!(usage_from_openai(&json!([1])), None);
    }

    #[test]
    fn chunk_kinds() {
        let cases = [
            (
                json!({"choices": [{"delta": {"role": "assistant"}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"content": ""}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"content": "x"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"refusal": "no"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"reasoning_content": "hm"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"reasoning": "hm"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"tool_calls": []}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"tool_calls": null}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {"function_call": {"name": "f"}}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {"function_call": null}}]}),
                ChunkKind::Meta,
            ),
            (
                json!({"choices": [{"delta": {}}, {"delta": {"content": "second"}}]}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [], "usage": {"prompt_tokens": 1}}),
                ChunkKind::Usage,
            ),
            (json!({"usage": {"prompt_tokens": 1}}), ChunkKind::Usage),
            (json!({"choices": [], "usage": null}), ChunkKind::Meta),
            (
                json!({"choices": [{"delta": {"content": "x"}}], "usage": {"prompt_tokens": 1}}),
                ChunkKind::Content,
            ),
            (
                json!({"choices": [{"delta": {}}], "usage": {"prompt_tokens": 1}}),
                ChunkKind::Meta,
            ),
            (json!("not an object"), ChunkKind::Meta),
        ];
        for (chunk, kind) in cases {
            assert_eq!(chunk_kind(&chunk), kind, "{chunk}");
        }
    }
}
