//! The subscription registry: topic → the channels joined to it, with their
//! connection, join ref and role. It is the broadcast path and the relay path.
//!
//! Only `ChatLifetime` subscribes and unsubscribes, so a join is atomic with
//! respect to every broadcast it makes. Sessions read it to relay chat
//! messages directly to the other side's connection, with no actor in
//! between. A broadcast encodes its frame once per framing and hands the same
//! bytes to every subscriber.
//!
//! A chat's topic is opened at its claim and counts the messages relayed in it
//! (the transcript's `seq`), and, for a side that is a token user while the
//! server keeps places, holds the messages sent while that side has no channel
//! on it (PROTOCOL 6.3): bounded per chat and side, delivered in order to the
//! next channel of that side, before anything relayed after its join.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytestring::ByteString;
use dashmap::DashMap;

use crate::channels::{ChannelId, Extensions, JsonRef, Liveness};
use crate::cluster::{NodeId, ReplyTo};
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
    /// Closed by the connection when the channel is left or the connection
    /// goes, before this registry hears of it: relays pass it over.
    pub open: Liveness,
}

#[derive(Debug, Default)]
struct Topic {
    subscribers: Vec<Subscriber>,
    /// A finished chat: relays are refused with `chat finished`.
    finished: bool,
    /// A chat's topic, opened at its claim: kept while the chat is active,
    /// even with no channel joined.
    chat: Option<Box<ChatRelay>>,
    /// A chat homed on another node (`crate::cluster`): messages sent here are
    /// relayed there.
    home: Option<NodeId>,
    /// Messages sent here for the chat's home, kept until it says it relayed
    /// them: if the home dies, they go to the next one (which drops those its
    /// predecessor relayed already).
    forwarding: Mutex<Forwarding>,
}

/// A message sent here for a chat homed on another node, numbered per chat
/// and node (`fid`), so that a home relays it once however often it comes.
#[derive(Clone, Debug)]
pub struct Forwarded {
    pub fid: u64,
    pub to: Role,
    pub payload: Box<str>,
    pub reply: ReplyTo,
}

#[derive(Debug, Default)]
struct Forwarding {
    last: u64,
    unacked: VecDeque<Forwarded>,
}

/// How many messages sent here may wait for their home's word, per chat:
/// past it (the home is gone and the chat has no new one yet) a message is
/// refused `unavailable`.
const FORWARD_BOUND: usize = 1_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Topic {
    /// Nothing keeps it: no channel, and no active chat.
    fn idle(&self) -> bool {
        self.subscribers.is_empty() && (self.chat.is_none() || self.finished)
    }
}

/// Which channels of a topic a broadcast is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Audience {
    All,
    /// Teacher channels that asked for `liveStatus`.
    LiveStatus,
    /// Student channels that asked for `queuePosition`.
    QueuePosition,
    /// Chat channels that did (true) or did not (false) ask for `endReason`.
    EndReason(bool),
    /// Chat channels of this side that asked for `awayNotices`.
    AwayNotices(Role),
    /// Teacher channels that asked for `waitingList` (office hours).
    WaitingList,
    /// Channels that asked for `queueState` (office hours).
    QueueState,
}

impl Audience {
    pub fn picks(self, s: &Subscriber) -> bool {
        match self {
            Audience::All => true,
            Audience::LiveStatus => s.extensions.live_status,
            Audience::QueuePosition => s.extensions.queue_position,
            Audience::EndReason(asked) => s.extensions.end_reason == asked,
            Audience::AwayNotices(side) => s.role == Some(side) && s.extensions.away_notices,
            Audience::WaitingList => s.extensions.waiting_list,
            Audience::QueueState => s.extensions.queue_state,
        }
    }
}

/// Channels of one side of a chat on another node (the chat is homed here).
#[derive(Debug)]
struct RemoteSide {
    node: NodeId,
    role: Role,
    channels: usize,
}

