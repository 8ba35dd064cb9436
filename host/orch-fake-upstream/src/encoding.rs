//! Small encoders shared by the dialects: base64, a stable hash and
//! canonical JSON (no extra dependencies, so the crate stays cheap to build).

use std::fmt::Write as _;

use serde_json::Value;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard-alphabet base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let digits = chunk.len() + 1;
        for i in 0..4 {
            if i < digits {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(STANDARD[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard-alphabet base64, padded or not, non-empty.
pub(crate) fn is_base64(data: &str) -> bool {
    is_base64_with(data, |b| matches!(b, b'+' | b'/'))
}

/// Base64 as protobuf's JSON mapping accepts it for `bytes`: standard or
/// URL-safe alphabet, padded or not, non-empty.
pub(crate) fn is_proto_base64(data: &str) -> bool {
    is_base64_with(data, |b| matches!(b, b'+' | b'/' | b'-' | b'_'))
}

fn is_base64_with(data: &str, extra: impl Fn(u8) -> bool) -> bool {
    let bytes = data.as_bytes();
    let digits = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="))
        .unwrap_or(bytes);
    let padded = digits.len() != bytes.len();
    !digits.is_empty()
        && digits
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || extra(b))
        && if padded {
            bytes.len().is_multiple_of(4)
        } else {
            digits.len() % 4 != 1
        }
}

/// 64-bit FNV-1a: stable across processes and platforms, unlike
/// `std::hash::DefaultHasher`'s guarantees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hasher whose state starts from `seed` (so two seeds give two
    /// independent hashes of the same input).
    pub(crate) fn with_seed(seed: &[u8]) -> Self {
        let mut hasher = Self(Self::OFFSET);
        hasher.write(seed);
        hasher.write(&[0xff]);
        hasher
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds `bytes` followed by a separator, so `["ab", "c"]` and
    /// `["a", "bc"]` hash differently.
    pub(crate) fn write_item(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// Compact JSON with object keys sorted at every level, so two documents
/// that differ only in key order (or whitespace) give the same text.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(item) = map.get(key) {
                    write_canonical(item, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn base64_validation() {
        assert!(is_base64("aGk="));
        assert!(is_base64("aGk"));
        assert!(!is_base64(""));
        assert!(!is_base64("a"));
        assert!(!is_base64("aGk=="));
        assert!(!is_base64("a-_b"));
        assert!(is_proto_base64("a-_b"));
        assert!(!is_proto_base64("a b="));
    }

    #[test]
    fn fnv_is_stable_and_seeded() {
        let hash = |seed: &[u8], data: &[u8]| {
            let mut h = Fnv64::with_seed(seed);
            h.write(data);
            h.finish()
        };
        assert_eq!(hash(b"a", b"x"), hash(b"a", b"x"));
        assert_ne!(hash(b"a", b"x"), hash(b"b", b"x"));
        let mut plain = Fnv64(Fnv64::OFFSET);
        plain.write(b"a");
        assert_eq!(plain.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":1,"y":"\""}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"y":"\"","z":1}]},"b":1}"#
        );
    }
}
