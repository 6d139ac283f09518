//! What the server records of real chats (issue 6): every relayed message, in order,
//! with how the chat ended; `chat:terminated` only once the transcript is committed;
//! and when the transcript writer falls behind, a sender held (then refused, if it
//! lasts), never a message lost.

use std::time::Duration;

use serde_json::{json, Value};
use tutor_queue::transcripts::StoreOptions;
use tutor_queue::Config;

use crate::support::*;
use crate::transcripts::{start_server, with_data_dir, Running};

fn srv(running: &Running) -> Server {
    Server { port: running.port }
}

/// `n` messages each way on an entered chat; returns them as (sender, payload).
async fn converse(t: &mut Client, s: &mut Client, cid: &str, n: usize) -> Vec<(String, Value)> {
    let topic = chat_topic(cid);
    let mut sent = Vec::new();
    for i in 0..n {
        let q = json!({"message": format!("question {i}"), "nested": {"i": i}});
        t.push(&topic, "teacher:send", q.clone()).await;
        s.wait_for(&topic, "student:receive", WAIT).await;
        sent.push(("teacher".to_owned(), q));
        let a = json!({"message": format!("answer {i} \u{e9}")});
        s.push(&topic, "student:send", a.clone()).await;
        t.wait_for(&topic, "teacher:receive", WAIT).await;
        sent.push(("student".to_owned(), a));
    }
    sent
}

async fn chat_terminated_waits_for_the_transcript_commit(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = start_server(with_data_dir(&dir));
    let srv = srv(&running);
    let (mut t, mut s, cid) = start_chat(&srv, framing, 1, 7).await;
    let sent = converse(&mut t, &mut s, &cid, 3).await;
    let topic = chat_topic(&cid);

    // The writer stops committing: the chat may end, but nobody may hear so yet.
    running.transcripts.set_paused(true);
    let r = t.push(&topic, "chat:terminate", json!({})).await;
    s.expect_no_event(&topic, "chat:terminated", SILENCE).await;
    t.expect_no_event(&topic, "chat:terminated", Duration::ZERO)
        .await;
    // Nor anything that came after it: the terminate reply waits in line too.
    assert!(
        t.take_all(|f| f.is_reply_to(&topic, &r)).is_empty(),
        "the terminate reply overtook chat:terminated"
    );

    running.transcripts.set_paused(false);
    t.wait_for(&topic, "chat:terminated", WAIT).await;
    t.reply(&topic, &r).await.assert_ok_empty();
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    // Heard it: the transcript is complete, right now.
    let (chat, stored) = transcript_of(running.port, &cid).await;
    assert_eq!(stored, sent);
    assert_eq!(chat["ended_by"], "terminated");
    assert!(chat["finished_at"].is_u64(), "{chat}");
}

async fn how_a_chat_ended_is_recorded(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = start_server(with_data_dir(&dir));
    let srv = srv(&running);

    let (mut t, s, cid) = start_chat(&srv, framing, 1, 7).await;
    s.vanish();
    t.wait_for(&chat_topic(&cid), "chat:terminated", WAIT).await;
    let (chat, _) = transcript_of(running.port, &cid).await;
    assert_eq!(chat["ended_by"], "student_left");

    let (t, mut s, cid) = start_chat(&srv, framing, 2, 8).await;
    t.vanish();
    s.wait_for(&chat_topic(&cid), "phx_close", WAIT).await;
    // Nothing waits on an abandoned chat's record: poll until the writer has it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (chat, _) = transcript_of(running.port, &cid).await;
        if chat["ended_by"] == "teacher_left" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recorded as teacher_left: {chat}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A chat on a server whose transcript queue holds two messages, writer paused.
async fn backlogged_chat(
    framing: Framing,
    wait: Duration,
) -> (tempfile::TempDir, Running, Client, Client, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = start_server(Config {
        transcript_store: StoreOptions {
            queue_messages: 2,
            ..StoreOptions::default()
        },
        transcript_wait: wait,
        ..with_data_dir(&dir)
    });
    let (mut t, mut s, cid) = start_chat(&srv(&running), framing, 1, 7).await;
    let topic = chat_topic(&cid);
    running.transcripts.set_paused(true);
    for n in 0..2 {
        let payload = json!({"message": n});
        t.push(&topic, "teacher:send", payload.clone()).await;
        let got = s.wait_for(&topic, "student:receive", WAIT).await;
        assert_eq!(got.payload, payload);
    }
    (dir, running, t, s, cid)
}

async fn a_backlog_holds_the_sender_and_loses_nothing(framing: Framing) {
    let (_dir, running, mut t, mut s, cid) = backlogged_chat(framing, WAIT).await;
    let topic = chat_topic(&cid);
    // The third finds the writer two messages behind: the teacher is held (its
    // connection is not read), nothing is relayed, nothing is refused.
    let r = t
        .push(&topic, "teacher:send", json!({"message": "third"}))
        .await;
    s.expect_no_event(&topic, "student:receive", SILENCE).await;
    assert!(t.take_all(|f| f.is_reply_to(&topic, &r)).is_empty());

    // The writer catches up: the message goes through, in order, and so does
    // what the teacher sent while held.
    running.transcripts.set_paused(false);
    let got = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(got.payload, json!({"message": "third"}));
    t.call(&topic, "chat:terminate", json!({}))
        .await
        .assert_ok_empty();
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    let (_, stored) = transcript_of(running.port, &cid).await;
    let expected: Vec<(String, Value)> = [
        json!({"message": 0}),
        json!({"message": 1}),
        json!({"message": "third"}),
    ]
    .into_iter()
    .map(|p| ("teacher".to_owned(), p))
    .collect();
    assert_eq!(stored, expected);
    t.expect_none(|f| f.status() == "error", "an error reply", Duration::ZERO)
        .await;
}

async fn a_backlog_that_lasts_refuses_the_message_and_loses_none(framing: Framing) {
    let wait = Duration::from_millis(200);
    let (_dir, running, mut t, mut s, cid) = backlogged_chat(framing, wait).await;
    let topic = chat_topic(&cid);
    let r = t
        .push(&topic, "teacher:send", json!({"message": "too many"}))
        .await;
    t.reply(&topic, &r).await.assert_error("transcript backlog");
    s.expect_no_event(&topic, "student:receive", SILENCE).await;

    running.transcripts.set_paused(false);
    t.push(&topic, "teacher:send", json!({"message": "again"}))
        .await;
    let got = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(got.payload, json!({"message": "again"}));
    t.push(&topic, "chat:terminate", json!({})).await;
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    let (_, stored) = transcript_of(running.port, &cid).await;
    let payloads: Vec<Value> = stored.into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        payloads,
        vec![
            json!({"message": 0}),
            json!({"message": 1}),
            json!({"message": "again"})
        ],
        "exactly what was relayed"
    );
    let metrics = http_get(running.port, "/metrics").await.text();
    assert!(
        metrics.contains(r#"tutor_queue_frames_rejected_total{reason="transcript_backlog"} 1"#),
        "{metrics}"
    );
}

both!(
    chat_terminated_waits_for_the_transcript_commit,
    how_a_chat_ended_is_recorded,
    a_backlog_holds_the_sender_and_loses_nothing,
    a_backlog_that_lasts_refuses_the_message_and_loses_none,
);
