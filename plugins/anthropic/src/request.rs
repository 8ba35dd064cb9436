//! Building upstream requests: canonical (OpenAI Chat Completions) requests
//! translated to Messages requests, native ones forwarded with a new `model`.
//!
//! | canonical | Messages API |
//! |---|---|
//! | `system` / `developer` messages | top-level `system` (a string for one string message, else text blocks) |
//! | consecutive messages of one role | merged into one turn (roles alternate) |
//! | `text` parts | `text` blocks (`cache_control` kept) |
//! | `image_url` parts | `image` blocks: `data:` URLs as `base64` sources, `http(s)` URLs as `url` sources |
//! | `file` parts with PDF `file_data` | `document` blocks |
//! | assistant `thinking_blocks` | `thinking` / `redacted_thinking` blocks, first in the turn, unchanged |
//! | assistant `tool_calls` | `tool_use` blocks (id verbatim, `input` = the parsed `arguments`) |
//! | `tool` messages | `tool_result` blocks in a user turn, before any other block of that turn |
//! | `tools` | `{name, description, input_schema}` |
//! | `tool_choice` `auto` / `none` / `required` / named | `auto` / `none` / `any` / `tool` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `response_format` `json_object` / `json_schema` | a forced tool named [`JSON_TOOL_NAME`] |
//! | `thinking`, else `reasoning_effort` | `thinking` (see the crate documentation) |
//! | `max_completion_tokens`, else `max_tokens`, else the `default_max_tokens` option | `max_tokens` |
//! | `stop` | `stop_sequences` |
//! | `metadata.user_id`, else `user` | `metadata.user_id` |
//! | `temperature`, `top_p`, `top_k` | the same |
//!
//! Field order inside tool schemas and tool-call arguments is kept (they are
//! copied as raw JSON text): property order steers what a model writes first.

use orch_plugin_sdk::{
    JsonEdit, Operation, PayloadForm, PluginError, RequestContext, UpstreamRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::options::{Options, endpoint};

/// The name of the tool that emulates `response_format` (JSON mode). Its
/// `tool_use` input comes back as the message text. A request that defines a
/// tool of this name itself is refused as `unsupported`.
pub const JSON_TOOL_NAME: &str = "json_response";

/// Image media types the Messages API accepts.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Builds the upstream request for `payload` in the form `ctx.form` names.
pub fn build(ctx: &RequestContext, payload: &str) -> Result<UpstreamRequest, PluginError> {
    let path = match ctx.operation {
        Operation::Chat => "messages",
        Operation::CountTokens => "messages/count_tokens",
        Operation::Embeddings => {
            return Err(PluginError::unsupported(
                "the anthropic adapter does not support embeddings",
            ));
        }
    };
    let options = Options::parse(&ctx.provider)?;
    let streaming = ctx.streaming && ctx.operation == Operation::Chat;
    let accept = if streaming {
        "text/event-stream"
    } else {
        "application/json"
    };
    let request = UpstreamRequest::post(endpoint(&ctx.provider.base_url, path))
        .header("content-type", "application/json")
        .header("accept", accept);
    let request = options.apply(request);
    Ok(match ctx.form {
        PayloadForm::Native => request
            .forward(vec![JsonEdit::set_string("model", &ctx.upstream_model)])
            .build(),
        PayloadForm::Canonical => request.bytes(translate(ctx, &options, payload)?).build(),
    })
}

/// Translates a canonical request body to a Messages (or count-tokens) body.
pub fn translate(
    ctx: &RequestContext,
    options: &Options,
    payload: &str,
) -> Result<Vec<u8>, PluginError> {
    let request: ChatRequest = serde_json::from_str(payload).map_err(|err| {
        PluginError::bad_request(format!(
            "the request body is not a valid chat completion request: {err}"
        ))
    })?;
    request.refuse_unsupported()?;
    let (system, messages) = convert_messages(&request.messages)?;
    let thinking = thinking(&request)?;
    let thinking_on = thinking
        .as_ref()
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "disabled");
    let (tools, tool_choice) = tools_and_choice(&request, thinking_on)?;
    let mut body = MessagesRequest {
        model: ctx.upstream_model.clone(),
        max_tokens: None,
        system,
        messages,
        tools,
        tool_choice,
        thinking,
        temperature: None,
        top_p: None,
        top_k: None,
        stop_sequences: None,
        metadata: None,
        stream: None,
    };
    if ctx.operation == Operation::Chat {
        let mut max_tokens = request
            .max_completion_tokens
            .or(request.max_tokens)
            .unwrap_or(u64::from(options.default_max_tokens));
        let budget = body
            .thinking
            .as_ref()
            .filter(|_| thinking_on)
            .and_then(|t| t.get("budget_tokens"))
            .and_then(Value::as_u64);
        if let Some(budget) = budget
            && max_tokens <= budget
        {
            max_tokens = budget.saturating_add(max_tokens);
        }
        body.max_tokens = Some(max_tokens);
        if let Some(temperature) = request.temperature
            && temperature > 1.0
        {
            return Err(PluginError::unsupported(format!(
                "`temperature` {temperature} is not supported by the Anthropic Messages API (it accepts 0 to 1)"
            ))
            .with_param("temperature"));
        }
        body.temperature = request.temperature;
        body.top_p = request.top_p;
        body.top_k = request.top_k;
        body.stop_sequences = stop_sequences(request.stop.as_ref())?;
        body.metadata = user_id(&request).map(|id| json!({ "user_id": id }));
        body.stream = ctx.streaming.then_some(true);
    }
    serde_json::to_vec(&body).map_err(|err| {
        PluginError::bad_request(format!("the translated request cannot be encoded: {err}"))
    })
}

