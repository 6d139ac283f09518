//! One simulated student, as the 2015 client's `src/elixir/student.js` behaves
//! (PROTOCOL.md 4.1 and 7.5), on its own WebSocket:
//!
//! 1. join `presence:student:<id>` with `{"userId": id, "role": "student"}`;
//! 2. on the join's `ok`, push `student:ready` `{"userId": id}` (with `--question`
//!    also `"question": "Question from student <id>: how do I start?"`, PROTOCOL 6.4);
//! 3. on `new:chat`, join `chats:<id>` and, on its `ok`, push `student:joined`;
//! 4. answer every `student:receive` with `student:send`
//!    `{"message": "Message #<n> from student: <id>"}` (n counts received messages);
//! 5. on `chat:terminated` the student is done: it leaves the chat and its presence
//!    topic. (The 2015 client then keeps its socket until its process exits; this one
//!    closes it once the presence leave is acknowledged.)
//!
//! Heartbeats go out every 30 s like client A's. Everything it observes is reported to
//! the checker; relayed messages are judged here by a [`StudentRelay`].
//!
//! **Drops and returns** (`--drop-rate`, `--reconnect`, PROTOCOL 6.3). A student in
//! the drop plan closes its socket abruptly after the k-th frame it reads (never once
//! it is leaving), waits 0.1-2 s and connects again (to the next `--url`) with a token
//! for the same sub; with `--reconnect` so does a student whose connection the server
//! dropped. It rejoins its presence topic and goes by the reply's `state`: `waiting`,
//! it sends `student:ready` again (it keeps its place); `chatting`, it rejoins that
//! chat (a chat it never heard of was assigned as it dropped: it joins it as new);
//! `finished`, its chat ended meanwhile (fine if it had answered the last message)
//! and it leaves; `present`, it lost its place or its chat and starts over with
//! `student:ready`. A chat rejoin reply `{"seq","held"}` is judged by
//! [`crate::resume::student_resume`]: the student resends its last answer, waits for
//! the held message, or takes a message lost with the connection as read.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::checks::{Event, Role, StudentRelay, Violation};
use crate::codec::{
    decode, parse, ChatMessage, ChatObject, ChatStanding, Frame, Reply, StudentStanding,
};
use crate::conn::{self, Conn, Recv};
use crate::resume::{self, ChatAway, ChatResume};
use crate::stats::ErrorKind;
use crate::{Shared, UserResult};

enum Pending {
    PresenceJoin,
    /// The presence join after a drop: its reply says where the student stands.
    PresenceRejoin,
    Ready,
    ChatJoin(String),
    /// A chat join after a drop: its reply is `{"seq","held"}`.
    ChatRejoin(String),
    Joined,
    /// `*:joined` pushed again after a rejoin: the chat may have ended meanwhile,
    /// so `chat finished` is no error.
    JoinedAgain,
    ChatLeave,
    PresenceLeave,
    Heartbeat,
}

struct Chat {
    topic: String,
    relay: StudentRelay,
    /// Neither terminated nor abandoned nor refused.
    active: bool,
    /// This side sent `phx_leave` (or the server closed the channel).
    left: bool,
    /// Held messages due, the other side away.
    away: ChatAway,
}

struct Student {
    id: u64,
    shared: Arc<Shared>,
    presence: String,
    pending: HashMap<u64, Pending>,
    chats: HashMap<String, Chat>,
    /// `students_pending` was decremented (queued, or given up).
    counted_queued: bool,
    /// `students_done` was incremented (finished, or given up).
    counted_done: bool,
    ready_sent_at: Option<Instant>,
    queue_wait_us: Option<u64>,
    leaving: bool,
    /// Its `student:ready` was acknowledged and it has not lost its place since.
    has_place: bool,
    /// Frames read so far (the drop plan counts them).
    frames: u32,
    /// Drop the connection after this many frames (`--drop-rate`), once.
    drop_after: Option<u32>,
    /// When its connection last dropped.
    dropped_at: Option<Instant>,
    rng: fastrand::Rng,
}

/// What handling one frame leads to.
enum Flow {
    Continue,
    /// The presence leave was acknowledged: close the socket.
    Done,
    /// The student cannot go on (refused join or ready).
    GiveUp,
    /// The drop plan says: drop the connection now.
    Drop,
}

