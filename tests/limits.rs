//! Limits on what a client can make the server keep (issue 10): user ids, topics and
//! join refs are bounded and refused with a clear `error` reason, V1 and V2; connections
//! are capped per IP address (429) and by the open-file limit (503, never a hang).

use serde_json::{json, Value};
use tutor_queue::Config;

use crate::support::binary::RealServer;
use crate::support::*;

/// Sends a `phx_join` with the given refs (V2: `join_ref == ref`) and returns its reply.
async fn join_with_ref(c: &mut Client, r: &Value, topic: &str, params: Value) -> Frame {
    c.send_msg(r, r, topic, "phx_join", &params).await;
    c.reply(topic, r).await
}

/// PROTOCOL 5.1: a string id over 128 bytes, or with a control character, is refused with
/// `invalid id` wherever a client names one (join params of every topic, the
/// `presence:student:<sid>` topic, an event payload); nothing of it is kept. An id of
/// exactly 128 bytes goes all the way through a chat, echoed as sent.
async fn ids_over_128_bytes_or_with_control_characters_are_invalid(framing: Framing) {
    let srv = start_default();
    let longest = "é".repeat(64);
    assert_eq!(longest.len(), 128);
    let too_long = format!("{longest}x");
    let huge = "i".repeat(31_000);
    let bad_ids = [too_long.as_str(), huge.as_str(), "bell\u{7}", "line\nbreak"];
    let mut c = connect(&srv, framing).await.named("bad ids");
    let mut refused = 0.0;
    for bad in bad_ids {
        let id = json!(bad);
        c.join("presence:teachers", teacher_params(&id))
            .await
            .assert_error("invalid id");
        c.join(&student_topic(&id), student_params(&id))
            .await
            .assert_error("invalid id");
        // The topic alone names an id: a bad one is invalid whatever the params say.
        c.join(&student_topic(&id), student_params(&json!(1)))
            .await
            .assert_error("invalid id");
        let cid = "00000000-0000-4000-8000-000000000000";
        c.join(&chat_topic(cid), student_params(&id))
            .await
            .assert_error("invalid id");
        refused += 4.0;
    }
    // In an event payload on a joined channel.
    let mut s = student(&srv, framing, 7).await;
    s.call(
        &student_topic(&json!(7)),
        "student:ready",
        json!({"userId": huge}),
    )
    .await
    .assert_error("invalid id");
    refused += 1.0;

    // Nobody of those was kept: the only users are the ones below.
    let mut t = connect(&srv, framing).await.named("teacher (128-byte id)");
    let tid = json!(longest);
    t.join_ok(
        "presence:teachers",
        json!({"userId": tid, "role": "teacher", "liveStatus": true}),
    )
    .await;
    let st = t.wait_for("presence:teachers", "user:status", WAIT).await;
    assert_eq!(status_tuple(&st.payload), (1, 0, 0, 0, 0), "{}", st.raw);

    // 128 bytes is fine, end to end, and echoed as sent.
    let sid = json!(format!("s{}", "t".repeat(127)));
    let mut s2 = ready_student(&srv, framing, sid.clone()).await;
    let cid = t.claim_expect(&tid, &sid).await;
    enter_chat(&mut t, &tid, &mut s2, &sid, &cid).await;

    let metrics = http_get(srv.port, "/metrics").await.text();
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="invalid_id"}"#
        ),
        Some(refused),
        "{metrics}"
    );
    s.heartbeat().await;
    c.heartbeat().await;
}

