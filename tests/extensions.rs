//! The opt-in extensions for the web pages (README "Protocol extensions"):
//! `queuePosition`, `liveStatus` and `endReason` join params. Each is checked for what
//! a client that asks sees, and for a client that does not ask seeing nothing new.

use serde_json::{json, Value};

use crate::support::*;

fn with(params: Value, extension: &str) -> Value {
    let mut params = params;
    params[extension] = json!(true);
    params
}

/// A student asking for its place, ready at once.
async fn watching_student(srv: &Server, framing: Framing, sid: u64) -> Client {
    let sid = json!(sid);
    let mut c = connect(srv, framing).await.named(format!("student {sid}"));
    let topic = student_topic(&sid);
    c.join_ok(&topic, with(student_params(&sid), "queuePosition"))
        .await;
    let first = c.wait_for(&topic, "queue:position", WAIT).await;
    assert_eq!(first.payload["position"], Value::Null, "not waiting yet");
    c.ready(&sid).await;
    c
}

/// Waits for a `queue:position` with this position.
async fn position_becomes(c: &mut Client, sid: u64, position: Value) -> Value {
    let topic = student_topic(&json!(sid));
    let what = format!("queue:position {position} for student {sid}");
    c.wait_match(
        |f| f.is(&topic, "queue:position") && f.payload["position"] == position,
        &what,
        WAIT,
    )
    .await
    .payload
}

async fn students_hear_their_place_move(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let mut first = watching_student(&srv, framing, 11).await;
    let p = position_becomes(&mut first, 11, json!(1)).await;
    assert_eq!(
        p,
        json!({"position": 1, "waiting": 1, "teachers": 1, "eta_s": null})
    );
    let mut second = watching_student(&srv, framing, 12).await;
    let p = position_becomes(&mut second, 12, json!(2)).await;
    assert_eq!(
        p,
        json!({"position": 2, "waiting": 2, "teachers": 1, "eta_s": null})
    );

    t.claim_expect(&json!(1), &json!(11)).await;
    let p = position_becomes(&mut second, 12, json!(1)).await;
    assert_eq!(
        p,
        json!({"position": 1, "waiting": 1, "teachers": 1, "eta_s": null})
    );
    // The one taken hears it is no longer waiting.
    position_becomes(&mut first, 11, Value::Null).await;

    // A second teacher arriving reaches the waiting student too.
    let _t2 = teacher(&srv, framing, 2).await;
    let p = second
        .wait_match(
            |f| f.is(&student_topic(&json!(12)), "queue:position") && f.payload["teachers"] == 2,
            "teachers: 2",
            WAIT,
        )
        .await;
    assert_eq!(p.payload["position"], 1);
}

async fn the_join_reply_comes_before_the_first_position(framing: Framing) {
    let srv = start_default();
    let _queued = ready_student(&srv, framing, 5).await;
    let sid = json!(6);
    let topic = student_topic(&sid);
    let mut c = connect(&srv, framing).await;
    let reply = c
        .join(&topic, with(student_params(&sid), "queuePosition"))
        .await;
    reply.assert_ok_empty();
    let first = c.next_frame(WAIT).await;
    assert!(first.is(&topic, "queue:position"), "{first:?}");
    assert_eq!(
        first.payload,
        json!({"position": null, "waiting": 1, "teachers": 0, "eta_s": null})
    );
}

async fn students_that_do_not_ask_hear_no_positions(framing: Framing) {
    let srv = start_default();
    let mut t = teacher(&srv, framing, 1).await;
    let _watcher = watching_student(&srv, framing, 20).await;
    let mut plain = ready_student(&srv, framing, 21).await;
    t.claim_expect(&json!(1), &json!(20)).await;
    plain
        .expect_no_event(&student_topic(&json!(21)), "queue:position", SILENCE)
        .await;
}

