//! The writer's inbox: the one FIFO of pending writes between every caller
//! (session actors, `ChatLifetime`, shutdown) and the writer thread.
//!
//! Owns admission and accounting: how many messages and payload bytes are
//! queued, which batch the writer holds, how far it lags. Lifecycle records
//! and barriers are always admitted (there are a few per chat, and refusing
//! them would lose a chat's record or never send `chat:terminated`); only
//! relayed messages count against the bound and can be refused.
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
    paused: bool,
    committed: u64,
    failed_batches: u64,
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
    /// Batches given up after retries (disk full, I/O error): their writes
    /// are lost, and each was logged as an error.
    pub failed_batches: u64,
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
                paused: false,
                committed: 0,
                failed_batches: 0,
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

    /// Queues a relayed message unless the inbox is at its bound.
    pub(super) fn push_message(&self, op: Op) -> Result<(), Backpressure> {
        let payload_len = match &op {
            Op::Message { payload, .. } => payload.len(),
            _ => 0,
        };
        let mut st = self.lock();
        let full = st.messages >= self.bounds.messages
            || (st.messages > 0 && st.bytes.saturating_add(payload_len) > self.bounds.bytes);
        if full || st.closing {
            return Err(Backpressure);
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
                    if Instant::now() < until && st.queue.len() < self.bounds.batch {
                        // Woken early (spurious, resumed, closing): look again.
                        continue;
                    }
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

    /// Writer side: the batch taken last is committed (`ok`) or given up.
    pub(super) fn batch_done(&self, ok: bool) {
        let mut st = self.lock();
        if ok {
            st.committed += st.in_flight as u64;
        } else {
            st.failed_batches += 1;
        }
        st.in_flight = 0;
        st.in_flight_since = None;
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
            failed_batches: st.failed_batches,
        }
    }

    /// No more pushes; the writer drains what is queued, then stops.
    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_all();
    }

    /// Test hook: the writer takes nothing until `set_paused(false)`.
    pub(super) fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
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
        assert_eq!(inbox.push_message(message(c, "{}")), Err(Backpressure));
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
        assert_eq!(inbox.push_message(message(c, "x")), Err(Backpressure));
        inbox.next_batch(None).expect("work queued");
        inbox.batch_done(true);
        assert!(inbox.push_message(message(c, "123456")).is_ok());
        assert!(inbox.push_message(message(c, "1234")).is_ok());
        assert_eq!(inbox.push_message(message(c, "x")), Err(Backpressure));
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
            inbox.batch_done(true);
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
        inbox.batch_done(false);
        let lag = inbox.lag();
        assert_eq!(
            (lag.uncommitted, lag.committed, lag.failed_batches),
            (0, 0, 1)
        );
    }

    #[test]
    fn closing_drains_then_ends_and_refuses_new_work() {
        let inbox = inbox(100, 1 << 20, 100);
        let c = chat();
        inbox.push(started(c)).expect("open");
        inbox.close();
        assert!(inbox.push(started(c)).is_err());
        assert_eq!(inbox.push_message(message(c, "{}")), Err(Backpressure));
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
        inbox.batch_done(true);
        // A short deadline with a partial batch: taken when it passes.
        inbox.push(started(c)).expect("open");
        let begun = Instant::now();
        let batch = inbox.next_batch(Some(begun + Duration::from_millis(30)));
        assert_eq!(batch.map(|b| b.len()), Some(1));
        assert!(begun.elapsed() >= Duration::from_millis(30));
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