// ------------------------------------------------------------------ input

/// The canonical request fields this adapter reads. Everything else is
/// ignored; fields Anthropic cannot express are named here so they can be
/// refused.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    messages: Vec<Value>,
    tools: Option<Vec<ChatTool>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<ResponseFormat>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    stop: Option<Value>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    reasoning_effort: Option<String>,
    thinking: Option<Value>,
    user: Option<String>,
    metadata: Option<Value>,
    n: Option<u64>,
    logprobs: Option<bool>,
    top_logprobs: Option<u64>,
    modalities: Option<Vec<String>>,
    audio: Option<Value>,
    functions: Option<Value>,
    function_call: Option<Value>,
    web_search_options: Option<Value>,
}

impl ChatRequest {
    /// Refuses what the Messages API cannot express.
    fn refuse_unsupported(&self) -> Result<(), PluginError> {
        let refuse = |feature: &str, param: &str| {
            Err(PluginError::unsupported(format!(
                "{feature} is not supported by the Anthropic Messages API"
            ))
            .with_param(param))
        };
        if self.n.is_some_and(|n| n > 1) {
            return refuse("`n` > 1 (several choices)", "n");
        }
        if self.logprobs == Some(true) || self.top_logprobs.is_some_and(|n| n > 0) {
            return refuse("`logprobs`", "logprobs");
        }
        if self.audio.is_some()
            || self
                .modalities
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m == "audio"))
        {
            return refuse("audio output", "modalities");
        }
        if self.functions.is_some() || self.function_call.is_some() {
            return refuse("legacy `functions` (use `tools`)", "functions");
        }
        if self.web_search_options.is_some() {
            return refuse("`web_search_options`", "web_search_options");
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct ChatTool {
    #[serde(rename = "type")]
    kind: Option<String>,
    function: Option<ChatFunction>,
    cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChatFunction {
    name: String,
    description: Option<String>,
    parameters: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<JsonSchemaFormat>,
}

#[derive(Debug, Deserialize)]
struct JsonSchemaFormat {
    name: Option<String>,
    description: Option<String>,
    schema: Option<Box<RawValue>>,
}

// ----------------------------------------------------------------- output

/// A Messages API request body (fields in the API's documented order).
#[derive(Debug, Serialize)]
struct MessagesRequest {
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<Content>,
    messages: Vec<Turn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

/// One message of the conversation.
#[derive(Debug, Serialize)]
struct Turn {
    role: Role,
    content: Content,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
}

/// Message, system or tool-result content: a string or blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

/// A content block.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Image {
        source: Source,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Document {
        source: Source,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: String,
        content: Content,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

/// Where an image or document comes from.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

/// A tool definition.
#[derive(Debug, Serialize)]
struct Tool {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<Value>,
}

// --------------------------------------------------------------- messages

/// A turn being assembled: `plain` while it is one string message (sent as a
/// string rather than blocks).
struct PendingTurn {
    role: Role,
    blocks: Vec<Block>,
    plain: bool,
}

impl PendingTurn {
    fn into_turn(self) -> Turn {
        let mut blocks = self.blocks;
        let content = match blocks.as_mut_slice() {
            [
                Block::Text {
                    text,
                    cache_control: None,
                },
            ] if self.plain => Content::Text(std::mem::take(text)),
            _ => Content::Blocks(blocks),
        };
        Turn {
            role: self.role,
            content,
        }
    }
}

/// Appends blocks as a turn of `role`, merging with the previous turn of the
/// same role. In user turns, tool results go before every other block (the
/// API wants them first).
fn push_turn(turns: &mut Vec<PendingTurn>, role: Role, blocks: Vec<Block>, plain: bool) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => {
            last.plain = false;
            for block in blocks {
                if matches!(block, Block::ToolResult { .. }) {
                    let at = last
                        .blocks
                        .iter()
                        .take_while(|b| matches!(b, Block::ToolResult { .. }))
                        .count();
                    last.blocks.insert(at, block);
                } else {
                    last.blocks.push(block);
                }
            }
        }
        _ => turns.push(PendingTurn {
            role,
            blocks,
            plain,
        }),
    }
}

/// Splits the canonical messages into the `system` prompt and the turns.
fn convert_messages(messages: &[Value]) -> Result<(Option<Content>, Vec<Turn>), PluginError> {
    let mut system: Vec<Block> = Vec::new();
    let mut system_messages = 0_usize;
    let mut system_plain = true;
    let mut turns: Vec<PendingTurn> = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let at = format!("messages[{index}]");
        let role = message.get("role").and_then(Value::as_str).ok_or_else(|| {
            PluginError::bad_request(format!("`{at}.role` must be a string")).with_param(&at)
        })?;
        let content = message.get("content").filter(|c| !c.is_null());
        match role {
            "system" | "developer" => {
                system_messages += 1;
                system_plain &= matches!(content, Some(Value::String(_)));
                system.extend(system_blocks(content, &at)?);
            }
            "user" => {
                let content = content.ok_or_else(|| missing(&format!("{at}.content")))?;
                let plain = content.is_string();
                push_turn(&mut turns, Role::User, user_blocks(content, &at)?, plain);
            }
            "assistant" => {
                let (blocks, plain) = assistant_blocks(message, content, &at)?;
                push_turn(&mut turns, Role::Assistant, blocks, plain);
            }
            "tool" => {
                let block = tool_result(message, content, &at)?;
                push_turn(&mut turns, Role::User, vec![block], false);
            }
            "function" => {
                return Err(PluginError::unsupported(
                    "legacy `function` messages are not supported (use `tool` messages)",
                )
                .with_param(at));
            }
            other => {
                return Err(PluginError::bad_request(format!(
                    "`{at}.role` `{other}` is not a chat message role"
                ))
                .with_param(at));
            }
        }
    }
    let system = match system.as_mut_slice() {
        [] => None,
        [
            Block::Text {
                text,
                cache_control: None,
            },
        ] if system_messages == 1 && system_plain => Some(Content::Text(std::mem::take(text))),
        _ => Some(Content::Blocks(system)),
    };
    Ok((
        system,
        turns.into_iter().map(PendingTurn::into_turn).collect(),
    ))
}

fn missing(path: &str) -> PluginError {
    PluginError::bad_request(format!("`{path}` is missing")).with_param(path)
}

fn invalid(path: &str, what: &str) -> PluginError {
    PluginError::bad_request(format!("`{path}` {what}")).with_param(path)
}

/// The text blocks of a system or developer message.
fn system_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Block>, PluginError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text_block(text.clone(), None)]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let path = format!("{at}.content[{i}]");
                match part_type(part, &path)? {
                    "text" => Ok(text_block(part_text(part, &path)?, cache_control(part))),
                    other => Err(PluginError::unsupported(format!(
                        "`{other}` content in a system message is not supported by the Anthropic Messages API"
                    ))
                    .with_param(path)),
                }
            })
            .collect(),
        Some(_) => Err(invalid(
            &format!("{at}.content"),
            "must be a string or an array of content parts",
        )),
    }
}

