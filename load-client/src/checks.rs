//! The violation checker: pure state machines fed with what the simulated users
//! observe, with no sockets, clocks or tasks in them.
//!
//! * [`Checker`] sees the run-wide events ([`Event`]) that one collector task receives
//!   from every user over a channel, and counts the violations that need more than one
//!   user's view: a teacher holding a 6th chat, a student assigned twice, `chat:ready` or
//!   `chat:terminated` twice on one chat side, and FIFO inversions.
//! * [`StudentRelay`] and [`TeacherRelay`] live inside each user task (nothing shared on
//!   the message path) and judge every relayed chat message: out of order (not the next
//!   message of the 2015 client's numbered sequence, or altered) or delivered to the
//!   wrong side.
//! * [`check_status`] judges one `user:status` snapshot: `total` must equal
//!   `waiting + chatting + finished`.
//!
//! # The rules
//!
//! * **teacher_over_capacity**: a teacher's `new:chat:<tid>` arrives while that teacher
//!   already holds 5 chats it was given and has not seen end (`chat:terminated`, an
//!   abandoning `phx_close`, or a refused chat join). A correct server cannot show this:
//!   it frees the slot in the step that broadcasts `chat:terminated`, and that frame
//!   reaches the teacher's connection before any later `new:chat:<tid>` (PROTOCOL 1.6).
//! * **student_assigned_twice**: a student appears in more than one chat (from
//!   `new:chat`, `new:chat:<tid>` or a `claim:student` reply), not counting chats that
//!   were abandoned because their teacher vanished (those students are legitimately
//!   requeued, PROTOCOL 6.2). This client never sends `student:ready` twice, so any
//!   other second chat is a second assignment. Each extra chat counts once.
//! * **chat_ready_twice / chat_terminated_twice**: the same side (teacher or student) of
//!   one chat receives that event more than once.
//! * **relay_out_of_order**: a `student:receive` that is not `Message from teacher: k`
//!   for the next k, or a `teacher:receive` that is not `Message #k from student: <sid>`
//!   answering the teacher's latest message (this covers loss, duplication, reordering
//!   and alteration: one message is in flight per chat at a time).
//! * **relay_wrong_side**: a teacher receives `student:receive` or its own kind of
//!   message, or a student receives `teacher:receive` or its own kind of message.
//! * **status_inconsistent**: a `user:status` with `total != waiting + chatting +
//!   finished`.
//! * **fifo_inversion**: student B was assigned before student A although A certainly
//!   entered the queue first. The client cannot see the server's arrival numbers, and
//!   ACKs of two students travel on different sockets, so "A's ACK was read before B's"
//!   proves nothing when the two `student:ready` round trips overlap. What it *can* be
//!   sure of uses only one clock (this process's monotonic clock) and causality:
//!
//!   1. A entered the queue before B if A's `student:ready` ACK (`ok` reply) was read
//!      **before B's `student:ready` was written**: the server queued A before replying
//!      and queued B after receiving it. (`ack(A) < ready_sent(B)`)
//!   2. B was assigned before A if the first notification of B's assignment (B's
//!      `new:chat`, its teacher's `new:chat:<tid>` or `claim:student` reply, whichever
//!      was read first) was read **before the `claim:student` that assigned A was
//!      written** (known from that claim's reply carrying A's chat).
//!      (`notified(B) < claim_sent(A)`)
//!
//!   If both hold, A was waiting (queued, not yet assigned, and this client never lets a
//!   waiting student leave) when B was taken: a FIFO server cannot do that. Each B for
//!   which some such A exists counts once. Times are taken before a write and after a
//!   read, and compared strictly, so the rule never flags a correct server; students
//!   whose assignment was never confirmed by a claim reply are not used as A. Overlapping
//!   round trips are simply not judged: the check is sound, not complete.
//!   A student that dropped its connection (`--drop-rate`) is never used as A: while
//!   it is away, claims rightly skip it (PROTOCOL 6.3).
//!
//! # Resumption (`--reconnect`, PROTOCOL 6.3)
//!
//! A user that comes back within the server's grace window must find its place and
//! its chats as it left them. The user tasks judge what they find against what they
//! saw before the drop (the arithmetic lives in [`crate::resume`]):
//!
//! * **place_lost**: a student that was queued (its `student:ready` acknowledged) and
//!   not in a chat comes back `present` (no longer waiting);
//! * **chat_ended_away**: a chat the user was in (and had not itself finished: the
//!   teacher had not sent `chat:terminate`, the student had not answered the last
//!   message) is gone when the user comes back: missing from the teacher's join reply
//!   or refused on rejoin, or the student comes back `present`/`finished`/`waiting`;
//! * **message_lost**: the chat join reply's `{"seq", "held"}` contradicts what this
//!   side saw (fewer messages than it read or sent, more than the chat's lock step
//!   allows, held messages that are not the next ones), held messages that do not
//!   follow the reply at once, or a message that the recipient's resume shows went
//!   to its dropped connection although its sender wrote it after reading
//!   `chat:away` for the recipient (so it had to be held). A message the server
//!   relayed to the connection just before it dropped is *not* lost by the server:
//!   the join reply's `seq` counts it, and the side takes it as read (the 2015
//!   messages are numbered, so its text is known; pages read it from the
//!   transcript).
//!
//! # Waiting list (`--waiting-watchers`, PROTOCOL 6.4)
//!
//! * **waiting_list_flood**: a watcher read more `queue:waiting` pushes than the
//!   server's coalescing allows in the time it watched (one after the join, then at
//!   most one per 250 ms: `4·seconds + 2`), judged by [`crate::watcher`]. Each such
//!   watcher counts once.

