//! The harness's OWN tiny Phoenix codec (V1 objects, V2 arrays): encoding what a client
//! sends, decoding what the server sends while checking every frame against the
//! invariants of PROTOCOL.md 2.1-2.3, and the checks of `user:status` payloads and chat
//! objects. A codec shared with the server would hide a bug common to both.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// JSON objects, `/ws`.
    V1,
    /// JSON arrays, `/socket/websocket?vsn=2.0.0`.
    V2,
}

impl Framing {
    pub fn default_path(self) -> &'static str {
        match self {
            Framing::V1 => "/ws",
            Framing::V2 => "/socket/websocket?vsn=2.0.0",
        }
    }
}

/// One decoded server→client message.
#[derive(Clone, Debug)]
pub struct Frame {
    /// V2 only: the first array element (may be `Value::Null`). `None` in V1.
    pub join_ref: Option<Value>,
    pub r#ref: Value,
    pub topic: String,
    pub event: String,
    pub payload: Value,
    /// The text exactly as received.
    pub raw: String,
}

impl Frame {
    pub fn is(&self, topic: &str, event: &str) -> bool {
        self.topic == topic && self.event == event
    }
    pub fn is_reply_to(&self, topic: &str, r: &Value) -> bool {
        self.topic == topic && self.event == "phx_reply" && &self.r#ref == r
    }
    /// `payload.status` of a reply.
    pub fn status(&self) -> &str {
        self.payload["status"].as_str().unwrap_or("")
    }
    /// `payload.response` of a reply.
    pub fn response(&self) -> &Value {
        &self.payload["response"]
    }
    /// `payload.response.reason` of an error reply.
    pub fn reason(&self) -> &str {
        self.payload["response"]["reason"].as_str().unwrap_or("")
    }
    /// The whole frame as a JSON value, for exact comparisons.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.raw).expect("frame was valid JSON when decoded")
    }
    pub fn assert_ok_empty(&self) {
        assert_eq!(
            (self.status(), self.response()),
            ("ok", &json!({})),
            "expected an ok {{}} reply, got {}",
            self.raw
        );
    }
    pub fn assert_error(&self, reason: &str) {
        assert_eq!(
            self.payload,
            json!({"status": "error", "response": {"reason": reason}}),
            "expected an error reply with reason {reason:?}, got {}",
            self.raw
        );
    }
}

/// What the read side produced.
pub(super) enum Incoming {
    Frame(Frame),
    /// The connection ended; `Some(code)` if a close frame arrived.
    Closed(Option<u16>),
}

/// The canonical key of a user id (PROTOCOL 5.1): decimal text of an integer, or the string.
pub fn key(id: &Value) -> String {
    match id {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not a valid user id: {other}"),
    }
}

pub fn encode(
    framing: Framing,
    join_ref: &Value,
    r: &Value,
    topic: &str,
    event: &str,
    payload: &Value,
) -> String {
    match framing {
        Framing::V1 => {
            json!({"topic": topic, "event": event, "payload": payload, "ref": r}).to_string()
        }
        Framing::V2 => json!([join_ref, r, topic, event, payload]).to_string(),
    }
}