/// The blocks of user content (a string or parts).
fn user_blocks(content: &Value, at: &str) -> Result<Vec<Block>, PluginError> {
    match content {
        Value::String(text) => Ok(vec![text_block(text.clone(), None)]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| user_part(part, &format!("{at}.content[{i}]")))
            .collect(),
        _ => Err(invalid(
            &format!("{at}.content"),
            "must be a string or an array of content parts",
        )),
    }
}

/// One user content part.
fn user_part(part: &Value, path: &str) -> Result<Block, PluginError> {
    match part_type(part, path)? {
        "text" => Ok(text_block(part_text(part, path)?, cache_control(part))),
        "image_url" => {
            let url = match part.get("image_url") {
                Some(Value::Object(image)) => image.get("url").and_then(Value::as_str),
                Some(Value::String(url)) => Some(url.as_str()),
                _ => None,
            }
            .ok_or_else(|| missing(&format!("{path}.image_url.url")))?;
            Ok(Block::Image {
                source: image_source(url, &format!("{path}.image_url.url"))?,
                cache_control: cache_control(part),
            })
        }
        "file" => file_block(part, path),
        "input_audio" => Err(PluginError::unsupported(
            "audio input is not supported by the Anthropic Messages API",
        )
        .with_param(path)),
        other => Err(PluginError::unsupported(format!(
            "`{other}` content parts are not supported by the anthropic adapter"
        ))
        .with_param(path)),
    }
}

