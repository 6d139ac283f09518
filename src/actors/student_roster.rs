//! `StudentRoster`: the actor that owns [`Students`], the students present,
//! where each one stands and the FIFO waiting queue. Every answer carries the
//! counts after the change, so `ChatLifetime` can build a `user:status`
//! snapshot inside the same step without asking again. It also owns the
//! [`PositionWatch`] of the students that asked to be told their place.

use actix::{Actor, Context, Handler, Message, MessageResult};

use crate::domain::{
    Assigned, ChatId, PositionNotice, PositionWatch, ReadyOutcome, StudentCounts, StudentKey,
    StudentState, Students, UserId,
};

#[derive(Debug, Default)]
pub struct StudentRoster {
    students: Students,
    positions: PositionWatch,
}

impl Actor for StudentRoster {
    type Context = Context<Self>;
}

/// A student joined its presence topic on one more channel (not queued yet).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StudentPresent {
    pub student: UserId,
}

impl Handler<StudentPresent> for StudentRoster {
    type Result = ();
    fn handle(&mut self, msg: StudentPresent, _: &mut Context<Self>) {
        self.students.join(msg.student);
    }
}

/// `student:ready`: join the waiting queue (idempotent).
#[derive(Message)]
#[rtype(result = "(ReadyOutcome, StudentCounts)")]
pub struct StudentReady {
    pub student: StudentKey,
}

impl Handler<StudentReady> for StudentRoster {
    type Result = MessageResult<StudentReady>;
    fn handle(&mut self, msg: StudentReady, _: &mut Context<Self>) -> Self::Result {
        let outcome = self.students.ready(&msg.student);
        MessageResult((outcome, self.students.counts()))
    }
}

/// Claim step 3: pop the head of the queue into `chat`.
#[derive(Message)]
#[rtype(result = "(Option<Assigned>, StudentCounts)")]
pub struct DequeueStudent {
    pub chat: ChatId,
}

impl Handler<DequeueStudent> for StudentRoster {
    type Result = MessageResult<DequeueStudent>;
    fn handle(&mut self, msg: DequeueStudent, _: &mut Context<Self>) -> Self::Result {
        let assigned = self.students.dequeue(msg.chat);
        MessageResult((assigned, self.students.counts()))
    }
}

/// The student's chat finished: it becomes `finished`.
#[derive(Message)]
#[rtype(result = "StudentCounts")]
pub struct FinishStudent {
    pub student: StudentKey,
    pub chat: ChatId,
}

impl Handler<FinishStudent> for StudentRoster {
    type Result = MessageResult<FinishStudent>;
    fn handle(&mut self, msg: FinishStudent, _: &mut Context<Self>) -> Self::Result {
        self.students.finish_chat(&msg.student, msg.chat);
        MessageResult(self.students.counts())
    }
}

/// The student's teacher vanished: back to the queue at its original place.
#[derive(Message)]
#[rtype(result = "(bool, StudentCounts)")]
pub struct RequeueStudent {
    pub student: StudentKey,
    pub chat: ChatId,
}

impl Handler<RequeueStudent> for StudentRoster {
    type Result = MessageResult<RequeueStudent>;
    fn handle(&mut self, msg: RequeueStudent, _: &mut Context<Self>) -> Self::Result {
        let requeued = self.students.requeue(&msg.student, msg.chat);
        MessageResult((requeued, self.students.counts()))
    }
}

/// A student lost one presence channel. Answers its former state when that
/// was the last one (the student vanished).
#[derive(Message)]
#[rtype(result = "(Option<StudentState>, StudentCounts)")]
pub struct StudentAbsent {
    pub student: StudentKey,
}

impl Handler<StudentAbsent> for StudentRoster {
    type Result = MessageResult<StudentAbsent>;
    fn handle(&mut self, msg: StudentAbsent, _: &mut Context<Self>) -> Self::Result {
        let vanished = self.students.leave(&msg.student);
        MessageResult((vanished, self.students.counts()))
    }
}

/// One more channel of `student` asked for `queue:position` notices. Answers
/// the notice to send that channel now.
#[derive(Message)]
#[rtype(result = "PositionNotice")]
pub struct WatchPosition {
    pub student: StudentKey,
    pub teachers: usize,
}

impl Handler<WatchPosition> for StudentRoster {
    type Result = MessageResult<WatchPosition>;
    fn handle(&mut self, msg: WatchPosition, _: &mut Context<Self>) -> Self::Result {
        let queue = self.students.queue();
        MessageResult(self.positions.watch(msg.student, queue, msg.teachers))
    }
}

/// A channel that asked for notices went away.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnwatchPosition {
    pub student: StudentKey,
}

impl Handler<UnwatchPosition> for StudentRoster {
    type Result = ();
    fn handle(&mut self, msg: UnwatchPosition, _: &mut Context<Self>) {
        self.positions.unwatch(&msg.student);
    }
}

/// One coalesced round of notices: those worth sending now.
#[derive(Message)]
#[rtype(result = "Vec<(StudentKey, PositionNotice)>")]
pub struct DuePositions {
    pub teachers: usize,
}

impl Handler<DuePositions> for StudentRoster {
    type Result = MessageResult<DuePositions>;
    fn handle(&mut self, msg: DuePositions, _: &mut Context<Self>) -> Self::Result {
        let queue = self.students.queue();
        MessageResult(self.positions.due(queue, msg.teachers))
    }
}