/// Decodes and checks one server→client text frame. `current_join_ref` is the join ref
/// this client holds for the frame's topic (V2 push/broadcast check, PROTOCOL 2.3.3).
pub(super) fn decode(
    framing: Framing,
    raw: &str,
    current_join_ref: Option<&Value>,
    who: &str,
) -> Frame {
    let v: Value = serde_json::from_str(raw).unwrap_or_else(|e| {
        panic!("[{who}] server sent a text frame that is not JSON ({e}): {raw}")
    });
    let frame = match framing {
        Framing::V1 => {
            let obj = v
                .as_object()
                .unwrap_or_else(|| panic!("[{who}] V1 frame is not an object: {raw}"));
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                vec!["event", "payload", "ref", "topic"],
                "[{who}] V1 outbound keys must be exactly topic, event, payload, ref (PROTOCOL 2.1): {raw}"
            );
            Frame {
                join_ref: None,
                r#ref: obj["ref"].clone(),
                topic: obj["topic"]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] topic is not a string: {raw}"))
                    .to_owned(),
                event: obj["event"]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] event is not a string: {raw}"))
                    .to_owned(),
                payload: obj["payload"].clone(),
                raw: raw.to_owned(),
            }
        }
        Framing::V2 => {
            let arr = v
                .as_array()
                .unwrap_or_else(|| panic!("[{who}] V2 frame is not an array: {raw}"));
            assert_eq!(arr.len(), 5, "[{who}] V2 frame must have 5 elements: {raw}");
            assert!(
                arr[0].is_null() || arr[0].is_string(),
                "[{who}] V2 join_ref must be a string or null: {raw}"
            );
            Frame {
                join_ref: Some(arr[0].clone()),
                r#ref: arr[1].clone(),
                topic: arr[2]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] topic is not a string: {raw}"))
                    .to_owned(),
                event: arr[3]
                    .as_str()
                    .unwrap_or_else(|| panic!("[{who}] event is not a string: {raw}"))
                    .to_owned(),
                payload: arr[4].clone(),
                raw: raw.to_owned(),
            }
        }
    };
    assert!(
        frame.payload.is_object(),
        "[{who}] outbound payload must be an object (PROTOCOL 2.3.2): {raw}"
    );
    assert!(
        frame.r#ref.is_null() || frame.r#ref.is_string() || frame.r#ref.is_number(),
        "[{who}] ref must be a string, number or null: {raw}"
    );
    match frame.event.as_str() {
        "phx_reply" => {
            let status = frame.payload["status"].as_str();
            assert!(
                status == Some("ok") || status == Some("error"),
                "[{who}] reply status must be ok or error (PROTOCOL 3.3): {raw}"
            );
            assert!(
                frame.payload["response"].is_object(),
                "[{who}] reply response must be an object (PROTOCOL 3.3): {raw}"
            );
            assert_eq!(
                frame.payload.as_object().map(|o| o.len()),
                Some(2),
                "[{who}] reply payload must be exactly {{status, response}}: {raw}"
            );
        }
        "phx_close" | "phx_error" => {
            // ref carries the channel's join ref; in V2 join_ref == ref.
            if let Some(jr) = &frame.join_ref {
                assert_eq!(
                    jr, &frame.r#ref,
                    "[{who}] V2 {} must be [JR,JR,...]: {raw}",
                    frame.event
                );
            }
        }
        _ => {
            assert!(
                frame.r#ref.is_null(),
                "[{who}] pushes and broadcasts carry ref null (PROTOCOL 2.1/2.3.3): {raw}"
            );
            if let Some(jr) = &frame.join_ref {
                assert!(
                    jr.is_null() || Some(jr) == current_join_ref,
                    "[{who}] V2 push join_ref must be null or the channel's current join ref \
                     ({current_join_ref:?}) (PROTOCOL 2.3.3): {raw}"
                );
            }
        }
    }
    if frame.event == "user:status" {
        check_status(&frame.payload, raw, who);
    }
    frame
}

/// PROTOCOL 5.5: status snapshot shape and `total == waiting + chatting + finished`.
fn check_status(p: &Value, raw: &str, who: &str) {
    let n = |v: &Value| {
        v.as_u64().unwrap_or_else(|| {
            panic!("[{who}] user:status count is not a non-negative integer: {raw}")
        })
    };
    n(&p["teachers"]["total"]);
    let s = &p["students"];
    let (total, w, c, f) = (
        n(&s["total"]),
        n(&s["waiting"]),
        n(&s["chatting"]),
        n(&s["finished"]),
    );
    assert_eq!(
        total,
        w + c + f,
        "[{who}] user:status total != waiting+chatting+finished (PROTOCOL 5.5): {raw}"
    );
}

/// A user:status payload as a tuple (teachers, total, waiting, chatting, finished).
pub fn status_tuple(p: &Value) -> (u64, u64, u64, u64, u64) {
    let s = &p["students"];
    (
        p["teachers"]["total"].as_u64().unwrap(),
        s["total"].as_u64().unwrap(),
        s["waiting"].as_u64().unwrap(),
        s["chatting"].as_u64().unwrap(),
        s["finished"].as_u64().unwrap(),
    )
}

pub fn status_payload(
    teachers: u64,
    total: u64,
    waiting: u64,
    chatting: u64,
    finished: u64,
) -> Value {
    json!({"teachers": {"total": teachers},
           "students": {"total": total, "waiting": waiting, "chatting": chatting, "finished": finished}})
}

/// PROTOCOL 5.5: the chat object is an object with exactly its seven keys.
pub fn assert_chat_keys(chat: &Value) {
    let obj = chat
        .as_object()
        .unwrap_or_else(|| panic!("chat object is not an object: {chat}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "id",
            "messages",
            "status",
            "student_entered",
            "student_id",
            "teacher_entered",
            "teacher_id"
        ],
        "chat object keys (PROTOCOL 5.5): {chat}"
    );
}

