//! Gemini `Schema` (an OpenAPI 3.0 subset) → JSON Schema.
//!
//! `FunctionDeclaration.parameters` and `GenerationConfig.responseSchema` use
//! Gemini's `Schema` message; google-genai fills them from Python type hints
//! and Pydantic models with upper-case types (`"OBJECT"`), `nullable` and
//! `propertyOrdering`. The canonical form (OpenAI) needs JSON Schema, so:
//!
//! * `type` is lower-cased (`TYPE_UNSPECIFIED` is dropped);
//! * `nullable: true` adds `"null"` to `type` (or a `{"type":"null"}` branch to
//!   `anyOf` when there is no `type`);
//! * `propertyOrdering` orders `properties` (listed names first, the rest in
//!   document order) and is then dropped;
//! * `format: "enum"` (Gemini's marker for string enums) is dropped;
//! * snake_case keywords (`any_of`, `max_items`, ...) become camelCase, and
//!   the int64 keywords given as strings (`"maxItems": "3"`, protobuf JSON)
//!   become numbers;
//! * everything else is kept as written, in order.
//!
//! `parametersJsonSchema` and `responseJsonSchema` already are JSON Schema and
//! are not converted.

use crate::fields::camel_case;
use crate::json::{Json, Object};

/// Schema keywords whose value is one schema.
const SCHEMA_KEYWORDS: &[&str] = &["items", "additionalProperties", "not"];
/// Schema keywords whose value is a list of schemas.
const SCHEMA_LIST_KEYWORDS: &[&str] = &["anyOf", "oneOf", "allOf", "prefixItems"];
/// Keywords that are int64 in the `Schema` message (strings in protobuf JSON).
const INT64_KEYWORDS: &[&str] = &[
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
];

/// Converts a Gemini `Schema` into JSON Schema. Values that are not objects
/// are returned unchanged.
pub(crate) fn to_json_schema(schema: &Json) -> Json {
    match schema {
        Json::Object(object) => Json::Object(convert(object)),
        other => other.clone(),
    }
}

fn convert(schema: &Object) -> Object {
    let mut nullable = false;
    let mut ordering: Vec<&str> = Vec::new();
    for (key, value) in schema.iter() {
        match camel_case(key).as_str() {
            "nullable" => nullable = value.as_bool() == Some(true),
            "propertyOrdering" => {
                ordering = value
                    .as_array()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Json::as_str)
                    .collect();
            }
            _ => {}
        }
    }

    let mut out = Object::new();
    for (key, value) in schema.iter() {
        if matches!(value, Json::Null) {
            continue;
        }
        let key = camel_case(key);
        match key.as_str() {
            "nullable" | "propertyOrdering" => {}
            "type" => {
                if let Some(kind) = convert_type(value) {
                    out.insert(key, kind);
                }
            }
            "format" if value.as_str() == Some("enum") => {}
            "properties" => match value {
                Json::Object(properties) => {
                    out.insert(key, convert_properties(properties, &ordering));
                }
                other => out.insert(key, other.clone()),
            },
            k if SCHEMA_KEYWORDS.contains(&k) => out.insert(key, to_json_schema(value)),
            k if SCHEMA_LIST_KEYWORDS.contains(&k) => {
                let converted = match value {
                    Json::Array(items) => Json::Array(items.iter().map(to_json_schema).collect()),
                    other => other.clone(),
                };
                out.insert(key, converted);
            }
            k if INT64_KEYWORDS.contains(&k) => {
                let number = value
                    .as_str()
                    .and_then(|text| text.trim().parse::<u64>().ok())
                    .map_or_else(|| value.clone(), Json::from);
                out.insert(key, number);
            }
            _ => out.insert(key, value.clone()),
        }
    }
    if nullable {
        make_nullable(&mut out);
    }
    out
}

