//! The tutoring rules as plain Rust (PROTOCOL sections 5 to 7): no actors, no sockets, no
//! async, no clocks.
//!
//! * [`ids`]: user keys (`7` and `"7"` are one user), the separate teacher and student
//!   namespaces, chat ids.
//! * [`queue`]: the waiting queue, FIFO by arrival; a student whose teacher vanished goes
//!   back at the head.
//! * [`rosters`]: teachers present with their 0 to 5 active chats ([`Teachers`]); students
//!   present with their state and the queue, and the counts `user:status` reports
//!   ([`Students`]).
//! * [`chats`]: each chat's phase (`active → finished | abandoned`), the `chats:<cid>`
//!   join check, and the exactly-once `chat:ready` and finish.
//! * [`status`]: the `user:status` snapshot and its wire text.
//! * [`positions`]: who is told its place in the queue, and when (opt-in
//!   `queue:position`), with the work per queue change bounded.
//!
//! Each struct is owned by one actor (TeacherRoster, StudentRoster, ChatLog) and changed
//! only through the ChatLifetime operations, which call these methods in the order the
//! tests at the bottom of this file show (claim, ready, enter, terminate, student
//! vanishes, teacher vanishes). The methods report what changed, so the caller knows
//! which frames to send; they never send anything, never block, and never panic on any
//! input: unknown keys and repeated or late requests are answered with a value.

pub mod chats;
pub mod ids;
pub mod positions;
pub mod queue;
pub mod rosters;
pub mod status;

pub use chats::{ChatPhase, Chats, EndReason, Ended, EnterOutcome, JoinCheck, Role};
pub use ids::{
    check_id_text, BadId, ChatId, StudentKey, TeacherKey, UserId, UserKey, MAX_ID_BYTES,
};
pub use positions::{PositionNotice, PositionWatch};
pub use queue::{Arrival, WaitingQueue};
pub use rosters::{
    AssignRefusal, Assigned, ReadyOutcome, StudentCounts, StudentState, Students, Teachers,
    MAX_CHATS_PER_TEACHER,
};
pub use status::StatusSnapshot;

