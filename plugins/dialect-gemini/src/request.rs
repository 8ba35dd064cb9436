//! Decoding: a Gemini `GenerateContentRequest` (or `CountTokensRequest`) →
//! the canonical request (OpenAI Chat Completions shape).
//!
//! See the crate documentation for the mapping and the decisions it takes.

use orch_plugin_sdk::{DecodedRequest, IngressRequest, Operation, PluginError};

use crate::fields::{Fields, camel_case};
use crate::ids;
use crate::json::{Json, Object};
use crate::schema;

/// Part fields that qualify a part's data instead of being data themselves.
const PART_METADATA: &[&str] = &[
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "partMetadata",
    "mediaResolution",
];

/// Decodes a client request.
pub(crate) fn decode(request: &IngressRequest) -> Result<DecodedRequest, PluginError> {
    let body = match Json::parse_bytes(&request.body) {
        Ok(Json::Object(object)) => object,
        Ok(_) => {
            return Err(PluginError::bad_request(
                "Invalid JSON payload received: the request body must be a JSON object.",
            ));
        }
        Err(err) => {
            return Err(PluginError::bad_request(format!(
                "Invalid JSON payload received: {err}"
            )));
        }
    };
    let root = Fields::new(&body, "");
    let (generate, body_model) = match request.operation {
        Operation::Chat => (root.clone(), root.str("model")?),
        Operation::CountTokens => match root.object("generateContentRequest")? {
            Some(inner) => {
                if root.has("contents") {
                    return Err(bad_request(
                        "countTokens takes either contents or generateContentRequest, not both.",
                        "generateContentRequest",
                    ));
                }
                let model = inner.str("model")?;
                (inner, model)
            }
            None => (root.clone(), root.str("model")?),
        },
        Operation::Embeddings => {
            return Err(PluginError::unsupported(
                "the gemini dialect plugin does not translate embedding requests",
            ));
        }
    };
    let model = model_name(request.path_model.as_deref(), body_model)?;
    let streaming = request.operation == Operation::Chat && request.endpoint_streams == Some(true);
    let canonical = canonical_request(&generate, &model, streaming)?;
    Ok(DecodedRequest {
        model,
        streaming,
        body: canonical.to_string(),
    })
}

/// The model: the one in the URL path (`models/` stripped), else the body's.
fn model_name(path_model: Option<&str>, body_model: Option<&str>) -> Result<String, PluginError> {
    let raw = path_model
        .map(str::trim)
        .filter(|model| !model.is_empty())
        .or(body_model.map(str::trim))
        .unwrap_or_default();
    let name = raw.strip_prefix("models/").unwrap_or(raw);
    if name.is_empty() {
        Err(bad_request("The request names no model.", "model"))
    } else {
        Ok(name.to_owned())
    }
}

/// Translates one `GenerateContentRequest`.
fn canonical_request(
    request: &Fields<'_>,
    model: &str,
    streaming: bool,
) -> Result<Object, PluginError> {
    if request.has("cachedContent") {
        // The cache holds part of the prompt on Google's side: dropping the
        // reference would silently drop that part of the prompt.
        return Err(PluginError::unsupported(
            "the gemini dialect cannot translate cachedContent: the cached prompt lives on Google's servers",
        )
        .with_param(request.param("cachedContent")));
    }

    let mut messages = Vec::new();
    if let Some(system) = request.object("systemInstruction")? {
        messages.extend(system_message(&system)?);
    }
    let contents = request.objects("contents")?;
    if contents.is_empty() {
        return Err(bad_request(
            "contents is not specified",
            request.param("contents"),
        ));
    }
    let mut previous_calls: Vec<Call> = Vec::new();
    for turn in group_turns(&contents)? {
        match turn.role {
            Role::User => {
                user_turn(&turn, &previous_calls, &mut messages)?;
                previous_calls.clear();
            }
            Role::Model => {
                let (message, calls) = model_turn(&turn)?;
                messages.push(message);
                previous_calls = calls;
            }
        }
    }

    let mut out = Object::new()
        .with("model", model)
        .with("messages", messages);
    let mut tools = function_tools(request)?;
    let choice = tool_choice(request, &mut tools)?;
    if !tools.is_empty() {
        let tools: Vec<Json> = tools.into_iter().map(|(_, tool)| tool).collect();
        out.insert("tools", tools);
        if let Some(choice) = choice {
            out.insert("tool_choice", choice);
        }
    }
    if let Some(config) = request.object("generationConfig")? {
        generation_config(&config, &mut out)?;
    }
    if streaming {
        out.insert("stream", true);
        out.insert("stream_options", Object::new().with("include_usage", true));
    }
    Ok(out)
}

