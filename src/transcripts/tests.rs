//! Unit tests of the transcript store against a real SQLite file in a
//! temporary directory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use crate::domain::UserKey;

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn teacher(key: &str) -> TeacherKey {
    TeacherKey(UserKey::new(key).expect("non-empty"))
}

fn student(key: &str) -> StudentKey {
    StudentKey(UserKey::new(key).expect("non-empty"))
}

/// `chat` created at `when` between teacher `t` and student `s`, with no
/// question.
fn created(store: &Transcripts, chat: ChatId, t: &str, s: &str, when: SystemTime) {
    store.chat_created(chat, &teacher(t), &student(s), when, Default::default());
}

fn new_chat() -> ChatId {
    ChatId::random(&mut rand::rng())
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON")
}

fn quick() -> StoreOptions {
    StoreOptions {
        commit_interval: Duration::ZERO,
        ..StoreOptions::default()
    }
}

fn open(dir: &tempfile::TempDir, options: StoreOptions) -> Transcripts {
    Transcripts::open(dir.path(), options).expect("open the store")
}

fn transcript(store: &Transcripts, chat: ChatId) -> Transcript {
    store
        .transcript(chat, &TranscriptQuery::default())
        .expect("read")
        .expect("chat is stored")
}

fn payloads(t: &Transcript) -> Vec<&str> {
    t.messages.iter().map(|m| m.payload.get()).collect()
}

#[test]
fn a_chat_and_its_messages_read_back_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let chat = new_chat();
    created(&store, chat, "7", "a\"b", at(1_000));
    store.chat_started(chat, at(2_000));
    // Payloads are kept byte for byte: spacing, key order, escapes.
    let sent = [
        (Role::Teacher, r#"{"message":"hi"}"#),
        (Role::Student, r#"{ "z":1, "a":"\u00e9 €" }"#),
        (Role::Teacher, r#"{"message":"bye","extra":[1,{"n":null}]}"#),
    ];
    for (i, (sender, payload)) in sent.iter().enumerate() {
        store
            .message(chat, *sender, &raw(payload), at(3_000 + i as u64))
            .expect("room");
    }
    store.chat_finished(chat, EndReason::Terminated, at(9_000), || {});
    store.flush();

    let t = transcript(&store, chat);
    assert_eq!(
        t.chat,
        ChatRecord {
            id: chat,
            teacher: teacher("7"),
            student: student("a\"b"),
            created_at: at(1_000),
            started_at: Some(at(2_000)),
            finished_at: Some(at(9_000)),
            ended: Some(EndReason::Terminated),
            question: None,
            queued_at: None,
        }
    );
    assert_eq!(payloads(&t), sent.map(|(_, p)| p));
    let seqs: Vec<u64> = t.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let senders: Vec<Role> = t.messages.iter().map(|m| m.sender).collect();
    assert_eq!(senders, sent.map(|(s, _)| s));
    assert_eq!(t.messages[1].at, at(3_001));
    assert_eq!(t.next, None);
}

#[test]
fn start_and_finish_are_recorded_once_and_unknown_chats_read_as_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    created(&store, chat, "9", "9", at(5)); // ignored
    store.chat_started(chat, at(2));
    store.chat_started(chat, at(3));
    store.chat_finished(chat, EndReason::TeacherLeft, at(4), || {});
    store.chat_finished(chat, EndReason::Terminated, at(6), || {});
    // Records for a chat that was never created fail nothing.
    let ghost = new_chat();
    store.chat_started(ghost, at(1));
    store.chat_finished(ghost, EndReason::StudentLeft, at(1), || {});
    store.flush();

    let t = transcript(&store, chat);
    assert_eq!(t.chat.teacher, teacher("1"));
    assert_eq!(t.chat.created_at, at(1));
    assert_eq!(t.chat.started_at, Some(at(2)));
    assert_eq!(t.chat.finished_at, Some(at(4)));
    assert_eq!(t.chat.ended, Some(EndReason::TeacherLeft));
    assert!(store
        .transcript(ghost, &TranscriptQuery::default())
        .expect("read")
        .is_none());
}

#[test]
fn the_finish_callback_runs_after_the_commit_that_holds_the_chat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, StoreOptions::default());
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    for i in 0..50 {
        store
            .message(chat, Role::Student, &raw(&format!("{{\"n\":{i}}}")), at(2))
            .expect("room");
    }
    let (seen, wait) = mpsc::channel();
    let path = dir.path().join(DB_FILE);
    store.chat_finished(chat, EndReason::Terminated, at(3), move || {
        // A separate connection sees the commit: it is in the file.
        let check = || -> rusqlite::Result<(i64, Option<String>)> {
            let conn = rusqlite::Connection::open(&path)?;
            let n = conn.query_row(
                "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM message_log)",
                [],
                |r| r.get(0),
            )?;
            let ended = conn.query_row("SELECT ended_by FROM chats", [], |r| r.get(0))?;
            Ok((n, ended))
        };
        let _ = seen.send(check());
    });
    let seen = wait
        .recv_timeout(Duration::from_secs(10))
        .expect("callback ran");
    assert_eq!(seen.expect("readable"), (50, Some("terminated".into())));
}