pub(crate) async fn run(shared: Arc<Shared>, id: u64) -> UserResult {
    let mut student = Student {
        id,
        presence: format!("presence:student:{id}"),
        shared: shared.clone(),
        pending: HashMap::new(),
        chats: HashMap::new(),
        counted_queued: false,
        counted_done: false,
        ready_sent_at: None,
        queue_wait_us: None,
        leaving: false,
        has_place: false,
        frames: 0,
        drop_after: shared.drops.students.get(&id).copied(),
        dropped_at: None,
        rng: shared.rng(id),
    };
    let stopped = tokio::select! {
        () = student.live() => false,
        () = shared.stopped() => true,
    };
    UserResult::Student {
        queue_wait_us: student.queue_wait_us,
        stuck: (stopped && !student.counted_done).then(|| student.describe()),
    }
}

impl Student {
    /// Where this student stands, for the report of a run that stopped without it.
    fn describe(&self) -> String {
        let mut s = format!(
            "student {}: {}",
            self.id,
            if self.has_place {
                "queued"
            } else {
                "not queued"
            }
        );
        if let Some(at) = self.dropped_at {
            s += &format!(", dropped {:.1} s ago", at.elapsed().as_secs_f64());
        }
        for (id, chat) in &self.chats {
            s += &format!(
                ", chat {id} ({}{}read {}{})",
                if chat.active { "active, " } else { "over, " },
                if chat.away.peer_away {
                    "teacher away, "
                } else {
                    ""
                },
                chat.relay.received(),
                if chat.away.held_expected > 0 {
                    format!(", {} held due", chat.away.held_expected)
                } else {
                    String::new()
                }
            );
        }
        let pending: Vec<&str> = self
            .pending
            .values()
            .map(|p| match p {
                Pending::PresenceJoin => "presence join",
                Pending::PresenceRejoin => "presence rejoin",
                Pending::Ready => "ready",
                Pending::ChatJoin(_) => "chat join",
                Pending::ChatRejoin(_) => "chat rejoin",
                Pending::Joined | Pending::JoinedAgain => "student:joined",
                Pending::ChatLeave => "chat leave",
                Pending::PresenceLeave => "presence leave",
                Pending::Heartbeat => "heartbeat",
            })
            .collect();
        if !pending.is_empty() {
            s += &format!(", awaiting replies to {}", pending.join(", "));
        }
        s
    }

    async fn live(&mut self) {
        let role = crate::token::Role::Student;
        let Some(mut conn) = self.shared.connect(role, self.id).await else {
            self.give_up();
            return;
        };
        loop {
            let flow = self.converse(&mut conn).await;
            let next = conn.url_index + 1;
            match flow {
                Ok(Flow::Done) => {
                    conn.close().await;
                    return;
                }
                Ok(Flow::Drop) => resume::drop_now(&self.shared, conn),
                Ok(_) => {
                    self.give_up();
                    return;
                }
                Err(_) => {
                    // A student already leaving (finished) has nothing to resume.
                    if !resume::lost(&self.shared, conn) || self.leaving {
                        self.give_up();
                        return;
                    }
                }
            }
            match self.come_back(next).await {
                Some(c) => conn = c,
                None => return,
            }
        }
    }

    /// After a drop: forget what the dead connection owed, pause, connect again to
    /// `--url` number `url_index`. None: it could not (given up).
    async fn come_back(&mut self, url_index: usize) -> Option<Conn> {
        self.dropped_at = Some(Instant::now());
        self.pending.clear();
        for chat in self.chats.values_mut() {
            chat.away.forget();
        }
        // Not in the queue for sure until the server says so: teachers must not stop
        // meanwhile (their rule waits for every student to be queued).
        if self.counted_queued {
            self.counted_queued = false;
            self.shared.counters.students_pending.fetch_add(1, Relaxed);
        }
        self.shared.emit(Event::StudentDropped { student: self.id });
        tokio::time::sleep(resume::pause(&mut self.rng)).await;
        let role = crate::token::Role::Student;
        let conn = self.shared.connect_to(role, self.id, url_index).await;
        if conn.is_none() {
            self.give_up();
        }
        conn
    }

    /// `student:ready`'s payload: `{"userId": id}`, with `--question` also a question.
    fn ready_payload(&self) -> serde_json::Value {
        if self.shared.config.question {
            json!({"userId": self.id, "question": format!("Question from student {}: how do I start?", self.id)})
        } else {
            json!({"userId": self.id})
        }
    }

