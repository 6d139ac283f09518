//! Who is here: the teachers present with their active chats, and the students present
//! with their state and the waiting queue (PROTOCOL 5.2, 6, 7.1, 7.4).
//!
//! Owns presence counting (a user is present while at least one presence channel is
//! joined, on any number of connections), the cap of [`MAX_CHATS_PER_TEACHER`], the
//! student state machine and the student counts that `user:status` reports, kept in O(1).
//!
//! A token user whose last presence channel went with its connection is *away*
//! (PROTOCOL 6.3): it keeps its entry, its place in the queue and its chats, with no
//! channel, until it comes back (joins again) or its window ends ([`AwaySpell`]). Claims
//! pass over away students.
//!
//! Must never reset a known user on a re-join (the 2015 server did, so a reconnected
//! teacher could hold more than 5 chats and a chatting student could be assigned twice,
//! PROTOCOL 8.8), never let the counts drift from the states, and never panic on an
//! unknown key: a bad or late request is refused with a value, not a crash (PROTOCOL 8.11).

use std::collections::HashMap;

use super::ids::{ChatId, StudentKey, TeacherKey, UserId};
use super::office_hours::{Ticket, Waiting, WaitingList};
use super::queue::{Arrival, WaitingQueue};
use serde_json::Value;

/// The most students one teacher chats with at once (client A hard-codes it too).
pub const MAX_CHATS_PER_TEACHER: usize = 5;

/// One absence of an away user (PROTOCOL 6.3). Each absence gets a new one, so the end
/// of a window that was left behind (the user came back, then went away again) cannot
/// remove the user: only the spell it was started for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AwaySpell(u64);

impl AwaySpell {
    /// A spell by its number, as a shared engine keeps it.
    pub(crate) fn from_number(number: u64) -> AwaySpell {
        AwaySpell(number)
    }

    pub fn number(self) -> u64 {
        self.0
    }

    /// The next spell after `counter`, which moves on.
    fn next(counter: &mut u64) -> AwaySpell {
        *counter = counter.wrapping_add(1);
        AwaySpell(*counter)
    }
}

/// A user's presence channels (on any number of connections), or, once the last one
/// went with its connection, the spell it is away in.
#[derive(Debug, Default)]
struct Presence {
    channels: usize,
    /// Away since its last channel went with its connection (then `channels` is 0).
    away: Option<AwaySpell>,
}

impl Presence {
    /// One more channel; true if the user was away (it is back).
    fn join(&mut self) -> bool {
        self.channels = self.channels.saturating_add(1);
        self.away.take().is_some()
    }

    /// One channel fewer; true if it was the last. An away user has none to lose:
    /// only its window's end removes it.
    fn lose(&mut self) -> bool {
        if self.away.is_some() {
            return false;
        }
        self.channels = self.channels.saturating_sub(1);
        self.channels == 0
    }

    /// One channel fewer, gone with its connection: on the last one, away in the next
    /// spell of `spells`.
    fn go_away(&mut self, spells: &mut u64) -> Option<AwaySpell> {
        if !self.lose() {
            return None;
        }
        let spell = AwaySpell::next(spells);
        self.away = Some(spell);
        Some(spell)
    }

    /// Still away in `spell`: the window that ends is its own.
    fn away_in(&self, spell: AwaySpell) -> bool {
        self.away == Some(spell) && self.channels == 0
    }
}

#[derive(Debug, Default)]
struct TeacherEntry {
    /// Its `presence:teachers` channels: it vanishes when the last goes, or is away
    /// if that one went with its connection.
    presence: Presence,
    /// At most MAX_CHATS_PER_TEACHER, so a Vec beats a set.
    chats: Vec<ChatId>,
}

/// Teachers present (at least one joined `presence:teachers` channel, or away) and their
/// active chats.
#[derive(Default, Debug)]
pub struct Teachers {
    teachers: HashMap<TeacherKey, TeacherEntry>,
    spells: u64,
}

/// Why a teacher could not take another chat.
#[derive(Debug, PartialEq, Eq)]
pub enum AssignRefusal {
    NotPresent,
    Full,
}

impl Teachers {
    pub fn new() -> Self {
        Self::default()
    }

    /// One more presence channel for this teacher; creates it with 0 chats if new. Never
    /// resets an existing teacher (re-joins do not reset state). True if it was away:
    /// it is back, with its chats.
    pub fn join(&mut self, teacher: TeacherKey) -> bool {
        self.teachers.entry(teacher).or_default().presence.join()
    }

    /// One presence channel fewer, gone with its connection. If it was the last one the
    /// teacher is away: it keeps its chats and its place in the count. Otherwise (or
    /// unknown) None.
    pub fn away(&mut self, teacher: &TeacherKey) -> Option<AwaySpell> {
        let entry = self.teachers.get_mut(teacher)?;
        entry.presence.go_away(&mut self.spells)
    }

