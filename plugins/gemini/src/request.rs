//! Canonical request (OpenAI Chat Completions) → Gemini `GenerateContentRequest`.

use std::collections::BTreeMap;

use orch_plugin_sdk::PluginError;
use serde::Deserialize;
use serde_json::Value;

use crate::options::Options;
use crate::ordered::Json;
use crate::schema;
use crate::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateContentRequest, GenerationConfig, Part, ThinkingConfig, Tool,
    ToolConfig,
};

/// Thinking budgets for `reasoning_effort` (`none` disables thinking).
const EFFORT_BUDGETS: &[(&str, i64)] = &[
    ("none", 0),
    ("minimal", 512),
    ("low", 1_024),
    ("medium", 8_192),
    ("high", 24_576),
    ("xhigh", 24_576),
];

/// The parts of a canonical request the adapter reads. Everything else is
/// ignored (`stream`, `stream_options`, `user`, `metadata`, `store`,
/// `service_tier`, `parallel_tool_calls`, `prediction`, …).
#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    messages: Vec<Message>,
    tools: Option<Vec<ToolDefinition>>,
    tool_choice: Option<Value>,
    response_format: Option<ResponseFormat>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    stop: Option<Value>,
    seed: Option<i64>,
    n: Option<u32>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    reasoning_effort: Option<String>,
    thinking: Option<Thinking>,
    logprobs: Option<bool>,
    top_logprobs: Option<Value>,
    logit_bias: Option<Value>,
    modalities: Option<Vec<String>>,
    audio: Option<Value>,
    web_search_options: Option<Value>,
    functions: Option<Value>,
    function_call: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Option<Value>,
    tool_calls: Option<Vec<CanonicalToolCall>>,
    tool_call_id: Option<String>,
    thinking_blocks: Option<Vec<Value>>,
    function_call: Option<Value>,
    audio: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct CanonicalToolCall {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    function: Option<CanonicalFunction>,
    extra_content: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct CanonicalFunction {
    name: String,
    /// JSON text (some clients send the object itself).
    arguments: Option<Json>,
}

#[derive(Debug, Deserialize)]
struct ToolDefinition {
    #[serde(rename = "type")]
    kind: String,
    function: Option<FunctionDefinition>,
}

#[derive(Debug, Deserialize)]
struct FunctionDefinition {
    name: String,
    description: Option<String>,
    parameters: Option<Json>,
}

#[derive(Debug, Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<JsonSchemaFormat>,
}

#[derive(Debug, Deserialize)]
struct JsonSchemaFormat {
    schema: Option<Json>,
}

#[derive(Debug, Deserialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: String,
    budget_tokens: Option<i64>,
}

/// Translates a canonical request into a Gemini `GenerateContentRequest`.
pub(crate) fn translate(
    payload: &str,
    options: &Options,
) -> Result<GenerateContentRequest, PluginError> {
    let request: ChatRequest = serde_json::from_str(payload).map_err(|err| {
        PluginError::bad_request(format!(
            "the request body is not a valid chat completion request: {err}"
        ))
    })?;
    refuse_unsupported(&request)?;
    let (system_instruction, contents) = translate_messages(&request.messages)?;
    let declarations = translate_tools(request.tools.as_deref().unwrap_or_default())?;
    let tool_config = match (&request.tool_choice, declarations.is_empty()) {
        (Some(choice), false) => translate_tool_choice(choice)?,
        _ => None,
    };
    let tools = if declarations.is_empty() {
        Vec::new()
    } else {
        vec![Tool {
            function_declarations: declarations,
        }]
    };
    Ok(GenerateContentRequest {
        model: None,
        contents,
        system_instruction,
        tools,
        tool_config,
        safety_settings: options.safety_settings.clone(),
        generation_config: generation_config(&request)?,
    })
}

/// Features Gemini cannot express: the host routes the request elsewhere.
fn refuse_unsupported(request: &ChatRequest) -> Result<(), PluginError> {
    let unsupported = |feature: &str| {
        Err(PluginError::unsupported(format!(
            "the gemini adapter does not support {feature}"
        )))
    };
    let set = |value: &Option<Value>| value.as_ref().is_some_and(|v| !v.is_null());
    if request.logprobs == Some(true) || set(&request.top_logprobs) {
        return unsupported("`logprobs`");
    }
    if request
        .logit_bias
        .as_ref()
        .is_some_and(|bias| bias.as_object().is_some_and(|map| !map.is_empty()))
    {
        return unsupported("`logit_bias`");
    }
    let audio_out = request
        .modalities
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| m != "text"));
    if audio_out || set(&request.audio) {
        return unsupported("audio output (`modalities`, `audio`)");
    }
    if set(&request.web_search_options) {
        return unsupported("`web_search_options`");
    }
    if set(&request.functions) || set(&request.function_call) {
        return unsupported("the legacy `functions` / `function_call` fields (use `tools`)");
    }
    Ok(())
}

