//! `Session`: the actor of one WebSocket connection. It decodes frames in the
//! framing fixed at handshake, keeps the connection's channel table, answers
//! heartbeats itself, applies the dispatch rules, relays chat messages
//! straight to the other side's connection, and hands everything that changes
//! shared state to `ChatLifetime`. It is the single writer of its connection:
//! every frame, its own or queued by others, leaves through its context in
//! the order it was produced. It owns nothing shared.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use actix_http::ws::Item;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use bytestring::ByteString;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::value::RawValue;

use super::frame_guard::{Refusals, Violation};
use super::handle::{OutboundBound, SessionHandle, SessionId};
use crate::actors::chat_lifetime::{ChannelLeft, Join, Joined, Request, SessionGone};
use crate::actors::{ConnectionSlot, Hub};
use crate::channels::{
    bind_join, check_join_refs, command_for, dispatch, route_join, Action, Channel, ChannelId,
    ChannelKind, Command, Extensions, JsonRef, Liveness, Refusal,
};
use crate::cluster::{Forward, ReplyTo};
use crate::domain::{ChatId, Role};
use crate::identity::Identity;
use crate::metrics::Rejection;
use crate::protocol::{self, Framing, Inbound, ReplyStatus};
use crate::topics::{Alone, RelayRefused, Relayed};
use crate::transcripts::Backpressure;

/// One chat message on its way to the other side.
struct Relay {
    topic: Arc<str>,
    chat: ChatId,
    from: Role,
    to: Role,
    read_at: Instant,
    /// Where the home of a chat on another node sends a refusal back to.
    reply: Option<ReplyTo>,
}

impl Relay {
    /// Records the message in the transcript and hands it to the other
    /// side's connections, both or neither.
    fn send(&self, hub: &Hub, payload: &RawValue) -> Result<Relayed, RelayRefused> {
        let record = || {
            hub.transcripts
                .message(self.chat, self.from, payload, SystemTime::now())
        };
        let mut evicted = Vec::new();
        let relayed = match &hub.cluster {
            Some(cluster) => {
                let forward = Forward {
                    cluster,
                    chat: self.chat,
                    reply: self.reply.clone(),
                    origin: None,
                };
                let read_at = Some(self.read_at);
                let relay = &hub.topics;
                relay.relay(
                    &self.topic,
                    self.to,
                    payload.get(),
                    read_at,
                    record,
                    &forward,
                    &mut evicted,
                )
            }
            None => hub.topics.relay(
                &self.topic,
                self.to,
                payload.get(),
                Some(self.read_at),
                record,
                &Alone,
                &mut evicted,
            ),
        };
        for session in evicted {
            hub.lifetime.do_send(SessionGone { session });
        }
        match relayed {
            Ok(Relayed::Delivered) => {
                hub.metrics.relayed_messages.inc();
            }
            Ok(Relayed::Held) => {
                hub.metrics.relayed_messages.inc();
                hub.metrics.held_messages.inc();
            }
            // Counted by the home, which relays it.
            Ok(Relayed::Forwarded | Relayed::Duplicate) | Err(_) => {}
        }
        relayed
    }
}

/// A frame queued by someone else for one of this connection's channels.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub channel: ChannelId,
    pub frame: ByteString,
    /// For a relayed chat message: when the sender's frame was read.
    pub relayed_at: Option<Instant>,
}

/// The server closed one of this connection's channels (`phx_close`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChannelClosed {
    pub channel: ChannelId,
    pub frame: ByteString,
}

/// The connection fell too far behind reading its frames.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evict;

/// The server is shutting down: close with 1001.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// How long a connection the server is closing waits for the client's close
/// frame before closing TCP anyway (RFC 6455 §7.1.1: the server closes TCP
/// once both sides have sent theirs). Frames read meanwhile are dropped.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(1);

