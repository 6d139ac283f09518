//! `ChatLifetime`: the one writer of the rosters and the chat log. Every
//! operation that changes who is present, who waits, who chats or which
//! chats exist runs here, one at a time, as one atomic step:
//!
//! * join (presence or chat channel) and its D3 replacement,
//! * ready, claim (= assign + dequeue + create), enter, finish,
//! * a channel left, a connection gone: student vanishes, teacher vanishes;
//!   or, for a token user whose connection went, away until it is back or
//!   its window ends (PROTOCOL 6.3).
//!
//! Each step runs its rule, one function of `domain::steps`, over the parts
//! owned by `TeacherRoster`, `StudentRoster` and `ChatLog` (one round trip
//! per part it touches) and, because this actor handles nothing else until
//! the step ends (`AtomicResponse`), no other step sees a half-done change;
//! the three actors take messages from this one only. The rule answers what
//! happened, the `user:status` snapshot after it and who must hear of it;
//! the step here does the rest: transcripts, topics, metrics, and its
//! frames, queued in the order PROTOCOL 5.4 and 7.3 give, so every teacher
//! sees consistent snapshots in the true order.
//!
//! It never touches the relay path: chat messages go session to session.
//!
//! It records each chat's life in the transcripts (created, started,
//! finished). A finished chat's `chat:terminated`, and every frame after it,
//! leave only once the transcript writer has committed the finish: the step
//! raises a barrier in its output `gate` and goes on with the next step; the
//! frames follow when the commit is reported (`TranscriptCommitted`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytestring::ByteString;

use super::gate::Gate;
use crate::channels::{
    student_topic, ChannelId, ChannelKind, Command, Extensions, JoinTarget, JsonRef, Liveness,
    Refusal, StudentTopic,
};
use crate::cluster::{known_event, AtHome, ChatHome, Cluster, Event, Inbox, NodeId, Push};
use crate::domain::office_hours::{self, WAITING_LIST_LIMIT};
use crate::domain::{
    Abandoned, Announcement, AwaySpell, ChatId, EndReason, EnterOutcome, JoinCheck, QueueState,
    ReadyOutcome, Role, StatusNews, StatusSnapshot, Stepped, StudentKey, StudentState, TeacherKey,
    Ticket, UserId, UserKey, Vanished,
};
use crate::engine::{unix_ms_now, Engine, StepError};
use crate::metrics::Metrics;
use crate::protocol::{self, ReplyStatus};
use crate::redis_engine::{Reaped, WindowOver};
use crate::topics::{Audience, Forwarded, HoldFor, Subscribed, Subscriber, Topics};
use crate::transcripts::{self, ChatOpening, Transcripts};
use crate::transport::{Delivery, SessionHandle, SessionId, Shutdown};
use serde_json::value::RawValue;

const TEACHERS_TOPIC: &str = "presence:teachers";

/// How often a node on Redis says it is alive and looks for dead nodes; a
/// node is declared dead 5 s after its last tick (`lua/prelude.lua`).
const TICK: Duration = Duration::from_secs(1);

/// How long queue changes are gathered before one round of `queue:position`
/// notices: however many claims happen meanwhile, students hear once.
const POSITION_ROUND: std::time::Duration = std::time::Duration::from_millis(50);

/// Join a channel (D2, or D3 when `replaces` names the channel it replaces).
/// Answers the channel's kind and its join reply, or the refusal to reply with.
#[derive(Message)]
#[rtype(result = "Result<Joined, Refusal>")]
pub struct Join {
    pub session: Arc<SessionHandle>,
    pub channel: ChannelId,
    pub topic: Arc<str>,
    pub join_ref: Option<JsonRef>,
    pub target: JoinTarget,
    pub extensions: Extensions,
    pub replaces: Option<ChannelId>,
    /// The channel's liveness, shared with its connection.
    pub open: Liveness,
}

/// A channel joined: its kind, and the response of its `ok` reply when it is
/// not `{}` (a token user's, PROTOCOL 6.3).
#[derive(Debug)]
pub struct Joined {
    pub kind: ChannelKind,
    pub reply: Option<String>,
}

/// An application event on a joined channel. Its frames and its reply are
/// queued to the connections by this actor, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Request {
    pub session: Arc<SessionHandle>,
    pub channel: ChannelId,
    pub topic: Arc<str>,
    pub kind: ChannelKind,
    pub command: Command,
    /// The sender's name, when it signed in (for office-hours tickets and
    /// announcements).
    pub name: Option<Arc<str>>,
    pub join_ref: Option<JsonRef>,
    pub msg_ref: Option<JsonRef>,
}

/// A channel went away (`phx_leave`, or a refused D3 re-join): run its
/// leave effects (PROTOCOL 6).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChannelLeft {
    pub session: SessionId,
    pub channel: ChannelId,
}

/// A connection closed, timed out or was evicted: every channel it still had
/// goes away, with its leave effects run once (PROTOCOL 3.6).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionGone {
    pub session: SessionId,
}

/// What a step on another node did (`crate::cluster`), for this node's
/// channels.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromNode(pub Event);

/// A chat's home is gone (a message to it came back unheard, or its node was
/// declared dead): this node finds or becomes its new home, then relays again
/// what was stranded meanwhile.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rehome(pub ChatId);

/// The transcript writer committed a finish: the frames held behind the
/// oldest barrier may go.
#[derive(Message)]
#[rtype(result = "()")]
struct TranscriptCommitted;

/// Reports one commit to `ChatLifetime` exactly once: when the writer calls
/// back, or, should the callback ever be dropped uncalled (a writer gone),
/// when it is dropped, so held frames are never stuck.
struct CommitReport(Option<Addr<ChatLifetime>>);

impl CommitReport {
    fn send(mut self) {
        if let Some(addr) = self.0.take() {
            addr.do_send(TranscriptCommitted);
        }
    }
}

impl Drop for CommitReport {
    fn drop(&mut self) {
        if let Some(addr) = self.0.take() {
            addr.do_send(TranscriptCommitted);
        }
    }
}

/// The window of an away user ended (PROTOCOL 6.3): unless it came back
/// since, it vanishes now.
#[derive(Message)]
#[rtype(result = "()")]
struct WindowEnded {
    user: MemberKind,
    spell: AwaySpell,
}

/// Time for a round of `queue:position` notices.
#[derive(Message)]
#[rtype(result = "()")]
struct PositionRound;

/// Time for a round of `queue:waiting` pushes (office hours).
#[derive(Message)]
#[rtype(result = "()")]
struct WaitingRound;

/// How long queue changes are gathered before one `queue:waiting` push: a busy
/// queue costs each watching teacher at most four frames a second.
const WAITING_ROUND: Duration = Duration::from_millis(250);

/// The actor. Its state lives in `Core`, shared with the step being run.
pub struct ChatLifetime {
    core: Rc<Core>,
}

impl ChatLifetime {
    /// The actor over `parts`; token users whose connection goes are away
    /// for `grace` (zero: they vanish at once, as tokenless users do).
    pub fn new(
        engine: Engine,
        topics: Arc<Topics>,
        metrics: Arc<Metrics>,
        transcripts: Transcripts,
        grace: Duration,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        ChatLifetime {
            core: Rc::new(Core {
                tutoring: engine,
                topics,
                metrics,
                transcripts,
                grace,
                cluster,
                me: RefCell::new(None),
                state: RefCell::new(State::default()),
            }),
        }
    }

    /// Connections overflowed during the last step are handled as gone next.
    fn flush_evicted(&mut self, ctx: &mut Context<Self>) {
        let evicted = std::mem::take(&mut self.core.state.borrow_mut().evicted);
        for session in evicted {
            ctx.notify(SessionGone { session });
        }
    }

    /// The windows of the users who went away during the last step start.
    fn start_windows(&mut self, ctx: &mut Context<Self>) {
        let windows = std::mem::take(&mut self.core.state.borrow_mut().windows);
        for window in windows {
            ctx.notify_later(window, self.core.grace);
        }
    }

    /// After a step that moved the queue or the teacher count, one round of
    /// position notices follows shortly, if anyone watches and none is due yet.
    fn schedule_position_round(&mut self, ctx: &mut Context<Self>) {
        let mut state = self.core.state.borrow_mut();
        if !state.positions_moved || state.round_scheduled {
            return;
        }
        if state.position_watchers == 0 {
            state.positions_moved = false;
            return;
        }
        state.round_scheduled = true;
        ctx.notify_later(PositionRound, POSITION_ROUND);
    }

    /// After a step that moved the queue, one `queue:waiting` round follows
    /// within [`WAITING_ROUND`], if a teacher watches and none is due yet.
    fn schedule_waiting_round(&mut self, ctx: &mut Context<Self>) {
        let mut state = self.core.state.borrow_mut();
        if !state.waiting_moved || state.waiting_round_scheduled {
            return;
        }
        if state.waiting_watchers == 0 {
            state.waiting_moved = false;
            return;
        }
        state.waiting_round_scheduled = true;
        ctx.notify_later(WaitingRound, WAITING_ROUND);
    }
}

