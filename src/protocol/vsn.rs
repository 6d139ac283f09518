//! Framing negotiation from the handshake URL's query string (PROTOCOL 1.3).
//!
//! Owns: finding the first `vsn` parameter (form-urlencoded, so `%XX` and `+`
//! are decoded in keys and values) and mapping it to a [`Framing`].
//!
//! Must never: look at the path or any other parameter, allocate when the
//! query has nothing to decode, or panic on a hostile query string.
//!
//! Accepted values are strict semver `1.0.<patch>` / `2.0.<patch>` where
//! `<patch>` is a non-negative integer without leading zeros (semver forbids
//! them, and Phoenix's `Version` parser rejects them too): `2.0.01`,
//! `02.0.0`, `2.0.0x`, `2.0.0-rc.1`, `2.0.0+b` (the `+` decodes to a space)
//! and anything with surrounding spaces are refused.

use std::borrow::Cow;

use super::Framing;

/// The `vsn` value a handshake asked for and we refuse (answer 403).
///
/// Holds the decoded value (invalid UTF-8 replaced), cut to at most
/// [`MAX_REPORTED_CHARS`] characters so a hostile client cannot make us log
/// a kilobyte-long value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unsupported vsn {0:?}")]
pub struct UnsupportedVsn(pub String);

/// How much of a refused `vsn` value is kept in [`UnsupportedVsn`].
const MAX_REPORTED_CHARS: usize = 64;

/// PROTOCOL 1.3: from the raw URL query string (without the leading `?`;
/// e.g. `"vsn=2.0.0&token=x"`, may be empty, may be percent-encoded).
///
/// `vsn` absent -> V1; `1.0.x` -> V1; `2.0.x` -> V2; anything else
/// (including `2.0`, `3.0.0`, an empty value, or a bare `vsn` without `=`)
/// -> Err. Other parameters are ignored; if `vsn` appears more than once,
/// the first one counts.
pub fn framing_from_query(query: &str) -> Result<Framing, UnsupportedVsn> {
    for pair in query.split('&') {
        // A bare key ("vsn" without '=') means an empty value, as in
        // application/x-www-form-urlencoded parsing.
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(key).as_ref() == b"vsn" {
            return parse_vsn(&form_decode(value));
        }
    }
    Ok(Framing::V1)
}

/// PROTOCOL 1.3 from a `vsn` value already form-decoded (None: absent), for
/// a caller that parses the query string itself; same rules as
/// [`framing_from_query`].
pub fn framing_from_vsn(vsn: Option<&[u8]>) -> Result<Framing, UnsupportedVsn> {
    match vsn {
        None => Ok(Framing::V1),
        Some(vsn) => parse_vsn(vsn),
    }
}

fn parse_vsn(vsn: &[u8]) -> Result<Framing, UnsupportedVsn> {
    let (framing, patch) = if let Some(patch) = vsn.strip_prefix(b"1.0.") {
        (Framing::V1, patch)
    } else if let Some(patch) = vsn.strip_prefix(b"2.0.") {
        (Framing::V2, patch)
    } else {
        return Err(refused(vsn));
    };
    if is_semver_number(patch) {
        Ok(framing)
    } else {
        Err(refused(vsn))
    }
}

/// Semver numeric identifier: `0`, or digits not starting with `0`.
/// Any length is fine: we never convert it to an integer, so no overflow.
fn is_semver_number(digits: &[u8]) -> bool {
    match digits {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    }
}

fn refused(vsn: &[u8]) -> UnsupportedVsn {
    UnsupportedVsn(
        String::from_utf8_lossy(vsn)
            .chars()
            .take(MAX_REPORTED_CHARS)
            .collect(),
    )
}