use std::collections::{HashMap, HashSet};

use crate::codec::Status;

/// Microseconds since the start of the run (one monotonic clock for every task).
pub type Micros = u64;

/// The kinds of violation, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    TeacherOverCapacity,
    StudentAssignedTwice,
    RelayOutOfOrder,
    RelayWrongSide,
    ChatReadyTwice,
    ChatTerminatedTwice,
    FifoInversion,
    StatusInconsistent,
    PlaceLost,
    ChatEndedAway,
    MessageLost,
    WaitingListFlood,
}

impl Violation {
    pub const ALL: [Violation; 12] = [
        Violation::TeacherOverCapacity,
        Violation::StudentAssignedTwice,
        Violation::RelayOutOfOrder,
        Violation::RelayWrongSide,
        Violation::ChatReadyTwice,
        Violation::ChatTerminatedTwice,
        Violation::FifoInversion,
        Violation::StatusInconsistent,
        Violation::PlaceLost,
        Violation::ChatEndedAway,
        Violation::MessageLost,
        Violation::WaitingListFlood,
    ];

    /// The key used in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Violation::TeacherOverCapacity => "teacher_over_capacity",
            Violation::StudentAssignedTwice => "student_assigned_twice",
            Violation::RelayOutOfOrder => "relay_out_of_order",
            Violation::RelayWrongSide => "relay_wrong_side",
            Violation::ChatReadyTwice => "chat_ready_twice",
            Violation::ChatTerminatedTwice => "chat_terminated_twice",
            Violation::FifoInversion => "fifo_inversion",
            Violation::StatusInconsistent => "status_inconsistent",
            Violation::PlaceLost => "place_lost",
            Violation::ChatEndedAway => "chat_ended_away",
            Violation::MessageLost => "message_lost",
            Violation::WaitingListFlood => "waiting_list_flood",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Violation counts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViolationCounts([u64; Violation::ALL.len()]);

impl ViolationCounts {
    pub fn add(&mut self, kind: Violation, n: u64) {
        self.0[kind.index()] += n;
    }

    pub fn get(&self, kind: Violation) -> u64 {
        self.0[kind.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Violation, u64)> + '_ {
        Violation::ALL.iter().map(|&v| (v, self.get(v)))
    }
}

/// Which side of a chat observed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Teacher,
    Student,
}

impl Role {
    pub fn other(self) -> Role {
        match self {
            Role::Teacher => Role::Student,
            Role::Student => Role::Teacher,
        }
    }
}

