//! The steps (PROTOCOL 5 to 7): each thing that can happen to the rosters and the chat
//! log, as one function over all of them at once.
//!
//! Owns the order in which a step applies the rules of [`Teachers`], [`Students`],
//! [`Chats`] and [`PositionWatch`] (a claim takes the teacher's slot, then the head of
//! the queue, then creates the chat), and which `user:status` each step calls for. Each
//! step answers what happened as data: the outcome, the snapshot after it and the
//! teachers who must hear of it ([`Stepped`]); the caller turns that into frames.
//!
//! `ChatLifetime` runs exactly these functions, one step at a time, through the actor
//! that owns a [`Tutoring`]; the invariant tests below run the very same functions in
//! random order. A step must never send anything, block, read a clock or panic: unknown
//! keys and repeated or late requests are answered with a value.

use std::sync::Arc;

use super::chats::{ChatPhase, Chats, Ended, EnterOutcome, JoinCheck, Role};
use super::ids::{ChatId, StudentKey, TeacherKey, UserId, UserKey};
use super::positions::{PositionNotice, PositionWatch};
use super::rosters::{ReadyOutcome, StudentState, Students, Teachers};
use super::status::StatusSnapshot;

/// Who must be sent a `user:status` after a step (PROTOCOL 7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusNews {
    /// Nothing a teacher sees changed.
    None,
    /// Only the number of teachers changed: the teacher channels that asked for live
    /// counts are told.
    Teachers,
    /// The student counts changed: every teacher channel is told.
    Students,
}

/// What a step did, the `user:status` snapshot right after it, and who must hear of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Stepped<T> {
    pub outcome: T,
    pub status: StatusSnapshot,
    pub news: StatusNews,
}

/// A claim that found a student (PROTOCOL 7.1).
#[derive(Debug, PartialEq, Eq)]
pub struct Claimed {
    pub student: StudentKey,
    /// The chat object JSON for `new:chat` and the claim reply.
    pub object: Arc<str>,
}

/// A student that vanished with its last presence channel (PROTOCOL 6.1).
#[derive(Debug, PartialEq, Eq)]
pub struct Vanished {
    /// Where it stood.
    pub was: StudentState,
    /// The chat it was in, finished now: `chat:terminated` goes out for it, once.
    pub finished: Option<ChatId>,
}

/// One chat of a teacher that vanished (PROTOCOL 6.2): abandoned and forgotten, its
/// channels to be closed, no `chat:terminated`.
#[derive(Debug, PartialEq, Eq)]
pub struct Abandoned {
    pub chat: ChatId,
    /// Its student, back in the queue with its original arrival.
    pub requeued: Option<StudentKey>,
}

/// Everything the steps read and change: who teaches, who waits, which chats exist, and
/// who watches its place in the queue.
#[derive(Debug, Default)]
pub struct Tutoring {
    teachers: Teachers,
    students: Students,
    chats: Chats,
    positions: PositionWatch,
}