#[test]
fn a_full_queue_refuses_messages_without_blocking_and_keeps_every_accepted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(
        &dir,
        StoreOptions {
            queue_messages: 10,
            ..quick()
        },
    );
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    store.flush();

    store.set_paused(true);
    for i in 0..10 {
        store
            .message(chat, Role::Teacher, &raw(&format!("{{\"n\":{i}}}")), at(2))
            .expect("room for ten");
    }
    let begun = Instant::now();
    assert_eq!(
        store.message(chat, Role::Teacher, &raw(r#"{"n":"refused"}"#), at(2)),
        Err(Backpressure::Backlog)
    );
    assert!(
        begun.elapsed() < Duration::from_millis(100),
        "did not block"
    );
    assert_eq!(Backpressure::Backlog.to_string(), "transcript backlog");
    assert_eq!(
        Backpressure::Unavailable.to_string(),
        "transcript unavailable"
    );
    // Lifecycle records still go in, and wait their turn behind the messages.
    let finished = Arc::new(AtomicUsize::new(0));
    let flag = finished.clone();
    store.chat_finished(chat, EndReason::Terminated, at(3), move || {
        flag.store(1, Ordering::SeqCst);
    });
    let lag = store.lag();
    assert_eq!((lag.uncommitted, lag.queued_messages), (11, 10));
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(finished.load(Ordering::SeqCst), 0, "nothing committed yet");

    store.set_paused(false);
    store.flush();
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    let t = transcript(&store, chat);
    let expected: Vec<String> = (0..10).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(payloads(&t), expected);
    assert_eq!(t.chat.ended, Some(EndReason::Terminated));
    let lag = store.lag();
    assert_eq!(
        (lag.uncommitted, lag.oldest, lag.failed_commits),
        (0, Duration::ZERO, 0)
    );
    // Room again.
    store
        .message(chat, Role::Student, &raw("{}"), at(4))
        .expect("room after the writer caught up");
}

#[test]
fn a_queued_backlog_is_committed_in_batches_of_max_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(
        &dir,
        StoreOptions {
            max_batch: 64,
            ..quick()
        },
    );
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    store.flush();
    let before = store.lag().committed;
    assert_eq!(before, 2, "the record and the flush barrier");

    // Queue 1000 messages with a barrier after every hundred while the
    // writer is paused; each barrier notes how many writes were committed
    // when it ran, which shows where its batch ended.
    store.set_paused(true);
    let noted = Arc::new(Mutex::new(Vec::new()));
    let mut positions = Vec::new();
    let mut queued = 0u64;
    for i in 1..=1000u64 {
        store
            .message(chat, Role::Student, &raw(&format!("{{\"n\":{i}}}")), at(2))
            .expect("room");
        queued += 1;
        if i % 100 == 0 && i < 1000 {
            let (store2, noted2) = (store.clone(), noted.clone());
            store.push(Op::Barrier {
                then: Box::new(move || {
                    let committed = store2.lag().committed;
                    noted2
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(committed);
                }),
            });
            queued += 1;
            positions.push(queued);
        }
    }
    store.set_paused(false);
    store.flush();
    let expected: Vec<u64> = positions
        .iter()
        .map(|p| before + p.div_ceil(64) * 64)
        .collect();
    assert_eq!(
        *noted.lock().unwrap_or_else(PoisonError::into_inner),
        expected
    );
    assert_eq!(store.lag().committed, before + queued + 1);
    let t = store
        .transcript(
            chat,
            &TranscriptQuery {
                after: 0,
                limit: 2000,
            },
        )
        .expect("read")
        .expect("stored");
    assert_eq!(t.messages.len(), 1000);
    assert!(t
        .messages
        .iter()
        .zip(1u64..)
        .all(|(m, i)| m.seq == i && m.payload.get() == format!("{{\"n\":{i}}}")));
}

