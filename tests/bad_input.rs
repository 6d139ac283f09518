//! Bad input and limits (PROTOCOL 1.4, 1.5, 1.6, 3.1 cap, 3.6, 8.11): malformed frames
//! close with 1007, binary with 1003, oversized with 1009; idle and slow connections are
//! closed and cleaned up; none of it affects other connections or the queue.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::support::*;

fn malformed_cases(framing: Framing) -> Vec<&'static str> {
    let mut common = vec![
        "not json",
        "",
        "{\"topic\":\"phoenix\"",
        "null",
        "42",
        "\"heartbeat\"",
    ];
    match framing {
        Framing::V1 => common.extend([
            "[1,2]",
            "{}",
            r#"{"topic":"x"}"#,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{}}"#,
            r#"{"topic":"phoenix","event":"heartbeat","ref":"1"}"#,
            r#"{"event":"heartbeat","payload":{},"ref":"1"}"#,
            r#"{"topic":"phoenix","payload":{},"ref":"1"}"#,
            r#"{"topic":1,"event":"heartbeat","payload":{},"ref":"1"}"#,
            r#"{"topic":"phoenix","event":null,"payload":{},"ref":"1"}"#,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":{}}"#,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":true}"#,
            r#"[null,"1","phoenix","heartbeat",{}]"#,
        ]),
        Framing::V2 => common.extend([
            r#"{"topic":"x"}"#,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#,
            "[]",
            "[1,2]",
            r#"[null,"1","phoenix","heartbeat"]"#,
            r#"[null,"1","phoenix","heartbeat",{},null]"#,
            r#"[null,"1",1,"heartbeat",{}]"#,
            r#"[null,"1","phoenix",null,{}]"#,
            r#"[null,{},"phoenix","heartbeat",{}]"#,
            r#"[null,["1"],"phoenix","heartbeat",{}]"#,
            r#"[null,true,"phoenix","heartbeat",{}]"#,
            r#"[1,"1","phoenix","heartbeat",{}]"#,
            r#"[{},"1","phoenix","heartbeat",{}]"#,
        ]),
    }
    common
}

/// 1.4: every malformed text frame closes its connection with 1007, and the connection
/// is cleaned up like a disconnect (the waiting student leaves the roster).
async fn malformed_text_closes_1007(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    for (i, text) in malformed_cases(framing).into_iter().enumerate() {
        let sid = json!(i + 1);
        let mut s = ready_student(&srv, framing, sid.clone()).await;
        let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
        assert_eq!(
            status_tuple(&st.payload),
            (1, 1, 1, 0, 0),
            "student {sid} ready"
        );
        s.send_text(text).await;
        let code = s.wait_close(WAIT).await;
        assert_eq!(
            code,
            Some(1007),
            "malformed frame {text:?} on {framing:?}: expected close 1007 (PROTOCOL 1.4)"
        );
        let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
        assert_eq!(
            status_tuple(&st.payload),
            (1, 0, 0, 0, 0),
            "after the malformed frame {text:?} the student must be cleaned up"
        );
    }
    // The observer was never disturbed.
    obs.heartbeat().await;
}

/// 1.4: text that is not UTF-8 is malformed too.
async fn invalid_utf8_text_closes_1007(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await;
    c.send_raw_text_bytes(vec![b'[', b'"', 0xff, 0xfe, b'"', b']'])
        .await;
    let code = c.wait_close(WAIT).await;
    assert_eq!(
        code,
        Some(1007),
        "invalid UTF-8 in a text frame: expected close 1007"
    );
}

