//! One simulated teacher, as the 2015 client's `src/elixir/teacher.js` behaves
//! (PROTOCOL.md 4.1 and 7.5), on its own WebSocket:
//!
//! 1. join `presence:teachers` with `{"userId": id, "role": "teacher"}`;
//! 2. after the join's `ok`, every `--claim-interval-ms` (10 ms) push `claim:student`
//!    `{"teacherId": id}` while it holds fewer than 5 chats and (no `user:status` seen
//!    yet, or the last one had `students.waiting > 0`);
//! 3. on `new:chat:<id>`, join `chats:<chat>` and, on its `ok`, push `teacher:joined`;
//! 4. on `chat:ready`, send `teacher:send` `{"message": "Message from teacher: 1"}`, and
//!    on each `teacher:receive` the next one, up to `--messages`; after the answer to the
//!    last one, push `chat:terminate`;
//! 5. on `chat:terminated`, leave the chat, free the slot and try to claim at once.
//!
//! **When it stops.** Client A exits on the first `user:status` with
//! `students.total == 0`. This teacher does too, but only after it has seen a student
//! (a status with `total > 0`, or a chat), and only once every student of this run has
//! entered the queue (its `student:ready` was acknowledged) or given up. Without that
//! guard a teacher could stop before (late, rate-limited) students arrive, whenever the
//! roster happens to empty in between.
//!
//! RTT (teacher send → its student's answer read) goes into this task's own histogram,
//! merged with the others at the end.
//!
//! **Drops and returns** (`--drop-rate`, `--reconnect`, PROTOCOL 6.3). A teacher in
//! the drop plan closes its socket abruptly after the k-th frame of its chats, waits
//! 0.1-2 s and connects again (to the next `--url`); with `--reconnect` so does one
//! whose connection the server dropped. It rejoins `presence:teachers`, whose reply
//! lists its active chats (`{"chats": [...]}`): a chat it held that is not listed is
//! fine only if it had sent `chat:terminate` (else a violation); a listed chat it
//! never heard of (assigned as it dropped) is joined as new; each chat it holds is
//! rejoined (reply `{"seq","held"}`, judged by [`crate::resume::teacher_resume`]:
//! resend its last message, wait for the held answer, or take an answer lost with the
//! connection as read) and `teacher:joined` pushed again (idempotent). A rejoined
//! chat in which it has sent nothing yet starts at once: it may have missed
//! `chat:ready` while away, and relaying does not wait for it (7.5; a student not yet
//! on the chat gets the message held). Then it claims again, with its idea of the
//! queue reset (statuses sent while it was away are lost).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::checks::{check_status, Event, Role, TeacherRelay, Violation, MAX_CHATS};
use crate::codec::{
    decode, parse, ChatMessage, ChatObject, ChatStanding, Frame, Reply, Status, TeacherStanding,
};
use crate::conn::{self, Conn, Recv};
use crate::resume::{self, ChatAway, ChatResume};
use crate::stats::{histogram, ErrorKind};
use crate::{Shared, UserResult};

const TEACHERS: &str = "presence:teachers";

enum Pending {
    PresenceJoin,
    /// The presence join after a drop: its reply lists the teacher's chats.
    PresenceRejoin,
    /// A chat join after a drop: its reply is `{"seq","held"}`.
    ChatRejoin(String),
    /// A `claim:student` written at this instant.
    Claim(Instant),
    ChatJoin(String),
    Joined,
    /// `*:joined` pushed again after a rejoin: the chat may have ended meanwhile,
    /// so `chat finished` is no error.
    JoinedAgain,
    Terminate,
    ChatLeave,
    Heartbeat,
}

struct Chat {
    topic: String,
    relay: TeacherRelay,
    ready: bool,
    /// Terminated, abandoned or refused: the slot is free.
    ended: bool,
    left: bool,
    sent_at: Option<Instant>,
    /// It pushed `chat:terminate` (after the last answer).
    terminate_sent: bool,
    /// Held messages due, the other side away.
    away: ChatAway,
}

