//! Types shared by every plugin kind (the WIT `types` interface).

use serde_json::{Map, Value};

use crate::PluginError;

/// HTTP header fields in order, as `(name, value)` pairs. Names are lower-case
/// ASCII.
pub type Headers = Vec<(String, String)>;

/// What a plugin does. Must match the world the component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// Talks to one kind of upstream provider.
    Adapter,
    /// Speaks one client wire dialect at the ingress.
    Dialect,
    /// Inspects or rewrites requests and responses.
    Transformer,
}

/// Well-known capability names for [`PluginInfo::capabilities`].
pub mod capability {
    /// Function / tool calling.
    pub const TOOLS: &str = "tools";
    /// Image inputs.
    pub const VISION: &str = "vision";
    /// `response_format: {"type": "json_object"}`.
    pub const JSON_MODE: &str = "json-mode";
    /// `response_format: {"type": "json_schema", ...}`.
    pub const JSON_SCHEMA: &str = "json-schema";
    /// Reasoning models and reasoning output.
    pub const REASONING: &str = "reasoning";
    /// Usage reported at the end of a stream.
    pub const USAGE_IN_STREAM: &str = "usage-in-stream";
    /// Several tool calls in one turn.
    pub const PARALLEL_TOOL_CALLS: &str = "parallel-tool-calls";
    /// Counting input tokens without generating.
    pub const COUNT_TOKENS: &str = "count-tokens";
    /// Embeddings.
    pub const EMBEDDINGS: &str = "embeddings";

    /// What an adapter for a full-featured chat API declares, in this order:
    /// [`TOOLS`], [`VISION`], [`JSON_MODE`], [`JSON_SCHEMA`], [`REASONING`],
    /// [`USAGE_IN_STREAM`], [`PARALLEL_TOOL_CALLS`] (everything but
    /// [`COUNT_TOKENS`] and [`EMBEDDINGS`]).
    ///
    /// ```
    /// use orch_plugin_sdk::{PluginInfo, capability};
    ///
    /// let info = PluginInfo::adapter("my-provider", "0.1.0", "openai")
    ///     .with_capabilities(capability::FULL_CHAT.into_iter().chain([capability::COUNT_TOKENS]));
    /// assert_eq!(info.capabilities.len(), 8);
    /// ```
    pub const FULL_CHAT: [&str; 7] = [
        TOOLS,
        VISION,
        JSON_MODE,
        JSON_SCHEMA,
        REASONING,
        USAGE_IN_STREAM,
        PARALLEL_TOOL_CALLS,
    ];
}

/// Metadata every plugin reports from `info`. The host reads it once at load
/// time and refuses the component when it is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Stable identifier: lower-case ASCII letters, digits and `-`, 1..=64
    /// characters.
    pub id: String,
    /// Semantic version of this build, usually `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// Must match the exported interface.
    pub kind: PluginKind,
    /// The wire dialect the plugin speaks (`openai`, `anthropic`, `gemini` or
    /// a custom name); empty for transformers.
    pub dialect: String,
    /// Declared capabilities (see [`capability`]).
    pub capabilities: Vec<String>,
    /// One line for operators: what this plugin is for.
    pub description: String,
}

impl PluginInfo {
    /// Metadata of an adapter speaking `dialect`.
    pub fn adapter(
        id: impl Into<String>,
        version: impl Into<String>,
        dialect: impl Into<String>,
    ) -> Self {
        Self::new(id, version, PluginKind::Adapter, dialect)
    }

    /// Metadata of an ingress dialect plugin for `dialect`.
    pub fn dialect(
        id: impl Into<String>,
        version: impl Into<String>,
        dialect: impl Into<String>,
    ) -> Self {
        Self::new(id, version, PluginKind::Dialect, dialect)
    }

    /// Metadata of a transformer.
    pub fn transformer(id: impl Into<String>, version: impl Into<String>) -> Self {
        Self::new(id, version, PluginKind::Transformer, String::new())
    }

    fn new(
        id: impl Into<String>,
        version: impl Into<String>,
        kind: PluginKind,
        dialect: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            version: version.into(),
            kind,
            dialect: dialect.into(),
            capabilities: Vec::new(),
            description: String::new(),
        }
    }

    /// Replaces the declared capabilities.
    #[must_use]
    pub fn with_capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the one-line description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

/// The operation a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Chat / messages / generateContent.
    Chat,
    /// Count the input tokens of a chat request without generating.
    CountTokens,
    /// Create embeddings.
    Embeddings,
}

/// The form a payload is in when it crosses the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadForm {
    /// The canonical form (OpenAI Chat Completions shape).
    Canonical,
    /// The plugin's own dialect, untouched from the client (pass-through).
    Native,
}

/// A configured upstream provider, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The provider's name in the gateway configuration.
    pub name: String,
    /// Base URL from configuration, e.g. `https://api.openai.com/v1`. Every
    /// request the plugin builds must stay on this origin.
    pub base_url: String,
    /// Provider-specific, non-secret settings as JSON object text (`{}` when
    /// none).
    pub options: String,
}

impl Provider {
    /// Parses [`Provider::options`] into a JSON object (keys in sorted order).
    /// An empty string counts as `{}`; anything but an object is a
    /// `bad-request` error.
    pub fn options_object(&self) -> Result<Map<String, Value>, PluginError> {
        if self.options.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str::<Value>(&self.options) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(PluginError::bad_request(format!(
                "options of provider `{}` must be a JSON object",
                self.name
            ))),
            Err(err) => Err(PluginError::bad_request(format!(
                "options of provider `{}` are not valid JSON: {err}",
                self.name
            ))),
        }
    }
}

/// Everything an adapter may know about the request it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The gateway's request id.
    pub request_id: String,
    /// What the request does.
    pub operation: Operation,
    /// The model name the client asked for; responses report this name.
    pub requested_model: String,
    /// The provider's model name for this attempt.
    pub upstream_model: String,
    /// Whether the client asked for a stream.
    pub streaming: bool,
    /// The form of the payload given to `build_request`, and the form the
    /// host expects back.
    pub form: PayloadForm,
    /// The dialect the client speaks.
    pub ingress_dialect: String,
    /// When the gateway received the request, in Unix milliseconds (plugins
    /// have no clock).
    pub received_at_ms: u64,
    /// The provider this attempt goes to.
    pub provider: Provider,
}

/// Token usage of one request. Counts are totals, not deltas; a later report
/// replaces an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Input (prompt) tokens, including cached ones.
    pub input_tokens: u32,
    /// Output (completion) tokens, including reasoning ones.
    pub output_tokens: u32,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input_tokens: Option<u32>,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_input_tokens: Option<u32>,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: Option<u32>,
}

/// One server-sent event for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when the dialect uses named events.
    pub event: Option<String>,
    /// The `data:` field (one line of JSON, normally).
    pub data: String,
}

impl SseEvent {
    /// An unnamed event.
    pub fn data(data: impl Into<String>) -> Self {
        Self {
            event: None,
            data: data.into(),
        }
    }

    /// A named event.
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            event: Some(event.into()),
            data: data.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capability;

    #[test]
    fn full_chat_capabilities() {
        assert_eq!(
            capability::FULL_CHAT,
            [
                "tools",
                "vision",
                "json-mode",
                "json-schema",
                "reasoning",
                "usage-in-stream",
                "parallel-tool-calls"
            ]
        );
    }
}
