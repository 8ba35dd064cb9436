//! The [`Adapter`] implementation: endpoints, bodies and the answers.

use orch_plugin_sdk::{
    Adapter, Credential, Framing, JsonEdit, Operation, ParsedResponse, PayloadForm, PluginError,
    PluginInfo, Provider, RequestBody, RequestContext, UpstreamRequest, Usage, capability,
    json::RawObject,
};
use serde_json::Value;

use crate::canonical::{InputTokens, to_json};
use crate::error::{classify, classify_value};
use crate::options::{Options, check_base_url, model_resource};
use crate::request::translate;
use crate::response::{saturate, to_completion, usage_of};
use crate::stream::GeminiDecoder;
use crate::wire::{
    CountTokensRequest, CountTokensResponse, GenerateContentResponse, UsageMetadata, from_object,
};

/// The header carrying the API key (never the `key` query parameter: URLs
/// end up in logs).
const API_KEY_HEADER: &str = "x-goog-api-key";

/// The adapter for Google's Gemini API (`generateContent`). See the crate
/// documentation for the options and the mapping.
#[derive(Debug)]
pub struct Gemini;

impl Adapter for Gemini {
    type Decoder = GeminiDecoder;

    fn info() -> PluginInfo {
        PluginInfo::adapter("gemini", env!("CARGO_PKG_VERSION"), "gemini")
            .with_capabilities(
                capability::FULL_CHAT
                    .into_iter()
                    .chain([capability::COUNT_TOKENS]),
            )
            .with_description(
                "Google Gemini API (generateContent, streamGenerateContent, countTokens)",
            )
    }

    fn check_provider(provider: &Provider) -> Result<(), PluginError> {
        check_base_url(provider)?;
        Options::parse(provider)?;
        Ok(())
    }

    fn build_request(ctx: &RequestContext, payload: &str) -> Result<UpstreamRequest, PluginError> {
        let options = Options::parse(&ctx.provider)?;
        let (method, accept) = match (ctx.operation, ctx.streaming) {
            (Operation::Chat, false) => ("generateContent", "application/json"),
            (Operation::Chat, true) => ("streamGenerateContent?alt=sse", "text/event-stream"),
            (Operation::CountTokens, _) => ("countTokens", "application/json"),
            (Operation::Embeddings, _) => {
                return Err(PluginError::unsupported(
                    "the gemini adapter does not support embeddings",
                ));
            }
        };
        let url = options.model_url(&ctx.provider.base_url, &ctx.upstream_model, method)?;
        let body = match (ctx.form, ctx.operation) {
            (PayloadForm::Native, Operation::CountTokens) => {
                RequestBody::Forward(native_count_tokens_edits(payload, &ctx.upstream_model)?)
            }
            // The model is in the URL: the client's body goes as it came.
            (PayloadForm::Native, _) => RequestBody::Forward(Vec::new()),
            (PayloadForm::Canonical, Operation::CountTokens) => {
                let mut request = translate(payload, &options)?;
                request.model = Some(model_resource(&ctx.upstream_model)?);
                // countTokens counts the input: generation settings do not matter.
                request.tool_config = None;
                request.safety_settings = None;
                request.generation_config = Default::default();
                RequestBody::Bytes(
                    to_json(&CountTokensRequest {
                        generate_content_request: request,
                    })
                    .into_bytes(),
                )
            }
            (PayloadForm::Canonical, _) => {
                RequestBody::Bytes(to_json(&translate(payload, &options)?).into_bytes())
            }
        };
        let request = UpstreamRequest::post(url)
            .header("content-type", "application/json")
            .header("accept", accept);
        Ok(options
            .apply(request)
            .credential(Credential::Header(API_KEY_HEADER.to_owned()))
            .framing(Framing::Sse)
            .body(body)
            .build())
    }