/// The rules working together: the ChatLifetime operations written out over the three
/// structs, checked against every invariant after every step.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::rosters::check::{students_consistent, teachers_within_cap};
    use super::*;

    fn user(n: u64) -> UserId {
        UserId::from_json(&json!(n)).expect("valid id")
    }

    /// What the three actors hold, and the exactly-once events seen so far.
    struct World {
        rng: StdRng,
        teachers: Teachers,
        students: Students,
        chats: Chats,
        ready_sent: HashSet<ChatId>,
        terminated_sent: HashSet<ChatId>,
        status_broadcasts: usize,
    }

    impl World {
        fn new(seed: u64) -> Self {
            World {
                rng: StdRng::seed_from_u64(seed),
                teachers: Teachers::new(),
                students: Students::new(),
                chats: Chats::new(),
                ready_sent: HashSet::new(),
                terminated_sent: HashSet::new(),
                status_broadcasts: 0,
            }
        }

        fn snapshot(&self) -> StatusSnapshot {
            StatusSnapshot {
                teachers: self.teachers.total(),
                students: self.students.counts(),
            }
        }

        fn ready(&mut self, n: u64) -> ReadyOutcome {
            let outcome = self.students.ready(&user(n).as_student());
            if matches!(outcome, ReadyOutcome::Queued(_)) {
                self.status_broadcasts += 1;
            }
            outcome
        }

        /// PROTOCOL 7.1: check the teacher, pop the head, take the slot, create the chat.
        fn claim(&mut self, t: u64) -> Option<(ChatId, StudentKey)> {
            let teacher = user(t).as_teacher();
            if !self.teachers.is_present(&teacher)
                || self.teachers.active_chats(&teacher) >= MAX_CHATS_PER_TEACHER
            {
                return None;
            }
            let head = self.students.queue().front().map(|(s, _)| s.clone());
            let chat = ChatId::random(&mut self.rng);
            let assigned = self.students.dequeue(chat)?;
            assert_eq!(Some(&assigned.student), head.as_ref(), "not FIFO");
            assert_eq!(self.teachers.try_assign(&teacher, chat), Ok(()));
            self.chats.create(chat, &user(t), &assigned.id);
            self.status_broadcasts += 1;
            Some((chat, assigned.student))
        }

        fn enter(&mut self, chat: ChatId, role: Role) {
            if self.chats.enter(chat, role) == EnterOutcome::Ready {
                assert!(self.ready_sent.insert(chat), "chat:ready twice");
            }
        }

        /// PROTOCOL 7.2: chat:terminate, or the student vanished while chatting.
        fn terminate(&mut self, chat: ChatId) -> bool {
            let Some(ended) = self.chats.finish(chat) else {
                return false;
            };
            assert!(self.terminated_sent.insert(chat), "chat:terminated twice");
            assert!(self.teachers.release(&ended.teacher, chat));
            // A vanished student is already gone; finishing it is then a no-op.
            self.students.finish_chat(&ended.student, chat);
            true
        }

        /// PROTOCOL 6.1.
        fn student_leaves(&mut self, n: u64) {
            let Some(was) = self.students.leave(&user(n).as_student()) else {
                return;
            };
            if let StudentState::Chatting { chat, .. } = was {
                assert!(self.terminate(chat));
            }
            if was.in_roster() {
                self.status_broadcasts += 1;
            }
        }

        /// PROTOCOL 6.2.
        fn teacher_leaves(&mut self, t: u64) -> usize {
            let Some(chats) = self.teachers.leave(&user(t).as_teacher()) else {
                return 0;
            };
            let mut requeued = 0;
            for chat in chats {
                if let Some(student) = self.chats.abandon(chat) {
                    if self.students.requeue(&student, chat) {
                        requeued += 1;
                    }
                }
            }
            if requeued > 0 {
                self.status_broadcasts += 1;
            }
            requeued
        }

        fn check(&self) {
            students_consistent(&self.students);
            teachers_within_cap(&self.teachers);
            let snapshot = self.snapshot();
            assert_eq!(snapshot.students.total(), self.students.counts().total());

            // Every chatting student sits in exactly one active chat, its own, and that
            // chat holds a slot of a present teacher.
            let mut chatting = 0;
            for (student, state) in self.students.iter() {
                if let StudentState::Chatting { chat, .. } = state {
                    chatting += 1;
                    assert_eq!(self.chats.phase(*chat), Some(ChatPhase::Active));
                    let (teacher, in_chat) = self.chats.participants(*chat).expect("known");
                    assert_eq!(in_chat, student);
                    assert!(self.teachers.chats_of(teacher).contains(chat));
                }
            }
            // Every active chat belongs to a chatting student and a present teacher.
            let active: Vec<ChatId> = self
                .chats
                .iter()
                .filter(|(_, phase)| *phase == ChatPhase::Active)
                .map(|(id, _)| id)
                .collect();
            assert_eq!(active.len(), self.chats.active_count());
            assert_eq!(active.len(), chatting);
            let held: usize = self.teachers.iter().map(|(_, c)| c.len()).sum();
            assert_eq!(
                held,
                active.len(),
                "a teacher holds a chat that is not active"
            );
            for chat in active {
                let (teacher, student) = self.chats.participants(chat).expect("known");
                assert!(self.teachers.is_present(teacher));
                assert!(matches!(
                    self.students.state(student),
                    Some(StudentState::Chatting { chat: c, .. }) if *c == chat
                ));
            }
        }
    }

    #[test]
    fn one_chat_from_ready_to_vanish() {
        let mut world = World::new(1);
        world.teachers.join(user(1).as_teacher());
        assert_eq!(world.claim(1), None, "nobody waits yet");
        world.students.join(user(7));
        assert!(matches!(world.ready(7), ReadyOutcome::Queued(_)));
        let (chat, student) = world.claim(1).expect("student 7 waits");
        assert_eq!(student, user(7).as_student());
        world.enter(chat, Role::Student);
        world.enter(chat, Role::Teacher);
        world.enter(chat, Role::Teacher);
        assert_eq!(world.ready_sent.len(), 1);
        assert!(world.terminate(chat));
        assert!(!world.terminate(chat), "a second chat:terminate is ignored");
        assert_eq!(world.teachers.active_chats(&user(1).as_teacher()), 0);
        assert_eq!(
            world.snapshot().to_json(),
            r#"{"teachers":{"total":1},"students":{"total":1,"waiting":0,"chatting":0,"finished":1}}"#
        );
        world.student_leaves(7);
        assert_eq!(world.snapshot().students.total(), 0);
        // ready, claim, student gone: three changes, three broadcasts.
        assert_eq!(world.status_broadcasts, 3);
        world.check();
    }

    #[test]
    fn a_student_vanishing_mid_chat_frees_the_teacher() {
        let mut world = World::new(2);
        world.teachers.join(user(1).as_teacher());
        world.students.join(user(7));
        world.ready(7);
        let (chat, _) = world.claim(1).expect("7 waits");
        world.student_leaves(7);
        assert!(world.terminated_sent.contains(&chat));
        assert_eq!(world.teachers.active_chats(&user(1).as_teacher()), 0);
        assert_eq!(world.students.counts(), StudentCounts::default());
        world.check();
    }

    #[test]
    fn a_vanished_teachers_students_are_served_first_in_arrival_order() {
        let mut world = World::new(3);
        world.teachers.join(user(1).as_teacher());
        world.teachers.join(user(2).as_teacher());
        for n in 1..=3 {
            world.students.join(user(n));
            world.ready(n);
        }
        world.claim(1).expect("student 1");
        world.claim(1).expect("student 2");
        world.claim(2).expect("student 3");
        for n in 4..=5 {
            world.students.join(user(n));
            world.ready(n);
        }
        let before = world.status_broadcasts;
        assert_eq!(world.teacher_leaves(1), 2);
        assert_eq!(
            world.status_broadcasts,
            before + 1,
            "one status for the requeue"
        );
        assert_eq!(world.teachers.total(), 1);
        assert!(world.terminated_sent.is_empty(), "abandoned, not finished");
        let served: Vec<StudentKey> = std::iter::from_fn(|| world.claim(2))
            .map(|(_, s)| s)
            .collect();
        // Teacher 2 has 4 free slots: 1 and 2 come back first, then 4 and 5 in order.
        assert_eq!(served, [1, 2, 4, 5].map(|n| user(n).as_student()).to_vec());
        world.check();
    }

    #[test]
    fn a_teacher_vanishing_with_no_chats_sends_no_status() {
        let mut world = World::new(4);
        world.teachers.join(user(1).as_teacher());
        assert_eq!(world.teacher_leaves(1), 0);
        assert_eq!(world.status_broadcasts, 0);
        assert_eq!(world.teachers.total(), 0);
    }

    #[test]
    fn random_operations_keep_every_invariant() {
        const TEACHERS: u64 = 4;
        const STUDENTS: u64 = 30;
        let mut world = World::new(5);
        let mut assigned = 0;
        for _ in 0..5000 {
            let active: Vec<ChatId> = world
                .chats
                .iter()
                .filter(|(_, p)| *p == ChatPhase::Active)
                .map(|(id, _)| id)
                .collect();
            match world.rng.random_range(0..100) {
                0..=4 => world
                    .teachers
                    .join(user(world.rng.random_range(1..=TEACHERS)).as_teacher()),
                5..=7 => {
                    let t = world.rng.random_range(1..=TEACHERS);
                    world.teacher_leaves(t);
                }
                8..=19 => world
                    .students
                    .join(user(world.rng.random_range(1..=STUDENTS))),
                20..=27 => {
                    let n = world.rng.random_range(1..=STUDENTS);
                    world.student_leaves(n);
                }
                28..=49 => {
                    let n = world.rng.random_range(1..=STUDENTS);
                    world.ready(n);
                }
                50..=74 => {
                    let t = world.rng.random_range(1..=TEACHERS);
                    assigned += usize::from(world.claim(t).is_some());
                }
                75..=89 if !active.is_empty() => {
                    let chat = active[world.rng.random_range(0..active.len())];
                    let role = if world.rng.random_bool(0.5) {
                        Role::Teacher
                    } else {
                        Role::Student
                    };
                    world.enter(chat, role);
                }
                _ if !active.is_empty() => {
                    let chat = active[world.rng.random_range(0..active.len())];
                    world.terminate(chat);
                }
                _ => {}
            }
            world.check();
            // Ended chats whose channels are all gone may be forgotten; do it sometimes.
            if world.rng.random_bool(0.1) {
                let ended: Vec<ChatId> = world
                    .chats
                    .iter()
                    .filter(|(_, p)| *p != ChatPhase::Active)
                    .map(|(id, _)| id)
                    .collect();
                for chat in ended {
                    assert!(world.chats.discard(chat));
                }
            }
        }
        // The run must actually have exercised the paths it checks.
        assert!(assigned > 100, "only {assigned} assignments");
        assert!(!world.ready_sent.is_empty());
        assert!(!world.terminated_sent.is_empty());
    }
}
