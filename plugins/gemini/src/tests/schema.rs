//! JSON Schema → Gemini `Schema`.

use serde_json::{Value, json};

use crate::ordered::Json;
use crate::schema::{is_empty_object, to_gemini};

fn convert(schema: Value) -> Value {
    let json: Json = serde_json::from_value(schema).expect("schema");
    serde_json::to_value(to_gemini(&json, false)).expect("value")
}

#[test]
fn types_nullability_and_unions() {
    assert_eq!(
        convert(json!({"type": ["null", "number"], "description": "d"})),
        json!({"type": "NUMBER", "description": "d", "nullable": true})
    );
    assert_eq!(
        convert(json!({"type": ["string", "integer"]})),
        json!({"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]})
    );
    assert_eq!(
        convert(json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})),
        json!({"type": "STRING", "format": "date-time", "nullable": true})
    );
    assert_eq!(
        convert(
            json!({"oneOf": [{"type": "string"}, {"type": "object", "properties": {"a": {"type": "boolean"}}}]})
        ),
        json!({"anyOf": [{"type": "STRING"}, {"type": "OBJECT", "properties": {"a": {"type": "BOOLEAN"}}}]})
    );
    assert_eq!(convert(json!({"type": "null"})), json!({"nullable": true}));
    assert_eq!(
        convert(json!({"type": "string", "nullable": true})),
        json!({"type": "STRING", "nullable": true})
    );
}

#[test]
fn enums_consts_and_formats() {
    assert_eq!(
        convert(json!({"enum": ["a", "b", null]})),
        json!({"enum": ["a", "b"], "type": "STRING", "nullable": true})
    );
    assert_eq!(
        convert(json!({"type": "integer", "enum": [1, 2]})),
        json!({"type": "INTEGER"})
    );
    assert_eq!(
        convert(json!({"type": "integer", "enum": ["1"]})),
        json!({"type": "INTEGER"})
    );
    assert_eq!(
        convert(json!({"const": "fixed"})),
        json!({"enum": ["fixed"], "type": "STRING"})
    );
    assert_eq!(convert(json!({"const": 3})), json!({}));
    assert_eq!(
        convert(json!({"type": "string", "format": "email"})),
        json!({"type": "STRING"})
    );
    assert_eq!(
        convert(
            json!({"type": "number", "format": "double", "exclusiveMinimum": 0, "multipleOf": 2})
        ),
        json!({"type": "NUMBER", "format": "double"})
    );
    assert_eq!(
        convert(json!({"type": "integer", "format": "uint8"})),
        json!({"type": "INTEGER"})
    );
}

#[test]
fn objects_arrays_and_dropped_keywords() {
    assert_eq!(
        convert(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "x", "$comment": "c", "title": "T", "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": true},
                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}]},
                "meta": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
                "s": {"type": "string", "pattern": "^a", "minLength": 1, "maxLength": 9, "default": "a", "examples": ["a"]},
            },
            "required": ["tags", "ghost", 7],
            "patternProperties": {"^x": {}}, "not": {"type": "null"}, "strict": true,
        })),
        json!({
            "type": "OBJECT", "title": "T",
            "properties": {
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1},
                "pair": {"type": "ARRAY"},
                "meta": {"type": "OBJECT"},
                "s": {"type": "STRING", "pattern": "^a", "minLength": 1, "maxLength": 9, "default": "a"},
            },
            "required": ["tags"],
        })
    );
    // `required` without properties says nothing Gemini can check.
    assert_eq!(
        convert(json!({"type": "object", "required": ["a"]})),
        json!({"type": "OBJECT"})
    );
    // Non-object schemas mean "anything".
    assert_eq!(convert(json!(true)), json!({}));
}

#[test]
fn all_of_is_merged() {
    assert_eq!(
        convert(json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}, "a": {"type": "number"}}, "required": ["b", "a"]},
        ]})),
        json!({"type": "OBJECT", "properties": {"a": {"type": "STRING"}, "b": {"type": "INTEGER"}}, "required": ["a", "b"]})
    );
}

