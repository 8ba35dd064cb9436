//! Parsing and Gemini-style validation of `generateContent`,
//! `streamGenerateContent` and `countTokens` bodies.
//!
//! Field names are accepted in camelCase and in snake_case (protobuf's JSON
//! mapping accepts both); error messages use Google's wording and its
//! snake_case paths. Unknown fields are accepted (the real API refuses them)
//! so tests can check that a gateway passes them through.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::error::GeminiError;
use crate::encoding::{Fnv64, canonical_json, is_proto_base64};
use crate::signature::function_call_signature;
use crate::synth::{self, Intent, ToolToCall};

type Obj = Map<String, Value>;
type Result<T> = std::result::Result<T, GeminiError>;

/// The oneof `data` fields of a part: (camelCase, snake_case).
const DATA_FIELDS: [(&str, &str); 7] = [
    ("text", "text"),
    ("inlineData", "inline_data"),
    ("fileData", "file_data"),
    ("functionCall", "function_call"),
    ("functionResponse", "function_response"),
    ("executableCode", "executable_code"),
    ("codeExecutionResult", "code_execution_result"),
];

const RESPONSE_MIME_TYPES: [&str; 5] = [
    "text/plain",
    "application/json",
    "application/xml",
    "application/yaml",
    "text/x.enum",
];

const THINKING_LEVELS: [&str; 5] = [
    "THINKING_LEVEL_UNSPECIFIED",
    "MINIMAL",
    "LOW",
    "MEDIUM",
    "HIGH",
];

/// Which endpoint a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `:generateContent` and `:streamGenerateContent`: signatures checked.
    Generate,
    /// `:countTokens`: `{contents}` or `{generateContentRequest}`, no
    /// signature checks.
    CountTokens,
}

/// A validated request, reduced to what the reply depends on.
#[derive(Debug)]
pub(crate) struct GenerateRequest {
    /// Whether the model thinks (`includeThoughts`, a budget other than 0,
    /// or a thinking level).
    pub(crate) thinking: bool,
    /// Whether thought summaries are returned (`includeThoughts: true`).
    pub(crate) include_thoughts: bool,
    /// What the thinking is about.
    pub(crate) thinking_subject: String,
    pub(crate) intent: Intent,
    /// Whether the conversation's function calls or responses carry ids
    /// (then the reply's calls get ids too).
    pub(crate) use_ids: bool,
    /// `generationConfig.maxOutputTokens`, when set.
    pub(crate) max_output_tokens: Option<u64>,
    /// Characters of the system instruction, texts, function calls and
    /// responses (as JSON) and tool declarations (as compact JSON).
    pub(crate) prompt_chars: usize,
    /// Hash and prompt characters of every prefix ending after a content
    /// (shortest first), for implicit caching.
    pub(crate) prefixes: Vec<(u64, usize)>,
}

fn invalid(message: impl Into<Cow<'static, str>>) -> GeminiError {
    GeminiError::invalid_argument(message)
}

/// A request-validation error about `path` (Google's `* Request.path: …`).
fn field_error(path: &str, message: &str) -> GeminiError {
    invalid(format!("* GenerateContentRequest.{path}: {message}\n"))
}

/// A JSON value of the wrong type at `path`.
fn type_error(path: &str, kind: &str, value: &Value) -> GeminiError {
    invalid(format!("Invalid value at '{path}' ({kind}), {value}"))
}

/// A present, non-null field, in camelCase or snake_case.
fn get<'v>(object: &'v Obj, camel: &str, snake: &str) -> Option<&'v Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|value| !value.is_null())
}

fn as_object<'v>(value: &'v Value, path: &str, message: &str) -> Result<&'v Obj> {
    value.as_object().ok_or_else(|| {
        type_error(
            path,
            &format!("type.googleapis.com/google.ai.generativelanguage.v1beta.{message}"),
            value,
        )
    })
}

fn as_struct<'v>(value: &'v Value, path: &str) -> Result<&'v Obj> {
    value
        .as_object()
        .ok_or_else(|| type_error(path, "type.googleapis.com/google.protobuf.Struct", value))
}

fn as_str<'v>(value: &'v Value, path: &str) -> Result<&'v str> {
    value
        .as_str()
        .ok_or_else(|| type_error(path, "TYPE_STRING", value))
}

fn as_bool(value: &Value, path: &str) -> Result<bool> {
    value
        .as_bool()
        .ok_or_else(|| type_error(path, "TYPE_BOOL", value))
}

fn as_array<'v>(value: &'v Value, path: &str) -> Result<&'v [Value]> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| {
        invalid(format!(
            "Invalid value at '{path}': expected a list, got {value}"
        ))
    })
}

/// An `int32` field: a JSON integer, or a string of one (protobuf's JSON
/// mapping accepts both).
fn as_int(value: &Value, path: &str) -> Result<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        .ok_or_else(|| type_error(path, "TYPE_INT32", value))
}

