//! The SQLite side of the transcript store: opening the database file,
//! pragmas and migrations, the four writes, and the three reads (chats,
//! a transcript, the figures of the statistics).
//!
//! Owns every SQL statement and the schema (`migrations/*.sql`, applied by
//! `rusqlite_migration` and versioned in `PRAGMA user_version`), and the
//! writer's memory of the active chats ([`Writer`]: each one's number and
//! next `seq`, entered at creation, dropped at finish, and changed only once
//! the batch that changes it has committed).
//!
//! Must never be called from an async thread (every call here may touch the
//! disk), never write from a read connection (they are opened read-only), and
//! never trust a row enough to panic on it: a malformed row is a
//! `StoreError::Corrupt`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use rusqlite_migration::{Migrations, M};
use serde_json::value::RawValue;

use super::inbox::Op;
use super::{
    ChatPage, ChatQuery, ChatRecord, EndReason, StoreError, Transcript, TranscriptMessage,
    TranscriptQuery, MAX_CHAT_PAGE, MAX_TRANSCRIPT_PAGE, TRANSCRIPT_PAGE_BYTES,
};
use crate::domain::{ChatId, Role, StudentKey, TeacherKey, UserKey};
use crate::stats::{Figures, MAX_CHATS};

/// The database file inside the data directory (beside it SQLite keeps
/// `-wal` and `-shm`).
pub const DB_FILE: &str = "transcripts.sqlite3";

/// How long a connection waits for a lock held by another (a checkpoint, a
/// second process on the same directory) before the statement fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Past a checkpoint, the WAL file is truncated back to this size.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The writer's page cache, in KiB (SQLite's default is 2 MiB). It must
/// hold the pages a batch dirties (about one per chat in it: the end of that
/// chat's messages) plus the tree above them; when it cannot, SQLite spills
/// dirty pages to the WAL in mid-transaction and reads them back, which
/// doubled the writer's work with 500 active chats.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// The WAL is checkpointed into the database once it holds this many pages
/// (32 MiB of 4 KiB pages; SQLite's default is 1000). Busy chats rewrite the
/// same pages commit after commit; a longer WAL copies each of them back
/// once per checkpoint instead of many times (with 500 active chats the
/// checkpoints took 30% of the writer's time at the default).
const CHECKPOINT_PAGES: i64 = 8192;

/// SQLite's largest `max_page_count` (its default since 3.45).
const MAX_PAGE_COUNT: i64 = 0xffff_fffe;

/// The schema, one entry per file in `migrations/`, never edited once
/// released: a change is a new file.
pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/0001_init.sql")),
        M::up(include_str!("../../migrations/0002_chat_numbers.sql")),
        M::up(include_str!("../../migrations/0003_message_log.sql")),
        M::up(include_str!("../../migrations/0004_interrupted.sql")),
        M::up(include_str!("../../migrations/0005_signed_users.sql")),
        M::up(include_str!(
            "../../migrations/0006_question_and_queued_at.sql"
        )),
    ])
}

/// The writer's connection: creates the file, switches it to WAL, migrates.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotWal(mode));
    }
    // See the module docs of `transcripts` for why NORMAL survives a crash
    // of the process.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// Finishes every chat that has no finish record, as `interrupted`: the
/// server that was running it died (a crash, SIGKILL, power loss) before
/// writing one, and no later run could. Its `finished_at` is the last time
/// the store has of it: its last recorded message, else its start, else its
/// creation. Call at open, before the writer takes any write (every chat
/// unfinished then belongs to a run that is over). Returns how many.
pub(super) fn finish_interrupted(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE chats SET ended_by = 'interrupted',
             finished_at = max(created_at,
                               coalesce(started_at, 0),
                               coalesce((SELECT at FROM messages WHERE chat_num = chats.num
                                         ORDER BY seq DESC LIMIT 1), 0),
                               coalesce((SELECT max(at) FROM message_log
                                         WHERE chat_num = chats.num), 0))
         WHERE finished_at IS NULL",
        [],
    )
}

/// A read-only connection; in WAL mode it never blocks the writer.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// A chat the writer saw created and not yet finished: its number
/// (`chats.num`) and the `seq` its next message gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Active {
    num: i64,
    next_seq: i64,
}

