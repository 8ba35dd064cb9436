//! Ingress dialect for Anthropic Messages clients (the official `anthropic`
//! SDKs, Claude Code, …): `POST /v1/messages`,
//! `POST /v1/messages/count_tokens` and `GET /v1/models`, translated to and
//! from the canonical form (OpenAI Chat Completions plus the extensions of
//! `docs/canonical.md`).
//!
//! The host routes the endpoints and calls this plugin only when the client's
//! dialect differs from the provider adapter's; Anthropic-to-Anthropic
//! traffic passes through untouched, so everything below is about reaching
//! *other* providers.
//!
//! # Requests ([`Dialect::decode_request`])
//!
//! Validation follows Anthropic's: `model`, a non-empty `messages` and (for
//! chat, not for count-tokens) `max_tokens` are required, roles are `user` or
//! `assistant`, and every error is `bad-request` with `param` set to the path
//! at fault in Anthropic's notation (`messages.1.content.0.source.media_type`)
//! and a message starting with that path. No header is read (`anthropic-version`
//! and `anthropic-beta` are neither required nor forwarded).
//!
//! | Anthropic | canonical |
//! |---|---|
//! | `system` (string or text blocks) | first message, `role: "system"`, string or text parts (empty prompts left out) |
//! | string `content` | string `content` |
//! | `text` block | `{"type":"text","text"}` part |
//! | `image` block, `base64` source | `image_url` part with `data:<media_type>;base64,<data>` |
//! | `image` block, `url` source | `image_url` part with the URL |
//! | assistant `tool_use` | `tool_calls[]`: id verbatim, `arguments` = compact JSON of `input` (key order kept), the block's `extra_content` object (see Responses) as the call's `extra_content`, unchanged |
//! | user `tool_result` | a `role: "tool"` message each, **before** the rest of that user message; see below |
//! | assistant `thinking` / `redacted_thinking` | `thinking_blocks` (text, signature, data unchanged) + `reasoning_content` (thinking texts concatenated) |
//! | `tools[]` (custom) | `{"type":"function","function":{name, description, parameters: input_schema, strict}}` (schema verbatim) |
//! | `tool_choice` `auto` / `any` / `none` / `tool` | `"auto"` / `"required"` / `"none"` / `{"type":"function","function":{"name"}}` |
//! | `disable_parallel_tool_use: true` | `parallel_tool_calls: false` |
//! | `max_tokens` | `max_completion_tokens` |
//! | `temperature`, `top_p` | same |
//! | `top_k` | extension `top_k` (the name vLLM and OpenRouter use) |
//! | `stop_sequences` | `stop` (a list; an empty list is left out) |
//! | `stream: true` | `stream: true` + `stream_options: {"include_usage": true}` |
//! | `thinking` (`enabled` with `budget_tokens`, `disabled`, `adaptive`) | extension `thinking`, verbatim |
//! | `output_config.format` / beta `output_format` (`json_schema`) | `response_format: {"type":"json_schema","json_schema":{"name":"response","schema",strict:true}}` |
//! | `output_config.effort` | `reasoning_effort` (`xhigh` and `max` become `high`) |
//! | `metadata.user_id` | `user` |
//!
//! Decisions:
//!
//! * Tool results: text-only results become a string (several text blocks
//!   joined with `\n`); results with images keep `text` / `image_url` parts
//!   (OpenAI itself accepts only text in tool messages). `is_error: true`
//!   prefixes the text with `Error: ` (or is `Error` when empty), since the
//!   canonical form has no error flag.
//! * Thinking blocks with an empty or missing signature stay in
//!   `reasoning_content` but not in `thinking_blocks`: no provider can verify
//!   them. (The stream encoder emits such blocks when the upstream's
//!   reasoning is unsigned, and clients send them back.)
//! * Refused with `unsupported` (a 400 naming the parameter and the type):
//!   content blocks other than the ones above (`document`, `search_result`,
//!   `server_tool_use`, `web_search_tool_result`, …), image sources of type
//!   `file` (Files API), Anthropic-defined tools (`type` other than
//!   `custom`, e.g. `web_search_20250305`), `mcp_servers`, `container`,
//!   `context_management`.
//! * Dropped silently: `cache_control` everywhere (prompt caching is a cost
//!   hint; OpenAI-compatible providers cache on their own), `citations`,
//!   `service_tier`, `inference_geo`, and unknown top-level fields.
//! * An empty final assistant message (a prefill of nothing) is left out.
//! * count-tokens: `max_tokens` is optional and `stream` is ignored.
//!
//! # Responses ([`Dialect::encode_response`])
//!
//! A `chat.completion` becomes a `message`: `id` is the canonical id, prefixed
//! with `msg_` unless it already starts so (`msg_<request id>` when missing);
//! `model` is the name the client asked for; `content` holds thinking blocks
//! (from `thinking_blocks` only: `reasoning_content` without signed blocks is
//! left out, since a client would send back an unsigned block that Anthropic
//! refuses), then the text (or the `refusal`), then `tool_use` blocks (ids
//! verbatim, `input` = `arguments` verbatim when it is a JSON object, else
//! `{}` with a warning in the log; a tool call's `extra_content`, such as a
//! Gemini `thought_signature` that must come back with the call, is put on
//! its block as the non-Anthropic field `extra_content`: the anthropic SDKs
//! keep unknown block fields and send them back with the block, and a client
//! that drops it only loses the signature). `stop_reason`: `stop` → `end_turn`,
//! `length` → `max_tokens`, `tool_calls` → `tool_use`, `content_filter` →
//! `refusal`, and `tool_use` whenever tool calls are present and the turn did
//! not end for length or filtering; `stop_sequence` is always `null` (the
//! canonical form does not say which sequence matched). `usage.input_tokens`
//! is prompt tokens minus cache reads minus cache writes; the cache counts are
//! always present (0 when unknown).
//!
//! # Streams ([`AnthropicEncoder`])
//!
//! See the `stream` module: `message_start`, content blocks with correct
//! indexes (a `tool_use` block's `content_block_start` carries the
//! `extra_content` of the call's first delta), `message_delta` (stop reason
//! and cumulative usage including input and cache counts, as current
//! Anthropic streams send), `message_stop`; an
//! `error` event on abort (no `message_stop`). Unsigned streamed reasoning is
//! sent live as a thinking block whose signature stays empty. Tool calls
//! without an id get `call_<index>_<name>`; chunks of choices other than 0
//! are ignored; arguments of a tool call that resume after another block
//! started cannot be expressed (Anthropic blocks do not interleave) and fail
//! the push with a `server` error.
//!
//! # Errors, models, token counts
//!
//! Errors render as `{"type":"error","error":{"type","message"}}` with the
//! type table of `docs/canonical.md` (`request_too_large` for a 413); the
//! status is the host's, except `overloaded` which is always 529. Models list
//! as `{data: [{type: "model", id, display_name: id, created_at}], has_more:
//! false, first_id, last_id}` and token counts as `{"input_tokens": n}`.

