//! Parsing and OpenAI-style validation of `POST /v1/chat/completions` bodies.
//!
//! The body is deserialised into borrowed views (no copies of unescaped
//! strings, schemas kept as raw JSON), validated, and reduced to the few facts
//! the reply needs ([`ChatRequest`]).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::encoding::is_base64;
use crate::error::ApiError;
use crate::synth;

const ROLES: &str = "'system', 'developer', 'user', 'assistant' and 'tool'";
const PART_TYPES: &str = "'text', 'image_url', 'input_audio', 'file' and 'refusal'";

/// A validated chat request, reduced to what the reply depends on.
#[derive(Debug)]
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: Cow<'a, str>,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// Characters of all message text / 4, rounded up, at least 1.
    pub(crate) prompt_tokens: u64,
    pub(crate) intent: Intent<'a>,
    /// Image parts in all messages.
    pub(crate) images: usize,
    /// The text after `echo:` in the last user message, if it has one.
    pub(crate) echo: Option<String>,
}

/// What the assistant turn should be.
#[derive(Debug)]
pub(crate) enum Intent<'a> {
    /// Answer in text, quoting the start of the last user text.
    Answer { quote: String },
    /// The last message is a tool result: acknowledge it, quoting its start.
    AcknowledgeToolResult { quote: String },
    /// Call these tools (one, or two in parallel).
    CallTools(Vec<ToolSpec<'a>>),
}

/// A function the assistant decided to call.
#[derive(Debug)]
pub(crate) struct ToolSpec<'a> {
    pub(crate) name: Cow<'a, str>,
    /// The JSON schema of its arguments, if any.
    pub(crate) parameters: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    messages: Option<Vec<RawMessage<'a>>>,
    #[serde(borrow)]
    tools: Option<Vec<RawTool<'a>>>,
    #[serde(borrow)]
    tool_choice: Option<&'a RawValue>,
    parallel_tool_calls: Option<bool>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Content<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<RawToolCall<'a>>>,
    #[serde(borrow)]
    tool_call_id: Option<Cow<'a, str>>,
}

/// Message content: a string or an array of typed parts.
enum Content<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<RawPart<'a>>),
}

#[derive(Deserialize)]
struct RawPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    image_url: Option<RawImageUrl<'a>>,
    input_audio: Option<IgnoredAny>,
    file: Option<IgnoredAny>,
    refusal: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawImageUrl<'a> {
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawToolCall<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<RawFunctionCall<'a>>,
}

#[derive(Deserialize)]
struct RawFunctionCall<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawTool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<RawFunctionDef<'a>>,
}

#[derive(Deserialize)]
struct RawFunctionDef<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    parameters: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawNamedToolChoice<'a> {
    #[serde(borrow)]
    function: Option<RawFunctionCall<'a>>,
}

/// The `tool_choice` parameter, validated.
enum ToolChoice<'a> {
    None,
    Auto,
    Function(Cow<'a, str>),
}

