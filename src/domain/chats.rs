//! The chat log: every chat's participants, phase and entered flags (PROTOCOL 5.2, 5.3,
//! 7.2, 7.4).
//!
//! Owns the chat lifecycle `active → finished | abandoned`, the join check for
//! `chats:<cid>`, and the exactly-once decisions: `chat:ready` when both sides have
//! entered, `chat:terminated` when the chat finishes. It also keeps the chat object JSON,
//! built once when the chat is created and shared by every frame that carries it.
//!
//! Must never keep message history (nothing reads it, and the 2015 log grew without
//! bound, PROTOCOL 8.12), never report `chat:ready` or a finish twice (a second
//! `chat:terminated` made client A's students exit early, PROTOCOL 8.9), and never panic
//! on an unknown chat id (a bogus id crashed the 2015 log and lost every chat, 8.11).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::ids::{ChatId, StudentKey, TeacherKey, UserId, UserKey};

/// How a chat came to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EndReason {
    /// `chat:terminate` from one side.
    EndedBy(Role),
    /// The student vanished while chatting (PROTOCOL 6.1).
    StudentLeft,
    /// The teacher vanished: the chat is abandoned and the student requeued (6.2).
    TeacherLeft,
}

impl EndReason {
    /// The text of `chat:terminated`'s `reason` for channels that asked for it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::EndedBy(Role::Teacher) => "ended by teacher",
            EndReason::EndedBy(Role::Student) => "ended by student",
            EndReason::StudentLeft => "student left",
            EndReason::TeacherLeft => "teacher left",
        }
    }
}

/// The side a `chats:<cid>` channel joined as (its `role` join param).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Teacher,
    Student,
}

impl Role {
    /// The join param `"teacher"` or `"student"`; anything else is no role.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "teacher" => Some(Role::Teacher),
            "student" => Some(Role::Student),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Student => "student",
        }
    }
}

/// Where a chat is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatPhase {
    Active,
    /// Ended by `chat:terminate` or because the student vanished.
    Finished,
    /// Its teacher vanished; the student went back to the queue.
    Abandoned,
}

/// Join check for `chats:<cid>`, in the order PROTOCOL 5.2 gives.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinCheck {
    Allowed,
    UnknownChat,
    Unauthorized,
    ChatFinished,
}

/// What `teacher:joined` / `student:joined` did.
#[derive(Debug, PartialEq, Eq)]
pub enum EnterOutcome {
    /// Recorded (or already recorded); no `chat:ready` to send.
    Entered,
    /// Both sides are now in for the first time: broadcast `chat:ready`, once.
    Ready,
    /// The chat is unknown, finished or abandoned.
    NotActive,
}

/// The two sides of a chat that just finished: free the teacher's slot, mark the student
/// finished.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub teacher: TeacherKey,
    pub student: StudentKey,
}

#[derive(Debug)]
struct Chat {
    teacher: TeacherKey,
    student: StudentKey,
    phase: ChatPhase,
    teacher_entered: bool,
    student_entered: bool,
    /// The chat object as sent at assignment (`active`, neither side entered), shared
    /// by the frames of the claim.
    object: Arc<str>,
    /// The ids as the users sent them, for the object as it is now (join replies,
    /// PROTOCOL 6.3).
    teacher_json: Arc<str>,
    student_json: Arc<str>,
}

/// The chat object JSON (PROTOCOL 5.5), written by hand rather than through a map to
/// keep the key order of the Elixir struct and to echo the ids exactly as sent.
fn chat_object(
    id: ChatId,
    teacher: &str,
    student: &str,
    teacher_entered: bool,
    student_entered: bool,
) -> String {
    format!(
        concat!(
            r#"{{"id":"{}","status":"active","teacher_id":{},"student_id":{},"#,
            r#""teacher_entered":{},"student_entered":{},"messages":[]}}"#
        ),
        id, teacher, student, teacher_entered, student_entered
    )
}

/// How many discarded chats are still remembered, so that a late join of
/// one is refused with `chat finished` (PROTOCOL 6.2) rather than `unknown
/// chat`. Bounded, so memory does not grow with the number of chats served.
pub const RETIRED_CHATS_REMEMBERED: usize = 4096;

