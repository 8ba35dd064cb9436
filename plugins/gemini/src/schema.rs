//! JSON Schema (as OpenAI clients write it) → Gemini's `Schema` object, the
//! OpenAPI 3.0 subset that `FunctionDeclaration.parameters` and
//! `generationConfig.responseSchema` accept on every Gemini model.
//!
//! Gemini rejects requests with schema keywords it does not know, so the
//! conversion keeps only the fields `Schema` defines and rewrites the JSON
//! Schema idioms it lacks:
//!
//! | JSON Schema | Gemini `Schema` |
//! |---|---|
//! | `"type": "string"` | `"type": "STRING"` (enum names) |
//! | `"type": ["string", "null"]`, `anyOf: [X, {"type": "null"}]` | `X` with `"nullable": true` |
//! | `"type": ["string", "integer"]` | `anyOf` of the types |
//! | `oneOf` | `anyOf` |
//! | `allOf` | its members merged |
//! | `$ref` to `#/$defs/…` (any local pointer) | the definition inlined; a recursive reference becomes the definition's `type` and `description` only |
//! | `const: "x"` | `enum: ["x"]` |
//! | `enum` with non-string values | dropped (Gemini enums are strings) |
//! | `format` | kept when Gemini knows it (`date-time`, `enum`, `float`, `double`, `int32`, `int64`), else dropped |
//! | `required` | kept for properties that exist |
//! | `properties: {}` | dropped |
//! | `additionalProperties`, `$schema`, `$defs`, `strict`, `examples`, `exclusiveMinimum`, `multipleOf`, `patternProperties`, `not`, tuple `items`, … | dropped |
//!
//! Kept as they are: `description`, `title`, `pattern`, `default`, `example`,
//! `minimum`, `maximum`, `minItems`, `maxItems`, `minLength`, `maxLength`,
//! `minProperties`, `maxProperties`, `nullable`, `propertyOrdering`. Property
//! order is preserved; for response schemas it is also sent as
//! `propertyOrdering`, because Gemini otherwise generates properties in
//! alphabetical order.

use std::cell::Cell;

use crate::ordered::Json;

/// Deepest nesting converted; deeper schemas are cut to `{}`.
const MAX_DEPTH: usize = 48;

/// Most schema nodes converted for one request (guards against reference
/// graphs that expand exponentially); later nodes are cut to their type.
const MAX_NODES: usize = 5_000;

/// Keywords copied unchanged.
const COPIED: &[&str] = &[
    "description",
    "title",
    "pattern",
    "default",
    "example",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
];

/// Converts a JSON schema. With `ordering`, objects with several properties
/// get `propertyOrdering` (for response schemas).
pub(crate) fn to_gemini(schema: &Json, ordering: bool) -> Json {
    let converter = Converter {
        root: schema,
        ordering,
        nodes: Cell::new(0),
    };
    converter.convert(schema, 0, &mut Vec::new())
}

/// Whether a converted schema is an object without properties, which Gemini
/// refuses as function parameters ("properties: should be non-empty for
/// OBJECT type"): such declarations are sent without `parameters`.
pub(crate) fn is_empty_object(schema: &Json) -> bool {
    match schema {
        Json::Object(fields) => {
            fields.is_empty()
                || (schema.get("type").and_then(Json::as_str) == Some("OBJECT")
                    && schema.get("properties").is_none()
                    && schema.get("anyOf").is_none())
        }
        _ => true,
    }
}

struct Converter<'a> {
    root: &'a Json,
    ordering: bool,
    nodes: Cell<usize>,
}

