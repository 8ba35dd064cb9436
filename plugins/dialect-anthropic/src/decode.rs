//! Client requests: `POST /v1/messages` and `POST /v1/messages/count_tokens`
//! bodies → the canonical request (OpenAI Chat Completions + extensions, see
//! `docs/canonical.md`). The crate documentation has the mapping table.
//!
//! The canonical request borrows its strings from the parsed body, so large
//! payloads (base64 images) are copied only once, into the output.

use std::borrow::Cow;
use std::fmt::{self, Display};

use orch_plugin_sdk::{DecodedRequest, IngressRequest, Operation, PluginError};
use serde::Serialize;

use crate::raw::{Field, Json, Kind, Object, invalid, parse_body};

/// Anthropic request parameters for server-side features the canonical form
/// cannot carry; a request using one is refused instead of silently changed.
const UNSUPPORTED_PARAMS: &[(&str, &str)] = &[
    ("container", "code-execution containers"),
    ("mcp_servers", "the MCP connector"),
    ("context_management", "server-side context management"),
];

/// Decodes a Messages or count-tokens request.
pub(crate) fn decode_request(request: &IngressRequest) -> Result<DecodedRequest, PluginError> {
    let counting = match request.operation {
        Operation::Chat => false,
        Operation::CountTokens => true,
        Operation::Embeddings => {
            return Err(
                PluginError::unsupported("the Anthropic API has no embeddings endpoint")
                    .with_retryable(false),
            );
        }
    };
    let tree = parse_body(&request.body)?;
    let body = Field::root(&tree).object()?;
    let canonical = CanonicalRequest::decode(&body, counting)?;
    let json = serde_json::to_string(&canonical).map_err(|err| {
        PluginError::server(format!("cannot serialise the canonical request: {err}"))
    })?;
    Ok(DecodedRequest {
        model: canonical.model.to_owned(),
        streaming: canonical.stream.unwrap_or(false),
        body: json,
    })
}

// ------------------------------------------------------------ canonical shape

/// The canonical request. Fields serialise in this order; absent ones are
/// left out.
#[derive(Debug, Serialize)]
struct CanonicalRequest<'t> {
    model: &'t str,
    messages: Vec<Message<'t>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'t Json<'t>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'t Json<'t>>,
    /// Extension (the name vLLM, OpenRouter and others use).
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<Vec<&'t str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'t>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'t>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'t>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    /// Extension: Anthropic's `thinking` object, verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'t Json<'t>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'t str>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// A canonical message of any role.
#[derive(Debug, Default, Serialize)]
struct Message<'t> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Content<'t>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCall<'t>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'t str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_blocks: Option<Vec<ThinkingBlock<'t>>>,
}

impl<'t> Message<'t> {
    fn with_content(role: &'static str, content: Content<'t>) -> Self {
        Self {
            role,
            content: Some(content),
            ..Self::default()
        }
    }
}

/// Message content: a string, or parts when the client sent blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Content<'t> {
    Text(Cow<'t, str>),
    Parts(Vec<Part<'t>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'t> {
    Text { text: Cow<'t, str> },
    ImageUrl { image_url: ImageUrl<'t> },
}

#[derive(Debug, Serialize)]
struct ImageUrl<'t> {
    url: Url<'t>,
}

/// An image URL; a `data:` URL is written straight into the output without
/// building the (possibly multi-megabyte) string first.
#[derive(Debug)]
enum Url<'t> {
    Plain(&'t str),
    Data { media_type: &'t str, data: &'t str },
}

impl Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(url) => f.write_str(url),
            Self::Data { media_type, data } => write!(f, "data:{media_type};base64,{data}"),
        }
    }
}

impl Serialize for Url<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Serialize)]
struct ToolCall<'t> {
    id: &'t str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'t>,
    /// The canonical extension (e.g. a Gemini `thought_signature`), carried
    /// back from the `tool_use` block the gateway put it on.
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_content: Option<&'t Json<'t>>,
}

#[derive(Debug, Serialize)]
struct FunctionCall<'t> {
    name: &'t str,
    arguments: String,
}

/// A signed reasoning block, carried back unchanged.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ThinkingBlock<'t> {
    Thinking {
        thinking: &'t str,
        signature: &'t str,
    },
    RedactedThinking {
        data: &'t str,
    },
}

