//! Client key material: `sk-orch-` followed by 43 random alphanumerics
//! (256 bits). The gateway stores only a key's SHA-256 and its display
//! prefix; the key itself is shown once, when it is created.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// What every client key starts with, so that leaked keys are easy to spot
/// (and to scan for).
pub const KEY_PREFIX: &str = "sk-orch-";

/// Random characters after [`KEY_PREFIX`]: 43 × log₂ 62 ≈ 256 bits.
const RANDOM_CHARS: usize = 43;

/// Characters of a key shown in listings and logs: the fixed prefix and
/// four random characters (24 bits: enough to tell keys apart, far too
/// few to guess one).
const DISPLAY_CHARS: usize = 12;

/// A new client key from the operating-system-seeded CSPRNG.
pub fn generate_key() -> String {
    let random = rand::rng()
        .sample_iter(Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from);
    KEY_PREFIX.chars().chain(random).collect()
}

/// The SHA-256 of a key: what is stored and looked up. A fast hash is
/// enough because keys are 256-bit random, not passwords.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The first characters of a key, for display (`sk-orch-AbCd`).
pub fn key_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_CHARS).collect()
}

/// Whether `s` has the shape of a client key, so that anything else is
/// refused before it is hashed and looked up.
pub fn looks_like_key(s: &str) -> bool {
    s.strip_prefix(KEY_PREFIX).is_some_and(|random| {
        random.len() == RANDOM_CHARS && random.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate_key();
        assert_eq!(key.len(), 51);
        assert!(key.starts_with("sk-orch-"));
        assert!(looks_like_key(&key), "{key}");
        assert_eq!(key_prefix(&key), key[..12]);
    }

    #[test]
    fn generated_keys_are_distinct_and_use_the_whole_alphabet() {
        let keys: Vec<String> = (0..1000).map(|_| generate_key()).collect();
        let distinct: HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        let alphabet: HashSet<char> = keys.iter().flat_map(|k| k[8..].chars()).collect();
        // 43,000 draws from 62 characters leave none out.
        assert_eq!(alphabet.len(), 62);
    }

    #[test]
    fn hashes_are_sha256() {
        assert_eq!(
            key_hash("abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ]
        );
        let key = generate_key();
        assert_ne!(key_hash(&key), key_hash(&generate_key()));
    }

    #[test]
    fn prefixes_are_short_and_safe_on_any_input() {
        assert_eq!(
            key_prefix("sk-orch-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg"),
            "sk-orch-AbCd"
        );
        assert_eq!(key_prefix("short"), "short");
        assert_eq!(key_prefix("ééééééééééééééé"), "éééééééééééé");
    }

    #[test]
    fn only_well_formed_keys_look_like_keys() {
        let key = generate_key();
        assert!(looks_like_key(&key));
        assert!(!looks_like_key(&key[..50]), "too short");
        assert!(!looks_like_key(&format!("{key}a")), "too long");
        assert!(!looks_like_key(&key.replace("sk-orch-", "sk-proj-")));
        assert!(!looks_like_key(&format!("sk-orch-{}-", &key[8..50])));
        assert!(!looks_like_key(&format!("sk-orch-{}é", &key[8..49])));
        assert!(!looks_like_key(""));
        assert!(!looks_like_key("Bearer sk-orch-"));
    }
}