impl<'a> Converter<'a> {
    /// Converts one schema node. `refs` holds the references being expanded
    /// (to cut cycles).
    fn convert(&self, schema: &'a Json, depth: usize, refs: &mut Vec<&'a str>) -> Json {
        let Json::Object(fields) = schema else {
            // `true` / `false` schemas and garbage: no constraint.
            return Json::object();
        };
        self.nodes.set(self.nodes.get() + 1);
        if depth > MAX_DEPTH {
            return Json::object();
        }
        if self.nodes.get() > MAX_NODES {
            return shallow(schema);
        }
        if let Some(reference) = schema.get("$ref").and_then(Json::as_str) {
            return self.convert_ref(schema, reference, depth, refs);
        }

        let (mut out, mut nullable) = convert_type(schema.get("type"));
        let kind = out.get("type").and_then(Json::as_str).map(str::to_owned);
        for (key, value) in fields {
            match key.as_str() {
                "properties" => {
                    if let Json::Object(properties) = value
                        && !properties.is_empty()
                    {
                        let converted = properties
                            .iter()
                            .map(|(name, property)| {
                                (name.clone(), self.convert(property, depth + 1, refs))
                            })
                            .collect();
                        out.insert("properties", Json::Object(converted));
                    }
                }
                "items" if value.is_object() => {
                    out.insert("items", self.convert(value, depth + 1, refs));
                }
                "anyOf" | "oneOf" => {
                    if let Json::Array(options) = value {
                        let (merged, option_nullable) = self.convert_any_of(options, depth, refs);
                        nullable |= option_nullable;
                        merge_into(&mut out, merged);
                    }
                }
                "allOf" => {
                    if let Json::Array(members) = value {
                        for member in members {
                            merge_into(&mut out, self.convert(member, depth + 1, refs));
                        }
                    }
                }
                "enum" => {
                    if let Json::Array(values) = value {
                        nullable |= values.contains(&Json::Null);
                        let strings: Vec<Json> = values
                            .iter()
                            .filter(|v| !matches!(v, Json::Null))
                            .cloned()
                            .collect();
                        let string_typed = matches!(kind.as_deref(), None | Some("STRING"));
                        if string_typed
                            && !strings.is_empty()
                            && strings.iter().all(|v| v.as_str().is_some())
                        {
                            out.insert("enum", Json::Array(strings));
                        }
                    }
                }
                "const" => {
                    if let Json::String(text) = value
                        && matches!(kind.as_deref(), None | Some("STRING"))
                    {
                        out.insert("enum", Json::Array(vec![Json::String(text.clone())]));
                    }
                }
                "format" => {
                    if let Some(format) = value.as_str()
                        && format_supported(kind.as_deref(), format)
                    {
                        out.insert("format", value.clone());
                    }
                }
                "nullable" => nullable |= matches!(value, Json::Bool(true)),
                "propertyOrdering" => out.insert("propertyOrdering", value.clone()),
                key if COPIED.contains(&key) => out.insert(key, value.clone()),
                _ => {}
            }
        }
        if out.get("enum").is_some() && out.get("type").is_none() {
            out.insert("type", Json::String("STRING".to_owned()));
        }
        if let Some(Json::Array(required)) = schema.get("required") {
            let known: Vec<Json> = required
                .iter()
                .filter(|name| {
                    name.as_str().is_some_and(|name| {
                        out.get("properties")
                            .is_some_and(|properties| properties.get(name).is_some())
                    })
                })
                .cloned()
                .collect();
            if !known.is_empty() {
                out.insert("required", Json::Array(known));
            }
        }
        if self.ordering
            && out.get("propertyOrdering").is_none()
            && let Some(Json::Object(properties)) = out.get("properties")
            && properties.len() > 1
        {
            let names = properties
                .iter()
                .map(|(name, _)| Json::String(name.clone()))
                .collect();
            out.insert("propertyOrdering", Json::Array(names));
        }
        if nullable {
            out.insert("nullable", Json::Bool(true));
        }
        out
    }

    /// Inlines a local reference; a cycle becomes a shallow copy.
    fn convert_ref(
        &self,
        schema: &'a Json,
        reference: &'a str,
        depth: usize,
        refs: &mut Vec<&'a str>,
    ) -> Json {
        let Some(target) = resolve(self.root, reference) else {
            return description_only(schema);
        };
        let mut out = if refs.contains(&reference) {
            shallow(target)
        } else {
            refs.push(reference);
            let converted = self.convert(target, depth + 1, refs);
            refs.pop();
            converted
        };
        // Sibling keywords of `$ref` (allowed since draft 2019-09) refine it.
        for key in ["description", "title"] {
            if let Some(value) = schema.get(key) {
                out.insert(key, value.clone());
            }
        }
        if matches!(schema.get("nullable"), Some(Json::Bool(true))) {
            out.insert("nullable", Json::Bool(true));
        }
        out
    }