/// 1.4: a binary frame closes the connection with 1003 and cleans it up.
async fn binary_frame_closes_1003(framing: Framing) {
    let srv = start_default();
    let mut obs = teacher(&srv, framing, 900).await;
    let mut s = ready_student(&srv, framing, 7).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(status_tuple(&st.payload), (1, 1, 1, 0, 0));
    let json_bytes = encode(
        framing,
        &Value::Null,
        &json!("9"),
        "phoenix",
        "heartbeat",
        &json!({}),
    )
    .into_bytes();
    s.send_binary(json_bytes).await;
    let code = s.wait_close(WAIT).await;
    assert_eq!(
        code,
        Some(1003),
        "binary frame: expected close 1003 (PROTOCOL 1.4)"
    );
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(
        status_tuple(&st.payload),
        (1, 0, 0, 0, 0),
        "student cleaned up after the binary frame"
    );
}

/// 1.4: a 64 KiB message is accepted (a ~64,000-byte relay arrives intact, a frame of
/// exactly 65,536 bytes too); a larger one (70,000 bytes) closes with 1009.
async fn frame_size_limits(framing: Framing) {
    let srv = start_default();
    assert_eq!(Config::default().max_frame_bytes, 64 * 1024);
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    let topic = chat_topic(&cid);
    t.clear();

    let big = "x".repeat(64_000);
    t.push(&topic, "teacher:send", json!({"message": big}))
        .await;
    let f = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(
        f.payload["message"].as_str().map(str::len),
        Some(64_000),
        "64,000-byte message arrives whole"
    );
    assert_eq!(f.payload, json!({"message": big}));

    // A frame of exactly 64 KiB.
    let r = t.new_ref();
    let jr = t.join_ref_of(&topic).unwrap_or(Value::Null);
    let skeleton = encode(
        framing,
        &jr,
        &json!(r),
        &topic,
        "teacher:send",
        &json!({"message": ""}),
    );
    let pad = 65_536 - skeleton.len();
    let text = encode(
        framing,
        &jr,
        &json!(r),
        &topic,
        "teacher:send",
        &json!({"message": "y".repeat(pad)}),
    );
    assert_eq!(text.len(), 65_536);
    t.send_text(text).await;
    let f = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(
        f.payload["message"].as_str().map(str::len),
        Some(pad),
        "a 65,536-byte frame is accepted"
    );

    // 70,000 bytes: closed with 1009, and cleaned up (the chat ends for the teacher).
    s.push(
        &topic,
        "student:send",
        json!({"message": "z".repeat(70_000)}),
    )
    .await;
    let code = s.wait_close(WAIT).await;
    assert_eq!(
        code,
        Some(1009),
        "a 70,000-byte message: expected close 1009"
    );
    t.wait_for(&topic, "chat:terminated", WAIT).await;
    t.wait_match(
        |f| f.is("presence:teachers", "user:status") && status_tuple(&f.payload) == (1, 0, 0, 0, 0),
        "the student gone from the roster",
        WAIT,
    )
    .await;
}

fn short_idle() -> Config {
    Config {
        idle_timeout: Duration::from_secs(1),
        ..Config::default()
    }
}

/// Keeps `c` alive with heartbeats while waiting for a frame matching `pred`.
pub(crate) async fn wait_keepalive(
    c: &mut Client,
    pred: impl Fn(&Frame) -> bool,
    what: &str,
    timeout: Duration,
) -> Frame {
    let deadline = Instant::now() + timeout;
    loop {
        c.heartbeat().await;
        if let Some(f) = c.try_wait_match(&pred, Duration::from_millis(250)).await {
            return f;
        }
        assert!(
            !c.is_closed(),
            "[{}] closed while waiting for {what}",
            c.name
        );
        if Instant::now() >= deadline {
            // One last strict wait, for the failure message.
            return c.wait_match(&pred, what, Duration::from_millis(1)).await;
        }
    }
}