#[derive(Debug, Serialize)]
struct Tool<'t> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDefinition<'t>,
}

#[derive(Debug, Serialize)]
struct FunctionDefinition<'t> {
    name: &'t str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'t str>,
    parameters: &'t Json<'t>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ToolChoice<'t> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Named<'t>,
    },
}

#[derive(Debug, Serialize)]
struct Named<'t> {
    name: &'t str,
}

#[derive(Debug, Serialize)]
struct ResponseFormat<'t> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'t>,
}

#[derive(Debug, Serialize)]
struct JsonSchema<'t> {
    name: &'static str,
    schema: &'t Json<'t>,
    strict: bool,
}

// ------------------------------------------------------------------- decoding

impl<'t> CanonicalRequest<'t> {
    fn decode(body: &Object<'t>, counting: bool) -> Result<Self, PluginError> {
        let model_field = body.required("model")?;
        let model = model_field.str()?;
        if model.is_empty() {
            return Err(model_field.invalid("String should have at least 1 character"));
        }
        let messages_field = body.required("messages")?;
        let list = messages_field.array()?;
        if list.is_empty() {
            return Err(messages_field.invalid("at least one message is required"));
        }
        let max_completion_tokens = match body.get("max_tokens") {
            Some(field) => Some(field.u64()?),
            None if counting => None,
            None => return Err(invalid("max_tokens", "Field required")),
        };
        for (key, feature) in UNSUPPORTED_PARAMS {
            if let Some(field) = body.get(key) {
                return Err(
                    field.unsupported(format!("{feature} is not supported by this gateway"))
                );
            }
        }

        let mut messages = Vec::with_capacity(list.len() + 1);
        if let Some(system) = body.get("system") {
            messages.extend(system_message(&system)?);
        }
        let last = list.len() - 1;
        for (index, message) in list.iter().enumerate() {
            decode_message(message, index == last, &mut messages)?;
        }

        let mut request = Self {
            model,
            messages,
            max_completion_tokens,
            temperature: body.get("temperature").map(|f| f.number()).transpose()?,
            top_p: body.get("top_p").map(|f| f.number()).transpose()?,
            top_k: body.get("top_k").map(|f| f.u64()).transpose()?,
            stop: None,
            stream: None,
            stream_options: None,
            tools: None,
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            reasoning_effort: None,
            thinking: body.get("thinking").map(|f| thinking(&f)).transpose()?,
            user: None,
        };
        if let Some(field) = body.get("stop_sequences") {
            let stop = field
                .array()?
                .iter()
                .map(Field::str)
                .collect::<Result<Vec<_>, _>>()?;
            request.stop = (!stop.is_empty()).then_some(stop);
        }
        if !counting && body.opt_bool("stream")? == Some(true) {
            // Anthropic streams always report usage.
            request.stream = Some(true);
            request.stream_options = Some(StreamOptions {
                include_usage: true,
            });
        }
        if let Some(field) = body.get("tools") {
            let tools = field
                .array()?
                .iter()
                .map(tool)
                .collect::<Result<Vec<_>, _>>()?;
            request.tools = (!tools.is_empty()).then_some(tools);
        }
        if let Some(field) = body.get("tool_choice") {
            let (choice, parallel) = tool_choice(&field)?;
            request.tool_choice = Some(choice);
            request.parallel_tool_calls = parallel;
        }
        if let Some(field) = body.get("metadata") {
            request.user = field.object()?.opt_str("user_id")?;
        }
        if let Some(field) = body.get("output_config") {
            let config = field.object()?;
            if let Some(effort) = config.get("effort") {
                request.reasoning_effort = Some(reasoning_effort(&effort)?);
            }
            if let Some(format) = config.get("format") {
                request.response_format = Some(response_format(&format)?);
            }
        }
        if request.response_format.is_none() {
            // The structured-outputs beta's spelling of `output_config.format`.
            if let Some(format) = body.get("output_format") {
                request.response_format = Some(response_format(&format)?);
            }
        }
        Ok(request)
    }
}