/// The writing connection and what it knows of the active chats, so that a
/// message insert looks nothing up. Bounded by the chats in progress: an
/// entry is made when a chat is created (or when a message comes for an
/// unfinished chat it does not know, e.g. one created before a restart) and
/// dropped when the chat finishes.
pub(super) struct Writer {
    conn: Connection,
    active: HashMap<ChatId, Active>,
    /// Rows in `message_log` as of the last commit.
    staged: usize,
    /// `staged` at which the next move into `messages` is due.
    move_at: usize,
    /// [`StoreOptions::staged_messages`](super::StoreOptions::staged_messages).
    threshold: usize,
    /// What the batch being written changes in `active`: applied once its
    /// transaction commits, discarded if it fails (a retry starts over from
    /// `active`, so a rolled-back batch cannot skip or repeat numbers).
    /// `None` removes the entry.
    changes: HashMap<ChatId, Option<Active>>,
}

impl Writer {
    /// `threshold`: rows staged in `message_log` before they are moved
    /// into `messages` (at least 1).
    pub(super) fn new(conn: Connection, threshold: usize) -> rusqlite::Result<Self> {
        let staged: i64 = conn.query_row("SELECT count(*) FROM message_log", [], |r| r.get(0))?;
        let staged = usize::try_from(staged).unwrap_or(0);
        let threshold = threshold.max(1);
        Ok(Writer {
            conn,
            active: HashMap::new(),
            changes: HashMap::new(),
            staged,
            move_at: threshold,
            threshold,
        })
    }

    /// Writes a batch in one transaction, in queue order; then, if
    /// `message_log` holds enough rows, moves them into `messages`.
    pub(super) fn commit(&mut self, batch: &[Op]) -> rusqlite::Result<()> {
        self.changes.clear();
        let tx = self.conn.transaction()?;
        let mut chats = Chats {
            active: &self.active,
            changes: &mut self.changes,
        };
        let mut staged = 0;
        for op in batch {
            staged += apply(&tx, &mut chats, op)?;
        }
        tx.commit()?;
        self.staged += staged;
        for (chat, change) in self.changes.drain() {
            match change {
                Some(entry) => self.active.insert(chat, entry),
                None => self.active.remove(&chat),
            };
        }
        if self.staged >= self.move_at {
            // The batch is committed whatever happens here: a failed move
            // leaves the rows staged (still read, still durable) and is
            // tried again a threshold later.
            if let Err(error) = self.move_staged() {
                tracing::warn!(%error, staged = self.staged, "moving staged messages failed");
                self.move_at = self.staged + self.threshold;
            }
        }
        Ok(())
    }

    /// Moves every row of `message_log` into `messages`, sorted by chat and
    /// seq (so each chat's pages are touched once), in one transaction.
    pub(super) fn move_staged(&mut self) -> rusqlite::Result<()> {
        if self.staged == 0 {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO messages (chat_num, seq, sender, payload, at)
             SELECT chat_num, seq, sender, payload, at FROM message_log
             ORDER BY chat_num, seq",
        )?
        .execute([])?;
        tx.prepare_cached("DELETE FROM message_log")?.execute([])?;
        tx.commit()?;
        self.staged = 0;
        self.move_at = self.threshold;
        Ok(())
    }

    /// Test hook: `PRAGMA max_page_count` (None: SQLite's largest), how the
    /// tests fill the disk for real (SQLITE_FULL) and give the space back.
    /// SQLite never sets it below the pages already in use.
    pub(super) fn set_page_limit(&mut self, pages: Option<u64>) -> rusqlite::Result<()> {
        let pages = pages.map_or(MAX_PAGE_COUNT, |n| {
            i64::try_from(n).unwrap_or(MAX_PAGE_COUNT)
        });
        let now: i64 = self
            .conn
            .pragma_update_and_check(None, "max_page_count", pages, |row| row.get(0))?;
        tracing::debug!(max_page_count = now, "transcript writer page limit");
        Ok(())
    }

    /// Rows in `message_log` (for tests).
    #[cfg(test)]
    pub(super) fn staged(&self) -> usize {
        self.staged
    }

    /// Active chats known (for tests).
    #[cfg(test)]
    pub(super) fn active_chats(&self) -> usize {
        self.active.len()
    }
}

/// The active chats as the batch in progress sees them.
struct Chats<'a> {
    active: &'a HashMap<ChatId, Active>,
    changes: &'a mut HashMap<ChatId, Option<Active>>,
}

impl Chats<'_> {
    fn get(&self, chat: &ChatId) -> Option<Active> {
        match self.changes.get(chat) {
            Some(change) => *change,
            None => self.active.get(chat).copied(),
        }
    }

    fn set(&mut self, chat: ChatId, entry: Option<Active>) {
        self.changes.insert(chat, entry);
    }
}

