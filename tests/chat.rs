//! Chats (PROTOCOL 5.2 chats row, 5.3, 5.4, 7.2): join rules, entering, chat:ready and
//! chat:terminated exactly once, relay by role, in order, byte-identical.

use serde_json::{json, Value};

use crate::support::*;

fn push_frame(framing: Framing, topic: &str, event: &str, payload: Value) -> Value {
    match framing {
        Framing::V1 => json!({"topic": topic, "event": event, "payload": payload, "ref": null}),
        Framing::V2 => json!([null, null, topic, event, payload]),
    }
}

/// Teacher 1 + student 7 (both on fresh sockets), chat claimed but nobody joined it yet.
async fn claimed(srv: &Server, framing: Framing) -> (Client, Client, String) {
    let mut t = teacher(srv, framing, 1).await;
    let mut s = ready_student(srv, framing, 7).await;
    let cid = t.claim_expect(&json!(1), &json!(7)).await;
    s.wait_for("presence:student:7", "new:chat", WAIT).await;
    t.clear();
    (t, s, cid)
}

/// 5.2: chats join rules, checked in the order unknown chat, unauthorized, chat finished.
async fn chat_join_rules(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = claimed(&srv, framing).await;
    let topic = chat_topic(&cid);
    let mut x = connect(&srv, framing).await.named("stranger");

    // Unknown chat wins over everything else.
    for (t_, params) in [
        (
            "chats:2b1e4a2c-5d7e-4f3a-9b8c-1d2e3f4a5b6c",
            student_params(&json!(7)),
        ),
        ("chats:not-a-uuid", teacher_params(&json!(1))),
        (
            "chats:2b1e4a2c-5d7e-4f3a-9b8c-1d2e3f4a5b6c",
            json!({"userId": 99, "role": "nobody"}),
        ),
    ] {
        x.join(t_, params).await.assert_error("unknown chat");
    }
    // Wrong people, wrong roles.
    for params in [
        student_params(&json!(8)),
        teacher_params(&json!(2)),
        teacher_params(&json!(7)), // the student's id, teacher role
        student_params(&json!(1)), // the teacher's id, student role
        json!({"userId": 7}),
        json!({"userId": 7, "role": "admin"}),
        json!({"role": "teacher"}),
        json!("teacher"),
    ] {
        let reply = x.join(&topic, params.clone()).await;
        assert_eq!(
            reply.payload,
            json!({"status":"error","response":{"reason":"unauthorized"}}),
            "join {topic} with {params}: {}",
            reply.raw
        );
    }
    // The right people, with string or number ids.
    t.join_ok(&topic, json!({"userId": "1", "role": "teacher"}))
        .await;
    s.join_ok(&topic, student_params(&json!(7))).await;
    // Any socket can carry the participant's identity (no auth).
    x.join_ok(&topic, student_params(&json!("7"))).await;
    x.leave(&topic).await;

    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    t.wait_for(&topic, "chat:terminated", WAIT).await;
    // t stays joined, so the finished chat's record is kept (7.2).
    x.join(&topic, student_params(&json!(8)))
        .await
        .assert_error("unauthorized");
    x.join(&topic, student_params(&json!(7)))
        .await
        .assert_error("chat finished");
    x.join(&topic, teacher_params(&json!(1)))
        .await
        .assert_error("chat finished");
}

