//! Finding PII in text: hand-written scanners over the text's bytes.
//!
//! Every pattern is ASCII, so every match starts and ends at an ASCII byte
//! (or at the end of the text) and is therefore on a UTF-8 character
//! boundary. Non-ASCII characters never take part in a match; they count as
//! separators for the boundary rules.
//!
//! [`find`] returns the matches of the enabled kinds, sorted and disjoint
//! (overlapping candidates are merged into one span, so no part of either
//! stays visible). [`tail_start`] tells the stream filter where the text
//! stops being final: what follows might still grow into a match.

use std::cmp::Reverse;

/// A kind of PII. The declaration order is the priority when two candidates
/// start at the same byte and have the same length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An API key or access token (`sk-…`, `AKIA…`, `ghp_…`, …).
    ApiKey,
    /// An e-mail address.
    Email,
    /// A Luhn-valid payment card number.
    Card,
    /// A phone number.
    Phone,
}

impl Kind {
    /// Every kind, in the order the configuration documents them.
    pub const ALL: [Kind; 4] = [Kind::Email, Kind::Phone, Kind::Card, Kind::ApiKey];

    /// The configuration name: `email`, `phone`, `card` or `api_key`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
            Kind::ApiKey => "api_key",
        }
    }

    /// The label substituted for `{kind}`: `EMAIL`, `PHONE`, `CARD` or
    /// `API_KEY`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::Card => "CARD",
            Kind::ApiKey => "API_KEY",
        }
    }

    /// The kind called `name` in the configuration.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// A small dense index (0..4), for per-kind tables.
    pub fn index(self) -> usize {
        match self {
            Kind::Email => 0,
            Kind::Phone => 1,
            Kind::Card => 2,
            Kind::ApiKey => 3,
        }
    }
}

/// A set of [`Kind`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSet(u8);

impl KindSet {
    /// No kind.
    pub const EMPTY: KindSet = KindSet(0);
    /// Every kind.
    pub const ALL: KindSet = KindSet(0b1111);

    /// Adds `kind`.
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= 1 << kind.index();
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One match: the byte range `start..end` of the text holds PII of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// First byte of the match.
    pub start: usize,
    /// One past the last byte of the match.
    pub end: usize,
    /// What was found (for merged candidates: the kind of the first one).
    pub kind: Kind,
}

/// Finds the PII of the `kinds` in `text`: sorted by position, disjoint.
pub fn find(text: &str, kinds: KindSet) -> Vec<Match> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    if kinds.contains(Kind::ApiKey) {
        api_keys(bytes, &mut found);
    }
    if kinds.contains(Kind::Email) {
        emails(bytes, &mut found);
    }
    if kinds.contains(Kind::Card) || kinds.contains(Kind::Phone) {
        numbers(bytes, kinds, &mut found);
    }
    if found.is_empty() {
        return found;
    }
    // Earliest first, then longest, then by priority; merge overlaps.
    found.sort_by_key(|m| (m.start, Reverse(m.end), m.kind));
    let mut merged: Vec<Match> = Vec::with_capacity(found.len());
    for m in found {
        match merged.last_mut() {
            Some(last) if m.start < last.end => last.end = last.end.max(m.end),
            _ => merged.push(m),
        }
    }
    merged
}

/// Where the final part of `text` ends for a stream: from the returned byte
/// offset on, more text could still turn what is there into (part of) a
/// match of one of the `kinds`, or extend a match. Always a character
/// boundary (the byte there is ASCII, or it is `text.len()`).
///
/// * E-mail addresses and keys consist of "token" bytes (ASCII letters,
///   digits and `._%+-@`): the trailing run of token bytes is not final.
/// * Phone and card numbers consist of digits, spaces and `+-.()`: the
///   trailing run of such bytes is not final if it contains a digit, `+` or
///   `(` (it is held from the first of those).
///
/// Then the offset moves back until it is inside no run of token bytes
/// and no run of number bytes, so that matching the text from there on
/// never depends on more than the two bytes before it (the look-behind of
/// the boundary rules): the text after the offset is then redacted exactly
/// as it is within the whole text.
pub fn tail_start(text: &str, kinds: KindSet) -> usize {
    let bytes = text.as_bytes();
    let tokens = kinds.contains(Kind::Email) || kinds.contains(Kind::ApiKey);
    let numbers = kinds.contains(Kind::Phone) || kinds.contains(Kind::Card);
    let mut start = bytes.len();
    if tokens {
        start = start.min(trailing_run(bytes, is_token_byte));
    }
    if numbers {
        let run = trailing_run(bytes, is_number_byte);
        if let Some(offset) = bytes[run..]
            .iter()
            .position(|&b| b.is_ascii_digit() || b == b'+' || b == b'(')
        {
            start = start.min(run + offset);
        }
    }
    loop {
        let (Some(&before), Some(&at)) = (
            start.checked_sub(1).and_then(|p| bytes.get(p)),
            bytes.get(start),
        ) else {
            return start;
        };
        let pred: fn(u8) -> bool = if tokens && is_token_byte(before) && is_token_byte(at) {
            is_token_byte
        } else if numbers && is_number_byte(before) && is_number_byte(at) {
            is_number_byte
        } else {
            return start;
        };
        start = trailing_run(&bytes[..start], pred);
    }
}

