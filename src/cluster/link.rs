//! The node's two connections for the cluster: one that publishes what the
//! node queues in its [`Outbox`], in order, and one subscribed to the events
//! channel and the node's inbox ([`listen`]), which hands events to
//! `ChatLifetime` and does the relay work of the inbox itself (the sessions'
//! hot path, with no actor in between).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytestring::ByteString;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::wire::{Event, Inbox, ReplyTo, Subbed};
use super::{Cluster, NodeId};
use crate::actors::chat_lifetime::{FromNode, Rehome, SessionGone};
use crate::actors::Hub;
use crate::channels::{ChannelId, Refusal};
use crate::domain::{ChatId, Role};
use crate::protocol::{self, ReplyStatus};
use crate::topics::{Delivering, RelayRemote, Relayed};
use crate::transport::Delivery;
use crate::transport::SessionId;

/// What the outbox sends to Redis, in order.
pub enum Outgoing {
    /// A message to publish on `channel`; a `returnable` one (a chat message)
    /// comes back to this node if no node hears it.
    Publish {
        channel: String,
        text: String,
        returnable: bool,
    },
    /// A home's count of the messages relayed in a chat whose sides keep
    /// their places (field `n` of its `:q:<cid>` key; field `a:<node>`: the
    /// last `fid` relayed from that node), with the local deliveries of the
    /// message, made once Redis has the count: a node that adopts the chat
    /// after the home died goes on from it, and nobody read more than it says.
    Count {
        key: String,
        relayed: u64,
        applied: Option<(NodeId, u64)>,
        /// The message to the nodes with channels of its side (channel, text),
        /// published in the same transaction as the count.
        delivers: Vec<(String, String)>,
        then: Vec<Delivering>,
    },
    /// A message such a chat holds for a side (`:held:<cid>:<t|s>`, entries
    /// `<seq>|<payload>`), or (`payload` None) the side took what was held.
    Hold {
        key: String,
        seq: u64,
        payload: Option<String>,
    },
}

/// Messages waiting to be published, in the order they were queued: bounded,
/// so a Redis that does not keep up refuses work instead of growing memory.
pub struct Outbox {
    queue: mpsc::Sender<Outgoing>,
}

impl Outbox {
    pub(super) fn new(bound: usize) -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (queue, receiver) = mpsc::channel(bound);
        (Outbox { queue }, receiver)
    }

    /// Queues `message` for `channel`; false if the outbox is full or gone.
    /// A `returnable` one that no node hears is handed back ([`publish`]).
    pub(super) fn send(&self, channel: String, message: &impl Serialize, returnable: bool) -> bool {
        let Ok(text) = serde_json::to_string(message) else {
            return false;
        };
        self.queue_up(Outgoing::Publish {
            channel,
            text,
            returnable,
        })
    }

    /// Queues anything; gives it back if the outbox is full or gone.
    pub(super) fn try_queue(&self, outgoing: Outgoing) -> Result<(), Outgoing> {
        self.queue.try_send(outgoing).map_err(|error| {
            tracing::error!("the cluster outbox is full or closed: a write to redis is not made");
            error.into_inner()
        })
    }

    /// Queues anything; false if the outbox is full or gone.
    pub(super) fn queue_up(&self, outgoing: Outgoing) -> bool {
        match self.queue.try_send(outgoing) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "the cluster outbox is full or closed: a message to other nodes is not sent");
                false
            }
        }
    }
}

