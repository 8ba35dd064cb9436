//! Parsing and Anthropic-style validation of `POST /v1/messages` and
//! `POST /v1/messages/count_tokens` bodies.
//!
//! The rules follow the real Messages API closely (with its error messages,
//! `path.to.field: problem`), so a gateway that translates badly gets the
//! 400 the real API would give. Unknown fields are accepted (the real API
//! refuses them) so tests can check that a gateway passes them through.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value};

use super::error::AnthropicError;
use crate::encoding::{Fnv64, canonical_json, is_base64};
use crate::signature::thinking_signature;
use crate::synth::{self, Intent, ToolToCall};

/// Smallest thinking budget.
const MIN_THINKING_BUDGET: i64 = 1024;

/// Most `cache_control` breakpoints per request.
const MAX_BREAKPOINTS: usize = 4;

const BLOCK_TAGS: &str = "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', \
                          'redacted_thinking'";
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];
const THINKING_DOCS: &str = "Please consult our documentation at \
                             https://docs.claude.com/en/docs/build-with-claude/extended-thinking";

/// Which endpoint a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `POST /v1/messages`: `max_tokens` required, signatures checked.
    Messages,
    /// `POST /v1/messages/count_tokens`: no `max_tokens`, no signature checks.
    CountTokens,
}

/// A validated request, reduced to what the reply depends on.
#[derive(Debug)]
pub(crate) struct MessagesRequest {
    pub(crate) model: String,
    /// `max_tokens` (0 for count-tokens requests).
    pub(crate) max_tokens: u64,
    pub(crate) stream: bool,
    /// Whether the model thinks (`thinking.type` `enabled`, `adaptive` or
    /// `between_tools`).
    pub(crate) thinking: bool,
    /// Whether thinking blocks carry an empty text (`display: "omitted"`).
    pub(crate) thinking_omitted: bool,
    /// What the thinking (if enabled) is about.
    pub(crate) thinking_subject: String,
    pub(crate) intent: Intent,
    /// Characters of the system prompt, text blocks, tool results and tool
    /// definitions (as compact JSON).
    pub(crate) prompt_chars: usize,
    /// The `cache_control` breakpoints, in prompt order.
    pub(crate) breakpoints: Vec<Breakpoint>,
}

/// The end of a cacheable prompt prefix (a block with `cache_control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Breakpoint {
    /// Hash of the model and everything up to and including the block.
    pub(crate) key: u64,
    /// Prompt characters up to and including the block.
    pub(crate) chars: usize,
    /// Whether the breakpoint asked for the 1-hour cache.
    pub(crate) one_hour: bool,
}

type Obj = Map<String, Value>;
type Result<T> = std::result::Result<T, AnthropicError>;

fn invalid(message: impl Into<Cow<'static, str>>) -> AnthropicError {
    AnthropicError::invalid_request(message)
}

/// A present, non-null field.
fn opt<'v>(object: &'v Obj, key: &str) -> Option<&'v Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn required<'v>(object: &'v Obj, key: &str, path: &str) -> Result<&'v Value> {
    opt(object, key).ok_or_else(|| invalid(format!("{path}: Field required")))
}

fn as_object<'v>(value: &'v Value, path: &str) -> Result<&'v Obj> {
    value
        .as_object()
        .ok_or_else(|| invalid(format!("{path}: Input should be a valid dictionary")))
}

fn as_str<'v>(value: &'v Value, path: &str) -> Result<&'v str> {
    value
        .as_str()
        .ok_or_else(|| invalid(format!("{path}: Input should be a valid string")))
}

fn as_array<'v>(value: &'v Value, path: &str) -> Result<&'v [Value]> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| invalid(format!("{path}: Input should be a valid list")))
}

fn as_bool(value: &Value, path: &str) -> Result<bool> {
    value
        .as_bool()
        .ok_or_else(|| invalid(format!("{path}: Input should be a valid boolean")))
}

fn as_int(value: &Value, path: &str) -> Result<i64> {
    value
        .as_i64()
        .ok_or_else(|| invalid(format!("{path}: Input should be a valid integer")))
}

fn as_number(value: &Value, path: &str) -> Result<f64> {
    value
        .as_f64()
        .ok_or_else(|| invalid(format!("{path}: Input should be a valid number")))
}

fn in_range(value: f64, low: f64, high: f64, path: &str) -> Result<f64> {
    if value < low {
        Err(invalid(format!(
            "{path}: Input should be greater than or equal to {low}"
        )))
    } else if value > high {
        Err(invalid(format!(
            "{path}: Input should be less than or equal to {high}"
        )))
    } else {
        Ok(value)
    }
}

fn tag_mismatch(path: &str, tag: &str, expected: &str) -> AnthropicError {
    invalid(format!(
        "{path}: Input tag '{tag}' found using 'type' does not match any of the expected tags: \
         {expected}"
    ))
}