/// 1.5: a connection that sends nothing for `idle_timeout` is closed and cleaned up.
async fn idle_connection_is_closed_and_cleaned_up(framing: Framing) {
    let srv = start(short_idle());
    let mut obs = teacher(&srv, framing, 900).await;
    let mut s = ready_student(&srv, framing, 7).await;
    let st = wait_keepalive(
        &mut obs,
        |f| f.is("presence:teachers", "user:status"),
        "status after ready",
        WAIT,
    )
    .await;
    assert_eq!(status_tuple(&st.payload), (1, 1, 1, 0, 0));
    // The student now says nothing; the observer keeps heart-beating.
    let st = wait_keepalive(
        &mut obs,
        |f| f.is("presence:teachers", "user:status"),
        "the idle student's removal",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        status_tuple(&st.payload),
        (1, 0, 0, 0, 0),
        "the idle student was cleaned up"
    );
    s.wait_close(WAIT).await;
    // The observer, which kept talking, is still fine and still a teacher.
    obs.heartbeat().await;
    let _s2 = ready_student(&srv, framing, 8).await;
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(status_tuple(&st.payload), (1, 1, 1, 0, 0));
}

/// 1.5: any inbound frame, control frames included, resets the idle timer.
async fn idle_timer_reset_by_any_frame(framing: Framing) {
    // 2 s here (not 1 s) so that a busy test machine cannot starve the 300 ms loop.
    let srv = start(Config {
        idle_timeout: Duration::from_secs(2),
        ..Config::default()
    });
    let mut pinger = connect(&srv, framing).await.named("pinger");
    let mut beater = connect(&srv, framing).await.named("heartbeater");
    let mut silent = connect(&srv, framing).await.named("silent");
    let until = Instant::now() + Duration::from_millis(4_500);
    while Instant::now() < until {
        pinger.send_ping().await;
        beater.heartbeat().await;
        // Pongs are read and skipped here; a 300 ms step is well inside the 1 s timeout.
        pinger.drain(Duration::from_millis(300)).await;
        assert!(
            !pinger.is_closed(),
            "a connection sending pings was closed as idle"
        );
    }
    beater.heartbeat().await;
    pinger.heartbeat().await;
    silent.wait_close(WAIT).await;
}

/// 1.6: a connection that stops reading while the server queues frames to it is closed
/// as a slow consumer, which is a disconnect: the teacher leaves presence, its chat is
/// abandoned (its student requeued), other teachers see teachers.total go down, and the
/// rest keeps working.
async fn slow_consumer_is_dropped(framing: Framing) {
    let srv = start(Config {
        outbound_limit: 64,
        ..Config::default()
    });
    // The slow teacher's socket has a tiny receive buffer so the kernel cannot absorb much.
    let mut slow =
        match handshake_with(srv.port, framing.default_path(), framing, None, Some(4096)).await {
            Handshake::Ok(c, _) => c.named("slow teacher 1"),
            Handshake::Refused(st) => panic!("upgrade refused: {st}"),
        };
    slow.join_ok("presence:teachers", teacher_params(&json!(1)))
        .await;
    let mut obs = teacher(&srv, framing, 2).await;
    let mut s = ready_student(&srv, framing, 7).await;
    let cid = slow.claim_expect(&json!(1), &json!(7)).await;
    slow.join_chat(&cid, "teacher", &json!(1)).await;
    s.wait_for("presence:student:7", "new:chat", WAIT).await;
    s.join_chat(&cid, "student", &json!(7)).await;
    let topic = chat_topic(&cid);
    obs.wait_match(
        |f| f.is("presence:teachers", "user:status") && status_tuple(&f.payload) == (2, 1, 0, 1, 0),
        "status after the claim",
        WAIT,
    )
    .await;
    obs.clear();

    // From now on the slow teacher never reads. The student floods it with 60 KB relays.
    let chunk = "m".repeat(60_000);
    let mut sent = 0usize;
    let closed = loop {
        for _ in 0..10 {
            if !s
                .try_send_text(encode(
                    framing,
                    &s.join_ref_of(&topic).unwrap_or(Value::Null),
                    &json!(sent.to_string()),
                    &topic,
                    "student:send",
                    &json!({"message": chunk, "n": sent}),
                ))
                .await
            {
                panic!("the flooding student's own connection failed after {sent} messages");
            }
            sent += 1;
        }
        if let Some(f) = s
            .try_wait_match(|f| f.is(&topic, "phx_close"), Duration::from_millis(5))
            .await
        {
            break f;
        }
        if sent >= 3_000 {
            panic!(
                "after {sent} relayed messages of 60 KB (~{} MB) to a teacher that never reads, \
                 the server had not dropped it (outbound_limit 64)",
                sent * 60_000 / 1_000_000
            );
        }
    };
    drop(closed);
    eprintln!("slow consumer dropped after {sent} relayed 60 KB messages");
    s.forget(&topic);
    let st = obs.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(
        status_tuple(&st.payload),
        (1, 1, 1, 0, 0),
        "the slow teacher left presence and its student was requeued"
    );
    s.expect_no_event(&topic, "chat:terminated", SILENCE).await;

    // The rest keeps working: teacher 2 takes the student and they chat.
    let cid2 = obs.claim_expect(&json!(2), &json!(7)).await;
    enter_chat(&mut obs, &json!(2), &mut s, &json!(7), &cid2).await;
    obs.push(
        &chat_topic(&cid2),
        "teacher:send",
        json!({"message": "welcome back"}),
    )
    .await;
    let f = s
        .wait_for(&chat_topic(&cid2), "student:receive", WAIT)
        .await;
    assert_eq!(f.payload, json!({"message": "welcome back"}));
    drop(slow);
}

