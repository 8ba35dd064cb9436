//! The client's JSON as an order-preserving tree that borrows its strings,
//! with path-aware accessors.
//!
//! `serde_json::Value` sorts object keys (its `preserve_order` feature is
//! banned in the sandbox). A decoder built on it would reorder the properties
//! of tool schemas (which steers the order in which models write their
//! arguments, and is the generation order under strict structured outputs)
//! and the keys of tool inputs sent back as `arguments`. [`Json`] keeps the
//! order, and borrows every string without escapes from the request body, so
//! a request with multi-megabyte base64 images is scanned once and its image
//! data never copied (plugins run under a memory cap and a deadline).
//!
//! Each accessed value carries its parameter path (`messages.1.content.0.type`,
//! the notation of Anthropic's own error messages), so a validation error
//! names the parameter at fault.

use std::borrow::Cow;
use std::fmt::{self, Display};

use orch_plugin_sdk::PluginError;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_json::Number;

/// A JSON value. Objects keep their fields in order (duplicates included;
/// lookups take the last one, like most JSON parsers).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Json<'_> {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Self::Null => Kind::Null,
            Self::Bool(_) => Kind::Bool,
            Self::Number(_) => Kind::Number,
            Self::String(_) => Kind::String,
            Self::Array(_) => Kind::Array,
            Self::Object(_) => Kind::Object,
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Number::from_f64(value)
            .map(Json::Number)
            .ok_or_else(|| E::custom("numbers must be finite"))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<Json<'de>>()? {
            let Json::String(key) = key else {
                return Err(de::Error::custom("object keys must be strings"));
            };
            fields.push((key, map.next_value()?));
        }
        Ok(Json::Object(fields))
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(value) => serializer.serialize_bool(*value),
            Self::Number(value) => value.serialize(serializer),
            Self::String(value) => serializer.serialize_str(value),
            Self::Array(items) => serializer.collect_seq(items),
            Self::Object(fields) => serializer.collect_map(fields.iter().map(|(k, v)| (k, v))),
        }
    }
}

/// Parses a request body, which must be one JSON object.
pub(crate) fn parse_body(body: &[u8]) -> Result<Json<'_>, PluginError> {
    let invalid = |why: String| {
        PluginError::bad_request(format!("the request body is not valid JSON: {why}"))
            .with_retryable(false)
    };
    let text = std::str::from_utf8(body).map_err(|err| invalid(err.to_string()))?;
    let json: Json<'_> = serde_json::from_str(text).map_err(|err| invalid(err.to_string()))?;
    if json.kind() != Kind::Object {
        return Err(
            PluginError::bad_request("the request body must be a JSON object")
                .with_retryable(false),
        );
    }
    Ok(json)
}

/// One value of the request and its parameter path.
#[derive(Debug, Clone)]
pub(crate) struct Field<'t> {
    pub(crate) value: &'t Json<'t>,
    /// Where it is, e.g. `messages.0.content`; empty for the body.
    pub(crate) path: String,
}

/// An object of the request.
#[derive(Debug, Clone)]
pub(crate) struct Object<'t> {
    path: String,
    fields: &'t [(Cow<'t, str>, Json<'t>)],
}

impl<'t> Field<'t> {
    /// The request body.
    pub(crate) fn root(value: &'t Json<'t>) -> Self {
        Self {
            value,
            path: String::new(),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.value.kind()
    }

    /// A `bad-request` error about this value.
    pub(crate) fn invalid(&self, message: impl Display) -> PluginError {
        invalid(&self.path, message)
    }

    /// An `unsupported` error about this value: valid Anthropic input that the
    /// canonical form cannot carry.
    pub(crate) fn unsupported(&self, message: impl Display) -> PluginError {
        PluginError::unsupported(format!("{}: {message}", self.path))
            .with_param(self.path.clone())
            .with_retryable(false)
    }

    pub(crate) fn object(&self) -> Result<Object<'t>, PluginError> {
        match self.value {
            Json::Object(fields) => Ok(Object {
                path: self.path.clone(),
                fields,
            }),
            _ => Err(self.invalid("Input should be a valid dictionary")),
        }
    }

    pub(crate) fn array(&self) -> Result<Vec<Field<'t>>, PluginError> {
        match self.value {
            Json::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(index, value)| Field {
                    value,
                    path: format!("{}.{index}", self.path),
                })
                .collect()),
            _ => Err(self.invalid("Input should be a valid list")),
        }
    }

    pub(crate) fn str(&self) -> Result<&'t str, PluginError> {
        match self.value {
            Json::String(text) => Ok(text),
            _ => Err(self.invalid("Input should be a valid string")),
        }
    }

    pub(crate) fn bool(&self) -> Result<bool, PluginError> {
        match self.value {
            Json::Bool(value) => Ok(*value),
            _ => Err(self.invalid("Input should be a valid boolean")),
        }
    }

    /// A non-negative integer.
    pub(crate) fn u64(&self) -> Result<u64, PluginError> {
        match self.value {
            Json::Number(number) => number.as_u64(),
            _ => None,
        }
        .ok_or_else(|| self.invalid("Input should be a valid non-negative integer"))
    }

    /// A number, to be copied into the canonical request.
    pub(crate) fn number(&self) -> Result<&'t Json<'t>, PluginError> {
        match self.value {
            Json::Number(_) => Ok(self.value),
            _ => Err(self.invalid("Input should be a valid number")),
        }
    }
}