/// 5.3 / 7.2: chat:ready once, when both sides have entered for the first time.
async fn chat_ready_exactly_once(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = claimed(&srv, framing).await;
    let topic = chat_topic(&cid);
    t.join_chat(&cid, "teacher", &json!(1)).await;
    s.join_chat(&cid, "student", &json!(7)).await;

    t.call(&topic, "teacher:joined", json!({}))
        .await
        .assert_ok_empty();
    t.expect_no_event(&topic, "chat:ready", SILENCE).await;
    s.expect_no_event(&topic, "chat:ready", std::time::Duration::ZERO)
        .await;
    // Repeating it before the other side entered changes nothing.
    t.call(&topic, "teacher:joined", json!({}))
        .await
        .assert_ok_empty();

    let r = s.push(&topic, "student:joined", json!({})).await;
    let f = s.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        push_frame(framing, &topic, "chat:ready", json!({})),
        "chat:ready before the reply"
    );
    let f = s.next_frame(WAIT).await;
    assert!(
        f.is_reply_to(&topic, &r),
        "then the student:joined reply, got {}",
        f.raw
    );
    f.assert_ok_empty();
    let f = t.wait_for(&topic, "chat:ready", WAIT).await;
    assert_eq!(
        f.value(),
        push_frame(framing, &topic, "chat:ready", json!({}))
    );

    // Repeats (as after a client rejoin) never produce a second chat:ready.
    t.call(&topic, "teacher:joined", json!({}))
        .await
        .assert_ok_empty();
    s.call(&topic, "student:joined", json!({}))
        .await
        .assert_ok_empty();
    s.join(&topic, student_params(&json!(7)))
        .await
        .assert_ok_empty();
    s.wait_for(&topic, "phx_close", WAIT).await;
    s.call(&topic, "student:joined", json!({}))
        .await
        .assert_ok_empty();
    t.expect_no_event(&topic, "chat:ready", SILENCE).await;
    s.expect_no_event(&topic, "chat:ready", std::time::Duration::ZERO)
        .await;
}

/// 5.3: chat events by role; wrong role → unknown event; bad payload → invalid payload.
async fn chat_event_rules(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = claimed(&srv, framing).await;
    let topic = chat_topic(&cid);
    t.join_chat(&cid, "teacher", &json!(1)).await;
    s.join_chat(&cid, "student", &json!(7)).await;
    for ev in [
        "student:joined",
        "student:send",
        "claim:student",
        "bogus",
        "teacher:receive",
    ] {
        t.call(&topic, ev, json!({}))
            .await
            .assert_error("unknown event");
    }
    for ev in [
        "teacher:joined",
        "teacher:send",
        "student:ready",
        "bogus",
        "student:receive",
    ] {
        s.call(&topic, ev, json!({}))
            .await
            .assert_error("unknown event");
    }
    for ev in ["teacher:send", "teacher:joined", "chat:terminate"] {
        for bad in [json!("hi"), json!(["hi"]), json!(null), json!(3)] {
            t.call(&topic, ev, bad)
                .await
                .assert_error("invalid payload");
        }
    }
    for bad in [json!("hi"), json!(null)] {
        s.call(&topic, "student:send", bad.clone())
            .await
            .assert_error("invalid payload");
        s.call(&topic, "student:joined", bad)
            .await
            .assert_error("invalid payload");
    }
    // None of that relayed, entered or terminated anything.
    t.expect_silence(SILENCE).await;
    s.expect_silence(std::time::Duration::ZERO).await;
    // The channels still work.
    t.push(&topic, "teacher:send", json!({"message": "ok"}))
        .await;
    let f = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(f.payload, json!({"message": "ok"}));
}

/// 5.3/5.4: relay goes only to the other role, carries the same payload, needs no
/// chat:ready, and gets no reply on success.
async fn relay_by_role(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = claimed(&srv, framing).await;
    let topic = chat_topic(&cid);
    t.join_chat(&cid, "teacher", &json!(1)).await;
    s.join_chat(&cid, "student", &json!(7)).await;
    // Second sockets of the same two people, also in the chat.
    let mut t_b = connect(&srv, framing)
        .await
        .named("teacher 1 (second socket)");
    t_b.join_chat(&cid, "teacher", &json!(1)).await;
    let mut s_b = connect(&srv, framing)
        .await
        .named("student 7 (second socket)");
    s_b.join_chat(&cid, "student", &json!(7)).await;
    // A bystander teacher sees nothing of the chat.
    let mut other = teacher(&srv, framing, 2).await;

    // No chat:ready yet: relaying does not wait for it.
    let p = json!({"message": "Message from teacher: 1"});
    t.push(&topic, "teacher:send", p.clone()).await;
    for c in [&mut s, &mut s_b] {
        let f = c.wait_for(&topic, "student:receive", WAIT).await;
        assert_eq!(
            f.value(),
            push_frame(framing, &topic, "student:receive", p.clone())
        );
    }
    let p2 = json!({"message": "Message #1 from student: 7", "extra": [1, {"a": null}]});
    s.push(&topic, "student:send", p2.clone()).await;
    for c in [&mut t, &mut t_b] {
        let f = c.wait_for(&topic, "teacher:receive", WAIT).await;
        assert_eq!(
            f.value(),
            push_frame(framing, &topic, "teacher:receive", p2.clone())
        );
    }
    // Nobody got their own message back, and no reply to the relays.
    for c in [&mut t, &mut t_b, &mut s, &mut s_b, &mut other] {
        c.expect_silence(SILENCE).await;
    }
}