fn as_float(value: &Value, path: &str) -> Result<f64> {
    value
        .as_f64()
        .ok_or_else(|| type_error(path, "TYPE_FLOAT", value))
}

fn as_bytes<'v>(value: &'v Value, path: &str) -> Result<&'v str> {
    let text = value
        .as_str()
        .ok_or_else(|| type_error(path, "TYPE_BYTES", value))?;
    if !is_proto_base64(text) {
        let shown: String = text.chars().take(20).collect();
        return Err(invalid(format!(
            "Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for \"{shown}\""
        )));
    }
    Ok(text)
}

/// `^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$`
fn is_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Parses and validates a body sent to `mode`'s endpoint for `model`.
pub(crate) fn parse(body: &[u8], mode: Mode, model: &str) -> Result<GenerateRequest> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|err| invalid(format!("Invalid JSON payload received. {err}")))?;
    let root = root.as_object().ok_or_else(|| {
        invalid(format!(
            "Invalid JSON payload received. Expected an object, got {}.",
            kind_of(&root)
        ))
    })?;
    match mode {
        Mode::Generate => Parser::new(model, true).parse(root),
        Mode::CountTokens => {
            let contents = get(root, "contents", "contents");
            let generate = get(root, "generateContentRequest", "generate_content_request");
            match (contents, generate) {
                (Some(_), Some(_)) => Err(invalid(
                    "* CountTokensRequest: only one of contents and generate_content_request may \
                     be set\n",
                )),
                (_, Some(generate)) => {
                    let generate = as_object(
                        generate,
                        "generate_content_request",
                        "GenerateContentRequest",
                    )?;
                    let named = get(generate, "model", "model").and_then(Value::as_str);
                    if !named.is_some_and(|name| {
                        name.strip_prefix("models/")
                            .is_some_and(|rest| !rest.is_empty())
                    }) {
                        return Err(field_error("model", "unexpected model name format"));
                    }
                    Parser::new(model, false).parse(generate)
                }
                _ => Parser::new(model, false).parse(root),
            }
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A function call of a model turn.
#[derive(Debug)]
struct Call<'v> {
    name: &'v str,
    id: Option<&'v str>,
    args: &'v Value,
    signature: Option<&'v str>,
}

/// A function response of a user turn.
#[derive(Debug)]
struct FunctionResponse<'v> {
    part: usize,
    name: &'v str,
    id: Option<&'v str>,
    response: &'v Value,
}

/// What one content holds, for the checks across contents.
#[derive(Debug, Default)]
struct Turn<'v> {
    is_model: bool,
    calls: Vec<Call<'v>>,
    responses: Vec<FunctionResponse<'v>>,
    /// Non-thought texts.
    texts: Vec<&'v str>,
    /// Whether it has content other than function responses.
    has_user_content: bool,
}

/// The function-calling mode.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallingMode {
    Auto,
    Any,
    None,
}

/// Accumulates what the walk over a request learns.
struct Parser {
    check_signatures: bool,
    chars: usize,
    images: usize,
    prefix: Fnv64,
}

impl Parser {
    fn new(model: &str, check_signatures: bool) -> Self {
        let mut prefix = Fnv64::with_seed(b"gemini");
        prefix.write_item(model.as_bytes());
        Self {
            check_signatures,
            chars: 0,
            images: 0,
            prefix,
        }
    }

