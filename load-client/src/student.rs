//! One simulated student, as the 2015 client's `src/elixir/student.js` behaves
//! (PROTOCOL.md 4.1 and 7.5), on its own WebSocket:
//!
//! 1. join `presence:student:<id>` with `{"userId": id, "role": "student"}`;
//! 2. on the join's `ok`, push `student:ready` `{"userId": id}`;
//! 3. on `new:chat`, join `chats:<id>` and, on its `ok`, push `student:joined`;
//! 4. answer every `student:receive` with `student:send`
//!    `{"message": "Message #<n> from student: <id>"}` (n counts received messages);
//! 5. on `chat:terminated` the student is done: it leaves the chat and its presence
//!    topic. (The 2015 client then keeps its socket until its process exits; this one
//!    closes it once the presence leave is acknowledged.)
//!
//! Heartbeats go out every 30 s like client A's. Everything it observes is reported to
//! the checker; relayed messages are judged here by a [`StudentRelay`].

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::time::{interval_at, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::checks::{Event, Role, StudentRelay};
use crate::codec::{decode, parse, ChatMessage, ChatObject, Frame, Reply};
use crate::conn::{Conn, Recv};
use crate::stats::ErrorKind;
use crate::{Shared, UserResult};

enum Pending {
    PresenceJoin,
    Ready,
    ChatJoin(String),
    Joined,
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
}

/// What handling one frame leads to.
enum Flow {
    Continue,
    /// The presence leave was acknowledged: close the socket.
    Done,
    /// The student cannot go on (refused join or ready).
    GiveUp,
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
    };
    tokio::select! {
        () = student.live() => {}
        () = shared.stopped() => {}
    }
    UserResult::Student {
        queue_wait_us: student.queue_wait_us,
    }
}

impl Student {
    async fn live(&mut self) {
        let Some(mut conn) = self
            .shared
            .connect(crate::token::Role::Student, self.id)
            .await
        else {
            self.give_up();
            return;
        };
        match self.converse(&mut conn).await {
            Ok(Flow::Done) => conn.close().await,
            Ok(_) => self.give_up(),
            Err(_) => {
                self.shared.error(ErrorKind::Disconnected);
                self.give_up();
            }
        }
    }

    /// Runs the conversation until done, given up, or the connection is lost.
    async fn converse(&mut self, conn: &mut Conn) -> Result<Flow, WsError> {
        let join = json!({"userId": self.id, "role": "student"});
        let r = conn.join(&self.presence, &join).await?;
        self.pending.insert(r, Pending::PresenceJoin);
        let period = self.shared.config.heartbeat_interval;
        let mut heartbeat = interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
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
                "new:chat" => self.on_new_chat(conn, &frame).await?,
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
        if !reply.is_ok() {
            self.shared.error(ErrorKind::ErrorReply);
            return Ok(match pending {
                Pending::PresenceJoin | Pending::Ready => Flow::GiveUp,
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
                    .push(&self.presence, "student:ready", &json!({"userId": self.id}))
                    .await?;
                self.pending.insert(r, Pending::Ready);
            }
            Pending::Ready => {
                self.shared.emit(Event::ReadyAcked {
                    student: self.id,
                    at: self.shared.now_us(),
                });
                self.mark_queued();
            }
            Pending::ChatJoin(chat) => {
                if let Some(c) = self.chats.get(&chat) {
                    let topic = c.topic.clone();
                    let r = conn.push(&topic, "student:joined", &json!({})).await?;
                    self.pending.insert(r, Pending::Joined);
                }
            }
            Pending::PresenceLeave => return Ok(Flow::Done),
            Pending::Joined | Pending::ChatLeave | Pending::Heartbeat => {}
        }
        Ok(Flow::Continue)
    }

    async fn on_new_chat(&mut self, conn: &mut Conn, frame: &Frame<'_>) -> Result<(), WsError> {
        let now = Instant::now();
        let Ok(chat) = parse::<ChatObject>(frame.payload) else {
            self.shared.error(ErrorKind::MalformedFrame);
            return Ok(());
        };
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
        let r = conn
            .join(&topic, &json!({"userId": self.id, "role": "student"}))
            .await?;
        self.pending.insert(r, Pending::ChatJoin(chat.id.clone()));
        self.chats.insert(
            chat.id,
            Chat {
                topic,
                relay: StudentRelay::new(self.id),
                active: true,
                left: false,
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
        match &*frame.event {
            "student:receive" => {
                shared.counters.relayed.fetch_add(1, Relaxed);
                let message = parse::<ChatMessage>(frame.payload).ok();
                let (answer, violation) = chat.relay.receive(message.as_ref().map(|m| &*m.message));
                if let Some(v) = violation {
                    shared.violation(v);
                }
                if !chat.left {
                    let topic = chat.topic.clone();
                    let payload = ChatMessage {
                        message: answer.into(),
                    };
                    conn.push(&topic, "student:send", &payload).await?;
                }
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
