//! The handshake URL's query string: the parameters the server reads from it,
//! `vsn` (framing negotiation, PROTOCOL 1.3) and `token` (1.7).
//!
//! Owns: one pass over the form-urlencoded query (`%XX` and `+` decoded in
//! keys and values, by `form_urlencoded`), the first of each parameter, and
//! mapping `vsn` to a [`Framing`].
//!
//! Must never: look at the path or any other parameter, or panic on a
//! hostile query string.
//!
//! Accepted values are strict semver `1.0.<patch>` / `2.0.<patch>` where
//! `<patch>` is a non-negative integer without leading zeros (semver forbids
//! them, and Phoenix's `Version` parser rejects them too): `2.0.01`,
//! `02.0.0`, `2.0.0x`, `2.0.0-rc.1`, `2.0.0+b` (the `+` decodes to a space)
//! and anything with surrounding spaces are refused.

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

/// The parameters of a handshake's query string the server reads; the first
/// of each counts, and a bare key (`vsn` without `=`) is an empty value, as in
/// form-urlencoded parsing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HandshakeParams {
    /// `vsn` (PROTOCOL 1.3), decoded (invalid UTF-8 replaced).
    pub vsn: Option<String>,
    /// `token` (PROTOCOL 1.7); an empty value counts as none.
    pub token: Option<String>,
}

impl HandshakeParams {
    /// From the raw URL query string (without the leading `?`; e.g.
    /// `"vsn=2.0.0&token=x"`, may be empty, may be percent-encoded).
    pub fn parse(query: &str) -> HandshakeParams {
        let mut params = HandshakeParams::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "vsn" => &mut params.vsn,
                "token" => &mut params.token,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.into_owned());
            }
        }
        if params.token.as_deref() == Some("") {
            params.token = None;
        }
        params
    }

    /// PROTOCOL 1.3: `vsn` absent -> V1; `1.0.x` -> V1; `2.0.x` -> V2;
    /// anything else (including `2.0`, `3.0.0`, an empty value, or a bare
    /// `vsn` without `=`) -> Err.
    pub fn framing(&self) -> Result<Framing, UnsupportedVsn> {
        match &self.vsn {
            None => Ok(Framing::V1),
            Some(vsn) => parse_vsn(vsn.as_bytes()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The framing the server picks for a handshake's query string.
    fn framing_from_query(query: &str) -> Result<Framing, UnsupportedVsn> {
        HandshakeParams::parse(query).framing()
    }

    fn params(vsn: Option<&str>, token: Option<&str>) -> HandshakeParams {
        HandshakeParams {
            vsn: vsn.map(str::to_owned),
            token: token.map(str::to_owned),
        }
    }

    #[test]
    fn one_pass_finds_the_first_vsn_and_token_decoded() {
        assert_eq!(HandshakeParams::parse(""), params(None, None));
        assert_eq!(
            HandshakeParams::parse("vsn=2.0.0"),
            params(Some("2.0.0"), None)
        );
        assert_eq!(HandshakeParams::parse("token="), params(None, None));
        assert_eq!(
            HandshakeParams::parse("token=a.b%2Dc&vsn=2.0.0&token=second&vsn=1.0.0"),
            params(Some("2.0.0"), Some("a.b-c"))
        );
        assert_eq!(
            HandshakeParams::parse("%74oken=x+y&v%73n=1.0.0&userId=3"),
            params(Some("1.0.0"), Some("x y"))
        );
        // A bare key is an empty value.
        assert_eq!(HandshakeParams::parse("vsn"), params(Some(""), None));
    }

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
