//! Client authentication against the configured keys.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::{Live, key_digest};

/// Check the client's key. With no keys configured the API is open (the
/// configuration refuses that on non-loopback addresses unless asked for).
/// Keys are compared as SHA-256 digests in constant time.
pub(crate) fn authenticate(live: &Live, headers: &HeaderMap) -> Result<(), ApiError> {
    if live.client_keys.is_empty() {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    let digest = key_digest(presented);
    let mut ok = subtle::Choice::from(0);
    for k in &live.client_keys {
        ok |= k.ct_eq(&digest);
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}
