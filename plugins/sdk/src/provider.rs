//! Checking a provider's configuration: the base URL, the options, extra
//! headers, and joining endpoint URLs.
//!
//! What every adapter's [`Adapter::check_provider`](crate::Adapter::check_provider)
//! and option parser needs, with the same error messages across adapters.
//! Every error is a `bad-request` whose message starts with
//! ``provider `<name>`: ``, so an operator sees which provider is wrong.
//!
//! ```
//! use orch_plugin_sdk::provider::{OptionsReader, check_base_url, endpoint};
//! use orch_plugin_sdk::{Headers, PluginError, Provider};
//! use serde_json::Value;
//!
//! /// Options of a made-up adapter: `headers` and `beta` (a bool).
//! fn parse(provider: &Provider) -> Result<(Headers, bool), PluginError> {
//!     check_base_url(provider)?;
//!     let reader = OptionsReader::new(provider, "example", &["headers", "beta"]);
//!     let (mut headers, mut beta) = (Vec::new(), false);
//!     for (key, value) in reader.entries()? {
//!         match key.as_str() {
//!             "headers" => headers = reader.extra_headers(value, &["authorization"])?,
//!             "beta" => {
//!                 let Value::Bool(flag) = value else {
//!                     return Err(reader.invalid("option `beta` must be a boolean"));
//!                 };
//!                 beta = flag;
//!             }
//!             _ => return Err(reader.unknown(&key)),
//!         }
//!     }
//!     Ok((headers, beta))
//! }
//!
//! let provider = Provider {
//!     name: "main".to_owned(),
//!     base_url: "https://api.example.com/".to_owned(),
//!     options: r#"{"headers": {"X-Team": "search"}}"#.to_owned(),
//! };
//! let (headers, _) = parse(&provider).unwrap();
//! assert_eq!(headers, [("x-team".to_owned(), "search".to_owned())]);
//! assert_eq!(endpoint(&provider.base_url, "v1/chat"), "https://api.example.com/v1/chat");
//!
//! let typo = Provider { options: r#"{"header": {}}"#.to_owned(), ..provider };
//! assert_eq!(
//!     parse(&typo).unwrap_err().message,
//!     "provider `main`: unknown option `header` for the example adapter (known options: headers, beta)"
//! );
//! ```

use std::fmt;

use serde_json::{Map, Value};

use crate::{Headers, PluginError, Provider};

/// A provider's `base_url` that passed [`check_base_url`]: an absolute
/// `http://` or `https://` URL with a host, without credentials, query or
/// fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseUrl<'a> {
    provider: &'a Provider,
    /// Byte offset of the path (after the authority and its `/`), or the
    /// length of the URL when it has no path.
    path_start: usize,
}

impl<'a> BaseUrl<'a> {
    /// The URL as configured.
    pub fn as_str(&self) -> &'a str {
        &self.provider.base_url
    }

    /// The path after the authority, without its leading `/`, as written
    /// (`"v1/"` for `https://api.example.com/v1/`, `""` without a path).
    pub fn path(&self) -> &'a str {
        self.provider
            .base_url
            .get(self.path_start..)
            .unwrap_or_default()
    }

    /// The last segment of the path, ignoring trailing slashes (`"v1"` for
    /// `https://api.example.com/api/v1/`, `""` without a path).
    pub fn last_segment(&self) -> &'a str {
        self.path()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
    }

    /// A `bad-request` error about this URL, for an adapter's own rules:
    /// ``provider `<name>`: base_url `<url>` <why>``, with param `base_url`.
    pub fn invalid(&self, why: &str) -> PluginError {
        base_url_error(self.provider, why)
    }
}

fn base_url_error(provider: &Provider, why: &str) -> PluginError {
    PluginError::bad_request(format!(
        "provider `{}`: base_url `{}` {why}",
        provider.name, provider.base_url
    ))
    .with_param("base_url")
}