/// 5.3 + DESIGN: the relayed payload is passed through byte for byte.
async fn relay_payload_is_byte_identical(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = claimed(&srv, framing).await;
    let topic = chat_topic(&cid);
    t.join_chat(&cid, "teacher", &json!(1)).await;
    s.join_chat(&cid, "student", &json!(7)).await;
    let payload = r#"{"z":1,"a":[1.0,2.50,-0,1e5,12345678901234567890123],"s":"caf\u00e9 \"q\" \\ é 😀","n":{"b":null,"a":true}}"#;
    let r = t.new_ref();
    let jr = t.join_ref_of(&topic).unwrap();
    let text = match framing {
        Framing::V1 => format!(
            r#"{{"topic":"{topic}","event":"teacher:send","payload":{payload},"ref":"{r}"}}"#
        ),
        Framing::V2 => format!(r#"[{jr},"{r}","{topic}","teacher:send",{payload}]"#),
    };
    t.send_text(text).await;
    let f = s.wait_for(&topic, "student:receive", WAIT).await;
    assert!(
        f.raw.contains(payload),
        "the relayed payload must be byte-identical to what was sent\n  sent: {payload}\n  got frame: {}",
        f.raw
    );
}

/// 5.3: relays keep their order, both directions, interleaved.
async fn relay_keeps_order(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    let topic = chat_topic(&cid);
    t.clear();
    const N: usize = 200;
    for i in 1..=N {
        t.push(
            &topic,
            "teacher:send",
            json!({"message": format!("Message from teacher: {i}"), "i": i}),
        )
        .await;
        s.push(
            &topic,
            "student:send",
            json!({"message": format!("Message #{i} from student: 7"), "i": i}),
        )
        .await;
    }
    for i in 1..=N {
        let f = s.next_frame(WAIT).await;
        assert!(
            f.is(&topic, "student:receive"),
            "student frame {i}: {}",
            f.raw
        );
        assert_eq!(
            f.payload["i"],
            json!(i),
            "student:receive out of order: {}",
            f.raw
        );
        let f = t.next_frame(WAIT).await;
        assert!(
            f.is(&topic, "teacher:receive"),
            "teacher frame {i}: {}",
            f.raw
        );
        assert_eq!(
            f.payload["i"],
            json!(i),
            "teacher:receive out of order: {}",
            f.raw
        );
    }
    t.expect_silence(SILENCE).await;
    s.expect_silence(std::time::Duration::ZERO).await;
}

/// 7.2: chat:terminate finishes once: one chat:terminated to both sides, one status;
/// the second terminate is acknowledged and ignored; a finished chat refuses events.
async fn terminate_exactly_once(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    let topic = chat_topic(&cid);
    t.clear();
    let r = t.push(&topic, "chat:terminate", json!({})).await;
    // On the terminating socket: chat:terminated, then user:status, then the reply.
    let f = t.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        push_frame(framing, &topic, "chat:terminated", json!({}))
    );
    let f = t.next_frame(WAIT).await;
    assert!(
        f.is("presence:teachers", "user:status"),
        "status after terminate, got {}",
        f.raw
    );
    assert_eq!(status_tuple(&f.payload), (1, 1, 0, 0, 1));
    let f = t.next_frame(WAIT).await;
    assert!(f.is_reply_to(&topic, &r), "then the reply, got {}", f.raw);
    f.assert_ok_empty();
    let f = s.wait_for(&topic, "chat:terminated", WAIT).await;
    assert_eq!(
        f.value(),
        push_frame(framing, &topic, "chat:terminated", json!({}))
    );

    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    t.call(&topic, "teacher:send", json!({"message": "late"}))
        .await
        .assert_error("chat finished");
    s.call(&topic, "student:send", json!({"message": "late"}))
        .await
        .assert_error("chat finished");
    t.call(&topic, "teacher:joined", json!({}))
        .await
        .assert_error("chat finished");
    s.call(&topic, "student:joined", json!({}))
        .await
        .assert_error("chat finished");
    t.expect_silence(SILENCE).await;
    s.expect_silence(std::time::Duration::ZERO).await;
}