// ------------------------------------------------------------------- turns

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Model,
}

/// Consecutive contents of one role, merged: google-genai's chat sessions
/// record a streamed answer as one model content per chunk.
struct Turn<'a> {
    role: Role,
    parts: Vec<Fields<'a>>,
}

fn group_turns<'a>(contents: &[Fields<'a>]) -> Result<Vec<Turn<'a>>, PluginError> {
    let mut turns: Vec<Turn<'a>> = Vec::new();
    for content in contents {
        let role = match content.str("role")? {
            None | Some("" | "user") => Role::User,
            Some("model") => Role::Model,
            Some(other) => {
                return Err(bad_request(
                    format!("Please use a valid role: user, model (got `{other}`)."),
                    content.param("role"),
                ));
            }
        };
        let parts = content.objects("parts")?;
        if parts.is_empty() {
            return Err(bad_request(
                "contents.parts must not be empty.",
                content.param("parts"),
            ));
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => turns.push(Turn { role, parts }),
        }
    }
    Ok(turns)
}

/// What a part carries.
enum PartKind<'a> {
    Text(&'a str),
    InlineData(Fields<'a>),
    FileData(Fields<'a>),
    FunctionCall(Fields<'a>),
    FunctionResponse(Fields<'a>),
    /// Only a `thoughtSignature` (Gemini streams send `{"thoughtSignature"}`
    /// parts with an empty or absent text).
    SignatureOnly,
}

fn classify<'a>(part: &Fields<'a>) -> Result<PartKind<'a>, PluginError> {
    if let Some(text) = part.str("text")? {
        return Ok(PartKind::Text(text));
    }
    if let Some(blob) = part.object("inlineData")? {
        return Ok(PartKind::InlineData(blob));
    }
    if let Some(file) = part.object("fileData")? {
        return Ok(PartKind::FileData(file));
    }
    if let Some(call) = part.object("functionCall")? {
        return Ok(PartKind::FunctionCall(call));
    }
    if let Some(response) = part.object("functionResponse")? {
        return Ok(PartKind::FunctionResponse(response));
    }
    if let Some(key) = part
        .keys()
        .map(camel_case)
        .find(|key| !PART_METADATA.contains(&key.as_str()))
    {
        return Err(PluginError::unsupported(format!(
            "the gemini dialect cannot translate `{key}` parts"
        ))
        .with_param(part.param(&key)));
    }
    if part.str("thoughtSignature")?.is_some() {
        return Ok(PartKind::SignatureOnly);
    }
    Err(bad_request(
        "A part must carry data (text, inlineData, fileData, functionCall or functionResponse).",
        part.path(),
    ))
}

// --------------------------------------------------------------- system

fn system_message(system: &Fields<'_>) -> Result<Option<Json>, PluginError> {
    let mut texts = Vec::new();
    for part in system.objects("parts")? {
        match part.str("text")? {
            Some(text) => texts.push(text),
            None => {
                return Err(PluginError::unsupported(
                    "the gemini dialect translates only text parts in systemInstruction",
                )
                .with_param(part.path()));
            }
        }
    }
    let content = match texts.as_slice() {
        [] => return Ok(None),
        [text] => Json::from(*text),
        texts => Json::Array(texts.iter().map(|text| text_part(text)).collect()),
    };
    Ok(Some(
        Object::new()
            .with("role", "system")
            .with("content", content)
            .into(),
    ))
}

// ------------------------------------------------------------------ user

/// A function call of a model turn, for resolving the results that answer it.
#[derive(Debug)]
struct Call {
    id: String,
    name: String,
}

/// A `functionResponse` part.
struct FunctionResult {
    path: String,
    id: Option<String>,
    name: Option<String>,
    content: String,
}

/// Emits the turn's function results as `tool` messages (right after the
/// assistant message whose calls they answer, as the canonical form needs),
/// then its other parts as one `user` message.
fn user_turn(
    turn: &Turn<'_>,
    previous_calls: &[Call],
    messages: &mut Vec<Json>,
) -> Result<(), PluginError> {
    let mut content = Vec::new();
    let mut results = Vec::new();
    for part in &turn.parts {
        match classify(part)? {
            PartKind::Text(text) => content.push(text_part(text)),
            PartKind::InlineData(blob) => content.push(inline_image(&blob)?),
            PartKind::FileData(file) => content.push(file_image(&file)?),
            PartKind::FunctionResponse(response) => results.push(function_result(&response)?),
            PartKind::FunctionCall(_) => {
                return Err(bad_request(
                    "functionCall parts belong in model turns.",
                    part.param("functionCall"),
                ));
            }
            // Signatures belong to the model's turns; nothing to carry here.
            PartKind::SignatureOnly => {}
        }
    }
    let ids = resolve_result_ids(&results, previous_calls)?;
    for (result, id) in results.into_iter().zip(ids) {
        messages.push(
            Object::new()
                .with("role", "tool")
                .with("tool_call_id", id)
                .with("content", result.content)
                .into(),
        );
    }
    if !content.is_empty() {
        let content = match content.as_slice() {
            [Json::Object(part)] if part.get("type").and_then(Json::as_str) == Some("text") => {
                part.get("text").cloned().unwrap_or_default()
            }
            _ => Json::Array(content),
        };
        messages.push(
            Object::new()
                .with("role", "user")
                .with("content", content)
                .into(),
        );
    }
    Ok(())
}

fn function_result(response: &Fields<'_>) -> Result<FunctionResult, PluginError> {
    if !response.list("parts").is_empty() {
        return Err(PluginError::unsupported(
            "the gemini dialect cannot translate multimodal function responses (functionResponse.parts)",
        )
        .with_param(response.param("parts")));
    }
    let body = match response.get("response") {
        None => None,
        Some(Json::Object(object)) => Some(object),
        Some(_) => return Err(response.invalid("response", "an object")),
    };
    Ok(FunctionResult {
        path: response.path().to_owned(),
        id: response
            .str("id")?
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        name: response
            .str("name")?
            .filter(|name| !name.is_empty())
            .map(str::to_owned),
        content: tool_content(body),
    })
}

/// The canonical `content` of a function result: the string itself when the
/// response is `{"result": "<text>"}` or `{"output": "<text>"}` (what
/// google-genai's automatic function calling and Google's examples send for
/// a function returning text), else the response as compact JSON in the
/// client's key order.
fn tool_content(response: Option<&Object>) -> String {
    let Some(response) = response else {
        return "{}".to_owned();
    };
    let mut fields = response
        .iter()
        .filter(|(_, value)| !matches!(value, Json::Null));
    if let (Some(("result" | "output", Json::String(text))), None) = (fields.next(), fields.next())
    {
        return text.clone();
    }
    response.to_string()
}

/// The `tool_call_id` of each result: its own `id`, else the id of the first
/// call of the previous model turn with the same name that no other result
/// answers (results with an id claim their call first).
fn resolve_result_ids(
    results: &[FunctionResult],
    calls: &[Call],
) -> Result<Vec<String>, PluginError> {
    let mut claimed = vec![false; calls.len()];
    let mut claim = |matches: &dyn Fn(&Call) -> bool| -> Option<String> {
        let (call, slot) = calls
            .iter()
            .zip(claimed.iter_mut())
            .find(|(call, claimed)| !**claimed && matches(call))?;
        *slot = true;
        Some(call.id.clone())
    };
    for result in results {
        if let Some(id) = &result.id {
            claim(&|call: &Call| call.id == *id);
        }
    }
    let mut ids = Vec::with_capacity(results.len());
    for result in results {
        if let Some(id) = &result.id {
            ids.push(id.clone());
            continue;
        }
        let Some(name) = &result.name else {
            return Err(bad_request(
                "A functionResponse needs a name or an id.",
                format!("{}.name", result.path),
            ));
        };
        match claim(&|call: &Call| call.name == *name) {
            Some(id) => ids.push(id),
            None => {
                return Err(bad_request(
                    format!(
                        "The functionResponse for `{name}` answers no functionCall of the previous model turn: a function response turn must come right after the function call turn."
                    ),
                    result.path.clone(),
                ));
            }
        }
    }
    Ok(ids)
}

// ----------------------------------------------------------------- model

/// Translates a model turn into an assistant message, and returns its calls.
fn model_turn(turn: &Turn<'_>) -> Result<(Json, Vec<Call>), PluginError> {
    let mut thinking = Thinking::default();
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut calls = Vec::new();
    for part in &turn.parts {
        let signature = thought_signature(part)?;
        let signature = signature.as_deref();
        if part.bool("thought")? == Some(true) && !part.has("functionCall") {
            thinking.thought(part.str("text")?.unwrap_or_default(), signature);
            continue;
        }
        match classify(part)? {
            PartKind::Text(piece) => {
                thinking.close();
                if !piece.is_empty() {
                    text.get_or_insert_with(String::new).push_str(piece);
                }
                if let Some(signature) = signature {
                    thinking.signature_only(signature);
                }
            }
            PartKind::SignatureOnly => {
                thinking.close();
                if let Some(signature) = signature {
                    thinking.signature_only(signature);
                }
            }
            PartKind::FunctionCall(call) => {
                thinking.close();
                let (tool_call, call) = tool_call(&call, calls.len(), signature)?;
                tool_calls.push(tool_call);
                calls.push(call);
            }
            PartKind::FunctionResponse(_) => {
                return Err(bad_request(
                    "functionResponse parts belong in user turns.",
                    part.param("functionResponse"),
                ));
            }
            PartKind::InlineData(_) | PartKind::FileData(_) => {
                return Err(PluginError::unsupported(
                    "the gemini dialect cannot translate media parts in model turns",
                )
                .with_param(part.path()));
            }
        }
    }
    thinking.close();

    let content = match text {
        Some(text) => Json::from(text),
        None if !tool_calls.is_empty() => Json::Null,
        None => Json::from(""),
    };
    let mut message = Object::new()
        .with("role", "assistant")
        .with("content", content);
    if !thinking.reasoning.is_empty() {
        message.insert("reasoning_content", thinking.reasoning);
    }
    if !thinking.blocks.is_empty() {
        message.insert("thinking_blocks", thinking.blocks);
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls", tool_calls);
    }
    Ok((message.into(), calls))
}

/// A part's `thoughtSignature`. The field is protobuf `bytes`, and
/// google-genai decodes it and sends it back in the URL-safe alphabet:
/// mapping that back to the standard alphabet restores the exact string the
/// gateway sent (providers compare signatures as strings). Anything else
/// (standard base64, or a string that is not URL-safe base64) is unchanged.
fn thought_signature(part: &Fields<'_>) -> Result<Option<String>, PluginError> {
    Ok(part
        .str("thoughtSignature")?
        .filter(|signature| !signature.is_empty())
        .map(|signature| {
            let url_safe = signature.contains(['-', '_'])
                && signature
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='));
            if url_safe {
                signature.replace('-', "+").replace('_', "/")
            } else {
                signature.to_owned()
            }
        }))
}

/// Collects a model turn's thoughts into `thinking_blocks` and
/// `reasoning_content`. Consecutive thought parts form one block, closed by
/// the first of them that carries a signature (streams deliver a thought's
/// text in pieces and its signature last) or by any other part.
#[derive(Default)]
struct Thinking {
    reasoning: String,
    blocks: Vec<Json>,
    open: Option<String>,
}

impl Thinking {
    fn thought(&mut self, text: &str, signature: Option<&str>) {
        self.reasoning.push_str(text);
        let open = self.open.get_or_insert_with(String::new);
        open.push_str(text);
        if let Some(signature) = signature {
            let text = self.open.take().unwrap_or_default();
            self.blocks.push(thinking_block(&text, Some(signature)));
        }
    }

    /// A signature on a non-thought part: a block with empty `thinking`.
    fn signature_only(&mut self, signature: &str) {
        self.blocks.push(thinking_block("", Some(signature)));
    }

    /// Ends the open block (a thought without a signature).
    fn close(&mut self) {
        if let Some(text) = self.open.take().filter(|text| !text.is_empty()) {
            self.blocks.push(thinking_block(&text, None));
        }
    }
}

fn thinking_block(text: &str, signature: Option<&str>) -> Json {
    Object::new()
        .with("type", "thinking")
        .with("thinking", text)
        .with_opt("signature", signature)
        .into()
}

/// A `functionCall` → a canonical tool call (and its id and name).
fn tool_call(
    call: &Fields<'_>,
    position: usize,
    signature: Option<&str>,
) -> Result<(Json, Call), PluginError> {
    let name = call
        .str("name")?
        .filter(|name| !name.is_empty())
        .ok_or_else(|| bad_request("A functionCall needs a name.", call.param("name")))?;
    let arguments = match call.get("args") {
        None => "{}".to_owned(),
        Some(Json::Object(args)) => args.to_string(),
        Some(_) => return Err(call.invalid("args", "an object")),
    };
    let id = call
        .str("id")?
        .filter(|id| !id.is_empty())
        .map_or_else(|| ids::call_id(position, name), str::to_owned);
    let extra = signature.map(|signature| {
        Object::new().with("google", Object::new().with("thought_signature", signature))
    });
    let tool_call = Object::new()
        .with("id", id.clone())
        .with("type", "function")
        .with(
            "function",
            Object::new()
                .with("name", name)
                .with("arguments", arguments),
        )
        .with_opt("extra_content", extra);
    Ok((
        tool_call.into(),
        Call {
            id,
            name: name.to_owned(),
        },
    ))
}

// ----------------------------------------------------------------- media

fn text_part(text: &str) -> Json {
    Object::new().with("type", "text").with("text", text).into()
}

fn image_part(url: String) -> Json {
    Object::new()
        .with("type", "image_url")
        .with("image_url", Object::new().with("url", url))
        .into()
}

/// `inlineData` → an image part with a `data:` URI.
fn inline_image(blob: &Fields<'_>) -> Result<Json, PluginError> {
    let mime = blob
        .str("mimeType")?
        .map(str::trim)
        .filter(|mime| !mime.is_empty())
        .ok_or_else(|| bad_request("inlineData needs a mimeType.", blob.param("mimeType")))?;
    let data = blob
        .str("data")?
        .ok_or_else(|| bad_request("inlineData needs data.", blob.param("data")))?;
    if !is_image(mime) {
        return Err(PluginError::unsupported(format!(
            "the gemini dialect translates only images (image/*) in inlineData, not `{mime}`"
        ))
        .with_param(blob.param("mimeType")));
    }
    Ok(image_part(format!(
        "data:{mime};base64,{}",
        standard_base64(data)
    )))
}

/// `fileData` → an image part with the file's URI.
fn file_image(file: &Fields<'_>) -> Result<Json, PluginError> {
    let uri = file
        .str("fileUri")?
        .filter(|uri| !uri.is_empty())
        .ok_or_else(|| bad_request("fileData needs a fileUri.", file.param("fileUri")))?;
    match file.str("mimeType")?.map(str::trim) {
        Some(mime) if is_image(mime) => Ok(image_part(uri.to_owned())),
        None if image_extension(uri) => Ok(image_part(uri.to_owned())),
        Some(mime) => Err(PluginError::unsupported(format!(
            "the gemini dialect translates only images (image/*) in fileData, not `{mime}`"
        ))
        .with_param(file.param("mimeType"))),
        None => Err(PluginError::unsupported(
            "the gemini dialect translates only images in fileData: give an image/* mimeType",
        )
        .with_param(file.param("mimeType"))),
    }
}

fn is_image(mime: &str) -> bool {
    mime.get(..6)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("image/"))
}

/// Whether a file URI without a MIME type names an image by its extension.
fn image_extension(uri: &str) -> bool {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let extension = path
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        extension.as_str(),
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "heic" | "heif"
    )
}

