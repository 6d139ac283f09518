//! The writer's inbox: the one FIFO of pending writes between every caller
//! (session actors, `ChatLifetime`, shutdown) and the writer thread.
//!
//! Owns admission and accounting: how many messages and payload bytes are
//! queued, which batch the writer holds, how far it lags, and whether the
//! store is failing (the writer's last commit failed). Lifecycle records
//! and barriers are always admitted (there are a few per chat, and refusing
//! them would lose a chat's record or never send `chat:terminated`); only
//! relayed messages count against the bound and can be refused, and they
//! are all refused while the store is failing.
//!
//! Must never make a caller wait: `push*` takes the lock for a few
//! instructions and never waits for room. Must never reorder: one FIFO, so a
//! chat's finish record is always committed with or after its messages.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Backpressure, EndReason};
use crate::domain::{ChatId, Role, StudentKey, TeacherKey};

/// Runs on the writer thread once the batch holding it is done.
pub(super) type Callback = Box<dyn FnOnce() + Send>;

/// One pending write. Times are unix milliseconds.
pub(super) enum Op {
    ChatCreated {
        chat: ChatId,
        teacher: TeacherKey,
        student: StudentKey,
        at: i64,
        question: Option<String>,
        queued_at: Option<i64>,
    },
    ChatStarted {
        chat: ChatId,
        at: i64,
    },
    Message {
        chat: ChatId,
        sender: Role,
        payload: Box<str>,
        at: i64,
    },
    ChatFinished {
        chat: ChatId,
        how: EndReason,
        at: i64,
        then: Callback,
    },
    /// Writes nothing; `then` runs once everything queued before it is done.
    Barrier {
        then: Callback,
    },
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::ChatCreated { chat, .. } => write!(f, "ChatCreated({chat})"),
            Op::ChatStarted { chat, .. } => write!(f, "ChatStarted({chat})"),
            Op::Message { chat, payload, .. } => {
                write!(f, "Message({chat}, {} bytes)", payload.len())
            }
            Op::ChatFinished { chat, how, .. } => write!(f, "ChatFinished({chat}, {how:?})"),
            Op::Barrier { .. } => f.write_str("Barrier"),
        }
    }
}

impl Op {
    /// The callback to run after the batch, if this op has one.
    pub(super) fn take_callback(self) -> Option<Callback> {
        match self {
            Op::ChatFinished { then, .. } | Op::Barrier { then } => Some(then),
            _ => None,
        }
    }
}

/// How much may wait in the inbox.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Relayed messages queued and not yet taken by the writer.
    pub messages: usize,
    /// Their payload bytes (one message is always admitted into an empty
    /// inbox, whatever its size, so a large payload cannot be refused forever).
    pub bytes: usize,
    /// Most ops the writer takes for one transaction.
    pub batch: usize,
}

/// What the writer thread is doing, so a push wakes it only when needed
/// (a condvar notify costs a system call even when nobody waits).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Writer {
    /// Committing, or about to look at the inbox again.
    Busy,
    /// Waiting for the inbox to become non-empty.
    Idle,
    /// Waiting out the commit interval to gather a fuller batch; woken early
    /// only once a full batch is queued.
    Lingering,
}

struct Pending {
    op: Op,
    since: Instant,
}

struct State {
    queue: VecDeque<Pending>,
    /// Messages and their payload bytes in `queue` (not in the writer's batch).
    messages: usize,
    bytes: usize,
    /// Ops in the batch the writer is committing, and the oldest one's age.
    in_flight: usize,
    in_flight_since: Option<Instant>,
    writer: Writer,
    closing: bool,
    /// When `close` was called: a failing writer gives up `close_grace` later.
    closed_at: Option<Instant>,
    paused: bool,
    committed: u64,
    failed_commits: u64,
    /// Why the last commit failed, while it has not succeeded since.
    failing: Option<String>,
    faults: Faults,
}

/// Test hooks the writer applies before each commit attempt.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// Every commit fails (as with a full disk) while set.
    pub fail_commits: bool,
    /// A new `PRAGMA max_page_count` for the writer's connection (`None`:
    /// back to SQLite's largest), not yet applied.
    pub page_limit: Option<Option<u64>>,
}

/// See the module docs.
pub(super) struct Inbox {
    state: Mutex<State>,
    wake: Condvar,
    bounds: Bounds,
}

