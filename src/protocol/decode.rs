//! Decoding of one inbound text frame (PROTOCOL 1.4, 2.1, 2.2).
//!
//! Owns: checking that a frame has exactly the message shape of its
//! connection's framing, and handing back its fields borrowed from the frame
//! text (refs and payload as raw JSON, topic/event as `Cow` that only
//! allocates when the JSON string had escapes).
//!
//! Must never: panic or overflow the stack on any input, accept a frame of the
//! other framing's shape, normalise refs (their JSON type is echoed back,
//! PROTOCOL 2.3 rule 1), or look inside the payload beyond validating it is
//! JSON.
//!
//! Nesting: serde_json validates a raw payload iteratively (heap, not stack),
//! so a deeply nested payload inside a frame decodes fine and is passed
//! through; its recursion limit (128) still applies to whoever later parses
//! the payload into a typed value, which then gets an error, not a crash.

use std::borrow::Cow;

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::Framing;

/// One decoded inbound message, borrowing from the frame text (zero-copy where possible).
#[derive(Debug)]
pub struct Inbound<'a> {
    /// V2 element 0, or the optional V1 `join_ref` key. None when null/absent.
    /// When present it is always a JSON string.
    pub join_ref: Option<&'a RawValue>,
    /// `ref`. None when null. When present it is a JSON string or number.
    pub msg_ref: Option<&'a RawValue>,
    pub topic: Cow<'a, str>,
    pub event: Cow<'a, str>,
    /// Any JSON value, passed through untouched (the relay path forwards it byte for byte).
    pub payload: &'a RawValue,
}

/// Why a frame is malformed (PROTOCOL 1.4: close with 1007, no reply).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a single well-formed JSON document (includes empty input,
    /// trailing garbage and invalid UTF-16 escapes).
    #[error("frame is not valid JSON: {0}")]
    Syntax(serde_json::Error),
    /// Valid JSON, but the top-level value is not the kind this framing uses.
    #[error("{framing:?} frame must be a JSON {expected}, got {found}")]
    WrongKind {
        framing: Framing,
        expected: &'static str,
        found: &'static str,
    },
    /// Right top-level kind, but a key or element is missing, unknown,
    /// duplicated or of the wrong type, or a V2 array has the wrong length.
    #[error("frame does not have the message shape: {0}")]
    Shape(serde_json::Error),
    /// `ref` is present but neither a string, a number nor null.
    #[error("ref must be a string, a number or null, got {found}")]
    RefType { found: &'static str },
    /// `join_ref` is present but neither a string nor null.
    #[error("join_ref must be a string or null, got {found}")]
    JoinRefType { found: &'static str },
}

/// V1 wire shape. `ref` is a plain `&RawValue` (not `Option`) on purpose:
/// serde fills a missing `Option` field with `None`, but the key is required.
/// Every field is `borrow`ed: without it a `Cow<str>` always allocates.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Wire<'a> {
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(rename = "ref", borrow)]
    msg_ref: &'a RawValue,
    #[serde(default, borrow)]
    join_ref: Option<&'a RawValue>,
}

/// V2 wire shape `[join_ref, ref, topic, event, payload]`. Deserialized by
/// hand (below) so that a longer array is a shape error naming its length,
/// not serde_json's generic "trailing characters".
struct V2Wire<'a>(
    Option<&'a RawValue>,
    &'a RawValue,
    Cow<'a, str>,
    Cow<'a, str>,
    &'a RawValue,
);

/// A string element that borrows from the frame when it has no escapes
/// (a bare `Cow<str>` element would always allocate).
#[derive(Deserialize)]
struct BorrowedStr<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for V2Wire<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(V2Visitor)
    }
}

struct V2Visitor;

impl V2Visitor {
    fn element<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
        &self,
        seq: &mut A,
        index: usize,
    ) -> Result<T, A::Error> {
        seq.next_element()?
            .ok_or_else(|| de::Error::invalid_length(index, self))
    }
}

