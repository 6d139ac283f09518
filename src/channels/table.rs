//! The channels one connection has joined: topic, join ref and what the
//! channel stands for (a teacher's presence, a student's presence, one side of
//! a chat). At most one channel per topic; bounded by `max_channels`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::domain::{ChatId, Role, UserId};

/// A ref or join ref as raw JSON text (`"5"` with its quotes, or `5`), so it
/// is echoed with the JSON type the client used (PROTOCOL 2.3).
pub type JsonRef = Arc<str>;

/// Identifies one joined channel across the whole server. A re-join of the
/// same topic gets a new id, so frames meant for the old channel are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelId(u64);

impl ChannelId {
    /// A fresh id, unique for the life of the process.
    pub fn next() -> ChannelId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ChannelId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number, for naming the channel to another node.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The channel another node named (`raw`): it may no longer exist.
    pub fn from_raw(raw: u64) -> ChannelId {
        ChannelId(raw)
    }
}

/// Whether a channel still takes frames, shared by its connection and the
/// topic registry. The connection marks it closed the moment the channel is
/// left or the connection goes, before the registry hears of it, so a chat
/// message relayed meanwhile is held for the side (PROTOCOL 6.3) instead of
/// being handed to a channel that will only drop it.
#[derive(Clone, Debug)]
pub struct Liveness(Arc<AtomicBool>);

impl Liveness {
    pub fn new() -> Liveness {
        Liveness(Arc::new(AtomicBool::new(true)))
    }

    pub fn close(&self) {
        self.0.store(false, Ordering::Release);
    }

    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness::new()
    }
}

/// What a joined channel stands for in the tutoring domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// `presence:teachers`: this connection makes the teacher present.
    Teachers { teacher: UserId },
    /// `presence:student:<sid>`: this connection makes the student present.
    Student { student: UserId },
    /// `chats:<cid>`: one side of a chat.
    Chat { chat: ChatId, role: Role },
}

/// One joined channel.
#[derive(Clone, Debug)]
pub struct Channel {
    pub id: ChannelId,
    pub topic: Arc<str>,
    /// The join ref recorded at join time: V2's join_ref, or for V1 the
    /// `join_ref` key if sent, else the `ref` of the `phx_join` (PROTOCOL 2.1).
    pub join_ref: Option<JsonRef>,
    pub kind: ChannelKind,
    /// Closed when the channel is left or its connection goes.
    pub open: Liveness,
}

/// The channel table of one connection (PROTOCOL 3: topic → channel).
#[derive(Debug)]
pub struct ChannelTable {
    channels: Vec<Channel>,
    max: usize,
}

impl ChannelTable {
    pub fn new(max: usize) -> Self {
        ChannelTable {
            channels: Vec::new(),
            max,
        }
    }

    /// The channel joined to `topic`, if any. Linear: a connection holds a
    /// handful of channels (client A: at most 6), capped at `max`.
    pub fn by_topic(&self, topic: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| &*c.topic == topic)
    }

    pub fn by_id(&self, id: ChannelId) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    pub fn contains(&self, id: ChannelId) -> bool {
        self.channels.iter().any(|c| c.id == id)
    }

    /// True when one more join would exceed the cap.
    pub fn is_full(&self) -> bool {
        self.channels.len() >= self.max
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Adds a channel, replacing any channel on the same topic.
    pub fn insert(&mut self, channel: Channel) {
        self.channels.retain(|c| c.topic != channel.topic);
        self.channels.push(channel);
    }

    pub fn remove(&mut self, id: ChannelId) -> Option<Channel> {
        let index = self.channels.iter().position(|c| c.id == id)?;
        Some(self.channels.swap_remove(index))
    }

    /// Every channel, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_channel(topic: &str) -> Channel {
        Channel {
            id: ChannelId::next(),
            topic: Arc::from(topic),
            join_ref: Some(Arc::from("\"1\"")),
            kind: ChannelKind::Chat {
                chat: ChatId::random(&mut rand::rng()),
                role: Role::Teacher,
            },
            open: Liveness::new(),
        }
    }

    #[test]
    fn one_channel_per_topic() {
        let mut table = ChannelTable::new(10);
        let first = chat_channel("chats:a");
        let second = chat_channel("chats:a");
        table.insert(first.clone());
        table.insert(second.clone());
        assert_eq!(table.len(), 1);
        assert_eq!(table.by_topic("chats:a").map(|c| c.id), Some(second.id));
        assert!(!table.contains(first.id));
    }

    #[test]
    fn full_at_the_cap() {
        let mut table = ChannelTable::new(2);
        table.insert(chat_channel("chats:a"));
        assert!(!table.is_full());
        table.insert(chat_channel("chats:b"));
        assert!(table.is_full());
        let id = table.by_topic("chats:a").map(|c| c.id);
        assert!(id.and_then(|id| table.remove(id)).is_some());
        assert!(!table.is_full());
    }

    #[test]
    fn channel_ids_are_unique() {
        assert_ne!(ChannelId::next(), ChannelId::next());
    }
}
