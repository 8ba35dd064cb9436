//! Transformer `block-list`: refuses requests (and optionally responses) whose
//! text matches a keyword or regex block list.
//!
//! # Configuration
//!
//! ```toml
//! [[transformers]]
//! plugin = "block-list"
//! config = { keywords = ["project falcon", "internal only"], patterns = ['\bACME-\d{4}\b'], responses = true }
//! ```
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `keywords` | array of non-empty strings | `[]` | Blocked if any occurs anywhere in a text (substring match). |
//! | `patterns` | array of regular expressions | `[]` | Blocked if any matches a text ([`regex`] syntax; a pattern that matches the empty text is refused). |
//! | `case_sensitive` | bool | `false` | When false, keywords and patterns ignore case (Unicode case folding, as `(?i)`). |
//! | `status` | integer, 400..=599 | `400` | HTTP status of the refusal. |
//! | `code` | 1-128 characters of `[A-Za-z0-9_.-]` | `"blocked_by_policy"` | Error code of the refusal. |
//! | `message` | non-empty string | `"The request was blocked by the gateway's content policy."` | Error message of the refusal. |
//! | `responses` | bool | `false` | Also check responses and streams. |
//!
//! At least one of `keywords` and `patterns` must be non-empty.
//!
//! # What is checked
//!
//! * Requests: the content of every message in `messages` (a string, or the
//!   `text` of each content part), whatever its role. The first hit refuses
//!   the request with `status`, `code` and `message`; the matched text is
//!   never echoed to the client nor logged.
//! * With `responses = true`, non-streaming responses: the content of every
//!   `choices[].message`; a hit refuses the response the same way.
//! * With `responses = true`, streams: each choice's `delta.content` text is
//!   accumulated, so a match split across chunks is found. Chunks pass on
//!   unchanged until a match completes; then the chunk is refused with a
//!   `content-filter` error (code `code`, status `status`, message `message`)
//!   that the gateway turns into an in-stream error. Text sent before the
//!   match completed (a prefix of it) has already reached the client.
//!   Keywords are searched only where a new match can be; patterns run over
//!   the choice's whole text at each content chunk, so long streams with
//!   many patterns cost more.
//!
//! The `regex` dependency is built without its `std` feature: with it,
//! regex-automata creates `RandomState` hash maps, which trap in the sandbox.

use std::collections::BTreeMap;
use std::fmt::Display;

use orch_plugin_sdk::json::RawObject;
use orch_plugin_sdk::{
    ErrorClass, PluginError, PluginInfo, Rejection, RequestAction, ResponseAction, StreamFilter,
    TransformContext, Transformer, Usage, config, log,
};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::Value;

/// The plugin id.
const ID: &str = "block-list";

/// The `block-list` transformer.
pub struct Plugin;

impl Transformer for Plugin {
    type Filter = Filter;

    fn info() -> PluginInfo {
        PluginInfo::transformer(ID, env!("CARGO_PKG_VERSION")).with_description(
            "Refuses requests (and optionally responses) that match a keyword or regex block list.",
        )
    }

    fn check_config(config: &str) -> Result<(), PluginError> {
        Config::parse(config)?.policy().map(drop)
    }

    fn on_request(ctx: &TransformContext, body: &str) -> Result<RequestAction, PluginError> {
        let policy = Config::of(ctx)?.policy().map_err(server)?;
        let request = RawObject::parse(body).map_err(|err| {
            PluginError::bad_request(format!("the request is not a JSON object: {err}"))
        })?;
        let Some(Ok(Value::Array(messages))) = request.value("messages") else {
            return Ok(RequestAction::Pass);
        };
        for (index, message) in messages.iter().enumerate() {
            if let Some(rule) = message.get("content").and_then(|c| policy.check(c)) {
                log::info!("request refused: `messages[{index}]` matched {rule}");
                return Ok(RequestAction::Reject(policy.rejection));
            }
        }
        Ok(RequestAction::Pass)
    }

