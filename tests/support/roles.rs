//! The users of a test: teachers and students on fresh connections, their topics and
//! join params, and the tutoring events a client sends (ready, claim, join a chat, enter
//! it).

use serde_json::{json, Value};

use super::client::{connect, Client};
use super::frames::{key, status_tuple, Framing};
use super::server::Server;
use super::{SILENCE, WAIT};

impl Client {
    /// `student:ready` on this student's presence topic; asserts `ok` `{}`.
    pub async fn ready(&mut self, sid: &Value) {
        let topic = format!("presence:student:{}", key(sid));
        let reply = self
            .call(&topic, "student:ready", json!({"userId": sid}))
            .await;
        assert_eq!(
            reply.payload,
            json!({"status": "ok", "response": {}}),
            "[{}] student:ready should be ok: {}",
            self.name,
            reply.raw
        );
    }

    /// `claim:student`; asserts `ok`; returns the chat object if a student was assigned.
    pub async fn claim(&mut self, tid: &Value) -> Option<Value> {
        let reply = self
            .call(
                "presence:teachers",
                "claim:student",
                json!({"teacherId": tid}),
            )
            .await;
        assert_eq!(
            reply.status(),
            "ok",
            "[{}] claim:student should be ok: {}",
            self.name,
            reply.raw
        );
        let resp = reply.response().clone();
        if resp == json!({}) {
            None
        } else {
            Some(resp)
        }
    }

    /// Claims and expects a chat with student `sid`; consumes the `new:chat:<tid>` push.
    /// Returns the chat id.
    pub async fn claim_expect(&mut self, tid: &Value, sid: &Value) -> String {
        let chat = self.claim(tid).await.unwrap_or_else(|| {
            panic!(
                "[{}] claim:student assigned nobody, expected student {sid}",
                self.name
            )
        });
        assert_eq!(
            &chat["student_id"], sid,
            "[{}] claim assigned the wrong student: {chat}",
            self.name
        );
        let ev = format!("new:chat:{}", key(tid));
        let push = self.wait_for("presence:teachers", &ev, WAIT).await;
        assert_eq!(
            push.payload, chat,
            "new:chat:<tid> push and claim reply carry the same chat"
        );
        chat["id"].as_str().unwrap().to_owned()
    }

    /// Joins `chats:<cid>` with the given role and id; asserts `ok`.
    pub async fn join_chat(&mut self, cid: &str, role: &str, id: &Value) {
        self.join_ok(&format!("chats:{cid}"), json!({"userId": id, "role": role}))
            .await;
    }
}

pub fn teacher_params(tid: &Value) -> Value {
    json!({"userId": tid, "role": "teacher"})
}

pub fn student_params(sid: &Value) -> Value {
    json!({"userId": sid, "role": "student"})
}

pub fn student_topic(sid: &Value) -> String {
    format!("presence:student:{}", key(sid))
}

pub fn chat_topic(cid: &str) -> String {
    format!("chats:{cid}")
}

/// A connected teacher joined to `presence:teachers`.
pub async fn teacher(srv: &Server, framing: Framing, tid: impl Into<Value>) -> Client {
    let tid = tid.into();
    let mut c = connect(srv, framing).await.named(format!("teacher {tid}"));
    c.join_ok("presence:teachers", teacher_params(&tid)).await;
    c
}

/// A connected student joined to `presence:student:<sid>` (not ready yet).
pub async fn student(srv: &Server, framing: Framing, sid: impl Into<Value>) -> Client {
    let sid = sid.into();
    let mut c = connect(srv, framing).await.named(format!("student {sid}"));
    c.join_ok(&student_topic(&sid), student_params(&sid)).await;
    c
}

/// A connected student that has sent `student:ready`.
pub async fn ready_student(srv: &Server, framing: Framing, sid: impl Into<Value>) -> Client {
    let sid = sid.into();
    let mut c = student(srv, framing, sid.clone()).await;
    c.ready(&sid).await;
    c
}

/// Both sides join `chats:<cid>`, send `*:joined`, and receive `chat:ready`.
pub async fn enter_chat(t: &mut Client, tid: &Value, s: &mut Client, sid: &Value, cid: &str) {
    s.wait_for(&student_topic(sid), "new:chat", WAIT).await;
    t.join_chat(cid, "teacher", tid).await;
    s.join_chat(cid, "student", sid).await;
    both_enter(t, s, cid).await;
}

/// Both sides, joined to `chats:<cid>`, send `*:joined` and receive `chat:ready`.
pub async fn both_enter(t: &mut Client, s: &mut Client, cid: &str) {
    let topic = chat_topic(cid);
    t.call(&topic, "teacher:joined", json!({}))
        .await
        .assert_ok_empty();
    s.call(&topic, "student:joined", json!({}))
        .await
        .assert_ok_empty();
    t.wait_for(&topic, "chat:ready", WAIT).await;
    s.wait_for(&topic, "chat:ready", WAIT).await;
}

/// Teacher `tid` and student `sid` on fresh sockets, through ready → claim → join chat →
/// entered. Returns (teacher, student, chat id).
pub async fn start_chat(
    srv: &Server,
    framing: Framing,
    tid: impl Into<Value>,
    sid: impl Into<Value>,
) -> (Client, Client, String) {
    let (tid, sid) = (tid.into(), sid.into());
    let mut t = teacher(srv, framing, tid.clone()).await;
    let mut s = ready_student(srv, framing, sid.clone()).await;
    let cid = t.claim_expect(&tid, &sid).await;
    enter_chat(&mut t, &tid, &mut s, &sid, &cid).await;
    (t, s, cid)
}

/// Waits for a `user:status` equal to `expected` (teachers, total, waiting, chatting,
/// finished), then drops every frame read so far: earlier snapshots are not what the
/// test is about.
pub async fn settle(c: &mut Client, expected: (u64, u64, u64, u64, u64)) {
    let what = format!("user:status {expected:?}");
    c.wait_match(
        |f| f.is("presence:teachers", "user:status") && status_tuple(&f.payload) == expected,
        &what,
        WAIT,
    )
    .await;
    c.clear();
}

/// No `user:status` reaches `c` within [`SILENCE`] after `what`.
pub async fn no_status(c: &mut Client, what: &str) {
    let what = format!("user:status after {what}");
    c.expect_none(|f| f.is("presence:teachers", "user:status"), &what, SILENCE)
        .await;
}