/// PROTOCOL 5.5: the chat object has exactly seven keys, a UUID v4 id, echoes the ids as
/// sent in the join params, is active, nobody entered, no messages.
pub fn assert_chat_object(chat: &Value, teacher_id: &Value, student_id: &Value) {
    assert_chat_keys(chat);
    let id = chat["id"]
        .as_str()
        .unwrap_or_else(|| panic!("chat id is not a string: {chat}"));
    assert!(is_uuid_v4(id), "chat id must be a UUID v4 string: {chat}");
    assert_eq!(chat["status"], json!("active"), "chat status: {chat}");
    assert_eq!(
        &chat["teacher_id"], teacher_id,
        "chat teacher_id echoes the join value: {chat}"
    );
    assert_eq!(
        &chat["student_id"], student_id,
        "chat student_id echoes the join value: {chat}"
    );
    assert_eq!(
        chat["teacher_entered"],
        json!(false),
        "teacher_entered: {chat}"
    );
    assert_eq!(
        chat["student_entered"],
        json!(false),
        "student_entered: {chat}"
    );
    assert_eq!(chat["messages"], json!([]), "messages: {chat}");
}

pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        };
        if !ok {
            return false;
        }
    }
    b[14] == b'4' && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// The harness's own checks must not be vacuous: each bad frame below must be rejected
/// by `decode`, and the good ones accepted.
mod selftest {
    use super::*;

    #[test]
    fn decoder_accepts_contract_frames() {
        decode(
            Framing::V1,
            r#"{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"12"}"#,
            None,
            "t",
        );
        decode(
            Framing::V2,
            r#"[null,6,"phoenix","phx_reply",{"status":"ok","response":{}}]"#,
            None,
            "t",
        );
        decode(
            Framing::V2,
            r#"["1","1","presence:student:8","phx_close",{}]"#,
            None,
            "t",
        );
        decode(
            Framing::V2,
            r#"["3",null,"presence:teachers","new:chat:1",{}]"#,
            Some(&json!("3")),
            "t",
        );
        decode(
            Framing::V1,
            r#"{"topic":"presence:teachers","event":"user:status","payload":{"teachers":{"total":1},"students":{"total":3,"waiting":1,"chatting":1,"finished":1}},"ref":null}"#,
            None,
            "t",
        );
        assert!(is_uuid_v4("a17ffb00-ec45-4129-b076-775057324b7d"));
        assert!(!is_uuid_v4("a17ffb00-ec45-1129-b076-775057324b7d"));
    }

    #[test]
    #[should_panic(expected = "exactly topic, event, payload, ref")]
    fn decoder_rejects_v1_join_ref_key() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":null}"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "exactly topic, event, payload, ref")]
    fn decoder_rejects_v1_missing_ref() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"e","payload":{}}"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "payload must be an object")]
    fn decoder_rejects_null_payload() {
        decode(Framing::V2, r#"[null,null,"t","e",null]"#, None, "t");
    }

    #[test]
    #[should_panic(expected = "carry ref null")]
    fn decoder_rejects_push_with_ref() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"new:chat","payload":{},"ref":"3"}"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "current join ref")]
    fn decoder_rejects_foreign_join_ref_on_push() {
        decode(
            Framing::V2,
            r#"["999",null,"t","new:chat",{}]"#,
            Some(&json!("3")),
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "total != waiting+chatting+finished")]
    fn decoder_rejects_inconsistent_status() {
        decode(
            Framing::V2,
            r#"[null,null,"presence:teachers","user:status",{"teachers":{"total":1},"students":{"total":3,"waiting":1,"chatting":1,"finished":0}}]"#,
            None,
            "t",
        );
    }

    #[test]
    #[should_panic(expected = "must have 5 elements")]
    fn decoder_rejects_short_v2() {
        decode(Framing::V2, r#"[null,null,"t","e"]"#, None, "t");
    }

    #[test]
    #[should_panic(expected = "reply response must be an object")]
    fn decoder_rejects_reply_without_object_response() {
        decode(
            Framing::V1,
            r#"{"topic":"t","event":"phx_reply","payload":{"status":"ok","response":null},"ref":"1"}"#,
            None,
            "t",
        );
    }
}
