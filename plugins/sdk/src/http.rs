//! Small helpers for HTTP header lists.

/// The value of the first header called `name` (compared case-insensitively).
///
/// ```
/// let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
/// assert_eq!(orch_plugin_sdk::header(&headers, "Content-Type"), Some("application/json"));
/// assert_eq!(orch_plugin_sdk::header(&headers, "accept"), None);
/// ```
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// How long the upstream asked us to wait, in milliseconds.
///
/// Honours `retry-after-ms` (milliseconds, as OpenAI sends it) first, then
/// `retry-after` in seconds. A `retry-after` holding an HTTP date is ignored:
/// plugins have no clock to subtract it from. Values saturate at `u32::MAX`.
///
/// ```
/// let headers = vec![("retry-after".to_owned(), "7".to_owned())];
/// assert_eq!(orch_plugin_sdk::retry_after_ms(&headers), Some(7_000));
/// ```
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u32> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(parse_non_negative) {
        return Some(saturate(ms.ceil()));
    }
    header(headers, "retry-after")
        .and_then(parse_non_negative)
        .map(|seconds| saturate((seconds * 1000.0).ceil()))
}

/// Parses a non-negative decimal number; rejects dates, `inf`, `NaN` and
/// exponents (none of which are valid in these headers).
fn parse_non_negative(value: &str) -> Option<f64> {
    let value = value.trim();
    let decimal = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && value.bytes().any(|b| b.is_ascii_digit());
    if !decimal {
        return None;
    }
    value.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn saturate(value: f64) -> u32 {
    // `as` saturates for floats: values above u32::MAX become u32::MAX.
    value as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn header_is_case_insensitive_and_takes_the_first() {
        let h = headers(&[("x-a", "1"), ("X-A", "2")]);
        assert_eq!(header(&h, "x-a"), Some("1"));
        assert_eq!(header(&h, "X-a"), Some("1"));
        assert_eq!(header(&h, "x-b"), None);
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "2")])),
            Some(2_000)
        );
        assert_eq!(retry_after_ms(&headers(&[("retry-after", " 0 ")])), Some(0));
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after", "1.5")])),
            Some(1_500)
        );
    }

    #[test]
    fn retry_after_ms_wins_over_seconds() {
        let h = headers(&[("retry-after", "20"), ("retry-after-ms", "1234")]);
        assert_eq!(retry_after_ms(&h), Some(1_234));
        let h = headers(&[("retry-after-ms", "12.2")]);
        assert_eq!(retry_after_ms(&h), Some(13));
    }

    #[test]
    fn retry_after_http_date_and_garbage_are_ignored() {
        let h = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after_ms(&h), None);
        for bad in ["", "-1", "inf", "NaN", "1e3", "."] {
            assert_eq!(
                retry_after_ms(&headers(&[("retry-after", bad)])),
                None,
                "{bad}"
            );
        }
        assert_eq!(retry_after_ms(&[]), None);
    }

    #[test]
    fn retry_after_saturates() {
        let h = headers(&[("retry-after", "99999999999")]);
        assert_eq!(retry_after_ms(&h), Some(u32::MAX));
    }

    #[test]
    fn bad_retry_after_ms_falls_back_to_retry_after() {
        let h = headers(&[("retry-after-ms", "soon"), ("retry-after", "3")]);
        assert_eq!(retry_after_ms(&h), Some(3_000));
    }
}
