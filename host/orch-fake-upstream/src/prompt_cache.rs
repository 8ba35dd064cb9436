//! Prompt prefixes seen before, so replies can report cached input tokens
//! the way providers with prompt caching do (Anthropic `cache_control`
//! breakpoints, Gemini implicit caching).
//!
//! A prefix is identified by a 64-bit hash of the model and everything up to
//! the prefix's end. The set is bounded: when it is full it is cleared.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// Largest number of remembered prefixes.
const CAPACITY: usize = 100_000;

/// The prefixes seen by one fake upstream.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: Mutex<HashSet<u64>>,
}

impl PromptCache {
    /// The index of the longest prefix in `prefixes` (ordered shortest
    /// first) that was seen before, if any; remembers all of them.
    pub(crate) fn longest_seen(&self, prefixes: &[u64]) -> Option<usize> {
        if prefixes.is_empty() {
            return None;
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = prefixes.iter().rposition(|key| seen.contains(key));
        if seen.len() + prefixes.len() > CAPACITY {
            seen.clear();
        }
        seen.extend(prefixes.iter().copied());
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_prefixes() {
        let cache = PromptCache::default();
        assert_eq!(cache.longest_seen(&[1, 2]), None);
        assert_eq!(cache.longest_seen(&[1, 2]), Some(1));
        assert_eq!(cache.longest_seen(&[1, 3, 4]), Some(0));
        assert_eq!(cache.longest_seen(&[9, 3, 4, 5]), Some(2));
        assert_eq!(cache.longest_seen(&[]), None);
    }
}