#[test]
fn flush_waits_for_everything_queued_before_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A long commit interval: without flush the writes would still wait.
    let store = open(
        &dir,
        StoreOptions {
            commit_interval: Duration::from_millis(50),
            ..StoreOptions::default()
        },
    );
    let chats: Vec<ChatId> = (0..20).map(|_| new_chat()).collect();
    for (i, chat) in chats.iter().enumerate() {
        store.chat_created(
            *chat,
            &teacher("1"),
            &student(&i.to_string()),
            at(i as u64),
            Default::default(),
        );
        store
            .message(*chat, Role::Teacher, &raw("{}"), at(i as u64))
            .expect("room");
    }
    store.flush();
    assert_eq!(store.lag().uncommitted, 0);
    let page = store
        .list_chats(&ChatQuery {
            limit: 100,
            ..ChatQuery::default()
        })
        .expect("read");
    assert_eq!(page.chats.len(), 20);
}

#[test]
fn dropping_the_last_handle_commits_the_queue_and_a_reopen_sees_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chat = new_chat();
    {
        let store = open(
            &dir,
            StoreOptions {
                commit_interval: Duration::from_millis(20),
                ..StoreOptions::default()
            },
        );
        created(&store, chat, "1", "2", at(1));
        for _ in 0..100 {
            store
                .message(chat, Role::Teacher, &raw("{}"), at(2))
                .expect("room");
        }
        // No flush: drop drains the queue.
    }
    // Reopening runs the migrations again: already applied, nothing changes.
    let store = open(&dir, quick());
    let t = transcript(&store, chat);
    assert_eq!(t.messages.len(), 100);
    drop(store);
    let store = open(&dir, quick());
    assert_eq!(transcript(&store, chat).messages.len(), 100);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 6);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[test]