    fn parse(mut self, root: &Obj) -> Result<GenerateRequest> {
        let config = self.generation_config(root)?;

        if let Some(system) = get(root, "systemInstruction", "system_instruction") {
            let path = "system_instruction";
            let system = as_object(system, path, "Content")?;
            let parts = get(system, "parts", "parts").ok_or_else(|| {
                field_error(
                    &format!("{path}.parts"),
                    "contents.parts must not be empty.",
                )
            })?;
            for (j, part) in as_array(parts, &format!("{path}.parts"))?
                .iter()
                .enumerate()
            {
                let path = format!("{path}.parts[{j}]");
                let part = as_object(part, &path, "Part")?;
                let text = get(part, "text", "text")
                    .ok_or_else(|| field_error(&path, "system_instruction parts must be text"))?;
                self.chars += as_str(text, &format!("{path}.text"))?.chars().count();
            }
            self.prefix
                .write_item(canonical_json(&Value::Object(system.clone())).as_bytes());
        }

        let declarations = self.tools(root)?;
        let (calling, allowed) = tool_config(root)?;
        if let Some(settings) = get(root, "safetySettings", "safety_settings") {
            for (i, setting) in as_array(settings, "safety_settings")?.iter().enumerate() {
                let path = format!("safety_settings[{i}]");
                let setting = as_object(setting, &path, "SafetySetting")?;
                for (camel, snake) in [("category", "category"), ("threshold", "threshold")] {
                    let value = get(setting, camel, snake).ok_or_else(|| {
                        field_error(&format!("{path}.{snake}"), "must be specified")
                    })?;
                    as_str(value, &format!("{path}.{snake}"))?;
                }
            }
        }
        if let Some(cached) = get(root, "cachedContent", "cached_content") {
            as_str(cached, "cached_content")?;
        }

        let contents = get(root, "contents", "contents")
            .map(|contents| as_array(contents, "contents"))
            .transpose()?
            .unwrap_or_default();
        if contents.is_empty() {
            return Err(field_error("contents", "contents is not specified"));
        }
        let mut turns = Vec::with_capacity(contents.len());
        let mut prefixes = Vec::with_capacity(contents.len());
        for (i, content) in contents.iter().enumerate() {
            let turn = self.content(content, i)?;
            check_pairing(&turns, &turn, i)?;
            turns.push(turn);
            self.prefix.write_item(canonical_json(content).as_bytes());
            prefixes.push((self.prefix.finish(), self.chars));
        }
        if self.check_signatures {
            check_signatures(&turns, config.thinking)?;
        }
        let use_ids = turns.iter().any(|turn| {
            turn.calls.iter().any(|call| call.id.is_some())
                || turn.responses.iter().any(|response| response.id.is_some())
        });

        let last = turns.last();
        let (intent, thinking_subject) = match last {
            Some(turn) if !turn.is_model && !turn.responses.is_empty() => {
                let quotes: Vec<String> = turn
                    .responses
                    .iter()
                    .map(|response| synth::quote([response_text(response.response).as_str()]))
                    .collect();
                (
                    Intent::Text {
                        text: synth::tool_results(&quotes),
                        exact: false,
                    },
                    "the tool results".to_owned(),
                )
            }
            _ => match select_tools(declarations, &calling, &allowed) {
                Some(tools) => (Intent::CallTools(tools), "which tools to call".to_owned()),
                None => {
                    let texts = turns
                        .iter()
                        .rev()
                        .find(|turn| !turn.is_model)
                        .map(|turn| turn.texts.clone())
                        .unwrap_or_default();
                    (
                        synth::answer_intent(&texts, self.images),
                        format!("the request: {}", synth::quote(texts.iter().copied())),
                    )
                }
            },
        };

        Ok(GenerateRequest {
            thinking: config.thinking,
            include_thoughts: config.include_thoughts,
            thinking_subject,
            intent,
            use_ids,
            max_output_tokens: config.max_output_tokens,
            prompt_chars: self.chars,
            prefixes,
        })
    }

