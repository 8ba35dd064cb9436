//! Parsing a plugin's configuration (for instance a transformer's attachment
//! configuration, checked in
//! [`Transformer::check_config`](crate::Transformer::check_config)) into a
//! serde type, with errors that name the plugin and the key at fault.
//!
//! Every error is a `bad-request` whose message reads
//! ``invalid `<plugin id>` config: `<path>`: <message>``, where `<path>` is
//! the key at fault (`rules[0].match`, `set.model`, ...). Errors about the
//! configuration as a whole leave the path out:
//! ``invalid `<plugin id>` config: <message>``.
//!
//! [`parse`] refuses anything but one JSON object: other JSON values (serde
//! would take a struct from an array of its fields), empty text, and
//! characters after the object. Checks serde cannot express go after it, with
//! [`invalid`] for their errors:
//!
//! ```
//! use orch_plugin_sdk::{PluginError, config};
//! use serde::Deserialize;
//!
//! const ID: &str = "example";
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields, expecting = "a JSON object")]
//! struct Config {
//!     words: Vec<String>,
//! }
//!
//! fn parse(text: &str) -> Result<Config, PluginError> {
//!     let config: Config = config::parse(ID, text)?;
//!     if let Some(index) = config.words.iter().position(String::is_empty) {
//!         return Err(config::invalid(ID, format!("words[{index}]"), "must not be empty"));
//!     }
//!     Ok(config)
//! }
//!
//! assert_eq!(parse(r#"{"words": ["a", "b"]}"#).unwrap().words, ["a", "b"]);
//! let message = |text| parse(text).unwrap_err().message;
//! assert_eq!(
//!     message(r#"{"words": ["a", ""]}"#),
//!     "invalid `example` config: `words[1]`: must not be empty"
//! );
//! assert_eq!(
//!     message(r#"{"words": ["a", 1]}"#),
//!     "invalid `example` config: `words[1]`: invalid type: integer `1`, expected a string at line 1 column 17"
//! );
//! assert_eq!(message("{}"), "invalid `example` config: missing field `words` at line 1 column 2");
//! assert_eq!(message(r#"["a"]"#), "invalid `example` config: the configuration must be a JSON object");
//! ```

use std::fmt::Display;

use serde::de::DeserializeOwned;

use crate::PluginError;

/// Parses configuration text into `T`.
///
/// The text must be one JSON object (after optional leading white space);
/// anything else, including empty text and characters after the object, is
/// refused. A plugin that gives empty text a meaning (say, the defaults)
/// checks for it before calling this. Errors are `bad-request`s naming the
/// plugin `plugin_id` and the key at fault, as [`invalid`] formats them; the
/// serde message (with its line and column) follows the key.
pub fn parse<T: DeserializeOwned>(plugin_id: &str, text: &str) -> Result<T, PluginError> {
    // serde would also take a struct from an array of its fields.
    if !text.trim_start().starts_with('{') {
        return Err(invalid(
            plugin_id,
            ".",
            "the configuration must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|err| invalid(plugin_id, err.path(), err.inner()))?;
    de.end().map_err(|err| invalid(plugin_id, ".", err))?;
    Ok(value)
}

/// A `bad-request` configuration error of plugin `plugin_id` about the key at
/// `path`: ``invalid `<plugin_id>` config: `<path>`: <message>``, or
/// ``invalid `<plugin_id>` config: <message>`` when `path` is `.` (the whole
/// configuration, as `serde_path_to_error` writes the empty path).
pub fn invalid(plugin_id: &str, path: impl Display, message: impl Display) -> PluginError {
    let path = path.to_string();
    if path == "." {
        PluginError::bad_request(format!("invalid `{plugin_id}` config: {message}"))
    } else {
        PluginError::bad_request(format!("invalid `{plugin_id}` config: `{path}`: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::ErrorClass;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a JSON object")]
    struct Config {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        size: u8,
    }

    fn message(text: &str) -> String {
        let err = parse::<Config>("demo", text).unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(!err.retryable);
        err.message
    }

    #[test]
    fn parses_an_object() {
        let config: Config = parse(
            "demo",
            " \n{\"name\": \"x\", \"items\": [{\"size\": 3}]} \n",
        )
        .unwrap();
        assert_eq!(
            config,
            Config {
                name: "x".into(),
                items: vec![Item { size: 3 }]
            }
        );
    }

    #[test]
    fn refuses_anything_but_an_object() {
        for text in ["", "  ", "null", "[\"x\"]", "\"x\"", "1"] {
            assert_eq!(
                message(text),
                "invalid `demo` config: the configuration must be a JSON object",
                "{text:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            message(r#"{"name":"x","items":[{"size":3},{"size":300}]}"#),
            "invalid `demo` config: `items[1].size`: invalid value: integer `300`, expected u8 at line 1 column 43"
        );
        assert_eq!(
            message(r#"{"name":"x","extra":1}"#),
            "invalid `demo` config: `extra`: unknown field `extra`, expected `name` or `items` at line 1 column 19"
        );
        assert!(message("{}").starts_with("invalid `demo` config: missing field `name`"));
        // serde_path_to_error writes `?` where a key was expected.
        assert_eq!(
            message("{"),
            "invalid `demo` config: `?`: EOF while parsing an object at line 1 column 1"
        );
    }

    #[test]
    fn refuses_trailing_characters() {
        assert_eq!(
            message(r#"{"name":"x"} x"#),
            "invalid `demo` config: trailing characters at line 1 column 14"
        );
    }

    #[test]
    fn invalid_leaves_out_the_root_path() {
        let err = invalid("demo", ".", "nothing to do");
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert_eq!(err.message, "invalid `demo` config: nothing to do");
        let err = invalid("demo", format!("rules[{}].to", 2), "must not be empty");
        assert_eq!(
            err.message,
            "invalid `demo` config: `rules[2].to`: must not be empty"
        );
    }
}
