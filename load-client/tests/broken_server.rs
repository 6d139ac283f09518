//! The load client against a tiny fake server (tokio-tungstenite, V1 frames written by
//! hand) that plays the tutoring protocol correctly except for one deliberate bug per
//! test. Each bug must show up as its violation kind and as nothing else; the bug-free
//! fake must show none (which also validates the fake).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use load_client::checks::Violation;
use load_client::{Config, Framing, Report};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// The first assigned student also gets a second chat.
    AssignTwice,
    /// Every `teacher:send` is also echoed to the teacher as `student:receive`.
    WrongSide,
    /// The first `teacher:send` of each chat is relayed twice.
    DuplicateRelay,
    /// `total` is one too high whenever it is not 0.
    BadStatus,
    /// Newest student first, once `hold_until` students wait.
    Lifo,
    /// Ignores the 5-chat limit: hands out every waiting student once `hold_until` wait.
    NoCap,
    /// `chat:ready` broadcast twice.
    ReadyTwice,
    /// `chat:terminated` broadcast twice.
    TerminatedTwice,
    /// Each student also gets a garbage frame and a frame with a null payload.
    Garbage,
    /// Not a bug: the first join of each side of each chat is refused with
    /// `unavailable` (nothing changed, try again: PROTOCOL 5.5), as a node on Redis
    /// answers while it cannot reach the chat's state.
    UnavailableChatJoins,
    /// A teacher joining with `"waitingList": true` gets 50 `queue:waiting` pushes
    /// at once instead of one (no coalescing).
    FloodWaitingList,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Chatting,
    Finished,
}

struct Chat {
    teacher: u64,
    student: u64,
    teacher_conn: Option<usize>,
    student_conn: Option<usize>,
    teacher_in: bool,
    student_in: bool,
    active: bool,
    relayed: u32,
}

#[derive(Default)]
struct State {
    conns: HashMap<usize, mpsc::UnboundedSender<String>>,
    teachers: HashMap<u64, (usize, usize)>, // id -> (conn, active chats)
    students: HashMap<u64, usize>,          // id -> presence conn
    roster: HashMap<u64, Phase>,
    queue: VecDeque<u64>,
    chats: HashMap<String, Chat>,
    next_chat: u64,
    double_done: bool,
    /// (chat, side) whose first join was refused (`UnavailableChatJoins`).
    refused: HashSet<(String, String)>,
}

struct Fake {
    bug: Bug,
    hold_until: usize,
    state: Mutex<State>,
}

fn frame(topic: &str, event: &str, payload: Value, r: Value) -> String {
    json!({"topic": topic, "event": event, "payload": payload, "ref": r}).to_string()
}

impl State {
    fn send(&self, conn: usize, text: String) {
        if let Some(tx) = self.conns.get(&conn) {
            let _ = tx.send(text);
        }
    }

    fn status(&self, bug: Bug) {
        let count = |p| self.roster.values().filter(|&&q| q == p).count();
        let (w, c, f) = (
            count(Phase::Waiting),
            count(Phase::Chatting),
            count(Phase::Finished),
        );
        let mut total = self.roster.len();
        if bug == Bug::BadStatus && total > 0 {
            total += 1;
        }
        let payload = json!({"teachers": {"total": self.teachers.len()},
            "students": {"total": total, "waiting": w, "chatting": c, "finished": f}});
        for &(conn, _) in self.teachers.values() {
            self.send(
                conn,
                frame(
                    "presence:teachers",
                    "user:status",
                    payload.clone(),
                    Value::Null,
                ),
            );
        }
    }

    /// Creates a chat and sends `new:chat:<tid>` and `new:chat`; returns the chat object.
    fn assign(&mut self, teacher: u64, student: u64) -> Value {
        self.next_chat += 1;
        let id = format!("chat-{}", self.next_chat);
        let object = json!({"id": id, "status": "active", "teacher_id": teacher,
            "student_id": student, "teacher_entered": false, "student_entered": false,
            "messages": []});
        self.roster.insert(student, Phase::Chatting);
        let (tconn, active) = self.teachers.get_mut(&teacher).expect("teacher present");
        *active += 1;
        let tconn = *tconn;
        self.send(
            tconn,
            frame(
                "presence:teachers",
                &format!("new:chat:{teacher}"),
                object.clone(),
                Value::Null,
            ),
        );
        if let Some(&sconn) = self.students.get(&student) {
            self.send(
                sconn,
                frame(
                    &format!("presence:student:{student}"),
                    "new:chat",
                    object.clone(),
                    Value::Null,
                ),
            );
        }
        self.chats.insert(
            id,
            Chat {
                teacher,
                student,
                teacher_conn: None,
                student_conn: None,
                teacher_in: false,
                student_in: false,
                active: true,
                relayed: 0,
            },
        );
        object
    }
}

