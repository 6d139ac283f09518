//! The office-hours extensions (issue 14, PROTOCOL 9): a student's question, the
//! waiting list teachers watch (`waitingList`), the estimated wait in
//! `queue:position`, the queue closed and opened, and announcements (`queueState`).
//! Each is checked for what a client that asks sees, and for a client that does not
//! ask seeing nothing new. V1 and V2; in memory and (TQ_TEST_ENGINE=redis) on Redis.
//! Across two nodes: `nodes::office_hours_hold_across_nodes`.

use serde_json::{json, Value};
use tutor_queue::identity::Role;

use crate::keep_place::{drop_connection, opting, signed_in, signed_student, LONG};
use crate::support::auth::{admin_token, test_keys, transcript_as};
use crate::support::nodes::two_nodes;
use crate::support::*;

fn with_tokens() -> Config {
    Config {
        tokens: Some(test_keys()),
        ..Config::default()
    }
}

/// A teacher on `presence:teachers` that asked for `flags`.
pub(crate) async fn teacher_asking(
    srv: &Server,
    framing: Framing,
    tid: u64,
    flags: &[&str],
) -> Client {
    let tid = json!(tid);
    let mut t = connect(srv, framing).await.named(format!("teacher {tid}"));
    t.join_ok("presence:teachers", opting(teacher_params(&tid), flags))
        .await;
    t
}

/// A student on its presence topic that asked for `flags` (not ready yet).
pub(crate) async fn student_asking(
    srv: &Server,
    framing: Framing,
    sid: u64,
    flags: &[&str],
) -> Client {
    let sid = json!(sid);
    let mut s = connect(srv, framing).await.named(format!("student {sid}"));
    s.join_ok(&student_topic(&sid), opting(student_params(&sid), flags))
        .await;
    s
}

/// `student:ready` with `payload` (its userId added); the reply.
pub(crate) async fn ready_with(s: &mut Client, sid: u64, payload: Value) -> Frame {
    let mut payload = payload;
    payload["userId"] = json!(sid);
    s.call(&student_topic(&json!(sid)), "student:ready", payload)
        .await
}

/// Waits for a `queue:waiting` that `pred` accepts; its payload.
pub(crate) async fn waiting_list(
    t: &mut Client,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    t.wait_match(
        |f| f.is("presence:teachers", "queue:waiting") && pred(&f.payload),
        &format!("queue:waiting {what}"),
        WAIT,
    )
    .await
    .payload
}

