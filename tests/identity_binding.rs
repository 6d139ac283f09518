//! A token binds its connection (PROTOCOL 1.7): every join acts as the token's user
//! and role; nobody else, with another token or with none, can join that user's
//! presence topic, act as them, or join, read, write or end their chats; tokenless
//! clients keep PROTOCOL 5 as it was, in a namespace of their own.

use std::time::Duration;

use serde_json::{json, Value};
use tutor_queue::identity::{Claims, Role, TokenKeys};

use crate::support::*;

const SECRET: &str = "a binding test secret, at least 32 bytes";

fn with_tokens() -> Config {
    Config {
        tokens: Some(TokenKeys::from_secret(SECRET.as_bytes()).expect("keys")),
        ..Config::default()
    }
}

/// A connection whose token proves `sub` as `role`.
async fn signed_in(srv: &Server, framing: Framing, sub: &str, role: Role) -> Client {
    let keys = TokenKeys::from_secret(SECRET.as_bytes()).expect("keys");
    let claims = Claims::new(sub, role, "Someone", Duration::from_secs(3600));
    let token = keys.mint(&claims).expect("mint");
    let path = framing.default_path();
    let sep = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{sep}token={token}");
    connect_path(srv.port, &path, framing)
        .await
        .named(format!("{role} {sub} (token)"))
}

/// A signed-in teacher joined to `presence:teachers` as itself.
async fn signed_teacher(srv: &Server, framing: Framing, tid: &str) -> Client {
    let mut t = signed_in(srv, framing, tid, Role::Teacher).await;
    t.join_ok("presence:teachers", teacher_params(&json!(tid)))
        .await;
    t
}

/// A signed-in student joined to its presence topic and ready.
async fn signed_student(srv: &Server, framing: Framing, sid: &str) -> Client {
    let mut s = signed_in(srv, framing, sid, Role::Student).await;
    s.join_ok(&student_topic(&json!(sid)), student_params(&json!(sid)))
        .await;
    s.ready(&json!(sid)).await;
    s
}

/// The join is refused with `unauthorized`.
async fn refused(c: &mut Client, topic: &str, params: Value) {
    c.join(topic, params).await.assert_error("unauthorized");
}

/// Another token, or none, cannot join carol's presence topic, so carol's `new:chat`
/// reaches carol only; a tokenless client holding `presence:student:carol` before she
/// signs in is closed out of it and out of the queue.
async fn nobody_else_joins_a_signed_in_students_topic(framing: Framing) {
    let srv = start(with_tokens());
    let carol = json!("carol");
    let topic = student_topic(&carol);

    // A tokenless squatter got there first: carol's arrival closes it out.
    let mut squatter = ready_student(&srv, framing, carol.clone()).await;
    let mut s = signed_student(&srv, framing, "carol").await;
    squatter.wait_for(&topic, "phx_close", WAIT).await;

    // Now nobody else gets in: another token, and no token.
    let mut mallory = signed_in(&srv, framing, "mallory", Role::Student).await;
    refused(&mut mallory, &topic, student_params(&carol)).await;
    let mut eve = connect(&srv, framing).await.named("tokenless eve");
    refused(&mut eve, &topic, student_params(&carol)).await;
    refused(&mut squatter, &topic, student_params(&carol)).await;

    // The teacher's claim reaches carol, the squatter's place in the queue is gone.
    let mut t = signed_teacher(&srv, framing, "t1").await;
    let cid = t.claim_expect(&json!("t1"), &carol).await;
    let new_chat = s.wait_for(&topic, "new:chat", WAIT).await;
    assert_eq!(new_chat.payload["id"], json!(cid));
    assert!(
        t.claim(&json!("t1")).await.is_none(),
        "the squatter left the queue"
    );
    for c in [&mut mallory, &mut eve, &mut squatter] {
        c.expect_no_event(&topic, "new:chat", SILENCE).await;
    }
}

both!(nobody_else_joins_a_signed_in_students_topic);