/// A chat's number and next seq from the database, and whether it has
/// finished; `None` if there is no such chat.
fn load_active(tx: &Transaction<'_>, chat: &str) -> rusqlite::Result<Option<(Active, bool)>> {
    // The staged rows are few (bounded by the move threshold): a scan.
    tx.prepare_cached(
        "SELECT num,
                max((SELECT coalesce(max(seq), 0) FROM messages WHERE chat_num = chats.num),
                    (SELECT coalesce(max(seq), 0) FROM message_log WHERE chat_num = chats.num))
                    + 1,
                finished_at IS NOT NULL
         FROM chats WHERE id = ?1",
    )?
    .query_row([chat], |row| {
        Ok((
            Active {
                num: row.get(0)?,
                next_seq: row.get(1)?,
            },
            row.get::<_, bool>(2)?,
        ))
    })
    .optional()
}

/// Every write is idempotent in effect and never fails on a missing or
/// repeated record, so one odd op cannot fail a whole batch: a second
/// create of the same id is ignored, a start or finish is recorded once, a
/// message for a chat that has no record is logged and skipped (it could
/// never be read: messages are found through their chat). Returns the
/// messages it staged (0 or 1).
fn apply(tx: &Transaction<'_>, chats: &mut Chats<'_>, op: &Op) -> rusqlite::Result<usize> {
    match op {
        Op::ChatCreated {
            chat,
            teacher,
            student,
            at,
            question,
            queued_at,
        } => {
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO chats (id, teacher, student, created_at, teacher_signed,
                                        student_signed, question, queued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    chat.to_string(),
                    teacher.0.as_str(),
                    student.0.as_str(),
                    at,
                    teacher.0.is_signed(),
                    student.0.is_signed(),
                    question.as_deref(),
                    queued_at,
                ])?;
            if inserted == 1 {
                let num = tx.last_insert_rowid();
                chats.set(*chat, Some(Active { num, next_seq: 1 }));
            }
        }
        Op::ChatStarted { chat, at } => {
            tx.prepare_cached(
                "UPDATE chats SET started_at = ?2 WHERE id = ?1 AND started_at IS NULL",
            )?
            .execute(params![chat.to_string(), at])?;
        }
        Op::Message {
            chat,
            sender,
            payload,
            at,
        } => {
            let (entry, remember) = match chats.get(chat) {
                Some(entry) => (entry, true),
                // Not created in this run of the writer (or finished): ask
                // the database, and remember the chat if it is still going.
                None => match load_active(tx, &chat.to_string())? {
                    Some((entry, finished)) => (entry, !finished),
                    None => {
                        tracing::warn!(%chat, "a message for a chat with no record; not stored");
                        return Ok(0);
                    }
                },
            };
            tx.prepare_cached(
                "INSERT INTO message_log (chat_num, seq, sender, payload, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                entry.num,
                entry.next_seq,
                sender.as_str(),
                &**payload,
                at
            ])?;
            if remember {
                let next_seq = entry.next_seq + 1;
                chats.set(*chat, Some(Active { next_seq, ..entry }));
            }
            return Ok(1);
        }
        Op::ChatFinished { chat, how, at, .. } => {
            tx.prepare_cached(
                "UPDATE chats SET finished_at = ?2, ended_by = ?3
                 WHERE id = ?1 AND finished_at IS NULL",
            )?
            .execute(params![chat.to_string(), at, how.as_str()])?;
            chats.set(*chat, None);
        }
        Op::Barrier { .. } => {}
    }
    Ok(0)
}

/// A few idle read-only connections, reused across requests. More readers
/// than that at once each open their own connection and close it after.
pub(super) struct Readers {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

impl Readers {
    pub(super) fn new(path: std::path::PathBuf, keep: usize) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            keep,
        }
    }

    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = read(&conn);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.keep {
                idle.push(conn);
            }
        }
        result
    }

    pub(super) fn list_chats(&self, query: &ChatQuery) -> Result<ChatPage, StoreError> {
        self.with(|conn| list_chats(conn, query))
    }

    pub(super) fn transcript(
        &self,
        chat: ChatId,
        query: &TranscriptQuery,
    ) -> Result<Option<Transcript>, StoreError> {
        self.with(|conn| transcript(conn, chat, query))
    }

    pub(super) fn figures(&self, since: i64) -> Result<Figures, StoreError> {
        self.with(|conn| figures(conn, since))
    }
}

