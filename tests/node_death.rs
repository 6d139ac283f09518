//! A node that dies (README "Many nodes (Redis)"), with real processes: two
//! `tutor-queue` binaries on one Redis (`support::binary`), node B killed (`kill -9`)
//! or paused past its 5 s deadline (SIGSTOP), node A left to notice. A tokenless
//! teacher dying with B gives its student on A back to the head of the queue, once
//! (PROTOCOL 6.2); a signed-in student dying with B is away and keeps its place (6.3);
//! a node paused past its deadline loses its users and, once it runs again, is fenced:
//! it closes its connections and exits with status 75. V1; skipped without a Redis
//! (failed under `CI=true`).

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tutor_queue::identity::Role;

use crate::keep_place::{drop_connection, join_replying, signed_in, signed_student, LONG};
use crate::support::binary::{RealServer, Signal};
use crate::support::redis::TestRedis;
use crate::support::*;

/// Bound for what the live node does about a dead one: B's deadline is 5 s after its
/// last tick, A ticks every second, then one script handles B's users.
const DEATH: Duration = Duration::from_secs(15);

/// The exit status of a fenced node (`src/main.rs`: "a supervisor's restart is a new
/// node").
const FENCED_EXIT: i32 = 75;

/// Nodes A and B of one deployment, real processes, and the Redis of the test's own
/// (if it has one), stopped after them.
struct RealNodes {
    a: RealServer,
    b: RealServer,
    _redis: Option<TestRedis>,
}

/// Two binaries started with `args` (and the test tokens) on the Redis
/// `TQ_TEST_REDIS_URL` names, in a deployment of their own, or else on a `redis-server`
/// of the test's own; None (after saying why) where there is none.
fn real_nodes(test: &str, args: &[&str]) -> Option<RealNodes> {
    let (url, redis) = match std::env::var("TQ_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let redis = TestRedis::start(test)?;
            (redis.url(), Some(redis))
        }
    };
    let deployment = format!("death-{:016x}", rand::random::<u64>());
    let node = || {
        args.iter()
            .fold(RealServer::builder(), |b, arg| b.arg(*arg))
            .test_tokens()
            .arg("--no-transcripts")
            .redis(&url, &deployment)
            .spawn()
    };
    let a = node();
    let b = node();
    Some(RealNodes {
        a,
        b,
        _redis: redis,
    })
}

/// The first `user:status` on `t` equal to `expected`, within [`DEATH`]; earlier
/// frames are dropped.
async fn status_after_death(t: &mut Client, expected: (u64, u64, u64, u64, u64), what: &str) {
    t.wait_match(
        |f| f.is("presence:teachers", "user:status") && status_tuple(&f.payload) == expected,
        &format!("user:status {expected:?}: {what}"),
        DEATH,
    )
    .await;
    t.clear();
}

/// A killed node's exit: by SIGKILL, not by itself.
fn killed(status: ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "node B killed: {status:?}");
}

// ----- 1. a tokenless teacher dies with its node -----

