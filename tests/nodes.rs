//! Two nodes, one queue (issue 13): two servers on one Redis (`support::nodes`) serve
//! their users as one server would. FIFO by arrival over both nodes, never a sixth chat
//! for a teacher claiming from both nodes at once, a chat whose sides are on different
//! nodes (new:chat, chat:ready, messages both ways in order, chat:terminated, its
//! transcript on its home), status snapshots that never go back on either node, a
//! user vanishing on one node while chatting with one on the other (PROTOCOL 6.1,
//! 6.2), and token users away from one node: back on either node (6.3), with a tab on
//! the other node, or gone when the window ends. V1 and V2; skipped without a Redis
//! (failed under `CI=true`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tutor_queue::identity::Role;

use crate::keep_place::{
    another_tab_joins_the_chat, another_tab_joins_waiting, drop_connection, ends_the_chat, enter,
    goes_away, joins_chatting, numbered, opting, other_side, rejoin_gets_held, send_all, signed_in,
    signed_student, signed_teacher, teacher_back_with, transcript_of, LONG,
};
use crate::support::auth::{admin_token, http_get_as, test_keys};
use crate::support::nodes::{two_nodes, two_nodes_configured, TwoNodes};
use crate::support::*;

/// A grace window the tests that watch one end wait out.
const WINDOW: Duration = Duration::from_secs(2);

/// A server config that takes the test tokens and keeps a token user's place for
/// [`LONG`] (no test outlives it).
fn with_tokens() -> Config {
    keeping(LONG)
}

/// A server config that takes the test tokens and keeps a token user's place for
/// `window`.
fn keeping(window: Duration) -> Config {
    Config {
        tokens: Some(test_keys()),
        reconnect_grace: window,
        ..Config::default()
    }
}

/// `what` happened `waited` after a drop: not before [`WINDOW`] ended (less 100 ms of
/// timer slack).
fn not_before_the_window(waited: Duration, what: &str) {
    assert!(
        waited + Duration::from_millis(100) >= WINDOW,
        "{what} {waited:?} after the drop, before the window ({WINDOW:?}) ended"
    );
}

/// Students `sids`, each ready (answered) before the next: on node A, B, A, B, ... in
/// that order, so their arrival order is `sids`'.
async fn ready_in_turn(nodes: &TwoNodes, framing: Framing, sids: &[Value]) -> Vec<Client> {
    let mut students = Vec::new();
    for (i, sid) in sids.iter().enumerate() {
        let (node, name) = nodes.alternate(i);
        let s = ready_student(node, framing, sid.clone())
            .await
            .named(format!("student {sid} on {name}"));
        students.push(s);
    }
    students
}

/// Each student (`sids[i]` is `students[i]`) gets exactly one `new:chat`, on its own
/// node, and it is the chat `chats` holds for it; returns nothing, panics otherwise.
async fn each_told_once(students: &mut [Client], sids: &[Value], chats: &[Value]) {
    for (s, sid) in students.iter_mut().zip(sids) {
        let chat = chats
            .iter()
            .find(|c| &c["student_id"] == sid)
            .unwrap_or_else(|| panic!("no chat for student {sid} in {chats:?}"));
        let told = s.wait_for(&student_topic(sid), "new:chat", WAIT).await;
        assert_eq!(
            &told.payload, chat,
            "[{}] new:chat is the claimed chat",
            s.name
        );
    }
    for (i, (s, sid)) in students.iter_mut().zip(sids).enumerate() {
        let window = if i == 0 {
            SILENCE
        } else {
            Duration::from_millis(20)
        };
        s.expect_no_event(&student_topic(sid), "new:chat", window)
            .await;
    }
}

/// `claims` claims from each of `teachers` (`(connection, teacher id)`), sent all at
/// once, interleaved; answers, per connection, the chat objects its claims got, in
/// the order of its claims, and asserts every other reply was `ok` `{}`.
async fn claim_at_once(teachers: &mut [(&mut Client, Value)], claims: usize) -> Vec<Vec<Value>> {
    let mut refs: Vec<Vec<Value>> = vec![Vec::new(); teachers.len()];
    for _ in 0..claims {
        for (i, (t, tid)) in teachers.iter_mut().enumerate() {
            let r = t
                .push(
                    "presence:teachers",
                    "claim:student",
                    json!({"teacherId": tid}),
                )
                .await;
            refs[i].push(r);
        }
    }
    let mut got = Vec::new();
    for ((t, _), refs) in teachers.iter_mut().zip(&refs) {
        let mut mine = Vec::new();
        for r in refs {
            let reply = t.reply("presence:teachers", r).await;
            assert_eq!(reply.status(), "ok", "[{}] claim: {}", t.name, reply.raw);
            if reply.response() != &json!({}) {
                mine.push(reply.response().clone());
            }
        }
        got.push(mine);
    }
    got
}