/// Every chat not yet discarded, how many are active, and the participants of
/// the most recently discarded ones.
#[derive(Default, Debug)]
pub struct Chats {
    chats: HashMap<ChatId, Chat>,
    active: usize,
    retired: HashMap<ChatId, (TeacherKey, StudentKey)>,
    retired_order: VecDeque<ChatId>,
}

impl Chats {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new active chat, neither side entered. Returns the chat object JSON (PROTOCOL
    /// 5.5), built once and kept:
    /// `{"id":"<uuid>","status":"active","teacher_id":<teacher json>,"student_id":<student json>,"teacher_entered":false,"student_entered":false,"messages":[]}`
    ///
    /// Ids are random v4 UUIDs, so a clash is not expected; if one happens the old record
    /// is replaced and the active count stays right.
    pub fn create(&mut self, id: ChatId, teacher: &UserId, student: &UserId) -> Arc<str> {
        let object: Arc<str> =
            Arc::from(chat_object(id, &teacher.json, &student.json, false, false));
        let chat = Chat {
            teacher: teacher.as_teacher(),
            student: student.as_student(),
            phase: ChatPhase::Active,
            teacher_entered: false,
            student_entered: false,
            object: Arc::clone(&object),
            teacher_json: Arc::clone(&teacher.json),
            student_json: Arc::clone(&student.json),
        };
        if let Some(old) = self.chats.insert(id, chat) {
            if old.phase == ChatPhase::Active {
                self.active = self.active.saturating_sub(1);
            }
        }
        self.active = self.active.saturating_add(1);
        object
    }

    /// unknown chat, then unauthorized (role/identity mismatch), then chat finished (not
    /// active): the first that applies is the refusal reason the client sees.
    pub fn authorize_join(&self, id: ChatId, role: Role, user: &UserKey) -> JoinCheck {
        let (teacher, student, active) = match (self.chats.get(&id), self.retired.get(&id)) {
            (Some(chat), _) => (
                &chat.teacher,
                &chat.student,
                chat.phase == ChatPhase::Active,
            ),
            (None, Some((teacher, student))) => (teacher, student, false),
            (None, None) => return JoinCheck::UnknownChat,
        };
        let participant = match role {
            Role::Teacher => teacher.0 == *user,
            Role::Student => student.0 == *user,
        };
        if !participant {
            JoinCheck::Unauthorized
        } else if !active {
            JoinCheck::ChatFinished
        } else {
            JoinCheck::Allowed
        }
    }

    /// True for a chat this log knows: live, or recently discarded.
    pub fn exists(&self, id: ChatId) -> bool {
        self.chats.contains_key(&id) || self.retired.contains_key(&id)
    }

    /// teacher:joined / student:joined. Ready exactly once: when both sides have now
    /// entered for the first time. Repeats give Entered. Not active: NotActive.
    pub fn enter(&mut self, id: ChatId, role: Role) -> EnterOutcome {
        let Some(chat) = self.chats.get_mut(&id) else {
            return EnterOutcome::NotActive;
        };
        if chat.phase != ChatPhase::Active {
            return EnterOutcome::NotActive;
        }
        // Flags only ever go from false to true, so "both were not set before and both
        // are set now" can be true on one call only: that is the exactly-once.
        let both_before = chat.teacher_entered && chat.student_entered;
        match role {
            Role::Teacher => chat.teacher_entered = true,
            Role::Student => chat.student_entered = true,
        }
        if !both_before && chat.teacher_entered && chat.student_entered {
            EnterOutcome::Ready
        } else {
            EnterOutcome::Entered
        }
    }

    /// Finish exactly once: Some on the first call for an active chat, None afterwards or
    /// if unknown/abandoned.
    pub fn finish(&mut self, id: ChatId) -> Option<Ended> {
        let chat = self.active_chat(id)?;
        chat.phase = ChatPhase::Finished;
        let ended = Ended {
            teacher: chat.teacher.clone(),
            student: chat.student.clone(),
        };
        self.active = self.active.saturating_sub(1);
        Some(ended)
    }

    /// Teacher vanished: Active -> Abandoned, returns the student. None if not active.
    pub fn abandon(&mut self, id: ChatId) -> Option<StudentKey> {
        let chat = self.active_chat(id)?;
        chat.phase = ChatPhase::Abandoned;
        let student = chat.student.clone();
        self.active = self.active.saturating_sub(1);
        Some(student)
    }

    pub fn phase(&self, id: ChatId) -> Option<ChatPhase> {
        self.chats.get(&id).map(|c| c.phase)
    }

    /// The teacher and student of a chat in any phase.
    pub fn participants(&self, id: ChatId) -> Option<(&TeacherKey, &StudentKey)> {
        self.chats.get(&id).map(|c| (&c.teacher, &c.student))
    }

    /// The chat object JSON made by `create`.
    pub fn object(&self, id: ChatId) -> Option<Arc<str>> {
        self.chats.get(&id).map(|c| Arc::clone(&c.object))
    }

    /// The chat object as it is now: which sides have entered (for the join replies
    /// of a user coming back, PROTOCOL 6.3).
    pub fn current_object(&self, id: ChatId) -> Option<Arc<str>> {
        let chat = self.chats.get(&id)?;
        if !chat.teacher_entered && !chat.student_entered {
            return Some(Arc::clone(&chat.object));
        }
        let (teacher, student) = (&chat.teacher_json, &chat.student_json);
        let object = chat_object(
            id,
            teacher,
            student,
            chat.teacher_entered,
            chat.student_entered,
        );
        Some(Arc::from(object))
    }

    /// Forget a finished or abandoned chat (its topic has no channels left). Active chats
    /// are kept (returns false). Its participants are remembered among the last
    /// [`RETIRED_CHATS_REMEMBERED`] discarded chats, so a late join still gets
    /// `chat finished`; after that, `unknown chat`.
    pub fn discard(&mut self, id: ChatId) -> bool {
        match self.chats.get(&id) {
            Some(chat) if chat.phase != ChatPhase::Active => {
                if let Some(chat) = self.chats.remove(&id) {
                    self.retire(id, chat.teacher, chat.student);
                }
                true
            }
            _ => false,
        }
    }

    fn retire(&mut self, id: ChatId, teacher: TeacherKey, student: StudentKey) {
        if self.retired.insert(id, (teacher, student)).is_none() {
            self.retired_order.push_back(id);
        }
        while self.retired_order.len() > RETIRED_CHATS_REMEMBERED {
            if let Some(oldest) = self.retired_order.pop_front() {
                self.retired.remove(&oldest);
            }
        }
    }

    pub fn active_count(&self) -> usize {
        self.active
    }

    pub fn len(&self) -> usize {
        self.chats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chats.is_empty()
    }

    /// Every chat id with its phase (any order), for snapshots and invariant checks.
    pub fn iter(&self) -> impl Iterator<Item = (ChatId, ChatPhase)> + '_ {
        self.chats.iter().map(|(&id, c)| (id, c.phase))
    }

