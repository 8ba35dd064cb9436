//! Editing top-level fields of a JSON object without building the tree.
//!
//! Adapters usually change one or two fields of a large body (the `model`,
//! say) and must keep everything else intact. [`RawObject`] splits an object
//! into its top-level fields, each kept as the exact JSON text it had, so an
//! edit keeps the field order, the unknown fields and the exact spelling of
//! every number, and costs one scan instead of a parse into `serde_json::Value`
//! and a re-serialisation.
//!
//! ```
//! use orch_plugin_sdk::json::RawObject;
//!
//! let body = r#"{"id":"x","model":"gpt-4o-2024-08-06","z":1.50,"a":[1, 2]}"#;
//! let mut object = RawObject::parse(body).unwrap();
//! assert_eq!(object.get("model"), Some(r#""gpt-4o-2024-08-06""#));
//! object.set_string("model", "my-alias");
//! assert_eq!(object.to_json(), r#"{"id":"x","model":"my-alias","z":1.50,"a":[1, 2]}"#);
//! ```
//!
//! (serde_json's `preserve_order` feature would also keep the order, but its
//! `IndexMap` seeds std's `RandomState`, which traps in the sandbox.)

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON object as an ordered list of top-level fields, each holding its
/// value's JSON text. Borrows from the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Whether any value may hold a line break (checked once per text, not
    /// once per value on every [`RawObject::to_json`]).
    line_breaks: bool,
}

impl<'a> RawObject<'a> {
    /// Splits `json`, which must be one JSON object, into its fields. The
    /// whole text is validated.
    pub fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let fields = deserializer.deserialize_map(FieldsVisitor)?;
        deserializer.end()?;
        Ok(Self {
            fields,
            line_breaks: has_line_break(json),
        })
    }

    /// The JSON text of the first field called `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Whether a field called `key` exists and is not `null`.
    pub fn has_non_null(&self, key: &str) -> bool {
        self.get(key).is_some_and(|value| value != "null")
    }

    /// Parses the value of the field called `key`.
    pub fn value(&self, key: &str) -> Option<Result<Value, serde_json::Error>> {
        self.get(key).map(serde_json::from_str)
    }

    /// Sets the field `key` to `json` (which must be valid JSON text): in place
    /// if it exists (dropping later duplicates), else at the end.
    pub fn set_raw(&mut self, key: &str, json: impl Into<String>) {
        let json: String = json.into();
        self.line_breaks |= has_line_break(&json);
        let json = Cow::Owned(json);
        match self.fields.iter().position(|(k, _)| k == key) {
            Some(first) => {
                self.fields[first].1 = json;
                let mut index = 0;
                self.fields.retain(|(k, _)| {
                    let keep = index <= first || k != key;
                    index += 1;
                    keep
                });
            }
            None => self.fields.push((Cow::Owned(key.to_owned()), json)),
        }
    }

    /// Sets the field `key` to a JSON string.
    pub fn set_string(&mut self, key: &str, value: &str) {
        self.set_raw(key, Value::String(value.to_owned()).to_string());
    }

    /// Sets the field `key` to a JSON value.
    pub fn set(&mut self, key: &str, value: &Value) {
        self.set_raw(key, value.to_string());
    }

    /// Removes every field called `key`.
    pub fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| k != key);
    }

    /// The field names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// The object as compact JSON text on one line: values keep their exact
    /// text, except that line breaks and other whitespace between tokens are
    /// removed (an SSE `data:` line must not contain a line break).
    pub fn to_json(&self) -> String {
        let len: usize = self.fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = String::with_capacity(len + 2);
        out.push('{');
        for (index, (key, value)) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_key(&mut out, key);
            out.push(':');
            if self.line_breaks && has_line_break(value) {
                push_compact(&mut out, value);
            } else {
                out.push_str(value);
            }
        }
        out.push('}');
        out
    }
}

impl fmt::Display for RawObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// Whether `text` holds a line feed or a carriage return.
fn has_line_break(text: &str) -> bool {
    text.bytes().any(|b| b == b'\n' || b == b'\r')
}

/// Writes `key` as a JSON string.
fn push_key(out: &mut String, key: &str) {
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(key);
        out.push('"');
    } else {
        out.push_str(&Value::String(key.to_owned()).to_string());
    }
}

/// Writes valid JSON text without the whitespace between its tokens.
fn push_compact(out: &mut String, json: &str) {
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, Cow::Borrowed(value.get())));
        }
        Ok(fields)
    }
}

/// A field name, borrowed from the input unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E: de::Error>(self, key: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_text_and_unknown_fields() {
        let body = r#" { "z" : 1e3 , "model":"a", "nested": {"b":1,"a":[1.0, -0]}, "n":null } "#;
        let mut object = RawObject::parse(body).expect("object");
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["z", "model", "nested", "n"]
        );
        object.set_string("model", "b\"c");
        assert_eq!(
            object.to_json(),
            r#"{"z":1e3,"model":"b\"c","nested":{"b":1,"a":[1.0, -0]},"n":null}"#
        );
    }

    #[test]
    fn get_value_and_null() {
        let object =
            RawObject::parse(r#"{"usage":{"prompt_tokens":1},"error":null}"#).expect("object");
        assert_eq!(object.get("usage"), Some(r#"{"prompt_tokens":1}"#));
        assert!(object.has_non_null("usage"));
        assert!(!object.has_non_null("error"));
        assert!(!object.has_non_null("missing"));
        let usage = object.value("usage").expect("present").expect("json");
        assert_eq!(usage["prompt_tokens"], 1);
        assert!(object.value("missing").is_none());
    }

    #[test]
    fn set_appends_replaces_and_drops_duplicates() {
        let mut object = RawObject::parse(r#"{"a":1,"b":2,"a":3}"#).expect("object");
        object.set_raw("a", "10");
        object.set("c", &serde_json::json!([true]));
        assert_eq!(object.to_json(), r#"{"a":10,"b":2,"c":[true]}"#);
        object.remove("b");
        assert_eq!(object.to_string(), r#"{"a":10,"c":[true]}"#);
    }

    #[test]
    fn escaped_keys_round_trip() {
        let mut object =
            RawObject::parse(r#"{"a\"b":1,"\u00e9":2,"line\nbreak":3}"#).expect("object");
        object.set_raw("x", "0");
        let json = object.to_json();
        let value: Value = serde_json::from_str(&json).expect("valid");
        assert_eq!(value["a\"b"], 1);
        assert_eq!(value["é"], 2);
        assert_eq!(value["line\nbreak"], 3);
        assert!(!json.contains('\n'));
    }

    #[test]
    fn line_breaks_are_compacted_outside_strings() {
        let body = "{\n  \"a\": [\n    1,\n    \"x \\\" y\\n\"\n  ],\n  \"b\": \"keep  spaces\"\n}";
        let object = RawObject::parse(body).expect("object");
        assert_eq!(
            object.to_json(),
            r#"{"a":[1,"x \" y\n"],"b":"keep  spaces"}"#
        );
    }

    #[test]
    fn empty_object() {
        assert_eq!(RawObject::parse("{}").expect("object").to_json(), "{}");
    }

    #[test]
    fn rejects_non_objects_and_invalid_json() {
        for text in [
            "[1]",
            "1",
            "\"s\"",
            "null",
            "{",
            "{\"a\":}",
            "{} {}",
            "{\"a\":1,}",
            "",
        ] {
            assert!(RawObject::parse(text).is_err(), "{text}");
        }
    }
}