// ------------------------------------------------------------------ messages

/// The system instruction and the turns.
fn translate_messages(
    messages: &[Message],
) -> Result<(Option<Content>, Vec<Content>), PluginError> {
    let mut system = Vec::new();
    let mut contents = Vec::new();
    let mut tool_results = Vec::new();
    let mut call_names = BTreeMap::new();
    for (index, message) in messages.iter().enumerate() {
        let param = format!("messages[{index}]");
        if message.role != "tool" && !tool_results.is_empty() {
            contents.push(user_turn(std::mem::take(&mut tool_results)));
        }
        match message.role.as_str() {
            "system" | "developer" => {
                let texts = text_of(message.content.as_ref(), &param, "system messages")?;
                system.extend(texts.into_iter().map(Part::text));
            }
            "user" => {
                let parts = user_parts(message.content.as_ref(), &param)?;
                if !parts.is_empty() {
                    contents.push(user_turn(parts));
                }
            }
            "assistant" => {
                let parts = assistant_parts(message, &param, &mut call_names)?;
                if !parts.is_empty() {
                    contents.push(Content {
                        role: Some("model"),
                        parts,
                    });
                }
            }
            "tool" => tool_results.push(function_response(message, &param, &call_names)?),
            "function" => {
                return Err(PluginError::unsupported(
                    "the gemini adapter does not support legacy `function` messages (use `tool`)",
                ));
            }
            other => {
                return Err(
                    PluginError::bad_request(format!("unknown message role `{other}`"))
                        .with_param(param),
                );
            }
        }
    }
    if !tool_results.is_empty() {
        contents.push(user_turn(tool_results));
    }
    if contents.is_empty() {
        return Err(
            PluginError::bad_request("the request has no user or assistant messages")
                .with_param("messages"),
        );
    }
    let system_instruction = (!system.is_empty()).then_some(Content {
        role: None,
        parts: system,
    });
    Ok((system_instruction, contents))
}

fn user_turn(parts: Vec<Part>) -> Content {
    Content {
        role: Some("user"),
        parts,
    }
}

/// The texts of a message that may only hold text (empty ones dropped).
fn text_of(content: Option<&Value>, param: &str, what: &str) -> Result<Vec<String>, PluginError> {
    let mut texts = Vec::new();
    match content {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => texts.push(text.clone()),
        Some(Value::Array(parts)) => {
            for part in parts {
                match part_type(part) {
                    "text" | "refusal" => texts.push(part_text(part).to_owned()),
                    other => {
                        return Err(PluginError::unsupported(format!(
                            "the gemini adapter does not support content parts of type `{other}` in {what}"
                        )));
                    }
                }
            }
        }
        Some(_) => return Err(bad_content(param)),
    }
    texts.retain(|text| !text.is_empty());
    Ok(texts)
}

fn bad_content(param: &str) -> PluginError {
    PluginError::bad_request("`content` must be a string or a list of content parts")
        .with_param(format!("{param}.content"))
}

fn part_type(part: &Value) -> &str {
    part.get("type").and_then(Value::as_str).unwrap_or("")
}