    /// The student's resume is judged only within the server's grace window.
    fn judged(&self) -> bool {
        resume::judged(&self.shared, self.dropped_at)
    }

    fn chat_params(&self) -> serde_json::Value {
        resume::chat_params(&self.shared, self.id, "student")
    }

    /// Runs the conversation until done, given up, dropped, or the connection is lost.
    async fn converse(&mut self, conn: &mut Conn) -> Result<Flow, WsError> {
        let join = json!({"userId": self.id, "role": "student"});
        let r = conn.join(&self.presence, &join).await?;
        let back = self.dropped_at.is_some();
        self.pending.insert(
            r,
            if back {
                Pending::PresenceRejoin
            } else {
                Pending::PresenceJoin
            },
        );
        let mut heartbeat = conn::every(self.shared.config.heartbeat_interval);
        loop {
            tokio::select! {
                recv = conn.recv() => match recv {
                    Recv::Text(text) => match self.handle(conn, text.as_str()).await? {
                        Flow::Continue => {
                            self.frames += 1;
                            if !self.leaving && self.drop_after.is_some_and(|k| self.frames >= k) {
                                self.drop_after = None;
                                return Ok(Flow::Drop);
                            }
                        }
                        flow => return Ok(flow),
                    },
                    Recv::Binary => self.shared.error(ErrorKind::UnexpectedFrame),
                    Recv::Closed(reason) => {
                        return Err(WsError::Io(std::io::Error::other(reason)));
                    }
                },
                _ = heartbeat.tick() => {
                    let r = conn.heartbeat().await?;
                    self.pending.insert(r, Pending::Heartbeat);
                }
            }
        }
    }

    /// Finished or not, this student will not do anything more.
    fn give_up(&mut self) {
        self.mark_queued();
        self.mark_done();
    }

    fn mark_queued(&mut self) {
        if !self.counted_queued {
            self.counted_queued = true;
            self.shared.counters.students_pending.fetch_sub(1, Relaxed);
        }
    }

    fn mark_done(&mut self) {
        if !self.counted_done {
            self.counted_done = true;
            self.shared.student_done();
        }
    }

