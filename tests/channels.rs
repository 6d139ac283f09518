//! Channel layer: dispatch rules D1–D9 (PROTOCOL 3.1), replies (3.3), phx_close (3.5),
//! the channel cap.

use serde_json::{json, Value};

use crate::support::*;

/// The exact reply frame a client should see, in its framing.
fn reply_frame(framing: Framing, join_ref: Value, r: &Value, topic: &str, payload: Value) -> Value {
    match framing {
        Framing::V1 => json!({"topic": topic, "event": "phx_reply", "payload": payload, "ref": r}),
        Framing::V2 => json!([join_ref, r, topic, "phx_reply", payload]),
    }
}

fn close_frame(framing: Framing, jr: &Value, topic: &str) -> Value {
    match framing {
        Framing::V1 => json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": jr}),
        Framing::V2 => json!([jr, jr, topic, "phx_close", {}]),
    }
}

fn unmatched() -> Value {
    json!({"status": "error", "response": {"reason": "unmatched topic"}})
}

fn ok_empty() -> Value {
    json!({"status": "ok", "response": {}})
}

/// D2: joins of topics with no route get `unmatched topic`, with join_ref null in V2.
async fn join_unknown_topic_is_unmatched(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    for topic in [
        "foo:bar",
        "phoenix",
        "presence",
        "presence:teacher",
        "chat:abc",
        "rooms:lobby",
        "presence:teachers:x",
    ] {
        let r = Value::String(c.new_ref());
        c.send_msg(
            &r.clone(),
            &r,
            topic,
            "phx_join",
            &json!({"userId": 1, "role": "teacher"}),
        )
        .await;
        let f = c.next_frame(WAIT).await;
        assert_eq!(
            f.value(),
            reply_frame(framing, Value::Null, &r, topic, unmatched()),
            "join of {topic}"
        );
    }
    c.expect_silence(SILENCE).await;
}

/// D7: events on topics this connection has not joined get `unmatched topic`
/// (join_ref null in V2), even when the topic exists elsewhere.
async fn event_on_unjoined_topic_is_unmatched(framing: Framing) {
    let srv = start_default();
    // Student 1 exists on another connection; that does not join it here.
    let _s = student(&srv, framing, 1).await;
    let mut c = connect(&srv, framing).await;
    let cases = [
        ("presence:student:1", "student:ready", json!({"userId": 1})),
        (
            "presence:teachers",
            "claim:student",
            json!({"teacherId": 1}),
        ),
        (
            "chats:2b1e4a2c-5d7e-4f3a-9b8c-1d2e3f4a5b6c",
            "teacher:send",
            json!({"message": "hi"}),
        ),
        ("foo:bar", "whatever", json!({})),
        ("phoenix", "bogus", json!({})),
    ];
    for (topic, event, payload) in cases {
        for jr in [Value::Null, json!("99")] {
            let r = Value::String(c.new_ref());
            c.send_msg(&jr, &r, topic, event, &payload).await;
            let f = c.next_frame(WAIT).await;
            assert_eq!(
                f.value(),
                reply_frame(framing, Value::Null, &r, topic, unmatched()),
                "{event} on unjoined {topic}"
            );
        }
    }
    c.expect_silence(SILENCE).await;
}

/// D6: leave of a topic that is not joined gets `ok` `{}` (with the request's join_ref)
/// and no phx_close.
async fn leave_of_unjoined_topic_is_ok(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    for topic in ["presence:teachers", "presence:student:4", "foo:bar"] {
        let r = Value::String(c.new_ref());
        let jr = json!("42");
        c.send_msg(&jr, &r, topic, "phx_leave", &json!({})).await;
        let f = c.next_frame(WAIT).await;
        assert_eq!(
            f.value(),
            reply_frame(framing, jr, &r, topic, ok_empty()),
            "leave of unjoined {topic}"
        );
    }
    c.expect_silence(SILENCE).await;
}