impl<'de> Visitor<'de> for V2Visitor {
    type Value = V2Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of 5 elements [join_ref, ref, topic, event, payload]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let join_ref = self.element(&mut seq, 0)?;
        let msg_ref = self.element(&mut seq, 1)?;
        let BorrowedStr(topic) = self.element(&mut seq, 2)?;
        let BorrowedStr(event) = self.element(&mut seq, 3)?;
        let payload = self.element(&mut seq, 4)?;
        // Count the surplus only to name it in the error; bounded by the
        // frame size and validated without recursion (IgnoredAny).
        let mut len = 5;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
        }
        if len != 5 {
            return Err(de::Error::invalid_length(len, &self));
        }
        Ok(V2Wire(join_ref, msg_ref, topic, event, payload))
    }
}

/// PROTOCOL 2.1/2.2: decode one inbound text frame in the connection's framing.
///
/// V1: an object with keys topic (string), event (string), payload (any
/// JSON), ref (string|number|null, key MUST be present), optional join_ref
/// (string|null); anything else is malformed. V2: exactly 5 elements
/// `[join_ref (string|null), ref (string|number|null), topic (string),
/// event (string), payload (any)]`.
pub fn decode(framing: Framing, text: &str) -> Result<Inbound<'_>, DecodeError> {
    // serde's derived struct visitor also accepts a JSON array (fields by
    // position), and a V1 object must not decode in V2 either, so the
    // top-level kind is checked before serde sees the frame.
    let (expected_byte, expected) = match framing {
        Framing::V1 => (b'{', "object"),
        Framing::V2 => (b'[', "array"),
    };
    let first = first_json_byte(text);
    if first != Some(expected_byte) {
        return Err(wrong_kind(framing, expected, text, first));
    }

    let inbound = match framing {
        Framing::V1 => {
            let wire: V1Wire<'_> = serde_json::from_str(text).map_err(classify)?;
            Inbound {
                join_ref: wire.join_ref,
                msg_ref: Some(wire.msg_ref),
                topic: wire.topic,
                event: wire.event,
                payload: wire.payload,
            }
        }
        Framing::V2 => {
            let V2Wire(join_ref, msg_ref, topic, event, payload) =
                serde_json::from_str(text).map_err(classify)?;
            Inbound {
                join_ref,
                msg_ref: Some(msg_ref),
                topic,
                event,
                payload,
            }
        }
    };
    check_refs(inbound)
}

/// True when the raw JSON is an object (first non-whitespace byte is `{`).
pub fn is_object(raw: &RawValue) -> bool {
    first_json_byte(raw.get()) == Some(b'{')
}

/// Type rules for the refs that serde cannot express on a `RawValue`; also
/// turns a `null` ref into `None`.
fn check_refs(mut inbound: Inbound<'_>) -> Result<Inbound<'_>, DecodeError> {
    if let Some(raw) = inbound.msg_ref {
        match kind_of(first_json_byte(raw.get())) {
            "null" => inbound.msg_ref = None,
            "string" | "number" => {}
            found => return Err(DecodeError::RefType { found }),
        }
    }
    // A null join_ref already arrived as None (serde maps null to None).
    if let Some(raw) = inbound.join_ref {
        match kind_of(first_json_byte(raw.get())) {
            "string" => {}
            found => return Err(DecodeError::JoinRefType { found }),
        }
    }
    Ok(inbound)
}

/// The top-level value is not what the framing needs. Tell "valid JSON of
/// the wrong kind" apart from "not JSON at all" so the log line is accurate;
/// this costs a second (iterative, non-recursive) pass on the error path only.
fn wrong_kind(
    framing: Framing,
    expected: &'static str,
    text: &str,
    first: Option<u8>,
) -> DecodeError {
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => DecodeError::WrongKind {
            framing,
            expected,
            found: kind_of(first),
        },
        Err(e) => DecodeError::Syntax(e),
    }
}

fn classify(e: serde_json::Error) -> DecodeError {
    match e.classify() {
        serde_json::error::Category::Data => DecodeError::Shape(e),
        // Syntax, Eof (truncated or empty), Io (cannot happen from a &str).
        _ => DecodeError::Syntax(e),
    }
}