/// `system`: a string or a list of text blocks. Empty prompts are left out.
fn system_message<'t>(field: &Field<'t>) -> Result<Option<Message<'t>>, PluginError> {
    let content = match field.kind() {
        Kind::String => {
            let text = field.str()?;
            if text.is_empty() {
                return Ok(None);
            }
            Content::Text(Cow::Borrowed(text))
        }
        Kind::Array => {
            let mut parts = Vec::new();
            for block in field.array()? {
                let block = block.object()?;
                let kind = block.required("type")?;
                if kind.str()? != "text" {
                    return Err(kind.invalid("system prompt blocks must be of type 'text'"));
                }
                parts.push(text_part(&block)?);
            }
            if parts.is_empty() {
                return Ok(None);
            }
            Content::Parts(parts)
        }
        _ => {
            return Err(field.invalid("Input should be a valid string or a list of text blocks"));
        }
    };
    Ok(Some(Message::with_content("system", content)))
}

/// One Anthropic message → one or more canonical messages.
fn decode_message<'t>(
    field: &Field<'t>,
    last: bool,
    out: &mut Vec<Message<'t>>,
) -> Result<(), PluginError> {
    let message = field.object()?;
    let role = message.required("role")?;
    let content = message.required("content")?;
    match role.str()? {
        "user" => user_message(&content, out),
        "assistant" => assistant_message(&content, last, out),
        "system" => Err(role.invalid(
            "Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.",
        )),
        _ => Err(role.invalid("Input should be 'user' or 'assistant'")),
    }
}

/// A content block: the block, its `type` field and the type.
type Block<'t> = (Object<'t>, Field<'t>, &'t str);

/// The blocks of a `content` list, with each block's type.
fn blocks<'t>(content: &Field<'t>) -> Result<Vec<Block<'t>>, PluginError> {
    content
        .array()?
        .iter()
        .map(|block| {
            let block = block.object()?;
            let kind_field = block.required("type")?;
            let kind = kind_field.str()?;
            Ok((block, kind_field, kind))
        })
        .collect()
}

const NOT_EMPTY: &str =
    "all messages must have non-empty content except for the optional final assistant message";

/// A user message: `tool_result` blocks become `tool` messages, placed before
/// a user message with the remaining text and images.
fn user_message<'t>(content: &Field<'t>, out: &mut Vec<Message<'t>>) -> Result<(), PluginError> {
    match content.kind() {
        Kind::String => {
            let text = Content::Text(Cow::Borrowed(content.str()?));
            out.push(Message::with_content("user", text));
            Ok(())
        }
        Kind::Array => {
            let blocks = blocks(content)?;
            if blocks.is_empty() {
                return Err(content.invalid(NOT_EMPTY));
            }
            let mut parts = Vec::new();
            for (block, kind_field, kind) in &blocks {
                match *kind {
                    "text" => parts.push(text_part(block)?),
                    "image" => parts.push(image_part(block)?),
                    "tool_result" => out.push(tool_result(block)?),
                    "tool_use" | "thinking" | "redacted_thinking" => {
                        return Err(kind_field.invalid(format!(
                            "'{kind}' blocks are only allowed in 'assistant' messages"
                        )));
                    }
                    _ => return Err(unsupported_block(kind_field, kind)),
                }
            }
            if !parts.is_empty() {
                out.push(Message::with_content("user", Content::Parts(parts)));
            }
            Ok(())
        }
        _ => Err(content.invalid("Input should be a valid string or a list of content blocks")),
    }
}