    /// Validates `generationConfig`.
    fn generation_config(&self, root: &Obj) -> Result<GenerationConfig> {
        let mut config = GenerationConfig::default();
        let Some(value) = get(root, "generationConfig", "generation_config") else {
            return Ok(config);
        };
        let base = "generation_config";
        let object = as_object(value, base, "GenerationConfig")?;
        let path = |snake: &str| format!("{base}.{snake}");
        for (camel, snake) in [
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("presencePenalty", "presence_penalty"),
            ("frequencyPenalty", "frequency_penalty"),
        ] {
            if let Some(value) = get(object, camel, snake) {
                let number = as_float(value, &path(snake))?;
                if snake == "temperature" && !(0.0..=2.0).contains(&number) {
                    return Err(field_error(
                        &path(snake),
                        "temperature must be between 0.0 and 2.0",
                    ));
                }
            }
        }
        for (camel, snake) in [
            ("topK", "top_k"),
            ("candidateCount", "candidate_count"),
            ("maxOutputTokens", "max_output_tokens"),
            ("seed", "seed"),
            ("logprobs", "logprobs"),
        ] {
            let Some(value) = get(object, camel, snake) else {
                continue;
            };
            let number = as_int(value, &path(snake))?;
            match snake {
                "candidate_count" if number > 1 => {
                    return Err(field_error(
                        &path(snake),
                        "the fake upstream generates one candidate only",
                    ));
                }
                "max_output_tokens" if number < 0 => {
                    return Err(field_error(
                        &path(snake),
                        "max_output_tokens must be positive",
                    ));
                }
                "max_output_tokens" if number > 0 => {
                    config.max_output_tokens = u64::try_from(number).ok();
                }
                _ => {}
            }
        }
        for (camel, snake) in [
            ("responseLogprobs", "response_logprobs"),
            (
                "enableEnhancedCivicAnswers",
                "enable_enhanced_civic_answers",
            ),
        ] {
            if let Some(value) = get(object, camel, snake) {
                as_bool(value, &path(snake))?;
            }
        }
        if let Some(value) = get(object, "responseMimeType", "response_mime_type") {
            let mime = as_str(value, &path("response_mime_type"))?;
            if !RESPONSE_MIME_TYPES.contains(&mime) {
                return Err(field_error(
                    &path("response_mime_type"),
                    "allowed mimetypes are `text/plain`, `application/json`, `application/xml`, \
                     `application/yaml` and `text/x.enum`.",
                ));
            }
        }
        for (camel, snake) in [
            ("stopSequences", "stop_sequences"),
            ("responseModalities", "response_modalities"),
        ] {
            if let Some(value) = get(object, camel, snake) {
                for (i, item) in as_array(value, &path(snake))?.iter().enumerate() {
                    as_str(item, &format!("{}[{i}]", path(snake)))?;
                }
            }
        }
        for (camel, snake) in [
            ("responseSchema", "response_schema"),
            ("speechConfig", "speech_config"),
            ("imageConfig", "image_config"),
        ] {
            if let Some(value) = get(object, camel, snake) {
                as_object(value, &path(snake), "Schema")?;
            }
        }
        if let Some(value) = get(object, "thinkingConfig", "thinking_config") {
            let base = path("thinking_config");
            let thinking = as_object(value, &base, "ThinkingConfig")?;
            let include = get(thinking, "includeThoughts", "include_thoughts")
                .map(|value| as_bool(value, &format!("{base}.include_thoughts")))
                .transpose()?
                .unwrap_or(false);
            let budget = get(thinking, "thinkingBudget", "thinking_budget")
                .map(|value| as_int(value, &format!("{base}.thinking_budget")))
                .transpose()?;
            let level = get(thinking, "thinkingLevel", "thinking_level")
                .map(|value| as_str(value, &format!("{base}.thinking_level")))
                .transpose()?;
            if let Some(level) = level
                && !THINKING_LEVELS
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(level))
            {
                return Err(type_error(
                    &format!("{base}.thinking_level"),
                    "TYPE_ENUM",
                    &Value::String(level.to_owned()),
                ));
            }
            if budget.is_some() && level.is_some() {
                return Err(invalid(
                    "You can only set only one of thinking budget and thinking level.",
                ));
            }
            config.include_thoughts = include;
            config.thinking = include || budget.is_some_and(|b| b != 0) || level.is_some();
        }
        Ok(config)
    }

    /// Validates `tools`; returns the function declarations.
    fn tools(&mut self, root: &Obj) -> Result<Vec<ToolToCall>> {
        let Some(tools) = get(root, "tools", "tools") else {
            return Ok(Vec::new());
        };
        let mut declarations: Vec<ToolToCall> = Vec::new();
        for (i, tool) in as_array(tools, "tools")?.iter().enumerate() {
            let path = format!("tools[{i}]");
            let object = as_object(tool, &path, "Tool")?;
            let Some(list) = get(object, "functionDeclarations", "function_declarations") else {
                continue;
            };
            for (j, declaration) in as_array(list, &format!("{path}.function_declarations"))?
                .iter()
                .enumerate()
            {
                let path = format!("{path}.function_declarations[{j}]");
                let declaration = as_object(declaration, &path, "FunctionDeclaration")?;
                let name = get(declaration, "name", "name")
                    .map(|name| as_str(name, &format!("{path}.name")))
                    .transpose()?
                    .unwrap_or_default();
                if !is_function_name(name) {
                    return Err(field_error(
                        &format!("{path}.name"),
                        "Invalid function name. Must start with a letter or an underscore. Must \
                         be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or \
                         dashes (-), with a maximum length of 64.",
                    ));
                }
                if declarations.iter().any(|known| known.name == name) {
                    return Err(invalid(format!(
                        "Duplicate function declaration found: {name}"
                    )));
                }
                let parameters = get(declaration, "parameters", "parameters");
                let json_schema = get(
                    declaration,
                    "parametersJsonSchema",
                    "parameters_json_schema",
                );
                if parameters.is_some() && json_schema.is_some() {
                    return Err(field_error(
                        &format!("{path}.parameters"),
                        "parameters and parameters_json_schema cannot both be set",
                    ));
                }
                if let Some(schema) = parameters {
                    as_object(schema, &format!("{path}.parameters"), "Schema")?;
                }
                declarations.push(ToolToCall {
                    name: name.to_owned(),
                    schema: parameters.or(json_schema).cloned(),
                });
            }
            self.chars += canonical_json(tool).chars().count();
            self.prefix.write_item(canonical_json(tool).as_bytes());
        }
        Ok(declarations)
    }

    /// Validates one content.
    fn content<'v>(&mut self, content: &'v Value, i: usize) -> Result<Turn<'v>> {
        let path = format!("contents[{i}]");
        let object = as_object(content, &path, "Content")?;
        let role = get(object, "role", "role")
            .map(|role| as_str(role, &format!("{path}.role")))
            .transpose()?
            .unwrap_or("");
        let is_model = match role {
            "" | "user" => false,
            "model" => true,
            _ => return Err(invalid("Please use a valid role: user, model.")),
        };
        let parts = get(object, "parts", "parts")
            .map(|parts| as_array(parts, &format!("{path}.parts")))
            .transpose()?
            .unwrap_or_default();
        if parts.is_empty() {
            return Err(field_error(
                &format!("{path}.parts"),
                "contents.parts must not be empty.",
            ));
        }
        let mut turn = Turn {
            is_model,
            ..Turn::default()
        };
        for (j, part) in parts.iter().enumerate() {
            self.part(part, &format!("{path}.parts[{j}]"), j, &mut turn)?;
        }
        Ok(turn)
    }

    /// Validates one part and records what it is in `turn`.
    fn part<'v>(
        &mut self,
        part: &'v Value,
        path: &str,
        j: usize,
        turn: &mut Turn<'v>,
    ) -> Result<()> {
        let object = as_object(part, path, "Part")?;
        let mut present = DATA_FIELDS
            .iter()
            .filter(|(camel, snake)| get(object, camel, snake).is_some());
        let Some(&(camel, snake)) = present.next() else {
            return Err(field_error(
                &format!("{path}.data"),
                "required oneof field 'data' must have one initialized field",
            ));
        };
        if let Some((second, _)) = present.next() {
            return Err(invalid(format!(
                "Invalid value at '{path}' (oneof), oneof field 'data' is already set. Cannot set \
                 '{second}'"
            )));
        }
        let thought = get(object, "thought", "thought")
            .map(|flag| as_bool(flag, &format!("{path}.thought")))
            .transpose()?
            .unwrap_or(false);
        let signature = get(object, "thoughtSignature", "thought_signature")
            .map(|signature| as_bytes(signature, &format!("{path}.thought_signature")))
            .transpose()?;
        let value = get(object, camel, snake).unwrap_or(&Value::Null);
        let field = |name: &str| format!("{path}.{snake}.{name}");
        let only_in = |model: bool| -> Result<()> {
            if turn.is_model == model {
                Ok(())
            } else {
                let role = if model { "model" } else { "user" };
                Err(field_error(
                    &format!("{path}.{snake}"),
                    &format!("{snake} parts are only allowed in {role} turns"),
                ))
            }
        };
        match snake {
            "text" => {
                let text = as_str(value, &format!("{path}.text"))?;
                self.chars += text.chars().count();
                if !thought {
                    turn.texts.push(text);
                }
                turn.has_user_content = true;
            }
            "inline_data" => {
                let blob = as_object(value, &format!("{path}.inline_data"), "Blob")?;
                let mime = get(blob, "mimeType", "mime_type")
                    .map(|mime| as_str(mime, &field("mime_type")))
                    .transpose()?
                    .unwrap_or_default();
                if mime.is_empty() {
                    return Err(field_error(
                        &field("mime_type"),
                        "mime_type must be specified",
                    ));
                }
                let data = get(blob, "data", "data")
                    .ok_or_else(|| field_error(&field("data"), "data must be specified"))?;
                as_bytes(data, &field("data"))?;
                if mime.starts_with("image/") {
                    self.images += 1;
                }
                turn.has_user_content = true;
            }
            "file_data" => {
                let file = as_object(value, &format!("{path}.file_data"), "FileData")?;
                let uri = get(file, "fileUri", "file_uri")
                    .map(|uri| as_str(uri, &field("file_uri")))
                    .transpose()?
                    .unwrap_or_default();
                if uri.is_empty() {
                    return Err(field_error(
                        &field("file_uri"),
                        "file_uri must be specified",
                    ));
                }
                let mime = get(file, "mimeType", "mime_type")
                    .map(|mime| as_str(mime, &field("mime_type")))
                    .transpose()?
                    .unwrap_or_default();
                if mime.starts_with("image/") {
                    self.images += 1;
                }
                turn.has_user_content = true;
            }
            "function_call" => {
                only_in(true)?;
                let call = as_object(value, &format!("{path}.function_call"), "FunctionCall")?;
                let name = get(call, "name", "name")
                    .map(|name| as_str(name, &field("name")))
                    .transpose()?
                    .unwrap_or_default();
                if name.is_empty() {
                    return Err(field_error(&field("name"), "Name must not be empty"));
                }
                let args = match get(call, "args", "args") {
                    Some(args) => {
                        as_struct(args, &field("args"))?;
                        args
                    }
                    None => &Value::Null,
                };
                let id = get(call, "id", "id")
                    .map(|id| as_str(id, &field("id")))
                    .transpose()?;
                self.chars += name.len() + canonical_json(args).chars().count();
                turn.calls.push(Call {
                    name,
                    id,
                    args,
                    signature,
                });
            }
            "function_response" => {
                only_in(false)?;
                let response = as_object(
                    value,
                    &format!("{path}.function_response"),
                    "FunctionResponse",
                )?;
                let name = get(response, "name", "name")
                    .map(|name| as_str(name, &field("name")))
                    .transpose()?
                    .unwrap_or_default();
                if name.is_empty() {
                    return Err(field_error(&field("name"), "Name must not be empty"));
                }
                let output = get(response, "response", "response")
                    .ok_or_else(|| field_error(&field("response"), "response must be specified"))?;
                as_struct(output, &field("response"))?;
                let id = get(response, "id", "id")
                    .map(|id| as_str(id, &field("id")))
                    .transpose()?;
                self.chars += response_text(output).chars().count();
                turn.responses.push(FunctionResponse {
                    part: j,
                    name,
                    id,
                    response: output,
                });
            }
            _ => {
                // executableCode / codeExecutionResult: accepted as they are.
                as_object(value, &format!("{path}.{snake}"), "Part")?;
                turn.has_user_content = true;
            }
        }
        Ok(())
    }
}

