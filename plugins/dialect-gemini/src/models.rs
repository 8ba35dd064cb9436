//! Model listings (`GET /v1beta/models`) and token counts (`:countTokens`).

use orch_plugin_sdk::ModelEntry;

use crate::json::{Json, Object};

/// What every listed model supports through the gateway.
const GENERATION_METHODS: &[&str] = &["generateContent", "countTokens", "streamGenerateContent"];

/// `{"models": [Model, ...]}` in the Gemini API's `ListModelsResponse` shape.
/// google-genai's `client.models.list()` reads `models` (and would follow a
/// `nextPageToken`, which a single page does not have); for each model it
/// reads `name`, `displayName`, `description`, `version`,
/// `inputTokenLimit`, `outputTokenLimit` and `supportedGenerationMethods`
/// (as `supported_actions`), all optional. Token limits are unknown to the
/// gateway and left out.
pub(crate) fn encode_models(models: &[ModelEntry]) -> String {
    let models: Vec<Json> = models.iter().map(model).collect();
    Object::new().with("models", models).to_string()
}

fn model(entry: &ModelEntry) -> Json {
    let id = entry.id.strip_prefix("models/").unwrap_or(&entry.id);
    let methods: Vec<Json> = GENERATION_METHODS.iter().map(|m| Json::from(*m)).collect();
    Object::new()
        .with("name", format!("models/{id}"))
        .with("baseModelId", id)
        .with("version", "001")
        .with("displayName", id)
        .with("supportedGenerationMethods", methods)
        .into()
}

/// `{"totalTokens": n}`, the `CountTokensResponse`.
pub(crate) fn encode_token_count(input_tokens: u32) -> String {
    Object::new().with("totalTokens", input_tokens).to_string()
}