impl Chat {
    /// `teacher:send` of `message`, the relay's latest, in `chat_id` (noting when the
    /// student is away).
    async fn send(
        &mut self,
        shared: &Shared,
        conn: &mut Conn,
        chat_id: &str,
        message: String,
    ) -> Result<(), WsError> {
        self.sent_at = Some(Instant::now());
        if self.away.peer_away {
            shared.emit(Event::SentToAway {
                chat: chat_id.to_owned(),
                from: Role::Teacher,
                k: self.relay.sent(),
            });
        }
        let payload = ChatMessage {
            message: message.into(),
        };
        conn.push(&self.topic, "teacher:send", &payload).await?;
        Ok(())
    }
}

struct Teacher {
    id: u64,
    shared: Arc<Shared>,
    new_chat_event: String,
    pending: HashMap<u64, Pending>,
    chats: HashMap<String, Chat>,
    active: usize,
    joined: bool,
    /// `None`: no `user:status` yet; else whether the last one had students waiting.
    students_waiting: Option<bool>,
    seen_students: bool,
    rtt: Histogram<u64>,
    /// Frames of its chats read so far (the drop plan counts them).
    frames: u32,
    /// Drop the connection after this many chat frames (`--drop-rate`), once.
    drop_after: Option<u32>,
    /// When its connection last dropped.
    dropped_at: Option<Instant>,
    rng: fastrand::Rng,
}

enum Flow {
    Continue,
    /// `students.total` reached 0: this teacher is done.
    Done,
    /// The presence join was refused.
    GiveUp,
    /// The drop plan says: drop the connection now.
    Drop,
}

pub(crate) async fn run(shared: Arc<Shared>, id: u64) -> UserResult {
    let mut teacher = Teacher {
        id,
        new_chat_event: format!("new:chat:{id}"),
        shared: shared.clone(),
        pending: HashMap::new(),
        chats: HashMap::new(),
        active: 0,
        joined: false,
        students_waiting: None,
        seen_students: false,
        rtt: histogram(),
        frames: 0,
        drop_after: shared.drops.teachers.get(&id).copied(),
        dropped_at: None,
        rng: shared.rng(id),
    };
    let mut stopped_by_itself = false;
    tokio::select! {
        done = teacher.live() => stopped_by_itself = done,
        () = shared.stopped() => {}
    }
    shared.counters.teachers_running.fetch_sub(1, Relaxed);
    shared
        .counters
        .chats_active
        .fetch_sub(teacher.active as i64, Relaxed);
    let stuck = (teacher.active > 0).then(|| teacher.describe());
    UserResult::Teacher {
        rtt: teacher.rtt,
        stopped_by_itself,
        stuck,
    }
}

impl Teacher {
    /// The chats this teacher still held when the run stopped, for the report.
    fn describe(&self) -> String {
        let mut s = format!("teacher {}", self.id);
        if let Some(at) = self.dropped_at {
            s += &format!(" (dropped {:.1} s ago)", at.elapsed().as_secs_f64());
        }
        for (id, chat) in self.chats.iter().filter(|(_, c)| !c.ended) {
            s += &format!(
                ", chat {id} ({}sent {}, {}{}{})",
                if chat.ready { "" } else { "not ready, " },
                chat.relay.sent(),
                if chat.relay.awaiting() {
                    "awaiting answer"
                } else {
                    "not awaiting"
                },
                if chat.away.peer_away {
                    ", student away"
                } else {
                    ""
                },
                if chat.terminate_sent {
                    ", terminate sent"
                } else {
                    ""
                },
            );
        }
        s
    }

    /// Returns true when the teacher stopped by itself (the client A rule).
    async fn live(&mut self) -> bool {
        let role = crate::token::Role::Teacher;
        let Some(mut conn) = self.shared.connect(role, self.id).await else {
            return false;
        };
        loop {
            let flow = self.converse(&mut conn).await;
            let next = conn.url_index + 1;
            match flow {
                Ok(Flow::Done) => {
                    conn.close().await;
                    return true;
                }
                Ok(Flow::Drop) => resume::drop_now(&self.shared, conn),
                Ok(_) => return false,
                Err(_) => {
                    if !resume::lost(&self.shared, conn) {
                        return false;
                    }
                }
            }
            // Forget what the dead connection owed; pause; connect again.
            self.dropped_at = Some(Instant::now());
            self.pending.clear();
            self.joined = false;
            for chat in self.chats.values_mut() {
                chat.away.forget();
            }
            tokio::time::sleep(resume::pause(&mut self.rng)).await;
            match self.shared.connect_to(role, self.id, next).await {
                Some(c) => conn = c,
                None => return false,
            }
        }
    }

