//! The messages nodes publish to each other, as JSON: [`Event`] on the channel
//! every node hears, [`Inbox`] to one node. Chat payloads travel as the raw JSON
//! the client sent, untouched.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::NodeId;
use crate::channels::Refusal;
use crate::domain::{Announcement, EndReason, QueueState, Role, StatusSnapshot, StudentCounts};
use crate::topics::Audience;

/// What a step on one node did that every node's connections may need to see.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The `user:status` snapshot a step answered, with its version; for every
    /// teacher channel (`live_only`: only those that asked for `liveStatus`).
    Status {
        from: NodeId,
        version: u64,
        live_only: bool,
        counts: [usize; 4],
    },
    /// A push to every node's channels.
    Broadcast { from: NodeId, push: Push },
    /// Both sides of a chat entered (`chat:ready`): its home records the start.
    Ready { from: NodeId, chat: String },
    /// An active chat finished: its home records it and sends `chat:terminated`
    /// once it is on disk; every node refuses messages on it from now on.
    Finished {
        from: NodeId,
        chat: String,
        reason: EndReason,
    },
    /// A node missed its heartbeat deadline and was declared dead: chats homed
    /// there get a new home.
    NodeDead { from: NodeId, node: NodeId },
    /// The transcript API of `from` does not have `chat`: the node that does
    /// answers with the page (`TranscriptFound`) if the caller (signed in as
    /// `user`, with `role`) may read it; the others say nothing.
    TranscriptWanted {
        from: NodeId,
        ask: u64,
        chat: String,
        after: u64,
        limit: usize,
        role: crate::identity::Role,
        user: String,
    },
    /// The chats list of `from` (`GET /api/chats`, its query string as sent,
    /// for a caller signed in as `user` with `role`): every other node answers
    /// with its own page (`ChatsFound`), which `from` merges with its own.
    ChatsWanted {
        from: NodeId,
        ask: u64,
        query: String,
        role: crate::identity::Role,
        user: String,
    },
    /// The statistics of `from` (`GET /api/stats`) for the chats created at
    /// or after `since` (unix ms): every other node answers with its store's
    /// figures (`StatsFound`), which `from` merges with its own. The caller
    /// was checked on `from` (a teacher or an admin).
    StatsWanted { from: NodeId, ask: u64, since: i64 },
    /// A chat was abandoned (its teacher vanished, PROTOCOL 6.2): every node
    /// closes its channels on it; its home records the end.
    Abandoned { from: NodeId, chat: String },
    /// The waiting list changed on `from` without the counts changing (a new
    /// question, a student away or back): nodes with watchers send it again.
    WaitingMoved { from: NodeId },
    /// A teacher opened or closed the queue (office hours): every node tells
    /// its channels that asked for `queueState`.
    QueueState { from: NodeId, state: QueueState },
    /// A teacher's announcement (office hours), for every node's channels
    /// that asked for `queueState`.
    Announced {
        from: NodeId,
        announcement: Announcement,
    },
}

impl Event {
    /// The node whose step it was.
    pub fn from(&self) -> &NodeId {
        match self {
            Event::Status { from, .. }
            | Event::Broadcast { from, .. }
            | Event::Ready { from, .. }
            | Event::NodeDead { from, .. }
            | Event::TranscriptWanted { from, .. }
            | Event::ChatsWanted { from, .. }
            | Event::StatsWanted { from, .. }
            | Event::Finished { from, .. }
            | Event::Abandoned { from, .. }
            | Event::QueueState { from, .. }
            | Event::WaitingMoved { from }
            | Event::Announced { from, .. } => from,
        }
    }
}

/// A push to the channels of `topic` that `audience` picks, on another node.
#[derive(Debug, Serialize, Deserialize)]
pub struct Push {
    pub topic: String,
    pub event: String,
    pub payload: String,
    pub audience: Audience,
}

/// A status event's snapshot.
pub fn counts(snapshot: &StatusSnapshot) -> [usize; 4] {
    let s = snapshot.students;
    [snapshot.teachers, s.waiting, s.chatting, s.finished]
}

/// The snapshot of a status event's counts.
pub fn snapshot(counts: [usize; 4]) -> StatusSnapshot {
    let [teachers, waiting, chatting, finished] = counts;
    StatusSnapshot {
        teachers,
        students: StudentCounts {
            waiting,
            chatting,
            finished,
        },
    }
}

/// One chat of a `ChatsFound` page: where it sorts, and its JSON as the API
/// lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FoundChat {
    pub created_at: i64,
    pub chat: String,
    pub view: String,
}

/// Where a refusal of a message forwarded to its home goes back to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplyTo {
    pub node: NodeId,
    pub session: u64,
    pub channel: u64,
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
}

