//! Presence and vanishing (PROTOCOL 5.1, 5.2, 6, 7.3): `user:status` exactly once per
//! change, separate teacher/student namespaces, student and teacher disconnects.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// Waits for the next user:status on `c` and checks it; then nothing more within SILENCE.
async fn one_status(c: &mut Client, expected: (u64, u64, u64, u64, u64), what: &str) {
    let st = c.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(
        status_tuple(&st.payload),
        expected,
        "{what}: (teachers, total, waiting, chatting, finished)"
    );
    c.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
}

/// 7.3: one user:status per change to the student counts, in order, never on a teacher
/// join, none for chat-channel joins/leaves or a teacher vanishing with nothing to requeue.
async fn user_status_exactly_once_per_change(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    no_status(&mut obs, "the observer's own join").await;
    let mut t = teacher(&srv, framing, 1).await;
    no_status(&mut obs, "a second teacher joined").await;
    let mut s = student(&srv, framing, 7).await;
    no_status(&mut obs, "a student joined without ready").await;

    s.ready(&json!(7)).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    let exact = match framing {
        Framing::V1 => {
            json!({"topic":"presence:teachers","event":"user:status","payload":status_payload(2,1,1,0,0),"ref":null})
        }
        Framing::V2 => json!([
            null,
            null,
            "presence:teachers",
            "user:status",
            status_payload(2, 1, 1, 0, 0)
        ]),
    };
    assert_eq!(st.value(), exact, "status after ready");
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    // Every presence:teachers channel gets the broadcast.
    let st = t.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(2, 1, 1, 0, 0));

    let cid = t.claim_expect(&json!(1), &json!(7)).await;
    one_status(&mut obs, (2, 1, 0, 1, 0), "after the claim").await;

    enter_chat(&mut t, &json!(1), &mut s, &json!(7), &cid).await;
    no_status(&mut obs, "entering the chat").await;

    t.call(&chat_topic(&cid), "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    one_status(&mut obs, (2, 1, 0, 0, 1), "after terminate").await;

    s.leave(&chat_topic(&cid)).await;
    t.leave(&chat_topic(&cid)).await;
    no_status(&mut obs, "leaving the chat channels").await;

    s.ready(&json!(7)).await;
    one_status(
        &mut obs,
        (2, 1, 1, 0, 0),
        "a finished student readied again",
    )
    .await;

    s.leave("presence:student:7").await;
    one_status(&mut obs, (2, 0, 0, 0, 0), "the student left").await;

    t.leave("presence:teachers").await;
    no_status(&mut obs, "a teacher with no chats left").await;
    let _t3 = teacher(&srv, framing, 3).await;
    let _s = ready_student(&srv, framing, 8).await;
    one_status(
        &mut obs,
        (2, 1, 1, 0, 0),
        "teachers.total counts present teachers",
    )
    .await;
}

/// 6.1 step 4: a student that goes away before `student:ready` causes no broadcast.
async fn student_leaving_before_ready_causes_no_status(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut s = student(&srv, framing, 7).await;
    s.leave("presence:student:7").await;
    no_status(&mut obs, "a student left before ready").await;
    let s = student(&srv, framing, 8).await;
    s.vanish();
    no_status(&mut obs, "a student dropped before ready").await;
    let mut s = student(&srv, framing, 9).await;
    s.call("presence:student:9", "student:ready", json!({"userId": 10}))
        .await
        .assert_error("unauthorized");
    s.leave("presence:student:9").await;
    no_status(&mut obs, "a student whose ready was refused left").await;
}

/// 5.2: a user is present while it has a presence channel on ANY connection.
async fn presence_spans_connections(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let t1a = teacher(&srv, framing, 1).await;
    let mut t1b = teacher(&srv, framing, 1).await;
    let s7a = ready_student(&srv, framing, 7).await;
    one_status(
        &mut obs,
        (2, 1, 1, 0, 0),
        "teacher 1 on two sockets counts once",
    )
    .await;
    let mut s7b = student(&srv, framing, 7).await;
    s7a.vanish();
    no_status(&mut obs, "student 7 dropped one of two sockets").await;
    t1a.vanish();
    // Student 7 is still waiting and teacher 1 still present: teacher 1's other socket
    // can claim it.
    let cid = t1b.claim_expect(&json!(1), &json!(7)).await;
    one_status(&mut obs, (2, 1, 0, 1, 0), "teacher 1 still present").await;
    s7b.wait_for("presence:student:7", "new:chat", WAIT).await;
    s7b.join_chat(&cid, "student", &json!(7)).await;
    s7b.leave("presence:student:7").await;
    one_status(
        &mut obs,
        (2, 0, 0, 0, 0),
        "student 7 left its last presence channel",
    )
    .await;
    // t1b did not join the chat channel: it must NOT get chat:terminated.
    t1b.expect_no_event(&chat_topic(&cid), "chat:terminated", SILENCE)
        .await;
}