fn part_text(part: &Value) -> &str {
    part.get("text")
        .or_else(|| part.get("refusal"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The parts of a user message: text, images, audio, files.
fn user_parts(content: Option<&Value>, param: &str) -> Result<Vec<Part>, PluginError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(vec![Part::text(text.clone())]),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(bad_content(param)),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let param = format!("{param}.content[{index}]");
        match part_type(part) {
            "text" => {
                let text = part_text(part);
                if !text.is_empty() {
                    out.push(Part::text(text));
                }
            }
            "image_url" => {
                let url = part
                    .get("image_url")
                    .and_then(|image| image.get("url").or(Some(image)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        PluginError::bad_request("`image_url.url` must be a string")
                            .with_param(&param)
                    })?;
                out.push(media_part(url, &param)?);
            }
            "input_audio" => out.push(audio_part(part, &param)?),
            "file" => out.push(file_part(part, &param)?),
            other => {
                return Err(PluginError::unsupported(format!(
                    "the gemini adapter does not support content parts of type `{other}`"
                )));
            }
        }
    }
    Ok(out)
}

/// An image (or other media) by URL: `data:` URIs become `inlineData`,
/// http(s) URLs `fileData`.
fn media_part(url: &str, param: &str) -> Result<Part, PluginError> {
    if url.starts_with("data:") {
        return Ok(Part {
            inline_data: Some(data_uri(url, param)?),
            ..Part::default()
        });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(Part {
            file_data: Some(FileData {
                mime_type: mime_from_extension(url).to_owned(),
                file_uri: url.to_owned(),
            }),
            ..Part::default()
        });
    }
    Err(
        PluginError::bad_request("an image URL must be an http(s) URL or a base64 data: URI")
            .with_param(param),
    )
}

/// `data:<mime>;base64,<data>` → `inlineData`.
fn data_uri(uri: &str, param: &str) -> Result<Blob, PluginError> {
    let invalid = || {
        PluginError::bad_request("a data: URI must look like data:<mime type>;base64,<data>")
            .with_param(param)
    };
    let rest = uri.strip_prefix("data:").ok_or_else(invalid)?;
    let (meta, data) = rest.split_once(',').ok_or_else(invalid)?;
    let mime = meta.strip_suffix(";base64").ok_or_else(invalid)?;
    // Drop parameters such as `;charset=…`: Gemini wants the bare type.
    let mime = mime.split(';').next().unwrap_or_default().trim();
    if mime.is_empty() || !mime.contains('/') {
        return Err(invalid());
    }
    Ok(Blob {
        mime_type: mime.to_ascii_lowercase(),
        data: data.to_owned(),
    })
}

/// The media type of a URL from its file extension; `image/jpeg` when
/// unknown (the URL is an image part).
fn mime_from_extension(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let extension = file
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

/// `{"type": "input_audio", "input_audio": {"data", "format"}}` → `inlineData`.
fn audio_part(part: &Value, param: &str) -> Result<Part, PluginError> {
    let audio = part.get("input_audio");
    let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
    let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str);
    let (Some(data), Some(format)) = (data, format) else {
        return Err(
            PluginError::bad_request("`input_audio` needs `data` and `format`").with_param(param),
        );
    };
    let mime_type = match format {
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        other => {
            return Err(PluginError::unsupported(format!(
                "the gemini adapter does not support `{other}` audio input"
            )));
        }
    };
    Ok(Part {
        inline_data: Some(Blob {
            mime_type: mime_type.to_owned(),
            data: data.to_owned(),
        }),
        ..Part::default()
    })
}

/// `{"type": "file", "file": {"file_data": "data:…"}}` → `inlineData`.
fn file_part(part: &Value, param: &str) -> Result<Part, PluginError> {
    let file = part.get("file");
    if let Some(data) = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str)
    {
        return Ok(Part {
            inline_data: Some(data_uri(data, param)?),
            ..Part::default()
        });
    }
    Err(PluginError::unsupported(
        "the gemini adapter does not support file parts by `file_id` (send `file_data`)",
    ))
}

/// The parts of an assistant message, in Gemini's order: signed thoughts,
/// text, function calls.
fn assistant_parts(
    message: &Message,
    param: &str,
    call_names: &mut BTreeMap<String, String>,
) -> Result<Vec<Part>, PluginError> {
    if message.function_call.as_ref().is_some_and(|f| !f.is_null()) {
        return Err(PluginError::unsupported(
            "the gemini adapter does not support the legacy `function_call` field (use `tool_calls`)",
        ));
    }
    if message.audio.as_ref().is_some_and(|a| !a.is_null()) {
        return Err(PluginError::unsupported(
            "the gemini adapter does not support assistant audio",
        ));
    }
    let mut parts = Vec::new();
    // A signature without thinking text belonged to the text part after it.
    let mut text_signature = None;
    for block in message.thinking_blocks.iter().flatten() {
        let signature = block.get("signature").and_then(Value::as_str);
        let thinking = block.get("thinking").and_then(Value::as_str).unwrap_or("");
        match (part_type(block), signature) {
            ("thinking", Some(signature)) if !signature.is_empty() => {
                if thinking.is_empty() {
                    text_signature.get_or_insert_with(|| signature.to_owned());
                } else {
                    parts.push(Part {
                        text: Some(thinking.to_owned()),
                        thought: Some(true),
                        thought_signature: Some(signature.to_owned()),
                        ..Part::default()
                    });
                }
            }
            // Unsigned thinking cannot be verified by Gemini, redacted
            // thinking has no Gemini form: both are dropped.
            _ => {}
        }
    }
    let texts = text_of(message.content.as_ref(), param, "assistant messages")?;
    for (index, text) in texts.into_iter().enumerate() {
        let mut part = Part::text(text);
        if index == 0 {
            part.thought_signature = text_signature.take();
        }
        parts.push(part);
    }
    for (index, call) in message.tool_calls.iter().flatten().enumerate() {
        let param = format!("{param}.tool_calls[{index}]");
        parts.push(function_call(call, &param, call_names)?);
    }
    Ok(parts)
}