/// Queued-but-uncommitted writes, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterLag {
    /// Writes accepted but not yet committed (queued plus the batch in flight).
    pub uncommitted: usize,
    /// Of those, relayed messages still queued (the part that counts against
    /// the backpressure bound).
    pub queued_messages: usize,
    /// Age of the oldest uncommitted write; zero when there is none.
    pub oldest: Duration,
    /// Writes committed since the store opened.
    pub committed: u64,
    /// Commit attempts that failed (disk full, I/O error, locked database);
    /// each is retried until it succeeds, nothing is dropped.
    pub failed_commits: u64,
    /// The last commit failed and none has succeeded since: new messages
    /// are refused ([`Backpressure::Unavailable`]).
    pub failing: bool,
}

impl Inbox {
    pub(super) fn new(bounds: Bounds) -> Self {
        Inbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                messages: 0,
                bytes: 0,
                in_flight: 0,
                in_flight_since: None,
                writer: Writer::Busy,
                closing: false,
                closed_at: None,
                paused: false,
                committed: 0,
                failed_commits: 0,
                failing: None,
                faults: Faults::default(),
            }),
            wake: Condvar::new(),
            bounds: Bounds {
                batch: bounds.batch.max(1),
                ..bounds
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever did, the
        // counters are still consistent enough to keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a relayed message unless the store is failing or closed
    /// ([`Backpressure::Unavailable`]) or the inbox is at its bound
    /// ([`Backpressure::Backlog`]).
    pub(super) fn push_message(&self, op: Op) -> Result<(), Backpressure> {
        let payload_len = match &op {
            Op::Message { payload, .. } => payload.len(),
            _ => 0,
        };
        let mut st = self.lock();
        if st.failing.is_some() || st.closing {
            return Err(Backpressure::Unavailable);
        }
        let full = st.messages >= self.bounds.messages
            || (st.messages > 0 && st.bytes.saturating_add(payload_len) > self.bounds.bytes);
        if full {
            return Err(Backpressure::Backlog);
        }
        st.messages += 1;
        st.bytes += payload_len;
        self.enqueue(st, op);
        Ok(())
    }

    /// Queues a lifecycle record or barrier: always admitted while open.
    /// Gives the op back if the writer is gone, so its callback can run.
    pub(super) fn push(&self, op: Op) -> Result<(), Op> {
        let st = self.lock();
        if st.closing {
            return Err(op);
        }
        self.enqueue(st, op);
        Ok(())
    }

    fn enqueue(&self, mut st: MutexGuard<'_, State>, op: Op) {
        st.queue.push_back(Pending {
            op,
            since: Instant::now(),
        });
        let wake = match st.writer {
            Writer::Idle => true,
            Writer::Lingering => st.queue.len() >= self.bounds.batch,
            Writer::Busy => false,
        };
        if wake {
            st.writer = Writer::Busy;
            drop(st);
            self.wake.notify_one();
        }
    }

    /// Writer side: waits for work and takes up to one batch, oldest first.
    /// While `linger_until` is in the future and less than a full batch is
    /// queued, waits for more to gather one transaction's worth. Returns None
    /// once closed and empty.
    pub(super) fn next_batch(&self, linger_until: Option<Instant>) -> Option<Vec<Op>> {
        let mut st = self.lock();
        loop {
            if st.queue.is_empty() || (st.paused && !st.closing) {
                if st.closing {
                    return None;
                }
                st.writer = Writer::Idle;
                st = self.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let now = Instant::now();
            match linger_until {
                Some(until) if until > now && !st.closing && st.queue.len() < self.bounds.batch => {
                    st.writer = Writer::Lingering;
                    st = self
                        .wake
                        .wait_timeout(st, until - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    // Look again from the top, whether woken early (spurious,
                    // a full batch, closing) or at the deadline: the writer
                    // may have been paused meanwhile, and a batch taken
                    // here without that check would empty a paused inbox.
                    // Past the deadline, the next pass takes the batch.
                    continue;
                }
                _ => {}
            }
            break;
        }
        st.writer = Writer::Busy;
        let take = st.queue.len().min(self.bounds.batch);
        st.in_flight_since = st.queue.front().map(|p| p.since);
        st.in_flight = take;
        let mut batch = Vec::with_capacity(take);
        let (mut messages, mut bytes) = (0, 0);
        for pending in st.queue.drain(..take) {
            if let Op::Message { payload, .. } = &pending.op {
                messages += 1;
                bytes += payload.len();
            }
            batch.push(pending.op);
        }
        st.messages -= messages;
        st.bytes -= bytes;
        Some(batch)
    }

    /// Writer side: the batch taken last is committed. Returns true if the
    /// store was failing until now (it has recovered).
    pub(super) fn batch_committed(&self) -> bool {
        let mut st = self.lock();
        st.committed += st.in_flight as u64;
        st.in_flight = 0;
        st.in_flight_since = None;
        st.failing.take().is_some()
    }

    /// Writer side: a commit attempt failed (the batch stays in flight, to
    /// be retried). Returns true if the store was not failing until now.
    pub(super) fn commit_failed(&self, reason: String) -> bool {
        let mut st = self.lock();
        st.failed_commits += 1;
        st.failing.replace(reason).is_none()
    }

    /// Why the store is failing, if it is.
    pub(super) fn failure(&self) -> Option<String> {
        self.lock().failing.clone()
    }

    /// Writer side, between two attempts at a failing commit: waits up to
    /// `pause` (less if the inbox closes, a test hook changes, or the close
    /// grace runs out). Returns false once the store is closing and has
    /// been for `close_grace`: then the writer gives up.
    pub(super) fn wait_to_retry(&self, pause: Duration, close_grace: Duration) -> bool {
        let st = self.lock();
        let give_up_at = st.closed_at.map(|at| at + close_grace);
        let now = Instant::now();
        if give_up_at.is_some_and(|at| at <= now) {
            return false;
        }
        let pause = give_up_at.map_or(pause, |at| pause.min(at - now));
        let _ = self
            .wake
            .wait_timeout(st, pause)
            .unwrap_or_else(PoisonError::into_inner);
        true
    }

    /// Writer side, giving up at close: drops every write still queued and
    /// returns how many (plus the batch in flight) are not committed.
    pub(super) fn abandon(&self) -> usize {
        let mut st = self.lock();
        let lost = st.queue.len() + st.in_flight;
        // Their callbacks are dropped unrun: a `flush` waiting on one returns.
        st.queue.clear();
        st.messages = 0;
        st.bytes = 0;
        st.in_flight = 0;
        st.in_flight_since = None;
        lost
    }

    /// Writer side: takes the test hooks to apply before a commit attempt.
    pub(super) fn faults(&self) -> (bool, Option<Option<u64>>) {
        let mut st = self.lock();
        (st.faults.fail_commits, st.faults.page_limit.take())
    }

    pub(super) fn lag(&self) -> WriterLag {
        let st = self.lock();
        let oldest = st
            .in_flight_since
            .or_else(|| st.queue.front().map(|p| p.since))
            .map_or(Duration::ZERO, |since| since.elapsed());
        WriterLag {
            uncommitted: st.queue.len() + st.in_flight,
            queued_messages: st.messages,
            oldest,
            committed: st.committed,
            failed_commits: st.failed_commits,
            failing: st.failing.is_some(),
        }
    }

    /// No more pushes; the writer drains what is queued, then stops (or,
    /// if the store is failing, gives up after its close grace).
    pub(super) fn close(&self) {
        let mut st = self.lock();
        st.closing = true;
        st.closed_at.get_or_insert_with(Instant::now);
        drop(st);
        self.wake.notify_all();
    }

    /// Test hook: the writer takes nothing until `set_paused(false)`.
    pub(super) fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
        self.wake.notify_all();
    }

    /// Test hook: every commit fails while `fail` is set.
    pub(super) fn set_fail_commits(&self, fail: bool) {
        self.lock().faults.fail_commits = fail;
        self.wake.notify_all();
    }

    /// Test hook: the writer's `max_page_count` (None: unlimited).
    pub(super) fn set_page_limit(&self, pages: Option<u64>) {
        self.lock().faults.page_limit = Some(pages);
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserKey;

    fn chat() -> ChatId {
        ChatId::random(&mut rand::rng())
    }

    fn message(chat: ChatId, text: &str) -> Op {
        Op::Message {
            chat,
            sender: Role::Teacher,
            payload: text.into(),
            at: 0,
        }
    }

    fn started(chat: ChatId) -> Op {
        Op::ChatStarted { chat, at: 0 }
    }

    fn inbox(messages: usize, bytes: usize, batch: usize) -> Inbox {
        Inbox::new(Bounds {
            messages,
            bytes,
            batch,
        })
    }

    #[test]
    fn messages_past_the_bound_are_refused_but_lifecycle_records_are_not() {
        let inbox = inbox(2, 1 << 20, 100);
        let c = chat();
        assert!(inbox.push_message(message(c, "{}")).is_ok());
        assert!(inbox.push_message(message(c, "{}")).is_ok());
        assert_eq!(
            inbox.push_message(message(c, "{}")),
            Err(Backpressure::Backlog)
        );
        for _ in 0..10 {
            assert!(inbox.push(started(c)).is_ok(), "never refused");
        }
        let lag = inbox.lag();
        assert_eq!((lag.uncommitted, lag.queued_messages), (12, 2));
        // Taking a batch frees room at once.
        let batch = inbox.next_batch(None).expect("work queued");
        assert_eq!(batch.len(), 12);
        assert!(inbox.push_message(message(c, "{}")).is_ok());
    }

    #[test]
    fn the_byte_bound_refuses_but_one_huge_message_always_fits_an_empty_inbox() {
        let inbox = inbox(100, 10, 100);
        let c = chat();
        let huge = "x".repeat(64);
        assert!(inbox.push_message(message(c, &huge)).is_ok(), "alone");
        assert_eq!(
            inbox.push_message(message(c, "x")),
            Err(Backpressure::Backlog)
        );
        inbox.next_batch(None).expect("work queued");
        inbox.batch_committed();
        assert!(inbox.push_message(message(c, "123456")).is_ok());
        assert!(inbox.push_message(message(c, "1234")).is_ok());
        assert_eq!(
            inbox.push_message(message(c, "x")),
            Err(Backpressure::Backlog)
        );
    }

    #[test]
    fn batches_are_fifo_and_capped() {
        let inbox = inbox(100, 1 << 20, 3);
        let c = chat();
        for i in 0..7 {
            inbox
                .push_message(message(c, &i.to_string()))
                .expect("room");
        }
        let mut seen = Vec::new();
        for expected_len in [3, 3, 1] {
            let batch = inbox.next_batch(None).expect("work queued");
            assert_eq!(batch.len(), expected_len);
            assert_eq!(inbox.lag().uncommitted, 7 - seen.len());
            for op in batch {
                if let Op::Message { payload, .. } = op {
                    seen.push(payload.to_string());
                }
            }
            inbox.batch_committed();
        }
        assert_eq!(seen, ["0", "1", "2", "3", "4", "5", "6"]);
        let lag = inbox.lag();
        assert_eq!(
            (lag.uncommitted, lag.committed, lag.oldest),
            (0, 7, Duration::ZERO)
        );
    }

    #[test]
    fn lag_counts_the_batch_in_flight_and_its_age() {
        let inbox = inbox(100, 1 << 20, 100);
        inbox.push(started(chat())).expect("open");
        std::thread::sleep(Duration::from_millis(5));
        let _batch = inbox.next_batch(None).expect("work queued");
        let lag = inbox.lag();
        assert_eq!(lag.uncommitted, 1);
        assert!(lag.oldest >= Duration::from_millis(5));
        // A failed attempt keeps the batch in flight, and the store failing.
        assert!(inbox.commit_failed("disk full".into()), "a change of state");
        assert!(!inbox.commit_failed("disk full".into()), "no change");
        let lag = inbox.lag();
        assert_eq!(
            (
                lag.uncommitted,
                lag.committed,
                lag.failed_commits,
                lag.failing
            ),
            (1, 0, 2, true)
        );
        assert!(inbox.batch_committed(), "recovered");
        let lag = inbox.lag();
        assert_eq!(
            (
                lag.uncommitted,
                lag.committed,
                lag.failed_commits,
                lag.failing
            ),
            (0, 1, 2, false)
        );
    }

    #[test]
    fn closing_drains_then_ends_and_refuses_new_work() {
        let inbox = inbox(100, 1 << 20, 100);
        let c = chat();
        inbox.push(started(c)).expect("open");
        inbox.close();
        assert!(inbox.push(started(c)).is_err());
        assert_eq!(
            inbox.push_message(message(c, "{}")),
            Err(Backpressure::Unavailable)
        );
        assert_eq!(inbox.next_batch(None).map(|b| b.len()), Some(1));
        assert!(inbox.next_batch(None).is_none());
    }

    #[test]
    fn a_lingering_writer_waits_for_a_full_batch_or_the_deadline() {
        let inbox = std::sync::Arc::new(inbox(100, 1 << 20, 3));
        let c = chat();
        inbox.push(started(c)).expect("open");
        // Deadline far away, but a full batch arrives: the writer wakes early.
        let writer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                inbox
                    .next_batch(Some(Instant::now() + Duration::from_secs(30)))
                    .map(|b| b.len())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        inbox.push(started(c)).expect("open");
        inbox.push(started(c)).expect("open");
        assert_eq!(writer.join().expect("no panic"), Some(3));
        inbox.batch_committed();
        // A short deadline with a partial batch: taken when it passes.
        inbox.push(started(c)).expect("open");
        let begun = Instant::now();
        let batch = inbox.next_batch(Some(begun + Duration::from_millis(30)));
        assert_eq!(batch.map(|b| b.len()), Some(1));
        assert!(begun.elapsed() >= Duration::from_millis(30));
    }

    /// While the store is failing, every new message is refused (so it is
    /// not relayed), though there is room; lifecycle records still go in.
    #[test]
    fn a_failing_store_refuses_messages_until_a_commit_succeeds() {
        let inbox = inbox(100, 1 << 20, 100);
        let c = chat();
        inbox.push_message(message(c, "{}")).expect("room");
        let _batch = inbox.next_batch(None).expect("work queued");
        inbox.commit_failed("database or disk is full".into());
        assert_eq!(
            inbox.push_message(message(c, "{}")),
            Err(Backpressure::Unavailable)
        );
        assert!(inbox.push(started(c)).is_ok(), "never refused");
        assert_eq!(inbox.failure().as_deref(), Some("database or disk is full"));
        inbox.batch_committed();
        assert_eq!(inbox.failure(), None);
        assert!(inbox.push_message(message(c, "{}")).is_ok());
    }

    /// A paused inbox gives the writer nothing, even a writer that was
    /// lingering when the pause came and only gets the lock back after its
    /// deadline (the race behind a flaky backlog test: the writer took the
    /// queued messages while paused, so the inbox was never full).
    #[test]
    fn a_pause_holds_a_writer_that_wakes_past_its_deadline() {
        let inbox = std::sync::Arc::new(inbox(100, 1 << 20, 100));
        let c = chat();
        inbox.push(started(c)).expect("open");
        let writer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                inbox
                    .next_batch(Some(Instant::now() + Duration::from_millis(20)))
                    .map(|b| b.len())
            })
        };
        std::thread::sleep(Duration::from_millis(5));
        {
            // Pause and queue a message while holding the lock past the
            // writer's deadline: it wakes by timeout, then waits for the lock.
            let mut st = inbox.lock();
            st.paused = true;
            std::thread::sleep(Duration::from_millis(50));
            st.queue.push_back(Pending {
                op: message(c, "{}"),
                since: Instant::now(),
            });
            st.messages += 1;
            st.bytes += 2;
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(!writer.is_finished(), "a paused writer took a batch");
        assert_eq!(inbox.lag().queued_messages, 1);
        inbox.set_paused(false);
        assert_eq!(writer.join().expect("no panic"), Some(2));
    }

    #[test]
    fn callbacks_come_from_finish_records_and_barriers_only() {
        let c = chat();
        let teacher = TeacherKey(UserKey::new("1").expect("non-empty"));
        let student = StudentKey(UserKey::new("2").expect("non-empty"));
        let created = Op::ChatCreated {
            chat: c,
            teacher,
            student,
            at: 0,
            question: None,
            queued_at: None,
        };
        assert!(created.take_callback().is_none());
        assert!(message(c, "{}").take_callback().is_none());
        let barrier = Op::Barrier {
            then: Box::new(|| {}),
        };
        assert!(barrier.take_callback().is_some());
        let finished = Op::ChatFinished {
            chat: c,
            how: EndReason::Terminated,
            at: 0,
            then: Box::new(|| {}),
        };
        assert!(finished.take_callback().is_some());
    }
}