fn what_a_callback_confirmed_is_in_the_file_even_if_the_store_never_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chat = new_chat();
    let store = open(&dir, StoreOptions::default());
    created(&store, chat, "1", "2", at(1));
    store
        .message(chat, Role::Student, &raw(r#"{"m":1}"#), at(2))
        .expect("room");
    let (confirmed, wait) = mpsc::channel();
    store.chat_finished(chat, EndReason::StudentLeft, at(3), move || {
        let _ = confirmed.send(());
    });
    wait.recv_timeout(Duration::from_secs(10))
        .expect("callback ran");
    // Never flushed nor dropped: only the commit the callback confirmed.
    std::mem::forget(store);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open");
    let row: (String, String) = conn
        .query_row(
            "SELECT m.payload, c.ended_by FROM message_log m JOIN chats c ON c.num = m.chat_num",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the confirmed chat");
    assert_eq!(row, (r#"{"m":1}"#.to_owned(), "student_left".to_owned()));
}

#[test]
fn one_store_per_data_dir_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = open(&dir, quick());
    match Transcripts::open(dir.path(), quick()) {
        Err(StoreError::InUse { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected InUse, got {other:?}"),
    }
    let reader = first.clone();
    drop(first);
    assert!(
        matches!(
            Transcripts::open(dir.path(), quick()),
            Err(StoreError::InUse { .. })
        ),
        "a clone keeps it open"
    );
    drop(reader);
    open(&dir, quick());
}

#[test]
fn the_writer_survives_a_panicking_callback_and_its_last_handle_dropped_on_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    store.chat_finished(chat, EndReason::Terminated, at(2), || {
        panic!("callback bug")
    });
    store.flush();
    store
        .message(chat, Role::Student, &raw("{}"), at(3))
        .expect("room");
    store.flush();
    assert_eq!(transcript(&store, chat).messages.len(), 1);

    // The callback holds the last handle: the writer drops it itself and
    // must neither deadlock nor panic joining itself.
    let (done, wait) = mpsc::channel();
    let held = store.clone();
    drop(store);
    held.clone()
        .chat_finished(new_chat(), EndReason::Terminated, at(4), move || {
            drop(held);
            let _ = done.send(());
        });
    wait.recv_timeout(Duration::from_secs(10))
        .expect("callback ran");
    let reopened = open(&dir, quick());
    assert_eq!(transcript(&reopened, chat).messages.len(), 1);
}

/// Seven chats, created at 100, 200, 200, 300, … with teachers a/b and
/// students x/y/z; returns them newest first as the list must order them.
fn seven_chats(store: &Transcripts) -> Vec<(ChatId, i64)> {
    let times = [100, 200, 200, 300, 400, 400, 500];
    let mut chats = Vec::new();
    for (i, ms) in times.iter().enumerate() {
        let chat = new_chat();
        let t = if i % 2 == 0 { "a" } else { "b" };
        let s = ["x", "y", "z"][i % 3];
        created(store, chat, t, s, at(*ms as u64));
        chats.push((chat, *ms));
    }
    store.flush();
    // Newest first; ties by id, descending (string order of the UUID text).
    chats.sort_by_key(|c| std::cmp::Reverse((c.1, c.0.to_string())));
    chats
}

fn all_pages(store: &Transcripts, mut query: ChatQuery) -> Vec<Vec<ChatId>> {
    let mut pages = Vec::new();
    loop {
        let page = store.list_chats(&query).expect("read");
        pages.push(page.chats.iter().map(|c| c.id).collect());
        match page.next {
            Some(next) => query.before = Some(next),
            None => return pages,
        }
    }
}

#[test]
fn list_pages_newest_first_with_a_keyset_cursor_that_breaks_ties_by_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let expected: Vec<ChatId> = seven_chats(&store).into_iter().map(|c| c.0).collect();
    let pages = all_pages(
        &store,
        ChatQuery {
            limit: 3,
            ..ChatQuery::default()
        },
    );
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), expected);
    // Exactly one page: no next cursor.
    let page = store
        .list_chats(&ChatQuery {
            limit: 7,
            ..ChatQuery::default()
        })
        .expect("read");
    assert_eq!((page.chats.len(), page.next), (7, None));
    // A limit of 0 or past the max is clamped.
    let page = store
        .list_chats(&ChatQuery {
            limit: 0,
            ..ChatQuery::default()
        })
        .expect("read");
    assert_eq!(page.chats.len(), 1);
}

#[test]
fn list_filters_by_teacher_and_by_student() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    seven_chats(&store);
    let count = |t: Option<&str>, s: Option<&str>| {
        let pages = all_pages(
            &store,
            ChatQuery {
                teacher: t.map(teacher),
                student: s.map(student),
                any_namespace: false,
                limit: 2,
                before: None,
            },
        );
        let ids = pages.concat();
        let records: Vec<ChatRecord> = ids.iter().map(|id| transcript(&store, *id).chat).collect();
        assert!(records
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at));
        for r in &records {
            assert!(t.is_none_or(|t| r.teacher == teacher(t)));
            assert!(s.is_none_or(|s| r.student == student(s)));
        }
        ids.len()
    };
    assert_eq!(count(Some("a"), None), 4);
    assert_eq!(count(Some("b"), None), 3);
    assert_eq!(count(None, Some("x")), 3);
    assert_eq!(count(Some("a"), Some("x")), 2);
    assert_eq!(count(Some("nobody"), None), 0);
    // Namespaces: teacher "x" is not student "x".
    assert_eq!(count(Some("x"), None), 0);
}

/// A signed-in user and a tokenless client with the same id text are two people
/// (PROTOCOL 1.7): the record keeps which is which, and a filter by one never lists
/// the other's chats.
#[test]
fn signed_in_and_tokenless_users_of_the_same_id_are_listed_apart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let signed = |key: &str| UserKey::new(key).expect("key").in_namespace(true);
    let (open_chat, signed_chat) = (new_chat(), new_chat());
    created(&store, open_chat, "t", "carol", at(1_000));
    store.chat_created(
        signed_chat,
        &TeacherKey(signed("t")),
        &StudentKey(signed("carol")),
        at(2_000),
        Default::default(),
    );
    store.flush();
    let listed = |query: ChatQuery| -> Vec<ChatId> {
        let page = store.list_chats(&query).expect("read");
        page.chats.iter().map(|c| c.id).collect()
    };
    let by_student = |key: StudentKey| ChatQuery {
        student: Some(key),
        ..ChatQuery::default()
    };
    assert_eq!(
        listed(by_student(StudentKey(signed("carol")))),
        [signed_chat]
    );
    assert_eq!(listed(by_student(student("carol"))), [open_chat]);
    let by_teacher = ChatQuery {
        teacher: Some(TeacherKey(signed("t"))),
        ..ChatQuery::default()
    };
    assert_eq!(listed(by_teacher.clone()), [signed_chat]);
    // An admin looking the id up finds both.
    let anyone = ChatQuery {
        any_namespace: true,
        ..by_teacher
    };
    assert_eq!(listed(anyone), [signed_chat, open_chat]);
    // Read back, each record keeps its namespace.
    let record = transcript(&store, signed_chat).chat;
    assert!(record.teacher.0.is_signed() && record.student.0.is_signed());
    assert!(!transcript(&store, open_chat).chat.student.0.is_signed());
}

