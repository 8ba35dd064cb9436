//! Anthropic's `usage` object and its canonical forms.

use orch_plugin_sdk::Usage;
use serde_json::{Value, json};

/// The token counts of an Anthropic `usage` object. Anthropic counts
/// `input_tokens` without the cached (`cache_read_input_tokens`) and
/// cache-written (`cache_creation_input_tokens`) ones; the canonical counts
/// include them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnthropicUsage {
    /// Uncached input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens (thinking included).
    pub output_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Reads a `usage` object; fields that are missing, `null` or not
    /// non-negative integers count as unknown.
    pub fn from_value(usage: &Value) -> Self {
        let count = |field: &str| usage.get(field).and_then(Value::as_u64);
        Self {
            input_tokens: count("input_tokens"),
            output_tokens: count("output_tokens"),
            cache_creation_input_tokens: count("cache_creation_input_tokens"),
            cache_read_input_tokens: count("cache_read_input_tokens"),
        }
    }

    /// Whether any count is known.
    pub fn is_known(self) -> bool {
        self.input_tokens.is_some() || self.output_tokens.is_some()
    }

    /// Overrides the counts `later` knows (streams report input counts in
    /// `message_start` and cumulative output counts in `message_delta`).
    pub fn merge(&mut self, later: &Self) {
        let pick = |mine: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
    }

    /// All input tokens: uncached + cache reads + cache writes.
    fn prompt_tokens(self) -> u64 {
        self.input_tokens
            .unwrap_or(0)
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
    }

    /// The usage report for the host, if any count is known.
    pub fn to_usage(self) -> Option<Usage> {
        if !self.is_known() {
            return None;
        }
        Some(Usage {
            input_tokens: saturate(self.prompt_tokens()),
            output_tokens: saturate(self.output_tokens.unwrap_or(0)),
            cached_input_tokens: self.cache_read_input_tokens.map(saturate),
            cache_write_input_tokens: self.cache_creation_input_tokens.map(saturate),
            reasoning_tokens: None,
        })
    }

    /// The canonical (OpenAI) `usage` object. Anthropic does not report
    /// reasoning tokens separately, so `completion_tokens_details` is absent.
    pub fn to_canonical(self) -> Value {
        let prompt = self.prompt_tokens();
        let completion = self.output_tokens.unwrap_or(0);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt.saturating_add(completion),
            "prompt_tokens_details": {
                "cached_tokens": self.cache_read_input_tokens.unwrap_or(0),
                "cache_creation_tokens": self.cache_creation_input_tokens.unwrap_or(0),
            },
        })
    }
}

fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}
