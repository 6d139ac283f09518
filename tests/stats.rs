//! The statistics of issue 14 (`GET /api/stats`) through the real server: who may
//! read them (a teacher or an admin; a student 403, no token 401, a bad `since`
//! 400); the figures of real chats run over WebSockets (chats per teacher, busiest
//! hours, a finished chat's length, the live counts, the queue length samples);
//! waits known in advance (written through the server's own store with their line
//! times) give the median and p90 and respect `since`; and on two nodes of one
//! deployment, whichever node is asked answers with the chats of both.
//!
//! Runs on the in-memory engine, or on Redis with `TQ_TEST_ENGINE=redis
//! TQ_TEST_REDIS_URL=...` (each server in a deployment of its own). The two-node
//! test uses `TQ_TEST_REDIS_URL` if set, else a `redis-server` of its own (skipped
//! without one, failed under `CI=true`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tutor_queue::domain::{ChatId, StudentKey, TeacherKey, UserKey};
use tutor_queue::identity::Role;
use tutor_queue::transcripts::{ChatOpening, EndReason};
use tutor_queue::Transcripts;

use crate::support::auth::{admin_token, http_get_as, test_keys, token_for};
use crate::support::redis::TestRedis;
use crate::support::{
    chat_topic, enter_chat, http_get, ready_student, start_chat, status_tuple, teacher, Config,
    Framing, Server, WAIT,
};
use crate::transcripts::{start_server, Running};

/// A server recording into `dir`, taking the test tokens, sampling the queue
/// every 50 ms; on Redis when the suite runs there (`TQ_TEST_ENGINE=redis`).
fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        tokens: Some(test_keys()),
        queue_sample_every: Duration::from_millis(50),
        ..Config::default()
    };
    if std::env::var("TQ_TEST_ENGINE").is_ok_and(|e| e == "redis") {
        let url =
            std::env::var("TQ_TEST_REDIS_URL").expect("TQ_TEST_REDIS_URL for TQ_TEST_ENGINE=redis");
        config.redis_url = Some(url);
        config.redis_deployment = format!("stats-{:016x}", rand::random::<u64>());
    }
    config
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

fn teacher_key(id: &str) -> TeacherKey {
    TeacherKey(UserKey::new(id).expect("key").in_namespace(true))
}

fn student_key(id: &str) -> StudentKey {
    StudentKey(UserKey::new(id).expect("key").in_namespace(true))
}

/// A finished chat of `teacher` written straight into `store`: its student got
/// in line at `created - wait`, and it lasted `length` ms after its start.
pub(crate) fn recorded_chat(
    store: &Transcripts,
    teacher: &str,
    created: i64,
    wait: i64,
    length: i64,
) {
    let chat = ChatId::random(&mut rand::rng());
    let opening = ChatOpening {
        question: Some("how?".to_owned()),
        queued_at: Some(at(created - wait)),
    };
    let student = format!("student-of-{teacher}-{created}");
    store.chat_created(
        chat,
        &teacher_key(teacher),
        &student_key(&student),
        at(created),
        opening,
    );
    store.chat_started(chat, at(created + 100));
    store.chat_finished(
        chat,
        EndReason::Terminated,
        at(created + 100 + length),
        || {},
    );
}

/// `GET path` with `token`: the status and the JSON body.
async fn get(port: u16, path: &str, token: &str) -> (u16, Value) {
    let response = http_get_as(port, path, token).await;
    let body = response.text();
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (response.status, value)
}