    fn active_chat(&mut self, id: ChatId) -> Option<&mut Chat> {
        self.chats
            .get_mut(&id)
            .filter(|c| c.phase == ChatPhase::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::{json, Value};

    fn user(v: Value) -> UserId {
        UserId::from_json(&v).expect("valid id")
    }

    fn key(text: &str) -> UserKey {
        UserKey::new(text).expect("non-empty")
    }

    /// A log with one active chat between teacher 1 and student 7.
    fn one_chat(seed: u64) -> (Chats, ChatId) {
        let mut chats = Chats::new();
        let id = ChatId::random(&mut StdRng::seed_from_u64(seed));
        chats.create(id, &user(json!(1)), &user(json!(7)));
        (chats, id)
    }

    #[test]
    fn chat_object_has_the_seven_keys_in_order_and_echoes_ids() {
        let mut chats = Chats::new();
        let id = ChatId::parse("a17ffb00-ec45-4129-b076-775057324b7d").expect("canonical");
        let object = chats.create(id, &user(json!(1)), &user(json!("7")));
        assert_eq!(
            &*object,
            r#"{"id":"a17ffb00-ec45-4129-b076-775057324b7d","status":"active","teacher_id":1,"student_id":"7","teacher_entered":false,"student_entered":false,"messages":[]}"#
        );
        let parsed: Value = serde_json::from_str(&object).expect("valid json");
        assert_eq!(parsed["teacher_id"], json!(1));
        assert_eq!(parsed["student_id"], json!("7"));
        assert_eq!(chats.object(id).as_deref(), Some(&*object));
    }

    #[test]
    fn the_current_object_says_who_has_entered() {
        let mut chats = Chats::new();
        let id = ChatId::parse("a17ffb00-ec45-4129-b076-775057324b7d").expect("canonical");
        let first = chats.create(id, &user(json!(1)), &user(json!("7")));
        assert_eq!(chats.current_object(id), Some(first.clone()));
        chats.enter(id, Role::Student);
        let now: Value =
            serde_json::from_str(&chats.current_object(id).expect("known")).expect("valid json");
        assert_eq!(now["student_entered"], json!(true));
        assert_eq!(now["teacher_entered"], json!(false));
        assert_eq!(now["student_id"], json!("7"), "ids echoed as sent");
        assert_eq!(
            chats.object(id),
            Some(first),
            "the claim's object is unchanged"
        );
    }

    #[test]
    fn a_chat_of_signed_in_users_admits_only_them() {
        let mut chats = Chats::new();
        let id = ChatId::random(&mut StdRng::seed_from_u64(5));
        let (teacher, student) = (user(json!("t1")).signed(), user(json!("carol")).signed());
        chats.create(id, &teacher, &student);
        assert_eq!(
            chats.authorize_join(id, Role::Student, &student.key),
            JoinCheck::Allowed
        );
        // The same ids asserted without a token are other people (PROTOCOL 1.7).
        for (role, text) in [(Role::Student, "carol"), (Role::Teacher, "t1")] {
            assert_eq!(
                chats.authorize_join(id, role, &key(text)),
                JoinCheck::Unauthorized
            );
        }
        // And the other way round: a token user is not the tokenless 1 or 7.
        let (open, id) = one_chat(6);
        let signed_one = user(json!(1)).signed().key;
        assert_eq!(
            open.authorize_join(id, Role::Teacher, &signed_one),
            JoinCheck::Unauthorized
        );
    }

    #[test]
    fn join_checks_come_in_protocol_order() {
        let (mut chats, id) = one_chat(1);
        let stranger = ChatId::random(&mut StdRng::seed_from_u64(99));
        assert_eq!(
            chats.authorize_join(stranger, Role::Teacher, &key("1")),
            JoinCheck::UnknownChat
        );
        assert_eq!(
            chats.authorize_join(id, Role::Teacher, &key("1")),
            JoinCheck::Allowed
        );
        assert_eq!(
            chats.authorize_join(id, Role::Student, &key("7")),
            JoinCheck::Allowed
        );
        // Right person, wrong role; and a stranger in either role.
        assert_eq!(
            chats.authorize_join(id, Role::Student, &key("1")),
            JoinCheck::Unauthorized
        );
        assert_eq!(
            chats.authorize_join(id, Role::Teacher, &key("7")),
            JoinCheck::Unauthorized
        );
        chats.finish(id);
        // Unauthorized still wins over finished.
        assert_eq!(
            chats.authorize_join(id, Role::Teacher, &key("2")),
            JoinCheck::Unauthorized
        );
        assert_eq!(
            chats.authorize_join(id, Role::Teacher, &key("1")),
            JoinCheck::ChatFinished
        );
    }

    #[test]
    fn an_abandoned_chat_refuses_joins_as_finished() {
        let (mut chats, id) = one_chat(2);
        assert!(chats.abandon(id).is_some());
        assert_eq!(
            chats.authorize_join(id, Role::Student, &key("7")),
            JoinCheck::ChatFinished
        );
    }

    #[test]
    fn chat_ready_exactly_once_whichever_side_comes_first() {
        for first in [Role::Teacher, Role::Student] {
            let second = match first {
                Role::Teacher => Role::Student,
                Role::Student => Role::Teacher,
            };
            let (mut chats, id) = one_chat(3);
            assert_eq!(chats.enter(id, first), EnterOutcome::Entered);
            assert_eq!(chats.enter(id, first), EnterOutcome::Entered);
            assert_eq!(chats.enter(id, second), EnterOutcome::Ready);
            assert_eq!(chats.enter(id, second), EnterOutcome::Entered);
            assert_eq!(chats.enter(id, first), EnterOutcome::Entered);
        }
    }

    #[test]
    fn entering_a_chat_that_is_not_active_is_refused() {
        let (mut chats, id) = one_chat(4);
        let unknown = ChatId::random(&mut StdRng::seed_from_u64(98));
        assert_eq!(chats.enter(unknown, Role::Teacher), EnterOutcome::NotActive);
        chats.enter(id, Role::Teacher);
        chats.finish(id);
        assert_eq!(chats.enter(id, Role::Student), EnterOutcome::NotActive);
    }

    #[test]
    fn finish_happens_exactly_once() {
        let (mut chats, id) = one_chat(5);
        assert_eq!(chats.active_count(), 1);
        let ended = chats.finish(id).expect("first finish");
        assert_eq!(ended.teacher, user(json!(1)).as_teacher());
        assert_eq!(ended.student, user(json!(7)).as_student());
        assert_eq!(chats.finish(id), None, "second chat:terminated");
        assert_eq!(chats.phase(id), Some(ChatPhase::Finished));
        assert_eq!(chats.active_count(), 0);
        assert_eq!(chats.abandon(id), None);
    }

    #[test]
    fn abandon_returns_the_student_and_blocks_a_later_finish() {
        let (mut chats, id) = one_chat(6);
        assert_eq!(chats.abandon(id), Some(user(json!(7)).as_student()));
        assert_eq!(chats.abandon(id), None);
        assert_eq!(
            chats.finish(id),
            None,
            "abandoned chats send no chat:terminated"
        );
        assert_eq!(chats.phase(id), Some(ChatPhase::Abandoned));
        assert_eq!(chats.active_count(), 0);
    }

    #[test]
    fn unknown_ids_are_refused_without_panicking() {
        let mut chats = Chats::new();
        let id = ChatId::random(&mut StdRng::seed_from_u64(7));
        assert_eq!(chats.finish(id), None);
        assert_eq!(chats.abandon(id), None);
        assert_eq!(chats.phase(id), None);
        assert_eq!(chats.participants(id), None);
        assert!(!chats.discard(id));
        assert!(chats.is_empty());
    }

    #[test]
    fn only_ended_chats_are_discarded_and_late_joins_stay_refused() {
        let (mut chats, id) = one_chat(8);
        assert!(!chats.discard(id), "an active chat must be kept");
        assert_eq!(chats.len(), 1);
        chats.finish(id);
        assert!(chats.discard(id));
        assert!(chats.is_empty());
        // Recently discarded: its participants get `chat finished`, others
        // `unauthorized`, as for a finished chat still on record (6.2).
        assert!(chats.exists(id));
        assert_eq!(
            chats.authorize_join(id, Role::Teacher, &key("1")),
            JoinCheck::ChatFinished
        );
        assert_eq!(
            chats.authorize_join(id, Role::Student, &key("1")),
            JoinCheck::Unauthorized
        );
    }

    #[test]
    fn only_a_bounded_number_of_discarded_chats_is_remembered() {
        let mut chats = Chats::new();
        let mut rng = rand::rng();
        let first = ChatId::random(&mut rng);
        chats.create(first, &user(json!(1)), &user(json!(1)));
        chats.finish(first);
        chats.discard(first);
        for n in 0..RETIRED_CHATS_REMEMBERED {
            let id = ChatId::random(&mut rng);
            chats.create(id, &user(json!(1)), &user(json!(n)));
            chats.abandon(id);
            chats.discard(id);
        }
        assert!(
            !chats.exists(first),
            "the oldest discarded chat is forgotten"
        );
        assert_eq!(
            chats.authorize_join(first, Role::Teacher, &key("1")),
            JoinCheck::UnknownChat
        );
        assert_eq!(chats.retired.len(), RETIRED_CHATS_REMEMBERED);
        assert_eq!(chats.retired_order.len(), RETIRED_CHATS_REMEMBERED);
    }

    #[test]
    fn a_clashing_id_replaces_the_record_and_keeps_the_active_count() {
        let (mut chats, id) = one_chat(9);
        chats.create(id, &user(json!(2)), &user(json!(8)));
        assert_eq!(chats.active_count(), 1);
        assert_eq!(chats.len(), 1);
    }

    #[test]
    fn roles_parse_from_join_params() {
        assert_eq!(Role::parse("teacher"), Some(Role::Teacher));
        assert_eq!(Role::parse("student"), Some(Role::Student));
        assert_eq!(Role::parse("Teacher"), None);
        assert_eq!(Role::Student.as_str(), "student");
    }
}