fn part_type<'a>(part: &'a Value, path: &str) -> Result<&'a str, PluginError> {
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{path}.type"), "must be a string"))
}

fn part_text(part: &Value, path: &str) -> Result<String, PluginError> {
    part.get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid(&format!("{path}.text"), "must be a string"))
}

fn cache_control(part: &Value) -> Option<Value> {
    part.get("cache_control").filter(|c| !c.is_null()).cloned()
}

fn text_block(text: String, cache_control: Option<Value>) -> Block {
    Block::Text {
        text,
        cache_control,
    }
}

/// `data:<mime>[;…];base64,<data>` split into the media type and the data.
fn parse_data_url(url: &str) -> Option<(String, &str)> {
    let rest = url
        .get(..5)
        .filter(|scheme| scheme.eq_ignore_ascii_case("data:"))
        .and_then(|_| url.get(5..))?;
    let (header, data) = rest.split_once(',')?;
    let mut params = header.split(';');
    let mime = params.next()?.trim().to_ascii_lowercase();
    params
        .any(|p| p.trim().eq_ignore_ascii_case("base64"))
        .then_some((mime, data))
}

/// The source of an `image_url`: base64 for data URLs, a URL source otherwise.
fn image_source(url: &str, path: &str) -> Result<Source, PluginError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("data:") {
        let (mime, data) = parse_data_url(url)
            .ok_or_else(|| invalid(path, "must be a base64 `data:` URL or an http(s) URL"))?;
        let mime = if mime == "image/jpg" {
            "image/jpeg".to_owned()
        } else {
            mime
        };
        if !IMAGE_TYPES.contains(&mime.as_str()) {
            return Err(PluginError::unsupported(format!(
                "images of type `{mime}` are not supported by the Anthropic Messages API (JPEG, PNG, GIF and WebP are)"
            ))
            .with_param(path));
        }
        Ok(Source::Base64 {
            media_type: mime,
            data: data.to_owned(),
        })
    } else if lower.starts_with("https://") || lower.starts_with("http://") {
        Ok(Source::Url {
            url: url.to_owned(),
        })
    } else {
        Err(invalid(
            path,
            "must be a base64 `data:` URL or an http(s) URL",
        ))
    }
}

/// A `file` part: PDFs given inline become `document` blocks.
fn file_block(part: &Value, path: &str) -> Result<Block, PluginError> {
    let file = part.get("file");
    let data = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str);
    let Some(data) = data else {
        return Err(PluginError::unsupported(
            "file inputs by `file_id` are not supported by the anthropic adapter",
        )
        .with_param(path));
    };
    let data_path = format!("{path}.file.file_data");
    let (mime, data) =
        parse_data_url(data).ok_or_else(|| invalid(&data_path, "must be a base64 `data:` URL"))?;
    if mime != "application/pdf" {
        return Err(PluginError::unsupported(format!(
            "file inputs of type `{mime}` are not supported by the anthropic adapter (PDF is)"
        ))
        .with_param(data_path));
    }
    Ok(Block::Document {
        source: Source::Base64 {
            media_type: mime,
            data: data.to_owned(),
        },
        cache_control: cache_control(part),
    })
}

