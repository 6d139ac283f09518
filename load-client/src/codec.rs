//! The load client's own Phoenix Channels codec: V1 frames (a JSON object) and V2
//! frames (a five-element JSON array), plus the payload shapes of PROTOCOL.md 5.5.
//!
//! It is deliberately independent of the server's `protocol` module: a codec shared by
//! both ends would hide a bug common to both. Decoding is strict about what PROTOCOL.md
//! 2.1-2.3 promise for server→client frames:
//!
//! * V1 is an object with exactly the keys `topic`, `event`, `payload` and `ref`;
//! * V2 is an array `[join_ref, ref, topic, event, payload]`;
//! * refs are strings or null (this client only sends strings, and the server must
//!   echo them with the same JSON type);
//! * the payload is always a JSON object.
//!
//! Anything else is a [`DecodeError`]. Callers count it as an error; nothing here
//! panics on server input.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// Framing of one connection, fixed at handshake time (PROTOCOL.md 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `{"topic","event","payload","ref"}`: the 2015 client.
    V1,
    /// `[join_ref, ref, topic, event, payload]`: phoenix.js ≥ 1.7 (`vsn=2.0.0`).
    V2,
}

/// One decoded server→client frame, borrowing from the received text.
#[derive(Debug)]
pub struct Frame<'a> {
    /// V2 only; always `None` in V1.
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: Cow<'a, str>,
    pub event: Cow<'a, str>,
    /// The payload's raw JSON text; guaranteed to be an object.
    pub payload: &'a RawValue,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame is not valid JSON of the connection's framing: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("frame payload is not a JSON object")]
    PayloadNotObject,
}

/// Encodes one client→server frame. V1 carries no `join_ref`, exactly like the 2015
/// client; V2 carries `join_ref` as given (`None` for heartbeats).
pub fn encode<P: Serialize + ?Sized>(
    framing: Framing,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &P,
) -> Result<String, serde_json::Error> {
    match framing {
        Framing::V1 => serde_json::to_string(&V1Out {
            topic,
            event,
            payload,
            msg_ref,
        }),
        Framing::V2 => serde_json::to_string(&(join_ref, msg_ref, topic, event, payload)),
    }
}

/// Decodes one server→client text frame.
pub fn decode(framing: Framing, text: &str) -> Result<Frame<'_>, DecodeError> {
    let frame = match framing {
        Framing::V1 => {
            let v1: V1In<'_> = serde_json::from_str(text)?;
            let msg_ref = match v1.msg_ref {
                RefField::Present(r) => r,
                RefField::Absent => {
                    return Err(DecodeError::Shape(serde::de::Error::missing_field("ref")))
                }
            };
            Frame {
                join_ref: None,
                msg_ref,
                topic: v1.topic,
                event: v1.event,
                payload: v1.payload,
            }
        }
        Framing::V2 => {
            let V2In(join_ref, msg_ref, topic, event, payload) = serde_json::from_str(text)?;
            Frame {
                join_ref,
                msg_ref,
                topic,
                event,
                payload,
            }
        }
    };
    if !frame.payload.get().starts_with('{') {
        return Err(DecodeError::PayloadNotObject);
    }
    Ok(frame)
}

#[derive(Serialize)]
struct V1Out<'a, P: Serialize + ?Sized> {
    topic: &'a str,
    event: &'a str,
    payload: &'a P,
    #[serde(rename = "ref")]
    msg_ref: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1In<'a> {
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
    /// The key must be present (V1 outbound always has it), its value may be null.
    #[serde(rename = "ref", default, deserialize_with = "present_ref")]
    msg_ref: RefField,
}

#[derive(Default)]
enum RefField {
    #[default]
    Absent,
    Present(Option<String>),
}

fn present_ref<'de, D: Deserializer<'de>>(d: D) -> Result<RefField, D::Error> {
    Option::<String>::deserialize(d).map(RefField::Present)
}

#[derive(Deserialize)]
struct V2In<'a>(
    Option<String>,
    Option<String>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] &'a RawValue,
);

// ---------------------------------------------------------------------------------
// Payload shapes (PROTOCOL.md 3.3 and 5.5)
// ---------------------------------------------------------------------------------

/// `phx_reply` payload: `{"status":"ok"|"error","response":{…}}`.
#[derive(Debug, Deserialize)]
pub struct Reply<'a> {
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    #[serde(borrow)]
    pub response: &'a RawValue,
}

impl Reply<'_> {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }

    /// `error` `{"reason": "unavailable"}`: the server could not reach its shared
    /// state (Redis) and changed nothing; the push may be sent again (PROTOCOL 5.5).
    pub fn is_unavailable(&self) -> bool {
        #[derive(Deserialize)]
        struct Refusal<'a> {
            #[serde(borrow)]
            reason: Cow<'a, str>,
        }
        !self.is_ok()
            && serde_json::from_str::<Refusal<'_>>(self.response.get())
                .is_ok_and(|r| r.reason == "unavailable")
    }
}

/// The chat object of `new:chat`, `new:chat:<tid>` and the `claim:student` reply.
/// Only the fields the client uses are read.
#[derive(Debug, Deserialize)]
pub struct ChatObject {
    pub id: String,
    pub student_id: serde_json::Value,
    pub teacher_id: serde_json::Value,
    #[serde(default)]
    pub teacher_entered: bool,
    #[serde(default)]
    pub student_entered: bool,
}

/// A token student's `presence:student:<sid>` join reply (PROTOCOL 6.3):
/// `{"state": "present"|"waiting"|"chatting"|"finished"}`, plus the chat when chatting.
#[derive(Debug, Deserialize)]
pub struct StudentStanding {
    pub state: String,
    #[serde(default)]
    pub chat: Option<ChatObject>,
}

