//! The deterministic "thinking signatures" the fake hands out and checks.
//!
//! Real providers return opaque signatures that clients must send back
//! unchanged. The fake's are derived from what they sign, so it can check
//! them without remembering anything:
//!
//! `signature = base64("sig:" + 32 lowercase hex digits)` (standard alphabet,
//! 48 characters), where the hex digits are two seeded 64-bit FNV-1a hashes
//! of a domain tag and the signed payload.
//!
//! - Anthropic `thinking` blocks: the payload is the thinking text
//!   ([`thinking_signature`]).
//! - Gemini `functionCall` parts: the payload is the function name and its
//!   arguments as canonical JSON (keys sorted, so a gateway may reorder keys)
//!   ([`function_call_signature`]).

use serde_json::Value;

use crate::encoding::{Fnv64, base64_encode, canonical_json};

/// The signature the fake gives (and expects back on) an Anthropic
/// `thinking` block with this text.
pub fn thinking_signature(thinking: &str) -> String {
    sign("anthropic.thinking", &[thinking.as_bytes()])
}

/// The `thoughtSignature` the fake gives (and expects back on) a Gemini
/// `functionCall` part with this name and these arguments (`null` and a
/// missing `args` count as `{}`).
pub fn function_call_signature(name: &str, args: &Value) -> String {
    let args = match args {
        Value::Null => "{}".to_owned(),
        args => canonical_json(args),
    };
    sign("gemini.functionCall", &[name.as_bytes(), args.as_bytes()])
}

fn sign(domain: &str, payload: &[&[u8]]) -> String {
    let hash = |seed: &[u8]| {
        let mut hasher = Fnv64::with_seed(seed);
        hasher.write_item(domain.as_bytes());
        for item in payload {
            hasher.write_item(item);
        }
        hasher.finish()
    };
    let text = format!("sig:{:016x}{:016x}", hash(b"one"), hash(b"two"));
    base64_encode(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::encoding::is_base64;

    #[test]
    fn signatures_are_deterministic_base64() {
        let sig = thinking_signature("Let me think.");
        assert_eq!(sig, thinking_signature("Let me think."));
        assert_ne!(sig, thinking_signature("Let me think!"));
        assert!(is_base64(&sig));
        assert_eq!(sig.len(), 48);
        assert!(sig.starts_with("c2ln")); // "sig"
    }

    #[test]
    fn call_signatures_ignore_key_order() {
        let a = function_call_signature("f", &json!({"a": 1, "b": [1, 2]}));
        let b = function_call_signature("f", &json!({"b": [1, 2], "a": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            function_call_signature("g", &json!({"a": 1, "b": [1, 2]}))
        );
        assert_eq!(
            function_call_signature("f", &Value::Null),
            function_call_signature("f", &json!({}))
        );
        assert_ne!(
            thinking_signature("f"),
            function_call_signature("f", &json!({}))
        );
    }
}