    fn on_response(
        ctx: &TransformContext,
        body: &str,
        _usage: Option<Usage>,
    ) -> Result<ResponseAction, PluginError> {
        let config = Config::of(ctx)?;
        if !config.responses {
            return Ok(ResponseAction::Pass);
        }
        let policy = config.policy().map_err(server)?;
        let response = RawObject::parse(body).map_err(|err| {
            PluginError::server(format!("the response is not a JSON object: {err}"))
        })?;
        let Some(Ok(Value::Array(choices))) = response.value("choices") else {
            return Ok(ResponseAction::Pass);
        };
        for (index, choice) in choices.iter().enumerate() {
            let content = choice.get("message").and_then(|m| m.get("content"));
            if let Some(rule) = content.and_then(|c| policy.check(c)) {
                log::info!("response refused: `choices[{index}]` matched {rule}");
                return Ok(ResponseAction::Reject(policy.rejection));
            }
        }
        Ok(ResponseAction::Pass)
    }
}

orch_plugin_sdk::export_transformer!(Plugin);

/// The stream filter: watches each choice's accumulated text when the
/// configuration sets `responses`, and fails the stream at the first match.
pub struct Filter(FilterState);

/// What the stream filter does.
enum FilterState {
    /// `responses` is off: pass everything.
    Off,
    /// The configuration is unusable, or a match was found: fail every chunk.
    Failed(PluginError),
    /// Check the text of every choice so far.
    Watching {
        /// The compiled configuration.
        policy: Box<Policy>,
        /// The content of each choice so far, by choice index.
        texts: BTreeMap<u64, String>,
    },
}

impl StreamFilter for Filter {
    fn new(ctx: TransformContext) -> Self {
        Self(match Config::of(&ctx) {
            Err(err) => FilterState::Failed(err),
            Ok(config) if !config.responses => FilterState::Off,
            Ok(config) => match config.policy() {
                Err(err) => FilterState::Failed(server(err)),
                Ok(policy) => FilterState::Watching {
                    policy: Box::new(policy),
                    texts: BTreeMap::new(),
                },
            },
        })
    }

    fn on_chunk(&mut self, chunk: String) -> Result<Vec<String>, PluginError> {
        let (policy, texts) = match &mut self.0 {
            FilterState::Off => return Ok(vec![chunk]),
            FilterState::Failed(err) => return Err(err.clone()),
            FilterState::Watching { policy, texts } => (policy, texts),
        };
        let Ok(value) = serde_json::from_str::<Value>(&chunk) else {
            return Ok(vec![chunk]); // not a JSON chunk: nothing to read
        };
        let choices = value.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let content = choice.pointer("/delta/content").and_then(Value::as_str);
            let Some(content) = content.filter(|c| !c.is_empty()) else {
                continue;
            };
            let text = texts.entry(index).or_default();
            let new_from = text.len();
            text.push_str(content);
            if let Some(rule) = policy.find_from(text, new_from) {
                log::info!("stream refused: choice {index} matched {rule}");
                let Rejection {
                    status,
                    code,
                    message,
                } = policy.rejection.clone();
                let err = PluginError::content_filter(message)
                    .with_code(code)
                    .with_status(status);
                self.0 = FilterState::Failed(err.clone());
                return Err(err);
            }
        }
        Ok(vec![chunk])
    }

    fn on_end(&mut self, _usage: Option<Usage>) -> Result<Vec<String>, PluginError> {
        Ok(Vec::new())
    }
}

/// The attachment's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
struct Config {
    /// Blocked substrings.
    #[serde(default)]
    keywords: Vec<String>,
    /// Blocked regular expressions.
    #[serde(default)]
    patterns: Vec<String>,
    /// Whether matching respects case.
    #[serde(default)]
    case_sensitive: bool,
    /// Status of a refusal.
    #[serde(default = "default_status")]
    status: u16,
    /// Code of a refusal.
    #[serde(default = "default_code")]
    code: String,
    /// Message of a refusal.
    #[serde(default = "default_message")]
    message: String,
    /// Whether responses and streams are checked too.
    #[serde(default)]
    responses: bool,
}

