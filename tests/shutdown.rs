//! The `tutor-queue` binary: on SIGTERM or SIGINT it closes every client with 1001 and
//! exits with status 0; what it recorded survives a graceful restart and a SIGKILL.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::auth::*;
use crate::support::binary::{RealServer, Signal};
use crate::support::*;

async fn shutdown_on(sig: Signal) {
    let mut bin = RealServer::builder().spawn();
    let srv = Server { port: bin.port() };
    let mut t = teacher(&srv, Framing::V1, 1).await;
    let mut s = ready_student(&srv, Framing::V2, 7).await;
    t.wait_for("presence:teachers", "user:status", WAIT).await;
    let mut idle = connect(&srv, Framing::V2).await;
    idle.heartbeat().await;

    bin.signal(sig);
    for c in [&mut t, &mut s, &mut idle] {
        let code = c.wait_close(WAIT).await;
        assert_eq!(
            code,
            Some(1001),
            "[{}] on {sig:?} every client gets close code 1001 (going away)",
            c.name
        );
    }
    let status = bin.wait_exit(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "the binary must exit 0 after {sig:?}, got {status:?}"
    );
    assert!(
        bin.data_dir().join("transcripts.sqlite3").is_file(),
        "the binary keeps its transcripts in --data-dir"
    );
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_0() {
    shutdown_on(Signal::TERM).await;
}

#[tokio::test]
async fn sigint_closes_clients_with_1001_and_exits_0() {
    shutdown_on(Signal::INT).await;
}

/// A chat over real sockets: `n` messages each way, then the teacher ends it and both
/// sides get `chat:terminated`. Returns the chat id and the payloads in relay order.
async fn chat_to_the_end(
    srv: &Server,
    n: usize,
    terminate: bool,
) -> (String, Vec<(String, Value)>) {
    let (mut t, mut s, cid) = start_chat(srv, Framing::V2, 1, 7).await;
    let topic = chat_topic(&cid);
    let mut sent = Vec::new();
    for i in 0..n {
        let from_teacher = json!({"message": format!("question {i}"), "n": i});
        t.push(&topic, "teacher:send", from_teacher.clone()).await;
        s.wait_for(&topic, "student:receive", WAIT).await;
        sent.push(("teacher".to_owned(), from_teacher));
        let from_student = json!({"message": format!("answer {i} \u{e9}\u{1F600}"), "n": i});
        s.push(&topic, "student:send", from_student.clone()).await;
        t.wait_for(&topic, "teacher:receive", WAIT).await;
        sent.push(("student".to_owned(), from_student));
    }
    if terminate {
        t.push(&topic, "chat:terminate", json!({})).await;
        t.wait_for(&topic, "chat:terminated", WAIT).await;
        s.wait_for(&topic, "chat:terminated", WAIT).await;
    }
    (cid, sent)
}

#[tokio::test]
async fn a_finished_chat_survives_sigkill_of_the_server() {
    let mut bin = RealServer::builder().spawn();
    let (cid, sent) = chat_to_the_end(&Server { port: bin.port() }, 5, true).await;
    // The students heard chat:terminated: from here on the transcript must be on disk.
    let status = bin.sigkill().await;
    assert!(!status.success(), "killed, not exited: {status:?}");

    let again = RealServer::builder()
        .data_dir(bin.data_dir())
        .test_tokens()
        .spawn();
    let (chat, stored) = transcript_as(again.port(), &cid, &admin_token()).await;
    assert_eq!(
        stored, sent,
        "every relayed message, in order, byte for byte"
    );
    assert_eq!(chat["teacher"], "1");
    assert_eq!(chat["student"], "7");
    assert_eq!(chat["ended_by"], "terminated");
    for time in ["created_at", "started_at", "finished_at"] {
        assert!(chat[time].is_u64(), "{time} recorded: {chat}");
    }
}

#[tokio::test]
async fn a_graceful_restart_loses_no_relayed_message() {
    let mut bin = RealServer::builder().spawn();
    let srv = Server { port: bin.port() };
    // A chat still going on when the server is told to stop.
    let (cid, sent) = chat_to_the_end(&srv, 4, false).await;
    bin.signal(Signal::TERM);
    let status = bin.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit 0 after SIGTERM, got {status:?}");

    let again = RealServer::builder()
        .data_dir(bin.data_dir())
        .test_tokens()
        .spawn();
    let (chat, stored) = transcript_as(again.port(), &cid, &admin_token()).await;
    assert_eq!(stored, sent);
    // Shutting down closed both connections: no session resumption, so the chat
    // ended there, by whichever side's connection went first.
    let ended = chat["ended_by"].as_str().unwrap_or_default();
    assert!(["student_left", "teacher_left"].contains(&ended), "{chat}");
}