    fn parse_response(
        ctx: &RequestContext,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ParsedResponse, PluginError> {
        match (ctx.operation, ctx.form) {
            (Operation::CountTokens, form) => parse_count_tokens(form, status, headers, body),
            (_, PayloadForm::Native) => parse_native(ctx, status, headers, body),
            (_, PayloadForm::Canonical) => parse_canonical(ctx, status, headers, body),
        }
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
        let request = UpstreamRequest::get(options.url(&provider.base_url, "models?pageSize=1"))
            .header("accept", "application/json");
        Some(
            options
                .apply(request)
                .credential(Credential::Header(API_KEY_HEADER.to_owned()))
                .build(),
        )
    }

    fn judge_probe(
        _provider: &Provider,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), PluginError> {
        if !(200..300).contains(&status) {
            return Err(classify(status, headers, body));
        }
        // proto3 JSON omits an empty `models` list.
        let listing = serde_json::from_slice::<Value>(body).ok();
        let models = listing
            .as_ref()
            .filter(|l| l.is_object())
            .map(|l| l.get("models"));
        match models {
            Some(None | Some(Value::Array(_))) => Ok(()),
            _ => Err(
                PluginError::server("the models listing is not a Gemini model list")
                    .with_status(status),
            ),
        }
    }
}

/// A native `countTokens` body: its `generateContentRequest.model` (required
/// by the API) must name the upstream model, not the client's.
fn native_count_tokens_edits(payload: &str, model: &str) -> Result<Vec<JsonEdit>, PluginError> {
    let object = RawObject::parse(payload).map_err(|err| {
        PluginError::bad_request(format!(
            "the request body is not a valid JSON object: {err}"
        ))
    })?;
    let Some(Ok(mut inner)) = object.get("generateContentRequest").map(RawObject::parse) else {
        return Ok(Vec::new());
    };
    inner.set_string("model", &model_resource(model)?);
    Ok(vec![JsonEdit::set_raw(
        "generateContentRequest",
        inner.to_json(),
    )])
}

fn not_gemini(status: u16) -> PluginError {
    PluginError::server("upstream returned a body that is not a Gemini response")
        .with_status(status)
}

/// An `error` object (or an array-wrapped one) in a 2xx body, classified.
fn hidden_error(status: u16, headers: &[(String, String)], body: &[u8]) -> Option<PluginError> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    let first = match &value {
        Value::Array(items) => items.first()?,
        other => other,
    };
    first
        .get("error")
        .is_some_and(|e| !e.is_null())
        .then(|| classify_value(status, headers, Some(&value)))
}

fn parse_canonical(
    ctx: &RequestContext,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<ParsedResponse, PluginError> {
    let Some(response) = from_object::<GenerateContentResponse>(body) else {
        return Err(hidden_error(status, headers, body).unwrap_or_else(|| not_gemini(status)));
    };
    if response.error.as_ref().is_some_and(|e| !e.is_null()) {
        return Err(hidden_error(status, headers, body).unwrap_or_else(|| not_gemini(status)));
    }
    let completion = to_completion(ctx, &response, status)?;
    Ok(ParsedResponse {
        usage: response.usage_metadata.as_ref().map(usage_of),
        body: to_json(&completion),
    })
}

/// Pass-through: the body as it came, with `modelVersion` (when present)
/// set to the requested model.
fn parse_native(
    ctx: &RequestContext,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<ParsedResponse, PluginError> {
    let text = std::str::from_utf8(body).map_err(|_| not_gemini(status))?;
    let Ok(mut object) = RawObject::parse(text) else {
        return Err(hidden_error(status, headers, body).unwrap_or_else(|| not_gemini(status)));
    };
    if object.has_non_null("error") {
        return Err(hidden_error(status, headers, body).unwrap_or_else(|| not_gemini(status)));
    }
    let usage = match object.value("usageMetadata") {
        Some(Ok(metadata)) => serde_json::from_value::<UsageMetadata>(metadata)
            .ok()
            .map(|m| usage_of(&m)),
        _ => None,
    };
    let body = if object.get("modelVersion").is_some() {
        object.set_string("modelVersion", &ctx.requested_model);
        object.to_json()
    } else {
        text.to_owned()
    };
    Ok(ParsedResponse { body, usage })
}

fn parse_count_tokens(
    form: PayloadForm,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<ParsedResponse, PluginError> {
    let Some(count) = from_object::<CountTokensResponse>(body) else {
        return Err(hidden_error(status, headers, body).unwrap_or_else(|| not_gemini(status)));
    };
    if count.error.as_ref().is_some_and(|e| !e.is_null()) {
        return Err(hidden_error(status, headers, body).unwrap_or_else(|| not_gemini(status)));
    }
    // proto3 JSON omits a zero count.
    let input_tokens = saturate(count.total_tokens.unwrap_or(0));
    let usage = Usage {
        input_tokens,
        cached_input_tokens: count.cached_content_token_count.map(saturate),
        ..Usage::default()
    };
    let body = match form {
        PayloadForm::Native => String::from_utf8_lossy(body).into_owned(),
        PayloadForm::Canonical => to_json(&InputTokens {
            object: "response.input_tokens",
            input_tokens,
        }),
    };
    Ok(ParsedResponse {
        body,
        usage: Some(usage),
    })
}