/// What a user task observed, as sent to the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Just before the student's `student:ready` was written.
    ReadySent {
        student: u64,
        at: Micros,
    },
    /// Just after the `ok` reply to `student:ready` was read.
    ReadyAcked {
        student: u64,
        at: Micros,
    },
    /// The student read `new:chat` on its presence topic.
    StudentAssigned {
        student: u64,
        chat: String,
        at: Micros,
    },
    /// The teacher read `new:chat:<tid>`.
    TeacherAssigned {
        teacher: u64,
        chat: String,
        student: Option<u64>,
        at: Micros,
    },
    /// The teacher read an `ok` reply carrying a chat object to the `claim:student`
    /// written at `sent_at`.
    ClaimAssigned {
        teacher: u64,
        chat: String,
        student: Option<u64>,
        sent_at: Micros,
        at: Micros,
    },
    /// The teacher no longer holds that chat (terminated, abandoned, or join refused).
    TeacherReleased {
        teacher: u64,
        chat: String,
    },
    ChatReady {
        chat: String,
        role: Role,
    },
    ChatTerminated {
        chat: String,
        role: Role,
    },
    /// `phx_close` on a chat topic this side had not left: the chat was abandoned.
    ChatAbandoned {
        chat: String,
    },
    /// A violation a user task judged by itself (relay, status, resumption).
    Seen(Violation),
    /// The student dropped its connection (`--drop-rate`): its queue times no longer
    /// prove anything about FIFO order (claims skip it while it is away).
    StudentDropped {
        student: u64,
    },
    /// `from` sent its `k`-th message of `chat` after reading `chat:away` for the
    /// other side (and before `chat:back`): the server had to hold it.
    SentToAway {
        chat: String,
        from: Role,
        k: u32,
    },
    /// On its resume, side `to` learned from the join reply's `seq` that the other
    /// side's `k`-th message was relayed to its dropped connection.
    LostInTransit {
        chat: String,
        to: Role,
        k: u32,
    },
}

#[derive(Debug, Default)]
struct StudentTrace {
    ready_sent: Option<Micros>,
    ready_acked: Option<Micros>,
    /// Earliest read notification of any assignment of this student.
    notified: Option<Micros>,
    /// Earliest write of a `claim:student` whose reply named this student.
    claim_sent: Option<Micros>,
    chats: Vec<String>,
}

impl StudentTrace {
    fn add_chat(&mut self, chat: &str) {
        if !self.chats.iter().any(|c| c == chat) {
            self.chats.push(chat.to_owned());
        }
    }
}

fn min_in(slot: &mut Option<Micros>, at: Micros) {
    *slot = Some(slot.map_or(at, |old| old.min(at)));
}

/// Run-wide checker. Feed it every [`Event`], then call [`Checker::finish`].
#[derive(Debug, Default)]
pub struct Checker {
    counts: ViolationCounts,
    students: HashMap<u64, StudentTrace>,
    teacher_chats: HashMap<u64, HashSet<String>>,
    abandoned: HashSet<String>,
    ready: HashSet<(String, Role)>,
    terminated: HashSet<(String, Role)>,
    dropped: HashSet<u64>,
    sent_to_away: HashSet<(String, Role, u32)>,
    lost_in_transit: Vec<(String, Role, u32)>,
}