/// The ids and questions of a waiting list, in order.
pub(crate) fn lines(list: &Value) -> Vec<(Value, Value, Value)> {
    list["students"]
        .as_array()
        .map(|students| {
            students
                .iter()
                .map(|s| {
                    (
                        s["id"].clone(),
                        s["question"].clone(),
                        s["position"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_ok(reply: &Frame, response: Value) {
    assert_eq!(
        reply.payload,
        json!({"status": "ok", "response": response}),
        "{}",
        reply.raw
    );
}

fn assert_error(reply: &Frame, response: Value) {
    assert_eq!(
        reply.payload,
        json!({"status": "error", "response": response}),
        "{}",
        reply.raw
    );
}

async fn teachers_who_ask_see_who_waits_and_why(framing: Framing) {
    let srv = start_default();
    let mut watcher = teacher_asking(&srv, framing, 1, &["waitingList"]).await;
    let first = waiting_list(&mut watcher, "empty", |_| true).await;
    assert_eq!(first, json!({"students": [], "total": 0}));

    let before = now_ms();
    let mut ana = student_asking(&srv, framing, 11, &[]).await;
    assert_ok(
        &ready_with(
            &mut ana,
            11,
            json!({"question": "  limits of sequences?  "}),
        )
        .await,
        json!({}),
    );
    let list = waiting_list(&mut watcher, "with Ana", |l| l["total"] == 1).await;
    assert_eq!(
        lines(&list),
        [(json!(11), json!("limits of sequences?"), json!(1))]
    );
    let line = &list["students"][0];
    assert_eq!(line["name"], Value::Null, "a tokenless student has no name");
    let since = line["since"].as_u64().expect("since: unix ms");
    assert!(since >= before && since <= now_ms(), "{since}");

    let mut ben = student_asking(&srv, framing, 12, &[]).await;
    assert_ok(&ready_with(&mut ben, 12, json!({})).await, json!({}));
    let list = waiting_list(&mut watcher, "with Ben", |l| l["total"] == 2).await;
    assert_eq!(
        lines(&list),
        [
            (json!(11), json!("limits of sequences?"), json!(1)),
            (json!(12), Value::Null, json!(2)),
        ]
    );

    // Ana asks something else: same place, same time, new question.
    assert_ok(
        &ready_with(&mut ana, 11, json!({"question": "series, actually"})).await,
        json!({}),
    );
    let list = waiting_list(&mut watcher, "Ana's new question", |l| {
        l["students"][0]["question"] == "series, actually"
    })
    .await;
    assert_eq!(list["students"][0]["since"], since);
    assert_eq!(list["students"][0]["position"], 1);

    // The claim stays FIFO; the list follows.
    let mut taker = teacher(&srv, framing, 2).await;
    taker.claim_expect(&json!(2), &json!(11)).await;
    let list = waiting_list(&mut watcher, "after the claim", |l| l["total"] == 1).await;
    assert_eq!(lines(&list), [(json!(12), Value::Null, json!(1))]);

    // A teacher that did not ask saw none of it.
    taker
        .expect_no_event("presence:teachers", "queue:waiting", SILENCE)
        .await;
}

async fn a_signed_in_student_is_listed_by_name(framing: Framing) {
    let srv = start(with_tokens());
    let mut watcher = teacher_asking(&srv, framing, 1, &["waitingList"]).await;
    let mut zoe = signed_in(&srv, framing, "zoe", Role::Student).await;
    zoe.join_ok(&student_topic(&json!("zoe")), student_params(&json!("zoe")))
        .await;
    let reply = zoe
        .call(
            &student_topic(&json!("zoe")),
            "student:ready",
            json!({"question": "proofs"}),
        )
        .await;
    assert_ok(&reply, json!({}));
    let list = waiting_list(&mut watcher, "with Zoe", |l| l["total"] == 1).await;
    assert_eq!(list["students"][0]["name"], "zoe");
    assert_eq!(list["students"][0]["question"], "proofs");
}

async fn a_question_past_the_limit_is_refused(framing: Framing) {
    let srv = start_default();
    let mut watcher = teacher_asking(&srv, framing, 1, &["waitingList"]).await;
    waiting_list(&mut watcher, "empty", |l| l["total"] == 0).await;
    let mut s = student_asking(&srv, framing, 5, &[]).await;
    let reply = ready_with(&mut s, 5, json!({"question": "é".repeat(501)})).await;
    assert_error(&reply, json!({"reason": "question too long", "limit": 500}));
    let reply = ready_with(&mut s, 5, json!({"question": 42})).await;
    assert_error(&reply, json!({"reason": "invalid payload"}));
    watcher
        .expect_no_event("presence:teachers", "queue:waiting", SILENCE)
        .await;
    // Exactly at the limit (after trimming) is fine.
    let question = format!("  {}  ", "é".repeat(500));
    assert_ok(
        &ready_with(&mut s, 5, json!({ "question": question })).await,
        json!({}),
    );
    let list = waiting_list(&mut watcher, "the student in line", |l| l["total"] == 1).await;
    assert_eq!(list["students"][0]["question"], "é".repeat(500));
}

async fn the_estimated_wait_follows_the_claims(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    // Two claims are not a rate yet.
    let mut served = Vec::new();
    for sid in [1, 2] {
        served.push(ready_student(&srv, framing, sid).await);
        t.claim_expect(&json!(1), &json!(sid)).await;
    }
    let mut early = student_asking(&srv, framing, 50, &["queuePosition"]).await;
    let first = position(&mut early, 50, Value::Null).await;
    assert_eq!(first["eta_s"], Value::Null);
    early.ready(&json!(50)).await;
    let notice = position(&mut early, 50, json!(1)).await;
    assert_eq!(notice["eta_s"], Value::Null, "two claims: no estimate");

    // The third claim gives a rate: three claims within a minute count as
    // three a minute, so the second in line is about 40 s away.
    t.claim_expect(&json!(1), &json!(50)).await;
    let _ahead = ready_student(&srv, framing, 4).await;
    let mut watcher = student_asking(&srv, framing, 100, &["queuePosition"]).await;
    watcher.ready(&json!(100)).await;
    let notice = position(&mut watcher, 100, json!(2)).await;
    assert_eq!(notice["eta_s"], 40, "{notice}");
}

async fn a_closed_queue_turns_new_students_away_and_keeps_those_in_line(framing: Framing) {
    let srv = start(with_tokens());
    let mut staff = teacher_asking(&srv, framing, 1, &["queueState"]).await;
    let state = staff
        .wait_for("presence:teachers", "queue:state", WAIT)
        .await;
    assert_eq!(state.payload, json!({"open": true, "message": null}));
    let mut ana = student_asking(&srv, framing, 11, &["queueState"]).await;
    ana.wait_for(&student_topic(&json!(11)), "queue:state", WAIT)
        .await;
    ana.ready(&json!(11)).await;
    let mut plain = ready_student(&srv, framing, 12).await;

    let reply = staff
        .call(
            "presence:teachers",
            "queue:close",
            json!({"message": "Back at 3pm"}),
        )
        .await;
    assert_ok(&reply, json!({"open": false, "message": "Back at 3pm"}));
    for c in [&mut staff, &mut ana] {
        let topic = match c.name.starts_with("teacher") {
            true => "presence:teachers".to_owned(),
            false => student_topic(&json!(11)),
        };
        let state = c.wait_for(&topic, "queue:state", WAIT).await;
        assert_eq!(
            state.payload,
            json!({"open": false, "message": "Back at 3pm"})
        );
    }
    // Nobody new gets in line; those in line stay (a repeated ready keeps its place).
    let mut late = student_asking(&srv, framing, 13, &[]).await;
    let reply = ready_with(&mut late, 13, json!({})).await;
    assert_error(
        &reply,
        json!({"reason": "queue closed", "message": "Back at 3pm"}),
    );
    ana.ready(&json!(11)).await;
    let mut taker = teacher(&srv, framing, 2).await;
    taker.claim_expect(&json!(2), &json!(11)).await;
    taker.claim_expect(&json!(2), &json!(12)).await;
    assert_eq!(
        taker.claim(&json!(2)).await,
        None,
        "the closed-out student is not in line"
    );
    plain
        .expect_no_event(&student_topic(&json!(12)), "queue:state", SILENCE)
        .await;

    // Open again: in line at once.
    let reply = staff
        .call("presence:teachers", "queue:open", json!({}))
        .await;
    assert_ok(&reply, json!({"open": true, "message": null}));
    late.ready(&json!(13)).await;
    taker.claim_expect(&json!(2), &json!(13)).await;
}

async fn announcements_reach_those_who_asked(framing: Framing) {
    let srv = start(with_tokens());
    let mut staff = signed_in(&srv, framing, "ms-lee", Role::Teacher).await;
    staff
        .join_ok(
            "presence:teachers",
            opting(teacher_params(&json!("ms-lee")), &["queueState"]),
        )
        .await;
    let mut other = teacher_asking(&srv, framing, 2, &["queueState"]).await;
    let mut ana = student_asking(&srv, framing, 11, &["queueState"]).await;
    ana.ready(&json!(11)).await;
    let mut plain_student = ready_student(&srv, framing, 12).await;
    let mut plain_teacher = teacher(&srv, framing, 3).await;

    let before = now_ms();
    let reply = staff
        .call(
            "presence:teachers",
            "queue:announce",
            json!({"message": " Running 10 minutes late "}),
        )
        .await;
    assert_ok(&reply, json!({}));
    for (c, topic) in [
        (&mut staff, "presence:teachers".to_owned()),
        (&mut other, "presence:teachers".to_owned()),
        (&mut ana, student_topic(&json!(11))),
    ] {
        let heard = c.wait_for(&topic, "queue:announcement", WAIT).await;
        assert_eq!(heard.payload["message"], "Running 10 minutes late");
        assert_eq!(heard.payload["from"], "ms-lee");
        let at = heard.payload["at"].as_u64().expect("at: unix ms");
        assert!(at >= before && at <= now_ms());
    }
    plain_student
        .expect_no_event(&student_topic(&json!(12)), "queue:announcement", SILENCE)
        .await;
    plain_teacher
        .expect_no_event("presence:teachers", "queue:announcement", SILENCE)
        .await;

    let reply = staff
        .call(
            "presence:teachers",
            "queue:announce",
            json!({"message": "  "}),
        )
        .await;
    assert_error(&reply, json!({"reason": "message missing"}));
    let reply = staff
        .call(
            "presence:teachers",
            "queue:announce",
            json!({"message": "x".repeat(501)}),
        )
        .await;
    assert_error(&reply, json!({"reason": "message too long", "limit": 500}));
    // Students cannot announce, nor close the queue.
    let reply = ana
        .call(&student_topic(&json!(11)), "queue:close", json!({}))
        .await;
    assert_error(&reply, json!({"reason": "unknown event"}));
}

/// Announcements and queue changes reach everyone waiting: a teacher gets five
/// within ten seconds, then `too frequent`, and nobody hears the sixth.
async fn a_teacher_cannot_flood_those_waiting(framing: Framing) {
    let srv = start_default();
    let mut staff = teacher_asking(&srv, framing, 1, &[]).await;
    let mut ana = student_asking(&srv, framing, 11, &["queueState"]).await;
    ana.wait_for(&student_topic(&json!(11)), "queue:state", WAIT)
        .await;
    for n in 1..=4 {
        let reply = staff
            .call(
                "presence:teachers",
                "queue:announce",
                json!({ "message": format!("announcement {n}") }),
            )
            .await;
        assert_ok(&reply, json!({}));
    }
    let reply = staff
        .call("presence:teachers", "queue:close", json!({}))
        .await;
    assert_ok(&reply, json!({"open": false, "message": null}));
    let reply = staff
        .call(
            "presence:teachers",
            "queue:announce",
            json!({"message": "sixth"}),
        )
        .await;
    assert_error(&reply, json!({"reason": "too frequent"}));
    let reply = staff
        .call("presence:teachers", "queue:open", json!({}))
        .await;
    assert_error(&reply, json!({"reason": "too frequent"}));
    let heard = ana.take_all(|f| f.is(&student_topic(&json!(11)), "queue:announcement"));
    let mut heard = heard.len();
    while heard < 4 {
        ana.wait_for(&student_topic(&json!(11)), "queue:announcement", WAIT)
            .await;
        heard += 1;
    }
    ana.expect_no_event(&student_topic(&json!(11)), "queue:announcement", SILENCE)
        .await;
    // Another teacher is not held back by the first one.
    let mut other = teacher_asking(&srv, framing, 2, &[]).await;
    let reply = other
        .call("presence:teachers", "queue:open", json!({}))
        .await;
    assert_ok(&reply, json!({"open": true, "message": null}));
}

/// A token student whose connection drops keeps its place (PROTOCOL 6.3):
/// listed as away, then back.
async fn an_away_student_is_listed_as_away(framing: Framing) {
    let srv = start(Config {
        reconnect_grace: LONG,
        ..with_tokens()
    });
    let mut watcher = teacher_asking(&srv, framing, 1, &["waitingList"]).await;
    let amy = signed_student(&srv, framing, "amy").await;
    let list = waiting_list(&mut watcher, "Amy in line", |l| l["total"] == 1).await;
    assert_eq!(list["students"][0].get("away"), None);
    drop_connection(srv.port, amy).await;
    let list = waiting_list(&mut watcher, "Amy away", |l| {
        l["students"][0]["away"] == true
    })
    .await;
    assert_eq!(list["total"], 1, "her place is kept");
    let mut amy = signed_in(&srv, framing, "amy", Role::Student).await;
    amy.join_ok(&student_topic(&json!("amy")), student_params(&json!("amy")))
        .await;
    let list = waiting_list(&mut watcher, "Amy back", |l| {
        l["total"] == 1 && l["students"][0].get("away").is_none()
    })
    .await;
    assert_eq!(list["students"][0]["position"], 1);
}

async fn the_question_is_kept_with_the_chat(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start(Config {
        data_dir: dir.path().to_owned(),
        ..with_tokens()
    });
    let mut t = teacher(&srv, framing, 1).await;
    let mut s = student_asking(&srv, framing, 7, &[]).await;
    let before = now_ms();
    assert_ok(
        &ready_with(&mut s, 7, json!({"question": "why is 0.999… = 1?"})).await,
        json!({}),
    );
    let cid = t.claim_expect(&json!(1), &json!(7)).await;
    enter_chat(&mut t, &json!(1), &mut s, &json!(7), &cid).await;
    let (chat, _) = transcript_as(srv.port, &cid, &admin_token()).await;
    assert_eq!(chat["question"], "why is 0.999… = 1?");
    let queued_at = chat["queued_at"].as_u64().expect("queued_at");
    let created_at = chat["created_at"].as_u64().expect("created_at");
    assert!(before <= queued_at && queued_at <= created_at, "{chat}");

    // A student who asked nothing: null.
    let mut plain = ready_student(&srv, framing, 8).await;
    let cid = t.claim_expect(&json!(1), &json!(8)).await;
    enter_chat(&mut t, &json!(1), &mut plain, &json!(8), &cid).await;
    let (chat, _) = transcript_as(srv.port, &cid, &admin_token()).await;
    assert_eq!(chat["question"], Value::Null);
    assert!(chat["queued_at"].as_u64().is_some(), "{chat}");
}

/// Two nodes on one Redis serve office hours as one: a question asked on A is on
/// the waiting list of a teacher on B, claims on A set the estimated wait of a
/// student on B, the queue closed on A turns a student on B away, and an
/// announcement made on B reaches a student on A.
async fn office_hours_hold_across_nodes(framing: Framing) {
    let Some(nodes) = two_nodes("office hours on two nodes", with_tokens()) else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let mut watcher = teacher_asking(b, framing, 1, &["waitingList", "queueState"]).await;
    waiting_list(&mut watcher, "empty", |l| l["total"] == 0).await;
    watcher
        .wait_for("presence:teachers", "queue:state", WAIT)
        .await;

    let mut ana = student_asking(a, framing, 11, &["queueState"]).await;
    assert_ok(
        &ready_with(&mut ana, 11, json!({"question": "eigenvalues"})).await,
        json!({}),
    );
    let list = waiting_list(&mut watcher, "Ana, asked on A", |l| l["total"] == 1).await;
    assert_eq!(lines(&list), [(json!(11), json!("eigenvalues"), json!(1))]);
    // A new question changes no count; B hears of it all the same.
    assert_ok(
        &ready_with(&mut ana, 11, json!({"question": "eigenvectors"})).await,
        json!({}),
    );
    let list = waiting_list(&mut watcher, "Ana's new question", |l| {
        l["students"][0]["question"] == "eigenvectors"
    })
    .await;
    assert_eq!(list["total"], 1);

    // Three claims on A: a rate for a student on B.
    let mut taker = teacher(a, framing, 2).await;
    taker.claim_expect(&json!(2), &json!(11)).await;
    let mut served = Vec::new();
    for sid in [12, 13] {
        served.push(ready_student(a, framing, sid).await);
        taker.claim_expect(&json!(2), &json!(sid)).await;
    }
    let _ahead = ready_student(a, framing, 14).await;
    let mut later = student_asking(b, framing, 15, &["queuePosition", "queueState"]).await;
    later.ready(&json!(15)).await;
    let notice = position(&mut later, 15, json!(2)).await;
    assert_eq!(notice["eta_s"], 40, "{notice}");

    // Closed on A: a student on B is turned away, and told on B.
    let mut staff = teacher(a, framing, 3).await;
    let reply = staff
        .call(
            "presence:teachers",
            "queue:close",
            json!({"message": "done for today"}),
        )
        .await;
    assert_ok(&reply, json!({"open": false, "message": "done for today"}));
    for (c, topic) in [
        (&mut watcher, "presence:teachers".to_owned()),
        (&mut later, student_topic(&json!(15))),
    ] {
        let state = c
            .wait_match(
                |f| f.is(&topic, "queue:state") && f.payload["open"] == false,
                "queue:state closed",
                WAIT,
            )
            .await;
        assert_eq!(state.payload["message"], "done for today");
    }
    let mut turned_away = student_asking(b, framing, 16, &[]).await;
    assert_error(
        &ready_with(&mut turned_away, 16, json!({})).await,
        json!({"reason": "queue closed", "message": "done for today"}),
    );

    // Announced on B: heard on A.
    let reply = watcher
        .call(
            "presence:teachers",
            "queue:announce",
            json!({"message": "5 more minutes"}),
        )
        .await;
    assert_ok(&reply, json!({}));
    let heard = ana
        .wait_for(&student_topic(&json!(11)), "queue:announcement", WAIT)
        .await;
    assert_eq!(heard.payload["message"], "5 more minutes");
    assert_eq!(heard.payload["from"], "1");
}

/// Waits for a `queue:position` at `place` for student `sid`; its payload.
async fn position(c: &mut Client, sid: u64, place: Value) -> Value {
    let topic = student_topic(&json!(sid));
    let what = format!("queue:position {place} for {sid}");
    c.wait_match(
        |f| f.is(&topic, "queue:position") && f.payload["position"] == place,
        &what,
        WAIT,
    )
    .await
    .payload
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

both!(
    teachers_who_ask_see_who_waits_and_why,
    a_signed_in_student_is_listed_by_name,
    a_question_past_the_limit_is_refused,
    the_estimated_wait_follows_the_claims,
    a_closed_queue_turns_new_students_away_and_keeps_those_in_line,
    announcements_reach_those_who_asked,
    office_hours_hold_across_nodes,
    the_question_is_kept_with_the_chat,
    an_away_student_is_listed_as_away,
    a_teacher_cannot_flood_those_waiting,
);