/// application/x-www-form-urlencoded decoding of one key or value: `+` is a
/// space, `%XX` is a byte; a `%` not followed by two hex digits stays literal
/// (as browsers and Plug do) instead of being an error.
fn form_decode(s: &str) -> Cow<'_, [u8]> {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let [first, tail @ ..] = rest {
        match (first, tail) {
            (b'%', [hi, lo, after @ ..]) => {
                if let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) {
                    out.push(hi << 4 | lo);
                    rest = after;
                    continue;
                }
                out.push(b'%');
            }
            (b'+', _) => out.push(b' '),
            _ => out.push(*first),
        }
        rest = tail;
    }
    Cow::Owned(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: &str) -> Result<Framing, UnsupportedVsn> {
        Err(UnsupportedVsn(v.to_owned()))
    }

    #[test]
    fn table_of_section_1_3() {
        // absent
        assert_eq!(framing_from_query(""), Ok(Framing::V1));
        assert_eq!(framing_from_query("token=x&foo=bar"), Ok(Framing::V1));
        // 1.0.x
        assert_eq!(framing_from_query("vsn=1.0.0"), Ok(Framing::V1));
        assert_eq!(framing_from_query("vsn=1.0.7"), Ok(Framing::V1));
        // 2.0.x
        assert_eq!(framing_from_query("vsn=2.0.0"), Ok(Framing::V2));
        assert_eq!(framing_from_query("vsn=2.0.3"), Ok(Framing::V2));
        // anything else
        assert_eq!(framing_from_query("vsn=2.0"), err("2.0"));
        assert_eq!(framing_from_query("vsn=3.0.0"), err("3.0.0"));
        assert_eq!(framing_from_query("vsn=2.1.0"), err("2.1.0"));
        assert_eq!(framing_from_query("vsn=1.1.0"), err("1.1.0"));
        assert_eq!(framing_from_query("vsn=2"), err("2"));
        assert_eq!(framing_from_query("vsn=2.0.x"), err("2.0.x"));
    }

    #[test]
    fn client_b_query_with_params() {
        assert_eq!(
            framing_from_query("token=abc&user_id=3&vsn=2.0.0"),
            Ok(Framing::V2)
        );
        assert_eq!(framing_from_query("vsn=2.0.0&token=x"), Ok(Framing::V2));
    }

    #[test]
    fn multi_digit_and_huge_patch() {
        assert_eq!(framing_from_query("vsn=2.0.10"), Ok(Framing::V2));
        assert_eq!(framing_from_query("vsn=1.0.123"), Ok(Framing::V1));
        // Far beyond u64: still "a non-negative integer", and must not overflow.
        let huge = format!("vsn=2.0.{}", "9".repeat(100));
        assert_eq!(framing_from_query(&huge), Ok(Framing::V2));
    }

    #[test]
    fn percent_encoded() {
        assert_eq!(framing_from_query("vsn=2%2E0%2E0"), Ok(Framing::V2));
        assert_eq!(framing_from_query("vsn=2%2e0%2e0"), Ok(Framing::V2));
        assert_eq!(framing_from_query("%76sn=2.0.0"), Ok(Framing::V2));
        assert_eq!(framing_from_query("%76%73%6E=1%2E0%2E0"), Ok(Framing::V1));
        // '+' is a space in form encoding, so build metadata cannot sneak in.
        assert_eq!(framing_from_query("vsn=2.0.0+b"), err("2.0.0 b"));
        assert_eq!(framing_from_query("vsn=%202.0.0"), err(" 2.0.0"));
        // A broken escape stays literal rather than being decoded or panicking.
        assert_eq!(framing_from_query("vsn=2.0.0%"), err("2.0.0%"));
        assert_eq!(framing_from_query("vsn=2.0.0%2"), err("2.0.0%2"));
        assert_eq!(framing_from_query("vsn=2.0.%zz"), err("2.0.%zz"));
        // Non-UTF-8 after decoding is reported lossily, not a panic.
        assert_eq!(framing_from_query("vsn=%FF"), err("\u{FFFD}"));
    }

    #[test]
    fn first_vsn_counts() {
        assert_eq!(framing_from_query("vsn=1.0.0&vsn=2.0.0"), Ok(Framing::V1));
        assert_eq!(framing_from_query("vsn=2.0.0&vsn=1.0.0"), Ok(Framing::V2));
        assert_eq!(framing_from_query("vsn=3.0.0&vsn=2.0.0"), err("3.0.0"));
        assert_eq!(framing_from_query("vsn=2.0.0&vsn=3.0.0"), Ok(Framing::V2));
    }

    #[test]
    fn empty_and_bare_vsn_are_refused() {
        assert_eq!(framing_from_query("vsn="), err(""));
        assert_eq!(framing_from_query("vsn"), err(""));
        assert_eq!(framing_from_query("a=1&vsn&b=2"), err(""));
    }

    #[test]
    fn near_misses_are_refused() {
        assert_eq!(framing_from_query("vsn=2.0.0x"), err("2.0.0x"));
        assert_eq!(framing_from_query("vsn=02.0.0"), err("02.0.0"));
        assert_eq!(framing_from_query("vsn=2.00.0"), err("2.00.0"));
        assert_eq!(framing_from_query("vsn=2.0.01"), err("2.0.01"));
        assert_eq!(framing_from_query("vsn=2.0.00"), err("2.0.00"));
        assert_eq!(framing_from_query("vsn=2.0."), err("2.0."));
        assert_eq!(framing_from_query("vsn=2.0.-1"), err("2.0.-1"));
        assert_eq!(framing_from_query("vsn=2.0.0-rc.1"), err("2.0.0-rc.1"));
        assert_eq!(framing_from_query("vsn=v2.0.0"), err("v2.0.0"));
        assert_eq!(framing_from_query("vsn=2.0.0.0"), err("2.0.0.0"));
        assert_eq!(framing_from_query("vsn=2.0.0=1"), err("2.0.0=1"));
    }

    #[test]
    fn only_the_exact_key_counts() {
        assert_eq!(framing_from_query("VSN=3.0.0"), Ok(Framing::V1));
        assert_eq!(framing_from_query("xvsn=3.0.0&vsnx=3.0.0"), Ok(Framing::V1));
        assert_eq!(framing_from_query("&&=&vsn=2.0.0"), Ok(Framing::V2));
        // The raw query string has no leading '?'; one that does is just an
        // unknown key "?vsn".
        assert_eq!(framing_from_query("?vsn=3.0.0"), Ok(Framing::V1));
    }

    #[test]
    fn reported_value_is_bounded() {
        let long = format!("vsn={}", "é".repeat(1000));
        let Err(UnsupportedVsn(reported)) = framing_from_query(&long) else {
            panic!("must be refused");
        };
        assert_eq!(reported.chars().count(), MAX_REPORTED_CHARS);
        assert!(reported.chars().all(|c| c == 'é'));
    }

    #[test]
    fn error_message() {
        assert_eq!(
            UnsupportedVsn("3.0.0".into()).to_string(),
            "unsupported vsn \"3.0.0\""
        );
    }
}