/// Most chats a teacher may hold at once.
pub const MAX_CHATS: usize = 5;

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one event; returns how many violations it revealed right away (FIFO and
    /// double assignment are only judged by [`Checker::finish`]).
    pub fn observe(&mut self, event: Event) -> u64 {
        let before = self.counts.total();
        match event {
            Event::ReadySent { student, at } => {
                let t = self.students.entry(student).or_default();
                t.ready_sent.get_or_insert(at);
            }
            Event::ReadyAcked { student, at } => {
                let t = self.students.entry(student).or_default();
                t.ready_acked.get_or_insert(at);
            }
            Event::StudentAssigned { student, chat, at } => {
                let t = self.students.entry(student).or_default();
                min_in(&mut t.notified, at);
                t.add_chat(&chat);
            }
            Event::TeacherAssigned {
                teacher,
                chat,
                student,
                at,
            } => {
                if let Some(student) = student {
                    let t = self.students.entry(student).or_default();
                    min_in(&mut t.notified, at);
                    t.add_chat(&chat);
                }
                let held = self.teacher_chats.entry(teacher).or_default();
                if held.insert(chat) && held.len() > MAX_CHATS {
                    self.counts.add(Violation::TeacherOverCapacity, 1);
                }
            }
            Event::ClaimAssigned {
                chat,
                student,
                sent_at,
                at,
                ..
            } => {
                if let Some(student) = student {
                    let t = self.students.entry(student).or_default();
                    min_in(&mut t.notified, at);
                    min_in(&mut t.claim_sent, sent_at);
                    t.add_chat(&chat);
                }
            }
            Event::TeacherReleased { teacher, chat } => {
                if let Some(held) = self.teacher_chats.get_mut(&teacher) {
                    held.remove(&chat);
                }
            }
            Event::ChatReady { chat, role } => {
                if !self.ready.insert((chat, role)) {
                    self.counts.add(Violation::ChatReadyTwice, 1);
                }
            }
            Event::ChatTerminated { chat, role } => {
                if !self.terminated.insert((chat, role)) {
                    self.counts.add(Violation::ChatTerminatedTwice, 1);
                }
            }
            Event::ChatAbandoned { chat } => {
                self.abandoned.insert(chat);
            }
            Event::Seen(kind) => self.counts.add(kind, 1),
            Event::StudentDropped { student } => {
                self.dropped.insert(student);
            }
            Event::SentToAway { chat, from, k } => {
                self.sent_to_away.insert((chat, from, k));
            }
            Event::LostInTransit { chat, to, k } => self.lost_in_transit.push((chat, to, k)),
        }
        self.counts.total() - before
    }

    /// The final counts, including the whole-run judgements.
    pub fn finish(mut self) -> ViolationCounts {
        let twice: u64 = self
            .students
            .values()
            .map(|t| {
                let kept = t
                    .chats
                    .iter()
                    .filter(|c| !self.abandoned.contains(*c))
                    .count() as u64;
                kept.saturating_sub(1)
            })
            .sum();
        self.counts.add(Violation::StudentAssignedTwice, twice);
        let lost = self
            .lost_in_transit
            .iter()
            .filter(|(chat, to, k)| self.sent_to_away.contains(&(chat.clone(), to.other(), *k)))
            .count() as u64;
        self.counts.add(Violation::MessageLost, lost);
        for student in &self.dropped {
            if let Some(t) = self.students.get_mut(student) {
                t.claim_sent = None;
            }
        }
        let inversions = fifo_inversions(&self.students);
        self.counts.add(Violation::FifoInversion, inversions);
        self.counts
    }
}

/// Counts students B for which some A has `ack(A) < ready_sent(B)` and
/// `notified(B) < claim_sent(A)` (see the module docs). O(n log n).
fn fifo_inversions(students: &HashMap<u64, StudentTrace>) -> u64 {
    let mut earlier: Vec<(Micros, Micros)> = students
        .values()
        .filter_map(|t| Some((t.ready_acked?, t.claim_sent?)))
        .collect();
    earlier.sort_unstable();
    let mut later: Vec<(Micros, Micros)> = students
        .values()
        .filter_map(|t| Some((t.ready_sent?, t.notified?)))
        .collect();
    later.sort_unstable();
    let mut next = 0;
    let mut latest_claim: Option<Micros> = None;
    let mut count = 0;
    for (ready_sent, notified) in later {
        while next < earlier.len() && earlier[next].0 < ready_sent {
            min_max(&mut latest_claim, earlier[next].1);
            next += 1;
        }
        if latest_claim.is_some_and(|claim| notified < claim) {
            count += 1;
        }
    }
    count
}

fn min_max(slot: &mut Option<Micros>, v: Micros) {
    *slot = Some(slot.map_or(v, |old| old.max(v)));
}

/// Judges one `user:status` snapshot.
pub fn check_status(status: &Status) -> Option<Violation> {
    let s = &status.students;
    let sum = s
        .waiting
        .checked_add(s.chatting)
        .and_then(|n| n.checked_add(s.finished));
    (sum != Some(s.total)).then_some(Violation::StatusInconsistent)
}

/// The text the 2015 teacher sends as its k-th message of a chat.
pub fn teacher_message(k: u32) -> String {
    format!("Message from teacher: {k}")
}

/// The text the 2015 student sends after its k-th received message.
pub fn student_message(k: u32, student: u64) -> String {
    format!("Message #{k} from student: {student}")
}

fn looks_like_teacher_message(m: &str) -> bool {
    m.starts_with("Message from teacher: ")
}

fn looks_like_student_message(m: &str) -> bool {
    m.starts_with("Message #") && m.contains(" from student: ")
}

/// The student side of one chat: numbers what it receives and builds its answers.
#[derive(Debug, Clone)]
pub struct StudentRelay {
    student: u64,
    received: u32,
}