async fn live_status_teachers_see_counts_at_once_and_on_teacher_changes(framing: Framing) {
    let srv = start_default();
    let _s = ready_student(&srv, framing, 7).await;
    let mut live = connect(&srv, framing).await.named("live teacher");
    live.join_ok(
        "presence:teachers",
        with(teacher_params(&json!(1)), "liveStatus"),
    )
    .await;
    let first = live.next_frame(WAIT).await;
    assert!(first.is("presence:teachers", "user:status"), "{first:?}");
    assert_eq!(status_tuple(&first.payload), (1, 1, 1, 0, 0));

    // A plain teacher joining: the live one hears the new count, the plain one nothing.
    let mut plain = teacher(&srv, framing, 2).await;
    let st = live
        .wait_for("presence:teachers", "user:status", WAIT)
        .await;
    assert_eq!(status_tuple(&st.payload), (2, 1, 1, 0, 0));
    plain
        .expect_no_event("presence:teachers", "user:status", SILENCE)
        .await;

    plain.vanish();
    let st = live
        .wait_for("presence:teachers", "user:status", WAIT)
        .await;
    assert_eq!(status_tuple(&st.payload), (1, 1, 1, 0, 0));
}

/// Teacher and student in a chat, joined to it with `endReason`.
async fn chat_with_reasons(
    srv: &Server,
    framing: Framing,
    tid: u64,
    sid: u64,
) -> (Client, Client, String) {
    let (tid, sid) = (json!(tid), json!(sid));
    let mut t = teacher(srv, framing, tid.clone()).await;
    let mut s = ready_student(srv, framing, sid.clone()).await;
    let cid = t.claim_expect(&tid, &sid).await;
    let topic = chat_topic(&cid);
    t.join_ok(&topic, with(teacher_params(&tid), "endReason"))
        .await;
    s.join_ok(&topic, with(student_params(&sid), "endReason"))
        .await;
    (t, s, cid)
}

async fn end_reasons_reach_those_that_ask(framing: Framing) {
    let srv = start_default();
    let (mut t, mut s, cid) = chat_with_reasons(&srv, framing, 1, 7).await;
    let topic = chat_topic(&cid);
    s.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    for side in [&mut t, &mut s] {
        let ended = side.wait_for(&topic, "chat:terminated", WAIT).await;
        assert_eq!(ended.payload, json!({"reason": "ended by student"}));
    }

    let (mut t, mut s, cid) = chat_with_reasons(&srv, framing, 2, 8).await;
    let topic = chat_topic(&cid);
    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    let ended = s.wait_for(&topic, "chat:terminated", WAIT).await;
    assert_eq!(ended.payload, json!({"reason": "ended by teacher"}));

    let (mut t, s, cid) = chat_with_reasons(&srv, framing, 3, 9).await;
    let topic = chat_topic(&cid);
    s.vanish();
    let ended = t.wait_for(&topic, "chat:terminated", WAIT).await;
    assert_eq!(ended.payload, json!({"reason": "student left"}));
}

async fn chat_terminated_stays_empty_for_clients_that_do_not_ask(framing: Framing) {
    let srv = start_default();
    let tid = json!(1);
    let mut t = teacher(&srv, framing, tid.clone()).await;
    let mut s = ready_student(&srv, framing, 7).await;
    let cid = t.claim_expect(&tid, &json!(7)).await;
    let topic = chat_topic(&cid);
    // The student asks, the teacher does not.
    t.join_ok(&topic, teacher_params(&tid)).await;
    s.join_ok(&topic, with(student_params(&json!(7)), "endReason"))
        .await;
    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    let plain = t.wait_for(&topic, "chat:terminated", WAIT).await;
    assert_eq!(plain.payload, json!({}));
    let asked = s.wait_for(&topic, "chat:terminated", WAIT).await;
    assert_eq!(asked.payload, json!({"reason": "ended by teacher"}));
}

both!(
    students_hear_their_place_move,
    the_join_reply_comes_before_the_first_position,
    students_that_do_not_ask_hear_no_positions,
    live_status_teachers_see_counts_at_once_and_on_teacher_changes,
    end_reasons_reach_those_that_ask,
    chat_terminated_stays_empty_for_clients_that_do_not_ask,
);
