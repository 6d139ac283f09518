//! Routing: which topics can be joined, by whom (PROTOCOL 5.2), and which
//! events each kind of channel accepts (5.3). Pure functions over the join
//! params or event payload; the chat-dependent checks (does the chat exist,
//! is this user its teacher or student) happen in `ChatLifetime`, which owns
//! that knowledge.
//!
//! Routing is also where what a join would keep is bounded: a topic no route
//! can match (too long) is unmatched, an id past `MAX_ID_BYTES` or with a
//! control character is an `invalid id`, and refs past `MAX_REF_BYTES` are an
//! `invalid ref`. Nothing a client names is kept before it passes here.

use serde_json::value::RawValue;
use serde_json::Value;

use super::table::ChannelKind;
use super::Refusal;
use crate::domain::{check_id_text, BadId, ChatId, Role, UserId, UserKey, MAX_ID_BYTES};
use crate::protocol::is_object;

const TEACHERS_TOPIC: &str = "presence:teachers";
const STUDENT_PREFIX: &str = "presence:student:";
const CHAT_PREFIX: &str = "chats:";

/// Longest topic any route matches: `presence:student:` and the longest id.
/// A longer `presence:student:<sid>` is an `invalid id`, any other longer
/// topic unmatched.
pub const MAX_TOPIC_BYTES: usize = STUDENT_PREFIX.len() + MAX_ID_BYTES;

/// Longest `ref` or `join_ref` (as JSON text, quotes included) a join may
/// carry: the channel keeps its join ref for as long as it is joined.
/// Phoenix clients count refs up from 1.
pub const MAX_REF_BYTES: usize = 64;

/// The refs of a `phx_join` must be short enough to keep (`MAX_REF_BYTES`).
pub fn check_join_refs(join_ref: Option<&str>, msg_ref: Option<&str>) -> Result<(), Refusal> {
    let too_long = |r: Option<&str>| r.is_some_and(|r| r.len() > MAX_REF_BYTES);
    if too_long(join_ref) || too_long(msg_ref) {
        Err(Refusal::InvalidRef)
    } else {
        Ok(())
    }
}

/// The refusal for an id that is not one: out of bounds is `invalid id`,
/// anything else (wrong type, empty) `unauthorized` as before.
fn refusal_for(bad: BadId) -> Refusal {
    match bad {
        BadId::NotAnId => Refusal::Unauthorized,
        BadId::TooLong | BadId::ControlCharacter => Refusal::InvalidId,
    }
}

/// A join that routing accepted so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinTarget {
    /// `presence:teachers` by a valid teacher.
    Teachers(UserId),
    /// `presence:student:<sid>` by student `<sid>` itself.
    Student(UserId),
    /// `chats:<cid>`: `chat` is None when `<cid>` is not a chat id at all (so
    /// the chat is unknown); `user` is None when the params name no valid role
    /// and user id (so the join is unauthorized if the chat exists).
    Chat {
        chat: Option<ChatId>,
        user: Option<(Role, UserKey)>,
    },
}

/// Routes a `phx_join` of `topic` with join params `params` (PROTOCOL 5.2).
pub fn route_join(topic: &str, params: &RawValue) -> Result<JoinTarget, Refusal> {
    if topic == TEACHERS_TOPIC {
        return match parse_params(params)? {
            Some((Role::Teacher, id)) => Ok(JoinTarget::Teachers(id)),
            _ => Err(Refusal::Unauthorized),
        };
    }
    if let Some(sid) = topic.strip_prefix(STUDENT_PREFIX) {
        if sid.is_empty() {
            return Err(Refusal::UnmatchedTopic);
        }
        check_id_text(sid).map_err(refusal_for)?;
        return match parse_params(params)? {
            Some((Role::Student, id)) if id.key.as_str() == sid => Ok(JoinTarget::Student(id)),
            _ => Err(Refusal::Unauthorized),
        };
    }
    // Every other route keeps its topic only if it is this short.
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(Refusal::UnmatchedTopic);
    }
    if let Some(cid) = topic.strip_prefix(CHAT_PREFIX) {
        return Ok(JoinTarget::Chat {
            chat: ChatId::parse(cid),
            user: parse_params(params)?.map(|(role, id)| (role, id.key)),
        });
    }
    Err(Refusal::UnmatchedTopic)
}

