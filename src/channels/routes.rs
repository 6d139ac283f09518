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
use std::sync::Arc;

use super::table::ChannelKind;
use super::Refusal;
use crate::domain::office_hours::{optional_text, TextRefusal};
use crate::domain::{check_id_text, BadId, ChatId, Role, UserId, UserKey, MAX_ID_BYTES};
use crate::identity::{self, Identity};
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

/// PROTOCOL 1.7: on a connection whose token proved `identity`, a join acts as
/// that user. The params must name the token's own id (`sub`) and role, else
/// `unauthorized`; an `admin` token is neither teacher nor student, so it may
/// join nothing. The ids of an accepted join are marked signed (their own
/// namespace, see `UserKey`). A chat join naming someone else is routed with
/// no user, so it is `unknown chat` or `unauthorized` in PROTOCOL 5.2's order.
/// Without a token the join is as routed (open mode, PROTOCOL 5 unchanged).
pub fn bind_join(target: JoinTarget, identity: Option<&Identity>) -> Result<JoinTarget, Refusal> {
    let Some(identity) = identity else {
        return Ok(target);
    };
    let proven = |role: Role, id: &UserKey| {
        let token_role = match role {
            Role::Teacher => identity::Role::Teacher,
            Role::Student => identity::Role::Student,
        };
        identity.role() == token_role && id.as_str() == identity.user().key.as_str()
    };
    match target {
        JoinTarget::Teachers(id) if proven(Role::Teacher, &id.key) => {
            Ok(JoinTarget::Teachers(id.signed()))
        }
        JoinTarget::Student(id) if proven(Role::Student, &id.key) => {
            Ok(JoinTarget::Student(id.signed()))
        }
        JoinTarget::Teachers(_) | JoinTarget::Student(_) => Err(Refusal::Unauthorized),
        JoinTarget::Chat { chat, user } => Ok(JoinTarget::Chat {
            chat,
            user: user
                .filter(|(role, key)| proven(*role, key))
                .map(|(role, _)| (role, identity.user().clone().signed().key)),
        }),
    }
}

/// What a student join does to the channels already joined to its
/// `presence:student:<sid>` topic (PROTOCOL 1.7). The topic is one wire name
/// for two people when a token user and a tokenless client share the text of
/// an id, and it carries `new:chat`: so it is held by one namespace at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StudentTopic {
    /// Nobody of the other namespace holds it: join as usual.
    Join,
    /// A token user joins a topic tokenless clients hold: they are closed
    /// out (`phx_close`, and they vanish as students), since the token user
    /// proved the id and they did not.
    CloseOthers,
    /// A tokenless client asks for a topic a token user holds: `unauthorized`.
    Refuse,
}

