//! The durable transcript store (issue 6): every chat's record and every
//! relayed message, in SQLite under the data directory.
//!
//! Owns the database file `<data_dir>/transcripts.sqlite3` (with its
//! `-wal` and `-shm`), the `LOCK` file that keeps a second store off the
//! same directory, the writer thread that alone writes the database, and
//! the read-only connections that serve the HTTP API. [`Transcripts`] is the cheap, cloneable handle to all of it.
//!
//! Must never make the relay path wait on the disk, never keep message
//! history in memory, and never grow without bound:
//!
//! * **Writes** are queued to one FIFO inbox and committed by the writer
//!   thread in batches (group commit: whatever is queued, up to
//!   `max_batch`, in one transaction, at most one commit per
//!   `commit_interval`). A call only takes a short lock.
//! * **Backpressure**: relayed messages are bounded (count and payload
//!   bytes). When the writer falls behind and the bound is reached,
//!   [`Transcripts::message`] neither blocks nor drops silently: it returns
//!   [`Backpressure::Backlog`], and the caller should refuse that message
//!   (not relay it) with the error reply `{"reason":"transcript backlog"}`,
//!   so that every relayed message is in the transcript. Lifecycle records (created,
//!   started, finished) are a few per chat and are always accepted.
//! * **Durability of finished chats**: [`Transcripts::chat_finished`] takes
//!   a callback that runs on the writer thread only after the transaction
//!   holding the finish record has committed. The inbox is FIFO, so every
//!   earlier write of that chat is committed too: send `chat:terminated`
//!   from that callback and the transcript is on disk before anyone hears
//!   the chat ended.
//! * **What "on disk" means**: the database is in WAL mode with
//!   `synchronous=NORMAL`. A commit appends the transaction's pages and a
//!   checksummed commit frame to the `-wal` file with `write(2)` before
//!   `COMMIT` returns; fsync happens only at checkpoints. A completed write
//!   lives in the kernel's page cache, which a dying process cannot take
//!   back, so a commit survives SIGKILL, a panic or an OOM kill of the
//!   server: the next open replays the WAL up to its last valid commit frame
//!   (tested by killing a writer process, see `tests/transcripts.rs`). A
//!   power loss or kernel crash may lose the last commits (never corrupt
//!   the file); `synchronous=FULL` would add an fsync per commit (one per
//!   batch, thanks to group commit) if that is ever required.
//! * **Failures**: a commit that fails (disk full, I/O error) is retried,
//!   with a backoff capped at 1 s, until it succeeds: no write is dropped
//!   while the store is open. Meanwhile the store is *failing*
//!   ([`Transcripts::failure`], [`WriterLag::failing`], counted in
//!   [`WriterLag::failed_commits`]) and [`Transcripts::message`] refuses
//!   every new message with [`Backpressure::Unavailable`], so that nothing
//!   is relayed that cannot be recorded; finish callbacks (so
//!   `chat:terminated`) wait for their commit like any other. When space
//!   returns, the queue commits in order and messages are taken again. The
//!   change of state is logged once each way. Only a store that is closing
//!   gives up, [`StoreOptions::close_grace`] after the close: it logs how
//!   many writes are lost and drops them with their callbacks unrun.
//! * **Interrupted chats**: a chat with no finish record when the store
//!   opens belongs to a run that died without writing one (SIGKILL, crash,
//!   power loss). Opening the store finishes it as
//!   [`EndReason::Interrupted`], at the time of its last record (last
//!   message, else start, else creation). Messages relayed in the last
//!   group-commit window before a kill were never committed and are not in
//!   its transcript.
//! * **Storage layout** (`migrations/`, schema 2): `chats` is keyed by a
//!   small increasing number (`num`, its rowid) besides its UUID `id`, and
//!   `messages` is a `WITHOUT ROWID` table clustered on `(chat_num, seq)`,
//!   so a message insert updates one B-tree. The writer remembers each
//!   active chat's number and next `seq` (from its creation to its finish,
//!   so bounded by the chats in progress; a chat it does not know, e.g. one
//!   created before a restart, is looked up once), and an insert looks
//!   nothing up. Its page cache (32 MiB) holds the pages a batch dirties,
//!   and the WAL is checkpointed every 8192 pages rather than SQLite's 1000.
//!   Schema 3: the writer appends messages to `message_log`, a plain rowid
//!   table with no index, so a commit dirties only its right edge rather
//!   than each active chat's last page of `messages` (every dirty page is
//!   written whole to the WAL). Once `message_log` holds
//!   [`StoreOptions::staged_messages`] rows (16384), and when the writer
//!   stops, the writer moves them into `messages` sorted by
//!   `(chat_num, seq)` and empties it, in one transaction of their own: each
//!   chat's pages are written once per move. A message is always in exactly
//!   one of the two tables (durable either way); reads take the union, and
//!   scan the staging table (about 1 ms per transcript page at 16384 staged
//!   rows; an index on it would bring back the random pages). A failed move leaves the rows staged and
//!   is retried a threshold later.
//! * **Reads** ([`Transcripts::list_chats`], [`Transcripts::transcript`])
//!   use their own read-only connections, which WAL lets run beside the
//!   writer. They touch the disk: call them off the async threads
//!   (`web::block`). Pages are bounded in rows and bytes.
//!
//! [`Transcripts::disabled`] (`--no-transcripts`) writes nothing, runs
//! callbacks at once, and reads as empty.