/// `^[a-zA-Z0-9_-]{1,max}$`
fn is_identifier(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A versioned built-in tool type such as `web_search_20250305`.
fn is_versioned_tool_type(kind: &str) -> bool {
    kind.rsplit_once('_').is_some_and(|(name, date)| {
        !name.is_empty() && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Parses and validates a body sent to `mode`'s endpoint.
pub(crate) fn parse(body: &[u8], mode: Mode) -> Result<MessagesRequest> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|err| invalid(format!("The request body is not valid JSON: {err}")))?;
    let root = root.as_object().ok_or_else(|| {
        invalid("The request body must be a JSON object (a dictionary of parameters).")
    })?;
    Parser::new(mode).parse(root)
}

/// The `tool_choice` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ToolChoice {
    Auto { parallel: bool },
    Any { parallel: bool },
    Tool(String),
    None,
}

/// Accumulates what the walk over a request learns.
struct Parser {
    mode: Mode,
    chars: usize,
    images: usize,
    /// Hash of the prompt so far (model, tools, system, blocks).
    prefix: Fnv64,
    breakpoints: Vec<Breakpoint>,
    cache_controls: usize,
}

impl Parser {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            chars: 0,
            images: 0,
            prefix: Fnv64::with_seed(b"anthropic"),
            breakpoints: Vec::new(),
            cache_controls: 0,
        }
    }

    fn parse(mut self, root: &Obj) -> Result<MessagesRequest> {
        let model = as_str(required(root, "model", "model")?, "model")?;
        if model.is_empty() {
            return Err(invalid("model: String should have at least 1 character"));
        }
        self.prefix.write_item(model.as_bytes());

        let max_tokens = match self.mode {
            Mode::Messages => {
                let max_tokens = as_int(required(root, "max_tokens", "max_tokens")?, "max_tokens")?;
                if max_tokens < 1 {
                    return Err(invalid(
                        "max_tokens: Input should be greater than or equal to 1",
                    ));
                }
                u64::try_from(max_tokens).unwrap_or(1)
            }
            Mode::CountTokens => 0,
        };
        let stream = match (self.mode, opt(root, "stream")) {
            (Mode::Messages, Some(stream)) => as_bool(stream, "stream")?,
            _ => false,
        };
        let temperature = opt(root, "temperature")
            .map(|t| in_range(as_number(t, "temperature")?, 0.0, 1.0, "temperature"))
            .transpose()?;
        let top_p = opt(root, "top_p")
            .map(|p| in_range(as_number(p, "top_p")?, 0.0, 1.0, "top_p"))
            .transpose()?;
        let top_k = opt(root, "top_k")
            .map(|k| {
                let k = as_int(k, "top_k")?;
                if k < 0 {
                    return Err(invalid("top_k: Input should be greater than or equal to 0"));
                }
                Ok(k)
            })
            .transpose()?;
        if let Some(stops) = opt(root, "stop_sequences") {
            for (i, stop) in as_array(stops, "stop_sequences")?.iter().enumerate() {
                let stop = as_str(stop, &format!("stop_sequences.{i}"))?;
                if stop.trim().is_empty() {
                    return Err(invalid(
                        "stop_sequences: each stop sequence must contain non-whitespace",
                    ));
                }
            }
        }
        if let Some(metadata) = opt(root, "metadata") {
            let metadata = as_object(metadata, "metadata")?;
            if let Some(user) = opt(metadata, "user_id") {
                as_str(user, "metadata.user_id")?;
            }
        }

        let (thinking, thinking_omitted) = self.thinking(root, max_tokens)?;
        if thinking {
            if temperature.is_some_and(|t| (t - 1.0).abs() > f64::EPSILON) {
                return Err(invalid(format!(
                    "`temperature` may only be set to 1 when thinking is enabled. {THINKING_DOCS}"
                )));
            }
            if top_k.is_some() {
                return Err(invalid(format!(
                    "`top_k` must be unset when thinking is enabled. {THINKING_DOCS}"
                )));
            }
            if top_p.is_some_and(|p| p < 0.95) {
                return Err(invalid(format!(
                    "`top_p` must be greater than or equal to 0.95 or unset when thinking is \
                     enabled. {THINKING_DOCS}"
                )));
            }
        }

        let tools = self.tools(root)?;
        let choice = self.tool_choice(root, &tools, thinking)?;
        self.system(root)?;

        let messages = as_array(required(root, "messages", "messages")?, "messages")?;
        if messages.is_empty() {
            return Err(invalid("messages: at least one message is required"));
        }
        let facts = self.messages(messages, thinking)?;
        if self.cache_controls > MAX_BREAKPOINTS {
            return Err(invalid(format!(
                "A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found \
                 {}.",
                self.cache_controls
            )));
        }

        let (intent, thinking_subject) = if !facts.tool_result_quotes.is_empty() {
            (
                Intent::Text {
                    text: synth::tool_results(&facts.tool_result_quotes),
                    exact: false,
                },
                "the tool results".to_owned(),
            )
        } else if let Some(called) = select_tools(tools, &choice) {
            (Intent::CallTools(called), "which tools to call".to_owned())
        } else {
            let texts: Vec<&str> = facts.last_user_texts.iter().map(String::as_str).collect();
            (
                synth::answer_intent(&texts, self.images),
                format!("the request: {}", synth::quote(texts.iter().copied())),
            )
        };

        Ok(MessagesRequest {
            model: model.to_owned(),
            max_tokens,
            stream,
            thinking,
            thinking_omitted,
            thinking_subject,
            intent,
            prompt_chars: self.chars,
            breakpoints: self.breakpoints,
        })
    }

    /// Validates `thinking`; returns whether the model thinks and whether
    /// its thinking text is omitted (`display: "omitted"`).
    fn thinking(&self, root: &Obj, max_tokens: u64) -> Result<(bool, bool)> {
        let Some(thinking) = opt(root, "thinking") else {
            return Ok((false, false));
        };
        let thinking = as_object(thinking, "thinking")?;
        let kind = as_str(
            required(thinking, "type", "thinking.type")?,
            "thinking.type",
        )?;
        let display = |kind: &str| -> Result<bool> {
            let path = format!("thinking.{kind}.display");
            match opt(thinking, "display")
                .map(|d| as_str(d, &path))
                .transpose()?
            {
                None | Some("summarized") => Ok(false),
                Some("omitted") => Ok(true),
                Some(_) => Err(invalid(format!(
                    "{path}: Input should be 'summarized' or 'omitted'"
                ))),
            }
        };
        match kind {
            "disabled" => Ok((false, false)),
            "adaptive" | "between_tools" => Ok((true, display(kind)?)),
            "enabled" => {
                let path = "thinking.enabled.budget_tokens";
                let budget = as_int(required(thinking, "budget_tokens", path)?, path)?;
                if budget < MIN_THINKING_BUDGET {
                    return Err(invalid(format!(
                        "{path}: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
                    )));
                }
                if self.mode == Mode::Messages && u64::try_from(budget).unwrap_or(0) >= max_tokens {
                    return Err(invalid(format!(
                        "`max_tokens` must be greater than `thinking.budget_tokens`. \
                         {THINKING_DOCS}#max-tokens-and-context-window-size"
                    )));
                }
                Ok((true, display(kind)?))
            }
            other => Err(tag_mismatch(
                "thinking",
                other,
                "'enabled', 'disabled', 'adaptive', 'between_tools'",
            )),
        }
    }

    /// Validates `tools`; returns the custom tools (those the fake can call).
    fn tools(&mut self, root: &Obj) -> Result<Vec<ToolToCall>> {
        let Some(tools) = opt(root, "tools") else {
            return Ok(Vec::new());
        };
        let mut callable = Vec::new();
        let mut names = HashSet::new();
        for (i, tool) in as_array(tools, "tools")?.iter().enumerate() {
            let path = format!("tools.{i}");
            let object = as_object(tool, &path)?;
            let kind = opt(object, "type")
                .map(|kind| as_str(kind, &format!("{path}.type")))
                .transpose()?;
            let name = match kind {
                None | Some("custom") => {
                    let path = format!("{path}.custom");
                    let name = as_str(
                        required(object, "name", &format!("{path}.name"))?,
                        &format!("{path}.name"),
                    )?;
                    if !is_identifier(name, 128) {
                        return Err(invalid(format!(
                            "{path}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                        )));
                    }
                    if let Some(description) = opt(object, "description") {
                        as_str(description, &format!("{path}.description"))?;
                    }
                    let schema_path = format!("{path}.input_schema");
                    let schema = required(object, "input_schema", &schema_path)?;
                    let schema_object = as_object(schema, &schema_path)?;
                    match opt(schema_object, "type") {
                        None => {
                            return Err(invalid(format!("{schema_path}.type: Field required")));
                        }
                        Some(Value::String(kind)) if kind == "object" => {}
                        Some(_) => {
                            return Err(invalid(format!(
                                "{schema_path}.type: Input should be 'object'"
                            )));
                        }
                    }
                    callable.push(ToolToCall {
                        name: name.to_owned(),
                        schema: Some(schema.clone()),
                    });
                    name
                }
                Some(kind) if is_versioned_tool_type(kind) => as_str(
                    required(object, "name", &format!("{path}.{kind}.name"))?,
                    &format!("{path}.{kind}.name"),
                )?,
                Some(kind) => {
                    return Err(tag_mismatch(
                        &path,
                        kind,
                        "'custom' or a versioned built-in tool type such as \
                         'web_search_20250305'",
                    ));
                }
            };
            if !names.insert(name) {
                return Err(invalid("tools: Tool names must be unique."));
            }
            // Tool definitions count as prompt, as compact JSON.
            let chars = canonical_json(tool).chars().count();
            self.item(tool, chars, object, &path)?;
        }
        Ok(callable)
    }

    fn tool_choice(&self, root: &Obj, tools: &[ToolToCall], thinking: bool) -> Result<ToolChoice> {
        let Some(choice) = opt(root, "tool_choice") else {
            return Ok(ToolChoice::Auto { parallel: true });
        };
        let choice = as_object(choice, "tool_choice")?;
        let kind = as_str(
            required(choice, "type", "tool_choice.type")?,
            "tool_choice.type",
        )?;
        let parallel = |path: &str| -> Result<bool> {
            Ok(!opt(choice, "disable_parallel_tool_use")
                .map(|flag| as_bool(flag, &format!("{path}.disable_parallel_tool_use")))
                .transpose()?
                .unwrap_or(false))
        };
        let choice = match kind {
            "auto" => ToolChoice::Auto {
                parallel: parallel("tool_choice.auto")?,
            },
            "any" => ToolChoice::Any {
                parallel: parallel("tool_choice.any")?,
            },
            "none" => ToolChoice::None,
            "tool" => {
                let path = "tool_choice.tool.name";
                let name = as_str(required(choice, "name", path)?, path)?;
                if !tools.iter().any(|tool| tool.name == name) {
                    return Err(invalid(format!(
                        "{path}: Tool '{name}' not found in the provided tools"
                    )));
                }
                ToolChoice::Tool(name.to_owned())
            }
            other => {
                return Err(tag_mismatch(
                    "tool_choice",
                    other,
                    "'auto', 'any', 'tool', 'none'",
                ));
            }
        };
        if thinking && matches!(choice, ToolChoice::Any { .. } | ToolChoice::Tool(_)) {
            return Err(invalid(
                "Thinking may not be enabled when tool_choice forces tool use.",
            ));
        }
        Ok(choice)
    }

    /// Validates `system`: a string or a list of text blocks.
    fn system(&mut self, root: &Obj) -> Result<()> {
        let Some(system) = opt(root, "system") else {
            return Ok(());
        };
        if let Some(text) = system.as_str() {
            let chars = text.chars().count();
            self.item(system, chars, &Obj::new(), "system")?;
            return Ok(());
        }
        let blocks = system.as_array().ok_or_else(|| {
            invalid("system: Input should be a valid string or a list of text blocks")
        })?;
        for (i, block) in blocks.iter().enumerate() {
            let path = format!("system.{i}");
            let object = as_object(block, &path)?;
            let kind = as_str(
                required(object, "type", &format!("{path}.type"))?,
                &format!("{path}.type"),
            )?;
            if kind != "text" {
                return Err(invalid(format!("{path}.type: Input should be 'text'")));
            }
            let text = as_str(
                required(object, "text", &format!("{path}.text"))?,
                &format!("{path}.text"),
            )?;
            if text.is_empty() {
                return Err(invalid("system: text content blocks must be non-empty"));
            }
            self.item(block, text.chars().count(), object, &path)?;
        }
        Ok(())
    }

    /// Counts an item of the prompt (tool, system block, content block):
    /// its characters, its hash and its `cache_control`.
    fn item(&mut self, value: &Value, chars: usize, object: &Obj, path: &str) -> Result<()> {
        self.chars += chars;
        self.prefix.write_item(canonical_json(value).as_bytes());
        let Some(control) = opt(object, "cache_control") else {
            return Ok(());
        };
        let path = format!("{path}.cache_control");
        let control = as_object(control, &path)?;
        let kind = as_str(
            required(control, "type", &format!("{path}.type"))?,
            &format!("{path}.type"),
        )?;
        if kind != "ephemeral" {
            return Err(invalid(format!("{path}.type: Input should be 'ephemeral'")));
        }
        let one_hour = match opt(control, "ttl") {
            None => false,
            Some(ttl) => match as_str(ttl, &format!("{path}.ttl"))? {
                "5m" => false,
                "1h" => true,
                _ => return Err(invalid(format!("{path}.ttl: Input should be '5m' or '1h'"))),
            },
        };
        self.cache_controls += 1;
        self.breakpoints.push(Breakpoint {
            key: self.prefix.finish(),
            chars: self.chars,
            one_hour,
        });
        Ok(())
    }

    /// Validates the conversation; returns what the intent depends on.
    fn messages(&mut self, messages: &[Value], thinking: bool) -> Result<Conversation> {
        let mut previous_role: Option<&str> = None;
        // `tool_use` ids of the previous (assistant) message, and its index.
        let mut pending: Vec<String> = Vec::new();
        let mut pending_from = 0;
        let mut all_ids = HashSet::new();
        let mut conversation = Conversation::default();
        // Index and block types of the last assistant message.
        let mut last_assistant: Option<(usize, Vec<&'static str>)> = None;

        for (i, message) in messages.iter().enumerate() {
            let path = format!("messages.{i}");
            let object = as_object(message, &path)?;
            let role_path = format!("{path}.role");
            let role = as_str(required(object, "role", &role_path)?, &role_path)?;
            match role {
                "user" | "assistant" => {}
                "system" => {
                    return Err(invalid(
                        "messages: Unexpected role \"system\". The Messages API accepts a \
                         top-level `system` parameter, not \"system\" as an input message role.",
                    ));
                }
                _ => {
                    return Err(invalid(format!(
                        "{role_path}: Input should be 'user' or 'assistant'"
                    )));
                }
            }
            match previous_role {
                None if role != "user" => {
                    return Err(invalid(
                        "messages: first message must use the \"user\" role",
                    ));
                }
                Some(previous) if previous == role => {
                    return Err(invalid(format!(
                        "messages: roles must alternate between \"user\" and \"assistant\", but \
                         found multiple \"{role}\" roles in a row"
                    )));
                }
                _ => {}
            }
            previous_role = Some(role);

            let is_final_assistant = role == "assistant" && i + 1 == messages.len();
            let blocks = self.content(object, role, &path, is_final_assistant)?;

            if role == "assistant" {
                for block in &blocks {
                    if block.kind == "tool_use" {
                        if !all_ids.insert(block.id.clone()) {
                            return Err(invalid(format!(
                                "{path}.content.{}: `tool_use` ids must be unique",
                                block.index
                            )));
                        }
                        pending.push(block.id.clone());
                    }
                }
                pending_from = i;
                last_assistant = Some((i, blocks.iter().map(|block| block.kind).collect()));
                conversation.tool_result_quotes.clear();
                continue;
            }

            // A user message: pair its tool results with the tool uses of
            // the assistant message just before it.
            let results: Vec<&Block<'_>> = blocks
                .iter()
                .filter(|block| block.kind == "tool_result")
                .collect();
            for result in &results {
                if !pending.contains(&result.id) {
                    return Err(invalid(format!(
                        "{path}.content.{}: unexpected `tool_use_id` found in `tool_result` \
                         blocks: {}. Each `tool_result` block must have a corresponding \
                         `tool_use` block in the previous message.",
                        result.index, result.id
                    )));
                }
            }
            let leading = blocks
                .iter()
                .take_while(|block| block.kind == "tool_result")
                .count();
            if leading != results.len() {
                return Err(invalid(format!(
                    "{path}: Did not find {} `tool_result` block(s) at the beginning of this \
                     message. Messages following `tool_use` blocks must begin with a matching \
                     number of `tool_result` blocks.",
                    pending.len().max(results.len())
                )));
            }
            let missing: Vec<&str> = pending
                .iter()
                .filter(|id| !results.iter().any(|result| result.id == **id))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(invalid(format!(
                    "messages.{pending_from}: `tool_use` ids were found without `tool_result` \
                     blocks immediately after: {}. Each `tool_use` block must have a \
                     corresponding `tool_result` block in the next message.",
                    missing.join(", ")
                )));
            }
            pending.clear();
            conversation.tool_result_quotes = results
                .iter()
                .map(|result| synth::quote([result.text.as_str()]))
                .collect();
            conversation.last_user_texts = blocks
                .into_iter()
                .filter(|block| block.kind == "text")
                .map(|block| block.text)
                .collect();
        }

        // With thinking on, the last assistant turn that used tools must
        // start with its thinking.
        if thinking
            && self.mode == Mode::Messages
            && let Some((i, kinds)) = last_assistant
            && kinds.contains(&"tool_use")
        {
            let first = kinds.first().copied().unwrap_or("text");
            if first != "thinking" && first != "redacted_thinking" {
                return Err(invalid(format!(
                    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but \
                     found `{first}`. When `thinking` is enabled, a final `assistant` message must \
                     start with a thinking block (preceeding the lastmost set of `tool_use` and \
                     `tool_result` blocks). We recommend you include thinking blocks from \
                     previous turns. To avoid this requirement, disable `thinking`. \
                     {THINKING_DOCS}"
                )));
            }
        }
        Ok(conversation)
    }

    /// Validates a message's `content` (a string or a list of blocks).
    fn content<'v>(
        &mut self,
        object: &'v Obj,
        role: &str,
        path: &str,
        is_final_assistant: bool,
    ) -> Result<Vec<Block<'v>>> {
        let content_path = format!("{path}.content");
        let content = required(object, "content", &content_path)?;
        let non_empty_error = || {
            invalid(format!(
                "{path}: all messages must have non-empty content except for the optional final \
                 assistant message"
            ))
        };
        let trailing_whitespace_error =
            || invalid("messages: final assistant content cannot end with trailing whitespace");

        if let Some(text) = content.as_str() {
            if text.is_empty() && !is_final_assistant {
                return Err(non_empty_error());
            }
            if is_final_assistant && text.ends_with(char::is_whitespace) {
                return Err(trailing_whitespace_error());
            }
            self.item(content, text.chars().count(), &Obj::new(), &content_path)?;
            return Ok(vec![Block {
                index: 0,
                kind: "text",
                text: text.to_owned(),
                id: String::new(),
                signature: "",
            }]);
        }
        let items = content.as_array().ok_or_else(|| {
            invalid(format!(
                "{content_path}: Input should be a valid string or a list of content blocks"
            ))
        })?;
        if items.is_empty() && !is_final_assistant {
            return Err(non_empty_error());
        }
        let mut blocks = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let block = self.block(item, role, &format!("{content_path}.{j}"), j)?;
            if block.kind == "thinking"
                && self.mode == Mode::Messages
                && block.signature != thinking_signature(&block.text)
            {
                return Err(AnthropicError::bad_signature(format!(
                    "{content_path}.{j}: Invalid `signature` in `thinking` block"
                )));
            }
            blocks.push(block);
        }
        if is_final_assistant
            && blocks.last().is_some_and(|block| {
                block.kind == "text" && block.text.ends_with(char::is_whitespace)
            })
        {
            return Err(trailing_whitespace_error());
        }
        Ok(blocks)
    }

    /// Validates one content block of a `role` message.
    fn block<'v>(
        &mut self,
        block: &'v Value,
        role: &str,
        path: &str,
        index: usize,
    ) -> Result<Block<'v>> {
        let object = as_object(block, path)?;
        let kind = as_str(
            required(object, "type", &format!("{path}.type"))?,
            &format!("{path}.type"),
        )?;
        let only_in = |expected_role: &str| -> Result<()> {
            if role == expected_role {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{path}.type: `{kind}` blocks are only allowed in `{expected_role}` messages"
                )))
            }
        };
        let field = |name: &str| format!("{path}.{kind}.{name}");
        let mut info = Block {
            index,
            kind: "",
            text: String::new(),
            id: String::new(),
            signature: "",
        };
        let mut chars = 0;
        match kind {
            "text" => {
                info.kind = "text";
                let text = as_str(required(object, "text", &field("text"))?, &field("text"))?;
                if text.is_empty() {
                    return Err(invalid("messages: text content blocks must be non-empty"));
                }
                if text.trim().is_empty() {
                    return Err(invalid(
                        "messages: text content blocks must contain non-whitespace text",
                    ));
                }
                chars = text.chars().count();
                info.text = text.to_owned();
            }
            "image" => {
                info.kind = "image";
                only_in("user")?;
                self.image(object, path)?;
            }
            "document" => {
                info.kind = "document";
                only_in("user")?;
                chars = self.document(object, path)?;
            }
            "tool_use" => {
                info.kind = "tool_use";
                only_in("assistant")?;
                let id = as_str(required(object, "id", &field("id"))?, &field("id"))?;
                if !is_identifier(id, usize::MAX) {
                    return Err(invalid(format!(
                        "{}: String should match pattern '^[a-zA-Z0-9_-]+$'",
                        field("id")
                    )));
                }
                let name = as_str(required(object, "name", &field("name"))?, &field("name"))?;
                if name.is_empty() {
                    return Err(invalid(format!(
                        "{}: String should have at least 1 character",
                        field("name")
                    )));
                }
                as_object(required(object, "input", &field("input"))?, &field("input"))?;
                info.id = id.to_owned();
            }
            "tool_result" => {
                info.kind = "tool_result";
                only_in("user")?;
                let id = as_str(
                    required(object, "tool_use_id", &field("tool_use_id"))?,
                    &field("tool_use_id"),
                )?;
                info.id = id.to_owned();
                if let Some(flag) = opt(object, "is_error") {
                    as_bool(flag, &field("is_error"))?;
                }
                let text = self.tool_result_content(object, &field("content"))?;
                chars = text.chars().count();
                info.text = text;
            }
            "thinking" => {
                info.kind = "thinking";
                only_in("assistant")?;
                let text = as_str(
                    required(object, "thinking", &field("thinking"))?,
                    &field("thinking"),
                )?;
                info.signature = as_str(
                    required(object, "signature", &field("signature"))?,
                    &field("signature"),
                )?;
                info.text = text.to_owned();
            }
            "redacted_thinking" => {
                info.kind = "redacted_thinking";
                only_in("assistant")?;
                let data = as_str(required(object, "data", &field("data"))?, &field("data"))?;
                if data.is_empty() {
                    return Err(invalid(format!(
                        "{}: String should have at least 1 character",
                        field("data")
                    )));
                }
            }
            other => return Err(tag_mismatch(path, other, BLOCK_TAGS)),
        }
        self.item(block, chars, object, path)?;
        Ok(info)
    }

    /// Validates an image block's source and counts the image.
    fn image(&mut self, object: &Obj, path: &str) -> Result<()> {
        let source_path = format!("{path}.image.source");
        let source = as_object(required(object, "source", &source_path)?, &source_path)?;
        let kind = as_str(
            required(source, "type", &format!("{source_path}.type"))?,
            &format!("{source_path}.type"),
        )?;
        match kind {
            "base64" => {
                let path = format!("{source_path}.base64");
                let media = as_str(
                    required(source, "media_type", &format!("{path}.media_type"))?,
                    &format!("{path}.media_type"),
                )?;
                if !IMAGE_TYPES.contains(&media) {
                    return Err(invalid(format!(
                        "{path}.media_type: Input should be 'image/jpeg', 'image/png', \
                         'image/gif' or 'image/webp'"
                    )));
                }
                let data = as_str(
                    required(source, "data", &format!("{path}.data"))?,
                    &format!("{path}.data"),
                )?;
                if !is_base64(data) {
                    return Err(invalid(format!(
                        "{path}.data: The image data is not valid base64."
                    )));
                }
            }
            "url" => {
                let path = format!("{source_path}.url");
                let url = as_str(
                    required(source, "url", &format!("{path}.url"))?,
                    &format!("{path}.url"),
                )?;
                if !is_http_url(url) {
                    return Err(invalid(format!(
                        "{path}.url: Input should be a valid URL with an http or https scheme"
                    )));
                }
            }
            "file" => {
                let path = format!("{source_path}.file");
                as_str(
                    required(source, "file_id", &format!("{path}.file_id"))?,
                    &format!("{path}.file_id"),
                )?;
            }
            other => return Err(tag_mismatch(&source_path, other, "'base64', 'url', 'file'")),
        }
        self.images += 1;
        Ok(())
    }

    /// Validates a document block's source; returns its text characters.
    fn document(&mut self, object: &Obj, path: &str) -> Result<usize> {
        let source_path = format!("{path}.document.source");
        let source = as_object(required(object, "source", &source_path)?, &source_path)?;
        let kind = as_str(
            required(source, "type", &format!("{source_path}.type"))?,
            &format!("{source_path}.type"),
        )?;
        let field = |name: &str| format!("{source_path}.{kind}.{name}");
        match kind {
            "base64" => {
                let media = as_str(
                    required(source, "media_type", &field("media_type"))?,
                    &field("media_type"),
                )?;
                if media != "application/pdf" {
                    return Err(invalid(format!(
                        "{}: Input should be 'application/pdf'",
                        field("media_type")
                    )));
                }
                let data = as_str(required(source, "data", &field("data"))?, &field("data"))?;
                if !is_base64(data) {
                    return Err(invalid(format!(
                        "{}: The PDF data is not valid base64.",
                        field("data")
                    )));
                }
                Ok(0)
            }
            "text" => {
                let media = as_str(
                    required(source, "media_type", &field("media_type"))?,
                    &field("media_type"),
                )?;
                if media != "text/plain" {
                    return Err(invalid(format!(
                        "{}: Input should be 'text/plain'",
                        field("media_type")
                    )));
                }
                let data = as_str(required(source, "data", &field("data"))?, &field("data"))?;
                Ok(data.chars().count())
            }
            "url" => {
                let url = as_str(required(source, "url", &field("url"))?, &field("url"))?;
                if !is_http_url(url) {
                    return Err(invalid(format!(
                        "{}: Input should be a valid URL with an http or https scheme",
                        field("url")
                    )));
                }
                Ok(0)
            }
            "content" => {
                let content = required(source, "content", &field("content"))?;
                if let Some(text) = content.as_str() {
                    return Ok(text.chars().count());
                }
                let mut chars = 0;
                for (i, block) in as_array(content, &field("content"))?.iter().enumerate() {
                    let path = format!("{}.{i}", field("content"));
                    let block = as_object(block, &path)?;
                    match opt(block, "type").and_then(Value::as_str) {
                        Some("text") => {
                            chars += as_str(
                                required(block, "text", &format!("{path}.text"))?,
                                &format!("{path}.text"),
                            )?
                            .chars()
                            .count();
                        }
                        Some("image") => self.image(block, &path)?,
                        other => {
                            return Err(tag_mismatch(
                                &path,
                                other.unwrap_or(""),
                                "'text', 'image'",
                            ));
                        }
                    }
                }
                Ok(chars)
            }
            "file" => {
                as_str(
                    required(source, "file_id", &field("file_id"))?,
                    &field("file_id"),
                )?;
                Ok(0)
            }
            other => Err(tag_mismatch(
                &source_path,
                other,
                "'base64', 'text', 'url', 'content', 'file'",
            )),
        }
    }

    /// Validates a `tool_result`'s content; returns its text.
    fn tool_result_content(&mut self, object: &Obj, path: &str) -> Result<String> {
        let Some(content) = opt(object, "content") else {
            return Ok(String::new());
        };
        if let Some(text) = content.as_str() {
            return Ok(text.to_owned());
        }
        let mut text = String::new();
        for (i, block) in as_array(content, path)?.iter().enumerate() {
            let path = format!("{path}.{i}");
            let block = as_object(block, &path)?;
            let kind = as_str(
                required(block, "type", &format!("{path}.type"))?,
                &format!("{path}.type"),
            )?;
            match kind {
                "text" => {
                    let part = as_str(
                        required(block, "text", &format!("{path}.text"))?,
                        &format!("{path}.text"),
                    )?;
                    if part.is_empty() {
                        return Err(invalid("messages: text content blocks must be non-empty"));
                    }
                    text.push_str(part);
                }
                "image" => self.image(block, &path)?,
                "document" => {
                    self.document(block, &path)?;
                }
                other => return Err(tag_mismatch(&path, other, "'text', 'image', 'document'")),
            }
        }
        Ok(text)
    }
}