/// The next `n` events `event` on `topic` that `c` reads, their payloads in order.
async fn receive_n(c: &mut Client, topic: &str, event: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(c.wait_for(topic, event, WAIT).await.payload);
    }
    got
}

/// Teacher 1 on A and teacher 2 on B, tokenless, in presence.
async fn teacher_on_each_node(nodes: &TwoNodes, framing: Framing) -> (Client, Client) {
    let ta = teacher(&nodes.a, framing, 1).await.named("teacher 1 on A");
    let tb = teacher(&nodes.b, framing, 2).await.named("teacher 2 on B");
    (ta, tb)
}

/// Token teacher t1 on A claims token student ana (ready) on B, and both enter the chat,
/// their chat joins opting into `t1_flags` and `ana_flags`; A, the claimer's node, is the
/// chat's home. Returns the teacher, the student and the chat id.
async fn t1_on_a_chatting_with_ana_on_b(
    nodes: &TwoNodes,
    framing: Framing,
    t1_flags: &[&str],
    ana_flags: &[&str],
) -> (Client, Client, String) {
    let mut t = signed_teacher(&nodes.a, framing, "t1")
        .await
        .named("teacher t1 on A");
    let mut s = signed_student(&nodes.b, framing, "ana")
        .await
        .named("student ana on B");
    let (t1, ana) = (json!("t1"), json!("ana"));
    let cid = t.claim_expect(&t1, &ana).await;
    let (t_params, s_params) = (
        opting(teacher_params(&t1), t1_flags),
        opting(student_params(&ana), ana_flags),
    );
    enter(&mut t, t_params, &mut s, s_params, &cid).await;
    (t, s, cid)
}

/// `from`, the `side` of the chat on `topic`, sends `{"message": text}`, and the other
/// side `to` receives it.
async fn relayed(from: &mut Client, side: &str, to: &mut Client, topic: &str, text: &str) {
    let message = json!({ "message": text });
    from.push(topic, &format!("{side}:send"), message.clone())
        .await;
    let receive = format!("{}:receive", other_side(side));
    let got = to.wait_for(topic, &receive, WAIT).await;
    assert_eq!(got.payload, message);
}

/// The next `user:status` `t` reads is `expected` (teachers, total, waiting, chatting,
/// finished).
async fn next_status(t: &mut Client, expected: (u64, u64, u64, u64, u64), what: &str) {
    let st = t.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(status_tuple(&st.payload), expected, "{what}: {}", st.raw);
}

/// `c`, in the chat on `topic`, hears that its `role` side is back.
async fn hears_back(c: &mut Client, topic: &str, role: &str) {
    let back = c.wait_for(topic, "chat:back", WAIT).await;
    assert_eq!(back.payload, json!({"role": role}), "{}", back.raw);
}

/// Token student `sid`, away from her chat on `topic`, back on a new connection to
/// `node` (named `name`): her presence join says `chatting` and `t`, the teacher, hears
/// `chat:back`. Returns her connection and her presence join reply.
async fn student_back_on(
    node: &Server,
    framing: Framing,
    sid: &str,
    name: &str,
    t: &mut Client,
    topic: &str,
) -> (Client, Frame) {
    let mut s = signed_in(node, framing, sid, Role::Student)
        .await
        .named(name);
    let reply = joins_chatting(&mut s, &json!(sid)).await;
    hears_back(t, topic, "student").await;
    (s, reply)
}

// ----- 1. FIFO by arrival over both nodes -----