/// Base64 as a `data:` URI needs it: standard alphabet, padded, no
/// whitespace. Protobuf JSON (and so the Gemini API) also takes the URL-safe
/// alphabet, which google-genai sends for every `bytes` field; the bytes are
/// the same.
fn standard_base64(data: &str) -> String {
    let mut out: String = data
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    if !out.ends_with('=') {
        match out.len() % 4 {
            2 => out.push_str("=="),
            3 => out.push('='),
            _ => {}
        }
    }
    out
}

// ----------------------------------------------------------------- tools

/// The function declarations as canonical tools, with their names.
fn function_tools(request: &Fields<'_>) -> Result<Vec<(String, Json)>, PluginError> {
    let mut tools = Vec::new();
    for tool in request.objects("tools")? {
        if let Some(key) = tool
            .keys()
            .map(camel_case)
            .find(|key| key != "functionDeclarations")
        {
            return Err(PluginError::unsupported(format!(
                "the gemini dialect cannot translate the `{key}` tool: only functionDeclarations are supported"
            ))
            .with_param(tool.param(&key)));
        }
        for declaration in tool.objects("functionDeclarations")? {
            tools.push(function_tool(&declaration)?);
        }
    }
    Ok(tools)
}

fn function_tool(declaration: &Fields<'_>) -> Result<(String, Json), PluginError> {
    let name = declaration
        .str("name")?
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            bad_request(
                "A function declaration needs a name.",
                declaration.param("name"),
            )
        })?;
    let parameters = match (
        declaration.get("parameters"),
        declaration.get("parametersJsonSchema"),
    ) {
        (Some(_), Some(_)) => {
            return Err(bad_request(
                "Set only one of parameters and parametersJsonSchema.",
                declaration.param("parametersJsonSchema"),
            ));
        }
        (Some(parameters), None) => Some(schema::to_json_schema(parameters)),
        (None, Some(parameters)) => Some(parameters.clone()),
        (None, None) => None,
    };
    let function = Object::new()
        .with("name", name)
        .with_opt("description", declaration.str("description")?)
        .with_opt("parameters", parameters);
    let tool = Object::new()
        .with("type", "function")
        .with("function", function);
    Ok((name.to_owned(), tool.into()))
}