/// 5.1, 8.7: teacher 1 and student 1 are different people.
async fn teacher_one_and_student_one_are_different(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 2).await;
    let mut t1 = teacher(&srv, framing, 1).await;
    let mut s1 = ready_student(&srv, framing, 1).await;
    one_status(
        &mut obs,
        (2, 1, 1, 0, 0),
        "teacher 1 and student 1 both present",
    )
    .await;

    // Teacher 1 and student 1 chat together: each joins with its own role.
    let cid = t1.claim_expect(&json!(1), &json!(1)).await;
    one_status(&mut obs, (2, 1, 0, 1, 0), "claim").await;
    enter_chat(&mut t1, &json!(1), &mut s1, &json!(1), &cid).await;

    t1.call(&chat_topic(&cid), "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    one_status(&mut obs, (2, 1, 0, 0, 1), "terminate").await;
    s1.ready(&json!(1)).await;
    one_status(&mut obs, (2, 1, 1, 0, 0), "student 1 ready again").await;

    // Teacher 1 leaving presence:teachers does not remove student 1.
    t1.leave("presence:teachers").await;
    no_status(&mut obs, "teacher 1 left").await;
    obs.claim_expect(&json!(2), &json!(1)).await;
    one_status(
        &mut obs,
        (1, 1, 0, 1, 0),
        "student 1 still queued, teacher 1 gone",
    )
    .await;

    // Student 1 leaving does not remove teacher 1 (now back) .
    let _t1 = teacher(&srv, framing, 1).await;
    s1.leave("presence:student:1").await;
    one_status(
        &mut obs,
        (2, 0, 0, 0, 0),
        "student 1 left, teachers 1 and 2 remain",
    )
    .await;
}

/// 6.1: a student vanishing mid-chat (socket dropped without a close frame) finishes the
/// chat: the teacher gets chat:terminated once and one user:status; its slot is freed.
async fn student_vanishes_mid_chat(framing: Framing) {
    let srv = start_default();
    let (mut t, s, cid) = start_chat(&srv, framing, 1, 7).await;
    let mut obs = teacher(&srv, framing, 900).await;
    let _waiting = ready_student(&srv, framing, 8).await;
    t.clear();
    one_status(&mut obs, (2, 2, 1, 1, 0), "student 8 ready").await;
    t.wait_for("presence:teachers", "user:status", WAIT).await;

    s.vanish();
    let term = t.wait_for(&chat_topic(&cid), "chat:terminated", WAIT).await;
    let exact = match framing {
        Framing::V1 => {
            json!({"topic": chat_topic(&cid), "event": "chat:terminated", "payload": {}, "ref": null})
        }
        Framing::V2 => json!([null, null, chat_topic(&cid), "chat:terminated", {}]),
    };
    assert_eq!(term.value(), exact);
    one_status(
        &mut obs,
        (2, 1, 1, 0, 0),
        "student 7 vanished while chatting",
    )
    .await;
    let st = t.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(status_tuple(&st.payload), (2, 1, 1, 0, 0));
    t.expect_no_event(&chat_topic(&cid), "chat:terminated", SILENCE)
        .await;
    t.expect_no_event("presence:teachers", "user:status", Duration::ZERO)
        .await;
    // The finished chat refuses the vanished student's rejoin (or is already forgotten).
    // The teacher's slot is free: it can hold 5 chats again.
    let mut more = Vec::new();
    for sid in 10..14 {
        more.push(ready_student(&srv, framing, sid).await);
    }
    t.claim_expect(&json!(1), &json!(8)).await;
    for sid in 10..14 {
        t.claim_expect(&json!(1), &json!(sid)).await;
    }
    assert_eq!(t.claim(&json!(1)).await, None);
}

/// 6.1 via phx_leave of the presence channel (client A's way of finishing).
async fn student_leaves_presence_mid_chat(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    t.clear();
    s.leave("presence:student:7").await;
    t.wait_for(&chat_topic(&cid), "chat:terminated", WAIT).await;
    // The student is still joined to the chat channel: it hears the termination too.
    s.wait_for(&chat_topic(&cid), "chat:terminated", WAIT).await;
    let st = t.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(status_tuple(&st.payload), (1, 0, 0, 0, 0));
    t.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    t.expect_no_event(&chat_topic(&cid), "chat:terminated", Duration::ZERO)
        .await;
    s.expect_no_event(&chat_topic(&cid), "chat:terminated", Duration::ZERO)
        .await;
}