/// Eight students become ready in turn on A and B (ids out of order); teachers on A and
/// B claim (A, A, B, B, ...: same-node and cross-node claims): each claim serves the
/// next arrival, whichever node it is on. Then ten more, with a fresh teacher on each
/// node claiming five times at once: every student is served exactly once, each
/// teacher's students in arrival order, and each student hears `new:chat` once, on its
/// own node.
async fn fifo_by_arrival_across_nodes(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: FIFO", Config::default()) else {
        return;
    };
    let (mut ta, mut tb) = teacher_on_each_node(&nodes, framing).await;
    let sids: Vec<Value> = [10, 3, 7, 1, 12, 5, 9, 2].map(|i| json!(i)).to_vec();
    let mut students = ready_in_turn(&nodes, framing, &sids).await;

    let mut chats = Vec::new();
    for (i, sid) in sids.iter().enumerate() {
        let (t, tid) = if i % 4 < 2 {
            (&mut ta, json!(1))
        } else {
            (&mut tb, json!(2))
        };
        let chat = t
            .claim(&tid)
            .await
            .unwrap_or_else(|| panic!("claim {i} assigned nobody, expected student {sid}"));
        assert_eq!(
            &chat["student_id"], sid,
            "claim {i} (by teacher {tid}) serves arrival {i}: {chat}"
        );
        assert_chat_object(&chat, &tid, sid);
        chats.push(chat);
    }
    assert_eq!(ta.claim(&json!(1)).await, None, "the line is empty on A");
    assert_eq!(tb.claim(&json!(2)).await, None, "the line is empty on B");
    each_told_once(&mut students, &sids, &chats).await;

    // Ten more, and a claim burst from both nodes.
    let later: Vec<Value> = (0..10).map(|i| json!(format!("late-{}", 9 - i))).collect();
    let mut late_students = ready_in_turn(&nodes, framing, &later).await;
    let mut t3 = teacher(&nodes.a, framing, 3).await.named("teacher 3 on A");
    let mut t4 = teacher(&nodes.b, framing, 4).await.named("teacher 4 on B");
    let got = claim_at_once(&mut [(&mut t3, json!(3)), (&mut t4, json!(4))], 5).await;
    let arrival = |chat: &Value| {
        later
            .iter()
            .position(|sid| sid == &chat["student_id"])
            .unwrap_or_else(|| panic!("a claim served a student not waiting: {chat}"))
    };
    for (tid, mine) in [(3, &got[0]), (4, &got[1])] {
        assert_eq!(mine.len(), 5, "teacher {tid}: ten students, ten claims");
        let order: Vec<usize> = mine.iter().map(arrival).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "teacher {tid} was served out of arrival order: {order:?}"
        );
        for chat in mine {
            assert_eq!(chat["teacher_id"], json!(tid), "{chat}");
        }
    }
    let served: Vec<Value> = got.concat();
    let once: HashSet<usize> = served.iter().map(arrival).collect();
    assert_eq!(once.len(), 10, "every student served once: {served:?}");
    each_told_once(&mut late_students, &later, &served).await;
}

// ----- 2. never a sixth chat, with claims from two nodes at once -----

/// Token teacher t1 is present on A and on B (two connections, one teacher). Twelve
/// students wait; t1 fires ten claims from each node at once: five are served (the
/// five earliest arrivals), every other claim gets `ok` `{}` (PROTOCOL 7.1), each
/// served claim's `new:chat:t1` goes to the connection that claimed. A third
/// connection is capped too; another teacher takes the sixth student; once t1 ends one
/// chat on A, one claim from B is served again, and no more.
async fn five_chats_under_claims_from_two_nodes(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: five chats", with_tokens()) else {
        return;
    };
    let t1 = json!("t1");
    let sids: Vec<String> = (1..=12).map(|i| format!("s{i:02}")).collect();
    let mut students = Vec::new();
    for (i, sid) in sids.iter().enumerate() {
        let (node, name) = nodes.alternate(i);
        let s = signed_student(node, framing, sid).await;
        students.push(s.named(format!("student {sid} on {name}")));
    }
    let mut ta = signed_teacher(&nodes.a, framing, "t1")
        .await
        .named("teacher t1 on A");
    let mut tb = signed_teacher(&nodes.b, framing, "t1")
        .await
        .named("teacher t1 on B");

    let got = claim_at_once(&mut [(&mut ta, t1.clone()), (&mut tb, t1.clone())], 10).await;
    let served: Vec<Value> = got.concat();
    assert_eq!(
        served.len(),
        5,
        "claims served, over both nodes: {served:?}"
    );
    let ids: HashSet<String> = served.iter().map(|c| key(&c["student_id"])).collect();
    let first_five: HashSet<String> = sids[..5].iter().cloned().collect();
    assert_eq!(ids, first_five, "the five earliest arrivals, once each");
    for (t, mine) in [(&mut ta, &got[0]), (&mut tb, &got[1])] {
        t.drain(SILENCE).await;
        let pushed = t.take_all(|f| f.is("presence:teachers", "new:chat:t1"));
        let pushed: Vec<Value> = pushed.into_iter().map(|f| f.payload).collect();
        assert_eq!(
            &pushed, mine,
            "[{}] new:chat:t1 pushes are its own served claims",
            t.name
        );
    }
    for (s, sid) in students.iter_mut().zip(&sids) {
        let topic = student_topic(&json!(sid));
        if first_five.contains(sid) {
            s.wait_for(&topic, "new:chat", WAIT).await;
        } else {
            s.expect_no_event(&topic, "new:chat", Duration::ZERO).await;
        }
    }

    let mut tc = signed_in(&nodes.b, framing, "t1", Role::Teacher)
        .await
        .named("teacher t1 on B, third connection");
    let joined = tc.join("presence:teachers", teacher_params(&t1)).await;
    let listed = joined.response()["chats"].as_array().map(Vec::len);
    assert_eq!(listed, Some(5), "t1's five chats: {}", joined.raw);
    assert_eq!(
        tc.claim(&t1).await,
        None,
        "a third connection of t1 got a sixth chat"
    );
    let mut t2 = signed_teacher(&nodes.a, framing, "t2")
        .await
        .named("teacher t2 on A");
    t2.claim_expect(&json!("t2"), &json!(sids[5])).await;

    // t1 ends one chat, on A: one slot, usable from B.
    let ended = &served[0];
    let cid = ended["id"].as_str().expect("chat id");
    let topic = chat_topic(cid);
    let joined = ta.join(&topic, teacher_params(&t1)).await;
    assert_eq!(
        joined.status(),
        "ok",
        "t1 joins its chat on A: {}",
        joined.raw
    );
    ends_the_chat(&mut ta, &topic).await;
    let chat = tb
        .claim(&t1)
        .await
        .expect("t1 ended a chat: a free slot, from B too");
    assert_eq!(
        chat["student_id"],
        json!(sids[6]),
        "the next arrival: {chat}"
    );
    assert_eq!(ta.claim(&t1).await, None, "t1 is at five again (A)");
    assert_eq!(tb.claim(&t1).await, None, "t1 is at five again (B)");
}