pub struct Session {
    id: SessionId,
    framing: Framing,
    hub: Hub,
    handle: Option<Arc<SessionHandle>>,
    table: crate::channels::ChannelTable,
    last_seen: Instant,
    /// A text message arriving in fragments, bounded by `max_frame_bytes`.
    fragments: Option<Vec<u8>>,
    /// Inbound frames per second (None when the limit is off).
    inbound: Option<DefaultDirectRateLimiter>,
    /// This connection's place under `max_connections`, freed on drop.
    _slot: ConnectionSlot,
    /// Frames the transport's frame guard refused, for this session to close on.
    refusals: Refusals,
    /// The server has sent its close frame: nothing more is written or handled.
    closing: bool,
    /// The connection has left the hub (`depart`).
    departed: bool,
    /// Who the upgrade's token proved this connection is (None: tokenless);
    /// every join is bound to it (`bind_join`).
    identity: Option<Identity>,
}

/// The inbound frame rate of one connection: `per_sec` sustained, `burst`
/// at once. Either at 0 turns the limit off.
fn inbound_limiter(per_sec: u32, burst: u32) -> Option<DefaultDirectRateLimiter> {
    let quota = Quota::per_second(NonZeroU32::new(per_sec)?).allow_burst(NonZeroU32::new(burst)?);
    Some(RateLimiter::direct(quota))
}

impl Session {
    pub fn new(
        hub: Hub,
        framing: Framing,
        slot: ConnectionSlot,
        identity: Option<Identity>,
    ) -> Self {
        let max_channels = hub.config.max_channels;
        let inbound = inbound_limiter(hub.config.max_frames_per_sec, hub.config.frame_burst);
        Session {
            inbound,
            _slot: slot,
            id: SessionId::next(),
            framing,
            hub,
            handle: None,
            table: crate::channels::ChannelTable::new(max_channels),
            last_seen: Instant::now(),
            fragments: None,
            refusals: Refusals::default(),
            closing: false,
            departed: false,
            identity,
        }
    }

    /// Who the upgrade's token proved this connection is (None: tokenless).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Takes the refusals of the frame guard in front of this connection.
    pub(super) fn guarded_by(mut self, refusals: Refusals) -> Self {
        self.refusals = refusals;
        self
    }

    fn write(&self, ctx: &mut ws::WebsocketContext<Self>, frame: String) {
        if !self.closing {
            ctx.text(frame);
        }
    }

    fn reply(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        status: ReplyStatus,
        response: &str,
    ) {
        let frame =
            protocol::encode_reply(self.framing, join_ref, msg_ref, topic, status, response);
        self.write(ctx, frame);
    }

    fn refuse(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        refusal: Refusal,
    ) {
        self.hub.metrics.rejected(refusal.into());
        let response = refusal.response();
        self.reply(ctx, join_ref, msg_ref, topic, ReplyStatus::Error, &response);
    }

    /// Turns a bad frame away: counted, then the connection is closed.
    fn reject(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        rejection: Rejection,
        code: CloseCode,
        why: &str,
    ) {
        self.hub.metrics.rejected(rejection);
        self.close(ctx, code, why);
    }