/// `"STRING"` → `"string"`; a list of types is lower-cased element-wise.
fn convert_type(kind: &Json) -> Option<Json> {
    match kind {
        Json::String(name) if name.eq_ignore_ascii_case("TYPE_UNSPECIFIED") => None,
        Json::String(name) => Some(Json::from(name.to_ascii_lowercase())),
        Json::Array(names) => Some(Json::Array(
            names
                .iter()
                .map(|name| match name {
                    Json::String(name) => Json::from(name.to_ascii_lowercase()),
                    other => other.clone(),
                })
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Converts each property schema, ordered by `ordering` first.
fn convert_properties(properties: &Object, ordering: &[&str]) -> Object {
    let mut out = Object::new();
    for name in ordering {
        if let Some(schema) = properties.get(name) {
            out.insert(*name, to_json_schema(schema));
        }
    }
    for (name, schema) in properties.iter() {
        if !ordering.contains(&name) {
            out.insert(name, to_json_schema(schema));
        }
    }
    out
}

/// Lets a converted schema also accept `null`.
fn make_nullable(schema: &mut Object) {
    match schema.get("type").cloned() {
        Some(Json::String(kind)) if kind != "null" => {
            schema.insert(
                "type",
                Json::Array(vec![Json::from(kind), Json::from("null")]),
            );
        }
        Some(Json::Array(mut kinds)) => {
            if !kinds.iter().any(|kind| kind.as_str() == Some("null")) {
                kinds.push(Json::from("null"));
            }
            schema.insert("type", Json::Array(kinds));
        }
        Some(_) => {}
        None => {
            if let Some(Json::Array(branches)) = schema.get("anyOf").cloned() {
                let mut branches = branches;
                branches.push(Object::new().with("type", "null").into());
                schema.insert("anyOf", Json::Array(branches));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_text(text: &str) -> String {
        to_json_schema(&Json::parse(text).expect("json")).to_string()
    }

    #[test]
    fn converts_the_schema_google_genai_sends() {
        let gemini = r#"{"type":"OBJECT","properties":{"zeta":{"type":"STRING","nullable":true},"alpha":{"type":"ARRAY","items":{"type":"INTEGER","format":"int32"},"max_items":"3"},"mood":{"type":"STRING","format":"enum","enum":["happy","sad"]}},"required":["zeta"],"propertyOrdering":["zeta","alpha","mood"]}"#;
        assert_eq!(
            convert_text(gemini),
            r#"{"type":"object","properties":{"zeta":{"type":["string","null"]},"alpha":{"type":"array","items":{"type":"integer","format":"int32"},"maxItems":3},"mood":{"type":"string","enum":["happy","sad"]}},"required":["zeta"]}"#
        );
    }

    #[test]
    fn property_ordering_wins_over_document_order() {
        let gemini = r#"{"type":"OBJECT","properties":{"b":{"type":"STRING"},"c":{"type":"STRING"},"a":{"type":"STRING"}},"property_ordering":["a","b"]}"#;
        assert_eq!(
            convert_text(gemini),
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"},"c":{"type":"string"}}}"#
        );
    }

    #[test]
    fn nullable_any_of_and_unspecified_type() {
        assert_eq!(
            convert_text(
                r#"{"any_of":[{"type":"STRING"},{"type":"NUMBER"}],"nullable":true,"description":"x"}"#
            ),
            r#"{"anyOf":[{"type":"string"},{"type":"number"},{"type":"null"}],"description":"x"}"#
        );
        assert_eq!(
            convert_text(r#"{"type":"TYPE_UNSPECIFIED","nullable":false}"#),
            "{}"
        );
        assert_eq!(
            convert_text(r#"{"type":["STRING","NULL"],"nullable":true}"#),
            r#"{"type":["string","null"]}"#
        );
    }

    #[test]
    fn json_schema_passes_unchanged() {
        let schema = r#"{"type":"object","properties":{"q":{"type":"string","minLength":1}},"additionalProperties":false,"required":["q"]}"#;
        assert_eq!(convert_text(schema), schema);
        assert_eq!(convert_text("true"), "true");
    }
}