    /// Converts `anyOf`/`oneOf` options: `{"type": "null"}` options become
    /// `nullable`; a single remaining option is merged into the parent.
    fn convert_any_of(
        &self,
        options: &'a [Json],
        depth: usize,
        refs: &mut Vec<&'a str>,
    ) -> (Json, bool) {
        let mut nullable = false;
        let mut converted = Vec::with_capacity(options.len());
        for option in options {
            if option.get("type").and_then(Json::as_str) == Some("null") {
                nullable = true;
                continue;
            }
            converted.push(self.convert(option, depth + 1, refs));
        }
        match converted.len() {
            0 => (Json::object(), nullable),
            1 => (converted.swap_remove(0), nullable),
            _ => (
                Json::Object(vec![("anyOf".to_owned(), Json::Array(converted))]),
                nullable,
            ),
        }
    }
}

/// Converts `type` (a name or a list of names) into the converted schema's
/// first field; returns whether `null` was among the names.
fn convert_type(kind: Option<&Json>) -> (Json, bool) {
    let mut out = Json::object();
    match kind {
        Some(Json::String(name)) if name != "null" => {
            out.insert("type", type_name(name));
            (out, false)
        }
        Some(Json::String(_)) => (out, true),
        Some(Json::Array(names)) => {
            let names: Vec<&str> = names.iter().filter_map(Json::as_str).collect();
            let nullable = names.contains(&"null");
            let real: Vec<&str> = names.into_iter().filter(|n| *n != "null").collect();
            match real.as_slice() {
                [] => {}
                [one] => out.insert("type", type_name(one)),
                several => {
                    let options = several
                        .iter()
                        .map(|name| Json::Object(vec![("type".to_owned(), type_name(name))]))
                        .collect();
                    out.insert("anyOf", Json::Array(options));
                }
            }
            (out, nullable)
        }
        _ => (out, false),
    }
}

/// `string` → `STRING`.
fn type_name(name: &str) -> Json {
    Json::String(name.to_ascii_uppercase())
}

/// Formats Gemini accepts for a type.
fn format_supported(kind: Option<&str>, format: &str) -> bool {
    match kind {
        Some("STRING") => matches!(format, "date-time" | "enum"),
        Some("NUMBER") => matches!(format, "float" | "double"),
        Some("INTEGER") => matches!(format, "int32" | "int64"),
        _ => false,
    }
}

/// Merges `from` into `into`: properties and required names are combined,
/// other keys are added when missing.
fn merge_into(into: &mut Json, from: Json) {
    let Json::Object(fields) = from else {
        return;
    };
    for (key, value) in fields {
        match (key.as_str(), into.get(&key).cloned(), value) {
            ("properties", Some(Json::Object(mut mine)), Json::Object(theirs)) => {
                for (name, property) in theirs {
                    if !mine.iter().any(|(n, _)| *n == name) {
                        mine.push((name, property));
                    }
                }
                into.insert("properties", Json::Object(mine));
            }
            ("required", Some(Json::Array(mut mine)), Json::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
                into.insert("required", Json::Array(mine));
            }
            (_, Some(_), _) => {}
            (_, None, value) => into.insert(&key, value),
        }
    }
}

/// A schema's type and description only (for cut-off recursion).
fn shallow(schema: &Json) -> Json {
    let (mut out, nullable) = convert_type(schema.get("type"));
    if let Some(description) = schema.get("description") {
        out.insert("description", description.clone());
    }
    if nullable {
        out.insert("nullable", Json::Bool(true));
    }
    out
}

/// A schema's description only (for unresolvable references).
fn description_only(schema: &Json) -> Json {
    let mut out = Json::object();
    if let Some(description) = schema.get("description") {
        out.insert("description", description.clone());
    }
    out
}

/// Resolves a local JSON pointer reference (`#/$defs/Name`) in `root`.
fn resolve<'a>(root: &'a Json, reference: &str) -> Option<&'a Json> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    let mut node = root;
    for token in pointer.strip_prefix('/')?.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        node = match node {
            Json::Object(_) => node.get(&token)?,
            Json::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}
