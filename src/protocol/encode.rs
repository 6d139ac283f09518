//! Encoding of every outbound frame (PROTOCOL 2.1, 2.2, 2.3, 3.2-3.5).
//!
//! Owns: the exact byte layout of server->client frames in both framings,
//! and JSON string escaping of topics, events and reasons.
//!
//! Must never: build a `serde_json::Value` (this is the relay hot path; the
//! String is built directly with an exact capacity for unescaped input),
//! emit `join_ref` in V1, change the text of a ref it is given (refs are echoed
//! with their JSON type, PROTOCOL 2.3 rule 1), or panic.
//!
//! Trust boundary: `join_ref`/`msg_ref` are raw JSON text taken from a decoded
//! frame (or produced by this module), and `payload`/`response` are JSON
//! object text built by the server; both are inserted verbatim, unchecked.
//! Topics, events and reasons are arbitrary strings and are always escaped.

use std::fmt::Write as _;
use std::io;

use super::Framing;

/// `status` of a `phx_reply` payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyStatus {
    Ok,
    Error,
}

impl ReplyStatus {
    /// The wire value of `payload.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
        }
    }
}

const NULL: &str = "null";

/// A server push or broadcast: `ref` null and, in V2, `join_ref` null
/// (PROTOCOL 2.3 rule 3, 3.4).
pub fn encode_push(framing: Framing, topic: &str, event: &str, payload: &str) -> String {
    frame(framing, None, None, topic, event, &[payload])
}

/// A `phx_reply` with payload `{"status":..,"response":<response>}` (PROTOCOL 3.3).
/// `join_ref`/`msg_ref` are the raw JSON text of the request's refs; `join_ref`
/// is ignored in V1.
pub fn encode_reply(
    framing: Framing,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    status: ReplyStatus,
    response: &str,
) -> String {
    // Status is a fixed literal, so the payload prefix is a constant and the
    // response is spliced in without building an intermediate string.
    let head = match status {
        ReplyStatus::Ok => r#"{"status":"ok","response":"#,
        ReplyStatus::Error => r#"{"status":"error","response":"#,
    };
    frame(
        framing,
        join_ref,
        msg_ref,
        topic,
        "phx_reply",
        &[head, response, "}"],
    )
}

/// `phx_close` after a leave, a duplicate join or a server-side channel close
/// (PROTOCOL 3.5): V1 `{"topic":T,"event":"phx_close","payload":{},"ref":JR}`,
/// V2 `[JR,JR,T,"phx_close",{}]`.
pub fn encode_close(framing: Framing, join_ref: Option<&str>, topic: &str) -> String {
    frame(framing, join_ref, join_ref, topic, "phx_close", &["{}"])
}