/// The blocks of an assistant message: thinking blocks, text, tool calls.
/// Returns whether the message is plain text.
fn assistant_blocks(
    message: &Value,
    content: Option<&Value>,
    at: &str,
) -> Result<(Vec<Block>, bool), PluginError> {
    if message.get("function_call").is_some_and(|f| !f.is_null()) {
        return Err(PluginError::unsupported(
            "legacy `function_call` messages are not supported (use `tool_calls`)",
        )
        .with_param(format!("{at}.function_call")));
    }
    if message.get("audio").is_some_and(|a| !a.is_null()) {
        return Err(PluginError::unsupported(
            "assistant audio is not supported by the Anthropic Messages API",
        )
        .with_param(format!("{at}.audio")));
    }
    let mut blocks = thinking_blocks(message.get("thinking_blocks"));
    let has_thinking = !blocks.is_empty();
    match content {
        None => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(Value::String(text)) => blocks.push(text_block(text.clone(), None)),
        Some(Value::Array(parts)) => {
            for (i, part) in parts.iter().enumerate() {
                let path = format!("{at}.content[{i}]");
                let text = match part_type(part, &path)? {
                    "text" => part_text(part, &path)?,
                    "refusal" => part
                        .get("refusal")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(&format!("{path}.refusal"), "must be a string"))?,
                    other => {
                        return Err(PluginError::unsupported(format!(
                            "`{other}` content in an assistant message is not supported by the anthropic adapter"
                        ))
                        .with_param(path));
                    }
                };
                if !text.is_empty() {
                    blocks.push(text_block(text, cache_control(part)));
                }
            }
        }
        Some(_) => {
            return Err(invalid(
                &format!("{at}.content"),
                "must be a string, an array of content parts or null",
            ));
        }
    }
    let mut has_calls = false;
    if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| invalid(&format!("{at}.tool_calls"), "must be an array"))?;
        for (i, call) in calls.iter().enumerate() {
            blocks.push(tool_use(call, &format!("{at}.tool_calls[{i}]"))?);
            has_calls = true;
        }
    }
    let plain = content.is_some_and(Value::is_string) && !has_thinking && !has_calls;
    Ok((blocks, plain))
}

/// The `thinking_blocks` extension, unchanged. Blocks without their opaque
/// signature or data (e.g. from another provider) cannot be sent back and
/// are dropped.
fn thinking_blocks(blocks: Option<&Value>) -> Vec<Block> {
    let string = |block: &Value, key: &str| {
        block
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    blocks
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|block| match block.get("type").and_then(Value::as_str) {
            Some("thinking") => Some(Block::Thinking {
                thinking: block
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                signature: string(block, "signature")?,
            }),
            Some("redacted_thinking") => Some(Block::RedactedThinking {
                data: string(block, "data")?,
            }),
            _ => None,
        })
        .collect()
}

/// An assistant tool call as a `tool_use` block.
fn tool_use(call: &Value, at: &str) -> Result<Block, PluginError> {
    let kind = call
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    if kind != "function" {
        return Err(PluginError::unsupported(format!(
            "`{kind}` tool calls are not supported by the anthropic adapter"
        ))
        .with_param(format!("{at}.type")));
    }
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{at}.id"), "must be a string"))?;
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{at}.function.name"), "must be a string"))?;
    let input = tool_input(
        function.and_then(|f| f.get("arguments")),
        &format!("{at}.function.arguments"),
    )?;
    Ok(Block::ToolUse {
        id: id.to_owned(),
        name: name.to_owned(),
        input,
    })
}