mod decode;
mod encode;
mod error;
mod raw;
mod stream;

use orch_plugin_sdk::{
    DecodedRequest, Dialect, EgressContext, ErrorResponse, IngressRequest, ModelEntry, PluginError,
    PluginInfo, Usage, capability,
};

pub use stream::AnthropicEncoder;

/// The Anthropic Messages ingress dialect.
#[derive(Debug)]
pub struct AnthropicDialect;

impl Dialect for AnthropicDialect {
    type Encoder = AnthropicEncoder;

    fn info() -> PluginInfo {
        PluginInfo::dialect("dialect-anthropic", env!("CARGO_PKG_VERSION"), "anthropic")
            .with_capabilities([
                capability::TOOLS,
                capability::VISION,
                capability::JSON_SCHEMA,
                capability::REASONING,
                capability::USAGE_IN_STREAM,
                capability::PARALLEL_TOOL_CALLS,
                capability::COUNT_TOKENS,
            ])
            .with_description("Anthropic Messages API clients (/v1/messages, count_tokens, models)")
    }

    fn decode_request(request: &IngressRequest) -> Result<DecodedRequest, PluginError> {
        decode::decode_request(request)
    }

    fn encode_response(
        ctx: &EgressContext,
        body: &str,
        usage: Option<Usage>,
    ) -> Result<String, PluginError> {
        encode::encode_response(ctx, body, usage)
    }

    fn encode_error(error: &PluginError) -> ErrorResponse {
        error::encode_error(error)
    }

    fn encode_models(models: &[ModelEntry]) -> String {
        encode::encode_models(models)
    }

    fn encode_token_count(_ctx: &EgressContext, input_tokens: u32) -> String {
        encode::encode_token_count(input_tokens)
    }
}

orch_plugin_sdk::export_dialect!(AnthropicDialect);

#[cfg(test)]
mod tests;
