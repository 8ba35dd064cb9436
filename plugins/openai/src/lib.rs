//! Provider adapter for OpenAI's Chat Completions API and every
//! OpenAI-compatible API (vLLM, Ollama, DeepSeek, Groq, OpenRouter, ...),
//! selected by the provider's `base_url`, and for Azure OpenAI, selected by
//! the `azure` option (deployment URLs with `api-version`, the key in the
//! `api-key` header).
//!
//! The canonical payload shape *is* OpenAI Chat Completions, so canonical and
//! native forms are the same here: requests are forwarded with top-level edits
//! (`model`, and for streams `stream` and `stream_options`), responses and
//! chunks get only their `model` rewritten to the name the client asked for.
//! See [`OpenAi`] for the provider options.

mod adapter;

pub use adapter::{AZURE_DEFAULT_API_VERSION, Azure, OpenAi, OpenAiDecoder, Options, classify};

orch_plugin_sdk::export_adapter!(OpenAi);

#[cfg(test)]
mod tests;