// ----- 3. a chat across nodes -----

/// Teacher on A, student on B: the student hears `new:chat` on B, both join the chat
/// and hear `chat:ready` (once); 200 messages each way, sent interleaved without
/// waiting, arrive complete and in order, each only on the other side; the student
/// (on B) ends the chat and both hear `chat:terminated` once; its transcript, on its
/// home (A, whose teacher claimed it), holds every message once, in order, and B's
/// transcript API serves it too. Again, and the teacher ends it.
async fn a_chat_across_nodes(framing: Framing) {
    let dirs = [(); 2].map(|()| tempfile::tempdir().expect("temp dir"));
    let [a, b] = [0, 1].map(|i| Config {
        data_dir: dirs[i].path().to_owned(),
        tokens: Some(test_keys()),
        ..Config::default()
    });
    let Some(nodes) = two_nodes_configured("nodes: a chat across nodes", a, b) else {
        return;
    };
    let (tid, sid) = (json!(1), json!(7));
    let mut t = teacher(&nodes.a, framing, 1).await.named("teacher 1 on A");
    let mut s = ready_student(&nodes.b, framing, 7)
        .await
        .named("student 7 on B");

    let mut chats = Vec::new();
    for (round, ender) in ["student", "teacher"].into_iter().enumerate() {
        if round > 0 {
            s.ready(&sid).await;
        }
        let chat = t.claim(&tid).await.expect("student 7 is waiting");
        chats.push(chat["id"].as_str().expect("chat id").to_owned());
        assert_chat_object(&chat, &tid, &sid);
        let told = s.wait_for(&student_topic(&sid), "new:chat", WAIT).await;
        assert_eq!(told.payload, chat, "new:chat on B is the claimed chat");
        let cid = chat["id"].as_str().expect("chat id").to_owned();
        let topic = chat_topic(&cid);
        t.join_chat(&cid, "teacher", &tid).await;
        s.join_chat(&cid, "student", &sid).await;
        both_enter(&mut t, &mut s, &cid).await;

        let n = if round == 0 { 200 } else { 3 };
        let to_s = numbered(&format!("teacher to student, chat {round}"), n);
        let to_t = numbered(&format!("student to teacher, chat {round}"), n);
        for (m_t, m_s) in to_s.iter().zip(&to_t) {
            t.push(&topic, "teacher:send", m_t.clone()).await;
            s.push(&topic, "student:send", m_s.clone()).await;
        }
        assert_eq!(
            receive_n(&mut s, &topic, "student:receive", n).await,
            to_s,
            "the student (B) gets the teacher's messages, all, in order"
        );
        assert_eq!(
            receive_n(&mut t, &topic, "teacher:receive", n).await,
            to_t,
            "the teacher (A) gets the student's messages, all, in order"
        );

        let (ends, other) = if ender == "student" {
            (&mut s, &mut t)
        } else {
            (&mut t, &mut s)
        };
        ends_the_chat(ends, &topic).await;
        other.wait_for(&topic, "chat:terminated", WAIT).await;
        t.wait_match(
            |f| {
                f.is("presence:teachers", "user:status")
                    && status_tuple(&f.payload) == (1, 1, 0, 0, 1)
            },
            "user:status with student 7 finished",
            WAIT,
        )
        .await;
        for c in [&mut t, &mut s] {
            c.drain(SILENCE).await;
            let extra = c.take_all(|f| {
                f.topic == topic
                    && matches!(
                        f.event.as_str(),
                        "chat:ready" | "chat:terminated" | "student:receive" | "teacher:receive"
                    )
            });
            let extra: Vec<&str> = extra.iter().map(|f| f.raw.as_str()).collect();
            assert!(
                extra.is_empty(),
                "[{}] frames once too many (or its own messages back): {extra:?}",
                c.name
            );
            c.expect_none(
                |f| f.event == "phx_reply" && f.status() == "error",
                "an error reply",
                Duration::ZERO,
            )
            .await;
            c.clear();
        }
        s.leave(&topic).await;
        t.leave(&topic).await;

        let (_, stored) = transcript_of(nodes.a.port, &cid, 2 * n).await;
        let sent_by = |who: &str| -> Vec<Value> {
            stored
                .iter()
                .filter(|(sender, _)| sender == who)
                .map(|(_, payload)| payload.clone())
                .collect()
        };
        assert_eq!(stored.len(), 2 * n, "chat {round}'s transcript: {stored:?}");
        assert_eq!(sent_by("teacher"), to_s, "chat {round}'s transcript");
        assert_eq!(sent_by("student"), to_t, "chat {round}'s transcript");
        // B did not record it, and serves it all the same (from A).
        let (_, through_b) = transcript_of(nodes.b.port, &cid, 2 * n).await;
        assert_eq!(
            through_b, stored,
            "chat {round}'s transcript read through B"
        );
    }

    // B lists both (recorded on A), newest first, a page at a time.
    let page = |after: Option<String>| {
        let path = match after {
            Some(next) => format!("/api/chats?limit=1&before={next}"),
            None => "/api/chats?limit=1".to_owned(),
        };
        let port = nodes.b.port;
        async move {
            let response = http_get_as(port, &path, &admin_token()).await;
            assert_eq!(response.status, 200, "{path}: {}", response.text());
            let body: Value = serde_json::from_str(&response.text()).expect("chats JSON");
            let ids: Vec<String> = body["chats"]
                .as_array()
                .expect("chats array")
                .iter()
                .map(|c| c["id"].as_str().unwrap_or("?").to_owned())
                .collect();
            (ids, body["next"].as_str().map(str::to_owned))
        }
    };
    let (first, next) = page(None).await;
    assert_eq!(first, [chats[1].clone()], "the newest chat first, from B");
    let (second, last) = page(Some(next.expect("a next page"))).await;
    assert_eq!(second, [chats[0].clone()], "then the older one");
    assert_eq!(last, None, "and nothing after it");
}