/// A chat whose student reads nothing once it has joined: a tiny receive buffer, so
/// the kernel absorbs little of what the server writes. The teacher, the student and
/// the chat topic.
async fn chat_with_a_stalled_student(srv: &Server, framing: Framing) -> (Client, Client, String) {
    let mut s =
        match handshake_with(srv.port, framing.default_path(), framing, None, Some(4096)).await {
            Handshake::Ok(c, _) => c.named("stalled student 7"),
            Handshake::Refused(st) => panic!("upgrade refused: {st}"),
        };
    let sid = json!(7);
    s.join_ok(&student_topic(&sid), student_params(&sid)).await;
    s.ready(&sid).await;
    let mut t = teacher(srv, framing, 1).await;
    let cid = t.claim_expect(&json!(1), &sid).await;
    t.join_chat(&cid, "teacher", &json!(1)).await;
    s.wait_for(&student_topic(&sid), "new:chat", WAIT).await;
    s.join_chat(&cid, "student", &sid).await;
    (t, s, chat_topic(&cid))
}

/// The teacher sends 60 kB messages until its chat ends (the student evicted);
/// how many it sent.
async fn send_until_evicted(t: &mut Client, topic: &str) -> usize {
    let chunk = "m".repeat(60_000);
    let mut sent = 0usize;
    loop {
        for _ in 0..5 {
            t.push(topic, "teacher:send", json!({"message": chunk, "n": sent}))
                .await;
            sent += 1;
        }
        if t.try_wait_match(
            |f| f.is(topic, "chat:terminated"),
            Duration::from_millis(20),
        )
        .await
        .is_some()
        {
            return sent;
        }
        // Kernel buffers on both sides hold a few MB at most; the frame bound alone
        // would need 8,192 messages here.
        assert!(
            sent < 300,
            "after {sent} messages of 60 kB (~{} MB) to a student that reads nothing, \
             the server had not evicted it (outbound_bytes 256 KiB)",
            sent * 60_000 / 1_000_000
        );
    }
}

