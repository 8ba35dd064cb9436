//! Reading the raw configuration with every unknown key and wrongly typed
//! value reported, not only the first. serde stops at the first error, so
//! each one is recorded under its key, the offending entry is dropped from
//! the merged file and environment, and the rest is read again.
//!
//! Reasons name types, never the values found: a secret written in the
//! wrong place must not end up in the output.

use std::path::Path;

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::value::Value;

use super::{ConfigError, Problem, RawConfig};

/// Stop after this many problems (a file that is no configuration at all).
const MAX_PROBLEMS: usize = 100;

/// What reading found wrong, besides the raw configuration it could read.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// Every problem, keyed as validation keys them (`providers[0].name`).
    pub(super) list: Vec<Problem>,
    /// Whether an array entry was dropped (a required key missing or
    /// wrong): later checks would see the entries after it shifted.
    pub(super) dropped_entries: bool,
}

impl Found {
    /// Whether nothing was wrong.
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Deserialise `figment` into the raw configuration, dropping and reporting
/// each entry that does not fit. A file that cannot be read or parsed as
/// TOML at all is a [`ConfigError::Parse`].
pub(super) fn extract(path: &Path, figment: &Figment) -> Result<(RawConfig, Found), ConfigError> {
    let original = figment.find_value("").map_err(|e| ConfigError::Parse {
        file: path.to_path_buf(),
        message: e
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    let mut value = original.clone();
    let mut found = Found::default();
    // Array entries dropped so far: (the array's path, the entry's index),
    // each in the positions of the value as it was when dropped.
    let mut dropped: Vec<(Vec<String>, usize)> = Vec::new();
    loop {
        let error = match value.deserialize::<RawConfig>() {
            Ok(raw) => return Ok((raw, found)),
            Err(e) => e,
        };
        let mut progressed = false;
        for e in error {
            let (at, mut reason, drop_at) = match &e.kind {
                Kind::MissingField(field) => {
                    let mut at = e.path.clone();
                    at.push(field.to_string());
                    (at, "missing (required)".to_string(), e.path.clone())
                }
                kind => (e.path.clone(), describe(kind), e.path.clone()),
            };
            if let Some(var) = environment_variable(figment, &value, &at) {
                reason.push_str(&format!(" (set by environment variable {var})"));
            }
            let key = key_name(&original, &unshift(&at, &dropped));
            // A wrong required key is reported once, not again as missing.
            if !found.list.iter().any(|p| p.key == key) {
                found.list.push(Problem { key, reason });
            }
            if let Some(shift) = remove(&mut value, &drop_at) {
                progressed = true;
                if let Some(shift) = shift {
                    found.dropped_entries = true;
                    dropped.push(shift);
                }
            }
        }
        if !progressed || found.list.len() >= MAX_PROBLEMS {
            return Err(ConfigError::Invalid {
                file: path.to_path_buf(),
                problems: found.list,
            });
        }
    }
}

/// Why a value does not fit, without the value.
fn describe(kind: &Kind) -> String {
    match kind {
        Kind::UnknownField(field, known) => match closest(field, known) {
            Some(near) => format!("unknown key; did you mean `{near}`?"),
            None if known.is_empty() => "unknown key".into(),
            None => format!("unknown key (expected one of: {})", known.join(", ")),
        },
        Kind::UnknownVariant(found, known) => {
            let hint = closest(found, known)
                .map(|near| format!("; did you mean `{near}`?"))
                .unwrap_or_default();
            format!(
                "unknown value `{found}` (expected one of: {}){hint}",
                known.join(", ")
            )
        }
        Kind::InvalidType(found, expected) => {
            format!(
                "expected {}, found {}",
                expected_name(expected),
                actual_name(found)
            )
        }
        Kind::InvalidValue(found, expected) => format!(
            "invalid value: expected {}, found {}",
            expected_name(expected),
            actual_name(found)
        ),
        Kind::InvalidLength(len, expected) => format!("{len} entries, expected {expected}"),
        Kind::DuplicateField(_) => "given twice".into(),
        Kind::Message(message) => message.clone(),
        other => other.to_string(),
    }
}

/// The known name closest to `name`, if one is close enough to be a typo.
fn closest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// serde's name for an expected type, in the file's terms.
fn expected_name(expected: &str) -> String {
    match expected {
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "socket address" => "an address such as \"127.0.0.1:8080\"".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.into(),
    }
}

/// What was found, by type: numbers and booleans are shown, text never is.
fn actual_name(found: &Actual) -> String {
    match found {
        Actual::Bool(b) => format!("the boolean {b}"),
        Actual::Unsigned(n) => format!("the integer {n}"),
        Actual::Signed(n) => format!("the integer {n}"),
        Actual::Float(n) => format!("the number {n}"),
        Actual::Char(_) => "a character".into(),
        Actual::Str(_) => "a string".into(),
        Actual::Bytes(_) => "bytes".into(),
        Actual::Unit => "nothing".into(),
        Actual::Seq => "an array".into(),
        Actual::Map => "a table".into(),
        _ => "a value of another type".into(),
    }
}

/// The `ORCH_…` variable that set the value at `at`, if one did.
fn environment_variable(figment: &Figment, value: &Value, at: &[String]) -> Option<String> {
    let metadata = figment.get_metadata(get(value, at)?.tag())?;
    metadata
        .name
        .contains("environment variable")
        .then(|| format!("ORCH_{}", at.join("__").to_ascii_uppercase()))
}

fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, part| match v {
        Value::Dict(_, dict) => dict.get(part),
        Value::Array(_, items) => items.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, part| match v {
        Value::Dict(_, dict) => dict.get_mut(part),
        Value::Array(_, items) => items.get_mut(part.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Remove the entry at `path`. `None` when there is nothing to remove;
/// `Some(Some((array, index)))` when an array entry went (the entries after
/// it moved up one).
fn remove(value: &mut Value, path: &[String]) -> Option<Option<(Vec<String>, usize)>> {
    let (last, parent_path) = path.split_last()?;
    match get_mut(value, parent_path)? {
        Value::Dict(_, dict) => dict.remove(last).map(|_| None),
        Value::Array(_, items) => {
            let index = last.parse::<usize>().ok().filter(|&i| i < items.len())?;
            items.remove(index);
            Some(Some((parent_path.to_vec(), index)))
        }
        _ => None,
    }
}

/// A path in the value after the `dropped` entries went, as a path in the
/// value as written (undoing the drops last to first).
fn unshift(path: &[String], dropped: &[(Vec<String>, usize)]) -> Vec<String> {
    let mut path = path.to_vec();
    for (array, index) in dropped.iter().rev() {
        if path.len() > array.len() && path.starts_with(array) {
            let at = array.len();
            if let Ok(i) = path[at].parse::<usize>()
                && i >= *index
            {
                path[at] = (i + 1).to_string();
            }
        }
    }
    path
}

/// A path as problems name keys: `providers[0].api_keys[1]`.
fn key_name(value: &Value, path: &[String]) -> String {
    let mut key = String::new();
    let mut at = Some(value);
    for part in path {
        match at {
            Some(Value::Array(_, items)) => {
                key.push_str(&format!("[{part}]"));
                at = part.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(part);
                at = other.and_then(|v| v.as_dict()).and_then(|d| d.get(part));
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        match Config::from_toml(Path::new("t.toml"), toml, &|n| {
            (n == "SET").then(|| "a-value-long-enough".to_string())
        }) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => vec![e.to_string()],
            Ok(_) => vec![],
        }
    }

    #[test]
    fn every_unknown_key_and_bad_type_is_reported_with_the_other_problems() {
        let found = problems(
            r#"
            [server]
            listne = "127.0.0.1:1"
            max_body_mib = "big"
            [logging]
            format = "jsno"
            [admin]
            token = "env:UNSET_TOKEN"
            [colour]
            x = 1
            "#,
        );
        assert!(
            found[0].starts_with("colour: unknown key (expected one of: server, database, "),
            "{found:?}"
        );
        assert_eq!(
            found[1..],
            [
                "logging.format: unknown value `jsno` (expected one of: pretty, json); \
                 did you mean `json`?",
                "server.listne: unknown key; did you mean `listen`?",
                "server.max_body_mib: expected a non-negative integer, found a string",
                "admin.token: environment variable UNSET_TOKEN is not set",
            ]
        );
    }

    #[test]
    fn values_found_are_described_by_type_never_shown() {
        let found = problems(
            r#"
            [[providers]]
            name = "p"
            adapter = "openai"
            base_url = "http://x"
            api_keys = "sk-live-do-not-print"
            "#,
        );
        assert_eq!(
            found,
            ["providers[0].api_keys: expected an array, found a string"]
        );
    }

    #[test]
    fn a_dropped_entry_keeps_the_positions_of_the_others() {
        let found = problems(
            r#"
            [[providers]]
            name = "a"
            adapter = "openai"
            [[providers]]
            name = 5
            adapter = "openai"
            base_url = "http://x"
            [[providers]]
            name = "c"
            adapter = "openai"
            base_url = "http://x"
            enabeld = true
            "#,
        );
        assert_eq!(
            found,
            [
                "providers[0].base_url: missing (required)",
                "providers[1].name: expected a string, found the integer 5",
                "providers[2].enabeld: unknown key; did you mean `enabled`?",
            ]
        );
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail API returns figment::Error"
    )]
    fn problems_set_by_the_environment_name_the_variable() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[server]\nlisten = \"127.0.0.1:1\"\n")?;
            jail.set_env("ORCH_SERVER__LISTNE", "127.0.0.1:2");
            jail.set_env("ORCH_UPSTREAM__CONNECT_TIMEOUT_MS", "soon");
            let found = match Config::load(Path::new("c.toml")) {
                Err(ConfigError::Invalid { problems, .. }) => problems,
                other => return Err(format!("{other:?}").into()),
            };
            let found: Vec<String> = found.iter().map(ToString::to_string).collect();
            assert_eq!(
                found,
                [
                    "server.listne: unknown key; did you mean `listen`? \
                     (set by environment variable ORCH_SERVER__LISTNE)",
                    "upstream.connect_timeout_ms: expected a non-negative integer, \
                     found a string (set by environment variable \
                     ORCH_UPSTREAM__CONNECT_TIMEOUT_MS)",
                ]
            );
            Ok(())
        });
    }
}
