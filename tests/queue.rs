//! Presence joins, `student:ready`, `claim:student`: join rules (PROTOCOL 5.2), event
//! rules (5.3), assignment (7.1): FIFO by arrival, at most 5 chats per teacher, never
//! the same student twice, frame order of a claim (5.4).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::*;

/// 5.2 `presence:teachers`: role teacher and a valid userId, else `unauthorized`.
async fn teacher_join_rules(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    let refused = [
        json!({"userId": 1, "role": "student"}),
        json!({"userId": 1}),
        json!({"role": "teacher"}),
        json!({"userId": 1.5, "role": "teacher"}),
        json!({"userId": true, "role": "teacher"}),
        json!({"userId": null, "role": "teacher"}),
        json!({"userId": {"id": 1}, "role": "teacher"}),
        json!({"userId": [1], "role": "teacher"}),
        json!({"userId": "", "role": "teacher"}),
        json!({"userId": 1, "role": "Teacher"}),
        json!("teacher"),
        json!([1, "teacher"]),
        json!(null),
    ];
    for params in refused {
        let reply = c.join("presence:teachers", params.clone()).await;
        assert_eq!(
            reply.payload,
            json!({"status":"error","response":{"reason":"unauthorized"}}),
            "join presence:teachers with {params}: {}",
            reply.raw
        );
    }
    // Refusals leave the topic un-joined.
    c.call("presence:teachers", "claim:student", json!({}))
        .await
        .assert_error("unmatched topic");
    // Integer and non-empty string ids are valid.
    c.join_ok("presence:teachers", json!({"userId": 1, "role": "teacher"}))
        .await;
    let mut c2 = connect(&srv, framing).await;
    c2.join_ok(
        "presence:teachers",
        json!({"userId": "teacher-abc", "role": "teacher"}),
    )
    .await;
}

/// 5.2 `presence:student:<sid>`: role student and key(userId) == sid.
async fn student_join_rules(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    let refused = [
        (
            "presence:student:7",
            json!({"userId": 7, "role": "teacher"}),
        ),
        (
            "presence:student:7",
            json!({"userId": 8, "role": "student"}),
        ),
        (
            "presence:student:7",
            json!({"userId": "07", "role": "student"}),
        ),
        (
            "presence:student:7",
            json!({"userId": 7.0, "role": "student"}),
        ),
        ("presence:student:7", json!({"role": "student"})),
        ("presence:student:7", json!({"userId": 7})),
        ("presence:student:7", json!("student")),
        (
            "presence:student:abc",
            json!({"userId": "abd", "role": "student"}),
        ),
    ];
    for (topic, params) in refused {
        let reply = c.join(topic, params.clone()).await;
        assert_eq!(
            reply.payload,
            json!({"status":"error","response":{"reason":"unauthorized"}}),
            "join {topic} with {params}: {}",
            reply.raw
        );
    }
    // 7 and "7" are the same user (5.1).
    c.join_ok(
        "presence:student:7",
        json!({"userId": "7", "role": "student"}),
    )
    .await;
    c.join_ok(
        "presence:student:8",
        json!({"userId": 8, "role": "student"}),
    )
    .await;
    c.join_ok(
        "presence:student:abc",
        json!({"userId": "abc", "role": "student"}),
    )
    .await;
}

