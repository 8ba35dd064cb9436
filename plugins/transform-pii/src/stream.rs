//! Redacting streams: a [`StreamFilter`] that holds back the tail of each
//! choice's text while it might still become (part of) a match.

use std::collections::BTreeMap;

use orch_plugin_sdk::json::RawObject;
use orch_plugin_sdk::{PluginError, StreamFilter, TransformContext, Usage};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::detect::{self, KindSet, Match};

/// The most text held back per choice, in bytes. When more would be held,
/// the oldest part is released anyway (redacted as far as it is known), so a
/// match longer than this that straddles the release point may be missed.
pub const MAX_HOLD: usize = 256;

/// How much already released text is kept as context for the detectors'
/// look-behind rules (a match never starts in it).
const CONTEXT: usize = 16;

/// The `pii-redact` stream filter. Passes every chunk through untouched
/// unless the configuration has `"responses": true`; see the crate
/// documentation for what it does then.
#[derive(Debug)]
pub struct PiiFilter {
    /// What the filter does.
    mode: Mode,
}

/// What a [`PiiFilter`] does.
#[derive(Debug)]
enum Mode {
    /// Pass everything through (`responses` is false).
    Off,
    /// The configuration is invalid: every call fails with this error.
    Failed(PluginError),
    /// Redact.
    On(Box<Redactor>),
}

impl StreamFilter for PiiFilter {
    fn new(ctx: TransformContext) -> Self {
        let mode = match Config::parse(&ctx.config) {
            Ok(config) if config.responses => Mode::On(Box::new(Redactor::new(config))),
            Ok(_) => Mode::Off,
            Err(err) => Mode::Failed(err),
        };
        Self { mode }
    }

    fn on_chunk(&mut self, chunk: String) -> Result<Vec<String>, PluginError> {
        match &mut self.mode {
            Mode::Off => Ok(vec![chunk]),
            Mode::Failed(err) => Err(err.clone()),
            Mode::On(redactor) => redactor.on_chunk(chunk),
        }
    }

    fn on_end(&mut self, _usage: Option<Usage>) -> Result<Vec<String>, PluginError> {
        match &mut self.mode {
            Mode::Off => Ok(Vec::new()),
            Mode::Failed(err) => Err(err.clone()),
            Mode::On(redactor) => Ok(redactor.flush_all()),
        }
    }
}

/// The text state of one choice.
#[derive(Debug, Default)]
struct ChoiceText {
    /// The last few bytes already released (raw), for look-behind.
    context: String,
    /// Raw text not released yet.
    held: String,
}

/// Redacting stream state.
#[derive(Debug)]
struct Redactor {
    /// The configuration.
    config: Config,
    /// Per choice index.
    choices: BTreeMap<u64, ChoiceText>,
    /// JSON text of `id`, `object`, `created` and `model` of the latest
    /// chunk that had them, for synthetic chunks.
    envelope: [Option<String>; 4],
}

/// The top-level fields copied into synthetic chunks, in order.
const ENVELOPE: [&str; 4] = ["id", "object", "created", "model"];

impl Redactor {
    fn new(config: Config) -> Self {
        Self {
            config,
            choices: BTreeMap::new(),
            envelope: Default::default(),
        }
    }

    fn on_chunk(&mut self, chunk: String) -> Result<Vec<String>, PluginError> {
        let object = RawObject::parse(&chunk).map_err(|_| not_a_chunk())?;
        for (slot, key) in self.envelope.iter_mut().zip(ENVELOPE) {
            if let Some(raw) = object.get(key) {
                *slot = Some(raw.to_owned());
            }
        }
        let mut choices = match object.value("choices") {
            Some(Ok(Value::Array(choices))) => choices,
            Some(Ok(Value::Null)) | None => Vec::new(),
            Some(_) => return Err(not_a_chunk()),
        };
        if choices.is_empty() {
            // Usage (or other choice-less) chunk: release held text first so
            // it does not arrive after the end-of-stream information.
            let mut out = self.flush_all();
            out.push(chunk);
            return Ok(out);
        }
        let mut changed = false;
        for (position, choice) in choices.iter_mut().enumerate() {
            changed |= self.rewrite_choice(choice, position);
        }
        if !changed {
            return Ok(vec![chunk]);
        }
        if !choices.iter().any(carries_something) && !object.has_non_null("usage") {
            // All its text is held and it carries nothing else.
            return Ok(Vec::new());
        }
        let mut object = object;
        object.set("choices", &Value::Array(choices));
        Ok(vec![object.to_json()])
    }

