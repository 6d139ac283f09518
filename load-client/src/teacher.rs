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

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::time::{interval_at, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::checks::{check_status, Event, Role, TeacherRelay, MAX_CHATS};
use crate::codec::{decode, parse, ChatMessage, ChatObject, Frame, Reply, Status};
use crate::conn::{Conn, Recv};
use crate::stats::{histogram, ErrorKind};
use crate::{Shared, UserResult};

const TEACHERS: &str = "presence:teachers";

enum Pending {
    PresenceJoin,
    /// A `claim:student` written at this instant.
    Claim(Instant),
    ChatJoin(String),
    Joined,
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
}

enum Flow {
    Continue,
    /// `students.total` reached 0: this teacher is done.
    Done,
    /// The presence join was refused.
    GiveUp,
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
    UserResult::Teacher {
        rtt: teacher.rtt,
        stopped_by_itself,
    }
}

impl Teacher {
    /// Returns true when the teacher stopped by itself (the client A rule).
    async fn live(&mut self) -> bool {
        let Some(mut conn) = self
            .shared
            .connect(crate::token::Role::Teacher, self.id)
            .await
        else {
            return false;
        };
        match self.converse(&mut conn).await {
            Ok(Flow::Done) => {
                conn.close().await;
                true
            }
            Ok(_) => false,
            Err(_) => {
                self.shared.error(ErrorKind::Disconnected);
                false
            }
        }
    }

    async fn converse(&mut self, conn: &mut Conn) -> Result<Flow, WsError> {
        let join = json!({"userId": self.id, "role": "teacher"});
        let r = conn.join(TEACHERS, &join).await?;
        self.pending.insert(r, Pending::PresenceJoin);
        let period = self.shared.config.heartbeat_interval;
        let mut heartbeat = interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let every = self.shared.config.claim_interval;
        // setInterval(tryToClaimStudent, 10): the first tick comes one period after
        // the join ok; the timer starts then (see PresenceJoin below).
        let mut claim = interval_at(tokio::time::Instant::now() + every, every);
        claim.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                recv = conn.recv() => match recv {
                    Recv::Text(text) => match self.handle(conn, text.as_str()).await? {
                        Flow::Continue => {}
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
        if frame.event == "phx_reply" {
            return self.on_reply(conn, &frame).await;
        }
        if frame.topic == TEACHERS {
            return match &*frame.event {
                "user:status" => Ok(self.on_status(&frame)),
                e if e == self.new_chat_event => {
                    self.on_new_chat(conn, &frame).await?;
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
        if !reply.is_ok() {
            self.shared.error(ErrorKind::ErrorReply);
            match pending {
                Pending::PresenceJoin => return Ok(Flow::GiveUp),
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
                if reply.response.get() != "{}" {
                    match parse::<ChatObject>(reply.response) {
                        Ok(chat) => self.shared.emit(Event::ClaimAssigned {
                            teacher: self.id,
                            student: chat.student(),
                            chat: chat.id,
                            sent_at: self.shared.micros(sent),
                            at: self.shared.micros(now),
                        }),
                        Err(_) => self.shared.error(ErrorKind::MalformedFrame),
                    }
                }
            }
            Pending::ChatJoin(chat) => {
                if let Some(c) = self.chats.get(&chat) {
                    let topic = c.topic.clone();
                    let r = conn.push(&topic, "teacher:joined", &json!({})).await?;
                    self.pending.insert(r, Pending::Joined);
                }
            }
            Pending::Joined | Pending::Terminate | Pending::ChatLeave | Pending::Heartbeat => {}
        }
        Ok(Flow::Continue)
    }

    async fn on_new_chat(&mut self, conn: &mut Conn, frame: &Frame<'_>) -> Result<(), WsError> {
        let now = Instant::now();
        let Ok(chat) = parse::<ChatObject>(frame.payload) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(());
        };
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
        let r = conn
            .join(&topic, &json!({"userId": self.id, "role": "teacher"}))
            .await?;
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
            },
        );
        Ok(())
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
            let payload = ChatMessage {
                message: chat.relay.next_message().into(),
            };
            chat.sent_at = Some(Instant::now());
            conn.push(&chat.topic, "teacher:send", &payload).await?;
        } else {
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
        match &*frame.event {
            "teacher:receive" => {
                self.shared.counters.relayed.fetch_add(1, Relaxed);
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