/// Where a relay goes when it leaves this node (`crate::cluster`).
pub trait RelayRemote {
    /// The chat is homed on `home`: the message, the `fid`-th sent from here
    /// in this chat, goes there to be relayed. False if it cannot be sent now.
    fn to_home(&self, home: &NodeId, to: Role, fid: u64, payload: &str) -> bool;
    /// Where the sender of a message sent here is told of a refusal.
    fn reply(&self) -> Option<ReplyTo>;
    /// For a message sent on another node: that node and the message's `fid`.
    fn origin(&self) -> Option<(&NodeId, u64)>;
    /// The chat is homed here and `node` has channels of the side `to`: the
    /// message (the chat's `seq`-th) goes there.
    fn deliver(&self, node: &NodeId, to: Role, seq: u64, payload: &str);
    /// Whether a chat whose sides keep their places (PROTOCOL 6.3) is kept in
    /// Redis too, so that a node adopting it after this one died goes on
    /// where it was: its count, and what it holds.
    fn persists(&self) -> bool;
    /// Such a chat, homed here, relayed its `relayed`-th message, for the side
    /// `to`: Redis must have the count before the local deliveries `then` are
    /// made, and together with (atomically) its deliveries to the `nodes` with
    /// channels of that side (a side that read a message and comes back on
    /// another node finds it counted; none is counted that went nowhere).
    fn counted(
        &self,
        relayed: u64,
        to: Role,
        payload: &str,
        nodes: Vec<NodeId>,
        then: Vec<Delivering>,
    );
    /// Such a chat holds its `seq`-th message for `to`.
    fn held(&self, to: Role, seq: u64, payload: &str);
}

/// A relayed message on its way to a channel of this node.
pub struct Delivering {
    pub session: Arc<SessionHandle>,
    pub channel: ChannelId,
    pub frame: ByteString,
    pub relayed_at: Option<Instant>,
}

impl Delivering {
    /// Hands it to the connection; answers whether the connection overflowed.
    pub fn deliver(self) -> Delivery {
        self.session
            .deliver_relayed(self.channel, self.frame, self.relayed_at)
    }
}

/// One node alone: nothing ever leaves it.
pub struct Alone;

impl RelayRemote for Alone {
    fn to_home(&self, _: &NodeId, _: Role, _: u64, _: &str) -> bool {
        false
    }
    fn reply(&self) -> Option<ReplyTo> {
        None
    }
    fn origin(&self) -> Option<(&NodeId, u64)> {
        None
    }
    fn deliver(&self, _: &NodeId, _: Role, _: u64, _: &str) {}
    fn persists(&self) -> bool {
        false
    }
    fn counted(&self, _: u64, _: Role, _: &str, _: Vec<NodeId>, then: Vec<Delivering>) {
        for delivering in then {
            delivering.deliver();
        }
    }
    fn held(&self, _: Role, _: u64, _: &str) {}
}

/// What a chat's topic keeps besides its channels.
#[derive(Debug, Default)]
struct ChatRelay {
    /// Messages relayed (and recorded) so far, both ways: the `seq` of the
    /// last one in the transcript.
    relayed: AtomicU64,
    /// Messages held for the teacher side, if it is a token user.
    for_teacher: Option<Mutex<Held>>,
    /// Messages held for the student side, if it is a token user.
    for_student: Option<Mutex<Held>>,
    /// Channels of either side on other nodes.
    remote: Vec<RemoteSide>,
    /// The last `fid` relayed here from each other node's senders.
    applied: Mutex<std::collections::HashMap<NodeId, u64>>,
    /// A side keeps its place: with several nodes, the count and what is held
    /// are written to Redis too ([`RelayRemote::persists`]).
    durable: bool,
}