    async fn handle(&mut self, conn: &mut Conn, text: &str) -> Result<Flow, WsError> {
        let Ok(frame) = decode(conn.framing(), text) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(Flow::Continue);
        };
        if frame.event == "phx_reply" {
            return self.on_reply(conn, &frame).await;
        }
        if frame.topic == self.presence {
            match &*frame.event {
                "new:chat" => {
                    if let Some((chat, now)) = self.shared.new_chat(&frame) {
                        self.join_new_chat(conn, chat, now).await?;
                    }
                }
                "phx_close" if self.leaving => {}
                _ => self.shared.error(ErrorKind::UnexpectedFrame),
            }
            return Ok(Flow::Continue);
        }
        if let Some(chat_id) = frame.topic.strip_prefix("chats:") {
            return self.on_chat_event(conn, chat_id, &frame).await;
        }
        self.shared.error(ErrorKind::UnexpectedFrame);
        Ok(Flow::Continue)
    }

    async fn on_reply(&mut self, conn: &mut Conn, frame: &Frame<'_>) -> Result<Flow, WsError> {
        let Ok(reply) = parse::<Reply>(frame.payload) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(Flow::Continue);
        };
        let Some(pending) = self.shared.take_pending(&mut self.pending, frame, &reply) else {
            return Ok(Flow::Continue);
        };
        match pending {
            Pending::PresenceRejoin if reply.is_ok() => {
                return self.on_back(conn, reply.response).await;
            }
            Pending::ChatRejoin(chat) => {
                return self.on_chat_back(conn, &chat, &reply).await;
            }
            _ => {}
        }
        if matches!(pending, Pending::JoinedAgain)
            && (reply.is_ok() || reply.response.get().contains("chat finished"))
        {
            return Ok(Flow::Continue);
        }
        if !reply.is_ok() {
            if let Pending::ChatJoin(chat) = &pending {
                if self.join_again(conn, &reply, chat).await? {
                    return Ok(Flow::Continue);
                }
            }
            self.shared.error(ErrorKind::ErrorReply);
            return Ok(match pending {
                Pending::PresenceJoin | Pending::PresenceRejoin | Pending::Ready => Flow::GiveUp,
                Pending::ChatJoin(chat) => {
                    // e.g. `chat finished`: the chat is gone; stay in the queue.
                    if let Some(c) = self.chats.get_mut(&chat) {
                        c.active = false;
                        c.left = true;
                    }
                    Flow::Continue
                }
                Pending::PresenceLeave => Flow::Done,
                _ => Flow::Continue,
            });
        }
        match pending {
            Pending::PresenceJoin => {
                let now = Instant::now();
                self.ready_sent_at = Some(now);
                self.shared.emit(Event::ReadySent {
                    student: self.id,
                    at: self.shared.micros(now),
                });
                let r = conn
                    .push(&self.presence, "student:ready", &self.ready_payload())
                    .await?;
                self.pending.insert(r, Pending::Ready);
            }
            Pending::Ready => {
                self.shared.emit(Event::ReadyAcked {
                    student: self.id,
                    at: self.shared.now_us(),
                });
                self.has_place = true;
                self.mark_queued();
            }
            Pending::ChatJoin(chat) => {
                if let Some(c) = self.chats.get_mut(&chat) {
                    if self.shared.config.reconnect {
                        c.away.first_join(&self.shared, reply.response);
                    }
                    let topic = c.topic.clone();
                    let r = conn.push(&topic, "student:joined", &json!({})).await?;
                    self.pending.insert(r, Pending::Joined);
                }
            }
            Pending::PresenceLeave => return Ok(Flow::Done),
            Pending::PresenceRejoin
            | Pending::ChatRejoin(_)
            | Pending::Joined
            | Pending::JoinedAgain
            | Pending::ChatLeave
            | Pending::Heartbeat => {}
        }
        Ok(Flow::Continue)
    }

    /// The presence rejoin reply after a drop: where the student stands (6.3).
    async fn on_back(
        &mut self,
        conn: &mut Conn,
        response: &serde_json::value::RawValue,
    ) -> Result<Flow, WsError> {
        let Ok(standing) = parse::<StudentStanding>(response) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(Flow::GiveUp);
        };
        let counters = &self.shared.counters;
        counters.resumes.fetch_add(1, Relaxed);
        let judged = self.judged();
        let current = self
            .chats
            .iter()
            .find(|(_, c)| c.active)
            .map(|(id, _)| id.clone());
        let messages = self.shared.config.messages;
        match (standing.state.as_str(), standing.chat) {
            ("waiting", _) => {
                if let Some(chat) = current {
                    self.chat_lost(&chat, judged);
                } else if self.has_place {
                    counters.places_kept.fetch_add(1, Relaxed);
                }
                self.ready_again(conn).await?;
            }
            ("chatting", Some(chat)) => {
                if current.is_none() && self.has_place {
                    counters.places_kept.fetch_add(1, Relaxed);
                }
                if let Some(old) = current.filter(|old| *old != chat.id) {
                    self.chat_lost(&old, judged);
                }
                self.has_place = true;
                self.mark_queued();
                match self.chats.get_mut(&chat.id) {
                    Some(c) => {
                        c.active = true;
                        c.left = false;
                        let topic = c.topic.clone();
                        let r = conn.join(&topic, &self.chat_params()).await?;
                        self.pending.insert(r, Pending::ChatRejoin(chat.id));
                    }
                    // Assigned as it dropped: `new:chat` went to the dead connection.
                    None => self.join_new_chat(conn, chat, Instant::now()).await?,
                }
            }
            ("finished", _) => {
                // Its chat ended while it was away: fine only if it had answered the
                // last message (the teacher then terminates, as it should).
                let answered_all = current.as_ref().is_some_and(|c| {
                    self.chats
                        .get(c)
                        .is_some_and(|c| c.relay.received() >= messages)
                });
                match current {
                    Some(chat) if answered_all => self.chat_over(&chat),
                    Some(chat) => self.chat_lost(&chat, judged),
                    None if judged && self.has_place => {
                        self.shared.violation(Violation::ChatEndedAway);
                    }
                    None => {}
                }
                self.mark_queued();
                self.mark_done();
                self.leaving = true;
                let r = conn.leave(&self.presence).await?;
                self.pending.insert(r, Pending::PresenceLeave);
            }
            ("present", _) => {
                if let Some(chat) = current {
                    self.chat_lost(&chat, judged);
                } else if self.has_place && judged {
                    self.shared.violation(Violation::PlaceLost);
                }
                // Start over, as a tokenless client would.
                self.has_place = false;
                self.ready_again(conn).await?;
            }
            _ => {
                self.shared.error(ErrorKind::MalformedFrame);
                return Ok(Flow::GiveUp);
            }
        }
        Ok(Flow::Continue)
    }

    async fn ready_again(&mut self, conn: &mut Conn) -> Result<(), WsError> {
        let r = conn
            .push(&self.presence, "student:ready", &self.ready_payload())
            .await?;
        self.pending.insert(r, Pending::Ready);
        Ok(())
    }

    /// Its chat is over without a `chat:terminated` read (it came while away): the
    /// student is done, as on `chat:terminated`.
    fn chat_over(&mut self, chat_id: &str) {
        if let Some(chat) = self.chats.get_mut(chat_id) {
            chat.active = false;
            chat.left = true;
        }
        if !self.counted_done {
            self.shared.counters.students_finished.fetch_add(1, Relaxed);
        }
        self.mark_done();
    }

    /// Its chat is gone although it had not ended it: a violation within the window.
    /// A later chat of this student is then no double assignment.
    fn chat_lost(&mut self, chat_id: &str, judged: bool) {
        if judged {
            self.shared.violation(Violation::ChatEndedAway);
        }
        if let Some(chat) = self.chats.get_mut(chat_id) {
            chat.active = false;
            chat.left = true;
        }
        self.shared.emit(Event::ChatAbandoned {
            chat: chat_id.to_owned(),
        });
    }

    /// The chat rejoin reply after a drop: `{"seq","held"}`, judged against what this
    /// student read.
    async fn on_chat_back(
        &mut self,
        conn: &mut Conn,
        chat_id: &str,
        reply: &Reply<'_>,
    ) -> Result<Flow, WsError> {
        let messages = self.shared.config.messages;
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return Ok(Flow::Continue);
        };
        let params = resume::chat_params(&self.shared, self.id, "student");
        let topic = chat.topic.clone();
        if let Some(r) =
            resume::rejoin_unavailable(&self.shared, conn, reply, &mut chat.away, &topic, &params)
                .await?
        {
            self.pending
                .insert(r, Pending::ChatRejoin(chat_id.to_owned()));
            return Ok(Flow::Continue);
        }
        if !reply.is_ok() {
            // The chat ended between the presence reply and this join.
            if chat.relay.received() >= messages {
                self.chat_over(chat_id);
            } else {
                let judged = self.judged();
                self.chat_lost(chat_id, judged);
            }
            self.mark_done();
            self.leaving = true;
            let r = conn.leave(&self.presence).await?;
            self.pending.insert(r, Pending::PresenceLeave);
            return Ok(Flow::Continue);
        }
        let Ok(standing) = parse::<ChatStanding>(reply.response) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(Flow::Continue);
        };
        let counters = &self.shared.counters;
        counters.chats_resumed.fetch_add(1, Relaxed);
        let topic = chat.topic.clone();
        let resend = match resume::student_resume(
            chat.relay.received(),
            messages,
            standing.seq,
            standing.held,
        ) {
            ChatResume::Wait { held } => {
                chat.away.held_expected = held;
                None
            }
            ChatResume::Resend => {
                counters.resent.fetch_add(1, Relaxed);
                Some(chat.relay.answer_again())
            }
            ChatResume::RecoverLost => {
                counters.recovered_in_transit.fetch_add(1, Relaxed);
                let answer = chat.relay.recover();
                self.shared.emit(Event::LostInTransit {
                    chat: chat_id.to_owned(),
                    to: Role::Student,
                    k: chat.relay.received(),
                });
                Some(answer)
            }
            ChatResume::Mismatch => {
                self.shared.violation(Violation::MessageLost);
                None
            }
        };
        if let Some(answer) = resend {
            self.send_answer(conn, chat_id, answer).await?;
        }
        let r = conn.push(&topic, "student:joined", &json!({})).await?;
        self.pending.insert(r, Pending::JoinedAgain);
        Ok(Flow::Continue)
    }

    /// `student:send` of `answer` in `chat_id` (noting when the teacher is away).
    async fn send_answer(
        &mut self,
        conn: &mut Conn,
        chat_id: &str,
        answer: String,
    ) -> Result<(), WsError> {
        let Some(chat) = self.chats.get(chat_id) else {
            return Ok(());
        };
        if chat.away.peer_away {
            self.shared.emit(Event::SentToAway {
                chat: chat_id.to_owned(),
                from: Role::Student,
                k: chat.relay.received(),
            });
        }
        let topic = chat.topic.clone();
        let payload = ChatMessage {
            message: answer.into(),
        };
        conn.push(&topic, "student:send", &payload).await?;
        Ok(())
    }

    /// Its first join of `chat_id` was refused with `unavailable`: join again
    /// after a pause ([`resume::rejoin_unavailable`]). False: no more tries (an
    /// error, as any other refusal).
    async fn join_again(
        &mut self,
        conn: &mut Conn,
        reply: &Reply<'_>,
        chat_id: &str,
    ) -> Result<bool, WsError> {
        let params = self.chat_params();
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return Ok(false);
        };
        let topic = chat.topic.clone();
        let again =
            resume::rejoin_unavailable(&self.shared, conn, reply, &mut chat.away, &topic, &params)
                .await?;
        if let Some(r) = again {
            self.pending
                .insert(r, Pending::ChatJoin(chat_id.to_owned()));
        }
        Ok(again.is_some())
    }

    /// A chat it was given (read at `now`): join it.
    async fn join_new_chat(
        &mut self,
        conn: &mut Conn,
        chat: ChatObject,
        now: Instant,
    ) -> Result<(), WsError> {
        self.shared.emit(Event::StudentAssigned {
            student: self.id,
            chat: chat.id.clone(),
            at: self.shared.micros(now),
        });
        if self.queue_wait_us.is_none() {
            if let Some(sent) = self.ready_sent_at {
                self.queue_wait_us = Some(now.duration_since(sent).as_micros() as u64);
            }
        }
        if self.chats.contains_key(&chat.id) {
            // The same chat announced again is not a new assignment.
            self.shared.error(ErrorKind::UnexpectedFrame);
            return Ok(());
        }
        let topic = format!("chats:{}", chat.id);
        let r = conn.join(&topic, &self.chat_params()).await?;
        self.pending.insert(r, Pending::ChatJoin(chat.id.clone()));
        self.chats.insert(
            chat.id,
            Chat {
                topic,
                relay: StudentRelay::new(self.id),
                active: true,
                left: false,
                away: ChatAway::default(),
            },
        );
        Ok(())
    }

    async fn on_chat_event(
        &mut self,
        conn: &mut Conn,
        chat_id: &str,
        frame: &Frame<'_>,
    ) -> Result<Flow, WsError> {
        let shared = &self.shared;
        let Some(chat) = self.chats.get_mut(chat_id) else {
            shared.error(ErrorKind::UnexpectedFrame);
            return Ok(Flow::Continue);
        };
        chat.away.read(shared, &frame.event, "student:receive");
        match &*frame.event {
            "student:receive" => {
                chat.away.relayed(shared);
                let message = parse::<ChatMessage>(frame.payload).ok();
                let (answer, violation) = chat.relay.receive(message.as_ref().map(|m| &*m.message));
                if let Some(v) = violation {
                    shared.violation(v);
                }
                if !chat.left {
                    self.send_answer(conn, chat_id, answer).await?;
                }
            }
            "chat:away" | "chat:back" if shared.config.reconnect => {
                chat.away.notice(shared, &frame.event);
            }
            "teacher:receive" => shared.violation(chat.relay.wrong_event()),
            "chat:ready" => shared.emit(Event::ChatReady {
                chat: chat_id.to_owned(),
                role: Role::Student,
            }),
            "chat:terminated" => {
                shared.emit(Event::ChatTerminated {
                    chat: chat_id.to_owned(),
                    role: Role::Student,
                });
                if chat.active {
                    chat.active = false;
                    chat.left = true;
                    let topic = chat.topic.clone();
                    if !self.counted_done {
                        shared.counters.students_finished.fetch_add(1, Relaxed);
                    }
                    self.mark_done();
                    let r = conn.leave(&topic).await?;
                    self.pending.insert(r, Pending::ChatLeave);
                    if !self.leaving && !self.chats.values().any(|c| c.active) {
                        self.leaving = true;
                        let r = conn.leave(&self.presence).await?;
                        self.pending.insert(r, Pending::PresenceLeave);
                    }
                }
            }
            "phx_close" => {
                if !chat.left {
                    // The server closed a chat we had not left: abandoned (its teacher
                    // vanished); this student goes back to the queue.
                    chat.left = true;
                    chat.active = false;
                    shared.emit(Event::ChatAbandoned {
                        chat: chat_id.to_owned(),
                    });
                }
            }
            _ => shared.error(ErrorKind::UnexpectedFrame),
        }
        Ok(Flow::Continue)
    }
}