/// Publishes what the outbox holds, in order: everything queued at once goes in
/// one pipeline, so a busy node publishes many messages per round trip. A chat
/// message that no node heard (its node is gone: Redis counts the receivers)
/// comes back to this node ([`unheard`]), never lost silently.
pub async fn publish(client: redis::Client, mut queue: mpsc::Receiver<Outgoing>, hub: Hub) {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut batch = Vec::new();
    let mut conn = None;
    while queue.recv_many(&mut batch, 512).await > 0 {
        if conn.is_none() {
            conn = redis::aio::ConnectionManager::new_with_config(client.clone(), config.clone())
                .await
                .ok();
        }
        let Some(conn) = conn.as_mut() else {
            tracing::error!(
                lost = batch.len(),
                "redis unreachable: messages to other nodes are not sent"
            );
            batch.clear();
            continue;
        };
        let mut pipe = redis::pipe();
        for outgoing in &batch {
            match outgoing {
                Outgoing::Publish { channel, text, .. } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(text);
                }
                Outgoing::Count {
                    key,
                    relayed,
                    applied,
                    delivers,
                    ..
                } => {
                    let mut hset = redis::cmd("HSET");
                    hset.arg(key).arg("n").arg(relayed);
                    if let Some((node, fid)) = applied {
                        hset.arg(format!("a:{node}")).arg(fid);
                    }
                    // Kept a day at most: a count written after the chat was
                    // discarded does not stay for good.
                    let mut expire = redis::cmd("EXPIRE");
                    expire.arg(key).arg(86_400);
                    if delivers.is_empty() {
                        pipe.add_command(hset);
                        pipe.add_command(expire).ignore();
                    } else {
                        // The count and the deliveries to other nodes, both or
                        // neither (a node dying halfway sends neither): EXEC
                        // answers them all, the publishes last.
                        pipe.cmd("MULTI").ignore();
                        pipe.add_command(hset).ignore();
                        pipe.add_command(expire).ignore();
                        for (channel, text) in delivers {
                            pipe.cmd("PUBLISH").arg(channel).arg(text).ignore();
                        }
                        pipe.cmd("EXEC");
                    }
                }
                Outgoing::Hold {
                    key,
                    seq,
                    payload: Some(payload),
                } => {
                    pipe.cmd("RPUSH").arg(key).arg(format!("{seq}|{payload}"));
                    pipe.cmd("EXPIRE").arg(key).arg(86_400).ignore();
                }
                Outgoing::Hold { key, .. } => {
                    pipe.cmd("DEL").arg(key);
                }
            }
        }
        let heard = match pipe.query_async::<Vec<redis::Value>>(conn).await {
            Ok(heard) => heard,
            Err(error) => {
                tracing::error!(%error, "publishing to other nodes failed");
                Vec::new()
            }
        };
        let mut heard = heard.into_iter();
        for outgoing in batch.drain(..) {
            let answer = heard.next();
            match outgoing {
                Outgoing::Publish {
                    text,
                    returnable: true,
                    ..
                } => {
                    // PUBLISH answers how many subscribers heard it.
                    if !matches!(answer, Some(redis::Value::Int(heard)) if heard > 0) {
                        unheard(&hub, &text);
                    }
                }
                // Delivered even if Redis failed: the message is not lost here.
                Outgoing::Count { then, delivers, .. } => {
                    if !delivers.is_empty() {
                        // EXEC's answers: HSET, EXPIRE, then each PUBLISH.
                        let heard: Vec<i64> = match answer {
                            Some(redis::Value::Array(answers)) => answers
                                .iter()
                                .skip(2)
                                .map(|a| match a {
                                    redis::Value::Int(n) => *n,
                                    _ => 0,
                                })
                                .collect(),
                            _ => Vec::new(),
                        };
                        for (i, (_, text)) in delivers.iter().enumerate() {
                            if heard.get(i).copied().unwrap_or(0) == 0 {
                                unheard(&hub, text);
                            }
                        }
                    }
                    for delivering in then {
                        let session = delivering.session.id();
                        if delivering.deliver() == Delivery::Evicted {
                            hub.lifetime.do_send(SessionGone { session });
                        }
                    }
                }
                Outgoing::Publish { .. } | Outgoing::Hold { .. } => {}
            }
        }
    }
}

/// How long after a message to a chat's home went unheard the node looks for
/// the chat's home again (and sends what the home has not relayed).
const REHOME_PAUSE: Duration = Duration::from_millis(300);