// ----- 4. status snapshots in one order -----

/// Teachers on A and B watch thirty students become ready, ten one by one and then
/// twenty at once, on both nodes, with no claims: the waiting count each teacher sees
/// only goes up (a node may drop a stale snapshot, never show one), and the last one
/// each sees is 30; nothing after it.
async fn status_snapshots_never_go_back(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: status order", Config::default()) else {
        return;
    };
    let (mut ta, mut tb) = teacher_on_each_node(&nodes, framing).await;
    const N: u64 = 30;
    let mut students = Vec::new();
    for i in 0..N as usize {
        let (node, name) = nodes.alternate(i);
        let s = student(node, framing, 100 + i).await;
        students.push(s.named(format!("student {} on {name}", 100 + i)));
    }
    for (i, s) in students.iter_mut().enumerate().take(10) {
        s.ready(&json!(100 + i)).await;
    }
    let mut refs = Vec::new();
    for (i, s) in students.iter_mut().enumerate().skip(10) {
        let sid = json!(100 + i);
        refs.push(
            s.push(
                &student_topic(&sid),
                "student:ready",
                json!({"userId": sid}),
            )
            .await,
        );
    }
    for ((i, s), r) in students.iter_mut().enumerate().skip(10).zip(&refs) {
        s.reply(&student_topic(&json!(100 + i)), r)
            .await
            .assert_ok_empty();
    }

    for t in [&mut ta, &mut tb] {
        let mut seen: Vec<u64> = Vec::new();
        while seen.last() != Some(&N) {
            let st = t.wait_for("presence:teachers", "user:status", WAIT).await;
            let (teachers, total, waiting, chatting, finished) = status_tuple(&st.payload);
            assert_eq!(
                (teachers, total, chatting, finished),
                (2, waiting, 0, 0),
                "[{}] both teachers, only waiting students: {}",
                t.name,
                st.raw
            );
            if let Some(last) = seen.last() {
                assert!(
                    waiting > *last,
                    "[{}] the waiting count went from {last} to {waiting}: snapshots seen {seen:?}",
                    t.name
                );
            }
            seen.push(waiting);
        }
        no_status(t, "the last ready").await;
    }
}