    /// The teacher's resume is judged only within the server's grace window.
    fn judged(&self) -> bool {
        resume::judged(&self.shared, self.dropped_at)
    }

    fn chat_params(&self) -> serde_json::Value {
        resume::chat_params(&self.shared, self.id, "teacher")
    }

    async fn join_presence(&mut self, conn: &mut Conn, back: bool) -> Result<(), WsError> {
        let join = json!({"userId": self.id, "role": "teacher"});
        let r = conn.join(TEACHERS, &join).await?;
        self.pending.insert(
            r,
            if back {
                Pending::PresenceRejoin
            } else {
                Pending::PresenceJoin
            },
        );
        Ok(())
    }

    async fn converse(&mut self, conn: &mut Conn) -> Result<Flow, WsError> {
        self.join_presence(conn, self.dropped_at.is_some()).await?;
        let mut heartbeat = conn::every(self.shared.config.heartbeat_interval);
        let every = self.shared.config.claim_interval;
        // setInterval(tryToClaimStudent, 10): the first tick comes one period after
        // the join ok; the timer starts then (see PresenceJoin below).
        let mut claim = conn::every(every);
        loop {
            tokio::select! {
                recv = conn.recv() => match recv {
                    Recv::Text(text) => match self.handle(conn, text.as_str()).await? {
                        Flow::Continue => {
                            if self.drop_after.is_some_and(|k| self.frames >= k) {
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
                _ = claim.tick(), if self.joined => self.try_claim(conn).await?,
                _ = heartbeat.tick() => {
                    let r = conn.heartbeat().await?;
                    self.pending.insert(r, Pending::Heartbeat);
                }
            }
        }
    }

    /// client A's `tryToClaimStudent`.
    async fn try_claim(&mut self, conn: &mut Conn) -> Result<(), WsError> {
        if self.active < MAX_CHATS && self.students_waiting != Some(false) {
            let now = Instant::now();
            let r = conn
                .push(TEACHERS, "claim:student", &json!({"teacherId": self.id}))
                .await?;
            self.pending.insert(r, Pending::Claim(now));
        }
        Ok(())
    }

    async fn handle(&mut self, conn: &mut Conn, text: &str) -> Result<Flow, WsError> {
        let Ok(frame) = decode(conn.framing(), text) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(Flow::Continue);
        };
        if frame.topic.starts_with("chats:") {
            self.frames += 1;
        }
        if frame.event == "phx_reply" {
            return self.on_reply(conn, &frame).await;
        }
        if frame.topic == TEACHERS {
            return match &*frame.event {
                "user:status" => Ok(self.on_status(&frame)),
                e if e == self.new_chat_event => {
                    if let Some((chat, now)) = self.shared.new_chat(&frame) {
                        self.join_new_chat(conn, chat, now).await?;
                    }
                    Ok(Flow::Continue)
                }
                _ => {
                    self.shared.error(ErrorKind::UnexpectedFrame);
                    Ok(Flow::Continue)
                }
            };
        }
        if let Some(chat_id) = frame.topic.strip_prefix("chats:") {
            self.on_chat_event(conn, chat_id, &frame).await?;
            return Ok(Flow::Continue);
        }
        self.shared.error(ErrorKind::UnexpectedFrame);
        Ok(Flow::Continue)
    }

    fn on_status(&mut self, frame: &Frame<'_>) -> Flow {
        let Ok(status) = parse::<Status>(frame.payload) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Flow::Continue;
        };
        if let Some(v) = check_status(&status) {
            self.shared.violation(v);
        }
        let students = status.students;
        self.students_waiting = Some(students.waiting > 0);
        if students.total > 0 {
            self.seen_students = true;
        } else if self.seen_students && self.shared.counters.students_pending.load(Relaxed) == 0 {
            return Flow::Done;
        }
        Flow::Continue
    }

    async fn on_reply(&mut self, conn: &mut Conn, frame: &Frame<'_>) -> Result<Flow, WsError> {
        let now = Instant::now();
        let Ok(reply) = parse::<Reply>(frame.payload) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(Flow::Continue);
        };
        // `teacher:send` has no reply on success: its errors are counted here.
        let Some(pending) = self.shared.take_pending(&mut self.pending, frame, &reply) else {
            return Ok(Flow::Continue);
        };
        match pending {
            Pending::PresenceRejoin if reply.is_ok() => {
                self.on_back(conn, reply.response).await?;
                return Ok(Flow::Continue);
            }
            Pending::ChatRejoin(chat) => {
                self.on_chat_back(conn, &chat, &reply).await?;
                return Ok(Flow::Continue);
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
            match pending {
                Pending::PresenceJoin | Pending::PresenceRejoin => return Ok(Flow::GiveUp),
                Pending::ChatJoin(chat) => self.release(&chat),
                _ => {}
            }
            return Ok(Flow::Continue);
        }
        match pending {
            Pending::PresenceJoin => {
                self.joined = true;
            }
            Pending::Claim(sent) => {
                let counters = &self.shared.counters;
                counters.claim_replies.fetch_add(1, Relaxed);
                if reply.response.get() != "{}" {
                    match parse::<ChatObject>(reply.response) {
                        Ok(chat) => {
                            counters.claims.fetch_add(1, Relaxed);
                            self.shared.emit(Event::ClaimAssigned {
                                teacher: self.id,
                                student: chat.student(),
                                chat: chat.id,
                                sent_at: self.shared.micros(sent),
                                at: self.shared.micros(now),
                            })
                        }
                        Err(_) => self.shared.error(ErrorKind::MalformedFrame),
                    }
                }
            }
            Pending::ChatJoin(chat) => {
                if let Some(c) = self.chats.get_mut(&chat) {
                    if self.shared.config.reconnect {
                        c.away.first_join(&self.shared, reply.response);
                    }
                    let topic = c.topic.clone();
                    let r = conn.push(&topic, "teacher:joined", &json!({})).await?;
                    self.pending.insert(r, Pending::Joined);
                }
            }
            Pending::PresenceRejoin
            | Pending::ChatRejoin(_)
            | Pending::Joined
            | Pending::JoinedAgain
            | Pending::Terminate
            | Pending::ChatLeave
            | Pending::Heartbeat => {}
        }
        Ok(Flow::Continue)
    }

    /// A chat rejoin reply after a drop: `{"seq","held"}`, judged against what this
    /// teacher sent and read; or a refusal (the chat ended meanwhile).
    async fn on_chat_back(
        &mut self,
        conn: &mut Conn,
        chat_id: &str,
        reply: &Reply<'_>,
    ) -> Result<(), WsError> {
        let judged = self.judged();
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return Ok(());
        };
        if chat.ended {
            return Ok(());
        }
        let params = resume::chat_params(&self.shared, self.id, "teacher");
        let topic = chat.topic.clone();
        if let Some(r) =
            resume::rejoin_unavailable(&self.shared, conn, reply, &mut chat.away, &topic, &params)
                .await?
        {
            self.pending
                .insert(r, Pending::ChatRejoin(chat_id.to_owned()));
            return Ok(());
        }
        if !reply.is_ok() {
            self.chat_gone(chat_id, judged);
            return Ok(());
        }
        let Ok(standing) = parse::<ChatStanding>(reply.response) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(());
        };
        let counters = &self.shared.counters;
        counters.chats_resumed.fetch_add(1, Relaxed);
        let topic = chat.topic.clone();
        let verdict = resume::teacher_resume(
            chat.relay.sent(),
            chat.relay.awaiting(),
            standing.seq,
            standing.held,
        );
        match verdict {
            ChatResume::Wait { held } => {
                chat.away.held_expected = held;
                if chat.relay.sent() == 0 {
                    // It may have missed `chat:ready`; relaying does not wait for it.
                    chat.ready = true;
                    self.next_message(conn, chat_id).await?;
                } else if chat.terminate_sent {
                    // Sent as it dropped and maybe lost: again (idempotent, 7.2).
                    let r = conn.push(&topic, "chat:terminate", &json!({})).await?;
                    self.pending.insert(r, Pending::Terminate);
                }
            }
            ChatResume::Resend => {
                counters.resent.fetch_add(1, Relaxed);
                let message = chat.relay.resend();
                chat.send(&self.shared, conn, chat_id, message).await?;
            }
            ChatResume::RecoverLost => {
                counters.recovered_in_transit.fetch_add(1, Relaxed);
                chat.sent_at = None;
                let moved_on = chat.relay.recover();
                self.shared.emit(Event::LostInTransit {
                    chat: chat_id.to_owned(),
                    to: Role::Teacher,
                    k: chat.relay.sent(),
                });
                if moved_on && chat.ready {
                    self.next_message(conn, chat_id).await?;
                }
            }
            ChatResume::Mismatch => self.shared.violation(Violation::MessageLost),
        }
        let r = conn.push(&topic, "teacher:joined", &json!({})).await?;
        self.pending.insert(r, Pending::JoinedAgain);
        Ok(())
    }