/// Hears the events channel and this node's inbox until the server stops,
/// subscribing again after Redis comes back.
pub async fn listen(client: redis::Client, cluster: Arc<Cluster>, hub: Hub) {
    let events = cluster.events_channel();
    let inbox = cluster.inbox_channel(cluster.node());
    let mut pause = Duration::from_millis(50);
    loop {
        match subscribe(&client, &events, &inbox).await {
            Ok(pubsub) => {
                pause = Duration::from_millis(50);
                tracing::info!(node = %cluster.node(), "listening to the other nodes");
                cluster.set_hearing(true);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    if message.get_channel_name() == events {
                        on_event(&cluster, &hub, &text);
                    } else {
                        on_inbox(&cluster, &hub, &text);
                    }
                }
                cluster.set_hearing(false);
                tracing::error!("lost the subscription to the other nodes; subscribing again");
            }
            Err(error) => {
                tracing::error!(%error, "cannot subscribe to the other nodes");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// A chat message no node heard. Sent to a chat's home: kept until the chat
/// has a new home (`ChatLifetime` finds or becomes it). Delivered by a home to
/// a node that is gone: held for the side, as if it had no channel. A join's
/// question to a home that is gone: refused at once (`unavailable`, which
/// clients try again: the chat gets a new home once the node is declared dead).
fn unheard(hub: &Hub, text: &str) {
    match serde_json::from_str::<Inbox>(text) {
        Ok(Inbox::Relay { chat, .. }) => {
            // Kept until a home says it relayed it: look for the chat's home
            // again shortly (it is declared dead within seconds).
            if let Some(chat) = ChatId::parse(&chat) {
                let lifetime = hub.lifetime.clone();
                actix::spawn(async move {
                    tokio::time::sleep(REHOME_PAUSE).await;
                    lifetime.do_send(Rehome(chat));
                });
            }
        }
        Ok(Inbox::Deliver {
            chat,
            to,
            seq,
            payload,
        }) if !held_again(hub, &chat, to, seq, payload.get()) => {
            tracing::warn!(%chat, seq, "a relayed message whose recipient's node is gone is not held (its side is not held: not a token user, or the chat is over): it is in the transcript only");
        }
        Ok(Inbox::Sub { ask, .. }) => {
            if let Some(cluster) = &hub.cluster {
                cluster.unanswered(ask);
            }
        }
        _ => {}
    }
}

/// A message this home delivered that found no channel of its side: held
/// again (here and in Redis), if the side's messages are held.
fn held_again(hub: &Hub, chat: &str, to: Role, seq: u64, payload: &str) -> bool {
    if !hub.topics.bounce(&chat_topic(chat), to, seq, payload) {
        return false;
    }
    if let (Some(cluster), Some(id)) = (&hub.cluster, ChatId::parse(chat)) {
        cluster.hold(id, to, seq, Some(payload));
    }
    true
}

async fn subscribe(
    client: &redis::Client,
    events: &str,
    inbox: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(events).await?;
    pubsub.subscribe(inbox).await?;
    Ok(pubsub)
}

fn on_event(cluster: &Arc<Cluster>, hub: &Hub, text: &str) {
    match serde_json::from_str::<Event>(text) {
        Ok(event) if event.from() == cluster.node() => {}
        Ok(Event::ChatsWanted {
            from,
            ask,
            query,
            role,
            user,
        }) => {
            let (cluster, store) = (cluster.clone(), hub.transcripts.clone());
            tokio::task::spawn_blocking(move || {
                let (chats, more) = crate::api::chats_page_as(&store, &query, role, &user);
                cluster.tell(&from, &Inbox::ChatsFound { ask, chats, more });
            });
        }
        Ok(Event::StatsWanted { from, ask, since }) => {
            let (cluster, store) = (cluster.clone(), hub.transcripts.clone());
            tokio::task::spawn_blocking(move || {
                let figures = store.figures(since).unwrap_or_else(|error| {
                    tracing::error!(%error, "cannot read the statistics' figures");
                    crate::stats::Figures::default()
                });
                cluster.tell(&from, &Inbox::StatsFound { ask, figures });
            });
        }
        Ok(Event::TranscriptWanted {
            from,
            ask,
            chat,
            after,
            limit,
            role,
            user,
        }) => {
            let Some(chat) = ChatId::parse(&chat) else {
                return;
            };
            let (cluster, store) = (cluster.clone(), hub.transcripts.clone());
            let query = crate::transcripts::TranscriptQuery { after, limit };
            // A read of the store: off the listener's thread.
            tokio::task::spawn_blocking(move || {
                let Ok(Some(transcript)) = store.transcript(chat, &query) else {
                    return;
                };
                if !crate::api::may_read_as(role, &user, &transcript.chat) {
                    return;
                }
                if let Some(body) = crate::api::transcript_json(&transcript) {
                    cluster.tell(&from, &Inbox::TranscriptFound { ask, body });
                }
            });
        }
        Ok(event) => hub.lifetime.do_send(FromNode(event)),
        Err(error) => {
            let start = &text[..text.floor_char_boundary(200)];
            tracing::warn!(%error, event = start, "an event from another node that this node cannot read");
        }
    }
}

fn chat_topic(chat: &str) -> String {
    format!("chats:{chat}")
}

fn other_side(side: Role) -> Role {
    match side {
        Role::Teacher => Role::Student,
        Role::Student => Role::Teacher,
    }
}

/// A relay leaving this node: to the chat's home, or from the home to a node
/// with channels of the other side.
pub struct Forward<'a> {
    pub cluster: &'a Cluster,
    pub chat: ChatId,
    /// Where a refusal goes back to, for a message sent here.
    pub reply: Option<ReplyTo>,
    /// For a message sent on another node: that node and its `fid`.
    pub origin: Option<(NodeId, u64)>,
}

impl RelayRemote for Forward<'_> {
    fn to_home(&self, home: &NodeId, to: Role, fid: u64, payload: &str) -> bool {
        let (Some(reply), Ok(payload)) = (&self.reply, RawValue::from_string(payload.to_owned()))
        else {
            return false;
        };
        self.cluster.tell(
            home,
            &Inbox::Relay {
                chat: self.chat.to_string(),
                to,
                fid,
                payload,
                reply: reply.clone(),
            },
        )
    }

    fn reply(&self) -> Option<ReplyTo> {
        self.reply.clone()
    }

    fn origin(&self) -> Option<(&NodeId, u64)> {
        self.origin.as_ref().map(|(node, fid)| (node, *fid))
    }

    fn persists(&self) -> bool {
        true
    }

    fn counted(
        &self,
        relayed: u64,
        to: Role,
        payload: &str,
        nodes: Vec<NodeId>,
        then: Vec<Delivering>,
    ) {
        let delivers = match RawValue::from_string(payload.to_owned()) {
            Ok(payload) => {
                let deliver = Inbox::Deliver {
                    chat: self.chat.to_string(),
                    to,
                    seq: relayed,
                    payload,
                };
                match serde_json::to_string(&deliver) {
                    Ok(text) => nodes
                        .iter()
                        .map(|node| (self.cluster.inbox_channel(node), text.clone()))
                        .collect(),
                    Err(_) => Vec::new(),
                }
            }
            Err(_) => Vec::new(),
        };
        self.cluster
            .count(self.chat, relayed, self.origin.clone(), delivers, then);
    }

    fn held(&self, to: Role, seq: u64, payload: &str) {
        self.cluster.hold(self.chat, to, seq, Some(payload));
    }

    fn deliver(&self, node: &NodeId, to: Role, seq: u64, payload: &str) {
        let Ok(payload) = RawValue::from_string(payload.to_owned()) else {
            return;
        };
        self.cluster.tell(
            node,
            &Inbox::Deliver {
                chat: self.chat.to_string(),
                to,
                seq,
                payload,
            },
        );
    }
}

fn on_inbox(cluster: &Cluster, hub: &Hub, text: &str) {
    let message = match serde_json::from_str::<Inbox>(text) {
        Ok(message) => message,
        Err(error) => {
            let start = &text[..text.floor_char_boundary(200)];
            tracing::warn!(%error, message = start, "a message from another node that this node cannot read");
            return;
        }
    };
    let mut evicted = Vec::new();
    match message {
        Inbox::Relay {
            chat,
            to,
            fid,
            payload,
            reply,
        } => {
            let origin = reply.node.clone();
            let topic = chat_topic(&chat);
            let relayed = match ChatId::parse(&chat) {
                None => Err(Refusal::UnknownChat),
                Some(id) => {
                    let at_home = AtHome::of(hub, cluster);
                    at_home.relay(id, to, (&origin, fid), &payload, &mut evicted)
                }
            };
            match relayed {
                Ok(_) => cluster.tell(&origin, &Inbox::Acked { chat, fid }),
                Err(refusal) => cluster.tell(
                    &origin,
                    &Inbox::Refused {
                        reply,
                        topic,
                        fid,
                        refusal,
                    },
                ),
            };
        }
        Inbox::Acked { chat, fid } => hub.topics.acked(&chat_topic(&chat), fid),
        Inbox::TranscriptFound { ask, body } => cluster.found(ask, body),
        Inbox::ChatsFound { ask, chats, more } => cluster.listed(ask, chats, more),
        Inbox::StatsFound { ask, figures } => cluster.counted(ask, figures),
        Inbox::Deliver {
            chat,
            to,
            seq,
            payload,
        } => {
            let topic = chat_topic(&chat);
            if !hub
                .topics
                .deliver_from_home(&topic, to, payload.get(), &mut evicted)
            {
                match hub.topics.home(&topic) {
                    Some(home) => {
                        cluster.tell(
                            &home,
                            &Inbox::Bounce {
                                chat,
                                to,
                                seq,
                                payload,
                            },
                        );
                    }
                    None => {
                        tracing::warn!(%chat, "a relayed message for a chat this node no longer has is lost")
                    }
                }
            }
        }
        Inbox::Bounce {
            chat,
            to,
            seq,
            payload,
        } => {
            if !held_again(hub, &chat, to, seq, payload.get()) {
                tracing::warn!(%chat, seq, "a relayed message whose recipient had left is not held (not a token user, or the chat ended): it is in the transcript only");
            }
        }
        Inbox::Sub {
            chat,
            role,
            from,
            ask,
        } => {
            let (relayed, held) = hub
                .topics
                .join_from(&chat_topic(&chat), &from, role)
                .unwrap_or_default();
            if let (false, Some(id)) = (held.is_empty(), ChatId::parse(&chat)) {
                cluster.hold(id, role, 0, None);
            }
            let held = held
                .into_iter()
                .filter_map(|payload| RawValue::from_string(payload.into()).ok())
                .collect();
            cluster.tell(
                &from,
                &Inbox::Subbed(Subbed {
                    ask,
                    chat,
                    role,
                    relayed,
                    held,
                }),
            );
        }
        Inbox::Subbed(subbed) => {
            // Pushed before the joining channel's reply is written? No: the
            // joining connection writes its reply first (it is waiting for
            // it), then these, then what the home relays after.
            let topic = chat_topic(&subbed.chat);
            for payload in &subbed.held {
                hub.topics
                    .deliver_from_home(&topic, subbed.role, payload.get(), &mut evicted);
            }
            cluster.answered(subbed);
        }
        Inbox::Unsub { chat, role, from } => hub.topics.leave_from(&chat_topic(&chat), &from, role),
        Inbox::Broadcast { from, push } => hub
            .lifetime
            .do_send(FromNode(Event::Broadcast { from, push })),
        Inbox::Refused {
            reply,
            topic,
            fid,
            refusal,
        } => {
            hub.topics.acked(&topic, fid);
            refused(hub, &reply, &topic, refusal);
        }
    }
    for session in evicted {
        hub.lifetime.do_send(SessionGone { session });
    }
}

/// What a chat's home relays with: a message sent on another node is relayed
/// as if sent here (recorded, delivered or held), once.
pub struct AtHome<'a> {
    pub cluster: &'a Cluster,
    pub topics: &'a crate::topics::Topics,
    pub transcripts: &'a crate::transcripts::Transcripts,
    pub metrics: &'a crate::metrics::Metrics,
}