/// A token's role is the only one its connection may join as, under its own id only;
/// an admin token joins as neither.
async fn a_token_joins_only_as_its_own_role_and_id(framing: Framing) {
    let srv = start(with_tokens());
    let mut student = signed_in(&srv, framing, "s1", Role::Student).await;
    refused(
        &mut student,
        "presence:teachers",
        teacher_params(&json!("s1")),
    )
    .await;
    refused(
        &mut student,
        "presence:teachers",
        teacher_params(&json!("t1")),
    )
    .await;
    let mut teacher = signed_in(&srv, framing, "t1", Role::Teacher).await;
    refused(
        &mut teacher,
        "presence:student:t1",
        student_params(&json!("t1")),
    )
    .await;
    refused(
        &mut teacher,
        "presence:teachers",
        teacher_params(&json!("t2")),
    )
    .await;
    let mut admin = signed_in(&srv, framing, "ops", Role::Admin).await;
    refused(
        &mut admin,
        "presence:teachers",
        teacher_params(&json!("ops")),
    )
    .await;
    refused(
        &mut admin,
        "presence:student:ops",
        student_params(&json!("ops")),
    )
    .await;

    // The refused student never became a teacher: a waiting student is not claimed.
    let _waiting = ready_student(&srv, framing, 9).await;
    let reply = student
        .call(
            "presence:teachers",
            "claim:student",
            json!({"teacherId": "s1"}),
        )
        .await;
    reply.assert_error("unmatched topic");
    // Its own role and id work, an integer id naming the same key included.
    student
        .join_ok("presence:student:s1", student_params(&json!("s1")))
        .await;
    let mut seven = signed_in(&srv, framing, "7", Role::Teacher).await;
    seven
        .join_ok("presence:teachers", teacher_params(&json!(7)))
        .await;
}

both!(a_token_joins_only_as_its_own_role_and_id);

/// Carol and her teacher, both signed in, chat end to end; a stranger with a token
/// and one without cannot join the chat under any name, so cannot inject a message
/// or end it.
async fn a_signed_in_chat_admits_only_its_own_two(framing: Framing) {
    let srv = start(with_tokens());
    let (tid, sid) = (json!("t1"), json!("carol"));
    let mut t = signed_teacher(&srv, framing, "t1").await;
    let mut s = signed_student(&srv, framing, "carol").await;
    let cid = t.claim_expect(&tid, &sid).await;
    let topic = chat_topic(&cid);

    let mut mallory = signed_in(&srv, framing, "mallory", Role::Student).await;
    let mut eve = connect(&srv, framing).await.named("tokenless eve");
    for stranger in [&mut mallory, &mut eve] {
        refused(stranger, &topic, student_params(&sid)).await;
        refused(stranger, &topic, teacher_params(&tid)).await;
        refused(stranger, &topic, student_params(&json!("mallory"))).await;
        stranger
            .call(&topic, "student:send", json!({"message": "injected"}))
            .await
            .assert_error("unmatched topic");
        stranger
            .call(&topic, "chat:terminate", json!({}))
            .await
            .assert_error("unmatched topic");
    }

    enter_chat(&mut t, &tid, &mut s, &sid, &cid).await;
    t.push(&topic, "teacher:send", json!({"message": "hello carol"}))
        .await;
    let got = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(got.payload, json!({"message": "hello carol"}));
    s.push(&topic, "student:send", json!({"message": "hi"}))
        .await;
    let got = t.wait_for(&topic, "teacher:receive", WAIT).await;
    assert_eq!(got.payload, json!({"message": "hi"}), "carol's own words");
    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    for stranger in [&mut mallory, &mut eve] {
        stranger
            .expect_no_event(&topic, "student:receive", SILENCE)
            .await;
        stranger
            .expect_no_event(&topic, "teacher:receive", SILENCE)
            .await;
    }
}

both!(a_signed_in_chat_admits_only_its_own_two);

/// Tokenless ids are their own namespace: the 2015 flow runs unchanged next to a
/// signed-in teacher with the same id text, who cannot join the tokenless chat.
async fn tokenless_users_keep_the_protocol_in_their_own_namespace(framing: Framing) {
    let srv = start(with_tokens());
    let mut signed_one = signed_teacher(&srv, framing, "1").await;
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 2).await;
    let topic = chat_topic(&cid);
    refused(&mut signed_one, &topic, teacher_params(&json!(1))).await;
    t.push(
        &topic,
        "teacher:send",
        json!({"message": "Message from teacher: 1"}),
    )
    .await;
    s.wait_for(&topic, "student:receive", WAIT).await;
    s.push(
        &topic,
        "student:send",
        json!({"message": "Message #1 from student: 2"}),
    )
    .await;
    t.wait_for(&topic, "teacher:receive", WAIT).await;
    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s.wait_for(&topic, "chat:terminated", WAIT).await;
}

both!(tokenless_users_keep_the_protocol_in_their_own_namespace);