/// What one content block is, for the checks across blocks.
struct Block<'v> {
    /// Position in the message's content.
    index: usize,
    kind: &'static str,
    /// Text of a `text`, `thinking` or `tool_result` block.
    text: String,
    /// Id of a `tool_use` block, or the `tool_use_id` of a `tool_result`.
    id: String,
    /// Signature of a `thinking` block.
    signature: &'v str,
}

/// Facts about the conversation the reply depends on.
#[derive(Debug, Default)]
struct Conversation {
    /// Texts of the last user message.
    last_user_texts: Vec<String>,
    /// Quotes of the tool results, when the last message carries them.
    tool_result_quotes: Vec<String>,
}

/// The tools a reply calls, or `None` for a text reply.
fn select_tools(mut tools: Vec<ToolToCall>, choice: &ToolChoice) -> Option<Vec<ToolToCall>> {
    let parallel = match choice {
        ToolChoice::None => return None,
        ToolChoice::Auto { parallel } | ToolChoice::Any { parallel } => *parallel,
        ToolChoice::Tool(name) => {
            tools.retain(|tool| tool.name == *name);
            false
        }
    };
    tools.truncate(if parallel { 2 } else { 1 });
    (!tools.is_empty()).then_some(tools)
}

fn is_http_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_json(body: &Value) -> Result<MessagesRequest> {
        parse(&serde_json::to_vec(body).unwrap(), Mode::Messages)
    }

    fn error(body: &Value) -> String {
        parse_json(body).unwrap_err().message.into_owned()
    }

    fn base() -> Value {
        json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]})
    }

    #[test]
    fn minimal_request() {
        let request = parse_json(&base()).unwrap();
        assert_eq!(request.model, "m");
        assert_eq!(request.max_tokens, 100);
        assert!(!request.stream && !request.thinking);
        assert_eq!(
            request.intent,
            Intent::Text {
                text: "Fake reply to: Hi".into(),
                exact: false
            }
        );
        assert_eq!(request.prompt_chars, 2);
    }

    #[test]
    fn required_fields() {
        let mut body = base();
        body.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(error(&body), "max_tokens: Field required");
        assert!(parse(&serde_json::to_vec(&body).unwrap(), Mode::CountTokens).is_ok());
        let mut body = base();
        body.as_object_mut().unwrap().remove("model");
        assert_eq!(error(&body), "model: Field required");
        let mut body = base();
        body["messages"] = json!([]);
        assert_eq!(error(&body), "messages: at least one message is required");
        let mut body = base();
        body["temperature"] = json!(1.5);
        assert_eq!(
            error(&body),
            "temperature: Input should be less than or equal to 1"
        );
    }

    #[test]
    fn roles_alternate_from_user() {
        let mut body = base();
        body["messages"] = json!([{"role": "assistant", "content": "x"}]);
        assert!(error(&body).contains("first message must use the \"user\" role"));
        body["messages"] =
            json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]);
        assert!(error(&body).contains("roles must alternate"));
        body["messages"] = json!([{"role": "system", "content": "a"}]);
        assert!(error(&body).contains("top-level `system` parameter"));
    }

    #[test]
    fn unknown_block_type() {
        let mut body = base();
        body["messages"][0]["content"] = json!([{"type": "video"}]);
        assert!(error(&body).starts_with("messages.0.content.0: Input tag 'video'"));
    }

    #[test]
    fn tool_pairing() {
        let mut body = base();
        body["messages"] = json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
                {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "toolu_2",
                 "content": [{"type": "text", "text": "two"}]},
                {"type": "text", "text": "thanks"}]}
        ]);
        let request = parse_json(&body).unwrap();
        assert_eq!(
            request.intent,
            Intent::Text {
                text: "Tool result received: one; two".into(),
                exact: false
            }
        );

        let mut unknown = body.clone();
        unknown["messages"][2]["content"][1]["tool_use_id"] = json!("toolu_9");
        assert!(error(&unknown).starts_with(
            "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9."
        ));

        let mut missing = body.clone();
        missing["messages"][2]["content"] =
            json!([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"}]);
        assert!(error(&missing).starts_with(
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately \
             after: toolu_2."
        ));

        let mut late = body.clone();
        late["messages"][2]["content"] = json!([
            {"type": "text", "text": "first"},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "two"}]);
        assert!(error(&late).starts_with("messages.2: Did not find 2 `tool_result` block(s)"));

        let mut bad_id = body;
        bad_id["messages"][1]["content"][0]["id"] = json!("call 1");
        assert!(error(&bad_id).contains("String should match pattern '^[a-zA-Z0-9_-]+$'"));
    }

    #[test]
    fn tools_and_choice() {
        let mut body = base();
        body["tools"] = json!([
            {"name": "a", "input_schema": {"type": "object"}},
            {"name": "b", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"}]);
        let names = |body: &Value| match parse_json(body).unwrap().intent {
            Intent::CallTools(tools) => tools.into_iter().map(|t| t.name).collect(),
            Intent::Text { .. } => Vec::<String>::new(),
        };
        assert_eq!(names(&body), ["a", "b"]);
        body["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
        assert_eq!(names(&body), ["a"]);
        body["tool_choice"] = json!({"type": "tool", "name": "b"});
        assert_eq!(names(&body), ["b"]);
        body["tool_choice"] = json!({"type": "none"});
        assert!(names(&body).is_empty());

        let mut bad = base();
        bad["tools"] = json!([{"name": "a"}]);
        assert_eq!(error(&bad), "tools.0.custom.input_schema: Field required");
        bad["tools"] = json!([{"name": "a b", "input_schema": {"type": "object"}}]);
        assert!(error(&bad).starts_with("tools.0.custom.name: String should match pattern"));
        bad["tools"] =
            json!([{"name": "a", "input_schema": {}}, {"name": "a", "input_schema": {}}]);
        assert_eq!(
            error(&bad),
            "tools.0.custom.input_schema.type: Field required"
        );
        bad["tools"] = json!([{"name": "a", "input_schema": {"type": "object"}},
                              {"name": "a", "input_schema": {"type": "object"}}]);
        assert_eq!(error(&bad), "tools: Tool names must be unique.");
    }

    #[test]
    fn thinking_rules() {
        let mut body = base();
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 512});
        assert!(error(&body).contains("greater than or equal to 1024"));
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        assert!(error(&body).contains("`max_tokens` must be greater than"));
        body["max_tokens"] = json!(2048);
        assert!(parse_json(&body).unwrap().thinking);
        body["thinking"] = json!({"type": "adaptive", "display": "omitted"});
        let adaptive = parse_json(&body).unwrap();
        assert!(adaptive.thinking && adaptive.thinking_omitted);
        body["thinking"] = json!({"type": "sometimes"});
        assert!(error(&body).starts_with("thinking: Input tag 'sometimes'"));
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        body["temperature"] = json!(0.5);
        assert!(error(&body).contains("`temperature` may only be set to 1"));
    }

    #[test]
    fn thinking_signatures_are_checked() {
        let thinking = "Thinking about which tools to call.";
        let mut body = base();
        body["max_tokens"] = json!(4096);
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
        body["messages"] = json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": thinking,
                 "signature": thinking_signature(thinking)},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}
        ]);
        assert!(parse_json(&body).is_ok());

        let mut tampered = body.clone();
        tampered["messages"][1]["content"][0]["signature"] = json!("c2lnOmZha2U=");
        let rejected = parse_json(&tampered).unwrap_err();
        assert!(rejected.bad_signature);
        assert_eq!(
            rejected.message,
            "messages.1.content.0: Invalid `signature` in `thinking` block"
        );
        // count_tokens does not check signatures.
        assert!(parse(&serde_json::to_vec(&tampered).unwrap(), Mode::CountTokens).is_ok());

        let mut dropped = body;
        dropped["messages"][1]["content"] =
            json!([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]);
        assert!(error(&dropped).starts_with(
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
             `tool_use`."
        ));
    }

    #[test]
    fn images_are_counted_and_checked() {
        let mut body = base();
        body["messages"][0]["content"] = json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}},
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            {"type": "text", "text": "What are these?"}]);
        let request = parse_json(&body).unwrap();
        assert_eq!(
            request.intent,
            Intent::Text {
                text: "Fake reply to: What are these? [images: 2]".into(),
                exact: false
            }
        );
        body["messages"][0]["content"][0]["source"]["data"] = json!("not base64!");
        assert!(error(&body).contains("image.source.base64.data"));
        body["messages"][0]["content"][0]["source"]["media_type"] = json!("image/bmp");
        assert!(error(&body).contains("image.source.base64.media_type"));
    }

    #[test]
    fn cache_breakpoints() {
        let mut body = base();
        body["system"] = json!([
            {"type": "text", "text": "a long system prompt", "cache_control": {"type": "ephemeral"}}]);
        let first = parse_json(&body).unwrap();
        assert_eq!(first.breakpoints.len(), 1);
        assert_eq!(first.breakpoints[0].chars, 20);
        body["messages"][0]["content"] = json!("Other question");
        let second = parse_json(&body).unwrap();
        assert_eq!(first.breakpoints[0].key, second.breakpoints[0].key);
        body["model"] = json!("other");
        assert_ne!(
            parse_json(&body).unwrap().breakpoints[0].key,
            first.breakpoints[0].key
        );
        body["system"][0]["cache_control"] = json!({"type": "persistent"});
        assert!(error(&body).contains("cache_control.type"));
    }

    #[test]
    fn unknown_fields_are_accepted() {
        let mut body = base();
        body["x_custom"] = json!({"anything": true});
        assert!(parse_json(&body).is_ok());
    }
}