impl<'t> Object<'t> {
    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The field `key`, unless it is absent or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<Field<'t>> {
        let fields: &'t [(Cow<'t, str>, Json<'t>)] = self.fields;
        fields
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .filter(|(_, value)| value.kind() != Kind::Null)
            .map(|(_, value)| Field {
                value,
                path: self.child_path(key),
            })
    }

    /// The field `key`, or a `Field required` error naming it.
    pub(crate) fn required(&self, key: &str) -> Result<Field<'t>, PluginError> {
        self.get(key)
            .ok_or_else(|| invalid(&self.child_path(key), "Field required"))
    }

    /// The required string field `key`.
    pub(crate) fn str(&self, key: &str) -> Result<&'t str, PluginError> {
        self.required(key)?.str()
    }

    /// The string field `key`, if present.
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'t str>, PluginError> {
        self.get(key).map(|field| field.str()).transpose()
    }

    /// The boolean field `key`, if present.
    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, PluginError> {
        self.get(key).map(|field| field.bool()).transpose()
    }
}

/// A `bad-request` error about the parameter at `path`, worded like
/// Anthropic's own (`max_tokens: Field required`).
pub(crate) fn invalid(path: &str, message: impl Display) -> PluginError {
    PluginError::bad_request(format!("{path}: {message}"))
        .with_param(path)
        .with_retryable(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_kinds_and_nulls() {
        let tree = parse_body(br#" {"a": {"b": [1, "x", true, null, {"c": 2}]}, "n": null} "#)
            .expect("object");
        let body = Field::root(&tree).object().expect("object");
        let list = body
            .required("a")
            .and_then(|a| a.object())
            .and_then(|a| a.required("b"))
            .and_then(|b| b.array())
            .expect("list");
        let kinds: Vec<Kind> = list.iter().map(Field::kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Number,
                Kind::String,
                Kind::Bool,
                Kind::Null,
                Kind::Object
            ]
        );
        assert_eq!(list[4].path, "a.b.4");
        let err = list[4]
            .object()
            .and_then(|o| o.required("d"))
            .expect_err("missing");
        assert_eq!(err.param.as_deref(), Some("a.b.4.d"));
        assert_eq!(err.message, "a.b.4.d: Field required");
        // `null` counts as absent.
        assert!(body.get("n").is_none());
    }

    #[test]
    fn typed_getters_reject_wrong_types() {
        let tree =
            parse_body(br#"{"s": 1, "i": -1, "f": 1.5, "b": "yes", "x": "1"}"#).expect("object");
        let body = Field::root(&tree).object().expect("object");
        let get = |key| body.required(key).expect("present");
        assert!(get("s").str().is_err());
        assert!(get("i").u64().is_err());
        assert!(get("f").u64().is_err());
        assert!(get("f").number().is_ok());
        assert!(get("x").number().is_err());
        assert!(get("b").bool().is_err());
        assert!(get("s").object().is_err());
        assert!(get("s").array().is_err());
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let text = br#"{"plain": "abc", "escaped": "a\"b", "last": 1, "last": 2}"#;
        let tree = parse_body(text).expect("object");
        let Json::Object(fields) = &tree else {
            panic!("object")
        };
        assert!(matches!(fields[0].1, Json::String(Cow::Borrowed("abc"))));
        assert!(matches!(&fields[1].1, Json::String(Cow::Owned(s)) if s == "a\"b"));
        let body = Field::root(&tree).object().expect("object");
        assert_eq!(body.required("last").and_then(|f| f.u64()).ok(), Some(2));
    }

    #[test]
    fn serialises_in_order() {
        let text = "{\n \"z\": 1.5, \"a\": [\"x  y\\n\", -2, 3e2, null, true], \"m\": {}\n}";
        let tree = parse_body(text.as_bytes()).expect("object");
        assert_eq!(
            serde_json::to_string(&tree).expect("json"),
            r#"{"z":1.5,"a":["x  y\n",-2,300.0,null,true],"m":{}}"#
        );
    }

    #[test]
    fn body_must_be_a_json_object() {
        for text in ["", "[1]", "{", "\"s\"", "{} {}"] {
            let err = parse_body(text.as_bytes()).expect_err(text);
            assert_eq!(err.class, orch_plugin_sdk::ErrorClass::BadRequest, "{text}");
        }
        assert!(parse_body(&[0xff, 0xfe]).is_err());
    }
}