impl Tutoring {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `user:status` snapshot now.
    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            teachers: self.teachers.total(),
            students: self.students.counts(),
        }
    }

    fn stepped<T>(&self, outcome: T, news: StatusNews) -> Stepped<T> {
        Stepped {
            outcome,
            status: self.snapshot(),
            news,
        }
    }

    // ----- joins --------------------------------------------------------

    /// A teacher joined `presence:teachers` on one more channel (PROTOCOL 5.2). A
    /// teacher new to the roster changes the count of teachers only.
    pub fn teacher_present(&mut self, teacher: TeacherKey) -> Stepped<()> {
        let before = self.teachers.total();
        self.teachers.join(teacher);
        let news = if self.teachers.total() != before {
            StatusNews::Teachers
        } else {
            StatusNews::None
        };
        self.stepped((), news)
    }

    /// A student joined its presence topic on one more channel; not queued yet, so no
    /// count changes (PROTOCOL 5.2, 7.3).
    pub fn student_present(&mut self, student: UserId) {
        self.students.join(student);
    }

    /// May this user join `chats:<chat>` (PROTOCOL 5.2)? `user` is None when the join
    /// params named no valid role and id: unauthorized, if the chat exists.
    pub fn authorize_join(&self, chat: ChatId, user: Option<(Role, UserKey)>) -> JoinCheck {
        match user {
            Some((role, user)) => self.chats.authorize_join(chat, role, &user),
            None if !self.chats.exists(chat) => JoinCheck::UnknownChat,
            None => JoinCheck::Unauthorized,
        }
    }

    // ----- application events ---------------------------------------------

    /// `student:ready`: join the waiting queue at the tail (idempotent).
    pub fn ready(&mut self, student: &StudentKey) -> Stepped<ReadyOutcome> {
        let outcome = self.students.ready(student);
        let news = match outcome {
            ReadyOutcome::Queued(_) => StatusNews::Students,
            ReadyOutcome::Unchanged | ReadyOutcome::NotPresent => StatusNews::None,
        };
        self.stepped(outcome, news)
    }

    /// `claim:student` (PROTOCOL 7.1): take one of the teacher's five slots, pop the
    /// head of the queue into it, create the chat. None, with nothing changed, when the
    /// teacher is absent or full or nobody waits.
    pub fn claim(&mut self, teacher: &UserId, chat: ChatId) -> Stepped<Option<Claimed>> {
        let key = teacher.as_teacher();
        if self.teachers.try_assign(&key, chat).is_err() {
            return self.stepped(None, StatusNews::None);
        }
        let Some(assigned) = self.students.dequeue(chat) else {
            self.teachers.release(&key, chat);
            return self.stepped(None, StatusNews::None);
        };
        let object = self.chats.create(chat, teacher, &assigned.id);
        let claimed = Claimed {
            student: assigned.student,
            object,
        };
        self.stepped(Some(claimed), StatusNews::Students)
    }

    /// `teacher:joined` / `student:joined`: `Ready` exactly once per chat, when both
    /// sides are in.
    pub fn enter(&mut self, chat: ChatId, role: Role) -> EnterOutcome {
        self.chats.enter(chat, role)
    }

    /// `chat:terminate` from one side (PROTOCOL 7.2): the chat finishes exactly once,
    /// the teacher's slot is freed and the student is finished. None if the chat was not
    /// active.
    pub fn terminate(&mut self, chat: ChatId) -> Stepped<Option<Ended>> {
        let Some(ended) = self.end_chat(chat) else {
            return self.stepped(None, StatusNews::None);
        };
        self.students.finish_chat(&ended.student, chat);
        self.stepped(Some(ended), StatusNews::Students)
    }

    /// Finishes an active chat and frees its teacher's slot.
    fn end_chat(&mut self, chat: ChatId) -> Option<Ended> {
        let ended = self.chats.finish(chat)?;
        self.teachers.release(&ended.teacher, chat);
        Some(ended)
    }

    // ----- leaving ------------------------------------------------------

    /// A student lost one presence channel (PROTOCOL 6.1). On its last one it vanishes:
    /// out of the roster and the queue, and a chat it was in finishes. Teachers hear of
    /// it only if it was in the roster (had sent `student:ready`, PROTOCOL 8.4).
    pub fn student_absent(&mut self, student: &StudentKey) -> Stepped<Option<Vanished>> {
        let Some(was) = self.students.leave(student) else {
            return self.stepped(None, StatusNews::None);
        };
        let finished = match was {
            StudentState::Chatting { chat, .. } => self.end_chat(chat).map(|_| chat),
            _ => None,
        };
        let news = if was.in_roster() {
            StatusNews::Students
        } else {
            StatusNews::None
        };
        self.stepped(Some(Vanished { was, finished }), news)
    }

    /// A teacher lost one presence channel (PROTOCOL 6.2). On its last one it vanishes:
    /// each of its chats is abandoned and forgotten, and its student goes back to the
    /// queue with its original arrival, ahead of everyone who came later. None while the
    /// teacher is still present elsewhere (or unknown).
    pub fn teacher_absent(&mut self, teacher: &TeacherKey) -> Stepped<Option<Vec<Abandoned>>> {
        let Some(chats) = self.teachers.leave(teacher) else {
            return self.stepped(None, StatusNews::None);
        };
        let mut abandoned = Vec::with_capacity(chats.len());
        for chat in chats {
            let requeued = self
                .chats
                .abandon(chat)
                .filter(|student| self.students.requeue(student, chat));
            self.chats.discard(chat);
            abandoned.push(Abandoned { chat, requeued });
        }
        let news = if abandoned.iter().any(|a| a.requeued.is_some()) {
            StatusNews::Students
        } else {
            StatusNews::Teachers
        };
        self.stepped(Some(abandoned), news)
    }

    /// No channel is joined to the chat any more: forget it unless it is still active.
    pub fn discard(&mut self, chat: ChatId) -> bool {
        self.chats.discard(chat)
    }

    // ----- queue positions ----------------------------------------------

    /// One more channel of `student` asked for `queue:position`: the notice to send it
    /// now.
    pub fn watch_position(&mut self, student: StudentKey) -> PositionNotice {
        let teachers = self.teachers.total();
        self.positions
            .watch(student, self.students.queue(), teachers)
    }

    /// A channel that asked for notices went away.
    pub fn unwatch_position(&mut self, student: &StudentKey) {
        self.positions.unwatch(student);
    }

    /// One coalesced round of notices: those worth sending now.
    pub fn due_positions(&mut self) -> Vec<(StudentKey, PositionNotice)> {
        let teachers = self.teachers.total();
        self.positions.due(self.students.queue(), teachers)
    }

    // ----- reads, for checks --------------------------------------------

    pub fn teachers(&self) -> &Teachers {
        &self.teachers
    }

    pub fn students(&self) -> &Students {
        &self.students
    }

    pub fn chats(&self) -> &Chats {
        &self.chats
    }

    /// The chats still active, any order.
    pub fn active_chats(&self) -> impl Iterator<Item = ChatId> + '_ {
        self.chats
            .iter()
            .filter(|(_, phase)| *phase == ChatPhase::Active)
            .map(|(id, _)| id)
    }
}