/// Topics and refs are kept as long as a channel is joined, so they are bounded too: a
/// `chats:` topic of 10 kB matches no route (`unmatched topic`); a join whose ref is over
/// 64 bytes is refused with `invalid ref` and joins nothing; long event names are only
/// ever answered, never kept (`unknown event`). The connection stays usable.
async fn long_topics_and_refs_are_refused(framing: Framing) {
    let srv = start_default();
    let mut c = connect(&srv, framing).await.named("long names");
    let long_chat = format!("chats:{}", "c".repeat(10_000));
    let reply = c.join(&long_chat, teacher_params(&json!(1))).await;
    reply.assert_error("unmatched topic");
    if framing == Framing::V2 {
        assert_eq!(reply.join_ref, Some(Value::Null), "{}", reply.raw);
    }
    c.join(&format!("rooms:{}", "r".repeat(10_000)), json!({}))
        .await
        .assert_error("unmatched topic");

    let long_ref = json!("9".repeat(100));
    join_with_ref(
        &mut c,
        &long_ref,
        "presence:teachers",
        teacher_params(&json!(1)),
    )
    .await
    .assert_error("invalid ref");
    // Not joined: an event on the topic is unmatched.
    c.call("presence:teachers", "claim:student", json!({}))
        .await
        .assert_error("unmatched topic");
    // A ref of 62 characters (64 bytes of JSON) is fine.
    let ok_ref = json!("8".repeat(62));
    let reply = join_with_ref(
        &mut c,
        &ok_ref,
        "presence:teachers",
        teacher_params(&json!(1)),
    )
    .await;
    reply.assert_ok_empty();
    // A long event name on a joined channel.
    let jr = match framing {
        Framing::V1 => Value::Null,
        Framing::V2 => ok_ref.clone(),
    };
    let r = json!("e1");
    let event = "e".repeat(20_000);
    c.send_msg(&jr, &r, "presence:teachers", &event, &json!({}))
        .await;
    c.reply("presence:teachers", &r)
        .await
        .assert_error("unknown event");
    c.heartbeat().await;

    let metrics = http_get(srv.port, "/metrics").await.text();
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="invalid_ref"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// `--max-connections-per-ip`: N upgrades from one address are admitted, the next gets
/// 429 with `Retry-After` (counted in `/metrics`), the others are untouched, and a
/// connection that closes frees its place.
#[tokio::test]
async fn upgrades_past_the_per_ip_cap_get_429() {
    let srv = start(Config {
        max_connections_per_ip: 2,
        ..Config::default()
    });
    let mut first = teacher(&srv, Framing::V2, 1).await;
    let second = connect(&srv, Framing::V1).await;
    match handshake(srv.port, "/ws", Framing::V1, None).await {
        Handshake::Refused(status) => assert_eq!(status, 429),
        Handshake::Ok(..) => {
            panic!("a third connection from 127.0.0.1 was accepted with a cap of 2")
        }
    }
    let refused = http_get(srv.port, "/socket/websocket?vsn=2.0.0").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), "5");
    // Plain HTTP is not capped per address.
    assert_eq!(http_get(srv.port, "/healthz").await.status, 200);
    first.heartbeat().await;
    let metrics = http_get(srv.port, "/metrics").await.text();
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="client_connection_limit"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    // A place freed is a place to take.
    second.vanish();
    let mut third = handshake_once_freed(srv.port, "/ws", Framing::V1, 429).await;
    third.heartbeat().await;
    first.heartbeat().await;
}

/// Under an open-file limit of 256, more WebSocket upgrades than descriptors: the server
/// admits what its descriptors allow (the cap it logs at startup), answers every other
/// upgrade 503 at once (a hang would time the handshake out), keeps serving `/healthz`
/// and its open connections, and never runs out of descriptors ("Too many open files").
#[tokio::test]
async fn under_a_low_open_file_limit_the_excess_gets_503_not_a_hang() {
    let bin = RealServer::builder()
        .arg("--workers")
        .arg("2")
        .open_files(256)
        .spawn();
    let caps = bin
        .log()
        .into_iter()
        .find(|l| l.contains("connection caps"))
        .expect("the effective caps are logged at startup");
    assert!(caps.contains("open_files=256"), "{caps}");
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        match handshake(bin.port(), "/ws", Framing::V1, None).await {
            Handshake::Ok(c, _) => {
                assert_eq!(refused, 0, "an upgrade admitted after one was refused");
                open.push(*c);
            }
            Handshake::Refused(status) => {
                assert_eq!(status, 503);
                refused += 1;
            }
        }
    }
    assert!(
        caps.contains(&format!("max_connections={}", open.len())),
        "{} admitted; {caps}",
        open.len()
    );
    assert!(
        refused > 0 && open.len() > 100,
        "{} open, {refused} refused",
        open.len()
    );
    assert_eq!(http_get(bin.port(), "/healthz").await.status, 200);
    let metrics = http_get(bin.port(), "/metrics").await.text();
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="connection_limit"}"#
        ),
        Some(f64::from(refused)),
        "{metrics}"
    );
    for c in open.iter_mut().step_by(40) {
        c.heartbeat().await;
    }
    let log = bin.log();
    assert!(
        !log.iter().any(|l| l.contains("Too many open files")),
        "the server ran out of descriptors: {log:#?}"
    );
}

both!(
    ids_over_128_bytes_or_with_control_characters_are_invalid,
    long_topics_and_refs_are_refused,
);