/// D2 + D4: join reply exact; leave → `ok` then `phx_close` (V1 ref = join ref, V2
/// [JR,JR,...]); afterwards the topic is not joined; leaving again is D6.
async fn leave_replies_ok_then_phx_close(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    let topic = "presence:student:5";
    let jr = Value::String(c.new_ref());
    c.send_msg(
        &jr.clone(),
        &jr,
        topic,
        "phx_join",
        &student_params(&json!(5)),
    )
    .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, jr.clone(), &jr, topic, ok_empty()),
        "join reply"
    );

    let r = Value::String(c.new_ref());
    c.send_msg(&jr, &r, topic, "phx_leave", &json!({})).await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, jr.clone(), &r, topic, ok_empty()),
        "leave reply first"
    );
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        close_frame(framing, &jr, topic),
        "then phx_close with the join ref"
    );

    // Not joined any more: events are unmatched, a second leave is a plain ok.
    let r = Value::String(c.new_ref());
    c.send_msg(&Value::Null, &r, topic, "student:ready", &json!({}))
        .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, Value::Null, &r, topic, unmatched()),
        "event after leave"
    );
    let r = Value::String(c.new_ref());
    c.send_msg(&jr, &r, topic, "phx_leave", &json!({})).await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, jr.clone(), &r, topic, ok_empty()),
        "second leave"
    );
    c.expect_silence(SILENCE).await;

    // And it can be joined again.
    c.join_ok(topic, student_params(&json!(5))).await;
}

/// D3: a duplicate join closes the old channel with its OLD join ref, then answers the
/// new join (PROTOCOL appendix transcript).
async fn duplicate_join_closes_old_channel_first(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    let topic = "presence:student:8";
    let params = student_params(&json!(8));
    let j1 = Value::String(c.new_ref());
    c.send_msg(&j1.clone(), &j1, topic, "phx_join", &params)
        .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, j1.clone(), &j1, topic, ok_empty())
    );

    let j2 = Value::String(c.new_ref());
    c.send_msg(&j2.clone(), &j2, topic, "phx_join", &params)
        .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        close_frame(framing, &j1, topic),
        "phx_close of the old channel comes first"
    );
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, j2.clone(), &j2, topic, ok_empty()),
        "then ok for the new join"
    );
    c.expect_silence(SILENCE).await;

    // The new channel is the live one: leave closes it with the NEW join ref.
    let r = Value::String(c.new_ref());
    c.send_msg(&j2, &r, topic, "phx_leave", &json!({})).await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, j2.clone(), &r, topic, ok_empty())
    );
    let f = c.next_frame(WAIT).await;
    assert_eq!(f.value(), close_frame(framing, &j2, topic));
}

/// D3: the replaced channel does NOT run leave effects: a waiting student stays waiting
/// (no user:status), a teacher keeps its chat (no requeue, no phx_close on the chat).
async fn duplicate_join_has_no_leave_effects(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;

    // Student 8 waiting.
    let mut s8 = ready_student(&srv, framing, 8).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(1, 1, 1, 0, 0));
    let reply = s8
        .join("presence:student:8", student_params(&json!(8)))
        .await;
    reply.assert_ok_empty();
    s8.wait_for("presence:student:8", "phx_close", WAIT).await;
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    // Still waiting: a claim gets student 8 and the student hears about it on the new channel.
    let mut t1 = teacher(&srv, framing, 1).await;
    let cid = t1.claim_expect(&json!(1), &json!(8)).await;
    s8.wait_for("presence:student:8", "new:chat", WAIT).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(2, 1, 0, 1, 0));

    // Teacher 1 re-joins presence:teachers on the same socket while chatting.
    s8.join_chat(&cid, "student", &json!(8)).await;
    t1.join_chat(&cid, "teacher", &json!(1)).await;
    let reply = t1
        .join("presence:teachers", teacher_params(&json!(1)))
        .await;
    reply.assert_ok_empty();
    t1.wait_for("presence:teachers", "phx_close", WAIT).await;
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    s8.expect_no_event(&chat_topic(&cid), "phx_close", SILENCE)
        .await;
    // The chat is still active and relays.
    t1.push(
        &chat_topic(&cid),
        "teacher:send",
        json!({"message": "still here"}),
    )
    .await;
    let f = s8
        .wait_for(&chat_topic(&cid), "student:receive", WAIT)
        .await;
    assert_eq!(f.payload, json!({"message": "still here"}));
}

/// D3: if the new join is refused, the old channel is gone after all and section 6
/// applies: a waiting student vanishes (one user:status).
async fn refused_duplicate_join_drops_old_channel(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut s8 = ready_student(&srv, framing, 8).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(1, 1, 1, 0, 0));

    let old = s8.join_ref_of("presence:student:8").unwrap();
    let r = Value::String(s8.new_ref());
    s8.send_msg(
        &r.clone(),
        &r,
        "presence:student:8",
        "phx_join",
        &student_params(&json!(9)),
    )
    .await;
    let f = s8.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        close_frame(framing, &old, "presence:student:8"),
        "old channel closed first"
    );
    let f = s8.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(
            framing,
            r.clone(),
            &r,
            "presence:student:8",
            json!({"status":"error","response":{"reason":"unauthorized"}})
        )
    );
    s8.forget("presence:student:8");
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(
        st.payload,
        status_payload(1, 0, 0, 0, 0),
        "student 8 vanished"
    );
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;
    let reply = s8
        .call("presence:student:8", "student:ready", json!({}))
        .await;
    reply.assert_error("unmatched topic");
}