/// 5.3: either role may terminate; the teacher's slot is freed.
async fn student_may_terminate(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    let topic = chat_topic(&cid);
    s.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    t.wait_for(&topic, "chat:terminated", WAIT).await;
    t.expect_no_event(&topic, "chat:terminated", SILENCE).await;
    s.expect_no_event(&topic, "chat:terminated", std::time::Duration::ZERO)
        .await;
    // A stranger on the chat topic (not joined) cannot terminate anything.
    let mut x = connect(&srv, framing).await;
    x.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_error("unmatched topic");
}

/// 7.5 end to end, client-A style: 5 students, 1 teacher, 5 messages each way per chat,
/// ending with the teacher's last status showing total 0.
async fn full_session(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let mut students = Vec::new();
    for sid in 1..=5 {
        students.push(ready_student(&srv, framing, sid).await);
    }
    let mut chats = Vec::new();
    for sid in 1..=5 {
        chats.push(t.claim_expect(&json!(1), &json!(sid)).await);
    }
    assert_eq!(t.claim(&json!(1)).await, None);
    for (i, s) in students.iter_mut().enumerate() {
        let sid = json!(i + 1);
        enter_chat(&mut t, &json!(1), s, &sid, &chats[i]).await;
        let topic = chat_topic(&chats[i]);
        for m in 1..=5 {
            t.push(
                &topic,
                "teacher:send",
                json!({"message": format!("Message from teacher: {m}")}),
            )
            .await;
            let f = s.wait_for(&topic, "student:receive", WAIT).await;
            assert_eq!(
                f.payload["message"],
                json!(format!("Message from teacher: {m}"))
            );
            s.push(
                &topic,
                "student:send",
                json!({"message": format!("Message #{m} from student: {sid}")}),
            )
            .await;
            t.wait_for(&topic, "teacher:receive", WAIT).await;
        }
        t.call(&topic, "chat:terminate", json!({}))
            .await
            .assert_ok_empty();
        s.wait_for(&topic, "chat:terminated", WAIT).await;
        t.wait_for(&topic, "chat:terminated", WAIT).await;
        s.leave(&topic).await;
        t.leave(&topic).await;
        s.leave(&student_topic(&sid)).await;
    }
    t.wait_match(
        |f| f.is("presence:teachers", "user:status") && status_tuple(&f.payload) == (1, 0, 0, 0, 0),
        "the last status, total 0",
        WAIT,
    )
    .await;
    t.clear();
    // Statuses now arrive only on changes; the roster is empty, no more statuses.
    t.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    let mut obs = teacher(&srv, framing, 2).await;
    let _s = ready_student(&srv, framing, 6).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(
        status_tuple(&st.payload),
        (2, 1, 1, 0, 0),
        "nothing left over from the five chats"
    );
}

/// A message the client wrote just before its connection ended (its last bytes, then
/// FIN, no close frame) is relayed: the end of the connection does not discard frames
/// already read. Twenty rounds, because the end and the message must arrive in one read
/// for the loss to show (it did in about two rounds in five).
async fn last_words_before_a_drop_are_relayed(framing: Framing) {
    let srv = start_default();
    for round in 0..20 {
        let (mut t, mut s, cid) = start_chat(&srv, framing, 100 + round, 200 + round).await;
        let topic = chat_topic(&cid);
        s.push(&topic, "student:send", json!({"message": "last words"}))
            .await;
        s.vanish();
        let got = t.wait_for(&topic, "teacher:receive", WAIT).await;
        assert_eq!(
            got.payload,
            json!({"message": "last words"}),
            "round {round}"
        );
    }
}

crate::both!(
    last_words_before_a_drop_are_relayed,
    chat_join_rules,
    chat_ready_exactly_once,
    chat_event_rules,
    relay_by_role,
    relay_payload_is_byte_identical,
    relay_keeps_order,
    terminate_exactly_once,
    student_may_terminate,
    full_session,
);