/// Tool-call `arguments` (JSON text) as the raw JSON object, keeping its text.
/// Empty arguments are `{}`.
fn tool_input(arguments: Option<&Value>, path: &str) -> Result<Box<RawValue>, PluginError> {
    let not_an_object = || invalid(path, "must be a JSON object");
    let raw = match arguments {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => {
            let raw: Box<RawValue> = serde_json::from_str(text)
                .map_err(|err| invalid(path, &format!("is not valid JSON ({err})")))?;
            if !raw.get().trim_start().starts_with('{') {
                return Err(not_an_object());
            }
            Some(raw)
        }
        Some(object @ Value::Object(_)) => {
            Some(RawValue::from_string(object.to_string()).map_err(|_| not_an_object())?)
        }
        Some(_) => return Err(not_an_object()),
    };
    match raw {
        Some(raw) => Ok(raw),
        None => RawValue::from_string("{}".to_owned()).map_err(|_| not_an_object()),
    }
}

/// A `tool` message as a `tool_result` block.
fn tool_result(message: &Value, content: Option<&Value>, at: &str) -> Result<Block, PluginError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{at}.tool_call_id"), "must be a string"))?;
    let content = match content {
        None => Content::Text(String::new()),
        Some(Value::String(text)) => Content::Text(text.clone()),
        Some(other) => {
            let mut blocks = user_blocks(other, at)?;
            match blocks.as_mut_slice() {
                [
                    Block::Text {
                        text,
                        cache_control: None,
                    },
                ] => Content::Text(std::mem::take(text)),
                _ => Content::Blocks(blocks),
            }
        }
    };
    Ok(Block::ToolResult {
        tool_use_id: id.to_owned(),
        content,
        cache_control: cache_control(message),
    })
}

// ------------------------------------------------------------------ tools

/// The tool choice before JSON mode and `parallel_tool_calls` are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    Auto,
    None,
    Any,
    Tool(String),
}

impl Choice {
    fn parse(value: Option<&Value>) -> Result<Option<Self>, PluginError> {
        let bad = || {
            invalid(
                "tool_choice",
                "must be `auto`, `none`, `required` or {\"type\":\"function\",\"function\":{\"name\":…}}",
            )
        };
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        Ok(Some(match value {
            Value::String(mode) => match mode.as_str() {
                "auto" => Self::Auto,
                "none" => Self::None,
                "required" => Self::Any,
                _ => return Err(bad()),
            },
            Value::Object(object) => match object.get("type").and_then(Value::as_str) {
                Some("function") => Self::Tool(
                    object
                        .get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .ok_or_else(bad)?
                        .to_owned(),
                ),
                Some(other) => {
                    return Err(PluginError::unsupported(format!(
                        "`tool_choice` of type `{other}` is not supported by the anthropic adapter"
                    ))
                    .with_param("tool_choice"));
                }
                None => return Err(bad()),
            },
            _ => return Err(bad()),
        }))
    }

    fn to_value(&self, disable_parallel: bool) -> Value {
        let mut choice = match self {
            Self::Auto => json!({"type": "auto"}),
            Self::None => return json!({"type": "none"}),
            Self::Any => json!({"type": "any"}),
            Self::Tool(name) => json!({"type": "tool", "name": name}),
        };
        if disable_parallel {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
        choice
    }
}

/// `tools` and `tool_choice`, with JSON mode emulated by a forced tool.
fn tools_and_choice(
    request: &ChatRequest,
    thinking_on: bool,
) -> Result<(Option<Vec<Tool>>, Option<Value>), PluginError> {
    let mut tools = convert_tools(request.tools.as_deref().unwrap_or_default())?;
    let mut choice = Choice::parse(request.tool_choice.as_ref())?;
    if let Some(json_tool) = json_tool(request.response_format.as_ref())? {
        if thinking_on {
            return Err(PluginError::unsupported(
                "`response_format` together with thinking is not supported by the anthropic adapter (Anthropic cannot force a tool while thinking)",
            )
            .with_param("response_format"));
        }
        choice = Some(match choice {
            Some(Choice::Tool(name)) => Choice::Tool(name),
            Some(Choice::Auto | Choice::Any) | None if !tools.is_empty() => Choice::Any,
            _ => Choice::Tool(JSON_TOOL_NAME.to_owned()),
        });
        tools.push(json_tool);
    }
    if tools.is_empty() {
        return Ok((None, None));
    }
    let disable_parallel = request.parallel_tool_calls == Some(false);
    let choice = match choice {
        Some(choice) => Some(choice.to_value(disable_parallel)),
        None if disable_parallel => Some(Choice::Auto.to_value(true)),
        None => None,
    };
    Ok((Some(tools), choice))
}

fn convert_tools(tools: &[ChatTool]) -> Result<Vec<Tool>, PluginError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let at = format!("tools[{i}]");
            let kind = tool.kind.as_deref().unwrap_or("function");
            if kind != "function" {
                return Err(PluginError::unsupported(format!(
                    "`{kind}` tools are not supported by the anthropic adapter"
                ))
                .with_param(format!("{at}.type")));
            }
            let function = tool
                .function
                .as_ref()
                .ok_or_else(|| missing(&format!("{at}.function")))?;
            if function.name == JSON_TOOL_NAME {
                return Err(PluginError::unsupported(format!(
                    "a tool named `{JSON_TOOL_NAME}` (the anthropic adapter reserves the name for `response_format`)"
                ))
                .with_param(format!("{at}.function.name")));
            }
            Ok(Tool {
                name: function.name.clone(),
                description: function.description.clone(),
                input_schema: match &function.parameters {
                    Some(schema) => schema.clone(),
                    None => raw(r#"{"type":"object","properties":{}}"#)?,
                },
                cache_control: tool.cache_control.clone().filter(|c| !c.is_null()),
            })
        })
        .collect()
}