/// The start of the maximal run of bytes satisfying `pred` that ends the
/// text.
fn trailing_run(bytes: &[u8], pred: fn(u8) -> bool) -> usize {
    bytes
        .iter()
        .rposition(|&b| !pred(b))
        .map_or(0, |index| index + 1)
}

/// The end of the maximal run of bytes satisfying `pred` from `from`.
fn run(bytes: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    let tail = bytes.get(from..).unwrap_or_default();
    from + tail.iter().position(|&b| !pred(b)).unwrap_or(tail.len())
}

/// A byte that may be part of an e-mail address or a key.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'@')
}

/// A byte that may be part of a phone or card number.
fn is_number_byte(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b' ' | b'+' | b'-' | b'.' | b'(' | b')')
}

/// A byte that glues to a word: ASCII letters, digits and `_`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

// ---------------------------------------------------------------------------
// API keys

/// A byte of the body of most keys.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Keys start where the previous byte is not a key byte.
fn api_keys(bytes: &[u8], out: &mut Vec<Match>) {
    for start in 0..bytes.len() {
        if start > 0 && is_key_byte(bytes[start - 1]) {
            continue;
        }
        if let Some(end) = api_key_at(bytes, start) {
            out.push(Match {
                start,
                end,
                kind: Kind::ApiKey,
            });
        }
    }
}

/// The end of the key starting at `start`, if one does.
fn api_key_at(bytes: &[u8], start: usize) -> Option<usize> {
    let rest = &bytes[start..];
    // (prefix length, body byte predicate, minimum body length, exact length)
    let (prefix, body_ok, min): (usize, fn(u8) -> bool, usize) = if rest.starts_with(b"sk-") {
        (3, is_key_byte, 16)
    } else if rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA") {
        let end = run(bytes, start + 4, |b| b.is_ascii_alphanumeric());
        let body = &bytes[start + 4..end];
        let valid = body.len() == 16
            && body
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        return valid.then_some(end);
    } else if rest.starts_with(b"github_pat_") {
        (11, is_word_byte, 22)
    } else if rest.len() >= 4
        && rest.starts_with(b"gh")
        && matches!(rest[2], b'p' | b'o' | b's' | b'u' | b'r')
        && rest[3] == b'_'
    {
        (4, |b: u8| b.is_ascii_alphanumeric(), 20)
    } else if rest.starts_with(b"AIza") {
        (4, is_key_byte, 35)
    } else if rest.len() >= 5
        && rest.starts_with(b"xox")
        && matches!(rest[3], b'b' | b'a' | b'p' | b'r' | b's')
        && rest[4] == b'-'
    {
        (5, |b: u8| b.is_ascii_alphanumeric() || b == b'-', 10)
    } else {
        return None;
    };
    let end = run(bytes, start + prefix, body_ok);
    (end - start - prefix >= min).then_some(end)
}

// ---------------------------------------------------------------------------
// E-mail addresses

/// Longest local part considered (RFC 5321); longer runs are cut to their
/// last 64 bytes, which keeps the scan linear.
const MAX_LOCAL: usize = 64;

