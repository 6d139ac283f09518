//! What the nodes of one deployment tell each other (issue 13): every node runs
//! the steps in Redis (`crate::redis_engine`) and talks to the others over Redis
//! pub/sub, on two channels:
//!
//! * `tq:{<deployment>}:ev`, heard by every node: what a step did that
//!   connections on other nodes must see (`user:status` with its version,
//!   `new:chat`, `chat:ready`, away notices, a chat finished or abandoned). Every
//!   node delivers it to its own channels on the topic, as Phoenix.PubSub does.
//! * `tq:{<deployment>}:in:<node>`, one node's inbox: the relay across nodes.
//!
//! **Home.** A chat lives on its *home*, the node whose teacher claimed it: the
//! home records its transcript, counts its messages and holds them for an away
//! side, exactly as one node does alone. A side whose channel is on another node
//! is a *remote side* of the home's topic: that node tells the home when it
//! joins (`Sub`, answered with the message count and the held messages) and
//! leaves (`Unsub`); a message it sends goes to the home (`Relay`, one publish),
//! which records it and delivers it to its own channels or to the other side's
//! node (`Deliver`, one publish). Messages between two sessions on the home never
//! touch Redis. Order per chat holds: one sender per direction, one publishing
//! connection per node that keeps its order, Redis delivers a channel's messages
//! in publish order, and a node handles its inbox in order.
//!
//! Pub/sub is at-most-once: what is published while a node's subscription is
//! down (Redis unreachable) is not seen by it; the node reports it in
//! `/healthz` meanwhile.

mod link;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::domain::{ChatId, Role};
use crate::topics::Delivering;
use tokio::sync::{mpsc, oneshot, watch};

pub use link::{listen, publish, AtHome, Forward, Outbox};
pub use wire::{
    counts as wire_counts, known_event, snapshot as wire_snapshot, Event, FoundChat, Inbox, Push,
    ReplyTo, Subbed,
};