/// An assistant message: text, tool calls and reasoning.
fn assistant_message<'t>(
    content: &Field<'t>,
    last: bool,
    out: &mut Vec<Message<'t>>,
) -> Result<(), PluginError> {
    match content.kind() {
        Kind::String => {
            let text = Content::Text(Cow::Borrowed(content.str()?));
            out.push(Message::with_content("assistant", text));
            return Ok(());
        }
        Kind::Array => {}
        _ => {
            return Err(
                content.invalid("Input should be a valid string or a list of content blocks")
            );
        }
    }
    let blocks = blocks(content)?;
    if blocks.is_empty() {
        // An empty final assistant message prefills nothing.
        return if last {
            Ok(())
        } else {
            Err(content.invalid(NOT_EMPTY))
        };
    }
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    let mut reasoning = String::new();
    for (block, kind_field, kind) in &blocks {
        match *kind {
            "text" => parts.push(text_part(block)?),
            "tool_use" => tool_calls.push(tool_call(block)?),
            "thinking" => {
                let thinking = block.str("thinking")?;
                let signature = block.opt_str("signature")?.unwrap_or_default();
                reasoning.push_str(thinking);
                // An unsigned block cannot be verified by any provider.
                if !signature.is_empty() {
                    thinking_blocks.push(ThinkingBlock::Thinking {
                        thinking,
                        signature,
                    });
                }
            }
            "redacted_thinking" => thinking_blocks.push(ThinkingBlock::RedactedThinking {
                data: block.str("data")?,
            }),
            "image" | "tool_result" => {
                return Err(kind_field.invalid(format!(
                    "'{kind}' blocks are only allowed in 'user' messages"
                )));
            }
            _ => return Err(unsupported_block(kind_field, kind)),
        }
    }
    let content = if !parts.is_empty() {
        Some(Content::Parts(parts))
    } else if tool_calls.is_empty() {
        Some(Content::Text(Cow::Borrowed("")))
    } else {
        None
    };
    out.push(Message {
        role: "assistant",
        content,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        ..Message::default()
    });
    Ok(())
}

fn unsupported_block(kind_field: &Field<'_>, kind: &str) -> PluginError {
    kind_field.unsupported(format!(
        "content blocks of type '{kind}' are not supported by this gateway"
    ))
}

fn text_part<'t>(block: &Object<'t>) -> Result<Part<'t>, PluginError> {
    Ok(Part::Text {
        text: Cow::Borrowed(block.str("text")?),
    })
}

/// An image block → an `image_url` part (a `data:` URL for base64 sources).
fn image_part<'t>(block: &Object<'t>) -> Result<Part<'t>, PluginError> {
    let source = block.required("source")?.object()?;
    let kind = source.required("type")?;
    let url = match kind.str()? {
        "base64" => Url::Data {
            media_type: source.str("media_type")?,
            data: source.str("data")?,
        },
        "url" => Url::Plain(source.str("url")?),
        "file" => {
            return Err(
                kind.unsupported("image sources of type 'file' (Files API) are not supported")
            );
        }
        _ => return Err(kind.invalid("Input should be 'base64', 'url' or 'file'")),
    };
    Ok(Part::ImageUrl {
        image_url: ImageUrl { url },
    })
}

/// A `tool_use` block → a canonical tool call; the id is kept verbatim and
/// `input` becomes compact JSON text with its key order intact. An
/// `extra_content` object (which this dialect's responses put on `tool_use`
/// blocks, see `encode`) becomes the call's `extra_content`, unchanged.
fn tool_call<'t>(block: &Object<'t>) -> Result<ToolCall<'t>, PluginError> {
    let arguments = match block.get("input") {
        Some(input) if input.kind() == Kind::Object => serde_json::to_string(input.value)
            .map_err(|_| input.invalid("Input should be a valid dictionary"))?,
        Some(input) => return Err(input.invalid("Input should be a valid dictionary")),
        None => "{}".to_owned(),
    };
    Ok(ToolCall {
        id: block.str("id")?,
        kind: "function",
        function: FunctionCall {
            name: block.str("name")?,
            arguments,
        },
        extra_content: block
            .get("extra_content")
            .filter(|extra| extra.kind() == Kind::Object)
            .map(|extra| extra.value),
    })
}

/// A `tool_result` block → a `tool` message. Text-only results become a
/// string (blocks joined with `\n`); results with images keep their parts.
/// `is_error: true` prefixes the text with `Error: `, since the canonical form
/// has no error flag.
fn tool_result<'t>(block: &Object<'t>) -> Result<Message<'t>, PluginError> {
    let tool_call_id = block.str("tool_use_id")?;
    let is_error = block.opt_bool("is_error")?.unwrap_or(false);
    let content = match block.get("content") {
        None => Content::Text(Cow::Borrowed("")),
        Some(field) if field.kind() == Kind::String => Content::Text(Cow::Borrowed(field.str()?)),
        Some(field) if field.kind() == Kind::Array => {
            let mut parts = Vec::new();
            for (block, kind_field, kind) in &blocks(&field)? {
                match *kind {
                    "text" => parts.push(text_part(block)?),
                    "image" => parts.push(image_part(block)?),
                    _ => return Err(unsupported_block(kind_field, kind)),
                }
            }
            text_only(parts)
        }
        Some(field) => {
            return Err(field.invalid("Input should be a valid string or a list of content blocks"));
        }
    };
    let content = if is_error {
        mark_error(content)
    } else {
        content
    };
    Ok(Message {
        role: "tool",
        content: Some(content),
        tool_call_id: Some(tool_call_id),
        ..Message::default()
    })
}