mod inbox;
mod store;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;

pub use crate::domain::Role;
use crate::domain::{ChatId, StudentKey, TeacherKey};
pub use inbox::WriterLag;
use inbox::{Bounds, Inbox, Op};
pub use store::{unix_ms, DB_FILE};

/// The lock file inside the data directory, held by the open store.
pub const LOCK_FILE: &str = "LOCK";

/// Chats per page of [`Transcripts::list_chats`] unless asked otherwise.
pub const DEFAULT_CHAT_PAGE: usize = 50;
/// Most chats one page may hold.
pub const MAX_CHAT_PAGE: usize = 500;
/// Messages per page of [`Transcripts::transcript`] unless asked otherwise.
pub const DEFAULT_TRANSCRIPT_PAGE: usize = 1000;
/// Most messages one transcript page may hold.
pub const MAX_TRANSCRIPT_PAGE: usize = 10_000;
/// A transcript page stops once its payloads reach this many bytes (it
/// always holds at least one message).
pub const TRANSCRIPT_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Bounds and pacing of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Relayed messages that may wait for the writer; past it,
    /// [`Transcripts::message`] returns [`Backpressure`].
    pub queue_messages: usize,
    /// Payload bytes that may wait for the writer (same consequence).
    pub queue_bytes: usize,
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Least time between the starts of two commits: a lone write waits at
    /// most this long, and under load each commit carries more writes.
    pub commit_interval: Duration,
    /// Idle read-only connections kept for reuse.
    pub idle_readers: usize,
    /// Messages appended to the staging table `message_log` before the
    /// writer moves them into `messages` in one sorted pass (and at close).
    /// Reads scan the staging table, so keep it a few thousand.
    pub staged_messages: usize,
    /// How long a store that is closing (its last handle dropped) keeps
    /// retrying a failing commit; then the writes still queued are given
    /// up (lost, and logged with their number) so that the process can exit.
    pub close_grace: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            queue_messages: 16 * 1024,
            queue_bytes: 32 * 1024 * 1024,
            max_batch: 2048,
            commit_interval: Duration::from_millis(2),
            idle_readers: 4,
            staged_messages: 16 * 1024,
            close_grace: Duration::from_secs(2),
        }
    }
}

/// The message was NOT recorded, so the caller must not relay it: it should
/// hold the sender and try again, then refuse the message with this error's
/// text as the reason (`{"reason":"transcript backlog"}` or
/// `{"reason":"transcript unavailable"}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Backpressure {
    /// The writer is behind: the inbox is at its bound.
    #[error("transcript backlog")]
    Backlog,
    /// The store cannot commit (disk full, I/O error) and refuses every
    /// new message until a commit succeeds; or it is closed.
    #[error("transcript unavailable")]
    Unavailable,
}

/// Opening or reading the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Opening (creating) `<data_dir>/LOCK` failed: e.g. a read-only
    /// directory, or a LOCK that is not a file.
    #[error("cannot open the LOCK file {path}: {source}")]
    LockFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `flock` on the LOCK file failed for a reason other than another
    /// store holding it.
    #[error("cannot lock the LOCK file {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Opening, configuring or migrating the database file failed.
    #[error("cannot open the transcript database {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<StoreError>,
    },
    #[error("the data directory {path} is in use by another transcript store (its LOCK is held)")]
    InUse { path: PathBuf },
    #[error("cannot start the transcript writer thread: {0}")]
    Thread(std::io::Error),
    #[error("transcript database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("transcript schema migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("the transcript database refused WAL mode (journal_mode is {0})")]
    NotWal(String),
    #[error("malformed row in the transcript database: {0}")]
    Corrupt(String),
}