/// Sends a message that carries an explicit join_ref (V2 element 0, V1 extra key).
async fn send_with_join_ref(
    c: &mut Client,
    jr: &Value,
    topic: &str,
    event: &str,
    payload: Value,
) -> Value {
    let r = Value::String(c.new_ref());
    let text = match c.framing {
        Framing::V1 => {
            json!({"topic": topic, "event": event, "payload": payload, "ref": r, "join_ref": jr})
                .to_string()
        }
        Framing::V2 => json!([jr, r, topic, event, payload]).to_string(),
    };
    c.send_text(text).await;
    r
}

/// D5/D8: messages carrying the join_ref of an earlier join are ignored silently.
async fn stale_join_ref_is_ignored(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut s = student(&srv, framing, 8).await;
    let topic = "presence:student:8";
    let old = s.join_ref_of(topic).unwrap();
    s.join(topic, student_params(&json!(8)))
        .await
        .assert_ok_empty();
    s.wait_for(topic, "phx_close", WAIT).await;
    let new = s.join_ref_of(topic).unwrap();
    assert_ne!(old, new);

    // D8: stale event → no reply, no effect.
    send_with_join_ref(&mut s, &old, topic, "student:ready", json!({"userId": 8})).await;
    // D5: stale leave → no reply, channel stays.
    send_with_join_ref(&mut s, &old, topic, "phx_leave", json!({})).await;
    s.expect_silence(SILENCE).await;
    obs.expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;

    // A null join_ref counts as current (D8 needs a non-null one), in V2 too.
    let r = send_with_join_ref(&mut s, &Value::Null, topic, "bogus", json!({})).await;
    s.reply(topic, &r).await.assert_error("unknown event");
    // The current join ref works.
    let r = send_with_join_ref(&mut s, &new, topic, "student:ready", json!({"userId": 8})).await;
    s.reply(topic, &r).await.assert_ok_empty();
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(1, 1, 1, 0, 0));
    let r = send_with_join_ref(&mut s, &new, topic, "phx_leave", json!({})).await;
    s.reply(topic, &r).await.assert_ok_empty();
    let f = s.wait_for(topic, "phx_close", WAIT).await;
    assert_eq!(f.value(), close_frame(framing, &new, topic));
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(st.payload, status_payload(1, 0, 0, 0, 0));
}

/// PROTOCOL 3.1: replies other than D2-unmatched/D7 carry the request's join_ref (V2),
/// application replies included; V1 replies carry the request's ref.
async fn replies_carry_the_request_refs(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    let topic = "presence:teachers";
    let jr = json!("11");
    c.send_msg(&jr, &jr, topic, "phx_join", &teacher_params(&json!(1)))
        .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(framing, jr.clone(), &jr, topic, ok_empty())
    );
    let cases = [
        ("claim:student", json!({"teacherId": 1}), ok_empty()),
        (
            "claim:student",
            json!("x"),
            json!({"status":"error","response":{"reason":"invalid payload"}}),
        ),
        (
            "claim:student",
            json!({"teacherId": 2}),
            json!({"status":"error","response":{"reason":"unauthorized"}}),
        ),
        (
            "bogus",
            json!({}),
            json!({"status":"error","response":{"reason":"unknown event"}}),
        ),
    ];
    for (event, payload, expected) in cases {
        let r = Value::String(c.new_ref());
        c.send_msg(&jr, &r, topic, event, &payload).await;
        let f = c.next_frame(WAIT).await;
        assert_eq!(
            f.value(),
            reply_frame(framing, jr.clone(), &r, topic, expected),
            "{event} {payload}"
        );
    }
    // A refused join carries its own join_ref too.
    let jr2 = json!("12");
    c.send_msg(
        &jr2,
        &jr2,
        "presence:student:4",
        "phx_join",
        &student_params(&json!(5)),
    )
    .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        reply_frame(
            framing,
            jr2.clone(),
            &jr2,
            "presence:student:4",
            json!({"status":"error","response":{"reason":"unauthorized"}})
        )
    );
    c.expect_silence(SILENCE).await;
}