/// The figures of the chats created at or after `since` (unix ms): their
/// count, and the newest [`MAX_CHATS`] of them, newest first, read through
/// the index on `created_at`.
fn figures(conn: &Connection, since: i64) -> Result<Figures, StoreError> {
    let chats: i64 = conn
        .prepare_cached("SELECT count(*) FROM chats WHERE created_at >= ?1")?
        .query_row([since], |row| row.get(0))?;
    let mut figures = Figures {
        chats: u64::try_from(chats).unwrap_or(0),
        ..Figures::default()
    };
    let mut statement = conn.prepare_cached(
        "SELECT created_at, created_at - queued_at, finished_at - started_at, teacher
         FROM chats WHERE created_at >= ?1
         ORDER BY created_at DESC, id DESC LIMIT ?2",
    )?;
    let mut rows = statement.query(params![since, MAX_CHATS as i64])?;
    let mut teachers = HashMap::new();
    while let Some(row) = rows.next()? {
        let teacher: String = row.get(3)?;
        figures.push(
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            &teacher,
            &mut teachers,
        );
    }
    Ok(figures)
}

const CHAT_COLUMNS: &str = "id, teacher, student, created_at, started_at, finished_at, ended_by, \
     teacher_signed, student_signed, question, queued_at";

/// Newest first by (created_at, id); `before` is exclusive. The WHERE clause
/// is built from the filters present (rather than `?1 IS NULL OR …`) so the
/// planner can pick the per-teacher or per-student index.
fn list_chats(conn: &Connection, query: &ChatQuery) -> Result<ChatPage, StoreError> {
    let limit = query.limit.clamp(1, MAX_CHAT_PAGE);
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(teacher) = &query.teacher {
        conditions.push("teacher = ?");
        values.push(SqlValue::Text(teacher.0.as_str().to_owned()));
        if !query.any_namespace {
            conditions.push("teacher_signed = ?");
            values.push(SqlValue::Integer(teacher.0.is_signed().into()));
        }
    }
    if let Some(student) = &query.student {
        conditions.push("student = ?");
        values.push(SqlValue::Text(student.0.as_str().to_owned()));
        if !query.any_namespace {
            conditions.push("student_signed = ?");
            values.push(SqlValue::Integer(student.0.is_signed().into()));
        }
    }
    if let Some(before) = &query.before {
        conditions.push("(created_at, id) < (?, ?)");
        values.push(SqlValue::Integer(before.created_at));
        values.push(SqlValue::Text(before.chat.to_string()));
    }
    let mut sql = format!("SELECT {CHAT_COLUMNS} FROM chats");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
    // One more than asked tells whether there is a next page.
    values.push(SqlValue::Integer(limit as i64 + 1));

    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    let mut chats = Vec::with_capacity(limit.min(64));
    let mut more = false;
    while let Some(row) = rows.next()? {
        if chats.len() == limit {
            more = true;
            break;
        }
        chats.push(chat_from_row(row)?);
    }
    let next = if more {
        chats.last().map(|last| super::ChatCursor {
            created_at: unix_ms(last.created_at),
            chat: last.id,
        })
    } else {
        None
    };
    Ok(ChatPage { chats, next })
}

/// The chat and one page of its messages after `query.after`, in relay order.
fn transcript(
    conn: &Connection,
    chat: ChatId,
    query: &TranscriptQuery,
) -> Result<Option<Transcript>, StoreError> {
    let id = chat.to_string();
    let record = conn
        .prepare_cached(&format!(
            "SELECT {CHAT_COLUMNS}, num FROM chats WHERE id = ?1"
        ))?
        .query_row([&id], |row| {
            Ok((chat_from_row(row), row.get::<_, i64>(11)?))
        })
        .optional()?;
    let Some((record, num)) = record else {
        return Ok(None);
    };
    let record = record?;
    let limit = query.limit.clamp(1, MAX_TRANSCRIPT_PAGE);
    let after = i64::try_from(query.after).unwrap_or(i64::MAX);
    // Moved messages through the primary key, staged ones (a few thousand
    // rows at most) by a scan; a message is in exactly one of the two.
    let mut statement = conn.prepare_cached(
        "SELECT seq, sender, payload, at FROM messages WHERE chat_num = ?1 AND seq > ?2
         UNION ALL
         SELECT seq, sender, payload, at FROM message_log WHERE chat_num = ?1 AND seq > ?2
         ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = statement.query(params![num, after, limit as i64 + 1])?;
    let mut messages: Vec<TranscriptMessage> = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if messages.len() == limit || bytes >= TRANSCRIPT_PAGE_BYTES {
            more = true;
            break;
        }
        let seq: i64 = row.get(0)?;
        let sender: String = row.get(1)?;
        let payload: String = row.get(2)?;
        let at: i64 = row.get(3)?;
        bytes += payload.len();
        messages.push(TranscriptMessage {
            seq: u64::try_from(seq).map_err(|_| corrupt("message seq", &seq.to_string()))?,
            sender: Role::parse(&sender).ok_or_else(|| corrupt("message sender", &sender))?,
            payload: RawValue::from_string(payload)
                .map_err(|_| StoreError::Corrupt(format!("message {seq} of {id}: payload")))?,
            at: from_unix_ms(at),
        });
    }
    let next = if more {
        messages.last().map(|m| m.seq)
    } else {
        None
    };
    Ok(Some(Transcript {
        chat: record,
        messages,
        next,
    }))
}