/// An assistant tool call → a `functionCall` part (with its signature).
fn function_call(
    call: &CanonicalToolCall,
    param: &str,
    call_names: &mut BTreeMap<String, String>,
) -> Result<Part, PluginError> {
    if let Some(kind) = call.kind.as_deref()
        && kind != "function"
    {
        return Err(PluginError::unsupported(format!(
            "the gemini adapter does not support tool calls of type `{kind}`"
        )));
    }
    let function = call.function.as_ref().ok_or_else(|| {
        PluginError::bad_request("a tool call needs a `function`").with_param(param)
    })?;
    let args = match &function.arguments {
        None | Some(Json::Null) => Json::object(),
        Some(Json::String(text)) if text.trim().is_empty() => Json::object(),
        Some(Json::String(text)) => serde_json::from_str::<Json>(text).map_err(|_| {
            PluginError::bad_request("tool call `arguments` must be a JSON object")
                .with_param(format!("{param}.function.arguments"))
        })?,
        Some(other) => other.clone(),
    };
    if !args.is_object() {
        return Err(
            PluginError::bad_request("tool call `arguments` must be a JSON object")
                .with_param(format!("{param}.function.arguments")),
        );
    }
    if let Some(id) = &call.id {
        call_names.insert(id.clone(), function.name.clone());
    }
    let signature = call
        .extra_content
        .as_ref()
        .and_then(|extra| extra.pointer("/google/thought_signature"))
        .and_then(Value::as_str)
        .filter(|signature| !signature.is_empty())
        .map(str::to_owned);
    Ok(Part {
        function_call: Some(FunctionCall {
            id: call.id.clone(),
            name: function.name.clone(),
            args,
        }),
        thought_signature: signature,
        ..Part::default()
    })
}

/// A tool message → a `functionResponse` part. The function name comes from
/// the assistant tool call with the same id (or from a generated
/// `call_<n>_<name>` id).
fn function_response(
    message: &Message,
    param: &str,
    call_names: &BTreeMap<String, String>,
) -> Result<Part, PluginError> {
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        PluginError::bad_request("a tool message needs a `tool_call_id`")
            .with_param(format!("{param}.tool_call_id"))
    })?;
    let name = call_names
        .get(id)
        .cloned()
        .or_else(|| name_from_generated_id(id))
        .ok_or_else(|| {
            PluginError::bad_request(format!(
                "tool message answers `{id}`, but no earlier assistant message has a tool call with that id"
            ))
            .with_param(format!("{param}.tool_call_id"))
        })?;
    let text = text_of(message.content.as_ref(), param, "tool messages")?.concat();
    let response = match serde_json::from_str::<Json>(&text) {
        Ok(object @ Json::Object(_)) => object,
        _ => Json::Object(vec![("result".to_owned(), Json::String(text))]),
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: Some(id.to_owned()),
            name,
            response,
        }),
        ..Part::default()
    })
}

/// The function name in an id generated as `call_<n>_<name>`.
fn name_from_generated_id(id: &str) -> Option<String> {
    let (index, name) = id.strip_prefix("call_")?.split_once('_')?;
    let numeric = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
    (numeric && !name.is_empty()).then(|| name.to_owned())
}

// --------------------------------------------------------------------- tools

fn translate_tools(tools: &[ToolDefinition]) -> Result<Vec<FunctionDeclaration>, PluginError> {
    let mut declarations = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(PluginError::unsupported(format!(
                "the gemini adapter does not support tools of type `{}`",
                tool.kind
            )));
        }
        let function = tool.function.as_ref().ok_or_else(|| {
            PluginError::bad_request("a function tool needs a `function`")
                .with_param(format!("tools[{index}]"))
        })?;
        let parameters = function
            .parameters
            .as_ref()
            .map(|parameters| schema::to_gemini(parameters, false))
            .filter(|parameters| !schema::is_empty_object(parameters));
        declarations.push(FunctionDeclaration {
            name: function.name.clone(),
            description: function.description.clone().filter(|d| !d.is_empty()),
            parameters,
        });
    }
    Ok(declarations)
}

