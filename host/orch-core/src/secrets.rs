//! Provider secrets at rest: the master keys and the AEAD keyring that seals
//! upstream API keys before they are written to the database.
//!
//! A secret is sealed with XChaCha20-Poly1305 under the current master key and
//! a fresh random 24-byte nonce. The stored form is the key id (so the master
//! key can be rotated: older keys stay listed as previous keys until every row
//! is resealed) and a blob `version (1) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
//! The caller's associated data (e.g. `b"provider-key:openai-main"`) is
//! authenticated but not stored, so a blob copied to another row fails to open.
//!
//! This module is pure: it reads no environment and does no I/O. Errors never
//! contain key bytes or plaintext.

use std::fmt;

use base64::Engine as _;
use base64::alphabet::{self, Alphabet};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{AeadCore as _, AeadInPlace as _, OsRng};
use chacha20poly1305::{KeyInit as _, Tag, XChaCha20Poly1305, XNonce};
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Length of a master key in bytes.
const KEY_LEN: usize = 32;
/// Format version written as the first byte of every blob.
const BLOB_VERSION: u8 = 1;
/// Length of an XChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
const TAG_LEN: usize = 16;
/// Version byte and nonce, in front of the ciphertext.
const HEADER_LEN: usize = 1 + NONCE_LEN;
/// Domain separation for key ids, so an id is never a hash used elsewhere.
const KEY_ID_CONTEXT: &[u8] = b"llm-orchestrator master key id\0";
/// How many digest bytes make a key id (16 hex characters).
const KEY_ID_LEN: usize = 8;
/// The accepted master key formats, repeated in every refusal.
const KEY_FORMATS: &str = "must be 32 bytes as 64 hex digits or base64";

/// Base64 with the standard alphabet, padded or not.
const STANDARD_ANY_PADDING: GeneralPurpose = lenient_base64(&alphabet::STANDARD);
/// Base64 with the URL-safe alphabet, padded or not.
const URL_SAFE_ANY_PADDING: GeneralPurpose = lenient_base64(&alphabet::URL_SAFE);

/// A base64 engine for `alphabet` that decodes with or without padding.
const fn lenient_base64(alphabet: &Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Why a master key was refused or a sealed secret could not be opened.
///
/// No message contains key bytes, the master key text or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The master key text is not 32 bytes in hex or base64.
    #[error("invalid master key: {reason}")]
    InvalidMasterKey {
        /// What is wrong, without repeating the input.
        reason: String,
    },
    /// The secret was sealed with a master key this keyring does not hold.
    #[error(
        "the data was sealed with master key id {id}, the configured keys are [{}]: \
         set the master key that was used, or list it as a previous key",
        known.join(", ")
    )]
    UnknownKeyId {
        /// The key id stored with the secret.
        id: String,
        /// The ids of the configured keys, current first.
        known: Vec<String>,
    },
    /// The blob has an unknown format version, is too short, or holds no text.
    #[error("sealed secret is corrupt: unknown format version, truncated, or not text")]
    Corrupt,
    /// Authentication failed: wrong key material, wrong associated data, or tampering.
    #[error(
        "sealed secret failed to decrypt: wrong key material, associated data of \
         another place, or tampering"
    )]
    Decrypt,
    /// The plaintext is beyond what XChaCha20-Poly1305 can seal (256 GiB).
    #[error("secret of {len} bytes is too large to seal")]
    TooLarge {
        /// Length of the refused plaintext in bytes.
        len: usize,
    },
}

/// A 32-byte master key and its public id; the bytes are wiped on drop.
///
/// `Debug` shows only the id, so a key can be logged by accident safely.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