/// PROTOCOL 2.1: a V1 phx_join that carries a join_ref key uses it as the join ref.
#[tokio::test]
async fn v1_join_ref_key_is_the_join_ref() {
    let srv = start_default();
    let mut c = connect(&srv, Framing::V1).await;
    let topic = "presence:student:3";
    c.send_text(format!(
        r#"{{"topic":"{topic}","event":"phx_join","payload":{{"userId":3,"role":"student"}},"ref":"7","join_ref":"J1"}}"#
    ))
    .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        json!({"topic": topic, "event": "phx_reply", "payload": ok_empty(), "ref": "7"})
    );
    c.send_text(format!(
        r#"{{"topic":"{topic}","event":"phx_leave","payload":{{}},"ref":"8"}}"#
    ))
    .await;
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        json!({"topic": topic, "event": "phx_reply", "payload": ok_empty(), "ref": "8"})
    );
    let f = c.next_frame(WAIT).await;
    assert_eq!(
        f.value(),
        json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": "J1"})
    );
}

/// PROTOCOL 3.3: the join reply is the first frame on the topic for the new join, and no
/// broadcast after the subscription is missed. Broadcasts in V2 carry join_ref null
/// (checked by the client decoder).
async fn join_reply_comes_before_broadcasts(framing: Framing) {
    let srv = start_default();
    let mut students = Vec::new();
    for sid in 1..=30 {
        students.push(student(&srv, framing, sid).await);
    }
    // Readies race the teacher's join.
    for (i, s) in students.iter_mut().enumerate().take(15) {
        s.push(
            &format!("presence:student:{}", i + 1),
            "student:ready",
            json!({}),
        )
        .await;
    }
    let mut t = connect(&srv, framing).await.named("teacher 1");
    let jr = Value::String(t.new_ref());
    t.send_msg(
        &jr.clone(),
        &jr,
        "presence:teachers",
        "phx_join",
        &teacher_params(&json!(1)),
    )
    .await;
    for (i, s) in students.iter_mut().enumerate().skip(15) {
        s.push(
            &format!("presence:student:{}", i + 1),
            "student:ready",
            json!({}),
        )
        .await;
    }
    let first = t.next_frame(WAIT).await;
    assert!(
        first.is_reply_to("presence:teachers", &jr),
        "the join reply must be the first frame on presence:teachers, got {}",
        first.raw
    );
    first.assert_ok_empty();
    // A ready after the join reply must be seen.
    let _s31 = ready_student(&srv, framing, 31).await;
    let st = t
        .wait_match(
            |f| {
                f.is("presence:teachers", "user:status")
                    && f.payload["students"]["waiting"] == json!(31)
            },
            "user:status with waiting 31",
            WAIT,
        )
        .await;
    assert_eq!(status_tuple(&st.payload), (1, 31, 31, 0, 0));
}

/// PROTOCOL 3.1: at most 100 channels per connection (Config default); the 101st join
/// gets `too many channels joined`; after a leave there is room again.
async fn channel_cap(framing: Framing) {
    let srv = start_default();
    assert_eq!(Config::default().max_channels, 100);
    let mut c = connect(&srv, framing).await;
    for sid in 1..=100 {
        c.join_ok(
            &format!("presence:student:{sid}"),
            student_params(&json!(sid)),
        )
        .await;
    }
    let reply = c
        .join("presence:student:101", student_params(&json!(101)))
        .await;
    reply.assert_error("too many channels joined");
    let reply = c.join("presence:teachers", teacher_params(&json!(1))).await;
    reply.assert_error("too many channels joined");
    // Heartbeats are not a channel.
    c.heartbeat().await;
    // The refused join left nothing behind.
    c.call("presence:student:101", "student:ready", json!({}))
        .await
        .assert_error("unmatched topic");
    // A duplicate join of a joined topic is a replacement, not a new channel.
    c.join("presence:student:1", student_params(&json!(1)))
        .await
        .assert_ok_empty();
    c.wait_for("presence:student:1", "phx_close", WAIT).await;
    c.leave("presence:student:2").await;
    c.join_ok("presence:student:101", student_params(&json!(101)))
        .await;
    c.join("presence:student:102", student_params(&json!(102)))
        .await
        .assert_error("too many channels joined");
}

crate::both!(
    join_unknown_topic_is_unmatched,
    event_on_unjoined_topic_is_unmatched,
    leave_of_unjoined_topic_is_ok,
    leave_replies_ok_then_phx_close,
    duplicate_join_closes_old_channel_first,
    duplicate_join_has_no_leave_effects,
    refused_duplicate_join_drops_old_channel,
    stale_join_ref_is_ignored,
    join_reply_comes_before_broadcasts,
    replies_carry_the_request_refs,
    channel_cap,
);