/// The invariant tests: the steps above, run as `ChatLifetime` runs them, in scripted and
/// random orders, with every invariant checked after every step.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::super::rosters::check::{students_consistent, teachers_within_cap};
    use super::super::rosters::{StudentCounts, MAX_CHATS_PER_TEACHER};
    use super::*;

    fn user(n: u64) -> UserId {
        UserId::from_json(&json!(n)).expect("valid id")
    }

    /// A [`Tutoring`] driven through its steps, with what the connections would have
    /// been sent: the exactly-once events and the `user:status` broadcasts.
    struct Run {
        rng: StdRng,
        tutoring: Tutoring,
        ready_sent: HashSet<ChatId>,
        terminated_sent: HashSet<ChatId>,
        /// `user:status` to every teacher channel.
        status_broadcasts: usize,
        /// `user:status` to the teacher channels that asked for live counts only.
        live_broadcasts: usize,
    }

    impl Run {
        fn new(seed: u64) -> Self {
            Run {
                rng: StdRng::seed_from_u64(seed),
                tutoring: Tutoring::new(),
                ready_sent: HashSet::new(),
                terminated_sent: HashSet::new(),
                status_broadcasts: 0,
                live_broadcasts: 0,
            }
        }

        /// Runs one step. Its snapshot must be the state right after it, and its news
        /// must match what changed: every teacher hears of a change to the student
        /// counts, the live-count channels of a change to the teacher count alone, and
        /// nobody of anything else.
        fn step<T>(&mut self, step: impl FnOnce(&mut Tutoring) -> Stepped<T>) -> T {
            let before = self.tutoring.snapshot();
            let stepped = step(&mut self.tutoring);
            let after = self.tutoring.snapshot();
            assert_eq!(stepped.status, after, "the snapshot is not the state after");
            let news = if after.students != before.students {
                StatusNews::Students
            } else if after.teachers != before.teachers {
                StatusNews::Teachers
            } else {
                StatusNews::None
            };
            assert_eq!(stepped.news, news, "{before:?} -> {after:?}");
            match stepped.news {
                StatusNews::Students => self.status_broadcasts += 1,
                StatusNews::Teachers => self.live_broadcasts += 1,
                StatusNews::None => {}
            }
            stepped.outcome
        }

        fn teacher_joins(&mut self, t: u64) {
            self.step(|w| w.teacher_present(user(t).as_teacher()));
        }

        fn student_joins(&mut self, n: u64) {
            let before = self.tutoring.snapshot();
            self.tutoring.student_present(user(n));
            assert_eq!(self.tutoring.snapshot(), before);
        }

        fn ready(&mut self, n: u64) -> ReadyOutcome {
            self.step(|w| w.ready(&user(n).as_student()))
        }

        /// A claim serves the head of the queue, and is refused only when the teacher
        /// is absent or full or nobody waits.
        fn claim(&mut self, t: u64) -> Option<(ChatId, StudentKey)> {
            let teacher = user(t);
            let key = teacher.as_teacher();
            let head = self
                .tutoring
                .students()
                .queue()
                .front()
                .map(|(s, _)| s.clone());
            let may = self.tutoring.teachers().is_present(&key)
                && self.tutoring.teachers().active_chats(&key) < MAX_CHATS_PER_TEACHER
                && head.is_some();
            let chat = ChatId::random(&mut self.rng);
            let claimed = self.step(|w| w.claim(&teacher, chat));
            assert_eq!(claimed.is_some(), may, "claim by {t} with head {head:?}");
            let claimed = claimed?;
            assert_eq!(Some(&claimed.student), head.as_ref(), "not FIFO");
            assert_eq!(
                self.tutoring.chats().participants(chat),
                Some((&key, &claimed.student))
            );
            Some((chat, claimed.student))
        }

        fn enter(&mut self, chat: ChatId, role: Role) -> EnterOutcome {
            let active = self.tutoring.chats().phase(chat) == Some(ChatPhase::Active);
            let outcome = self.tutoring.enter(chat, role);
            assert_eq!(outcome == EnterOutcome::NotActive, !active);
            if outcome == EnterOutcome::Ready {
                assert!(self.ready_sent.insert(chat), "chat:ready twice");
            }
            outcome
        }

        fn finished(&mut self, chat: ChatId) {
            assert!(self.terminated_sent.insert(chat), "chat:terminated twice");
            assert_eq!(self.tutoring.chats().phase(chat), Some(ChatPhase::Finished));
        }

        fn terminate(&mut self, chat: ChatId) -> bool {
            let ended = self.step(|w| w.terminate(chat));
            if let Some(ended) = &ended {
                self.finished(chat);
                assert!(!self
                    .tutoring
                    .teachers()
                    .chats_of(&ended.teacher)
                    .contains(&chat));
                if let Some(state) = self.tutoring.students().state(&ended.student) {
                    assert_eq!(state, &StudentState::Finished);
                }
            }
            ended.is_some()
        }

        fn student_leaves(&mut self, n: u64) -> Option<Vanished> {
            let student = user(n).as_student();
            let vanished = self.step(|w| w.student_absent(&student));
            if let Some(vanished) = &vanished {
                assert!(!self.tutoring.students().is_present(&student));
                let chat = match vanished.was {
                    StudentState::Chatting { chat, .. } => Some(chat),
                    _ => None,
                };
                assert_eq!(vanished.finished, chat, "its chat must finish");
                if let Some(chat) = chat {
                    self.finished(chat);
                }
            }
            vanished
        }

        /// Its chats are abandoned and forgotten, with no `chat:terminated`, and their
        /// students are back in the queue with the arrival they had: ahead of everyone
        /// who came later.
        fn teacher_leaves(&mut self, t: u64) -> usize {
            let teacher = user(t).as_teacher();
            let held: Vec<(ChatId, StudentKey, StudentState)> = self
                .tutoring
                .teachers()
                .chats_of(&teacher)
                .iter()
                .filter_map(|&chat| {
                    let (_, student) = self.tutoring.chats().participants(chat)?;
                    let state = self.tutoring.students().state(student)?;
                    Some((chat, student.clone(), state.clone()))
                })
                .collect();
            let terminated = self.terminated_sent.len();
            let Some(abandoned) = self.step(|w| w.teacher_absent(&teacher)) else {
                assert!(held.is_empty() || self.tutoring.teachers().is_present(&teacher));
                return 0;
            };
            assert!(!self.tutoring.teachers().is_present(&teacher));
            assert_eq!(self.terminated_sent.len(), terminated);
            assert_eq!(abandoned.len(), held.len());
            for (chat, student, was) in held {
                let StudentState::Chatting { arrival, .. } = was else {
                    panic!("{student} held a slot while {was:?}");
                };
                let entry = Abandoned {
                    chat,
                    requeued: Some(student.clone()),
                };
                assert!(abandoned.contains(&entry), "{chat} not requeued");
                assert_eq!(self.tutoring.chats().phase(chat), None, "not forgotten");
                assert_eq!(
                    self.tutoring.students().state(&student),
                    Some(&StudentState::Waiting(arrival)),
                    "requeued with another arrival"
                );
            }
            abandoned.iter().filter(|a| a.requeued.is_some()).count()
        }

        fn check(&self) {
            let students = self.tutoring.students();
            let teachers = self.tutoring.teachers();
            let chats = self.tutoring.chats();
            students_consistent(students);
            teachers_within_cap(teachers);

            // Every chatting student sits in exactly one active chat, its own, and that
            // chat holds a slot of a present teacher.
            let mut chatting = 0;
            for (student, state) in students.iter() {
                if let StudentState::Chatting { chat, .. } = state {
                    chatting += 1;
                    assert_eq!(chats.phase(*chat), Some(ChatPhase::Active));
                    let (teacher, in_chat) = chats.participants(*chat).expect("known");
                    assert_eq!(in_chat, student);
                    assert!(teachers.chats_of(teacher).contains(chat));
                }
            }
            // Every active chat belongs to a chatting student and a present teacher, so
            // no student is in two chats.
            let active: Vec<ChatId> = self.tutoring.active_chats().collect();
            assert_eq!(active.len(), chats.active_count());
            assert_eq!(active.len(), chatting);
            let held: usize = teachers.iter().map(|(_, c)| c.len()).sum();
            assert_eq!(held, active.len(), "a teacher holds a chat not active");
            for chat in active {
                let (teacher, student) = chats.participants(chat).expect("known");
                assert!(teachers.is_present(teacher));
                assert!(matches!(
                    students.state(student),
                    Some(StudentState::Chatting { chat: c, .. }) if *c == chat
                ));
            }
        }
    }

    #[test]
    fn one_chat_from_ready_to_vanish() {
        let mut run = Run::new(1);
        run.teacher_joins(1);
        assert_eq!(run.claim(1), None, "nobody waits yet");
        run.student_joins(7);
        assert!(matches!(run.ready(7), ReadyOutcome::Queued(_)));
        let (chat, student) = run.claim(1).expect("student 7 waits");
        assert_eq!(student, user(7).as_student());
        run.enter(chat, Role::Student);
        assert_eq!(run.enter(chat, Role::Teacher), EnterOutcome::Ready);
        run.enter(chat, Role::Teacher);
        assert_eq!(run.ready_sent.len(), 1);
        assert!(run.terminate(chat));
        assert!(!run.terminate(chat), "a second chat:terminate is ignored");
        assert_eq!(run.enter(chat, Role::Student), EnterOutcome::NotActive);
        assert_eq!(
            run.tutoring.teachers().active_chats(&user(1).as_teacher()),
            0
        );
        assert_eq!(
            run.tutoring.snapshot().to_json(),
            r#"{"teachers":{"total":1},"students":{"total":1,"waiting":0,"chatting":0,"finished":1}}"#
        );
        assert!(run.tutoring.discard(chat));
        run.student_leaves(7);
        assert_eq!(run.tutoring.snapshot().students.total(), 0);
        // ready, claim, terminate, student gone: four changes, four broadcasts; and the
        // teacher's arrival for the live counts.
        assert_eq!(run.status_broadcasts, 4);
        assert_eq!(run.live_broadcasts, 1);
        run.check();
    }

    #[test]
    fn a_student_vanishing_mid_chat_finishes_it_and_frees_the_teacher() {
        let mut run = Run::new(2);
        run.teacher_joins(1);
        run.student_joins(7);
        run.ready(7);
        let (chat, _) = run.claim(1).expect("7 waits");
        let vanished = run.student_leaves(7).expect("last channel");
        assert_eq!(vanished.finished, Some(chat));
        assert!(run.terminated_sent.contains(&chat));
        assert_eq!(
            run.tutoring.teachers().active_chats(&user(1).as_teacher()),
            0
        );
        assert_eq!(run.tutoring.students().counts(), StudentCounts::default());
        run.check();
    }

    #[test]
    fn a_student_vanishing_before_ready_is_no_news() {
        let mut run = Run::new(3);
        run.student_joins(7);
        run.student_joins(7);
        assert_eq!(run.student_leaves(7), None, "a second tab is still open");
        let vanished = run.student_leaves(7).expect("last channel");
        assert_eq!(vanished.was, StudentState::Present);
        assert_eq!(run.status_broadcasts, 0);
    }

    #[test]
    fn a_vanished_teachers_students_are_served_first_in_arrival_order() {
        let mut run = Run::new(4);
        run.teacher_joins(1);
        run.teacher_joins(2);
        for n in 1..=3 {
            run.student_joins(n);
            run.ready(n);
        }
        run.claim(1).expect("student 1");
        run.claim(1).expect("student 2");
        run.claim(2).expect("student 3");
        for n in 4..=5 {
            run.student_joins(n);
            run.ready(n);
        }
        let before = run.status_broadcasts;
        assert_eq!(run.teacher_leaves(1), 2);
        assert_eq!(
            run.status_broadcasts,
            before + 1,
            "one status for the requeue"
        );
        assert_eq!(run.tutoring.teachers().total(), 1);
        assert!(run.terminated_sent.is_empty(), "abandoned, not finished");
        let served: Vec<StudentKey> = std::iter::from_fn(|| run.claim(2))
            .map(|(_, s)| s)
            .collect();
        // Teacher 2 has 4 free slots: 1 and 2 come back first, then 4 and 5 in order.
        assert_eq!(served, [1, 2, 4, 5].map(|n| user(n).as_student()).to_vec());
        run.check();
    }

    #[test]
    fn a_teacher_vanishing_with_no_chats_tells_only_the_live_counts() {
        let mut run = Run::new(5);
        run.teacher_joins(1);
        run.teacher_joins(1);
        assert_eq!(run.live_broadcasts, 1, "a second tab is no news");
        assert_eq!(run.teacher_leaves(1), 0);
        assert_eq!(run.tutoring.teachers().total(), 1);
        assert_eq!(run.teacher_leaves(1), 0);
        assert_eq!(run.status_broadcasts, 0);
        assert_eq!(run.live_broadcasts, 2);
        assert_eq!(run.tutoring.teachers().total(), 0);
    }

    #[test]
    fn random_steps_keep_every_invariant() {
        const TEACHERS: u64 = 4;
        const STUDENTS: u64 = 30;
        let mut run = Run::new(6);
        let mut assigned = 0;
        let mut requeued = 0;
        // Every chat ever created, to discard (or try to) at random.
        let mut known: Vec<ChatId> = Vec::new();
        for _ in 0..5000 {
            let active: Vec<ChatId> = run.tutoring.active_chats().collect();
            let role = if run.rng.random_bool(0.5) {
                Role::Teacher
            } else {
                Role::Student
            };
            let t = run.rng.random_range(1..=TEACHERS);
            let n = run.rng.random_range(1..=STUDENTS);
            match run.rng.random_range(0..100) {
                0..=4 => run.teacher_joins(t),
                5..=7 => requeued += run.teacher_leaves(t),
                8..=19 => run.student_joins(n),
                20..=27 => {
                    run.student_leaves(n);
                }
                28..=49 => {
                    run.ready(n);
                }
                50..=74 => {
                    if let Some((chat, _)) = run.claim(t) {
                        assigned += 1;
                        known.push(chat);
                    }
                }
                75..=89 if !active.is_empty() => {
                    let chat = active[run.rng.random_range(0..active.len())];
                    run.enter(chat, role);
                }
                90..=96 if !active.is_empty() => {
                    let chat = active[run.rng.random_range(0..active.len())];
                    run.terminate(chat);
                }
                // A chat's last channel left: forgotten unless still active.
                _ if !known.is_empty() => {
                    let chat = known.swap_remove(run.rng.random_range(0..known.len()));
                    let phase = run.tutoring.chats().phase(chat);
                    let discarded = run.tutoring.discard(chat);
                    assert_eq!(discarded, phase.is_some_and(|p| p != ChatPhase::Active));
                    if phase == Some(ChatPhase::Active) {
                        known.push(chat);
                    }
                }
                _ => {}
            }
            run.check();
        }
        // The run must actually have exercised the paths it checks.
        assert!(assigned > 100, "only {assigned} assignments");
        assert!(requeued > 10, "only {requeued} requeued");
        assert!(run.ready_sent.len() > 10);
        assert!(run.terminated_sent.len() > 10);
        assert!(run.status_broadcasts > 100 && run.live_broadcasts > 10);
    }
}