/// Parses and validates a chat completion body.
pub(crate) fn parse(body: &[u8]) -> Result<ChatRequest<'_>, ApiError> {
    let raw: RawRequest<'_> = serde_json::from_slice(body).map_err(|err| json_error(body, &err))?;

    let model = raw.model.filter(|model| !model.is_empty()).ok_or_else(|| {
        ApiError::invalid_request(
            "you must provide a model parameter",
            Some("model".to_owned()),
            None,
        )
    })?;

    let messages = raw.messages.ok_or_else(|| ApiError::missing("messages"))?;
    if messages.is_empty() {
        return Err(ApiError::invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, \
             but got an empty array instead.",
            Some("messages".to_owned()),
            Some("empty_array"),
        ));
    }
    let (prompt_chars, images) = validate_messages(&messages)?;

    let tools = validate_tools(raw.tools.unwrap_or_default())?;
    let choice = match raw.tool_choice {
        None => ToolChoice::Auto,
        Some(raw_choice) => parse_tool_choice(raw_choice, &tools)?,
    };

    let last_user = messages
        .iter()
        .rev()
        .find(|message| message.role.as_deref() == Some("user"));
    // Joined only when needed: this runs on the benchmark's hot path.
    let echo = last_user
        .and_then(|message| message.content.as_ref())
        .filter(|content| {
            content.texts().any(|text| {
                text.contains(synth::ECHO_MARKER) || text.contains(synth::ECHO64_MARKER)
            })
        })
        .and_then(|content| {
            if let Some(decoded) = content.texts().find_map(synth::echo64) {
                return Some(decoded);
            }
            let text = content.texts().collect::<Vec<_>>().join("\n");
            synth::echo(&text).map(str::to_owned)
        });
    let last_is_tool = messages
        .last()
        .is_some_and(|message| message.role.as_deref() == Some("tool"));
    let intent = if last_is_tool {
        Intent::AcknowledgeToolResult {
            quote: quote(messages.last().and_then(|m| m.content.as_ref())),
        }
    } else if tools.is_empty() || matches!(choice, ToolChoice::None) {
        Intent::Answer {
            quote: quote(last_user.and_then(|m| m.content.as_ref())),
        }
    } else {
        Intent::CallTools(select_tools(
            tools,
            &choice,
            raw.parallel_tool_calls.unwrap_or(true),
        ))
    };

    Ok(ChatRequest {
        model,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
        prompt_tokens: u64::try_from(prompt_chars.div_ceil(4))
            .map_or(u64::MAX, |tokens| tokens.max(1)),
        intent,
        images,
        echo,
    })
}

fn json_error(body: &[u8], err: &serde_json::Error) -> ApiError {
    if err.is_syntax() || err.is_eof() {
        return ApiError::invalid_request(
            "We could not parse the JSON body of your request. The OpenAI API expects a \
             JSON payload, but what was sent was not valid JSON.",
            None,
            None,
        );
    }
    if body.trim_ascii_start().first() != Some(&b'{') {
        return ApiError::invalid_request("The request body must be a JSON object.", None, None);
    }
    ApiError::invalid_request(format!("Invalid request body: {err}"), None, None)
}

/// Validates roles, content parts and the tool-call/tool-result pairing;
/// returns the number of text characters and of images in all messages.
fn validate_messages(messages: &[RawMessage<'_>]) -> Result<(usize, usize), ApiError> {
    let mut chars = 0;
    let mut images = 0;
    let mut known_call_ids: Vec<&str> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .role
            .as_deref()
            .ok_or_else(|| ApiError::missing(format!("messages[{i}].role")))?;
        match role {
            "system" | "developer" | "user" | "tool" if message.content.is_none() => {
                return Err(ApiError::missing(format!("messages[{i}].content")));
            }
            "system" | "developer" | "user" | "tool" | "assistant" => {}
            other => {
                return Err(ApiError::invalid_value(
                    format!("messages[{i}].role"),
                    other,
                    ROLES,
                ));
            }
        }
        if let Some(content) = &message.content {
            let (content_chars, content_images) = validate_content(content, i)?;
            chars += content_chars;
            images += content_images;
        }
        match role {
            "assistant" => {
                for (k, call) in message.tool_calls.iter().flatten().enumerate() {
                    known_call_ids.push(validate_tool_call(call, i, k)?);
                }
            }
            "tool" => {
                let param = || format!("messages[{i}].tool_call_id");
                let id = message
                    .tool_call_id
                    .as_deref()
                    .ok_or_else(|| ApiError::missing(param()))?;
                if !known_call_ids.contains(&id) {
                    return Err(ApiError::invalid_request(
                        format!(
                            "Invalid parameter: messages with role 'tool' must be a response to a \
                             preceding message with 'tool_calls'; no earlier tool call has id '{id}'."
                        ),
                        Some(param()),
                        None,
                    ));
                }
            }
            _ => {}
        }
    }
    Ok((chars, images))
}