/// One node of a deployment: a fresh id at every start, so a node that was
/// declared dead and comes back is a new node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A new random id: 16 hex digits.
    pub fn fresh() -> NodeId {
        NodeId(Arc::from(format!("{:016x}", rand::random::<u64>())))
    }

    /// An id as a script answered it; None for an empty one.
    pub fn parse(text: &str) -> Option<NodeId> {
        (!text.is_empty()).then(|| NodeId(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a chat lives, as a join finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatHome {
    /// On this node (always, alone).
    Here,
    /// On another node.
    At(NodeId),
    /// Its home was declared dead and this node adopted it: the node opens
    /// its topic before the join, counting on from the `relayed` messages
    /// the home last wrote behind, with what it held.
    Adopted { relayed: u64 },
    /// (Looking for a chat's new home) it finished: its home, dead, may not
    /// have told this node's channels.
    Finished,
}

/// The list of what a chat holds for a side, in Redis.
pub fn held_key(prefix: &str, chat: ChatId, side: Role) -> String {
    let side = match side {
        Role::Teacher => 't',
        Role::Student => 's',
    };
    format!("{prefix}:held:{chat}:{side}")
}

/// How long the transcript API waits for another node to answer for a chat
/// this node did not record (an unknown chat takes this long to be a 404).
pub const READ_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long `GET /api/stats` waits for the other nodes' figures (each
/// reads up to `crate::stats::MAX_CHATS` chats: slower than a page).
pub const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a node waits for a chat's home to answer a join (`Sub`).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// How many messages may wait to be published; past it, relays across nodes are
/// refused with `unavailable` and events are dropped with an error in the log.
pub const OUTBOX_BOUND: usize = 65_536;

/// This node's side of the cluster: who it is, and where it publishes.
pub struct Cluster {
    node: NodeId,
    prefix: String,
    outbox: Outbox,
    /// Joins waiting for a home's answer, by ask number.
    asks: DashMap<u64, oneshot::Sender<Subbed>>,
    /// Transcript reads waiting for the node that has the chat, by ask number.
    reads: DashMap<u64, oneshot::Sender<String>>,
    /// Chat lists waiting for the other nodes' pages, by ask number.
    lists: DashMap<u64, mpsc::UnboundedSender<(Vec<FoundChat>, bool)>>,
    /// Statistics waiting for the other nodes' figures, by ask number.
    stats: DashMap<u64, mpsc::UnboundedSender<crate::stats::Figures>>,
    /// For reading how many nodes are alive.
    client: redis::Client,
    conn: tokio::sync::OnceCell<redis::aio::MultiplexedConnection>,
    next_ask: AtomicU64,
    /// Whether this node hears the others now (its subscription is up).
    hearing: watch::Sender<bool>,
    /// It did once (so a loss is not the start).
    heard_once: std::sync::atomic::AtomicBool,
}

impl Cluster {
    /// The cluster of `node` on the deployment whose keys start with `prefix`;
    /// the receiving half of its outbox is for [`link::publish`].
    pub fn new(
        node: NodeId,
        prefix: &str,
        client: redis::Client,
    ) -> (Arc<Cluster>, mpsc::Receiver<link::Outgoing>) {
        let (outbox, receiver) = Outbox::new(OUTBOX_BOUND);
        let cluster = Cluster {
            node,
            prefix: prefix.to_owned(),
            outbox,
            asks: DashMap::new(),
            reads: DashMap::new(),
            lists: DashMap::new(),
            stats: DashMap::new(),
            client,
            conn: tokio::sync::OnceCell::new(),
            next_ask: AtomicU64::new(1),
            hearing: watch::Sender::new(false),
            heard_once: std::sync::atomic::AtomicBool::new(false),
        };
        (Arc::new(cluster), receiver)
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The channel every node hears.
    pub fn events_channel(&self) -> String {
        format!("{}:ev", self.prefix)
    }

    /// The inbox of `node`.
    pub fn inbox_channel(&self, node: &NodeId) -> String {
        format!("{}:in:{}", self.prefix, node)
    }

    /// Tells every other node what a step did. False if it could not be queued.
    pub fn share(&self, event: &Event) -> bool {
        self.outbox.send(self.events_channel(), event, false)
    }

    /// Writes in Redis how many messages a chat homed here relayed, with the
    /// last one's deliveries to other nodes (`delivers`, in one transaction),
    /// then makes its local deliveries (at once if it cannot be queued).
    pub fn count(
        &self,
        chat: ChatId,
        relayed: u64,
        applied: Option<(NodeId, u64)>,
        delivers: Vec<(String, String)>,
        then: Vec<Delivering>,
    ) {
        let key = format!("{}:q:{chat}", self.prefix);
        let count = link::Outgoing::Count {
            key,
            relayed,
            applied,
            delivers,
            then,
        };
        if let Err(link::Outgoing::Count { then, .. }) = self.outbox.try_queue(count) {
            for delivering in then {
                delivering.deliver();
            }
        }
    }

    /// Keeps in Redis a message a chat homed here holds for `side` (None: the
    /// side took what was held).
    pub fn hold(&self, chat: ChatId, side: Role, seq: u64, payload: Option<&str>) {
        let key = held_key(&self.prefix, chat, side);
        let payload = payload.map(str::to_owned);
        self.outbox
            .queue_up(link::Outgoing::Hold { key, seq, payload });
    }

    /// Sends to one node's inbox. False if it could not be queued.
    pub fn tell(&self, node: &NodeId, message: &Inbox) -> bool {
        let returnable = matches!(
            message,
            Inbox::Relay { .. } | Inbox::Deliver { .. } | Inbox::Sub { .. }
        );
        self.outbox
            .send(self.inbox_channel(node), message, returnable)
    }

    /// Asks a chat's home to count a channel of `role` on this node as one of
    /// the chat's; answers the chat's message count and the held messages it
    /// pushed here (None if the home did not answer in time).
    pub async fn join_at_home(&self, home: &NodeId, chat: String, role: Role) -> Option<Subbed> {
        let ask = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.asks.insert(ask, answer);
        let sent = self.tell(
            home,
            &Inbox::Sub {
                chat,
                role,
                from: self.node.clone(),
                ask,
            },
        );
        let subbed = if sent {
            tokio::time::timeout(ASK_TIMEOUT, answered)
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        self.asks.remove(&ask);
        subbed
    }

    /// Whether this node hears the other nodes: a channel joined before that
    /// would miss what they do. At start it waits for it (up to
    /// `ASK_TIMEOUT`); once heard and lost (Redis unreachable) it answers at
    /// once, so joins are refused without holding up the steps.
    pub async fn hearing(&self) -> bool {
        if *self.hearing.borrow() {
            return true;
        }
        if self.heard_once.load(Ordering::Relaxed) {
            return false;
        }
        let mut hearing = self.hearing.subscribe();
        tokio::time::timeout(ASK_TIMEOUT, hearing.wait_for(|yes| *yes))
            .await
            .is_ok_and(|heard| heard.is_ok())
    }

    /// The subscription to the other nodes is up (true) or lost (false).
    fn set_hearing(&self, yes: bool) {
        if yes {
            self.heard_once.store(true, Ordering::Relaxed);
        }
        self.hearing.send_replace(yes);
    }

    /// Asks the other nodes for a page of a chat's transcript that this node
    /// does not have, for a caller signed in as `user` with `role`: the API's
    /// JSON body from the node that recorded the chat, if the caller may read
    /// it; None after `READ_TIMEOUT` (no node has it, or not for this caller).
    pub async fn transcript_elsewhere(
        &self,
        chat: ChatId,
        query: &crate::transcripts::TranscriptQuery,
        role: crate::identity::Role,
        user: &str,
    ) -> Option<String> {
        let ask = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.reads.insert(ask, answer);
        let wanted = Event::TranscriptWanted {
            from: self.node.clone(),
            ask,
            chat: chat.to_string(),
            after: query.after,
            limit: query.limit,
            role,
            user: user.to_owned(),
        };
        let body = if self.share(&wanted) {
            tokio::time::timeout(READ_TIMEOUT, answered)
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        self.reads.remove(&ask);
        body
    }

    /// Asks every other node for its page of the chats list (`query` as the
    /// caller sent it, for a caller signed in as `user` with `role`): their
    /// pages, and whether any has more. Waits for every live node, at most
    /// `READ_TIMEOUT`.
    pub async fn chats_elsewhere(
        &self,
        query: &str,
        role: crate::identity::Role,
        user: &str,
    ) -> (Vec<FoundChat>, bool) {
        let (pages, _) = self
            .gather(&self.lists, READ_TIMEOUT, |from, ask| Event::ChatsWanted {
                from,
                ask,
                query: query.to_owned(),
                role,
                user: user.to_owned(),
            })
            .await;
        let (mut chats, mut more) = (Vec::new(), false);
        for (page, has_more) in pages {
            chats.extend(page);
            more |= has_more;
        }
        (chats, more)
    }

    /// Asks every other live node (`wanted`, given this node and the ask
    /// number) and collects their answers, which arrive through `pending`,
    /// until each has answered or `timeout` passed. Answers too whether
    /// every node did.
    async fn gather<T>(
        &self,
        pending: &DashMap<u64, mpsc::UnboundedSender<T>>,
        timeout: Duration,
        wanted: impl FnOnce(NodeId, u64) -> Event,
    ) -> (Vec<T>, bool) {
        let expected = self.live_nodes().await.saturating_sub(1);
        if expected == 0 {
            return (Vec::new(), true);
        }
        let ask = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let (answer, mut answers) = mpsc::unbounded_channel();
        pending.insert(ask, answer);
        let mut heard = Vec::new();
        if self.share(&wanted(self.node.clone(), ask)) {
            let deadline = tokio::time::Instant::now() + timeout;
            while heard.len() < expected {
                match tokio::time::timeout_at(deadline, answers.recv()).await {
                    Ok(Some(answer)) => heard.push(answer),
                    _ => break,
                }
            }
        }
        pending.remove(&ask);
        let all = heard.len() >= expected;
        (heard, all)
    }

    /// Asks every other node for its figures of the chats created at or
    /// after `since` (`GET /api/stats`): theirs merged into one set. Waits
    /// for every live node, at most `STATS_TIMEOUT`; a node that does not
    /// answer in time is left out.
    pub async fn stats_elsewhere(&self, since: i64) -> crate::stats::Figures {
        let (answers, all) = self
            .gather(&self.stats, STATS_TIMEOUT, |from, ask| Event::StatsWanted {
                from,
                ask,
                since,
            })
            .await;
        if !all {
            tracing::warn!(
                heard = answers.len(),
                "statistics: not every node answered in time"
            );
        }
        answers.into_iter().fold(
            crate::stats::Figures::default(),
            crate::stats::Figures::merge,
        )
    }

    /// Another node answered a statistics ask.
    fn counted(&self, ask: u64, figures: crate::stats::Figures) {
        if let Some(waiting) = self.stats.get(&ask) {
            let _ = waiting.send(figures);
        }
    }

    /// How many nodes of the deployment are alive (0 if Redis does not say).
    async fn live_nodes(&self) -> usize {
        let conn = self
            .conn
            .get_or_try_init(|| self.client.get_multiplexed_async_connection())
            .await;
        let Ok(conn) = conn else {
            return 0;
        };
        let mut conn = conn.clone();
        redis::cmd("ZCARD")
            .arg(format!("{}:nodes", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or(0)
    }

    /// Another node answered a chats list.
    fn listed(&self, ask: u64, chats: Vec<FoundChat>, more: bool) {
        if let Some(waiting) = self.lists.get(&ask) {
            let _ = waiting.send((chats, more));
        }
    }

    /// The node that has a chat answered a transcript read.
    fn found(&self, ask: u64, body: String) {
        if let Some((_, waiting)) = self.reads.remove(&ask) {
            let _ = waiting.send(body);
        }
    }

    /// A join's question reached no node (the home is gone): whoever asked
    /// is refused at once rather than after `ASK_TIMEOUT`.
    fn unanswered(&self, ask: u64) {
        self.asks.remove(&ask);
    }

    /// A home answered a join: wakes whoever asked.
    fn answered(&self, subbed: Subbed) {
        if let Some((_, waiting)) = self.asks.remove(&subbed.ask) {
            let _ = waiting.send(subbed);
        }
    }
}