/// The tool emulating `response_format`, if it asks for JSON.
fn json_tool(format: Option<&ResponseFormat>) -> Result<Option<Tool>, PluginError> {
    let Some(format) = format else {
        return Ok(None);
    };
    let (schema, name, description) = match format.kind.as_str() {
        "text" => return Ok(None),
        "json_object" => (None, None, None),
        "json_schema" => {
            let spec = format
                .json_schema
                .as_ref()
                .ok_or_else(|| missing("response_format.json_schema"))?;
            (
                spec.schema.clone(),
                spec.name.as_deref(),
                spec.description.as_deref(),
            )
        }
        other => {
            return Err(PluginError::unsupported(format!(
                "`response_format` of type `{other}` is not supported by the anthropic adapter"
            ))
            .with_param("response_format"));
        }
    };
    let description = match (description, name) {
        (Some(description), _) => description.to_owned(),
        (None, Some(name)) => format!(
            "Give your final answer by calling this tool: its input is the `{name}` JSON object."
        ),
        (None, None) => {
            "Give your final answer by calling this tool: its input is the answer as a JSON object."
                .to_owned()
        }
    };
    Ok(Some(Tool {
        name: JSON_TOOL_NAME.to_owned(),
        description: Some(description),
        input_schema: match schema {
            Some(schema) => schema,
            None => raw(r#"{"type":"object"}"#)?,
        },
        cache_control: None,
    }))
}

fn raw(json: &str) -> Result<Box<RawValue>, PluginError> {
    RawValue::from_string(json.to_owned())
        .map_err(|err| PluginError::server(format!("internal JSON constant is invalid: {err}")))
}

// ---------------------------------------------------------------- sampling

/// `thinking` as given, else derived from `reasoning_effort`.
fn thinking(request: &ChatRequest) -> Result<Option<Value>, PluginError> {
    if let Some(thinking) = request.thinking.as_ref().filter(|t| !t.is_null()) {
        if !thinking.get("type").is_some_and(Value::is_string) {
            return Err(invalid(
                "thinking",
                "must be an object with a `type` (e.g. {\"type\":\"enabled\",\"budget_tokens\":2048})",
            ));
        }
        return Ok(Some(thinking.clone()));
    }
    let Some(effort) = request.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    let budget: u32 = match effort {
        "none" | "minimal" => return Ok(Some(json!({"type": "disabled"}))),
        "low" => 1024,
        "medium" => 4096,
        "high" => 16384,
        "xhigh" => 32768,
        other => {
            return Err(invalid(
                "reasoning_effort",
                &format!("`{other}` is not one of minimal, low, medium, high"),
            ));
        }
    };
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Vec<String>>, PluginError> {
    let bad = || invalid("stop", "must be a string or an array of strings");
    let sequences = match stop {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad()),
    };
    Ok((!sequences.is_empty()).then_some(sequences))
}

/// `metadata.user_id`, else `user`.
fn user_id(request: &ChatRequest) -> Option<String> {
    request
        .metadata
        .as_ref()
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .or(request.user.as_deref())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}