impl StudentRelay {
    pub fn new(student: u64) -> Self {
        StudentRelay {
            student,
            received: 0,
        }
    }

    /// A `student:receive` whose payload's `message` is `message` (`None`: the payload
    /// was not `{"message": string}`). Returns the answer the 2015 student sends (it
    /// answers every message) and the violation, if any.
    pub fn receive(&mut self, message: Option<&str>) -> (String, Option<Violation>) {
        self.received += 1;
        let verdict = match message {
            Some(m) if m == teacher_message(self.received) => None,
            Some(m) if looks_like_student_message(m) => Some(Violation::RelayWrongSide),
            _ => Some(Violation::RelayOutOfOrder),
        };
        (student_message(self.received, self.student), verdict)
    }

    /// Teacher messages read so far (each answered at once).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// The answer to the last message read, to send again (it never reached the
    /// server).
    pub fn answer_again(&self) -> String {
        student_message(self.received, self.student)
    }

    /// The next teacher message went to a dropped connection (the join reply's `seq`
    /// counts it): take it as read. Returns its answer.
    pub fn recover(&mut self) -> String {
        self.received += 1;
        student_message(self.received, self.student)
    }

    /// A `teacher:receive` reached the student: always the wrong side.
    pub fn wrong_event(&self) -> Violation {
        Violation::RelayWrongSide
    }
}

/// The teacher side of one chat: numbers what it sends and judges the answers.
#[derive(Debug, Clone)]
pub struct TeacherRelay {
    student: Option<u64>,
    sent: u32,
    awaiting: bool,
}

impl TeacherRelay {
    /// `student`: the chat's student as the chat object named it, when known.
    pub fn new(student: Option<u64>) -> Self {
        TeacherRelay {
            student,
            sent: 0,
            awaiting: false,
        }
    }

    /// The next message to send; the teacher then waits for its answer.
    pub fn next_message(&mut self) -> String {
        self.sent += 1;
        self.awaiting = true;
        teacher_message(self.sent)
    }

    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// Whether the answer to the latest message is still to come.
    pub fn awaiting(&self) -> bool {
        self.awaiting
    }

    /// The latest message again (it never reached the server).
    pub fn resend(&self) -> String {
        teacher_message(self.sent)
    }

    /// The answer to the latest message went to a dropped connection (the join
    /// reply's `seq` counts it): take it as read. Returns whether the teacher moves on.
    pub fn recover(&mut self) -> bool {
        std::mem::replace(&mut self.awaiting, false)
    }