impl ChatRelay {
    fn held(&self, side: Role) -> Option<MutexGuard<'_, Held>> {
        let held = match side {
            Role::Teacher => self.for_teacher.as_ref(),
            Role::Student => self.for_student.as_ref(),
        }?;
        // A panic while holding it cannot leave the queue half-changed.
        Some(held.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Payloads held for one side, by their `seq` (oldest first).
#[derive(Debug, Default)]
struct Held {
    payloads: VecDeque<(u64, Box<str>)>,
    bytes: usize,
}

impl Held {
    /// Keeps the `seq`-th message; one that comes back from another node
    /// (`Topics::bounce`) finds its place among those held since.
    fn keep(&mut self, seq: u64, payload: Box<str>) {
        self.bytes += payload.len();
        let at = self.payloads.partition_point(|(held, _)| *held < seq);
        self.payloads.insert(at, (seq, payload));
    }
}

/// How much one side of one chat may have held.
#[derive(Clone, Copy, Debug)]
pub struct HoldBounds {
    pub messages: usize,
    pub bytes: usize,
}

/// Which sides of a new chat get their messages held while they have no
/// channel on it (token users, while the server keeps places).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldFor {
    pub teacher: bool,
    pub student: bool,
}

/// A channel joined to a topic: for a chat, how many messages were relayed
/// in it so far and how many held ones were just pushed to the channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Subscribed {
    pub relayed: u64,
    pub held: usize,
}

/// What a relay did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relayed {
    /// Handed to the other side's channels (possibly none).
    Delivered,
    /// Held for the other side, which has no channel on the chat now.
    Held,
    /// Sent to the chat's home, another node, to be relayed there.
    Forwarded,
    /// Sent on another node and relayed here already (it came again after
    /// its node lost track of the home's word): not relayed twice.
    Duplicate,
}

/// Why a relay did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayRefused {
    /// The chat is finished, abandoned or unknown.
    ChatNotActive,
    /// The message could not be recorded (the transcript writer is behind,
    /// or the store is failing).
    NotRecorded(Backpressure),
    /// The other side is away and has as much held as it may.
    RecipientAway,
    /// The chat's home is another node, and the message cannot be sent there
    /// now (Redis unreachable, the outbox full).
    Unavailable,
}

impl RelayRefused {
    /// The refusal the sender gets.
    pub fn refusal(self) -> crate::channels::Refusal {
        use crate::channels::Refusal;
        match self {
            RelayRefused::ChatNotActive => Refusal::ChatFinished,
            RelayRefused::RecipientAway => Refusal::RecipientAway,
            RelayRefused::Unavailable => Refusal::Unavailable,
            RelayRefused::NotRecorded(Backpressure::Backlog) => Refusal::TranscriptBacklog,
            RelayRefused::NotRecorded(Backpressure::Unavailable) => Refusal::TranscriptUnavailable,
        }
    }
}

/// The registry. Cheap to share: `Arc<Topics>`.
#[derive(Debug)]
pub struct Topics {
    map: DashMap<Arc<str>, Topic>,
    hold: HoldBounds,
}

/// The event a relayed message reaches `side` as.
pub fn receive_event(side: Role) -> &'static str {
    match side {
        Role::Teacher => "teacher:receive",
        Role::Student => "student:receive",
    }
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

/// Pushes to a channel joining a chat what was held for its side, in order;
/// answers the chat's message count and how many were pushed. The caller
/// holds the topic's lock, so no relay comes between.
fn push_held(
    topic: &str,
    chat: Option<&ChatRelay>,
    subscriber: &Subscriber,
    evicted: &mut Vec<SessionId>,
) -> Subscribed {
    let (Some(chat), Some(side)) = (chat, subscriber.role) else {
        return Subscribed::default();
    };
    let mut subscribed = Subscribed {
        relayed: chat.relayed.load(Ordering::Relaxed),
        held: 0,
    };
    let Some(mut held) = chat.held(side) else {
        return subscribed;
    };
    let payloads = std::mem::take(&mut *held).payloads;
    subscribed.held = payloads.len();
    let session = &subscriber.session;
    for (_, payload) in payloads {
        let frame = protocol::encode_push(session.framing(), topic, receive_event(side), &payload);
        if session.deliver(subscriber.channel, ByteString::from(frame)) == Delivery::Evicted {
            evicted.push(session.id());
        }
    }
    subscribed
}

