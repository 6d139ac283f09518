//! `TeacherRoster`: the actor that owns [`Teachers`] (who teaches now, and
//! which chats each teacher holds). It only applies what `ChatLifetime`, its
//! single writer, asks; the rules (at most five chats, joins never reset a
//! teacher) live in the domain struct.

use actix::{Actor, Context, Handler, Message, MessageResult};

use crate::domain::{AssignRefusal, ChatId, TeacherKey, Teachers};

#[derive(Debug, Default)]
pub struct TeacherRoster {
    teachers: Teachers,
}

impl Actor for TeacherRoster {
    type Context = Context<Self>;
}

/// A teacher joined `presence:teachers` on one more channel. Answers the
/// number of teachers present.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct TeacherPresent {
    pub teacher: TeacherKey,
}

impl Handler<TeacherPresent> for TeacherRoster {
    type Result = usize;
    fn handle(&mut self, msg: TeacherPresent, _: &mut Context<Self>) -> usize {
        self.teachers.join(msg.teacher);
        self.teachers.total()
    }
}

/// A teacher lost one presence channel.
#[derive(Message)]
#[rtype(result = "TeacherAbsence")]
pub struct TeacherAbsent {
    pub teacher: TeacherKey,
}

/// The outcome of [`TeacherAbsent`].
#[derive(Debug)]
pub struct TeacherAbsence {
    /// `Some(active chats)` when that was the teacher's last channel: the
    /// teacher vanished and those chats are to be abandoned.
    pub vanished_with: Option<Vec<ChatId>>,
    /// Teachers present now.
    pub total: usize,
}

impl Handler<TeacherAbsent> for TeacherRoster {
    type Result = MessageResult<TeacherAbsent>;
    fn handle(&mut self, msg: TeacherAbsent, _: &mut Context<Self>) -> Self::Result {
        let vanished_with = self.teachers.leave(&msg.teacher);
        MessageResult(TeacherAbsence {
            vanished_with,
            total: self.teachers.total(),
        })
    }
}

/// Take one of the teacher's five chat slots for `chat` (claim step 2).
#[derive(Message)]
#[rtype(result = "Result<(), AssignRefusal>")]
pub struct AssignSlot {
    pub teacher: TeacherKey,
    pub chat: ChatId,
}

impl Handler<AssignSlot> for TeacherRoster {
    type Result = Result<(), AssignRefusal>;
    fn handle(&mut self, msg: AssignSlot, _: &mut Context<Self>) -> Self::Result {
        self.teachers.try_assign(&msg.teacher, msg.chat)
    }
}

/// Free the slot of a chat that ended (or was never created).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ReleaseSlot {
    pub teacher: TeacherKey,
    pub chat: ChatId,
}

impl Handler<ReleaseSlot> for TeacherRoster {
    type Result = bool;
    fn handle(&mut self, msg: ReleaseSlot, _: &mut Context<Self>) -> bool {
        self.teachers.release(&msg.teacher, msg.chat)
    }
}