/// A home's answer to a [`Inbox::Sub`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Subbed {
    pub ask: u64,
    pub chat: String,
    pub role: Role,
    /// Messages relayed in the chat so far (`seq`).
    pub relayed: u64,
    /// What the home held for the side, oldest first.
    pub held: Vec<Box<RawValue>>,
}

/// To one node. (Externally tagged, as `Event`: a `RawValue` cannot sit in an
/// internally tagged enum.)
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inbox {
    /// To a chat's home: a message sent on another node (the `fid`-th sent
    /// there in this chat), to be relayed once.
    Relay {
        chat: String,
        to: Role,
        fid: u64,
        payload: Box<RawValue>,
        reply: ReplyTo,
    },
    /// From a chat's home: the messages sent on this node up to `fid` are
    /// relayed (or refused), so this node need not keep them.
    Acked { chat: String, fid: u64 },
    /// From a chat's home: the chat's `seq`-th message, for the side `to`.
    Deliver {
        chat: String,
        to: Role,
        seq: u64,
        payload: Box<RawValue>,
    },
    /// Back to the home: a delivered message found no channel of its side.
    Bounce {
        chat: String,
        to: Role,
        seq: u64,
        payload: Box<RawValue>,
    },
    /// To a chat's home: a channel of `role` on `from` joined the chat.
    Sub {
        chat: String,
        role: Role,
        from: NodeId,
        ask: u64,
    },
    /// The home's answer to `Sub`.
    Subbed(Subbed),
    /// To a chat's home: a channel of `role` on `from` left the chat.
    Unsub {
        chat: String,
        role: Role,
        from: NodeId,
    },
    /// A push to this node's channels (a home's `chat:terminated`).
    Broadcast { from: NodeId, push: Push },
    /// The answer to `TranscriptWanted`: the transcript page, as the API's
    /// JSON body.
    TranscriptFound { ask: u64, body: String },
    /// The answer to `ChatsWanted`: this node's page, newest first, and
    /// whether it has more.
    ChatsFound {
        ask: u64,
        chats: Vec<FoundChat>,
        more: bool,
    },
    /// The answer to `StatsWanted`: this node's figures (bounded, see
    /// `crate::stats::MAX_CHATS`).
    StatsFound {
        ask: u64,
        figures: crate::stats::Figures,
    },
    /// The home refused the `fid`-th message forwarded to it.
    Refused {
        reply: ReplyTo,
        topic: String,
        fid: u64,
        refusal: Refusal,
    },
}

/// The events a step sends, as the static names the frames use; None for a
/// name no version of the server sends (a message from a newer node).
pub fn known_event(name: &str) -> Option<&'static str> {
    [
        "user:status",
        "new:chat",
        "chat:ready",
        "chat:away",
        "chat:back",
        "chat:terminated",
        "queue:position",
    ]
    .into_iter()
    .find(|known| *known == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_keeps_the_payload_as_sent() {
        let payload =
            RawValue::from_string(r#"{"message":"hi \"there\"","n":[1, 2]}"#.into()).expect("json");
        let relay = Inbox::Relay {
            chat: "c".into(),
            to: Role::Teacher,
            fid: 1,
            payload,
            reply: ReplyTo {
                node: NodeId::fresh(),
                session: 1,
                channel: 2,
                join_ref: Some("1".into()),
                msg_ref: None,
            },
        };
        let text = serde_json::to_string(&relay).expect("encode");
        let Inbox::Relay { payload, to, .. } = serde_json::from_str(&text).expect("decode") else {
            panic!("not a relay: {text}");
        };
        assert_eq!(payload.get(), r#"{"message":"hi \"there\"","n":[1, 2]}"#);
        assert_eq!(to, Role::Teacher);
    }

    #[test]
    fn status_counts_round_trip() {
        let counts = [2, 3, 4, 5];
        assert_eq!(super::counts(&snapshot(counts)), counts);
    }
}

#[cfg(test)]
mod round_trip {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("json")
    }

    #[test]
    fn every_inbox_message_with_a_payload_reads_back() {
        let node = NodeId::fresh();
        let messages = [
            Inbox::Deliver {
                chat: "c".into(),
                to: Role::Student,
                seq: 3,
                payload: raw(r#"{"message":"x"}"#),
            },
            Inbox::Subbed(Subbed {
                ask: 1,
                chat: "c".into(),
                role: Role::Student,
                relayed: 2,
                held: vec![raw("{}"), raw(r#"{"a":1}"#)],
            }),
            Inbox::Sub {
                chat: "c".into(),
                role: Role::Teacher,
                from: node,
                ask: 9,
            },
        ];
        for message in messages {
            let text = serde_json::to_string(&message).expect("encode");
            let back: Result<Inbox, _> = serde_json::from_str(&text);
            assert!(back.is_ok(), "{text}: {back:?}");
        }
    }
}