/// The default refusal status.
fn default_status() -> u16 {
    400
}

/// The default refusal code.
fn default_code() -> String {
    "blocked_by_policy".into()
}

/// The default refusal message.
fn default_message() -> String {
    "The request was blocked by the gateway's content policy.".into()
}

impl Config {
    /// Parses and checks configuration text, except for the regular
    /// expressions ([`Config::policy`] compiles them).
    fn parse(text: &str) -> Result<Self, PluginError> {
        let config: Self = config::parse(ID, text)?;
        if config.keywords.is_empty() && config.patterns.is_empty() {
            return Err(config::invalid(
                ID,
                ".",
                "nothing to block: `keywords` or `patterns` must be non-empty",
            ));
        }
        if let Some(index) = config.keywords.iter().position(String::is_empty) {
            return Err(config::invalid(
                ID,
                format!("keywords[{index}]"),
                "must not be empty",
            ));
        }
        if !(400..=599).contains(&config.status) {
            return Err(config::invalid(ID, "status", "must be between 400 and 599"));
        }
        let code_ok = (1..=128).contains(&config.code.len())
            && config
                .code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !code_ok {
            return Err(config::invalid(
                ID,
                "code",
                "must be 1 to 128 characters of `A-Z`, `a-z`, `0-9`, `_`, `-` and `.`",
            ));
        }
        if config.message.is_empty() {
            return Err(config::invalid(ID, "message", "must not be empty"));
        }
        Ok(config)
    }

    /// Compiles the keywords and patterns.
    fn policy(self) -> Result<Policy, PluginError> {
        let build = |pattern: &str| {
            RegexBuilder::new(pattern)
                .case_insensitive(!self.case_sensitive)
                .build()
        };
        let keywords = if self.keywords.is_empty() {
            None
        } else {
            let alternation: Vec<String> = self.keywords.iter().map(|k| regex::escape(k)).collect();
            Some(
                build(&alternation.join("|"))
                    .map_err(|err| config::invalid(ID, "keywords", err))?,
            )
        };
        let mut patterns = Vec::with_capacity(self.patterns.len());
        for (index, pattern) in self.patterns.iter().enumerate() {
            let path = format!("patterns[{index}]");
            let regex = build(pattern).map_err(|err| config::invalid(ID, &path, err))?;
            if regex.is_match("") {
                return Err(config::invalid(
                    ID,
                    path,
                    "matches the empty text, so it would block everything",
                ));
            }
            patterns.push(regex);
        }
        Ok(Policy {
            keywords,
            keyword_chars: self
                .keywords
                .iter()
                .map(|k| k.chars().count())
                .max()
                .unwrap_or(0),
            patterns,
            rejection: Rejection::new(self.status, self.code, self.message),
        })
    }

    /// The configuration of a hook's attachment. It passed `check_config`
    /// when the gateway loaded it, so an error here is the gateway's fault.
    fn of(ctx: &TransformContext) -> Result<Self, PluginError> {
        Self::parse(&ctx.config).map_err(server)
    }
}

/// Turns a configuration error met at request time into a server error.
fn server(err: PluginError) -> PluginError {
    err.with_class(ErrorClass::Server)
}

/// The compiled configuration.
struct Policy {
    /// Every keyword, as one case-(in)sensitive alternation of literals.
    keywords: Option<Regex>,
    /// The length of the longest keyword, in characters.
    keyword_chars: usize,
    /// The patterns.
    patterns: Vec<Regex>,
    /// The refusal.
    rejection: Rejection,
}

/// Which rule matched, for the log (never the matched text).
enum Rule {
    /// One of the keywords.
    Keyword,
    /// The pattern with this index.
    Pattern(usize),
}

impl Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keyword => f.write_str("a keyword"),
            Self::Pattern(index) => write!(f, "`patterns[{index}]`"),
        }
    }
}

impl Policy {
    /// The first rule that matches `text`.
    fn find(&self, text: &str) -> Option<Rule> {
        self.find_from(text, 0)
    }