/// First byte after JSON whitespace (RFC 8259: space, tab, LF, CR only).
fn first_json_byte(text: &str) -> Option<u8> {
    text.bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Kind of a JSON value judged by its first byte; only meaningful for text
/// already known to be valid JSON.
fn kind_of(first: Option<u8>) -> &'static str {
    match first {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b'-' | b'0'..=b'9') => "number",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "nothing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Option<&RawValue>) -> Option<&str> {
        v.map(RawValue::get)
    }

    fn v1(text: &str) -> Inbound<'_> {
        match decode(Framing::V1, text) {
            Ok(m) => m,
            Err(e) => panic!("V1 {text:?} must decode: {e}"),
        }
    }

    fn v2(text: &str) -> Inbound<'_> {
        match decode(Framing::V2, text) {
            Ok(m) => m,
            Err(e) => panic!("V2 {text:?} must decode: {e}"),
        }
    }

    fn malformed(framing: Framing, text: &str) -> DecodeError {
        match decode(framing, text) {
            Ok(m) => panic!("{framing:?} {text:?} must be malformed, decoded {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn client_a_example_frame() {
        let text = r#"{"topic":"presence:student:7","event":"student:ready","payload":{"userId":7},"ref":"2"}"#;
        let m = v1(text);
        assert_eq!(raw(m.join_ref), None);
        assert_eq!(raw(m.msg_ref), Some(r#""2""#));
        assert_eq!(m.topic, "presence:student:7");
        assert_eq!(m.event, "student:ready");
        assert_eq!(m.payload.get(), r#"{"userId":7}"#);
    }

    #[test]
    fn client_b_example_frame() {
        let m = v2(r#"["4","5","presence:student:1","student:ready",{"userId":1}]"#);
        assert_eq!(raw(m.join_ref), Some(r#""4""#));
        assert_eq!(raw(m.msg_ref), Some(r#""5""#));
        assert_eq!(m.topic, "presence:student:1");
        assert_eq!(m.event, "student:ready");
        assert_eq!(m.payload.get(), r#"{"userId":1}"#);
    }

    #[test]
    fn heartbeats_of_section_3_2() {
        let m = v1(r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"12"}"#);
        assert_eq!((&*m.topic, &*m.event), ("phoenix", "heartbeat"));
        assert_eq!(raw(m.msg_ref), Some(r#""12""#));
        assert_eq!(raw(m.join_ref), None);
        assert_eq!(m.payload.get(), "{}");

        let m = v2(r#"[null,"12","phoenix","heartbeat",{}]"#);
        assert_eq!((&*m.topic, &*m.event), ("phoenix", "heartbeat"));
        assert_eq!(raw(m.msg_ref), Some(r#""12""#));
        assert_eq!(raw(m.join_ref), None);
        assert_eq!(m.payload.get(), "{}");
    }

    #[test]
    fn appendix_v1_client_frames() {
        let frames = [
            (
                r#"{"topic":"presence:student:7","event":"student:ready","payload":{"userId":7},"ref":"2"}"#,
                "presence:student:7",
                "student:ready",
                r#"{"userId":7}"#,
                r#""2""#,
            ),
            (
                r#"{"topic":"presence:teachers","event":"claim:student","payload":{"teacherId":1},"ref":"2"}"#,
                "presence:teachers",
                "claim:student",
                r#"{"teacherId":1}"#,
                r#""2""#,
            ),
            (
                r#"{"topic":"chats:a17ffb00-…","event":"student:joined","payload":{},"ref":"4"}"#,
                "chats:a17ffb00-…",
                "student:joined",
                "{}",
                r#""4""#,
            ),
            (
                r#"{"topic":"chats:a17ffb00-…","event":"teacher:send","payload":{"message":"Message from teacher: 1"},"ref":"5"}"#,
                "chats:a17ffb00-…",
                "teacher:send",
                r#"{"message":"Message from teacher: 1"}"#,
                r#""5""#,
            ),
            (
                r#"{"topic":"chats:a17ffb00-…","event":"chat:terminate","payload":{},"ref":"6"}"#,
                "chats:a17ffb00-…",
                "chat:terminate",
                "{}",
                r#""6""#,
            ),
            (
                r#"{"topic":"presence:student:7","event":"phx_leave","payload":{},"ref":"7"}"#,
                "presence:student:7",
                "phx_leave",
                "{}",
                r#""7""#,
            ),
        ];
        for (text, topic, event, payload, msg_ref) in frames {
            let m = v1(text);
            assert_eq!(m.topic, topic);
            assert_eq!(m.event, event);
            assert_eq!(m.payload.get(), payload);
            assert_eq!(raw(m.msg_ref), Some(msg_ref));
            assert_eq!(raw(m.join_ref), None);
        }
    }

    #[test]
    fn appendix_v2_client_frames() {
        let frames = [
            (
                r#"["1","1","presence:student:8","phx_join",{"userId":8,"role":"student"}]"#,
                Some(r#""1""#),
                r#""1""#,
                "presence:student:8",
                "phx_join",
                r#"{"userId":8,"role":"student"}"#,
            ),
            (
                r#"["3","3","presence:student:8","phx_join",{"userId":8,"role":"student"}]"#,
                Some(r#""3""#),
                r#""3""#,
                "presence:student:8",
                "phx_join",
                r#"{"userId":8,"role":"student"}"#,
            ),
            (
                r#"["1","4","presence:student:8","student:ready",{"userId":8}]"#,
                Some(r#""1""#),
                r#""4""#,
                "presence:student:8",
                "student:ready",
                r#"{"userId":8}"#,
            ),
            (
                r#"[null,"5","phoenix","heartbeat",{}]"#,
                None,
                r#""5""#,
                "phoenix",
                "heartbeat",
                "{}",
            ),
            (
                r#"["3","6","presence:student:8","phx_leave",{}]"#,
                Some(r#""3""#),
                r#""6""#,
                "presence:student:8",
                "phx_leave",
                "{}",
            ),
        ];
        for (text, join_ref, msg_ref, topic, event, payload) in frames {
            let m = v2(text);
            assert_eq!(raw(m.join_ref), join_ref);
            assert_eq!(raw(m.msg_ref), Some(msg_ref));
            assert_eq!(m.topic, topic);
            assert_eq!(m.event, event);
            assert_eq!(m.payload.get(), payload);
        }
    }

    #[test]
    fn refs_keep_their_json_type() {
        let m = v1(r#"{"topic":"t","event":"e","payload":{},"ref":5}"#);
        assert_eq!(raw(m.msg_ref), Some("5"));
        let m = v1(r#"{"topic":"t","event":"e","payload":{},"ref":"5"}"#);
        assert_eq!(raw(m.msg_ref), Some(r#""5""#));
        let m = v1(r#"{"topic":"t","event":"e","payload":{},"ref":-1.5e3}"#);
        assert_eq!(raw(m.msg_ref), Some("-1.5e3"));
        let m = v2(r#"["5",5,"t","e",{}]"#);
        assert_eq!(raw(m.join_ref), Some(r#""5""#));
        assert_eq!(raw(m.msg_ref), Some("5"));
        // Escapes inside a string ref are kept as sent, not re-encoded.
        let m = v2(r#"[null,"\u0035","t","e",{}]"#);
        assert_eq!(raw(m.msg_ref), Some(r#""\u0035""#));
    }

    #[test]
    fn null_refs_are_none() {
        let m = v1(r#"{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":null}"#);
        assert_eq!(raw(m.msg_ref), None);
        assert_eq!(raw(m.join_ref), None);
        let m = v2(r#"[null,null,"t","e",{}]"#);
        assert_eq!(raw(m.msg_ref), None);
        assert_eq!(raw(m.join_ref), None);
    }

    #[test]
    fn v1_optional_join_ref() {
        let m = v1(r#"{"join_ref":"1","ref":"3","topic":"t","event":"e","payload":{}}"#);
        assert_eq!(raw(m.join_ref), Some(r#""1""#));
        assert_eq!(raw(m.msg_ref), Some(r#""3""#));
    }

    #[test]
    fn payload_is_any_json_byte_for_byte() {
        for payload in [
            "null",
            "42",
            r#""s""#,
            "[1,2]",
            "true",
            r#"{ "a" : [ 1 , {"b":"\u00e9"} ] }"#,
        ] {
            let text = format!(r#"{{"topic":"t","event":"e","payload":{payload},"ref":"1"}}"#);
            assert_eq!(v1(&text).payload.get(), payload);
            let text = format!(r#"[null,"1","t","e",{payload}]"#);
            assert_eq!(v2(&text).payload.get(), payload);
        }
    }

    #[test]
    fn whitespace_and_key_order_are_fine() {
        let m = v1(" \n{ \"ref\" : \"1\" , \"payload\" : {} , \"event\" : \"e\" , \"topic\" : \"t\" }\r\n\t");
        assert_eq!((&*m.topic, &*m.event), ("t", "e"));
        assert_eq!(raw(m.msg_ref), Some(r#""1""#));
        let m = v2(" [ null , \"1\" , \"t\" , \"e\" , {} ] \n");
        assert_eq!(m.payload.get(), "{}");
    }

    #[test]
    fn topic_without_escapes_is_borrowed_with_escapes_is_owned() {
        let m = v1(r#"{"topic":"chats:abc","event":"e","payload":{},"ref":"1"}"#);
        assert!(matches!(m.topic, Cow::Borrowed(_)));
        assert!(matches!(m.event, Cow::Borrowed(_)));
        let m = v2(r#"[null,"1","chats:abc","e",{}]"#);
        assert!(matches!(m.topic, Cow::Borrowed(_)));
        assert!(matches!(m.event, Cow::Borrowed(_)));

        let m = v2(r#"[null,"1","a\"b\\c\u00e9\n","e",{}]"#);
        assert!(matches!(m.topic, Cow::Owned(_)));
        assert_eq!(m.topic, "a\"b\\cé\n");
    }

    #[test]
    fn not_json() {
        for framing in [Framing::V1, Framing::V2] {
            for text in [
                "not json",
                "",
                "   ",
                "{",
                "[",
                "nul",
                "\u{feff}{}",
                "{'a':1}",
            ] {
                let e = malformed(framing, text);
                assert!(
                    matches!(e, DecodeError::Syntax(_)),
                    "{framing:?} {text:?}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn wrong_top_level_kind() {
        let cases = [
            (Framing::V1, "[1,2]", "array"),
            (Framing::V1, r#"[null,"1","t","e",{}]"#, "array"),
            (Framing::V1, r#""x""#, "string"),
            (Framing::V1, "12", "number"),
            (Framing::V1, "null", "null"),
            (Framing::V1, "true", "boolean"),
            (Framing::V2, r#"{"topic":"x"}"#, "object"),
            (
                Framing::V2,
                r#"{"topic":"t","event":"e","payload":{},"ref":"1"}"#,
                "object",
            ),
            (Framing::V2, r#""x""#, "string"),
            (Framing::V2, "-1", "number"),
        ];
        for (framing, text, kind) in cases {
            match malformed(framing, text) {
                DecodeError::WrongKind { found, .. } => assert_eq!(found, kind, "{text}"),
                e => panic!("{framing:?} {text:?}: {e:?}"),
            }
        }
    }

    #[test]
    fn trailing_garbage() {
        let e = malformed(
            Framing::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":"1"}x"#,
        );
        assert!(matches!(e, DecodeError::Syntax(_)), "{e:?}");
        let e = malformed(Framing::V2, r#"[null,"1","t","e",{}] []"#);
        assert!(matches!(e, DecodeError::Syntax(_)), "{e:?}");
        let e = malformed(
            Framing::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":"1"}{}"#,
        );
        assert!(matches!(e, DecodeError::Syntax(_)), "{e:?}");
    }

    #[test]
    fn v1_shape_errors() {
        let cases = [
            // missing ref key (null is fine, absence is not)
            r#"{"topic":"t","event":"e","payload":{}}"#,
            // missing each other required key
            r#"{"event":"e","payload":{},"ref":"1"}"#,
            r#"{"topic":"t","payload":{},"ref":"1"}"#,
            r#"{"topic":"t","event":"e","ref":"1"}"#,
            // unknown extra key
            r#"{"topic":"t","event":"e","payload":{},"ref":"1","extra":1}"#,
            // duplicate key
            r#"{"topic":"t","topic":"u","event":"e","payload":{},"ref":"1"}"#,
            // wrong types for topic/event
            r#"{"topic":7,"event":"e","payload":{},"ref":"1"}"#,
            r#"{"topic":null,"event":"e","payload":{},"ref":"1"}"#,
            r#"{"topic":"t","event":["e"],"payload":{},"ref":"1"}"#,
            r#"{}"#,
        ];
        for text in cases {
            let e = malformed(Framing::V1, text);
            assert!(matches!(e, DecodeError::Shape(_)), "{text}: {e:?}");
        }
    }

    #[test]
    fn v2_shape_errors() {
        let cases = [
            "[]",
            "[1,2]",
            r#"[null,"1","t","e"]"#,
            r#"[null,"1","t","e",{},{}]"#,
            // numeric topic / event
            r#"[null,"1",7,"e",{}]"#,
            r#"[null,"1","t",7,{}]"#,
            r#"[null,"1",null,"e",{}]"#,
            r#"[null,"1","t","e",{},null,1]"#,
        ];
        for text in cases {
            let e = malformed(Framing::V2, text);
            assert!(matches!(e, DecodeError::Shape(_)), "{text}: {e:?}");
        }
    }

    #[test]
    fn bad_ref_types() {
        for bad in [r#"{}"#, "true", "false", "[]", r#"["1"]"#] {
            let text = format!(r#"{{"topic":"t","event":"e","payload":{{}},"ref":{bad}}}"#);
            let e = malformed(Framing::V1, &text);
            assert!(matches!(e, DecodeError::RefType { .. }), "{text}: {e:?}");
            let text = format!(r#"[null,{bad},"t","e",{{}}]"#);
            let e = malformed(Framing::V2, &text);
            assert!(matches!(e, DecodeError::RefType { .. }), "{text}: {e:?}");
        }
    }

    #[test]
    fn bad_join_ref_types() {
        for bad in ["4", "-1", "true", "{}", "[]"] {
            let text = format!(r#"[{bad},"5","t","e",{{}}]"#);
            let e = malformed(Framing::V2, &text);
            assert!(
                matches!(e, DecodeError::JoinRefType { .. }),
                "{text}: {e:?}"
            );
            let text =
                format!(r#"{{"topic":"t","event":"e","payload":{{}},"ref":"1","join_ref":{bad}}}"#);
            let e = malformed(Framing::V1, &text);
            assert!(
                matches!(e, DecodeError::JoinRefType { .. }),
                "{text}: {e:?}"
            );
        }
    }

    #[test]
    fn error_messages_are_readable() {
        let e = malformed(Framing::V2, r#"{"topic":"x"}"#);
        assert_eq!(e.to_string(), "V2 frame must be a JSON array, got object");
        let e = malformed(Framing::V2, r#"[4,"5","t","e",{}]"#);
        assert_eq!(
            e.to_string(),
            "join_ref must be a string or null, got number"
        );
        let e = malformed(
            Framing::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":true}"#,
        );
        assert_eq!(
            e.to_string(),
            "ref must be a string, a number or null, got boolean"
        );
        let e = malformed(Framing::V1, r#"{"topic":"t","event":"e","payload":{}}"#);
        assert!(e.to_string().contains("missing field `ref`"), "{e}");
        let e = malformed(Framing::V2, r#"[null,"1","t","e",{},{}]"#);
        assert!(
            e.to_string()
                .contains("invalid length 6, expected an array of 5"),
            "{e}"
        );
        let e = malformed(Framing::V2, r#"[null,"1","t","e"]"#);
        assert!(
            e.to_string()
                .contains("invalid length 4, expected an array of 5"),
            "{e}"
        );
        let e = malformed(Framing::V1, "not json");
        assert!(e.to_string().starts_with("frame is not valid JSON"), "{e}");
    }

    #[test]
    fn invalid_strings_are_rejected() {
        // Lone surrogate escape and an invalid escape in the topic.
        for text in [r#"[null,"1","\ud800","e",{}]"#, r#"[null,"1","\x","e",{}]"#] {
            let e = malformed(Framing::V2, text);
            assert!(matches!(e, DecodeError::Syntax(_)), "{text}: {e:?}");
        }
    }

    #[test]
    fn deep_unclosed_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000);
        for framing in [Framing::V1, Framing::V2] {
            malformed(framing, &deep);
            malformed(framing, &format!("{{\"payload\":{deep}"));
            malformed(framing, &format!("[null,\"1\",\"t\",\"e\",{deep}"));
        }
    }

    #[test]
    fn deep_closed_nesting_is_bounded() {
        let n = 10_000;
        let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
        // Top level: rejected in V1 (wrong kind), and in V2 it is a
        // one-element array.
        assert!(matches!(
            malformed(Framing::V1, &deep),
            DecodeError::WrongKind { .. }
        ));
        assert!(matches!(
            malformed(Framing::V2, &deep),
            DecodeError::Shape(_)
        ));
        // As a ref: validated without recursion, then refused by type.
        let text = format!(r#"[{deep},"1","t","e",{{}}]"#);
        assert!(matches!(
            malformed(Framing::V2, &text),
            DecodeError::JoinRefType { found: "array" }
        ));
        let text = format!(r#"{{"topic":"t","event":"e","payload":{{}},"ref":{deep}}}"#);
        assert!(matches!(
            malformed(Framing::V1, &text),
            DecodeError::RefType { found: "array" }
        ));
        // Deep as a payload: validated without recursion and passed through.
        let text = format!(r#"[null,"1","t","e",{deep}]"#);
        assert_eq!(v2(&text).payload.get(), deep);
        let text = format!(r#"{{"topic":"t","event":"e","payload":{deep},"ref":"1"}}"#);
        let m = v1(&text);
        assert_eq!(m.payload.get(), deep);
        // Whoever parses such a payload further gets serde_json's recursion
        // limit as an error rather than a stack overflow.
        assert!(serde_json::from_str::<serde_json::Value>(m.payload.get()).is_err());
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let frames = [
            (
                Framing::V1,
                r#"{"topic":"chats:é","event":"teacher:send","payload":{"message":"a\"b"},"ref":"5","join_ref":null}"#,
            ),
            (
                Framing::V2,
                r#"["4",5,"presence:student:1","student:ready",{"userId":[1,{"x":null}]}]"#,
            ),
        ];
        for (framing, text) in frames {
            assert!(decode(framing, text).is_ok(), "{text}");
            // A strict prefix of a frame is never a complete document.
            for (cut, _) in text.char_indices().skip(1) {
                let prefix = text.get(..cut).unwrap_or_default();
                assert!(decode(framing, prefix).is_err(), "{prefix}");
            }
            // Replacing any byte with structural characters must not panic.
            let bytes = text.as_bytes();
            for i in 0..bytes.len() {
                for b in [b'"', b'[', b']', b'{', b'}', b',', b':', b'\\', b'0', b' '] {
                    let mut mutated = bytes.to_vec();
                    mutated[i] = b;
                    if let Ok(m) = std::str::from_utf8(&mutated) {
                        let _ = decode(Framing::V1, m);
                        let _ = decode(Framing::V2, m);
                    }
                }
            }
        }
    }

    #[test]
    fn is_object_checks_first_byte() {
        let m = v2(r#"[null,"1","t","e",{"a":1}]"#);
        assert!(is_object(m.payload));
        for payload in ["[]", "null", "1", r#""{""#, "true"] {
            let text = format!(r#"[null,"1","t","e",{payload}]"#);
            assert!(!is_object(v2(&text).payload), "{payload}");
        }
        let spaced = RawValue::from_string(" \n{}".to_owned());
        match spaced {
            Ok(raw) => assert!(is_object(&raw)),
            Err(e) => panic!("{e}"),
        }
    }
}
