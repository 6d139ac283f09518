//! The shared state out of reach (issue 13): while Redis does not answer, every step
//! a client asks for is refused at once with a clear `unavailable` error (no hang, no
//! `ok` for something that did not happen) and `/healthz` says why; when Redis answers
//! again the node serves again by itself; if Redis lost the state meanwhile, the node
//! notices (its epoch is gone) and closes its users' connections so they join again.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::redis::TestRedis;
use crate::support::*;

async fn an_unreachable_redis_gets_clear_errors_and_the_node_recovers(framing: Framing) {
    let Some(mut redis) = TestRedis::start("redis trouble") else {
        return;
    };
    let srv = start(Config {
        redis_url: Some(redis.url()),
        redis_deployment: "trouble".to_owned(),
        ..Config::default()
    });
    let mut t = teacher(&srv, framing, 1).await;
    let mut s = student(&srv, framing, 7).await;
    assert_eq!(http_get(srv.port, "/healthz").await.status, 200);

    redis.stop();
    let asked = Instant::now();
    s.call(&student_topic(&json!(7)), "student:ready", json!({}))
        .await
        .assert_error("unavailable");
    t.call("presence:teachers", "claim:student", json!({}))
        .await
        .assert_error("unavailable");
    let mut late = connect(&srv, framing).await.named("late student");
    late.join(&student_topic(&json!(8)), student_params(&json!(8)))
        .await
        .assert_error("unavailable");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "the refusals took {:?}",
        asked.elapsed()
    );
    let health = http_get(srv.port, "/healthz").await;
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(health.text().contains("redis"), "{}", health.text());

    // Redis comes back empty (it kept nothing): the node reconnects by itself, finds
    // the deployment's state reset at its first step, and closes its users'
    // connections so they join again rather than act on what it believed.
    redis.restart();
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = late
            .join(&student_topic(&json!(8)), student_params(&json!(8)))
            .await;
        if reply.status() == "ok" {
            break;
        }
        reply.assert_error("unavailable");
        assert!(Instant::now() < deadline, "the node did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http_get(srv.port, "/healthz").await.status, 200);
    assert_eq!(
        t.wait_close(WAIT).await,
        Some(1001),
        "the teacher must join again"
    );
    assert_eq!(
        s.wait_close(WAIT).await,
        Some(1001),
        "the student must join again"
    );
    late.ready(&json!(8)).await;
    let mut t2 = teacher(&srv, framing, 2).await;
    t2.claim_expect(&json!(2), &json!(8)).await;
}

crate::both!(an_unreachable_redis_gets_clear_errors_and_the_node_recovers);