/// 5.3 `student:ready`: payload object, optional userId must match the topic;
/// idempotent while waiting.
async fn student_ready_rules(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut s = student(&srv, framing, 7).await;
    let topic = "presence:student:7";
    for bad in [
        json!("ready"),
        json!(7),
        json!([7]),
        json!(null),
        json!(true),
    ] {
        let reply = s.call(topic, "student:ready", bad.clone()).await;
        assert_eq!(
            reply.payload,
            json!({"status":"error","response":{"reason":"invalid payload"}}),
            "student:ready with payload {bad}: {}",
            reply.raw
        );
    }
    for bad in [
        json!({"userId": 8}),
        json!({"userId": "8"}),
        json!({"userId": 7.5}),
        json!({"userId": "07"}),
    ] {
        let reply = s.call(topic, "student:ready", bad.clone()).await;
        assert_eq!(
            reply.payload,
            json!({"status":"error","response":{"reason":"unauthorized"}}),
            "student:ready with payload {bad}: {}",
            reply.raw
        );
    }
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    // userId "7" is the same key as topic 7.
    s.call(topic, "student:ready", json!({"userId": "7"}))
        .await
        .assert_ok_empty();
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(1, 1, 1, 0, 0));
    // Idempotent while waiting: ok, no change, no status.
    s.call(topic, "student:ready", json!({}))
        .await
        .assert_ok_empty();
    s.call(topic, "student:ready", json!({"userId": 7}))
        .await
        .assert_ok_empty();
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    // Queued once: the first claim gets it, the second gets nobody.
    let cid = obs.claim_expect(&json!(900), &json!(7)).await;
    assert!(
        obs.claim(&json!(900)).await.is_none(),
        "student 7 was queued twice"
    );
    // Idempotent while chatting too.
    s.wait_for(topic, "new:chat", WAIT).await;
    obs.clear();
    s.call(topic, "student:ready", json!({"userId": 7}))
        .await
        .assert_ok_empty();
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    assert!(
        obs.claim(&json!(900)).await.is_none(),
        "a chatting student was re-queued"
    );
    // Finished → ready again is a new arrival.
    obs.join_chat(&cid, "teacher", &json!(900)).await;
    obs.call(&chat_topic(&cid), "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(1, 1, 0, 0, 1));
    s.ready(&json!(7)).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(1, 1, 1, 0, 0));
    obs.claim_expect(&json!(900), &json!(7)).await;
}

/// 5.3: events not listed for the topic and role get `unknown event`; the channel stays
/// joined.
async fn unknown_events(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let mut s = student(&srv, framing, 7).await;
    for ev in [
        "student:ready",
        "teacher:send",
        "new:chat",
        "user:status",
        "chat:terminate",
        "bogus",
        "phx_reply",
    ] {
        t.call("presence:teachers", ev, json!({}))
            .await
            .assert_error("unknown event");
    }
    for ev in [
        "claim:student",
        "teacher:send",
        "student:joined",
        "new:chat",
        "bogus",
        "heartbeat",
    ] {
        s.call("presence:student:7", ev, json!({}))
            .await
            .assert_error("unknown event");
    }
    // Still joined and working.
    t.claim(&json!(1)).await;
    s.ready(&json!(7)).await;
}

/// 5.3 `claim:student`: payload object, optional teacherId must be the channel's teacher.
async fn claim_rules(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let _s = ready_student(&srv, framing, 7).await;
    t.wait_for("presence:teachers", "user:status", WAIT).await;
    for bad in [json!("claim"), json!(1), json!(null), json!([1])] {
        let reply = t
            .call("presence:teachers", "claim:student", bad.clone())
            .await;
        assert_eq!(
            reply.payload,
            json!({"status":"error","response":{"reason":"invalid payload"}}),
            "claim with payload {bad}: {}",
            reply.raw
        );
    }
    for bad in [
        json!({"teacherId": 2}),
        json!({"teacherId": "2"}),
        json!({"teacherId": 1.5}),
        json!({"teacherId": "01"}),
    ] {
        let reply = t
            .call("presence:teachers", "claim:student", bad.clone())
            .await;
        assert_eq!(
            reply.payload,
            json!({"status":"error","response":{"reason":"unauthorized"}}),
            "claim with payload {bad}: {}",
            reply.raw
        );
    }
    // Nothing was assigned by the refused claims.
    t.expect_none(
        |f| f.event.starts_with("new:chat") || f.event == "user:status",
        "new:chat or user:status",
        SILENCE,
    )
    .await;
    // teacherId "1" is teacher 1; no teacherId at all is fine too.
    let reply = t
        .call(
            "presence:teachers",
            "claim:student",
            json!({"teacherId": "1"}),
        )
        .await;
    assert_eq!(reply.status(), "ok");
    assert_eq!(
        reply.response()["student_id"],
        json!(7),
        "claim assigned student 7: {}",
        reply.raw
    );
    let reply = t
        .call("presence:teachers", "claim:student", json!({}))
        .await;
    reply.assert_ok_empty();
}

