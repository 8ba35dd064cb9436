//! Ingress dialect for Gemini API clients (v1beta, as google-genai and the
//! REST examples use it): `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`, `:countTokens` and `GET /v1beta/models`.
//!
//! The host owns the routes and passes the model from the URL path as
//! `path_model`; this plugin translates bodies to and from the canonical form
//! (OpenAI Chat Completions plus the extensions of docs/canonical.md).
//!
//! # Requests
//!
//! * **Model**: `path_model` with a leading `models/` stripped (the body's
//!   `model`, or `generateContentRequest.model` for countTokens, when the
//!   path has none). `streaming` is `endpoint_streams == Some(true)` for chat.
//! * **Field names**: camelCase and snake_case are both accepted
//!   (`system_instruction`, `inline_data`, ...), and a single object where a
//!   list is expected, as the Gemini API's protobuf JSON parser does.
//! * **countTokens**: the body is `{contents}` or `{generateContentRequest}`;
//!   either is decoded as a chat request (never streaming).
//! * **Turns**: `systemInstruction` (text parts only) → a `system` message;
//!   role `user` (or none) → `user`, `model` → `assistant`; other roles are a
//!   `bad-request`. Consecutive contents of one role are merged first:
//!   google-genai's chat sessions record a streamed answer as one model
//!   content per chunk.
//! * **Parts**: `text` → text; `inlineData` with an `image/*` type → an
//!   `image_url` `data:` URI (base64 normalised to the standard padded
//!   alphabet, since google-genai sends the URL-safe one); `fileData` of an
//!   image → `image_url` with the `fileUri` (note that other providers can
//!   only fetch public URLs). Other media, code execution parts and any other
//!   part kind are `unsupported`, naming the MIME type or the field.
//! * **Function calls** (model turns) → `tool_calls`: the part's `id`, else
//!   `call_<n>_<name>` (module `ids`), `n` the call's 0-based position
//!   in its (merged) turn; a `thoughtSignature` on the part →
//!   `extra_content.google.thought_signature`; `args` → `arguments` as compact
//!   JSON in the client's key order.
//! * **Signatures**: `thoughtSignature` is a protobuf `bytes` field, which
//!   google-genai decodes and sends back in URL-safe base64. The decoder
//!   maps it back to the standard alphabet, which restores the exact string
//!   the gateway sent (standard base64 passes unchanged).
//! * **Function responses** (user turns) → `tool` messages, placed before the
//!   turn's other parts (the canonical form needs them right after the
//!   assistant's calls). `tool_call_id` is the part's `id`, else the id of the
//!   first not yet answered call with the same name in the previous model
//!   turn; no such call is a `bad-request`. `content` is the text itself when
//!   `response` is `{"result": "<text>"}` or `{"output": "<text>"}` (what
//!   google-genai's automatic function calling sends for a function
//!   returning text), else `response` as compact JSON. Multimodal responses
//!   (`functionResponse.parts`) are `unsupported`.
//! * **Thinking** (model turns): `thought: true` parts → `thinking_blocks`
//!   `{type: "thinking", thinking, signature?}` and `reasoning_content` (the
//!   thought texts joined). Consecutive thought parts make one block, closed
//!   by the first that carries a `thoughtSignature` (a stream delivers a
//!   thought's text in pieces and its signature last). A `thoughtSignature`
//!   on a text part (or a part with nothing else) → a block with empty
//!   `thinking`.
//! * **Tools**: `functionDeclarations` → function tools; `parameters` (Gemini
//!   `Schema`, upper-case types) is converted to JSON Schema
//!   (module `schema`), `parametersJsonSchema` is kept as is. Other
//!   tools (`googleSearch`, `codeExecution`, `urlContext`, ...) are
//!   `unsupported`. `toolConfig.functionCallingConfig.mode` AUTO → `auto`,
//!   ANY → `required` (or the named function when `allowedFunctionNames` has
//!   exactly one name), NONE → `none`, VALIDATED → `auto`; several
//!   `allowedFunctionNames` (ANY or VALIDATED) narrow `tools` to them.
//! * **generationConfig**: `temperature`, `topP` → `top_p`, `topK` → the
//!   `top_k` extension (no canonical field; Anthropic, Gemini and vLLM-style
//!   servers take it, OpenAI itself refuses unknown parameters),
//!   `maxOutputTokens` → `max_completion_tokens`, `stopSequences` → `stop`,
//!   `candidateCount` → `n`, `seed`, `presencePenalty`, `frequencyPenalty`;
//!   `responseMimeType: application/json` → `json_object`, with
//!   `responseSchema` (converted) or `responseJsonSchema` (as is) →
//!   `json_schema {name: "response", schema}`; other MIME types,
//!   `responseLogprobs: true` and non-TEXT `responseModalities` are
//!   `unsupported`. `thinkingConfig.thinkingBudget` > 0 → `thinking {type:
//!   "enabled", budget_tokens}` (0 and -1 leave the provider's default),
//!   `thinkingLevel` → `reasoning_effort`; `includeThoughts` has no canonical
//!   field (thoughts are returned whenever the provider reasons).
//! * **Ignored**: `safetySettings` (Google's own filter thresholds; other
//!   providers apply their own policies, and google-genai users set them
//!   routinely, often to `BLOCK_NONE`), media-resolution, speech and image
//!   settings (they only matter for output this plugin refuses), `labels`.
//! * **Refused**: `cachedContent` (`unsupported`: the cached part of the
//!   prompt lives on Google's servers; dropping it would drop prompt).
//! * Streams always ask for `stream_options.include_usage`.
//!
//! # Responses and streams
//!
//! A `chat.completion` becomes a `GenerateContentResponse`: per choice a
//! candidate whose parts are the thought parts (one per thinking block,
//! `{text, thought: true, thoughtSignature?}`, or `{text: "",
//! thoughtSignature}` for a block with only a signature; redacted blocks have
//! no Gemini form and are dropped), the text, and the `functionCall` parts
//! (`{id, name, args}` + `thoughtSignature`). Finish reasons: `stop` and
//! `tool_calls` → STOP, `length` → MAX_TOKENS, `content_filter` → SAFETY; a
//! call whose arguments are not a JSON object is dropped and the reason
//! becomes MALFORMED_FUNCTION_CALL, as Gemini reports it. `usageMetadata`
//! counts thoughts apart (`candidatesTokenCount` = completion − reasoning).
//! `modelVersion` is the requested model and `responseId` the gateway's
//! request id. See [`GeminiStreamEncoder`] for streams.
//!
//! Errors use Google's shape `{"error": {code, message, status}}` with the
//! status names of docs/canonical.md (module `error`).