    /// The window of `spell` ended: if the teacher is still away in it, it vanishes as
    /// in [`Teachers::leave`], and its chats are returned. Otherwise None.
    pub fn expire(&mut self, teacher: &TeacherKey, spell: AwaySpell) -> Option<Vec<ChatId>> {
        if !self.teachers.get(teacher)?.presence.away_in(spell) {
            return None;
        }
        self.teachers.remove(teacher).map(|gone| gone.chats)
    }

    pub fn is_away(&self, teacher: &TeacherKey) -> bool {
        self.teachers
            .get(teacher)
            .is_some_and(|t| t.presence.away.is_some())
    }

    /// One presence channel fewer. If it was the last one the teacher vanishes: it is
    /// removed and its active chats are returned (Some, possibly empty). Otherwise None.
    /// Unknown teacher: None.
    pub fn leave(&mut self, teacher: &TeacherKey) -> Option<Vec<ChatId>> {
        if !self.teachers.get_mut(teacher)?.presence.lose() {
            return None;
        }
        self.teachers.remove(teacher).map(|gone| gone.chats)
    }

    pub fn is_present(&self, teacher: &TeacherKey) -> bool {
        self.teachers.contains_key(teacher)
    }

    /// Teachers present now (teachers.total of user:status).
    pub fn total(&self) -> usize {
        self.teachers.len()
    }

    /// Active chats of this teacher; 0 if it is not present.
    pub fn active_chats(&self, teacher: &TeacherKey) -> usize {
        self.teachers.get(teacher).map_or(0, |t| t.chats.len())
    }

    /// The ids of this teacher's active chats (empty if it is not present).
    pub fn chats_of(&self, teacher: &TeacherKey) -> &[ChatId] {
        self.teachers
            .get(teacher)
            .map_or(&[][..], |t| t.chats.as_slice())
    }

    /// Take a slot for a new chat: refused if not present or already at
    /// MAX_CHATS_PER_TEACHER. Assigning a chat the teacher already holds is Ok and takes
    /// no second slot.
    pub fn try_assign(&mut self, teacher: &TeacherKey, chat: ChatId) -> Result<(), AssignRefusal> {
        let entry = self
            .teachers
            .get_mut(teacher)
            .ok_or(AssignRefusal::NotPresent)?;
        if entry.chats.contains(&chat) {
            return Ok(());
        }
        if entry.chats.len() >= MAX_CHATS_PER_TEACHER {
            return Err(AssignRefusal::Full);
        }
        entry.chats.push(chat);
        Ok(())
    }

    /// Free the slot of a chat that ended; false if the teacher or chat is unknown (no
    /// panic).
    pub fn release(&mut self, teacher: &TeacherKey, chat: ChatId) -> bool {
        let Some(entry) = self.teachers.get_mut(teacher) else {
            return false;
        };
        match entry.chats.iter().position(|&c| c == chat) {
            Some(at) => {
                entry.chats.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Every present teacher with its active chats (any order).
    pub fn iter(&self) -> impl Iterator<Item = (&TeacherKey, &[ChatId])> + '_ {
        self.teachers.iter().map(|(k, t)| (k, t.chats.as_slice()))
    }
}

/// Where a student stands (PROTOCOL 7.4). `Present` = joined its presence topic but not in
/// the roster (has not sent student:ready).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StudentState {
    Present,
    Waiting(Arrival),
    Chatting { chat: ChatId, arrival: Arrival },
    Finished,
}

impl StudentState {
    /// In the roster, i.e. counted in `students.total`. A student leaving in a state where
    /// this is false causes no `user:status` (PROTOCOL 6.1 step 4, 8.4).
    pub fn in_roster(&self) -> bool {
        !matches!(self, StudentState::Present)
    }

    /// Its name in join replies (PROTOCOL 6.3).
    pub fn as_str(&self) -> &'static str {
        match self {
            StudentState::Present => "present",
            StudentState::Waiting(_) => "waiting",
            StudentState::Chatting { .. } => "chatting",
            StudentState::Finished => "finished",
        }
    }
}

/// The `students` part of `user:status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StudentCounts {
    pub waiting: usize,
    pub chatting: usize,
    pub finished: usize,
}

impl StudentCounts {
    /// waiting + chatting + finished: by construction `students.total` cannot disagree
    /// with its parts.
    pub fn total(&self) -> usize {
        self.waiting + self.chatting + self.finished
    }

    /// The counter a state is counted in; `Present` is in none.
    fn slot(&mut self, state: &StudentState) -> Option<&mut usize> {
        match state {
            StudentState::Present => None,
            StudentState::Waiting(_) => Some(&mut self.waiting),
            StudentState::Chatting { .. } => Some(&mut self.chatting),
            StudentState::Finished => Some(&mut self.finished),
        }
    }

