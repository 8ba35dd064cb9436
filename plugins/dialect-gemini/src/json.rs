//! An order-preserving JSON tree.
//!
//! `serde_json::Value` sorts object keys: its `preserve_order` feature cannot
//! be used in the sandbox (see the SDK docs). A dialect translation must keep
//! the client's key order where order carries meaning: the properties of a
//! JSON schema (models write structured output in schema order), function-call
//! arguments and function results. [`Json`] keeps every object's fields in
//! document order. Duplicate keys keep the first position and the last value,
//! as serde_json does. Nesting is bounded by serde_json's recursion limit
//! (128), so the recursive functions over this tree cannot overflow.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// A JSON value whose objects keep their fields in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Json {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, exactly as serde_json reads it.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object.
    Object(Object),
}

impl Json {
    /// Parses JSON text.
    pub(crate) fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses JSON bytes (which must be UTF-8).
    pub(crate) fn parse_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub(crate) fn as_object(&self) -> Option<&Object> {
        match self {
            Self::Object(object) => Some(object),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub(crate) fn as_array(&self) -> Option<&[Json]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    /// The number as an unsigned integer, if it is one.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Number(number) => number.as_u64(),
            _ => None,
        }
    }

    /// The field `key` of an object, unless it is absent or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        self.as_object().and_then(|object| object.get(key))
    }

    /// The field `key` of an object if it is a string.
    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Self::as_str)
    }
}

impl From<&str> for Json {
    fn from(text: &str) -> Self {
        Self::String(text.to_owned())
    }
}

impl From<String> for Json {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}

impl From<bool> for Json {
    fn from(flag: bool) -> Self {
        Self::Bool(flag)
    }
}

impl From<u64> for Json {
    fn from(number: u64) -> Self {
        Self::Number(number.into())
    }
}

impl From<u32> for Json {
    fn from(number: u32) -> Self {
        Self::Number(number.into())
    }
}

impl From<u16> for Json {
    fn from(number: u16) -> Self {
        Self::Number(number.into())
    }
}

impl From<i64> for Json {
    fn from(number: i64) -> Self {
        Self::Number(number.into())
    }
}

impl From<Number> for Json {
    fn from(number: Number) -> Self {
        Self::Number(number)
    }
}

impl From<Object> for Json {
    fn from(object: Object) -> Self {
        Self::Object(object)
    }
}

impl From<Vec<Json>> for Json {
    fn from(items: Vec<Json>) -> Self {
        Self::Array(items)
    }
}

/// A JSON object: fields in order, keys unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Object(Vec<(String, Json)>);

impl Object {
    /// An empty object.
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }

    /// The field `key`, unless it is absent or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
            .filter(|value| !matches!(value, Json::Null))
    }

    /// Sets `key` to `value`: in place if the key exists, else at the end.
    pub(crate) fn insert(&mut self, key: impl Into<String>, value: impl Into<Json>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    /// [`Object::insert`] as a builder.
    #[must_use]
    pub(crate) fn with(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` when `value` is `Some`.
    #[must_use]
    pub(crate) fn with_opt<T: Into<Json>>(self, key: impl Into<String>, value: Option<T>) -> Self {
        match value {
            Some(value) => self.with(key, value),
            None => self,
        }
    }

    /// The fields in order (including `null` ones).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Json)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// Builds an object from parsed fields, which may repeat a key: the first
    /// position and the last value win.
    fn from_fields(fields: Vec<(String, Json)>) -> Self {
        if fields.len() < 2 {
            return Self(fields);
        }
        let mut positions: BTreeMap<String, usize> = BTreeMap::new();
        let mut unique: Vec<(String, Json)> = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            match positions.get(&key).and_then(|&at| unique.get_mut(at)) {
                Some(slot) => slot.1 = value,
                None => {
                    positions.insert(key.clone(), unique.len());
                    unique.push((key, value));
                }
            }
        }
        Self(unique)
    }
}

/// Compact JSON text, the same as serde_json writes it.
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(flag) => write!(f, "{flag}"),
            Self::Number(number) => write!(f, "{number}"),
            Self::String(text) => write_string(f, text),
            Self::Array(items) => {
                f.write_char('[')?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Self::Object(object) => write!(f, "{object}"),
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (index, (key, value)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_char(',')?;
            }
            write_string(f, key)?;
            write!(f, ":{value}")?;
        }
        f.write_char('}')
    }
}

/// Writes `text` as a JSON string with serde_json's escapes.
fn write_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Escaped bytes are ASCII, so `start..index` is on char boundaries.
        f.write_str(text.get(start..index).unwrap_or_default())?;
        if escape.is_empty() {
            write!(f, "\\u{byte:04x}")?;
        } else {
            f.write_str(escape)?;
        }
        start = index + 1;
    }
    f.write_str(text.get(start..).unwrap_or_default())?;
    f.write_char('"')
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Json, E> {
        Ok(Json::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Json, E> {
        Ok(Json::Number(number.into()))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Json, E> {
        Ok(Json::Number(number.into()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Json, E> {
        Number::from_f64(number)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Json, E> {
        Ok(Json::String(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Json, E> {
        Ok(Json::String(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<String>()? {
            let value: Json = map.next_value()?;
            fields.push((key, value));
        }
        Ok(Json::Object(Object::from_fields(fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_round_trips() {
        let text = r#"{"z":1,"a":{"y":[1,2.5,-3,true,null],"b":"x"},"m":1e3}"#;
        let json = Json::parse(text).expect("json");
        assert_eq!(
            json.to_string(),
            r#"{"z":1,"a":{"y":[1,2.5,-3,true,null],"b":"x"},"m":1000.0}"#
        );
    }

    #[test]
    fn duplicates_keep_first_position_and_last_value() {
        let json = Json::parse(r#"{"a":1,"b":2,"a":3}"#).expect("json");
        assert_eq!(json.to_string(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn escapes_like_serde_json() {
        let text = "q\"b\\n\nr\rt\tc\u{1}\u{8}\u{c}é😀/";
        let ours = Json::from(text).to_string();
        assert_eq!(ours, serde_json::to_string(text).expect("string"));
        assert_eq!(Json::parse(&ours).expect("json"), Json::from(text));
    }

    #[test]
    fn get_skips_null() {
        let json = Json::parse(r#"{"a":null,"b":"x"}"#).expect("json");
        assert!(json.get("a").is_none());
        assert_eq!(json.get_str("b"), Some("x"));
        assert!(Json::from("s").get("b").is_none());
    }

    #[test]
    fn builder_replaces_in_place() {
        let object = Object::new()
            .with("a", 1_u64)
            .with("b", true)
            .with("a", "x")
            .with_opt::<u64>("c", None);
        assert_eq!(object.to_string(), r#"{"a":"x","b":true}"#);
    }

    #[test]
    fn rejects_invalid_json_and_deep_nesting() {
        assert!(Json::parse("{").is_err());
        assert!(Json::parse("[1,]").is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Json::parse(&deep).is_err());
    }
}
