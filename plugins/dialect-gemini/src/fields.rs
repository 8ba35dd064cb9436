//! Typed access to the fields of a Gemini request object.
//!
//! The Gemini REST API parses bodies as protobuf JSON, which accepts every
//! field under its camelCase JSON name and under its original snake_case
//! name (Google's own curl examples use `system_instruction`, `inline_data`,
//! `mime_type`, ...), and a single value where a repeated field is expected.
//! [`Fields`] looks fields up both ways and reports a value of the wrong type
//! as a `bad-request` error whose `param` is the field's path in camelCase
//! (`contents[1].parts[0].inlineData.mimeType`).

use orch_plugin_sdk::PluginError;
use serde_json::Number;

use crate::json::{Json, Object};

/// The fields of one object of the request, and where it is in the request.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    object: &'a Object,
    path: String,
}

impl<'a> Fields<'a> {
    /// The fields of `object`, found at `path` (empty for the root).
    pub(crate) fn new(object: &'a Object, path: impl Into<String>) -> Self {
        Self {
            object,
            path: path.into(),
        }
    }

    /// The path of this object.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The path of the field `name` of this object.
    pub(crate) fn param(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The field `name` (camelCase) or its snake_case spelling, unless absent
    /// or `null`.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Json> {
        self.object.get(name).or_else(|| {
            let snake = snake_case(name);
            if snake == name {
                None
            } else {
                self.object.get(&snake)
            }
        })
    }

    /// Whether the field `name` is present and not `null`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A `bad-request` error about the field `name`.
    pub(crate) fn invalid(&self, name: &str, expected: &str) -> PluginError {
        let param = self.param(name);
        PluginError::bad_request(format!("Invalid value at '{param}': expected {expected}"))
            .with_param(param)
    }

    /// A string field.
    pub(crate) fn str(&self, name: &str) -> Result<Option<&'a str>, PluginError> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.invalid(name, "a string")),
        }
    }

    /// A boolean field.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, PluginError> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.invalid(name, "a boolean")),
        }
    }

    /// A number field, as written, or (as protobuf JSON allows) a string
    /// holding a number.
    pub(crate) fn number(&self, name: &str) -> Result<Option<Number>, PluginError> {
        let number = match self.get(name) {
            None => return Ok(None),
            Some(Json::Number(number)) => Some(number.clone()),
            Some(Json::String(text)) => {
                let text = text.trim();
                text.parse::<i64>()
                    .map(Number::from)
                    .ok()
                    .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
            }
            Some(_) => None,
        };
        number
            .map(Some)
            .ok_or_else(|| self.invalid(name, "a number"))
    }

    /// An integer field: a JSON integer or, as protobuf JSON allows, a string
    /// holding one.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, PluginError> {
        let value = match self.get(name) {
            None => return Ok(None),
            Some(Json::Number(number)) => number.as_i64(),
            Some(Json::String(text)) => text.trim().parse().ok(),
            Some(_) => None,
        };
        value
            .map(Some)
            .ok_or_else(|| self.invalid(name, "an integer"))
    }

    /// An object field.
    pub(crate) fn object(&self, name: &str) -> Result<Option<Fields<'a>>, PluginError> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Object(object)) => Ok(Some(Fields::new(object, self.param(name)))),
            Some(_) => Err(self.invalid(name, "an object")),
        }
    }

    /// A repeated field: an array, or a single value standing for a list of
    /// one (absent is empty).
    pub(crate) fn list(&self, name: &str) -> Vec<&'a Json> {
        match self.get(name) {
            None => Vec::new(),
            Some(Json::Array(items)) => items.iter().collect(),
            Some(single) => vec![single],
        }
    }

    /// A repeated object field, each element with its path
    /// (`name[index]`).
    pub(crate) fn objects(&self, name: &str) -> Result<Vec<Fields<'a>>, PluginError> {
        self.list(name)
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let path = format!("{}[{index}]", self.param(name));
                match item {
                    Json::Object(object) => Ok(Fields::new(object, path)),
                    _ => Err(PluginError::bad_request(format!(
                        "Invalid value at '{path}': expected an object"
                    ))
                    .with_param(path)),
                }
            })
            .collect()
    }

    /// A repeated string field.
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<&'a str>, PluginError> {
        self.list(name)
            .into_iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| self.invalid(name, "a list of strings"))
            })
            .collect()
    }

    /// The names of the fields that are present and not `null`, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.object
            .iter()
            .filter(|(_, value)| !matches!(value, Json::Null))
            .map(|(key, _)| key)
    }
}

/// `camelCase` → `camel_case`.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `snake_case` → `snakeCase`.
pub(crate) fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Object {
        match Json::parse(text).expect("json") {
            Json::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn case_conversions() {
        assert_eq!(snake_case("systemInstruction"), "system_instruction");
        assert_eq!(snake_case("text"), "text");
        assert_eq!(camel_case("max_items"), "maxItems");
        assert_eq!(camel_case("property_ordering"), "propertyOrdering");
        assert_eq!(camel_case("type"), "type");
    }

    #[test]
    fn looks_up_both_spellings_and_reports_paths() {
        let object = object(r#"{"mime_type":"image/png","data":1,"n":"42","s":["a"]}"#);
        let fields = Fields::new(&object, "contents[0].parts[1].inlineData");
        assert_eq!(fields.str("mimeType").expect("ok"), Some("image/png"));
        let err = fields.str("data").expect_err("not a string");
        assert_eq!(
            err.param.as_deref(),
            Some("contents[0].parts[1].inlineData.data")
        );
        assert_eq!(fields.int("n").expect("ok"), Some(42));
        assert!(fields.int("data").expect("ok") == Some(1));
        assert_eq!(fields.strings("s").expect("ok"), ["a"]);
        assert!(fields.objects("s").is_err());
        assert_eq!(Fields::new(&object, "").param("x"), "x");
    }

    #[test]
    fn single_values_stand_for_lists() {
        let object = object(r#"{"parts":{"text":"hi"},"stop":"x"}"#);
        let fields = Fields::new(&object, "");
        let parts = fields.objects("parts").expect("parts");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].path(), "parts[0]");
        assert_eq!(fields.strings("stop").expect("ok"), ["x"]);
        assert!(fields.list("missing").is_empty());
    }
}