/// How a chat ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `chat:terminate` by either side.
    Terminated,
    /// The student vanished (disconnected or left for good).
    StudentLeft,
    /// The teacher vanished; the student went back to the queue.
    TeacherLeft,
    /// The server stopped without finishing it (killed, crashed, power
    /// loss); written when the store next opens.
    Interrupted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Terminated => "terminated",
            EndReason::StudentLeft => "student_left",
            EndReason::TeacherLeft => "teacher_left",
            EndReason::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<EndReason> {
        match text {
            "terminated" => Some(EndReason::Terminated),
            "student_left" => Some(EndReason::StudentLeft),
            "teacher_left" => Some(EndReason::TeacherLeft),
            "interrupted" => Some(EndReason::Interrupted),
            _ => None,
        }
    }
}

/// One chat as stored. Times have millisecond precision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRecord {
    pub id: ChatId,
    pub teacher: TeacherKey,
    pub student: StudentKey,
    /// When it was created (the claim).
    pub created_at: SystemTime,
    /// When both sides had entered (`chat:ready`), if they did.
    pub started_at: Option<SystemTime>,
    /// When it finished, if it did.
    pub finished_at: Option<SystemTime>,
    pub ended: Option<EndReason>,
    /// What the student asked when it got in line (issue 14), if it asked.
    pub question: Option<String>,
    /// When the student got in line, if known (chats recorded before schema
    /// 6, or by a server that did not know it, have none).
    pub queued_at: Option<SystemTime>,
}

/// What a chat's record keeps of the student's turn in line (issue 14):
/// its question and when it got in line. `Default` is neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatOpening {
    pub question: Option<String>,
    pub queued_at: Option<SystemTime>,
}

/// Where a page of [`Transcripts::list_chats`] ends: pass it back as
/// [`ChatQuery::before`] for the next (older) page. Its text form
/// (`Display` / `FromStr`) is opaque to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatCursor {
    created_at: i64,
    chat: ChatId,
}

/// A cursor that this server did not hand out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed cursor")]
pub struct BadCursor;

impl fmt::Display for ChatCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at, self.chat)
    }
}

impl FromStr for ChatCursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, BadCursor> {
        let (created_at, chat) = text.split_once('_').ok_or(BadCursor)?;
        let digits = !created_at.is_empty() && created_at.bytes().all(|b| b.is_ascii_digit());
        if !digits {
            return Err(BadCursor);
        }
        Ok(ChatCursor {
            created_at: created_at.parse().map_err(|_| BadCursor)?,
            chat: ChatId::parse(chat).ok_or(BadCursor)?,
        })
    }
}

/// Which chats to list: newest first, optionally one teacher's or one
/// student's, `limit` per page (clamped to 1..=[`MAX_CHAT_PAGE`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatQuery {
    pub teacher: Option<TeacherKey>,
    pub student: Option<StudentKey>,
    /// Let the `teacher`/`student` filters match their id text in both
    /// namespaces (signed-in users and tokenless ids), not only their own:
    /// for an admin looking a user up by id.
    pub any_namespace: bool,
    pub limit: usize,
    /// Only chats older than this cursor (the `next` of the previous page).
    pub before: Option<ChatCursor>,
}

impl Default for ChatQuery {
    fn default() -> Self {
        ChatQuery {
            teacher: None,
            student: None,
            any_namespace: false,
            limit: DEFAULT_CHAT_PAGE,
            before: None,
        }
    }
}

/// One page of chats, newest first; `next` is set if older ones remain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatPage {
    pub chats: Vec<ChatRecord>,
    pub next: Option<ChatCursor>,
}

/// Which messages of a transcript: those numbered after `after`, `limit`
/// per page (clamped to 1..=[`MAX_TRANSCRIPT_PAGE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranscriptQuery {
    pub after: u64,
    pub limit: usize,
}

impl Default for TranscriptQuery {
    fn default() -> Self {
        TranscriptQuery {
            after: 0,
            limit: DEFAULT_TRANSCRIPT_PAGE,
        }
    }
}

/// A chat and one page of its messages in relay order; `next` is the `after`
/// of the following page if more messages remain.
#[derive(Debug)]
pub struct Transcript {
    pub chat: ChatRecord,
    pub messages: Vec<TranscriptMessage>,
    pub next: Option<u64>,
}