    fn count_in(&mut self, state: &StudentState) {
        if let Some(n) = self.slot(state) {
            *n = n.saturating_add(1);
        }
    }

    fn count_out(&mut self, state: &StudentState) {
        if let Some(n) = self.slot(state) {
            *n = n.saturating_sub(1);
        }
    }
}

/// What `student:ready` did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadyOutcome {
    /// Now waiting with this arrival: the counts changed, broadcast `user:status`.
    Queued(Arrival),
    /// Already waiting or chatting: nothing changed, no broadcast.
    Unchanged,
    /// No presence channel for this student.
    NotPresent,
    /// The queue is closed and the student was not in line: not queued.
    Closed,
}

/// The student a claim took off the head of the queue, with the id to echo in the chat
/// object.
#[derive(Debug, PartialEq, Eq)]
pub struct Assigned {
    pub student: StudentKey,
    pub id: UserId,
}

#[derive(Debug)]
struct StudentEntry {
    /// The id as first sent, echoed as `student_id` in chat objects.
    id: UserId,
    /// Its `presence:student:<sid>` channels: it vanishes when the last goes, or is
    /// away if that one went with its connection.
    presence: Presence,
    state: StudentState,
    /// What it brought to the line (question, when): kept while it waits or
    /// chats (a requeue keeps it), dropped when its chat finishes.
    ticket: Option<Ticket>,
}

/// Students present, their state, and the waiting queue; keeps the counts in O(1).
///
/// Invariant: the queue holds exactly the `Waiting` students, each with the arrival its
/// state records, and `counts` equals a scan of the states. An away student keeps its
/// state (and so its place and its count) until it is back or its window ends.
#[derive(Default, Debug)]
pub struct Students {
    students: HashMap<StudentKey, StudentEntry>,
    queue: WaitingQueue,
    counts: StudentCounts,
    spells: u64,
}

impl Students {
    pub fn new() -> Self {
        Self::default()
    }

    /// One more presence channel; `id` is remembered (first join wins) to echo in the chat
    /// object. Never resets the state of a known student. True if it was away: it is back
    /// where it stood.
    pub fn join(&mut self, id: UserId) -> bool {
        let entry = self
            .students
            .entry(id.as_student())
            .or_insert_with(|| StudentEntry {
                id,
                presence: Presence::default(),
                state: StudentState::Present,
                ticket: None,
            });
        entry.presence.join()
    }

    /// One presence channel fewer, gone with its connection. If it was the last one the
    /// student is away: it stays where it stands (waiting at its place, or in its chat),
    /// and its state is returned with the spell. Otherwise (or unknown) None.
    pub fn away(&mut self, student: &StudentKey) -> Option<(AwaySpell, StudentState)> {
        let entry = self.students.get_mut(student)?;
        let spell = entry.presence.go_away(&mut self.spells)?;
        Some((spell, entry.state.clone()))
    }

    /// The window of `spell` ended: if the student is still away in it, it vanishes as
    /// in [`Students::leave`]. Otherwise None.
    pub fn expire(&mut self, student: &StudentKey, spell: AwaySpell) -> Option<StudentState> {
        if !self.students.get(student)?.presence.away_in(spell) {
            return None;
        }
        self.remove(student)
    }

    pub fn is_away(&self, student: &StudentKey) -> bool {
        self.students
            .get(student)
            .is_some_and(|e| e.presence.away.is_some())
    }

    /// student:ready. Present or Finished -> Waiting (new arrival, tail). Waiting or
    /// Chatting -> Unchanged (idempotent). Unknown -> NotPresent.
    pub fn ready(&mut self, student: &StudentKey) -> ReadyOutcome {
        let Some(entry) = self.students.get_mut(student) else {
            return ReadyOutcome::NotPresent;
        };
        match entry.state {
            StudentState::Waiting(_) | StudentState::Chatting { .. } => ReadyOutcome::Unchanged,
            StudentState::Present | StudentState::Finished => {
                let arrival = self.queue.enqueue(student.clone());
                let next = StudentState::Waiting(arrival);
                self.counts.count_out(&entry.state);
                self.counts.count_in(&next);
                entry.state = next;
                ReadyOutcome::Queued(arrival)
            }
        }
    }

    /// The ticket of a student who waits (a new one), or the question of one
    /// who waits already (its place and time stay). False, and nothing kept,
    /// for a student not waiting.
    pub fn set_ticket(&mut self, student: &StudentKey, ticket: Ticket) -> bool {
        let Some(entry) = self.students.get_mut(student) else {
            return false;
        };
        if !matches!(entry.state, StudentState::Waiting(_)) {
            return false;
        }
        match &mut entry.ticket {
            Some(kept) => kept.question = ticket.question,
            None => entry.ticket = Some(ticket),
        }
        true
    }