    /// A chat it held is gone (refused on rejoin, or missing from the presence
    /// reply): fine if it had sent `chat:terminate`, else a violation within the
    /// window. Either way the slot is free.
    fn chat_gone(&mut self, chat_id: &str, judged: bool) {
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return;
        };
        chat.left = true;
        if chat.terminate_sent {
            self.shared.counters.chats_completed.fetch_add(1, Relaxed);
        } else {
            if judged {
                self.shared.violation(Violation::ChatEndedAway);
            }
            self.shared.emit(Event::ChatAbandoned {
                chat: chat_id.to_owned(),
            });
        }
        self.release(chat_id);
    }

    /// The presence rejoin reply after a drop: `{"chats": [...]}`.
    async fn on_back(
        &mut self,
        conn: &mut Conn,
        response: &serde_json::value::RawValue,
    ) -> Result<(), WsError> {
        let Ok(standing) = parse::<TeacherStanding>(response) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(());
        };
        self.shared.counters.resumes.fetch_add(1, Relaxed);
        let judged = self.judged();
        let listed: std::collections::HashSet<String> =
            standing.chats.iter().map(|c| c.id.clone()).collect();
        for object in standing.chats {
            match self.chats.get(&object.id) {
                Some(chat) if chat.ended => {
                    // Listed as active although this teacher saw it end.
                    self.shared.error(ErrorKind::UnexpectedFrame);
                }
                Some(chat) => {
                    let topic = chat.topic.clone();
                    let r = conn.join(&topic, &self.chat_params()).await?;
                    self.pending.insert(r, Pending::ChatRejoin(object.id));
                }
                // Assigned as it dropped: `new:chat:<tid>` and the claim reply were lost.
                None => self.join_new_chat(conn, object, Instant::now()).await?,
            }
        }
        let gone: Vec<String> = self
            .chats
            .iter()
            .filter(|(id, c)| !c.ended && !listed.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for chat in gone {
            self.chat_gone(&chat, judged);
        }
        self.joined = true;
        // Statuses sent while it was away are lost: claim until one says otherwise.
        self.students_waiting = None;
        Ok(())
    }

    /// A chat it was given (read at `now`): take the slot and join it.
    async fn join_new_chat(
        &mut self,
        conn: &mut Conn,
        chat: ChatObject,
        now: Instant,
    ) -> Result<(), WsError> {
        if chat.teacher_id.as_u64() != Some(self.id) {
            self.shared.error(ErrorKind::UnexpectedFrame);
        }
        self.shared.emit(Event::TeacherAssigned {
            teacher: self.id,
            chat: chat.id.clone(),
            student: chat.student(),
            at: self.shared.micros(now),
        });
        if self.chats.contains_key(&chat.id) {
            self.shared.error(ErrorKind::UnexpectedFrame);
            return Ok(());
        }
        self.seen_students = true;
        self.active += 1;
        self.shared.counters.chats_active.fetch_add(1, Relaxed);
        let topic = format!("chats:{}", chat.id);
        let r = conn.join(&topic, &self.chat_params()).await?;
        self.pending.insert(r, Pending::ChatJoin(chat.id.clone()));
        self.chats.insert(
            chat.id,
            Chat {
                topic,
                relay: TeacherRelay::new(chat.student_id.as_u64()),
                ready: false,
                ended: false,
                left: false,
                sent_at: None,
                terminate_sent: false,
                away: ChatAway::default(),
            },
        );
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

    /// The slot of `chat` is free again (terminated, abandoned or refused).
    fn release(&mut self, chat_id: &str) {
        if let Some(chat) = self.chats.get_mut(chat_id) {
            if !chat.ended {
                chat.ended = true;
                self.active -= 1;
                self.shared.counters.chats_active.fetch_sub(1, Relaxed);
                self.shared.emit(Event::TeacherReleased {
                    teacher: self.id,
                    chat: chat_id.to_owned(),
                });
            }
        }
    }

    /// Sends the next message, or `chat:terminate` after the last answer.
    async fn next_message(&mut self, conn: &mut Conn, chat_id: &str) -> Result<(), WsError> {
        let messages = self.shared.config.messages;
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return Ok(());
        };
        if chat.relay.sent() < messages {
            let message = chat.relay.next_message();
            chat.send(&self.shared, conn, chat_id, message).await?;
        } else {
            chat.terminate_sent = true;
            let r = conn.push(&chat.topic, "chat:terminate", &json!({})).await?;
            self.pending.insert(r, Pending::Terminate);
        }
        Ok(())
    }

    async fn on_chat_event(
        &mut self,
        conn: &mut Conn,
        chat_id: &str,
        frame: &Frame<'_>,
    ) -> Result<(), WsError> {
        let now = Instant::now();
        let Some(chat) = self.chats.get_mut(chat_id) else {
            self.shared.error(ErrorKind::UnexpectedFrame);
            return Ok(());
        };
        chat.away
            .read(&self.shared, &frame.event, "teacher:receive");
        match &*frame.event {
            "chat:away" | "chat:back" if self.shared.config.reconnect => {
                chat.away.notice(&self.shared, &frame.event);
            }
            "teacher:receive" => {
                chat.away.relayed(&self.shared);
                let message = parse::<ChatMessage>(frame.payload).ok();
                let (moved_on, violation) =
                    chat.relay.receive(message.as_ref().map(|m| &*m.message));
                if let Some(v) = violation {
                    self.shared.violation(v);
                }
                if moved_on && !chat.ended {
                    if let Some(sent) = chat.sent_at.take() {
                        let us = now.duration_since(sent).as_micros() as u64;
                        self.rtt.saturating_record(us.max(1));
                    }
                    self.next_message(conn, chat_id).await?;
                }
            }
            "student:receive" => self
                .shared
                .violation(crate::checks::Violation::RelayWrongSide),
            "chat:ready" => {
                self.shared.emit(Event::ChatReady {
                    chat: chat_id.to_owned(),
                    role: Role::Teacher,
                });
                if !chat.ready && !chat.ended {
                    chat.ready = true;
                    self.next_message(conn, chat_id).await?;
                }
            }
            "chat:terminated" => {
                self.shared.emit(Event::ChatTerminated {
                    chat: chat_id.to_owned(),
                    role: Role::Teacher,
                });
                if !chat.ended {
                    chat.left = true;
                    let topic = chat.topic.clone();
                    self.shared.counters.chats_completed.fetch_add(1, Relaxed);
                    self.release(chat_id);
                    let r = conn.leave(&topic).await?;
                    self.pending.insert(r, Pending::ChatLeave);
                    self.try_claim(conn).await?;
                }
            }
            "phx_close" => {
                if !chat.left {
                    chat.left = true;
                    self.shared.emit(Event::ChatAbandoned {
                        chat: chat_id.to_owned(),
                    });
                    self.release(chat_id);
                }
            }
            _ => self.shared.error(ErrorKind::UnexpectedFrame),
        }
        Ok(())
    }
}