impl Topics {
    pub fn new(hold: HoldBounds) -> Self {
        Topics {
            map: DashMap::new(),
            hold,
        }
    }

    /// A chat was claimed: its topic is kept from now until it ends, counting
    /// its messages, and holding them for the sides `hold` names.
    pub fn open_chat(&self, topic: Arc<str>, hold: HoldFor) {
        self.adopt_chat(topic, hold, 0);
    }

    /// As `open_chat`, for a chat that relayed `relayed` messages elsewhere
    /// already and holds `held` (its home died; this node adopts it).
    pub fn adopt_chat(&self, topic: Arc<str>, hold: HoldFor, relayed: u64) {
        self.adopt_chat_holding(topic, hold, relayed, Vec::new(), Default::default());
    }

    /// As `adopt_chat`, with the messages the dead home held, by side and seq.
    pub fn adopt_chat_holding(
        &self,
        topic: Arc<str>,
        hold: HoldFor,
        relayed: u64,
        held: Vec<(Role, u64, Box<str>)>,
        applied: std::collections::HashMap<NodeId, u64>,
    ) {
        let holding = |yes: bool| yes.then(|| Mutex::new(Held::default()));
        let mut entry = self.map.entry(topic).or_default();
        // An adopted chat: channels here on it relay here from now on.
        entry.home = None;
        let chat = ChatRelay {
            relayed: AtomicU64::new(relayed),
            for_teacher: holding(hold.teacher),
            for_student: holding(hold.student),
            remote: Vec::new(),
            applied: Mutex::new(applied),
            durable: hold.teacher || hold.student,
        };
        for (side, seq, payload) in held {
            if let Some(mut kept) = chat.held(side) {
                kept.keep(seq, payload);
            }
        }
        entry.chat = Some(Box::new(chat));
    }

    /// Adds a channel to a chat homed on another node: messages sent on it go
    /// to `home` to be relayed (the home pushes what it held itself).
    pub fn subscribe_away_from_home(&self, topic: Arc<str>, subscriber: Subscriber, home: NodeId) {
        let mut entry = self.map.entry(topic).or_default();
        entry.home = Some(home);
        entry.subscribers.push(subscriber);
    }

    /// Is the chat of `topic` homed here (claimed here and active, or finished
    /// with channels still on it)?
    pub fn hosts_chat(&self, topic: &str) -> bool {
        self.map
            .get(topic)
            .is_some_and(|t| t.chat.is_some() && t.home.is_none())
    }

    /// The side of a chat a channel joined as.
    pub fn role_of(&self, topic: &str, channel: ChannelId) -> Option<Role> {
        let entry = self.map.get(topic)?;
        let subscriber = entry.subscribers.iter().find(|s| s.channel == channel)?;
        subscriber.role
    }

    /// The home relayed (or refused) the messages sent here up to `fid`.
    pub fn acked(&self, topic: &str, fid: u64) {
        if let Some(entry) = self.map.get(topic) {
            let mut forwarding = lock(&entry.forwarding);
            while forwarding.unacked.front().is_some_and(|f| f.fid <= fid) {
                forwarding.unacked.pop_front();
            }
        }
    }

    /// The chat's home is `home` (`None`: this node) from now on; answers the
    /// messages sent here that no home has said it relayed, in order: to send
    /// again to a remote home (they stay kept until it says so), or to relay
    /// here (taken).
    pub fn rehome(&self, topic: &str, home: Option<NodeId>) -> Vec<Forwarded> {
        let Some(mut entry) = self.map.get_mut(topic) else {
            return Vec::new();
        };
        let here = home.is_none();
        entry.home = home;
        let mut forwarding = lock(&entry.forwarding);
        if here {
            forwarding.unacked.drain(..).collect()
        } else {
            forwarding.unacked.iter().cloned().collect()
        }
    }