/// A byte of the local part.
fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// A byte of a domain label.
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// `local@label.label…`: anchored at each `@`, the local part is the run of
/// local bytes before it (leading dots dropped), the domain the labels after
/// it, up to the last label that is a top-level domain (two or more ASCII
/// letters) with at least one label before it.
fn emails(bytes: &[u8], out: &mut Vec<Match>) {
    for (at, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'@') {
        let limit = at.saturating_sub(MAX_LOCAL);
        let mut start = at;
        while start > limit && is_local_byte(bytes[start - 1]) {
            start -= 1;
        }
        while start < at && bytes[start] == b'.' {
            start += 1;
        }
        if start == at {
            continue;
        }
        let mut pos = at + 1;
        let mut labels = 0;
        let mut end = None;
        loop {
            let label_end = run(bytes, pos, is_label_byte);
            if label_end == pos {
                break;
            }
            labels += 1;
            let label = &bytes[pos..label_end];
            if labels >= 2 && label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic) {
                end = Some(label_end);
            }
            let dot_then_label = bytes.get(label_end) == Some(&b'.')
                && bytes.get(label_end + 1).is_some_and(|&b| is_label_byte(b));
            if !dot_then_label {
                break;
            }
            pos = label_end + 1;
        }
        if let Some(end) = end {
            out.push(Match {
                start,
                end,
                kind: Kind::Email,
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Phone and card numbers

/// A group of digits, possibly in parentheses (`(415)`).
#[derive(Debug, Clone, Copy)]
struct Group {
    /// First byte (the digit, or the `(`).
    start: usize,
    /// One past the last byte (the digit, or the `)`).
    end: usize,
    /// Number of digits.
    digits: usize,
    /// Whether the digits are in parentheses.
    paren: bool,
    /// The separator before the group: `b' '`, `b'-'`, `b'.'`, or 0 for
    /// none (first group, or a group glued to a parenthesised one).
    sep: u8,
}

/// A maximal run of digit groups joined by single separators.
#[derive(Debug)]
struct Sequence {
    /// Whether the sequence starts with `+`.
    plus: bool,
    /// First byte (the `+` if any).
    start: usize,
    /// The groups, at least one.
    groups: Vec<Group>,
}

/// Whether a group starts at `pos`: a digit, or `(` and a digit.
fn starts_group(bytes: &[u8], pos: usize) -> bool {
    match bytes.get(pos) {
        Some(b) if b.is_ascii_digit() => true,
        Some(b'(') => bytes.get(pos + 1).is_some_and(u8::is_ascii_digit),
        _ => false,
    }
}

/// Whether a sequence may start at `pos`: it holds `+`, `(` or a digit, and
/// the number is not glued to what precedes it (a letter, digit or `_`, a
/// `+`, `(` or `)`, or, except before a `+`, a separator that follows a
/// digit or `)`).
fn sequence_may_start(bytes: &[u8], pos: usize) -> bool {
    let b = bytes[pos];
    if !(b.is_ascii_digit() || b == b'+' || b == b'(') {
        return false;
    }
    let Some(&prev) = pos.checked_sub(1).and_then(|p| bytes.get(p)) else {
        return true;
    };
    if is_word_byte(prev) || matches!(prev, b'+' | b'(' | b')') {
        return false;
    }
    if b != b'+' && matches!(prev, b' ' | b'-' | b'.') {
        let before = pos.checked_sub(2).and_then(|p| bytes.get(p));
        return !before.is_some_and(|&b| b.is_ascii_digit() || b == b')');
    }
    true
}

/// Parses the sequence starting at `start` (see [`sequence_may_start`]).
fn parse_sequence(bytes: &[u8], start: usize) -> Option<Sequence> {
    let plus = bytes[start] == b'+';
    let mut pos = start + usize::from(plus);
    let mut groups: Vec<Group> = Vec::new();
    let mut sep = 0;
    loop {
        let group = if bytes.get(pos) == Some(&b'(') {
            let digits_end = run(bytes, pos + 1, |b| b.is_ascii_digit());
            let digits = digits_end - pos - 1;
            (digits > 0 && digits <= 5 && bytes.get(digits_end) == Some(&b')')).then_some(Group {
                start: pos,
                end: digits_end + 1,
                digits,
                paren: true,
                sep,
            })
        } else if bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            let end = run(bytes, pos, |b| b.is_ascii_digit());
            Some(Group {
                start: pos,
                end,
                digits: end - pos,
                paren: false,
                sep,
            })
        } else {
            None
        };
        let Some(group) = group else { break };
        groups.push(group);
        pos = group.end;
        match bytes.get(pos) {
            Some(&s @ (b' ' | b'-' | b'.')) if starts_group(bytes, pos + 1) => {
                sep = s;
                pos += 1;
            }
            // `+44(0)20…`: a parenthesised group glued to the previous one.
            Some(b'(') if starts_group(bytes, pos) => sep = 0,
            // `(415)555…`: digits glued to a parenthesised group.
            Some(b) if group.paren && b.is_ascii_digit() => sep = 0,
            _ => break,
        }
    }
    (!groups.is_empty()).then_some(Sequence {
        plus,
        start,
        groups,
    })
}

/// Scans for digit sequences and reports the phone and card numbers in
/// them.
fn numbers(bytes: &[u8], kinds: KindSet, out: &mut Vec<Match>) {
    let mut pos = 0;
    while pos < bytes.len() {
        if sequence_may_start(bytes, pos)
            && let Some(sequence) = parse_sequence(bytes, pos)
        {
            let before = out.len();
            if kinds.contains(Kind::Card) {
                cards(bytes, &sequence, out);
            }
            // A Luhn-valid card is the more specific reading of the digits.
            if kinds.contains(Kind::Phone) && out.len() == before {
                phones(bytes, &sequence, out);
            }
            pos = sequence.groups.last().map_or(pos + 1, |g| g.end);
        } else {
            pos += 1;
        }
    }
}

/// Whether the number ending at `end` is not glued to a following word.
fn ends_cleanly(bytes: &[u8], end: usize) -> bool {
    !bytes.get(end).copied().is_some_and(is_word_byte)
}

/// Cards: runs of consecutive plain groups (no parentheses, not the `+`
/// group) joined by one kind of separator, space or dash, with 13 to 19
/// digits in all and a valid Luhn checksum; the longest from each start.
fn cards(bytes: &[u8], sequence: &Sequence, out: &mut Vec<Match>) {
    let groups = &sequence.groups;
    for first in 0..groups.len() {
        let group = groups[first];
        // Not the `+` group, and not digits after a decimal point.
        if group.paren || (first == 0 && sequence.plus) || group.sep == b'.' {
            continue;
        }
        let mut sep = None;
        let mut digits = 0;
        let mut best = None;
        for last in first..groups.len() {
            let group = groups[last];
            if group.paren {
                break;
            }
            // One kind of separator, space or dash, within a card.
            let joined = last == first
                || (matches!(group.sep, b' ' | b'-') && *sep.get_or_insert(group.sep) == group.sep);
            if !joined {
                break;
            }
            digits += group.digits;
            if digits > 19 {
                break;
            }
            if digits >= 13
                && ends_cleanly(bytes, group.end)
                && luhn_valid(bytes, groups[first].start, group.end)
            {
                best = Some(group.end);
            }
        }
        if let Some(end) = best {
            out.push(Match {
                start: groups[first].start,
                end,
                kind: Kind::Card,
            });
        }
    }
}

/// The Luhn checksum of the digits in `bytes[start..end]` (other bytes
/// skipped).
fn luhn_valid(bytes: &[u8], start: usize, end: usize) -> bool {
    let mut sum = 0;
    let digits = bytes[start..end]
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit());
    for (position, b) in digits.enumerate() {
        let mut digit = u32::from(b - b'0');
        if position % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    sum % 10 == 0
}

/// Phones: the whole sequence, if it follows the phone rule and is not
/// glued to a following word.
fn phones(bytes: &[u8], sequence: &Sequence, out: &mut Vec<Match>) {
    let Some(last) = sequence.groups.last() else {
        return;
    };
    if ends_cleanly(bytes, last.end) && is_phone(bytes, &sequence.groups, sequence.plus) {
        out.push(Match {
            start: sequence.start,
            end: last.end,
            kind: Kind::Phone,
        });
    }
}

/// The phone rule (see the crate documentation) for `groups`, `plus` when
/// they follow a `+`.
fn is_phone(bytes: &[u8], groups: &[Group], plus: bool) -> bool {
    let digits: usize = groups.iter().map(|g| g.digits).sum();
    if !(9..=15).contains(&digits) {
        return false;
    }
    if plus {
        return groups.len() <= 7;
    }
    let seps = || groups.iter().skip(1).map(|g| g.sep);
    let all_seps = |s: u8| seps().all(|sep| sep == s);
    let plain = groups.iter().all(|g| !g.paren);
    let rest = groups.get(1..).unwrap_or_default();
    let valid_shape = (2..=5).contains(&groups.len())
        && groups.iter().all(|g| g.digits <= 8)
        && rest.iter().all(|g| g.digits >= 2)
        && (groups.len() >= 3 || seps().all(|s| s != b'.'));
    let ip_like =
        plain && all_seps(b'.') && groups.len() == 4 && groups.iter().all(|g| g.digits <= 3);
    let thousands = plain
        && (all_seps(b' ') || all_seps(b'.'))
        && groups[0].digits <= 3
        && rest.iter().all(|g| g.digits == 3);
    valid_shape && !ip_like && !thousands && !date_like(bytes, groups)
}

/// Whether the first three groups read as a date: `YYYY MM DD` or
/// `DD MM YYYY` / `MM DD YYYY` (any separators), with a year in
/// 1900..=2099.
fn date_like(bytes: &[u8], groups: &[Group]) -> bool {
    let [a, b, c, ..] = groups else {
        return false;
    };
    if a.paren || b.paren || c.paren {
        return false;
    }
    let value = |g: &Group| {
        bytes[g.start..g.end].iter().fold(0_u32, |n, &d| {
            n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        })
    };
    let year = |g: &Group| g.digits == 4 && (1900..=2099).contains(&value(g));
    let small = |g: &Group, max: u32| g.digits <= 2 && (1..=max).contains(&value(g));
    (year(a) && small(b, 12) && small(c, 31))
        || (year(c) && small(a, 31) && small(b, 31) && (small(a, 12) || small(b, 12)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Kind, &str)> {
        find(text, KindSet::ALL)
            .into_iter()
            .map(|m| (m.kind, &text[m.start..m.end]))
            .collect()
    }

    fn assert_single(text: &str, kind: Kind, expected: &str) {
        assert_eq!(found(text), [(kind, expected)], "in {text:?}");
    }

    fn assert_none(text: &str) {
        assert_eq!(found(text), [], "in {text:?}");
    }

    #[test]
    fn emails_found() {
        for (text, email) in [
            ("contact jane.doe@example.com today", "jane.doe@example.com"),
            (
                "<a.b+tag@mail.example.co.uk>.",
                "a.b+tag@mail.example.co.uk",
            ),
            ("mail me: x_y%z@sub-domain.io.", "x_y%z@sub-domain.io"),
            ("(bob@example.org)", "bob@example.org"),
            ("...lead@example.com", "lead@example.com"),
            ("a@b.com.123", "a@b.com"),
            ("é日本jane@example.fr日本", "jane@example.fr"),
        ] {
            assert_single(text, Kind::Email, email);
        }
    }

    #[test]
    fn emails_not_over_matched() {
        for text in [
            "@mention someone",
            "user@localhost",
            "a@b",
            "price @ 10.5",
            "foo@bar.c",
            "x@1.2",
            "email@",
            "version 1.2.3",
        ] {
            assert_none(text);
        }
    }

    #[test]
    fn api_keys_found() {
        let keys = [
            "sk-abcdefghijklmnop1234",
            "sk-proj-AbCdEf_GhIjKlMnOp-1234567890",
            "sk-ant-api03-abcdefghijklmnopqrstuv",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "gho_ABCDEFGHIJKLMNOPQRSTUV",
            "ghs_0123456789abcdefghij",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "AIzaSyA-abcdefghijklmnopqrstuvwxyz12345",
            "xoxb-1234567890-abcdefghij",
            "xoxp-12345-67890-abcdef",
        ];
        for key in keys {
            assert_single(&format!("key={key} and more"), Kind::ApiKey, key);
            assert_single(&format!("\"{key}\""), Kind::ApiKey, key);
        }
    }

    #[test]
    fn api_keys_not_over_matched() {
        for text in [
            "sk-short",
            "task-management-system-design-doc",
            "ask-abcdefghijklmnopqrstuvwxyz",
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLE1",
            "AKIAiosfodnn7example",
            "ghp_short",
            "ghx_abcdefghijklmnopqrstuvwxyz0123",
            "AIzaShort",
            "xoxz-1234567890-abcdef",
            "xoxb-123",
        ] {
            assert_none(text);
        }
    }

    #[test]
    fn cards_found() {
        for (text, card) in [
            ("card 4111 1111 1111 1111 exp 12/25", "4111 1111 1111 1111"),
            ("card 4111-1111-1111-1111.", "4111-1111-1111-1111"),
            ("4111111111111111", "4111111111111111"),
            ("amex 3782 822463 10005!", "3782 822463 10005"),
            ("ref 99 4111 1111 1111 1111", "4111 1111 1111 1111"),
            ("3782 822463 10005 and", "3782 822463 10005"),
            ("5555555555554444,", "5555555555554444"),
            ("4222222222222", "4222222222222"),
        ] {
            assert_single(text, Kind::Card, card);
        }
    }

    #[test]
    fn cards_not_over_matched() {
        for text in [
            "4111 1111 1111 1112",
            "4111111111111112",
            "41111111111111111111111",
            "4111-1111 1111-1111",
            "order 12345",
            "id4111111111111111",
        ] {
            assert_none(text);
        }
    }

    #[test]
    fn phones_found() {
        for (text, phone) in [
            ("call +1 415 555 0100 now", "+1 415 555 0100"),
            ("call +1 (415) 555-0100.", "+1 (415) 555-0100"),
            ("+44 20 7946 0958", "+44 20 7946 0958"),
            ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
            ("+33 1 23 45 67 89", "+33 1 23 45 67 89"),
            ("+14155550100", "+14155550100"),
            ("(415) 555-0100", "(415) 555-0100"),
            ("(415)555-0100", "(415)555-0100"),
            ("tel: 415-555-0100.", "415-555-0100"),
            ("415.555.0100", "415.555.0100"),
            ("1-800-555-0100", "1-800-555-0100"),
            ("01 23 45 67 89", "01 23 45 67 89"),
            ("020 7946 0958", "020 7946 0958"),
            ("030 12345678", "030 12345678"),
            ("0471 12 34 56", "0471 12 34 56"),
            ("1234 +1 415 555 0100", "+1 415 555 0100"),
        ] {
            assert_single(text, Kind::Phone, phone);
        }
    }

    #[test]
    fn phones_not_over_matched() {
        for text in [
            "version 1.2.3",
            "version 10.15.7.123",
            "2024-05-01",
            "2024-05-01 10:30",
            "2024-05-01 1030",
            "01-05-2024 10",
            "order 12345",
            "order 123456789",
            "id 4155550100",
            "192.168.100.200",
            "3.14159265358979",
            "1 000 000 000",
            "1.234.567.890",
            "100 000 000",
            "978-3-16-148410-0",
            "1 2 3 4 5 6 7 8 9 10",
            "+1 415",
            "+1234567890123456",
            "x415-555-0100",
            "415-555-0100x",
            "abc12 345 678 901",
            "123 - 456 - 789",
            // Glued to other digit groups: the sequence is judged as a whole.
            "2024-05-01 415-555-0100",
        ] {
            assert_none(text);
        }
    }

    #[test]
    fn overlaps_merge() {
        // A phone-like prefix of an e-mail local part: one span, no leftover.
        let text = "write 415-555-0100@example.com";
        let matches = find(text, KindSet::ALL);
        assert_eq!(matches.len(), 1);
        assert_eq!(
            &text[matches[0].start..matches[0].end],
            "415-555-0100@example.com"
        );
    }

    #[test]
    fn kinds_filter() {
        let text = "a@b.com, +1 415 555 0100, 4111111111111111, sk-abcdefghijklmnop1234";
        for kind in Kind::ALL {
            let mut only = KindSet::EMPTY;
            only.insert(kind);
            let matches = find(text, only);
            assert_eq!(matches.len(), 1, "{kind:?}");
            assert_eq!(matches[0].kind, kind);
        }
        assert!(find(text, KindSet::EMPTY).is_empty());
    }

    #[test]
    fn tail_starts() {
        let all = KindSet::ALL;
        assert_eq!(tail_start("hello world", all), 6);
        assert_eq!(tail_start("hello world ", all), 12);
        assert_eq!(tail_start("mail jane.doe@exa", all), 5);
        assert_eq!(tail_start("call +1 415 ", all), 4);
        assert_eq!(tail_start("call (", all), 4);
        // Not inside a complete run: `14sk-415` would read as a key after it.
        assert_eq!(tail_start("x 14sk-415sk-_comsk-0100(", all), 1);
        assert_eq!(tail_start("a - b - ", all), 8);
        let mut email = KindSet::EMPTY;
        email.insert(Kind::Email);
        assert_eq!(tail_start("call +1 415 ", email), 12);
    }
}