impl Actor for ChatLifetime {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        *self.core.me.borrow_mut() = Some(ctx.address());
        if self.core.cluster.is_some() {
            ctx.run_interval(TICK, |_, ctx| ctx.notify(Tick));
        }
    }
}

impl ChatLifetime {
    /// Runs one step to completion before the actor handles anything else,
    /// then queues the connections it found overflowing as gone.
    fn atomically<T: 'static>(
        &mut self,
        step: impl std::future::Future<Output = T> + 'static,
    ) -> AtomicResponse<Self, T> {
        AtomicResponse::new(Box::pin(step.into_actor(self).map(|outcome, act, ctx| {
            if act.core.tutoring.take_reset() {
                act.core.reset();
            }
            act.flush_evicted(ctx);
            act.start_windows(ctx);
            act.schedule_position_round(ctx);
            act.schedule_waiting_round(ctx);
            outcome
        })))
    }
}

impl Handler<Join> for ChatLifetime {
    type Result = AtomicResponse<Self, Result<Joined, Refusal>>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().join(msg);
        self.atomically(step)
    }
}

impl Handler<Request> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: Request, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().request(msg);
        self.atomically(step)
    }
}

impl Handler<ChannelLeft> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: ChannelLeft, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().channel_left(msg);
        self.atomically(step)
    }
}

impl Handler<TranscriptCommitted> for ChatLifetime {
    type Result = ();
    fn handle(&mut self, _: TranscriptCommitted, ctx: &mut Context<Self>) {
        let released = self.core.state.borrow_mut().gate.open();
        for out in released {
            self.core.send(out);
        }
        self.flush_evicted(ctx);
    }
}

impl Handler<PositionRound> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: PositionRound, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().position_round();
        self.atomically(step)
    }
}

impl Handler<WaitingRound> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: WaitingRound, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().waiting_round();
        self.atomically(step)
    }
}

impl Handler<WindowEnded> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: WindowEnded, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().window_ended(msg.user, msg.spell);
        self.atomically(step)
    }
}

/// Every second on Redis: see `Core::tick`.
#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

impl Handler<Tick> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: Tick, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().tick();
        self.atomically(step)
    }
}

impl Handler<Rehome> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: Rehome, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().rehome(msg.0);
        self.atomically(step)
    }
}

impl Handler<FromNode> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: FromNode, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().from_node(msg.0);
        self.atomically(step)
    }
}

impl Handler<SessionGone> for ChatLifetime {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: SessionGone, _: &mut Context<Self>) -> Self::Result {
        let step = self.core.clone().session_gone(msg.session);
        self.atomically(step)
    }
}

/// What `ChatLifetime` knows and the rosters do not: which connection holds
/// which channel, and the last snapshot a step answered.
#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, Members>,
    status: StatusSnapshot,
    evicted: Vec<SessionId>,
    /// Channels that asked for `queue:position`.
    position_watchers: usize,
    /// The queue or the teacher count changed since the last position round.
    positions_moved: bool,
    round_scheduled: bool,
    /// Teacher channels that asked for `queue:waiting` (office hours).
    waiting_watchers: usize,
    /// The queue changed since the last waiting-list round.
    waiting_moved: bool,
    waiting_round_scheduled: bool,
    /// The last `queue:waiting` payload sent: an unchanged list is not sent
    /// again.
    last_waiting: Option<String>,
    /// Each teacher's recent announcements and queue changes (bounded).
    staff_broadcasts: office_hours::StaffBroadcasts,
    /// When each waiting student (last) entered the queue, for the queue
    /// wait histogram.
    ready_at: HashMap<StudentKey, Instant>,
    /// Frames waiting for a transcript commit (see `gate`).
    gate: Gate<Out>,
    /// Token users away now, with their spell and the end of their window.
    away: HashMap<MemberKind, Away>,
    /// Windows to start after the step (`WindowEnded` after the grace).
    windows: Vec<WindowEnded>,
    /// The version of the last `user:status` sent to the teachers here (on
    /// Redis, where several nodes step): older ones are dropped.
    version: u64,
}

/// One away user's absence.
#[derive(Clone, Copy, Debug)]
struct Away {
    spell: AwaySpell,
    /// When its window ends, for `chat:away`.
    until: SystemTime,
}

/// Why a channel goes away: a deliberate leave, or its connection went (which
/// makes a token user away rather than gone, PROTOCOL 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    Left,
    ConnectionGone,
}

/// Frames a step sends, in the order it sends them. They pass through the
/// gate, so none overtakes a `chat:terminated` still waiting for its commit.
enum Out {
    /// One frame to one channel (a push or a reply).
    To {
        session: Arc<SessionHandle>,
        channel: ChannelId,
        frame: String,
    },
    /// A push to the channels of `topic` that `audience` picks.
    Broadcast {
        topic: String,
        event: &'static str,
        payload: String,
        audience: Audience,
    },
    /// `phx_close` to the channels taken off an abandoned chat.
    Close {
        topic: String,
        subscribers: Vec<Subscriber>,
    },
    /// A message to another node (a home's `chat:terminated`).
    Tell { node: NodeId, message: Inbox },
}

struct Members {
    handle: Arc<SessionHandle>,
    channels: Vec<Membership>,
}

