//! The subscription registry: topic → the channels joined to it, with their
//! connection, join ref and role. It is the broadcast path and the relay path.
//!
//! Only `ChatLifetime` subscribes and unsubscribes, so a join is atomic with
//! respect to every broadcast it makes. Sessions read it to relay chat
//! messages directly to the other side's connection, with no actor in
//! between. A broadcast encodes its frame once per framing and hands the same
//! bytes to every subscriber.

use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use dashmap::DashMap;

use crate::channels::{ChannelId, Extensions, JsonRef};
use crate::domain::Role;
use crate::protocol::{self, Framing};
use crate::transcripts::Backpressure;
use crate::transport::{Delivery, SessionHandle, SessionId};

/// One channel joined to a topic.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub session: Arc<SessionHandle>,
    pub channel: ChannelId,
    pub join_ref: Option<JsonRef>,
    /// The side of the chat, for `chats:<cid>` topics.
    pub role: Option<Role>,
    /// The opt-in extensions the channel asked for when it joined.
    pub extensions: Extensions,
}

#[derive(Debug, Default)]
struct Topic {
    subscribers: Vec<Subscriber>,
    /// A finished chat: relays are refused with `chat finished`.
    finished: bool,
}

/// Why a relay did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayRefused {
    /// The chat is finished, abandoned or unknown.
    ChatNotActive,
    /// The message could not be recorded (the transcript writer is behind,
    /// or the store is failing).
    NotRecorded(Backpressure),
}

/// The registry. Cheap to share: `Arc<Topics>`.
#[derive(Debug, Default)]
pub struct Topics {
    map: DashMap<Arc<str>, Topic>,
}

/// Encodes a server-originated frame lazily, once per framing.
struct FrameCache<'a> {
    topic: &'a str,
    event: &'a str,
    payload: &'a str,
    v1: Option<ByteString>,
    v2: Option<ByteString>,
}

impl<'a> FrameCache<'a> {
    fn new(topic: &'a str, event: &'a str, payload: &'a str) -> Self {
        FrameCache {
            topic,
            event,
            payload,
            v1: None,
            v2: None,
        }
    }

    fn get(&mut self, framing: Framing) -> ByteString {
        let slot = match framing {
            Framing::V1 => &mut self.v1,
            Framing::V2 => &mut self.v2,
        };
        slot.get_or_insert_with(|| {
            ByteString::from(protocol::encode_push(
                framing,
                self.topic,
                self.event,
                self.payload,
            ))
        })
        .clone()
    }
}

/// Queues one frame to each subscriber, encoded once per framing; the
/// connections that overflow are added to `evicted`.
fn deliver_all<'a>(
    subscribers: impl Iterator<Item = &'a Subscriber>,
    mut frames: FrameCache<'_>,
    relayed_at: Option<Instant>,
    evicted: &mut Vec<SessionId>,
) {
    for subscriber in subscribers {
        let frame = frames.get(subscriber.session.framing());
        let session = &subscriber.session;
        if session.deliver_relayed(subscriber.channel, frame, relayed_at) == Delivery::Evicted {
            evicted.push(subscriber.session.id());
        }
    }
}

impl Topics {
    pub fn new() -> Self {
        Topics::default()
    }

    pub fn subscribe(&self, topic: Arc<str>, subscriber: Subscriber) {
        self.map
            .entry(topic)
            .or_default()
            .subscribers
            .push(subscriber);
    }

    /// Removes one channel; returns how many channels remain on the topic
    /// (the topic itself is forgotten at zero).
    pub fn unsubscribe(&self, topic: &str, channel: ChannelId) -> usize {
        let remaining = match self.map.get_mut(topic) {
            Some(mut entry) => {
                entry.subscribers.retain(|s| s.channel != channel);
                entry.subscribers.len()
            }
            None => return 0,
        };
        if remaining == 0 {
            self.map.remove_if(topic, |_, t| t.subscribers.is_empty());
        }
        remaining
    }

    /// Replaces the channel of a duplicate join in place, keeping its position.
    pub fn replace(&self, topic: &str, old: ChannelId, new: Subscriber) {
        if let Some(mut entry) = self.map.get_mut(topic) {
            if let Some(slot) = entry.subscribers.iter_mut().find(|s| s.channel == old) {
                *slot = new;
                return;
            }
            entry.subscribers.push(new);
        }
    }

    /// Sends `event` with `payload` to the channels joined to `topic` that
    /// `which` picks (all of them, or those that asked for an extension).
    /// Connections that overflow are added to `evicted`.
    pub fn broadcast_where(
        &self,
        topic: &str,
        event: &str,
        payload: &str,
        which: impl Fn(&Subscriber) -> bool,
        evicted: &mut Vec<SessionId>,
    ) {
        let Some(entry) = self.map.get(topic) else {
            return;
        };
        deliver_all(
            entry.subscribers.iter().filter(|s| which(s)),
            FrameCache::new(topic, event, payload),
            None,
            evicted,
        );
    }

    /// The relay hot path: sends `payload` (raw JSON, passed through as is)
    /// as `event` to the channels of role `to` on a chat topic. `read_at` is
    /// when the message was read, for the relay latency.
    ///
    /// `record` runs first, under the topic's lock, so a message is recorded
    /// if and only if it is relayed, and always before the finish that
    /// `mark_finished` precedes: nothing is recorded after a chat ended.
    #[allow(clippy::too_many_arguments)]
    pub fn relay(
        &self,
        topic: &str,
        to: Role,
        event: &str,
        payload: &str,
        read_at: Instant,
        record: impl FnOnce() -> Result<(), Backpressure>,
        evicted: &mut Vec<SessionId>,
    ) -> Result<(), RelayRefused> {
        let Some(entry) = self.map.get(topic) else {
            return Err(RelayRefused::ChatNotActive);
        };
        if entry.finished {
            return Err(RelayRefused::ChatNotActive);
        }
        record().map_err(RelayRefused::NotRecorded)?;
        let to_side = entry.subscribers.iter().filter(|s| s.role == Some(to));
        let frames = FrameCache::new(topic, event, payload);
        deliver_all(to_side, frames, Some(read_at), evicted);
        Ok(())
    }

    /// Marks a chat topic finished: later relays get `chat finished`.
    pub fn mark_finished(&self, topic: &str) {
        if let Some(mut entry) = self.map.get_mut(topic) {
            entry.finished = true;
        }
    }

    /// Takes every channel off a topic (an abandoned chat) and forgets it.
    pub fn close(&self, topic: &str) -> Vec<Subscriber> {
        self.map
            .remove(topic)
            .map(|(_, entry)| entry.subscribers)
            .unwrap_or_default()
    }

    /// Channels joined to `topic` now.
    /// The channels joined to `topic` now.
    pub fn subscribers(&self, topic: &str) -> Vec<Subscriber> {
        self.map
            .get(topic)
            .map_or_else(Vec::new, |t| t.subscribers.clone())
    }

    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.map.get(topic).map_or(0, |t| t.subscribers.len())
    }

    /// Topics with at least one channel (for tests and metrics).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