    /// A `teacher:receive`. Returns whether the teacher moves on (it was waiting for an
    /// answer and this is a student's message, as the 2015 teacher does on any
    /// `teacher:receive`) and the violation, if any.
    pub fn receive(&mut self, message: Option<&str>) -> (bool, Option<Violation>) {
        if message.is_some_and(looks_like_teacher_message) {
            return (false, Some(Violation::RelayWrongSide));
        }
        let expected = match (message, self.student) {
            (Some(m), Some(student)) => m == student_message(self.sent, student),
            (Some(m), None) => m
                .strip_prefix(&format!("Message #{} from student: ", self.sent))
                .is_some(),
            (None, _) => false,
        };
        let moved_on = self.awaiting;
        self.awaiting = false;
        let verdict = (!(expected && moved_on)).then_some(Violation::RelayOutOfOrder);
        (moved_on, verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{StudentCounts, TeacherCounts};

    fn chat(n: u32) -> String {
        format!("chat-{n}")
    }

    /// One student's whole life as a correct server shows it: ready at `t`, assigned
    /// to `teacher` by a claim written at `t + 10`, chat ready and terminated on both
    /// sides, teacher slot released at `t + 30`.
    fn served(student: u64, teacher: u64, t: Micros) -> Vec<Event> {
        let c = format!("chat-s{student}");
        vec![
            Event::ReadySent { student, at: t },
            Event::ReadyAcked { student, at: t + 1 },
            Event::TeacherAssigned {
                teacher,
                chat: c.clone(),
                student: Some(student),
                at: t + 12,
            },
            Event::StudentAssigned {
                student,
                chat: c.clone(),
                at: t + 13,
            },
            Event::ClaimAssigned {
                teacher,
                chat: c.clone(),
                student: Some(student),
                sent_at: t + 10,
                at: t + 14,
            },
            Event::ChatReady {
                chat: c.clone(),
                role: Role::Teacher,
            },
            Event::ChatReady {
                chat: c.clone(),
                role: Role::Student,
            },
            Event::ChatTerminated {
                chat: c.clone(),
                role: Role::Teacher,
            },
            Event::TeacherReleased {
                teacher,
                chat: c.clone(),
            },
            Event::ChatTerminated {
                chat: c,
                role: Role::Student,
            },
        ]
    }

    /// Teacher 1's claim for `student`'s chat, written at `sent_at` and answered 1 µs
    /// later.
    fn claimed(student: u32, sent_at: Micros) -> Event {
        Event::ClaimAssigned {
            teacher: 1,
            chat: chat(student),
            student: Some(u64::from(student)),
            sent_at,
            at: sent_at + 1,
        }
    }

    /// B (2) is assigned and notified at 11, A's (1) claim is written at 20.
    fn b_before_a() -> [Event; 2] {
        [claimed(2, 10), claimed(1, 20)]
    }

    /// A (1) is queued before B (2) without doubt, yet B is served first.
    fn fifo_inversion() -> Vec<Event> {
        let mut events = vec![
            Event::ReadySent { student: 1, at: 0 },
            Event::ReadyAcked { student: 1, at: 2 },
            Event::ReadySent { student: 2, at: 3 },
            Event::ReadyAcked { student: 2, at: 4 },
        ];
        events.extend(b_before_a());
        events
    }

    fn run(events: impl IntoIterator<Item = Event>) -> ViolationCounts {
        let mut checker = Checker::new();
        for e in events {
            checker.observe(e);
        }
        checker.finish()
    }

    fn only(counts: &ViolationCounts, kind: Violation) -> u64 {
        for (k, n) in counts.iter() {
            if k != kind {
                assert_eq!(n, 0, "unexpected {}", k.name());
            }
        }
        counts.get(kind)
    }

    #[test]
    fn good_trace_has_no_violations() {
        // 12 students in arrival order, 2 teachers, served in order, 100 µs apart.
        let events = (0..12u64).flat_map(|s| served(s, s % 2, s * 100));
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn overlapping_ready_round_trips_are_not_judged() {
        // B's ready was written before A's ACK was read: their order is unknown, so B
        // being served first is no proof of an inversion.
        let mut events = vec![
            Event::ReadySent { student: 1, at: 0 },
            Event::ReadySent { student: 2, at: 5 },
            Event::ReadyAcked { student: 1, at: 6 },
            Event::ReadyAcked { student: 2, at: 7 },
        ];
        events.extend(b_before_a());
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn fifo_inversion_is_counted() {
        assert_eq!(only(&run(fifo_inversion()), Violation::FifoInversion), 1);
    }

    #[test]
    fn fifo_needs_strict_separation() {
        // ack(A) == ready_sent(B) and notified(B) == claim_sent(A): not proof.
        let events = vec![
            Event::ReadySent { student: 1, at: 0 },
            Event::ReadyAcked { student: 1, at: 3 },
            Event::ReadySent { student: 2, at: 3 },
            Event::ReadyAcked { student: 2, at: 4 },
            Event::StudentAssigned {
                student: 2,
                chat: chat(2),
                at: 20,
            },
            claimed(1, 20),
        ];
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn lifo_server_counts_every_jumper() {
        // 5 students arrive one after another; a LIFO server serves 5,4,3,2,1.
        let mut events = Vec::new();
        for s in 1..=5u64 {
            events.push(Event::ReadySent {
                student: s,
                at: s * 10,
            });
            events.push(Event::ReadyAcked {
                student: s,
                at: s * 10 + 1,
            });
        }
        for (i, s) in (1..=5u64).rev().enumerate() {
            let t = 100 + i as u64 * 10;
            events.push(Event::ClaimAssigned {
                teacher: 1,
                chat: format!("c{s}"),
                student: Some(s),
                sent_at: t,
                at: t + 2,
            });
        }
        // Students 5, 4, 3, 2 each jumped an earlier one.
        assert_eq!(only(&run(events), Violation::FifoInversion), 4);
    }

    #[test]
    fn sixth_chat_is_counted() {
        let mut events: Vec<Event> = (1..=6)
            .map(|n| Event::TeacherAssigned {
                teacher: 1,
                chat: chat(n),
                student: None,
                at: n as u64,
            })
            .collect();
        assert_eq!(
            only(&run(events.clone()), Violation::TeacherOverCapacity),
            1
        );
        // Releasing one before the 6th arrives makes it fine.
        events.insert(
            5,
            Event::TeacherReleased {
                teacher: 1,
                chat: chat(1),
            },
        );
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn teachers_are_counted_separately() {
        let events = (1..=10).map(|n| Event::TeacherAssigned {
            teacher: n as u64 % 2,
            chat: chat(n),
            student: None,
            at: n as u64,
        });
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn student_assigned_twice_is_counted() {
        let events = vec![
            Event::StudentAssigned {
                student: 7,
                chat: chat(1),
                at: 1,
            },
            Event::TeacherAssigned {
                teacher: 2,
                chat: chat(2),
                student: Some(7),
                at: 2,
            },
        ];
        assert_eq!(only(&run(events), Violation::StudentAssignedTwice), 1);
    }

    #[test]
    fn same_chat_seen_from_both_sides_is_one_assignment() {
        let events = vec![
            Event::StudentAssigned {
                student: 7,
                chat: chat(1),
                at: 1,
            },
            Event::TeacherAssigned {
                teacher: 2,
                chat: chat(1),
                student: Some(7),
                at: 2,
            },
            Event::ClaimAssigned {
                teacher: 2,
                chat: chat(1),
                student: Some(7),
                sent_at: 0,
                at: 3,
            },
        ];
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn reassignment_after_abandonment_is_fine() {
        let events = vec![
            Event::StudentAssigned {
                student: 7,
                chat: chat(1),
                at: 1,
            },
            Event::ChatAbandoned { chat: chat(1) },
            Event::StudentAssigned {
                student: 7,
                chat: chat(2),
                at: 5,
            },
        ];
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn chat_ready_twice_is_counted() {
        let ready = |role| Event::ChatReady {
            chat: chat(1),
            role,
        };
        let good = vec![ready(Role::Teacher), ready(Role::Student)];
        assert_eq!(run(good).total(), 0);
        let bad = vec![
            ready(Role::Teacher),
            ready(Role::Student),
            ready(Role::Student),
        ];
        assert_eq!(only(&run(bad), Violation::ChatReadyTwice), 1);
    }

    #[test]
    fn chat_terminated_twice_is_counted() {
        let done = |role| Event::ChatTerminated {
            chat: chat(1),
            role,
        };
        let good = vec![done(Role::Student), done(Role::Teacher)];
        assert_eq!(run(good).total(), 0);
        let bad = vec![
            done(Role::Teacher),
            done(Role::Teacher),
            done(Role::Student),
        ];
        assert_eq!(only(&run(bad), Violation::ChatTerminatedTwice), 1);
    }

    #[test]
    fn status_consistency() {
        let status = |total, waiting, chatting, finished| Status {
            teachers: TeacherCounts { total: 1 },
            students: StudentCounts {
                total,
                waiting,
                chatting,
                finished,
            },
        };
        assert_eq!(check_status(&status(6, 1, 2, 3)), None);
        assert_eq!(check_status(&status(0, 0, 0, 0)), None);
        assert_eq!(
            check_status(&status(7, 1, 2, 3)),
            Some(Violation::StatusInconsistent)
        );
        assert_eq!(
            check_status(&status(1, u64::MAX, 2, 0)),
            Some(Violation::StatusInconsistent)
        );
        let counts = run([Event::Seen(Violation::StatusInconsistent)]);
        assert_eq!(only(&counts, Violation::StatusInconsistent), 1);
    }

    /// Plays a whole chat of `m` messages between the two relay checkers.
    #[test]
    fn relay_good_conversation() {
        let mut teacher = TeacherRelay::new(Some(7));
        let mut student = StudentRelay::new(7);
        for _ in 0..50 {
            let out = teacher.next_message();
            let (answer, v) = student.receive(Some(&out));
            assert_eq!(v, None);
            assert_eq!(teacher.receive(Some(&answer)), (true, None));
        }
        assert_eq!(teacher.sent(), 50);
    }

    #[test]
    fn relay_out_of_order_at_student() {
        let mut student = StudentRelay::new(7);
        assert_eq!(student.receive(Some(&teacher_message(1))).1, None);
        // message 3 before 2 (or 2 lost)
        assert_eq!(
            student.receive(Some(&teacher_message(3))).1,
            Some(Violation::RelayOutOfOrder)
        );
        // duplicate
        let mut student = StudentRelay::new(7);
        student.receive(Some(&teacher_message(1)));
        assert_eq!(
            student.receive(Some(&teacher_message(1))).1,
            Some(Violation::RelayOutOfOrder)
        );
        // altered payload
        let mut student = StudentRelay::new(7);
        assert_eq!(student.receive(None).1, Some(Violation::RelayOutOfOrder));
    }

    #[test]
    fn relay_out_of_order_at_teacher() {
        let mut teacher = TeacherRelay::new(Some(7));
        teacher.next_message();
        teacher.next_message();
        // answer to message 1 while waiting for the answer to message 2
        assert_eq!(
            teacher.receive(Some(&student_message(1, 7))),
            (true, Some(Violation::RelayOutOfOrder))
        );
        // answer from another student
        let mut teacher = TeacherRelay::new(Some(7));
        teacher.next_message();
        assert_eq!(
            teacher.receive(Some(&student_message(1, 8))),
            (true, Some(Violation::RelayOutOfOrder))
        );
        // an extra answer nobody asked for
        assert_eq!(
            teacher.receive(Some(&student_message(1, 7))),
            (false, Some(Violation::RelayOutOfOrder))
        );
    }

    #[test]
    fn relay_wrong_side() {
        let mut teacher = TeacherRelay::new(Some(7));
        let out = teacher.next_message();
        // the teacher gets its own message back
        assert_eq!(
            teacher.receive(Some(&out)),
            (false, Some(Violation::RelayWrongSide))
        );
        // and the real answer still moves it on
        assert_eq!(teacher.receive(Some(&student_message(1, 7))), (true, None));
        let mut student = StudentRelay::new(7);
        assert_eq!(
            student.receive(Some(&student_message(1, 7))).1,
            Some(Violation::RelayWrongSide)
        );
        assert_eq!(student.wrong_event(), Violation::RelayWrongSide);
        let counts = run([Event::Seen(Violation::RelayWrongSide)]);
        assert_eq!(only(&counts, Violation::RelayWrongSide), 1);
    }

    #[test]
    fn a_student_away_may_be_skipped() {
        // The inversion of `fifo_inversion_is_counted`, but A (1) dropped its
        // connection: claims rightly skipped it while it was away (6.3).
        let mut events = fifo_inversion();
        events.insert(2, Event::StudentDropped { student: 1 });
        assert_eq!(run(events).total(), 0);
    }

    #[test]
    fn a_message_sent_to_an_away_side_must_be_held() {
        let sent = |k| Event::SentToAway {
            chat: chat(1),
            from: Role::Teacher,
            k,
        };
        let lost = |to, k| Event::LostInTransit {
            chat: chat(1),
            to,
            k,
        };
        // Message 3 went to the student's dead connection before the server saw the
        // drop: not the server's fault. Message 4 was written after the teacher read
        // `chat:away`: it had to be held, so its loss is.
        let counts = run([sent(4), lost(Role::Student, 3), lost(Role::Student, 4)]);
        assert_eq!(only(&counts, Violation::MessageLost), 1);
        // The student's own message 4 lost in transit is another message.
        assert_eq!(run([sent(4), lost(Role::Teacher, 4)]).total(), 0);
    }

    #[test]
    fn resume_helpers_of_the_relays() {
        let mut student = StudentRelay::new(7);
        let _ = student.receive(Some("Message from teacher: 1"));
        assert_eq!(student.answer_again(), "Message #1 from student: 7");
        assert_eq!(student.recover(), "Message #2 from student: 7");
        assert_eq!(student.received(), 2);
        assert_eq!(
            student.receive(Some("Message from teacher: 3")),
            ("Message #3 from student: 7".to_owned(), None)
        );
        let mut teacher = TeacherRelay::new(Some(7));
        assert_eq!(teacher.next_message(), "Message from teacher: 1");
        assert_eq!(teacher.resend(), "Message from teacher: 1");
        assert!(teacher.awaiting());
        assert!(teacher.recover());
        assert!(!teacher.awaiting());
        assert_eq!(teacher.next_message(), "Message from teacher: 2");
        assert_eq!(
            teacher.receive(Some("Message #2 from student: 7")),
            (true, None)
        );
    }
}