/// Checks that the provider's `base_url` is an absolute `http://` or
/// `https://` URL with a host, without whitespace, credentials, query or
/// fragment. Errors are `bad-request` with param `base_url`, e.g.
/// ``provider `main`: base_url `api.example.com` must be an http:// or https:// URL``.
///
/// ```
/// use orch_plugin_sdk::{Provider, provider::check_base_url};
///
/// let provider = |url: &str| Provider {
///     name: "main".to_owned(),
///     base_url: url.to_owned(),
///     options: String::new(),
/// };
/// let ok = provider("https://api.example.com/api/v1/");
/// let base = check_base_url(&ok).unwrap();
/// assert_eq!((base.path(), base.last_segment()), ("api/v1/", "v1"));
/// let err = check_base_url(&provider("https://key@api.example.com")).unwrap_err();
/// assert_eq!(
///     err.message,
///     "provider `main`: base_url `https://key@api.example.com` must not contain credentials"
/// );
/// ```
pub fn check_base_url(provider: &Provider) -> Result<BaseUrl<'_>, PluginError> {
    let url = provider.base_url.as_str();
    let invalid = |why: &str| base_url_error(provider, why);
    // ASCII lower-casing keeps byte offsets, so offsets into `lower` are
    // offsets into `url`.
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return Err(invalid("must be an http:// or https:// URL"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain whitespace"));
    }
    if url.contains(['?', '#']) {
        return Err(invalid("must not contain a query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid("must not contain credentials"));
    }
    let host_ok = !authority.is_empty()
        && !authority.starts_with(':')
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]%".contains(&b));
    if !host_ok {
        return Err(invalid("has no valid host"));
    }
    let authority_end = url.len() - rest.len() + authority.len();
    Ok(BaseUrl {
        provider,
        path_start: (authority_end + 1).min(url.len()),
    })
}

/// `{base_url}/{path}` without a doubled slash: trailing slashes of
/// `base_url` are dropped. `path` is appended as given (it may carry a
/// query).
///
/// ```
/// use orch_plugin_sdk::provider::endpoint;
///
/// assert_eq!(endpoint("http://localhost:11434/v1/", "models"), "http://localhost:11434/v1/models");
/// assert_eq!(endpoint("https://api.example.com", "v1/models?limit=1"), "https://api.example.com/v1/models?limit=1");
/// ```
pub fn endpoint(base_url: &str, path: &str) -> String {
    format!("{}/{path}", base_url.trim_end_matches('/'))
}

/// Whether `byte` is an RFC 9110 `tchar`: allowed in a token such as a header
/// name.
pub fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Whether `value` is a non-empty RFC 9110 token (e.g. a header name).
pub fn is_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(is_token_byte)
}

/// Whether `value` may be sent as a header value: no control characters but
/// horizontal tab (so no line breaks that would inject headers).
pub fn valid_header_value(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// Reads a provider's options for one adapter, and makes the errors about
/// them: `bad-request`s whose message starts with ``provider `<name>`: ``.
///
/// Walk [`OptionsReader::entries`] (sorted by key), handle the keys the
/// adapter knows and answer any other with [`OptionsReader::unknown`], which
/// lists the known keys. See the [module documentation](self) for an
/// example.
#[derive(Debug, Clone, Copy)]
pub struct OptionsReader<'a> {
    provider: &'a Provider,
    adapter: &'a str,
    known: &'a [&'a str],
}

impl<'a> OptionsReader<'a> {
    /// A reader for `provider`'s options as the adapter called `adapter`
    /// understands them: `known` are its option keys, in the order error
    /// messages list them.
    pub fn new(provider: &'a Provider, adapter: &'a str, known: &'a [&'a str]) -> Self {
        Self {
            provider,
            adapter,
            known,
        }
    }

    /// The options as a JSON object, keys in sorted order (see
    /// [`Provider::options_object`]).
    pub fn entries(&self) -> Result<Map<String, Value>, PluginError> {
        self.provider.options_object()
    }

    /// A `bad-request` error: ``provider `<name>`: <message>``.
    pub fn invalid(&self, message: impl fmt::Display) -> PluginError {
        PluginError::bad_request(format!("provider `{}`: {message}", self.provider.name))
    }

    /// The error for an option key the adapter does not know:
    /// ``provider `<name>`: unknown option `<key>` for the <adapter> adapter (known options: a, b)``.
    pub fn unknown(&self, key: &str) -> PluginError {
        self.invalid(format_args!(
            "unknown option `{key}` for the {} adapter (known options: {})",
            self.adapter,
            self.known.join(", ")
        ))
    }

    /// Parses the value of a `headers` option: an object of header names to
    /// string values, extra static headers for every request. Names are
    /// lower-cased and must be tokens; names in `reserved` (lower-case: the
    /// headers the adapter sets itself or that carry secrets) are refused;
    /// values must not contain control characters. The order is the one of
    /// the parsed object (sorted by name: the workspace's `serde_json` maps
    /// are `BTreeMap`s).
    pub fn extra_headers(&self, value: Value, reserved: &[&str]) -> Result<Headers, PluginError> {
        let Value::Object(headers) = value else {
            return Err(
                self.invalid("option `headers` must be an object of header names to string values")
            );
        };
        parse_extra_headers(headers, reserved).map_err(|message| self.invalid(message))
    }
}