/// `toolConfig.functionCallingConfig` → `tool_choice`. `allowedFunctionNames`
/// with one name under `ANY` names that function; with several names (under
/// `ANY` or `VALIDATED`) the tools are narrowed to them.
fn tool_choice(
    request: &Fields<'_>,
    tools: &mut Vec<(String, Json)>,
) -> Result<Option<Json>, PluginError> {
    let Some(config) = request.object("toolConfig")? else {
        return Ok(None);
    };
    let Some(calling) = config.object("functionCallingConfig")? else {
        return Ok(None);
    };
    let allowed = calling.strings("allowedFunctionNames")?;
    if let Some(unknown) = allowed
        .iter()
        .find(|name| !tools.iter().any(|(declared, _)| declared == *name))
    {
        return Err(bad_request(
            format!("allowedFunctionNames names `{unknown}`, which is not a declared function."),
            calling.param("allowedFunctionNames"),
        ));
    }
    let mut narrow = || {
        if !allowed.is_empty() {
            tools.retain(|(name, _)| allowed.contains(&name.as_str()));
        }
    };
    let mode = calling.str("mode")?.map(str::to_ascii_uppercase);
    let choice = match mode.as_deref() {
        None | Some("MODE_UNSPECIFIED") => return Ok(None),
        Some("AUTO") => Json::from("auto"),
        Some("VALIDATED") => {
            narrow();
            Json::from("auto")
        }
        Some("NONE") => Json::from("none"),
        Some("ANY") => match allowed.as_slice() {
            [name] => Object::new()
                .with("type", "function")
                .with("function", Object::new().with("name", *name))
                .into(),
            _ => {
                narrow();
                Json::from("required")
            }
        },
        Some(other) => {
            return Err(bad_request(
                format!("Unknown function calling mode `{other}` (AUTO, ANY, NONE or VALIDATED)."),
                calling.param("mode"),
            ));
        }
    };
    Ok(Some(choice))
}