impl MasterKey {
    /// Parses a master key given as 64 hex digits or as base64 (standard or
    /// URL-safe alphabet, padded or not), ignoring surrounding whitespace.
    ///
    /// A refusal says what was wrong (e.g. the decoded length) but never
    /// repeats the input, which may be a mistyped real key.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid_key(format!("{KEY_FORMATS}; it is empty")));
        }
        let decoded = decode_key_text(text)?;
        let mut bytes = Zeroizing::new([0_u8; KEY_LEN]);
        if decoded.len() != KEY_LEN {
            return Err(invalid_key(format!(
                "{KEY_FORMATS}; got {} bytes",
                decoded.len()
            )));
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self::from_bytes(bytes))
    }

    /// A fresh random key from the OS RNG, in standard padded base64, for
    /// operators to put into the environment.
    pub fn generate() -> String {
        let mut bytes = Zeroizing::new([0_u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        base64::engine::general_purpose::STANDARD.encode(bytes.as_slice())
    }

    /// The stable, non-secret id of this key: the first 8 bytes of
    /// SHA-256(`"llm-orchestrator master key id\0"` ‖ key) in lower hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps key bytes and computes their id.
    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let id = key_id(&bytes);
        Self { bytes, id }
    }

    /// The AEAD keyed with this master key.
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes.as_ref().into())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Decodes key text as hex when it is an even number of hex digits (a
/// 32-byte key in base64 never is), otherwise as base64 of either alphabet.
fn decode_key_text(text: &str) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
    let looks_hex = text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit());
    let decoded = if looks_hex {
        hex::decode(text).ok()
    } else {
        STANDARD_ANY_PADDING
            .decode(text)
            .or_else(|_| URL_SAFE_ANY_PADDING.decode(text))
            .ok()
    };
    decoded.map(Zeroizing::new).ok_or_else(|| {
        invalid_key(format!(
            "{KEY_FORMATS}; the {} characters given are neither",
            text.chars().count()
        ))
    })
}

/// An [`SecretsError::InvalidMasterKey`] with `reason`.
fn invalid_key(reason: String) -> SecretsError {
    SecretsError::InvalidMasterKey { reason }
}

/// The public id of `key`; see [`MasterKey::id`].
fn key_id(key: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(KEY_ID_CONTEXT)
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..KEY_ID_LEN])
}

/// A secret sealed by a [`Keyring`], as stored in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the master key that sealed it ([`MasterKey::id`]).
    pub key_id: String,
    /// `version (1) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
    pub blob: Vec<u8>,
}

/// The master keys of the process: the current one seals, the current and
/// the previous ones open, so the master key can be rotated without downtime.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring sealing with `current` and also opening with `previous`.
    ///
    /// Previous keys equal to the current key or to an earlier previous key
    /// are dropped, so [`Keyring::ids`] lists each key once.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let mut distinct: Vec<MasterKey> = Vec::with_capacity(previous.len());
        for key in previous {
            let repeated = key.id == current.id || distinct.iter().any(|known| known.id == key.id);
            if !repeated {
                distinct.push(key);
            }
        }
        Self {
            current,
            previous: distinct,
        }
    }

    /// Id of the key that new secrets are sealed with.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Whether this keyring holds the key with `id`, current or previous.
    pub fn knows(&self, id: &str) -> bool {
        self.key(id).is_some()
    }

    /// Ids of all keys, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(MasterKey::id)
    }

    /// Seals `plaintext` with the current key and a random nonce, binding it
    /// to `aad` (the place it is stored, e.g. `b"provider-key:openai-main"`).
    ///
    /// Fails only for a plaintext of 256 GiB or more.
    pub fn seal(&self, plaintext: &str, aad: &[u8]) -> Result<Sealed, SecretsError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Wiped on drop, so the plaintext is not left behind if sealing fails.
        let mut blob = Zeroizing::new(Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN));
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(plaintext.as_bytes());
        let tag = self
            .current
            .cipher()
            .encrypt_in_place_detached(&nonce, aad, &mut blob[HEADER_LEN..])
            .map_err(|_| SecretsError::TooLarge {
                len: plaintext.len(),
            })?;
        blob.extend_from_slice(&tag);
        Ok(Sealed {
            key_id: self.current.id.clone(),
            blob: std::mem::take(&mut *blob),
        })
    }

    /// Opens `sealed` with the key its id names, checking it was sealed for `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<SecretString, SecretsError> {
        let key = self
            .key(&sealed.key_id)
            .ok_or_else(|| self.unknown_key(&sealed.key_id))?;
        let (nonce, ciphertext, tag) = split_blob(&sealed.blob)?;
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        key.cipher()
            .decrypt_in_place_detached(nonce, aad, &mut plaintext, tag)
            .map_err(|_| SecretsError::Decrypt)?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| SecretsError::Corrupt)?;
        Ok(SecretString::from(text))
    }

    /// Whether `sealed` was sealed with a key other than the current one and
    /// should be sealed again before that key is retired.
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.current.id
    }

    /// All keys, the current one first.
    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// The key with `id`, if this keyring holds it.
    fn key(&self, id: &str) -> Option<&MasterKey> {
        self.keys().find(|key| key.id == id)
    }

    /// The error for a secret sealed with a key this keyring lacks.
    fn unknown_key(&self, id: &str) -> SecretsError {
        SecretsError::UnknownKeyId {
            id: id.to_owned(),
            known: self.ids().map(str::to_owned).collect(),
        }
    }
}

