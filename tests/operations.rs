//! Operations: `/healthz`, `/metrics`, and the limits (connections, inbound frame
//! rate), each checked for the client that crosses it and for everyone else.

use std::time::Duration;

use serde_json::json;
use tutor_queue::Config;

use crate::support::*;

async fn scrape(port: u16) -> String {
    let response = http_get(port, "/metrics").await;
    assert_eq!(response.status, 200);
    let kind = response.header("content-type");
    assert!(kind.contains("openmetrics-text"), "content-type {kind}");
    response.text()
}

#[tokio::test]
async fn healthz_answers_200() {
    let srv = start_default();
    let response = http_get(srv.port, "/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text().trim(), "ok");
}

async fn metrics_follow_a_chat(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    let _waiting = ready_student(&srv, framing, 8).await;
    let topic = chat_topic(&cid);
    for n in 0..3 {
        t.push(&topic, "teacher:send", json!({"message": n})).await;
        s.wait_for(&topic, "student:receive", WAIT).await;
    }
    s.push(&topic, "student:send", json!({"message": "thanks"}))
        .await;
    t.wait_for(&topic, "teacher:receive", WAIT).await;
    // One refusal, to be counted by reason.
    t.join("rooms:lobby", json!({}))
        .await
        .assert_error("unmatched topic");

    let during = scrape(srv.port).await;
    let label = match framing {
        Framing::V1 => "v1",
        Framing::V2 => "v2",
    };
    let connections = format!(r#"tutor_queue_connections{{framing="{label}"}}"#);
    assert_eq!(sample(&during, &connections), Some(3.0), "{during}");
    assert_eq!(
        sample(&during, "tutor_queue_relayed_messages_total"),
        Some(4.0)
    );
    assert_eq!(sample(&during, "tutor_queue_active_chats"), Some(1.0));
    assert_eq!(sample(&during, "tutor_queue_queue_length"), Some(1.0));
    assert_eq!(
        sample(&during, r#"tutor_queue_users_present{role="teacher"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&during, r#"tutor_queue_users_present{role="student"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &during,
            r#"tutor_queue_frames_rejected_total{reason="unmatched_topic"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&during, "tutor_queue_queue_wait_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        sample(&during, "tutor_queue_relay_latency_seconds_count"),
        Some(4.0)
    );
    assert_eq!(
        sample(&during, "tutor_queue_chats_completed_total"),
        Some(0.0)
    );

    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    let after = scrape(srv.port).await;
    assert_eq!(
        sample(&after, "tutor_queue_chats_completed_total"),
        Some(1.0)
    );
    assert_eq!(sample(&after, "tutor_queue_active_chats"), Some(0.0));
}

#[tokio::test]
async fn upgrades_past_the_connection_limit_get_503() {
    let srv = start(Config {
        max_connections: 2,
        ..Config::default()
    });
    let mut first = teacher(&srv, Framing::V2, 1).await;
    let second = student(&srv, Framing::V1, 7).await;
    match handshake(srv.port, "/ws", Framing::V1, None).await {
        Handshake::Refused(status) => assert_eq!(status, 503),
        Handshake::Ok(..) => panic!("a third connection was accepted with max_connections = 2"),
    }
    // The connections already open are untouched.
    first.heartbeat().await;
    let metrics = scrape(srv.port).await;
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="connection_limit"}"#
        ),
        Some(1.0)
    );
    // A place freed is a place to take.
    second.vanish();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match handshake(srv.port, "/ws", Framing::V1, None).await {
            Handshake::Ok(..) => break,
            Handshake::Refused(503) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Handshake::Refused(status) => panic!("still refused ({status}) after a close"),
        }
    }
}

async fn a_flood_closes_only_the_flooder_with_1008(framing: Framing) {
    let srv = start(Config {
        max_frames_per_sec: 20,
        frame_burst: 40,
        ..Config::default()
    });
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    let mut flooder = connect(&srv, framing).await.named("flooder");
    for _ in 0..200 {
        if !flooder.try_send_text(encode_heartbeat(framing)).await {
            break;
        }
    }
    flooder.expect_close_code(1008, "policy violation").await;

    // The chat next door goes on.
    let topic = chat_topic(&cid);
    t.push(&topic, "teacher:send", json!({"message": "still here"}))
        .await;
    let got = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(got.payload, json!({"message": "still here"}));
    let metrics = scrape(srv.port).await;
    assert_eq!(
        sample(
            &metrics,
            r#"tutor_queue_frames_rejected_total{reason="rate_limited"}"#
        ),
        Some(1.0)
    );
}

fn encode_heartbeat(framing: Framing) -> String {
    match framing {
        Framing::V1 => r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#.into(),
        Framing::V2 => r#"[null,"1","phoenix","heartbeat",{}]"#.into(),
    }
}

async fn a_client_within_the_rate_is_never_closed(framing: Framing) {
    let srv = start(Config {
        max_frames_per_sec: 20,
        frame_burst: 40,
        ..Config::default()
    });
    let mut c = connect(&srv, framing).await;
    // A burst under the bound, answered in full.
    for _ in 0..30 {
        c.heartbeat().await;
    }
    c.expect_silence(SILENCE).await;
    assert!(!c.is_closed());
}

both!(
    metrics_follow_a_chat,
    a_flood_closes_only_the_flooder_with_1008,
    a_client_within_the_rate_is_never_closed,
);
