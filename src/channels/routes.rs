//! Routing: which topics can be joined, by whom (PROTOCOL 5.2), and which
//! events each kind of channel accepts (5.3). Pure functions over the join
//! params or event payload; the chat-dependent checks (does the chat exist,
//! is this user its teacher or student) happen in `ChatLifetime`, which owns
//! that knowledge.

use serde_json::value::RawValue;
use serde_json::Value;

use super::table::ChannelKind;
use super::Refusal;
use crate::domain::{ChatId, Role, UserId, UserKey};
use crate::protocol::is_object;

const TEACHERS_TOPIC: &str = "presence:teachers";
const STUDENT_PREFIX: &str = "presence:student:";
const CHAT_PREFIX: &str = "chats:";

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
        return match parse_params(params) {
            Some((Role::Teacher, id)) => Ok(JoinTarget::Teachers(id)),
            _ => Err(Refusal::Unauthorized),
        };
    }
    if let Some(sid) = topic.strip_prefix(STUDENT_PREFIX) {
        if sid.is_empty() {
            return Err(Refusal::UnmatchedTopic);
        }
        return match parse_params(params) {
            Some((Role::Student, id)) if id.key.as_str() == sid => Ok(JoinTarget::Student(id)),
            _ => Err(Refusal::Unauthorized),
        };
    }
    if let Some(cid) = topic.strip_prefix(CHAT_PREFIX) {
        return Ok(JoinTarget::Chat {
            chat: ChatId::parse(cid),
            user: parse_params(params).map(|(role, id)| (role, id.key)),
        });
    }
    Err(Refusal::UnmatchedTopic)
}

/// Reads `{"userId": id, "role": "teacher"|"student"}`; None if anything is off.
fn parse_params(params: &RawValue) -> Option<(Role, UserId)> {
    if !is_object(params) {
        return None;
    }
    let value: Value = serde_json::from_str(params.get()).ok()?;
    let role = match value.get("role")?.as_str()? {
        "teacher" => Role::Teacher,
        "student" => Role::Student,
        _ => return None,
    };
    let id = UserId::from_json(value.get("userId")?)?;
    Some((role, id))
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
        Some(claimed) => match UserId::from_json(claimed) {
            Some(id) if &id.key == own => Ok(()),
            _ => Err(Refusal::Unauthorized),
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