/// A waiting student that vanishes leaves the queue (one status) and is never assigned.
async fn waiting_student_vanishes(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let s5 = ready_student(&srv, framing, 5).await;
    one_status(&mut obs, (1, 1, 1, 0, 0), "ready 5").await;
    let _s6 = ready_student(&srv, framing, 6).await;
    one_status(&mut obs, (1, 2, 2, 0, 0), "ready 6").await;
    s5.vanish();
    one_status(&mut obs, (1, 1, 1, 0, 0), "student 5 dropped while waiting").await;
    obs.claim_expect(&json!(900), &json!(6)).await;
    assert_eq!(obs.claim(&json!(900)).await, None);
}

/// 6.2: a teacher vanishing mid-chat (2 chats): its students go back to the HEAD of the
/// queue in arrival order, ahead of students already waiting; the abandoned chats get
/// phx_close and NO chat:terminated; one user:status; the chats cannot be re-joined.
async fn teacher_vanishes_mid_chat(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut t1 = teacher(&srv, framing, 1).await;
    let mut a = ready_student(&srv, framing, 20).await;
    let mut b = ready_student(&srv, framing, 3).await;
    let cid_a = t1.claim_expect(&json!(1), &json!(20)).await;
    let cid_b = t1.claim_expect(&json!(1), &json!(3)).await;
    enter_chat(&mut t1, &json!(1), &mut a, &json!(20), &cid_a).await;
    enter_chat(&mut t1, &json!(1), &mut b, &json!(3), &cid_b).await;
    let _c = ready_student(&srv, framing, 15).await;
    let _d = ready_student(&srv, framing, 1).await;
    settle(&mut obs, (2, 4, 2, 2, 0)).await;

    let jr_a = a.join_ref_of(&chat_topic(&cid_a)).unwrap();
    let jr_b = b.join_ref_of(&chat_topic(&cid_b)).unwrap();
    t1.vanish();

    for (s, cid, jr) in [(&mut a, &cid_a, &jr_a), (&mut b, &cid_b, &jr_b)] {
        let topic = chat_topic(cid);
        let f = s.wait_for(&topic, "phx_close", WAIT).await;
        let exact = match framing {
            Framing::V1 => json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": jr}),
            Framing::V2 => json!([jr, jr, topic, "phx_close", {}]),
        };
        assert_eq!(f.value(), exact, "phx_close on the abandoned chat");
        s.forget(&topic);
    }
    one_status(&mut obs, (1, 4, 4, 0, 0), "teacher 1 vanished with 2 chats").await;
    a.expect_no_event(&chat_topic(&cid_a), "chat:terminated", SILENCE)
        .await;
    b.expect_no_event(&chat_topic(&cid_b), "chat:terminated", Duration::ZERO)
        .await;

    // The abandoned chat cannot be joined again: `chat finished` (6.2), even though
    // no channel is left on it (the server remembers recently ended chats).
    for (s, cid, sid) in [(&mut a, &cid_a, json!(20)), (&mut b, &cid_b, json!(3))] {
        let reply = s.join(&chat_topic(cid), student_params(&sid)).await;
        reply.assert_error("chat finished");
    }

    // Requeued at the head, in arrival order (20 then 3), before 15 and 1.
    for sid in [20, 3, 15, 1] {
        obs.claim_expect(&json!(900), &json!(sid)).await;
    }
    a.wait_for("presence:student:20", "new:chat", WAIT).await;
    b.wait_for("presence:student:3", "new:chat", WAIT).await;
}

/// 6.2: requeue order is the students' ORIGINAL arrival order, not the order in which
/// the teacher got them. Teacher vanishing through phx_leave.
async fn requeue_keeps_original_arrival_order(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut t1 = teacher(&srv, framing, 1).await;
    let mut t2 = teacher(&srv, framing, 2).await;
    let _a = ready_student(&srv, framing, 5).await; // arrival 1
    let _b = ready_student(&srv, framing, 6).await; // arrival 2
    t2.claim_expect(&json!(2), &json!(5)).await;
    t1.claim_expect(&json!(1), &json!(6)).await;
    settle(&mut obs, (3, 2, 0, 2, 0)).await;
    t2.leave("presence:teachers").await;
    one_status(
        &mut obs,
        (2, 2, 1, 1, 0),
        "teacher 2 left holding student 5",
    )
    .await;
    t1.claim_expect(&json!(1), &json!(5)).await; // teacher 1 now holds 6 then 5
    let _c = ready_student(&srv, framing, 7).await;
    settle(&mut obs, (2, 3, 1, 2, 0)).await;
    t1.leave("presence:teachers").await;
    one_status(
        &mut obs,
        (1, 3, 3, 0, 0),
        "teacher 1 left holding students 6 and 5",
    )
    .await;
    for sid in [5, 6, 7] {
        obs.claim_expect(&json!(900), &json!(sid)).await;
    }
}