// ----- 5. a teacher vanishing on A, its student on B -----

/// Teacher 1 (A, tokenless) chats with student 7 (B); student 8 (A) waits behind. The
/// teacher's connection drops (PROTOCOL 6.2): student 7's chat channel on B is closed
/// (`phx_close`, no `chat:terminated`), teacher 2 on B sees one `user:status` with both
/// students waiting, and its claims serve 7 (back at the head) before 8.
async fn a_teacher_vanishing_on_a_requeues_its_student_on_b(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: a teacher vanishes", Config::default()) else {
        return;
    };
    let (t1, t2, s7, s8) = (json!(1), json!(2), json!(7), json!(8));
    let (mut ta, mut tb) = teacher_on_each_node(&nodes, framing).await;
    let mut seven = ready_student(&nodes.b, framing, 7)
        .await
        .named("student 7 on B");
    let _eight = ready_student(&nodes.a, framing, 8)
        .await
        .named("student 8 on A");
    let cid = ta.claim_expect(&t1, &s7).await;
    enter_chat(&mut ta, &t1, &mut seven, &s7, &cid).await;
    settle(&mut tb, (2, 2, 1, 1, 0)).await;

    ta.vanish();
    let topic = chat_topic(&cid);
    seven.wait_for(&topic, "phx_close", WAIT).await;
    seven.forget(&topic);
    next_status(
        &mut tb,
        (1, 2, 2, 0, 0),
        "teacher 1 gone, student 7 waiting again",
    )
    .await;
    no_status(&mut tb, "teacher 1 vanished: one user:status").await;
    seven
        .expect_no_event(&topic, "chat:terminated", Duration::ZERO)
        .await;

    let again = tb.claim_expect(&t2, &s7).await;
    let told = seven.wait_for(&student_topic(&s7), "new:chat", WAIT).await;
    assert_eq!(told.payload["id"], json!(again), "{}", told.raw);
    tb.claim_expect(&t2, &s8).await;
    let reply = seven.join(&topic, student_params(&s7)).await;
    assert!(
        reply.status() == "error" && ["chat finished", "unknown chat"].contains(&reply.reason()),
        "a join of the abandoned chat is refused: {}",
        reply.raw
    );
}

// ----- 6. a token student away from B, back on A -----

/// Token teacher t1 (A, asking for away notices) chats with token student ana (B).
/// Ana's connection drops: the teacher hears `chat:away`; what it sends meanwhile is
/// held. Ana comes back on A: her presence join says she is chatting, the teacher
/// hears `chat:back`, and her chat join counts the messages and gets the held ones
/// right after its reply, in order; then the chat goes on both ways.
async fn a_token_student_away_from_b_comes_back_on_a(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: away across nodes", with_tokens()) else {
        return;
    };
    let ana = json!("ana");
    let (mut t, mut s, cid) =
        t1_on_a_chatting_with_ana_on_b(&nodes, framing, &["awayNotices"], &[]).await;
    let topic = chat_topic(&cid);
    relayed(&mut t, "teacher", &mut s, &topic, "what is 2+2?").await;
    relayed(&mut s, "student", &mut t, &topic, "4").await;

    goes_away(s, "student", &mut t, &cid, LONG).await;
    let held = numbered("while you were away", 4);
    send_all(&mut t, "teacher", &topic, &held[..3]).await;

    let back_on_a = "student ana, back on A";
    let (mut s, reply) = student_back_on(&nodes.a, framing, "ana", back_on_a, &mut t, &topic).await;
    assert_eq!(reply.status(), "ok", "{}", reply.raw);
    assert_eq!(reply.response()["chat"]["id"], json!(cid), "{}", reply.raw);
    send_all(&mut t, "teacher", &topic, &held[3..]).await;
    rejoin_gets_held(&mut s, "student", &topic, student_params(&ana), 6, &held).await;

    let live = json!({"message": "welcome back"});
    t.push(&topic, "teacher:send", live.clone()).await;
    let got = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(got.payload, live, "live messages come after the held ones");
    relayed(&mut s, "student", &mut t, &topic, "thanks").await;

    // Away again, from A this time, and back on B: the far side of the chat again.
    goes_away(s, "student", &mut t, &cid, LONG).await;
    let held = numbered("still there?", 2);
    send_all(&mut t, "teacher", &topic, &held).await;
    let back_on_b = "student ana, back on B";
    let (mut s, _) = student_back_on(&nodes.b, framing, "ana", back_on_b, &mut t, &topic).await;
    rejoin_gets_held(&mut s, "student", &topic, student_params(&ana), 10, &held).await;
    relayed(&mut t, "teacher", &mut s, &topic, "good").await;
    t.expect_no_event(&topic, "chat:terminated", Duration::ZERO)
        .await;
}