/// 5.4: for one claim the teacher socket gets `new:chat:<tid>`, then `user:status`, then
/// the reply with the chat object; the student gets `new:chat` with the same object.
async fn claim_frame_order_and_chat_object(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    // An empty claim: ok {} and nothing else.
    let reply = t
        .call(
            "presence:teachers",
            "claim:student",
            json!({"teacherId": 1}),
        )
        .await;
    reply.assert_ok_empty();
    t.expect_silence(SILENCE).await;

    let mut s = ready_student(&srv, framing, 7).await;
    let st = t.next_frame(WAIT).await;
    assert!(
        st.is("presence:teachers", "user:status"),
        "status after ready, got {}",
        st.raw
    );
    assert_eq!(st.payload, status_payload(1, 1, 1, 0, 0));

    let r = t
        .push(
            "presence:teachers",
            "claim:student",
            json!({"teacherId": 1}),
        )
        .await;
    let push = t.next_frame(WAIT).await;
    assert!(
        push.is("presence:teachers", "new:chat:1"),
        "first: new:chat:1 push, got {}",
        push.raw
    );
    assert_chat_object(&push.payload, &json!(1), &json!(7));
    let st = t.next_frame(WAIT).await;
    assert!(
        st.is("presence:teachers", "user:status"),
        "second: user:status, got {}",
        st.raw
    );
    assert_eq!(st.payload, status_payload(1, 1, 0, 1, 0));
    let reply = t.next_frame(WAIT).await;
    assert!(
        reply.is_reply_to("presence:teachers", &r),
        "third: the claim reply, got {}",
        reply.raw
    );
    assert_eq!(reply.status(), "ok");
    assert_eq!(
        reply.response(),
        &push.payload,
        "the reply carries the chat object"
    );
    let exact_push = match framing {
        Framing::V1 => {
            json!({"topic":"presence:teachers","event":"new:chat:1","payload":push.payload,"ref":null})
        }
        Framing::V2 => {
            let jr = push.join_ref.clone().unwrap();
            json!([jr, null, "presence:teachers", "new:chat:1", push.payload])
        }
    };
    assert_eq!(push.value(), exact_push);
    let exact_status = match framing {
        Framing::V1 => {
            json!({"topic":"presence:teachers","event":"user:status","payload":st.payload,"ref":null})
        }
        Framing::V2 => json!([null, null, "presence:teachers", "user:status", st.payload]),
    };
    assert_eq!(st.value(), exact_status);

    let nc = s.next_frame(WAIT).await;
    assert!(
        nc.is("presence:student:7", "new:chat"),
        "student gets new:chat, got {}",
        nc.raw
    );
    assert_eq!(nc.payload, push.payload);
    let exact_nc = match framing {
        Framing::V1 => {
            json!({"topic":"presence:student:7","event":"new:chat","payload":push.payload,"ref":null})
        }
        Framing::V2 => json!([null, null, "presence:student:7", "new:chat", push.payload]),
    };
    assert_eq!(nc.value(), exact_nc, "new:chat is a broadcast");
    t.expect_silence(SILENCE).await;
    s.expect_silence(SILENCE).await;
}