/// Teacher 1 (B, tokenless) chats with student 7 (A, tokenless); student 8 (A) waits
/// behind; teacher 2 is on A. B is killed: A declares it dead and teacher 1 vanishes
/// (6.2): student 7's chat channel on A is closed (`phx_close`), teacher 2 sees one
/// `user:status` with both students waiting, and its claims serve 7 (back at the head)
/// once, then 8.
async fn a_teacher_dying_with_its_node_requeues_its_student(framing: Framing) {
    let Some(mut nodes) = real_nodes("node death: a teacher's node killed", &[]) else {
        return;
    };
    let (a, b) = (nodes.a.server(), nodes.b.server());
    let (t1, t2, s7, s8) = (json!(1), json!(2), json!(7), json!(8));
    let mut tb = teacher(&b, framing, 1).await.named("teacher 1 on B");
    let mut ta = teacher(&a, framing, 2).await.named("teacher 2 on A");
    let mut seven = ready_student(&a, framing, 7).await.named("student 7 on A");
    let mut eight = ready_student(&a, framing, 8).await.named("student 8 on A");
    let cid = tb.claim_expect(&t1, &s7).await;
    enter_chat(&mut tb, &t1, &mut seven, &s7, &cid).await;
    settle(&mut ta, (2, 2, 1, 1, 0)).await;

    killed(nodes.b.sigkill().await);
    let topic = chat_topic(&cid);
    seven.wait_for(&topic, "phx_close", DEATH).await;
    seven.forget(&topic);
    status_after_death(
        &mut ta,
        (1, 2, 2, 0, 0),
        "teacher 1 gone, student 7 waiting",
    )
    .await;
    no_status(&mut ta, "node B's users handled: one user:status").await;
    seven
        .expect_no_event(&topic, "chat:terminated", Duration::ZERO)
        .await;

    let again = ta.claim_expect(&t2, &s7).await;
    assert_ne!(again, cid, "a new chat for student 7");
    let told = seven.wait_for(&student_topic(&s7), "new:chat", WAIT).await;
    assert_eq!(told.payload["id"], json!(again), "{}", told.raw);
    ta.claim_expect(&t2, &s8).await;
    eight.wait_for(&student_topic(&s8), "new:chat", WAIT).await;
    assert_eq!(
        ta.claim(&t2).await,
        None,
        "nobody left to claim: student 7 was requeued once"
    );
    seven
        .expect_no_event(&student_topic(&s7), "new:chat", SILENCE)
        .await;
}

// ----- 2. a signed-in student dies with its node: away, not gone -----

/// Signed-in student ana waits on B, tokenless student 9 behind her on B, then students
/// 8 and 10 on A; teacher 1 is on A. B is killed: 9 vanishes (the counts drop by one,
/// not two: ana is still waiting), and ana is away (6.3): a claim skips her and serves
/// 8. Ana signs in again on A: her join says `waiting`, and the next claim serves her,
/// before 10: her place was kept.
async fn a_signed_in_student_dying_with_its_node_keeps_her_place(framing: Framing) {
    let grace = LONG.as_secs().to_string();
    let Some(mut nodes) = real_nodes(
        "node death: a signed-in student's node killed",
        &["--reconnect-grace-s", &grace],
    ) else {
        return;
    };
    let (a, b) = (nodes.a.server(), nodes.b.server());
    let (t1, ana, s8, s10) = (json!(1), json!("ana"), json!(8), json!(10));
    let mut t = teacher(&a, framing, 1).await.named("teacher 1 on A");
    let _ana_on_b = signed_student(&b, framing, "ana")
        .await
        .named("student ana on B");
    let _nine = ready_student(&b, framing, 9).await.named("student 9 on B");
    let _eight = ready_student(&a, framing, 8).await.named("student 8 on A");
    let _ten = ready_student(&a, framing, 10)
        .await
        .named("student 10 on A");
    settle(&mut t, (1, 4, 4, 0, 0)).await;

    killed(nodes.b.sigkill().await);
    // Both of B's users are handled by the same script (one batch holds up to 100).
    status_after_death(&mut t, (1, 3, 3, 0, 0), "student 9 gone, ana still waiting").await;
    t.claim_expect(&t1, &s8).await;

    let mut back = signed_in(&a, framing, "ana", Role::Student)
        .await
        .named("student ana, back on A");
    join_replying(
        &mut back,
        &student_topic(&ana),
        student_params(&ana),
        json!({"state": "waiting"}),
    )
    .await;
    t.claim_expect(&t1, &ana).await;
    back.wait_for(&student_topic(&ana), "new:chat", WAIT).await;
    t.claim_expect(&t1, &s10).await;
}

// ----- 3. a node paused past its deadline is fenced -----

/// The reply status of `GET /healthz` on `port`, or None once nothing answers there
/// (the node is gone or going).
async fn healthz(port: u16) -> Option<u16> {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let head = String::from_utf8_lossy(&raw);
        head.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(WAIT, ask).await.ok().flatten()
}

