//! Phoenix channel semantics, with no I/O: the per-connection channel table,
//! the dispatch rules D1–D9 (PROTOCOL 3.1), topic routing for joins (5.2) and
//! the mapping of application events to commands (5.3), and the opt-in
//! extensions a join can ask for.
//!
//! Everything here is a pure function of its inputs, so every rule is unit
//! tested without sockets or actors. The session (`transport`) turns the
//! decisions made here into frames and actor messages.

mod dispatch;
mod extensions;
mod routes;
mod table;

pub use dispatch::{dispatch, Action};
pub use extensions::Extensions;
pub use routes::{
    bind_join, check_join_refs, command_for, route_join, student_topic, Command, JoinTarget,
    StudentTopic, MAX_REF_BYTES, MAX_TOPIC_BYTES,
};
pub use table::{Channel, ChannelId, ChannelKind, ChannelTable, JsonRef, Liveness};

/// Why a join or an event was refused: the `reason` of an `error` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    UnmatchedTopic,
    Unauthorized,
    UnknownChat,
    ChatFinished,
    InvalidPayload,
    UnknownEvent,
    TooManyChannels,
    /// A chat message the transcript writer cannot take now.
    TranscriptBacklog,
    /// A user id (in the params, a payload or the topic) longer than
    /// `MAX_ID_BYTES` or with a control character.
    InvalidId,
    /// A join whose `ref` or `join_ref` is longer than `MAX_REF_BYTES`: the
    /// join ref is kept as long as the channel is.
    InvalidRef,
    /// A chat message the transcript store cannot record: it is failing
    /// (disk full, I/O error).
    TranscriptUnavailable,
    /// A chat message for a side that is away (PROTOCOL 6.3) when as many
    /// of its messages as the server holds are held already.
    RecipientAway,
    /// The shared state (Redis) cannot be reached now; nothing changed.
    Unavailable,
    /// A `student:ready` question over `QUESTION_LIMIT` characters.
    QuestionTooLong,
    /// A staff message (`queue:close`, `queue:announce`) over the limit.
    MessageTooLong,
    /// A `queue:announce` without a message.
    MessageMissing,
    /// A `student:ready` while the queue is closed (the reply also carries
    /// staff's message).
    QueueClosed,
    /// A teacher's announcements and queue changes reach everyone waiting:
    /// more than `STAFF_BURST` of them within `STAFF_WINDOW` are refused.
    TooFrequent,
}

impl Refusal {
    /// The exact reason text the contract gives for this refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::UnmatchedTopic => "unmatched topic",
            Refusal::Unauthorized => "unauthorized",
            Refusal::UnknownChat => "unknown chat",
            Refusal::ChatFinished => "chat finished",
            Refusal::InvalidPayload => "invalid payload",
            Refusal::UnknownEvent => "unknown event",
            Refusal::TooManyChannels => "too many channels joined",
            Refusal::TranscriptBacklog => "transcript backlog",
            Refusal::InvalidId => "invalid id",
            Refusal::InvalidRef => "invalid ref",
            Refusal::TranscriptUnavailable => "transcript unavailable",
            Refusal::RecipientAway => "recipient away",
            Refusal::Unavailable => "unavailable",
            Refusal::QuestionTooLong => "question too long",
            Refusal::MessageTooLong => "message too long",
            Refusal::MessageMissing => "message missing",
            Refusal::QueueClosed => "queue closed",
            Refusal::TooFrequent => "too frequent",
        }
    }

    /// The `error` reply's payload: `{"reason": …}`, and the limit where a
    /// text was too long.
    pub fn response(self) -> String {
        match self {
            Refusal::QuestionTooLong | Refusal::MessageTooLong => serde_json::json!({
                "reason": self.reason(),
                "limit": crate::domain::office_hours::QUESTION_LIMIT,
            })
            .to_string(),
            _ => crate::protocol::error_response(self.reason()),
        }
    }
}