    /// What a waiting or chatting student brought to the line.
    pub fn ticket(&self, student: &StudentKey) -> Option<&Ticket> {
        self.students.get(student)?.ticket.as_ref()
    }

    /// The head of the queue, at most `limit` students, with their tickets.
    pub fn waiting_list(&self, limit: usize) -> WaitingList {
        let students = self
            .queue
            .iter()
            .take(limit)
            .enumerate()
            .filter_map(|(i, (student, _))| {
                let entry = self.students.get(student)?;
                Some(Waiting {
                    id: serde_json::from_str(&entry.id.json).unwrap_or(Value::Null),
                    ticket: entry.ticket.clone(),
                    position: i + 1,
                    away: entry.presence.away.is_some(),
                })
            })
            .collect();
        WaitingList {
            students,
            total: self.queue.len(),
        }
    }

    /// Claim step 3-4: take the first student of the queue who is not away and mark it
    /// Chatting in `chat`. None if nobody present waits. Away students keep their place.
    pub fn dequeue(&mut self, chat: ChatId) -> Option<Assigned> {
        // The invariant makes the first take the answer; the loop only skips an entry
        // that broke it, so a bug elsewhere cannot assign a student who is not waiting.
        loop {
            let students = &self.students;
            let here =
                |s: &StudentKey, _| students.get(s).is_some_and(|e| e.presence.away.is_none());
            let (student, arrival) = self.queue.take_first(here)?;
            let Some(entry) = self.students.get_mut(&student) else {
                continue;
            };
            if entry.state != StudentState::Waiting(arrival) {
                continue;
            }
            let next = StudentState::Chatting { chat, arrival };
            self.counts.count_out(&entry.state);
            self.counts.count_in(&next);
            entry.state = next;
            return Some(Assigned {
                student,
                id: entry.id.clone(),
            });
        }
    }

    /// Chat finished normally: Chatting{chat} -> Finished. false (no change) otherwise.
    pub fn finish_chat(&mut self, student: &StudentKey, chat: ChatId) -> bool {
        let Some(entry) = self.students.get_mut(student) else {
            return false;
        };
        match entry.state {
            StudentState::Chatting { chat: current, .. } if current == chat => {
                self.counts.count_out(&entry.state);
                entry.state = StudentState::Finished;
                entry.ticket = None;
                self.counts.count_in(&entry.state);
                true
            }
            _ => false,
        }
    }

    /// Teacher vanished: Chatting{chat} -> Waiting with its original arrival, back in the
    /// queue. false (no change) otherwise.
    pub fn requeue(&mut self, student: &StudentKey, chat: ChatId) -> bool {
        let Some(entry) = self.students.get_mut(student) else {
            return false;
        };
        let arrival = match entry.state {
            StudentState::Chatting {
                chat: current,
                arrival,
            } if current == chat => arrival,
            _ => return false,
        };
        if !self.queue.requeue(student.clone(), arrival) {
            return false;
        }
        self.counts.count_out(&entry.state);
        entry.state = StudentState::Waiting(arrival);
        self.counts.count_in(&entry.state);
        true
    }

    /// One presence channel fewer. On the last one the student vanishes: removed (from the
    /// queue too) and its previous state returned (the caller finishes the chat if it was
    /// Chatting). Otherwise None.
    pub fn leave(&mut self, student: &StudentKey) -> Option<StudentState> {
        if !self.students.get_mut(student)?.presence.lose() {
            return None;
        }
        self.remove(student)
    }

    /// Out of the roster and the queue; its last state.
    fn remove(&mut self, student: &StudentKey) -> Option<StudentState> {
        let gone = self.students.remove(student)?;
        self.queue.remove(student);
        self.counts.count_out(&gone.state);
        Some(gone.state)
    }

    pub fn state(&self, student: &StudentKey) -> Option<&StudentState> {
        self.students.get(student).map(|e| &e.state)
    }

    pub fn is_present(&self, student: &StudentKey) -> bool {
        self.students.contains_key(student)
    }

    /// The id this student first joined with.
    pub fn id(&self, student: &StudentKey) -> Option<&UserId> {
        self.students.get(student).map(|e| &e.id)
    }

    pub fn counts(&self) -> StudentCounts {
        self.counts
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// The waiting queue, read-only (head first via `iter`).
    pub fn queue(&self) -> &WaitingQueue {
        &self.queue
    }

    /// Every present student with its state (any order).
    pub fn iter(&self) -> impl Iterator<Item = (&StudentKey, &StudentState)> + '_ {
        self.students.iter().map(|(k, e)| (k, &e.state))
    }
}

/// Invariant checks shared with the invariant tests of `domain::steps`.
#[cfg(test)]
pub(crate) mod check {
    use super::*;

