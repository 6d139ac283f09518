//! The transcript store (issue 6) through the real server: records written
//! through the server's handle and read back over the HTTP API, the error
//! answers of that API, `--no-transcripts`, and durability across a SIGKILL
//! of a process that was writing; a chat in progress at a SIGKILL of the
//! real binary ends `interrupted` when it restarts (issue 10); a data
//! directory that cannot be used says which step failed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tutor_queue::domain::{ChatId, Role, StudentKey, TeacherKey, UserKey};
use tutor_queue::transcripts::{ChatOpening, EndReason, StoreOptions, TranscriptQuery};
use tutor_queue::{Stopper, Transcripts};

use crate::support::auth::{admin_token, http_get_as, test_keys, transcript_as};
use crate::support::binary::RealServer;
use crate::support::{chat_topic, start_chat, Config, Framing, Server, WAIT};

/// A server on port 0 with the handles a test needs.
pub(crate) struct Running {
    pub port: u16,
    pub transcripts: Transcripts,
    pub stopper: Stopper,
}

pub(crate) fn start_server(config: Config) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("tutor-queue-{port}"))
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match tutor_queue::start(listener, config) {
                    Ok(server) => {
                        let _ = tx.send(Ok((server.transcripts().clone(), server.stopper())));
                        let _ = server.wait().await;
                    }
                    Err(error) => {
                        let _ = tx.send(Err(error));
                    }
                }
            })
        })
        .expect("spawn server thread");
    let (transcripts, stopper) = rx
        .recv_timeout(WAIT)
        .expect("the server thread answers")
        .expect("the server starts");
    Running {
        port,
        transcripts,
        stopper,
    }
}

pub(crate) fn with_data_dir(dir: &tempfile::TempDir) -> Config {
    Config {
        data_dir: dir.path().to_owned(),
        tokens: Some(test_keys()),
        ..Config::default()
    }
}

/// `GET path` as an admin; returns the status and the body, which must be JSON.
async fn get(port: u16, path: &str) -> (u16, String) {
    let response = http_get_as(port, path, &admin_token()).await;
    let kind = response.header("content-type").to_ascii_lowercase();
    assert!(
        kind.contains("application/json"),
        "{path}: every API answer is JSON: {kind}"
    );
    (response.status, response.text())
}

async fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = get(port, path).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn teacher(key: &str) -> TeacherKey {
    TeacherKey(UserKey::new(key).expect("non-empty"))
}

fn student(key: &str) -> StudentKey {
    StudentKey(UserKey::new(key).expect("non-empty"))
}

fn new_chat() -> ChatId {
    ChatId::random(&mut rand::rng())
}

fn raw(json: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(json.to_owned()).expect("valid JSON")
}

#[tokio::test]
async fn the_api_serves_what_the_server_recorded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(with_data_dir(&dir));
    let store = &srv.transcripts;
    assert!(store.is_enabled());

    let chat = new_chat();
    let opening = ChatOpening {
        question: Some("What is a \"monad\"? é".to_owned()),
        queued_at: Some(at(400)),
    };
    store.chat_created(chat, &teacher("7"), &student("s1"), at(1_000), opening);
    store.chat_started(chat, at(1_500));
    let payloads = [
        (Role::Teacher, r#"{"message":"Message from teacher: 1"}"#),
        (
            Role::Student,
            r#"{ "message" : "spaced \u00e9 €", "n": [1, 2.50] }"#,
        ),
    ];
    for (i, (sender, payload)) in payloads.iter().enumerate() {
        store
            .message(chat, *sender, &raw(payload), at(2_000 + i as u64))
            .expect("room");
    }
    let (finished, wait) = tokio::sync::oneshot::channel();
    store.chat_finished(chat, EndReason::StudentLeft, at(3_000), move || {
        let _ = finished.send(());
    });
    wait.await.expect("the finish callback runs");
    let other = new_chat();
    store.chat_created(
        other,
        &teacher("8"),
        &student("s2"),
        at(5_000),
        Default::default(),
    );
    store.flush_async().await;

    // The transcript: payloads byte for byte inside the JSON answer.
    let path = format!("/api/chats/{chat}/transcript");
    let (status, body) = get(srv.port, &path).await;
    assert_eq!(status, 200, "{body}");
    for (_, payload) in payloads {
        assert!(body.contains(payload), "raw payload {payload} in {body}");
    }
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        body,
        json!({
            "chat": {
                "id": chat.to_string(),
                "teacher": "7",
                "student": "s1",
                "created_at": 1000,
                "started_at": 1500,
                "finished_at": 3000,
                "ended_by": "student_left",
                "question": "What is a \"monad\"? é",
                "queued_at": 400,
            },
            "messages": [
                {"seq": 1, "sender": "teacher", "payload": {"message": "Message from teacher: 1"}, "at": 2000},
                {"seq": 2, "sender": "student", "payload": {"message": "spaced é €", "n": [1, 2.5]}, "at": 2001},
            ],
            "next": null,
        })
    );
    let (status, page) = get_json(srv.port, &format!("{path}?after=1&limit=1")).await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"][0]["seq"], 2);
    assert_eq!(page["next"], Value::Null);
    let (_, page) = get_json(srv.port, &format!("{path}?limit=1")).await;
    assert_eq!(page["next"], 1);

    // The list: newest first, one page at a time.
    let (status, list) = get_json(srv.port, "/api/chats").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["chats"]
        .as_array()
        .expect("chats array")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [other.to_string(), chat.to_string()]);
    assert_eq!(list["next"], Value::Null);
    assert_eq!(
        list["chats"][0],
        json!({"id": other.to_string(), "teacher": "8", "student": "s2", "created_at": 5000,
               "started_at": null, "finished_at": null, "ended_by": null,
               "question": null, "queued_at": null})
    );

    let (_, first) = get_json(srv.port, "/api/chats?limit=1").await;
    assert_eq!(first["chats"][0]["id"], other.to_string());
    let next = first["next"].as_str().expect("a next cursor");
    let (_, second) = get_json(srv.port, &format!("/api/chats?limit=1&before={next}")).await;
    assert_eq!(second["chats"][0]["id"], chat.to_string());
    assert_eq!(second["next"], Value::Null);

    let (_, only) = get_json(srv.port, "/api/chats?teacher=7").await;
    assert_eq!(only["chats"].as_array().map(Vec::len), Some(1));
    assert_eq!(only["chats"][0]["id"], chat.to_string());
    let (_, only) = get_json(srv.port, "/api/chats?student=s2&teacher=").await;
    assert_eq!(only["chats"][0]["id"], other.to_string());
    let (_, none) = get_json(srv.port, "/api/chats?student=7").await;
    assert_eq!(none, json!({"chats": [], "next": null}));

    srv.stopper.shutdown().await;
}