/// `/healthz` on `port` every 20 ms until nothing answers there (at most `bound`):
/// the statuses it answered, in order.
async fn health_until_gone(port: u16, bound: Duration) -> Vec<u16> {
    let deadline = Instant::now() + bound;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match healthz(port).await {
            Some(status) => seen.push(status),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// Tokenless student 7 waits on B; teacher 1 is on A. B is paused (SIGSTOP) until A
/// has declared it dead: student 7 is gone from A's counts. B runs again (SIGCONT):
/// it is fenced: it closes student 7's connection (1001), `/healthz` never answers 200
/// once it has answered 503, and it exits by itself with status 75.
async fn a_node_paused_past_its_deadline_is_fenced(framing: Framing) {
    let Some(mut nodes) = real_nodes("node death: a node paused past its deadline", &[]) else {
        return;
    };
    let (a, b) = (nodes.a.server(), nodes.b.server());
    let mut t = teacher(&a, framing, 1).await.named("teacher 1 on A");
    let mut seven = ready_student(&b, framing, 7).await.named("student 7 on B");
    settle(&mut t, (1, 1, 1, 0, 0)).await;

    nodes.b.signal(Signal::STOP);
    let paused = Instant::now();
    status_after_death(
        &mut t,
        (1, 0, 0, 0, 0),
        "node B declared dead, student 7 gone",
    )
    .await;
    assert!(
        paused.elapsed() >= Duration::from_secs(3),
        "node B declared dead {:?} after its pause, before its 5 s deadline",
        paused.elapsed()
    );
    nodes.b.signal(Signal::CONT);

    let port = b.port;
    let health = tokio::spawn(health_until_gone(port, DEATH));
    let code = seven.wait_close(DEATH).await;
    assert_eq!(code, Some(1001), "a fenced node closes its connections");
    let status = nodes.b.wait_exit(DEATH).await;
    assert_eq!(
        status.code(),
        Some(FENCED_EXIT),
        "a fenced node exits with {FENCED_EXIT}: {status:?}; stderr: {:#?}",
        nodes.b.log()
    );
    let answers = health.await.expect("the /healthz poller");
    if let Some(first) = answers.iter().position(|&s| s == 503) {
        assert!(
            answers[first..].iter().all(|&s| s == 503),
            "/healthz of a fenced node answered 200 after 503: {answers:?}"
        );
    } else {
        eprintln!("node death: /healthz of the fenced node answered {answers:?} (no 503 caught before it exited)");
    }
    assert!(
        answers.iter().all(|&s| s == 200 || s == 503),
        "/healthz answered {answers:?}"
    );
}

// ----- 4. an away window run by a node that dies still ends -----

/// Signed-in student ana waits on B (grace window 4 s); teacher 1 is on A. Ana's
/// connection drops: she is away, and B runs her window. B is killed right after: her
/// window still ends (its end is kept in Redis, and A's tick ends it), so she leaves
/// the queue and teacher 1 sees the counts drop; she does not stay waiting for good.
async fn an_away_window_outlives_the_node_that_ran_it(framing: Framing) {
    let Some(mut nodes) = real_nodes(
        "node death: an away window of a node killed",
        &["--reconnect-grace-s", "4"],
    ) else {
        return;
    };
    let (a, b) = (nodes.a.server(), nodes.b.server());
    let mut t = teacher(&a, framing, 1).await.named("teacher 1 on A");
    let ana = signed_student(&b, framing, "ana")
        .await
        .named("student ana on B");
    settle(&mut t, (1, 1, 1, 0, 0)).await;
    drop_connection(b.port, ana).await;
    no_status(&mut t, "ana away: the counts do not change").await;

    killed(nodes.b.sigkill().await);
    status_after_death(&mut t, (1, 0, 0, 0, 0), "ana's window ended").await;
}

#[tokio::test]
async fn an_away_window_outlives_the_node_that_ran_it_v1() {
    an_away_window_outlives_the_node_that_ran_it(Framing::V1).await
}

#[tokio::test]
async fn a_teacher_dying_with_its_node_requeues_its_student_v1() {
    a_teacher_dying_with_its_node_requeues_its_student(Framing::V1).await
}

#[tokio::test]
async fn a_signed_in_student_dying_with_its_node_keeps_her_place_v1() {
    a_signed_in_student_dying_with_its_node_keeps_her_place(Framing::V1).await
}

#[tokio::test]
async fn a_node_paused_past_its_deadline_is_fenced_v1() {
    a_node_paused_past_its_deadline_is_fenced(Framing::V1).await
}
