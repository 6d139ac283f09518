//! What the server records of real chats (issue 6): every relayed message, in order,
//! with how the chat ended; `chat:terminated` only once the transcript is committed;
//! and when the transcript writer falls behind, a sender held (then refused, if it
//! lasts), never a message lost. The same when the store cannot commit at all (issue
//! 10: a full disk, injected or real): senders held then refused with `transcript
//! unavailable`, `/healthz` 503, `chat:terminated` held until space returns, and
//! then the transcript holds exactly what was relayed.

use std::time::Duration;

use serde_json::{json, Value};
use tutor_queue::transcripts::StoreOptions;
use tutor_queue::Config;

use crate::support::auth::*;
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
    let (chat, stored) = transcript_as(running.port, &cid, &admin_token()).await;
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
    let (chat, _) = transcript_as(running.port, &cid, &admin_token()).await;
    assert_eq!(chat["ended_by"], "student_left");

    let (t, mut s, cid) = start_chat(&srv, framing, 2, 8).await;
    t.vanish();
    s.wait_for(&chat_topic(&cid), "phx_close", WAIT).await;
    // Nothing waits on an abandoned chat's record: poll until the writer has it
    // (until its first commit, even the chat's creation may not be readable: 404).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = http_get_as(
            running.port,
            &format!("/api/chats/{cid}/transcript"),
            &admin_token(),
        )
        .await;
        let body = response.text();
        if response.status == 200 {
            let record: Value = serde_json::from_str(&body).expect("transcript JSON");
            if record["chat"]["ended_by"] == "teacher_left" {
                break;
            }
        } else {
            assert_eq!(response.status, 404, "{body}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recorded as teacher_left: {body}"
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
    let (_, stored) = transcript_as(running.port, &cid, &admin_token()).await;
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
    // Held, never relayed (the inbox stays full while the writer is paused),
    // then refused.
    s.expect_no_event(&topic, "student:receive", SILENCE).await;
    t.reply(&topic, &r).await.assert_error("transcript backlog");
    s.expect_no_event(&topic, "student:receive", Duration::ZERO)
        .await;

    running.transcripts.set_paused(false);
    t.push(&topic, "teacher:send", json!({"message": "again"}))
        .await;
    let got = s.wait_for(&topic, "student:receive", WAIT).await;
    assert_eq!(got.payload, json!({"message": "again"}));
    t.push(&topic, "chat:terminate", json!({})).await;
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    let (_, stored) = transcript_as(running.port, &cid, &admin_token()).await;
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

/// How a test makes the store unable to commit, and gives the space back.
#[derive(Clone, Copy, Debug)]
enum DiskFailure<'a> {
    /// Every commit fails with SQLite's "database or disk is full" (a test hook).
    Injected,
    /// A real SQLITE_FULL: the database is capped at the pages it uses
    /// (`PRAGMA max_page_count`) and the messages are large.
    PageLimit,
    /// A real full disk: the data directory is a 1 MiB tmpfs that the large
    /// messages fill; space returns by remounting it larger.
    Tmpfs(&'a Tmpfs),
}

impl DiskFailure<'_> {
    fn fail(self, running: &Running) {
        match self {
            DiskFailure::Injected => running.transcripts.set_failing(true),
            DiskFailure::PageLimit => running.transcripts.set_page_limit(Some(1)),
            DiskFailure::Tmpfs(_) => {}
        }
    }

    fn restore(self, running: &Running) {
        match self {
            DiskFailure::Injected => running.transcripts.set_failing(false),
            DiskFailure::PageLimit => running.transcripts.set_page_limit(None),
            DiskFailure::Tmpfs(tmpfs) => tmpfs.resize("16m").expect("remount the tmpfs larger"),
        }
    }
}

/// A small tmpfs mounted on a temporary directory, lazily unmounted on drop.
#[derive(Debug)]
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None (with the reason) where mounting is not permitted, e.g. not root.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn resize(&self, size: &str) -> Result<(), String> {
        let output = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server thread may still hold the database open.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `GET /healthz`: (status, body).
async fn healthz(port: u16) -> (u16, String) {
    let response = http_get(port, "/healthz").await;
    (response.status, response.text())
}

/// The value of an unlabelled metric line `name value`.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Waits (bounded) until the store has committed everything (true) or is
/// failing (false).
async fn committed_or_failing(running: &Running) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let lag = running.transcripts.lag();
        if lag.failing {
            return false;
        }
        if lag.uncommitted == 0 {
            return true;
        }
        assert!(tokio::time::Instant::now() < deadline, "stuck: {lag:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn a_failing_store_holds_senders_and_chat_terminated_until_space_returns(
    framing: Framing,
    failure: DiskFailure<'_>,
    data_dir: &std::path::Path,
) {
    let running = start_server(Config {
        // Long enough to see the sender held, well past SILENCE.
        transcript_wait: Duration::from_secs(1),
        data_dir: data_dir.to_owned(),
        tokens: Some(test_keys()),
        ..Config::default()
    });
    let port = running.port;
    let (mut t, mut s, cid) = start_chat(&srv(&running), framing, 1, 7).await;
    let topic = chat_topic(&cid);
    let mut relayed = converse(&mut t, &mut s, &cid, 2).await;
    assert!(committed_or_failing(&running).await);
    assert_eq!(healthz(port).await.0, 200);

    // The disk fails. Each message is taken while the store does not know
    // yet (nothing failed since the last commit): relayed, and queued.
    failure.fail(&running);
    for n in 0.. {
        assert!(n < 500, "the store never failed");
        let payload = json!({"message": n, "pad": "x".repeat(3000)});
        t.push(&topic, "teacher:send", payload.clone()).await;
        let got = s.wait_for(&topic, "student:receive", WAIT).await;
        assert_eq!(got.payload, payload);
        relayed.push(("teacher".to_owned(), payload));
        if !committed_or_failing(&running).await {
            break;
        }
    }
    let (status, body) = healthz(port).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("transcript store failing") && body.contains("full"),
        "{body}"
    );

    // Now a message is held (not relayed, not answered), then refused.
    let r = s
        .push(&topic, "student:send", json!({"message": "refused"}))
        .await;
    t.expect_no_event(&topic, "teacher:receive", SILENCE).await;
    assert!(s.take_all(|f| f.is_reply_to(&topic, &r)).is_empty(), "held");
    s.reply(&topic, &r)
        .await
        .assert_error("transcript unavailable");
    t.expect_no_event(&topic, "teacher:receive", Duration::ZERO)
        .await;

    // The chat ends, but nobody hears so while its record cannot commit.
    let end = t.push(&topic, "chat:terminate", json!({})).await;
    s.expect_no_event(&topic, "chat:terminated", SILENCE).await;
    t.expect_no_event(&topic, "chat:terminated", Duration::ZERO)
        .await;
    assert!(t.take_all(|f| f.is_reply_to(&topic, &end)).is_empty());
    let metrics = http_get(port, "/metrics").await.text();
    assert_eq!(metric(&metrics, "tutor_queue_transcript_store_failing"), 1);
    assert!(metric(&metrics, "tutor_queue_transcript_failed_commits_total") >= 1);

    // Space returns: everything queued commits, then chat:terminated goes out.
    failure.restore(&running);
    t.wait_for(&topic, "chat:terminated", WAIT).await;
    t.reply(&topic, &end).await.assert_ok_empty();
    s.wait_for(&topic, "chat:terminated", WAIT).await;
    assert_eq!(healthz(port).await, (200, "ok\n".to_owned()));
    let (chat, stored) = transcript_as(port, &cid, &admin_token()).await;
    assert_eq!(chat["ended_by"], "terminated");
    assert_eq!(stored, relayed, "exactly the relayed messages");
    let metrics = http_get(port, "/metrics").await.text();
    assert_eq!(metric(&metrics, "tutor_queue_transcript_store_failing"), 0);
    assert!(metric(&metrics, "tutor_queue_transcript_failed_commits_total") >= 1);
    assert!(
        metrics.contains(r#"tutor_queue_frames_rejected_total{reason="transcript_unavailable"} 1"#),
        "{metrics}"
    );
    running.stopper.shutdown().await;
}

async fn an_injected_disk_failure_holds_senders_and_loses_nothing(framing: Framing) {
    let dir = tempfile::tempdir().expect("temp dir");
    a_failing_store_holds_senders_and_chat_terminated_until_space_returns(
        framing,
        DiskFailure::Injected,
        dir.path(),
    )
    .await
}

#[tokio::test]
async fn a_real_full_database_holds_senders_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    a_failing_store_holds_senders_and_chat_terminated_until_space_returns(
        Framing::V2,
        DiskFailure::PageLimit,
        dir.path(),
    )
    .await
}

/// The same on a real full file system (a 1 MiB tmpfs). Needs permission
/// to mount (root); skips with a message where it has none.
#[tokio::test]
async fn a_real_full_disk_holds_senders_and_loses_nothing() {
    let tmpfs = match Tmpfs::mount("1m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("SKIPPED the tmpfs full-disk test: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let data_dir = tmpfs.dir.path().join("data");
    a_failing_store_holds_senders_and_chat_terminated_until_space_returns(
        Framing::V2,
        DiskFailure::Tmpfs(&tmpfs),
        &data_dir,
    )
    .await
}

/// Shutting down while the store cannot commit does not hang: it ends
/// within its bounded waits, and the uncommitted writes are given up.
#[tokio::test]
async fn shutdown_with_a_failing_store_is_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = start_server(Config {
        shutdown_grace: Duration::from_millis(200),
        transcript_store: StoreOptions {
            close_grace: Duration::from_millis(200),
            ..StoreOptions::default()
        },
        ..with_data_dir(&dir)
    });
    let (mut t, mut s, cid) = start_chat(&srv(&running), Framing::V2, 1, 7).await;
    // The chat's own records are committed first: a commit of them failing
    // would make the store refuse the message below before it is relayed.
    assert!(committed_or_failing(&running).await);
    running.transcripts.set_failing(true);
    let topic = chat_topic(&cid);
    let r = t
        .push(&topic, "teacher:send", json!({"message": "queued"}))
        .await;
    // Taken while the store did not know yet: relayed, and queued. (Had the
    // store been failing already, the teacher would hear why.)
    let what = "the message relayed";
    if s.try_wait_match(|f| f.is(&topic, "student:receive"), WAIT)
        .await
        .is_none()
    {
        let refused = t.take_all(|f| f.is_reply_to(&topic, &r));
        panic!(
            "{what}: not within {WAIT:?}; the teacher heard {refused:?}; writer: {:?}",
            running.transcripts.lag()
        );
    }
    // Shut down with that write uncommitted, its commit failing.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let lag = running.transcripts.lag();
        if lag.failing && lag.uncommitted > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failing: {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(WAIT, running.stopper.shutdown())
        .await
        .expect("shutdown returns while the store is failing");
    assert!(running.transcripts.lag().failing);
}

both!(
    chat_terminated_waits_for_the_transcript_commit,
    how_a_chat_ended_is_recorded,
    a_backlog_holds_the_sender_and_loses_nothing,
    a_backlog_that_lasts_refuses_the_message_and_loses_none,
    an_injected_disk_failure_holds_senders_and_loses_nothing,
);