    /// The counts a full scan of the states gives.
    pub(crate) fn scan_counts(students: &Students) -> StudentCounts {
        let mut counts = StudentCounts::default();
        for (_, state) in students.iter() {
            counts.count_in(state);
        }
        counts
    }

    /// Counts match a scan, and the queue holds exactly the Waiting students with the
    /// arrivals their states record.
    pub(crate) fn students_consistent(students: &Students) {
        assert_eq!(students.counts(), scan_counts(students), "counts drifted");
        let mut waiting: Vec<(StudentKey, Arrival)> = students
            .iter()
            .filter_map(|(k, s)| match s {
                StudentState::Waiting(a) => Some((k.clone(), *a)),
                _ => None,
            })
            .collect();
        waiting.sort_by_key(|(_, a)| *a);
        let queued: Vec<(StudentKey, Arrival)> = students
            .queue()
            .iter()
            .map(|(k, a)| (k.clone(), a))
            .collect();
        assert_eq!(queued, waiting, "queue differs from the Waiting students");
        assert_eq!(students.queue_len(), queued.len());
    }

    pub(crate) fn teachers_within_cap(teachers: &Teachers) {
        for (teacher, chats) in teachers.iter() {
            assert!(
                chats.len() <= MAX_CHATS_PER_TEACHER,
                "teacher {teacher} holds {} chats",
                chats.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check::*;
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn user(v: serde_json::Value) -> UserId {
        UserId::from_json(&v).expect("valid id")
    }

    fn teacher(n: u64) -> TeacherKey {
        user(json!(n)).as_teacher()
    }

    fn student(n: u64) -> StudentKey {
        user(json!(n)).as_student()
    }

    fn chat(rng: &mut StdRng) -> ChatId {
        ChatId::random(rng)
    }

    fn counts(waiting: usize, chatting: usize, finished: usize) -> StudentCounts {
        StudentCounts {
            waiting,
            chatting,
            finished,
        }
    }

    // ---- Tickets (office hours) ----

    fn ticket(question: &str, since: u64) -> Ticket {
        Ticket {
            name: None,
            question: Some(question.to_owned()),
            since,
        }
    }

    #[test]
    fn a_ticket_stays_through_a_requeue_and_goes_with_the_chat() {
        let mut rng = StdRng::seed_from_u64(70);
        let mut students = Students::new();
        students.join(user(json!(1)));
        assert!(
            !students.set_ticket(&student(1), ticket("early", 1)),
            "not waiting yet"
        );
        students.ready(&student(1));
        assert!(students.set_ticket(&student(1), ticket("limits", 10)));
        // A repeated ready changes the question, not the time in line.
        assert!(students.set_ticket(&student(1), ticket("series", 20)));
        assert_eq!(students.ticket(&student(1)), Some(&ticket("series", 10)));

        let c = chat(&mut rng);
        students.dequeue(c).expect("waiting");
        assert_eq!(students.ticket(&student(1)), Some(&ticket("series", 10)));
        // Its teacher vanished: back at the head, with its question.
        assert!(students.requeue(&student(1), c));
        assert_eq!(
            students.waiting_list(50).students[0].ticket,
            Some(ticket("series", 10))
        );

        let c = chat(&mut rng);
        students.dequeue(c).expect("waiting");
        assert!(students.finish_chat(&student(1), c));
        assert_eq!(students.ticket(&student(1)), None, "the chat took it");
    }

    #[test]
    fn the_waiting_list_is_the_head_of_the_queue_in_order() {
        let mut students = Students::new();
        for n in 1..=60 {
            students.join(user(json!(n)));
            students.ready(&student(n));
            students.set_ticket(&student(n), ticket(&format!("q{n}"), n));
        }
        students.away(&student(2));
        let list = students.waiting_list(50);
        assert_eq!(list.total, 60);
        assert_eq!(list.students.len(), 50);
        let firsts: Vec<_> = list.students[..3]
            .iter()
            .map(|w| (w.id.clone(), w.position, w.away))
            .collect();
        assert_eq!(
            firsts,
            [
                (json!(1), 1, false),
                (json!(2), 2, true),
                (json!(3), 3, false)
            ]
        );
        assert_eq!(list.students[49].id, json!(50));
    }

    // ---- Teachers ----

    #[test]
    fn a_teacher_holds_at_most_five_chats() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut teachers = Teachers::new();
        teachers.join(teacher(1));
        for _ in 0..MAX_CHATS_PER_TEACHER {
            assert_eq!(teachers.try_assign(&teacher(1), chat(&mut rng)), Ok(()));
        }
        assert_eq!(
            teachers.try_assign(&teacher(1), chat(&mut rng)),
            Err(AssignRefusal::Full)
        );
        assert_eq!(teachers.active_chats(&teacher(1)), 5);
    }

    #[test]
    fn assigning_the_same_chat_twice_takes_one_slot() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut teachers = Teachers::new();
        teachers.join(teacher(1));
        let c = chat(&mut rng);
        assert_eq!(teachers.try_assign(&teacher(1), c), Ok(()));
        assert_eq!(teachers.try_assign(&teacher(1), c), Ok(()));
        assert_eq!(teachers.active_chats(&teacher(1)), 1);
    }

    #[test]
    fn an_absent_teacher_cannot_take_a_chat() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut teachers = Teachers::new();
        assert_eq!(
            teachers.try_assign(&teacher(1), chat(&mut rng)),
            Err(AssignRefusal::NotPresent)
        );
        assert_eq!(teachers.active_chats(&teacher(1)), 0);
    }