impl Fake {
    /// Handles one inbound frame from connection `conn`.
    fn handle(&self, conn: usize, text: &str) {
        let v: Value = serde_json::from_str(text).expect("client sends JSON");
        let topic = v["topic"].as_str().expect("topic").to_owned();
        let event = v["event"].as_str().expect("event").to_owned();
        let r = v["ref"].clone();
        let payload = &v["payload"];
        let mut st = self.state.lock().expect("state lock");
        let reply = |st: &State, response: Value| {
            st.send(
                conn,
                frame(
                    &topic,
                    "phx_reply",
                    json!({"status": "ok", "response": response}),
                    r.clone(),
                ),
            );
        };
        let chat_id = topic.strip_prefix("chats:").map(str::to_owned);
        match event.as_str() {
            "heartbeat" => reply(&st, json!({})),
            "phx_join" => {
                let user = payload["userId"].as_u64().expect("userId");
                if topic == "presence:teachers" {
                    st.teachers.insert(user, (conn, 0));
                    if payload["waitingList"] == true {
                        // The list right after the join reply (PROTOCOL 6.4).
                        reply(&st, json!({}));
                        let pushes = if self.bug == Bug::FloodWaitingList {
                            50
                        } else {
                            1
                        };
                        let list = json!({"students": [], "total": 0});
                        for _ in 0..pushes {
                            st.send(
                                conn,
                                frame(&topic, "queue:waiting", list.clone(), Value::Null),
                            );
                        }
                        return;
                    }
                } else if topic.starts_with("presence:student:") {
                    st.students.insert(user, conn);
                    if self.bug == Bug::Garbage {
                        st.send(conn, "not json".into());
                        st.send(
                            conn,
                            r#"{"topic":"x","event":"y","payload":null,"ref":null}"#.into(),
                        );
                    }
                } else if let Some(id) = &chat_id {
                    let side = (id.clone(), payload["role"].to_string());
                    if self.bug == Bug::UnavailableChatJoins && st.refused.insert(side) {
                        let refusal = json!({"status": "error",
                            "response": {"reason": "unavailable"}});
                        st.send(conn, frame(&topic, "phx_reply", refusal, r.clone()));
                        return;
                    }
                    let chat = st.chats.get_mut(id).expect("known chat");
                    if payload["role"] == "teacher" {
                        chat.teacher_conn = Some(conn);
                    } else {
                        chat.student_conn = Some(conn);
                    }
                }
                reply(&st, json!({}));
            }
            "phx_leave" => {
                reply(&st, json!({}));
                if let Some(id) = topic.strip_prefix("presence:student:") {
                    let id: u64 = id.parse().expect("student id");
                    st.students.remove(&id);
                    if st.roster.remove(&id).is_some() {
                        st.status(self.bug);
                    }
                }
            }
            "student:ready" => {
                let id: u64 = topic["presence:student:".len()..].parse().expect("id");
                st.roster.insert(id, Phase::Waiting);
                st.queue.push_back(id);
                reply(&st, json!({}));
                st.status(self.bug);
            }
            "claim:student" => {
                let teacher = payload["teacherId"].as_u64().expect("teacherId");
                let active = st.teachers[&teacher].1;
                let gate = matches!(self.bug, Bug::Lifo | Bug::NoCap);
                let mut response = json!({});
                if gate && st.queue.len() < self.hold_until && !st.double_done {
                    // hold everyone back until the whole batch waits
                } else if self.bug == Bug::NoCap {
                    st.double_done = true;
                    while let Some(s) = st.queue.pop_front() {
                        response = st.assign(teacher, s);
                    }
                    if !response.as_object().is_some_and(|o| o.is_empty()) {
                        st.status(self.bug);
                    }
                } else if active < 5 {
                    let next = if self.bug == Bug::Lifo {
                        st.double_done = true;
                        st.queue.pop_back()
                    } else {
                        st.queue.pop_front()
                    };
                    if let Some(s) = next {
                        response = st.assign(teacher, s);
                        if self.bug == Bug::AssignTwice && !st.double_done {
                            st.double_done = true;
                            st.assign(teacher, s);
                        }
                        st.status(self.bug);
                    }
                }
                reply(&st, response);
            }
            "teacher:joined" | "student:joined" => {
                let id = chat_id.expect("chat topic");
                let bug = self.bug;
                let chat = st.chats.get_mut(&id).expect("chat");
                let before = chat.teacher_in && chat.student_in;
                if event == "teacher:joined" {
                    chat.teacher_in = true;
                } else {
                    chat.student_in = true;
                }
                let conns = [chat.teacher_conn, chat.student_conn];
                let now = chat.teacher_in && chat.student_in;
                reply(&st, json!({}));
                if now && !before {
                    let times = if bug == Bug::ReadyTwice { 2 } else { 1 };
                    for _ in 0..times {
                        for c in conns.into_iter().flatten() {
                            st.send(c, frame(&topic, "chat:ready", json!({}), Value::Null));
                        }
                    }
                }
            }
            "teacher:send" => {
                let id = chat_id.expect("chat topic");
                let chat = st.chats.get_mut(&id).expect("chat");
                chat.relayed += 1;
                let first = chat.relayed == 1;
                let (sc, tc) = (chat.student_conn, chat.teacher_conn);
                let out = frame(&topic, "student:receive", payload.clone(), Value::Null);
                if let Some(sc) = sc {
                    st.send(sc, out.clone());
                    if self.bug == Bug::DuplicateRelay && first {
                        st.send(sc, out.clone());
                    }
                }
                if self.bug == Bug::WrongSide {
                    if let Some(tc) = tc {
                        st.send(tc, out);
                    }
                }
            }
            "student:send" => {
                let id = chat_id.expect("chat topic");
                if let Some(tc) = st.chats[&id].teacher_conn {
                    st.send(
                        tc,
                        frame(&topic, "teacher:receive", payload.clone(), Value::Null),
                    );
                }
            }
            "chat:terminate" => {
                let id = chat_id.expect("chat topic");
                let chat = st.chats.get_mut(&id).expect("chat");
                if chat.active {
                    chat.active = false;
                    let (teacher, student) = (chat.teacher, chat.student);
                    let conns = [chat.teacher_conn, chat.student_conn];
                    if let Some(t) = st.teachers.get_mut(&teacher) {
                        t.1 -= 1;
                    }
                    st.roster.insert(student, Phase::Finished);
                    let times = if self.bug == Bug::TerminatedTwice {
                        2
                    } else {
                        1
                    };
                    for _ in 0..times {
                        for c in conns.into_iter().flatten() {
                            st.send(c, frame(&topic, "chat:terminated", json!({}), Value::Null));
                        }
                    }
                    st.status(self.bug);
                }
                reply(&st, json!({}));
            }
            other => panic!("fake server does not know {other}"),
        }
    }
}