fn translate_tool_choice(choice: &Value) -> Result<Option<ToolConfig>, PluginError> {
    let config = |mode: &'static str, names: Option<Vec<String>>| {
        Some(ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode,
                allowed_function_names: names,
            },
        })
    };
    match choice {
        Value::Null => Ok(None),
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(config("AUTO", None)),
            "none" => Ok(config("NONE", None)),
            "required" => Ok(config("ANY", None)),
            other => Err(
                PluginError::bad_request(format!("unknown `tool_choice` \"{other}\""))
                    .with_param("tool_choice"),
            ),
        },
        Value::Object(_) => {
            if let Some(name) = choice.pointer("/function/name").and_then(Value::as_str) {
                return Ok(config("ANY", Some(vec![name.to_owned()])));
            }
            let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
            Err(PluginError::unsupported(format!(
                "the gemini adapter does not support `tool_choice` of type `{kind}`"
            )))
        }
        _ => Err(
            PluginError::bad_request("`tool_choice` must be a string or an object")
                .with_param("tool_choice"),
        ),
    }
}

// --------------------------------------------------------- generation config

fn generation_config(request: &ChatRequest) -> Result<GenerationConfig, PluginError> {
    let mut config = GenerationConfig {
        stop_sequences: stop_sequences(request.stop.as_ref())?,
        candidate_count: request.n,
        max_output_tokens: request
            .max_completion_tokens
            .or(request.max_tokens)
            .map(|max| u32::try_from(max.min(i32::MAX as u64)).unwrap_or(u32::MAX)),
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        seed: request
            .seed
            .map(|seed| {
                i32::try_from(seed).map_err(|_| {
                    PluginError::unsupported(
                        "the gemini adapter does not support `seed` values outside the 32-bit range",
                    )
                })
            })
            .transpose()?,
        presence_penalty: request.presence_penalty,
        frequency_penalty: request.frequency_penalty,
        thinking_config: thinking_config(request)?,
        ..GenerationConfig::default()
    };
    if let Some(format) = &request.response_format {
        match format.kind.as_str() {
            "text" => {}
            "json_object" => config.response_mime_type = Some("application/json"),
            "json_schema" => {
                config.response_mime_type = Some("application/json");
                config.response_schema = format
                    .json_schema
                    .as_ref()
                    .and_then(|format| format.schema.as_ref())
                    .map(|schema| schema::to_gemini(schema, true))
                    .filter(|schema| !matches!(schema, Json::Object(fields) if fields.is_empty()));
            }
            other => {
                return Err(PluginError::bad_request(format!(
                    "unknown `response_format` type `{other}`"
                ))
                .with_param("response_format"));
            }
        }
    }
    Ok(config)
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Vec<String>>, PluginError> {
    let invalid = || {
        PluginError::bad_request("`stop` must be a string or a list of strings").with_param("stop")
    };
    let sequences = match stop {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid()),
    };
    Ok((!sequences.is_empty()).then_some(sequences))
}

/// `thinking` (Anthropic's shape, wins) or `reasoning_effort` →
/// `thinkingConfig`.
fn thinking_config(request: &ChatRequest) -> Result<Option<ThinkingConfig>, PluginError> {
    let enabled = |budget: i64| {
        Some(ThinkingConfig {
            include_thoughts: Some(true),
            thinking_budget: budget,
        })
    };
    let disabled = Some(ThinkingConfig {
        include_thoughts: None,
        thinking_budget: 0,
    });
    if let Some(thinking) = &request.thinking {
        return match (thinking.kind.as_str(), thinking.budget_tokens) {
            ("enabled", Some(budget)) if budget >= 0 => Ok(enabled(budget)),
            ("enabled", _) => Err(PluginError::bad_request(
                "`thinking.budget_tokens` must be a non-negative number",
            )
            .with_param("thinking.budget_tokens")),
            ("adaptive", _) => Ok(enabled(-1)),
            ("disabled", _) => Ok(disabled),
            (other, _) => Err(PluginError::bad_request(format!(
                "unknown `thinking.type` `{other}`"
            ))
            .with_param("thinking.type")),
        };
    }
    let Some(effort) = request.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    match EFFORT_BUDGETS.iter().find(|(name, _)| *name == effort) {
        Some((_, 0)) => Ok(disabled),
        Some((_, budget)) => Ok(enabled(*budget)),
        None => Err(
            PluginError::bad_request(format!("unknown `reasoning_effort` \"{effort}\""))
                .with_param("reasoning_effort"),
        ),
    }
}