/// 1.6, bounded by bytes: a student that stops reading while its teacher sends 60 kB
/// messages is evicted once about `outbound_bytes` (here 256 KiB) are queued to it, long
/// before the frame bound (8,192 frames, ~0.5 GB of such messages) would act. The
/// eviction is a disconnect: the chat ends for the teacher with `chat:terminated` (6.1),
/// the student gets 1008 when it reads again, and `/metrics` counts it.
async fn slow_consumer_is_bounded_by_bytes(framing: Framing) {
    let srv = start(Config {
        outbound_bytes: 256 * 1024,
        ..Config::default()
    });
    assert_eq!(Config::default().outbound_limit, 8192);
    let (mut t, mut s, topic) = chat_with_a_stalled_student(&srv, framing).await;

    // From now on the student reads nothing; the teacher sends 60 kB messages.
    let sent = send_until_evicted(&mut t, &topic).await;
    eprintln!("stalled student evicted after {sent} messages of 60 kB");
    let metrics = http_get(srv.port, "/metrics").await.text();
    assert!(
        metrics.contains(r#"tutor_queue_frames_rejected_total{reason="slow_consumer"} 1"#),
        "the eviction is counted once:\n{metrics}"
    );
    // The student, reading again, gets what was queued before the eviction, then 1008.
    s.expect_close_code(1008, "evicted as a slow consumer")
        .await;
    // The teacher goes on: its chat is over, its slot free.
    t.wait_match(
        |f| f.is("presence:teachers", "user:status") && status_tuple(&f.payload) == (1, 0, 0, 0, 0),
        "the student gone from the roster",
        WAIT,
    )
    .await;
}

/// A client that stops reading for good does not keep its connection slot: once it is
/// evicted, the server cannot even write its close frame, so the kernel gives up on the
/// connection after `send_timeout` of unacknowledged data (`TCP_USER_TIMEOUT`) and the
/// slot frees. Here `max_connections` is 2: while the stalled student holds a slot, a
/// third client gets 503; once the timeout passes, it is admitted.
async fn a_stalled_reader_frees_its_connection_slot(framing: Framing) {
    let srv = start(Config {
        max_connections: 2,
        outbound_bytes: 256 * 1024,
        send_timeout: Duration::from_secs(1),
        ..Config::default()
    });
    let (mut t, s, topic) = chat_with_a_stalled_student(&srv, framing).await;

    // The student reads nothing from here on (and is kept open until the end).
    send_until_evicted(&mut t, &topic).await;
    // Right after the eviction the stalled connection still holds its slot.
    match handshake(srv.port, framing.default_path(), framing, None).await {
        Handshake::Refused(status) => assert_eq!(status, 503),
        Handshake::Ok(..) => panic!("a third connection admitted while two are open"),
    }
    // Then the kernel gives up on it and the slot frees, although the client never
    // reads nor closes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match handshake(srv.port, framing.default_path(), framing, None).await {
            Handshake::Ok(..) => break,
            Handshake::Refused(status) => {
                assert_eq!(status, 503);
                assert!(
                    Instant::now() < deadline,
                    "the stalled student still holds its connection slot after 20 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    drop(s);
}

/// Garbage on one connection (and its reconnects) while two others complete a chat and
/// the queue keeps its order. Close codes are checked by the dedicated tests; here any
/// close of the garbage connection is fine, as long as the others never notice.
async fn garbage_does_not_affect_others(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let mut s1 = ready_student(&srv, framing, 1).await;
    let _s2 = ready_student(&srv, framing, 2).await;

    let port = srv.port;
    let garbage = tokio::spawn(async move {
        let mut rng = Rng::new(0x5eed_1234 ^ port as u64);
        for round in 0..30u64 {
            let f = if round % 3 == 2 {
                match framing {
                    Framing::V1 => Framing::V2,
                    Framing::V2 => Framing::V1,
                }
            } else {
                framing
            };
            let mut g = connect_path(port, f.default_path(), f)
                .await
                .named(format!("garbage {round}"));
            // Well-formed nonsense: the connection stays open and gets error replies.
            for k in 0..20u64 {
                let r = json!(format!("g{k}"));
                let (topic, event, payload) = match rng.below(8) {
                    0 => (
                        "presence:student:1".to_string(),
                        "student:ready".to_string(),
                        json!({"userId": 1}),
                    ),
                    1 => (
                        "presence:teachers".to_string(),
                        "claim:student".to_string(),
                        json!({"teacherId": 1}),
                    ),
                    2 => (
                        format!("chats:{}", rng.next_u64()),
                        "phx_join".to_string(),
                        json!({"userId": 1, "role": "teacher"}),
                    ),
                    3 => (
                        "presence:student:3".to_string(),
                        "phx_join".to_string(),
                        json!({"userId": 4, "role": "student"}),
                    ),
                    4 => (
                        "presence:teachers".to_string(),
                        "phx_join".to_string(),
                        json!("not an object"),
                    ),
                    5 => (
                        "nonsense".to_string(),
                        rng.text(8),
                        json!({"x": rng.text(16)}),
                    ),
                    6 => ("phoenix".to_string(), "heartbeat".to_string(), json!({})),
                    _ => (
                        "presence:student:1".to_string(),
                        "phx_leave".to_string(),
                        json!({}),
                    ),
                };
                let text = encode(f, &Value::Null, &r, &topic, &event, &payload);
                if !g.try_send_text(text).await {
                    panic!("[garbage {round}] the server closed a connection that sent only well-formed frames");
                }
            }
            // Then something malformed.
            let len = 1 + rng.below(200) as usize;
            match rng.below(5) {
                0 => g.send_text(rng.text(len)).await,
                1 => g.send_text("{\"topic\":\"presence:teachers\",").await,
                2 => g.send_text("[\"1\",\"2\",\"presence:teachers\"]").await,
                3 => g.send_raw_text_bytes(rng.bytes(len)).await,
                _ => g.send_binary(rng.bytes(32)).await,
            }
            g.wait_close(WAIT).await;
        }
    });

    // Meanwhile a whole chat, in order.
    let cid = t.claim_expect(&json!(1), &json!(1)).await;
    enter_chat(&mut t, &json!(1), &mut s1, &json!(1), &cid).await;
    let topic = chat_topic(&cid);
    for m in 1..=50 {
        t.push(
            &topic,
            "teacher:send",
            json!({"message": format!("Message from teacher: {m}")}),
        )
        .await;
        let f = s1.wait_for(&topic, "student:receive", WAIT).await;
        assert_eq!(
            f.payload["message"],
            json!(format!("Message from teacher: {m}"))
        );
        s1.push(
            &topic,
            "student:send",
            json!({"message": format!("Message #{m} from student: 1")}),
        )
        .await;
        let f = t.wait_for(&topic, "teacher:receive", WAIT).await;
        assert_eq!(
            f.payload["message"],
            json!(format!("Message #{m} from student: 1"))
        );
    }
    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s1.wait_for(&topic, "chat:terminated", WAIT).await;
    t.wait_for(&topic, "chat:terminated", WAIT).await;
    tokio::time::timeout(Duration::from_secs(60), garbage)
        .await
        .expect("the garbage task did not finish")
        .expect("the garbage task failed");
    // The queue is intact: student 2 is next, and student 1 is still present (finished).
    t.claim_expect(&json!(1), &json!(2)).await;
    let st = t
        .wait_match(
            |f| {
                f.is("presence:teachers", "user:status")
                    && status_tuple(&f.payload).3 == 1
                    && status_tuple(&f.payload).2 == 0
            },
            "status after claiming student 2",
            WAIT,
        )
        .await;
    assert_eq!(
        status_tuple(&st.payload),
        (1, 2, 0, 1, 1),
        "students 1 (finished) and 2 (chatting)"
    );
    s1.heartbeat().await;
}

crate::both!(
    malformed_text_closes_1007,
    invalid_utf8_text_closes_1007,
    binary_frame_closes_1003,
    frame_size_limits,
    idle_connection_is_closed_and_cleaned_up,
    idle_timer_reset_by_any_frame,
    slow_consumer_is_dropped,
    slow_consumer_is_bounded_by_bytes,
    a_stalled_reader_frees_its_connection_slot,
    garbage_does_not_affect_others,
);