impl<'a> AtHome<'a> {
    fn of(hub: &'a Hub, cluster: &'a Cluster) -> AtHome<'a> {
        AtHome {
            cluster,
            topics: &hub.topics,
            transcripts: &hub.transcripts,
            metrics: &hub.metrics,
        }
    }

    /// Relays the `fid`-th message sent on `origin` in `chat` to the side `to`
    /// (a duplicate of one relayed already is dropped); or the refusal.
    pub fn relay(
        &self,
        chat: ChatId,
        to: Role,
        (origin, fid): (&NodeId, u64),
        payload: &RawValue,
        evicted: &mut Vec<SessionId>,
    ) -> Result<Relayed, Refusal> {
        let record = || {
            self.transcripts
                .message(chat, other_side(to), payload, SystemTime::now())
        };
        let forward = Forward {
            cluster: self.cluster,
            chat,
            reply: None,
            origin: Some((origin.clone(), fid)),
        };
        let topic = chat_topic(&chat.to_string());
        let relayed = self
            .topics
            .relay(&topic, to, payload.get(), None, record, &forward, evicted)
            .map_err(|refused| refused.refusal())?;
        if matches!(relayed, Relayed::Delivered | Relayed::Held) {
            self.metrics.relayed_messages.inc();
        }
        if relayed == Relayed::Held {
            self.metrics.held_messages.inc();
        }
        Ok(relayed)
    }
}

/// The home refused a message sent here: the sender gets the error reply.
fn refused(hub: &Hub, reply: &ReplyTo, topic: &str, refusal: Refusal) {
    hub.metrics.rejected(refusal.into());
    let Some(session) = hub
        .sessions
        .get(&SessionId::from_raw(reply.session))
        .map(|s| s.value().clone())
    else {
        return;
    };
    let frame = protocol::encode_reply(
        session.framing(),
        reply.join_ref.as_deref(),
        reply.msg_ref.as_deref(),
        topic,
        ReplyStatus::Error,
        &protocol::error_response(refusal.reason()),
    );
    session.deliver(ChannelId::from_raw(reply.channel), ByteString::from(frame));
}