    /// The chats with channels here whose home is `node`.
    pub fn homed_at(&self, node: &NodeId) -> Vec<Arc<str>> {
        self.map
            .iter()
            .filter(|t| t.home.as_ref() == Some(node))
            .map(|t| t.key().clone())
            .collect()
    }

    /// The sides of a chat with an open channel here.
    pub fn sides_here(&self, topic: &str) -> Vec<Role> {
        let Some(entry) = self.map.get(topic) else {
            return Vec::new();
        };
        [Role::Teacher, Role::Student]
            .into_iter()
            .filter(|side| entry.subscribers.iter().any(|s| s.role == Some(*side)))
            .collect()
    }

    /// Was the chat of `topic` marked finished here?
    pub fn is_finished(&self, topic: &str) -> bool {
        self.map.get(topic).is_some_and(|t| t.finished)
    }

    /// The chat's home, if it is another node.
    pub fn home(&self, topic: &str) -> Option<NodeId> {
        self.map.get(topic).and_then(|t| t.home.clone())
    }

    /// A chat homed here gets a channel of `role` on `node`: relays to that
    /// side go there from now on. Answers the chat's message count and what
    /// was held for the side (taken), or None if the chat is not active here.
    pub fn join_from(
        &self,
        topic: &str,
        node: &NodeId,
        role: Role,
    ) -> Option<(u64, Vec<Box<str>>)> {
        let mut entry = self.map.get_mut(topic)?;
        if entry.finished {
            return None;
        }
        let chat = entry.chat.as_deref_mut()?;
        match chat
            .remote
            .iter_mut()
            .find(|r| r.node == *node && r.role == role)
        {
            Some(side) => side.channels += 1,
            None => chat.remote.push(RemoteSide {
                node: node.clone(),
                role,
                channels: 1,
            }),
        }
        let held = chat
            .held(role)
            .map(|mut held| std::mem::take(&mut *held).payloads)
            .unwrap_or_default();
        let relayed = chat.relayed.load(Ordering::Relaxed);
        Some((relayed, held.into_iter().map(|(_, p)| p).collect()))
    }

    /// A channel of `role` on `node` left a chat homed here.
    pub fn leave_from(&self, topic: &str, node: &NodeId, role: Role) {
        if let Some(mut entry) = self.map.get_mut(topic) {
            if let Some(chat) = entry.chat.as_deref_mut() {
                if let Some(side) = chat
                    .remote
                    .iter_mut()
                    .find(|r| r.node == *node && r.role == role)
                {
                    side.channels = side.channels.saturating_sub(1);
                }
                chat.remote.retain(|r| r.channels > 0);
            }
        }
    }

    /// Forgets every channel `node` had on chats homed here (it is gone).
    pub fn forget_node(&self, node: &NodeId) {
        for mut entry in self.map.iter_mut() {
            if let Some(chat) = entry.chat.as_deref_mut() {
                chat.remote.retain(|r| r.node != *node);
            }
        }
    }

    /// The nodes with channels on a chat homed here.
    pub fn remote_nodes(&self, topic: &str) -> Vec<NodeId> {
        let Some(entry) = self.map.get(topic) else {
            return Vec::new();
        };
        let mut nodes: Vec<NodeId> = entry
            .chat
            .iter()
            .flat_map(|c| c.remote.iter().map(|r| r.node.clone()))
            .collect();
        nodes.dedup();
        nodes
    }