#[tokio::test]
async fn the_api_answers_bad_requests_and_unknown_chats_with_json_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(with_data_dir(&dir));
    let unknown = new_chat();
    for path in [
        format!("/api/chats/{unknown}/transcript"),
        "/api/chats/not-a-chat/transcript".to_owned(),
        format!(
            "/api/chats/{}/transcript",
            unknown.to_string().to_uppercase()
        ),
        "/api/chats/%00%ff/transcript".to_owned(),
    ] {
        let (status, body) = get_json(srv.port, &path).await;
        assert_eq!(
            (status, &body),
            (404, &json!({"error": "unknown chat"})),
            "{path}"
        );
    }
    for path in [
        "/api/chats?limit=0",
        "/api/chats?limit=501",
        "/api/chats?limit=ten",
        "/api/chats?before=yesterday",
        "/api/chats?limit=1&limit=2",
    ] {
        let (status, body) = get_json(srv.port, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let (status, body) = get_json(
        srv.port,
        &format!("/api/chats/{unknown}/transcript?limit=0"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    srv.stopper.shutdown().await;
}

#[tokio::test]
async fn without_transcripts_nothing_is_written_and_the_api_reads_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    let srv = start_server(Config {
        transcripts: false,
        ..with_data_dir(&dir)
    });
    let store = &srv.transcripts;
    assert!(!store.is_enabled());
    let chat = new_chat();
    store.chat_created(
        chat,
        &teacher("1"),
        &student("2"),
        at(1),
        Default::default(),
    );
    let (ran, wait) = std::sync::mpsc::channel();
    store.chat_finished(chat, EndReason::Terminated, at(2), move || {
        let _ = ran.send(());
    });
    wait.try_recv().expect("the callback ran at once");
    let (status, list) = get_json(srv.port, "/api/chats").await;
    assert_eq!((status, list), (200, json!({"chats": [], "next": null})));
    let (status, _) = get_json(srv.port, &format!("/api/chats/{chat}/transcript")).await;
    assert_eq!(status, 404);
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("read dir").count(),
        0,
        "nothing written"
    );
    srv.stopper.shutdown().await;
}

#[test]
fn an_unusable_data_dir_fails_the_start_with_its_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let output = RealServer::builder().data_dir(&file).output();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a-file"), "{stderr}");
}

/// A data directory whose `LOCK` cannot be opened (here it is a directory,
/// which stops root too, as a read-only file system would) fails the start
/// with that step and that path, not "cannot create the data directory".
#[test]
fn a_lock_file_that_cannot_be_opened_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = dir.path().join(tutor_queue::transcripts::LOCK_FILE);
    std::fs::create_dir(&lock).expect("a directory where the LOCK file goes");
    let output = RealServer::builder().data_dir(dir.path()).output();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("cannot open the LOCK file {}", lock.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("os error"), "{stderr}");
    assert!(
        !stderr.contains("cannot create the data directory"),
        "{stderr}"
    );
}