/// Options from `generationConfig` the reply depends on.
#[derive(Debug, Default)]
struct GenerationConfig {
    thinking: bool,
    include_thoughts: bool,
    max_output_tokens: Option<u64>,
}

/// Validates `toolConfig`; returns the calling mode and allowed names.
fn tool_config(root: &Obj) -> Result<(CallingMode, Vec<String>)> {
    let Some(config) = get(root, "toolConfig", "tool_config") else {
        return Ok((CallingMode::Auto, Vec::new()));
    };
    let config = as_object(config, "tool_config", "ToolConfig")?;
    let Some(calling) = get(config, "functionCallingConfig", "function_calling_config") else {
        return Ok((CallingMode::Auto, Vec::new()));
    };
    let base = "tool_config.function_calling_config";
    let calling = as_object(calling, base, "FunctionCallingConfig")?;
    let mode = match get(calling, "mode", "mode")
        .map(|mode| as_str(mode, &format!("{base}.mode")))
        .transpose()?
    {
        None | Some("MODE_UNSPECIFIED" | "AUTO") => CallingMode::Auto,
        Some("ANY" | "VALIDATED") => CallingMode::Any,
        Some("NONE") => CallingMode::None,
        Some(other) => {
            return Err(type_error(
                &format!("{base}.mode"),
                "TYPE_ENUM",
                &Value::String(other.to_owned()),
            ));
        }
    };
    let mut allowed = Vec::new();
    if let Some(names) = get(calling, "allowedFunctionNames", "allowed_function_names") {
        for (i, name) in as_array(names, &format!("{base}.allowed_function_names"))?
            .iter()
            .enumerate()
        {
            allowed.push(as_str(name, &format!("{base}.allowed_function_names[{i}]"))?.to_owned());
        }
        if !allowed.is_empty() && mode != CallingMode::Any {
            return Err(field_error(
                &format!("{base}.allowed_function_names"),
                "allowed_function_names may only be set when the mode is ANY or VALIDATED",
            ));
        }
    }
    Ok((mode, allowed))
}