/// Validates one message's content; returns its text characters and images.
fn validate_content(content: &Content<'_>, i: usize) -> Result<(usize, usize), ApiError> {
    let parts = match content {
        Content::Text(text) => return Ok((text.chars().count(), 0)),
        Content::Parts(parts) => parts,
    };
    let mut chars = 0;
    let mut images = 0;
    for (j, part) in parts.iter().enumerate() {
        let param = |field: &str| format!("messages[{i}].content[{j}].{field}");
        let kind = part
            .kind
            .as_deref()
            .ok_or_else(|| ApiError::missing(param("type")))?;
        match kind {
            "text" => {
                let text = part
                    .text
                    .as_deref()
                    .ok_or_else(|| ApiError::missing(param("text")))?;
                chars += text.chars().count();
            }
            "image_url" => {
                let url = part
                    .image_url
                    .as_ref()
                    .and_then(|image| image.url.as_deref())
                    .ok_or_else(|| ApiError::missing(param("image_url.url")))?;
                if !is_valid_image_url(url) {
                    return Err(ApiError::invalid_request(
                        format!(
                            "Invalid '{}'. Expected a base64-encoded data URL with an image MIME \
                             type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), or an \
                             http(s) URL.",
                            param("image_url.url")
                        ),
                        Some(param("image_url.url")),
                        Some("invalid_value"),
                    ));
                }
                images += 1;
            }
            "input_audio" if part.input_audio.is_none() => {
                return Err(ApiError::missing(param("input_audio")));
            }
            "file" if part.file.is_none() => return Err(ApiError::missing(param("file"))),
            "refusal" if part.refusal.is_none() => return Err(ApiError::missing(param("refusal"))),
            "input_audio" | "file" | "refusal" => {}
            other => return Err(ApiError::invalid_value(param("type"), other, PART_TYPES)),
        }
    }
    Ok((chars, images))
}

/// Validates one assistant `tool_calls` entry and returns its id.
fn validate_tool_call<'m>(
    call: &'m RawToolCall<'_>,
    i: usize,
    k: usize,
) -> Result<&'m str, ApiError> {
    let param = |field: &str| format!("messages[{i}].tool_calls[{k}].{field}");
    let id = call
        .id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::missing(param("id")))?;
    if let Some(kind) = call.kind.as_deref().filter(|kind| *kind != "function") {
        return Err(ApiError::invalid_value(param("type"), kind, "'function'"));
    }
    call.function
        .as_ref()
        .and_then(|function| function.name.as_deref())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::missing(param("function.name")))?;
    Ok(id)
}

fn validate_tools(tools: Vec<RawTool<'_>>) -> Result<Vec<ToolSpec<'_>>, ApiError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let kind = tool
                .kind
                .as_deref()
                .ok_or_else(|| ApiError::missing(format!("tools[{i}].type")))?;
            if kind != "function" {
                return Err(ApiError::invalid_value(
                    format!("tools[{i}].type"),
                    kind,
                    "'function'",
                ));
            }
            let function = tool
                .function
                .ok_or_else(|| ApiError::missing(format!("tools[{i}].function")))?;
            let name = function
                .name
                .filter(|name| !name.is_empty())
                .ok_or_else(|| ApiError::missing(format!("tools[{i}].function.name")))?;
            Ok(ToolSpec {
                name,
                parameters: function.parameters,
            })
        })
        .collect()
}

fn parse_tool_choice<'a>(
    raw: &'a RawValue,
    tools: &[ToolSpec<'_>],
) -> Result<ToolChoice<'a>, ApiError> {
    let param = || Some("tool_choice".to_owned());
    if tools.is_empty() {
        return Err(ApiError::invalid_request(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are \
             specified.",
            param(),
            None,
        ));
    }
    let invalid = |detail: &str| {
        ApiError::invalid_request(format!("Invalid 'tool_choice': {detail}"), param(), None)
    };
    if raw.get().starts_with('"') {
        let mode: Cow<'a, str> =
            serde_json::from_str(raw.get()).map_err(|err| invalid(&err.to_string()))?;
        return match mode.as_ref() {
            "none" => Ok(ToolChoice::None),
            "auto" | "required" => Ok(ToolChoice::Auto),
            other => Err(ApiError::invalid_value(
                "tool_choice",
                other,
                "'none', 'auto' and 'required'",
            )),
        };
    }
    let named: RawNamedToolChoice<'a> =
        serde_json::from_str(raw.get()).map_err(|err| invalid(&err.to_string()))?;
    let name = named
        .function
        .and_then(|function| function.name)
        .ok_or_else(|| ApiError::missing("tool_choice.function.name"))?;
    if !tools.iter().any(|tool| tool.name == name) {
        return Err(invalid(&format!("function '{name}' is not among 'tools'.")));
    }
    Ok(ToolChoice::Function(name))
}