/// A chat in progress when the server is killed (SIGKILL) keeps what was
/// committed, and when the server restarts on the same data directory it
/// is finished as `interrupted`, at the time of its last recorded message.
#[tokio::test]
async fn a_chat_in_progress_at_a_sigkill_ends_interrupted_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = RealServer::builder()
        .data_dir(dir.path())
        .test_tokens()
        .spawn();
    let srv = Server { port: first.port() };
    let (mut t, mut s, cid) = start_chat(&srv, Framing::V2, 1, 7).await;
    let topic = chat_topic(&cid);
    let mut sent = Vec::new();
    for n in 0..3 {
        let payload = json!({"message": n});
        t.push(&topic, "teacher:send", payload.clone()).await;
        s.wait_for(&topic, "student:receive", WAIT).await;
        sent.push(("teacher".to_owned(), payload));
    }
    // Wait until all three are committed (they are read back over the API).
    let deadline = Instant::now() + WAIT;
    let last_at = loop {
        let (status, body) = get_json(first.port(), &format!("/api/chats/{cid}/transcript")).await;
        assert_eq!(status, 200, "{body}");
        if body["messages"].as_array().map(Vec::len) == Some(3) {
            assert_eq!(body["chat"]["ended_by"], Value::Null, "still in progress");
            break body["messages"][2]["at"].as_u64().expect("a time");
        }
        assert!(Instant::now() < deadline, "not committed: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let status = first.sigkill().await;
    assert!(!status.success(), "killed, not exited: {status:?}");

    let second = RealServer::builder()
        .data_dir(dir.path())
        .test_tokens()
        .spawn();
    let (chat, stored) = transcript_as(second.port(), &cid, &admin_token()).await;
    assert_eq!(chat["ended_by"], "interrupted", "{chat}");
    assert_eq!(chat["finished_at"], last_at, "its last recorded message");
    assert_eq!(stored, sent, "what was committed");
    let (_, list) = get_json(second.port(), "/api/chats?teacher=1").await;
    assert_eq!(list["chats"][0]["id"], cid.as_str());
    assert_eq!(list["chats"][0]["ended_by"], "interrupted");
}

/// Env var that turns [`crash_child`] from a no-op into the writer process.
const CRASH_DIR: &str = "TUTOR_QUEUE_CRASH_TEST_DIR";

/// Kills (SIGKILL) a process that is writing transcripts as fast as it can,
/// then checks that every chat whose finish callback had run is complete
/// on disk. The process is this test binary running `crash_child`.
#[test]
fn chats_confirmed_before_a_sigkill_are_on_disk_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "transcripts::crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer process");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut confirmed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while confirmed.len() < 40 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("confirmed ") {
                    let (chat, count) = rest.split_once(' ').expect("chat and count");
                    let chat = ChatId::parse(chat).expect("a chat id");
                    confirmed.push((chat, count.parse::<u64>().expect("a count")));
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the writer confirmed only {} chats", confirmed.len());
            }
        }
    }
    // SIGKILL, mid-stream: the writer is always committing something.
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap the writer");
    assert!(!status.success(), "killed, not exited: {status:?}");
    while let Ok(line) = rx.try_recv() {
        if let Some(rest) = line.strip_prefix("confirmed ") {
            if let Some((chat, count)) = rest.split_once(' ') {
                if let (Some(chat), Ok(count)) = (ChatId::parse(chat), count.parse()) {
                    confirmed.push((chat, count));
                }
            }
        }
    }

    let store = Transcripts::open(dir.path(), StoreOptions::default()).expect("reopen");
    for (chat, count) in &confirmed {
        let t = store
            .transcript(
                *chat,
                &TranscriptQuery {
                    after: 0,
                    limit: 10_000,
                },
            )
            .expect("read")
            .unwrap_or_else(|| panic!("confirmed chat {chat} is missing"));
        assert_eq!(t.chat.ended, Some(EndReason::Terminated), "{chat}");
        assert_eq!(t.messages.len() as u64, *count, "{chat}");
        for (i, m) in t.messages.iter().enumerate() {
            assert_eq!(m.payload.get(), format!(r#"{{"chat":"{chat}","n":{i}}}"#));
        }
    }
    let conn = rusqlite::Connection::open(dir.path().join(tutor_queue::transcripts::DB_FILE))
        .expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
}

/// The writer process of the test above; does nothing unless started by it.
#[test]
#[ignore = "run only as the child process of chats_confirmed_before_a_sigkill_are_on_disk_after_it"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let store = Transcripts::open(std::path::Path::new(&dir), StoreOptions::default())
        .expect("open the store");
    // Runs until killed; gives up on its own after a minute in case the
    // parent is gone.
    let begun = Instant::now();
    let mut round = 0u64;
    while begun.elapsed() < Duration::from_secs(60) {
        round += 1;
        let chat = ChatId::random(&mut rand::rng());
        store.chat_created(
            chat,
            &teacher("t"),
            &student("s"),
            SystemTime::now(),
            Default::default(),
        );
        let count = 1 + round % 50;
        let mut sent = 0;
        while sent < count {
            let payload = raw(&format!(r#"{{"chat":"{chat}","n":{sent}}}"#));
            match store.message(chat, Role::Teacher, &payload, SystemTime::now()) {
                Ok(()) => sent += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        store.chat_finished(chat, EndReason::Terminated, SystemTime::now(), move || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "confirmed {chat} {count}");
            let _ = out.flush();
        });
    }
}