/// The checks of [`OptionsReader::extra_headers`], with the message (without
/// the provider) as the error.
fn parse_extra_headers(headers: Map<String, Value>, reserved: &[&str]) -> Result<Headers, String> {
    let mut parsed = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if !is_token(&lower) {
            return Err(format!(
                "option `headers`: `{name}` is not a valid header name"
            ));
        }
        if reserved.contains(&lower.as_str()) {
            return Err(format!(
                "option `headers`: `{name}` cannot be set here (the gateway sets it)"
            ));
        }
        let Value::String(value) = value else {
            return Err(format!(
                "option `headers`: the value of `{name}` must be a string"
            ));
        };
        if !valid_header_value(&value) {
            return Err(format!(
                "option `headers`: the value of `{name}` must not contain control characters"
            ));
        }
        parsed.push((lower, value));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ErrorClass;

    fn provider(base_url: &str, options: Value) -> Provider {
        Provider {
            name: "p".to_owned(),
            base_url: base_url.to_owned(),
            options: options.to_string(),
        }
    }

    #[test]
    fn good_base_urls_and_their_paths() {
        for (url, path, last) in [
            ("https://api.example.com", "", ""),
            ("https://api.example.com/", "", ""),
            ("https://api.example.com/v1", "v1", "v1"),
            ("HTTPS://Api.Example.com/API/V1/", "API/V1/", "V1"),
            (
                "http://127.0.0.1:9090/proxy/gemini",
                "proxy/gemini",
                "gemini",
            ),
            ("http://[::1]:8000/v1", "v1", "v1"),
            ("http://localhost:11434/a//", "a//", "a"),
        ] {
            let p = provider(url, json!({}));
            let base = check_base_url(&p).unwrap_or_else(|err| panic!("{url}: {err}"));
            assert_eq!(base.as_str(), url);
            assert_eq!((base.path(), base.last_segment()), (path, last), "{url}");
        }
    }

    #[test]
    fn bad_base_urls_say_why() {
        for (url, why) in [
            ("api.example.com/v1", "must be an http:// or https:// URL"),
            (
                "ftp://api.example.com",
                "must be an http:// or https:// URL",
            ),
            ("", "must be an http:// or https:// URL"),
            ("https://api example.com", "must not contain whitespace"),
            ("https://api.example.com/\n", "must not contain whitespace"),
            (
                "https://api.example.com/v1?x=1",
                "must not contain a query or fragment",
            ),
            (
                "https://api.example.com/#f",
                "must not contain a query or fragment",
            ),
            (
                "https://user:key@api.example.com",
                "must not contain credentials",
            ),
            ("https://", "has no valid host"),
            ("https:///v1", "has no valid host"),
            ("https://:443/v1", "has no valid host"),
            ("https://exämple.com", "has no valid host"),
        ] {
            let err = check_base_url(&provider(url, json!({}))).expect_err(url);
            assert_eq!(err.class, ErrorClass::BadRequest, "{url}");
            assert_eq!(err.param.as_deref(), Some("base_url"), "{url}");
            assert_eq!(
                err.message,
                format!("provider `p`: base_url `{url}` {why}"),
                "{url}"
            );
        }
    }

    #[test]
    fn base_url_errors_for_adapter_rules() {
        let p = provider("https://api.example.com/v1beta", json!({}));
        let err = check_base_url(&p)
            .expect("valid")
            .invalid("must not end with v1beta");
        assert_eq!(
            err.message,
            "provider `p`: base_url `https://api.example.com/v1beta` must not end with v1beta"
        );
        assert_eq!(err.param.as_deref(), Some("base_url"));
    }

    #[test]
    fn endpoints_join_without_a_double_slash() {
        assert_eq!(
            endpoint("https://a.test", "models"),
            "https://a.test/models"
        );
        assert_eq!(
            endpoint("https://a.test//", "models"),
            "https://a.test/models"
        );
        assert_eq!(
            endpoint("https://a.test/v1/", "chat/completions?x=1"),
            "https://a.test/v1/chat/completions?x=1"
        );
    }

    #[test]
    fn tokens_and_header_values() {
        assert!(is_token("x-api-key"));
        assert!(is_token("!#$%&'*+-.^_`|~09az"));
        for bad in ["", "a b", "a:b", "a,b", "ä", "a\n"] {
            assert!(!is_token(bad), "{bad:?}");
        }
        assert!(valid_header_value("Bearer x\ty ü"));
        assert!(valid_header_value(""));
        for bad in ["a\nb", "a\r\nx-b: 1", "\u{7f}", "\u{0}"] {
            assert!(!valid_header_value(bad), "{bad:?}");
        }
    }

    fn reader(provider: &Provider) -> OptionsReader<'_> {
        OptionsReader::new(provider, "test", &["alpha", "headers"])
    }

    #[test]
    fn option_errors_name_the_provider_and_the_known_keys() {
        let p = provider("https://a.test", json!({}));
        let err = reader(&p).unknown("beta");
        assert_eq!(err.class, ErrorClass::BadRequest);
        assert!(!err.retryable);
        assert_eq!(
            err.message,
            "provider `p`: unknown option `beta` for the test adapter (known options: alpha, headers)"
        );
        assert_eq!(
            reader(&p)
                .invalid("option `alpha` must be a string")
                .message,
            "provider `p`: option `alpha` must be a string"
        );
    }

    #[test]
    fn entries_are_the_options_object() {
        let p = provider("https://a.test", json!({"b": 1, "a": 2}));
        let entries = reader(&p).entries().expect("object");
        let keys: Vec<&str> = entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "b"]);
        let empty = Provider {
            options: String::new(),
            ..p.clone()
        };
        assert_eq!(reader(&empty).entries(), Ok(Map::new()));
        let list = provider("https://a.test", json!([1]));
        let err = reader(&list).entries().expect_err("not an object");
        assert_eq!(err.message, "options of provider `p` must be a JSON object");
    }

    #[test]
    fn extra_headers_are_lower_cased_in_order() {
        let p = provider("https://a.test", json!({}));
        let headers = reader(&p)
            .extra_headers(
                json!({"X-B": "2", "x-a": "1\tone", "HTTP-Referer": "https://e.test"}),
                &["authorization"],
            )
            .expect("valid");
        // serde_json's map is sorted by key (the workspace never enables
        // `preserve_order`).
        assert_eq!(
            headers,
            [
                ("http-referer".to_owned(), "https://e.test".to_owned()),
                ("x-b".to_owned(), "2".to_owned()),
                ("x-a".to_owned(), "1\tone".to_owned()),
            ]
        );
    }

    #[test]
    fn extra_header_errors() {
        let p = provider("https://a.test", json!({}));
        let reserved = &["authorization", "x-api-key"];
        for (value, message) in [
            (
                json!(["x"]),
                "option `headers` must be an object of header names to string values",
            ),
            (
                json!({"bad name": "v"}),
                "option `headers`: `bad name` is not a valid header name",
            ),
            (
                json!({"": "v"}),
                "option `headers`: `` is not a valid header name",
            ),
            (
                json!({"X-Api-Key": "k"}),
                "option `headers`: `X-Api-Key` cannot be set here (the gateway sets it)",
            ),
            (
                json!({"x-a": 1}),
                "option `headers`: the value of `x-a` must be a string",
            ),
            (
                json!({"x-a": "v\r\nx-b: injected"}),
                "option `headers`: the value of `x-a` must not contain control characters",
            ),
        ] {
            let err = reader(&p)
                .extra_headers(value.clone(), reserved)
                .expect_err("invalid");
            assert_eq!(err.class, ErrorClass::BadRequest, "{value}");
            assert_eq!(err.message, format!("provider `p`: {message}"), "{value}");
        }
    }
}