/// Splits a version-1 blob into nonce, ciphertext and tag.
fn split_blob(blob: &[u8]) -> Result<(&XNonce, &[u8], &Tag), SecretsError> {
    let (&version, rest) = blob.split_first().ok_or(SecretsError::Corrupt)?;
    if version != BLOB_VERSION {
        return Err(SecretsError::Corrupt);
    }
    let (nonce, rest) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(SecretsError::Corrupt)?;
    let (ciphertext, tag) = rest
        .split_last_chunk::<TAG_LEN>()
        .ok_or(SecretsError::Corrupt)?;
    Ok((nonce.into(), ciphertext, tag.into()))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "tests fail loudly"
    )]

    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use secrecy::ExposeSecret as _;

    use super::*;

    const AAD: &[u8] = b"provider-key:openai-main";
    const API_KEY: &str = "sk-test-0123456789abcdefghijklmnopqrstuvwxyz";

    /// A key whose 32 bytes are all `byte`.
    fn key(byte: u8) -> MasterKey {
        MasterKey::parse(&hex::encode([byte; KEY_LEN])).unwrap()
    }

    fn ring(byte: u8) -> Keyring {
        Keyring::new(key(byte), Vec::new())
    }

    fn invalid_reason(text: &str) -> String {
        match MasterKey::parse(text) {
            Err(SecretsError::InvalidMasterKey { reason }) => reason,
            other => panic!("expected InvalidMasterKey, got {other:?}"),
        }
    }

    #[test]
    fn seal_then_open_round_trips() {
        let ring = ring(1);
        for plaintext in [API_KEY, "", "clé-ünïcode-🔑"] {
            let sealed = ring.seal(plaintext, AAD).unwrap();
            assert_eq!(sealed.key_id, ring.current_id());
            assert_eq!(sealed.blob.len(), HEADER_LEN + plaintext.len() + TAG_LEN);
            assert_eq!(sealed.blob[0], BLOB_VERSION);
            let opened = ring.open(&sealed, AAD).unwrap();
            assert_eq!(opened.expose_secret(), plaintext);
        }
    }

    #[test]
    fn hex_and_both_base64_forms_parse_to_the_same_key() {
        // 0xfb bytes encode to '+' and '/' in standard base64, '-' and '_' in URL-safe.
        let bytes = [0xfb_u8; KEY_LEN];
        let standard = STANDARD.encode(bytes);
        let url_safe = URL_SAFE.encode(bytes);
        assert!(standard.contains('+') && standard.contains('/'));
        assert!(url_safe.contains('-') && url_safe.contains('_'));
        let forms = [
            hex::encode(bytes),
            hex::encode_upper(bytes),
            standard,
            STANDARD_NO_PAD.encode(bytes),
            url_safe,
            URL_SAFE_NO_PAD.encode(bytes),
            format!("\n  {}\t\n", hex::encode(bytes)),
            format!("  {}  \n", STANDARD.encode(bytes)),
        ];
        let sealed = Keyring::new(MasterKey::parse(&forms[0]).unwrap(), Vec::new())
            .seal(API_KEY, AAD)
            .unwrap();
        for form in &forms {
            let key = MasterKey::parse(form).unwrap();
            assert_eq!(key.id(), key_id(&bytes), "form {form:?}");
            let opened = Keyring::new(key, Vec::new()).open(&sealed, AAD).unwrap();
            assert_eq!(opened.expose_secret(), API_KEY);
        }
    }

    #[test]
    fn wrong_lengths_and_garbage_are_refused_without_echoing_the_input() {
        let cases = [
            (hex::encode([7_u8; 31]), Some("got 31 bytes")),
            (hex::encode([7_u8; 33]), Some("got 33 bytes")),
            (STANDARD.encode([7_u8; 17]), Some("got 17 bytes")),
            (URL_SAFE_NO_PAD.encode([0xfb_u8; 48]), Some("got 48 bytes")),
            (format!("{}g", &hex::encode([7_u8; KEY_LEN])[1..]), None),
            ("this is not a key!".to_owned(), None),
            // Both alphabets mixed in one string.
            (
                format!("+-{}", &STANDARD_NO_PAD.encode([7_u8; KEY_LEN])[2..]),
                None,
            ),
        ];
        for (text, expected) in &cases {
            let reason = invalid_reason(text);
            assert!(reason.starts_with(KEY_FORMATS), "{reason}");
            if let Some(expected) = expected {
                assert!(reason.contains(expected), "{reason} lacks {expected}");
            }
            let message = MasterKey::parse(text).unwrap_err().to_string();
            assert!(
                !message.contains(text.as_str()),
                "{message} echoes the input"
            );
            // Not even a fragment of the input.
            for window in text.as_bytes().windows(8) {
                assert!(
                    !message.as_bytes().windows(8).any(|w| w == window),
                    "{message}"
                );
            }
        }
        assert!(invalid_reason("").contains("empty"));
        assert!(invalid_reason(" \n\t ").contains("empty"));
    }

    #[test]
    fn key_id_is_stable_and_differs_between_keys() {
        let one = key(1);
        assert_eq!(one.id(), key(1).id());
        // Pinned (computed with Python hashlib): ids are stored with every secret.
        assert_eq!(one.id(), "1c3d3c5187de2c40");
        assert_eq!(one.id().len(), 2 * KEY_ID_LEN);
        assert!(
            one.id()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(one.id(), key(2).id());
    }

    #[test]
    fn open_with_wrong_aad_fails() {
        let ring = ring(1);
        let sealed = ring.seal(API_KEY, AAD).unwrap();
        for aad in [
            &b"provider-key:openai-backup"[..],
            b"",
            b"provider-key:openai-main ",
        ] {
            assert!(matches!(
                ring.open(&sealed, aad),
                Err(SecretsError::Decrypt)
            ));
        }
    }

    #[test]
    fn every_tampered_byte_is_detected() {
        let ring = ring(1);
        let sealed = ring.seal(API_KEY, AAD).unwrap();
        for index in 0..sealed.blob.len() {
            let mut tampered = sealed.clone();
            tampered.blob[index] ^= 0x01;
            let expected_corrupt = index == 0;
            match ring.open(&tampered, AAD) {
                Err(SecretsError::Corrupt) if expected_corrupt => {}
                Err(SecretsError::Decrypt) if !expected_corrupt => {}
                other => panic!("byte {index}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_or_extended_blobs_are_refused() {
        let ring = ring(1);
        let sealed = ring.seal(API_KEY, AAD).unwrap();
        for len in 0..HEADER_LEN + TAG_LEN {
            let short = Sealed {
                key_id: sealed.key_id.clone(),
                blob: sealed.blob[..len].to_vec(),
            };
            assert!(
                matches!(ring.open(&short, AAD), Err(SecretsError::Corrupt)),
                "{len}"
            );
        }
        let mut cut = sealed.clone();
        cut.blob.pop();
        assert!(matches!(ring.open(&cut, AAD), Err(SecretsError::Decrypt)));
        let mut longer = sealed;
        longer.blob.push(0);
        assert!(matches!(
            ring.open(&longer, AAD),
            Err(SecretsError::Decrypt)
        ));
    }

    #[test]
    fn previous_key_opens_and_needs_reseal() {
        let old = ring(1);
        let sealed = old.seal(API_KEY, AAD).unwrap();
        assert!(!old.needs_reseal(&sealed));

        let rotated = Keyring::new(key(2), vec![key(1)]);
        assert!(rotated.knows(key(1).id()));
        assert!(rotated.knows(key(2).id()));
        assert!(rotated.needs_reseal(&sealed));
        let opened = rotated.open(&sealed, AAD).unwrap();
        assert_eq!(opened.expose_secret(), API_KEY);

        let resealed = rotated.seal(opened.expose_secret(), AAD).unwrap();
        assert_eq!(resealed.key_id, key(2).id());
        assert!(!rotated.needs_reseal(&resealed));
    }

    #[test]
    fn unknown_key_id_names_the_ids() {
        let sealed = ring(1).seal(API_KEY, AAD).unwrap();
        let ring = Keyring::new(key(2), vec![key(3)]);
        assert!(!ring.knows(key(1).id()));
        let error = ring.open(&sealed, AAD).unwrap_err();
        let message = error.to_string();
        match error {
            SecretsError::UnknownKeyId { id, known } => {
                assert_eq!(id, key(1).id());
                assert_eq!(known, [key(2).id(), key(3).id()]);
            }
            other => panic!("expected UnknownKeyId, got {other:?}"),
        }
        for id in [key(1).id(), key(2).id(), key(3).id()] {
            assert!(message.contains(id), "{message} lacks {id}");
        }
        assert!(message.contains("list it as a previous key"), "{message}");
    }

    #[test]
    fn new_lists_each_key_once_current_first() {
        let ring = Keyring::new(key(1), vec![key(2), key(1), key(3), key(2)]);
        let ids: Vec<&str> = ring.ids().collect();
        assert_eq!(ids, [key(1).id(), key(2).id(), key(3).id()]);
        assert_eq!(ring.current_id(), key(1).id());
    }

    #[test]
    fn sealing_twice_gives_different_blobs() {
        let ring = ring(1);
        let first = ring.seal(API_KEY, AAD).unwrap();
        let second = ring.seal(API_KEY, AAD).unwrap();
        assert_ne!(first.blob[1..HEADER_LEN], second.blob[1..HEADER_LEN]);
        assert_ne!(first.blob, second.blob);
    }

    #[test]
    fn plaintext_does_not_appear_in_the_blob() {
        let sealed = ring(1).seal(API_KEY, AAD).unwrap();
        let needle = &API_KEY.as_bytes()[..8];
        assert!(!sealed.blob.windows(needle.len()).any(|w| w == needle));
        let debug = format!("{sealed:?}");
        assert!(!debug.contains(&API_KEY[..8]), "{debug}");
    }

    #[test]
    fn debug_does_not_show_key_bytes() {
        let generated = MasterKey::generate();
        let key = MasterKey::parse(&generated).unwrap();
        let bytes = STANDARD.decode(&generated).unwrap();
        let id = key.id().to_owned();
        let ring = Keyring::new(key, vec![MasterKey::parse(&generated).unwrap()]);
        let debug_key = format!("{:?}", MasterKey::parse(&generated).unwrap());
        let debug_ring = format!("{ring:?}");
        for debug in [&debug_key, &debug_ring] {
            assert!(debug.contains(&id), "{debug}");
            for form in [
                hex::encode(&bytes),
                hex::encode_upper(&bytes),
                STANDARD_NO_PAD.encode(&bytes),
                URL_SAFE_NO_PAD.encode(&bytes),
            ] {
                assert!(!debug.contains(&form[..12]), "{debug}");
            }
            assert!(!debug.contains(&format!("{:?}", &bytes[..4])), "{debug}");
        }
    }

    #[test]
    fn generated_keys_parse_and_differ() {
        let first = MasterKey::generate();
        let second = MasterKey::generate();
        assert_ne!(first, second);
        assert_eq!(STANDARD.decode(&first).unwrap().len(), KEY_LEN);
        assert_ne!(
            MasterKey::parse(&first).unwrap().id(),
            MasterKey::parse(&second).unwrap().id()
        );
    }
}
