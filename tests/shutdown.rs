//! The `tutor-queue` binary: on SIGTERM or SIGINT it closes every client with 1001 and
//! exits with status 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;

struct Bin {
    child: Option<Child>,
    pid: u32,
    port: u16,
    /// Every stderr line, for failure messages.
    lines: mpsc::Receiver<String>,
    /// The binary's `--data-dir`, removed when the test ends.
    data: tempfile::TempDir,
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
    let data = tempfile::tempdir().expect("temp data dir");
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
