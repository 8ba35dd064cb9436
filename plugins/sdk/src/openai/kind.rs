//! [`chunk_kind`] read straight from a chunk's JSON text.
//!
//! A stream decoder sees one chunk per event, and the kind depends on a few
//! small fields inside `choices`. Building a `serde_json::Value` of `choices`
//! costs a map allocation per object level and a string per field; the typed
//! probes here borrow from the text, skip every field they do not name, and
//! keep a few booleans. Any chunk they cannot read in the usual shape
//! (duplicate keys, a field of an unexpected type) takes the `Value` path, so
//! the result is always exactly `chunk_kind`'s; a test checks both on the
//! same chunks.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::chunk_kind;
use crate::ChunkKind;
use crate::json::RawObject;

/// The kind of the chunk whose top-level fields are `chunk`.
pub(super) fn of_raw(chunk: &RawObject<'_>) -> ChunkKind {
    let usage = chunk.get("usage");
    let Some(choices) = chunk.get("choices") else {
        return meta_or_usage(false, usage);
    };
    match serde_json::from_str::<Vec<Object<Choice>>>(choices) {
        Ok(choices) if choices.iter().any(|choice| choice.0.output) => ChunkKind::Content,
        Ok(choices) => meta_or_usage(!choices.is_empty(), usage),
        Err(_) => slow(choices, usage),
    }
}

/// `Usage` when there are no choices and `usage` is an object, else `Meta`.
fn meta_or_usage(has_choices: bool, usage: Option<&str>) -> ChunkKind {
    if !has_choices && usage.is_some_and(|u| u.starts_with('{')) {
        ChunkKind::Usage
    } else {
        ChunkKind::Meta
    }
}

/// `chunk_kind` on a tree of the two fields it reads.
fn slow(choices: &str, usage: Option<&str>) -> ChunkKind {
    let mut parts = serde_json::Map::new();
    for (key, text) in [("choices", Some(choices)), ("usage", usage)] {
        if let Some(Ok(value)) = text.map(serde_json::from_str::<Value>) {
            parts.insert(key.to_owned(), value);
        }
    }
    chunk_kind(&Value::Object(parts))
}

/// One element of `choices`: whether its `delta` has output.
#[derive(Default)]
struct Choice {
    output: bool,
}