/// Checks that function responses answer the calls of the turn before and
/// that function calls follow a user turn.
fn check_pairing(previous: &[Turn<'_>], turn: &Turn<'_>, i: usize) -> Result<()> {
    let before = previous.last();
    if !turn.calls.is_empty() && before.is_none_or(|before| before.is_model) {
        return Err(invalid(
            "Please ensure that function call turn comes immediately after a user turn or after \
             a function response turn.",
        ));
    }
    if turn.responses.is_empty() {
        return Ok(());
    }
    let calls = match before {
        Some(before) if before.is_model && !before.calls.is_empty() => &before.calls,
        _ => {
            return Err(invalid(
                "Please ensure that function response turn comes immediately after a function \
                 call turn.",
            ));
        }
    };
    if calls.len() != turn.responses.len() {
        return Err(invalid(
            "Please ensure that the number of function response parts is equal to the number of \
             function call parts of the function call turn.",
        ));
    }
    let mut answered = vec![false; calls.len()];
    for response in &turn.responses {
        let matching = calls.iter().enumerate().position(|(k, call)| {
            !answered.get(k).copied().unwrap_or(true)
                && call.name == response.name
                && (call.id.is_none() && response.id.is_none() || call.id == response.id)
        });
        match matching {
            Some(k) => {
                if let Some(flag) = answered.get_mut(k) {
                    *flag = true;
                }
            }
            None => {
                let id = response
                    .id
                    .map(|id| format!(" and id `{id}`"))
                    .unwrap_or_default();
                return Err(field_error(
                    &format!("contents[{i}].parts[{}].function_response", response.part),
                    &format!(
                        "no function call named `{}`{id} in the previous turn",
                        response.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every signature sent on a function call must be the one the fake issued
/// for it; with thinking on, the first call of every model turn in the
/// current turn (after the last user turn that is not only function
/// responses) must carry one.
fn check_signatures(turns: &[Turn<'_>], thinking: bool) -> Result<()> {
    let current = turns
        .iter()
        .rposition(|turn| !turn.is_model && turn.has_user_content);
    for (i, turn) in turns.iter().enumerate() {
        for (k, call) in turn.calls.iter().enumerate() {
            match call.signature {
                Some(signature) if signature != function_call_signature(call.name, call.args) => {
                    return Err(GeminiError::bad_signature("Corrupted thought signature."));
                }
                None if thinking && k == 0 && current.is_none_or(|start| i > start) => {
                    return Err(GeminiError::bad_signature(format!(
                        "Function call is missing a thought_signature in functionCall parts. \
                         This is required for tools to work correctly, and missing \
                         thought_signature may lead to degraded model performance. Additional \
                         data, function call `default_api:{}` , position {}. Please refer to \
                         https://ai.google.dev/gemini-api/docs/thought-signatures for more \
                         details.",
                        call.name,
                        i + 1
                    )));
                }
                Some(_) | None => {}
            }
        }
    }
    Ok(())
}

/// The text a reply quotes from a function response: its `result`,
/// `output` or `content` string, or the whole response as JSON.
fn response_text(response: &Value) -> String {
    ["result", "output", "content"]
        .iter()
        .find_map(|key| response.get(key).and_then(Value::as_str))
        .map_or_else(|| canonical_json(response), str::to_owned)
}

/// The functions a reply calls, or `None` for a text reply: the first two
/// declarations (the allowed ones in `ANY` mode with a list).
fn select_tools(
    mut declarations: Vec<ToolToCall>,
    mode: &CallingMode,
    allowed: &[String],
) -> Option<Vec<ToolToCall>> {
    if *mode == CallingMode::None {
        return None;
    }
    if !allowed.is_empty() {
        declarations.retain(|tool| allowed.contains(&tool.name));
    }
    declarations.truncate(2);
    (!declarations.is_empty()).then_some(declarations)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_json(body: &Value) -> Result<GenerateRequest> {
        parse(&serde_json::to_vec(body).unwrap(), Mode::Generate, "m")
    }

    fn error(body: &Value) -> String {
        parse_json(body).unwrap_err().message.into_owned()
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "parts": [{"text": text}]})
    }

    #[test]
    fn minimal_request() {
        let request = parse_json(&json!({"contents": [user("Hi")]})).unwrap();
        assert_eq!(
            request.intent,
            Intent::Text {
                text: "Fake reply to: Hi".into(),
                exact: false
            }
        );
        assert!(!request.thinking && !request.use_ids);
        assert_eq!(request.prefixes.len(), 1);
        // A role may be omitted.
        assert!(parse_json(&json!({"contents": [{"parts": [{"text": "Hi"}]}]})).is_ok());
    }

    #[test]
    fn content_errors() {
        assert!(error(&json!({})).contains("contents is not specified"));
        assert!(error(&json!({"contents": []})).contains("contents is not specified"));
        assert_eq!(
            error(&json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})),
            "Please use a valid role: user, model."
        );
        assert!(
            error(&json!({"contents": [{"role": "user", "parts": []}]}))
                .contains("contents[0].parts: contents.parts must not be empty.")
        );
        assert!(
            error(&json!({"contents": [{"role": "user", "parts": [{"video": {}}]}]}))
                .contains("required oneof field 'data'")
        );
        assert!(
            error(&json!({"contents": [{"role": "user", "parts": [
            {"text": "a", "inlineData": {"mimeType": "image/png", "data": "aGk="}}]}]}))
            .contains("oneof field 'data' is already set. Cannot set 'inlineData'")
        );
        assert!(
            error(&json!({"contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": "image/png", "data": "not base64!"}}]}]}))
            .contains("Base64 decoding failed")
        );
        assert!(
            error(&json!({"contents": [user("x")],
            "generationConfig": {"temperature": "hot"}}))
            .contains("Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"")
        );
        assert!(
            error(&json!({"contents": [user("x")],
            "generationConfig": {"maxOutputTokens": 1.5}}))
            .contains("(TYPE_INT32)")
        );
    }

    #[test]
    fn snake_case_is_accepted() {
        let request = parse_json(&json!({"contents": [{"role": "user", "parts": [
            {"inline_data": {"mime_type": "image/jpeg", "data": "aGk"}}, {"text": "What?"}]}],
            "generation_config": {"max_output_tokens": "5"}}))
        .unwrap();
        assert_eq!(request.max_output_tokens, Some(5));
        assert_eq!(
            request.intent,
            Intent::Text {
                text: "Fake reply to: What? [images: 1]".into(),
                exact: false
            }
        );
    }

    fn tools() -> Value {
        json!([{"functionDeclarations": [
            {"name": "get_weather", "parameters": {"type": "OBJECT",
                "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
            {"name": "get_time"},
            {"name": "unused"}]}])
    }

    #[test]
    fn tool_selection() {
        let names = |body: &Value| match parse_json(body).unwrap().intent {
            Intent::CallTools(tools) => tools.into_iter().map(|t| t.name).collect(),
            Intent::Text { .. } => Vec::<String>::new(),
        };
        let mut body = json!({"contents": [user("q")], "tools": tools()});
        assert_eq!(names(&body), ["get_weather", "get_time"]);
        body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
        assert!(names(&body).is_empty());
        body["toolConfig"] = json!({"functionCallingConfig":
            {"mode": "ANY", "allowedFunctionNames": ["unused"]}});
        assert_eq!(names(&body), ["unused"]);
        body["tools"][0]["functionDeclarations"][0]["name"] = json!("1bad");
        assert!(error(&body).contains("Invalid function name"));
    }

    fn two_turns(call: Value, response: Value) -> Value {
        json!({"tools": tools(), "contents": [user("q"),
            {"role": "model", "parts": [call]},
            {"role": "user", "parts": [response]}]})
    }

    #[test]
    fn function_pairing() {
        let call = json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}});
        let response =
            json!({"functionResponse": {"name": "get_weather", "response": {"result": "Sunny"}}});
        let request = parse_json(&two_turns(call.clone(), response.clone())).unwrap();
        assert_eq!(
            request.intent,
            Intent::Text {
                text: "Tool result received: Sunny".into(),
                exact: false
            }
        );
        assert!(!request.use_ids);

        let wrong = json!({"functionResponse": {"name": "get_time", "response": {}}});
        assert!(
            error(&two_turns(call.clone(), wrong)).contains("no function call named `get_time`")
        );

        let mut with_ids = two_turns(call.clone(), response.clone());
        with_ids["contents"][1]["parts"][0]["functionCall"]["id"] = json!("fc_1");
        with_ids["contents"][2]["parts"][0]["functionResponse"]["id"] = json!("fc_2");
        assert!(error(&with_ids).contains("and id `fc_2`"));
        with_ids["contents"][2]["parts"][0]["functionResponse"]["id"] = json!("fc_1");
        assert!(parse_json(&with_ids).unwrap().use_ids);

        let orphan = json!({"contents": [user("q"), {"role": "user", "parts": [response]}]});
        assert!(error(&orphan).contains("function response turn comes immediately after"));
        let first = json!({"contents": [{"role": "model", "parts": [call]}]});
        assert!(error(&first).contains("function call turn comes immediately after a user turn"));
    }

    #[test]
    fn thought_signatures() {
        let args = json!({"city": "Paris"});
        let signature = function_call_signature("get_weather", &args);
        let call = json!({"functionCall": {"name": "get_weather", "args": args},
            "thoughtSignature": signature});
        let response =
            json!({"functionResponse": {"name": "get_weather", "response": {"result": "Sunny"}}});
        let mut body = two_turns(call, response);
        body["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true}});
        assert!(parse_json(&body).is_ok());

        let mut corrupted = body.clone();
        corrupted["contents"][1]["parts"][0]["thoughtSignature"] = json!("c2lnOmZha2U=");
        let rejected = parse_json(&corrupted).unwrap_err();
        assert!(rejected.bad_signature);
        assert_eq!(rejected.message, "Corrupted thought signature.");

        let mut missing = body.clone();
        missing["contents"][1]["parts"][0]
            .as_object_mut()
            .unwrap()
            .remove("thoughtSignature");
        assert!(
            error(&missing)
                .starts_with("Function call is missing a thought_signature in functionCall parts.")
        );
        assert!(error(&missing).contains("position 2"));
        // Without thinking, a missing signature is fine.
        missing.as_object_mut().unwrap().remove("generationConfig");
        assert!(parse_json(&missing).is_ok());
        // countTokens does not check signatures.
        assert!(
            parse(
                &serde_json::to_vec(&corrupted).unwrap(),
                Mode::CountTokens,
                "m"
            )
            .is_ok()
        );
    }

    #[test]
    fn thinking_config() {
        let thinking = |config: Value| {
            let request = parse_json(&json!({"contents": [user("q")],
                "generationConfig": {"thinkingConfig": config}}))
            .unwrap();
            (request.thinking, request.include_thoughts)
        };
        assert_eq!(thinking(json!({"includeThoughts": true})), (true, true));
        assert_eq!(thinking(json!({"thinkingBudget": 1024})), (true, false));
        assert_eq!(thinking(json!({"thinkingBudget": 0})), (false, false));
        assert_eq!(thinking(json!({"thinkingLevel": "low"})), (true, false));
    }

    #[test]
    fn count_tokens_bodies() {
        let count =
            |body: Value| parse(&serde_json::to_vec(&body).unwrap(), Mode::CountTokens, "m");
        assert!(count(json!({"contents": [user("hello")]})).is_ok());
        assert!(
            count(json!({"generateContentRequest": {"model": "models/m",
            "contents": [user("hello")]}}))
            .is_ok()
        );
        assert!(
            count(json!({"generateContentRequest": {"contents": [user("hello")]}}))
                .unwrap_err()
                .message
                .contains("unexpected model name format")
        );
        assert!(count(json!({"contents": [user("a")], "generateContentRequest": {}})).is_err());
    }

    #[test]
    fn prefixes_grow_with_the_conversation() {
        let one = parse_json(&json!({"contents": [user("q")]})).unwrap();
        let two = parse_json(&json!({"contents": [user("q"),
            {"role": "model", "parts": [{"text": "a"}]}, user("r")]}))
        .unwrap();
        assert_eq!(one.prefixes[0], two.prefixes[0]);
        assert_eq!(two.prefixes.len(), 3);
        let other_model = parse(
            &serde_json::to_vec(&json!({"contents": [user("q")]})).unwrap(),
            Mode::Generate,
            "x",
        )
        .unwrap();
        assert_ne!(one.prefixes[0].0, other_model.prefixes[0].0);
    }
}