#[test]
fn references_are_inlined_and_cycles_cut() {
    let schema = json!({
        "type": "object",
        "properties": {
            "root": {"$ref": "#/$defs/node", "description": "the root"},
            "legacy": {"$ref": "#/definitions/leaf"},
            "missing": {"$ref": "#/$defs/none", "description": "kept"},
            "remote": {"$ref": "https://example.com/schema.json"},
            "escaped": {"$ref": "#/$defs/a~1b"},
        },
        "$defs": {
            "node": {"type": "object", "description": "a node", "properties": {
                "value": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            }},
            "a/b": {"type": "boolean"},
        },
        "definitions": {"leaf": {"type": "integer"}},
    });
    assert_eq!(
        convert(schema),
        json!({"type": "OBJECT", "properties": {
            "root": {"type": "OBJECT", "description": "the root", "properties": {
                "value": {"type": "STRING"},
                "children": {"type": "ARRAY", "items": {"type": "OBJECT", "description": "a node"}},
            }},
            "legacy": {"type": "INTEGER"},
            "missing": {"description": "kept"},
            "remote": {},
            "escaped": {"type": "BOOLEAN"},
        }})
    );
}

#[test]
fn exponential_reference_graphs_stay_bounded() {
    // Every level references the next one twice: 2^30 nodes if expanded.
    let mut defs = serde_json::Map::new();
    for level in 0..30 {
        let next = format!("#/$defs/l{}", level + 1);
        defs.insert(
            format!("l{level}"),
            json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}}),
        );
    }
    defs.insert("l30".to_owned(), json!({"type": "string"}));
    let schema = json!({"$ref": "#/$defs/l0", "$defs": defs});
    let converted = convert(schema);
    assert_eq!(converted["type"], "OBJECT");
    assert!(converted.to_string().len() < 2_000_000);
}

#[test]
fn deep_nesting_is_cut() {
    let mut schema = json!({"type": "string"});
    for _ in 0..200 {
        schema = json!({"type": "array", "items": schema});
    }
    let converted = convert(schema);
    assert_eq!(converted["type"], "ARRAY");
}

#[test]
fn property_ordering_for_response_schemas() {
    let json: Json = serde_json::from_str(
        r#"{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"string"}},"propertyOrdering":["a","b"]}"#,
    )
    .expect("schema");
    // A client's own propertyOrdering wins.
    assert_eq!(
        to_gemini(&json, true).to_text(),
        r#"{"type":"OBJECT","properties":{"b":{"type":"STRING"},"a":{"type":"STRING"}},"propertyOrdering":["a","b"]}"#
    );
    let single: Json =
        serde_json::from_str(r#"{"type":"object","properties":{"only":{"type":"string"}}}"#)
            .expect("schema");
    assert_eq!(
        to_gemini(&single, true).to_text(),
        r#"{"type":"OBJECT","properties":{"only":{"type":"STRING"}}}"#
    );
}

#[test]
fn empty_objects() {
    let empty = |schema: Value| {
        let json: Json = serde_json::from_value(schema).expect("schema");
        is_empty_object(&to_gemini(&json, false))
    };
    assert!(empty(json!({})));
    assert!(empty(json!({"type": "object"})));
    assert!(empty(
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    ));
    assert!(!empty(
        json!({"type": "object", "properties": {"a": {"type": "string"}}})
    ));
    assert!(!empty(
        json!({"anyOf": [{"type": "object", "properties": {"a": {}}}, {"type": "string"}]})
    ));
}

#[test]
fn ordered_json_round_trips() {
    let text = r#"{"z":1,"a":[true,null,"s",-1.5,{"y":{},"x":[]}],"z":2}"#;
    let json: Json = serde_json::from_str(text).expect("json");
    assert_eq!(
        json.to_text(),
        r#"{"z":2,"a":[true,null,"s",-1.5,{"y":{},"x":[]}]}"#
    );
}
