//! Provider adapter for Anthropic's Messages API (`POST /v1/messages`).
//!
//! Two forms of payload reach this adapter:
//!
//! * **canonical** (the client speaks OpenAI Chat Completions): the request is
//!   translated to a Messages request ([`request`]), the answer back to a
//!   `chat.completion` ([`response`]) or to `chat.completion.chunk`s
//!   ([`stream`]), following `docs/canonical.md`;
//! * **native** (the client speaks Anthropic, pass-through): the request is
//!   forwarded with only `model` changed, the answer keeps every byte but the
//!   `model` name, and stream events keep their names.
//!
//! Errors, in answers and inside streams, are classified by Anthropic's
//! `error.type` ([`classify_details`]).
//!
//! # Provider options
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `anthropic_version` | string | `"2023-06-01"` | sent as `anthropic-version` |
//! | `beta` | list of strings | `[]` | sent as `anthropic-beta` (comma-separated) |
//! | `headers` | object of string → string | `{}` | extra static headers (not `x-api-key`, `anthropic-version`, `anthropic-beta`, `content-type`, ...) |
//! | `default_max_tokens` | integer ≥ 1 | `4096` | `max_tokens` when a canonical request sets neither `max_completion_tokens` nor `max_tokens` (Anthropic requires it) |
//!
//! `base_url` is the API origin, e.g. `https://api.anthropic.com`; a trailing
//! `/v1` is accepted and not doubled. The credential goes in `x-api-key`.
//!
//! # Translation decisions
//!
//! * JSON mode (`response_format` `json_object` / `json_schema`) is emulated
//!   with a tool named [`JSON_TOOL_NAME`] whose `input_schema` is the schema;
//!   its `tool_use` input comes back as the message text with finish reason
//!   `stop`. The name is reserved: a request defining a tool of that name is
//!   `unsupported`. JSON mode with thinking enabled is `unsupported` too
//!   (Anthropic cannot force a tool while thinking).
//! * `reasoning_effort` becomes a thinking budget (`low` 1024, `medium` 4096,
//!   `high` 16384, `xhigh` 32768; `minimal`/`none` disable thinking); an
//!   explicit `thinking` object wins. When `max_tokens` is not above the
//!   budget it becomes budget + `max_tokens`.
//! * Soft sampling hints Anthropic lacks (`seed`, `presence_penalty`,
//!   `frequency_penalty`, `logit_bias`, `prediction`, `service_tier`, `store`)
//!   are dropped; features it cannot express (`n` > 1, `logprobs`, audio,
//!   legacy `functions`, `temperature` > 1, web search options, ...) are
//!   `unsupported` errors naming the feature, so the host can route elsewhere.
//! * In canonical streams, thinking signatures
//!   (`delta.thinking_blocks: [{"type":"thinking","thinking":"","signature":…}]`)
//!   and redacted thinking blocks are `content` chunks: they are model output
//!   the client must send back.

mod error;
mod options;
pub mod request;
pub mod response;
pub mod stream;
mod usage;

use orch_plugin_sdk::{
    Adapter, ErrorDetails, ParsedResponse, PluginError, PluginInfo, Provider, RequestContext,
    UpstreamRequest, capability, provider::check_base_url,
};

pub use error::{classify, classify_details};
pub use options::Options;
pub use request::JSON_TOOL_NAME;
pub use stream::AnthropicDecoder;

/// The adapter for Anthropic's Messages API. See the crate documentation for
/// the provider options and translation decisions.
#[derive(Debug)]
pub struct Anthropic;

impl Adapter for Anthropic {
    type Decoder = AnthropicDecoder;

    fn info() -> PluginInfo {
        PluginInfo::adapter("anthropic", env!("CARGO_PKG_VERSION"), "anthropic")
            .with_capabilities(
                capability::FULL_CHAT
                    .into_iter()
                    .chain([capability::COUNT_TOKENS]),
            )
            .with_description("Anthropic Messages API (Claude)")
    }

    fn check_provider(provider: &Provider) -> Result<(), PluginError> {
        check_base_url(provider)?;
        Options::parse(provider)?;
        Ok(())
    }

    fn build_request(ctx: &RequestContext, payload: &str) -> Result<UpstreamRequest, PluginError> {
        request::build(ctx, payload)
    }

    fn parse_response(
        ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ParsedResponse, PluginError> {
        response::parse(ctx, status, headers, body)
    }

    fn classify_error(
        _ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> PluginError {
        classify(status, headers, body)
    }

    fn probe_request(provider: &Provider) -> Option<UpstreamRequest> {
        let options = Options::parse(provider).unwrap_or_default();
        let request = UpstreamRequest::get(options::endpoint(&provider.base_url, "models"))
            .header("accept", "application/json");
        Some(options.apply(request).build())
    }

    fn judge_probe(
        _provider: &Provider,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), PluginError> {
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(classify_details(
                status,
                headers,
                &ErrorDetails::from_body(body),
            ))
        }
    }
}

orch_plugin_sdk::export_adapter!(Anthropic);

#[cfg(test)]
mod tests;