#[test]
fn transcript_pages_by_seq_and_by_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    for i in 1..=5 {
        store
            .message(chat, Role::Teacher, &raw(&format!("{{\"n\":{i}}}")), at(2))
            .expect("room");
    }
    store.flush();
    let page = |after, limit| {
        let t = store
            .transcript(chat, &TranscriptQuery { after, limit })
            .expect("read")
            .expect("stored");
        (t.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), t.next)
    };
    assert_eq!(page(0, 2), (vec![1, 2], Some(2)));
    assert_eq!(page(2, 2), (vec![3, 4], Some(4)));
    assert_eq!(page(4, 2), (vec![5], None));
    assert_eq!(page(5, 2), (vec![], None));
    assert_eq!(page(u64::MAX, 2), (vec![], None));

    // Large payloads: a page stops past TRANSCRIPT_PAGE_BYTES.
    let big = format!("{{\"m\":\"{}\"}}", "x".repeat(1024 * 1024));
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    for _ in 0..6 {
        store
            .message(chat, Role::Student, &raw(&big), at(2))
            .expect("room");
    }
    store.flush();
    let t = store
        .transcript(chat, &TranscriptQuery::default())
        .expect("read")
        .expect("stored");
    assert_eq!(t.messages.len(), 4);
    assert_eq!(t.next, Some(4));
}

#[test]
fn cursors_round_trip_and_foreign_text_is_refused() {
    let chat = new_chat();
    let cursor = ChatCursor {
        created_at: 1_700_000_000_000,
        chat,
    };
    let text = cursor.to_string();
    assert_eq!(text, format!("1700000000000_{chat}"));
    assert_eq!(text.parse::<ChatCursor>(), Ok(cursor));
    for bad in [
        "",
        "_",
        "123",
        &format!("_{chat}"),
        &format!("-5_{chat}"),
        &format!("+5_{chat}"),
        &format!("99999999999999999999_{chat}"),
        "5_not-a-chat",
        &format!("5_{}", chat.to_string().to_uppercase()),
    ] {
        assert_eq!(bad.parse::<ChatCursor>(), Err(BadCursor), "{bad:?}");
    }
}

#[test]
fn end_reasons_round_trip() {
    for how in [
        EndReason::Terminated,
        EndReason::StudentLeft,
        EndReason::TeacherLeft,
        EndReason::Interrupted,
    ] {
        assert_eq!(EndReason::parse(how.as_str()), Some(how));
    }
    assert_eq!(EndReason::parse("finished"), None);
}