mod error;
mod fields;
mod ids;
mod json;
mod models;
mod request;
mod response;
mod schema;
mod stream;

use orch_plugin_sdk::{
    DecodedRequest, Dialect, EgressContext, ErrorResponse, IngressRequest, ModelEntry, PluginError,
    PluginInfo, Usage, capability,
};

pub use stream::GeminiStreamEncoder;

/// The Gemini ingress dialect.
#[derive(Debug)]
pub struct Gemini;

impl Dialect for Gemini {
    type Encoder = GeminiStreamEncoder;

    fn info() -> PluginInfo {
        PluginInfo::dialect("dialect-gemini", env!("CARGO_PKG_VERSION"), "gemini")
            .with_capabilities([
                capability::TOOLS,
                capability::VISION,
                capability::JSON_MODE,
                capability::JSON_SCHEMA,
                capability::REASONING,
                capability::USAGE_IN_STREAM,
                capability::PARALLEL_TOOL_CALLS,
                capability::COUNT_TOKENS,
            ])
            .with_description(
                "Gemini API clients: generateContent, streamGenerateContent, countTokens, models",
            )
    }

    fn decode_request(request: &IngressRequest) -> Result<DecodedRequest, PluginError> {
        request::decode(request)
    }

    fn encode_response(
        ctx: &EgressContext,
        body: &str,
        usage: Option<Usage>,
    ) -> Result<String, PluginError> {
        response::encode(ctx, body, usage)
    }

    fn encode_error(error: &PluginError) -> ErrorResponse {
        error::encode(error)
    }

    fn encode_models(models: &[ModelEntry]) -> String {
        models::encode_models(models)
    }

    fn encode_token_count(_ctx: &EgressContext, input_tokens: u32) -> String {
        models::encode_token_count(input_tokens)
    }
}

orch_plugin_sdk::export_dialect!(Gemini);

#[cfg(test)]
mod tests;