/// Parts that are all text → one string joined with `\n`; else the parts.
fn text_only(parts: Vec<Part<'_>>) -> Content<'_> {
    if !parts.iter().all(|part| matches!(part, Part::Text { .. })) {
        return Content::Parts(parts);
    }
    let mut texts = parts.into_iter().filter_map(|part| match part {
        Part::Text { text } => Some(text),
        Part::ImageUrl { .. } => None,
    });
    let first = texts.next().unwrap_or_default();
    Content::Text(texts.fold(first, |mut joined, text| {
        let joined_mut = joined.to_mut();
        joined_mut.push('\n');
        joined_mut.push_str(&text);
        joined
    }))
}

/// Prefixes a failed tool's result with `Error: ` (`Error` when empty).
fn mark_error(content: Content<'_>) -> Content<'_> {
    let prefix = |text: &str| -> Cow<'static, str> {
        if text.is_empty() {
            Cow::Borrowed("Error")
        } else {
            Cow::Owned(format!("Error: {text}"))
        }
    };
    match content {
        Content::Text(text) => Content::Text(prefix(&text)),
        Content::Parts(mut parts) => {
            match parts.first_mut() {
                Some(Part::Text { text }) => *text = prefix(text),
                _ => parts.insert(
                    0,
                    Part::Text {
                        text: Cow::Borrowed("Error"),
                    },
                ),
            }
            Content::Parts(parts)
        }
    }
}

/// A client tool → a function tool. Anthropic-defined tools (`bash_…`,
/// `web_search_…`, …) have no canonical equivalent.
fn tool<'t>(field: &Field<'t>) -> Result<Tool<'t>, PluginError> {
    let tool = field.object()?;
    if let Some(kind) = tool.get("type") {
        let name = kind.str()?;
        if name != "custom" {
            return Err(kind.unsupported(format!(
                "tools of type '{name}' (Anthropic-defined tools) are not supported by this gateway"
            )));
        }
    }
    let schema = tool.required("input_schema")?;
    if schema.kind() != Kind::Object {
        return Err(schema.invalid("Input should be a valid dictionary"));
    }
    Ok(Tool {
        kind: "function",
        function: FunctionDefinition {
            name: tool.str("name")?,
            description: tool.opt_str("description")?,
            parameters: schema.value,
            strict: tool.opt_bool("strict")?,
        },
    })
}

/// `tool_choice` → `tool_choice` and, for `disable_parallel_tool_use: true`,
/// `parallel_tool_calls: false`.
fn tool_choice<'t>(field: &Field<'t>) -> Result<(ToolChoice<'t>, Option<bool>), PluginError> {
    let choice = field.object()?;
    let kind = choice.required("type")?;
    let mapped = match kind.str()? {
        "auto" => ToolChoice::Mode("auto"),
        "any" => ToolChoice::Mode("required"),
        "none" => ToolChoice::Mode("none"),
        "tool" => ToolChoice::Function {
            kind: "function",
            function: Named {
                name: choice.str("name")?,
            },
        },
        _ => return Err(kind.invalid("Input should be 'auto', 'any', 'tool' or 'none'")),
    };
    let parallel = match choice.opt_bool("disable_parallel_tool_use")? {
        Some(true) => Some(false),
        _ => None,
    };
    Ok((mapped, parallel))
}