    /// Closes the connection with a close code. The connection leaves the
    /// hub at once; TCP closes when the client answers with its own close
    /// frame, or after `CLOSE_HANDSHAKE_WAIT`.
    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, why: &str) {
        if self.closing {
            return;
        }
        tracing::debug!(session = ?self.id, ?code, why, "closing connection");
        ctx.close(Some(CloseReason {
            code,
            description: Some(why.to_owned()),
        }));
        self.closing = true;
        self.depart();
        ctx.run_later(CLOSE_HANDSHAKE_WAIT, |_, ctx| ctx.stop());
    }

    /// Takes the connection out of the hub, once: every channel still joined
    /// goes away with its leave effects (`ChatLifetime` knows them all by
    /// this connection's id).
    fn depart(&mut self) {
        if std::mem::replace(&mut self.departed, true) {
            return;
        }
        // From here on relays pass these channels over (and hold for a token
        // user who is away) rather than queue frames nobody will write.
        for channel in self.table.iter() {
            channel.open.close();
        }
        self.hub.sessions.remove(&self.id);
        self.hub.metrics.connections(self.framing).dec();
        self.hub.lifetime.do_send(SessionGone { session: self.id });
    }

    /// The frame guard refused a frame before it reached the codec.
    fn refused(&mut self, violation: Violation, ctx: &mut ws::WebsocketContext<Self>) {
        match violation {
            Violation::TooBig => {
                self.reject(ctx, Rejection::TooBig, CloseCode::Size, "message too big")
            }
            Violation::Protocol => self.reject(
                ctx,
                Rejection::Protocol,
                CloseCode::Protocol,
                "protocol error",
            ),
        }
    }

    /// Closes the connection if it has been silent for the idle timeout,
    /// otherwise checks again when it could next expire (one timer per
    /// connection, not a periodic tick).
    fn watch_idle(&self, ctx: &mut ws::WebsocketContext<Self>, after: Duration) {
        ctx.run_later(after, |session, ctx| {
            let timeout = session.hub.config.idle_timeout;
            let idle = session.last_seen.elapsed();
            if idle >= timeout {
                session.close(ctx, CloseCode::Normal, "idle timeout");
            } else {
                session.watch_idle(ctx, timeout - idle);
            }
        });
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let message = match protocol::decode(self.framing, text) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(session = ?self.id, %error, "malformed frame");
                return self.reject(
                    ctx,
                    Rejection::Malformed,
                    CloseCode::Invalid,
                    "malformed frame",
                );
            }
        };
        let join_ref = message.join_ref.map(|r| r.get());
        let msg_ref = message.msg_ref.map(|r| r.get());
        match dispatch(&self.table, &message.topic, &message.event, join_ref) {
            Action::Heartbeat => {
                self.reply(ctx, join_ref, msg_ref, "phoenix", ReplyStatus::Ok, "{}");
            }
            Action::Join { replaces } => self.join(message, replaces, ctx),
            Action::Leave(channel) => {
                self.reply(
                    ctx,
                    join_ref,
                    msg_ref,
                    &message.topic,
                    ReplyStatus::Ok,
                    "{}",
                );
                if let Some(channel) = self.table.remove(channel) {
                    channel.open.close();
                    self.write_close(ctx, &channel);
                    self.hub.lifetime.do_send(ChannelLeft {
                        session: self.id,
                        channel: channel.id,
                    });
                }
            }
            Action::LeaveUnjoined => {
                self.reply(
                    ctx,
                    join_ref,
                    msg_ref,
                    &message.topic,
                    ReplyStatus::Ok,
                    "{}",
                );
            }
            Action::Ignore => {}
            Action::Unmatched => {
                self.refuse(ctx, None, msg_ref, &message.topic, Refusal::UnmatchedTopic);
            }
            Action::Event(channel) => self.event(channel, message, ctx),
        }
    }

    fn write_close(&self, ctx: &mut ws::WebsocketContext<Self>, channel: &Channel) {
        let frame =
            protocol::encode_close(self.framing, channel.join_ref.as_deref(), &channel.topic);
        self.write(ctx, frame);
    }

    /// D2/D3. Routing is pure and happens here; the rest happens in
    /// `ChatLifetime`, and the session reads no further frames until it
    /// answers, so the join reply precedes anything else on the topic.
    fn join(
        &mut self,
        message: Inbound<'_>,
        replaces: Option<ChannelId>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let request_join_ref: Option<JsonRef> = message.join_ref.map(|r| Arc::from(r.get()));
        let msg_ref: Option<JsonRef> = message.msg_ref.map(|r| Arc::from(r.get()));
        if let Some(old) = replaces.and_then(|old| self.table.remove(old)) {
            // D3: the old channel is closed first, without leave effects.
            old.open.close();
            self.write_close(ctx, &old);
        } else if self.table.is_full() {
            return self.refuse(
                ctx,
                request_join_ref.as_deref(),
                msg_ref.as_deref(),
                &message.topic,
                Refusal::TooManyChannels,
            );
        }
        let routed = check_join_refs(request_join_ref.as_deref(), msg_ref.as_deref())
            .and_then(|()| route_join(&message.topic, message.payload))
            .and_then(|target| bind_join(target, self.identity.as_ref()));
        let target = match routed {
            Ok(target) => target,
            Err(refusal) => {
                if let Some(old) = replaces {
                    self.hub.lifetime.do_send(ChannelLeft {
                        session: self.id,
                        channel: old,
                    });
                }
                let join_ref = match refusal {
                    Refusal::UnmatchedTopic => None,
                    _ => request_join_ref.as_deref(),
                };
                return self.refuse(ctx, join_ref, msg_ref.as_deref(), &message.topic, refusal);
            }
        };
        let Some(handle) = self.handle.clone() else {
            return;
        };
        let topic: Arc<str> = Arc::from(&*message.topic);
        let channel = ChannelId::next();
        // V1 has no join refs of its own: the join's ref stands in (2.1).
        let join_ref = request_join_ref.clone().or_else(|| msg_ref.clone());
        let open = Liveness::new();
        let join = Join {
            session: handle,
            channel,
            topic: topic.clone(),
            join_ref: join_ref.clone(),
            target,
            extensions: Extensions::from_params(message.payload),
            replaces,
            open: open.clone(),
        };
        let hub = self.hub.clone();
        let joined = async move {
            let outcome = hub.lifetime.send(join).await;
            // A token user's chat join reply counts the chat's messages (`seq`,
            // PROTOCOL 6.3): it goes out once the transcript holds all of them,
            // so a page reading the history right after it finds them. Bounded
            // like a held sender: a failing store does not hold the join.
            if let Ok(Ok(Joined {
                kind,
                reply: Some(_),
            })) = &outcome
            {
                if matches!(kind, ChannelKind::Chat { .. }) {
                    let wait = hub.config.transcript_wait;
                    let _ = tokio::time::timeout(wait, hub.transcripts.flush_async()).await;
                }
            }
            outcome
        };
        let answer = joined.into_actor(self).map(move |outcome, session, ctx| {
            let reply_refs = (request_join_ref.as_deref(), msg_ref.as_deref());
            match outcome {
                Ok(Ok(Joined { kind, reply })) => {
                    session.table.insert(Channel {
                        id: channel,
                        topic: topic.clone(),
                        join_ref,
                        kind,
                        open,
                    });
                    session.reply(
                        ctx,
                        reply_refs.0,
                        reply_refs.1,
                        &topic,
                        ReplyStatus::Ok,
                        reply.as_deref().unwrap_or("{}"),
                    );
                }
                Ok(Err(refusal)) => {
                    session.refuse(ctx, reply_refs.0, reply_refs.1, &topic, refusal)
                }
                Err(error) => {
                    tracing::error!(%error, "ChatLifetime did not answer a join");
                    let response = protocol::error_response("internal error");
                    session.reply(
                        ctx,
                        reply_refs.0,
                        reply_refs.1,
                        &topic,
                        ReplyStatus::Error,
                        &response,
                    );
                }
            }
        });
        ctx.wait(answer);
    }

    /// D9: an application event on a joined channel.
    fn event(
        &mut self,
        channel: ChannelId,
        message: Inbound<'_>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Some(channel) = self.table.by_id(channel) else {
            return;
        };
        let join_ref = message.join_ref.map(|r| r.get());
        let msg_ref = message.msg_ref.map(|r| r.get());
        match command_for(&channel.kind, &message.event, message.payload) {
            Err(refusal) => self.refuse(ctx, join_ref, msg_ref, &message.topic, refusal),
            Ok(Command::Relay { to, .. }) => {
                // The hot path: straight to the other side, no reply on success.
                let ChannelKind::Chat { chat, role } = channel.kind else {
                    return;
                };
                let reply = self.hub.cluster.as_ref().map(|cluster| ReplyTo {
                    node: cluster.node().clone(),
                    session: self.id.raw(),
                    channel: channel.id.raw(),
                    join_ref: join_ref.map(str::to_owned),
                    msg_ref: msg_ref.map(str::to_owned),
                });
                let relay = Relay {
                    topic: channel.topic.clone(),
                    chat,
                    from: role,
                    to,
                    read_at: self.last_seen,
                    reply,
                };
                match relay.send(&self.hub, message.payload) {
                    Ok(_) => {}
                    Err(RelayRefused::ChatNotActive) => self.refuse(
                        ctx,
                        join_ref,
                        msg_ref,
                        &message.topic,
                        Refusal::ChatFinished,
                    ),
                    Err(RelayRefused::RecipientAway) => self.refuse(
                        ctx,
                        join_ref,
                        msg_ref,
                        &message.topic,
                        Refusal::RecipientAway,
                    ),
                    Err(RelayRefused::Unavailable) => {
                        self.refuse(ctx, join_ref, msg_ref, &message.topic, Refusal::Unavailable)
                    }
                    Err(RelayRefused::NotRecorded(_)) => {
                        let refs = (join_ref.map(Arc::from), msg_ref.map(Arc::from));
                        self.hold_sender(relay, message.payload.to_owned(), refs, ctx);
                    }
                }
            }
            Ok(command) => {
                let Some(session) = self.handle.clone() else {
                    return;
                };
                self.hub.lifetime.do_send(Request {
                    session,
                    channel: channel.id,
                    topic: channel.topic.clone(),
                    kind: channel.kind.clone(),
                    command,
                    name: self.identity.as_ref().map(|i| Arc::from(i.name())),
                    join_ref: join_ref.map(Arc::from),
                    msg_ref: msg_ref.map(Arc::from),
                });
            }
        }
    }

    /// The transcript writer has no room for this connection's message, or
    /// the store is failing: read nothing more from it (TCP pushes back on
    /// the sender) and try again as the writer catches up. After
    /// `transcript_wait` the message is refused with `transcript backlog`
    /// (or `transcript unavailable`, if the store was failing at the last
    /// try). Nothing is relayed that is not recorded.
    fn hold_sender(
        &mut self,
        relay: Relay,
        payload: Box<RawValue>,
        refs: (Option<JsonRef>, Option<JsonRef>),
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let hub = self.hub.clone();
        let deadline = Instant::now() + hub.config.transcript_wait;
        let retry = async move {
            let mut pause = Duration::from_millis(1);
            loop {
                tokio::time::sleep(pause).await;
                match relay.send(&hub, &payload) {
                    Err(RelayRefused::NotRecorded(_)) if Instant::now() < deadline => {
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    outcome => return (outcome, relay.topic),
                }
            }
        };
        ctx.wait(
            retry
                .into_actor(self)
                .map(move |(outcome, topic), session, ctx| {
                    let refusal = match outcome {
                        Ok(_) => return,
                        Err(RelayRefused::ChatNotActive) => Refusal::ChatFinished,
                        Err(RelayRefused::RecipientAway) => Refusal::RecipientAway,
                        Err(RelayRefused::Unavailable) => Refusal::Unavailable,
                        Err(RelayRefused::NotRecorded(Backpressure::Backlog)) => {
                            Refusal::TranscriptBacklog
                        }
                        Err(RelayRefused::NotRecorded(Backpressure::Unavailable)) => {
                            Refusal::TranscriptUnavailable
                        }
                    };
                    let (join_ref, msg_ref) = (refs.0.as_deref(), refs.1.as_deref());
                    session.refuse(ctx, join_ref, msg_ref, &topic, refusal);
                }),
        );
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        let limit = self.hub.config.max_frame_bytes;
        let (bytes, last) = match item {
            Item::FirstText(bytes) => {
                self.fragments = Some(Vec::new());
                (bytes, false)
            }
            Item::FirstBinary(_) => {
                return self.reject(
                    ctx,
                    Rejection::Binary,
                    CloseCode::Unsupported,
                    "binary frames are not supported",
                );
            }
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let Some(buffer) = self.fragments.as_mut() else {
            return self.reject(
                ctx,
                Rejection::Protocol,
                CloseCode::Protocol,
                "continuation without a first frame",
            );
        };
        if buffer.len() + bytes.len() > limit {
            return self.reject(ctx, Rejection::TooBig, CloseCode::Size, "message too big");
        }
        buffer.extend_from_slice(&bytes);
        if last {
            let whole = self.fragments.take().unwrap_or_default();
            match String::from_utf8(whole) {
                Ok(text) => self.on_text(&text, ctx),
                Err(_) => self.reject(
                    ctx,
                    Rejection::Malformed,
                    CloseCode::Invalid,
                    "text is not UTF-8",
                ),
            }
        }
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let handle = Arc::new(SessionHandle::new(
            self.id,
            self.framing,
            ctx.address(),
            OutboundBound::from_config(&self.hub.config),
            self.hub.metrics.clone(),
        ));
        self.hub.sessions.insert(self.id, handle.clone());
        self.hub.metrics.connections(self.framing).inc();
        self.handle = Some(handle);
        if let Some(identity) = &self.identity {
            tracing::debug!(
                user = %identity.user().key,
                role = %identity.role(),
                "connection with a token"
            );
        }
        self.watch_idle(ctx, self.hub.config.idle_timeout);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.depart();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        if self.closing {
            // Waiting for the client's answer to our close; the rest is dropped.
            if matches!(item, Ok(ws::Message::Close(_)) | Err(_)) {
                ctx.stop();
            }
            return;
        }
        if let Ok(ws::Message::Close(_)) = item {
            // The frame guard stands an empty close in for a frame it refused.
            if let Some(violation) = self.refusals.take() {
                return self.refused(violation, ctx);
            }
        }
        self.last_seen = Instant::now();
        if let Some(inbound) = &self.inbound {
            if inbound.check().is_err() {
                return self.reject(
                    ctx,
                    Rejection::RateLimited,
                    CloseCode::Policy,
                    "policy violation",
                );
            }
        }
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => self.reject(
                ctx,
                Rejection::Binary,
                CloseCode::Unsupported,
                "binary frames are not supported",
            ),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                // The client closed: answer, and close TCP right after.
                ctx.close(reason);
                self.closing = true;
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                self.reject(ctx, Rejection::TooBig, CloseCode::Size, "message too big")
            }
            // actix-web-actors reports both text that is not UTF-8 and a
            // broken connection as `Io(Other)`; only the message tells them
            // apart. The first is the client's bad input (1007), the second
            // just the end of the connection (counted as nothing).
            Err(ws::ProtocolError::Io(error)) if error.to_string().contains("utf-8") => self
                .reject(
                    ctx,
                    Rejection::Malformed,
                    CloseCode::Invalid,
                    "invalid frame data",
                ),
            Err(ws::ProtocolError::Io(error)) => {
                tracing::debug!(session = ?self.id, %error, "connection lost");
                ctx.stop();
            }
            Err(error) => {
                tracing::debug!(session = ?self.id, %error, "WebSocket protocol error");
                self.reject(
                    ctx,
                    Rejection::Protocol,
                    CloseCode::Protocol,
                    "protocol error",
                );
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Deliver> for Session {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if let Some(handle) = &self.handle {
            handle.written(msg.frame.len());
        }
        // Frames for a channel that has since gone are dropped (3.6).
        if self.table.contains(msg.channel) && !self.closing {
            ctx.text(msg.frame);
            if let Some(read_at) = msg.relayed_at {
                self.hub.metrics.observe_relay(read_at.elapsed());
            }
        }
    }
}

impl Handler<ChannelClosed> for Session {
    type Result = ();
    fn handle(&mut self, msg: ChannelClosed, ctx: &mut Self::Context) {
        if let Some(handle) = &self.handle {
            handle.written(msg.frame.len());
        }
        if self.table.remove(msg.channel).is_some() && !self.closing {
            ctx.text(msg.frame);
        }
    }
}

impl Handler<Evict> for Session {
    type Result = ();
    fn handle(&mut self, _: Evict, ctx: &mut Self::Context) {
        self.close(ctx, CloseCode::Policy, "slow consumer");
    }
}

impl Handler<Shutdown> for Session {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.close(ctx, CloseCode::Away, "server shutting down");
    }
}