// ----- 7. a token teacher away from A (its chat's home), back on B -----

/// Token teacher t1 claims ana on A (A is the chat's home), ana is on B and asks for
/// away notices. The teacher's connection drops: ana hears `chat:away`, and writes.
/// t1 comes back on B: its presence join lists the chat, ana hears `chat:back`, its
/// chat join gets what ana wrote, in order; the chat goes on both ways with both
/// sides on B; the teacher ends it, both hear `chat:terminated`, and a teacher on A
/// sees the counts; t1's slot is free again.
async fn a_token_teacher_away_from_a_comes_back_on_b(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: a teacher away across nodes", with_tokens()) else {
        return;
    };
    let (t1, ana) = (json!("t1"), json!("ana"));
    let mut watcher = signed_teacher(&nodes.a, framing, "t9")
        .await
        .named("teacher t9 on A");
    let (mut t, mut s, cid) =
        t1_on_a_chatting_with_ana_on_b(&nodes, framing, &[], &["awayNotices"]).await;
    let topic = chat_topic(&cid);
    relayed(&mut t, "teacher", &mut s, &topic, "hello").await;

    goes_away(t, "teacher", &mut s, &cid, LONG).await;
    let held = numbered("are you there?", 3);
    send_all(&mut s, "student", &topic, &held).await;

    let mut t = teacher_back_with(&nodes.b, framing, "t1", &[(&cid, "ana")])
        .await
        .named("teacher t1, back on B");
    hears_back(&mut s, &topic, "teacher").await;
    rejoin_gets_held(&mut t, "teacher", &topic, teacher_params(&t1), 4, &held).await;
    relayed(&mut s, "student", &mut t, &topic, "sorry, my wifi").await;
    relayed(&mut t, "teacher", &mut s, &topic, "where were we").await;

    settle(&mut watcher, (2, 1, 0, 1, 0)).await;
    ends_the_chat(&mut t, &topic).await;
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    next_status(&mut watcher, (2, 1, 0, 0, 1), "ana's chat ended").await;
    s.ready(&ana).await;
    t.claim_expect(&t1, &ana).await;
}

// ----- 8. a tokenless student vanishing on B -----

/// Student 7 (B, tokenless) chats with teacher 1 (A) and its connection drops
/// (PROTOCOL 6.1): the teacher on A hears `chat:terminated`, teacher 2 on B sees the
/// roster empty, and teacher 1's slot is free for the next student.
async fn a_student_vanishing_on_b_ends_its_chat_on_a(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: a student vanishes", Config::default()) else {
        return;
    };
    let (t1, s7, s8) = (json!(1), json!(7), json!(8));
    let (mut ta, mut tb) = teacher_on_each_node(&nodes, framing).await;
    let mut seven = ready_student(&nodes.b, framing, 7)
        .await
        .named("student 7 on B");
    let cid = ta.claim_expect(&t1, &s7).await;
    enter_chat(&mut ta, &t1, &mut seven, &s7, &cid).await;
    settle(&mut tb, (2, 1, 0, 1, 0)).await;

    seven.vanish();
    ta.wait_for(&chat_topic(&cid), "chat:terminated", WAIT)
        .await;
    next_status(&mut tb, (2, 0, 0, 0, 0), "student 7 gone").await;
    no_status(&mut tb, "student 7 vanished: one user:status").await;
    let _eight = ready_student(&nodes.b, framing, 8)
        .await
        .named("student 8 on B");
    ta.claim_expect(&t1, &s8).await;
}

// ----- 9. a second tab on the other node -----