    #[test]
    fn a_rejoin_does_not_reset_the_teachers_chats() {
        let mut rng = StdRng::seed_from_u64(10);
        let mut teachers = Teachers::new();
        teachers.join(teacher(1));
        for _ in 0..MAX_CHATS_PER_TEACHER {
            assert_eq!(teachers.try_assign(&teacher(1), chat(&mut rng)), Ok(()));
        }
        teachers.join(teacher(1));
        assert_eq!(teachers.active_chats(&teacher(1)), 5);
        assert_eq!(
            teachers.try_assign(&teacher(1), chat(&mut rng)),
            Err(AssignRefusal::Full)
        );
        assert_eq!(teachers.total(), 1);
    }

    #[test]
    fn a_teacher_vanishes_only_with_its_last_presence_channel() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut teachers = Teachers::new();
        teachers.join(teacher(1));
        teachers.join(teacher(1)); // a second tab
        let c = chat(&mut rng);
        assert_eq!(teachers.try_assign(&teacher(1), c), Ok(()));
        assert_eq!(teachers.leave(&teacher(1)), None);
        assert!(teachers.is_present(&teacher(1)));
        assert_eq!(teachers.leave(&teacher(1)), Some(vec![c]));
        assert!(!teachers.is_present(&teacher(1)));
        assert_eq!(teachers.total(), 0);
        assert_eq!(teachers.leave(&teacher(1)), None);
    }

    #[test]
    fn a_teacher_with_no_chats_vanishes_with_an_empty_list() {
        let mut teachers = Teachers::new();
        teachers.join(teacher(1));
        assert_eq!(teachers.leave(&teacher(1)), Some(vec![]));
    }

    #[test]
    fn releasing_a_slot_lets_the_teacher_claim_again() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut teachers = Teachers::new();
        teachers.join(teacher(1));
        let chats: Vec<ChatId> = (0..MAX_CHATS_PER_TEACHER).map(|_| chat(&mut rng)).collect();
        for &c in &chats {
            assert_eq!(teachers.try_assign(&teacher(1), c), Ok(()));
        }
        assert!(teachers.release(&teacher(1), chats[2]));
        assert!(!teachers.release(&teacher(1), chats[2]), "released twice");
        assert!(!teachers.release(&teacher(2), chats[0]), "unknown teacher");
        assert_eq!(teachers.active_chats(&teacher(1)), 4);
        assert!(!teachers.chats_of(&teacher(1)).contains(&chats[2]));
        assert_eq!(teachers.try_assign(&teacher(1), chat(&mut rng)), Ok(()));
    }

    #[test]
    fn teacher_1_and_student_1_are_different_people() {
        let mut teachers = Teachers::new();
        let mut students = Students::new();
        teachers.join(teacher(1));
        students.join(user(json!(1)));
        assert!(matches!(
            students.ready(&student(1)),
            ReadyOutcome::Queued(_)
        ));
        // Teacher 1 vanishing leaves student 1 alone (PROTOCOL 8.7).
        assert_eq!(teachers.leave(&teacher(1)), Some(vec![]));
        assert!(students.is_present(&student(1)));
        assert_eq!(students.counts(), counts(1, 0, 0));
    }

    fn arrival_of(students: &Students, n: u64) -> Arrival {
        match students.state(&student(n)) {
            Some(StudentState::Waiting(a)) | Some(StudentState::Chatting { arrival: a, .. }) => *a,
            other => panic!("student {n} has no arrival: {other:?}"),
        }
    }

    // ---- Students ----

    #[test]
    fn ready_needs_presence() {
        let mut students = Students::new();
        assert_eq!(students.ready(&student(1)), ReadyOutcome::NotPresent);
        assert_eq!(students.counts(), StudentCounts::default());
    }

    #[test]
    fn joining_alone_does_not_enter_the_roster() {
        let mut students = Students::new();
        students.join(user(json!(1)));
        assert_eq!(students.state(&student(1)), Some(&StudentState::Present));
        assert_eq!(students.counts().total(), 0);
        assert_eq!(students.queue_len(), 0);
    }

    #[test]
    fn ready_is_idempotent_while_waiting_or_chatting() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut students = Students::new();
        students.join(user(json!(1)));
        students.join(user(json!(2)));
        let ReadyOutcome::Queued(first) = students.ready(&student(1)) else {
            panic!("first ready must queue");
        };
        assert_eq!(students.ready(&student(1)), ReadyOutcome::Unchanged);
        assert!(matches!(
            students.ready(&student(2)),
            ReadyOutcome::Queued(_)
        ));
        // A repeat does not move student 1 behind student 2.
        assert_eq!(arrival_of(&students, 1), first);
        let c = chat(&mut rng);
        assert_eq!(students.dequeue(c).map(|a| a.student), Some(student(1)));
        // Chatting: a repeated ready (client rejoin) must not queue it a second time.
        assert_eq!(students.ready(&student(1)), ReadyOutcome::Unchanged);
        assert_eq!(students.counts(), counts(1, 1, 0));
        assert_eq!(
            students.dequeue(chat(&mut rng)).map(|a| a.student),
            Some(student(2))
        );
        assert_eq!(students.dequeue(chat(&mut rng)), None, "assigned twice");
    }

    #[test]
    fn a_rejoin_does_not_reset_the_students_state() {
        let mut students = Students::new();
        students.join(user(json!(1)));
        students.ready(&student(1));
        students.join(user(json!("1")));
        assert!(matches!(
            students.state(&student(1)),
            Some(StudentState::Waiting(_))
        ));
        assert_eq!(students.counts(), counts(1, 0, 0));
    }

    #[test]
    fn the_first_joined_id_is_echoed() {
        let mut rng = StdRng::seed_from_u64(14);
        let mut students = Students::new();
        students.join(user(json!(7)));
        students.join(user(json!("7")));
        students.ready(&student(7));
        let assigned = students.dequeue(chat(&mut rng)).expect("7 waits");
        assert_eq!(&*assigned.id.json, "7");
        assert_eq!(assigned.student, student(7));
    }

    #[test]
    fn claims_serve_students_in_arrival_order_not_id_order() {
        let mut rng = StdRng::seed_from_u64(15);
        let mut students = Students::new();
        for n in [10, 2, 1] {
            students.join(user(json!(n)));
            students.ready(&student(n));
        }
        let served: Vec<StudentKey> = std::iter::from_fn(|| students.dequeue(chat(&mut rng)))
            .map(|a| a.student)
            .collect();
        assert_eq!(served, [student(10), student(2), student(1)]);
    }

    #[test]
    fn a_finished_student_may_ready_again_as_a_new_arrival() {
        let mut rng = StdRng::seed_from_u64(16);
        let mut students = Students::new();
        students.join(user(json!(1)));
        students.join(user(json!(2)));
        students.ready(&student(1));
        let c = chat(&mut rng);
        students.dequeue(c);
        students.ready(&student(2));
        assert!(students.finish_chat(&student(1), c));
        assert!(!students.finish_chat(&student(1), c), "finished twice");
        assert_eq!(students.counts(), counts(1, 0, 1));
        assert!(matches!(
            students.ready(&student(1)),
            ReadyOutcome::Queued(_)
        ));
        assert_eq!(students.counts(), counts(2, 0, 0));
        // It arrived after student 2 this time.
        assert_eq!(
            students.dequeue(chat(&mut rng)).map(|a| a.student),
            Some(student(2))
        );
    }

    #[test]
    fn finish_and_requeue_ignore_the_wrong_chat() {
        let mut rng = StdRng::seed_from_u64(17);
        let mut students = Students::new();
        students.join(user(json!(1)));
        students.ready(&student(1));
        let c = chat(&mut rng);
        let other = chat(&mut rng);
        students.dequeue(c);
        assert!(!students.finish_chat(&student(1), other));
        assert!(!students.requeue(&student(1), other));
        assert!(!students.finish_chat(&student(9), c), "unknown student");
        assert!(!students.requeue(&student(9), c), "unknown student");
        assert_eq!(students.counts(), counts(0, 1, 0));
    }

    #[test]
    fn requeued_students_go_back_to_the_head_in_original_order() {
        let mut rng = StdRng::seed_from_u64(18);
        let mut students = Students::new();
        for n in 1..=4 {
            students.join(user(json!(n)));
            students.ready(&student(n));
        }
        let c1 = chat(&mut rng);
        let c2 = chat(&mut rng);
        students.dequeue(c1); // student 1
        students.dequeue(c2); // student 2
        students.join(user(json!(5)));
        students.ready(&student(5));
        // The teacher vanished; its chats come back in any order.
        assert!(students.requeue(&student(2), c2));
        assert!(students.requeue(&student(1), c1));
        assert!(!students.requeue(&student(1), c1), "requeued twice");
        assert_eq!(students.counts(), counts(5, 0, 0));
        let served: Vec<StudentKey> = std::iter::from_fn(|| students.dequeue(chat(&mut rng)))
            .map(|a| a.student)
            .collect();
        assert_eq!(served, (1..=5).map(student).collect::<Vec<_>>());
    }

    #[test]
    fn a_student_vanishes_only_with_its_last_presence_channel() {
        let mut students = Students::new();
        students.join(user(json!(1)));
        students.join(user(json!(1)));
        students.ready(&student(1));
        assert_eq!(students.leave(&student(1)), None);
        assert_eq!(students.queue_len(), 1);
        let gone = students.leave(&student(1)).expect("last channel");
        assert!(matches!(gone, StudentState::Waiting(_)));
        assert_eq!(students.queue_len(), 0, "still queued after vanishing");
        assert_eq!(students.counts(), StudentCounts::default());
        assert_eq!(students.leave(&student(1)), None);
        assert_eq!(
            students.dequeue(ChatId::random(&mut StdRng::seed_from_u64(1))),
            None
        );
    }

    #[test]
    fn vanishing_before_ready_is_not_a_roster_change() {
        let mut students = Students::new();
        students.join(user(json!(1)));
        let gone = students.leave(&student(1)).expect("last channel");
        assert_eq!(gone, StudentState::Present);
        assert!(!gone.in_roster());
        assert!(StudentState::Finished.in_roster());
    }

    /// One step of a scripted roster sequence.
    enum Step {
        Join(u64),
        Ready(u64),
        Claim(usize),
        Finish(u64, usize),
        Requeue(u64, usize),
        Vanish(u64),
    }

    #[test]
    fn scripted_sequence_keeps_counts_equal_to_a_scan() {
        use Step::*;
        let mut rng = StdRng::seed_from_u64(19);
        let chats = [chat(&mut rng), chat(&mut rng)];
        let mut students = Students::new();
        let script = [
            (Join(1), counts(0, 0, 0)),
            (Join(2), counts(0, 0, 0)),
            (Join(3), counts(0, 0, 0)),
            (Ready(1), counts(1, 0, 0)),
            (Ready(2), counts(2, 0, 0)),
            (Ready(2), counts(2, 0, 0)),
            (Claim(0), counts(1, 1, 0)),
            (Claim(1), counts(0, 2, 0)),
            (Ready(3), counts(1, 2, 0)),
            (Finish(1, 0), counts(1, 1, 1)),
            (Finish(1, 0), counts(1, 1, 1)),
            (Requeue(2, 1), counts(2, 0, 1)),
            (Vanish(3), counts(1, 0, 1)),
            (Vanish(1), counts(1, 0, 0)),
            (Claim(0), counts(0, 1, 0)),
            (Ready(2), counts(0, 1, 0)),
            (Vanish(2), counts(0, 0, 0)),
            (Claim(1), counts(0, 0, 0)),
        ];
        for (at, (step, expected)) in script.into_iter().enumerate() {
            match step {
                Join(n) => {
                    students.join(user(json!(n)));
                }
                Ready(n) => {
                    let _ = students.ready(&student(n));
                }
                Claim(c) => {
                    let _ = students.dequeue(chats[c]);
                }
                Finish(n, c) => {
                    let _ = students.finish_chat(&student(n), chats[c]);
                }
                Requeue(n, c) => {
                    let _ = students.requeue(&student(n), chats[c]);
                }
                Vanish(n) => {
                    let _ = students.leave(&student(n));
                }
            }
            students_consistent(&students);
            assert_eq!(students.counts(), expected, "after step {at}");
        }
    }

    #[test]
    fn random_student_operations_keep_the_invariants() {
        let mut rng = StdRng::seed_from_u64(20);
        let mut students = Students::new();
        let mut chats: Vec<(StudentKey, ChatId)> = Vec::new();
        for _ in 0..5000 {
            let n = rng.random_range(1..=12u64);
            match rng.random_range(0..6) {
                0 => {
                    students.join(user(json!(n)));
                }
                1 => {
                    let _ = students.ready(&student(n));
                }
                2 => {
                    let c = chat(&mut rng);
                    if let Some(a) = students.dequeue(c) {
                        chats.push((a.student, c));
                    }
                }
                3 | 4 if !chats.is_empty() => {
                    let (s, c) = chats.swap_remove(rng.random_range(0..chats.len()));
                    if rng.random_bool(0.5) {
                        students.finish_chat(&s, c);
                    } else {
                        students.requeue(&s, c);
                    }
                }
                _ => {
                    let _ = students.leave(&student(n));
                }
            }
            students_consistent(&students);
        }
    }
}