/// `thinking`, checked and passed on verbatim (`enabled` needs an integer
/// `budget_tokens`; `disabled` and `adaptive` pass as they are).
fn thinking<'t>(field: &Field<'t>) -> Result<&'t Json<'t>, PluginError> {
    let config = field.object()?;
    if config.str("type")? == "enabled" {
        config.required("budget_tokens")?.u64()?;
    }
    Ok(field.value)
}

/// `output_config.effort` → `reasoning_effort`; `xhigh` and `max`, which the
/// canonical form lacks, become `high`.
fn reasoning_effort(field: &Field<'_>) -> Result<&'static str, PluginError> {
    Ok(match field.str()? {
        "low" => "low",
        "medium" => "medium",
        "high" | "xhigh" | "max" => "high",
        _ => {
            return Err(field.invalid("Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"));
        }
    })
}

/// `{"type": "json_schema", "schema": …}` → a strict `json_schema` response
/// format named `response` (Anthropic's structured outputs are always strict).
fn response_format<'t>(field: &Field<'t>) -> Result<ResponseFormat<'t>, PluginError> {
    let format = field.object()?;
    let kind = format.required("type")?;
    if kind.str()? != "json_schema" {
        return Err(kind.invalid("Input should be 'json_schema'"));
    }
    let schema = format.required("schema")?;
    if schema.kind() != Kind::Object {
        return Err(schema.invalid("Input should be a valid dictionary"));
    }
    Ok(ResponseFormat {
        kind: "json_schema",
        json_schema: JsonSchema {
            name: "response",
            schema: schema.value,
            strict: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use orch_plugin_sdk::ErrorClass;
    use serde_json::{Value, json};

    use super::*;

    fn request(operation: Operation, body: &Value) -> IngressRequest {
        IngressRequest {
            operation,
            path_model: None,
            endpoint_streams: None,
            headers: vec![("anthropic-version".to_owned(), "2023-06-01".to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    fn decode(body: Value) -> Result<(DecodedRequest, Value), PluginError> {
        let decoded = decode_request(&request(Operation::Chat, &body))?;
        let canonical = serde_json::from_str(&decoded.body).expect("canonical JSON");
        Ok((decoded, canonical))
    }

    fn canonical(body: Value) -> Value {
        decode(body).expect("decodes").1
    }

    fn error(body: Value) -> PluginError {
        decode(body).expect_err("refused")
    }

    fn chat(extra: Value) -> Value {
        let mut body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hi"}],
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        body
    }

    #[test]
    fn minimal_request() {
        let (decoded, body) = decode(chat(json!({}))).expect("decodes");
        assert_eq!(decoded.model, "claude-sonnet-4-5");
        assert!(!decoded.streaming);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_completion_tokens": 64,
            })
        );
    }

    #[test]
    fn canonical_fields_come_out_in_a_stable_order() {
        let decoded = decode_request(&request(
            Operation::Chat,
            &chat(json!({"stream": true, "temperature": 0.5})),
        ))
        .expect("decodes");
        assert!(decoded.streaming);
        assert_eq!(
            decoded.body,
            r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":64,"temperature":0.5,"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn schemas_and_tool_inputs_keep_their_key_order() {
        let text = r#"{"model":"m","max_tokens":5,
            "tools":[{"name":"f","input_schema":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"number"}}}}],
            "messages":[{"role":"user","content":"x"},
              {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{"zeta": "a b",  "alpha": 1.50}}]}]}"#;
        let decoded = decode_request(&IngressRequest {
            body: text.as_bytes().to_vec(),
            ..request(Operation::Chat, &json!({}))
        })
        .expect("decodes");
        assert!(
            decoded
                .body
                .contains(r#""properties":{"zeta":{"type":"string"},"alpha":{"type":"number"}}"#),
            "{}",
            decoded.body
        );
        assert!(
            decoded
                .body
                .contains(r#""arguments":"{\"zeta\":\"a b\",\"alpha\":1.5}""#),
            "{}",
            decoded.body
        );
    }

    #[test]
    fn tool_choice_variants() {
        let cases = [
            (json!({"type": "auto"}), json!("auto"), None),
            (json!({"type": "any"}), json!("required"), None),
            (json!({"type": "none"}), json!("none"), None),
            (
                json!({"type": "auto", "disable_parallel_tool_use": true}),
                json!("auto"),
                Some(false),
            ),
            (
                json!({"type": "any", "disable_parallel_tool_use": false}),
                json!("required"),
                None,
            ),
            (
                json!({"type": "tool", "name": "get_weather"}),
                json!({"type": "function", "function": {"name": "get_weather"}}),
                None,
            ),
        ];
        for (choice, expected, parallel) in cases {
            let body = canonical(chat(json!({"tool_choice": choice})));
            assert_eq!(body["tool_choice"], expected, "{choice}");
            assert_eq!(
                body.get("parallel_tool_calls").and_then(Value::as_bool),
                parallel,
                "{choice}"
            );
        }
        let err = error(chat(json!({"tool_choice": {"type": "sometimes"}})));
        assert_eq!(err.param.as_deref(), Some("tool_choice.type"));
        let err = error(chat(json!({"tool_choice": {"type": "tool"}})));
        assert_eq!(err.param.as_deref(), Some("tool_choice.name"));
    }

    #[test]
    fn validation_errors_name_the_parameter() {
        let cases = [
            (json!({"max_tokens": 1, "messages": []}), "model"),
            (
                json!({"model": 3, "max_tokens": 1, "messages": []}),
                "model",
            ),
            (
                json!({"model": "", "max_tokens": 1, "messages": []}),
                "model",
            ),
            (json!({"model": "m", "max_tokens": 1}), "messages"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": []}),
                "messages",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": "hi"}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
                "messages.0.role",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "bot", "content": "x"}]}),
                "messages.0.role",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user"}]}),
                "messages.0.content",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": []}]}),
                "messages.0.content",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 7}]}),
                "messages.0.content",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"text": "x"}]}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "AA=="}}]}]}),
                "messages.0.content.0.source.media_type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]}),
                "messages.0.content.0.tool_use_id",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}]}),
                "messages.0.content.0.input",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "system": 5, "messages": [{"role": "user", "content": "x"}]}),
                "system",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}),
                "system.0.type",
            ),
        ];
        for (body, param) in cases {
            let err = error(body.clone());
            assert_eq!(err.class, ErrorClass::BadRequest, "{body}: {err}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {err}");
            assert!(err.message.starts_with(param), "{}", err.message);
            assert!(!err.retryable);
        }
    }

    #[test]
    fn sampling_parameters_are_type_checked() {
        for (key, value) in [
            ("temperature", json!("hot")),
            ("top_p", json!(true)),
            ("top_k", json!(1.5)),
            ("stop_sequences", json!("END")),
            ("stop_sequences", json!([1])),
            ("stream", json!("yes")),
            ("metadata", json!("u")),
            ("thinking", json!({"type": "enabled"})),
            ("thinking", json!({"budget_tokens": 2000})),
            ("output_config", json!({"effort": "extreme"})),
            ("output_config", json!({"format": {"type": "json_object"}})),
            ("tools", json!([{"name": "f"}])),
            ("tools", json!([{"name": "f", "input_schema": "object"}])),
        ] {
            let err = error(chat(json!({ key: value })));
            assert_eq!(err.class, ErrorClass::BadRequest, "{key}: {value}");
            assert!(
                err.param.as_deref().is_some_and(|p| p.starts_with(key)),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        let body = canonical(chat(json!({
            "system": null, "temperature": null, "stop_sequences": null, "tools": null,
            "metadata": {"user_id": null}, "stream": null, "thinking": null,
        })));
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_completion_tokens": 64,
            })
        );
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let cases = [
            (
                chat(json!({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]})),
                "mcp_servers",
                "MCP",
            ),
            (chat(json!({"container": "c_1"})), "container", "container"),
            (
                chat(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})),
                "tools.0.type",
                "web_search_20250305",
            ),
            (
                chat(json!({"messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]})),
                "messages.0.content.0.source.type",
                "file",
            ),
            (
                chat(json!({"messages": [{"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [
                        {"type": "search_result", "source": "s", "title": "t", "content": []}]}]}]})),
                "messages.0.content.0.content.0.type",
                "search_result",
            ),
            (
                chat(json!({"messages": [{"role": "assistant", "content": [
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}]}]})),
                "messages.0.content.0.type",
                "server_tool_use",
            ),
        ];
        for (body, param, needle) in cases {
            let err = error(body);
            assert_eq!(err.class, ErrorClass::Unsupported, "{err}");
            assert_eq!(err.param.as_deref(), Some(param), "{err}");
            assert!(err.message.contains(needle), "{}", err.message);
            assert!(!err.retryable);
        }
    }

    #[test]
    fn tool_results_come_before_user_text_and_flag_errors() {
        let body = canonical(chat(json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
                {"type": "tool_use", "id": "call_b", "name": "g"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "here you go"},
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": [
                    {"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]},
                {"type": "tool_result", "tool_use_id": "call_b", "is_error": true},
                {"type": "tool_result", "tool_use_id": "toolu_c", "is_error": true, "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]}]},
        ]})));
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 6);
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "tool_calls": [
                {"id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]})
        );
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "toolu_a", "content": "line 1\nline 2"})
        );
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "call_b", "content": "Error"})
        );
        assert_eq!(
            messages[4],
            json!({"role": "tool", "tool_call_id": "toolu_c", "content": [
                {"type": "text", "text": "Error"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]})
        );
        assert_eq!(
            messages[5],
            json!({"role": "user", "content": [{"type": "text", "text": "here you go"}]})
        );
    }

    #[test]
    fn unsigned_thinking_is_kept_as_text_only() {
        let body = canonical(chat(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": ""},
                {"type": "text", "text": "ok"}]},
            {"role": "user", "content": "y"},
        ]})));
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "reasoning_content": "hmm",
                   "content": [{"type": "text", "text": "ok"}]})
        );
    }

    #[test]
    fn empty_final_assistant_message_is_dropped() {
        let body = canonical(chat(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": []},
        ]})));
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
        let err = error(chat(json!({"messages": [
            {"role": "assistant", "content": []},
            {"role": "user", "content": "x"},
        ]})));
        assert_eq!(err.param.as_deref(), Some("messages.0.content"));
    }

    #[test]
    fn structured_outputs_and_effort() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let body = canonical(chat(json!({
            "output_config": {"effort": "max", "format": {"type": "json_schema", "schema": schema}},
        })));
        assert_eq!(body["reasoning_effort"], "high");
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": true}})
        );
        let beta = canonical(chat(
            json!({"output_format": {"type": "json_schema", "schema": schema}}),
        ));
        assert_eq!(beta["response_format"], body["response_format"]);
    }

    #[test]
    fn thinking_configurations_pass_verbatim() {
        for thinking in [
            json!({"type": "enabled", "budget_tokens": 2048}),
            json!({"type": "disabled"}),
            json!({"type": "adaptive", "display": "omitted"}),
        ] {
            let body = canonical(chat(json!({ "thinking": thinking })));
            assert_eq!(body["thinking"], thinking);
        }
    }

    #[test]
    fn ignored_parameters() {
        let body = canonical(chat(json!({
            "service_tier": "auto",
            "inference_geo": "us",
            "cache_control": {"type": "ephemeral"},
            "some_future_field": 1,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        })));
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": [{"type": "text", "text": "Be brief."}]})
        );
        assert!(body.get("service_tier").is_none());
        assert!(body.get("cache_control").is_none());
    }

    #[test]
    fn count_tokens_needs_no_max_tokens_and_never_streams() {
        let body = json!({
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": true,
        });
        let decoded = decode_request(&request(Operation::CountTokens, &body)).expect("decodes");
        assert!(!decoded.streaming);
        let canonical: Value = serde_json::from_str(&decoded.body).expect("json");
        assert_eq!(
            canonical,
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]})
        );
    }

    #[test]
    fn embeddings_and_bad_bodies_are_refused() {
        let err = decode_request(&request(Operation::Embeddings, &chat(json!({}))))
            .expect_err("no embeddings");
        assert_eq!(err.class, ErrorClass::Unsupported);
        for body in [&b"not json"[..], b"[]", b""] {
            let err = decode_request(&IngressRequest {
                body: body.to_vec(),
                ..request(Operation::Chat, &json!({}))
            })
            .expect_err("invalid");
            assert_eq!(err.class, ErrorClass::BadRequest);
            assert_eq!(err.param, None);
        }
    }
}