/// Decides `StudentTopic` for `joiner` given the keys holding the topic now.
pub fn student_topic<'a>(
    joiner: &UserKey,
    holders: impl IntoIterator<Item = &'a UserKey>,
) -> StudentTopic {
    let other = holders
        .into_iter()
        .any(|held| held.is_signed() != joiner.is_signed());
    match (other, joiner.is_signed()) {
        (false, _) => StudentTopic::Join,
        (true, true) => StudentTopic::CloseOthers,
        (true, false) => StudentTopic::Refuse,
    }
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `student:ready`: join the waiting queue, with an optional question
    /// (office hours; trimmed, at most `QUESTION_LIMIT` characters).
    Ready { question: Option<Arc<str>> },
    /// `queue:open` / `queue:close` (office hours, teachers): whether students
    /// may get in line, with an optional message.
    SetQueue {
        open: bool,
        message: Option<Arc<str>>,
    },
    /// `queue:announce` (office hours, teachers): a message to everyone
    /// waiting and every teacher.
    Announce { message: Arc<str> },
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
            let payload = parsed(payload)?;
            check_claimed_id(&payload, "userId", &student.key)?;
            let question = text_field(&payload, "question", Refusal::QuestionTooLong)?;
            Ok(Command::Ready { question })
        }
        (ChannelKind::Teachers { .. }, "queue:open" | "queue:close") => Ok(Command::SetQueue {
            open: event == "queue:open",
            message: text_field(&parsed(payload)?, "message", Refusal::MessageTooLong)?,
        }),
        (ChannelKind::Teachers { .. }, "queue:announce") => {
            match text_field(&parsed(payload)?, "message", Refusal::MessageTooLong)? {
                Some(message) => Ok(Command::Announce { message }),
                None => Err(Refusal::MessageMissing),
            }
        }
        (ChannelKind::Teachers { teacher }, "claim:student") => {
            check_claimed_id(&parsed(payload)?, "teacherId", &teacher.key)?;
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

/// The payload of an event whose fields the route reads.
fn parsed(payload: &RawValue) -> Result<Value, Refusal> {
    serde_json::from_str(payload.get()).map_err(|_| Refusal::InvalidPayload)
}

/// An optional text field of the payload (office hours): trimmed, at most
/// `QUESTION_LIMIT` characters (`too_long` past it), blank is none.
fn text_field(
    payload: &Value,
    field: &str,
    too_long: Refusal,
) -> Result<Option<Arc<str>>, Refusal> {
    match optional_text(payload, field) {
        Ok(text) => Ok(text.map(Arc::from)),
        Err(TextRefusal::TooLong) => Err(too_long),
        Err(TextRefusal::NotText) => Err(Refusal::InvalidPayload),
    }
}

/// An optional id in the payload must name the channel's own user: the
/// channel's identity is trusted, never the payload's (PROTOCOL 8 item 10).
fn check_claimed_id(payload: &Value, field: &str, own: &UserKey) -> Result<(), Refusal> {
    match payload.get(field) {
        None => Ok(()),
        Some(claimed) => match UserId::parse(claimed) {
            // By text: the channel's key may be signed (its namespace comes
            // from the connection), the payload's never is.
            Ok(id) if id.key.as_str() == own.as_str() => Ok(()),
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
            Ok(Command::Ready { question: None })
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
            Ok(Command::Ready { question: None })
        );
        assert_eq!(
            command_for(&student, "student:ready", &raw(r#"{"userId":8}"#)),
            Err(Refusal::Unauthorized)
        );
        // A token user's channel holds a signed key; the payload names it by text.
        let signed = ChannelKind::Student {
            student: id(serde_json::json!(7)).signed(),
        };
        assert_eq!(
            command_for(&signed, "student:ready", &raw(r#"{"userId":7}"#)),
            Ok(Command::Ready { question: None })
        );
        assert_eq!(
            command_for(&signed, "student:ready", &raw(r#"{"userId":8}"#)),
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

    fn token(sub: &str, role: identity::Role) -> Identity {
        identity::Claims::new(sub, role, "Name", std::time::Duration::from_secs(60))
            .identity()
            .expect("valid claims")
    }

    fn bound(topic: &str, params: &str, who: &Identity) -> Result<JoinTarget, Refusal> {
        route_join(topic, &raw(params)).and_then(|t| bind_join(t, Some(who)))
    }

    #[test]
    fn a_token_binds_joins_to_its_own_id_and_role() {
        let carol = token("carol", identity::Role::Student);
        let ok = bound(
            "presence:student:carol",
            r#"{"userId":"carol","role":"student"}"#,
            &carol,
        );
        let Ok(JoinTarget::Student(id)) = ok else {
            panic!("carol joins her own topic: {ok:?}");
        };
        assert!(id.key.is_signed(), "a proven id is in the signed namespace");
        // Someone else's topic, her own topic as a teacher, the teachers' topic.
        for (topic, params) in [
            (
                "presence:student:dave",
                r#"{"userId":"dave","role":"student"}"#,
            ),
            (
                "presence:student:carol",
                r#"{"userId":"carol","role":"teacher"}"#,
            ),
            (
                "presence:teachers",
                r#"{"userId":"carol","role":"teacher"}"#,
            ),
            ("presence:teachers", r#"{"userId":"t1","role":"teacher"}"#),
        ] {
            assert_eq!(
                bound(topic, params, &carol),
                Err(Refusal::Unauthorized),
                "{topic} {params}"
            );
        }
        // A teacher token joins as itself only, and never a student topic.
        let t7 = token("7", identity::Role::Teacher);
        let ok = bound("presence:teachers", r#"{"userId":7,"role":"teacher"}"#, &t7);
        assert!(
            matches!(ok, Ok(JoinTarget::Teachers(ref id)) if id.key.is_signed() && &*id.json == "7")
        );
        assert_eq!(
            bound(
                "presence:student:7",
                r#"{"userId":7,"role":"student"}"#,
                &t7
            ),
            Err(Refusal::Unauthorized)
        );
        // An admin token is neither.
        let admin = token("7", identity::Role::Admin);
        for (topic, role) in [
            ("presence:teachers", "teacher"),
            ("presence:student:7", "student"),
        ] {
            let params = format!(r#"{{"userId":"7","role":"{role}"}}"#);
            assert_eq!(bound(topic, &params, &admin), Err(Refusal::Unauthorized));
        }
        // Without a token, nothing changes and the id is not signed.
        let open = route_join(
            "presence:student:7",
            &raw(r#"{"userId":7,"role":"student"}"#),
        )
        .and_then(|t| bind_join(t, None));
        assert!(matches!(open, Ok(JoinTarget::Student(ref id)) if !id.key.is_signed()));
    }

    #[test]
    fn a_token_chat_join_names_only_its_own_user() {
        let chat = ChatId::random(&mut rand::rng());
        let topic = format!("chats:{chat}");
        let carol = token("carol", identity::Role::Student);
        let own = bound(&topic, r#"{"userId":"carol","role":"student"}"#, &carol);
        let Ok(JoinTarget::Chat {
            user: Some((Role::Student, key)),
            ..
        }) = own
        else {
            panic!("her own side: {own:?}");
        };
        assert!(key.is_signed());
        for params in [
            r#"{"userId":"dave","role":"student"}"#,
            r#"{"userId":"carol","role":"teacher"}"#,
        ] {
            assert_eq!(
                bound(&topic, params, &carol),
                Ok(JoinTarget::Chat {
                    chat: Some(chat),
                    user: None
                }),
                "{params}: no user, so unknown chat or unauthorized"
            );
        }
    }

    #[test]
    fn a_student_topic_is_held_by_one_namespace() {
        let open = id(serde_json::json!("7")).key;
        let signed = id(serde_json::json!("7")).signed().key;
        assert_ne!(open, signed, "the same text, two people");
        assert_eq!(student_topic(&open, []), StudentTopic::Join);
        assert_eq!(student_topic(&open, [&open]), StudentTopic::Join);
        assert_eq!(student_topic(&signed, [&signed]), StudentTopic::Join);
        assert_eq!(student_topic(&open, [&signed]), StudentTopic::Refuse);
        assert_eq!(
            student_topic(&signed, [&open, &open]),
            StudentTopic::CloseOthers
        );
    }
}