/// Reads `{"userId": id, "role": "teacher"|"student"}`: None if anything is
/// off, `invalid id` if the id is out of bounds (whatever else is off).
fn parse_params(params: &RawValue) -> Result<Option<(Role, UserId)>, Refusal> {
    if !is_object(params) {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_str::<Value>(params.get()) else {
        return Ok(None);
    };
    let id = match value.get("userId").map(UserId::parse) {
        Some(Ok(id)) => Some(id),
        Some(Err(bad)) if refusal_for(bad) == Refusal::InvalidId => return Err(Refusal::InvalidId),
        _ => None,
    };
    let role = match value.get("role").and_then(Value::as_str) {
        Some("teacher") => Role::Teacher,
        Some("student") => Role::Student,
        _ => return Ok(None),
    };
    Ok(id.map(|id| (role, id)))
}

/// An application event a channel accepted (PROTOCOL 5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `student:ready`: join the waiting queue.
    Ready,
    /// `claim:student`: take the next waiting student.
    Claim,
    /// `teacher:joined` / `student:joined`: this side entered the chat.
    Entered(Role),
    /// `teacher:send` / `student:send`: relay the payload to the other side
    /// under the event `deliver_as`.
    Relay { to: Role, deliver_as: &'static str },
    /// `chat:terminate`: finish the chat.
    Terminate,
}

/// Maps an event on a joined channel to a command, or the refusal to reply.
pub fn command_for(
    kind: &ChannelKind,
    event: &str,
    payload: &RawValue,
) -> Result<Command, Refusal> {
    if !is_object(payload) {
        return Err(Refusal::InvalidPayload);
    }
    match (kind, event) {
        (ChannelKind::Student { student }, "student:ready") => {
            check_claimed_id(payload, "userId", &student.key)?;
            Ok(Command::Ready)
        }
        (ChannelKind::Teachers { teacher }, "claim:student") => {
            check_claimed_id(payload, "teacherId", &teacher.key)?;
            Ok(Command::Claim)
        }
        (
            ChannelKind::Chat {
                role: Role::Teacher,
                ..
            },
            "teacher:joined",
        ) => Ok(Command::Entered(Role::Teacher)),
        (
            ChannelKind::Chat {
                role: Role::Student,
                ..
            },
            "student:joined",
        ) => Ok(Command::Entered(Role::Student)),
        (
            ChannelKind::Chat {
                role: Role::Teacher,
                ..
            },
            "teacher:send",
        ) => Ok(Command::Relay {
            to: Role::Student,
            deliver_as: "student:receive",
        }),
        (
            ChannelKind::Chat {
                role: Role::Student,
                ..
            },
            "student:send",
        ) => Ok(Command::Relay {
            to: Role::Teacher,
            deliver_as: "teacher:receive",
        }),
        (ChannelKind::Chat { .. }, "chat:terminate") => Ok(Command::Terminate),
        _ => Err(Refusal::UnknownEvent),
    }
}

/// An optional id in the payload must name the channel's own user: the
/// channel's identity is trusted, never the payload's (PROTOCOL 8 item 10).
fn check_claimed_id(payload: &RawValue, field: &str, own: &UserKey) -> Result<(), Refusal> {
    let value: Value = serde_json::from_str(payload.get()).map_err(|_| Refusal::InvalidPayload)?;
    match value.get(field) {
        None => Ok(()),
        Some(claimed) => match UserId::parse(claimed) {
            Ok(id) if &id.key == own => Ok(()),
            Ok(_) => Err(Refusal::Unauthorized),
            Err(bad) => Err(refusal_for(bad)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("test JSON is valid")
    }

    fn id(json: serde_json::Value) -> UserId {
        UserId::from_json(&json).expect("valid id")
    }

    #[test]
    fn teachers_topic_needs_the_teacher_role() {
        let ok = route_join(TEACHERS_TOPIC, &raw(r#"{"userId":1,"role":"teacher"}"#));
        assert_eq!(ok, Ok(JoinTarget::Teachers(id(serde_json::json!(1)))));
        for params in [
            r#"{"userId":1,"role":"student"}"#,
            r#"{"userId":1}"#,
            r#"{"userId":1.5,"role":"teacher"}"#,
            r#"{"userId":"","role":"teacher"}"#,
            r#"[1]"#,
            r#"null"#,
        ] {
            assert_eq!(
                route_join(TEACHERS_TOPIC, &raw(params)),
                Err(Refusal::Unauthorized),
                "{params}"
            );
        }
    }

    #[test]
    fn student_topic_only_for_that_student() {
        let params = raw(r#"{"userId":7,"role":"student"}"#);
        assert!(matches!(
            route_join("presence:student:7", &params),
            Ok(JoinTarget::Student(_))
        ));
        // "7" and 7 are the same user.
        let as_string = raw(r#"{"userId":"7","role":"student"}"#);
        assert!(route_join("presence:student:7", &as_string).is_ok());
        assert_eq!(
            route_join("presence:student:8", &params),
            Err(Refusal::Unauthorized)
        );
        let teacher = raw(r#"{"userId":7,"role":"teacher"}"#);
        assert_eq!(
            route_join("presence:student:7", &teacher),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            route_join("presence:student:", &params),
            Err(Refusal::UnmatchedTopic)
        );
    }

    #[test]
    fn chat_topics_defer_to_the_chat_log() {
        let params = raw(r#"{"userId":7,"role":"student"}"#);
        assert_eq!(
            route_join("chats:not-a-uuid", &params),
            Ok(JoinTarget::Chat {
                chat: None,
                user: Some((Role::Student, id(serde_json::json!(7)).key)),
            })
        );
        let chat = ChatId::random(&mut rand::rng());
        assert_eq!(
            route_join(&format!("chats:{chat}"), &raw("{}")),
            Ok(JoinTarget::Chat {
                chat: Some(chat),
                user: None
            })
        );
    }

    #[test]
    fn ids_past_the_bound_are_invalid_everywhere() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let longest = "x".repeat(MAX_ID_BYTES);
        let params = |id: &str, role: &str| {
            raw(&serde_json::json!({"userId": id, "role": role}).to_string())
        };
        let chat = format!("chats:{}", ChatId::random(&mut rand::rng()));
        for (topic, role) in [(TEACHERS_TOPIC, "teacher"), (chat.as_str(), "student")] {
            assert_eq!(
                route_join(topic, &params(&long, role)),
                Err(Refusal::InvalidId),
                "{topic}"
            );
            assert_eq!(
                route_join(topic, &params("a\u{1b}[2J", role)),
                Err(Refusal::InvalidId),
                "{topic}"
            );
            // Out of bounds wins over a wrong role.
            assert_eq!(
                route_join(topic, &params(&long, "nobody")),
                Err(Refusal::InvalidId)
            );
        }
        assert!(route_join(TEACHERS_TOPIC, &params(&longest, "teacher")).is_ok());
        // The student topic names the id too.
        let topic = format!("{STUDENT_PREFIX}{longest}");
        assert_eq!(topic.len(), MAX_TOPIC_BYTES);
        assert!(route_join(&topic, &params(&longest, "student")).is_ok());
        assert_eq!(
            route_join(
                &format!("{STUDENT_PREFIX}{long}"),
                &params(&long, "student")
            ),
            Err(Refusal::InvalidId),
            "the rest of a student topic is an id"
        );
        assert_eq!(
            route_join("presence:student:a\tb", &params("1", "student")),
            Err(Refusal::InvalidId)
        );
        // In an event payload.
        let student = ChannelKind::Student {
            student: id(serde_json::json!(7)),
        };
        let payload = raw(&serde_json::json!({ "userId": long }).to_string());
        assert_eq!(
            command_for(&student, "student:ready", &payload),
            Err(Refusal::InvalidId)
        );
    }

    #[test]
    fn long_topics_are_unmatched() {
        let params = raw(r#"{"userId":1,"role":"teacher"}"#);
        let long_chat = format!("chats:{}", "a".repeat(10_000));
        assert_eq!(
            route_join(&long_chat, &params),
            Err(Refusal::UnmatchedTopic)
        );
        // A chat topic within the bound that is no chat id is an unknown chat
        // (ChatLifetime), as before.
        assert!(matches!(
            route_join("chats:nope", &params),
            Ok(JoinTarget::Chat { chat: None, .. })
        ));
    }

    #[test]
    fn join_refs_are_bounded() {
        let longest = format!("\"{}\"", "1".repeat(MAX_REF_BYTES - 2));
        let long = format!("\"{}\"", "1".repeat(MAX_REF_BYTES - 1));
        assert_eq!(check_join_refs(Some(&longest), Some(&longest)), Ok(()));
        assert_eq!(check_join_refs(None, None), Ok(()));
        assert_eq!(
            check_join_refs(Some(&long), Some("\"1\"")),
            Err(Refusal::InvalidRef)
        );
        assert_eq!(check_join_refs(None, Some(&long)), Err(Refusal::InvalidRef));
    }

    #[test]
    fn unknown_topics_are_unmatched() {
        let params = raw(r#"{"userId":1,"role":"teacher"}"#);
        for topic in ["phoenix", "rooms:lobby", "presence:teacher", ""] {
            assert_eq!(route_join(topic, &params), Err(Refusal::UnmatchedTopic));
        }
    }

    #[test]
    fn events_by_channel_kind_and_role() {
        let student = ChannelKind::Student {
            student: id(serde_json::json!(7)),
        };
        let teacher = ChannelKind::Teachers {
            teacher: id(serde_json::json!(1)),
        };
        let chat = ChatId::random(&mut rand::rng());
        let chat_teacher = ChannelKind::Chat {
            chat,
            role: Role::Teacher,
        };
        let chat_student = ChannelKind::Chat {
            chat,
            role: Role::Student,
        };
        let empty = raw("{}");
        assert_eq!(
            command_for(&student, "student:ready", &empty),
            Ok(Command::Ready)
        );
        assert_eq!(
            command_for(&teacher, "claim:student", &empty),
            Ok(Command::Claim)
        );
        assert_eq!(
            command_for(&teacher, "student:ready", &empty),
            Err(Refusal::UnknownEvent)
        );
        assert_eq!(
            command_for(&chat_teacher, "teacher:joined", &empty),
            Ok(Command::Entered(Role::Teacher))
        );
        assert_eq!(
            command_for(&chat_teacher, "student:joined", &empty),
            Err(Refusal::UnknownEvent)
        );
        assert_eq!(
            command_for(&chat_student, "student:send", &empty),
            Ok(Command::Relay {
                to: Role::Teacher,
                deliver_as: "teacher:receive"
            })
        );
        assert_eq!(
            command_for(&chat_student, "teacher:send", &empty),
            Err(Refusal::UnknownEvent)
        );
        assert_eq!(
            command_for(&chat_student, "chat:terminate", &empty),
            Ok(Command::Terminate)
        );
        assert_eq!(
            command_for(&chat_teacher, "teacher:send", &raw("\"hi\"")),
            Err(Refusal::InvalidPayload)
        );
    }

    #[test]
    fn payload_ids_must_match_the_channel() {
        let student = ChannelKind::Student {
            student: id(serde_json::json!(7)),
        };
        let teacher = ChannelKind::Teachers {
            teacher: id(serde_json::json!(1)),
        };
        assert_eq!(
            command_for(&student, "student:ready", &raw(r#"{"userId":"7"}"#)),
            Ok(Command::Ready)
        );
        assert_eq!(
            command_for(&student, "student:ready", &raw(r#"{"userId":8}"#)),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            command_for(&teacher, "claim:student", &raw(r#"{"teacherId":2}"#)),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            command_for(&teacher, "claim:student", &raw(r#"{"teacherId":null}"#)),
            Err(Refusal::Unauthorized)
        );
    }
}
