//! What the fake says, the same in every dialect: reply texts, echoes,
//! image mentions, thinking texts and token counts.
//!
//! - An answer is `Fake reply to: <first 40 characters of the last user
//!   text>`, followed by ` [images: N]` when the request carried N > 0
//!   images, padded with dots to at least `chunks` characters.
//! - When the last user text contains `echo:`, the answer is exactly the text
//!   after the first `echo:` (leading whitespace trimmed), unpadded.
//! - After tool results the answer is `Tool result received: <quote>`, one
//!   quote (40 characters) per result, joined with `; `.
//! - Thinking (when a request enables it) is `Thinking about <subject>.`.

use serde_json::Value;

/// How many characters of a text a reply quotes.
pub(crate) const QUOTE_CHARS: usize = 40;

/// The marker that turns an answer into an echo.
pub(crate) const ECHO_MARKER: &str = "echo:";

/// The marker that turns an answer into the echo of a base64 text (so a
/// test can have the fake say what a request may not contain).
pub(crate) const ECHO64_MARKER: &str = "echo64:";

/// The first [`QUOTE_CHARS`] characters of `texts`, concatenated.
pub(crate) fn quote<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut quote = String::new();
    let mut remaining = QUOTE_CHARS;
    for text in texts {
        for c in text.chars().take(remaining) {
            quote.push(c);
            remaining -= 1;
        }
        if remaining == 0 {
            break;
        }
    }
    quote
}

/// The text after the first [`ECHO_MARKER`] in `text`, leading whitespace
/// trimmed.
pub(crate) fn echo(text: &str) -> Option<&str> {
    text.split_once(ECHO_MARKER)
        .map(|(_, rest)| rest.trim_start())
}

/// The UTF-8 text whose standard base64 follows [`ECHO64_MARKER`] (up to the
/// next whitespace).
pub(crate) fn echo64(text: &str) -> Option<String> {
    use base64::Engine as _;
    let (_, rest) = text.split_once(ECHO64_MARKER)?;
    let encoded = rest.split_whitespace().next()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// `Fake reply to: <quote>` plus the image mention.
pub(crate) fn answer(quote: &str, images: usize) -> String {
    let mut text = format!("Fake reply to: {quote}");
    if images > 0 {
        text.push_str(&format!(" [images: {images}]"));
    }
    text
}

/// `Tool result received: <quote>; <quote>`.
pub(crate) fn tool_results(quotes: &[String]) -> String {
    format!("Tool result received: {}", quotes.join("; "))
}

/// The visible thinking of a reply.
pub(crate) fn thinking(subject: &str) -> String {
    format!("Thinking about {subject}.")
}

/// Tokens of `chars` characters of prompt: a quarter, rounded up, at least 1.
pub(crate) fn prompt_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).map_or(u64::MAX, |tokens| tokens.max(1))
}

/// Tokens of `chars` characters of generated text (thinking): a quarter,
/// rounded up (0 for no text).
pub(crate) fn text_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

/// What the assistant turn of an Anthropic or Gemini reply should be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Intent {
    /// Say `text`; an `exact` text (an echo) is not padded.
    Text { text: String, exact: bool },
    /// Call these tools (one, or two in parallel).
    CallTools(Vec<ToolToCall>),
}

/// A tool the reply calls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolToCall {
    pub(crate) name: String,
    /// The JSON schema of its arguments, if any.
    pub(crate) schema: Option<Value>,
}

/// The answer to the texts of the last user message: the echo of their
/// `\n`-joined text, or `Fake reply to: <quote of their concatenation>`.
pub(crate) fn answer_intent(last_user_texts: &[&str], images: usize) -> Intent {
    if let Some(decoded) = last_user_texts.iter().find_map(|t| echo64(t)) {
        return Intent::Text {
            text: decoded,
            exact: true,
        };
    }
    if last_user_texts
        .iter()
        .any(|text| text.contains(ECHO_MARKER))
    {
        let joined = last_user_texts.join("\n");
        if let Some(echoed) = echo(&joined) {
            return Intent::Text {
                text: echoed.to_owned(),
                exact: true,
            };
        }
    }
    Intent::Text {
        text: answer(&quote(last_user_texts.iter().copied()), images),
        exact: false,
    }
}

/// The final text of a reply and how many stream pieces it is cut into:
/// padded to `chunks` pieces, or (exact texts) at most one piece per
/// character.
pub(crate) fn text_and_pieces(text: &str, exact: bool, chunks: usize) -> (String, usize) {
    let chunks = chunks.max(1);
    if exact {
        let pieces = chunks.min(text.chars().count()).max(1);
        (text.to_owned(), pieces)
    } else {
        (padded(text.to_owned(), chunks), chunks)
    }
}

/// `text` padded with dots to at least `min_chars` characters.
pub(crate) fn padded(mut text: String, min_chars: usize) -> String {
    let missing = min_chars.saturating_sub(text.chars().count());
    text.extend(std::iter::repeat_n('.', missing));
    text
}

/// The first `pieces` of `split_even(text, total)`, joined: the text a reply
/// cut short after `pieces` tokens says.
pub(crate) fn truncated(text: &str, total: usize, pieces: usize) -> String {
    crate::chat::reply::split_even(text, total)
        .take(pieces)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_takes_the_rest() {
        assert_eq!(echo("please echo:  hello world"), Some("hello world"));
        assert_eq!(echo("echo:"), Some(""));
        assert_eq!(echo64("say echo64:aGk= please").as_deref(), Some("hi"));
        assert_eq!(echo64("echo64:!!"), None);
        assert_eq!(echo("no marker"), None);
    }

    #[test]
    fn answers() {
        assert_eq!(answer("Hi", 0), "Fake reply to: Hi");
        assert_eq!(answer("Hi", 2), "Fake reply to: Hi [images: 2]");
        assert_eq!(
            answer_intent(&["say", "echo: exactly this"], 1),
            Intent::Text {
                text: "exactly this".into(),
                exact: true
            }
        );
        assert_eq!(
            answer_intent(&["abc", "def"], 0),
            Intent::Text {
                text: "Fake reply to: abcdef".into(),
                exact: false
            }
        );
        assert_eq!(quote(["abc", "def"]), "abcdef");
        assert_eq!(quote(["x".repeat(50).as_str()]).len(), QUOTE_CHARS);
    }

    #[test]
    fn pieces() {
        assert_eq!(text_and_pieces("ab", true, 8), ("ab".into(), 2));
        assert_eq!(text_and_pieces("", true, 8), (String::new(), 1));
        assert_eq!(text_and_pieces("ab", false, 4), ("ab..".into(), 4));
        assert_eq!(truncated("abcdef", 3, 2), "abcd");
    }

    #[test]
    fn token_counts() {
        assert_eq!(prompt_tokens(0), 1);
        assert_eq!(prompt_tokens(9), 3);
        assert_eq!(text_tokens(0), 0);
        assert_eq!(text_tokens(5), 2);
    }
}