fn chat_from_row(row: &rusqlite::Row<'_>) -> Result<ChatRecord, StoreError> {
    let id: String = row.get(0)?;
    let teacher: String = row.get(1)?;
    let student: String = row.get(2)?;
    let ended: Option<String> = row.get(6)?;
    let key = |text: &str, signed: bool, what| {
        UserKey::new(text)
            .map(|key| key.in_namespace(signed))
            .ok_or_else(|| corrupt(what, &id))
    };
    Ok(ChatRecord {
        id: ChatId::parse(&id).ok_or_else(|| corrupt("chat id", &id))?,
        teacher: TeacherKey(key(&teacher, row.get(7)?, "teacher")?),
        student: StudentKey(key(&student, row.get(8)?, "student")?),
        created_at: from_unix_ms(row.get(3)?),
        started_at: row.get::<_, Option<i64>>(4)?.map(from_unix_ms),
        finished_at: row.get::<_, Option<i64>>(5)?.map(from_unix_ms),
        ended: match ended {
            None => None,
            Some(text) => Some(EndReason::parse(&text).ok_or_else(|| corrupt("ended_by", &text))?),
        },
        question: row.get(9)?,
        queued_at: row.get::<_, Option<i64>>(10)?.map(from_unix_ms),
    })
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

/// Milliseconds since the epoch; times before it count as 0.
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    #[test]
    fn unix_ms_round_trips_and_clamps_before_the_epoch() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_ms(t), 1_700_000_000_123);
        assert_eq!(from_unix_ms(unix_ms(t)), t);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_unix_ms(-5), UNIX_EPOCH);
    }

    /// The list queries walk an index in order: no full scan, no sort.
    #[test]
    fn list_queries_use_an_index_and_no_sort() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_writer(&dir.path().join(DB_FILE)).expect("open");
        let plans = [
            ("", vec![]),
            ("WHERE teacher = ?", vec![SqlValue::Text("1".into())]),
            (
                "WHERE student = ? AND (created_at, id) < (?, ?)",
                vec![
                    SqlValue::Text("1".into()),
                    SqlValue::Integer(5),
                    SqlValue::Text("x".into()),
                ],
            ),
        ];
        for (filter, mut values) in plans {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT {CHAT_COLUMNS} FROM chats {filter} \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            );
            values.push(SqlValue::Integer(10));
            let mut statement = conn.prepare(&sql).expect("prepare");
            let plan: Vec<String> = statement
                .query_map(rusqlite::params_from_iter(values), |row| row.get(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            let plan = plan.join("; ");
            assert!(plan.contains("USING INDEX"), "{filter}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{filter}: {plan}");
        }
    }

    fn writer(dir: &tempfile::TempDir) -> Writer {
        Writer::new(open_writer(&dir.path().join(DB_FILE)).expect("open"), 4096).expect("writer")
    }

    fn created(chat: ChatId) -> Op {
        Op::ChatCreated {
            chat,
            teacher: TeacherKey(UserKey::new("1").expect("key")),
            student: StudentKey(UserKey::new("2").expect("key")),
            at: 1,
            question: None,
            queued_at: None,
        }
    }

    fn message(chat: ChatId) -> Op {
        Op::Message {
            chat,
            sender: Role::Teacher,
            payload: "{}".into(),
            at: 2,
        }
    }

    fn finished(chat: ChatId) -> Op {
        Op::ChatFinished {
            chat,
            how: EndReason::Terminated,
            at: 3,
            then: Box::new(|| {}),
        }
    }

    fn seqs(writer: &Writer, chat: ChatId) -> Vec<u64> {
        transcript(&writer.conn, chat, &TranscriptQuery::default())
            .expect("read")
            .expect("stored")
            .messages
            .iter()
            .map(|m| m.seq)
            .collect()
    }

    /// The writer remembers a chat from its creation to its finish, no
    /// longer; a late message for a finished chat is still numbered right.
    #[test]
    fn the_writer_remembers_only_active_chats() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer = writer(&dir);
        let (a, b) = (
            ChatId::random(&mut rand::rng()),
            ChatId::random(&mut rand::rng()),
        );
        writer
            .commit(&[created(a), created(b), message(a), message(b), message(a)])
            .expect("commit");
        assert_eq!(writer.active_chats(), 2);
        writer
            .commit(&[message(a), finished(a), message(a)])
            .expect("commit");
        assert_eq!(writer.active_chats(), 1);
        assert_eq!(seqs(&writer, a), [1, 2, 3, 4]);
        assert_eq!(seqs(&writer, b), [1]);
        // A message for a chat with no record is skipped, not an error.
        let ghost = ChatId::random(&mut rand::rng());
        writer
            .commit(&[message(ghost), finished(b)])
            .expect("commit");
        assert_eq!(writer.active_chats(), 0);
    }

    /// A batch that fails to commit leaves the remembered numbers as they
    /// were: its retry numbers the same messages the same way.
    #[test]
    fn a_failed_batch_does_not_advance_the_numbers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut writer = writer(&dir);
        writer.conn.busy_timeout(Duration::ZERO).expect("timeout");
        let chat = ChatId::random(&mut rand::rng());
        writer
            .commit(&[created(chat), message(chat)])
            .expect("commit");

        let other = Connection::open(dir.path().join(DB_FILE)).expect("open");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let new = ChatId::random(&mut rand::rng());
        let batch = [message(chat), created(new), message(new), message(chat)];
        assert!(writer.commit(&batch).is_err(), "the database is locked");
        other.execute_batch("ROLLBACK").expect("unlock");
        writer.commit(&batch).expect("retry");
        assert_eq!(seqs(&writer, chat), [1, 2, 3]);
        assert_eq!(seqs(&writer, new), [1]);
    }

    /// A message's chat is found through the unique index on the id, and
    /// the next number (for a chat the writer does not remember) and a
    /// transcript page through the messages' primary key: no scan, no sort.
    #[test]
    fn message_lookups_use_the_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_writer(&dir.path().join(DB_FILE)).expect("open");
        let plan = |sql: &str| -> String {
            let mut statement = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepare");
            let rows: Vec<String> = statement
                .query_map([], |row| row.get(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            rows.join("; ")
        };
        let next = plan(
            "SELECT num, (SELECT coalesce(max(seq), 0) + 1 FROM messages \
             WHERE chat_num = chats.num), finished_at IS NOT NULL FROM chats WHERE id = 'x'",
        );
        assert!(
            next.contains("USING INDEX sqlite_autoindex_chats"),
            "{next}"
        );
        assert!(
            next.contains("messages USING PRIMARY KEY (chat_num=?)"),
            "{next}"
        );
        let page = plan(
            "SELECT seq, sender, payload, at FROM messages \
             WHERE chat_num = 1 AND seq > 5 ORDER BY seq LIMIT 10",
        );
        assert!(
            page.contains("USING PRIMARY KEY (chat_num=? AND seq>?)"),
            "{page}"
        );
        assert!(!page.contains("TEMP B-TREE"), "{page}");
    }

    fn message_n(chat: ChatId, n: usize) -> Op {
        Op::Message {
            chat,
            sender: if n.is_multiple_of(2) {
                Role::Teacher
            } else {
                Role::Student
            },
            payload: format!("{{\"n\":{n}}}").into(),
            at: 10 + n as i64,
        }
    }

    fn page(conn: &Connection, chat: ChatId, after: u64, limit: usize) -> Vec<(u64, String)> {
        transcript(conn, chat, &TranscriptQuery { after, limit })
            .expect("read")
            .expect("stored")
            .messages
            .iter()
            .map(|m| (m.seq, m.payload.get().to_owned()))
            .collect()
    }

    /// A transcript reads messages still staged, moved, and both at once, in
    /// order, with pages that cross the boundary between the two tables.
    #[test]
    fn reads_see_staged_and_moved_messages_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_writer(&dir.path().join(DB_FILE)).expect("open");
        let mut writer = Writer::new(conn, 5).expect("writer");
        let (a, b) = (
            ChatId::random(&mut rand::rng()),
            ChatId::random(&mut rand::rng()),
        );
        writer.commit(&[created(a), created(b)]).expect("commit");
        let mut n = 0;
        let mut expected_a = Vec::new();
        for _ in 0..4 {
            let mut batch = Vec::new();
            for _ in 0..3 {
                batch.push(message_n(a, n));
                expected_a.push((expected_a.len() as u64 + 1, format!("{{\"n\":{n}}}")));
                n += 1;
                batch.push(message_n(b, n));
                n += 1;
            }
            // 6 per batch, threshold 5: every batch ends with a move.
            writer.commit(&batch).expect("commit");
        }
        assert_eq!(writer.staged(), 0, "moved at the threshold");
        let mut batch = Vec::new();
        for _ in 0..2 {
            batch.push(message_n(a, n));
            expected_a.push((expected_a.len() as u64 + 1, format!("{{\"n\":{n}}}")));
            n += 1;
        }
        writer.commit(&batch).expect("commit");
        assert_eq!(writer.staged(), 2, "below the threshold: still staged");
        let staged: i64 = writer
            .conn
            .query_row("SELECT count(*) FROM message_log", [], |r| r.get(0))
            .expect("count");
        assert_eq!(staged, 2);
        // Whole transcript, and pages of 5 that straddle the two tables.
        assert_eq!(page(&writer.conn, a, 0, 100), expected_a);
        assert_eq!(page(&writer.conn, a, 10, 3), expected_a[10..13]);
        assert_eq!(page(&writer.conn, a, 12, 100), expected_a[12..]);
        assert_eq!(seqs(&writer, b), (1..=12).collect::<Vec<u64>>());
        // And the same after the move.
        writer.move_staged().expect("move");
        assert_eq!(writer.staged(), 0);
        assert_eq!(page(&writer.conn, a, 0, 100), expected_a);
        assert_eq!(page(&writer.conn, a, 10, 3), expected_a[10..13]);
    }

    /// A writer that dies with rows still staged loses none of them: the
    /// next open reads them and a new writer numbers on after them.
    #[test]
    fn staged_rows_survive_a_crash_like_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chat = ChatId::random(&mut rand::rng());
        {
            let conn = open_writer(&dir.path().join(DB_FILE)).expect("open");
            let mut writer = Writer::new(conn, 1000).expect("writer");
            writer
                .commit(&[created(chat), message(chat)])
                .expect("commit");
            writer.move_staged().expect("move");
            writer
                .commit(&[message(chat), message(chat)])
                .expect("commit");
            assert_eq!(writer.staged(), 2);
            // No close, no move: as if the process had died.
            std::mem::forget(writer);
        }
        let conn = open_writer(&dir.path().join(DB_FILE)).expect("reopen");
        let mut writer = Writer::new(conn, 1000).expect("writer");
        assert_eq!(writer.staged(), 2);
        assert_eq!(seqs(&writer, chat), [1, 2, 3]);
        // Unknown to this writer: its next number counts the staged rows.
        writer.commit(&[message(chat)]).expect("commit");
        assert_eq!(seqs(&writer, chat), [1, 2, 3, 4]);
        writer.move_staged().expect("move");
        assert_eq!(seqs(&writer, chat), [1, 2, 3, 4]);
    }

    /// Migration 4 (the `interrupted` end) applies over a version-3
    /// database with data in it, keeping each chat's number; then the
    /// chats left unfinished are finished as interrupted, at their last
    /// record: the last message (moved or staged), else the start, else
    /// the creation.
    #[test]
    fn migration_4_keeps_the_chats_and_unfinished_ones_end_interrupted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DB_FILE);
        let ids: Vec<ChatId> = (0..5).map(|_| ChatId::random(&mut rand::rng())).collect();
        {
            let mut conn = Connection::open(&path).expect("open");
            migrations().to_version(&mut conn, 3).expect("schema 3");
            conn.execute_batch(&format!(
                "INSERT INTO chats VALUES (7, '{a}', '1', '2', 100, 150, 900, 'terminated');
                 INSERT INTO chats VALUES (8, '{b}', '1', '2', 200, 250, NULL, NULL);
                 INSERT INTO chats VALUES (9, '{c}', '1', '2', 300, 350, NULL, NULL);
                 INSERT INTO chats VALUES (10, '{d}', '1', '2', 400, 450, NULL, NULL);
                 INSERT INTO chats VALUES (11, '{e}', '1', '2', 500, NULL, NULL, NULL);
                 INSERT INTO messages VALUES (7, 1, 'teacher', '{{}}', 160);
                 INSERT INTO messages VALUES (8, 1, 'teacher', '{{}}', 260);
                 INSERT INTO messages VALUES (8, 2, 'student', '{{}}', 270);
                 INSERT INTO messages VALUES (9, 1, 'teacher', '{{}}', 360);
                 INSERT INTO message_log VALUES (9, 2, 'student', '{{}}', 380);",
                a = ids[0],
                b = ids[1],
                c = ids[2],
                d = ids[3],
                e = ids[4],
            ))
            .expect("version-3 rows");
        }
        let conn = open_writer(&path).expect("migrate");
        assert_eq!(finish_interrupted(&conn).expect("finish"), 4);
        assert_eq!(finish_interrupted(&conn).expect("again"), 0, "once");
        let ended = |chat: ChatId| {
            let t = transcript(&conn, chat, &TranscriptQuery::default())
                .expect("read")
                .expect("stored");
            (
                t.chat.ended,
                t.chat.finished_at.map(unix_ms),
                t.messages.len(),
            )
        };
        assert_eq!(ended(ids[0]), (Some(EndReason::Terminated), Some(900), 1));
        let interrupted = Some(EndReason::Interrupted);
        assert_eq!(ended(ids[1]), (interrupted, Some(270), 2), "last message");
        assert_eq!(ended(ids[2]), (interrupted, Some(380), 2), "a staged one");
        assert_eq!(ended(ids[3]), (interrupted, Some(450), 0), "its start");
        assert_eq!(ended(ids[4]), (interrupted, Some(500), 0), "its creation");
        // The numbers were kept: a new chat gets the next one.
        let mut writer = Writer::new(conn, 1000).expect("writer");
        let new = ChatId::random(&mut rand::rng());
        writer.commit(&[created(new)]).expect("commit");
        let num: i64 = writer
            .conn
            .query_row(
                "SELECT num FROM chats WHERE id = ?1",
                [new.to_string()],
                |r| r.get(0),
            )
            .expect("num");
        assert_eq!(num, 12);
    }

    /// A failing commit (a real SQLITE_FULL from `max_page_count`) leaves
    /// the remembered numbers and the staging count as they were: once
    /// space returns, the retried batch numbers the same messages the same
    /// way, with no gap, and a failed move leaves the rows staged.
    #[test]
    fn a_full_database_fails_the_commit_and_the_retry_numbers_right() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_writer(&dir.path().join(DB_FILE)).expect("open");
        let mut writer = Writer::new(conn, 50).expect("writer");
        let chat = ChatId::random(&mut rand::rng());
        writer
            .commit(&[created(chat), message(chat)])
            .expect("commit");
        writer.set_page_limit(Some(1)).expect("limit");
        let big = |n: usize| Op::Message {
            chat,
            sender: Role::Student,
            payload: format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(8000)).into(),
            at: 5,
        };
        let batch: Vec<Op> = (0..60).map(big).collect();
        let error = writer.commit(&batch).expect_err("the database is full");
        assert!(error.to_string().contains("full"), "{error}");
        assert_eq!(writer.staged(), 1, "the failed batch staged nothing");
        assert!(writer.commit(&batch).is_err(), "still full");
        writer.set_page_limit(None).expect("space returns");
        writer.commit(&batch).expect("retry");
        // 61 staged rows passed the threshold of 50: moved.
        assert_eq!(writer.staged(), 0);
        assert_eq!(seqs(&writer, chat), (1..=61).collect::<Vec<u64>>());
    }

    /// Migration 3 applies over a version-2 database with data in it.
    #[test]
    fn migration_3_applies_over_a_version_2_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DB_FILE);
        let chat = ChatId::random(&mut rand::rng());
        {
            let mut conn = Connection::open(&path).expect("open");
            migrations().to_version(&mut conn, 2).expect("schema 2");
            conn.execute_batch(&format!(
                "INSERT INTO chats (id, teacher, student, created_at) VALUES ('{chat}', '1', '2', 1);
                 INSERT INTO messages VALUES (1, 1, 'teacher', '{{\"a\":1}}', 5);
                 INSERT INTO messages VALUES (1, 2, 'student', '{{\"b\":2}}', 6);"
            ))
            .expect("version-2 rows");
        }
        let conn = open_writer(&path).expect("migrate");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, 6);
        let mut writer = Writer::new(conn, 1000).expect("writer");
        assert_eq!(
            page(&writer.conn, chat, 0, 100),
            [(1, r#"{"a":1}"#.to_owned()), (2, r#"{"b":2}"#.to_owned())]
        );
        writer.commit(&[message(chat)]).expect("commit");
        assert_eq!(seqs(&writer, chat), [1, 2, 3]);
    }
}