    /// Rewrites the `delta.content` of one choice; whether it changed.
    fn rewrite_choice(&mut self, choice: &mut Value, position: usize) -> bool {
        let Some(choice) = choice.as_object_mut() else {
            return false;
        };
        let index = choice
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
        let content = choice
            .get("delta")
            .and_then(|delta| delta.get("content"))
            .and_then(Value::as_str);
        let replacement = match content {
            Some(text) => {
                let out = self.push(index, text, finished);
                (out != text).then_some(out)
            }
            None if finished => Some(self.push(index, "", true)).filter(|out| !out.is_empty()),
            None => None,
        };
        let Some(replacement) = replacement else {
            return false;
        };
        let delta = choice
            .entry("delta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !delta.is_object() {
            *delta = Value::Object(Map::new());
        }
        if let Value::Object(delta) = delta {
            delta.insert("content".to_owned(), Value::String(replacement));
        }
        true
    }

    /// Adds `delta` to the text of choice `index` and returns the redacted
    /// text that is final now (all of it when `flush`).
    fn push(&mut self, index: u64, delta: &str, flush: bool) -> String {
        let kinds = self.config.kinds;
        let state = self.choices.entry(index).or_default();
        let base = state.context.len();
        let mut text = std::mem::take(&mut state.context);
        text.reserve(state.held.len() + delta.len());
        text.push_str(&state.held);
        text.push_str(delta);
        let matches = detect::find(&text, kinds);
        let cut = if flush {
            text.len()
        } else {
            cut_point(&text, base, &matches, kinds)
        };
        let out = self.config.redact_range(&text, base, cut, &matches);
        state.held = text[cut..].to_owned();
        let mut context_start = cut.saturating_sub(CONTEXT);
        while !text.is_char_boundary(context_start) {
            context_start += 1;
        }
        text.truncate(cut);
        text.drain(..context_start);
        state.context = text;
        out
    }

    /// Releases the text held for every choice, as one synthetic chunk (none
    /// when nothing is held).
    fn flush_all(&mut self) -> Vec<String> {
        let held: Vec<u64> = self
            .choices
            .iter()
            .filter(|(_, state)| !state.held.is_empty())
            .map(|(index, _)| *index)
            .collect();
        let mut choices = Vec::new();
        for index in held {
            let text = self.push(index, "", true);
            if text.is_empty() {
                continue;
            }
            let mut delta = Map::new();
            delta.insert("content".to_owned(), Value::String(text));
            let mut choice = Map::new();
            choice.insert("index".to_owned(), Value::from(index));
            choice.insert("delta".to_owned(), Value::Object(delta));
            choice.insert("finish_reason".to_owned(), Value::Null);
            choices.push(Value::Object(choice));
        }
        if choices.is_empty() {
            return Vec::new();
        }
        let mut out = String::from("{");
        for (key, raw) in ENVELOPE.into_iter().zip(&self.envelope) {
            let raw = match (key, raw) {
                (_, Some(raw)) => raw.as_str(),
                ("object", None) => "\"chat.completion.chunk\"",
                (_, None) => continue,
            };
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            out.push_str(raw);
            out.push(',');
        }
        out.push_str("\"choices\":");
        out.push_str(&Value::Array(choices).to_string());
        out.push('}');
        vec![out]
    }
}

/// Where the final part of `text` ends: at most at the detectors'
/// [`detect::tail_start`], never inside a match, never before `base` (the
/// context), and at most [`MAX_HOLD`] bytes before the end.
fn cut_point(text: &str, base: usize, matches: &[Match], kinds: KindSet) -> usize {
    let mut cut = detect::tail_start(text, kinds).max(base);
    for m in matches {
        if m.start < cut && cut < m.end {
            cut = m.start.max(base);
        }
    }
    if text.len() - cut > MAX_HOLD {
        let mut bound = text.len() - MAX_HOLD;
        while !text.is_char_boundary(bound) {
            bound += 1;
        }
        for m in matches {
            if m.start < bound && bound < m.end {
                bound = m.end;
            }
        }
        cut = bound;
    }
    cut
}

