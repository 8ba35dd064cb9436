//! Client authentication against the configured keys, wherever each dialect
//! puts the key.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Dialect};
use orch_core::clients::key_hash;

use crate::state::{Client, Live};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn named<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The `key` query parameter (Gemini clients may send the key there).
pub(crate) fn query_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "key")
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Check the client's key: `Authorization: Bearer` in every dialect, plus
/// `x-api-key` for Anthropic clients and `x-goog-api-key` or `?key=` for
/// Gemini clients. Keys from the file are compared as SHA-256 digests in
/// constant time; keys issued through the admin API are found by their
/// SHA-256 (they carry 256 bits of entropy, so the lookup reveals nothing
/// usable) and come back with their limits.
///
/// With no key anywhere the API is open on a loopback address or with
/// `auth.allow_open`, and closed otherwise (until a key is created).
pub(crate) fn authenticate(
    live: &Live,
    headers: &HeaderMap,
    dialect: Dialect,
    query_key: Option<&str>,
) -> Result<Option<Arc<Client>>, ApiError> {
    let (presented, how) = match dialect {
        Dialect::OpenAi => (bearer(headers), "`Authorization: Bearer <key>`"),
        Dialect::Anthropic => (
            named(headers, "x-api-key").or_else(|| bearer(headers)),
            "`x-api-key: <key>` or `Authorization: Bearer <key>`",
        ),
        Dialect::Gemini => (
            named(headers, "x-goog-api-key")
                .or(query_key)
                .or_else(|| bearer(headers)),
            "`x-goog-api-key: <key>` or the `key` query parameter",
        ),
    };
    if live.client_keys.is_empty() && live.clients.is_empty() {
        return if live.open {
            Ok(None)
        } else {
            Err(ApiError::unauthorized(how).in_dialect(dialect))
        };
    }
    let fail = || ApiError::unauthorized(how).in_dialect(dialect);
    let presented = presented.filter(|k| !k.is_empty()).ok_or_else(fail)?;
    let digest = key_hash(presented);
    if let Some(client) = live.clients.get(&digest) {
        return Ok(Some(client.clone()));
    }
    let mut ok = subtle::Choice::from(0);
    for k in &live.client_keys {
        ok |= k.ct_eq(&digest);
    }
    if bool::from(ok) {
        Ok(None)
    } else {
        Err(fail())
    }
}

/// Check the admin token (`Authorization: Bearer <token>`), compared as a
/// SHA-256 digest in constant time. Without a configured token the operator
/// endpoints are off.
pub(crate) fn authenticate_admin(live: &Live, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &live.admin_token else {
        return Err(ApiError::forbidden(
            "The operator endpoints are off: configure [admin] token = \"env:NAME\".",
        ));
    };
    let presented = bearer(headers)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::unauthorized("`Authorization: Bearer <admin token>`"))?;
    if bool::from(expected.ct_eq(&key_hash(presented))) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "`Authorization: Bearer <admin token>`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_found_and_decoded() {
        assert_eq!(query_key(Some("alt=sse&key=a%2Bb")), Some("a+b".into()));
        assert_eq!(query_key(Some("key=abc")), Some("abc".into()));
        assert_eq!(query_key(Some("alt=sse")), None);
        assert_eq!(query_key(None), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