/// The first tool, the first two when parallel calls are allowed, or the
/// one `tool_choice` names.
fn select_tools<'a>(
    mut tools: Vec<ToolSpec<'a>>,
    choice: &ToolChoice<'_>,
    parallel: bool,
) -> Vec<ToolSpec<'a>> {
    if let ToolChoice::Function(name) = choice {
        tools.retain(|tool| tool.name == *name);
    }
    tools.truncate(if parallel { 2 } else { 1 });
    tools
}

/// The first [`synth::QUOTE_CHARS`] characters of a content's text.
fn quote(content: Option<&Content<'_>>) -> String {
    synth::quote(content.into_iter().flat_map(Content::texts))
}

impl Content<'_> {
    /// The text of a string content, or of each `text` part.
    fn texts(&self) -> impl Iterator<Item = &str> {
        let (whole, parts) = match self {
            Content::Text(text) => (Some(text.as_ref()), &[][..]),
            Content::Parts(parts) => (None, parts.as_slice()),
        };
        whole.into_iter().chain(
            parts
                .iter()
                .filter(|part| part.kind.as_deref() == Some("text"))
                .filter_map(|part| part.text.as_deref()),
        )
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(PhantomData<Content<'a>>);

        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = Content<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(text)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }

        deserializer.deserialize_any(ContentVisitor(PhantomData))
    }
}

