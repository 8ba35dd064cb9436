//! The canonical (OpenAI Chat Completions) shapes the adapter produces:
//! `chat.completion`, `chat.completion.chunk`, their usage, and the extension
//! fields of `docs/canonical.md` (`reasoning_content`, `thinking_blocks`,
//! `extra_content.google.thought_signature`).

use orch_plugin_sdk::Usage;
use serde::Serialize;

/// A `chat.completion`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageJson>,
}

/// One choice of a `chat.completion`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Choice {
    pub index: u32,
    pub message: Message,
    pub finish_reason: &'static str,
}

/// The assistant message of a choice.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Message {
    pub role: &'static str,
    /// `null` when the model only called tools (as OpenAI sends it).
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// A `thinking_blocks` entry of type `thinking`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ThinkingBlock {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub thinking: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl ThinkingBlock {
    /// A `thinking` block.
    pub(crate) fn new(thinking: String, signature: Option<String>) -> Self {
        Self {
            kind: "thinking",
            thinking,
            signature,
        }
    }
}

/// A tool call, in a message (`index` unset) or a chunk delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ToolCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<ExtraContent>,
}

/// The function of a tool call; `arguments` is JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// `extra_content` of a tool call: `{"google": {"thought_signature": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ExtraContent {
    pub google: GoogleExtra,
}

/// The `google` member of [`ExtraContent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct GoogleExtra {
    pub thought_signature: String,
}

impl ExtraContent {
    /// The extension carrying a Gemini thought signature.
    pub(crate) fn thought_signature(signature: String) -> Self {
        Self {
            google: GoogleExtra {
                thought_signature: signature,
            },
        }
    }
}

/// A `chat.completion.chunk`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Chunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageJson>,
}

/// One choice of a chunk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    /// `null` until the finish chunk.
    pub finish_reason: Option<&'static str>,
}

/// The delta of a chunk choice.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// OpenAI's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct UsageJson {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PromptTokensDetails {
    pub cached_tokens: u32,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct CompletionTokensDetails {
    pub reasoning_tokens: u32,
}

impl From<Usage> for UsageJson {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.input_tokens.saturating_add(usage.output_tokens),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: usage.cached_input_tokens.unwrap_or(0),
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: usage.reasoning_tokens.unwrap_or(0),
            },
        }
    }
}

/// The body a `count-tokens` operation answers with: the shape of OpenAI's
/// `POST /v1/responses/input_tokens`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InputTokens {
    pub object: &'static str,
    pub input_tokens: u32,
}

/// Serialises a canonical value; these types cannot fail to serialise.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}