// ------------------------------------------------------ generation config

fn generation_config(config: &Fields<'_>, out: &mut Object) -> Result<(), PluginError> {
    if let Some(format) = response_format(config)? {
        out.insert("response_format", format);
    }
    let numbers = [
        ("temperature", "temperature"),
        ("topP", "top_p"),
        // No canonical field: carried as the `top_k` extension that
        // Anthropic, Gemini and vLLM-style servers understand.
        ("topK", "top_k"),
    ];
    for (gemini, canonical) in numbers {
        if let Some(number) = config.number(gemini)? {
            out.insert(canonical, number);
        }
    }
    if let Some(max) = config.int("maxOutputTokens")? {
        out.insert("max_completion_tokens", max);
    }
    let stop = config.strings("stopSequences")?;
    if !stop.is_empty() {
        let stop: Vec<Json> = stop.into_iter().map(Json::from).collect();
        out.insert("stop", stop);
    }
    if let Some(count) = config.int("candidateCount")? {
        out.insert("n", count);
    }
    if let Some(seed) = config.int("seed")? {
        out.insert("seed", seed);
    }
    for (gemini, canonical) in [
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ] {
        if let Some(number) = config.number(gemini)? {
            out.insert(canonical, number);
        }
    }
    if config.bool("responseLogprobs")? == Some(true) {
        return Err(PluginError::unsupported(
            "the gemini dialect cannot translate responseLogprobs",
        )
        .with_param(config.param("responseLogprobs")));
    }
    for modality in config.strings("responseModalities")? {
        if !modality.eq_ignore_ascii_case("TEXT") {
            return Err(PluginError::unsupported(format!(
                "the gemini dialect translates only TEXT output, not the `{modality}` modality"
            ))
            .with_param(config.param("responseModalities")));
        }
    }
    if let Some(thinking) = config.object("thinkingConfig")? {
        thinking_config(&thinking, out)?;
    }
    Ok(())
}