/// 5.4 frame order, seen on ONE connection that is both teacher 1 and student 7:
/// `new:chat:1` push, `new:chat` broadcast, `user:status` broadcast, then the reply.
/// Every channel joined to presence:student:7 (here a second socket too) gets new:chat.
async fn claim_frame_order_on_one_connection(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await.named("teacher 1 + student 7");
    c.join_ok("presence:teachers", teacher_params(&json!(1)))
        .await;
    c.join_ok("presence:student:7", student_params(&json!(7)))
        .await;
    let mut other = student(&srv, framing, 7)
        .await
        .named("student 7, second socket");
    c.ready(&json!(7)).await;
    let st = c.next_frame(WAIT).await;
    assert!(
        st.is("presence:teachers", "user:status"),
        "status after ready, got {}",
        st.raw
    );
    let r = c
        .push(
            "presence:teachers",
            "claim:student",
            json!({"teacherId": 1}),
        )
        .await;
    let f1 = c.next_frame(WAIT).await;
    let f2 = c.next_frame(WAIT).await;
    let f3 = c.next_frame(WAIT).await;
    let f4 = c.next_frame(WAIT).await;
    let got = [&f1, &f2, &f3, &f4].map(|f| format!("{} {}", f.topic, f.event));
    assert_eq!(
        got,
        [
            "presence:teachers new:chat:1".to_string(),
            "presence:student:7 new:chat".to_string(),
            "presence:teachers user:status".to_string(),
            "presence:teachers phx_reply".to_string(),
        ],
        "frame order of one claim (PROTOCOL 5.4)"
    );
    assert_eq!(f4.r#ref, r);
    assert_chat_object(&f1.payload, &json!(1), &json!(7));
    assert_eq!(f2.payload, f1.payload);
    assert_eq!(f4.response(), &f1.payload);
    assert_eq!(status_tuple(&f3.payload), (1, 1, 0, 1, 0));
    let nc = other.wait_for("presence:student:7", "new:chat", WAIT).await;
    assert_eq!(nc.payload, f1.payload);
    c.expect_silence(SILENCE).await;
}

/// 5.1: any JSON integer is an id; its key is its decimal text, exactly (no float
/// round trip), and the chat object echoes it unchanged.
async fn large_and_negative_integer_ids(framing: Framing) {
    let srv = start_default();
    let big: Value = serde_json::from_str("9007199254740993").unwrap();
    let neg = json!(-5);
    let mut t = teacher(&srv, framing, big.clone()).await;
    let mut s = connect(&srv, framing).await;
    s.join_ok("presence:student:-5", student_params(&neg)).await;
    s.call(
        "presence:student:-5",
        "student:ready",
        json!({"userId": -5}),
    )
    .await
    .assert_ok_empty();
    let r = t
        .push(
            "presence:teachers",
            "claim:student",
            json!({"teacherId": big}),
        )
        .await;
    let reply = t.reply("presence:teachers", &r).await;
    assert_eq!(reply.status(), "ok", "{}", reply.raw);
    assert!(
        reply.raw.contains(r#""teacher_id":9007199254740993"#)
            && reply.raw.contains(r#""student_id":-5"#),
        "ids echoed exactly: {}",
        reply.raw
    );
    t.wait_for("presence:teachers", "new:chat:9007199254740993", WAIT)
        .await;
    let mut s2 = connect(&srv, framing).await;
    s2.join("presence:student:9007199254740992", student_params(&big))
        .await
        .assert_error("unauthorized");
}

/// 5.1/5.4: string ids are echoed as sent; the push event uses the canonical key.
async fn string_ids_are_echoed(framing: Framing) {
    let srv = start_default();
    let tid = json!("t-ann");
    let sid = json!("s-bob");
    let mut t = teacher(&srv, framing, tid.clone()).await;
    let mut s = ready_student(&srv, framing, sid.clone()).await;
    let chat = t.claim(&tid).await.expect("claim assigns s-bob");
    assert_chat_object(&chat, &tid, &sid);
    let push = t
        .wait_for("presence:teachers", "new:chat:t-ann", WAIT)
        .await;
    assert_eq!(push.payload, chat);
    let nc = s.wait_for("presence:student:s-bob", "new:chat", WAIT).await;
    assert_eq!(nc.payload, chat);

    // Student joined with "7" (string) on presence:student:7: echoed as the string.
    let mut s7 = connect(&srv, framing).await;
    s7.join_ok(
        "presence:student:7",
        json!({"userId": "7", "role": "student"}),
    )
    .await;
    s7.call("presence:student:7", "student:ready", json!({"userId": 7}))
        .await
        .assert_ok_empty();
    let mut t2 = teacher(&srv, framing, 2).await;
    let chat = t2.claim(&json!(2)).await.expect("claim assigns student 7");
    assert_chat_object(&chat, &json!(2), &json!("7"));
    t2.wait_for("presence:teachers", "new:chat:2", WAIT).await;
}

/// 7.1: FIFO by arrival, not by id.
async fn fifo_by_arrival(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let mut students = Vec::new();
    for sid in [10, 2, 7] {
        students.push(ready_student(&srv, framing, sid).await);
    }
    let mut chats = Vec::new();
    for sid in [10, 2, 7] {
        chats.push(t.claim_expect(&json!(1), &json!(sid)).await);
    }
    assert!(t.claim(&json!(1)).await.is_none());
    // A finished student that readies again is a NEW arrival, behind those waiting.
    t.join_chat(&chats[0], "teacher", &json!(1)).await;
    t.call(&chat_topic(&chats[0]), "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    students.push(ready_student(&srv, framing, 99).await);
    students[0].ready(&json!(10)).await;
    t.claim_expect(&json!(1), &json!(99)).await;
    t.claim_expect(&json!(1), &json!(10)).await;
    // String ids: arrival order differs from both numeric and text order.
    let mut t2 = teacher(&srv, framing, 2).await;
    for sid in ["9", "100", "11"] {
        students.push(ready_student(&srv, framing, sid).await);
    }
    for sid in ["9", "100", "11"] {
        t2.claim_expect(&json!(2), &json!(sid)).await;
    }
}

/// 7.1: never more than 5 active chats per teacher, even with three sockets of the same
/// teacher firing claims concurrently.
async fn five_chats_per_teacher_under_concurrent_claims(framing: Framing) {
    let srv = start_default();
    let mut students = Vec::new();
    for sid in 1..=10 {
        students.push(ready_student(&srv, framing, sid).await);
    }
    let mut socks = Vec::new();
    for _ in 0..3 {
        socks.push(teacher(&srv, framing, 1).await);
    }
    let mut refs: Vec<Vec<Value>> = vec![Vec::new(); 3];
    for _ in 0..10 {
        for (i, t) in socks.iter_mut().enumerate() {
            let r = t
                .push(
                    "presence:teachers",
                    "claim:student",
                    json!({"teacherId": 1}),
                )
                .await;
            refs[i].push(r);
        }
    }
    let mut assigned = Vec::new();
    let mut per_socket = [0usize; 3];
    for (i, t) in socks.iter_mut().enumerate() {
        for r in &refs[i] {
            let reply = t.reply("presence:teachers", r).await;
            assert_eq!(reply.status(), "ok", "{}", reply.raw);
            if reply.response() != &json!({}) {
                assigned.push(reply.response().clone());
                per_socket[i] += 1;
            }
        }
    }
    let mut pushes = 0;
    for (i, t) in socks.iter_mut().enumerate() {
        t.drain(SILENCE).await;
        let mine = t
            .take_all(|f| f.is("presence:teachers", "new:chat:1"))
            .len();
        // 5.4: the push goes only to the channel whose claim assigned the student.
        assert_eq!(
            mine, per_socket[i],
            "socket {i}: new:chat:1 pushes vs its successful claims"
        );
        pushes += mine;
    }
    assert_eq!(
        assigned.len(),
        5,
        "claims that assigned a student: {assigned:?}"
    );
    assert_eq!(pushes, 5, "new:chat:1 pushes across the three sockets");
    let ids: HashSet<String> = assigned.iter().map(|c| key(&c["student_id"])).collect();
    assert_eq!(ids.len(), 5, "five different students");
    let expected: HashSet<String> = (1..=5).map(|i: i32| i.to_string()).collect();
    assert_eq!(ids, expected, "the five earliest arrivals were assigned");
    // The other five are still waiting for another teacher.
    let mut t2 = teacher(&srv, framing, 2).await;
    for sid in 6..=10 {
        t2.claim_expect(&json!(2), &json!(sid)).await;
    }
    // Teacher 1 is still capped, also through a new socket or a re-join (joins never
    // reset a present teacher, 5.2 / 8.8).
    assert!(socks[0].claim(&json!(1)).await.is_none());
    let _late = ready_student(&srv, framing, 11).await;
    let mut t4 = teacher(&srv, framing, 1).await;
    assert!(
        t4.claim(&json!(1)).await.is_none(),
        "a new socket of teacher 1 got a 6th chat"
    );
    socks[1]
        .join("presence:teachers", teacher_params(&json!(1)))
        .await
        .assert_ok_empty();
    assert!(
        socks[1].claim(&json!(1)).await.is_none(),
        "a re-joined teacher 1 got a 6th chat"
    );
    // Teacher 2 is full too (students 6-10); teacher 3 takes student 11.
    let mut t3 = teacher(&srv, framing, 3).await;
    t3.claim_expect(&json!(3), &json!(11)).await;
}

/// 7.1: a student is never assigned twice, with many teachers claiming concurrently.
async fn no_student_assigned_twice(framing: Framing) {
    let srv = start_default();
    let mut students = Vec::new();
    for sid in 1..=30 {
        students.push(ready_student(&srv, framing, sid).await);
    }
    let mut teachers = Vec::new();
    for tid in 1..=8 {
        teachers.push(teacher(&srv, framing, tid).await);
    }
    let mut refs: Vec<Vec<Value>> = vec![Vec::new(); teachers.len()];
    for _ in 0..8 {
        for (i, t) in teachers.iter_mut().enumerate() {
            let tid = i + 1;
            refs[i].push(
                t.push(
                    "presence:teachers",
                    "claim:student",
                    json!({"teacherId": tid}),
                )
                .await,
            );
        }
    }
    let mut chats = Vec::new();
    for (i, t) in teachers.iter_mut().enumerate() {
        let mut mine = 0;
        for r in &refs[i] {
            let reply = t.reply("presence:teachers", r).await;
            assert_eq!(reply.status(), "ok");
            if reply.response() != &json!({}) {
                assert_eq!(reply.response()["teacher_id"], json!(i + 1));
                chats.push(reply.response().clone());
                mine += 1;
            }
        }
        assert!(mine <= 5, "teacher {} got {mine} chats", i + 1);
    }
    assert_eq!(
        chats.len(),
        30,
        "30 students, 40 slots: every student assigned"
    );
    let sids: HashSet<String> = chats.iter().map(|c| key(&c["student_id"])).collect();
    assert_eq!(sids.len(), 30, "a student was assigned twice: {chats:?}");
    let cids: HashSet<&str> = chats.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(cids.len(), 30, "chat ids are unique");
    // Every student got exactly one new:chat.
    for (i, s) in students.iter_mut().enumerate() {
        let topic = format!("presence:student:{}", i + 1);
        s.wait_for(&topic, "new:chat", WAIT).await;
        s.expect_no_event(&topic, "new:chat", std::time::Duration::from_millis(20))
            .await;
    }
    let mut late = teacher(&srv, framing, 99).await;
    assert!(late.claim(&json!(99)).await.is_none(), "queue is empty");
}

crate::both!(
    teacher_join_rules,
    student_join_rules,
    student_ready_rules,
    unknown_events,
    claim_rules,
    claim_frame_order_and_chat_object,
    claim_frame_order_on_one_connection,
    string_ids_are_echoed,
    large_and_negative_integer_ids,
    fifo_by_arrival,
    five_chats_per_teacher_under_concurrent_claims,
    no_student_assigned_twice,
);