#[test]
fn a_disabled_store_writes_nothing_runs_callbacks_at_once_and_reads_empty() {
    let store = Transcripts::disabled();
    assert!(!store.is_enabled());
    assert_eq!(store.path(), None);
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    store.chat_started(chat, at(2));
    for _ in 0..100_000 {
        store
            .message(chat, Role::Teacher, &raw("{}"), at(3))
            .expect("never refused");
    }
    let ran = Arc::new(AtomicUsize::new(0));
    let flag = ran.clone();
    store.chat_finished(chat, EndReason::Terminated, at(4), move || {
        flag.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(ran.load(Ordering::SeqCst), 1, "ran before returning");
    store.flush();
    assert_eq!(store.lag(), WriterLag::default());
    let page = store.list_chats(&ChatQuery::default()).expect("read");
    assert!(page.chats.is_empty() && page.next.is_none());
    assert!(store
        .transcript(chat, &TranscriptQuery::default())
        .expect("read")
        .is_none());
}

#[test]
fn opening_fails_cleanly_when_the_data_dir_is_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    match Transcripts::open(&file, quick()) {
        Err(StoreError::DataDir { path, .. }) => assert_eq!(path, file),
        other => panic!("expected a DataDir error, got {other:?}"),
    }
}

/// A rough figure, not a pass/fail test:
/// A data directory written by the version-1 schema (chat ids as message
/// keys) is migrated on open: its chats and messages read back exactly, an
/// unfinished old chat goes on numbering its messages, and new chats work.
#[test]
fn a_version_1_database_is_carried_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = new_chat();
    let going = new_chat();
    {
        // What the version-1 writer left behind.
        let mut conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open");
        let v1 = rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(
            include_str!("../../migrations/0001_init.sql"),
        )]);
        v1.to_latest(&mut conn).expect("schema 1");
        conn.execute_batch(&format!(
            "INSERT INTO chats VALUES ('{old}', '7', '12', 1000, 1100, 1900, 'terminated');
             INSERT INTO chats VALUES ('{going}', '7', '13', 2000, NULL, NULL, NULL);
             INSERT INTO messages VALUES ('{old}', 1, 'teacher', '{{\"message\":\"hi\"}}', 1200);
             INSERT INTO messages VALUES ('{old}', 2, 'student', '{{ \"a\": [1] }}', 1300);
             INSERT INTO messages VALUES ('{going}', 1, 'student', '{{}}', 2100);"
        ))
        .expect("version-1 rows");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version");
        assert_eq!(version, 1);
    }

    let store = open(&dir, quick());
    let t = transcript(&store, old);
    assert_eq!(
        t.chat,
        ChatRecord {
            id: old,
            teacher: teacher("7"),
            student: student("12"),
            created_at: at(1000),
            started_at: Some(at(1100)),
            finished_at: Some(at(1900)),
            ended: Some(EndReason::Terminated),
            question: None,
            queued_at: None,
        }
    );
    assert_eq!(payloads(&t), [r#"{"message":"hi"}"#, r#"{ "a": [1] }"#]);
    let seqs: Vec<u64> = t.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(t.messages[1].sender, Role::Student);
    assert_eq!(t.messages[1].at, at(1300));

    // The unfinished chat (unknown to this writer) numbers on from 2; a
    // chat created now gets its own numbers.
    let new = new_chat();
    created(&store, new, "7", "14", at(3000));
    for chat in [going, new, going] {
        store
            .message(chat, Role::Teacher, &raw(r#"{"n":1}"#), at(3100))
            .expect("room");
    }
    store.flush();
    let seqs = |chat| -> Vec<u64> {
        transcript(&store, chat)
            .messages
            .iter()
            .map(|m| m.seq)
            .collect()
    };
    assert_eq!(seqs(going), [1, 2, 3]);
    assert_eq!(seqs(new), [1]);
    let page = store
        .list_chats(&ChatQuery {
            teacher: Some(teacher("7")),
            ..ChatQuery::default()
        })
        .expect("list");
    let ids: Vec<ChatId> = page.chats.iter().map(|c| c.id).collect();
    assert_eq!(ids, [new, going, old]);
}

/// `cargo test --release --lib writer_throughput -- --ignored --nocapture`.
/// One thread queues short messages to `TQ_BENCH_CHATS` chats (default 500,
/// about the number active in the 1000-student benchmark) round robin, as
/// fast as the bound lets it, while the writer commits. Prints messages/s
/// and the writer thread's CPU time per message (Linux `schedstat`), which
/// is what the writer takes from the server on a small machine.
/// `TQ_BENCH_RATE=40000` paces the sender (messages/s) instead;
/// `TQ_BENCH_INTERVAL_MS` sets the commit interval, `TQ_BENCH_STAGED` the
/// rows staged before a move.
#[test]
#[ignore]
fn writer_throughput() {
    let chat_count: usize = std::env::var("TQ_BENCH_CHATS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    // Optional pacing (messages/s), as in a server that is not saturated.
    let rate: Option<f64> = std::env::var("TQ_BENCH_RATE")
        .ok()
        .and_then(|n| n.parse().ok());
    let mut options = StoreOptions::default();
    if let Some(ms) = std::env::var("TQ_BENCH_INTERVAL_MS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        options.commit_interval = Duration::from_millis(ms);
    }
    if let Some(rows) = std::env::var("TQ_BENCH_STAGED")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        options.staged_messages = rows;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, options);
    let chats: Vec<ChatId> = (0..chat_count).map(|_| new_chat()).collect();
    for chat in &chats {
        store.chat_created(
            *chat,
            &teacher("1"),
            &student("2"),
            SystemTime::now(),
            Default::default(),
        );
    }
    store.flush();
    let payload = raw(r#"{"message":"Message from teacher: a typical short chat line"}"#);
    let total = 200_000;
    let cpu_before = writer_cpu();
    let begun = Instant::now();
    let mut refused = 0;
    let mut sent = 0;
    while sent < total {
        let chat = chats[sent % chats.len()];
        match store.message(chat, Role::Teacher, &payload, SystemTime::now()) {
            Ok(()) => {
                sent += 1;
                if let Some(rate) = rate {
                    let due = Duration::from_secs_f64(sent as f64 / rate);
                    if let Some(early) = due.checked_sub(begun.elapsed()) {
                        std::thread::sleep(early);
                    }
                }
            }
            Err(_) => {
                refused += 1;
                std::thread::yield_now();
            }
        }
    }
    store.flush();
    let elapsed = begun.elapsed();
    let cpu = writer_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    println!(
        "writer committed {total} messages to {chat_count} chats in {elapsed:?}: \
         {:.0} messages/s, writer CPU {} per message \
         ({refused} refusals for backpressure on the way)",
        total as f64 / elapsed.as_secs_f64(),
        cpu.map_or("unknown".into(), |cpu| format!(
            "{:.2} µs",
            cpu.as_secs_f64() * 1e6 / total as f64
        )),
    );
}

/// CPU time the writer thread has used so far (Linux only).
fn writer_cpu() -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?.path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim_end() == "transcript-writ" {
            let stat = std::fs::read_to_string(task.join("schedstat")).ok()?;
            let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(ns));
        }
    }
    None
}

/// While commits fail, new messages are refused (`Unavailable`) and nothing
/// queued is dropped or reported done; once commits succeed again, the queue
/// commits in order and messages are taken again.
#[test]
fn a_failing_store_refuses_messages_and_commits_the_queue_when_it_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let chat = new_chat();
    created(&store, chat, "1", "2", at(1));
    store.flush();
    store.set_failing(true);
    store
        .message(chat, Role::Teacher, &raw(r#"{"n":1}"#), at(2))
        .expect("taken: the store does not know yet");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.failure().is_none() {
        assert!(Instant::now() < deadline, "never failing");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(store.failure().is_some_and(|f| f.contains("full")));
    assert_eq!(
        store.message(chat, Role::Teacher, &raw(r#"{"n":2}"#), at(3)),
        Err(Backpressure::Unavailable)
    );
    let (done, finished) = mpsc::channel();
    store.chat_finished(chat, EndReason::Terminated, at(4), move || {
        let _ = done.send(());
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(finished.try_recv().is_err(), "no finish before its commit");
    let lag = store.lag();
    assert!(lag.failing && lag.failed_commits >= 2, "{lag:?}");
    assert_eq!(lag.uncommitted, 2);

    store.set_failing(false);
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the finish commits once the store recovers");
    assert_eq!(store.failure(), None);
    let t = transcript(&store, chat);
    assert_eq!(payloads(&t), [r#"{"n":1}"#]);
    assert_eq!(t.chat.ended, Some(EndReason::Terminated));
    store
        .message(chat, Role::Student, &raw("{}"), at(5))
        .expect("taken again");
}

/// Dropping the last handle of a store that cannot commit does not hang:
/// after its close grace the writer gives up (what it held is lost), and
/// the directory can be opened again.
#[test]
fn closing_a_failing_store_gives_up_after_its_grace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chat = new_chat();
    let store = open(
        &dir,
        StoreOptions {
            close_grace: Duration::from_millis(100),
            ..quick()
        },
    );
    created(&store, chat, "1", "2", at(1));
    store.flush();
    store.set_failing(true);
    store
        .message(chat, Role::Teacher, &raw("{}"), at(2))
        .expect("taken");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(store);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the close is bounded");
    let store = open(&dir, quick());
    let t = transcript(&store, chat);
    assert!(t.messages.is_empty(), "the uncommitted message is lost");
    assert_eq!(t.chat.ended, Some(EndReason::Interrupted));
}

/// A chat keeps the question its student asked and when the student got
/// in line (schema 6), and reads them back; a chat created without them has
/// neither. A repeated create changes nothing.
#[test]
fn a_chat_keeps_its_question_and_when_its_student_got_in_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let (asked, plain) = (new_chat(), new_chat());
    let question = "Why does \"x\" overflow? ünïcode ✓".to_owned();
    let opening = ChatOpening {
        question: Some(question.clone()),
        queued_at: Some(at(700)),
    };
    store.chat_created(asked, &teacher("1"), &student("2"), at(1_000), opening);
    let other = ChatOpening {
        question: Some("changed".to_owned()),
        queued_at: Some(at(1)),
    };
    store.chat_created(asked, &teacher("1"), &student("2"), at(1_000), other);
    store.chat_created(
        plain,
        &teacher("1"),
        &student("3"),
        at(2_000),
        ChatOpening::default(),
    );
    store.flush();

    let t = transcript(&store, asked);
    assert_eq!(t.chat.question.as_deref(), Some(question.as_str()));
    assert_eq!(t.chat.queued_at, Some(at(700)));
    let t = transcript(&store, plain);
    assert_eq!(t.chat.question, None);
    assert_eq!(t.chat.queued_at, None);
    let page = store.list_chats(&ChatQuery::default()).expect("list");
    let listed: Vec<(Option<&str>, Option<SystemTime>)> = page
        .chats
        .iter()
        .map(|c| (c.question.as_deref(), c.queued_at))
        .collect();
    assert_eq!(
        listed,
        [(None, None), (Some(question.as_str()), Some(at(700)))]
    );
}

/// Migration 6 applies over a version-5 database with chats in it: they
/// keep everything and have no question and no line time.
#[test]
fn migration_6_applies_over_a_version_5_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chat = new_chat();
    {
        let mut conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open");
        store::migrations()
            .to_version(&mut conn, 5)
            .expect("schema 5");
        conn.execute(
            "INSERT INTO chats (id, teacher, student, created_at, started_at, finished_at,
                               ended_by, teacher_signed, student_signed)
             VALUES (?1, 't', 's', 10, 20, 30, 'terminated', 1, 0)",
            [chat.to_string()],
        )
        .expect("a version-5 chat");
    }
    let store = open(&dir, quick());
    let t = transcript(&store, chat);
    assert_eq!(t.chat.created_at, at(10));
    assert_eq!(t.chat.finished_at, Some(at(30)));
    assert!(t.chat.teacher.0.is_signed());
    assert_eq!((t.chat.question, t.chat.queued_at), (None, None));
}

/// The figures of the statistics: every chat since the given time counted,
/// each one's wait (creation − line time, when known) and length (finish −
/// start, when both are known), newest first, with its teacher.
#[test]
fn the_figures_are_those_of_the_chats_since() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir, quick());
    let line = |ms| ChatOpening {
        question: None,
        queued_at: Some(at(ms)),
    };
    let (old, waited, unknown, running) = (new_chat(), new_chat(), new_chat(), new_chat());
    store.chat_created(old, &teacher("ann"), &student("1"), at(500), line(100));
    store.chat_created(
        waited,
        &teacher("ann"),
        &student("2"),
        at(5_000),
        line(2_000),
    );
    store.chat_started(waited, at(5_100));
    store.chat_finished(waited, EndReason::Terminated, at(65_100), || {});
    store.chat_created(
        unknown,
        &teacher("bob"),
        &student("3"),
        at(6_000),
        ChatOpening::default(),
    );
    store.chat_started(unknown, at(6_000));
    store.chat_finished(unknown, EndReason::StudentLeft, at(7_000), || {});
    store.chat_created(
        running,
        &teacher("ann"),
        &student("4"),
        at(8_000),
        line(7_500),
    );
    store.chat_started(running, at(8_100));
    store.flush();

    let figures = store.figures(1_000).expect("figures");
    assert_eq!(
        figures.chats, 3,
        "the chat created before `since` is not counted"
    );
    let rows: Vec<(i64, Option<i64>, Option<i64>, &str)> = figures
        .rows
        .iter()
        .map(|r| {
            let teacher = figures.teachers[r.3 as usize].as_str();
            (r.created_at(), r.wait_ms(), r.length_ms(), teacher)
        })
        .collect();
    assert_eq!(
        rows,
        [
            (8_000, Some(500), None, "ann"),
            (6_000, None, Some(1_000), "bob"),
            (5_000, Some(3_000), Some(60_000), "ann"),
        ]
    );
    assert_eq!(store.figures(0).expect("all").chats, 4);
    assert_eq!(store.figures(9_000).expect("none"), Default::default());
    assert_eq!(
        Transcripts::disabled().figures(0).expect("disabled"),
        Default::default()
    );
}