    /// A message the home relayed to this node for the side `to`: handed to
    /// that side's open channels here. False if there is none (it left
    /// meanwhile): the home should hold it.
    pub fn deliver_from_home(
        &self,
        topic: &str,
        to: Role,
        payload: &str,
        evicted: &mut Vec<SessionId>,
    ) -> bool {
        let Some(entry) = self.map.get(topic) else {
            return false;
        };
        let mut to_side = entry
            .subscribers
            .iter()
            .filter(|s| s.role == Some(to) && s.open.is_open())
            .peekable();
        if to_side.peek().is_none() {
            return false;
        }
        let frames = FrameCache::new(topic, receive_event(to), payload);
        deliver_all(to_side, frames, None, evicted);
        true
    }

    /// A message this home relayed to a node that had no channel of the side
    /// any more: held again, in its place by `seq`, if the side's messages
    /// are held (else it is lost, and false says so).
    pub fn bounce(&self, topic: &str, to: Role, seq: u64, payload: &str) -> bool {
        let Some(entry) = self.map.get(topic) else {
            return false;
        };
        if entry.finished {
            return false;
        }
        let kept = match entry.chat.as_deref().and_then(|c| c.held(to)) {
            Some(mut held) => {
                held.keep(seq, payload.into());
                true
            }
            None => false,
        };
        kept
    }

    /// Adds a channel. On a chat's topic, the messages held for its side are
    /// pushed to it first, in order (connections that overflow are added to
    /// `evicted`); no relay can come between, as relays read the topic under
    /// the lock this holds.
    pub fn subscribe(
        &self,
        topic: Arc<str>,
        subscriber: Subscriber,
        evicted: &mut Vec<SessionId>,
    ) -> Subscribed {
        let mut entry = self.map.entry(topic.clone()).or_default();
        let subscribed = push_held(&topic, entry.chat.as_deref(), &subscriber, evicted);
        entry.subscribers.push(subscriber);
        subscribed
    }

    /// Removes one channel; returns how many channels remain on the topic
    /// (the topic itself is forgotten at zero, unless it is an active chat's).
    pub fn unsubscribe(&self, topic: &str, channel: ChannelId) -> usize {
        let remaining = match self.map.get_mut(topic) {
            Some(mut entry) => {
                entry.subscribers.retain(|s| s.channel != channel);
                entry.subscribers.len()
            }
            None => return 0,
        };
        if remaining == 0 {
            self.map.remove_if(topic, |_, t| t.idle());
        }
        remaining
    }

