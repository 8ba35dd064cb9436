//! Generated function-call ids.
//!
//! Gemini may omit `functionCall.id` (and google-genai's automatic function
//! calling never sets `functionResponse.id`), while the canonical form needs an
//! id on every tool call and tool result. docs/canonical.md fixes the format
//! for every plugin: `call_<n>_<function name>`, `n` being the call's 0-based
//! position among the function calls of its response (model turn). The gemini
//! adapter generates the same ids for upstream calls without one, the decoder
//! for client turns without one and the encoders for canonical calls without
//! one, so an id survives any round trip through a client that drops it.

/// The id of the function call `name` at 0-based `position` among the calls
/// of its turn.
pub(crate) fn call_id(position: usize, name: &str) -> String {
    format!("call_{position}_{name}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn format() {
        assert_eq!(super::call_id(0, "get_weather"), "call_0_get_weather");
        assert_eq!(super::call_id(12, "f"), "call_12_f");
    }
}