/// `responseMimeType` (+ `responseSchema` / `responseJsonSchema`) →
/// `response_format`.
fn response_format(config: &Fields<'_>) -> Result<Option<Json>, PluginError> {
    let schema = match (
        config.get("responseSchema"),
        config.get("responseJsonSchema"),
    ) {
        (Some(_), Some(_)) => {
            return Err(bad_request(
                "Set only one of responseSchema and responseJsonSchema.",
                config.param("responseJsonSchema"),
            ));
        }
        (Some(gemini), None) => Some(schema::to_json_schema(gemini)),
        (None, Some(json_schema)) => Some(json_schema.clone()),
        (None, None) => None,
    };
    let mime = config
        .str("responseMimeType")?
        .map(|mime| mime.trim().to_ascii_lowercase());
    match mime.as_deref() {
        Some("application/json") => Ok(Some(match schema {
            Some(schema) => Object::new()
                .with("type", "json_schema")
                .with(
                    "json_schema",
                    Object::new()
                        .with("name", "response")
                        .with("schema", schema),
                )
                .into(),
            None => Object::new().with("type", "json_object").into(),
        })),
        None | Some("" | "text/plain") => match schema {
            Some(_) => Err(bad_request(
                "A response schema needs responseMimeType application/json.",
                config.param("responseMimeType"),
            )),
            None => Ok(None),
        },
        Some(other) => Err(PluginError::unsupported(format!(
            "the gemini dialect cannot translate responseMimeType `{other}` (text/plain or application/json)"
        ))
        .with_param(config.param("responseMimeType"))),
    }
}