    /// Replaces the channel of a duplicate join in place, keeping its position.
    /// What was held for its side while the old one was already closed is
    /// pushed to the new one first, as in `subscribe`.
    pub fn replace(
        &self,
        topic: &str,
        old: ChannelId,
        new: Subscriber,
        evicted: &mut Vec<SessionId>,
    ) -> Subscribed {
        let Some(mut entry) = self.map.get_mut(topic) else {
            return Subscribed::default();
        };
        let subscribed = push_held(topic, entry.chat.as_deref(), &new, evicted);
        match entry.subscribers.iter_mut().find(|s| s.channel == old) {
            Some(slot) => *slot = new,
            None => entry.subscribers.push(new),
        }
        subscribed
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
    /// if and only if it is relayed (or held), and always before the finish
    /// that `mark_finished` precedes: nothing is recorded after a chat ended.
    /// When the other side has no channel and its messages are held, the
    /// message is held instead, or refused unrecorded if the hold is full.
    ///
    /// A chat homed on another node is relayed there instead (`remote`); the
    /// home sends what it relays to the side's channels on other nodes.
    #[allow(clippy::too_many_arguments)]
    pub fn relay(
        &self,
        topic: &str,
        to: Role,
        payload: &str,
        read_at: Option<Instant>,
        record: impl FnOnce() -> Result<(), Backpressure>,
        remote: &dyn RelayRemote,
        evicted: &mut Vec<SessionId>,
    ) -> Result<Relayed, RelayRefused> {
        let Some(entry) = self.map.get(topic) else {
            return Err(RelayRefused::ChatNotActive);
        };
        if entry.finished {
            return Err(RelayRefused::ChatNotActive);
        }
        if let Some(home) = &entry.home {
            let Some(reply) = remote.reply() else {
                return Err(RelayRefused::Unavailable);
            };
            let mut forwarding = lock(&entry.forwarding);
            if forwarding.unacked.len() >= FORWARD_BOUND {
                return Err(RelayRefused::Unavailable);
            }
            let fid = forwarding.last + 1;
            if !remote.to_home(home, to, fid, payload) {
                return Err(RelayRefused::Unavailable);
            }
            forwarding.last = fid;
            forwarding.unacked.push_back(Forwarded {
                fid,
                to,
                payload: payload.into(),
                reply,
            });
            return Ok(Relayed::Forwarded);
        }
        // A message sent on another node that was relayed here already.
        let mut applied = match (entry.chat.as_deref(), remote.origin()) {
            (Some(chat), Some((origin, fid))) => {
                let applied = lock(&chat.applied);
                if applied.get(origin).is_some_and(|last| *last >= fid) {
                    return Ok(Relayed::Duplicate);
                }
                Some((applied, origin, fid))
            }
            _ => None,
        };
        let mut to_side = entry
            .subscribers
            .iter()
            .filter(|s| s.role == Some(to) && s.open.is_open())
            .peekable();
        let chat = entry.chat.as_deref();
        let mut elsewhere = chat
            .into_iter()
            .flat_map(|c| c.remote.iter())
            .filter(|r| r.role == to)
            .peekable();
        if to_side.peek().is_none() && elsewhere.peek().is_none() {
            if let Some(mut held) = chat.and_then(|c| c.held(to)) {
                let room = held.payloads.len() < self.hold.messages
                    && held.bytes.saturating_add(payload.len()) <= self.hold.bytes;
                if !room {
                    return Err(RelayRefused::RecipientAway);
                }
                record().map_err(RelayRefused::NotRecorded)?;
                if let Some((applied, origin, fid)) = applied.as_mut() {
                    applied.insert((*origin).clone(), *fid);
                }
                let seq = chat.map_or(0, |c| c.relayed.fetch_add(1, Ordering::Relaxed) + 1);
                held.keep(seq, payload.into());
                if chat.is_some_and(|c| c.durable) && remote.persists() {
                    remote.held(to, seq, payload);
                    remote.counted(seq, to, payload, Vec::new(), Vec::new());
                }
                return Ok(Relayed::Held);
            }
        }
        record().map_err(RelayRefused::NotRecorded)?;
        if let Some((applied, origin, fid)) = applied.as_mut() {
            applied.insert((*origin).clone(), *fid);
        }
        let seq = chat.map_or(0, |c| c.relayed.fetch_add(1, Ordering::Relaxed) + 1);
        let mut frames = FrameCache::new(topic, receive_event(to), payload);
        if chat.is_some_and(|c| c.durable) && remote.persists() {
            let then = to_side
                .map(|s| Delivering {
                    session: s.session.clone(),
                    channel: s.channel,
                    frame: frames.get(s.session.framing()),
                    relayed_at: read_at,
                })
                .collect();
            let nodes = elsewhere.map(|side| side.node.clone()).collect();
            remote.counted(seq, to, payload, nodes, then);
        } else {
            deliver_all(to_side, frames, read_at, evicted);
            for side in elsewhere {
                remote.deliver(&side.node, to, seq, payload);
            }
        }
        Ok(Relayed::Delivered)
    }

    /// Marks a chat topic finished: later relays get `chat finished`, and
    /// what was held is dropped (it is in the transcript). A topic with no
    /// channel left is forgotten.
    pub fn mark_finished(&self, topic: &str) {
        if let Some(mut entry) = self.map.get_mut(topic) {
            entry.finished = true;
            if let Some(chat) = entry.chat.as_mut() {
                chat.for_teacher = None;
                chat.for_student = None;
            }
        }
        self.map.remove_if(topic, |_, t| t.idle());
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