/// Starts the fake on 127.0.0.1:0; returns its ws:// URL.
async fn start_fake(bug: Bug, hold_until: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fake = Arc::new(Fake {
        bug,
        hold_until,
        state: Mutex::new(State::default()),
    });
    tokio::spawn(async move {
        let mut next_conn = 0usize;
        while let Ok((stream, _)) = listener.accept().await {
            next_conn += 1;
            let conn = next_conn;
            let fake = fake.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                fake.state.lock().expect("lock").conns.insert(conn, tx);
                let writer = tokio::spawn(async move {
                    while let Some(text) = rx.recv().await {
                        if sink.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(msg)) = stream.next().await {
                    if let Message::Text(text) = msg {
                        fake.handle(conn, text.as_str());
                    }
                }
                fake.state.lock().expect("lock").conns.remove(&conn);
                writer.abort();
            });
        }
    });
    format!("ws://127.0.0.1:{port}/ws")
}

async fn run_against(bug: Bug, students: u64, teachers: u64, connect_rate: f64) -> Report {
    run_watched(bug, students, teachers, connect_rate, 0).await
}

/// [`run_against`] with `waiting_watchers` waiting-list watchers.
async fn run_watched(
    bug: Bug,
    students: u64,
    teachers: u64,
    connect_rate: f64,
    waiting_watchers: u64,
) -> Report {
    let hold_until = students as usize;
    let url = start_fake(bug, hold_until).await;
    let config = Config {
        waiting_watchers,
        urls: vec![url],
        students,
        teachers,
        messages: 3,
        framing: Framing::V1,
        connect_rate,
        timeout: Duration::from_secs(20),
        ..Config::default()
    };
    load_client::run(config).await.expect("run")
}