    /// The first rule that matches `text`, knowing that `text[..new_from]`
    /// matched none. A keyword match has as many characters as the keyword
    /// (case folding maps one character to one), so keywords are searched
    /// only from `keyword_chars - 1` characters before `new_from`; patterns
    /// (of unknown length, maybe anchored) run over the whole text.
    fn find_from(&self, text: &str, new_from: usize) -> Option<Rule> {
        if let Some(keywords) = &self.keywords {
            let back = self.keyword_chars.saturating_sub(1);
            let start = match back {
                0 => new_from,
                _ => text[..new_from]
                    .char_indices()
                    .rev()
                    .nth(back - 1)
                    .map_or(0, |(at, _)| at),
            };
            if keywords.is_match_at(text, start) {
                return Some(Rule::Keyword);
            }
        }
        self.patterns
            .iter()
            .position(|p| p.is_match(text))
            .map(Rule::Pattern)
    }

    /// The first rule that matches message content: a string, or content
    /// parts whose `text` is checked one by one.
    fn check(&self, content: &Value) -> Option<Rule> {
        match content {
            Value::String(text) => self.find(text),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .find_map(|text| self.find(text)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(config: &Value) -> TransformContext {
        TransformContext::for_config(config.to_string())
    }

    fn request(config: &Value, body: &Value) -> RequestAction {
        Plugin::check_config(&config.to_string()).unwrap();
        Plugin::on_request(&ctx(config), &body.to_string()).unwrap()
    }

    fn user(content: Value) -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": content}]})
    }

    fn blocked() -> RequestAction {
        RequestAction::Reject(Rejection::new(
            400,
            "blocked_by_policy",
            "The request was blocked by the gateway's content policy.",
        ))
    }

    fn chunk(index: u64, content: &str) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [
            {"index": index, "delta": {"content": content}, "finish_reason": null}
        ]})
        .to_string()
    }

    fn config_error(config: &str) -> String {
        let err = Plugin::check_config(config).unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
        err.message
    }

    #[test]
    fn info() {
        let info = Plugin::info();
        assert_eq!(info.id, "block-list");
        assert!(!info.description.is_empty());
    }

    #[test]
    fn keywords_match_substrings_ignoring_case() {
        let config = json!({"keywords": ["Project Falcon", "a+b"]});
        assert_eq!(
            request(&config, &user(json!("about PROJECT falcon?"))),
            blocked()
        );
        assert_eq!(request(&config, &user(json!("xa+by"))), blocked());
        // Keywords are literals, not regexes.
        assert_eq!(request(&config, &user(json!("aab"))), RequestAction::Pass);
        assert_eq!(
            request(&config, &user(json!("project hawk"))),
            RequestAction::Pass
        );
    }

    #[test]
    fn case_sensitive_matching() {
        let config =
            json!({"keywords": ["Falcon"], "patterns": ["ACME-\\d+"], "case_sensitive": true});
        assert_eq!(
            request(&config, &user(json!("falcon acme-1"))),
            RequestAction::Pass
        );
        assert_eq!(request(&config, &user(json!("Falcon"))), blocked());
        assert_eq!(request(&config, &user(json!("ACME-12"))), blocked());
    }

    #[test]
    fn patterns_match_ignoring_case_by_default() {
        let config = json!({"patterns": ["\\bacme-\\d{4}\\b"]});
        assert_eq!(request(&config, &user(json!("see ACME-1234."))), blocked());
        assert_eq!(
            request(&config, &user(json!("see ACME-12345"))),
            RequestAction::Pass
        );
    }

    #[test]
    fn every_role_and_text_part_is_checked() {
        let config = json!({"keywords": ["secret"]});
        for role in ["system", "developer", "user", "assistant", "tool"] {
            let body = json!({"messages": [
                {"role": "user", "content": "hello"},
                {"role": role, "content": "a SECRET"}
            ]});
            assert_eq!(request(&config, &body), blocked(), "{role}");
        }
        let parts = json!([
            {"type": "image_url", "image_url": {"url": "data:secret"}},
            {"type": "text", "text": "fine"},
            {"type": "text", "text": "top secret"}
        ]);
        assert_eq!(request(&config, &user(parts)), blocked());
        // Only texts count: not image URLs, tool call arguments or names.
        let body = json!({"messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "secret"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "secret", "arguments": "secret"}}]}
        ], "x_secret": "secret"});
        assert_eq!(request(&config, &body), RequestAction::Pass);
        assert_eq!(
            request(&config, &json!({"model": "m"})),
            RequestAction::Pass
        );
    }

    #[test]
    fn custom_rejection_never_echoes_the_match() {
        let config =
            json!({"keywords": ["falcon"], "status": 403, "code": "nope", "message": "Not here."});
        assert_eq!(
            request(&config, &user(json!("falcon"))),
            RequestAction::Reject(Rejection::new(403, "nope", "Not here."))
        );
    }

    #[test]
    fn responses_are_checked_only_when_asked() {
        let body = json!({"id": "r", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "fine"}},
            {"index": 1, "message": {"role": "assistant", "content": "the Falcon plan"}}
        ]})
        .to_string();
        let off = json!({"keywords": ["falcon"]});
        assert_eq!(
            Plugin::on_response(&ctx(&off), &body, None).unwrap(),
            ResponseAction::Pass
        );
        let on = json!({"keywords": ["falcon"], "responses": true});
        assert_eq!(
            Plugin::on_response(&ctx(&on), &body, None).unwrap(),
            ResponseAction::Reject(Rejection::new(
                400,
                "blocked_by_policy",
                "The request was blocked by the gateway's content policy."
            ))
        );
        let clean = json!({"choices": [{"message": {"content": "ok"}}]}).to_string();
        assert_eq!(
            Plugin::on_response(&ctx(&on), &clean, None).unwrap(),
            ResponseAction::Pass
        );
    }

    #[test]
    fn stream_passes_chunks_until_a_split_match_completes() {
        let mut filter = Filter::new(ctx(&json!({"keywords": ["bad word"], "responses": true})));
        for piece in ["This is a ", "ba"] {
            let chunk = chunk(0, piece);
            assert_eq!(filter.on_chunk(chunk.clone()).unwrap(), vec![chunk]);
        }
        let role_only = r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#.to_owned();
        assert_eq!(filter.on_chunk(role_only.clone()).unwrap(), vec![role_only]);
        let err = filter.on_chunk(chunk(0, "D WOrd!")).unwrap_err();
        assert_eq!(err.class, ErrorClass::ContentFilter);
        assert_eq!(err.code.as_deref(), Some("blocked_by_policy"));
        assert_eq!(err.status, Some(400));
        assert!(err.message.contains("blocked"));
        assert!(!err.message.contains("bad"));
        // Later chunks fail too.
        assert!(filter.on_chunk(chunk(0, "more")).is_err());
    }

    #[test]
    fn stream_finds_keywords_spread_over_many_chunks() {
        let config = json!({"keywords": ["x", "Ünïcödé wörd"], "responses": true});
        let mut filter = Filter::new(ctx(&config));
        for piece in ["Some ", "üNÏ", "cö", "dÉ", " ", "wö"] {
            assert!(filter.on_chunk(chunk(0, piece)).is_ok(), "{piece}");
        }
        assert!(filter.on_chunk(chunk(0, "RD")).is_err());
        // A one-character keyword is found in the new text alone.
        let mut filter = Filter::new(ctx(&config));
        assert!(filter.on_chunk(chunk(0, "abc")).is_ok());
        assert!(filter.on_chunk(chunk(0, "X")).is_err());
    }

    #[test]
    fn stream_patterns_see_the_whole_text() {
        let config = json!({"patterns": ["^Sure.*password"], "responses": true});
        let mut filter = Filter::new(ctx(&config));
        for piece in [
            "Sure",
            ", here is ",
            "a long text without the word",
            " and then the ",
        ] {
            assert!(filter.on_chunk(chunk(0, piece)).is_ok(), "{piece}");
        }
        assert!(filter.on_chunk(chunk(0, "PASSWORD")).is_err());
    }

    #[test]
    fn stream_choices_accumulate_separately() {
        let mut filter = Filter::new(ctx(
            &json!({"patterns": ["bad\\s+word"], "responses": true}),
        ));
        for (index, piece) in [(0, "bad "), (1, "word"), (1, " bad"), (0, "news")] {
            assert!(filter.on_chunk(chunk(index, piece)).is_ok());
        }
        assert!(filter.on_chunk(chunk(1, " word")).is_err());
    }

    #[test]
    fn stream_passes_everything_without_responses() {
        let mut filter = Filter::new(ctx(&json!({"keywords": ["bad"]})));
        let chunk = chunk(0, "bad");
        assert_eq!(filter.on_chunk(chunk.clone()).unwrap(), vec![chunk]);
        assert_eq!(filter.on_end(None).unwrap(), Vec::<String>::new());
        let mut filter = Filter::new(ctx(&json!({"keywords": ["bad"], "responses": true})));
        for other in [
            "[DONE]",
            "{}",
            r#"{"choices":[],"usage":{"total_tokens":3}}"#,
        ] {
            assert_eq!(
                filter.on_chunk(other.into()).unwrap(),
                vec![other.to_owned()]
            );
        }
    }

    #[test]
    fn a_bad_config_at_request_time_is_a_server_error() {
        let err = Plugin::on_request(&ctx(&json!({})), "{}").unwrap_err();
        assert_eq!(err.class, ErrorClass::Server);
        let mut filter = Filter::new(ctx(&json!({"patterns": ["("], "responses": true})));
        assert_eq!(
            filter.on_chunk(chunk(0, "x")).unwrap_err().class,
            ErrorClass::Server
        );
    }

    #[test]
    fn config_rejections_name_the_key() {
        for (config, expected) in [
            ("{}", "nothing to block"),
            (r#"{"keywords":[],"patterns":[]}"#, "nothing to block"),
            (
                r#"{"keywords":["a"],"words":["b"]}"#,
                "unknown field `words`",
            ),
            (r#"{"keywords":"a"}"#, "`keywords`: invalid type"),
            (
                r#"{"keywords":["a",""]}"#,
                "`keywords[1]`: must not be empty",
            ),
            (
                r#"{"patterns":["ok","(unclosed"]}"#,
                "`patterns[1]`: regex parse error",
            ),
            (
                r#"{"patterns":["a*"]}"#,
                "`patterns[0]`: matches the empty text",
            ),
            (
                r#"{"keywords":["a"],"case_sensitive":"yes"}"#,
                "`case_sensitive`: invalid type",
            ),
            (
                r#"{"keywords":["a"],"status":200}"#,
                "`status`: must be between 400 and 599",
            ),
            (
                r#"{"keywords":["a"],"status":70000}"#,
                "`status`: invalid value",
            ),
            (
                r#"{"keywords":["a"],"code":""}"#,
                "`code`: must be 1 to 128 characters",
            ),
            (
                r#"{"keywords":["a"],"code":"no way"}"#,
                "`code`: must be 1 to 128 characters",
            ),
            (
                r#"{"keywords":["a"],"message":""}"#,
                "`message`: must not be empty",
            ),
            (
                r#"{"keywords":["a"],"message":1}"#,
                "`message`: invalid type",
            ),
            (
                r#"{"keywords":["a"],"responses":1}"#,
                "`responses`: invalid type",
            ),
            ("[]", "must be a JSON object"),
            (r#"[["a"]]"#, "must be a JSON object"),
        ] {
            let message = config_error(config);
            assert!(message.contains(expected), "{config}: {message}");
        }
        assert!(
            Plugin::check_config(
                r#"{"patterns":["x"],"status":599,"code":"a.b-c_1","responses":true}"#
            )
            .is_ok()
        );
    }
}