impl Fields for Choice {
    fn field<'de, A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error> {
        if let Field::Delta = field {
            let delta = map.next_value::<Option<Object<Delta>>>()?;
            self.output = delta.is_some_and(|d| d.0.has_output());
        } else {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// A `delta`: which of the fields that carry output are set.
#[derive(Default)]
struct Delta {
    /// `content`, `refusal`, `reasoning_content`, `reasoning`: non-empty.
    text: [bool; 4],
    /// `tool_calls`: not null and not an empty array.
    tool_calls: bool,
    /// `function_call`: not null.
    function_call: bool,
}

impl Delta {
    fn has_output(&self) -> bool {
        self.text.contains(&true) || self.tool_calls || self.function_call
    }
}

impl Fields for Delta {
    fn field<'de, A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error> {
        // `Option` is `None` for a JSON `null`.
        match field {
            Field::Text(index) => {
                let text = map.next_value::<Option<Str<Text>>>()?;
                self.text[index] = text.is_some_and(|Str(Text(non_empty))| non_empty);
            }
            Field::ToolCalls => {
                let calls = map.next_value::<Option<&RawValue>>()?;
                self.tool_calls = calls.is_some_and(|calls| !is_empty_array(calls.get()));
            }
            Field::FunctionCall => {
                self.function_call = map.next_value::<Option<&RawValue>>()?.is_some();
            }
            Field::Delta | Field::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A probe folded from an object's fields, in order, so that the last of
/// duplicate keys wins, as in `Value`.
trait Fields: Default {
    /// Reads (or skips) the value of `field`.
    fn field<'de, A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error>;
}

/// A JSON object read into the probe `F`. Anything else is an error (serde's
/// derived structs would also accept an array).
struct Object<F>(F);

impl<'de, F: Fields> Deserialize<'de> for Object<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<F>(PhantomData<F>);

        impl<'de, F: Fields> Visitor<'de> for ObjectVisitor<F> {
            type Value = Object<F>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<F>, A::Error> {
                let mut probe = F::default();
                while let Some(Str(field)) = map.next_key::<Str<Field>>()? {
                    probe.field(field, &mut map)?;
                }
                Ok(Object(probe))
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// The field names the probes look at.
enum Field {
    Delta,
    /// `content`, `refusal`, `reasoning_content`, `reasoning`, by index.
    Text(usize),
    ToolCalls,
    FunctionCall,
    Other,
}

impl FromJsonStr for Field {
    const EXPECTING: &str = "a field name";

    fn from_json_str(name: &str) -> Self {
        match name {
            "delta" => Self::Delta,
            "content" => Self::Text(0),
            "refusal" => Self::Text(1),
            "reasoning_content" => Self::Text(2),
            "reasoning" => Self::Text(3),
            "tool_calls" => Self::ToolCalls,
            "function_call" => Self::FunctionCall,
            _ => Self::Other,
        }
    }
}

/// Whether the JSON text `json` is an empty array.
fn is_empty_array(json: &str) -> bool {
    json.strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with(']'))
}

/// A JSON string, reduced to whether it is non-empty (no copy even when it
/// has escapes).
struct Text(bool);

impl FromJsonStr for Text {
    const EXPECTING: &str = "a string";

    fn from_json_str(text: &str) -> Self {
        Self(!text.is_empty())
    }
}

/// A value read from a JSON string (a field name or a string value) without
/// keeping the string.
trait FromJsonStr: Sized {
    /// What the error says was expected.
    const EXPECTING: &str;

    fn from_json_str(text: &str) -> Self;
}

/// A JSON string read into `T`. Any other type is an error, which sends the
/// chunk down the `Value` path.
struct Str<T>(T);

impl<'de, T: FromJsonStr> Deserialize<'de> for Str<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<T>(PhantomData<T>);

        impl<T: FromJsonStr> Visitor<'_> for StrVisitor<T> {
            type Value = Str<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Str<T>, E> {
                Ok(Str(T::from_json_str(text)))
            }
        }

        deserializer.deserialize_str(StrVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every chunk gets the same kind from the probe as from `chunk_kind`.
    #[test]
    fn agrees_with_chunk_kind() {
        let texts = [
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"line\nbreak \u00e9"}}]}"#,
            r#"{"choices":[{"delta":{"content":null,"refusal":"no"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning":""}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[ ]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":null}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":{}}}]}"#,
            r#"{"choices":[{"delta":{"function_call":{"name":"f"}}}]}"#,
            r#"{"choices":[{"delta":{"function_call":null}}]}"#,
            r#"{"choices":[{"delta":{"function_call":false}}]}"#,
            r#"{"choices":[{"delta":{}},{"delta":{"content":"second"}}]}"#,
            r#"{"choices":[{"delta":{}, "finish_reason":"stop"}]}"#,
            r#"{"choices":[{"delta":null}]}"#,
            r#"{"choices":[{}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":{},"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}"#,
            r#"{"choices":[{"delta":{}}],"usage":[1]}"#,
            // Unexpected types and duplicate keys take the `Value` path.
            r#"{"choices":[{"delta":{"content":7}}]}"#,
            r#"{"choices":[{"delta":{"content":["a"]}}]}"#,
            r#"{"choices":[{"delta":"text"}]}"#,
            r#"{"choices":[1,{"delta":{"content":"x"}}]}"#,
            r#"{"choices":[{"delta":{"content":"x","content":""}}]}"#,
            r#"{"choices":[{"delta":{"content":""},"delta":{"content":"x"}}]}"#,
            r#"{"choices":"none"}"#,
            r#"{"choices":[[{"content":"x"}]]}"#,
            r#"{"choices":[{"delta":[{"content":"x"}]}]}"#,
            r#"{}"#,
        ];
        for text in texts {
            let raw = RawObject::parse(text).expect("object");
            let value: Value = serde_json::from_str(text).expect("json");
            assert_eq!(of_raw(&raw), chunk_kind(&value), "{text}");
        }
        let usage = RawObject::parse(&json!({"choices": [], "usage": {}}).to_string())
            .map(|raw| of_raw(&raw));
        assert_eq!(usage.ok(), Some(ChunkKind::Usage));
    }
}