/// `phx_error` with payload `{"reason":"channel_crash"}`, refs as for
/// [`encode_close`] (PROTOCOL 3.5).
pub fn encode_channel_error(framing: Framing, join_ref: Option<&str>, topic: &str) -> String {
    frame(
        framing,
        join_ref,
        join_ref,
        topic,
        "phx_error",
        &[r#"{"reason":"channel_crash"}"#],
    )
}

/// The general form every other encoder is a case of: any refs, any event.
/// E.g. a V2 push to one channel carrying that channel's join ref
/// (PROTOCOL 3.4 allows `[JR,null,T,E,{..}]`). `join_ref` is dropped in V1.
pub fn encode_message(
    framing: Framing,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &str,
) -> String {
    frame(framing, join_ref, msg_ref, topic, event, &[payload])
}

/// The error reply response `{"reason":"<reason>"}` (reason JSON-escaped).
pub fn error_response(reason: &str) -> String {
    let mut out = String::with_capacity(REASON_OVERHEAD + reason.len());
    out.push_str(r#"{"reason":"#);
    push_json_str(&mut out, reason);
    out.push('}');
    out
}

/// `{"reason":` + the two quotes + `}`.
const REASON_OVERHEAD: usize = 10 + 2 + 1;

/// Fixed bytes of a V1 frame: `{"topic":`, `,"event":`, `,"payload":`,
/// `,"ref":`, `}`.
const V1_OVERHEAD: usize = 9 + 9 + 11 + 7 + 1;
/// Fixed bytes of a V2 frame: the brackets and four commas.
const V2_OVERHEAD: usize = 2 + 4;

/// Writes one frame. `payload` is given in parts so callers can splice a
/// response into a fixed envelope without an intermediate allocation.
fn frame(
    framing: Framing,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &[&str],
) -> String {
    let join_ref = join_ref.unwrap_or(NULL);
    let msg_ref = msg_ref.unwrap_or(NULL);
    let payload_len: usize = payload.iter().map(|p| p.len()).sum();
    // Exact for topics/events that need no escaping (the normal case); an
    // escaped one just grows the String once.
    let common = (topic.len() + 2) + (event.len() + 2) + payload_len + msg_ref.len();
    match framing {
        Framing::V1 => {
            let mut out = String::with_capacity(V1_OVERHEAD + common);
            out.push_str(r#"{"topic":"#);
            push_json_str(&mut out, topic);
            out.push_str(r#","event":"#);
            push_json_str(&mut out, event);
            out.push_str(r#","payload":"#);
            payload.iter().for_each(|p| out.push_str(p));
            out.push_str(r#","ref":"#);
            out.push_str(msg_ref);
            out.push('}');
            out
        }
        Framing::V2 => {
            let mut out = String::with_capacity(V2_OVERHEAD + common + join_ref.len());
            out.push('[');
            out.push_str(join_ref);
            out.push(',');
            out.push_str(msg_ref);
            out.push(',');
            push_json_str(&mut out, topic);
            out.push(',');
            push_json_str(&mut out, event);
            out.push(',');
            payload.iter().for_each(|p| out.push_str(p));
            out.push(']');
            out
        }
    }
}

/// Bytes serde_json escapes inside a string: control characters, `"`, `\`.
/// Everything else, non-ASCII included, is written as is.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    // Fast path: nothing to escape, so the literal is the text in quotes,
    // byte-identical to what serde_json would write.
    if !s.bytes().any(needs_escape) {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    let mark = out.len();
    if serde_json::to_writer(StringWriter(out), s).is_err() {
        // Unreachable: serde_json only writes UTF-8 runs split at ASCII bytes
        // plus ASCII escapes. Should that ever change, stay correct rather
        // than panic: redo the literal with \u escapes only.
        out.truncate(mark);
        push_json_str_all_escaped(out, s);
    }
}

/// JSON string literal with every character as `\uXXXX` (UTF-16 units).
/// Always valid; only used if serde_json's writer ever reports an error.
fn push_json_str_all_escaped(out: &mut String, s: &str) {
    out.push('"');
    for unit in s.encode_utf16() {
        // Writing to a String cannot fail.
        let _ = write!(out, "\\u{unit:04x}");
    }
    out.push('"');
}

/// Lets serde_json's escaper append to a `String` without an intermediate
/// `Vec<u8>`; each chunk it writes is checked to be UTF-8.
struct StringWriter<'a>(&'a mut String);

impl io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let s = std::str::from_utf8(buf).map_err(io::Error::other)?;
        self.0.push_str(s);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(s: &str) -> Value {
        match serde_json::from_str(s) {
            Ok(v) => v,
            Err(e) => panic!("output is not JSON: {e}: {s}"),
        }
    }

    const TEACHERS: &str = "presence:teachers";
    const CHAT: &str = "chats:a17ffb00-…";
    const STUDENT7: &str = "presence:student:7";
    const STUDENT8: &str = "presence:student:8";
    const EMPTY_OK: &str = "{}";

    #[test]
    fn heartbeat_replies_of_section_3_2() {
        assert_eq!(
            encode_reply(
                Framing::V1,
                None,
                Some(r#""12""#),
                "phoenix",
                ReplyStatus::Ok,
                "{}"
            ),
            r#"{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"12"}"#
        );
        assert_eq!(
            encode_reply(
                Framing::V2,
                None,
                Some(r#""12""#),
                "phoenix",
                ReplyStatus::Ok,
                "{}"
            ),
            r#"[null,"12","phoenix","phx_reply",{"status":"ok","response":{}}]"#
        );
    }

    #[test]
    fn reply_shapes_of_section_3_3() {
        assert_eq!(
            encode_reply(
                Framing::V1,
                Some(r#""9""#),
                Some("3"),
                "T",
                ReplyStatus::Ok,
                "{}"
            ),
            r#"{"topic":"T","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":3}"#
        );
        assert_eq!(
            encode_reply(
                Framing::V2,
                Some(r#""1""#),
                Some("3"),
                "T",
                ReplyStatus::Ok,
                "{}"
            ),
            r#"["1",3,"T","phx_reply",{"status":"ok","response":{}}]"#
        );
        assert_eq!(
            encode_reply(
                Framing::V2,
                None,
                Some(r#""2""#),
                "nope",
                ReplyStatus::Error,
                &error_response("unmatched topic")
            ),
            r#"[null,"2","nope","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
        );
        assert_eq!(
            encode_reply(
                Framing::V1,
                None,
                Some(r#""2""#),
                "nope",
                ReplyStatus::Error,
                &error_response("unmatched topic")
            ),
            r#"{"topic":"nope","event":"phx_reply","payload":{"status":"error","response":{"reason":"unmatched topic"}},"ref":"2"}"#
        );
        assert_eq!(
            encode_reply(Framing::V1, None, None, "T", ReplyStatus::Ok, "{}"),
            r#"{"topic":"T","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":null}"#
        );
    }

    #[test]
    fn appendix_v1_server_frames() {
        let status = r#"{"teachers":{"total":1},"students":{"total":1,"waiting":1,"chatting":0,"finished":0}}"#;
        let chat = r#"{"id":"a17ffb00-…","status":"active","teacher_id":1,"student_id":7,"teacher_entered":false,"student_entered":false,"messages":[]}"#;
        let cases = [
            (
                encode_reply(Framing::V1, None, Some(r#""2""#), STUDENT7, ReplyStatus::Ok, EMPTY_OK),
                r#"{"topic":"presence:student:7","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}"#.to_owned(),
            ),
            (
                encode_push(Framing::V1, TEACHERS, "user:status", status),
                format!(r#"{{"topic":"presence:teachers","event":"user:status","payload":{status},"ref":null}}"#),
            ),
            (
                encode_push(Framing::V1, TEACHERS, "new:chat:1", chat),
                format!(r#"{{"topic":"presence:teachers","event":"new:chat:1","payload":{chat},"ref":null}}"#),
            ),
            (
                encode_reply(Framing::V1, None, Some(r#""2""#), TEACHERS, ReplyStatus::Ok, chat),
                format!(r#"{{"topic":"presence:teachers","event":"phx_reply","payload":{{"status":"ok","response":{chat}}},"ref":"2"}}"#),
            ),
            (
                encode_push(Framing::V1, STUDENT7, "new:chat", chat),
                format!(r#"{{"topic":"presence:student:7","event":"new:chat","payload":{chat},"ref":null}}"#),
            ),
            (
                encode_push(Framing::V1, CHAT, "chat:ready", "{}"),
                r#"{"topic":"chats:a17ffb00-…","event":"chat:ready","payload":{},"ref":null}"#.to_owned(),
            ),
            (
                encode_push(Framing::V1, CHAT, "student:receive", r#"{"message":"Message from teacher: 1"}"#),
                r#"{"topic":"chats:a17ffb00-…","event":"student:receive","payload":{"message":"Message from teacher: 1"},"ref":null}"#.to_owned(),
            ),
            (
                encode_push(Framing::V1, CHAT, "chat:terminated", "{}"),
                r#"{"topic":"chats:a17ffb00-…","event":"chat:terminated","payload":{},"ref":null}"#.to_owned(),
            ),
            (
                encode_reply(Framing::V1, None, Some(r#""7""#), STUDENT7, ReplyStatus::Ok, EMPTY_OK),
                r#"{"topic":"presence:student:7","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"7"}"#.to_owned(),
            ),
            (
                encode_close(Framing::V1, Some(r#""1""#), STUDENT7),
                r#"{"topic":"presence:student:7","event":"phx_close","payload":{},"ref":"1"}"#.to_owned(),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn appendix_v2_server_frames() {
        let cases = [
            (
                encode_reply(
                    Framing::V2,
                    Some(r#""1""#),
                    Some(r#""1""#),
                    STUDENT8,
                    ReplyStatus::Ok,
                    EMPTY_OK,
                ),
                r#"["1","1","presence:student:8","phx_reply",{"status":"ok","response":{}}]"#,
            ),
            (
                encode_close(Framing::V2, Some(r#""1""#), STUDENT8),
                r#"["1","1","presence:student:8","phx_close",{}]"#,
            ),
            (
                encode_reply(
                    Framing::V2,
                    Some(r#""3""#),
                    Some(r#""3""#),
                    STUDENT8,
                    ReplyStatus::Ok,
                    EMPTY_OK,
                ),
                r#"["3","3","presence:student:8","phx_reply",{"status":"ok","response":{}}]"#,
            ),
            (
                encode_reply(
                    Framing::V2,
                    None,
                    Some(r#""5""#),
                    "phoenix",
                    ReplyStatus::Ok,
                    EMPTY_OK,
                ),
                r#"[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]"#,
            ),
            (
                encode_reply(
                    Framing::V2,
                    Some(r#""3""#),
                    Some(r#""6""#),
                    STUDENT8,
                    ReplyStatus::Ok,
                    EMPTY_OK,
                ),
                r#"["3","6","presence:student:8","phx_reply",{"status":"ok","response":{}}]"#,
            ),
            (
                encode_close(Framing::V2, Some(r#""3""#), STUDENT8),
                r#"["3","3","presence:student:8","phx_close",{}]"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn pushes_and_broadcasts_of_section_3_4() {
        assert_eq!(
            encode_push(Framing::V1, "T", "E", r#"{"a":1}"#),
            r#"{"topic":"T","event":"E","payload":{"a":1},"ref":null}"#
        );
        assert_eq!(
            encode_push(Framing::V2, "T", "E", r#"{"a":1}"#),
            r#"[null,null,"T","E",{"a":1}]"#
        );
        // The "JR" variant of a V2 push to one channel.
        assert_eq!(
            encode_message(Framing::V2, Some(r#""4""#), None, "T", "E", "{}"),
            r#"["4",null,"T","E",{}]"#
        );
        // V1 never carries join_ref, whatever it is given.
        assert_eq!(
            encode_message(Framing::V1, Some(r#""4""#), None, "T", "E", "{}"),
            r#"{"topic":"T","event":"E","payload":{},"ref":null}"#
        );
    }

    #[test]
    fn close_and_error_of_section_3_5() {
        assert_eq!(
            encode_close(Framing::V1, Some(r#""1""#), "T"),
            r#"{"topic":"T","event":"phx_close","payload":{},"ref":"1"}"#
        );
        assert_eq!(
            encode_close(Framing::V2, Some(r#""1""#), "T"),
            r#"["1","1","T","phx_close",{}]"#
        );
        assert_eq!(
            encode_channel_error(Framing::V1, Some(r#""1""#), "T"),
            r#"{"topic":"T","event":"phx_error","payload":{"reason":"channel_crash"},"ref":"1"}"#
        );
        assert_eq!(
            encode_channel_error(Framing::V2, Some(r#""1""#), "T"),
            r#"["1","1","T","phx_error",{"reason":"channel_crash"}]"#
        );
        // A numeric V1 join ref (the ref of a join sent with a number) stays a number.
        assert_eq!(
            encode_close(Framing::V1, Some("1"), "T"),
            r#"{"topic":"T","event":"phx_close","payload":{},"ref":1}"#
        );
        assert_eq!(
            encode_close(Framing::V2, None, "T"),
            r#"[null,null,"T","phx_close",{}]"#
        );
    }

    #[test]
    fn refs_round_trip_with_their_json_type() {
        use crate::protocol::decode;
        for framing in [Framing::V1, Framing::V2] {
            for (jr, r) in [
                (r#""5""#, r#""5""#),
                (r#""5""#, "5"),
                (r#""a\"b""#, "-0.5e2"),
            ] {
                let text = match framing {
                    Framing::V1 => format!(
                        r#"{{"topic":"t","event":"e","payload":{{}},"ref":{r},"join_ref":{jr}}}"#
                    ),
                    Framing::V2 => format!(r#"[{jr},{r},"t","e",{{}}]"#),
                };
                let m = match decode(framing, &text) {
                    Ok(m) => m,
                    Err(e) => panic!("{text}: {e}"),
                };
                let out = encode_reply(
                    framing,
                    m.join_ref.map(|v| v.get()),
                    m.msg_ref.map(|v| v.get()),
                    &m.topic,
                    ReplyStatus::Ok,
                    "{}",
                );
                let v = parse(&out);
                let (got_jr, got_r) = match framing {
                    Framing::V1 => (None, &v["ref"]),
                    Framing::V2 => (Some(&v[0]), &v[1]),
                };
                assert_eq!(got_r, &parse(r), "{out}");
                if let Some(got_jr) = got_jr {
                    assert_eq!(got_jr, &parse(jr), "{out}");
                }
            }
        }
    }

    const NASTY: [&str; 8] = [
        "",
        "quo\"te",
        "back\\slash",
        "ctl\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
        "non-ascii é ß 中文 😀",
        "\u{2028}\u{2029}",
        "</script>",
        "mix\"\\\n😀\u{1}",
    ];

    #[test]
    fn topics_and_events_are_escaped() {
        for s in NASTY {
            let v = parse(&encode_push(Framing::V1, s, s, "{}"));
            assert_eq!(v["topic"], s);
            assert_eq!(v["event"], s);
            let v = parse(&encode_push(Framing::V2, s, s, "{}"));
            assert_eq!(v[2], s);
            assert_eq!(v[3], s);
            let v = parse(&encode_reply(
                Framing::V2,
                None,
                None,
                s,
                ReplyStatus::Ok,
                "{}",
            ));
            assert_eq!(v[2], s);
            let v = parse(&encode_close(Framing::V1, None, s));
            assert_eq!(v["topic"], s);
            let v = parse(&encode_channel_error(Framing::V2, None, s));
            assert_eq!(v[2], s);
            let v = parse(&error_response(s));
            assert_eq!(v["reason"], s);
        }
    }

    #[test]
    fn escaping_matches_serde_json_byte_for_byte() {
        for s in NASTY {
            let mut out = String::new();
            push_json_str(&mut out, s);
            match serde_json::to_string(s) {
                Ok(want) => assert_eq!(out, want),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn all_escaped_fallback_is_valid_json() {
        for s in NASTY {
            let mut out = String::new();
            push_json_str_all_escaped(&mut out, s);
            assert!(out.is_ascii());
            assert_eq!(parse(&out), s);
        }
    }

    #[test]
    fn v1_output_has_exactly_four_keys_in_order() {
        let frames = [
            encode_push(Framing::V1, "t", "e", "{}"),
            encode_reply(
                Framing::V1,
                Some(r#""1""#),
                Some(r#""2""#),
                "t",
                ReplyStatus::Error,
                "{}",
            ),
            encode_close(Framing::V1, Some(r#""1""#), "t"),
            encode_channel_error(Framing::V1, Some(r#""1""#), "t"),
            encode_message(Framing::V1, Some(r#""1""#), Some("2"), "t", "e", "{}"),
        ];
        for f in frames {
            // Order as written (serde_json's Map is sorted, so read the raw keys).
            let keys: Vec<String> = match serde_json::from_str::<
                std::collections::BTreeMap<String, &serde_json::value::RawValue>,
            >(&f)
            {
                Ok(m) => m.into_keys().collect(),
                Err(e) => panic!("{e}: {f}"),
            };
            assert_eq!(keys, ["event", "payload", "ref", "topic"], "{f}");
            let pos = |k: &str| f.find(&format!("\"{k}\":"));
            assert!(pos("topic") < pos("event"), "{f}");
            assert!(pos("event") < pos("payload"), "{f}");
            assert!(pos("payload") < pos("ref"), "{f}");
            assert!(!f.contains("join_ref"), "{f}");
        }
    }

    #[test]
    fn v2_output_has_five_elements() {
        let frames = [
            encode_push(Framing::V2, "t", "e", "{}"),
            encode_reply(
                Framing::V2,
                Some(r#""1""#),
                Some(r#""2""#),
                "t",
                ReplyStatus::Ok,
                "{}",
            ),
            encode_close(Framing::V2, Some(r#""1""#), "t"),
            encode_channel_error(Framing::V2, None, "t"),
        ];
        for f in frames {
            match parse(&f) {
                Value::Array(a) => {
                    assert_eq!(a.len(), 5, "{f}");
                    assert!(a.last().is_some_and(Value::is_object), "{f}");
                }
                other => panic!("not an array: {other}"),
            }
        }
    }

    #[test]
    fn capacity_is_exact_for_unescaped_input() {
        let payload = r#"{"message":"Message from teacher: 1","from":"teacher"}"#;
        let frames = [
            encode_push(Framing::V1, CHAT, "student:receive", payload),
            encode_push(Framing::V2, CHAT, "student:receive", payload),
            encode_reply(
                Framing::V1,
                Some(r#""1""#),
                Some(r#""22""#),
                CHAT,
                ReplyStatus::Error,
                payload,
            ),
            encode_reply(
                Framing::V2,
                Some(r#""1""#),
                Some(r#""22""#),
                CHAT,
                ReplyStatus::Ok,
                payload,
            ),
            encode_close(Framing::V1, Some(r#""1""#), CHAT),
            encode_close(Framing::V2, None, CHAT),
            encode_channel_error(Framing::V2, Some(r#""10""#), CHAT),
            error_response("unmatched topic"),
        ];
        for f in frames {
            assert_eq!(f.capacity(), f.len(), "{f}");
        }
    }

    #[test]
    fn reply_status_wire_values() {
        assert_eq!(ReplyStatus::Ok.as_str(), "ok");
        assert_eq!(ReplyStatus::Error.as_str(), "error");
    }
}
