//! Example tool-call arguments synthesised from a function's JSON schema.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Deeper schemas are answered with `null` (guards against runaway nesting).
const MAX_DEPTH: usize = 16;

/// A JSON object holding every *required* property of `schema` with a dummy
/// value of its type (strings are `"example"`). Without a usable schema the
/// arguments are `{}`.
pub(crate) fn example_arguments(schema: Option<&RawValue>) -> String {
    let schema: Value = schema
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(Value::Null);
    example_input(&schema).to_string()
}

/// [`example_arguments`] for a parsed schema, as a JSON object.
pub(crate) fn example_input(schema: &Value) -> Value {
    match example_value(schema, 0) {
        object @ Value::Object(_) => object,
        _ => Value::Object(Map::new()),
    }
}

fn example_value(schema: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Value::Object(schema) = schema else {
        return Value::from("example");
    };
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for alternatives in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(alternatives)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return example_value(first, depth + 1);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // `["string", "null"]`: the first non-null type.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| !kind.eq_ignore_ascii_case("null"))
            .unwrap_or("null"),
        _ if schema.contains_key("properties") => "object",
        _ => "string",
    };
    // Gemini schemas spell types in capitals (`OBJECT`, `STRING`).
    match kind.to_ascii_lowercase().as_str() {
        "object" => example_object(schema, depth),
        "array" => match schema.get("items") {
            Some(items) => Value::Array(vec![example_value(items, depth + 1)]),
            None => Value::Array(Vec::new()),
        },
        "integer" => Value::from(1),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::from("example"),
    }
}

fn example_object(schema: &Map<String, Value>, depth: usize) -> Value {
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let object = required
        .map(|name| {
            let value = properties
                .and_then(|properties| properties.get(name))
                .map_or_else(|| Value::from("example"), |p| example_value(p, depth + 1));
            (name.to_owned(), value)
        })
        .collect();
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(schema: &str) -> Value {
        let raw = RawValue::from_string(schema.to_owned()).unwrap();
        serde_json::from_str(&example_arguments(Some(&raw))).unwrap()
    }

    #[test]
    fn required_properties_get_typed_dummies() {
        let value = args(
            r#"{"type":"object","properties":{
                "city":{"type":"string"},"days":{"type":"integer"},"temp":{"type":"number"},
                "metric":{"type":"boolean"},"unit":{"type":"string","enum":["c","f"]},
                "tags":{"type":"array","items":{"type":"string"}},
                "opt":{"type":"string"},"maybe":{"type":["null","integer"]},
                "where":{"type":"object","properties":{"lat":{"type":"number"}},"required":["lat"]}},
              "required":["city","days","temp","metric","unit","tags","maybe","where"]}"#,
        );
        assert_eq!(
            value,
            serde_json::json!({
                "city": "example", "days": 1, "temp": 1.5, "metric": true, "unit": "c",
                "tags": ["example"], "maybe": 1, "where": {"lat": 1.5}
            })
        );
    }

    #[test]
    fn gemini_style_types_are_understood() {
        let schema = serde_json::json!({"type": "OBJECT",
            "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]});
        assert_eq!(example_input(&schema), serde_json::json!({"n": 1}));
        assert_eq!(example_input(&Value::Null), serde_json::json!({}));
    }

    #[test]
    fn missing_or_odd_schemas_give_an_empty_object() {
        assert_eq!(example_arguments(None), "{}");
        assert_eq!(args(r#"{"type":"object"}"#), serde_json::json!({}));
        assert_eq!(args(r#""not a schema""#), serde_json::json!({}));
    }
}