/// Asserts that `kind` was counted and no other kind was.
fn only(report: &Report, kind: Violation) {
    let summary = report.summary();
    for (name, &n) in &report.violations_by_kind {
        if *name == kind.name() {
            assert!(n > 0, "expected {name}: {summary}");
        } else {
            assert_eq!(n, 0, "unexpected {name}: {summary}");
        }
    }
    assert!(
        !report.success(),
        "a violation must fail the run: {summary}"
    );
    assert!(!report.timed_out, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fake_shows_no_violation() {
    let report = run_against(Bug::None, 10, 2, 0.0).await;
    assert_eq!(report.violations, 0, "{}", report.summary());
    assert_eq!(report.errors, 0, "{}", report.summary());
    assert_eq!(report.students_finished, 10);
    assert!(report.success(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_assigned_twice() {
    let report = run_against(Bug::AssignTwice, 4, 1, 0.0).await;
    only(&report, Violation::StudentAssignedTwice);
    assert_eq!(report.violations, 1, "{}", report.summary());
    assert_eq!(report.students_finished, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_to_the_wrong_side() {
    let report = run_against(Bug::WrongSide, 4, 1, 0.0).await;
    only(&report, Violation::RelayWrongSide);
    // every teacher message of every chat came back to its teacher
    assert_eq!(report.violations, 4 * 3, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_relay_is_out_of_order() {
    let report = run_against(Bug::DuplicateRelay, 4, 1, 0.0).await;
    only(&report, Violation::RelayOutOfOrder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_status() {
    let report = run_against(Bug::BadStatus, 4, 2, 0.0).await;
    only(&report, Violation::StatusInconsistent);
    assert_eq!(report.students_finished, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifo_queue_is_a_fifo_inversion() {
    // Students arrive 20 ms apart, so each ACK is read before the next ready is sent.
    let report = run_against(Bug::Lifo, 8, 1, 50.0).await;
    only(&report, Violation::FifoInversion);
    assert_eq!(report.students_finished, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixth_chat() {
    let report = run_against(Bug::NoCap, 6, 1, 0.0).await;
    only(&report, Violation::TeacherOverCapacity);
    assert_eq!(report.violations, 1, "{}", report.summary());
    assert_eq!(report.students_finished, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_ready_twice() {
    let report = run_against(Bug::ReadyTwice, 3, 1, 0.0).await;
    only(&report, Violation::ChatReadyTwice);
    // both sides of every chat
    assert_eq!(report.violations, 3 * 2, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_terminated_twice() {
    let report = run_against(Bug::TerminatedTwice, 3, 1, 0.0).await;
    only(&report, Violation::ChatTerminatedTwice);
    assert_eq!(report.violations, 3 * 2, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_errors_not_panics() {
    let report = run_against(Bug::Garbage, 3, 1, 0.0).await;
    assert_eq!(report.violations, 0, "{}", report.summary());
    assert_eq!(
        report.errors_by_kind["malformed_frame"],
        3 * 2,
        "{}",
        report.summary()
    );
    assert_eq!(report.students_finished, 3);
    // errors alone do not fail a run whose students all finished
    assert!(report.success(), "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_chat_joins_are_sent_again() {
    let report = run_against(Bug::UnavailableChatJoins, 4, 1, 0.0).await;
    let summary = report.summary();
    // Each side of each chat joined again once, and every chat went on.
    assert_eq!(report.unavailable_retries, 4 * 2, "{summary}");
    assert_eq!(report.students_finished, 4, "{summary}");
    assert_eq!(report.errors, 0, "{summary}");
    assert_eq!(report.violations, 0, "{summary}");
    assert!(report.success(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_list_watchers_count_the_pushes() {
    let report = run_watched(Bug::None, 4, 1, 0.0, 2).await;
    let summary = report.summary();
    assert_eq!(report.violations, 0, "{summary}");
    assert_eq!(report.errors, 0, "{summary}");
    let watched = report.waiting_list.as_ref().expect("waiting_list figures");
    assert_eq!((watched.watchers, watched.watching), (2, 2), "{summary}");
    // The fake pushes the (empty) list once, after the join reply.
    assert_eq!((watched.frames, watched.frames_max), (2, 1), "{summary}");
    assert_eq!(watched.over_bound, 0, "{summary}");
    assert!(report.json().contains(r#""waiting_list":{"watchers":2"#));
    assert!(report.success(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncoalesced_waiting_list_is_a_flood() {
    // 50 pushes at once: more than one after the join and one per started 250 ms
    // unless the run took 12 s (it takes well under one).
    let report = run_watched(Bug::FloodWaitingList, 4, 1, 0.0, 2).await;
    only(&report, Violation::WaitingListFlood);
    assert_eq!(report.violations, 2, "{}", report.summary());
    let watched = report.waiting_list.as_ref().expect("waiting_list figures");
    assert_eq!(
        (watched.frames, watched.over_bound),
        (100, 2),
        "{}",
        report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watchers_no_waiting_list_in_the_report() {
    let report = run_against(Bug::None, 2, 1, 0.0).await;
    assert!(report.waiting_list.is_none());
    assert!(
        !report.json().contains("waiting_list\""),
        "{}",
        report.json()
    );
}