/// 6.2: a teacher that still has another presence channel has not vanished.
async fn teacher_with_another_socket_keeps_its_chats(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut t1a = teacher(&srv, framing, 1).await;
    let mut t1b = teacher(&srv, framing, 1).await;
    let mut s = ready_student(&srv, framing, 7).await;
    let cid = t1a.claim_expect(&json!(1), &json!(7)).await;
    s.wait_for("presence:student:7", "new:chat", WAIT).await;
    s.join_chat(&cid, "student", &json!(7)).await;
    settle(&mut obs, (2, 1, 0, 1, 0)).await;
    t1a.vanish();
    no_status(&mut obs, "one of teacher 1's sockets dropped").await;
    s.expect_no_event(&chat_topic(&cid), "phx_close", Duration::ZERO)
        .await;
    // Teacher 1's other socket can join the chat and talk.
    t1b.join_chat(&cid, "teacher", &json!(1)).await;
    t1b.push(
        &chat_topic(&cid),
        "teacher:send",
        json!({"message": "hello"}),
    )
    .await;
    let f = s.wait_for(&chat_topic(&cid), "student:receive", WAIT).await;
    assert_eq!(f.payload, json!({"message": "hello"}));
}

/// 7.3: snapshots are computed inside each operation and queued in order: under
/// concurrent readies and departures every teacher sees the same sequence, one snapshot
/// per operation, each differing from the previous by exactly one student.
async fn status_snapshots_in_order_under_concurrency(framing: Framing) {
    let srv = start_default();
    let mut observers = Vec::new();
    for tid in 901..=903 {
        observers.push(teacher(&srv, framing, tid).await);
    }
    const N: u64 = 20;
    let mut students = Vec::new();
    for sid in 1..=N {
        students.push(student(&srv, framing, sid).await);
    }
    for (i, s) in students.iter_mut().enumerate() {
        s.push(
            &format!("presence:student:{}", i + 1),
            "student:ready",
            json!({}),
        )
        .await;
    }
    let mut sequences = Vec::new();
    for o in observers.iter_mut() {
        let mut seq = Vec::new();
        for _ in 0..N {
            let st = o.wait_for("presence:teachers", "user:status", WAIT).await;
            seq.push(status_tuple(&st.payload));
        }
        let expected: Vec<_> = (1..=N).map(|k| (3, k, k, 0, 0)).collect();
        assert_eq!(
            seq, expected,
            "[{}] one snapshot per ready, in order",
            o.name
        );
        sequences.push(seq);
    }
    // Half leave, half drop, all at once.
    for (i, s) in students.iter_mut().enumerate() {
        if i % 2 == 0 {
            s.push(
                &format!("presence:student:{}", i + 1),
                "phx_leave",
                json!({}),
            )
            .await;
        }
    }
    for (i, s) in students.into_iter().enumerate() {
        if i % 2 == 1 {
            s.vanish();
        }
    }
    for o in observers.iter_mut() {
        let mut seq = Vec::new();
        for _ in 0..N {
            let st = o.wait_for("presence:teachers", "user:status", WAIT).await;
            seq.push(status_tuple(&st.payload));
        }
        let expected: Vec<_> = (0..N).rev().map(|k| (3, k, k, 0, 0)).collect();
        assert_eq!(
            seq, expected,
            "[{}] one snapshot per departure, in order",
            o.name
        );
        o.expect_no_event("presence:teachers", "user:status", SILENCE)
            .await;
    }
}

crate::both!(
    status_snapshots_in_order_under_concurrency,
    user_status_exactly_once_per_change,
    student_leaving_before_ready_causes_no_status,
    presence_spans_connections,
    teacher_one_and_student_one_are_different,
    student_vanishes_mid_chat,
    student_leaves_presence_mid_chat,
    waiting_student_vanishes,
    teacher_vanishes_mid_chat,
    requeue_keeps_original_arrival_order,
    teacher_with_another_socket_keeps_its_chats,
);