/// One relayed message as stored.
#[derive(Debug)]
pub struct TranscriptMessage {
    /// 1, 2, 3, … within the chat, in relay order.
    pub seq: u64,
    pub sender: Role,
    /// The payload object exactly as it was relayed.
    pub payload: Box<RawValue>,
    pub at: SystemTime,
}

/// Handle to the transcript store; cheap to clone, `Send + Sync`. The
/// writer stops (after committing everything queued) when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Transcripts {
    store: Option<Arc<Store>>,
}

struct Store {
    path: PathBuf,
    inbox: Arc<Inbox>,
    readers: store::Readers,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// `<data_dir>/LOCK`, held (flock) while this store is open: one
    /// writer per directory. Released after the writer thread has stopped,
    /// or by the kernel when the process dies.
    _lock: std::fs::File,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.inbox.close();
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The last handle may die inside a callback, on the writer
            // thread itself: it then finishes the queue on its own.
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                tracing::error!("the transcript writer thread panicked");
            }
        }
    }
}

impl fmt::Debug for Transcripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.store {
            Some(store) => f.debug_tuple("Transcripts").field(&store.path).finish(),
            None => f.write_str("Transcripts(disabled)"),
        }
    }
}

impl Transcripts {
    /// Opens (creating if needed) `<data_dir>/transcripts.sqlite3`, applies
    /// pending migrations and starts the writer thread. Fails with
    /// [`StoreError::InUse`] if another store (in this process or another)
    /// has the directory open: one writer per data directory.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::LockFile {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::InUse {
                    path: data_dir.to_owned(),
                })
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::Lock {
                    path: lock_path,
                    source,
                })
            }
        }
        let path = data_dir.join(DB_FILE);
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source: Box::new(source),
        };
        let conn = store::open_writer(&path).map_err(open_error)?;
        let interrupted = store::finish_interrupted(&conn)
            .map_err(|error| open_error(StoreError::Sqlite(error)))?;
        if interrupted > 0 {
            tracing::warn!(
                chats = interrupted,
                "{interrupted} chats were in progress when the server last stopped \
                 without finishing them; recorded as ended `interrupted`"
            );
        }
        let inbox = Arc::new(Inbox::new(Bounds {
            messages: options.queue_messages,
            bytes: options.queue_bytes,
            batch: options.max_batch,
        }));
        let writer = writer::spawn(
            store::Writer::new(conn, options.staged_messages)?,
            inbox.clone(),
            options.commit_interval,
            options.close_grace,
        )
        .map_err(StoreError::Thread)?;
        Ok(Transcripts {
            store: Some(Arc::new(Store {
                readers: store::Readers::new(path.clone(), options.idle_readers),
                path,
                inbox,
                writer: Mutex::new(Some(writer)),
                _lock: lock,
            })),
        })
    }

    /// A store that records nothing (`--no-transcripts`).
    pub fn disabled() -> Self {
        Transcripts { store: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.store.is_some()
    }

    /// The database file, if enabled.
    pub fn path(&self) -> Option<&Path> {
        self.store.as_deref().map(|s| s.path.as_path())
    }

    /// A chat was created (claimed), with what its student brought to the
    /// line (`opening`). Never refused.
    pub fn chat_created(
        &self,
        chat: ChatId,
        teacher: &TeacherKey,
        student: &StudentKey,
        at: SystemTime,
        opening: ChatOpening,
    ) {
        self.push(Op::ChatCreated {
            chat,
            teacher: teacher.clone(),
            student: student.clone(),
            at: store::unix_ms(at),
            question: opening.question,
            queued_at: opening.queued_at.map(store::unix_ms),
        });
    }

    /// Both sides entered (`chat:ready`). Never refused; recorded once.
    pub fn chat_started(&self, chat: ChatId, at: SystemTime) {
        self.push(Op::ChatStarted {
            chat,
            at: store::unix_ms(at),
        });
    }

    /// A message relayed by `sender` in `chat`; `payload` is stored as is.
    /// Never blocks: `Err(Backpressure::Backlog)` if the writer is too far
    /// behind, `Err(Backpressure::Unavailable)` while the store is failing
    /// (or closed); either way the message was not recorded and must not be
    /// relayed (see the module docs).
    pub fn message(
        &self,
        chat: ChatId,
        sender: Role,
        payload: &RawValue,
        at: SystemTime,
    ) -> Result<(), Backpressure> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        store.inbox.push_message(Op::Message {
            chat,
            sender,
            payload: payload.get().into(),
            at: store::unix_ms(at),
        })
    }

    /// The chat finished. Never refused; recorded once. `then` runs on the
    /// writer thread after the finish record and every earlier write are
    /// committed (at once if the store is disabled); it should be quick
    /// (send a frame), since the writer waits for it.
    pub fn chat_finished(
        &self,
        chat: ChatId,
        how: EndReason,
        at: SystemTime,
        then: impl FnOnce() + Send + 'static,
    ) {
        self.push(Op::ChatFinished {
            chat,
            how,
            at: store::unix_ms(at),
            then: Box::new(then),
        });
    }

    /// Blocks until everything queued before the call is committed (or
    /// given up). For shutdown and tests; never call it on an async thread,
    /// nor from a `chat_finished` callback (the writer would wait on itself).
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.push(Op::Barrier {
            then: Box::new(move || {
                let _ = done.send(());
            }),
        });
        // An error means the callback was dropped unrun: nothing to wait for.
        let _ = wait.recv();
    }

    /// [`Transcripts::flush`] for async callers.
    pub async fn flush_async(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.push(Op::Barrier {
            then: Box::new(move || {
                let _ = done.send(());
            }),
        });
        let _ = wait.await;
    }

    /// Why the store cannot commit, while it cannot (for `/healthz`): the
    /// error of the last failed attempt. None when healthy or disabled.
    pub fn failure(&self) -> Option<String> {
        self.store.as_ref().and_then(|s| s.inbox.failure())
    }

    /// How far the writer is behind.
    pub fn lag(&self) -> WriterLag {
        self.store
            .as_ref()
            .map_or_else(WriterLag::default, |s| s.inbox.lag())
    }

    /// One page of chats, newest first. Touches the disk: not on an async
    /// thread.
    pub fn list_chats(&self, query: &ChatQuery) -> Result<ChatPage, StoreError> {
        match &self.store {
            Some(store) => store.readers.list_chats(query),
            None => Ok(ChatPage {
                chats: Vec::new(),
                next: None,
            }),
        }
    }

    /// The chat and one page of its messages, or None for an unknown chat.
    /// Touches the disk: not on an async thread.
    pub fn transcript(
        &self,
        chat: ChatId,
        query: &TranscriptQuery,
    ) -> Result<Option<Transcript>, StoreError> {
        match &self.store {
            Some(store) => store.readers.transcript(chat, query),
            None => Ok(None),
        }
    }

    /// The figures of the chats created at or after `since` (unix ms) for
    /// `GET /api/stats`: their count and the newest
    /// [`MAX_CHATS`](crate::stats::MAX_CHATS) of them. Touches the disk: not
    /// on an async thread.
    pub fn figures(&self, since: i64) -> Result<crate::stats::Figures, StoreError> {
        match &self.store {
            Some(store) => store.readers.figures(since),
            None => Ok(crate::stats::Figures::default()),
        }
    }

    /// Queues a write that is never refused; with no writer, runs its
    /// callback at once.
    fn push(&self, op: Op) {
        let refused = match &self.store {
            Some(store) => store.inbox.push(op).err(),
            None => Some(op),
        };
        if let Some(callback) = refused.and_then(Op::take_callback) {
            callback();
        }
    }

    /// Test hook: stop or restart the writer taking work (how the tests make
    /// the writer fall behind). Not for production use.
    #[doc(hidden)]
    pub fn set_paused(&self, paused: bool) {
        if let Some(store) = &self.store {
            store.inbox.set_paused(paused);
        }
    }

    /// Test hook: every commit fails (as SQLite's "database or disk is
    /// full") while `fail` is set. Not for production use.
    #[doc(hidden)]
    pub fn set_failing(&self, fail: bool) {
        if let Some(store) = &self.store {
            store.inbox.set_fail_commits(fail);
        }
    }

    /// Test hook: caps the database at `pages` pages (`PRAGMA
    /// max_page_count`, never below the pages in use), so that commits fail
    /// for real with SQLITE_FULL; `None` gives the space back. Applied by
    /// the writer before its next commit attempt. Not for production use.
    #[doc(hidden)]
    pub fn set_page_limit(&self, pages: Option<u64>) {
        if let Some(store) = &self.store {
            store.inbox.set_page_limit(pages);
        }
    }
}

#[cfg(test)]
mod tests;
