//! The `tutor-queue` binary: on SIGTERM or SIGINT it closes every client with 1001 and
//! exits with status 0; what it recorded survives a graceful restart and a SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

struct Bin {
    child: Option<Child>,
    pid: u32,
    port: u16,
    /// Every stderr line, for failure messages.
    lines: mpsc::Receiver<String>,
    /// The binary's `--data-dir`, removed when the last holder is done.
    data: Arc<tempfile::TempDir>,
}

impl Drop for Bin {
    fn drop(&mut self) {
        // Only ever the process this test spawned.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_bin() -> Bin {
    spawn_bin_in(Arc::new(tempfile::tempdir().expect("temp data dir")))
}

/// The binary on an existing data directory (a restart).
fn spawn_bin_in(data: Arc<tempfile::TempDir>) -> Bin {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tutor-queue"))
        .args(["--port", "0", "--bind", "127.0.0.1", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "info")
        .env_remove("PORT")
        .env_remove("DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the tutor-queue binary");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        // Keep draining so the child never blocks on a full pipe.
                        continue;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    let port = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(i) = line.find("listening on 127.0.0.1:") {
                    let rest = &line[i + "listening on 127.0.0.1:".len()..];
                    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    break digits
                        .parse::<u16>()
                        .unwrap_or_else(|_| panic!("no port in {line:?}"));
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the binary did not log `listening on 127.0.0.1:<port>` within {WAIT:?}; stderr: {seen:#?}")
            }
        }
    };
    Bin {
        child: Some(child),
        pid,
        port,
        lines: rx,
        data,
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Waits for the child to exit (bounded); returns its exit status.
async fn wait_exit(bin: &mut Bin, timeout: Duration) -> std::process::ExitStatus {
    let mut child = bin.child.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = std::thread::spawn(move || {
        let st = child.wait();
        let _ = tx.send(st);
    });
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(status))) => {
            let _ = handle.join();
            status
        }
        _ => {
            signal(bin.pid, "-KILL");
            let mut rest = Vec::new();
            while let Ok(l) = bin.lines.try_recv() {
                rest.push(l);
            }
            panic!("the binary did not exit within {timeout:?} after the signal; stderr: {rest:#?}")
        }
    }
}

async fn shutdown_on(sig: &str) {
    let mut bin = spawn_bin();
    let srv = Server { port: bin.port };
    let mut t = teacher(&srv, Framing::V1, 1).await;
    let mut s = ready_student(&srv, Framing::V2, 7).await;
    t.wait_for("presence:teachers", "user:status", WAIT).await;
    let mut idle = connect(&srv, Framing::V2).await;
    idle.heartbeat().await;

    signal(bin.pid, sig);
    for c in [&mut t, &mut s, &mut idle] {
        let code = c.wait_close(WAIT).await;
        assert_eq!(
            code,
            Some(1001),
            "[{}] on {sig} every client gets close code 1001 (going away)",
            c.name
        );
    }
    let status = wait_exit(&mut bin, Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "the binary must exit 0 after {sig}, got {status:?}"
    );
    assert!(
        bin.data.path().join("transcripts.sqlite3").is_file(),
        "the binary keeps its transcripts in --data-dir"
    );
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_0() {
    shutdown_on("-TERM").await;
}

#[tokio::test]
async fn sigint_closes_clients_with_1001_and_exits_0() {
    shutdown_on("-INT").await;
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
    let mut bin = spawn_bin();
    let (cid, sent) = chat_to_the_end(&Server { port: bin.port }, 5, true).await;
    // The students heard chat:terminated: from here on the transcript must be on disk.
    signal(bin.pid, "-KILL");
    let status = wait_exit(&mut bin, WAIT).await;
    assert!(!status.success(), "killed, not exited: {status:?}");

    let again = spawn_bin_in(bin.data.clone());
    let (chat, stored) = transcript_of(again.port, &cid).await;
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
    let mut bin = spawn_bin();
    let srv = Server { port: bin.port };
    // A chat still going on when the server is told to stop.
    let (cid, sent) = chat_to_the_end(&srv, 4, false).await;
    signal(bin.pid, "-TERM");
    let status = wait_exit(&mut bin, Duration::from_secs(15)).await;
    assert!(status.success(), "exit 0 after SIGTERM, got {status:?}");

    let again = spawn_bin_in(bin.data.clone());
    let (chat, stored) = transcript_of(again.port, &cid).await;
    assert_eq!(stored, sent);
    // Shutting down closed both connections: no session resumption, so the chat
    // ended there, by whichever side's connection went first.
    let ended = chat["ended_by"].as_str().unwrap_or_default();
    assert!(["student_left", "teacher_left"].contains(&ended), "{chat}");
}