/// A token teacher's `presence:teachers` join reply: its active chats.
#[derive(Debug, Deserialize)]
pub struct TeacherStanding {
    pub chats: Vec<ChatObject>,
}

/// A token user's `chats:<cid>` join reply: `S` messages relayed so far, the first
/// `H` frames after the reply are held messages for this side.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ChatStanding {
    pub seq: u64,
    pub held: u64,
}

impl ChatObject {
    /// The student's id when it is a JSON integer (this client's ids are).
    pub fn student(&self) -> Option<u64> {
        self.student_id.as_u64()
    }
}

/// `user:status` snapshot.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub teachers: TeacherCounts,
    pub students: StudentCounts,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct TeacherCounts {
    pub total: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct StudentCounts {
    pub total: u64,
    pub waiting: u64,
    pub chatting: u64,
    pub finished: u64,
}

/// A relayed chat message as the 2015 client sends it: `{"message": "..."}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage<'a> {
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

/// Parses a payload (or a reply's response) into one of the shapes above.
pub fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, serde_json::Error> {
    serde_json::from_str(raw.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_v1_like_the_2015_client() {
        let text = encode(
            Framing::V1,
            Some("1"),
            Some("2"),
            "presence:student:7",
            "student:ready",
            &json!({"userId": 7}),
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"topic":"presence:student:7","event":"student:ready","payload":{"userId":7},"ref":"2"}"#
        );
    }

    #[test]
    fn encodes_v2_arrays() {
        let text = encode(
            Framing::V2,
            Some("4"),
            Some("5"),
            "presence:student:1",
            "student:ready",
            &json!({"userId": 1}),
        )
        .unwrap();
        assert_eq!(
            text,
            r#"["4","5","presence:student:1","student:ready",{"userId":1}]"#
        );
        let hb = encode(
            Framing::V2,
            None,
            Some("9"),
            "phoenix",
            "heartbeat",
            &json!({}),
        )
        .unwrap();
        assert_eq!(hb, r#"[null,"9","phoenix","heartbeat",{}]"#);
    }

    #[test]
    fn decodes_v1_replies_and_pushes() {
        let f = decode(
            Framing::V1,
            r#"{"topic":"presence:student:7","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}"#,
        )
        .unwrap();
        assert_eq!(f.topic, "presence:student:7");
        assert_eq!(f.event, "phx_reply");
        assert_eq!(f.msg_ref.as_deref(), Some("2"));
        let reply: Reply = parse(f.payload).unwrap();
        assert!(reply.is_ok());
        assert_eq!(reply.response.get(), "{}");

        let f = decode(
            Framing::V1,
            r#"{"topic":"chats:x","event":"chat:ready","payload":{},"ref":null}"#,
        )
        .unwrap();
        assert_eq!(f.msg_ref, None);
    }

    #[test]
    fn decodes_v2_frames() {
        let f = decode(
            Framing::V2,
            r#"[null,null,"presence:teachers","user:status",{"teachers":{"total":2},"students":{"total":3,"waiting":1,"chatting":1,"finished":1}}]"#,
        )
        .unwrap();
        assert_eq!(f.join_ref, None);
        let status: Status = parse(f.payload).unwrap();
        assert_eq!(status.students.total, 3);
        let f = decode(
            Framing::V2,
            r#"["3","3","presence:student:8","phx_close",{}]"#,
        )
        .unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("3"));
        assert_eq!(f.event, "phx_close");
    }

    #[test]
    fn rejects_malformed_frames_without_panicking() {
        let bad_v1 = [
            "not json",
            "[1,2]",
            r#"{"topic":"t","event":"e","payload":{}}"#, // ref missing
            r#"{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":null}"#, // extra key
            r#"{"topic":"t","event":"e","payload":null,"ref":null}"#, // payload not object
            r#"{"topic":"t","event":"e","payload":[],"ref":null}"#,
            r#"{"topic":"t","event":"e","payload":{},"ref":6}"#, // number ref
            r#"{"topic":1,"event":"e","payload":{},"ref":null}"#,
        ];
        for text in bad_v1 {
            assert!(decode(Framing::V1, text).is_err(), "{text}");
        }
        let bad_v2 = [
            r#"{"topic":"t","event":"e","payload":{},"ref":null}"#,
            r#"[null,null,"t","e"]"#,
            r#"[null,null,"t","e",{},1]"#,
            r#"[null,null,"t","e","x"]"#,
            r#"[null,6,"t","e",{}]"#,
        ];
        for text in bad_v2 {
            assert!(decode(Framing::V2, text).is_err(), "{text}");
        }
    }

    #[test]
    fn chat_objects_and_messages() {
        let raw: Box<RawValue> = serde_json::from_str(
            r#"{"id":"a17f","status":"active","teacher_id":1,"student_id":7,"teacher_entered":false,"student_entered":false,"messages":[]}"#,
        )
        .unwrap();
        let chat: ChatObject = parse(&raw).unwrap();
        assert_eq!(chat.id, "a17f");
        assert_eq!(chat.student(), Some(7));
        let raw: Box<RawValue> =
            serde_json::from_str(r#"{"message":"Message from teacher: 3"}"#).unwrap();
        let m: ChatMessage = parse(&raw).unwrap();
        assert_eq!(m.message, "Message from teacher: 3");
        let raw: Box<RawValue> = serde_json::from_str(r#"{"message":"x","more":1}"#).unwrap();
        assert!(parse::<ChatMessage>(&raw).is_err());
    }
}