/// `thinkingConfig` → `thinking` (a positive budget) and `reasoning_effort`
/// (a `thinkingLevel`). `includeThoughts` has no canonical field: thoughts are
/// returned whenever the provider returns reasoning.
fn thinking_config(thinking: &Fields<'_>, out: &mut Object) -> Result<(), PluginError> {
    thinking.bool("includeThoughts")?;
    if let Some(level) = thinking.str("thinkingLevel")? {
        let effort = level.to_ascii_lowercase();
        match effort.as_str() {
            "minimal" | "low" | "medium" | "high" => out.insert("reasoning_effort", effort),
            "thinking_level_unspecified" => {}
            _ => {
                return Err(bad_request(
                    format!("Unknown thinkingLevel `{level}` (MINIMAL, LOW, MEDIUM or HIGH)."),
                    thinking.param("thinkingLevel"),
                ));
            }
        }
    }
    // 0 turns thinking off and -1 asks for a dynamic budget: both leave the
    // provider's default.
    if let Some(budget) = thinking.int("thinkingBudget")?.filter(|budget| *budget > 0) {
        out.insert(
            "thinking",
            Object::new()
                .with("type", "enabled")
                .with("budget_tokens", budget),
        );
    }
    Ok(())
}

fn bad_request(message: impl Into<String>, param: impl Into<String>) -> PluginError {
    PluginError::bad_request(message).with_param(param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        assert_eq!(
            model_name(Some("models/gemini-2.5-flash"), None).expect("ok"),
            "gemini-2.5-flash"
        );
        assert_eq!(model_name(Some("my-alias"), None).expect("ok"), "my-alias");
        assert_eq!(model_name(None, Some("models/x")).expect("ok"), "x");
        assert_eq!(model_name(Some(" "), Some("y")).expect("ok"), "y");
        let err = model_name(None, None).expect_err("no model");
        assert_eq!(err.param.as_deref(), Some("model"));
        assert!(model_name(Some("models/"), None).is_err());
    }

    #[test]
    fn base64_is_normalised() {
        assert_eq!(standard_base64("ab-_cd"), "ab+/cd==");
        assert_eq!(standard_base64("abc"), "abc=");
        assert_eq!(standard_base64("ab\ncd=="), "abcd==");
        assert_eq!(standard_base64("abcd"), "abcd");
    }

    #[test]
    fn image_detection() {
        assert!(is_image("image/png"));
        assert!(is_image("IMAGE/JPEG"));
        assert!(!is_image("application/pdf"));
        assert!(!is_image("img"));
        assert!(image_extension("gs://bucket/cat.JPG"));
        assert!(image_extension("https://x.test/a.webp?sig=1"));
        assert!(!image_extension(
            "https://generativelanguage.googleapis.com/v1beta/files/abc"
        ));
    }

    #[test]
    fn tool_content_unwraps_single_text_results() {
        let object = |text: &str| match Json::parse(text).expect("json") {
            Json::Object(object) => object,
            _ => panic!("object"),
        };
        assert_eq!(
            tool_content(Some(&object(r#"{"result":"sunny"}"#))),
            "sunny"
        );
        assert_eq!(
            tool_content(Some(&object(r#"{"output":"ok","x":null}"#))),
            "ok"
        );
        assert_eq!(
            tool_content(Some(&object(r#"{"result":{"t":21,"a":1}}"#))),
            r#"{"result":{"t":21,"a":1}}"#
        );
        assert_eq!(
            tool_content(Some(&object(r#"{"result":"a","extra":1}"#))),
            r#"{"result":"a","extra":1}"#
        );
        assert_eq!(
            tool_content(Some(&object(r#"{"error":"boom"}"#))),
            r#"{"error":"boom"}"#
        );
        assert_eq!(tool_content(None), "{}");
    }
}