/// Whether a choice carries anything besides (empty) content: a finish
/// reason, a role, tool calls, logprobs, ...
fn carries_something(choice: &Value) -> bool {
    let Some(choice) = choice.as_object() else {
        return true;
    };
    choice.iter().any(|(key, value)| match key.as_str() {
        "index" => false,
        "delta" => value.as_object().is_some_and(|delta| {
            delta.iter().any(|(key, value)| match key.as_str() {
                "content" => value.as_str().is_some_and(|text| !text.is_empty()),
                _ => !value.is_null(),
            })
        }),
        _ => !value.is_null(),
    })
}

/// The error for a chunk that is not a canonical chunk object.
fn not_a_chunk() -> PluginError {
    PluginError::server("pii-redact: stream chunk is not a chat.completion.chunk JSON object")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TEXT: &str =
        "contact me at jane.doe@example.com or +1 415 555 0100, card 4111 1111 1111 1111";
    const RAW: [&str; 8] = [
        "jane", "example", "415", "555", "0100", "4111", "1111", "doe",
    ];

    fn filter() -> PiiFilter {
        PiiFilter::new(TransformContext::for_config(r#"{"responses": true}"#))
    }

    /// A content chunk, fields in the usual (unsorted) order.
    fn content_chunk(text: &str) -> String {
        format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{{"index":0,"delta":{{"content":{}}},"finish_reason":null}}]}}"#,
            Value::from(text)
        )
    }

    fn finish_chunk() -> String {
        r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_owned()
    }

    /// The content of every choice-0 delta in `chunks`.
    fn contents(chunks: &[String]) -> Vec<String> {
        chunks
            .iter()
            .filter_map(|chunk| {
                let value: Value = serde_json::from_str(chunk).unwrap();
                value["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Streams `parts` (then a finish chunk when `finish`, then the end) and
    /// returns the emitted contents.
    fn run(filter: &mut PiiFilter, parts: &[&str], finish: bool) -> Vec<String> {
        let mut out = Vec::new();
        for part in parts {
            out.extend(filter.on_chunk(content_chunk(part)).unwrap());
        }
        if finish {
            out.extend(filter.on_chunk(finish_chunk()).unwrap());
        }
        out.extend(filter.on_end(None).unwrap());
        contents(&out)
    }

    fn check_split(parts: &[&str], expected: &str, finish: bool) {
        let emitted = run(&mut filter(), parts, finish);
        assert_eq!(emitted.concat(), expected, "parts {parts:?}");
        for piece in &emitted {
            for raw in RAW {
                assert!(
                    !piece.contains(raw),
                    "{raw:?} leaked in {piece:?} of {parts:?}"
                );
            }
        }
    }

    fn char_splits(text: &str) -> Vec<usize> {
        (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect()
    }

    #[test]
    fn every_split_in_two_and_three() {
        let expected = Config::parse("{}").unwrap().redact(TEXT).unwrap();
        assert_eq!(
            expected,
            "contact me at [REDACTED:EMAIL] or [REDACTED:PHONE], card [REDACTED:CARD]"
        );
        let splits = char_splits(TEXT);
        for &i in &splits {
            check_split(&[&TEXT[..i], &TEXT[i..]], &expected, i % 2 == 0);
            for &j in splits.iter().filter(|&&j| j >= i) {
                check_split(
                    &[&TEXT[..i], &TEXT[i..j], &TEXT[j..]],
                    &expected,
                    j % 2 == 1,
                );
            }
        }
    }

    #[test]
    fn every_split_multibyte() {
        // Non-ASCII text around the matches: splits only on char boundaries
        // (chunks are strings), output must match the one-shot redaction.
        let text = "é日本 jane.doe@example.com→☎ +44 20 7946 0958 ü sk-abcdefghijklmnopqrstu 🎉";
        let config = Config::parse("{}").unwrap();
        let expected = config.redact(text).unwrap();
        assert_eq!(
            expected,
            "é日本 [REDACTED:EMAIL]→☎ [REDACTED:PHONE] ü [REDACTED:API_KEY] 🎉"
        );
        let splits = char_splits(text);
        for &i in &splits {
            for &j in splits.iter().filter(|&&j| j >= i) {
                let emitted = run(&mut filter(), &[&text[..i], &text[i..j], &text[j..]], false);
                assert_eq!(emitted.concat(), expected, "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn char_by_char_tricky_texts() {
        let config = Config::parse("{}").unwrap();
        for text in [
            "Dates 2024-05-01 10:30, v1.2.3, order 12345 and 4111 1111 1111 1112.",
            "a@b.com.123 (415) 555-0100x 415-555-0100@example.com sk-short sk-0123456789abcdefXYZ",
            "x(415) 555-0100 ab-12 (4) 1234 +1 415 555 0100 AKIAIOSFODNN7EXAMPLE.",
            "   ",
            "no pii at all, just words and numbers like 42 and 3.14",
        ] {
            let expected = config.redact(text).unwrap_or_else(|| text.to_owned());
            let parts: Vec<&str> = text.split_inclusive(|_| true).collect();
            for finish in [false, true] {
                let emitted = run(&mut filter(), &parts, finish);
                assert_eq!(emitted.concat(), expected, "{text:?}");
            }
        }
    }

    /// Texts built from PII-ish fragments by a fixed pseudo-random sequence,
    /// under several configurations: every split in two, random splits in
    /// three, and char by char give the one-shot redaction.
    #[test]
    fn fuzz_splits() {
        const FRAGMENTS: [&str; 39] = [
            "a",
            "b.",
            "@",
            ".",
            "-",
            " ",
            "1",
            "4",
            "0",
            "+",
            "(",
            ")",
            "com",
            "sk-",
            "x",
            "é",
            "2024",
            "_",
            "AKIA",
            "415",
            "1111",
            " 555 ",
            "@ex.io",
            "%",
            "ghp_",
            "0100",
            "4111 ",
            "\n",
            "(415) ",
            "2024-05-01 ",
            "AIza",
            "xoxb-",
            "a@b.com ",
            "+44 (0)20 ",
            "9",
            "1.",
            "AbCdEfGhIjKlMnOpQrStUvWxYz012",
            "github_pat_",
            "日",
        ];
        const CONFIGS: [&str; 4] = [
            r#"{"responses": true}"#,
            r#"{"responses": true, "kinds": ["email", "api_key"]}"#,
            r#"{"responses": true, "kinds": ["phone", "card"]}"#,
            r#"{"responses": true, "kinds": ["card"], "replacement": ""}"#,
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).unwrap() % bound
        };
        for _ in 0..FUZZ_TEXTS {
            let config_text = CONFIGS[next(CONFIGS.len())];
            let config = Config::parse(config_text).unwrap();
            let new_filter = || PiiFilter::new(TransformContext::for_config(config_text));
            let len = 1 + next(24);
            let text: String = (0..len).map(|_| FRAGMENTS[next(FRAGMENTS.len())]).collect();
            let expected = config.redact(&text).unwrap_or_else(|| text.clone());
            let splits = char_splits(&text);
            for &i in &splits {
                let emitted = run(&mut new_filter(), &[&text[..i], &text[i..]], false);
                assert_eq!(
                    emitted.concat(),
                    expected,
                    "{config_text} {text:?} split at {i}"
                );
            }
            for _ in 0..16 {
                let (a, b) = (splits[next(splits.len())], splits[next(splits.len())]);
                let (i, j) = (a.min(b), a.max(b));
                let parts = [&text[..i], &text[i..j], &text[j..]];
                let emitted = run(&mut new_filter(), &parts, true);
                assert_eq!(emitted.concat(), expected, "{config_text} {parts:?}");
            }
            let parts: Vec<&str> = text.split_inclusive(|_| true).collect();
            let emitted = run(&mut new_filter(), &parts, true);
            assert_eq!(emitted.concat(), expected, "{config_text} {text:?}");
        }
    }

    /// How many texts [`fuzz_splits`] tries (raised locally to 200 000 while
    /// developing).
    const FUZZ_TEXTS: usize = 1_500;

    #[test]
    fn hold_is_bounded() {
        let long = "1 ".repeat(400);
        let mut filter = filter();
        let out = filter.on_chunk(content_chunk(&long)).unwrap();
        let emitted = contents(&out).concat();
        assert!(long.len() - emitted.len() <= MAX_HOLD);
        let rest = contents(&filter.on_end(None).unwrap()).concat();
        assert_eq!(emitted + &rest, long);
    }

    #[test]
    fn passthrough_when_responses_off() {
        for config in ["{}", r#"{"responses": false}"#] {
            let mut filter = PiiFilter::new(TransformContext::for_config(config));
            let chunk = content_chunk("mail jane@example.com");
            assert_eq!(filter.on_chunk(chunk.clone()).unwrap(), [chunk]);
            assert_eq!(
                filter.on_chunk("not json".to_owned()).unwrap(),
                ["not json"]
            );
            assert!(filter.on_end(None).unwrap().is_empty());
        }
    }

    #[test]
    fn invalid_config_fails() {
        let mut filter = PiiFilter::new(TransformContext::for_config(r#"{"responses": "yes"}"#));
        assert!(filter.on_chunk(content_chunk("x")).is_err());
        assert!(filter.on_end(None).is_err());
    }

    #[test]
    fn chunk_handling() {
        let mut filter = filter();
        // Role chunk with empty content: untouched, byte for byte.
        let role = r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        assert_eq!(filter.on_chunk(role.to_owned()).unwrap(), [role]);
        // Nothing to hold: untouched.
        let hello = content_chunk("Hello, ");
        assert_eq!(filter.on_chunk(hello.clone()).unwrap(), [hello]);
        // Everything held, nothing else carried: dropped.
        assert!(
            filter
                .on_chunk(content_chunk("write to jane"))
                .unwrap()
                .len()
                == 1
        );
        assert!(
            filter
                .on_chunk(content_chunk(".doe@exa"))
                .unwrap()
                .is_empty()
        );
        // The rest, field order kept.
        let out = filter.on_chunk(content_chunk("mple.com today")).unwrap();
        assert_eq!(
            out,
            [
                r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"delta":{"content":"[REDACTED:EMAIL] "},"finish_reason":null,"index":0}]}"#
            ]
        );
        // A usage chunk releases held text first, in a synthetic chunk.
        let usage = r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let out = filter.on_chunk(usage.to_owned()).unwrap();
        assert_eq!(
            out,
            [
                r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"delta":{"content":"today"},"finish_reason":null,"index":0}]}"#,
                usage
            ]
        );
        assert!(filter.on_end(None).unwrap().is_empty());
        assert!(filter.on_chunk("[1]".to_owned()).is_err());
    }

    #[test]
    fn finish_reason_flushes_into_its_chunk() {
        let mut filter = filter();
        assert!(
            filter
                .on_chunk(content_chunk("key sk-abcdefghij"))
                .unwrap()
                .len()
                == 1
        );
        let out = filter.on_chunk(content_chunk("klmnopqrstu")).unwrap();
        assert!(out.is_empty());
        let out = filter.on_chunk(finish_chunk()).unwrap();
        let value: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(
            value["choices"][0]["delta"]["content"],
            "[REDACTED:API_KEY]"
        );
        assert_eq!(value["choices"][0]["finish_reason"], "stop");
        assert!(filter.on_end(None).unwrap().is_empty());
    }

    #[test]
    fn choices_are_independent() {
        let mut filter = filter();
        let chunk = |index: u32, text: &str| {
            json!({"id": "c", "model": "m", "choices": [{"index": index, "delta": {"content": text}}]})
                .to_string()
        };
        let mut out = Vec::new();
        for (index, text) in [
            (0, "a jane@"),
            (1, "b john@"),
            (0, "example.com x"),
            (1, "example.org y"),
        ] {
            out.extend(filter.on_chunk(chunk(index, text)).unwrap());
        }
        out.extend(filter.on_end(None).unwrap());
        let mut texts = [String::new(), String::new()];
        for chunk in &out {
            let value: Value = serde_json::from_str(chunk).unwrap();
            for choice in value["choices"].as_array().unwrap() {
                let index = usize::try_from(choice["index"].as_u64().unwrap()).unwrap();
                texts[index].push_str(choice["delta"]["content"].as_str().unwrap_or_default());
            }
        }
        assert_eq!(texts, ["a [REDACTED:EMAIL] x", "b [REDACTED:EMAIL] y"]);
    }
}