/// The statistics as an admin sees them.
async fn stats(port: u16, path: &str) -> Value {
    let (status, body) = get(port, path, &admin_token()).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Asks `path` until `done` holds for the answer (the store commits a little
/// later than the frames go out; the sampler samples now and then).
async fn stats_until(port: u16, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = stats(port, path).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen in {WAIT:?}; last answer {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn per_teacher(body: &Value) -> Vec<(String, u64)> {
    body["per_teacher"]
        .as_array()
        .expect("per_teacher")
        .iter()
        .map(|t| {
            let id = t["teacher"].as_str().expect("teacher id").to_owned();
            (id, t["chats"].as_u64().expect("chats"))
        })
        .collect()
}

fn hours_total(body: &Value) -> u64 {
    let hours = body["busiest_hours"].as_array().expect("busiest_hours");
    assert_eq!(hours.len(), 24, "one entry per hour: {body}");
    for (i, hour) in hours.iter().enumerate() {
        assert_eq!(hour["hour"], i, "in hour order: {body}");
    }
    hours.iter().map(|h| h["chats"].as_u64().expect("n")).sum()
}

#[tokio::test]
async fn only_teachers_and_admins_read_the_statistics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(config(&dir));
    let port = srv.port;

    let none = http_get(port, "/api/stats").await;
    assert_eq!(none.status, 401, "{}", none.text());
    assert_eq!(none.header("www-authenticate"), "Bearer");
    let forged = http_get_as(port, "/api/stats", "not.a.token").await;
    assert_eq!(forged.status, 401, "{}", forged.text());
    let (status, body) = get(port, "/api/stats", &token_for("sam", Role::Student)).await;
    assert_eq!(status, 403, "a student: {body}");
    assert!(body["error"].is_string(), "{body}");

    for token in [token_for("tess", Role::Teacher), admin_token()] {
        let (status, body) = get(port, "/api/stats", &token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["chats"], 0);
        assert_eq!(body["wait_ms"], json!({"median": null, "p90": null}));
        assert_eq!(body["chat_length_ms"], json!({"median": null}));
        assert_eq!(body["per_teacher"], json!([]));
        assert_eq!(hours_total(&body), 0);
        assert_eq!(
            body["live"],
            json!({"waiting": 0, "chatting": 0, "teachers": 0})
        );
        // Seven days back by default.
        let (since, until) = (
            body["since"].as_i64().expect("since"),
            body["until"].as_i64().expect("until"),
        );
        assert_eq!(until - since, 7 * 24 * 3600 * 1000, "{body}");
        assert!(body["queue_length"].is_array(), "{body}");
    }
    for bad in ["-1", "abc", "1.5", "%2B1", "99999999999999999999999"] {
        let path = format!("/api/stats?since={bad}");
        let (status, body) = get(port, &path, &admin_token()).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, _) = get(port, "/api/stats?since=1&since=2", &admin_token()).await;
    assert_eq!(status, 400, "since given twice");
    let (status, body) = get(port, "/api/stats?since=0", &admin_token()).await;
    assert_eq!((status, body["since"].clone()), (200, json!(0)));
}

/// Waits known in advance: the median and p90 (nearest rank) of the chats since
/// `since`, their lengths, the histogram; older chats left out.
#[tokio::test]
async fn waits_and_lengths_of_the_chats_since() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(config(&dir));
    let store = &srv.transcripts;
    let now = now_ms();
    let minute = 60_000;
    // Five chats in the last hour, waits out of order.
    for (i, (wait, length)) in [
        (4_000, 60_000),
        (1_000, 180_000),
        (45_000, 120_000),
        (2_000, 240_000),
        (3_000, 300_000),
    ]
    .into_iter()
    .enumerate()
    {
        let teacher = if i % 2 == 0 { "ann" } else { "bob" };
        recorded_chat(
            store,
            teacher,
            now - 50 * minute + i as i64 * minute,
            wait,
            length,
        );
    }
    // Two days ago, and eight days ago (outside the default week).
    recorded_chat(store, "cy", now - 2 * 24 * 60 * minute, 999_999, 1);
    recorded_chat(store, "cy", now - 8 * 24 * 60 * minute, 5, 5);
    store.flush_async().await;

    let day_ago = now - 24 * 60 * minute;
    let body = stats(srv.port, &format!("/api/stats?since={day_ago}")).await;
    assert_eq!(body["since"], day_ago);
    assert_eq!(body["chats"], 5, "{body}");
    // Sorted: 1000, 2000, 3000, 4000, 45000.
    assert_eq!(body["wait_ms"], json!({"median": 3_000, "p90": 45_000}));
    assert_eq!(body["chat_length_ms"], json!({"median": 180_000}));
    assert_eq!(
        per_teacher(&body),
        [("ann".to_owned(), 3), ("bob".to_owned(), 2)]
    );
    assert_eq!(hours_total(&body), 5);
    let histogram = body["wait_histogram"].as_array().expect("wait_histogram");
    assert_eq!(
        histogram[0],
        json!({"from_ms": 0, "to_ms": 30_000, "chats": 4})
    );
    assert_eq!(
        histogram[1],
        json!({"from_ms": 30_000, "to_ms": 60_000, "chats": 1})
    );

    // The default week takes the chat of two days ago too, not the older one.
    let week = stats(srv.port, "/api/stats").await;
    assert_eq!(week["chats"], 6, "{week}");
    assert_eq!(week["wait_ms"], json!({"median": 3_000, "p90": 999_999}));
    assert_eq!(per_teacher(&week)[2], ("cy".to_owned(), 1));
    let all = stats(srv.port, "/api/stats?since=0").await;
    assert_eq!(all["chats"], 7, "{all}");
    let future = stats(srv.port, &format!("/api/stats?since={}", now + 3_600_000)).await;
    assert_eq!(future["chats"], 0);
    assert_eq!(future["wait_ms"]["median"], Value::Null);
}

/// Real chats over WebSockets: teacher 1 takes two, teacher 2 one, one ends, a
/// fourth student waits. The statistics count them per teacher, the ended one's
/// length, the live counts, and the queue length samples see the waiting student.
async fn real_chats_are_counted(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = start_server(config(&dir));
    let srv = Server { port: running.port };
    let t1 = json!(1);

    let (mut teacher_1, mut s11, first) = start_chat(&srv, framing, 1, 11).await;
    let mut s12 = ready_student(&srv, framing, 12).await;
    let second = teacher_1.claim_expect(&t1, &json!(12)).await;
    enter_chat(&mut teacher_1, &t1, &mut s12, &json!(12), &second).await;
    let (_teacher_2, _s13, _third) = start_chat(&srv, framing, 2, 13).await;
    let _s14 = ready_student(&srv, framing, 14).await;
    // Teacher 1 ends the first chat.
    let topic = chat_topic(&first);
    teacher_1
        .call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s11.wait_for(&topic, "chat:terminated", WAIT).await;
    teacher_1
        .wait_match(
            |f| {
                f.is("presence:teachers", "user:status")
                    && status_tuple(&f.payload) == (2, 4, 1, 2, 1)
            },
            "user:status: 1 waiting, 2 chatting, 1 finished",
            WAIT,
        )
        .await;

    let body = stats_until(
        srv.port,
        "/api/stats",
        "three chats, one finished, one student waiting in the samples",
        |body| {
            body["chats"] == 3
                && body["chat_length_ms"]["median"].is_i64()
                && body["queue_length"]
                    .as_array()
                    .and_then(|samples| samples.last())
                    .is_some_and(|last| last["waiting"] == 1)
        },
    )
    .await;
    assert_eq!(
        per_teacher(&body),
        [("1".to_owned(), 2), ("2".to_owned(), 1)],
        "most first: {body}"
    );
    assert_eq!(hours_total(&body), 3);
    assert!(body["chat_length_ms"]["median"].as_i64().expect("n") >= 0);
    assert_eq!(
        body["live"],
        json!({"waiting": 1, "chatting": 2, "teachers": 2}),
        "{body}"
    );
    let samples = body["queue_length"].as_array().expect("samples");
    assert!(samples.len() <= 360, "at most 6 hours of minutes");
    let times: Vec<i64> = samples
        .iter()
        .map(|s| s["at"].as_i64().expect("at"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    for field in ["median", "p90"] {
        let wait = &body["wait_ms"][field];
        assert!(
            wait.is_null() || wait.as_i64().is_some_and(|w| w >= 0),
            "{body}"
        );
    }
}

both!(real_chats_are_counted);

/// Two nodes of one deployment, a store each: known waits recorded on both are
/// merged (median and p90 over all of them, whichever node is asked); then a real
/// chat claimed on each node is counted by both nodes' answers.
async fn two_nodes_answer_for_both(framing: Framing) {
    let (url, _redis) = match std::env::var("TQ_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => match TestRedis::start("stats: two nodes answer for both") {
            Some(redis) => (redis.url(), Some(redis)),
            None => return,
        },
    };
    let deployment = format!("stats-nodes-{:016x}", rand::random::<u64>());
    let dirs = [(); 2].map(|()| tempfile::tempdir().expect("temp dir"));
    let [a, b]: [Running; 2] = [0, 1].map(|i| {
        start_server(Config {
            redis_url: Some(url.clone()),
            redis_deployment: deployment.clone(),
            ..config(&dirs[i])
        })
    });
    let now = now_ms();
    // Waits 1, 3 and 5 s on A; 2 and 4 s on B: sorted 1..5, median 3 s, p90 5 s.
    for (i, wait) in [1_000, 3_000, 5_000].into_iter().enumerate() {
        recorded_chat(
            &a.transcripts,
            "on-a",
            now - 60_000 + i as i64,
            wait,
            10_000,
        );
    }
    for (i, wait) in [2_000, 4_000].into_iter().enumerate() {
        recorded_chat(
            &b.transcripts,
            "on-b",
            now - 30_000 + i as i64,
            wait,
            20_000,
        );
    }
    a.transcripts.flush_async().await;
    b.transcripts.flush_async().await;
    for (node, port) in [("A", a.port), ("B", b.port)] {
        // A node answers for the nodes it knows alive: right after the start,
        // that may be itself alone.
        let body = stats_until(port, "/api/stats", "the chats of both nodes", |body| {
            body["chats"] == 5
        })
        .await;
        assert_eq!(
            body["wait_ms"],
            json!({"median": 3_000, "p90": 5_000}),
            "asked on {node}"
        );
        assert_eq!(body["chat_length_ms"], json!({"median": 10_000}));
        assert_eq!(
            per_teacher(&body),
            [("on-a".to_owned(), 3), ("on-b".to_owned(), 2)],
            "asked on {node}"
        );
    }

    // A real chat claimed on each node: each is recorded where it was claimed.
    let (node_a, node_b) = (Server { port: a.port }, Server { port: b.port });
    let _on_a = start_chat(&node_a, framing, 21, 31).await;
    let _student_on_a = ready_student(&node_a, framing, 32).await;
    let mut teacher_on_b = teacher(&node_b, framing, 22).await;
    let cid = teacher_on_b.claim_expect(&json!(22), &json!(32)).await;
    assert!(!cid.is_empty());
    for (node, port) in [("A", a.port), ("B", b.port)] {
        let body = stats_until(port, "/api/stats", "both real chats", |body| {
            body["chats"] == 7 && body["live"]["chatting"] == 2
        })
        .await;
        let counted = per_teacher(&body);
        for teacher in ["21", "22"] {
            assert!(
                counted.contains(&(teacher.to_owned(), 1)),
                "asked on {node}, teacher {teacher}'s chat: {body}"
            );
        }
        assert_eq!(
            body["live"],
            json!({"waiting": 0, "chatting": 2, "teachers": 2}),
            "the deployment's live counts, asked on {node}"
        );
    }
}

both!(two_nodes_answer_for_both);