/// Token student ana has a tab on B and one on A. The tab on B drops while she waits:
/// she is not away (presence counts her connections on every node), so a claim on A
/// serves her. Chatting, with a third tab on B joined to the chat, the tab on A drops:
/// no `chat:away` for the teacher, and its messages reach the tab on B.
async fn a_tab_on_the_other_node_keeps_a_student_present(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: two tabs", with_tokens()) else {
        return;
    };
    let (t1, ana) = (json!("t1"), json!("ana"));
    let mut t = signed_teacher(&nodes.a, framing, "t1")
        .await
        .named("teacher t1 on A");
    let on_b = signed_student(&nodes.b, framing, "ana")
        .await
        .named("ana's tab on B");
    let mut on_a = signed_in(&nodes.a, framing, "ana", Role::Student)
        .await
        .named("ana's tab on A");
    another_tab_joins_waiting(&mut on_a, &ana).await;
    settle(&mut t, (1, 1, 1, 0, 0)).await;

    drop_connection(nodes.b.port, on_b).await;
    no_status(&mut t, "one of ana's two tabs dropped").await;
    let cid = t.claim_expect(&t1, &ana).await;
    let chat = chat_topic(&cid);
    let t_params = opting(teacher_params(&t1), &["awayNotices"]);
    enter(&mut t, t_params, &mut on_a, student_params(&ana), &cid).await;
    let mut third = signed_in(&nodes.b, framing, "ana", Role::Student)
        .await
        .named("ana's third tab, on B");
    another_tab_joins_the_chat(&mut third, &ana, &cid).await;

    drop_connection(nodes.a.port, on_a).await;
    t.expect_no_event(&chat, "chat:away", SILENCE).await;
    relayed(&mut t, "teacher", &mut third, &chat, "still here?").await;
}

// ----- 10. an away teacher's chat abandoned across nodes -----

/// Token teacher t1 (A) chats with ana (B) and drops for good: ana hears `chat:away`;
/// when the window ends, her chat channel on B is closed (`phx_close`, no
/// `chat:terminated`), teacher t2 on B sees one `user:status` with her waiting, and
/// its claim serves her.
async fn an_away_teachers_chat_is_abandoned_across_nodes(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: an away teacher's window ends", keeping(WINDOW)) else {
        return;
    };
    let (t2, ana) = (json!("t2"), json!("ana"));
    let mut other = signed_teacher(&nodes.b, framing, "t2")
        .await
        .named("teacher t2 on B");
    let (t, mut s, cid) =
        t1_on_a_chatting_with_ana_on_b(&nodes, framing, &[], &["awayNotices"]).await;
    let topic = chat_topic(&cid);
    settle(&mut other, (2, 1, 0, 1, 0)).await;

    let dropped = Instant::now();
    goes_away(t, "teacher", &mut s, &cid, WINDOW).await;
    let jr = s.join_ref_of(&topic);
    let closed = s.wait_for(&topic, "phx_close", WINDOW + WAIT).await;
    not_before_the_window(dropped.elapsed(), "the chat was abandoned");
    assert_eq!(Some(closed.r#ref.clone()), jr, "{}", closed.raw);
    s.forget(&topic);
    s.expect_no_event(&topic, "chat:terminated", Duration::ZERO)
        .await;
    next_status(&mut other, (1, 1, 1, 0, 0), "t1 gone, ana back in line").await;
    no_status(&mut other, "t1's window ended: one user:status").await;
    other.claim_expect(&t2, &ana).await;
    s.wait_for(&student_topic(&ana), "new:chat", WAIT).await;
}

// ----- 11. an away student's chat ended across nodes -----

/// Token student ana (B) chats with teacher t1 (A, asking for away notices and end
/// reasons) and drops for good: when the window ends the teacher on A hears
/// `chat:terminated` with `student left`, and one `user:status` without her.
async fn an_away_students_chat_ends_across_nodes(framing: Framing) {
    let Some(nodes) = two_nodes("nodes: an away student's window ends", keeping(WINDOW)) else {
        return;
    };
    let t1_flags = ["awayNotices", "endReason"];
    let (mut t, s, cid) = t1_on_a_chatting_with_ana_on_b(&nodes, framing, &t1_flags, &[]).await;
    let topic = chat_topic(&cid);
    settle(&mut t, (1, 1, 0, 1, 0)).await;

    let dropped = Instant::now();
    goes_away(s, "student", &mut t, &cid, WINDOW).await;
    let ended = t.wait_for(&topic, "chat:terminated", WINDOW + WAIT).await;
    not_before_the_window(dropped.elapsed(), "the chat ended");
    assert_eq!(
        ended.payload,
        json!({"reason": "student left"}),
        "{}",
        ended.raw
    );
    next_status(&mut t, (1, 0, 0, 0, 0), "ana gone after the window").await;
    no_status(&mut t, "ana's window ended: one user:status").await;
}

crate::both!(
    fifo_by_arrival_across_nodes,
    five_chats_under_claims_from_two_nodes,
    a_chat_across_nodes,
    status_snapshots_never_go_back,
    a_teacher_vanishing_on_a_requeues_its_student_on_b,
    a_token_student_away_from_b_comes_back_on_a,
    a_token_teacher_away_from_a_comes_back_on_b,
    a_student_vanishing_on_b_ends_its_chat_on_a,
    a_tab_on_the_other_node_keeps_a_student_present,
    an_away_teachers_chat_is_abandoned_across_nodes,
    an_away_students_chat_ends_across_nodes,
);
