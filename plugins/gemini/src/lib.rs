//! Provider adapter for Google's Gemini API (`v1beta`,
//! <https://ai.google.dev/api>): `generateContent`,
//! `streamGenerateContent?alt=sse` and `countTokens`.
//!
//! # Provider
//!
//! `base_url` is the API origin, e.g. `https://generativelanguage.googleapis.com`
//! (without the API version). Requests go to
//! `{base_url}/{api_version}/models/{upstream model}:{method}`; the key goes
//! in the `x-goog-api-key` header, never in the URL.
//!
//! | option | type | meaning |
//! |---|---|---|
//! | `api_version` | string, default `"v1beta"` | the version path segment |
//! | `headers` | object of string → string | extra static headers (not `x-goog-api-key`, `authorization`, `content-type`, `accept`, `host`, `content-length`) |
//! | `safety_settings` | list of `SafetySetting` objects | sent as `safetySettings` with every canonical request, as given |
//!
//! Native requests (a Gemini client, pass-through) are forwarded untouched:
//! the model is in the URL, and the client sends its own safety settings.
//! The one edit is `generateContentRequest.model` of a native `countTokens`
//! body, which must name the upstream model.
//!
//! # Canonical → Gemini
//!
//! | canonical | Gemini |
//! |---|---|
//! | `system` / `developer` messages | `systemInstruction`, one text part each, in order |
//! | `user` / `assistant` | `contents` with role `user` / `model`; empty messages are skipped |
//! | `image_url` `data:` URI / http(s) URL | `inlineData` / `fileData` (MIME type from the extension, default `image/jpeg`) |
//! | `input_audio` (wav, mp3), `file` with `file_data` | `inlineData` |
//! | `tools` | one tool with `functionDeclarations`; `parameters` converted to Gemini's `Schema` subset (see the `schema` module); a function without parameters gets none |
//! | `tool_choice` `auto` / `none` / `required` / named | `functionCallingConfig.mode` `AUTO` / `NONE` / `ANY` / `ANY` + `allowedFunctionNames` |
//! | assistant `tool_calls` | `functionCall` parts `{id, name, args}`, `thoughtSignature` from `extra_content.google.thought_signature` |
//! | `tool` messages | `functionResponse` parts in one `user` turn per run of tool messages; `name` from the assistant tool call with that id (or a generated `call_<n>_<name>` id); `response` is the content when it is a JSON object, else `{"result": <content>}` |
//! | assistant `thinking_blocks` | a signed block becomes a `{text, thought: true, thoughtSignature}` part; a signed block without text gives its signature to the first text part (where Gemini put it); unsigned and `redacted_thinking` blocks are dropped |
//! | `temperature`, `top_p`, `top_k`, `stop`, `seed`, `n`, `presence_penalty`, `frequency_penalty` | `generationConfig` `temperature`, `topP`, `topK`, `stopSequences`, `seed`, `candidateCount`, `presencePenalty`, `frequencyPenalty` |
//! | `max_completion_tokens` / `max_tokens` | `maxOutputTokens` |
//! | `response_format` `json_object` / `json_schema` | `responseMimeType: application/json` (+ `responseSchema`, with `propertyOrdering` in the schema's order) |
//! | `thinking` `{type: enabled, budget_tokens}` / `adaptive` / `disabled` | `thinkingConfig {thinkingBudget: N / -1 / 0}` (`includeThoughts: true` unless disabled) |
//! | `reasoning_effort` `none` / `minimal` / `low` / `medium` / `high` / `xhigh` | `thinkingBudget` 0 / 512 / 1024 / 8192 / 24576 / 24576 (`thinking` wins) |
//!
//! Refused as `unsupported` (the host routes elsewhere): `logprobs`,
//! `top_logprobs`, `logit_bias`, audio output, `web_search_options`, legacy
//! `functions`, non-function tools and tool choices, file ids, audio formats
//! other than wav/mp3, seeds outside 32 bits. Ignored: `parallel_tool_calls`
//! (Gemini has no switch), `stream_options`, `user`, `metadata`, `store`,
//! `service_tier`, `prediction`, image `detail`.
//!
//! # Gemini → canonical
//!
//! * Text parts → `content`; thought parts → `reasoning_content`;
//!   `thinking_blocks` collect the thought text up to each
//!   `thoughtSignature` on a thought or text part as
//!   `{type: thinking, thinking, signature}` (thought text after the last
//!   signature becomes a block without one).
//! * `functionCall` parts → `tool_calls` with the part's `id`, or
//!   `call_<n>_<name>` (`n` the call's index in the candidate) when Gemini
//!   sent none; `arguments` is the compact JSON of `args` in Gemini's key
//!   order; a `thoughtSignature` on the part goes to
//!   `extra_content.google.thought_signature`.
//! * `finishReason` `STOP` → `stop` (`tool_calls` when the candidate called a
//!   function), `MAX_TOKENS` → `length`, `SAFETY`, `RECITATION`,
//!   `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII` (and the image variants) →
//!   `content_filter`; other reasons → `stop` / `tool_calls`.
//! * A prompt blocked by `promptFeedback.blockReason` (no candidates) is a
//!   `content-filter` error.
//! * Usage: `prompt_tokens` = `promptTokenCount` + `toolUsePromptTokenCount`,
//!   `completion_tokens` = `candidatesTokenCount` + `thoughtsTokenCount`,
//!   `cached_tokens` = `cachedContentTokenCount`, `reasoning_tokens` =
//!   `thoughtsTokenCount`.
//! * `id` is `responseId` (else `chatcmpl-<request id>`), `created` the
//!   request's arrival in seconds, `model` the requested model.
//! * `count-tokens` answers `{"object": "response.input_tokens",
//!   "input_tokens": totalTokens}` and reports the count as input usage.
//!
//! Streams: a role chunk per candidate, then one chunk per part (text as
//! `delta.content`, thoughts as `delta.reasoning_content`, a signature as
//! `delta.thinking_blocks: [{type: thinking, thinking: "", signature}]`, a
//! whole function call as one `delta.tool_calls` entry with id, name and all
//! arguments), a finish chunk, and at the end a usage chunk. Gemini sends no
//! terminal event: the stream ended normally when a `finishReason` was seen
//! before the body ended. Errors are classified as the `error` module describes.

mod adapter;
mod canonical;
mod error;
mod options;
mod ordered;
mod request;
mod response;
mod schema;
mod stream;
mod wire;

pub use adapter::Gemini;
pub use options::Options;
pub use stream::GeminiDecoder;

orch_plugin_sdk::export_adapter!(Gemini);

#[cfg(test)]
mod tests;