/// One channel of one connection, as far as the rosters are concerned.
#[derive(Clone, Debug)]
struct Membership {
    channel: ChannelId,
    topic: Arc<str>,
    kind: MemberKind,
    extensions: Extensions,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MemberKind {
    Teacher(TeacherKey),
    Student(StudentKey),
    Chat(ChatId),
}

struct Core {
    /// The steps, over the three part actors or in Redis.
    tutoring: Engine,
    topics: Arc<Topics>,
    metrics: Arc<Metrics>,
    transcripts: Transcripts,
    /// How long a token user whose connection went stays away (PROTOCOL 6.3).
    grace: Duration,
    /// The other nodes, when there are (on Redis).
    cluster: Option<Arc<Cluster>>,
    /// This actor's own address, for the transcript writer's commit reports.
    me: RefCell<Option<Addr<ChatLifetime>>>,
    state: RefCell<State>,
}

/// A join admitted: the member, the channel's kind, its side of a chat, and
/// the chat's home when it is another node.
type Admitted = (MemberKind, ChannelKind, Option<Role>, ChatHome);

fn chat_topic(chat: ChatId) -> String {
    format!("chats:{chat}")
}

fn other_side(side: Role) -> Role {
    match side {
        Role::Teacher => Role::Student,
        Role::Student => Role::Teacher,
    }
}

/// The payload of `chat:away`.
fn away_payload(side: Role, until: SystemTime) -> String {
    format!(
        r#"{{"role":"{}","until":{}}}"#,
        side.as_str(),
        unix_ms(until)
    )
}

/// `until` as the unix milliseconds of `chat:away`.
fn unix_ms(at: SystemTime) -> u128 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl Core {
    /// Keeps the snapshot a step answered; its news is for `announce`, after
    /// the step's own frames.
    fn record<T>(&self, stepped: Stepped<T>) -> (T, StatusNews) {
        let mut state = self.state.borrow_mut();
        if let Some(version) = self.tutoring.version() {
            if version <= state.version {
                // Another node's later step was heard already: this snapshot
                // is older than what the teachers here have seen.
                return (stepped.outcome, StatusNews::None);
            }
            // Only a snapshot the teachers are sent orders the others: a step
            // with no news (a second tab joining) must not make a snapshot
            // another node sends meanwhile look stale.
            if stepped.news != StatusNews::None {
                state.version = version;
            }
        }
        if state.status.teachers != stepped.status.teachers {
            state.positions_moved = true;
            state.waiting_moved = true;
        }
        state.status = stepped.status;
        self.metrics
            .teachers_present
            .set(stepped.status.teachers as i64);
        (stepped.outcome, stepped.news)
    }

    /// The shared state was reset (Redis lost it): nothing this node believes
    /// about its users holds any more. Every connection with a channel is
    /// closed (1001, as at shutdown), so its client joins again into the new
    /// state; the away windows this node ran are forgotten.
    fn reset(&self) {
        let sessions: Vec<Arc<SessionHandle>> = {
            let mut state = self.state.borrow_mut();
            state.away.clear();
            state.ready_at.clear();
            state.sessions.values().map(|m| m.handle.clone()).collect()
        };
        tracing::warn!(
            connections = sessions.len(),
            "the shared state in redis was reset: closing every connection so its users join again"
        );
        self.metrics.users_away.set(0);
        for session in sessions {
            session.addr().do_send(Shutdown);
        }
    }

    /// The `user:status` a step called for, here and on the other nodes.
    fn announce(&self, news: StatusNews) {
        let live_only = match news {
            StatusNews::None => return,
            StatusNews::Teachers => true,
            StatusNews::Students => false,
        };
        if live_only {
            self.broadcast_live_status();
        } else {
            self.broadcast_status();
        }
        let (version, counts) = {
            let state = self.state.borrow();
            (state.version, crate::cluster::wire_counts(&state.status))
        };
        self.share(|from| Event::Status {
            from,
            version,
            live_only,
            counts,
        });
    }

    /// Tells the other nodes, if there are any, what this step did.
    fn share(&self, event: impl FnOnce(NodeId) -> Event) {
        if let Some(cluster) = &self.cluster {
            cluster.share(&event(cluster.node().clone()));
        }
    }

    /// A broadcast here and on the other nodes.
    fn broadcast_everywhere(
        &self,
        topic: String,
        event: &'static str,
        payload: String,
        audience: Audience,
    ) {
        self.share(|from| Event::Broadcast {
            from,
            push: Push {
                topic: topic.clone(),
                event: event.to_owned(),
                payload: payload.clone(),
                audience,
            },
        });
        self.emit(Out::Broadcast {
            topic,
            event,
            payload,
            audience,
        });
    }

    /// Is this node the chat's home (it records it and counts its messages)?
    /// Alone, every chat is homed here.
    fn is_home(&self, chat: ChatId) -> bool {
        self.cluster.is_none() || self.topics.hosts_chat(&chat_topic(chat))
    }

    // ----- what other nodes did -------------------------------------------

    async fn from_node(self: Rc<Self>, event: Event) {
        match event {
            Event::Status {
                version,
                live_only,
                counts,
                ..
            } => {
                {
                    let mut state = self.state.borrow_mut();
                    if version <= state.version {
                        return;
                    }
                    state.version = version;
                    state.status = crate::cluster::wire_snapshot(counts);
                    state.positions_moved = true;
                    state.waiting_moved = true;
                    // The live counts of `/api/stats` read the gauges.
                    self.metrics
                        .teachers_present
                        .set(state.status.teachers as i64);
                }
                if live_only {
                    self.broadcast_live_status();
                } else {
                    self.broadcast_status();
                }
            }
            Event::Broadcast { push, .. } => {
                let Some(event) = known_event(&push.event) else {
                    return;
                };
                self.emit(Out::Broadcast {
                    topic: push.topic,
                    event,
                    payload: push.payload,
                    audience: push.audience,
                });
            }
            Event::Ready { chat, .. } => {
                let Some(chat) = ChatId::parse(&chat) else {
                    return;
                };
                if self.is_home(chat) {
                    self.transcripts.chat_started(chat, SystemTime::now());
                }
                self.broadcast(&chat_topic(chat), "chat:ready", "{}");
            }
            Event::Finished { chat, reason, .. } => {
                let Some(chat) = ChatId::parse(&chat) else {
                    return;
                };
                self.chat_finished(chat, reason).await;
            }
            Event::QueueState { state, .. } => self.push_queue_state(&state),
            Event::WaitingMoved { .. } => self.state.borrow_mut().waiting_moved = true,
            Event::Announced { announcement, .. } => self.push_announcement(&announcement),
            Event::Abandoned { chat, .. } => {
                let Some(chat) = ChatId::parse(&chat) else {
                    return;
                };
                self.chat_abandoned(chat);
            }
            Event::NodeDead { node, .. } => self.node_dead(&node),
            // Answered by the cluster's listener, from the transcript store.
            Event::TranscriptWanted { .. }
            | Event::ChatsWanted { .. }
            | Event::StatsWanted { .. } => {}
        }
    }

    /// A node was declared dead: it has no channel on chats homed here any
    /// more, and chats homed there get a new home.
    fn node_dead(&self, node: &NodeId) {
        self.topics.forget_node(node);
        let Some(me) = self.me.borrow().clone() else {
            return;
        };
        for topic in self.topics.homed_at(node) {
            if let Some(chat) = topic.strip_prefix("chats:").and_then(ChatId::parse) {
                me.do_send(Rehome(chat));
            }
        }
    }

    /// See [`Rehome`].
    async fn rehome(self: Rc<Self>, chat: ChatId) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let topic = chat_topic(chat);
        let home = match self.tutoring.home_of(chat).await {
            Ok(home) => home,
            Err(_) => {
                // Redis trouble: what was sent here waits; try again soon.
                if let Some(me) = self.me.borrow().clone() {
                    actix::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        me.do_send(Rehome(chat));
                    });
                }
                return;
            }
        };
        let new_home = match &home {
            None | Some(ChatHome::Finished) => {
                // Not active any more: what its senders here sent is refused.
                let finished = self.topics.is_finished(&topic);
                for unsent in self.topics.rehome(&topic, None) {
                    self.refuse_forwarded(&topic, &unsent, Refusal::ChatFinished);
                }
                // It finished, and its home died before it could tell the
                // channels here (it does so once its transcript has the end).
                if finished || home == Some(ChatHome::Finished) {
                    self.topics.mark_finished(&topic);
                    self.emit(Out::Broadcast {
                        topic: topic.clone(),
                        event: "chat:terminated",
                        payload: "{}".to_owned(),
                        audience: Audience::All,
                    });
                }
                return;
            }
            Some(ChatHome::Adopted { relayed }) => {
                self.adopt(chat, *relayed).await;
                None
            }
            Some(ChatHome::Here) => None,
            Some(ChatHome::At(home)) => Some(home.clone()),
        };
        let moved = self.topics.home(&topic) != new_home;
        let unacked = self.topics.rehome(&topic, new_home.clone());
        let Some(home) = new_home else {
            // Homed here now: relayed here, each once (those the dead home
            // relayed already are dropped).
            let at_home = AtHome {
                cluster: &cluster,
                topics: &self.topics,
                transcripts: &self.transcripts,
                metrics: &self.metrics,
            };
            let mut evicted = Vec::new();
            for unsent in unacked {
                let Ok(payload) = RawValue::from_string(unsent.payload.to_string()) else {
                    continue;
                };
                let origin = (cluster.node(), unsent.fid);
                if let Err(refusal) = at_home.relay(chat, unsent.to, origin, &payload, &mut evicted)
                {
                    self.refuse_forwarded(&topic, &unsent, refusal);
                }
            }
            self.state.borrow_mut().evicted.extend(evicted);
            return;
        };
        if moved {
            tracing::info!(%chat, %home, "a chat's home moved");
            for role in self.topics.sides_here(&topic) {
                cluster.join_at_home(&home, chat.to_string(), role).await;
            }
        }
        // Sent again: the home relays each once, and says so.
        for unsent in unacked {
            let Ok(payload) = RawValue::from_string(unsent.payload.to_string()) else {
                continue;
            };
            let relay = Inbox::Relay {
                chat: chat.to_string(),
                to: unsent.to,
                fid: unsent.fid,
                payload,
                reply: unsent.reply,
            };
            cluster.tell(&home, &relay);
        }
    }

    /// A message sent here that its chat's home will not relay: its sender is
    /// told.
    fn refuse_forwarded(&self, topic: &str, unsent: &Forwarded, refusal: Refusal) {
        let session = SessionId::from_raw(unsent.reply.session);
        let Some(handle) = self
            .state
            .borrow()
            .sessions
            .get(&session)
            .map(|m| m.handle.clone())
        else {
            return;
        };
        self.metrics.rejected(refusal.into());
        let frame = protocol::encode_reply(
            handle.framing(),
            unsent.reply.join_ref.as_deref(),
            unsent.reply.msg_ref.as_deref(),
            topic,
            ReplyStatus::Error,
            &refusal.response(),
        );
        let channel = ChannelId::from_raw(unsent.reply.channel);
        self.deliver(&handle, channel, frame);
    }

    // ----- joins -------------------------------------------------------

    async fn join(self: Rc<Self>, msg: Join) -> Result<Joined, Refusal> {
        if let Some(cluster) = &self.cluster {
            // A channel joined before this node hears the others would miss
            // what they do.
            if !cluster.hearing().await {
                return Err(Refusal::Unavailable);
            }
        }
        let session = msg.session.id();
        let old = msg.replaces.and_then(|c| self.take_membership(session, c));
        let admitted = match self.admit(&msg.target).await {
            Ok(admitted) => self
                .hold_topic(&msg.topic, &admitted.0)
                .await
                .map(|()| admitted),
            Err(refusal) => Err(refusal),
        };
        let (member, kind, role, home) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                // D3: a refused re-join leaves the old channel gone after all.
                if let Some(old) = old {
                    self.leave_effects(old, Departure::Left).await;
                }
                return Err(refusal);
            }
        };
        let subscriber = Subscriber {
            session: msg.session.clone(),
            channel: msg.channel,
            join_ref: msg.join_ref.clone(),
            role,
            extensions: msg.extensions,
            open: msg.open.clone(),
        };
        // A returning teacher's chats, once read for its `chat:back` notices,
        // serve its join reply too.
        let mut chats_read = None;
        let subscribed = match old {
            // D3 by the same user: swap the channel, no presence effects.
            Some(old) if old.kind == member => {
                let mut evicted = Vec::new();
                let subscribed =
                    self.topics
                        .replace(&msg.topic, old.channel, subscriber, &mut evicted);
                self.state.borrow_mut().evicted.extend(evicted);
                self.stop_watching(&old).await;
                subscribed
            }
            other => {
                // A re-join under another identity is a real leave for the
                // old one: otherwise it would stay present forever.
                if let Some(old) = other {
                    self.leave_effects(old, Departure::Left).await;
                }
                chats_read = self.enter_presence(&kind).await?;
                if let (ChatHome::Adopted { relayed }, ChannelKind::Chat { chat, .. }) =
                    (&home, &kind)
                {
                    self.adopt(*chat, *relayed).await;
                }
                match (home, &kind) {
                    (ChatHome::At(home), ChannelKind::Chat { chat, role }) => {
                        self.join_away_from_home(&msg, subscriber, home, *chat, *role)
                            .await?
                    }
                    _ => {
                        let mut evicted = Vec::new();
                        let subscribed =
                            self.topics
                                .subscribe(msg.topic.clone(), subscriber, &mut evicted);
                        self.state.borrow_mut().evicted.extend(evicted);
                        subscribed
                    }
                }
            }
        };
        if let (Some(cluster), ChannelKind::Chat { chat, role }, true) =
            (&self.cluster, &kind, subscribed.held > 0)
        {
            // What was held for the side is delivered: Redis forgets it too.
            cluster.hold(*chat, *role, 0, None);
        }
        self.state
            .borrow_mut()
            .sessions
            .entry(session)
            .or_insert_with(|| Members {
                handle: msg.session.clone(),
                channels: Vec::new(),
            })
            .channels
            .push(Membership {
                channel: msg.channel,
                topic: msg.topic.clone(),
                kind: member.clone(),
                extensions: msg.extensions,
            });
        let reply = self
            .join_reply(&msg.target, &member, subscribed, chats_read)
            .await;
        self.greet(&msg, &kind).await;
        Ok(Joined { kind, reply })
    }

    /// This node adopts a chat whose home was declared dead: from now on it
    /// counts, holds (for either side, while places are kept) and records
    /// the chat's messages; channels already here on it relay locally.
    async fn adopt(&self, chat: ChatId, relayed: u64) {
        tracing::warn!(%chat, relayed, "adopting a chat whose home node was declared dead");
        let hold = HoldFor {
            teacher: !self.grace.is_zero(),
            student: !self.grace.is_zero(),
        };
        let (held, applied) = self.tutoring.adoption_of(chat).await;
        self.topics
            .adopt_chat_holding(chat_topic(chat).into(), hold, relayed, held, applied);
        // What was sent here for the dead home and not relayed by it is
        // relayed here, after this step.
        if let Some(me) = self.me.borrow().clone() {
            me.do_send(Rehome(chat));
        }
        // Its transcript goes on here (what the dead home recorded stays in
        // that node's store).
        if let Ok(Some((teacher, student))) = self.tutoring.sides(chat).await {
            let now = SystemTime::now();
            self.transcripts
                .chat_created(chat, &teacher, &student, now, ChatOpening::default());
            self.transcripts.chat_started(chat, now);
        }
    }

    /// A channel joins a chat homed on another node: it is subscribed here,
    /// then the home counts it (and pushes what it held for its side, which
    /// follows the join reply); the home's answer gives the reply's counts.
    /// Refused with `unavailable` if the home does not answer in time.
    async fn join_away_from_home(
        &self,
        msg: &Join,
        subscriber: Subscriber,
        home: NodeId,
        chat: ChatId,
        role: Role,
    ) -> Result<Subscribed, Refusal> {
        let Some(cluster) = &self.cluster else {
            return Err(Refusal::Unavailable);
        };
        self.topics
            .subscribe_away_from_home(msg.topic.clone(), subscriber, home.clone());
        match cluster.join_at_home(&home, chat.to_string(), role).await {
            Some(subbed) => Ok(Subscribed {
                relayed: subbed.relayed,
                held: subbed.held.len(),
            }),
            None => {
                self.topics.unsubscribe(&msg.topic, msg.channel);
                Err(Refusal::Unavailable)
            }
        }
    }

    /// A token user's join reply says where it stands (PROTOCOL 6.3): a
    /// teacher's chats, a student's state and chat, a chat's message count
    /// and how many held messages follow. None (`{}`) for everyone else.
    async fn join_reply(
        &self,
        target: &JoinTarget,
        member: &MemberKind,
        subscribed: Subscribed,
        chats_read: Option<Vec<(ChatId, Arc<str>)>>,
    ) -> Option<String> {
        match (member, target) {
            (MemberKind::Teacher(teacher), _) if teacher.0.is_signed() => {
                let chats = match chats_read {
                    Some(chats) => chats,
                    None => self.tutoring.chats_of(teacher).await.ok()?,
                };
                let objects: Vec<&str> = chats.iter().map(|(_, object)| &**object).collect();
                Some(format!(r#"{{"chats":[{}]}}"#, objects.join(",")))
            }
            (MemberKind::Student(student), _) if student.0.is_signed() => {
                let (state, chat) = self.tutoring.standing(student).await.ok()??;
                Some(match chat {
                    Some(chat) => format!(r#"{{"state":"{}","chat":{chat}}}"#, state.as_str()),
                    None => format!(r#"{{"state":"{}"}}"#, state.as_str()),
                })
            }
            (
                MemberKind::Chat(_),
                JoinTarget::Chat {
                    user: Some((_, user)),
                    ..
                },
            ) if user.is_signed() => Some(format!(
                r#"{{"seq":{},"held":{}}}"#,
                subscribed.relayed, subscribed.held
            )),
            _ => None,
        }
    }

    /// PROTOCOL 1.7: `presence:student:<sid>` is held by token users or by
    /// tokenless clients, never both (`channels::student_topic`). A token
    /// user closes tokenless holders out; a tokenless client is refused.
    async fn hold_topic(&self, topic: &Arc<str>, member: &MemberKind) -> Result<(), Refusal> {
        let MemberKind::Student(joiner) = member else {
            return Ok(());
        };
        let holders: Vec<(Subscriber, StudentKey)> = {
            let state = self.state.borrow();
            self.topics
                .subscribers(topic)
                .into_iter()
                .filter_map(|subscriber| {
                    let members = state.sessions.get(&subscriber.session.id())?;
                    let held = members
                        .channels
                        .iter()
                        .find(|m| m.channel == subscriber.channel)?;
                    match &held.kind {
                        MemberKind::Student(key) => Some((subscriber, key.clone())),
                        _ => None,
                    }
                })
                .collect()
        };
        match student_topic(&joiner.0, holders.iter().map(|(_, key)| &key.0)) {
            StudentTopic::Join => Ok(()),
            StudentTopic::Refuse => Err(Refusal::Unauthorized),
            StudentTopic::CloseOthers => {
                let mut closed = Vec::new();
                let mut subscribers = Vec::new();
                for (subscriber, key) in holders {
                    if key.0.is_signed() {
                        continue;
                    }
                    let session = subscriber.session.id();
                    if let Some(membership) = self.take_membership(session, subscriber.channel) {
                        closed.push(membership);
                        subscribers.push(subscriber);
                    }
                }
                self.emit(Out::Close {
                    topic: topic.to_string(),
                    subscribers,
                });
                for membership in closed {
                    self.leave_effects(membership, Departure::Left).await;
                }
                Ok(())
            }
        }
    }

    /// The first frames of a channel that asked for an extension: a student
    /// its place in the queue, a teacher the counts. They follow the join
    /// reply, since the session writes that before reading its mailbox.
    async fn greet(&self, msg: &Join, kind: &ChannelKind) {
        self.greet_2015_extensions(msg, kind).await;
        // Office hours.
        let push = |event: &str, payload: &str| self.push_to_joined(msg, event, payload);
        if matches!(kind, ChannelKind::Teachers { .. }) && msg.extensions.waiting_list {
            let first = {
                let mut state = self.state.borrow_mut();
                state.waiting_watchers += 1;
                state.waiting_watchers == 1
            };
            if let Ok(list) = self.tutoring.waiting_list(WAITING_LIST_LIMIT).await {
                let payload = list.to_json();
                push("queue:waiting", &payload);
                // The only watcher has seen this list: a round sends it again
                // only if it changes.
                if first {
                    self.state.borrow_mut().last_waiting = Some(payload);
                }
            }
        }
        if matches!(
            kind,
            ChannelKind::Teachers { .. } | ChannelKind::Student { .. }
        ) && msg.extensions.queue_state
        {
            if let Ok(state) = self.tutoring.queue_state().await {
                push("queue:state", &state.to_json());
            }
        }
    }

    /// The first frame of the extensions that came before office hours.
    async fn greet_2015_extensions(&self, msg: &Join, kind: &ChannelKind) {
        let (event, payload) = match kind {
            ChannelKind::Chat { chat, role } if msg.extensions.away_notices => {
                let Ok(Some((teacher, student))) = self.tutoring.sides(*chat).await else {
                    return;
                };
                let partner = match role {
                    Role::Teacher => MemberKind::Student(student),
                    Role::Student => MemberKind::Teacher(teacher),
                };
                let Some(away) = self.state.borrow().away.get(&partner).copied() else {
                    return;
                };
                ("chat:away", away_payload(other_side(*role), away.until))
            }
            ChannelKind::Student { student } if msg.extensions.queue_position => {
                let student = student.as_student();
                let Ok(notice) = self
                    .tutoring
                    .watch_position(student, self.snapshot().teachers)
                    .await
                else {
                    return;
                };
                self.state.borrow_mut().position_watchers += 1;
                let eta = self.eta_of(notice.position).await;
                ("queue:position", notice.to_json_with_eta(eta))
            }
            ChannelKind::Teachers { .. } if msg.extensions.live_status => {
                ("user:status", self.snapshot().to_json())
            }
            _ => return,
        };
        self.push_to_joined(msg, event, &payload);
    }

    /// A push to the channel that just joined.
    fn push_to_joined(&self, msg: &Join, event: &str, payload: &str) {
        let push = protocol::encode_push(msg.session.framing(), &msg.topic, event, payload);
        self.deliver(&msg.session, msg.channel, push);
    }

    /// The estimated wait of the student at `position`, from the service rate.
    async fn eta_of(&self, position: Option<usize>) -> Option<u64> {
        let position = position?;
        let (count, oldest, now) = self.tutoring.eta_basis().await.ok()?;
        office_hours::eta_s(count, oldest, position, now)
    }

    /// One round of `queue:waiting` pushes, to the teacher channels here that
    /// asked; nothing if the list did not change since the last round.
    async fn waiting_round(self: Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            state.waiting_round_scheduled = false;
            state.waiting_moved = false;
            if state.waiting_watchers == 0 {
                state.last_waiting = None;
                return;
            }
        }
        let Ok(list) = self.tutoring.waiting_list(WAITING_LIST_LIMIT).await else {
            return;
        };
        let payload = list.to_json();
        {
            let mut state = self.state.borrow_mut();
            if state.last_waiting.as_deref() == Some(payload.as_str()) {
                return;
            }
            state.last_waiting = Some(payload.clone());
        }
        self.emit(Out::Broadcast {
            topic: TEACHERS_TOPIC.to_owned(),
            event: "queue:waiting",
            payload,
            audience: Audience::WaitingList,
        });
    }

    /// A push to the channels here that asked for the queue state: the
    /// teachers' in one broadcast, each student's on a topic of its own.
    fn push_to_queue_state_watchers(&self, event: &'static str, payload: String) {
        let students: Vec<(Arc<SessionHandle>, ChannelId, Arc<str>)> = self
            .state
            .borrow()
            .sessions
            .values()
            .flat_map(|members| {
                members
                    .channels
                    .iter()
                    .filter(|m| {
                        matches!(m.kind, MemberKind::Student(_)) && m.extensions.queue_state
                    })
                    .map(|m| (members.handle.clone(), m.channel, m.topic.clone()))
            })
            .collect();
        for (session, channel, topic) in students {
            let push = protocol::encode_push(session.framing(), &topic, event, &payload);
            self.deliver(&session, channel, push);
        }
        self.emit(Out::Broadcast {
            topic: TEACHERS_TOPIC.to_owned(),
            event,
            payload,
            audience: Audience::QueueState,
        });
    }

    /// Whether `teacher` may announce or change the queue now (see
    /// `office_hours::STAFF_BURST`).
    fn staff_may_broadcast(&self, teacher: &UserId) -> bool {
        let key = teacher.as_teacher();
        self.state
            .borrow_mut()
            .staff_broadcasts
            .allow(key.0.as_str(), unix_ms_now())
    }

    /// `queue:state` to the channels here that asked for it.
    fn push_queue_state(&self, state: &QueueState) {
        self.push_to_queue_state_watchers("queue:state", state.to_json());
    }

    /// `queue:announcement` to the channels here that asked for the queue state.
    fn push_announcement(&self, announcement: &Announcement) {
        self.push_to_queue_state_watchers("queue:announcement", announcement.to_json());
    }

    /// A channel that watched its place in the queue is gone.
    async fn stop_watching(&self, membership: &Membership) {
        if let (MemberKind::Teacher(_), true) =
            (&membership.kind, membership.extensions.waiting_list)
        {
            let mut state = self.state.borrow_mut();
            state.waiting_watchers = state.waiting_watchers.saturating_sub(1);
        }
        if let (MemberKind::Student(student), true) =
            (&membership.kind, membership.extensions.queue_position)
        {
            self.tutoring.unwatch_position(student).await.ok();
            let mut state = self.state.borrow_mut();
            state.position_watchers = state.position_watchers.saturating_sub(1);
        }
    }

    /// One round of `queue:position` notices (see `domain::positions`).
    async fn position_round(self: Rc<Self>) {
        {
            let mut state = self.state.borrow_mut();
            state.round_scheduled = false;
            state.positions_moved = false;
        }
        let Ok(due) = self.tutoring.due_positions(self.snapshot().teachers).await else {
            return;
        };
        let basis = match due.is_empty() {
            true => None,
            false => self.tutoring.eta_basis().await.ok(),
        };
        for (student, notice) in due {
            let eta = match basis {
                Some((count, oldest, now)) => notice
                    .position
                    .and_then(|position| office_hours::eta_s(count, oldest, position, now)),
                None => None,
            };
            self.emit(Out::Broadcast {
                topic: format!("presence:student:{}", student.0),
                event: "queue:position",
                payload: notice.to_json_with_eta(eta),
                audience: Audience::QueuePosition,
            });
        }
    }

    /// Decides a routed join; chat joins are checked against the chat log.
    async fn admit(&self, target: &JoinTarget) -> Result<Admitted, Refusal> {
        match target {
            JoinTarget::Teachers(teacher) => Ok((
                MemberKind::Teacher(teacher.as_teacher()),
                ChannelKind::Teachers {
                    teacher: teacher.clone(),
                },
                None,
                ChatHome::Here,
            )),
            JoinTarget::Student(student) => Ok((
                MemberKind::Student(student.as_student()),
                ChannelKind::Student {
                    student: student.clone(),
                },
                None,
                ChatHome::Here,
            )),
            JoinTarget::Chat { chat: None, .. } => Err(Refusal::UnknownChat),
            JoinTarget::Chat {
                chat: Some(chat),
                user,
            } => {
                let (chat, asking) = (*chat, user.clone());
                let Ok((check, home)) = self.tutoring.authorize_join(chat, asking).await else {
                    return Err(Refusal::Unavailable);
                };
                match (Some(check), user) {
                    (Some(JoinCheck::Allowed), Some((role, _))) => Ok((
                        MemberKind::Chat(chat),
                        ChannelKind::Chat { chat, role: *role },
                        Some(*role),
                        home,
                    )),
                    (Some(JoinCheck::UnknownChat), _) => Err(Refusal::UnknownChat),
                    (Some(JoinCheck::ChatFinished), _) => Err(Refusal::ChatFinished),
                    _ => Err(Refusal::Unauthorized),
                }
            }
        }
    }

    /// A presence channel makes its user present (no broadcast: 5.2, 7.3).
    /// A user that was away is back (PROTOCOL 6.3): its chats hear of it.
    /// Answers the chats of a returning teacher, read for that. Refused with
    /// `unavailable` if the step cannot run (Redis down).
    async fn enter_presence(
        &self,
        kind: &ChannelKind,
    ) -> Result<Option<Vec<(ChatId, Arc<str>)>>, Refusal> {
        match kind {
            ChannelKind::Teachers { teacher } => {
                let teacher = teacher.as_teacher();
                let Ok(stepped) = self.tutoring.teacher_present(teacher.clone()).await else {
                    return Err(Refusal::Unavailable);
                };
                let (back, news) = self.record(stepped);
                self.announce(news);
                if back {
                    self.end_away(&MemberKind::Teacher(teacher.clone()));
                    let chats = self.tutoring.chats_of(&teacher).await.ok();
                    for (chat, _) in chats.iter().flatten() {
                        self.notice_back(*chat, Role::Teacher);
                    }
                    return Ok(chats);
                }
            }
            ChannelKind::Student { student } => {
                let key = student.as_student();
                let Ok(stepped) = self.tutoring.student_present(student.clone()).await else {
                    return Err(Refusal::Unavailable);
                };
                let (returned, news) = self.record(stepped);
                if returned.back {
                    self.end_away(&MemberKind::Student(key));
                    match returned.state {
                        StudentState::Chatting { chat, .. } => {
                            self.notice_back(chat, Role::Student)
                        }
                        StudentState::Waiting(_) => self.waiting_list_moved(),
                        _ => {}
                    }
                }
                self.announce(news);
            }
            ChannelKind::Chat { .. } => {}
        }
        Ok(None)
    }

    /// An away user is back in time: its window is over.
    fn end_away(&self, user: &MemberKind) {
        if self.state.borrow_mut().away.remove(user).is_some() {
            self.metrics.users_away.dec();
            self.metrics.users_back.inc();
        }
    }

    /// `chat:back` to the other side's channels that asked for away notices.
    fn notice_back(&self, chat: ChatId, side: Role) {
        self.broadcast_everywhere(
            chat_topic(chat),
            "chat:back",
            format!(r#"{{"role":"{}"}}"#, side.as_str()),
            Audience::AwayNotices(other_side(side)),
        );
    }

    /// `chat:away` to the other side's channels that asked for away notices.
    fn notice_away(&self, chat: ChatId, side: Role, until: SystemTime) {
        self.broadcast_everywhere(
            chat_topic(chat),
            "chat:away",
            away_payload(side, until),
            Audience::AwayNotices(other_side(side)),
        );
    }

    // ----- application events -----------------------------------------

    async fn request(self: Rc<Self>, r: Request) {
        // The channel may have gone while this request waited in line.
        if !self.is_member(r.session.id(), r.channel) {
            return;
        }
        match (r.command.clone(), &r.kind) {
            (Command::Ready { question }, ChannelKind::Student { student }) => {
                let student = student.as_student();
                let ticket = Ticket {
                    name: r.name.as_deref().map(str::to_owned),
                    question: question.as_deref().map(str::to_owned),
                    since: unix_ms_now(),
                };
                let Ok(stepped) = self.tutoring.ready(&student, ticket).await else {
                    return self.refuse(&r, Refusal::Unavailable);
                };
                let (outcome, news) = self.record(stepped);
                if outcome == ReadyOutcome::Closed {
                    let state = self.tutoring.queue_state().await.unwrap_or(QueueState {
                        open: false,
                        message: None,
                    });
                    self.metrics.rejected(Refusal::QueueClosed.into());
                    return self.reply(&r, ReplyStatus::Error, &state.closed_reply());
                }
                match outcome {
                    ReadyOutcome::Queued(_) => {
                        let mut state = self.state.borrow_mut();
                        state.ready_at.insert(student, Instant::now());
                        state.waiting_moved = true;
                    }
                    // Perhaps a new question.
                    ReadyOutcome::Unchanged => self.waiting_list_moved(),
                    _ => {}
                }
                self.announce(news);
                self.reply(&r, ReplyStatus::Ok, "{}");
            }
            (Command::SetQueue { open, message }, ChannelKind::Teachers { teacher }) => {
                if !self.staff_may_broadcast(teacher) {
                    return self.refuse(&r, Refusal::TooFrequent);
                }
                let state = QueueState {
                    open,
                    message: message.as_deref().map(str::to_owned),
                };
                let Ok(changed) = self.tutoring.set_queue_state(state.clone()).await else {
                    return self.refuse(&r, Refusal::Unavailable);
                };
                self.reply(&r, ReplyStatus::Ok, &state.to_json());
                if changed {
                    self.push_queue_state(&state);
                    self.share(|from| Event::QueueState { from, state });
                }
            }
            (Command::Announce { message }, ChannelKind::Teachers { teacher }) => {
                if !self.staff_may_broadcast(teacher) {
                    return self.refuse(&r, Refusal::TooFrequent);
                }
                let announcement = Announcement {
                    message: message.to_string(),
                    from: match &r.name {
                        Some(name) => name.to_string(),
                        None => teacher.key.as_str().to_owned(),
                    },
                    at: unix_ms_now(),
                };
                self.reply(&r, ReplyStatus::Ok, "{}");
                self.push_announcement(&announcement);
                self.share(|from| Event::Announced { from, announcement });
            }
            (Command::Claim, ChannelKind::Teachers { teacher }) => {
                match self.claim(&r, teacher).await {
                    Ok(claimed) => {
                        self.reply(&r, ReplyStatus::Ok, claimed.as_deref().unwrap_or("{}"))
                    }
                    Err(refusal) => self.refuse(&r, refusal),
                }
            }
            (Command::Entered(role), ChannelKind::Chat { chat, .. }) => {
                let chat = *chat;
                match self.tutoring.enter(chat, role).await {
                    Ok(EnterOutcome::Ready) => {
                        if self.is_home(chat) {
                            self.transcripts.chat_started(chat, SystemTime::now());
                        }
                        self.broadcast(&r.topic, "chat:ready", "{}");
                        self.share(|from| Event::Ready {
                            from,
                            chat: chat.to_string(),
                        });
                        self.reply(&r, ReplyStatus::Ok, "{}");
                    }
                    Ok(EnterOutcome::NotActive) => self.refuse(&r, Refusal::ChatFinished),
                    Ok(EnterOutcome::Entered) => self.reply(&r, ReplyStatus::Ok, "{}"),
                    Err(_) => self.refuse(&r, Refusal::Unavailable),
                }
            }
            (Command::Terminate, ChannelKind::Chat { chat, role }) => {
                let (chat, role) = (*chat, *role);
                let Ok(stepped) = self.tutoring.terminate(chat).await else {
                    return self.refuse(&r, Refusal::Unavailable);
                };
                let (ended, news) = self.record(stepped);
                if ended.is_some() {
                    self.finish_here(chat, EndReason::EndedBy(role)).await;
                }
                self.announce(news);
                self.reply(&r, ReplyStatus::Ok, "{}");
            }
            _ => self.refuse(&r, Refusal::UnknownEvent),
        }
    }

    /// PROTOCOL 7.1 as one step: the teacher's slot, the head of the queue,
    /// the chat, then the frames of 5.4 in order. Answers the chat object, if
    /// a student was assigned.
    async fn claim(&self, r: &Request, teacher_id: &UserId) -> Result<Option<Arc<str>>, Refusal> {
        let teacher = teacher_id.as_teacher();
        let chat = ChatId::random(&mut rand::rng());
        let Ok(stepped) = self.tutoring.claim(teacher_id, chat).await else {
            return Err(Refusal::Unavailable);
        };
        let (claimed, news) = self.record(stepped);
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        if let Some(since) = self.state.borrow_mut().ready_at.remove(&claimed.student) {
            self.metrics.observe_queue_wait(since.elapsed());
        }
        let now = SystemTime::now();
        // What the student brought to the line goes on record with the chat.
        let opening = match &claimed.ticket {
            Some(ticket) => ChatOpening {
                question: ticket.question.clone(),
                queued_at: Some(UNIX_EPOCH + Duration::from_millis(ticket.since)),
            },
            None => ChatOpening::default(),
        };
        self.transcripts
            .chat_created(chat, &teacher, &claimed.student, now, opening);
        let hold = HoldFor {
            teacher: self.keeps_places_of(&teacher.0),
            student: self.keeps_places_of(&claimed.student.0),
        };
        self.topics.open_chat(chat_topic(chat).into(), hold);

        let push = protocol::encode_push(
            r.session.framing(),
            &r.topic,
            &format!("new:chat:{}", teacher.0),
            &claimed.object,
        );
        self.deliver(&r.session, r.channel, push);
        let student_topic = format!("presence:student:{}", claimed.student.0);
        self.broadcast_everywhere(
            student_topic,
            "new:chat",
            claimed.object.to_string(),
            Audience::All,
        );
        self.announce(news);
        Ok(Some(claimed.object))
    }

    /// PROTOCOL 7.2, once a step has finished an active chat (exactly once):
    /// `chat:terminated` goes to its channels (with the reason to those that
    /// asked) once the transcript has the finish; the caller announces the
    /// status.
    async fn chat_finished(&self, chat: ChatId, reason: EndReason) {
        let topic = chat_topic(chat);
        if !self.is_home(chat) {
            // Its home records the end and sends `chat:terminated` to this
            // node's channels once it is on disk; no message gets in meanwhile.
            self.topics.mark_finished(&topic);
            if self.topics.subscriber_count(&topic) == 0 {
                self.tutoring.discard(chat).await.ok();
            }
            return;
        }
        self.metrics.chats_completed.inc();
        // Read first: a finished topic with no channel here is forgotten.
        let elsewhere = self.topics.remote_nodes(&topic);
        // No relay gets in after this, so the finish record follows every
        // recorded message of the chat in the writer's queue.
        self.topics.mark_finished(&topic);
        let how = match reason {
            EndReason::StudentLeft => transcripts::EndReason::StudentLeft,
            EndReason::TeacherLeft => transcripts::EndReason::TeacherLeft,
            EndReason::EndedBy(_) => transcripts::EndReason::Terminated,
        };
        self.after_commit_of(chat, how);
        self.emit(Out::Broadcast {
            topic: topic.clone(),
            event: "chat:terminated",
            payload: "{}".to_owned(),
            audience: Audience::EndReason(false),
        });
        self.emit(Out::Broadcast {
            topic: topic.clone(),
            event: "chat:terminated",
            payload: format!(r#"{{"reason":"{}"}}"#, reason.as_str()),
            audience: Audience::EndReason(true),
        });
        if let Some(cluster) = &self.cluster {
            for node in elsewhere {
                for (payload, asked) in [
                    ("{}".to_owned(), false),
                    (format!(r#"{{"reason":"{}"}}"#, reason.as_str()), true),
                ] {
                    self.emit(Out::Tell {
                        node: node.clone(),
                        message: Inbox::Broadcast {
                            from: cluster.node().clone(),
                            push: Push {
                                topic: topic.clone(),
                                event: "chat:terminated".to_owned(),
                                payload,
                                audience: Audience::EndReason(asked),
                            },
                        },
                    });
                }
            }
        }
        if self.topics.subscriber_count(&topic) == 0 {
            self.tutoring.discard(chat).await.ok();
        }
    }

    /// A step here finished an active chat: the other nodes hear of it.
    async fn finish_here(&self, chat: ChatId, reason: EndReason) {
        self.share(|from| Event::Finished {
            from,
            chat: chat.to_string(),
            reason,
        });
        self.chat_finished(chat, reason).await;
    }

    // ----- leaving ------------------------------------------------------

    async fn channel_left(self: Rc<Self>, msg: ChannelLeft) {
        if let Some(membership) = self.take_membership(msg.session, msg.channel) {
            self.leave_effects(membership, Departure::Left).await;
        }
    }

    async fn session_gone(self: Rc<Self>, session: SessionId) {
        let members = self.state.borrow_mut().sessions.remove(&session);
        for membership in members.map(|m| m.channels).unwrap_or_default() {
            self.leave_effects(membership, Departure::ConnectionGone)
                .await;
        }
    }

    /// Does this user keep its place when its connection goes? Token users
    /// do, while the grace window is not zero (PROTOCOL 6.3).
    fn keeps_places_of(&self, user: &UserKey) -> bool {
        user.is_signed() && !self.grace.is_zero()
    }

    /// PROTOCOL 6: what one channel going away means for the rosters.
    async fn leave_effects(&self, membership: Membership, departure: Departure) {
        let topic = &membership.topic;
        if let (MemberKind::Chat(chat), Some(cluster)) = (&membership.kind, &self.cluster) {
            // The chat's home stops sending this channel's side here.
            let role = self.topics.role_of(topic, membership.channel);
            if let (Some(home), Some(role)) = (self.topics.home(topic), role) {
                let from = cluster.node().clone();
                let chat = chat.to_string();
                cluster.tell(&home, &Inbox::Unsub { chat, role, from });
            }
        }
        let remaining = self.topics.unsubscribe(topic, membership.channel);
        self.stop_watching(&membership).await;
        let away = departure == Departure::ConnectionGone;
        match membership.kind {
            MemberKind::Teacher(teacher) if away && self.keeps_places_of(&teacher.0) => {
                self.teacher_away(teacher).await
            }
            MemberKind::Student(student) if away && self.keeps_places_of(&student.0) => {
                self.student_away(student).await
            }
            MemberKind::Teacher(teacher) => self.teacher_absent(teacher).await,
            MemberKind::Student(student) => self.student_absent(student).await,
            MemberKind::Chat(chat) => {
                // Leaving a chat channel alone changes nothing about the chat;
                // a finished chat with nobody left on it is forgotten.
                if remaining == 0 {
                    self.tutoring.discard(chat).await.ok();
                }
            }
        }
    }

    /// PROTOCOL 6.1, when it was the student's last presence channel: a chat
    /// it was in finishes.
    async fn student_absent(&self, student: StudentKey) {
        let stepped = self.tutoring.student_absent(&student).await;
        self.student_vanished(student, stepped).await;
    }

    /// PROTOCOL 6.3, when it was a token student's last presence channel and
    /// its connection went: away, its chat told so.
    async fn student_away(&self, student: StudentKey) {
        let Ok(stepped) = self.tutoring.student_away(&student).await else {
            return;
        };
        let (away, _) = self.record(stepped);
        let Some((spell, state)) = away else {
            return;
        };
        let until = self.away_from_now(MemberKind::Student(student), spell);
        match state {
            StudentState::Chatting { chat, .. } => self.notice_away(chat, Role::Student, until),
            StudentState::Waiting(_) => self.waiting_list_moved(),
            _ => {}
        }
    }

    /// The waiting list changed without the counts changing (a question, a
    /// student away or back): a round here, and on every node.
    fn waiting_list_moved(&self) {
        self.state.borrow_mut().waiting_moved = true;
        self.share(|from| Event::WaitingMoved { from });
    }

    /// PROTOCOL 6.3, when it was a token teacher's last presence channel and
    /// its connection went: away, its chats told so.
    async fn teacher_away(&self, teacher: TeacherKey) {
        let Ok(stepped) = self.tutoring.teacher_away(&teacher).await else {
            return;
        };
        let (away, _) = self.record(stepped);
        let Some((spell, chats)) = away else {
            return;
        };
        let until = self.away_from_now(MemberKind::Teacher(teacher), spell);
        for chat in chats {
            self.notice_away(chat, Role::Teacher, until);
        }
    }

    /// Notes an away user and starts its window; answers when it ends.
    fn away_from_now(&self, user: MemberKind, spell: AwaySpell) -> SystemTime {
        let until = SystemTime::now() + self.grace;
        let mut state = self.state.borrow_mut();
        state.away.insert(user.clone(), Away { spell, until });
        state.windows.push(WindowEnded { user, spell });
        self.metrics.users_away.inc();
        until
    }

    /// The window of an away user ended: unless it is back, or away again in
    /// a later spell, it vanishes now (6.1, 6.2).
    async fn window_ended(self: Rc<Self>, user: MemberKind, spell: AwaySpell) {
        if self.state.borrow().away.get(&user).map(|away| away.spell) != Some(spell) {
            return;
        }
        self.window_over(user, spell).await;
    }

    /// An away window ended (this node's timer, or any node's tick on Redis):
    /// the user vanishes unless it is back or away again since.
    async fn window_over(&self, user: MemberKind, spell: AwaySpell) {
        {
            let mut state = self.state.borrow_mut();
            if state.away.get(&user).map(|away| away.spell) == Some(spell) {
                state.away.remove(&user);
                self.metrics.users_away.dec();
            }
        }
        match user {
            MemberKind::Teacher(teacher) => {
                let stepped = self.tutoring.teacher_expired(&teacher, spell).await;
                self.teacher_vanished(stepped);
            }
            MemberKind::Student(student) => {
                let stepped = self.tutoring.student_expired(&student, spell).await;
                self.student_vanished(student, stepped).await;
            }
            MemberKind::Chat(_) => {}
        }
    }

    /// What a student's vanishing means for the frames: its chat's end, one
    /// status.
    async fn student_vanished(
        &self,
        student: StudentKey,
        stepped: Result<Stepped<Option<Vanished>>, StepError>,
    ) {
        let Ok(stepped) = stepped else {
            return;
        };
        let (vanished, news) = self.record(stepped);
        let Some(Vanished { finished, .. }) = vanished else {
            return;
        };
        self.state.borrow_mut().ready_at.remove(&student);
        if let Some(chat) = finished {
            self.finish_here(chat, EndReason::StudentLeft).await;
        }
        self.announce(news);
    }

    /// PROTOCOL 6.2, when it was the teacher's last presence channel: its
    /// chats are abandoned, their students requeued at the head, their
    /// channels closed with `phx_close`, and no `chat:terminated` is sent.
    async fn teacher_absent(&self, teacher: TeacherKey) {
        let stepped = self.tutoring.teacher_absent(&teacher).await;
        self.teacher_vanished(stepped);
    }

    /// What a teacher's vanishing means for the frames: its chats closed,
    /// their students requeued, one status.
    fn teacher_vanished(&self, stepped: Result<Stepped<Option<Vec<Abandoned>>>, StepError>) {
        let Ok(stepped) = stepped else {
            return;
        };
        let (abandoned, news) = self.record(stepped);
        self.abandon(abandoned.unwrap_or_default());
        self.announce(news);
    }

    /// A vanished teacher's chats: their students requeued, the chats
    /// abandoned everywhere.
    fn abandon(&self, abandoned: Vec<Abandoned>) {
        for abandoned in abandoned {
            if let Some(student) = abandoned.requeued {
                self.state
                    .borrow_mut()
                    .ready_at
                    .insert(student, Instant::now());
            }
            let chat = abandoned.chat;
            self.share(|from| Event::Abandoned {
                from,
                chat: chat.to_string(),
            });
            self.chat_abandoned(chat);
        }
    }

    // ----- liveness (on Redis) --------------------------------------------

    /// Every second: this node is alive; a dead node's users are handled here
    /// as if their connections had gone (away with a token, else gone).
    async fn tick(self: Rc<Self>) {
        let Some(Ok(mut tick)) = self.tutoring.tick(self.grace).await else {
            return;
        };
        for over in std::mem::take(&mut tick.windows_over) {
            match over {
                WindowOver::Teacher(teacher, spell) => {
                    self.window_over(MemberKind::Teacher(teacher), spell).await
                }
                WindowOver::Student(student, spell) => {
                    self.window_over(MemberKind::Student(student), spell).await
                }
            }
        }
        if let Some(dead) = &tick.declared_dead {
            tracing::warn!(node = %dead, "a node missed its heartbeat deadline: declared dead, its users are handled by the live nodes");
            self.share(|from| Event::NodeDead {
                from,
                node: dead.clone(),
            });
            self.node_dead(dead);
        }
        if tick.reaped.is_empty() {
            return;
        }
        let news = tick.reaped.iter().fold(StatusNews::None, |news, reaped| {
            let this = match reaped {
                Reaped::TeacherGone {
                    abandoned,
                    fewer_teachers,
                    ..
                } => StatusNews::teacher_gone(abandoned, *fewer_teachers),
                Reaped::StudentGone { vanished, .. } => StatusNews::student_gone(&vanished.was),
                Reaped::TeacherAway { .. } | Reaped::StudentAway { .. } => StatusNews::None,
            };
            news.or(this)
        });
        let ((), news) = self.record(Stepped {
            outcome: (),
            status: tick.status,
            news,
        });
        for reaped in tick.reaped {
            match reaped {
                Reaped::TeacherAway {
                    teacher,
                    spell,
                    chats,
                } => {
                    let until = self.away_from_now(MemberKind::Teacher(teacher), spell);
                    for chat in chats {
                        self.notice_away(chat, Role::Teacher, until);
                    }
                }
                Reaped::TeacherGone { abandoned, .. } => self.abandon(abandoned),
                Reaped::StudentAway {
                    student,
                    spell,
                    state,
                } => {
                    let until = self.away_from_now(MemberKind::Student(student), spell);
                    if let StudentState::Chatting { chat, .. } = state {
                        self.notice_away(chat, Role::Student, until);
                    }
                }
                Reaped::StudentGone { student, vanished } => {
                    self.state.borrow_mut().ready_at.remove(&student);
                    if let Some(chat) = vanished.finished {
                        self.finish_here(chat, EndReason::StudentLeft).await;
                    }
                }
            }
        }
        self.announce(news);
    }

    /// A chat abandoned (6.2): its home records the end; every node closes
    /// its channels on it.
    fn chat_abandoned(&self, chat: ChatId) {
        if self.is_home(chat) {
            let now = SystemTime::now();
            let how = transcripts::EndReason::TeacherLeft;
            self.transcripts.chat_finished(chat, how, now, || {});
        }
        self.close_chat_channels(chat);
    }

    /// Server-side close of every channel joined to an abandoned chat.
    fn close_chat_channels(&self, chat: ChatId) {
        let topic = chat_topic(chat);
        let subscribers = self.topics.close(&topic);
        for subscriber in &subscribers {
            let session = subscriber.session.id();
            if let Some(members) = self.state.borrow_mut().sessions.get_mut(&session) {
                members.channels.retain(|m| m.channel != subscriber.channel);
            }
        }
        self.emit(Out::Close { topic, subscribers });
    }

    // ----- bookkeeping and frames ---------------------------------------

    fn take_membership(&self, session: SessionId, channel: ChannelId) -> Option<Membership> {
        let mut state = self.state.borrow_mut();
        let members = state.sessions.get_mut(&session)?;
        let index = members.channels.iter().position(|m| m.channel == channel)?;
        Some(members.channels.swap_remove(index))
    }

    fn is_member(&self, session: SessionId, channel: ChannelId) -> bool {
        self.state.borrow().sessions.get(&session).is_some_and(|m| {
            !m.handle.is_evicted() && m.channels.iter().any(|c| c.channel == channel)
        })
    }

    fn snapshot(&self) -> StatusSnapshot {
        self.state.borrow().status
    }

    /// Every change to the student counts: `user:status` to every teacher
    /// channel; the queue may have moved.
    fn broadcast_status(&self) {
        {
            let mut state = self.state.borrow_mut();
            state.positions_moved = true;
            state.waiting_moved = true;
        }
        let snapshot = self.snapshot();
        let students = snapshot.students;
        self.metrics.students_present.set(students.total() as i64);
        self.metrics.queue_length.set(students.waiting as i64);
        self.metrics.active_chats.set(students.chatting as i64);
        self.broadcast(TEACHERS_TOPIC, "user:status", &snapshot.to_json());
    }

    /// A change to the teacher count alone: `user:status` only to the teacher
    /// channels that asked for live counts (PROTOCOL 7.3 keeps it from the rest).
    fn broadcast_live_status(&self) {
        self.emit(Out::Broadcast {
            topic: TEACHERS_TOPIC.to_owned(),
            event: "user:status",
            payload: self.snapshot().to_json(),
            audience: Audience::LiveStatus,
        });
    }

    fn broadcast(&self, topic: &str, event: &'static str, payload: &str) {
        self.emit(Out::Broadcast {
            topic: topic.to_owned(),
            event,
            payload: payload.to_owned(),
            audience: Audience::All,
        });
    }

    fn deliver(&self, session: &Arc<SessionHandle>, channel: ChannelId, frame: String) {
        self.emit(Out::To {
            session: session.clone(),
            channel,
            frame,
        });
    }

    /// Records the chat's end; every frame from here on waits for its commit.
    fn after_commit_of(&self, chat: ChatId, how: transcripts::EndReason) {
        let now = SystemTime::now();
        if !self.transcripts.is_enabled() {
            self.transcripts.chat_finished(chat, how, now, || {});
            return;
        }
        self.state.borrow_mut().gate.raise();
        let report = CommitReport(self.me.borrow().clone());
        self.transcripts
            .chat_finished(chat, how, now, move || report.send());
    }

    /// Sends now, or keeps in line behind a transcript commit (`gate`).
    fn emit(&self, out: Out) {
        let now = self.state.borrow_mut().gate.pass(out);
        if let Some(out) = now {
            self.send(out);
        }
    }

    /// Queues the frames to the connections; overflowing ones are noted as
    /// evicted, to be handled as gone after the step.
    fn send(&self, out: Out) {
        let mut evicted = Vec::new();
        match out {
            Out::To {
                session,
                channel,
                frame,
            } => {
                if session.deliver(channel, ByteString::from(frame)) == Delivery::Evicted {
                    evicted.push(session.id());
                }
            }
            Out::Broadcast {
                topic,
                event,
                payload,
                audience,
            } => {
                let picks = |s: &Subscriber| audience.picks(s);
                self.topics
                    .broadcast_where(&topic, event, &payload, picks, &mut evicted);
            }
            Out::Close { topic, subscribers } => {
                for subscriber in subscribers {
                    let session = &subscriber.session;
                    let frame = protocol::encode_close(
                        session.framing(),
                        subscriber.join_ref.as_deref(),
                        &topic,
                    );
                    let frame = ByteString::from(frame);
                    if session.close_channel(subscriber.channel, frame) == Delivery::Evicted {
                        evicted.push(session.id());
                    }
                }
            }
            Out::Tell { node, message } => {
                if let Some(cluster) = &self.cluster {
                    cluster.tell(&node, &message);
                }
            }
        }
        if !evicted.is_empty() {
            self.state.borrow_mut().evicted.extend(evicted);
        }
    }

    fn reply(&self, r: &Request, status: ReplyStatus, response: &str) {
        let frame = protocol::encode_reply(
            r.session.framing(),
            r.join_ref.as_deref(),
            r.msg_ref.as_deref(),
            &r.topic,
            status,
            response,
        );
        self.deliver(&r.session, r.channel, frame);
    }

    fn refuse(&self, r: &Request, refusal: Refusal) {
        self.metrics.rejected(refusal.into());
        self.reply(r, ReplyStatus::Error, &refusal.response());
    }
}