/// An `http(s)` URL, or `data:image/<type>;base64,<valid base64>`.
fn is_valid_image_url(url: &str) -> bool {
    if let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        return !rest.is_empty();
    }
    let Some((subtype, data)) = url
        .strip_prefix("data:image/")
        .and_then(|rest| rest.split_once(";base64,"))
    else {
        return false;
    };
    !subtype.is_empty()
        && subtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && is_base64(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::QUOTE_CHARS;

    fn error(body: &str) -> ApiError {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn minimal_request_answers_last_user_text() {
        let req = parse(
            br#"{"model":"m","messages":[{"role":"system","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"Hello there"},
                {"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
        )
        .unwrap();
        assert_eq!(req.model, "m");
        assert!(!req.stream);
        assert_eq!(req.prompt_tokens, 5); // 8 + 11 chars
        assert!(matches!(req.intent, Intent::Answer { quote } if quote == "Hello there"));
    }

    #[test]
    fn quote_is_limited() {
        let long = "x".repeat(100);
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{long}"}}]}}"#);
        let req = parse(body.as_bytes()).unwrap();
        assert!(matches!(req.intent, Intent::Answer { quote } if quote.len() == QUOTE_CHARS));
        assert_eq!(req.prompt_tokens, 25);
    }

    #[test]
    fn body_errors() {
        assert!(error("not json").message.contains("could not parse"));
        assert!(error("[1]").message.contains("JSON object"));
        assert_eq!(error(r#"{"messages":[]}"#).param.as_deref(), Some("model"));
        assert_eq!(
            error(r#"{"model":"m"}"#).code,
            Some("missing_required_parameter")
        );
        assert_eq!(
            error(r#"{"model":"m","messages":[]}"#).code,
            Some("empty_array")
        );
        assert!(
            error(r#"{"model":"m","messages":"hi"}"#)
                .message
                .contains("invalid type")
        );
    }

    #[test]
    fn role_errors() {
        let err = error(r#"{"model":"m","messages":[{"role":"bot","content":"x"}]}"#);
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
        assert_eq!(err.code, Some("invalid_value"));
        let err = error(r#"{"model":"m","messages":[{"content":"x"}]}"#);
        assert_eq!(err.code, Some("missing_required_parameter"));
        let err = error(r#"{"model":"m","messages":[{"role":"user"}]}"#);
        assert_eq!(err.param.as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn part_errors() {
        let err = error(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}"#,
        );
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0].type"));
        let err = error(
            r#"{"model":"m","messages":[{"role":"user","content":[
                {"type":"image_url","image_url":{"url":"data:image/png;base64,@@@"}}]}]}"#,
        );
        assert_eq!(
            err.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
    }

    #[test]
    fn tool_pairing() {
        let ok = r#"{"model":"m","messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
             "function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny and warm"}]}"#;
        let req = parse(ok.as_bytes()).unwrap();
        assert!(
            matches!(req.intent, Intent::AcknowledgeToolResult { quote } if quote == "sunny and warm")
        );

        let unmatched = ok.replace(r#""tool_call_id":"call_1""#, r#""tool_call_id":"call_2""#);
        let err = error(&unmatched);
        assert_eq!(err.param.as_deref(), Some("messages[2].tool_call_id"));

        let no_name = ok.replace(r#""name":"f","#, "");
        let err = error(&no_name);
        assert_eq!(
            err.param.as_deref(),
            Some("messages[1].tool_calls[0].function.name")
        );

        let no_id = ok.replace(r#""id":"call_1","#, "");
        assert_eq!(
            error(&no_id).param.as_deref(),
            Some("messages[1].tool_calls[0].id")
        );
    }

    #[test]
    fn tool_selection() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"q"}],
            "tools":[{"type":"function","function":{"name":"a"}},
                     {"type":"function","function":{"name":"b"}},
                     {"type":"function","function":{"name":"c"}}]"#;
        let names = |extra: &str| match parse(format!("{base}{extra}}}").as_bytes()).unwrap().intent
        {
            Intent::CallTools(tools) => tools.into_iter().map(|t| t.name.into_owned()).collect(),
            _ => Vec::<String>::new(),
        };
        assert_eq!(names(""), ["a", "b"]);
        assert_eq!(names(r#","parallel_tool_calls":false"#), ["a"]);
        assert_eq!(names(r#","tool_choice":"none""#), Vec::<String>::new());
        assert_eq!(
            names(r#","tool_choice":{"type":"function","function":{"name":"c"}}"#),
            ["c"]
        );
        let err = error(&format!(
            r#"{base},"tool_choice":{{"type":"function","function":{{"name":"z"}}}}}}"#
        ));
        assert_eq!(err.param.as_deref(), Some("tool_choice"));
    }

    #[test]
    fn tool_definition_errors() {
        let err = error(
            r#"{"model":"m","messages":[{"role":"user","content":"q"}],
                "tools":[{"type":"retrieval","function":{"name":"a"}}]}"#,
        );
        assert_eq!(err.param.as_deref(), Some("tools[0].type"));
        let err = error(
            r#"{"model":"m","messages":[{"role":"user","content":"q"}],
                "tools":[{"type":"function","function":{}}]}"#,
        );
        assert_eq!(err.param.as_deref(), Some("tools[0].function.name"));
    }

    #[test]
    fn escaped_strings_are_accepted() {
        let req = parse(br#"{"model":"m\u002d1","messages":[{"role":"user","content":"a\"b"}]}"#)
            .unwrap();
        assert_eq!(req.model, "m-1");
        assert!(matches!(req.intent, Intent::Answer { quote } if quote == "a\"b"));
    }

    #[test]
    fn image_urls() {
        assert!(is_valid_image_url("https://example.com/a.png"));
        assert!(is_valid_image_url("http://example.com/a.png"));
        assert!(is_valid_image_url("data:image/png;base64,aGk="));
        assert!(is_valid_image_url("data:image/svg+xml;base64,aGk"));
        assert!(!is_valid_image_url("ftp://example.com/a.png"));
        assert!(!is_valid_image_url("data:text/plain;base64,aGk="));
        assert!(!is_valid_image_url("data:image/png,aGk="));
        assert!(!is_valid_image_url("data:image/png;base64,"));
        assert!(!is_valid_image_url("data:image/png;base64,a"));
        assert!(!is_valid_image_url("data:image/png;base64,aGk=="));
        assert!(!is_valid_image_url("data:image/png;base64,a b="));
    }
}
